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

mod cache;
mod grid;
mod html;
mod load;
mod report_data;
mod research_summary;
mod simulate;
mod summary;
mod sweep;
mod sweep_kernel;
mod walk_forward;

// The public API, one name per step of a backtest: load the bars, run one backtest or a sweep,
// summarize and print, build and draw the report, find the cache.
pub use cache::{CacheKey, dir_in as cache_dir, path_for as cache_path, read as read_cache};
pub use columns::{BarColumns, decimal_to_f64, to_decimal, to_fixed};
pub use grid::{
    Combination, EXIT_PARAMS, GridResult, GridRun, ParamAxis, ParamKind, ParamValue, StrategyGrid, is_grid_spec,
    parse_values as parse_param_values, rank as rank_grid, run as run_grid,
};
pub use html::{
    Candle, FillRow, FoldRow, GridData, GridRow, LineSeries, Point, PriceSeries, ReportData, SummaryRow, SweepData,
    SweepRow, WalkForwardData, render as render_report,
};
pub use load::{
    CacheMode, DEFAULT_CACHE_MAX_BYTES, LoadOptions, LoadPath, Loaded, load as load_bars, read_with_engine_reader,
};
pub use mapped::MappedText;
pub use report_data::{
    build as report_data, grid_data as grid_report_data, sweep_data as sweep_report_data,
    walk_forward_data as walk_forward_report_data,
};
pub use research_summary::{GridSummary, WalkForwardSummary, print_grid, print_walk_forward};
pub use simulate::{
    BacktestResult, Keep, Settings, run as run_backtest, run_from as run_backtest_from,
    run_on_cores as run_backtest_on_cores,
};
pub use summary::{
    DataInfo, SingleSummary, SweepSummary, Timings, print_json, print_single, print_sweep, single as summarize_single,
    sweep as summarize_sweep,
};
pub use sweep::{
    Axis, ComboResult, Interrupted, MAX_COMBINATIONS, RankBy, combinations as sweep_combinations,
    rank as rank_combinations, run as run_combinations,
};
pub use walk_forward::{FoldRanges, FoldResult, Part, Stitched, WalkForward, fold_ranges, run as run_walk_forward};
