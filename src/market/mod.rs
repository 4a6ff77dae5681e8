//! Market data: event types, the `Source` seam and its implementations.

pub mod source;
pub mod types;

pub use source::{Source, SourceError, SourceInfo};
pub use types::{Bar, FeedStatus, Interval, MarketEvent, Quote, Side, Timestamp, Trade};
