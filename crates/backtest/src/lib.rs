//! Batch mode: the engine's strategy, broker and account code run over history as fast as the
//! hardware allows, alone or as a parameter sweep, with a terminal summary, JSON and an HTML report.
//!
//! It owns reading history fast (the parallel CSV reader, the binary cache, fixed-point bar
//! columns), the signal kernel and the account simulation, sweeps, and what a backtest prints
//! and writes. It knows the market, strategy, broker, perf and format crates, and the engine
//! only for `Trading` (what trades and how); it must not know the command line, the web
//! server, any exchange's client or the store's writer: `cargo build -p nanotrader-backtest`
//! compiles neither axum nor tungstenite.

// How history is read fast: internal, behind `load`.
mod bar_line;
mod columns;
mod fast_csv;
mod mapped;

// The public API is a few deliberate modules, each one step of a backtest, whose functions are
// called by the command (and the benches) by their module's name (`load::load`,
// `simulate::run_on_cores`, `summary::print_single`), plus the types they share.
/// The binary copy of loaded bars under the data dir: where it lives and how it is read.
pub mod cache;
/// The HTML report page rendered from its data (an askama template).
pub mod html;
/// Bars from a CSV file (fast path, general reader, or cache) into columns.
pub mod load;
/// What the report page shows, from a backtest's result.
pub mod report_data;
/// One backtest: the signal kernel and the account over the columns.
pub mod simulate;
/// What a backtest prints: the terminal summary and JSON.
pub mod summary;
/// Parameter sweeps over the SMA windows, on every core.
pub mod sweep;

pub use columns::{BarColumns, decimal_to_f64, to_decimal, to_fixed};
