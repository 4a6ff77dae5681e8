//! What the broker was asked to do and what it did.

use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use nanotrader_market::{Side, Timestamp};

/// An order, recorded as the broker accepted it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: u64,
    pub ts: Timestamp,
    pub side: Side,
    pub qty: Decimal,
    pub reason: OrderReason,
}

/// Why an order was placed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderReason {
    /// The signal went long.
    Entry,
    /// The signal went flat.
    Exit,
    /// The position was closed for another reason (shutdown, a risk stop).
    Flatten,
}

impl OrderReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderReason::Entry => "entry",
            OrderReason::Exit => "exit",
            OrderReason::Flatten => "flatten",
        }
    }
}

impl fmt::Display for OrderReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An executed order and the account right after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub order_id: u64,
    pub ts: Timestamp,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    /// Quote-currency fee charged on this fill.
    pub fee: Decimal,
    pub cash_after: Decimal,
    pub position_after: Decimal,
    /// P&L realized by this fill, net of the buy and sell fees of the part it closed; 0 for buys.
    pub realized_pnl: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_reasons_in_snake_case_and_decimals_as_strings() {
        for (reason, text) in [
            (OrderReason::Entry, "entry"),
            (OrderReason::Exit, "exit"),
            (OrderReason::Flatten, "flatten"),
        ] {
            assert_eq!(reason.to_string(), text);
            assert_eq!(serde_json::to_string(&reason).unwrap(), format!("\"{text}\""));
        }
        let order = Order {
            id: 7,
            ts: Timestamp::from_secs(60),
            side: Side::Buy,
            qty: "0.005".parse().unwrap(),
            reason: OrderReason::Entry,
        };
        let json = serde_json::to_string(&order).unwrap();
        assert_eq!(
            json,
            r#"{"id":7,"ts":60000000000,"side":"buy","qty":"0.005","reason":"entry"}"#
        );
        assert_eq!(serde_json::from_str::<Order>(&json).unwrap(), order);
    }
}
