//! What the dashboard shows, as the JSON objects of docs/dashboard.md: chart values as numbers,
//! money and quantities as exact decimal strings.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Serialize, Serializer};

use crate::broker::{Account, Fill, OrderReason};
use crate::market::{Bar, Timestamp};
use crate::strategy::LineValues;

/// A bar on the chart with the indicator lines and the equity at its close.
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
}

impl BarPoint {
    pub fn new(bar: &Bar, lines: Lines, equity: Decimal) -> Self {
        Self {
            t: bar.ts.secs(),
            o: num(bar.open),
            h: num(bar.high),
            l: num(bar.low),
            c: num(bar.close),
            v: num(bar.volume),
            lines,
            eq: num(equity),
        }
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
    pub feed: &'static str,
    pub feed_reason: Option<String>,
    pub trading: &'static str,
    pub events_per_sec: f64,
    pub bars: u64,
    pub fills: u64,
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
}

pub fn num(value: Decimal) -> f64 {
    value.to_f64().unwrap_or(f64::NAN)
}
