//! Command-line interface. Every run option is also a config-file key (same name) and an
//! environment variable (`NANOTRADER_` + the name in upper snake case); a flag beats the
//! environment, which beats the config file, which beats a preset, which beats the defaults.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::broker::Sizing;
use crate::config::de_parse;
use crate::market::Interval;
use crate::market::Speed;

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
    pub since: Option<crate::market::Timestamp>,
    /// Last bar, exclusive.
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<crate::market::Timestamp>,
    /// Bar interval (1m, 5m, 1h, ...) [default: the data's own; 1m for trades].
    #[arg(long)]
    pub interval: Option<Interval>,
    /// Which columns of --data to read, as `run --columns` takes them.
    #[arg(long, value_name = "COLUMNS", conflicts_with = "from_store")]
    pub columns: Option<crate::market::ColumnSpec>,

    /// A named set of defaults; `seed` reproduces the original program exactly.
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Strategy [default: sma-cross].
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyKind>,
    /// Short SMA window: 10, a list 5,10,20 or a range 5..50 (inclusive, :STEP optional)
    /// [default: 10].
    #[arg(long)]
    pub short: Option<crate::backtest::sweep::Axis>,
    /// Long SMA window, as --short [default: 20].
    #[arg(long)]
    pub long: Option<crate::backtest::sweep::Axis>,
    /// Step of ranges written without one [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub step: Option<u64>,
    /// Fast EMA period for ema-cross [default: 12].
    #[arg(long)]
    pub fast: Option<usize>,
    /// Slow EMA period for ema-cross [default: 26].
    #[arg(long)]
    pub slow: Option<usize>,
    /// RSI period for rsi-threshold [default: 14].
    #[arg(long)]
    pub rsi_period: Option<usize>,
    /// RSI level below which rsi-threshold buys [default: 30].
    #[arg(long)]
    pub oversold: Option<Decimal>,
    /// RSI level above which rsi-threshold sells [default: 70].
    #[arg(long)]
    pub overbought: Option<Decimal>,

    /// Starting cash in USD [default: 100000].
    #[arg(long)]
    pub cash: Option<Decimal>,
    /// Fee per fill as a fraction of its value [default: 0.004; seed: 0].
    #[arg(long)]
    pub fee_rate: Option<Decimal>,
    /// Order size: fraction:F of equity, fixed:Q or seed [default: fraction:1].
    #[arg(long)]
    pub sizing: Option<Sizing>,
    /// First bar (1-based) on which the strategy may trade [default: 1; seed: 22].
    #[arg(long)]
    pub decide_from_bar: Option<u64>,

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
    pub metric: crate::backtest::sweep::RankBy,
    /// Sweep results listed.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
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
    pub since: crate::market::Timestamp,
    /// End of the range, exclusive [default: the last closed bar].
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<crate::market::Timestamp>,
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
pub fn parse_time_arg(text: &str) -> Result<crate::market::Timestamp, String> {
    use crate::market::Timestamp;
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
    /// CSV with header ts,side,qty,price,fee,cash_after,position_after (ts = unix seconds of the
    /// bar the fill was decided on). Without it, a table for people.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Kraken's WebSocket v2 trade and ticker streams, bars built from trades, REST to fill gaps.
    Kraken,
    /// Replay a CSV file of bars or trades (--data), or the built-in data set.
    Replay,
    /// A seeded random walk (geometric Brownian motion), endless unless --sim-duration.
    Sim,
    /// Kraken's public REST Ticker, polled (the last trade price; bars without volume).
    KrakenRest,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The original program exactly: SMA 10/20, seed sizing, no fees, 100,000 USD, decisions
    /// from the 22nd bar.
    Seed,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Long while SMA(short) > SMA(long).
    SmaCross,
    /// Long while EMA(fast) > EMA(slow).
    EmaCross,
    /// Buy when RSI falls below --oversold, sell when it rises above --overbought.
    RsiThreshold,
}

/// Options of `run` and `demo`. `Option` everywhere so that "not given" can fall through to the
/// environment, the config file, a preset and the defaults, in that order.
#[derive(Debug, Default, Clone, Args, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunArgs {
    /// Market data source [default: kraken for run (replay when --data is given), replay for demo].
    #[arg(long, env = "NANOTRADER_SOURCE", value_enum)]
    pub source: Option<SourceKind>,

    /// CSV file to replay: bars (ts,open,high,low,close,volume) or trades (ts_ns,price,volume,side)
    /// [default: the built-in BTC/USD data set].
    #[arg(long, env = "NANOTRADER_DATA", value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// Replay speed: a factor of real time (60 = one minute per second) or `max` [default: max
    /// for run, 60 for demo].
    #[arg(long, env = "NANOTRADER_SPEED")]
    #[serde(deserialize_with = "de_parse")]
    pub speed: Option<Speed>,

    /// Start the data again when it ends (timestamps move on) [default: false for run, true for demo].
    #[arg(long = "loop", env = "NANOTRADER_LOOP", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(rename = "loop")]
    pub looping: Option<bool>,

    /// Start a new run instead of resuming the last unfinished one with the same settings.
    #[arg(long)]
    #[serde(skip)]
    pub fresh: bool,

    /// A named set of defaults; `seed` reproduces the original program exactly.
    #[arg(long, env = "NANOTRADER_PRESET", value_enum)]
    pub preset: Option<Preset>,

    /// Pair traded, as users write it [default: BTC/USD].
    #[arg(long, env = "NANOTRADER_PAIR")]
    pub pair: Option<String>,

    /// Bar interval: 1m, 5m, 1h, ... [default: 1m].
    #[arg(long, env = "NANOTRADER_INTERVAL")]
    #[serde(deserialize_with = "de_parse")]
    pub interval: Option<Interval>,

    /// Strategy [default: sma-cross].
    #[arg(long, env = "NANOTRADER_STRATEGY", value_enum)]
    pub strategy: Option<StrategyKind>,

    /// Short SMA window, in bars [default: 10].
    #[arg(long, env = "NANOTRADER_SHORT")]
    pub short: Option<usize>,

    /// Long SMA window, in bars [default: 20].
    #[arg(long, env = "NANOTRADER_LONG")]
    pub long: Option<usize>,

    /// Fast EMA period for ema-cross [default: 12].
    #[arg(long, env = "NANOTRADER_FAST")]
    pub fast: Option<usize>,

    /// Slow EMA period for ema-cross [default: 26].
    #[arg(long, env = "NANOTRADER_SLOW")]
    pub slow: Option<usize>,

    /// RSI period for rsi-threshold [default: 14].
    #[arg(long, env = "NANOTRADER_RSI_PERIOD")]
    pub rsi_period: Option<usize>,

    /// RSI level below which rsi-threshold buys [default: 30].
    #[arg(long, env = "NANOTRADER_OVERSOLD")]
    #[serde(deserialize_with = "de_parse")]
    pub oversold: Option<Decimal>,

    /// RSI level above which rsi-threshold sells [default: 70].
    #[arg(long, env = "NANOTRADER_OVERBOUGHT")]
    #[serde(deserialize_with = "de_parse")]
    pub overbought: Option<Decimal>,

    /// Starting cash in USD [default: 100000].
    #[arg(long, env = "NANOTRADER_CASH")]
    #[serde(deserialize_with = "de_parse")]
    pub cash: Option<Decimal>,

    /// Fee per fill as a fraction of its value [default: 0.004, Kraken's spot taker fee at the
    /// lowest volume tier].
    #[arg(long, env = "NANOTRADER_FEE_RATE")]
    #[serde(deserialize_with = "de_parse")]
    pub fee_rate: Option<Decimal>,

    /// Order size: `fraction:F` of equity (1 = all in), `fixed:Q` BTC, or `seed` (the original
    /// rule: round(cash / price) x 0.001) [default: fraction:1].
    #[arg(long, env = "NANOTRADER_SIZING")]
    #[serde(deserialize_with = "de_parse")]
    pub sizing: Option<Sizing>,

    /// First bar (1-based) on which the strategy may trade [default: 1; seed: 22].
    #[arg(long, env = "NANOTRADER_DECIDE_FROM_BAR")]
    pub decide_from_bar: Option<u64>,

    /// Which columns of --data hold the time, open, high, low, close and volume (and optionally
    /// the trade count), or for trades the time, price and volume (and optionally the side): header
    /// names or 1-based positions, e.g. `Date,Open,High,Low,Close,Volume` or `1,2,3,4,5,6`
    /// [default: found from the header or the file's shape].
    #[arg(long, env = "NANOTRADER_COLUMNS", value_name = "COLUMNS")]
    #[serde(deserialize_with = "de_parse")]
    pub columns: Option<crate::market::ColumnSpec>,

    /// Skip (and count) malformed CSV rows instead of stopping at the first one.
    #[arg(long, env = "NANOTRADER_SKIP_BAD_ROWS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_bad_rows: Option<bool>,

    /// Seconds between status lines [default: 5].
    #[arg(long, env = "NANOTRADER_STATUS_SECS")]
    pub status_secs: Option<f64>,

    /// Address of the dashboard: the page, its live stream, the JSON API and /metrics;
    /// `127.0.0.1:0` takes a free port. Anything but loopback needs --web-token
    /// [default: 127.0.0.1:8080].
    #[arg(long, env = "NANOTRADER_LISTEN", help_heading = "Dashboard", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,

    /// Run without the dashboard.
    #[arg(long, env = "NANOTRADER_NO_WEB", help_heading = "Dashboard", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub no_web: Option<bool>,

    /// Keep the dashboard up after a finite run ends, until Ctrl-C.
    #[arg(long, env = "NANOTRADER_STAY", help_heading = "Dashboard", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub stay: Option<bool>,

    /// Access token for the dashboard (at least 16 of A-Z a-z 0-9 - . _ ~): required to listen
    /// beyond loopback, and then asked of every API, stream and control request. Prefer the
    /// environment variable to the flag (a flag shows in the process list).
    #[arg(
        long,
        env = "NANOTRADER_WEB_TOKEN",
        hide_env_values = true,
        help_heading = "Dashboard",
        value_name = "TOKEN"
    )]
    pub web_token: Option<String>,

    /// Frames queued per page before it counts as behind and is sent a snapshot (tuning, tests).
    #[arg(long, env = "NANOTRADER_WEB_QUEUE_FRAMES", hide = true)]
    pub web_queue_frames: Option<usize>,

    /// Kraken REST base URL (any Kraken-compatible endpoint) [default: https://api.kraken.com].
    #[arg(
        long,
        env = "NANOTRADER_KRAKEN_REST_URL",
        help_heading = "Kraken",
        value_name = "URL"
    )]
    pub kraken_rest_url: Option<String>,

    /// Kraken WebSocket v2 URL [default: wss://ws.kraken.com/v2].
    #[arg(long, env = "NANOTRADER_KRAKEN_WS_URL", help_heading = "Kraken", value_name = "URL")]
    pub kraken_ws_url: Option<String>,

    /// Seconds without any message (Kraken sends a heartbeat every second) after which the
    /// WebSocket is treated as dead and reconnected [default: 15].
    #[arg(long, env = "NANOTRADER_FEED_TIMEOUT_SECS", help_heading = "Kraken")]
    pub feed_timeout_secs: Option<f64>,

    /// Seconds between two Ticker polls of --source kraken-rest; never below Kraken's public
    /// limit of one request per second [default: 1].
    #[arg(long, env = "NANOTRADER_POLL_SECS", help_heading = "Kraken")]
    pub poll_secs: Option<f64>,

    /// Simulator: random seed [default: 1].
    #[arg(long, env = "NANOTRADER_SIM_SEED", help_heading = "Simulator")]
    pub sim_seed: Option<u64>,

    /// Simulator: starting price [default: 30000].
    #[arg(long, env = "NANOTRADER_SIM_PRICE", help_heading = "Simulator")]
    #[serde(deserialize_with = "de_parse")]
    pub sim_price: Option<Decimal>,

    /// Simulator: annualised drift, e.g. 0.1 = +10%/year [default: 0].
    #[arg(
        long,
        env = "NANOTRADER_SIM_DRIFT",
        help_heading = "Simulator",
        allow_negative_numbers = true
    )]
    pub sim_drift: Option<f64>,

    /// Simulator: annualised volatility, e.g. 0.8 = 80% [default: 0.8].
    #[arg(long, env = "NANOTRADER_SIM_VOLATILITY", help_heading = "Simulator")]
    pub sim_volatility: Option<f64>,

    /// Simulator: mean seconds between ticks [default: 1].
    #[arg(long, env = "NANOTRADER_SIM_TICK_SECS", help_heading = "Simulator")]
    pub sim_tick_secs: Option<f64>,

    /// Simulator: market time to simulate, e.g. 6h or 30d [default: endless].
    #[arg(long, env = "NANOTRADER_SIM_DURATION", help_heading = "Simulator")]
    #[serde(deserialize_with = "de_parse")]
    pub sim_duration: Option<Interval>,
}
