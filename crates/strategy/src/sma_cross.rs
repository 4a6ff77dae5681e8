//! The seed's strategy: long while the short simple moving average is above the long one.

use rust_decimal::Decimal;

use super::indicators::Sma;
use super::{LineValues, Signal, Strategy, line_value};
use nanotrader_market::Bar;

/// Long iff both averages are defined and `sma(short) > sma(long)` of the closes.
#[derive(Clone, Debug)]
pub struct SmaCross {
    short: Sma,
    long: Sma,
}

impl SmaCross {
    pub fn new(short: usize, long: usize) -> Self {
        Self {
            short: Sma::new(short),
            long: Sma::new(long),
        }
    }

    fn short_above_long(&self) -> bool {
        if !(self.short.is_ready() && self.long.is_ready()) {
            return false;
        }
        // sum_s / s > sum_l / l, cross-multiplied so that the comparison stays exact (the
        // means themselves are rounded divisions).
        let lhs = Decimal::from(self.long.period()).checked_mul(self.short.sum());
        let rhs = Decimal::from(self.short.period()).checked_mul(self.long.sum());
        match (lhs, rhs) {
            (Some(lhs), Some(rhs)) => lhs > rhs,
            // Only for sums near Decimal::MAX: compare the rounded means rather than panic.
            _ => self.short.value() > self.long.value(),
        }
    }
}

impl Strategy for SmaCross {
    fn name(&self) -> String {
        format!("sma-cross {}/{}", self.short.period(), self.long.period())
    }

    fn line_names(&self) -> Vec<String> {
        vec![
            format!("SMA {}", self.short.period()),
            format!("SMA {}", self.long.period()),
        ]
    }

    fn on_bar(&mut self, bar: &Bar) -> Signal {
        self.short.push(bar.close);
        self.long.push(bar.close);
        if self.short_above_long() {
            Signal::Long
        } else {
            Signal::Flat
        }
    }

    fn line_values(&self) -> LineValues {
        [line_value(self.short.value()), line_value(self.long.value()), None]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bar;
    use nanotrader_market::{Side, Timestamp};

    fn signals(strategy: &mut impl Strategy, closes: &[&str]) -> Vec<i8> {
        closes.iter().map(|c| strategy.on_bar(&test_bar(c)).as_i8()).collect()
    }

    #[test]
    fn long_only_when_short_mean_is_strictly_above() {
        let cases: &[(usize, usize, &[&str], &[i8])] = &[
            // Flat until the long average exists, even though the short one is above.
            (1, 3, &["1", "2", "3", "2", "1"], &[0, 0, 1, 0, 0]),
            // Equal means are not a cross.
            (1, 2, &["5", "5", "6", "6"], &[0, 0, 1, 0]),
            // 1/3 vs 2/6: an exact tie of two inexact means.
            (3, 6, &["0", "0", "1", "0", "0", "1"], &[0, 0, 0, 0, 0, 0]),
            (2, 3, &["3", "2", "1", "2", "3", "1"], &[0, 0, 0, 0, 1, 0]),
        ];
        for &(short, long, closes, want) in cases {
            let mut strategy = SmaCross::new(short, long);
            assert_eq!(signals(&mut strategy, closes), want, "{short}/{long} on {closes:?}");
        }
    }

    #[test]
    fn reports_its_lines() {
        let mut strategy = SmaCross::new(2, 3);
        assert_eq!(strategy.name(), "sma-cross 2/3");
        assert_eq!(strategy.line_names(), ["SMA 2", "SMA 3"]);
        assert_eq!(strategy.line_values(), [None, None, None]);
        signals(&mut strategy, &["1", "2"]);
        assert_eq!(strategy.line_values(), [Some(1.5), None, None]);
        signals(&mut strategy, &["6"]);
        assert_eq!(strategy.line_values(), [Some(4.0), Some(3.0), None]);
    }

    /// The seed's rules end to end: the signal's changes from row index 21 on (the seed only
    /// decided once it held 22 rows) are exactly the reference trades, minus the seed's no-op
    /// sells of an empty position.
    #[test]
    fn reproduces_the_seed_trades_of_2017_12_17() {
        let bars = include_str!("../../../tests/data/btcusd_1m_20171217.csv");
        let reference = include_str!("../../../tests/data/seed_btcusd_1m_20171217_trades.csv");
        let want: Vec<(Timestamp, Side)> = reference
            .lines()
            .skip(1)
            .map(|line| {
                let cols: Vec<&str> = line.split(',').collect();
                (Timestamp::from_secs(cols[0].parse().unwrap()), cols[1].parse().unwrap())
            })
            .collect();

        let mut strategy = SmaCross::new(10, 20);
        let (mut prev, mut holding, mut got) = (Signal::Flat, false, vec![]);
        for (i, line) in bars.lines().skip(1).enumerate() {
            let cols: Vec<&str> = line.split(',').collect();
            let mut bar = test_bar(cols[4]);
            bar.ts = Timestamp::from_secs(cols[0].parse().unwrap());
            let signal = strategy.on_bar(&bar);
            let changed = signal != prev;
            prev = signal;
            if i < 21 || !changed {
                continue;
            }
            match signal {
                Signal::Long => {
                    holding = true;
                    got.push((bar.ts, Side::Buy));
                }
                Signal::Flat if holding => {
                    holding = false;
                    got.push((bar.ts, Side::Sell));
                }
                Signal::Flat => {}
            }
        }
        assert_eq!(got.len(), 76);
        assert_eq!(got, want);
    }
}
