//! Kraken: the exchange's quirks stay in here. Same shape as every adapter: constants, typed
//! errors, parsing of recorded formats, symbol mapping, the request budget, REST and WebSocket
//! clients and the live source. The mock exchange that tests talk to is a crate of its own
//! (`nanotrader-kraken-mock`), a dev-dependency only.
//!
//! It owns how Kraken is spoken to and what its messages mean, turned into the market crate's
//! events. It must not know the engine, the store, the strategies or the command line.

pub mod budget;
pub mod consts;
pub mod error;
pub mod ohlc_check;
pub mod parse;
pub mod poller;
pub mod reach;
pub mod rest;
pub mod symbols;
pub mod ws;
