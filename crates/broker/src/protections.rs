//! Protections: rails that halt new entries when the account has lost too much.
//!
//! One rule for every place a decision is taken: the engine (`run`, any broker) and the
//! backtester check the account's equity at each closed bar's close, before that bar's order,
//! so a backtest shows exactly what the rails would have done live. A halt refuses entries only:
//! an open position is still closed by the strategy's exit or its stops.
//!
//! - **Max drawdown** (`--max-drawdown 20%`): when equity falls to `peak x (1 - 20 %)` or below
//!   (peak: the highest equity at any close so far), new entries are halted for the rest of the
//!   run, or until a person's Resume (which counts the peak afresh from the equity then).
//! - **Daily loss** (`--max-daily-loss-usd 500`, issue 18's rail): when equity is that much
//!   below the day's starting equity (the equity at the last close before the UTC day began; the
//!   starting cash on the first day), new entries are halted until the next UTC day or a Resume.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use nanotrader_market::Timestamp;

/// Which rails are set; none by default (a run's results do not change unless one is given).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Protections {
    /// The drawdown from the peak equity, as a fraction (0.2 is 20 %), that halts new entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_drawdown: Option<Decimal>,
    /// The loss in one UTC day, in the quote currency, that halts new entries until the next.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_daily_loss: Option<Decimal>,
}

impl Protections {
    pub fn is_empty(&self) -> bool {
        self.max_drawdown.is_none() && self.max_daily_loss.is_none()
    }

    /// Checks the settings; the error is one line for the user.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(dd) = self.max_drawdown
            && (dd <= Decimal::ZERO || dd >= Decimal::ONE)
        {
            return Err(format!(
                "--max-drawdown must be above 0 % and below 100 %, got {}",
                percent(dd)
            ));
        }
        if let Some(loss) = self.max_daily_loss
            && loss <= Decimal::ZERO
        {
            return Err(format!("--max-daily-loss-usd must be positive, got {loss}"));
        }
        Ok(())
    }

    /// The rule in words, for a summary or a dashboard: `max drawdown 20 %, daily loss 500`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(dd) = self.max_drawdown {
            parts.push(format!("max drawdown {} %", percent(dd)));
        }
        if let Some(loss) = self.max_daily_loss {
            parts.push(format!("daily loss {loss}"));
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// A fraction as a percentage without trailing zeros: 0.2 -> `20`, 0.125 -> `12.5`.
fn percent(fraction: Decimal) -> Decimal {
    (fraction * Decimal::ONE_HUNDRED).normalize()
}

/// Which rail halted entries.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HaltRule {
    MaxDrawdown,
    DailyLoss,
}

impl fmt::Display for HaltRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HaltRule::MaxDrawdown => "max drawdown",
            HaltRule::DailyLoss => "daily loss",
        })
    }
}

/// A halt as it began: at which close, by which rail, with the equity then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Halt {
    /// The close's time (RFC 3339 in JSON).
    #[serde(serialize_with = "rfc3339")]
    pub ts: Timestamp,
    pub rule: HaltRule,
    /// Equity at that close (exact).
    pub equity: Decimal,
    /// The reference it fell from: the peak equity, or the day's starting equity.
    pub from: Decimal,
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lost = self.from - self.equity;
        match self.rule {
            HaltRule::MaxDrawdown => write!(
                f,
                "max drawdown: equity {} is {} % below its peak of {}: new entries halted",
                self.equity.round_dp(2),
                (lost / self.from * Decimal::ONE_HUNDRED).round_dp(2).normalize(),
                self.from.round_dp(2)
            ),
            HaltRule::DailyLoss => write!(
                f,
                "daily loss: equity {} is {} below the day's start of {}: new entries halted until the next UTC day",
                self.equity.round_dp(2),
                lost.round_dp(2),
                self.from.round_dp(2)
            ),
        }
    }
}

fn rfc3339<S: serde::Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&ts.to_rfc3339())
}

/// The rails' state over a run, fed every closed bar's equity (`observe`), asked before each
/// entry (`halts_entries`). Generic over the books' number type, so the backtester's fast books
/// and the engine's `Decimal` ones take the same decisions.
#[derive(Clone, Debug)]
pub struct Guard<A: Amount = Decimal> {
    rules: Protections,
    /// `1 - max_drawdown`, and the equity at or below which the drawdown halts (`peak * keep`).
    keep: Option<A>,
    floor: Option<A>,
    daily_limit: Option<A>,
    peak: A,
    last_equity: A,
    /// The UTC day (days since the epoch) of the last close seen, and its starting equity.
    day: Option<i64>,
    day_start: A,
    drawdown_halted: bool,
    halted_day: Option<i64>,
    halts: Vec<Halt>,
    refused_entries: u64,
}

impl<A: Amount> Guard<A> {
    /// `None` when no rail is set. `equity` is the account's before the first bar.
    pub fn new(rules: &Protections, equity: A) -> Option<Self> {
        if rules.is_empty() {
            return None;
        }
        let keep = rules.max_drawdown.map(|dd| A::from_decimal(Decimal::ONE - dd));
        let mut guard = Self {
            rules: rules.clone(),
            keep,
            floor: None,
            daily_limit: rules.max_daily_loss.map(A::from_decimal),
            peak: equity,
            last_equity: equity,
            day: None,
            day_start: equity,
            drawdown_halted: false,
            halted_day: None,
            halts: Vec::new(),
            refused_entries: 0,
        };
        guard.floor = guard.floor_of(equity);
        Some(guard)
    }

    pub fn rules(&self) -> &Protections {
        &self.rules
    }

    fn floor_of(&self, peak: A) -> Option<A> {
        self.keep.map(|keep| peak.saturating_mul(keep))
    }

    /// The account's equity at a closed bar's close (`ts`), before that bar's order. The halt it
    /// started, if it started one.
    pub fn observe(&mut self, ts: Timestamp, equity: A) -> Option<&Halt> {
        let day = ts.secs().div_euclid(86_400);
        if self.day != Some(day) {
            // The equity the day starts with: the last close's before it.
            self.day_start = self.last_equity;
            self.day = Some(day);
        }
        self.last_equity = equity;
        if equity > self.peak {
            self.peak = equity;
            self.floor = self.floor_of(equity);
        }
        let mut started = None;
        if !self.drawdown_halted
            && let Some(floor) = self.floor
            && equity <= floor
        {
            self.drawdown_halted = true;
            started = Some((HaltRule::MaxDrawdown, self.peak));
        }
        if self.halted_day != Some(day)
            && let Some(limit) = self.daily_limit
            && self.day_start.saturating_sub(equity) >= limit
        {
            self.halted_day = Some(day);
            started.get_or_insert((HaltRule::DailyLoss, self.day_start));
        }
        let (rule, from) = started?;
        self.halts.push(Halt {
            ts,
            rule,
            equity: equity.to_decimal(),
            from: from.to_decimal(),
        });
        self.halts.last()
    }

    /// Whether an entry now must be refused (the last close seen decides).
    pub fn halts_entries(&self) -> bool {
        self.drawdown_halted || (self.halted_day.is_some() && self.halted_day == self.day)
    }

    /// Counts an entry the rails refused.
    pub fn refuse_entry(&mut self) {
        self.refused_entries += 1;
    }

    /// Why entries are halted now, in one line; `None` when they are not.
    pub fn reason(&self) -> Option<String> {
        if !self.halts_entries() {
            return None;
        }
        let rule = if self.drawdown_halted {
            HaltRule::MaxDrawdown
        } else {
            HaltRule::DailyLoss
        };
        self.halts
            .iter()
            .rev()
            .find(|h| h.rule == rule)
            .map(ToString::to_string)
    }

    /// A person's Resume: entries are allowed again, the peak and the day's start counted afresh
    /// from the last equity. Whether a halt was lifted.
    pub fn resume(&mut self) -> bool {
        let lifted = self.halts_entries();
        self.drawdown_halted = false;
        self.halted_day = None;
        self.peak = self.last_equity;
        self.floor = self.floor_of(self.last_equity);
        self.day_start = self.last_equity;
        lifted
    }

    /// Every halt so far, in order.
    pub fn halts(&self) -> &[Halt] {
        &self.halts
    }

    pub fn refused_entries(&self) -> u64 {
        self.refused_entries
    }

    /// What the rails did, for a report.
    pub fn report(&self) -> ProtectionReport {
        ProtectionReport {
            rules: self.rules.clone(),
            halts: self.halts.clone(),
            refused_entries: self.refused_entries,
            halted_at_end: self.halts_entries(),
        }
    }
}

/// What the rails did over a run or a backtest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtectionReport {
    pub rules: Protections,
    pub halts: Vec<Halt>,
    /// Entries the strategy signalled that the rails refused.
    pub refused_entries: u64,
    pub halted_at_end: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn no_rule_no_guard() {
        assert!(Guard::<Decimal>::new(&Protections::default(), d("100")).is_none());
    }

    #[test]
    fn a_drawdown_from_the_peak_halts_entries_until_a_resume() {
        let rules = Protections {
            max_drawdown: Some(d("0.1")),
            ..Protections::default()
        };
        let mut guard = Guard::new(&rules, d("1000")).unwrap();
        assert!(guard.observe(at(60), d("1100")).is_none());
        // 10 % below the peak of 1100 is 990: 991 is not there yet.
        assert!(guard.observe(at(120), d("991")).is_none());
        assert!(!guard.halts_entries());
        let halt = guard.observe(at(180), d("990")).cloned().unwrap();
        assert_eq!(halt.rule, HaltRule::MaxDrawdown);
        assert_eq!(halt.from, d("1100"));
        assert!(guard.halts_entries());
        // Recovering does not lift it; it is said once.
        assert!(guard.observe(at(240), d("1200")).is_none());
        assert!(guard.observe(at(300), d("900")).is_none());
        assert!(guard.halts_entries());
        assert!(
            guard
                .reason()
                .unwrap()
                .starts_with("max drawdown: equity 990 is 10 % below its peak of 1100")
        );
        assert!(guard.resume());
        assert!(!guard.halts_entries());
        // The peak counts afresh from 900.
        assert!(guard.observe(at(360), d("811")).is_none());
        assert!(guard.observe(at(420), d("810")).is_some());
    }

    #[test]
    fn a_daily_loss_halts_entries_until_the_next_utc_day() {
        let rules = Protections {
            max_daily_loss: Some(d("50")),
            ..Protections::default()
        };
        let day = 86_400;
        let mut guard = Guard::new(&rules, d("1000")).unwrap();
        // The first day starts from the starting equity.
        guard.observe(at(day + 60), d("1020"));
        assert!(guard.observe(at(day + 120), d("951")).is_none());
        let halt = guard.observe(at(day + 180), d("950")).cloned().unwrap();
        assert_eq!((halt.rule, halt.from), (HaltRule::DailyLoss, d("1000")));
        assert!(guard.halts_entries());
        // The next day starts from the last close before it, 940: not halted until 890.
        guard.observe(at(day + 3600), d("940"));
        assert!(guard.observe(at(2 * day), d("900")).is_none());
        assert!(!guard.halts_entries());
        assert!(guard.observe(at(2 * day + 60), d("890")).is_some());
        assert!(guard.halts_entries());
        assert_eq!(guard.halts().len(), 2);
    }

    #[test]
    fn the_fast_books_decide_as_the_decimal_ones() {
        use crate::FastDecimal;
        let rules = Protections {
            max_drawdown: Some(d("0.035")),
            max_daily_loss: Some(d("2.5")),
        };
        let mut exact = Guard::new(&rules, d("100")).unwrap();
        let mut fast = Guard::new(&rules, FastDecimal::from_decimal(d("100"))).unwrap();
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
        let mut equity = d("100");
        for i in 0..2_000i64 {
            // A seeded random walk, hourly, with 8-decimal steps.
            let step = Decimal::new(rng.random_range(-50_000_000..=50_000_000), 8);
            equity += step;
            let ts = at(i * 3_600);
            let a = exact.observe(ts, equity).cloned();
            let b = fast.observe(ts, FastDecimal::from_decimal(equity)).cloned();
            assert_eq!(a, b, "bar {i}");
            assert_eq!(exact.halts_entries(), fast.halts_entries(), "bar {i}");
            if i % 500 == 499 {
                exact.resume();
                fast.resume();
            }
        }
        let rules_seen = |rule| exact.halts().iter().filter(|h| h.rule == rule).count();
        assert!(
            rules_seen(HaltRule::MaxDrawdown) > 0 && rules_seen(HaltRule::DailyLoss) > 0,
            "the series exercises both rails: {:?}",
            exact.halts()
        );
    }

    #[test]
    fn settings_are_checked_and_described() {
        let bad = Protections {
            max_drawdown: Some(d("1")),
            ..Protections::default()
        };
        assert_eq!(
            bad.validate().unwrap_err(),
            "--max-drawdown must be above 0 % and below 100 %, got 100"
        );
        let rules = Protections {
            max_drawdown: Some(d("0.125")),
            max_daily_loss: Some(d("500")),
        };
        assert!(rules.validate().is_ok());
        assert_eq!(rules.describe().unwrap(), "max drawdown 12.5 %, daily loss 500");
        assert_eq!(serde_json::to_string(&Protections::default()).unwrap(), "{}");
    }
}
