//! Wires a command together: config -> store -> source -> engine, and prints what a person needs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::cli::{BarsArgs, Cli, Command, FillsArgs, HistoryArgs};
use crate::config::{self, ConfigError, Mode, RunConfig, SourceSpec};
use crate::options::RunArgs;
use crate::output::{self, RunSummary};
use crate::sources::{KrakenFeedGroup, KrakenPair, ProbedSource, data_mode, resolve_pair};
use crate::stores::{OpenStore, StoreHome, StoreTarget, open_reader};
use nanotrader_broker::{Account, CashRail};
use nanotrader_engine::{Bus, Engine, EngineOutputs, Metrics, STORE_QUEUE_BATCHES};
use nanotrader_engine::{Restored, RunPlan, RunSession, SessionError};
use nanotrader_kraken::RestClient;
use nanotrader_kraken::consts::PUBLIC_REST_MIN_INTERVAL;
use nanotrader_market::BarAggregator;
use nanotrader_market::{Source, SourceError, SourceInfo, Timestamp};
use nanotrader_store::{RunRecord, RunStore, Store, StoreError, StoreWriter};
use nanotrader_strategy::Strategy;
use nanotrader_web::{Board, BoardMeta, BoardSeed, BoardStore};

/// A failed command: its one-line message and exit code.
#[derive(Debug)]
pub struct AppError {
    pub code: u8,
    pub message: String,
}

impl AppError {
    /// The user asked for something that cannot be done as asked (exit code 2).
    pub fn input(message: impl std::fmt::Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }
    /// Something failed while running (exit code 1).
    pub fn runtime(message: impl std::fmt::Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        AppError::input(e.0)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unusable(m) => AppError::input(m),
            other => AppError::runtime(other.to_string()),
        }
    }
}

impl From<SessionError> for AppError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Store(e) => e.into(),
            other => AppError::runtime(other.to_string()),
        }
    }
}

impl From<SourceError> for AppError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Input(m) => AppError::input(m),
            SourceError::Fatal(m) => AppError::runtime(m),
        }
    }
}

pub async fn execute(cli: Cli) -> Result<(), AppError> {
    let file = cli.config.as_deref().map(config::load_file).transpose()?;
    let (file_dir, file_run, file_store) = file.map_or_else(
        || (None, RunArgs::default(), Default::default()),
        |f| (f.data_dir, f.run, f.store),
    );
    let mut data_dir = cli
        .data_dir
        .or(file_dir)
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));
    let target = StoreTarget::resolve(cli.store.db_url, file_store.db_url, &data_dir)?;
    // `sqlite://DIR` names the data directory itself.
    if let StoreTarget::Sqlite(dir) = &target {
        data_dir = dir.clone();
    }
    let quiet = cli.quiet;
    match cli.command {
        Command::Demo(args) => {
            let cfg = config::resolve(args.layered(file_run, Mode::Demo), data_dir, Mode::Demo)?;
            serve_and_run(cfg, &target).await
        }
        Command::Run(args) => {
            let cfg = config::resolve(args.layered(file_run, Mode::Run), data_dir, Mode::Run)?;
            serve_and_run(cfg, &target).await
        }
        Command::Fills(args) => export_fills(&target, &args),
        Command::Bars(args) => export_bars(&target, &args),
        Command::History(args) => history(&target, &args).await,
        Command::Runs => list_runs(&target),
        Command::Backtest(args) => crate::backtest_command::execute(args, file_run, &data_dir, &target, quiet),
        Command::Feed(args) => crate::feed::feed(args).await,
        Command::Serve(args) => crate::serve::serve(&target, args, file_run.web).await,
    }
}

/// Starts the dashboard (unless --no-web), runs, and with --stay keeps the dashboard up after a
/// finite run until Ctrl-C.
async fn serve_and_run(cfg: RunConfig, target: &StoreTarget) -> Result<(), AppError> {
    // Before anything else: a second writer is refused before it serves or touches the store.
    let home = StoreHome::acquire(target)?;
    let web = match &cfg.web {
        Some(web) => Some(
            nanotrader_web::start(web)
                .await
                .map_err(|e| AppError::runtime(e.to_string()))?,
        ),
        None => None,
    };
    let line = web.as_ref().map(|handle| {
        let note = if handle.addr.ip().is_unspecified() {
            " (listening on every interface; use this machine's address)"
        } else {
            ""
        };
        format!("dashboard: {}{note}", handle.url())
    });
    let server = web.as_ref().map(|h| h.server.clone());
    let notifier = match &cfg.notify {
        Some(notify) => {
            tracing::info!("alerts to {}", nanotrader_notify::redact_url(notify.url.as_str()));
            Some(nanotrader_notify::Notifier::spawn(notify.clone()).map_err(AppError::input)?)
        }
        None => None,
    };
    let alerts = notifier.as_ref().map(nanotrader_notify::Notifier::handle);
    let result = run_pairs(cfg.clone(), &home, server, line, alerts).await;
    if let Some(notifier) = notifier {
        // The stop alert and what is queued get a moment to go out.
        let _ = notifier.shutdown(std::time::Duration::from_secs(5)).await;
    }
    if let Some(handle) = web {
        if result.is_ok() && cfg.web.as_ref().is_some_and(|w| w.stay) {
            println!(
                "the run has ended; the dashboard stays up at {} (Ctrl-C to stop)",
                handle.url()
            );
            let _ = std::io::stdout().flush();
            wait_for_stop_signal().await;
        }
        // Open pages are not waited for long: they reconnect to the next start.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), handle.stop()).await;
    }
    result
}

/// What the pairs of one process share: the `dashboard: URL` line, printed once every pair's
/// run has really started (its source connected or opened, its run created or resumed), so it
/// never comes before a start-up failure; Kraken's WebSocket; the shared cash rail.
struct DashboardLine {
    line: Option<String>,
    waiting: AtomicUsize,
    /// Where alerts go (`--notify-url`), for every pair's run.
    alerts: Option<nanotrader_notify::NotifyHandle>,
    /// One Kraken WebSocket for every pair.
    feeds: KrakenFeedGroup,
    /// `--shared-cash`: one cash rail for every pair.
    rail: Option<Arc<CashRail>>,
}

impl DashboardLine {
    fn started(&self) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(line) = &self.line
        {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    }
}

/// `--pair BTC/USD,ETH/USD`: one engine, run and store writer per pair, side by side in this
/// process, each resuming on its own; Kraken's WebSocket feeds them all on one connection
/// (`KrakenFeedGroup`). The first failure is reported (after every pair stopped).
async fn run_pairs(
    cfg: RunConfig,
    home: &StoreHome,
    web: Option<Arc<nanotrader_web::Server>>,
    line: Option<String>,
    alerts: Option<nanotrader_notify::NotifyHandle>,
) -> Result<(), AppError> {
    let pairs: Vec<String> = cfg
        .pair
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    let line = DashboardLine {
        line,
        waiting: AtomicUsize::new(pairs.len().max(1)),
        alerts,
        feeds: KrakenFeedGroup::new(pairs.len()),
        rail: cfg
            .shared_cash
            .then(|| CashRail::new(cfg.broker.initial_cash, pairs.len().max(1))),
    };
    if pairs.len() <= 1 {
        return run(cfg, home, None, None, web, &line, 0).await;
    }
    if matches!(cfg.source, SourceSpec::Replay { .. }) {
        return Err(AppError::input(
            "several pairs need a live source (kraken, kraken-rest or sim); a replay file holds one",
        ));
    }
    // One REST client, so every pair's calls share one request budget.
    let rest = match &cfg.source {
        SourceSpec::Kraken { rest_url, .. } | SourceSpec::KrakenRest { rest_url, .. } => {
            Some(RestClient::new(rest_url, PUBLIC_REST_MIN_INTERVAL).map_err(|e| AppError::runtime(e.to_string()))?)
        }
        _ => None,
    };
    // Every pair is checked before any starts: a typo must not leave the others running alone.
    let mut names = Vec::with_capacity(pairs.len());
    for pair in &pairs {
        names.push(match &rest {
            Some(client) => Some(resolve_pair(client, pair, true).await?),
            None => None,
        });
    }
    let runs = pairs.into_iter().zip(names).enumerate().map(|(index, (pair, names))| {
        let cfg = RunConfig { pair, ..cfg.clone() };
        run(cfg, home, rest.clone(), names, web.clone(), &line, index)
    });
    // A failing pair stops the others; they resume on the next start like after any stop.
    futures_util::future::try_join_all(runs).await.map(|_| ())
}

/// `run` and `demo` for one pair. This future is driven by `block_on` on the main thread, which
/// is therefore the engine's own thread on paper: start-up reads from SQLite and the replay
/// source's buffered file reads happen there, never on the runtime's worker threads, where the
/// observers (and the dashboard) run. Store writes have their own thread. With a Kraken broker
/// the engine runs on a thread of its own, with the broker's tasks (`lane`).
async fn run(
    cfg: RunConfig,
    home: &StoreHome,
    rest: Option<RestClient>,
    pair: Option<KrakenPair>,
    web: Option<Arc<nanotrader_web::Server>>,
    line: &DashboardLine,
    index: usize,
) -> Result<(), AppError> {
    let opened = OpenStore::open(home)?;
    let store = opened.runs();
    let probed = ProbedSource::probe(&cfg, rest, pair).await?;
    let plan = run_plan(&cfg, &probed)?;
    // PostgreSQL: another process with the same settings finds-or-creates after this one has
    // claimed its run, so it meets the claim instead of creating a second run.
    let key_lock = opened.lock_key(&plan.key)?;
    let session = RunSession::begin(store, &plan)?;
    let claim = opened.claim(session.run.id)?;
    drop(key_lock);
    let mut strategy = cfg.strategy.build().map_err(AppError::input)?;
    let meta = board_meta(&cfg, &probed.info, &session.run, strategy.as_ref());
    let mut seed = web
        .as_ref()
        .map(|_| board_seed(store, &cfg, &meta, &session))
        .transpose()?;
    // The strategy's state from the stored bars, and the dashboard's history with it.
    let books = cfg.live.books();
    let protections = engine_protections(&cfg);
    let Restored { broker, resume, guard } = session.restore(
        store,
        cfg.broker.clone(),
        &protections,
        books,
        strategy.as_mut(),
        |bar, lines| {
            if let Some(seed) = seed.as_mut() {
                seed.bar(bar, lines);
            }
        },
    )?;
    let (pair, alerts) = (probed.pair(), line.alerts.as_ref());
    // A Kraken broker's run gets an engine thread of its own, where the broker is started (its
    // tasks live on the runtime they are spawned on) and the engine runs (see `lane`).
    let mut lane = None;
    let broker: Box<dyn nanotrader_broker::Broker> = match &line.rail {
        // Paper only (checked with the options): the pair's account on the shared rail.
        Some(rail) => Box::new(rail.broker(index, cfg.pair.clone(), broker)),
        None => {
            let booked = session.fills.iter().map(|f| f.order_id).collect();
            let start = crate::brokers::broker_for(
                &cfg.live,
                broker,
                booked,
                pair,
                home,
                &cfg.data_dir,
                session.run.id,
                alerts,
            )?;
            if start.is_kraken() {
                let thread = lane.insert(crate::lane::EngineThread::start(&cfg.pair)?);
                thread.run(start.start()).await??
            } else {
                start.start().await?
            }
        }
    };
    let passes_bars_through = probed.info.bar_interval == Some(cfg.interval);
    let start_at = session.resume_from(cfg.interval, passes_bars_through);
    let mut source = probed
        .open(&cfg, start_at, stored_start(&session.run), &line.feeds)
        .await?;
    let info = source.info().clone();
    announce(&cfg, &info, &session);
    let start_equity = broker.account().equity();
    // A live account's rails start from the exchange's equity now.
    let guard = guard.or_else(|| nanotrader_broker::Guard::new(&protections, start_equity));
    let run = session.run;
    let outputs = Outputs::start(&opened, claim, &run, &cfg, line.alerts.as_ref())?;
    let aggregator = bar_aggregator(&cfg, &info, &run);
    let mut engine = Engine::new(
        cfg.engine.clone(),
        aggregator,
        strategy,
        broker,
        resume,
        outputs.engine(),
    )
    .with_protections(guard);
    if let (Some(server), Some(seed)) = (&web, seed) {
        let board = attach_board(server, &outputs, meta, seed, board_store(&cfg, &info, &run, home));
        engine = engine.with_controls(board);
    }
    if let Some(rail) = &line.rail {
        // No pair trades before the rail knows what every pair holds.
        rail.every_pair_placed().await;
    }
    line.started();
    let started = Instant::now();
    let (result, elapsed) = match &lane {
        Some(thread) => {
            let stop = stop_signal();
            thread
                .run(async move {
                    let result = engine.run(&mut source, stop).await;
                    let elapsed = started.elapsed();
                    // Dropping the engine closes the store queue, so the writer thread can end;
                    // its broker lets its tasks end.
                    drop(engine);
                    drop(source);
                    (result, elapsed)
                })
                .await?
        }
        None => {
            let result = engine.run(&mut source, stop_signal()).await;
            let elapsed = started.elapsed();
            // Dropping the engine closes the store queue, so the writer thread can end.
            drop(engine);
            (result, elapsed)
        }
    };
    let outcome = outputs.finish(store, &run, &cfg, result).await;
    if let Some(thread) = lane {
        thread.close().await;
    }
    print_summary(store, &cfg, &info, run, outcome?, start_equity, elapsed)
}

/// The protections the engine checks: all of them on paper; beside a Kraken broker, whose own
/// rail is the daily loss (it also cancels open orders and alerts), the max drawdown.
fn engine_protections(cfg: &RunConfig) -> nanotrader_broker::Protections {
    match cfg.live {
        crate::config::LiveSpec::Paper => cfg.protections.clone(),
        crate::config::LiveSpec::Kraken(_) => nanotrader_broker::Protections {
            max_daily_loss: None,
            ..cfg.protections.clone()
        },
    }
}

/// The dashboard's history of the run so far (its bars are added as the strategy is restored).
fn board_seed(
    store: &dyn RunStore,
    cfg: &RunConfig,
    meta: &BoardMeta,
    session: &RunSession,
) -> Result<BoardSeed, AppError> {
    Ok(BoardSeed::new(
        meta,
        cfg.interval,
        &session.fills,
        store.order_reasons(session.run.id)?,
        data_mode(&cfg.source),
    ))
}

/// What a run is, for finding the one these settings continue: its key (the settings a restart
/// must match; speed and looping may change) and what a new one is created with.
fn run_plan(cfg: &RunConfig, source: &ProbedSource) -> Result<RunPlan, AppError> {
    if let Some(src) = source.info.bar_interval
        && src > cfg.interval
    {
        return Err(AppError::input(format!(
            "the data has {src} bars, coarser than the requested --interval {}: use --interval {src} or finer data",
            cfg.interval
        )));
    }
    let key = |identity: &str| {
        let mut key = json!({
            "source": identity,
            "pair": cfg.pair,
            "interval": cfg.interval.secs(),
            "strategy": cfg.strategy,
            "broker": cfg.broker,
            "decide_from_bar": cfg.engine.decide_from_bar,
        });
        // Only when set: the runs made before protections existed keep their keys.
        if !cfg.protections.is_empty() {
            key["protections"] = json!(cfg.protections);
        }
        // Only when set, so the runs of earlier releases keep their keys.
        if cfg.shared_cash {
            key["shared_cash"] = json!(true);
        }
        key.to_string()
    };
    // The sim's start is fixed when its run is created, so a restart regenerates the same market.
    let start_secs = Timestamp::now().floor_to(cfg.interval).secs();
    Ok(RunPlan {
        key: key(&source.info.identity),
        earlier_keys: source.earlier_identity.iter().map(|identity| key(identity)).collect(),
        fresh: cfg.fresh,
        series: source.series_identity(cfg, start_secs)?,
        pair: cfg.pair.clone(),
        interval: cfg.interval,
        config: config_json(cfg, &source.info),
        source_params: json!({ "start_secs": start_secs }).to_string(),
        initial_cash: cfg.broker.initial_cash,
    })
}

/// Bars at the run's interval, continuing after its last stored bar.
fn bar_aggregator(cfg: &RunConfig, info: &SourceInfo, run: &RunRecord) -> BarAggregator {
    let aggregator = BarAggregator::new(cfg.interval, info.bar_interval);
    match run.last_bar_ts {
        Some(ts) => aggregator.with_last_closed(ts),
        None => aggregator,
    }
}

/// The simulator's market start, fixed when its run was created.
fn stored_start(run: &RunRecord) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(&run.source_params)
        .ok()
        .and_then(|v| v["start_secs"].as_i64())
}

/// Where a run's events go besides the engine: the bus (logs, dashboard), the metrics and the
/// store writer's thread.
struct Outputs {
    bus: Bus,
    metrics: Arc<Metrics>,
    store: mpsc::Sender<nanotrader_store::StoreCmd>,
    writer: StoreWriter,
    logger: tokio::task::JoinHandle<()>,
    alerts: Option<nanotrader_notify::NotifyHandle>,
}

impl Outputs {
    fn start(
        store: &OpenStore,
        claim: Option<nanotrader_store_pg::RunClaim>,
        run: &RunRecord,
        cfg: &RunConfig,
        alerts: Option<&nanotrader_notify::NotifyHandle>,
    ) -> Result<Self, AppError> {
        let bus = Bus::new();
        let metrics = Arc::new(Metrics::default());
        let (store_tx, store_rx) = mpsc::channel(STORE_QUEUE_BATCHES);
        let writer = store.spawn_writer(
            claim,
            run.id,
            run.series_id,
            store_rx,
            nanotrader_engine::writer_hooks(bus.events.clone(), metrics.clone()),
        )?;
        let logger = tokio::spawn(crate::logs::log_events(
            bus.events.subscribe(),
            cfg.pair.clone(),
            data_mode(&cfg.source),
        ));
        if let Some(alerts) = alerts {
            tokio::spawn(crate::alerts::forward(
                bus.events.subscribe(),
                alerts.clone(),
                run.id,
                cfg.pair.clone(),
            ));
        }
        let outputs = Self {
            bus,
            metrics,
            store: store_tx,
            writer,
            logger,
            alerts: alerts.cloned(),
        };
        outputs.alert_started(cfg, run);
        Ok(outputs)
    }

    fn alert_started(&self, cfg: &RunConfig, run: &RunRecord) {
        if let Some(alerts) = &self.alerts {
            let broker = venue(&cfg.live);
            let live = broker == "kraken";
            alerts.notify(nanotrader_notify::Event::Started {
                run: run.id,
                pair: cfg.pair.clone(),
                broker: broker.to_owned(),
                live,
            });
        }
    }

    fn engine(&self) -> EngineOutputs {
        EngineOutputs {
            bus: self.bus.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Waits for the store writer and the logger once the engine is gone, and maps how the run
    /// ended: a source failure marks the run failed; a store failure stops it.
    async fn finish(
        self,
        store: &dyn RunStore,
        run: &RunRecord,
        cfg: &RunConfig,
        result: Result<nanotrader_engine::Outcome, nanotrader_engine::EngineError>,
    ) -> Result<nanotrader_engine::Outcome, AppError> {
        let Self {
            bus,
            store: queue,
            writer,
            logger,
            alerts,
            ..
        } = self;
        drop(queue);
        let writer_result = tokio::task::spawn_blocking(move || writer.join())
            .await
            .map_err(|e| AppError::runtime(format!("store writer: {e}")))?;
        drop(bus);
        let _ = logger.await;
        let outcome = match (result, writer_result) {
            (Ok(outcome), Ok(_)) => Ok(outcome),
            (Err(nanotrader_engine::EngineError::Source(e)), _) => {
                let _ = store.set_run_status(run.id, nanotrader_store::RunStatus::Failed);
                Err(e.into())
            }
            (_, Err(e)) => Err(AppError::runtime(format!("store write failed, run stopped: {e}"))),
            (Err(e), _) => Err(AppError::runtime(e.to_string())),
        };
        if let Some(alerts) = alerts {
            let reason = match &outcome {
                Ok(outcome) => format!("{outcome:?}").to_lowercase(),
                Err(e) => e.message.clone(),
            };
            alerts.notify(nanotrader_notify::Event::Stopped {
                run: run.id,
                pair: cfg.pair.clone(),
                reason,
            });
        }
        outcome
    }
}

fn announce(cfg: &RunConfig, info: &SourceInfo, session: &RunSession) {
    let run = &session.run;
    if session.is_resumed() {
        tracing::info!(
            run = run.id,
            bars = run.bars_seen,
            fills = session.fills.len(),
            "resuming run {} after bar {}",
            run.id,
            run.last_bar_ts.map(|t| t.to_string()).unwrap_or_default()
        );
    } else {
        tracing::info!(
            run = run.id,
            "starting run {}: {} on {} ({})",
            run.id,
            cfg.strategy.describe(),
            info.identity,
            cfg.pair
        );
    }
    if let Some(rules) = cfg.protections.describe() {
        tracing::info!("protections: {rules}: a breach halts new entries (checked at each bar's close)");
    }
}

/// The run's board on the dashboard, fed from the bus; its controls go to the engine.
fn attach_board(
    server: &nanotrader_web::Server,
    outputs: &Outputs,
    meta: BoardMeta,
    seed: BoardSeed,
    store: BoardStore,
) -> mpsc::Receiver<nanotrader_engine::ControlRequest> {
    let (controls, requests) = mpsc::channel(8);
    let board = Arc::new(Board::new(
        meta,
        seed,
        outputs.metrics.clone(),
        controls,
        server.clients.clone(),
        server.queue_frames,
        store,
    ));
    server.add_board(board.clone());
    server.spawn_hub(board, &outputs.bus);
    requests
}

/// Where a board reads its run's history pages: the data directory's SQLite file, or the
/// PostgreSQL database the run is in.
fn board_store(cfg: &RunConfig, info: &SourceInfo, run: &RunRecord, home: &StoreHome) -> BoardStore {
    BoardStore {
        data_dir: cfg.data_dir.clone(),
        reader: match home {
            StoreHome::Postgres(url) => {
                let url = url.clone();
                let open: nanotrader_web::OpenReader = Arc::new(move || {
                    let store: Box<dyn nanotrader_store::RunStore + Send> =
                        Box::new(nanotrader_store_pg::PgStore::connect_read_only(&url)?);
                    Ok(store)
                });
                Some(open)
            }
            StoreHome::Sqlite(_) => None,
        },
        series_id: run.series_id,
        config: serde_json::from_str(&config_json(cfg, info)).unwrap_or_default(),
    }
}

/// Set on the first Ctrl-C (the engine then flushes the store and stops); a second one exits
/// at once.
fn stop_signal() -> watch::Receiver<bool> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stopping: flushing the store (Ctrl-C again to force)");
        let _ = shutdown_tx.send(true);
        wait_for_stop_signal().await;
        std::process::exit(130);
    });
    shutdown_rx
}

/// What this session did, read back from the store.
fn print_summary(
    store: &dyn RunStore,
    cfg: &RunConfig,
    info: &SourceInfo,
    run: RunRecord,
    outcome: nanotrader_engine::Outcome,
    start_equity: rust_decimal::Decimal,
    elapsed: std::time::Duration,
) -> Result<(), AppError> {
    let bars_before = run.bars_seen;
    let run_after = store.run(run.id)?.unwrap_or(run);
    let fills = store.fills(run_after.id)?;
    let account = Account::rebuild(run_after.initial_cash, &fills);
    let summary = RunSummary {
        run: &run_after,
        outcome,
        source: info,
        cfg,
        fills: &fills,
        account,
        last_close: last_close(store, &run_after)?,
        start_equity,
        bars_this_session: run_after.bars_seen - bars_before,
        elapsed,
        store: store.location(),
    };
    let mut out = std::io::stdout().lock();
    let _ = output::write_summary(&mut out, &summary);
    Ok(())
}

fn board_meta(cfg: &RunConfig, info: &SourceInfo, run: &RunRecord, strategy: &dyn Strategy) -> BoardMeta {
    BoardMeta {
        pair: cfg.pair.clone(),
        interval_secs: cfg.interval.secs(),
        source: info.kind.to_owned(),
        data: info.identity.clone(),
        run_id: run.id,
        strategy: cfg.strategy.describe(),
        lines: strategy.line_names(),
        paper: cfg.live.books() == nanotrader_engine::Books::Paper,
        initial_cash: run.initial_cash,
        fee_rate: cfg.broker.fee_rate,
        sizing: cfg.broker.sizing.to_string(),
    }
}

fn last_close(store: &dyn RunStore, run: &RunRecord) -> Result<Option<rust_decimal::Decimal>, AppError> {
    let Some(last) = run.last_bar_ts else {
        return Ok(None);
    };
    let mut close = None;
    store.for_each_bar(run.series_id, last, last, &mut |bar| close = Some(bar.close))?;
    Ok(close)
}

fn config_json(cfg: &RunConfig, info: &SourceInfo) -> String {
    json!({
        "source": info.kind,
        "data": info.identity,
        "pair": cfg.pair,
        "interval": cfg.interval.to_string(),
        "strategy": cfg.strategy,
        "broker": cfg.broker,
        "venue": venue(&cfg.live),
        "decide_from_bar": cfg.engine.decide_from_bar,
        "protections": cfg.protections,
        "shared_cash": cfg.shared_cash,
    })
    .to_string()
}

/// Which broker a run trades through, as `--broker` names it (no keys, no URLs).
fn venue(live: &crate::config::LiveSpec) -> &'static str {
    match live {
        crate::config::LiveSpec::Paper => "paper",
        crate::config::LiveSpec::Kraken(k) if k.validate_only => "kraken-validate",
        crate::config::LiveSpec::Kraken(_) => "kraken",
    }
}

pub(crate) async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn pick_run(store: &dyn RunStore, id: Option<i64>) -> Result<RunRecord, AppError> {
    match id {
        Some(id) => store
            .run(id)?
            .ok_or_else(|| AppError::input(format!("no run {id} in {}", store.location()))),
        None => store
            .latest_run()?
            .ok_or_else(|| AppError::input(format!("no runs in {} yet", store.location()))),
    }
}

fn export_fills(target: &StoreTarget, args: &FillsArgs) -> Result<(), AppError> {
    let store = open_reader(target)?;
    let store = store.as_ref();
    let run = pick_run(store, args.run)?;
    let fills = store.fills(run.id)?;
    let trades = store.exchange_fills(run.id)?;
    let mut out = std::io::stdout().lock();
    let written = if args.csv && !trades.is_empty() {
        output::write_exchange_fills_csv(&mut out, &fills, &trades)
    } else if args.csv {
        nanotrader_format::write_run_fills_csv(&mut out, &fills)
    } else {
        output::write_fills_table(&mut out, &run, &fills)
    };
    written.and_then(|_| out.flush()).or_else(ignore_broken_pipe)
}

fn export_bars(target: &StoreTarget, args: &BarsArgs) -> Result<(), AppError> {
    let store = open_reader(target)?;
    let store = store.as_ref();
    let run = match &args.pair {
        Some(pair) => store
            .latest_run_with_pair(pair)?
            .ok_or_else(|| AppError::input(format!("no run has traded {pair} in {}", store.location())))?,
        None => pick_run(store, args.run)?,
    };
    let mut out = std::io::stdout().lock();
    let written = if args.csv {
        output::write_bars_csv(&mut out, store, run.series_id)
    } else {
        output::write_bars_summary(&mut out, store, &run)
    };
    written.and_then(|_| out.flush()).or_else(ignore_broken_pipe)
}

async fn history(target: &StoreTarget, args: &HistoryArgs) -> Result<(), AppError> {
    use crate::history::{BarSink, CsvSink, HistoryRequest, StoreSink, download};
    if args.until.is_some_and(|until| until <= args.since) {
        return Err(AppError::input("--until must be after --since"));
    }
    // Into SQLite: as its one writer, refused before any request when another holds the dir.
    // PostgreSQL takes bars from many writers at once (a bar already stored is kept).
    let home = match &args.out {
        Some(_) => None,
        None => Some(StoreHome::acquire(target)?),
    };
    let url = args
        .kraken_rest_url
        .as_deref()
        .unwrap_or(nanotrader_kraken::consts::REST_BASE_URL);
    let client = RestClient::new(url, PUBLIC_REST_MIN_INTERVAL).map_err(|e| AppError::runtime(e.to_string()))?;
    let pair = resolve_pair(&client, &args.pair, false).await?.names;
    let mut location = None;
    let mut sink: Box<dyn BarSink> = match (&home, &args.out) {
        (Some(StoreHome::Sqlite(lock)), _) => {
            let store = Store::open(lock)?;
            location = Some(format!("in {}", lock.dir().display()));
            Box::new(StoreSink::sqlite(store, &pair, args.interval).map_err(|e| AppError::runtime(e.to_string()))?)
        }
        (Some(StoreHome::Postgres(url)), _) => {
            let store = nanotrader_store_pg::PgStore::connect(url)?;
            location = Some(store.location());
            Box::new(StoreSink::postgres(store, &pair, args.interval).map_err(|e| AppError::runtime(e.to_string()))?)
        }
        (None, Some(path)) => {
            Box::new(CsvSink::open(path).map_err(|e| AppError::input(format!("cannot write {}: {e}", path.display())))?)
        }
        // clap requires one of --out and --store.
        (None, None) => return Err(AppError::runtime("history: neither --out nor the store to write to")),
    };
    let request = HistoryRequest {
        interval: args.interval,
        since: args.since,
        until: args.until,
    };
    let report = download(&client, &pair, &request, sink.as_mut())
        .await
        .map_err(|e| AppError::runtime(e.to_string()))?;
    drop(sink);
    let into = match (&args.out, location) {
        (Some(path), _) => path.display().to_string(),
        (None, Some(location)) => format!("the store {location}"),
        (None, None) => String::new(),
    };
    let resumed = report
        .resumed_after
        .map_or_else(String::new, |t| format!(", continuing after {t}"));
    println!(
        "history: {} {} bars of {} into {into} from Kraken {} ({} requests, {} gaps{resumed})",
        report.bars, args.interval, pair.user, report.endpoint, report.requests, report.gaps
    );
    Ok(())
}

fn list_runs(target: &StoreTarget) -> Result<(), AppError> {
    let store = open_reader(target)?;
    let runs = store.runs()?;
    let mut out = std::io::stdout().lock();
    output::write_runs(&mut out, store.as_ref(), &runs)
        .and_then(|_| out.flush())
        .or_else(ignore_broken_pipe)
}

/// `nanotrader fills --csv | head` is fine: a closed pipe is not an error.
pub(crate) fn ignore_broken_pipe(e: std::io::Error) -> Result<(), AppError> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(AppError::runtime(format!("cannot write output: {e}")))
    }
}
