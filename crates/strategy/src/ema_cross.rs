//! Long while the fast exponential moving average is above the slow one.

use super::indicators::Ema;
use super::{LineValues, Signal, Strategy, line_value};
use nanotrader_market::Bar;

/// Long iff both EMAs are ready and `ema(fast) > ema(slow)` of the closes.
#[derive(Clone, Debug)]
pub struct EmaCross {
    fast: Ema,
    slow: Ema,
}

impl EmaCross {
    pub fn new(fast: usize, slow: usize) -> Self {
        Self {
            fast: Ema::new(fast),
            slow: Ema::new(slow),
        }
    }
}

impl Strategy for EmaCross {
    fn name(&self) -> String {
        format!("ema-cross {}/{}", self.fast.period(), self.slow.period())
    }

    fn line_names(&self) -> Vec<String> {
        vec![
            format!("EMA {}", self.fast.period()),
            format!("EMA {}", self.slow.period()),
        ]
    }

    fn on_bar(&mut self, bar: &Bar) -> Signal {
        self.fast.push(bar.close);
        self.slow.push(bar.close);
        match (self.fast.value(), self.slow.value()) {
            (Some(fast), Some(slow)) if fast > slow => Signal::Long,
            _ => Signal::Flat,
        }
    }

    fn line_values(&self) -> LineValues {
        [line_value(self.fast.value()), line_value(self.slow.value()), None]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_bar;

    #[test]
    fn long_only_when_fast_is_strictly_above() {
        // EMA(1) is the close; EMA(3) has alpha 0.5 and is seeded with the mean of 3 closes.
        let cases: &[(usize, usize, &[&str], &[i8])] = &[
            // slow: -, -, 2, 3, 2.5, 3.25: flat until ready, then close vs slow.
            (1, 3, &["1", "2", "3", "4", "2", "4"], &[0, 0, 1, 1, 0, 1]),
            // A tie (close == EMA) is not a cross.
            (1, 3, &["2", "2", "2", "2"], &[0, 0, 0, 0]),
            // fast 2 (alpha 2/3): 1.5, 2.5, 1.5, 1.1666..; slow: -, 2, 1.5, 1.25.
            (2, 3, &["1", "2", "3", "1", "1"], &[0, 0, 1, 0, 0]),
        ];
        for &(fast, slow, closes, want) in cases {
            let mut strategy = EmaCross::new(fast, slow);
            let got: Vec<i8> = closes.iter().map(|c| strategy.on_bar(&test_bar(c)).as_i8()).collect();
            assert_eq!(got, want, "{fast}/{slow} on {closes:?}");
        }
    }

    #[test]
    fn reports_its_lines() {
        let mut strategy = EmaCross::new(1, 3);
        assert_eq!(strategy.name(), "ema-cross 1/3");
        assert_eq!(strategy.line_names(), ["EMA 1", "EMA 3"]);
        assert_eq!(strategy.line_values(), [None, None, None]);
        for close in ["1", "2", "6"] {
            strategy.on_bar(&test_bar(close));
        }
        assert_eq!(strategy.line_values(), [Some(6.0), Some(3.0), None]);
    }
}
