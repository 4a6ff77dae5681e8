//! What the mock has served and broken, for tests to assert on.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use nanotrader_market::Timestamp;

/// A snapshot of the mock's counters since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MockCounters {
    pub rest: RestRequests,
    /// WebSocket connections accepted.
    pub ws_connections: u64,
    /// Subscriptions acknowledged with `success: true`.
    pub subscriptions: u64,
    /// Market time of the latest acknowledged `trade` subscription (its `time_out`): where a
    /// client's live trades start.
    pub trade_subscribed_at: Option<Timestamp>,
    /// WebSocket frames written, faulty ones included.
    pub ws_messages_sent: u64,
    pub faults: FaultCounts,
}

impl MockCounters {
    /// Calls to Kraken's private (account and trading) API: what a paper run must never make.
    pub fn private_requests(&self) -> u64 {
        self.rest.private
    }

    /// Public REST requests served, whatever their answer.
    pub fn public_requests(&self) -> u64 {
        let r = &self.rest;
        r.time + r.system_status + r.asset_pairs + r.ticker + r.ohlc + r.trades
    }
}

/// REST requests received per endpoint, faulted ones included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestRequests {
    pub time: u64,
    pub system_status: u64,
    pub asset_pairs: u64,
    pub ticker: u64,
    pub ohlc: u64,
    pub trades: u64,
    /// Paths the mock does not serve, the private ones included.
    pub other: u64,
    /// Requests to `/0/private/*` (any method, answered or refused): paper trading must never
    /// send one.
    pub private: u64,
    /// The same requests per method (`AddOrder`, `Balance`, ...), whatever their answer.
    pub private_methods: BTreeMap<String, u64>,
}

/// Faults injected, one per occurrence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub dropped_connections: u64,
    /// Silences started.
    pub stalls: u64,
    pub garbage_frames: u64,
    pub truncated_frames: u64,
    /// Messages (REST or WebSocket) given unknown fields.
    pub extra_fields: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub slow_responses: u64,
    pub rejected_subscriptions: u64,
    /// AddOrders placed whose reply was lost.
    pub lost_addorder_replies: u64,
    /// AddOrders placed, then answered with HTTP 500.
    pub addorder_http_500: u64,
    /// Private calls answered `EService:Unavailable` by the fault.
    pub service_unavailable: u64,
    /// Private calls answered `EAPI:Invalid nonce` by the fault.
    pub invalid_nonce: u64,
    /// Authenticated WebSockets dropped by `drop_auth_ws_after`.
    pub dropped_auth_connections: u64,
}

/// The live counters, shared by every connection.
#[derive(Default)]
pub(super) struct Counters(Mutex<MockCounters>);

impl Counters {
    pub(super) fn bump(&self, count: impl FnOnce(&mut MockCounters)) {
        // A panic elsewhere while holding the lock leaves plain numbers behind: still usable.
        count(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner));
    }

    pub(super) fn snapshot(&self) -> MockCounters {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
