//! Kraken: the exchange's quirks stay in here. Same shape as every adapter: constants, typed
//! errors, parsing of recorded formats, symbol mapping, the request budget, REST and WebSocket
//! clients and the live source. `private` holds the account side: credentials, the `API-Sign`,
//! the nonce store, the private rate counters, the signed REST client a live broker trades
//! through, and the authenticated WebSocket v2 feed (`PrivateFeed`: the account's executions
//! and balances as typed events, reconnected with a fresh token and new snapshots). The mock
//! exchange that tests talk to is a crate of its own (`nanotrader-kraken-mock`), a
//! dev-dependency only.
//!
//! Without the default `client` feature only Kraken's formats, errors and pair names are built
//! (no network crates): what the people-facing number formats need for a pair's tick. The
//! private API's signing, nonce store, types and WebSocket message parsing build without it
//! too; its clients do not.
//!
//! It owns how Kraken is spoken to and what its messages mean, turned into the market crate's
//! events. It must not know the engine, the store, the strategies or the command line.

#[cfg(feature = "client")]
mod budget;
/// Kraken's fixed numbers and addresses (URLs, limits, page sizes), by name.
pub mod consts;
mod error;
#[cfg(feature = "client")]
mod ohlc_check;
/// Kraken's recorded formats parsed into typed messages (public for the fuzz targets).
pub mod parse;
#[cfg(feature = "client")]
mod poller;
pub mod private;
#[cfg(feature = "client")]
mod reach;
#[cfg(feature = "client")]
mod rest;
mod symbols;
#[cfg(feature = "client")]
mod ws;

pub use error::KrakenError;
pub use symbols::{PairMap, PairNames};

#[cfg(feature = "client")]
pub use budget::{Backoff, RequestBudget};
#[cfg(feature = "client")]
pub use poller::RestPollSource;
#[cfg(feature = "client")]
pub use reach::{Cause as Unreachable, connect_cause, rest_cause};
#[cfg(feature = "client")]
pub use rest::{RestClient, RestStats, Retries};
#[cfg(feature = "client")]
pub use ws::{KrakenWsSource, WsFeedConfig, WsPair};
