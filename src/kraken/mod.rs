//! Kraken: the exchange's quirks stay in here. Same shape as every adapter: constants, typed
//! errors, parsing of recorded formats, symbol mapping, REST and WebSocket clients, and a mock
//! exchange for tests.

pub mod budget;
pub mod consts;
pub mod error;
pub mod history;
pub mod mock;
pub mod ohlc_check;
pub mod parse;
pub mod poller;
pub mod reach;
pub mod rest;
pub mod symbols;
pub mod ws;
