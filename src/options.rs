//! Every trading option, defined once: a field in one group below, with its flag, its
//! environment variable (`NANOTRADER_` + the name in upper snake case), its config-file key (the
//! flag's long name) and its help. `run`, `demo` and `backtest` flatten the groups they take.
//!
//! One mechanism layers them: each layer is the same struct with `None` for "not given", and
//! [`Merge`] fills what a higher layer left open from the next one down:
//! flag or environment (clap) > config file > `--preset` > [`defaults`](RunArgs::defaults).
//! Adding an option is adding a field to one group (and reading it where it is used).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use merge::Merge;
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::config::de_parse;
use nanotrader_backtest::Axis;
use nanotrader_broker::Sizing;
use nanotrader_market::{ColumnSpec, Interval, Speed};

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
    /// Closed bars from a `nanotrader feed` on NATS JetStream (--nats-url).
    Nats,
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
    /// MACD line crossing its signal line, with a trend filter (examples/strategies/macd_cross.toml).
    MacdCross,
    /// Buy below the lower Bollinger band with RSI oversold, sell at the middle band
    /// (examples/strategies/bollinger_reversion.toml).
    BollingerReversion,
    /// New highs on rising volume; out below the recent low or two ATRs under VWAP
    /// (examples/strategies/breakout.toml).
    Breakout,
}

impl StrategyKind {
    /// The name `--strategy` takes, which is also its built-in file's name.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::SmaCross => "sma-cross",
            StrategyKind::EmaCross => "ema-cross",
            StrategyKind::RsiThreshold => "rsi-threshold",
            StrategyKind::MacdCross => "macd-cross",
            StrategyKind::BollingerReversion => "bollinger-reversion",
            StrategyKind::Breakout => "breakout",
        }
    }
}

/// Which strategy, with which parameters (`run`, `demo`, `backtest`).
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct StrategyOptions {
    /// A named set of defaults; `seed` reproduces the original program exactly.
    #[arg(long, env = "NANOTRADER_PRESET", value_enum)]
    pub preset: Option<Preset>,

    /// Strategy [default: sma-cross]: a built-in one (each is also a file under
    /// examples/strategies/).
    #[arg(long, env = "NANOTRADER_STRATEGY", value_enum)]
    pub strategy: Option<StrategyKind>,

    /// A strategy file (TOML: entry and exit rules over indicators, with [params]); see
    /// examples/strategies/ and docs/strategies.md.
    #[arg(long, env = "NANOTRADER_STRATEGY_FILE", value_name = "FILE.toml")]
    pub strategy_file: Option<std::path::PathBuf>,

    /// A strategy file's parameter, NAME=VALUE (repeatable), over the file's default.
    #[arg(
        long = "param",
        env = "NANOTRADER_PARAM",
        value_name = "NAME=VALUE",
        value_delimiter = ';'
    )]
    #[serde(rename = "param")]
    pub params: Option<Vec<String>>,

    /// Short SMA window in bars [default: 10]; for a backtest sweep also a list 5,10,20 or a
    /// range 5..50 (inclusive, :STEP optional).
    #[arg(long, env = "NANOTRADER_SHORT")]
    #[serde(deserialize_with = "de_parse")]
    pub short: Option<Axis>,

    /// Long SMA window, as --short [default: 20].
    #[arg(long, env = "NANOTRADER_LONG")]
    #[serde(deserialize_with = "de_parse")]
    pub long: Option<Axis>,

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

    /// Stop-loss below the entry price: a percentage (2%) or an ATR multiple (3xatr), checked
    /// from the bar after the entry; fills at the stop, or at the open of a bar that opened below it.
    #[arg(long, env = "NANOTRADER_STOP_LOSS", value_name = "2%|3xatr")]
    #[serde(deserialize_with = "de_parse")]
    pub stop_loss: Option<nanotrader_strategy::Distance>,

    /// Take-profit above the entry price, as --stop-loss.
    #[arg(long, env = "NANOTRADER_TAKE_PROFIT", value_name = "4%|2xatr")]
    #[serde(deserialize_with = "de_parse")]
    pub take_profit: Option<nanotrader_strategy::Distance>,

    /// Trailing stop below the highest high since the entry, as --stop-loss.
    #[arg(long, env = "NANOTRADER_TRAILING_STOP", value_name = "1.5%|2xatr")]
    #[serde(deserialize_with = "de_parse")]
    pub trailing_stop: Option<nanotrader_strategy::Distance>,

    /// Exit at the close of the Nth bar in a trade.
    #[arg(long, env = "NANOTRADER_MAX_BARS_IN_TRADE", value_name = "N")]
    pub max_bars_in_trade: Option<u64>,

    /// After a losing trade, no entry for N bars.
    #[arg(long, env = "NANOTRADER_COOLDOWN_BARS", value_name = "N")]
    pub cooldown_bars: Option<u64>,

    /// RSI level above which rsi-threshold sells [default: 70].
    #[arg(long, env = "NANOTRADER_OVERBOUGHT")]
    #[serde(deserialize_with = "de_parse")]
    pub overbought: Option<Decimal>,
}

/// The paper account and when it may trade (`run`, `demo`, `backtest`).
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct BrokerOptions {
    /// Starting cash in USD [default: 100000].
    #[arg(long, env = "NANOTRADER_CASH")]
    #[serde(deserialize_with = "de_parse")]
    pub cash: Option<Decimal>,

    /// Fee per fill as a fraction of its value [default: 0.004, Kraken's spot taker fee at the
    /// lowest volume tier; seed: 0].
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

    /// Halt new entries once equity falls this far below its peak: `20%` (or `20`), for the rest
    /// of the run or until a Resume; checked at each bar's close, in backtests too [default: none].
    #[arg(
        long,
        env = "NANOTRADER_MAX_DRAWDOWN",
        value_name = "PCT",
        help_heading = "Protections"
    )]
    #[serde(deserialize_with = "de_parse")]
    pub max_drawdown: Option<Percent>,

    /// Halt new entries for the rest of the UTC day once equity is this many USD below the
    /// day's start [default: none for paper and backtests; a live broker's: 5 % of the day's
    /// starting equity].
    #[arg(long, env = "NANOTRADER_MAX_DAILY_LOSS_USD", help_heading = "Protections")]
    #[serde(deserialize_with = "de_parse")]
    pub max_daily_loss_usd: Option<Decimal>,
}

/// A percentage as written, `20%` or `20`, kept as the fraction (0.2).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Percent(pub Decimal);

impl std::str::FromStr for Percent {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let number = text.trim().trim_end_matches('%').trim();
        let value: Decimal = number
            .parse()
            .map_err(|_| format!("'{text}' is not a percentage: write 20% or 20"))?;
        Ok(Percent(value / Decimal::ONE_HUNDRED))
    }
}

/// How bars are read from a file (`run`, `demo`, `backtest`).
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct BarOptions {
    /// Bar interval: 1m, 5m, 1h, ... [default: 1m for run and demo; for backtest the data's own,
    /// 1m for trades].
    #[arg(long, env = "NANOTRADER_INTERVAL")]
    #[serde(deserialize_with = "de_parse")]
    pub interval: Option<Interval>,

    /// Which columns of --data hold the time, open, high, low, close and volume (and optionally
    /// the trade count), or for trades the time, price and volume (and optionally the side): header
    /// names or 1-based positions, e.g. `Date,Open,High,Low,Close,Volume` or `1,2,3,4,5,6`
    /// [default: found from the header or the file's shape].
    #[arg(long, env = "NANOTRADER_COLUMNS", value_name = "COLUMNS")]
    #[serde(deserialize_with = "de_parse")]
    pub columns: Option<ColumnSpec>,
}

/// Where a live run's market data comes from (`run`, `demo`).
// The doc comments are the command-line help, where a URL is plain text.
#[allow(rustdoc::bare_urls)]
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct SourceOptions {
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

    /// Pair traded, as users write it; several comma-separated run side by side [default: BTC/USD].
    #[arg(long, env = "NANOTRADER_PAIR")]
    pub pair: Option<String>,

    /// With several pairs: one cash rail of --cash for them all (paper only). What their open
    /// positions cost never adds up to more; an entry takes at most the free cash over the pairs
    /// without a position, and none when nothing is free [default: false: each pair its own cash].
    #[arg(long, env = "NANOTRADER_SHARED_CASH", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub shared_cash: Option<bool>,

    /// Skip (and count) malformed CSV rows instead of stopping at the first one.
    #[arg(long, env = "NANOTRADER_SKIP_BAD_ROWS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub skip_bad_rows: Option<bool>,

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

    /// NATS server of --source nats (and of `feed`) [default: nats://127.0.0.1:4222].
    #[arg(long, env = "NANOTRADER_NATS_URL", help_heading = "NATS", value_name = "URL")]
    pub nats_url: Option<String>,

    /// The JetStream stream the feed publishes to [default: MARKET_DATA].
    #[arg(long, env = "NANOTRADER_NATS_STREAM", help_heading = "NATS", value_name = "NAME")]
    pub nats_stream: Option<String>,

    /// The first token of the feed's subjects [default: md].
    #[arg(
        long,
        env = "NANOTRADER_NATS_SUBJECT_PREFIX",
        help_heading = "NATS",
        value_name = "TOKEN"
    )]
    pub nats_subject_prefix: Option<String>,

    /// --source nats: a new run starts with the bars from this time (unix seconds or ISO 8601)
    /// instead of the stream's first [default: the stream's beginning].
    #[arg(long, env = "NANOTRADER_SINCE", help_heading = "NATS", value_name = "TIME")]
    pub since: Option<String>,

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

    /// Seconds between status lines [default: 5].
    #[arg(long, env = "NANOTRADER_STATUS_SECS")]
    pub status_secs: Option<f64>,
}

/// Where a run's stops are watched.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopsVenue {
    /// The bot watches each bar and sends a market exit when a stop is reached.
    Bot,
    /// Kraken holds them as stop orders (a live broker only).
    Exchange,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerKind {
    /// The paper account: no keys, no signed client, no private request (the default).
    Paper,
    /// Live market data; every order is checked by Kraken's AddOrder with `validate=true` (never
    /// executed) and then filled on paper. The rehearsal before real money.
    KrakenValidate,
    /// Real orders on Kraken (needs --confirm-live and the API keys in the environment).
    Kraken,
}

/// Where orders go and the rails around real money (`run`).
// The doc comments are the command-line help, where a URL is plain text.
#[allow(rustdoc::bare_urls)]
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct LiveOptions {
    /// Where orders go: paper, kraken-validate (Kraken checks each order, paper fills it) or
    /// kraken (real orders; needs --confirm-live) [default: paper].
    #[arg(
        long = "broker",
        env = "NANOTRADER_BROKER",
        value_enum,
        help_heading = "Live trading"
    )]
    #[serde(rename = "broker")]
    pub broker_kind: Option<BrokerKind>,

    /// Confirms that --broker kraken may place real orders with real money.
    #[arg(long, env = "NANOTRADER_CONFIRM_LIVE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Live trading")]
    pub confirm_live: Option<bool>,

    /// Kraken's authenticated WebSocket v2 URL [default: wss://ws-auth.kraken.com/v2].
    #[arg(
        long,
        env = "NANOTRADER_KRAKEN_WS_AUTH_URL",
        value_name = "URL",
        help_heading = "Live trading"
    )]
    pub kraken_ws_auth_url: Option<String>,

    /// The account's Kraken tier, which sets the private rate limits the bot keeps under:
    /// starter, intermediate or pro [default: starter].
    #[arg(long, env = "NANOTRADER_KRAKEN_TIER", help_heading = "Live trading")]
    pub kraken_tier: Option<String>,

    /// Largest order value in USD a live broker sends [default: 100].
    #[arg(long, env = "NANOTRADER_MAX_ORDER_USD", help_heading = "Live trading")]
    #[serde(deserialize_with = "de_parse")]
    pub max_order_usd: Option<Decimal>,

    /// Most orders a live broker sends in any hour [default: 30].
    #[arg(long, env = "NANOTRADER_MAX_ORDERS_PER_HOUR", help_heading = "Live trading")]
    pub max_orders_per_hour: Option<u32>,

    /// Largest position in BTC an entry of a live broker may lead to [default: none].
    #[arg(long, env = "NANOTRADER_MAX_POSITION", help_heading = "Live trading")]
    #[serde(deserialize_with = "de_parse")]
    pub max_position: Option<Decimal>,

    /// How a live broker places orders: market, or limit (post-only at the best bid or ask)
    /// [default: market].
    #[arg(long, env = "NANOTRADER_ORDER_TYPE", help_heading = "Live trading")]
    pub order_type: Option<String>,

    /// How long a limit order rests before it is cancelled and --limit-fallback applies
    /// [default: 30].
    #[arg(long, env = "NANOTRADER_LIMIT_TIMEOUT_SECS", help_heading = "Live trading")]
    pub limit_timeout_secs: Option<u64>,

    /// What becomes of a limit order's unfilled rest after its time: market (sent at market) or
    /// skip (given up) [default: market].
    #[arg(long, env = "NANOTRADER_LIMIT_FALLBACK", help_heading = "Live trading")]
    pub limit_fallback: Option<String>,

    /// Where --stop-loss, --take-profit and --trailing-stop are watched: bot (a bar that reaches
    /// one makes the bot send a market exit) or exchange (placed at Kraken as stop-loss,
    /// take-profit and trailing-stop orders once the entry fills; --broker kraken or
    /// kraken-validate) [default: bot].
    #[arg(long, env = "NANOTRADER_STOPS", value_enum, help_heading = "Live trading")]
    pub stops: Option<StopsVenue>,

    /// Cancel the run's open orders when it stops (Ctrl-C) [default: true].
    #[arg(long, env = "NANOTRADER_CANCEL_ON_EXIT", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL", help_heading = "Live trading")]
    pub cancel_on_exit: Option<bool>,

    /// Webhook that gets a JSON event for each fill, start and stop, and feed outage and
    /// recovery, sent on its own task with retries (never slowing the engine). Shown redacted.
    #[arg(
        long,
        env = "NANOTRADER_NOTIFY_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Alerts"
    )]
    pub notify_url: Option<String>,

    /// The webhook's body: json, slack, discord or telegram [default: json].
    #[arg(long, env = "NANOTRADER_NOTIFY_FORMAT", help_heading = "Alerts")]
    pub notify_format: Option<String>,
}

/// The dashboard (`run`, `demo`).
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct WebOptions {
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
}

/// Options of `run` and `demo`: the groups, and `--fresh` (a command, not a setting: it is never
/// read from a file).
/// Where runs are stored (every command that reads or writes the store).
#[derive(Debug, Default, Clone, Args, Deserialize, Merge)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
#[merge(strategy = merge::option::overwrite_none)]
pub struct StoreOptions {
    /// The store: `sqlite://DIR` (the SQLite file in that data directory) or `postgres://...`
    /// (a PostgreSQL database many bots share) [default: the SQLite file in --data-dir; also read
    /// from DATABASE_URL].
    #[arg(
        long,
        global = true,
        env = "NANOTRADER_DB_URL",
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Store"
    )]
    pub db_url: Option<String>,
}

#[derive(Debug, Default, Clone, Args, Merge)]
pub struct RunArgs {
    #[command(flatten)]
    #[merge(strategy = Merge::merge)]
    pub source: SourceOptions,
    #[command(flatten)]
    #[merge(strategy = Merge::merge)]
    pub bars: BarOptions,
    #[command(flatten)]
    #[merge(strategy = Merge::merge)]
    pub strategy: StrategyOptions,
    #[command(flatten)]
    #[merge(strategy = Merge::merge)]
    pub broker: BrokerOptions,
    #[command(flatten)]
    #[merge(strategy = Merge::merge)]
    pub web: WebOptions,
    #[command(flatten)]
    #[merge(strategy = Merge::merge)]
    pub live: LiveOptions,

    /// Start a new run instead of resuming the last unfinished one with the same settings.
    #[arg(long)]
    #[merge(strategy = merge::bool::overwrite_false)]
    pub fresh: bool,
}

/// Which command the options are for: `demo` has its own defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Demo,
    Run,
    Backtest,
}

impl StrategyOptions {
    /// Every strategy default, in one place.
    pub fn defaults() -> Self {
        Self {
            preset: None,
            strategy: None,
            strategy_file: None,
            params: None,
            stop_loss: None,
            take_profit: None,
            trailing_stop: None,
            max_bars_in_trade: None,
            cooldown_bars: None,
            short: Some(Axis::List(vec![10])),
            long: Some(Axis::List(vec![20])),
            fast: Some(12),
            slow: Some(26),
            rsi_period: Some(14),
            oversold: Some(Decimal::from(30)),
            overbought: Some(Decimal::from(70)),
        }
    }
}

impl BrokerOptions {
    /// Every broker default, in one place (the figures are the broker's own defaults).
    pub fn defaults() -> Self {
        let base = nanotrader_broker::BrokerConfig::default();
        Self {
            cash: Some(base.initial_cash),
            fee_rate: Some(base.fee_rate),
            sizing: Some(base.sizing),
            decide_from_bar: Some(1),
            max_drawdown: None,
            max_daily_loss_usd: None,
        }
    }

    /// What a preset sets: below the config file, above the defaults.
    pub fn preset(preset: Option<Preset>) -> Self {
        match preset {
            None => Self::default(),
            Some(Preset::Seed) => {
                let seed = nanotrader_broker::BrokerConfig::seed();
                Self {
                    cash: Some(seed.initial_cash),
                    fee_rate: Some(seed.fee_rate),
                    sizing: Some(seed.sizing),
                    decide_from_bar: Some(22),
                    max_drawdown: None,
                    max_daily_loss_usd: None,
                }
            }
        }
    }
}

impl BarOptions {
    pub fn defaults(mode: Mode) -> Self {
        Self {
            // A backtest keeps the data's own interval unless told otherwise.
            interval: (mode != Mode::Backtest).then(Interval::default),
            columns: None,
        }
    }
}

impl SourceOptions {
    /// The defaults that do not depend on other options (the source itself does: see `config`).
    pub fn defaults(mode: Mode) -> Self {
        Self {
            speed: Some(match mode {
                Mode::Demo => Speed::Factor(60.0),
                Mode::Run | Mode::Backtest => Speed::Max,
            }),
            looping: Some(mode == Mode::Demo),
            pair: Some(crate::config::DEFAULT_PAIR.to_owned()),
            shared_cash: Some(false),
            skip_bad_rows: Some(false),
            sim_seed: Some(1),
            sim_price: Some(Decimal::from(30_000)),
            sim_drift: Some(0.0),
            sim_volatility: Some(0.8),
            sim_tick_secs: Some(1.0),
            status_secs: Some(5.0),
            ..Self::default()
        }
    }
}

impl LiveOptions {
    pub fn defaults() -> Self {
        Self {
            broker_kind: Some(BrokerKind::Paper),
            confirm_live: Some(false),
            kraken_ws_auth_url: Some(nanotrader_kraken::consts::WS_AUTH_URL.to_owned()),
            kraken_tier: Some("starter".to_owned()),
            max_order_usd: Some(Decimal::from(100)),
            max_orders_per_hour: Some(30),
            max_position: None,
            order_type: Some("market".to_owned()),
            limit_timeout_secs: Some(30),
            limit_fallback: Some("market".to_owned()),
            stops: Some(StopsVenue::Bot),
            cancel_on_exit: Some(true),
            notify_url: None,
            notify_format: Some("json".to_owned()),
        }
    }
}

impl WebOptions {
    pub fn defaults() -> Self {
        Self {
            no_web: Some(false),
            stay: Some(false),
            ..Self::default()
        }
    }
}

impl RunArgs {
    /// The defaults of `run` or `demo`.
    pub fn defaults(mode: Mode) -> Self {
        Self {
            source: SourceOptions::defaults(mode),
            bars: BarOptions::defaults(mode),
            strategy: StrategyOptions::defaults(),
            broker: BrokerOptions::defaults(),
            web: WebOptions::defaults(),
            live: LiveOptions::defaults(),
            fresh: false,
        }
    }

    /// These options over `file`, then the preset named in either, then the defaults.
    pub fn layered(mut self, file: RunArgs, mode: Mode) -> Self {
        self.merge(file);
        self.broker.merge(BrokerOptions::preset(self.strategy.preset));
        self.merge(Self::defaults(mode));
        self
    }
}

/// The config-file keys of an option group: its flags' long names.
pub fn keys<G: Args>() -> Vec<String> {
    G::augment_args(clap::Command::new("keys"))
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_fill_only_what_a_higher_one_left_open() {
        let cli = RunArgs {
            strategy: StrategyOptions {
                short: Some(Axis::List(vec![7])),
                preset: Some(Preset::Seed),
                ..Default::default()
            },
            ..Default::default()
        };
        let file = RunArgs {
            strategy: StrategyOptions {
                short: Some(Axis::List(vec![3])),
                long: Some(Axis::List(vec![40])),
                ..Default::default()
            },
            broker: BrokerOptions {
                fee_rate: Some(Decimal::new(1, 3)),
                ..Default::default()
            },
            ..Default::default()
        };
        let args = cli.layered(file, Mode::Run);
        assert_eq!(args.strategy.short, Some(Axis::List(vec![7])), "flag over file");
        assert_eq!(args.strategy.long, Some(Axis::List(vec![40])), "file over default");
        assert_eq!(args.broker.fee_rate, Some(Decimal::new(1, 3)), "file over preset");
        assert_eq!(args.broker.decide_from_bar, Some(22), "preset over default");
        assert_eq!(args.source.speed, Some(Speed::Max), "default");
    }

    #[test]
    fn group_keys_are_the_long_flags() {
        let source = keys::<SourceOptions>();
        assert!(source.contains(&"loop".to_owned()) && source.contains(&"sim-duration".to_owned()));
        assert!(keys::<StrategyOptions>().contains(&"rsi-period".to_owned()));
    }

    /// Every option of every group has the three names the docs promise: the flag, the
    /// environment variable and the config key (each group's keys are its flags).
    #[test]
    fn every_option_has_its_environment_variable() {
        let commands = [
            SourceOptions::augment_args(clap::Command::new("g")),
            BarOptions::augment_args(clap::Command::new("g")),
            StrategyOptions::augment_args(clap::Command::new("g")),
            BrokerOptions::augment_args(clap::Command::new("g")),
            WebOptions::augment_args(clap::Command::new("g")),
            LiveOptions::augment_args(clap::Command::new("g")),
            StoreOptions::augment_args(clap::Command::new("g")),
        ];
        for command in &commands {
            for arg in command.get_arguments() {
                let long = arg.get_long().expect("every option has a long flag");
                let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
                let expected = format!("NANOTRADER_{}", long.to_uppercase().replace('-', "_"));
                assert_eq!(env, expected, "--{long}");
            }
        }
    }
}
