//! Kraken: the exchange's quirks stay in here. Same shape as every adapter: constants, typed
//! errors, parsing of recorded formats, symbol mapping, the request budget, REST and WebSocket
//! clients and the live source. `private` holds the account side: credentials, the `API-Sign`,
//! the nonce store, the private rate counters and the signed REST client a live broker trades
//! through. The mock exchange that tests talk to is a crate of its own
//! (`nanotrader-kraken-mock`), a dev-dependency only.
//!
//! Without the default `client` feature only Kraken's formats, errors and pair names are built
//! (no network crates): what the people-facing number formats need for a pair's tick. The
//! private API's signing, nonce store and types build without it too; its client does not.
//!
//! It owns how Kraken is spoken to and what its messages mean, turned into the market crate's
//! events. It must not know the engine, the store, the strategies or the command line.

#[cfg(feature = "client")]
pub mod budget;
pub mod consts;
pub mod error;
pub mod ohlc_check;
pub mod parse;
#[cfg(feature = "client")]
pub mod poller;
pub mod private;
#[cfg(feature = "client")]
pub mod reach;
#[cfg(feature = "client")]
pub mod rest;
pub mod symbols;
#[cfg(feature = "client")]
pub mod ws;
