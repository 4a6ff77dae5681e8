//! Batch mode: the engine's strategy, broker and account code run over history as fast as the
//! hardware allows, alone or as a parameter sweep, with a terminal summary, JSON and an HTML report.

pub mod bar_line;
pub mod cache;
pub mod columns;
pub mod command;
pub mod fast_csv;
pub mod html;
pub mod load;
pub mod mapped;
pub mod report;
pub mod simulate;
pub mod summary;
pub mod sweep;
