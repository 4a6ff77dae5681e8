//! What a mock exchange replays, how fast, and which failures it injects.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use nanotrader_market::Timestamp;

/// Settings of one `MockKraken`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Trades CSV to replay (`ts_ns,price,volume,side`, or any trade layout `CsvReader` reads).
    pub data: PathBuf,
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Market seconds per wall second (600 plays 10 market minutes per second).
    pub speed: f64,
    /// Relabels the data so its first minute is this one (e.g. `Timestamp::now()`, for clients
    /// that compare exchange time with their own clock). The shift is whole minutes, so every
    /// trade keeps its minute. `None` serves the data's own times.
    pub market_start: Option<Timestamp>,
    pub faults: Faults,
}

impl MockConfig {
    /// Replays `data` in real time on a free loopback port, without faults.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            speed: 1.0,
            market_start: None,
            faults: Faults::default(),
        }
    }
}

/// Failures to inject; all off by default. "Every N" counts from 1 (N = 3 hits the 3rd, 6th, ...
/// request or frame) and 0 means never.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Drops each WebSocket connection this long after it opened, without a close frame.
    pub drop_after: Option<Duration>,
    /// Periodic silence on each WebSocket connection, which stays open.
    pub stall: Option<Stall>,
    /// Replaces every Nth WebSocket frame of a connection by text that is not JSON.
    pub garbage_every: u64,
    /// Cuts every Nth WebSocket frame of a connection in half.
    pub truncate_every: u64,
    /// Adds unknown fields to every message (REST and WebSocket, top level and inside items).
    pub extra_fields: bool,
    /// Answers every Nth REST request with `EAPI:Rate limit exceeded`.
    pub rate_limit_every: u64,
    /// Answers every Nth REST request with HTTP 503 and an HTML body, as a proxy in front would.
    pub server_error_every: u64,
    /// Delays every REST response by this much.
    pub slow_rest: Option<Duration>,
    /// Refuses every subscription as if its symbol did not exist.
    pub reject_subscriptions: bool,
}

/// Sends nothing at all (not even heartbeats or pongs) for `duration`, starting `every`,
/// `2 * every`, ... after the connection opened; what falls in the silence is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    pub every: Duration,
    pub duration: Duration,
}
