//! Market data: the event types every other crate speaks (bars, trades, quotes, times,
//! intervals), the `Source` seam and its implementations (CSV reading, replay, the simulator),
//! and the bar aggregator.
//!
//! It owns how market data is read and what it means. It must not know about strategies,
//! brokers, the store, the engine or any exchange: it is the bottom of the one-way flow, and
//! depends on no other nanotrader crate.

pub mod bars;
pub mod csv;
mod pacing;
pub mod parse;
pub mod replay;
pub mod sim;
pub mod source;
pub mod task_source;
pub mod types;

pub use self::csv::{ColumnSpec, CsvKind, CsvOptions, CsvReader};
pub use bars::{BarAggregator, BarEvent};
pub use pacing::Speed;
pub use replay::{DEMO_DATA, DEMO_DATA_NAME, ReplayConfig, ReplaySource};
pub use sim::{SimConfig, SimSource};
pub use source::{Source, SourceError, SourceInfo};
pub use types::{Bar, FeedStatus, Interval, MarketEvent, Quote, Side, Timestamp, Trade};
