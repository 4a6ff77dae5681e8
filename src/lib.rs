//! nanotrader: a real-time crypto trading bot. This library is the `nanotrader` binary's own
//! code (the command line, the config file, the commands and their text output) over the
//! workspace's crates; see docs/ARCHITECTURE.md.
//!
//! It owns what a person types and reads: flags, environment, the config file, the commands and
//! their text output, and which source and broker a run gets. It must not hold trading logic,
//! storage or exchange protocols: those are the crates'. Its public API is what the binary's
//! `main` calls ([`execute`], [`Cli`]) and the fuzz targets (`fuzzing`, hidden).

mod alerts;
mod app;
mod backtest_command;
mod brokers;
mod cli;
mod config;
mod feed;
#[doc(hidden)]
pub mod fuzzing;
mod history;
mod lane;
mod logs;
mod options;
mod output;
mod serve;
mod sources;
mod stores;

pub use app::{AppError, execute};
pub use cli::Cli;
