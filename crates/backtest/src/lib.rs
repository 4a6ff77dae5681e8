//! Batch mode: the engine's strategy, broker and account code run over history as fast as the
//! hardware allows, alone or as a parameter sweep, with a terminal summary, JSON and an HTML report.
//!
//! It owns reading history fast (the parallel CSV reader, the binary cache, fixed-point bar
//! columns), the signal kernel and the account simulation, sweeps, and what a backtest prints
//! and writes. It knows the market, strategy, broker, perf and format crates, and the engine
//! only for `Trading` (what trades and how); it must not know the command line, the web
//! server, any exchange's client or the store's writer: `cargo build -p nanotrader-backtest`
//! compiles neither axum nor tungstenite.

pub mod bar_line;
pub mod cache;
pub mod columns;
pub mod fast_csv;
pub mod html;
pub mod load;
pub mod mapped;
pub mod report;
pub mod simulate;
pub mod summary;
pub mod sweep;
