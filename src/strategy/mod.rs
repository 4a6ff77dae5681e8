//! Strategies turn closed bars into a target signal; the engine trades the signal's changes.

use crate::market::Bar;

/// Most indicator lines a strategy reports per bar (for the logs and the dashboard).
pub const MAX_LINES: usize = 3;

/// What a strategy wants to hold after a bar: the seed's `signal` column.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Signal {
    /// 0: hold nothing.
    #[default]
    Flat,
    /// 1: hold a long position.
    Long,
}

impl Signal {
    pub fn as_i8(self) -> i8 {
        match self {
            Signal::Flat => 0,
            Signal::Long => 1,
        }
    }
}

/// The value of each indicator line after a bar, `None` while it is still warming up.
/// Display-only (f64); decisions use the exact arithmetic inside the strategy.
pub type LineValues = [Option<f64>; MAX_LINES];

pub trait Strategy: Send {
    /// Short human name, e.g. `sma-cross 10/20`.
    fn name(&self) -> String;
    /// Names of the indicator lines, in the order of `line_values` (at most `MAX_LINES`).
    fn line_names(&self) -> Vec<String>;
    /// Feeds one closed bar in O(1) and returns the target signal after it.
    fn on_bar(&mut self, bar: &Bar) -> Signal;
    /// The indicator lines after the last bar.
    fn line_values(&self) -> LineValues;
}
