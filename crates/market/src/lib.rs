//! Market data: the event types every other crate speaks (bars, trades, quotes, times,
//! intervals), the `Source` seam and its implementations (CSV reading, replay, the simulator),
//! and the bar aggregator.
//!
//! It owns how market data is read and what it means. It must not know about strategies,
//! brokers, the store, the engine or any exchange: it is the bottom of the one-way flow, and
//! depends on no other nanotrader crate.

mod bars;
/// The CSV reader and its parts (layout detection, row splitting, time parsing), public so the
/// backtest's fast path reads a file exactly as the general reader does.
pub mod csv;
mod pacing;
/// Exact numbers and times from exchange text, shared by every reader of it.
pub mod parse;
mod replay;
mod sim;
mod source;
mod task_source;
mod types;

pub use self::csv::{ColumnSpec, CsvKind, CsvOptions, CsvReader};
pub use bars::{BarAggregator, BarEvent};
pub use pacing::{InvalidSpeed, Speed};
pub use replay::{DEMO_DATA, DEMO_DATA_NAME, ReplayConfig, ReplaySource};
pub use sim::{SimConfig, SimSource};
pub use source::{Source, SourceError, SourceInfo};
pub use task_source::{EventSender, TaskSource};
pub use types::{Bar, ExitPlan, FeedStatus, Interval, MarketEvent, Quote, Side, Timestamp, Trade, TrailDistance};
