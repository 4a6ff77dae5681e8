//! Strategies turn closed bars into a target signal; the engine trades the signal's changes.
//!
//! It owns the indicators and the signal rules. It knows the market's types and nothing else:
//! not how orders are placed, nor where anything is stored.

mod ema_cross;
mod exits;
mod indicators;
mod lang;
mod rsi_threshold;
mod sma_cross;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

pub use ema_cross::EmaCross;
pub use exits::{Distance, Exits, WithExits};
pub use indicators::{Ema, Rsi, STATE_DP, Sma};
pub use lang::{BUILTIN_FILES, FileError, FileSpec, FileStrategy, FileStrategyConfig, Program, StrategyFile};
use nanotrader_market::Bar;
pub use rsi_threshold::RsiThreshold;
pub use sma_cross::SmaCross;

/// Most indicator lines a strategy reports per bar (for the logs and the dashboard).
pub const MAX_LINES: usize = 3;

/// What a strategy wants to hold after a bar: the seed's `signal` column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Signal {
    /// 0: hold nothing.
    #[default]
    Flat,
    /// 1: hold a long position.
    Long,
}

impl Signal {
    pub fn as_i8(self) -> i8 {
        match self {
            Signal::Flat => 0,
            Signal::Long => 1,
        }
    }
}

/// The one rule that turns a strategy's signals into orders, for the engine and the backtest's
/// column kernel alike: trade when the signal changes, from bar `decide_from_bar` (1-based) on.
/// A change before that bar moves the signal without a trade (the seed's warm-up).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DecisionRule {
    pub decide_from_bar: u64,
}

impl DecisionRule {
    /// The change of holding to trade after bar number `bar` (1-based) moved the signal from
    /// `before` to `after`: +1 enter, -1 exit; `None` for no trade.
    #[inline]
    pub fn order(self, bar: u64, before: Signal, after: Signal) -> Option<i8> {
        let change = after.as_i8() - before.as_i8();
        (change != 0 && bar >= self.decide_from_bar).then_some(change)
    }
}

/// The value of each indicator line after a bar, `None` while it is still warming up.
/// Display-only (f64); decisions use the exact arithmetic inside the strategy.
pub type LineValues = [Option<f64>; MAX_LINES];

pub trait Strategy: Send {
    /// Short human name, e.g. `sma-cross 10/20`.
    fn name(&self) -> String;
    /// Names of the indicator lines, in the order of `line_values` (at most `MAX_LINES`).
    fn line_names(&self) -> Vec<String>;
    /// Feeds one closed bar in O(1) and returns the target signal after it.
    fn on_bar(&mut self, bar: &Bar) -> Signal;
    /// The indicator lines after the last bar.
    fn line_values(&self) -> LineValues;
    /// The price of the fill the last bar's signal change makes when it is not the bar's close
    /// (a stop's price: `WithExits`).
    fn fill_price(&self) -> Option<Decimal> {
        None
    }
    /// The exits of the trade the strategy is in (its stop and target prices, fixed at the
    /// entry), for a broker that places them at the exchange (`WithExits`).
    fn exit_plan(&self) -> Option<nanotrader_market::ExitPlan> {
        None
    }
}

/// Largest indicator window a configuration may ask for (about two years of 1-minute bars).
pub const MAX_WINDOW: usize = 1_000_000;

/// Which strategy to run and its parameters, as written in config files and on the command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StrategyConfig {
    SmaCross {
        short: usize,
        long: usize,
    },
    EmaCross {
        fast: usize,
        slow: usize,
    },
    RsiThreshold {
        period: usize,
        oversold: Decimal,
        overbought: Decimal,
    },
    /// A strategy file (`--strategy-file`), stored as its text and parameters.
    File(FileStrategyConfig),
    /// Any of the above with stops and exits (`WithExits`).
    WithExits {
        strategy: Box<StrategyConfig>,
        exits: Exits,
        /// The first bar that may trade (the run's `decide_from_bar`): entries wait for it.
        decide_from_bar: u64,
    },
}

impl Default for StrategyConfig {
    /// The seed's strategy.
    fn default() -> Self {
        StrategyConfig::SmaCross { short: 10, long: 20 }
    }
}

/// Why a strategy's parameters cannot be used; each is one line for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStrategy {
    #[error("{0}")]
    Exits(String),
    #[error("{name} window must be at least 1")]
    EmptyWindow { name: &'static str },
    #[error("{name} window must be at most {MAX_WINDOW}, got {window}")]
    WindowTooLong { name: &'static str, window: usize },
    #[error("{quick} window ({q}) must be less than {slow} window ({s})")]
    WindowsOutOfOrder {
        quick: &'static str,
        q: usize,
        slow: &'static str,
        s: usize,
    },
    #[error(
        "RSI thresholds must satisfy 0 < oversold < overbought < 100, got oversold {oversold} and overbought {overbought}"
    )]
    RsiThresholds { oversold: Decimal, overbought: Decimal },
}

impl StrategyConfig {
    /// Checks the parameters; the error is one line for the user.
    pub fn validate(&self) -> Result<(), InvalidStrategy> {
        match self {
            StrategyConfig::SmaCross { short, long } => {
                check_window("short", *short)?;
                check_window("long", *long)?;
                check_order("short", *short, "long", *long)
            }
            StrategyConfig::EmaCross { fast, slow } => {
                check_window("fast", *fast)?;
                check_window("slow", *slow)?;
                check_order("fast", *fast, "slow", *slow)
            }
            StrategyConfig::RsiThreshold {
                period,
                oversold,
                overbought,
            } => {
                check_window("RSI", *period)?;
                if Decimal::ZERO < *oversold && oversold < overbought && *overbought < Decimal::ONE_HUNDRED {
                    Ok(())
                } else {
                    Err(InvalidStrategy::RsiThresholds {
                        oversold: *oversold,
                        overbought: *overbought,
                    })
                }
            }
            // Checked when it was compiled.
            StrategyConfig::File(_) => Ok(()),
            StrategyConfig::WithExits { strategy, exits, .. } => {
                strategy.validate()?;
                exits.validate().map_err(InvalidStrategy::Exits)
            }
        }
    }

    /// A fresh strategy for a valid configuration.
    pub fn build(&self) -> Result<Box<dyn Strategy>, InvalidStrategy> {
        self.validate()?;
        Ok(match self {
            StrategyConfig::SmaCross { short, long } => Box::new(SmaCross::new(*short, *long)),
            StrategyConfig::EmaCross { fast, slow } => Box::new(EmaCross::new(*fast, *slow)),
            StrategyConfig::RsiThreshold {
                period,
                oversold,
                overbought,
            } => Box::new(RsiThreshold::new(*period, *oversold, *overbought)),
            StrategyConfig::File(file) => Box::new(file.build()),
            StrategyConfig::WithExits {
                strategy,
                exits,
                decide_from_bar,
            } => Box::new(WithExits::new(strategy.build()?, exits.clone(), *decide_from_bar)),
        })
    }

    /// The same short name the built strategy reports, e.g. `sma-cross 10/20`.
    pub fn describe(&self) -> String {
        match self {
            StrategyConfig::SmaCross { short, long } => format!("sma-cross {short}/{long}"),
            StrategyConfig::EmaCross { fast, slow } => format!("ema-cross {fast}/{slow}"),
            StrategyConfig::RsiThreshold {
                period,
                oversold,
                overbought,
            } => format!("rsi-threshold {period} {oversold}/{overbought}"),
            StrategyConfig::File(file) => file.describe(),
            StrategyConfig::WithExits { strategy, exits, .. } => {
                format!("{} {}", strategy.describe(), exits.describe())
            }
        }
    }
}

fn check_window(name: &'static str, window: usize) -> Result<(), InvalidStrategy> {
    if window == 0 {
        Err(InvalidStrategy::EmptyWindow { name })
    } else if window > MAX_WINDOW {
        Err(InvalidStrategy::WindowTooLong { name, window })
    } else {
        Ok(())
    }
}

/// A crossover needs its quick line strictly shorter than its slow one.
fn check_order(quick: &'static str, q: usize, slow: &'static str, s: usize) -> Result<(), InvalidStrategy> {
    if q < s {
        Ok(())
    } else {
        Err(InvalidStrategy::WindowsOutOfOrder { quick, q, slow, s })
    }
}

/// An indicator value for display.
fn line_value(value: Option<Decimal>) -> Option<f64> {
    value.and_then(|v| v.to_f64())
}

/// A bar whose only meaningful field is its close, for strategy tests.
#[cfg(test)]
fn test_bar(close: &str) -> Bar {
    let close = close.parse().unwrap();
    Bar {
        ts: nanotrader_market::Timestamp::default(),
        open: close,
        high: close,
        low: close,
        close,
        volume: Decimal::ONE,
        trades: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sma(short: usize, long: usize) -> StrategyConfig {
        StrategyConfig::SmaCross { short, long }
    }

    fn rsi(period: usize, oversold: &str, overbought: &str) -> StrategyConfig {
        StrategyConfig::RsiThreshold {
            period,
            oversold: oversold.parse().unwrap(),
            overbought: overbought.parse().unwrap(),
        }
    }

    #[test]
    fn validation_explains_the_problem() {
        let ema = |fast, slow| StrategyConfig::EmaCross { fast, slow };
        let cases = [
            (sma(10, 20), None),
            (sma(1, 2), None),
            (ema(12, 26), None),
            (rsi(14, "30", "70"), None),
            (rsi(1, "0.5", "99.5"), None),
            (
                sma(20, 10),
                Some("short window (20) must be less than long window (10)"),
            ),
            (sma(5, 5), Some("short window (5) must be less than long window (5)")),
            (sma(0, 20), Some("short window must be at least 1")),
            (
                sma(10, MAX_WINDOW + 1),
                Some("long window must be at most 1000000, got 1000001"),
            ),
            (ema(26, 12), Some("fast window (26) must be less than slow window (12)")),
            (ema(0, 0), Some("fast window must be at least 1")),
            (rsi(0, "30", "70"), Some("RSI window must be at least 1")),
        ];
        for (config, want) in cases {
            assert_eq!(
                config.validate().err().map(|e| e.to_string()).as_deref(),
                want,
                "{config:?}"
            );
        }
        for (oversold, overbought) in [("0", "70"), ("70", "30"), ("50", "50"), ("30", "100"), ("-1", "70")] {
            let err = rsi(14, oversold, overbought).validate().unwrap_err().to_string();
            assert!(
                err.starts_with("RSI thresholds must satisfy 0 < oversold < overbought < 100"),
                "{err}"
            );
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn builds_what_it_describes() {
        let cases = [
            (StrategyConfig::default(), "sma-cross 10/20", vec!["SMA 10", "SMA 20"]),
            (
                StrategyConfig::EmaCross { fast: 12, slow: 26 },
                "ema-cross 12/26",
                vec!["EMA 12", "EMA 26"],
            ),
            (rsi(14, "30", "70"), "rsi-threshold 14 30/70", vec!["RSI 14"]),
            (rsi(7, "25.5", "80"), "rsi-threshold 7 25.5/80", vec!["RSI 7"]),
        ];
        for (config, name, lines) in cases {
            assert_eq!(config.describe(), name);
            let strategy = config.build().unwrap();
            assert_eq!(strategy.name(), name);
            assert_eq!(strategy.line_names(), lines);
        }
        assert!(sma(3, 2).build().is_err());
    }

    #[test]
    fn serde_uses_a_kind_tag_and_decimal_strings() {
        let cases = [
            (sma(10, 20), r#"{"kind":"sma-cross","short":10,"long":20}"#),
            (
                StrategyConfig::EmaCross { fast: 12, slow: 26 },
                r#"{"kind":"ema-cross","fast":12,"slow":26}"#,
            ),
            (
                rsi(14, "30", "70.5"),
                r#"{"kind":"rsi-threshold","period":14,"oversold":"30","overbought":"70.5"}"#,
            ),
        ];
        for (config, json) in cases {
            assert_eq!(serde_json::to_string(&config).unwrap(), json);
            assert_eq!(serde_json::from_str::<StrategyConfig>(json).unwrap(), config);
        }
        let toml_text = "kind = \"ema-cross\"\nfast = 5\nslow = 8\n";
        assert_eq!(
            toml::from_str::<StrategyConfig>(toml_text).unwrap(),
            StrategyConfig::EmaCross { fast: 5, slow: 8 }
        );
        assert!(serde_json::from_str::<StrategyConfig>(r#"{"kind":"macd"}"#).is_err());
    }
}

#[cfg(test)]
mod decision_tests {
    use super::*;

    #[test]
    fn trades_a_change_from_the_deciding_bar_on() {
        let rule = DecisionRule { decide_from_bar: 22 };
        assert_eq!(
            rule.order(21, Signal::Flat, Signal::Long),
            None,
            "before the deciding bar"
        );
        assert_eq!(rule.order(22, Signal::Flat, Signal::Long), Some(1));
        assert_eq!(rule.order(30, Signal::Long, Signal::Flat), Some(-1));
        assert_eq!(rule.order(30, Signal::Long, Signal::Long), None, "no change");
    }
}
