//! Configuration: the config file merged under the command line, validated into typed settings
//! with one clear message per mistake.

use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

use crate::broker::BrokerConfig;
use crate::cli::{Preset, RunArgs, SourceKind, StrategyKind};
use crate::engine::EngineConfig;
use crate::market::Interval;
use crate::market::Speed;
use crate::strategy::StrategyConfig;

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
    pub interval: Interval,
    pub strategy: StrategyConfig,
    pub broker: BrokerConfig,
    pub engine: EngineConfig,
    pub fresh: bool,
    /// The dashboard, unless --no-web.
    pub web: Option<crate::web::WebConfig>,
}

#[derive(Clone, Debug)]
pub enum SourceSpec {
    Replay {
        data: ReplayData,
        speed: Speed,
        looping: bool,
        csv: crate::market::CsvOptions,
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

/// Which command the options are for: `demo` has its own defaults.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    Demo,
    Run,
}

/// The `--config` file: the run options plus `data-dir`.
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub run: RunArgs,
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
    let document = toml::Spanned::new(document_span, table);
    RunArgs::deserialize(toml::de::Deserializer::from(document)).map_or_else(
        |e| {
            let span = e.span();
            let message = unknown_key_message(e.message()).unwrap_or_else(|| e.message().trim().to_owned());
            Err(at(span.clone(), key_at(&span), &message))
        },
        |run| Ok(FileConfig { data_dir, run }),
    )
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

/// serde's "unknown field `sped`, expected one of `source`, ..." (every key: too long for one
/// line) as "unknown key (did you mean 'speed'?)"; `None` for any other message.
fn unknown_key_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let known = rest
        .split_once("expected one of ")
        .map(|(_, list)| list)
        .unwrap_or_default()
        .split(", ")
        .map(|k| k.trim_matches('`'))
        .chain(std::iter::once("data-dir"));
    let closest = known
        .map(|k| (strsim::jaro_winkler(unknown, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    Some(match closest {
        Some((_, key)) => format!("unknown key (did you mean '{key}'?)"),
        None => "unknown key: the keys are the long flag names (see `nanotrader help run`)".to_owned(),
    })
}

macro_rules! merge_options {
    ($high:expr, $low:expr; $($field:ident),+ $(,)?) => {
        RunArgs { $($field: $high.$field.or($low.$field),)+ fresh: $high.fresh }
    };
}

/// Options given on the command line (or its environment) win over the config file's.
pub fn merge(cli: RunArgs, file: RunArgs) -> RunArgs {
    merge_options!(cli, file;
        source, data, speed, looping, preset, pair, interval, strategy, short, long, fast, slow,
        rsi_period, oversold, overbought, cash, fee_rate, sizing, decide_from_bar,
        skip_bad_rows, columns, status_secs, kraken_rest_url, kraken_ws_url, feed_timeout_secs, poll_secs, sim_seed, sim_price, sim_drift, sim_volatility, sim_tick_secs,
        sim_duration, listen, no_web, stay, web_token, web_queue_frames)
}

/// Turns merged options into checked settings.
pub fn resolve(args: RunArgs, data_dir: PathBuf, mode: Mode) -> Result<RunConfig, ConfigError> {
    let err = |m: String| Err(ConfigError(m));
    let Trading {
        strategy,
        broker,
        decide_from_bar,
    } = resolve_trading(&args)?;
    let interval = args.interval.unwrap_or_default();
    let status_every = positive_secs(Some(args.status_secs.unwrap_or(5.0)), Duration::ZERO, "status-secs")?;
    let engine = EngineConfig {
        interval,
        decide_from_bar,
        status_every,
        ..EngineConfig::default()
    };

    let default_speed = match mode {
        Mode::Demo => Speed::Factor(60.0),
        Mode::Run => Speed::Max,
    };
    let speed = args.speed.unwrap_or(default_speed);
    // `run` trades Kraken live unless it is given a file to replay; `demo` always replays.
    let default_source = match (mode, &args.data) {
        (Mode::Run, None) => SourceKind::Kraken,
        _ => SourceKind::Replay,
    };
    let rest_url = || {
        checked_url(
            args.kraken_rest_url.as_deref(),
            crate::kraken::consts::REST_BASE_URL,
            &["http", "https"],
            "kraken-rest-url",
        )
    };
    let source = match args.source.unwrap_or(default_source) {
        SourceKind::Replay => SourceSpec::Replay {
            data: args.data.map_or(ReplayData::Builtin, ReplayData::File),
            speed,
            looping: args.looping.unwrap_or(mode == Mode::Demo),
            csv: crate::market::CsvOptions {
                skip_bad_rows: args.skip_bad_rows.unwrap_or(false),
                columns: args.columns,
            },
        },
        SourceKind::Sim => {
            if args.data.is_some() {
                return err("--data is for --source replay; the simulator makes its own data".into());
            }
            let sim = SimSpec {
                seed: args.sim_seed.unwrap_or(1),
                start_price: args.sim_price.unwrap_or(Decimal::from(30_000)),
                drift: args.sim_drift.unwrap_or(0.0),
                volatility: args.sim_volatility.unwrap_or(0.8),
                mean_tick_secs: args.sim_tick_secs.unwrap_or(1.0),
                duration_secs: args.sim_duration.map(Interval::secs),
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
            if args.data.is_some() {
                return err("--data is for --source replay; Kraken is a live feed".into());
            }
            let min = crate::kraken::consts::PUBLIC_REST_MIN_INTERVAL.as_secs_f64();
            let poll_secs = args.poll_secs.unwrap_or(min);
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
        SourceKind::Kraken => {
            if args.data.is_some() {
                return err("--data is for --source replay; Kraken is a live feed".into());
            }
            SourceSpec::Kraken {
                rest_url: rest_url()?,
                ws_url: checked_url(
                    args.kraken_ws_url.as_deref(),
                    crate::kraken::consts::WS_PUBLIC_URL,
                    &["ws", "wss"],
                    "kraken-ws-url",
                )?,
                feed_timeout: positive_secs(
                    args.feed_timeout_secs,
                    crate::kraken::consts::FEED_SILENCE_TIMEOUT,
                    "feed-timeout-secs",
                )?,
            }
        }
    };

    let web = if args.no_web.unwrap_or(false) {
        None
    } else {
        let token = args
            .web_token
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(crate::web::AccessToken::parse)
            .transpose()
            .map_err(|e| ConfigError(e.to_string()))?;
        let listen = match args.listen {
            Some(addr) => addr,
            None => crate::web::DEFAULT_LISTEN.parse().expect("the default address parses"),
        };
        crate::web::security::check_bind(&listen, token.as_ref()).map_err(|e| ConfigError(e.to_string()))?;
        Some(crate::web::WebConfig {
            listen,
            token,
            stay: args.stay.unwrap_or(false),
            queue_frames: args
                .web_queue_frames
                .unwrap_or(crate::web::board::CLIENT_QUEUE_FRAMES)
                .clamp(1, 65_536),
        })
    };

    Ok(RunConfig {
        data_dir,
        source,
        web,
        pair: args.pair.unwrap_or_else(|| DEFAULT_PAIR.to_owned()),
        interval,
        strategy,
        broker,
        engine,
        fresh: args.fresh,
    })
}

pub use crate::engine::Trading;

/// The strategy, the broker and the first deciding bar from the options, a preset and the defaults.
pub fn resolve_trading(args: &RunArgs) -> Result<Trading, ConfigError> {
    let seed = args.preset == Some(Preset::Seed);
    let strategy = match args.strategy.unwrap_or(StrategyKind::SmaCross) {
        StrategyKind::SmaCross => StrategyConfig::SmaCross {
            short: args.short.unwrap_or(10),
            long: args.long.unwrap_or(20),
        },
        StrategyKind::EmaCross => StrategyConfig::EmaCross {
            fast: args.fast.unwrap_or(12),
            slow: args.slow.unwrap_or(26),
        },
        StrategyKind::RsiThreshold => StrategyConfig::RsiThreshold {
            period: args.rsi_period.unwrap_or(14),
            oversold: args.oversold.unwrap_or(Decimal::from(30)),
            overbought: args.overbought.unwrap_or(Decimal::from(70)),
        },
    };
    strategy.validate().map_err(ConfigError)?;

    let base = if seed {
        BrokerConfig::seed()
    } else {
        BrokerConfig::default()
    };
    let broker = BrokerConfig {
        initial_cash: args.cash.unwrap_or(base.initial_cash),
        fee_rate: args.fee_rate.unwrap_or(base.fee_rate),
        sizing: args.sizing.unwrap_or(base.sizing),
        qty_step: base.qty_step,
    };
    broker.validate().map_err(ConfigError)?;

    let decide_from_bar = args.decide_from_bar.unwrap_or(if seed { 22 } else { 1 });
    if decide_from_bar == 0 {
        return Err(ConfigError("decide-from-bar counts bars from 1; 0 is not a bar".into()));
    }
    Ok(Trading {
        strategy,
        broker,
        decide_from_bar,
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
    use crate::broker::Sizing;

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
        assert_eq!(f.run.speed, Some(Speed::Factor(60.0)));
        assert_eq!(f.run.short, Some(5));
        assert_eq!(f.run.fee_rate, Some(Decimal::new(1, 3)));
        assert_eq!(f.run.looping, Some(true));
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
            "nanotrader.toml line 1, column 8, key 'long': invalid type: string \"ten\", expected usize"
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
    fn flags_beat_file_and_presets_fill_the_rest() {
        let cli = RunArgs {
            short: Some(7),
            preset: Some(Preset::Seed),
            ..RunArgs::default()
        };
        let from_file = RunArgs {
            short: Some(3),
            long: Some(40),
            ..RunArgs::default()
        };
        let cfg = resolve(merge(cli, from_file), PathBuf::from("d"), Mode::Run).unwrap();
        assert_eq!(cfg.strategy, StrategyConfig::SmaCross { short: 7, long: 40 });
        assert_eq!(cfg.broker.sizing, Sizing::Seed);
        assert_eq!(cfg.broker.fee_rate, Decimal::ZERO);
        assert_eq!(cfg.engine.decide_from_bar, 22);
    }

    #[test]
    fn bad_settings_are_refused_with_one_line() {
        let cases: Vec<(RunArgs, &str)> = vec![
            (
                RunArgs {
                    short: Some(20),
                    long: Some(10),
                    ..Default::default()
                },
                "short",
            ),
            (
                RunArgs {
                    cash: Some(Decimal::from(-5)),
                    ..Default::default()
                },
                "cash",
            ),
            (
                RunArgs {
                    decide_from_bar: Some(0),
                    ..Default::default()
                },
                "decide-from-bar",
            ),
            (
                RunArgs {
                    status_secs: Some(0.0),
                    ..Default::default()
                },
                "status-secs",
            ),
            (
                RunArgs {
                    source: Some(SourceKind::Sim),
                    sim_volatility: Some(-1.0),
                    ..Default::default()
                },
                "sim-volatility",
            ),
        ];
        for (args, word) in cases {
            let e = resolve(args, PathBuf::from("d"), Mode::Run).err().unwrap().0;
            assert!(e.contains(word) && !e.contains('\n'), "{word}: {e}");
        }
    }
}
