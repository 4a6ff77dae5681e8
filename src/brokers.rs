//! The broker a run trades through: the paper account, or a Kraken broker around it. Paper reads
//! no key and builds no signed client, so it cannot reach a private endpoint.

use std::time::Duration;

use nanotrader_broker::{Broker, PaperBroker};
use nanotrader_kraken::private::{NonceSource, PrivateClient};
use nanotrader_live::{Alerts, Assets, LiveBroker, LiveSettings, PairRules, Rails, RunOrders, ValidateBroker};
use std::path::Path;

use nanotrader_store::{OrderJournal, Store};
use nanotrader_store_pg::PgJournal;

use crate::app::AppError;
use crate::config::{KrakenLive, LiveSpec};
use crate::sources::KrakenPair;
use crate::stores::StoreHome;

/// How long the engine waits for Kraken to answer an order before it counts it unanswered.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// Each private request's own time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The run's broker over its restored paper account (`booked`: the run orders whose fills the
/// run has stored), ready to start: what needs the data directory or the store (the journal's
/// connection, the nonce file) is opened here; `BrokerStart::start` then starts the broker's
/// tasks on the runtime it is awaited on (a Kraken broker's: the engine's own thread).
#[allow(clippy::too_many_arguments)]
pub fn broker_for(
    live: &LiveSpec,
    paper: PaperBroker,
    booked: std::collections::BTreeSet<u64>,
    pair: Option<&KrakenPair>,
    home: &StoreHome,
    data_dir: &Path,
    run_id: i64,
    alerts: Option<&nanotrader_notify::NotifyHandle>,
) -> Result<BrokerStart, AppError> {
    let kraken = match live {
        LiveSpec::Paper => return Ok(BrokerStart::Paper(Box::new(paper))),
        LiveSpec::Kraken(kraken) => kraken,
    };
    let pair = pair.ok_or_else(|| AppError::input("a Kraken broker needs --source kraken"))?;
    let alerts = alerts.map(|notify| Alerts {
        notify: notify.clone(),
        run: run_id,
        pair: pair.names.user.clone(),
    });
    let (rules, assets) = pair_rules(pair);
    // The nonces are the key's, kept on this machine (in the data directory, whichever store).
    let nonce_dir = match home {
        StoreHome::Sqlite(lock) => lock.dir(),
        StoreHome::Postgres(_) => data_dir,
    };
    let client = private_client(kraken, nonce_dir)?;
    let rails = Rails {
        max_order_value: kraken.max_order_usd,
        max_orders_per_hour: kraken.max_orders_per_hour,
        max_position: kraken.max_position,
        max_daily_loss: kraken.max_daily_loss_usd,
    };
    if !kraken.validate_only {
        let stored = RunOrders {
            next_order_id: paper.next_order_id(),
            booked,
        };
        return Ok(BrokerStart::Live(Box::new(LiveStart {
            config: paper.config().clone(),
            stored,
            client,
            journal: journal(home)?,
            run_id,
            rules,
            rails,
            assets,
            settings: LiveSettings {
                order_kind: kraken.order_kind,
                cancel_on_exit: kraken.cancel_on_exit,
                ws_auth_url: Some(kraken.ws_auth_url.clone()),
                ws_quote: ws_asset(pair, 1),
                ws_base: ws_asset(pair, 0),
                stops_on_exchange: kraken.stops_on_exchange,
                stop_rule: stop_rule(kraken),
            },
            alerts,
        })));
    }
    tracing::info!(
        "broker kraken-validate: every order is checked by Kraken (validate=true, never executed), then filled on paper; rails: orders up to {} USD, {} an hour",
        kraken.max_order_usd,
        kraken.max_orders_per_hour
    );
    Ok(BrokerStart::Validate(Box::new(ValidateStart {
        paper,
        client,
        journal: journal(home)?,
        run_id,
        rules,
        rails,
        alerts,
        stops_on_exchange: kraken.stops_on_exchange,
        stop_rule: stop_rule(kraken),
    })))
}

/// A broker ready to start (`broker_for`).
pub enum BrokerStart {
    Paper(Box<PaperBroker>),
    Live(Box<LiveStart>),
    Validate(Box<ValidateStart>),
}

/// `--broker kraken`, ready to start.
pub struct LiveStart {
    config: nanotrader_broker::BrokerConfig,
    stored: RunOrders,
    client: PrivateClient,
    journal: Box<dyn OrderJournal>,
    run_id: i64,
    rules: PairRules,
    rails: Rails,
    assets: Assets,
    settings: LiveSettings,
    alerts: Option<Alerts>,
}

/// `--broker kraken-validate`, ready to start.
pub struct ValidateStart {
    paper: PaperBroker,
    client: PrivateClient,
    journal: Box<dyn OrderJournal>,
    run_id: i64,
    rules: PairRules,
    rails: Rails,
    alerts: Option<Alerts>,
    stops_on_exchange: bool,
    stop_rule: String,
}

impl BrokerStart {
    /// A Kraken broker: its tasks (the desk, the submitter, the client's connections) are to
    /// share the engine's thread.
    pub fn is_kraken(&self) -> bool {
        !matches!(self, BrokerStart::Paper(_))
    }

    /// Starts the broker; its tasks are spawned on the runtime this is awaited on.
    pub async fn start(self) -> Result<Box<dyn Broker>, AppError> {
        match self {
            BrokerStart::Paper(paper) => Ok(paper),
            BrokerStart::Live(live) => {
                let LiveStart {
                    config,
                    stored,
                    client,
                    journal,
                    run_id,
                    rules,
                    rails,
                    assets,
                    settings,
                    alerts,
                } = *live;
                let broker = LiveBroker::start(config, stored, client, journal, run_id, rules, rails, assets, settings)
                    .await
                    .map_err(AppError::runtime)?;
                Ok(Box::new(broker.with_alerts(alerts)))
            }
            BrokerStart::Validate(validate) => {
                let ValidateStart {
                    paper,
                    client,
                    journal,
                    run_id,
                    rules,
                    rails,
                    alerts,
                    stops_on_exchange,
                    stop_rule,
                } = *validate;
                Ok(Box::new(
                    ValidateBroker::start(paper, client, journal, run_id, rules, rails, ANSWER_WITHIN)
                        .with_alerts(alerts)
                        .with_stops(stops_on_exchange, stop_rule),
                ))
            }
        }
    }
}

/// Where the run's stops are watched, as the dashboard says it: `on Kraken: stop-loss 2%,
/// take-profit 4%; watched by the bot: max-bars-in-trade 30`; empty without stops.
fn stop_rule(kraken: &KrakenLive) -> String {
    let e = &kraken.exits;
    let priced: Vec<String> = [
        ("stop-loss", e.stop_loss),
        ("take-profit", e.take_profit),
        ("trailing-stop", e.trailing_stop),
    ]
    .into_iter()
    .filter_map(|(name, d)| d.map(|d| format!("{name} {d}")))
    .collect();
    let counted: Vec<String> = [
        ("max-bars-in-trade", e.max_bars_in_trade),
        ("cooldown-bars", e.cooldown_bars),
    ]
    .into_iter()
    .filter_map(|(name, n)| n.map(|n| format!("{name} {n}")))
    .collect();
    let mut parts = Vec::new();
    if !priced.is_empty() {
        let watched = match (kraken.stops_on_exchange, kraken.validate_only) {
            (true, false) => "on Kraken",
            (true, true) => "checked by Kraken (validate=true), watched by the bot",
            (false, _) => "watched by the bot",
        };
        parts.push(format!("{watched}: {}", priced.join(", ")));
    }
    if !counted.is_empty() {
        parts.push(format!("watched by the bot: {}", counted.join(", ")));
    }
    parts.join("; ")
}

/// The broker's own connection to the run's store, for its order journal.
fn journal(home: &StoreHome) -> Result<Box<dyn OrderJournal>, AppError> {
    Ok(match home {
        StoreHome::Sqlite(lock) => Box::new(Store::open(lock)?),
        StoreHome::Postgres(url) => Box::new(PgJournal::connect(url)?),
    })
}

/// The signed client, its nonces kept in `dir` under the key's fingerprint (never the key).
fn private_client(kraken: &KrakenLive, dir: &Path) -> Result<PrivateClient, AppError> {
    let credentials = (*kraken.credentials).clone();
    let nonce_file = dir.join(NonceSource::file_name(&credentials));
    // The mark kept ahead by a thread of its own: no order waits for the nonce file's fsync.
    let nonces = NonceSource::open(nonce_file).map_err(AppError::input)?.renewed_ahead();
    PrivateClient::new(&kraken.rest_url, credentials, nonces, kraken.tier, REQUEST_TIMEOUT).map_err(AppError::runtime)
}

/// The pair's lot and minimum, and its assets' names (AssetPairs, as the source resolved it).
fn pair_rules(pair: &KrakenPair) -> (PairRules, Assets) {
    (
        PairRules {
            rest_pair: pair.names.rest_altname.clone(),
            lot_decimals: pair.rules.lot_decimals,
            ordermin: pair.rules.ordermin,
            costmin: pair.rules.costmin,
            tick_size: pair.rules.tick_size,
        },
        Assets {
            base: pair.rules.base.clone(),
            quote: pair.rules.quote.clone(),
        },
    )
}

/// The base (0) or quote (1) asset as Kraken's WebSocket v2 names it (`BTC` and `USD` of
/// `BTC/USD`): balances and fees come by these names.
fn ws_asset(pair: &KrakenPair, side: usize) -> String {
    pair.names.ws.split('/').nth(side).unwrap_or_default().to_owned()
}
