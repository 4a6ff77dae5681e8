//! What the dashboard shows, as the JSON objects of docs/dashboard.md: chart values as numbers,
//! money and quantities as exact decimal strings.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Serialize, Serializer};

use std::collections::BTreeMap;

use nanotrader_broker::{Account, Fill, OrderReason, OrderView, VenueView};
use nanotrader_market::{Bar, Timestamp};
use nanotrader_strategy::LineValues;

/// A bar on the chart with the indicator lines, the equity at its close and what buying and
/// holding would be worth then.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BarPoint {
    pub t: i64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: f64,
    pub lines: Lines,
    pub eq: f64,
    /// Buy-and-hold equity at the close (null before the run's first closed bar).
    pub bh: Option<f64>,
}

impl BarPoint {
    pub fn new(bar: &Bar, lines: Lines, equity: Decimal, buy_hold: &BuyAndHold) -> Self {
        let c = num(bar.close);
        Self {
            t: bar.ts.secs(),
            o: num(bar.open),
            h: num(bar.high),
            l: num(bar.low),
            c,
            v: num(bar.volume),
            lines,
            eq: num(equity),
            bh: buy_hold.equity_at(c),
        }
    }
}

/// Buy and hold, as the backtest report defines it (src/backtest/simulate.rs
/// `buy_and_hold_pct`): all the starting cash in at the run's first close, paying the fee once,
/// then marked at each close. A chart line, so f64 like the equity beside it.
#[derive(Clone, Debug, PartialEq)]
pub struct BuyAndHold {
    /// Starting cash less the one fee.
    invested: f64,
    first_close: Option<f64>,
}

impl BuyAndHold {
    pub fn new(initial_cash: Decimal, fee_rate: Decimal) -> Self {
        Self {
            invested: num(initial_cash) * (1.0 - num(fee_rate)),
            first_close: None,
        }
    }

    /// A closed bar of the run: the first one fixes the entry price.
    pub fn on_close(&mut self, close: Decimal) {
        if self.first_close.is_none() {
            self.first_close = Some(num(close)).filter(|c| *c > 0.0);
        }
    }

    pub fn equity_at(&self, close: f64) -> Option<f64> {
        self.first_close.map(|first| self.invested * close / first)
    }
}

/// The first `len` indicator values, serialized as a list (`null` while warming up).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Lines {
    values: LineValues,
    len: u8,
}

impl Lines {
    pub fn new(values: LineValues, len: usize) -> Self {
        Self {
            values,
            len: len.min(values.len()) as u8,
        }
    }
}

impl Serialize for Lines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.values[..self.len as usize])
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FillView {
    pub order_id: u64,
    pub t: i64,
    pub side: &'static str,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub cash_after: Decimal,
    pub position_after: Decimal,
    pub realized_pnl: Decimal,
    /// Why the order was placed, when known (stored fills before this process started lack it).
    pub reason: Option<&'static str>,
}

impl FillView {
    pub fn new(fill: &Fill, reason: Option<OrderReason>) -> Self {
        Self {
            order_id: fill.order_id,
            t: fill.ts.secs(),
            side: fill.side.as_str(),
            qty: fill.qty.normalize(),
            price: fill.price.normalize(),
            fee: fill.fee.normalize(),
            cash_after: fill.cash_after.normalize(),
            position_after: fill.position_after.normalize(),
            realized_pnl: fill.realized_pnl.normalize(),
            reason: reason.map(OrderReason::as_str),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountView {
    pub ts: i64,
    pub cash: Decimal,
    pub position: Decimal,
    pub avg_entry: Option<Decimal>,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub equity: Decimal,
    pub fees_paid: Decimal,
    pub return_pct: Decimal,
    pub last_price: Option<Decimal>,
}

impl AccountView {
    pub fn new(account: &Account, ts: Timestamp) -> Self {
        let s = account.snapshot(ts);
        Self {
            ts: ts.secs(),
            cash: s.cash,
            position: s.position,
            avg_entry: s.avg_entry.map(|p| p.round_dp(8).normalize()),
            realized_pnl: s.realized_pnl,
            unrealized_pnl: s.unrealized_pnl,
            equity: s.equity,
            fees_paid: s.fees_paid,
            return_pct: s.return_pct.round_dp(6).normalize(),
            last_price: account.last_price().map(|p| p.normalize()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    pub run: &'static str,
    /// `live` (an exchange's feed), `replay` or `simulation`: only `live` is live.
    pub mode: &'static str,
    /// A replay's or simulation's pace: `60x`, `0.5x`, `max speed`; null for a live feed.
    pub speed: Option<String>,
    /// The data's own time: the market time of the last event, unix seconds (null before any).
    pub data_time: Option<i64>,
    /// Decimals prices are shown with: the pair's tick (see human_format::PairFormat).
    pub price_decimals: u32,
    pub feed: &'static str,
    pub feed_reason: Option<String>,
    pub trading: &'static str,
    pub events_per_sec: f64,
    pub bars: u64,
    pub fills: u64,
    /// Wall clock minus the market time of the last event, never negative; live feeds only
    /// (null for a replay or a simulation, whose data time is `data_time`).
    pub feed_lag_ms: Option<i64>,
    pub store_lag_steps: u64,
    /// `ok`, or `failing` while store writes fail (they are retried; fills wait to be announced).
    pub store: &'static str,
    pub store_error: Option<String>,
    pub reconnects: u64,
    pub backfilled_trades: u64,
    pub gaps: u64,
    pub clients: u64,
    pub last_price: Option<Decimal>,
    pub change_pct: Option<f64>,
    /// Bus events the dashboard could not keep up with (its chart has holes where they were).
    pub skipped_events: u64,
    /// A live broker's side at the exchange (balances, orders, a halt); null for paper.
    pub venue: Option<VenueStatus>,
    /// Why the protections (`--max-drawdown`, `--max-daily-loss-usd` on paper) halt new entries,
    /// while they do (a Resume lifts it); a live broker's own rail is `venue.halted`.
    pub halted: Option<String>,
}

/// Orders a page is shown (newest first): the run's recent ones, not its history, which the
/// store and `fills` hold. Every status event carries them, so they stay few.
pub const VENUE_ORDERS: usize = 50;

/// A live broker's exchange side as the page shows it: amounts are exact decimal strings, times
/// unix seconds. It holds no key or secret: the broker's [`VenueView`] has none.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VenueStatus {
    /// `kraken` (real orders) or `kraken-validate` (orders checked by Kraken, never placed).
    pub broker: String,
    /// Whether orders are real.
    pub live: bool,
    /// The exchange's balances by its asset names (`XXBT`, `ZUSD`, ...), as last reported.
    pub balances: BTreeMap<String, Decimal>,
    pub orders: Vec<OrderRow>,
    /// Why new entries are halted, while they are (a Resume lifts it).
    pub halted: Option<String>,
    /// Where the run's stops are watched and which (`on Kraken: stop-loss 2%`), if any.
    pub stops: Option<String>,
}

impl VenueStatus {
    pub fn new(venue: &VenueView) -> Self {
        Self {
            broker: venue.broker.clone(),
            live: venue.live,
            balances: venue
                .balances
                .iter()
                .map(|(asset, amount)| (asset.clone(), amount.normalize()))
                .collect(),
            orders: venue.orders.iter().take(VENUE_ORDERS).map(OrderRow::new).collect(),
            halted: venue.halted.clone(),
            stops: venue.stops.clone(),
        }
    }
}

/// One order as the exchange last told it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OrderRow {
    pub cl_ord_id: String,
    /// The exchange's order id, once known.
    pub txid: Option<String>,
    pub t: i64,
    pub side: &'static str,
    pub order_type: String,
    pub volume: Decimal,
    pub filled: Decimal,
    pub limit_price: Option<Decimal>,
    pub state: String,
    pub detail: Option<String>,
}

impl OrderRow {
    fn new(order: &OrderView) -> Self {
        Self {
            cl_ord_id: order.cl_ord_id.clone(),
            txid: order.txid.clone(),
            t: order.ts.secs(),
            side: order.side.as_str(),
            order_type: order.order_type.clone(),
            volume: order.volume.normalize(),
            filled: order.filled.normalize(),
            limit_price: order.limit_price.map(|p| p.normalize()),
            state: order.state.clone(),
            detail: order.detail.clone(),
        }
    }
}

pub fn num(value: Decimal) -> f64 {
    value.to_f64().unwrap_or(f64::NAN)
}
