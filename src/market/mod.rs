//! Market data: event types, the `Source` seam and its implementations.

pub mod bars;
pub mod csv;
mod pacing;
pub(crate) mod parse;
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
