//! Buy the dip: go long when RSI falls below `oversold`, flat again when it rises above
//! `overbought`.

use rust_decimal::Decimal;

use super::indicators::Rsi;
use super::{LineValues, Signal, Strategy, line_value};
use nanotrader_market::Bar;

pub const DEFAULT_PERIOD: usize = 14;
pub const DEFAULT_OVERSOLD: Decimal = Decimal::from_parts(30, 0, 0, false, 0);
pub const DEFAULT_OVERBOUGHT: Decimal = Decimal::from_parts(70, 0, 0, false, 0);

/// A stateful signal: between the thresholds it keeps what it had, so it holds a position
/// from the dip until the rally instead of flapping.
#[derive(Clone, Debug)]
pub struct RsiThreshold {
    rsi: Rsi,
    oversold: Decimal,
    overbought: Decimal,
    signal: Signal,
}

impl RsiThreshold {
    pub fn new(period: usize, oversold: Decimal, overbought: Decimal) -> Self {
        Self {
            rsi: Rsi::new(period),
            oversold,
            overbought,
            signal: Signal::Flat,
        }
    }
}

impl Default for RsiThreshold {
    fn default() -> Self {
        Self::new(DEFAULT_PERIOD, DEFAULT_OVERSOLD, DEFAULT_OVERBOUGHT)
    }
}

impl Strategy for RsiThreshold {
    fn name(&self) -> String {
        format!(
            "rsi-threshold {} {}/{}",
            self.rsi.period(),
            self.oversold,
            self.overbought
        )
    }

    fn line_names(&self) -> Vec<String> {
        vec![format!("RSI {}", self.rsi.period())]
    }

    fn on_bar(&mut self, bar: &Bar) -> Signal {
        self.rsi.push(bar.close);
        if let Some(rsi) = self.rsi.value() {
            self.signal = match self.signal {
                Signal::Flat if rsi < self.oversold => Signal::Long,
                Signal::Long if rsi > self.overbought => Signal::Flat,
                held => held,
            };
        }
        self.signal
    }

    fn line_values(&self) -> LineValues {
        [line_value(self.rsi.value()), None, None]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bar;

    #[test]
    fn enters_below_oversold_and_exits_above_overbought() {
        // Period 1: RSI is 100 after a rise, 0 after a fall, 50 when unchanged.
        let cases: &[(&str, &str, &[&str], &[i8])] = &[
            // Warm-up bar, fall (0 < 30: long), unchanged (50: hold), rise (100 > 70: flat).
            ("30", "70", &["10", "9", "9", "10"], &[0, 1, 1, 0]),
            // Rising from flat stays flat; falling while long stays long.
            ("30", "70", &["10", "11", "10", "9", "12"], &[0, 0, 1, 1, 0]),
            // Thresholds are strict: RSI 50 neither enters below 50 nor exits above 50.
            ("50", "60", &["1", "1", "1"], &[0, 0, 0]),
            ("49", "50", &["2", "1", "1", "1"], &[0, 1, 1, 1]),
        ];
        for &(oversold, overbought, closes, want) in cases {
            let mut strategy = RsiThreshold::new(1, oversold.parse().unwrap(), overbought.parse().unwrap());
            let got: Vec<i8> = closes.iter().map(|c| strategy.on_bar(&test_bar(c)).as_i8()).collect();
            assert_eq!(got, want, "{oversold}/{overbought} on {closes:?}");
        }
    }

    #[test]
    fn defaults_and_lines() {
        let mut strategy = RsiThreshold::default();
        assert_eq!(strategy.name(), "rsi-threshold 14 30/70");
        assert_eq!(strategy.line_names(), ["RSI 14"]);
        for i in 0..15 {
            assert_eq!(strategy.line_values(), [None, None, None]);
            strategy.on_bar(&test_bar(&(100 + i).to_string()));
        }
        assert_eq!(strategy.line_values(), [Some(100.0), None, None]);
    }
}
