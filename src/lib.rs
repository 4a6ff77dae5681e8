//! nanotrader: a real-time crypto trading bot. The binary is a thin shell over this library.
//!
//! Data flows one way: `market` sources -> `engine` (bars, `strategy`, `broker`) -> observer
//! bus -> `store` writer, `logs` (and, next, the dashboard).

pub mod app;
pub mod backtest;
pub mod broker;
pub mod cli;
pub mod config;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod human_format;
pub mod kraken;
pub mod logs;
pub mod market;
pub mod perf;
pub mod report;
pub mod store;
pub mod strategy;
pub mod web;
