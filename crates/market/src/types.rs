//! Normalized market events: every source speaks these, whatever its wire format.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A UTC instant, nanoseconds since the Unix epoch (covers 1677..2262).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs * NANOS_PER_SEC)
    }
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms * 1_000_000)
    }
    pub const fn from_nanos(ns: i64) -> Self {
        Self(ns)
    }
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(d.as_nanos() as i64)
    }
    pub const fn nanos(self) -> i64 {
        self.0
    }
    /// Whole seconds, rounded down (also before 1970).
    pub const fn secs(self) -> i64 {
        self.0.div_euclid(NANOS_PER_SEC)
    }
    pub const fn millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub const fn add_secs(self, secs: i64) -> Self {
        Self(self.0 + secs * NANOS_PER_SEC)
    }
    /// One interval later, saturating at the end of representable time instead of overflowing.
    pub const fn plus(self, interval: Interval) -> Self {
        Self(self.0.saturating_add(interval.secs().saturating_mul(NANOS_PER_SEC)))
    }
    /// The start of the interval bucket holding this instant.
    pub const fn floor_to(self, interval: Interval) -> Self {
        let step = interval.secs().saturating_mul(NANOS_PER_SEC);
        Self(self.0.div_euclid(step) * step)
    }
    /// Unix seconds, exactly: `1504396820`, or `1504396859.999` when the time has a fraction
    /// (a bar a file stamped at its last millisecond), as CSV exports write them.
    pub fn unix_secs_text(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        let (whole, frac) = (magnitude / NANOS_PER_SEC as u64, magnitude % NANOS_PER_SEC as u64);
        if frac == 0 {
            return format!("{sign}{whole}");
        }
        let digits = format!("{frac:09}");
        format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
    }

    /// RFC 3339 with milliseconds, e.g. `2017-09-03T00:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        chrono::DateTime::from_timestamp_nanos(self.0).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A bar length in whole seconds (1 minute by default).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Interval(i64);

impl Interval {
    pub const ONE_MINUTE: Interval = Interval(60);

    pub fn from_secs(secs: i64) -> Option<Self> {
        (secs > 0).then_some(Self(secs))
    }
    pub const fn secs(self) -> i64 {
        self.0
    }
}

impl Default for Interval {
    fn default() -> Self {
        Self::ONE_MINUTE
    }
}

impl FromStr for Interval {
    type Err = String;
    /// Accepts `30s`, `1m`, `5m`, `1h`, `1d` or a bare number of seconds.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
        let n: i64 = digits
            .parse()
            .map_err(|_| format!("invalid interval '{s}': expected e.g. 1m, 5m, 1h"))?;
        let mult = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("invalid interval '{s}': unit must be s, m, h or d")),
        };
        n.checked_mul(mult)
            .and_then(Interval::from_secs)
            .ok_or_else(|| format!("invalid interval '{s}': must be positive"))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            s if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "buy" | "b" | "BUY" | "Buy" => Ok(Side::Buy),
            "sell" | "s" | "SELL" | "Sell" => Ok(Side::Sell),
            _ => Err(format!("invalid side '{s}': expected buy or sell")),
        }
    }
}

/// One trade (or a last-price tick) on the exchange.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    pub ts: Timestamp,
    pub price: Decimal,
    pub size: Decimal,
    /// Taker (aggressor) side, when the source knows it.
    pub side: Option<Side>,
}

/// Best bid and ask, when the source knows them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub ts: Timestamp,
    pub bid: Decimal,
    pub bid_size: Decimal,
    pub ask: Decimal,
    pub ask_size: Decimal,
}

/// An OHLCV bar covering `[ts, ts + interval)`; `ts` is the bar's open time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    pub ts: Timestamp,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    /// Number of trades in the bar (0 when the source does not say).
    pub trades: u32,
}

impl Bar {
    /// A bar opened by one trade.
    pub fn from_trade(ts: Timestamp, trade: &Trade) -> Self {
        Self {
            ts,
            open: trade.price,
            high: trade.price,
            low: trade.price,
            close: trade.price,
            volume: trade.size,
            trades: 1,
        }
    }

    pub fn add_trade(&mut self, trade: &Trade) {
        self.high = self.high.max(trade.price);
        self.low = self.low.min(trade.price);
        self.close = trade.price;
        // Saturating: a hostile feed or file must not be able to panic the engine with huge sizes.
        self.volume = self.volume.saturating_add(trade.size);
        self.trades = self.trades.saturating_add(1);
    }

    /// Folds a later, finer bar into this one.
    pub fn merge(&mut self, later: &Bar) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume = self.volume.saturating_add(later.volume);
        self.trades = self.trades.saturating_add(later.trades);
    }
}

/// Health of a live feed, as the source sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FeedStatus {
    Connected,
    Disconnected { reason: String },
    Stale { silent_for_ms: i64 },
    Backfilled { trades: u64 },
}

/// What a source yields, in time order.
#[derive(Clone, Debug, PartialEq)]
pub enum MarketEvent {
    Trade(Trade),
    Quote(Quote),
    /// A closed bar of the source's own interval.
    Bar(Bar),
    /// Market time has reached this instant with nothing to report: lets forming bars close
    /// on a quiet live feed.
    Clock(Timestamp),
    Status(FeedStatus),
}

impl MarketEvent {
    /// Market time of the event, where it has one.
    pub fn ts(&self) -> Option<Timestamp> {
        match self {
            MarketEvent::Trade(t) => Some(t.ts),
            MarketEvent::Quote(q) => Some(q.ts),
            MarketEvent::Bar(b) => Some(b.ts),
            MarketEvent::Clock(ts) => Some(*ts),
            MarketEvent::Status(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print() {
        for (text, secs, shown) in [
            ("1m", 60, "1m"),
            ("90", 90, "90s"),
            ("5m", 300, "5m"),
            ("1h", 3600, "1h"),
            ("2d", 172_800, "2d"),
        ] {
            let i: Interval = text.parse().unwrap();
            assert_eq!(i.secs(), secs);
            assert_eq!(i.to_string(), shown);
        }
        for bad in ["", "0m", "m", "5x", "-1m", "999999999999999999d"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn timestamps_floor_and_format() {
        let ts = Timestamp::from_millis(1_504_396_861_250);
        assert_eq!(ts.floor_to(Interval::ONE_MINUTE), Timestamp::from_secs(1_504_396_860));
        assert_eq!(ts.to_rfc3339(), "2017-09-03T00:01:01.250Z");
        assert_eq!(Timestamp::from_millis(-1).secs(), -1);
        assert_eq!(ts.unix_secs_text(), "1504396861.25");
        assert_eq!(Timestamp::from_secs(1_504_396_860).unix_secs_text(), "1504396860");
        assert_eq!(Timestamp::from_millis(-1).unix_secs_text(), "-0.001");
        assert_eq!(Timestamp::from_secs(-60).unix_secs_text(), "-60");
    }
}

/// The exits of a trade, fixed at its entry (the strategy's stops, as prices): what a broker
/// places at an exchange as stop orders when the exchange watches them (`--stops exchange`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitPlan {
    /// Sell when the price falls to this.
    pub stop_loss: Option<Decimal>,
    /// Sell when the price rises to this.
    pub take_profit: Option<Decimal>,
    /// Sell when the price falls this far below its best since the entry.
    pub trailing: Option<TrailDistance>,
}

impl ExitPlan {
    pub fn is_empty(&self) -> bool {
        *self == ExitPlan::default()
    }
}

/// A trailing stop's distance below the best price: a percentage of it, or an amount (an ATR
/// multiple turned into a price at entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailDistance {
    Percent(Decimal),
    Amount(Decimal),
}
