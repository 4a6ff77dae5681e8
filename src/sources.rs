//! The market-data source a run is configured with: identified before its run is looked up
//! (Kraken's pair resolved, a replay file read, a simulator's settings named), then opened where
//! the run stopped. The identity is spelled by each source type alone (`SourceInfo`); this module
//! only chooses and opens them.

use crate::app::AppError;
use crate::config::{NatsSpec, ReplayData, RunConfig, SimSpec, SourceSpec};
use nanotrader_bus::{NatsSource, NatsSourceConfig};
use nanotrader_format::DataMode;
use nanotrader_kraken::RestPollSource;
use nanotrader_kraken::consts::PUBLIC_REST_MIN_INTERVAL;

use nanotrader_kraken::parse::AssetPair;
use nanotrader_kraken::{KrakenWsSource, WsFeedConfig, WsPair};
use nanotrader_kraken::{PairMap, PairNames};
use nanotrader_kraken::{RestClient, Retries};
use nanotrader_market::TaskSource;
use nanotrader_market::{MarketEvent, Source, SourceError, SourceInfo, Timestamp};
use nanotrader_market::{ReplayConfig, ReplaySource};
use nanotrader_market::{SimConfig, SimSource};
use tokio::sync::oneshot;

/// A Kraken pair as AssetPairs gave it: its names, and its rules (lot, minimum, assets) for
/// the brokers.
#[derive(Clone, Debug)]
pub struct KrakenPair {
    pub names: PairNames,
    pub rules: AssetPair,
}

/// The configured source, identified but not yet opened.
pub struct ProbedSource {
    /// What the source is; `identity` goes into the run key.
    pub info: SourceInfo,
    /// How releases before the identity was spelled in one place named the same source (Kraken
    /// pairs written as the user typed them, e.g. `kraken:XBTUSD`), so their runs resume.
    pub earlier_identity: Option<String>,
    /// The Kraken pair, for a Kraken feed.
    pair: Option<KrakenPair>,
    rest: Option<RestClient>,
}

impl ProbedSource {
    /// Identifies the source of `cfg` without reading market data from it. For Kraken this asks
    /// AssetPairs (unless `pair` is already resolved), so an unknown pair or an unreachable
    /// Kraken is reported before anything is stored.
    pub async fn probe(cfg: &RunConfig, rest: Option<RestClient>, pair: Option<KrakenPair>) -> Result<Self, AppError> {
        let (kind, rest_url) = match &cfg.source {
            SourceSpec::Replay { .. } => {
                return Ok(Self::offline(open_replay(cfg, None)?.info().clone()));
            }
            // A simulator's start is left out of its run key, so any start will do here.
            SourceSpec::Sim(sim) => {
                return Ok(Self::offline(
                    SimSource::new(sim_config(sim, None, None))?.info().clone(),
                ));
            }
            SourceSpec::Nats(nats) => {
                return Ok(Self::offline(NatsSource::info(&nats_config(nats, cfg, None))));
            }
            SourceSpec::Kraken { rest_url, .. } => ("kraken", rest_url),
            SourceSpec::KrakenRest { rest_url, .. } => ("kraken-rest", rest_url),
        };
        let client = match rest {
            Some(shared) => shared,
            None => {
                RestClient::new(rest_url, PUBLIC_REST_MIN_INTERVAL).map_err(|e| AppError::runtime(e.to_string()))?
            }
        };
        let pair = match pair {
            Some(pair) => pair,
            None => resolve_pair(&client, &cfg.pair, true).await?,
        };
        let info = pair.names.feed_info(kind);
        let earlier = format!("{kind}:{}", cfg.pair.to_uppercase());
        Ok(Self {
            earlier_identity: (earlier != info.identity).then_some(earlier),
            info,
            pair: Some(pair),
            rest: Some(client),
        })
    }

    /// The Kraken pair, for a Kraken feed.
    pub fn pair(&self) -> Option<&KrakenPair> {
        self.pair.as_ref()
    }

    fn offline(info: SourceInfo) -> Self {
        Self {
            info,
            earlier_identity: None,
            pair: None,
            rest: None,
        }
    }

    /// The bar series a new run starting at `start_secs` stores into: the source's identity,
    /// with a simulator's start (its market differs with it).
    pub fn series_identity(&self, cfg: &RunConfig, start_secs: i64) -> Result<String, AppError> {
        Ok(match &cfg.source {
            SourceSpec::Sim(sim) => SimSource::new(sim_config(sim, None, Some(start_secs)))?
                .info()
                .identity
                .clone(),
            _ => self.info.identity.clone(),
        })
    }

    /// Opens the source at `start_at`; `start_secs` fixes a simulator's market start. A Kraken
    /// WebSocket feed joins `feeds`: one connection for every pair of the process.
    pub async fn open(
        self,
        cfg: &RunConfig,
        start_at: Option<Timestamp>,
        start_secs: Option<i64>,
        feeds: &KrakenFeedGroup,
    ) -> Result<AnySource, AppError> {
        Ok(match (&cfg.source, self.rest, self.pair) {
            (SourceSpec::Replay { .. }, _, _) => AnySource::Replay(open_replay(cfg, start_at)?),
            (SourceSpec::Sim(sim), _, _) => AnySource::Sim(SimSource::new(sim_config(sim, start_at, start_secs))?),
            (SourceSpec::Nats(nats), _, _) => AnySource::Feed(
                NatsSource::open(nats_config(nats, cfg, start_at))
                    .await
                    .map_err(|e| AppError::input(e.to_string()))?,
            ),
            (SourceSpec::KrakenRest { poll_every, .. }, Some(client), Some(pair)) => {
                AnySource::Feed(RestPollSource::start(client, pair.names, *poll_every))
            }
            (
                SourceSpec::Kraken {
                    ws_url, feed_timeout, ..
                },
                Some(client),
                Some(pair),
            ) => {
                let feed = WsFeedConfig {
                    silence_timeout: *feed_timeout,
                    ..WsFeedConfig::new(ws_url, cfg.interval)
                };
                let pair = WsPair {
                    names: pair.names,
                    start_at,
                };
                AnySource::Feed(feeds.join(feed, client, pair).await?)
            }
            _ => return Err(AppError::runtime("a Kraken source opened without probing it")),
        })
    }
}

/// Every pair of a process on one Kraken WebSocket (Kraken prefers one connection carrying many
/// symbols): each pair's run joins once it knows where its tape continues; the last to join
/// opens the connection for all of them and hands each its source.
pub struct KrakenFeedGroup {
    /// How many pairs join before the connection is opened.
    pairs: usize,
    waiting: std::sync::Mutex<Vec<(WsPair, SourceReply)>>,
}

/// Where a waiting pair's source (or why there is none) goes.
type SourceReply = oneshot::Sender<Result<TaskSource, AppError>>;

impl KrakenFeedGroup {
    pub fn new(pairs: usize) -> Self {
        Self {
            pairs: pairs.max(1),
            waiting: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// `pair`'s source, once every pair has joined. A pair that fails before it joins fails
    /// the whole run (the others are dropped while they wait), so no one waits forever.
    async fn join(&self, config: WsFeedConfig, rest: RestClient, pair: WsPair) -> Result<TaskSource, AppError> {
        let (tx, rx) = oneshot::channel();
        let everyone = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            waiting.push((pair, tx));
            (waiting.len() == self.pairs).then(|| std::mem::take(&mut *waiting))
        };
        if let Some(everyone) = everyone {
            let (pairs, replies): (Vec<_>, Vec<_>) = everyone.into_iter().unzip();
            let ws_url = config.ws_url.clone();
            match KrakenWsSource::connect(config, rest, pairs).await {
                Ok(sources) => {
                    for (source, reply) in sources.into_iter().zip(replies) {
                        let _ = reply.send(Ok(source));
                    }
                }
                Err(cause) => {
                    for reply in replies {
                        let _ = reply.send(Err(kraken_unreachable("WebSocket", &ws_url, &cause, true)));
                    }
                }
            }
        }
        rx.await
            .map_err(|_| AppError::runtime("the Kraken WebSocket shared by the pairs was not opened"))?
    }
}

/// The bus source of `cfg`; a resumed run (`start_at`, its next bar) goes on from there,
/// a new one from `--since` or the stream's beginning.
fn nats_config(nats: &NatsSpec, cfg: &RunConfig, start_at: Option<Timestamp>) -> NatsSourceConfig {
    NatsSourceConfig {
        url: nats.url.clone(),
        stream: nats.stream.clone(),
        prefix: nats.prefix.clone(),
        exchange: nats.exchange.clone(),
        pair: cfg.pair.clone(),
        interval: cfg.interval,
        after: None,
        since: start_at.or(nats.since),
    }
}

fn open_replay(cfg: &RunConfig, start_at: Option<Timestamp>) -> Result<ReplaySource, AppError> {
    let SourceSpec::Replay {
        data,
        speed,
        looping,
        csv,
    } = &cfg.source
    else {
        return Err(AppError::runtime("not a replay source"));
    };
    let replay = ReplayConfig {
        speed: *speed,
        looping: *looping,
        start_at,
        csv: csv.clone(),
    };
    Ok(match data {
        ReplayData::Builtin => ReplaySource::builtin(replay)?,
        ReplayData::File(path) => ReplaySource::open(path, Some(&cfg.pair), replay)?,
    })
}

/// Maps the user's pair to Kraken's names and rules with AssetPairs; an unknown pair is the
/// user's mistake. `for_run`: a failure to reach Kraken suggests what works offline.
pub async fn resolve_pair(client: &RestClient, pair: &str, for_run: bool) -> Result<KrakenPair, AppError> {
    let pairs = match client.asset_pairs(Retries::UpTo(2)).await {
        Ok(pairs) => pairs,
        Err(e) => {
            return Err(match nanotrader_kraken::rest_cause(client.base_url(), &e).await {
                Some(cause) => kraken_unreachable("REST API", client.base_url(), &cause, for_run),
                None => AppError::runtime(format!("Kraken at {} failed: {e}", client.base_url())),
            });
        }
    };
    let map = PairMap::from_asset_pairs(&pairs);
    let names = map.resolve(pair).map_err(AppError::input)?;
    let rules = map.asset_pair(pair).map_err(AppError::input)?.clone();
    Ok(KrakenPair { names, rules })
}

/// Kraken cannot be reached at start: one line with the cause, exit code 2 like every start-up
/// refusal, and for a run what works without Kraken.
fn kraken_unreachable(endpoint: &str, url: &str, cause: &nanotrader_kraken::Unreachable, for_run: bool) -> AppError {
    let hint = if for_run {
        "; to run without Kraken, try `nanotrader demo` or `nanotrader run --source sim`"
    } else {
        ""
    };
    AppError::input(format!("cannot reach Kraken's {endpoint} at {url}: {cause}{hint}"))
}

fn sim_config(sim: &SimSpec, start_at: Option<Timestamp>, start_secs: Option<i64>) -> SimConfig {
    // Without a start (the probe), any fixed one will do: the run key leaves it out.
    let start = Timestamp::from_secs(start_secs.unwrap_or(0));
    SimConfig {
        seed: sim.seed,
        start_price: sim.start_price,
        drift: sim.drift,
        volatility: sim.volatility,
        mean_tick_secs: sim.mean_tick_secs,
        start,
        speed: sim.speed,
        duration_secs: sim.duration_secs,
        start_at,
    }
}

/// One type for the sources this command can run, so the engine stays monomorphic and fast.
pub enum AnySource {
    Replay(ReplaySource),
    Sim(SimSource),
    /// A network feed (Kraken WebSocket or REST poller) running on a task of its own.
    Feed(TaskSource),
}

impl Source for AnySource {
    fn info(&self) -> &SourceInfo {
        match self {
            AnySource::Replay(s) => s.info(),
            AnySource::Sim(s) => s.info(),
            AnySource::Feed(s) => s.info(),
        }
    }

    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        match self {
            AnySource::Replay(s) => s.next_event().await,
            AnySource::Sim(s) => s.next_event().await,
            AnySource::Feed(s) => s.next_event().await,
        }
    }
}

/// Only an exchange's feed is live (and reports its own connection state); a replay and a
/// simulation are labelled as such, with their speed.
pub fn data_mode(source: &SourceSpec) -> DataMode {
    match source {
        SourceSpec::Kraken { .. } | SourceSpec::KrakenRest { .. } | SourceSpec::Nats(_) => DataMode::Live,
        SourceSpec::Replay { speed, .. } => DataMode::Replay(*speed),
        SourceSpec::Sim(sim) => DataMode::Simulation(sim.speed),
    }
}
