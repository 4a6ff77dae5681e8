//! How the paper broker sizes orders and what it charges.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// How much to buy on an entry.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Sizing {
    /// The seed program's rule: `round_half_even(cash / price) * 0.001`.
    Seed,
    /// Spend this fraction of equity, fee included (0 < f <= 1).
    Fraction(Decimal),
    /// Buy this quantity of the base currency, if cash allows.
    Fixed(Decimal),
}

/// Why broker settings cannot be used; each is one line for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBroker {
    #[error("sizing fraction must be in (0, 1], got {0}")]
    Fraction(Decimal),
    #[error("fixed quantity must be positive, got {0}")]
    FixedQuantity(Decimal),
    #[error("starting cash must be positive, got {0}")]
    Cash(Decimal),
    #[error("fee rate must be at least 0 and below 1, got {0}")]
    FeeRate(Decimal),
    #[error("quantity step must be positive, got {0}")]
    QtyStep(Decimal),
}

impl Sizing {
    pub fn validate(&self) -> Result<(), InvalidBroker> {
        match *self {
            Sizing::Seed => Ok(()),
            Sizing::Fraction(f) if f <= Decimal::ZERO || f > Decimal::ONE => Err(InvalidBroker::Fraction(f)),
            Sizing::Fixed(q) if q <= Decimal::ZERO => Err(InvalidBroker::FixedQuantity(q)),
            _ => Ok(()),
        }
    }
}

impl FromStr for Sizing {
    type Err = String;
    /// Accepts `seed`, `fraction:F` or `fixed:QTY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let number = |text: &str| {
            text.trim()
                .parse::<Decimal>()
                .map_err(|_| format!("invalid sizing '{s}': '{text}' is not a number"))
        };
        let sizing = match s.split_once(':') {
            None if s == "seed" => Sizing::Seed,
            Some(("fraction", f)) => Sizing::Fraction(number(f)?),
            Some(("fixed", q)) => Sizing::Fixed(number(q)?),
            _ => {
                return Err(format!("invalid sizing '{s}': expected seed, fraction:F or fixed:QTY"));
            }
        };
        sizing.validate().map_err(|e| e.to_string())?;
        Ok(sizing)
    }
}

impl fmt::Display for Sizing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sizing::Seed => f.write_str("seed"),
            Sizing::Fraction(x) => write!(f, "fraction:{x}"),
            Sizing::Fixed(q) => write!(f, "fixed:{q}"),
        }
    }
}

impl TryFrom<String> for Sizing {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sizing> for String {
    fn from(sizing: Sizing) -> Self {
        sizing.to_string()
    }
}

/// The paper broker's money settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerConfig {
    pub initial_cash: Decimal,
    /// Fee as a fraction of notional, charged on every fill.
    pub fee_rate: Decimal,
    pub sizing: Sizing,
    /// Quantities are floored to a multiple of this (ignored by `Sizing::Seed`).
    pub qty_step: Decimal,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            initial_cash: Decimal::from(100_000),
            // Kraken Pro spot taker fee at the lowest volume tier: 0.40%.
            fee_rate: Decimal::new(4, 3),
            sizing: Sizing::Fraction(Decimal::ONE),
            // One satoshi.
            qty_step: Decimal::new(1, 8),
        }
    }
}

impl BrokerConfig {
    /// The seed program's account: its sizing rule and no fees.
    pub fn seed() -> Self {
        Self {
            fee_rate: Decimal::ZERO,
            sizing: Sizing::Seed,
            ..Self::default()
        }
    }

    /// Checks the settings; the error is one line for the user.
    pub fn validate(&self) -> Result<(), InvalidBroker> {
        if self.initial_cash <= Decimal::ZERO {
            return Err(InvalidBroker::Cash(self.initial_cash));
        }
        if self.fee_rate < Decimal::ZERO || self.fee_rate >= Decimal::ONE {
            return Err(InvalidBroker::FeeRate(self.fee_rate));
        }
        if self.qty_step <= Decimal::ZERO {
            return Err(InvalidBroker::QtyStep(self.qty_step));
        }
        self.sizing.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn sizing_parses_and_prints() {
        for (text, sizing, shown) in [
            ("seed", Sizing::Seed, "seed"),
            ("fraction:0.5", Sizing::Fraction(d("0.5")), "fraction:0.5"),
            ("fraction:1", Sizing::Fraction(Decimal::ONE), "fraction:1"),
            (" fixed: 0.01 ", Sizing::Fixed(d("0.01")), "fixed:0.01"),
        ] {
            assert_eq!(text.parse::<Sizing>(), Ok(sizing), "{text}");
            assert_eq!(sizing.to_string(), shown);
        }
        for (bad, error) in [
            ("", "invalid sizing '': expected seed, fraction:F or fixed:QTY"),
            ("half", "invalid sizing 'half': expected seed, fraction:F or fixed:QTY"),
            (
                "seed:1",
                "invalid sizing 'seed:1': expected seed, fraction:F or fixed:QTY",
            ),
            ("fraction:abc", "invalid sizing 'fraction:abc': 'abc' is not a number"),
            ("fraction:0", "sizing fraction must be in (0, 1], got 0"),
            ("fraction:1.5", "sizing fraction must be in (0, 1], got 1.5"),
            ("fixed:-0.1", "fixed quantity must be positive, got -0.1"),
        ] {
            assert_eq!(bad.parse::<Sizing>(), Err(error.to_string()), "{bad}");
        }
    }

    #[test]
    fn validation_explains_the_problem() {
        let base = BrokerConfig::default;
        let cases = [
            (base(), None),
            (BrokerConfig::seed(), None),
            (
                BrokerConfig {
                    initial_cash: d("-5"),
                    ..base()
                },
                Some("starting cash must be positive, got -5"),
            ),
            (
                BrokerConfig {
                    initial_cash: Decimal::ZERO,
                    ..base()
                },
                Some("starting cash must be positive, got 0"),
            ),
            (
                BrokerConfig {
                    fee_rate: Decimal::ONE,
                    ..base()
                },
                Some("fee rate must be at least 0 and below 1, got 1"),
            ),
            (
                BrokerConfig {
                    fee_rate: d("-0.001"),
                    ..base()
                },
                Some("fee rate must be at least 0 and below 1, got -0.001"),
            ),
            (
                BrokerConfig {
                    qty_step: Decimal::ZERO,
                    ..base()
                },
                Some("quantity step must be positive, got 0"),
            ),
            (
                BrokerConfig {
                    sizing: Sizing::Fraction(d("1.01")),
                    ..base()
                },
                Some("sizing fraction must be in (0, 1], got 1.01"),
            ),
            (
                BrokerConfig {
                    sizing: Sizing::Fixed(Decimal::ZERO),
                    ..base()
                },
                Some("fixed quantity must be positive, got 0"),
            ),
        ];
        for (config, want) in cases {
            assert_eq!(
                config.validate().err().map(|e| e.to_string()).as_deref(),
                want,
                "{config:?}"
            );
        }
    }

    #[test]
    fn serde_round_trips_with_strings() {
        let config = BrokerConfig::default();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"initial_cash":"100000","fee_rate":"0.004","sizing":"fraction:1","qty_step":"0.00000001"}"#
        );
        assert_eq!(serde_json::from_str::<BrokerConfig>(&json).unwrap(), config);
        // Missing fields take their defaults; a bad sizing is refused with its reason.
        let partial: BrokerConfig = toml::from_str("sizing = \"seed\"\nfee_rate = \"0\"").unwrap();
        assert_eq!(partial, BrokerConfig::seed());
        let err = toml::from_str::<BrokerConfig>("sizing = \"fraction:2\"").unwrap_err();
        assert!(err.to_string().contains("sizing fraction must be in (0, 1], got 2"));
    }
}
