//! The seam every market-data source plugs into: replay and simulator now, Kraken and NATS later.

use std::future::Future;

use super::types::{Interval, MarketEvent};

/// What a source is, for logs, the store and the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceInfo {
    /// `replay`, `sim`, `kraken`, ...
    pub kind: &'static str,
    /// Stable identity of the data behind the source (file, simulator parameters, exchange):
    /// two runs with the same identity see the same bars, so the store can share them.
    pub identity: String,
    /// The pair as users write it, e.g. `BTC/USD`.
    pub pair: String,
    /// True when the source ends by itself (a replay without looping).
    pub finite: bool,
    /// The interval of the bars the source yields, when it yields bars.
    pub bar_interval: Option<Interval>,
}

/// Why a source stopped or what it could not read.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SourceError {
    /// Bad input the user must fix (a malformed row, an unreadable file): exit code 2.
    #[error("{0}")]
    Input(String),
    /// The source failed and cannot go on.
    #[error("{0}")]
    Fatal(String),
}

/// An async stream of normalized market events.
///
/// `next_event` must be cancel-safe: if its future is dropped before it completes, no event is
/// lost (the engine races it against its own timers).
///
/// Implemented today by the CSV replay, the simulator and Kraken's WebSocket and REST feeds.
/// What the next one (a JetStream consumer, issue 19) must honour, as these do:
/// - Events in market-time order; a trade or a bar is delivered once (a redelivered message is
///   dropped by its id), and a hole is not papered over: a bar that never came stays missing,
///   so the aggregator marks the gap.
/// - A resumed run asks for the market from a time on (`start_at` of each implementation's
///   config): nothing before it is delivered, nothing after it is skipped.
/// - `SourceInfo::identity` names the data, not the transport: two sources that deliver the
///   same bars have the same identity, so runs share stored bars exactly when the bars are the
///   same.
/// - Bad input from outside is counted, logged once and skipped (`Fatal` only when the source
///   cannot go on; `Input` for a file the user must fix).
pub trait Source: Send {
    fn info(&self) -> &SourceInfo;

    /// The next event, `Ok(None)` when a finite source is exhausted.
    fn next_event(&mut self) -> impl Future<Output = Result<Option<MarketEvent>, SourceError>> + Send;
}
