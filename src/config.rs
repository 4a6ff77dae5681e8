//! Configuration: the config file merged under the command line, validated into typed settings
//! with one clear message per mistake.

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use merge::Merge as _;
use nanotrader_broker::BrokerConfig;

pub use crate::options::Mode;
use crate::options::{
    BarOptions, BrokerKind, BrokerOptions, LiveOptions, RunArgs, SourceKind, SourceOptions, StopsVenue, StoreOptions,
    StrategyKind, StrategyOptions, WebOptions, keys,
};
use nanotrader_backtest::Axis;
use nanotrader_engine::EngineConfig;
use nanotrader_market::Interval;
use nanotrader_market::Speed;
use nanotrader_strategy::StrategyConfig;

pub const DEFAULT_DATA_DIR: &str = "nanotrader-data";
pub const DEFAULT_PAIR: &str = "BTC/USD";

/// A mistake in what the user asked for: reported as one line, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The settings of a `run` or `demo`, validated.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub data_dir: PathBuf,
    pub source: SourceSpec,
    pub pair: String,
    /// `--shared-cash`: the pairs share one cash rail of `broker.initial_cash`.
    pub shared_cash: bool,
    pub interval: Interval,
    pub strategy: StrategyConfig,
    pub broker: BrokerConfig,
    /// Max drawdown and daily loss halts (a live broker's daily loss is its own rail instead).
    pub protections: nanotrader_broker::Protections,
    pub engine: EngineConfig,
    pub fresh: bool,
    /// The dashboard, unless --no-web.
    pub web: Option<nanotrader_web::WebConfig>,
    /// Where orders go: paper, or a Kraken broker with its keys and rails.
    pub live: LiveSpec,
    /// Alerts to a webhook (`--notify-url`).
    pub notify: Option<nanotrader_notify::NotifyConfig>,
}

/// Where a run's orders go.
#[derive(Clone, Debug)]
pub enum LiveSpec {
    /// No keys, no signed client: nothing here can reach a private endpoint.
    Paper,
    Kraken(Box<KrakenLive>),
}

impl LiveSpec {
    /// Whose books the run keeps: a real-money broker's are the exchange's.
    pub fn books(&self) -> nanotrader_engine::Books {
        match self {
            LiveSpec::Kraken(kraken) if !kraken.validate_only => nanotrader_engine::Books::Exchange,
            _ => nanotrader_engine::Books::Paper,
        }
    }
}

/// A Kraken broker's settings. The credentials never show themselves (`Debug` redacts them).
#[derive(Clone, Debug)]
pub struct KrakenLive {
    /// `kraken-validate`: every order checked by Kraken (`validate=true`), then filled on paper.
    pub validate_only: bool,
    pub credentials: std::sync::Arc<nanotrader_kraken::private::Credentials>,
    pub rest_url: String,
    /// The authenticated WebSocket: the exchange's fills as they happen.
    pub ws_auth_url: String,
    pub tier: nanotrader_kraken::private::Tier,
    pub max_order_usd: Decimal,
    pub max_orders_per_hour: u32,
    pub max_position: Option<Decimal>,
    pub max_daily_loss_usd: Option<Decimal>,
    /// Market or post-only limit orders.
    pub order_kind: nanotrader_live::OrderKind,
    pub cancel_on_exit: bool,
    /// `--stops exchange`: stop-loss, take-profit and trailing stop placed at Kraken.
    pub stops_on_exchange: bool,
    /// The run's stops and exits (the strategy's), for the dashboard.
    pub exits: nanotrader_strategy::Exits,
}

#[derive(Clone, Debug)]
pub enum SourceSpec {
    Replay {
        data: ReplayData,
        speed: Speed,
        looping: bool,
        csv: nanotrader_market::CsvOptions,
    },
    Sim(SimSpec),
    KrakenRest {
        rest_url: String,
        poll_every: Duration,
    },
    Kraken {
        rest_url: String,
        ws_url: String,
        feed_timeout: Duration,
    },
    /// Closed bars from a `nanotrader feed` on NATS JetStream.
    Nats(NatsSpec),
}

/// Where a feed's bars are on the bus.
#[derive(Clone, Debug)]
pub struct NatsSpec {
    pub url: String,
    pub stream: String,
    pub prefix: String,
    /// The exchange whose feed it is (`kraken`: the only one `feed` runs today).
    pub exchange: String,
    pub since: Option<nanotrader_market::Timestamp>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ReplayData {
    /// The real data set built into the binary.
    Builtin,
    File(PathBuf),
}

#[derive(Clone, Debug)]
pub struct SimSpec {
    pub seed: u64,
    pub start_price: Decimal,
    pub drift: f64,
    pub volatility: f64,
    pub mean_tick_secs: f64,
    pub duration_secs: Option<i64>,
    pub speed: Speed,
}

/// The `--config` file: the run options plus `data-dir` and the store's `db-url`.
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub run: RunArgs,
    pub store: StoreOptions,
}

pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let name = path.display();
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read config file {name}: {e}")))?;
    parse_file_config(&text, &name.to_string())
}

/// The `--config` file's text; `name` is the file as shown in messages. A mistake is named by
/// its place (the TOML parser's span: line, column) and its key, e.g.
/// `nanotrader.toml line 4, column 9, key 'speed': invalid speed 'fast': ...`.
/// Each option group reads its own keys (its flags' long names); a key no group has is unknown.
pub fn parse_file_config(text: &str, name: &str) -> Result<FileConfig, ConfigError> {
    let at = |span: Option<Range<usize>>, key: Option<&str>, message: &str| {
        ConfigError(located(text, name, span, key, message))
    };
    let document = toml::de::DeTable::parse(text).map_err(|e| at(e.span(), None, e.message()))?;
    // Each top-level key with the span from the key to the end of its value, so that an error
    // pointing inside a value can name its key.
    let entries: Vec<(String, Range<usize>)> = document
        .get_ref()
        .iter()
        .map(|(key, value)| (key.get_ref().to_string(), key.span().start..value.span().end))
        .collect();
    let key_at = |span: &Option<Range<usize>>| {
        let start = span.as_ref()?.start;
        entries
            .iter()
            .find(|(_, range)| range.contains(&start))
            .map(|(key, _)| key.as_str())
    };
    let document_span = document.span();
    let mut table = document.into_inner();
    let data_dir = match table.remove("data-dir") {
        None => None,
        Some(value) => match value.get_ref().as_str() {
            Some(dir) => Some(PathBuf::from(dir)),
            None => {
                let written = text.get(value.span()).unwrap_or_default();
                let message = format!("expected a directory as a string, got {written}");
                return Err(at(Some(value.span()), Some("data-dir"), &message));
            }
        },
    };
    let groups = [
        keys::<SourceOptions>(),
        keys::<BarOptions>(),
        keys::<StrategyOptions>(),
        keys::<BrokerOptions>(),
        keys::<WebOptions>(),
        keys::<LiveOptions>(),
        keys::<StoreOptions>(),
    ];
    let mut parts: Vec<toml::de::DeTable> = groups.iter().map(|_| Default::default()).collect();
    for (key, value) in table {
        match groups
            .iter()
            .position(|g| g.iter().any(|k| k == key.get_ref().as_ref()))
        {
            Some(group) => {
                parts[group].insert(key, value);
            }
            None => {
                let known: Vec<&str> = groups.iter().flatten().map(String::as_str).collect();
                let message = unknown_key_message(key.get_ref(), &known);
                return Err(at(Some(key.span()), Some(key.get_ref()), &message));
            }
        }
    }
    let mut parts = parts.into_iter();
    let mut next = || {
        toml::de::Deserializer::from(toml::Spanned::new(
            document_span.clone(),
            parts.next().unwrap_or_default(),
        ))
    };
    let fail = |e: toml::de::Error| {
        let span = e.span();
        at(span.clone(), key_at(&span), e.message())
    };
    let run = RunArgs {
        source: SourceOptions::deserialize(next()).map_err(fail)?,
        bars: BarOptions::deserialize(next()).map_err(fail)?,
        strategy: StrategyOptions::deserialize(next()).map_err(fail)?,
        broker: BrokerOptions::deserialize(next()).map_err(fail)?,
        web: WebOptions::deserialize(next()).map_err(fail)?,
        live: LiveOptions::deserialize(next()).map_err(fail)?,
        fresh: false,
    };
    let store = StoreOptions::deserialize(next()).map_err(fail)?;
    Ok(FileConfig { data_dir, run, store })
}

/// `FILE line L, column C, key 'K': MESSAGE`, with what is known of the place.
fn located(text: &str, name: &str, span: Option<Range<usize>>, key: Option<&str>, message: &str) -> String {
    let mut place = name.to_owned();
    if let Some(span) = span {
        // The span is a byte range; lines and columns count from 1, columns in characters.
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        place.push_str(&format!(" line {line}, column {column}"));
    }
    if let Some(key) = key {
        place.push_str(&format!(", key '{key}'"));
    }
    format!("{place}: {}", message.trim().replace('\n', " "))
}

/// "unknown key (did you mean 'speed'?)" for a key no option has.
fn unknown_key_message(unknown: &str, known: &[&str]) -> String {
    let closest = known
        .iter()
        .chain(std::iter::once(&"data-dir"))
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, key)) => format!("unknown key (did you mean '{key}'?)"),
        None => "unknown key: the keys are the long flag names (see `nanotrader help run`)".to_owned(),
    }
}

/// Turns layered options (see [`RunArgs::layered`]) into checked settings.
pub fn resolve(args: RunArgs, data_dir: PathBuf, mode: Mode) -> Result<RunConfig, ConfigError> {
    // Idempotent: what is already layered stays as it is.
    let RunArgs {
        source: src,
        bars,
        strategy,
        broker,
        web,
        live,
        fresh,
    } = args.layered(RunArgs::default(), mode);
    let Trading {
        strategy,
        broker,
        decide_from_bar,
        protections,
    } = resolve_trading(&strategy, &broker)?;
    let interval = bars.interval.unwrap_or_default();
    let status_every = positive_secs(src.status_secs, Duration::ZERO, "status-secs")?;
    let engine = EngineConfig {
        interval,
        decide_from_bar,
        status_every,
        ..EngineConfig::default()
    };

    let source = resolve_source(&src, bars.columns.clone(), mode)?;
    let notify = resolve_notify(&live)?;
    let shared_cash = src.shared_cash.unwrap_or(false);
    if shared_cash && live.broker_kind.is_some_and(|kind| kind != BrokerKind::Paper) {
        return Err(ConfigError(
            "--shared-cash is for paper trading: a Kraken account's balance is already one pool for every pair".into(),
        ));
    }
    let mut live = resolve_live(live, &source, protections.max_daily_loss)?;
    if let (LiveSpec::Kraken(kraken), StrategyConfig::WithExits { exits, .. }) = (&mut live, &strategy) {
        kraken.exits = exits.clone();
    }
    Ok(RunConfig {
        shared_cash,
        notify,
        data_dir,
        source,
        live,
        web: resolve_web(web)?,
        pair: src.pair.unwrap_or_else(|| DEFAULT_PAIR.to_owned()),
        interval,
        strategy,
        broker,
        protections,
        engine,
        fresh,
    })
}

/// The broker. Every refusal comes before any private request: real orders without
/// --confirm-live, a live broker without live market data, missing or malformed keys. Paper reads
/// no key at all.
fn resolve_live(
    live: LiveOptions,
    source: &SourceSpec,
    max_daily_loss_usd: Option<Decimal>,
) -> Result<LiveSpec, ConfigError> {
    let kind = live.broker_kind.unwrap_or(BrokerKind::Paper);
    let stops_on_exchange = live.stops == Some(StopsVenue::Exchange);
    if kind == BrokerKind::Paper {
        if stops_on_exchange {
            return Err(ConfigError(
                "--stops exchange places stop orders at Kraken: it needs --broker kraken or kraken-validate \
                 (on paper the bot watches the stops: --stops bot)"
                    .into(),
            ));
        }
        return Ok(LiveSpec::Paper);
    }
    let name = if kind == BrokerKind::Kraken {
        "kraken"
    } else {
        "kraken-validate"
    };
    if kind == BrokerKind::Kraken && !live.confirm_live.unwrap_or(false) {
        return Err(ConfigError(
            "--broker kraken would place real orders with real money on Kraken: add --confirm-live \
             (config confirm-live = true, env NANOTRADER_CONFIRM_LIVE=1) to do so, or rehearse with \
             --broker kraken-validate"
                .into(),
        ));
    }
    let SourceSpec::Kraken { rest_url, .. } = source else {
        return Err(ConfigError(format!(
            "--broker {name} trades on Kraken's live market: use --source kraken (a replay or a simulation trades on paper)"
        )));
    };
    let tier = live
        .kraken_tier
        .as_deref()
        .unwrap_or("starter")
        .parse::<nanotrader_kraken::private::Tier>()
        .map_err(|e| ConfigError(format!("kraken-tier: {e}")))?;
    let max_order_usd = live.max_order_usd.unwrap_or(Decimal::from(100));
    if max_order_usd <= Decimal::ZERO {
        return Err(ConfigError(format!(
            "max-order-usd must be positive, got {max_order_usd}"
        )));
    }
    let order_kind = order_kind(&live)?;
    let credentials = nanotrader_kraken::private::Credentials::from_env()
        .map_err(|e| ConfigError(format!("--broker {name}: {e}")))?;
    Ok(LiveSpec::Kraken(Box::new(KrakenLive {
        validate_only: kind == BrokerKind::KrakenValidate,
        credentials: std::sync::Arc::new(credentials),
        rest_url: rest_url.clone(),
        ws_auth_url: checked_url(
            live.kraken_ws_auth_url.as_deref(),
            nanotrader_kraken::consts::WS_AUTH_URL,
            &["ws", "wss"],
            "kraken-ws-auth-url",
        )?,
        tier,
        max_order_usd,
        max_orders_per_hour: live.max_orders_per_hour.unwrap_or(30),
        max_position: positive(live.max_position, "max-position")?,
        max_daily_loss_usd,
        order_kind,
        cancel_on_exit: live.cancel_on_exit.unwrap_or(true),
        stops_on_exchange,
        exits: nanotrader_strategy::Exits::default(),
    })))
}

/// `--order-type` with its limit settings.
fn order_kind(live: &LiveOptions) -> Result<nanotrader_live::OrderKind, ConfigError> {
    use nanotrader_live::{LimitFallback, OrderKind};
    let fallback = match live.limit_fallback.as_deref().unwrap_or("market") {
        "market" => LimitFallback::Market,
        "skip" => LimitFallback::Skip,
        other => {
            return Err(ConfigError(format!(
                "limit-fallback: expected market or skip, got '{other}'"
            )));
        }
    };
    let timeout = match live.limit_timeout_secs.unwrap_or(30) {
        0 => return Err(ConfigError("limit-timeout-secs must be at least 1".into())),
        secs => Duration::from_secs(secs),
    };
    match live.order_type.as_deref().unwrap_or("market") {
        "market" => Ok(OrderKind::Market),
        "limit" => Ok(OrderKind::Limit { timeout, fallback }),
        other => Err(ConfigError(format!(
            "order-type: expected market or limit, got '{other}'"
        ))),
    }
}

/// A limit that must be positive when given.
fn positive(value: Option<Decimal>, key: &str) -> Result<Option<Decimal>, ConfigError> {
    match value {
        Some(v) if v <= Decimal::ZERO => Err(ConfigError(format!("{key} must be positive, got {v}"))),
        other => Ok(other),
    }
}

/// The market-data source and its settings.
fn resolve_source(
    src: &SourceOptions,
    columns: Option<nanotrader_market::ColumnSpec>,
    mode: Mode,
) -> Result<SourceSpec, ConfigError> {
    let err = |m: String| Err(ConfigError(m));
    let speed = src.speed.unwrap_or(Speed::Max);
    // `run` trades Kraken live unless it is given a file to replay; `demo` always replays.
    let default_source = match (mode, &src.data) {
        (Mode::Run, None) => SourceKind::Kraken,
        _ => SourceKind::Replay,
    };
    let rest_url = || {
        checked_url(
            src.kraken_rest_url.as_deref(),
            nanotrader_kraken::consts::REST_BASE_URL,
            &["http", "https"],
            "kraken-rest-url",
        )
    };
    let source = match src.source.unwrap_or(default_source) {
        SourceKind::Replay => SourceSpec::Replay {
            data: src.data.clone().map_or(ReplayData::Builtin, ReplayData::File),
            speed,
            looping: src.looping.unwrap_or_default(),
            csv: nanotrader_market::CsvOptions {
                skip_bad_rows: src.skip_bad_rows.unwrap_or_default(),
                columns,
            },
        },
        SourceKind::Sim => {
            if src.data.is_some() {
                return err("--data is for --source replay; the simulator makes its own data".into());
            }
            let sim = SimSpec {
                seed: src.sim_seed.unwrap_or_default(),
                start_price: src.sim_price.unwrap_or_default(),
                drift: src.sim_drift.unwrap_or_default(),
                volatility: src.sim_volatility.unwrap_or_default(),
                mean_tick_secs: src.sim_tick_secs.unwrap_or_default(),
                duration_secs: src.sim_duration.map(Interval::secs),
                speed,
            };
            if sim.start_price <= Decimal::ZERO {
                return err(format!("sim-price must be positive, got {}", sim.start_price));
            }
            if !(sim.volatility.is_finite() && sim.volatility >= 0.0) {
                return err(format!("sim-volatility must be zero or more, got {}", sim.volatility));
            }
            if !sim.drift.is_finite() {
                return err(format!("sim-drift must be a number, got {}", sim.drift));
            }
            if !(sim.mean_tick_secs.is_finite() && sim.mean_tick_secs > 0.0) {
                return err(format!("sim-tick-secs must be positive, got {}", sim.mean_tick_secs));
            }
            SourceSpec::Sim(sim)
        }
        SourceKind::KrakenRest => {
            if src.data.is_some() {
                return err("--data is for --source replay; Kraken is a live feed".into());
            }
            let min = nanotrader_kraken::consts::PUBLIC_REST_MIN_INTERVAL.as_secs_f64();
            let poll_secs = src.poll_secs.unwrap_or(min);
            if !(poll_secs.is_finite() && poll_secs >= min) {
                return err(format!(
                    "poll-secs {poll_secs} is faster than Kraken's public REST limit (one request per {min} s)"
                ));
            }
            let Ok(poll_every) = Duration::try_from_secs_f64(poll_secs) else {
                return err(format!("poll-secs {poll_secs} is too long"));
            };
            SourceSpec::KrakenRest {
                rest_url: rest_url()?,
                poll_every,
            }
        }
        SourceKind::Nats => {
            if src.data.is_some() {
                return err("--data is for --source replay; NATS is a live feed".into());
            }
            SourceSpec::Nats(nats_spec(src)?)
        }
        SourceKind::Kraken => {
            if src.data.is_some() {
                return err("--data is for --source replay; Kraken is a live feed".into());
            }
            SourceSpec::Kraken {
                rest_url: rest_url()?,
                ws_url: checked_url(
                    src.kraken_ws_url.as_deref(),
                    nanotrader_kraken::consts::WS_PUBLIC_URL,
                    &["ws", "wss"],
                    "kraken-ws-url",
                )?,
                feed_timeout: positive_secs(
                    src.feed_timeout_secs,
                    nanotrader_kraken::consts::FEED_SILENCE_TIMEOUT,
                    "feed-timeout-secs",
                )?,
            }
        }
    };
    Ok(source)
}

/// The bus settings of --source nats (and of `feed`).
pub fn nats_spec(src: &SourceOptions) -> Result<NatsSpec, ConfigError> {
    let url = checked_url(src.nats_url.as_deref(), DEFAULT_NATS_URL, &["nats", "tls"], "nats-url")?;
    let token = |value: Option<&str>, default: &str, key: &str| -> Result<String, ConfigError> {
        let value = value.unwrap_or(default).trim();
        if value.is_empty() || value.contains(['.', '*', '>', ' ', '\t']) {
            return Err(ConfigError(format!(
                "{key}: '{value}' is not a NATS name (no dots, wildcards or spaces)"
            )));
        }
        Ok(value.to_owned())
    };
    let since = match src.since.as_deref() {
        Some(text) => Some(crate::cli::parse_time_arg(text).map_err(|e| ConfigError(format!("since: {e}")))?),
        None => None,
    };
    Ok(NatsSpec {
        url,
        stream: token(src.nats_stream.as_deref(), "MARKET_DATA", "nats-stream")?,
        prefix: token(src.nats_subject_prefix.as_deref(), "md", "nats-subject-prefix")?,
        exchange: "kraken".to_owned(),
        since,
    })
}

/// The NATS server of a machine that runs one.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The alerts' webhook; the URL is only ever shown redacted.
fn resolve_notify(live: &LiveOptions) -> Result<Option<nanotrader_notify::NotifyConfig>, ConfigError> {
    let Some(url) = live.notify_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    let format = live
        .notify_format
        .as_deref()
        .unwrap_or("json")
        .parse::<nanotrader_notify::NotifyFormat>()
        .map_err(|e| ConfigError(format!("notify-format: {e}")))?;
    nanotrader_notify::NotifyConfig::new(url.trim(), format)
        .map(Some)
        .map_err(|e| ConfigError(format!("notify-url: {e}")))
}

/// The dashboard's settings, `None` with --no-web.
pub(crate) fn resolve_web(web: WebOptions) -> Result<Option<nanotrader_web::WebConfig>, ConfigError> {
    if web.no_web.unwrap_or_default() {
        return Ok(None);
    }
    let token = web
        .web_token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(nanotrader_web::AccessToken::parse)
        .transpose()
        .map_err(|e| ConfigError(e.to_string()))?;
    let listen = match web.listen {
        Some(addr) => addr,
        None => nanotrader_web::DEFAULT_LISTEN
            .parse()
            .expect("the default address parses"),
    };
    nanotrader_web::check_bind(&listen, token.as_ref()).map_err(|e| ConfigError(e.to_string()))?;
    Ok(Some(nanotrader_web::WebConfig {
        listen,
        token,
        stay: web.stay.unwrap_or_default(),
        queue_frames: web
            .web_queue_frames
            .unwrap_or(nanotrader_web::CLIENT_QUEUE_FRAMES)
            .clamp(1, 65_536),
    }))
}

pub use nanotrader_engine::Trading;

/// `--param NAME=VALUE` as a name and an exact value.
fn strategy_params(given: &[String]) -> Result<std::collections::BTreeMap<String, Decimal>, ConfigError> {
    let mut params = std::collections::BTreeMap::new();
    for p in given {
        let parsed = p
            .split_once('=')
            .and_then(|(name, value)| Some((name.trim(), value.trim().parse::<Decimal>().ok()?)));
        match parsed {
            Some((name, value)) if !name.is_empty() => {
                params.insert(name.to_string(), value);
            }
            _ if p
                .split_once('=')
                .is_some_and(|(_, v)| v.contains("..") || v.contains(',')) =>
            {
                return Err(ConfigError(format!(
                    "--param {p}: lists and ranges are for backtest sweeps; here NAME=VALUE takes one number"
                )));
            }
            _ => {
                return Err(ConfigError(format!(
                    "--param takes NAME=VALUE with a number for VALUE, got '{p}'"
                )));
            }
        }
    }
    Ok(params)
}

/// The strategy file behind the options, for a backtest's `--param` grid: --strategy-file, else
/// the built-in file of --strategy (sma-cross by default) with its own flags (--short, --fast,
/// --rsi-period, ...) as its parameters' values. The options are layered with the defaults.
pub fn strategy_file(
    s: &StrategyOptions,
) -> Result<
    (
        nanotrader_strategy::StrategyFile,
        std::collections::BTreeMap<String, Decimal>,
    ),
    ConfigError,
> {
    let mut flags = std::collections::BTreeMap::new();
    let file = match (&s.strategy_file, s.strategy) {
        (Some(_), Some(kind)) => {
            return Err(ConfigError(format!(
                "both --strategy {} and --strategy-file were given: choose one",
                kind.name()
            )));
        }
        (Some(path), None) => nanotrader_strategy::StrategyFile::read(path).map_err(|e| ConfigError(e.to_string()))?,
        (None, kind) => {
            let kind = kind.unwrap_or(StrategyKind::SmaCross);
            let one = |axis: &Option<Axis>| axis.as_ref().and_then(Axis::single).map(Decimal::from);
            let given: Vec<(&str, Option<Decimal>)> = match kind {
                StrategyKind::SmaCross => vec![("short", one(&s.short)), ("long", one(&s.long))],
                StrategyKind::EmaCross => {
                    vec![("fast", s.fast.map(Decimal::from)), ("slow", s.slow.map(Decimal::from))]
                }
                StrategyKind::RsiThreshold => vec![
                    ("period", s.rsi_period.map(Decimal::from)),
                    ("oversold", s.oversold),
                    ("overbought", s.overbought),
                ],
                _ => Vec::new(),
            };
            for (name, value) in given {
                if let Some(value) = value {
                    flags.insert(name.to_string(), value);
                }
            }
            nanotrader_strategy::StrategyFile::builtin(kind.name())
                .ok_or_else(|| ConfigError(format!("the built-in strategy {} is missing", kind.name())))?
        }
    };
    Ok((file, flags))
}

/// The strategy from --strategy-file, or --strategy with its flags. A file that is exactly a
/// built-in strategy runs as that built-in (same decisions, and its fast backtest kernel).
fn resolve_strategy(
    s: &StrategyOptions,
    window: impl Fn(Option<Axis>, &str) -> Result<usize, ConfigError>,
) -> Result<(StrategyConfig, nanotrader_strategy::Exits), ConfigError> {
    let params = strategy_params(s.params.as_deref().unwrap_or_default())?;
    let file = match (&s.strategy_file, s.strategy) {
        (Some(_), Some(kind)) => {
            return Err(ConfigError(format!(
                "both --strategy {} and --strategy-file were given: choose one",
                kind.name()
            )));
        }
        (Some(path), None) => Some(nanotrader_strategy::StrategyFile::read(path)),
        (None, kind) => {
            let kind = kind.unwrap_or(StrategyKind::SmaCross);
            let written_in_rust = matches!(
                kind,
                StrategyKind::SmaCross | StrategyKind::EmaCross | StrategyKind::RsiThreshold
            );
            if written_in_rust && params.is_empty() {
                None
            } else {
                let file = nanotrader_strategy::StrategyFile::builtin(kind.name())
                    .ok_or_else(|| ConfigError(format!("the built-in strategy {} is missing", kind.name())))?;
                Some(Ok(file))
            }
        }
    };
    if let Some(file) = file {
        let file = file.map_err(|e| ConfigError(e.to_string()))?;
        let config = file.compile(&params).map_err(|e| ConfigError(e.to_string()))?;
        let exits = file.exits.clone();
        return Ok((config.as_builtin().unwrap_or(StrategyConfig::File(config)), exits));
    }
    let config = match s.strategy.unwrap_or(StrategyKind::SmaCross) {
        StrategyKind::SmaCross => StrategyConfig::SmaCross {
            short: window(s.short.clone(), "short")?,
            long: window(s.long.clone(), "long")?,
        },
        StrategyKind::EmaCross => StrategyConfig::EmaCross {
            fast: s.fast.unwrap_or_default(),
            slow: s.slow.unwrap_or_default(),
        },
        StrategyKind::RsiThreshold => StrategyConfig::RsiThreshold {
            period: s.rsi_period.unwrap_or_default(),
            oversold: s.oversold.unwrap_or_default(),
            overbought: s.overbought.unwrap_or_default(),
        },
        other => unreachable!("{} is a built-in file", other.name()),
    };
    Ok((config, nanotrader_strategy::Exits::default()))
}

/// The strategy, the broker and the first deciding bar, with the preset and the defaults under
/// what was given. A window must be one value here (lists and ranges are a backtest's sweep).
pub fn resolve_trading(strategy: &StrategyOptions, broker: &BrokerOptions) -> Result<Trading, ConfigError> {
    let mut s = strategy.clone();
    s.merge(StrategyOptions::defaults());
    let mut b = broker.clone();
    b.merge(BrokerOptions::preset(s.preset));
    b.merge(BrokerOptions::defaults());
    let window = |axis: Option<Axis>, name: &str| {
        let axis = axis.unwrap_or(Axis::List(Vec::new()));
        axis.single().ok_or_else(|| {
            ConfigError(format!(
                "{name} takes one window here, not '{axis}' (lists and ranges are for backtest sweeps)"
            ))
        })
    };
    let (strategy, file_exits) = resolve_strategy(&s, window)?;
    strategy.validate().map_err(|e| ConfigError(e.to_string()))?;
    // Flags over the strategy file's [exits].
    let exits = nanotrader_strategy::Exits {
        stop_loss: s.stop_loss,
        take_profit: s.take_profit,
        trailing_stop: s.trailing_stop,
        max_bars_in_trade: s.max_bars_in_trade,
        cooldown_bars: s.cooldown_bars,
    }
    .over(&file_exits);
    exits.validate().map_err(ConfigError)?;

    let base = BrokerConfig::default();
    let broker = BrokerConfig {
        initial_cash: b.cash.unwrap_or_default(),
        fee_rate: b.fee_rate.unwrap_or_default(),
        sizing: b.sizing.unwrap_or(base.sizing),
        qty_step: base.qty_step,
    };
    broker.validate().map_err(|e| ConfigError(e.to_string()))?;

    let decide_from_bar = b.decide_from_bar.unwrap_or_default();
    if decide_from_bar == 0 {
        return Err(ConfigError("decide-from-bar counts bars from 1; 0 is not a bar".into()));
    }
    let strategy = if exits.is_empty() {
        strategy
    } else {
        StrategyConfig::WithExits {
            strategy: Box::new(strategy),
            exits,
            decide_from_bar,
        }
    };
    let protections = nanotrader_broker::Protections {
        max_drawdown: b.max_drawdown.map(|p| p.0),
        max_daily_loss: b.max_daily_loss_usd,
    };
    protections.validate().map_err(ConfigError)?;
    Ok(Trading {
        strategy,
        broker,
        decide_from_bar,
        protections,
    })
}

/// A positive number of seconds, or the default. Refused too: what is too long for a `Duration`
/// (which would panic) and what rounds to zero nanoseconds (a zero timer period panics later).
fn positive_secs(given: Option<f64>, default: Duration, flag: &str) -> Result<Duration, ConfigError> {
    let Some(secs) = given else {
        return Ok(default);
    };
    match Duration::try_from_secs_f64(secs) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) if secs > 0.0 => Err(ConfigError(format!("{flag} {secs} is shorter than a nanosecond"))),
        Err(_) if secs.is_finite() && secs > 0.0 => Err(ConfigError(format!("{flag} {secs} is too long"))),
        _ => Err(ConfigError(format!(
            "{flag} must be a positive number of seconds, got {secs}"
        ))),
    }
}

/// A base URL with one of the allowed schemes, without a trailing slash.
fn checked_url(given: Option<&str>, default: &str, schemes: &[&str], flag: &str) -> Result<String, ConfigError> {
    let url = given.unwrap_or(default).trim().trim_end_matches('/');
    let scheme_ok = url
        .split_once("://")
        .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
    if !scheme_ok {
        return Err(ConfigError(format!(
            "{flag} '{url}' is not a {} URL",
            schemes.join("/")
        )));
    }
    Ok(url.to_owned())
}

/// Reads a config value written as a string or a bare number (`speed = 60` or `speed = "max"`)
/// through the type's `FromStr`, so the file accepts exactly what the flag accepts.
pub fn de_parse<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(i64),
        Float(f64),
    }
    let text = match Raw::deserialize(de)? {
        Raw::Text(s) => s,
        Raw::Int(i) => i.to_string(),
        Raw::Float(f) => f.to_string(),
    };
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotrader_broker::Sizing;

    fn file(text: &str) -> Result<FileConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nanotrader.toml");
        std::fs::write(&path, text).unwrap();
        load_file(&path)
    }

    #[test]
    fn file_values_parse_like_flags() {
        let f = file("data-dir = \"/tmp/x\"\nspeed = 60\nshort = 5\nlong = 30\nfee-rate = 0.001\nsizing = \"fixed:0.01\"\nloop = true\n").unwrap();
        assert_eq!(f.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(f.run.source.speed, Some(Speed::Factor(60.0)));
        assert_eq!(f.run.strategy.short, Some(Axis::List(vec![5])));
        assert_eq!(f.run.broker.fee_rate, Some(Decimal::new(1, 3)));
        assert_eq!(f.run.source.looping, Some(true));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named_with_their_place() {
        let parse = |text: &str| parse_file_config(text, "nanotrader.toml").err().unwrap().0;
        assert_eq!(
            parse("short = 5\nsped = 60\n"),
            "nanotrader.toml line 2, column 1, key 'sped': unknown key (did you mean 'speed'?)"
        );
        assert_eq!(
            parse("short = 5\n\n# the speed\nspeed = \"fast\"\n"),
            "nanotrader.toml line 4, column 9, key 'speed': invalid speed 'fast': must be 'max' or a positive number such as 60 or 0.5"
        );
        let e = parse("zzz = 1\n");
        assert!(
            e.starts_with("nanotrader.toml line 1, column 1, key 'zzz': unknown key: "),
            "{e}"
        );
        assert_eq!(
            parse("long = \"ten\"\n"),
            "nanotrader.toml line 1, column 8, key 'long': 'ten' is not a window: use 10, 5,10,20, 5..50 or 5..50:5"
        );
        assert_eq!(
            parse("data-dir = 5\n"),
            "nanotrader.toml line 1, column 12, key 'data-dir': expected a directory as a string, got 5"
        );
        let e = parse("short = 5\nlong == 6\n");
        assert!(
            e.starts_with("nanotrader.toml line 2, column "),
            "a syntax error has its place: {e}"
        );
        for e in [parse("sped = 60\n"), parse("long = \"ten\"\n"), parse("a = [\n")] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn every_flag_is_a_config_key() {
        let groups = [
            keys::<SourceOptions>(),
            keys::<BarOptions>(),
            keys::<StrategyOptions>(),
            keys::<BrokerOptions>(),
            keys::<WebOptions>(),
            keys::<LiveOptions>(),
            keys::<StoreOptions>(),
        ];
        for key in groups.iter().flatten() {
            if let Err(e) = parse_file_config(&format!("{key} = \"?\"\n"), "n.toml") {
                assert!(!e.0.contains("unknown key"), "{key}: {}", e.0);
            }
        }
    }

    #[test]
    fn flags_beat_file_and_presets_fill_the_rest() {
        let cli = RunArgs {
            strategy: StrategyOptions {
                short: Some(Axis::List(vec![7])),
                preset: Some(crate::options::Preset::Seed),
                ..Default::default()
            },
            ..RunArgs::default()
        };
        let from_file = RunArgs {
            strategy: StrategyOptions {
                short: Some(Axis::List(vec![3])),
                long: Some(Axis::List(vec![40])),
                ..Default::default()
            },
            ..RunArgs::default()
        };
        let cfg = resolve(cli.layered(from_file, Mode::Run), PathBuf::from("d"), Mode::Run).unwrap();
        assert_eq!(cfg.strategy, StrategyConfig::SmaCross { short: 7, long: 40 });
        assert_eq!(cfg.broker.sizing, Sizing::Seed);
        assert_eq!(cfg.broker.fee_rate, Decimal::ZERO);
        assert_eq!(cfg.engine.decide_from_bar, 22);
    }

    #[test]
    fn bad_settings_are_refused_with_one_line() {
        let strategy = |short, long| RunArgs {
            strategy: StrategyOptions {
                short: Some(Axis::List(vec![short])),
                long: Some(Axis::List(vec![long])),
                ..Default::default()
            },
            ..Default::default()
        };
        let broker = |broker: BrokerOptions| RunArgs {
            broker,
            ..Default::default()
        };
        let source = |source: SourceOptions| RunArgs {
            source,
            ..Default::default()
        };
        let cases: Vec<(RunArgs, &str)> = vec![
            (strategy(20, 10), "short"),
            (
                broker(BrokerOptions {
                    cash: Some(Decimal::from(-5)),
                    ..Default::default()
                }),
                "cash",
            ),
            (
                broker(BrokerOptions {
                    decide_from_bar: Some(0),
                    ..Default::default()
                }),
                "decide-from-bar",
            ),
            (
                source(SourceOptions {
                    status_secs: Some(0.0),
                    ..Default::default()
                }),
                "status-secs",
            ),
            (
                source(SourceOptions {
                    source: Some(SourceKind::Sim),
                    sim_volatility: Some(-1.0),
                    ..Default::default()
                }),
                "sim-volatility",
            ),
            (
                RunArgs {
                    strategy: StrategyOptions {
                        short: Some(Axis::Range {
                            from: 5,
                            to: 9,
                            step: None,
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "short takes one window",
            ),
            (
                RunArgs {
                    live: LiveOptions {
                        stops: Some(StopsVenue::Exchange),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "--stops exchange places stop orders at Kraken: it needs --broker kraken or kraken-validate",
            ),
        ];
        for (args, word) in cases {
            let e = resolve(args, PathBuf::from("d"), Mode::Run).err().unwrap().0;
            assert!(e.contains(word) && !e.contains('\n'), "{word}: {e}");
        }
    }
}
