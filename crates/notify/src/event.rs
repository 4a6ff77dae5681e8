//! What the bot reports, and its one line for people.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use thousands::Separable;

/// The side of a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        })
    }
}

/// One alert. Serialized with its kind as `"event"` (`"fill"`, `"order_rejected"`, ...), amounts
/// as exact decimal strings, times in RFC 3339. `run` is the store's run id; ids of orders and
/// trades are the broker's, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Fill {
        run: i64,
        pair: String,
        side: Side,
        #[serde(with = "rust_decimal::serde::str")]
        qty: Decimal,
        #[serde(with = "rust_decimal::serde::str")]
        price: Decimal,
        /// In the quote currency.
        #[serde(with = "rust_decimal::serde::str")]
        fee: Decimal,
        order_id: String,
        trade_id: String,
        ts: DateTime<Utc>,
    },
    OrderRejected {
        run: i64,
        pair: String,
        reason: String,
        cl_ord_id: String,
    },
    RiskHalt {
        run: i64,
        rule: String,
        detail: String,
    },
    FeedDown {
        pair: String,
        detail: String,
    },
    FeedUp {
        pair: String,
        detail: String,
    },
    /// Store writes started failing (they are retried; fills wait to be announced).
    StoreDown {
        run: i64,
        detail: String,
    },
    /// Store writes work again; nothing was lost.
    StoreUp {
        run: i64,
        detail: String,
    },
    Started {
        run: i64,
        pair: String,
        broker: String,
        live: bool,
    },
    Stopped {
        run: i64,
        pair: String,
        reason: String,
    },
}

impl Event {
    /// The value of `"event"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Fill { .. } => "fill",
            Event::OrderRejected { .. } => "order_rejected",
            Event::RiskHalt { .. } => "risk_halt",
            Event::FeedDown { .. } => "feed_down",
            Event::FeedUp { .. } => "feed_up",
            Event::StoreDown { .. } => "store_down",
            Event::StoreUp { .. } => "store_up",
            Event::Started { .. } => "started",
            Event::Stopped { .. } => "stopped",
        }
    }

    /// One line for people, e.g. `BUY 0.01 BTC/USD at 60,000.00 (fee 1.56)`. Amounts are shown
    /// exactly as given, with thousands separators.
    pub fn text(&self) -> String {
        match self {
            Event::Fill {
                pair,
                side,
                qty,
                price,
                fee,
                ..
            } => format!(
                "{side} {} {pair} at {} (fee {})",
                qty.separate_with_commas(),
                price.separate_with_commas(),
                fee.separate_with_commas()
            ),
            Event::OrderRejected {
                run,
                pair,
                reason,
                cl_ord_id,
            } => format!("Order {cl_ord_id} on {pair} rejected: {reason} (run {run})"),
            Event::RiskHalt { run, rule, detail } => {
                format!("Risk halt ({rule}): {detail} (run {run})")
            }
            Event::FeedDown { pair, detail } => format!("Feed down for {pair}: {detail}"),
            Event::FeedUp { pair, detail } => format!("Feed back for {pair}: {detail}"),
            Event::StoreDown { run, detail } => format!("Store down: {detail} (run {run})"),
            Event::StoreUp { run, detail } => format!("Store back: {detail} (run {run})"),
            Event::Started {
                run,
                pair,
                broker,
                live,
            } => {
                let mode = if *live { "LIVE" } else { "paper" };
                format!("Started run {run} on {pair} with {broker} ({mode})")
            }
            Event::Stopped { run, pair, reason } => {
                format!("Stopped run {run} on {pair}: {reason}")
            }
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn fill() -> Event {
        Event::Fill {
            run: 7,
            pair: "BTC/USD".into(),
            side: Side::Buy,
            qty: d("0.01"),
            price: d("60000.00"),
            fee: d("1.56"),
            order_id: "O1".into(),
            trade_id: "T1".into(),
            ts: DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z").unwrap().to_utc(),
        }
    }

    #[test]
    fn fill_text_and_json() {
        let e = fill();
        assert_eq!(e.text(), "BUY 0.01 BTC/USD at 60,000.00 (fee 1.56)");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({
                "event": "fill", "run": 7, "pair": "BTC/USD", "side": "buy",
                "qty": "0.01", "price": "60000.00", "fee": "1.56",
                "order_id": "O1", "trade_id": "T1", "ts": "2024-05-01T12:00:00Z"
            })
        );
    }

    #[test]
    fn every_kind_is_its_tag() {
        let events = [
            fill(),
            Event::OrderRejected {
                run: 1,
                pair: "ETH/USD".into(),
                reason: "insufficient funds".into(),
                cl_ord_id: "c-1".into(),
            },
            Event::RiskHalt {
                run: 1,
                rule: "max_drawdown".into(),
                detail: "down 12% > 10%".into(),
            },
            Event::FeedDown {
                pair: "BTC/USD".into(),
                detail: "no trade for 60 s".into(),
            },
            Event::FeedUp {
                pair: "BTC/USD".into(),
                detail: "after 75 s".into(),
            },
            Event::StoreDown {
                run: 1,
                detail: "disk full".into(),
            },
            Event::StoreUp {
                run: 1,
                detail: "writes resumed".into(),
            },
            Event::Started {
                run: 1,
                pair: "BTC/USD".into(),
                broker: "kraken".into(),
                live: true,
            },
            Event::Stopped {
                run: 1,
                pair: "BTC/USD".into(),
                reason: "ctrl-c".into(),
            },
        ];
        for e in &events {
            let v = serde_json::to_value(e).unwrap();
            assert_eq!(v["event"], e.kind(), "{v}");
            assert!(!e.text().is_empty());
        }
        assert_eq!(
            events[1].text(),
            "Order c-1 on ETH/USD rejected: insufficient funds (run 1)"
        );
        assert_eq!(events[7].text(), "Started run 1 on BTC/USD with kraken (LIVE)");
        assert_eq!(
            serde_json::to_value(&events[7]).unwrap()["live"],
            serde_json::Value::Bool(true)
        );
    }
}
