//! Bars held column by column in fixed point, the layout the backtest kernels scan: a close is
//! an `i64` count of 1e-8 units, so sums and comparisons are exact integer arithmetic.

use std::ops::Deref;
use std::sync::Arc;

use bytemuck::Pod;
use memmap2::Mmap;
use rust_decimal::Decimal;

use nanotrader_market::{Bar, Interval, Timestamp};

/// Decimal places of every fixed-point price and volume (the store uses the same units).
pub const SCALE: u32 = 8;
/// 10^SCALE.
pub const UNIT: i64 = 100_000_000;
/// The largest whole part a fixed-point value may have: 10 digits, so that the value times
/// 10^8 stays well inside an `i64`.
pub const MAX_WHOLE_DIGITS: usize = 10;

/// A column of fixed-width values: owned, or read in place from a memory-mapped cache file.
#[derive(Clone)]
pub struct Column<T: Pod>(Storage<T>);

#[derive(Clone)]
enum Storage<T> {
    Owned(Vec<T>),
    Mapped { file: Arc<Mmap>, start: usize, len: usize },
}

impl<T: Pod> Column<T> {
    /// `len` values at byte `start` of a mapped file; `None` when they lie outside it or are
    /// not aligned for `T`.
    pub fn mapped(file: &Arc<Mmap>, start: usize, len: usize) -> Option<Self> {
        let end = start.checked_add(len.checked_mul(std::mem::size_of::<T>())?)?;
        bytemuck::try_cast_slice::<u8, T>(file.get(start..end)?).ok()?;
        Some(Self(Storage::Mapped {
            file: Arc::clone(file),
            start,
            len,
        }))
    }

    /// The values to change; a mapped column is copied out first.
    pub fn to_mut(&mut self) -> &mut Vec<T> {
        if let Storage::Mapped { .. } = self.0 {
            self.0 = Storage::Owned(self.to_vec());
        }
        match &mut self.0 {
            Storage::Owned(values) => values,
            Storage::Mapped { .. } => unreachable!("copied out above"),
        }
    }
}

impl<T: Pod> Deref for Column<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match &self.0 {
            Storage::Owned(values) => values,
            Storage::Mapped { file, start, len } => {
                bytemuck::cast_slice(&file[*start..*start + *len * std::mem::size_of::<T>()])
            }
        }
    }
}

impl<T: Pod> Default for Column<T> {
    fn default() -> Self {
        Self(Storage::Owned(Vec::new()))
    }
}

impl<T: Pod> From<Vec<T>> for Column<T> {
    fn from(values: Vec<T>) -> Self {
        Self(Storage::Owned(values))
    }
}

impl<T: Pod> FromIterator<T> for Column<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        Self(Storage::Owned(iter.into_iter().collect()))
    }
}

impl<T: Pod + PartialEq> PartialEq for Column<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Pod + Eq> Eq for Column<T> {}

impl<T: Pod + PartialEq, const N: usize> PartialEq<[T; N]> for Column<T> {
    fn eq(&self, other: &[T; N]) -> bool {
        **self == *other
    }
}

impl<T: Pod + PartialEq> PartialEq<Vec<T>> for Column<T> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

impl<T: Pod + std::fmt::Debug> std::fmt::Debug for Column<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The fields a strategy never reads; loaded only for reports and per-bar strategies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BarDetail {
    pub open: Column<i64>,
    pub high: Column<i64>,
    pub low: Column<i64>,
    pub volume: Column<i64>,
    pub trades: Column<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BarColumns {
    pub interval: Interval,
    /// Bar times as the data wrote them (usually the open), unix milliseconds, strictly ascending.
    pub ts: Column<i64>,
    pub close: Column<i64>,
    pub detail: Option<BarDetail>,
}

impl BarColumns {
    pub fn new(interval: Interval, detail: bool) -> Self {
        Self {
            interval,
            ts: Column::default(),
            close: Column::default(),
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
            d.open.to_mut().push(open);
            d.high.to_mut().push(high);
            d.low.to_mut().push(low);
            d.volume.to_mut().push(volume);
            d.trades.to_mut().push(bar.trades);
        }
        self.ts.to_mut().push(bar.ts.millis());
        self.close.to_mut().push(close);
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
            ts: Timestamp::from_millis(self.ts[i]),
            open,
            high,
            low,
            close,
            volume,
            trades,
        }
    }

    /// A copy of the bars at positions `range` (a walk-forward's folds).
    pub fn slice(&self, range: std::ops::Range<usize>) -> BarColumns {
        let part = |column: &Column<i64>| -> Column<i64> { column[range.clone()].to_vec().into() };
        BarColumns {
            interval: self.interval,
            ts: part(&self.ts),
            close: part(&self.close),
            detail: self.detail.as_ref().map(|d| BarDetail {
                open: part(&d.open),
                high: part(&d.high),
                low: part(&d.low),
                volume: part(&d.volume),
                trades: d.trades[range.clone()].to_vec().into(),
            }),
        }
    }

    /// Keeps the bars with `from <= ts <= to` (unix milliseconds).
    pub fn retain_range(&mut self, from: i64, to: i64) {
        let start = self.ts.partition_point(|&t| t < from);
        let end = self.ts.partition_point(|&t| t <= to);
        fn keep<T: Pod>(column: &mut Column<T>, range: std::ops::Range<usize>) {
            if range.len() != column.len() {
                *column = column[range].to_vec().into();
            }
        }
        keep(&mut self.ts, start..end);
        keep(&mut self.close, start..end);
        if let Some(d) = &mut self.detail {
            for column in [&mut d.open, &mut d.high, &mut d.low, &mut d.volume] {
                keep(column, start..end);
            }
            keep(&mut d.trades, start..end);
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
    to_amount(units)
}

/// `to_decimal` in any of the books' number types.
pub fn to_amount<A: nanotrader_broker::Amount>(units: i64) -> A {
    A::new(units, SCALE).trim()
}

pub use nanotrader_broker::decimal_to_f64;

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
