//! Stops and exits around any strategy: stop-loss, take-profit and trailing stop (a percentage
//! of the entry price, or a multiple of the ATR at entry), an exit after N bars in a trade, and
//! a cooldown of N bars after a losing trade.
//!
//! One rule for paper runs, replays and backtests alike (they all run this code):
//! - a trade is entered when the strategy's signal changes from flat to long (from the first
//!   deciding bar on, not during a cooldown), at that bar's close;
//! - from the bar after the entry, each bar is checked in this order: the stop (the stop-loss or
//!   the trailing stop, whichever is higher) touched by the bar's low fills **at the stop price,
//!   or at the open when the bar opened through it**; else the take-profit touched by the high
//!   fills at its price, or at the open when the bar opened above it; else the bar limit, and
//!   the strategy's own exit, fill at the close. A bar that touches both stop and target is
//!   taken as a stop (the cautious reading: a bar does not say which came first);
//! - the trailing stop follows the highest high since the entry (the entry's close at first),
//!   moved after each bar's check: a percentage below that peak, or N ATRs (at entry) below it;
//! - prices are rounded half-even to 8 decimals, the books' unit.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::lang::series::{Rma, TrueRange};
use crate::{LineValues, Signal, Strategy};
use nanotrader_market::{Bar, ExitPlan, TrailDistance};

/// The ATR period behind `NxATR` distances.
pub const ATR_PERIOD: usize = 14;
/// Decimal places of a stop price (the books' unit, 1e-8).
const PRICE_DP: u32 = 8;

/// How far a stop or target sits from the entry price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distance {
    /// A percentage of the entry price: `2%`.
    Percent(Decimal),
    /// A multiple of the ATR at entry: `3xatr`.
    Atr(Decimal),
}

impl FromStr for Distance {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim().to_ascii_lowercase();
        let bad = || format!("'{text}' is not a distance: write a percentage (2%) or an ATR multiple (3xatr)");
        let (number, make): (&str, fn(Decimal) -> Distance) = if let Some(n) = t.strip_suffix('%') {
            (n, Distance::Percent)
        } else if let Some(n) = t.strip_suffix("xatr").or_else(|| t.strip_suffix("atr")) {
            (n, Distance::Atr)
        } else {
            return Err(bad());
        };
        let value: Decimal = number.trim().parse().map_err(|_| bad())?;
        if value <= Decimal::ZERO || (matches!(make(value), Distance::Percent(_)) && value >= Decimal::ONE_HUNDRED) {
            return Err(format!(
                "'{text}': a distance must be above 0 (and a percentage below 100%)"
            ));
        }
        Ok(make(value))
    }
}

impl fmt::Display for Distance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distance::Percent(p) => write!(f, "{p}%"),
            Distance::Atr(k) => write!(f, "{k}xatr"),
        }
    }
}

impl Serialize for Distance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Distance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The stops and exits of a run; all optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Exits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_loss: Option<Distance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub take_profit: Option<Distance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trailing_stop: Option<Distance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bars_in_trade: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_bars: Option<u64>,
}

impl Exits {
    pub fn is_empty(&self) -> bool {
        *self == Exits::default()
    }

    /// `self`'s settings over `under`'s.
    pub fn over(&self, under: &Exits) -> Exits {
        Exits {
            stop_loss: self.stop_loss.or(under.stop_loss),
            take_profit: self.take_profit.or(under.take_profit),
            trailing_stop: self.trailing_stop.or(under.trailing_stop),
            max_bars_in_trade: self.max_bars_in_trade.or(under.max_bars_in_trade),
            cooldown_bars: self.cooldown_bars.or(under.cooldown_bars),
        }
    }

    /// For names and reports: `stop-loss 2% take-profit 3xatr`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.stop_loss {
            parts.push(format!("stop-loss {d}"));
        }
        if let Some(d) = self.take_profit {
            parts.push(format!("take-profit {d}"));
        }
        if let Some(d) = self.trailing_stop {
            parts.push(format!("trailing-stop {d}"));
        }
        if let Some(n) = self.max_bars_in_trade {
            parts.push(format!("max-bars-in-trade {n}"));
        }
        if let Some(n) = self.cooldown_bars {
            parts.push(format!("cooldown-bars {n}"));
        }
        parts.join(" ")
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.max_bars_in_trade == Some(0) {
            return Err("max-bars-in-trade must be at least 1".into());
        }
        Ok(())
    }
}

fn round_price(p: Decimal) -> Decimal {
    p.round_dp_with_strategy(PRICE_DP, RoundingStrategy::MidpointNearestEven)
}

#[derive(Clone, Copy, Debug)]
enum Trail {
    Fraction(Decimal),
    Amount(Decimal),
}

#[derive(Clone, Debug)]
struct Trade {
    entry: Decimal,
    stop: Option<Decimal>,
    take: Option<Decimal>,
    /// The trailing stop's distance below the peak: a fraction of the peak, or a fixed amount.
    trail: Option<Trail>,
    peak: Decimal,
    bars: u64,
}

/// A strategy with stops and exits: what it returns is the position to hold, and
/// `fill_price` says when a fill is not at the bar's close.
pub struct WithExits {
    inner: Box<dyn Strategy>,
    exits: Exits,
    decide_from_bar: u64,
    bars: u64,
    true_range: TrueRange,
    atr: Rma,
    atr_now: Option<Decimal>,
    inner_signal: Signal,
    trade: Option<Trade>,
    cooldown_left: u64,
    fill: Option<Decimal>,
}

impl WithExits {
    pub fn new(inner: Box<dyn Strategy>, exits: Exits, decide_from_bar: u64) -> Self {
        Self {
            inner,
            exits,
            decide_from_bar,
            bars: 0,
            true_range: TrueRange::default(),
            atr: Rma::new(ATR_PERIOD),
            atr_now: None,
            inner_signal: Signal::Flat,
            trade: None,
            cooldown_left: 0,
            fill: None,
        }
    }

    /// A distance from `price` in price units; `None` while the ATR is still warming up.
    fn distance(&self, d: Option<Distance>, price: Decimal) -> Option<Decimal> {
        match d? {
            Distance::Percent(p) => price.checked_mul(p)?.checked_div(Decimal::ONE_HUNDRED),
            Distance::Atr(k) => self.atr_now?.checked_mul(k),
        }
    }

    fn enter(&mut self, close: Decimal) {
        let below = |d: Option<Decimal>| d.map(|d| round_price(close - d));
        self.trade = Some(Trade {
            entry: close,
            stop: below(self.distance(self.exits.stop_loss, close)),
            take: self
                .distance(self.exits.take_profit, close)
                .map(|d| round_price(close + d)),
            trail: match self.exits.trailing_stop {
                Some(Distance::Percent(p)) => p.checked_div(Decimal::ONE_HUNDRED).map(Trail::Fraction),
                atr => self.distance(atr, close).map(Trail::Amount),
            },
            peak: close,
            bars: 0,
        });
    }

    /// The exit price on this bar, if the trade ends here.
    fn check(&mut self, bar: &Bar, inner: Signal) -> Option<Decimal> {
        let trade = self.trade.as_mut()?;
        trade.bars += 1;
        let trailing = trade.trail.and_then(|t| match t {
            Trail::Fraction(f) => trade.peak.checked_mul(Decimal::ONE - f).map(round_price),
            Trail::Amount(a) => Some(round_price(trade.peak - a)),
        });
        let stop = match (trade.stop, trailing) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let exit = if let Some(stop) = stop.filter(|s| bar.low <= *s) {
            Some(stop.min(bar.open))
        } else if let Some(take) = trade.take.filter(|t| bar.high >= *t) {
            Some(take.max(bar.open))
        } else if self.exits.max_bars_in_trade.is_some_and(|n| trade.bars >= n) || inner == Signal::Flat {
            Some(bar.close)
        } else {
            None
        };
        if exit.is_none() {
            trade.peak = trade.peak.max(bar.high);
        }
        exit
    }
}

impl Strategy for WithExits {
    fn name(&self) -> String {
        format!("{} {}", self.inner.name(), self.exits.describe())
    }

    fn line_names(&self) -> Vec<String> {
        self.inner.line_names()
    }

    fn on_bar(&mut self, bar: &Bar) -> Signal {
        self.bars += 1;
        self.fill = None;
        if let Some(tr) = self.true_range.push(bar.high, bar.low, bar.close) {
            self.atr_now = self.atr.push(tr);
        }
        let before = self.inner_signal;
        let inner = self.inner.on_bar(bar);
        self.inner_signal = inner;
        if let Some(price) = self.check(bar, inner) {
            let trade = self.trade.take().expect("checked a trade");
            if price != bar.close {
                self.fill = Some(price);
            }
            if price < trade.entry {
                self.cooldown_left = self.exits.cooldown_bars.unwrap_or(0);
            }
            return Signal::Flat;
        }
        if self.trade.is_some() {
            return Signal::Long;
        }
        let cooling = self.cooldown_left > 0;
        self.cooldown_left = self.cooldown_left.saturating_sub(1);
        if before == Signal::Flat && inner == Signal::Long && !cooling && self.bars >= self.decide_from_bar {
            self.enter(bar.close);
            return Signal::Long;
        }
        Signal::Flat
    }

    fn line_values(&self) -> LineValues {
        self.inner.line_values()
    }

    fn fill_price(&self) -> Option<Decimal> {
        self.fill
    }

    fn exit_plan(&self) -> Option<ExitPlan> {
        let trade = self.trade.as_ref()?;
        let plan = ExitPlan {
            stop_loss: trade.stop,
            take_profit: trade.take,
            trailing: trade.trail.map(|t| match t {
                Trail::Fraction(f) => TrailDistance::Percent(f * Decimal::ONE_HUNDRED),
                Trail::Amount(a) => TrailDistance::Amount(a),
            }),
        };
        (!plan.is_empty()).then_some(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotrader_market::Timestamp;

    /// Long from the given bar (1-based) on, for ever.
    struct LongFrom(u64, u64);
    impl Strategy for LongFrom {
        fn name(&self) -> String {
            "long-from".into()
        }
        fn line_names(&self) -> Vec<String> {
            Vec::new()
        }
        fn on_bar(&mut self, _: &Bar) -> Signal {
            self.1 += 1;
            if self.1 >= self.0 { Signal::Long } else { Signal::Flat }
        }
        fn line_values(&self) -> LineValues {
            [None; crate::MAX_LINES]
        }
    }

    fn ohlc(o: i64, h: i64, l: i64, c: i64) -> Bar {
        Bar {
            ts: Timestamp::from_secs(0),
            open: o.into(),
            high: h.into(),
            low: l.into(),
            close: c.into(),
            volume: Decimal::ONE,
            trades: 1,
        }
    }

    fn run(exits: Exits, bars: &[Bar]) -> Vec<(Signal, Option<Decimal>)> {
        let mut s = WithExits::new(Box::new(LongFrom(2, 0)), exits, 1);
        bars.iter().map(|b| (s.on_bar(b), s.fill_price())).collect()
    }

    fn pct(p: i64) -> Option<Distance> {
        Some(Distance::Percent(p.into()))
    }

    #[test]
    fn the_exit_plan_holds_the_entrys_prices_and_the_trailing_distance() {
        let exits = Exits {
            stop_loss: pct(10),
            take_profit: pct(20),
            trailing_stop: Some(Distance::Percent("1.5".parse().unwrap())),
            ..Exits::default()
        };
        let mut s = WithExits::new(Box::new(LongFrom(2, 0)), exits, 1);
        s.on_bar(&ohlc(100, 100, 100, 100));
        assert_eq!(s.exit_plan(), None, "no trade yet");
        s.on_bar(&ohlc(100, 100, 100, 100));
        let plan = s.exit_plan().expect("in a trade");
        assert_eq!(plan.stop_loss, Some(90.into()));
        assert_eq!(plan.take_profit, Some(120.into()));
        assert_eq!(plan.trailing, Some(TrailDistance::Percent("1.5".parse().unwrap())));
        // An ATR distance is a price once the trade is entered.
        let atr = Exits {
            trailing_stop: Some(Distance::Atr(2.into())),
            ..Exits::default()
        };
        let mut s = WithExits::new(Box::new(LongFrom(20, 0)), atr, 1);
        for _ in 0..20 {
            s.on_bar(&ohlc(100, 103, 99, 100));
        }
        assert_eq!(
            s.exit_plan().and_then(|p| p.trailing),
            Some(TrailDistance::Amount(8.into()))
        );
        s.on_bar(&ohlc(100, 100, 10, 10));
        assert_eq!(s.exit_plan(), None, "stopped out");
    }

    #[test]
    fn a_stop_fills_at_its_price_or_at_a_gapped_open_and_waits_for_a_new_entry() {
        let exits = Exits {
            stop_loss: pct(10),
            ..Exits::default()
        };
        let bars = [
            ohlc(100, 100, 100, 100),
            ohlc(100, 100, 100, 100),
            ohlc(99, 101, 89, 95),
            ohlc(95, 96, 94, 95),
        ];
        let got = run(exits.clone(), &bars);
        assert_eq!(got[1], (Signal::Long, None), "entered at the close of bar 2");
        assert_eq!(
            got[2],
            (Signal::Flat, Some(90.into())),
            "stopped at 90 by the low of 89"
        );
        assert_eq!(
            got[3],
            (Signal::Flat, None),
            "the signal is still long: no re-entry until it changes"
        );
        let gapped = [ohlc(100, 100, 100, 100), ohlc(100, 100, 100, 100), ohlc(85, 88, 80, 86)];
        assert_eq!(
            run(exits, &gapped)[2],
            (Signal::Flat, Some(85.into())),
            "opened through the stop"
        );
    }

    #[test]
    fn take_profit_trailing_stop_bar_limit_and_the_cautious_bar() {
        let flat = ohlc(100, 100, 100, 100);
        let take = Exits {
            take_profit: pct(5),
            stop_loss: pct(5),
            ..Exits::default()
        };
        assert_eq!(
            run(take.clone(), &[flat, flat, ohlc(101, 106, 99, 104)])[2].1,
            Some(105.into())
        );
        assert_eq!(
            run(take.clone(), &[flat, flat, ohlc(107, 108, 106, 106)])[2].1,
            Some(107.into()),
            "gapped above"
        );
        assert_eq!(
            run(take, &[flat, flat, ohlc(100, 106, 94, 100)])[2].1,
            Some(95.into()),
            "both touched: the stop"
        );
        let trail = Exits {
            trailing_stop: pct(10),
            ..Exits::default()
        };
        let bars = [
            flat,
            flat,
            ohlc(100, 120, 100, 118),
            ohlc(118, 119, 109, 110),
            ohlc(110, 111, 107, 109),
        ];
        let got = run(trail, &bars);
        assert_eq!(
            got[3],
            (Signal::Long, None),
            "the trail is at 108 after the high of 120"
        );
        assert_eq!(got[4], (Signal::Flat, Some(108.into())));
        let limit = Exits {
            max_bars_in_trade: Some(2),
            ..Exits::default()
        };
        let got = run(limit, &[flat, flat, flat, flat]);
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            [Signal::Flat, Signal::Long, Signal::Long, Signal::Flat]
        );
        assert_eq!(got[3].1, None, "at the close");
    }

    #[test]
    fn a_losing_trade_cools_down_and_atr_distances_wait_for_the_atr() {
        // A strategy that flips every bar: long, flat, long, ...
        struct Flip(u64);
        impl Strategy for Flip {
            fn name(&self) -> String {
                "flip".into()
            }
            fn line_names(&self) -> Vec<String> {
                Vec::new()
            }
            fn on_bar(&mut self, _: &Bar) -> Signal {
                self.0 += 1;
                if self.0 % 2 == 1 { Signal::Long } else { Signal::Flat }
            }
            fn line_values(&self) -> LineValues {
                [None; crate::MAX_LINES]
            }
        }
        let exits = Exits {
            cooldown_bars: Some(2),
            ..Exits::default()
        };
        let mut s = WithExits::new(Box::new(Flip(0)), exits, 1);
        let falling: Vec<Signal> = (0..8)
            .map(|i| s.on_bar(&ohlc(100 - i, 100 - i, 100 - i, 100 - i)))
            .collect();
        use Signal::*;
        assert_eq!(
            falling,
            [Long, Flat, Flat, Flat, Long, Flat, Flat, Flat],
            "two bars of rest after each loss"
        );
        let atr = Exits {
            stop_loss: Some(Distance::Atr(2.into())),
            ..Exits::default()
        };
        let mut s = WithExits::new(Box::new(LongFrom(1, 0)), atr, 1);
        s.on_bar(&ohlc(100, 101, 99, 100));
        assert!(s.trade.as_ref().unwrap().stop.is_none(), "no ATR yet: no stop");
    }

    #[test]
    fn distances_parse_and_print() {
        assert_eq!("2%".parse(), Ok(Distance::Percent(2.into())));
        assert_eq!("1.5 %".parse(), Ok(Distance::Percent(Decimal::new(15, 1))));
        assert_eq!("3xATR".parse(), Ok(Distance::Atr(3.into())));
        assert_eq!(Distance::Atr(Decimal::new(25, 1)).to_string(), "2.5xatr");
        assert!("2".parse::<Distance>().unwrap_err().contains("percentage (2%)"));
        assert!("0%".parse::<Distance>().is_err());
        assert!("100%".parse::<Distance>().is_err());
    }
}
