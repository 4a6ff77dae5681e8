//! The messages on the bus, as JSON: times in unix nanoseconds, amounts as exact decimal strings.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use nanotrader_market::{Bar, Side, Timestamp, Trade};

/// A closed bar: `[ts, ts + interval)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BarMessage {
    /// The bar's open time, unix nanoseconds.
    pub ts: i64,
    pub interval_secs: i64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub trades: u32,
}

impl BarMessage {
    pub fn new(bar: &Bar, interval_secs: i64) -> Self {
        Self {
            ts: bar.ts.nanos(),
            interval_secs,
            open: bar.open,
            high: bar.high,
            low: bar.low,
            close: bar.close,
            volume: bar.volume,
            trades: bar.trades,
        }
    }

    pub fn bar(&self) -> Bar {
        Bar {
            ts: Timestamp::from_nanos(self.ts),
            open: self.open,
            high: self.high,
            low: self.low,
            close: self.close,
            volume: self.volume,
            trades: self.trades,
        }
    }

    /// `Nats-Msg-Id`: the same bar from any feed has the same id.
    pub fn message_id(&self, pair: &str) -> String {
        format!("{pair}|bar|{}|{}", self.interval_secs, self.ts)
    }
}

/// One trade of the exchange's tape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeMessage {
    /// Unix nanoseconds.
    pub ts: i64,
    pub price: Decimal,
    pub size: Decimal,
    /// The taker's side, when known: `buy` or `sell`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
}

impl TradeMessage {
    pub fn new(trade: &Trade) -> Self {
        Self {
            ts: trade.ts.nanos(),
            price: trade.price,
            size: trade.size,
            side: trade.side,
        }
    }

    pub fn trade(&self) -> Trade {
        Trade {
            ts: Timestamp::from_nanos(self.ts),
            price: self.price,
            size: self.size,
            side: self.side,
        }
    }

    /// `Nats-Msg-Id`: the trade's time, price and size, and `nth`, its place among the trades
    /// of the same time, price and size (Kraken's tape can repeat them), so two feeds reading the
    /// same tape give each trade the same id.
    pub fn message_id(&self, pair: &str, nth: u32) -> String {
        format!("{pair}|trade|{}|{}|{}|{nth}", self.ts, self.price, self.size)
    }
}
