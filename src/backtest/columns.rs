//! Bars held column by column in fixed point, the layout the backtest kernels scan: a close is
//! an `i64` count of 1e-8 units, so sums and comparisons are exact integer arithmetic.

use rust_decimal::Decimal;

use crate::market::{Bar, Interval, Timestamp};

/// Decimal places of every fixed-point price and volume (the store uses the same units).
pub const SCALE: u32 = 8;
/// 10^SCALE.
pub const UNIT: i64 = 100_000_000;
/// The largest whole part a fixed-point value may have: 10 digits, so that the value times
/// 10^8 stays well inside an `i64`.
pub const MAX_WHOLE_DIGITS: usize = 10;

/// The fields a strategy never reads; loaded only for reports and per-bar strategies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BarDetail {
    pub open: Vec<i64>,
    pub high: Vec<i64>,
    pub low: Vec<i64>,
    pub volume: Vec<i64>,
    pub trades: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarColumns {
    pub interval: Interval,
    /// Bar open times, unix seconds, strictly ascending.
    pub ts: Vec<i64>,
    pub close: Vec<i64>,
    pub detail: Option<BarDetail>,
}

impl BarColumns {
    pub fn new(interval: Interval, detail: bool) -> Self {
        Self {
            interval,
            ts: Vec::new(),
            close: Vec::new(),
            detail: detail.then(BarDetail::default),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Appends a bar; `None` when one of its values cannot be held in fixed point (more than 8
    /// decimals or too large), with the field's name.
    pub fn push(&mut self, bar: &Bar) -> Result<(), &'static str> {
        let close = to_fixed(bar.close).ok_or("close")?;
        if let Some(d) = &mut self.detail {
            let open = to_fixed(bar.open).ok_or("open")?;
            let high = to_fixed(bar.high).ok_or("high")?;
            let low = to_fixed(bar.low).ok_or("low")?;
            // Volume is for display only: rounding its 9th decimal loses nothing that matters.
            let volume = to_fixed(bar.volume.round_dp(SCALE)).ok_or("volume")?;
            d.open.push(open);
            d.high.push(high);
            d.low.push(low);
            d.volume.push(volume);
            d.trades.push(bar.trades);
        }
        self.ts.push(bar.ts.secs());
        self.close.push(close);
        Ok(())
    }

    /// The bar at `i` as the engine sees it; without detail, open, high and low are the close.
    pub fn bar(&self, i: usize) -> Bar {
        let close = to_decimal(self.close[i]);
        let (open, high, low, volume, trades) = match &self.detail {
            Some(d) => (
                to_decimal(d.open[i]),
                to_decimal(d.high[i]),
                to_decimal(d.low[i]),
                to_decimal(d.volume[i]),
                d.trades[i],
            ),
            None => (close, close, close, Decimal::ZERO, 0),
        };
        Bar {
            ts: Timestamp::from_secs(self.ts[i]),
            open,
            high,
            low,
            close,
            volume,
            trades,
        }
    }

    /// Keeps the bars with `from <= ts <= to` (unix seconds).
    pub fn retain_range(&mut self, from: i64, to: i64) {
        let start = self.ts.partition_point(|&t| t < from);
        let end = self.ts.partition_point(|&t| t <= to);
        let keep = |v: &mut Vec<i64>| {
            v.truncate(end);
            v.drain(..start);
        };
        keep(&mut self.ts);
        keep(&mut self.close);
        if let Some(d) = &mut self.detail {
            for v in [&mut d.open, &mut d.high, &mut d.low, &mut d.volume] {
                keep(v);
            }
            d.trades.truncate(end);
            d.trades.drain(..start);
        }
    }
}

/// An exact decimal as a count of 1e-8 units, if it has at most 8 decimals and fits.
pub fn to_fixed(d: Decimal) -> Option<i64> {
    if d.scale() > SCALE {
        let normalized = d.normalize();
        if normalized.scale() > SCALE {
            return None;
        }
        return to_fixed(normalized);
    }
    let factor = 10i128.pow(SCALE - d.scale());
    i64::try_from(d.mantissa().checked_mul(factor)?).ok()
}

/// A fixed-point value as the shortest exact decimal (`465269000000` -> `4652.69`).
pub fn to_decimal(units: i64) -> Decimal {
    crate::broker::paper::trim(Decimal::new(units, SCALE))
}

/// A decimal as the nearest f64, cheaply when its mantissa is below 2^53 and its scale at most
/// 22 (one correctly rounded division of two exact f64s); for statistics only.
pub fn decimal_to_f64(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    let mantissa = d.mantissa();
    let scale = d.scale() as usize;
    if mantissa.unsigned_abs() < (1u128 << 53) && scale < POW10.len() {
        (mantissa as i64) as f64 / POW10[scale]
    } else {
        d.to_f64().unwrap_or(f64::NAN)
    }
}

/// For statistics and charts only.
#[inline]
pub fn to_f64(units: i64) -> f64 {
    units as f64 * (1.0 / UNIT as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_round_trips_exactly() {
        for text in [
            "4652.69",
            "0.00000001",
            "1",
            "9999999999.99999999",
            "61686",
            "0",
            "12.30",
        ] {
            let d: Decimal = text.parse().unwrap();
            let units = to_fixed(d).unwrap();
            assert_eq!(to_decimal(units), d, "{text}");
        }
        assert_eq!(to_fixed("4652.69".parse().unwrap()), Some(465_269_000_000));
        assert_eq!(to_fixed("0.000000001".parse().unwrap()), None);
        assert_eq!(to_fixed("1.100000000".parse().unwrap()), Some(110_000_000));
        assert_eq!(to_fixed("100000000000".parse().unwrap()), None);
    }
}
