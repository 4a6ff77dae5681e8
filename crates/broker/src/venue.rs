//! What a broker at an exchange shows beside the account: the exchange's balances, each order's
//! state and a risk halt. Paper has none of it.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::Serialize;

use nanotrader_market::{Side, Timestamp};

/// The exchange side of a live broker, as a person should see it (and `/api/status` gives it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VenueView {
    /// `kraken` or `kraken-validate`.
    pub broker: String,
    /// Whether orders are real (`kraken`): the dashboard says LIVE unmistakably.
    pub live: bool,
    /// The exchange's balances, by its asset names, as it last reported them.
    pub balances: BTreeMap<String, Decimal>,
    /// The run's latest orders, newest first.
    pub orders: Vec<OrderView>,
    /// Why new entries are halted (a rail), until the next UTC day or a Resume.
    pub halted: Option<String>,
    /// Where the stops are watched and which: `on Kraken: stop-loss 2%, take-profit 4%`,
    /// `watched by the bot: ...`; `None` without stops.
    pub stops: Option<String>,
}

/// One order as the exchange last told it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OrderView {
    pub cl_ord_id: String,
    /// The exchange's order id, once known.
    pub txid: Option<String>,
    pub ts: Timestamp,
    pub side: Side,
    /// `market`, `limit`, `stop-loss`, `take-profit` or `trailing-stop`.
    pub order_type: String,
    pub volume: Decimal,
    pub filled: Decimal,
    /// A limit order's price, or a stop-loss or take-profit's trigger.
    pub limit_price: Option<Decimal>,
    /// sending, open, filled, canceled, rejected, unknown, ...
    pub state: String,
    pub detail: Option<String>,
}
