//! Command-line interface: the commands and their own arguments. The trading options they share
//! are groups defined once in `options`, each also a config-file key and an environment variable.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::options::{BarOptions, BrokerOptions, RunArgs, StoreOptions, StrategyOptions};
use nanotrader_market::Interval;

#[derive(Debug, Parser)]
#[command(
    name = "nanotrader",
    version,
    about = "A real-time crypto trading bot: market data -> SMA crossover -> paper account, stored in SQLite.",
    long_about = "A real-time crypto trading bot: market data -> streaming strategy -> paper account, \
                  everything stored in SQLite so a restart loses nothing and duplicates nothing.\n\n\
                  Start with `nanotrader demo`: it replays two real days of BTC/USD (Coinbase, Sept 2017) \
                  at 60x through the whole pipeline. Paper trading only: no order ever reaches an exchange.",
    after_help = "Config precedence: flag > NANOTRADER_* environment variable > --config file > --preset > default.\n\
                  Config file: TOML with the same names as the flags, e.g.\n  speed = \"max\"\n  short = 10\n  long = 30\n  data-dir = \"/var/lib/nanotrader\""
)]
pub struct Cli {
    /// TOML config file whose keys are the long flag names (e.g. `speed = "max"`).
    #[arg(long, global = true, env = "NANOTRADER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Directory holding the SQLite store [default: ./nanotrader-data].
    #[arg(long, global = true, env = "NANOTRADER_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    #[command(flatten)]
    pub store: StoreOptions,

    /// More logging: -v for debug, -vv for trace.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors (no trade or status lines).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay the built-in real BTC/USD data set through the whole pipeline, looping at 60x
    /// (the main job; Ctrl-C stops it, the same command resumes it).
    Demo(RunArgs),
    /// Run the engine on a market-data source. A finite replay ends the run with a summary and
    /// exit code 0; a killed or interrupted run resumes where it stopped unless --fresh.
    Run(RunArgs),
    /// Export the fills of a stored run (the latest run unless --run).
    Fills(FillsArgs),
    /// Export the stored bars of a run's series (the latest run, or the latest with --pair).
    Bars(BarsArgs),
    /// Download Kraken bars for a past range into a CSV file (--out) or the store (--store):
    /// OHLC for recent ranges, the Trades endpoint for older ones. Resumable and idempotent.
    History(HistoryArgs),
    /// List the stored runs.
    Runs,
    /// Run the strategy and paper broker over history as fast as the hardware allows, or a grid
    /// of SMA windows in parallel (`--short 5..50 --long 10..200`), and report the results.
    Backtest(BacktestArgs),
    /// Publish Kraken's market data (trades and closed bars of --pair) to NATS JetStream, for
    /// any number of bots to trade from (`run --source nats`).
    Feed(crate::feed::FeedArgs),
    /// Serve one dashboard for every run in a PostgreSQL store (--db-url postgres://...),
    /// whichever process or machine writes it: the runs list, and each run's board, live.
    Serve(crate::serve::ServeArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum CacheArg {
    /// Read FILE.ntbars when it matches the CSV, write it when missing or stale.
    Auto,
    /// Parse the CSV and leave the cache alone.
    Off,
    /// Parse the CSV and rewrite the cache.
    Refresh,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Fills happen at the close of the bar whose signal changed, as in `run`. \
                        Metrics are annualised for a market open around the clock (365 days)."
)]
pub struct BacktestArgs {
    /// Bars or trades CSV (plain or .gz), in the formats `run --data` reads.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "from_store",
        conflicts_with = "from_store"
    )]
    pub data: Option<PathBuf>,
    /// Backtest stored bars instead (history downloads and run series under --data-dir).
    #[arg(long)]
    pub from_store: bool,
    /// Pair of the stored series (with --from-store).
    #[arg(long, default_value = "BTC/USD", requires = "from_store")]
    pub pair: String,
    /// First bar, inclusive: a date (2024-01-01), an RFC 3339 time or unix seconds.
    #[arg(long, value_parser = parse_time_arg)]
    pub since: Option<nanotrader_market::Timestamp>,
    /// Last bar, exclusive.
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<nanotrader_market::Timestamp>,
    #[command(flatten)]
    pub bars: BarOptions,
    #[command(flatten)]
    pub strategy: StrategyOptions,
    /// Step of ranges written without one [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub step: Option<u64>,
    #[command(flatten)]
    pub broker: BrokerOptions,

    /// Print the results as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Write the fills as CSV (ts,side,qty,price,fee,cash_after,position_after); for a sweep,
    /// the best combination's.
    #[arg(long, value_name = "FILE")]
    pub trades: Option<PathBuf>,
    /// Write a self-contained HTML report (charts, equity, drawdown; a heatmap for sweeps).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// What a sweep ranks by.
    #[arg(long, value_enum, default_value = "sharpe")]
    pub metric: nanotrader_backtest::RankBy,
    /// Sweep results listed.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Judge the grid out of sample: split the bars into N folds; for each of folds 2..N,
    /// optimise on every bar before it (by --metric) and trade the best on it (docs/research.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub walk_forward: Option<u64>,
    /// A binary copy of the loaded bars, kept under --data-dir (cache/), so the next backtest
    /// of the same file skips parsing; used while the file's size and modification time match.
    #[arg(long, value_enum, default_value = "auto")]
    pub cache: CacheArg,
    /// The most the cache folder may hold, in MiB; the least recently used caches go first.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    pub cache_max_mb: u64,
    /// Worker threads for sweeps, and at most two for a single backtest [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: Option<u64>,
}

// The doc comments are the command-line help, where a URL is plain text.
#[allow(rustdoc::bare_urls)]
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Pair, as users write it.
    #[arg(long, default_value = "BTC/USD")]
    pub pair: String,
    /// Bar interval (1m, 5m, 1h, ...).
    #[arg(long, default_value = "1m")]
    pub interval: Interval,
    /// Start of the range (UTC): a date (2024-01-01), an RFC 3339 time or unix seconds.
    #[arg(long, value_parser = parse_time_arg)]
    pub since: nanotrader_market::Timestamp,
    /// End of the range, exclusive [default: the last closed bar].
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<nanotrader_market::Timestamp>,
    /// CSV file to write (ts,open,high,low,close,volume,trades); an existing one is continued.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "store",
        conflicts_with = "store"
    )]
    pub out: Option<PathBuf>,
    /// Write into the store's Kraken bar series instead (under --data-dir).
    #[arg(long)]
    pub store: bool,
    /// Kraken REST base URL [default: https://api.kraken.com].
    #[arg(long, env = "NANOTRADER_KRAKEN_REST_URL", value_name = "URL")]
    pub kraken_rest_url: Option<String>,
}

/// `2024-01-01`, `2024-01-01T12:30:00Z` or unix seconds, as UTC.
pub fn parse_time_arg(text: &str) -> Result<nanotrader_market::Timestamp, String> {
    use nanotrader_market::Timestamp;
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(Timestamp::from_secs(secs));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return t
            .timestamp_nanos_opt()
            .map(Timestamp::from_nanos)
            .ok_or_else(|| format!("'{text}' is out of range"));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Timestamp::from_secs(t.and_utc().timestamp()))
        .ok_or_else(|| format!("'{text}' is not a date (2024-01-01), an RFC 3339 time or unix seconds"))
}

#[derive(Debug, Args)]
pub struct BarsArgs {
    /// Run id whose bar series to export [default: the latest run].
    #[arg(long, conflicts_with = "pair")]
    pub run: Option<i64>,
    /// The latest run trading this pair, e.g. BTC/USD.
    #[arg(long)]
    pub pair: Option<String>,
    /// CSV with header ts,open,high,low,close,volume (ts = bar open, unix seconds). Without it,
    /// a summary of what is stored.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct FillsArgs {
    /// Run id (see `nanotrader runs`) [default: the latest run].
    #[arg(long)]
    pub run: Option<i64>,
    /// CSV with header ts,side,qty,price,fee,cash_after,position_after,order_id,trade_id (ts =
    /// unix seconds of the bar the fill was decided on; the ids are the broker's). Without it, a
    /// table for people.
    #[arg(long)]
    pub csv: bool,
}
