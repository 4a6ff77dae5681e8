//! nanotrader: a real-time crypto trading bot. The binary is a thin shell over this library.
//!
//! Data flows one way: `market` sources -> `engine` (bars, `strategy`, `broker`) -> observer
//! bus -> `store` writer, `logs` (and, next, the dashboard).

pub mod app;
pub use nanotrader_backtest as backtest;
pub mod backtest_command;
pub use nanotrader_broker as broker;
pub mod cli;
pub mod config;
pub use nanotrader_engine as engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub use nanotrader_format as human_format;
pub use nanotrader_kraken as kraken;
pub mod logs;
pub mod options;
pub use nanotrader_market as market;
pub use nanotrader_perf as perf;
pub mod report;
pub mod sources;
pub use nanotrader_store as store;
pub use nanotrader_strategy as strategy;
pub use nanotrader_web as web;
