//! The fleet dashboard (`nanotrader serve --db-url postgres://...`): every run in a PostgreSQL
//! store on one server, whichever process or machine writes it. The runs list, and each run's
//! board as its own process shows it (the same `Board`, page and frames), read from the database
//! and kept live by the writers' notifications (`nanotrader_store_pg::listen_runs`): a commit
//! that changed a run wakes the follower thread, which reads only what is new for that run
//! (bars after the last one shown, fills after the last one, its status) and publishes it as
//! one delta frame. A fallback re-read of everything every `recheck` (30 s by default) covers
//! a notification lost while the listener reconnected; nothing is read on a timer faster.

use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::Server;
use super::board::{Board, BoardMeta, BoardSeed, BoardStore, Change, wall_ms};
use super::errors::ApiError;
use nanotrader_broker::{Account, BrokerConfig, Fill, OrderReason};
use nanotrader_engine::Metrics;
use nanotrader_format::DataMode;
use nanotrader_market::{Bar, FeedStatus, Interval, Speed, Timestamp};
use nanotrader_store::{RunStatus, RunStore, StoreError};
use nanotrader_store_pg::{PgStore, RunOverview, RunsEvent};
use nanotrader_strategy::{Strategy, StrategyConfig};

/// The fallback re-read of every run, for notifications lost while the listener was away.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(30);
/// How soon the list is read again while a run that ended still holds its claim.
const SETTLE: Duration = Duration::from_secs(1);

/// What the fleet has done, for /api/runs (and the tests: no read on a timer faster than
/// `recheck`).
#[derive(Debug, Default)]
pub struct FleetCounters {
    pub notifications: AtomicU64,
    /// Statements sent to the database (reads: the fleet never writes).
    pub reads: AtomicU64,
    pub rechecks: AtomicU64,
    pub listening: AtomicBool,
}

/// The fleet: the store it reads, the boards opened so far, the runs list as JSON.
pub struct Fleet {
    /// The reading connection; `None` after a read failed, until the next read opens a new one
    /// (a server restart ends every session: the fleet must not keep a dead one).
    store: Mutex<Option<Arc<PgStore>>>,
    url: String,
    runs: Mutex<HashMap<i64, Arc<FleetRun>>>,
    /// Serializes opening boards: two pages opening the same run build it once.
    opening: Mutex<()>,
    list: watch::Sender<Utf8Bytes>,
    wake: Mutex<std_mpsc::Sender<Wake>>,
    pub counters: FleetCounters,
    pub recheck: Duration,
    clients: Arc<AtomicU64>,
    queue_frames: usize,
    stopped: AtomicBool,
    /// The list shows a run between its end and its claim's release (see `refresh_list`).
    settling: AtomicBool,
}

/// A run's board and where its follower is in it.
struct FleetRun {
    board: Arc<Board>,
    follow: Mutex<Follow>,
}

struct Follow {
    series_id: i64,
    status: RunStatus,
    last_bar: Option<Timestamp>,
    last_order: u64,
    /// The run's books and strategy as of `last_bar`, for each new bar's equity and lines.
    account: Account,
    strategy: Box<dyn Strategy>,
}

enum Wake {
    Run(i64),
    All,
}

impl Fleet {
    fn wake(&self, what: Wake) {
        let _ = self.wake.lock().unwrap_or_else(|e| e.into_inner()).send(what);
    }

    fn read<T>(&self, read: impl FnOnce(&PgStore) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let store = {
            let mut slot = self.store.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(store) => store.clone(),
                None => {
                    let store = Arc::new(PgStore::connect_read_only(&self.url)?);
                    *slot = Some(store.clone());
                    store
                }
            }
        };
        let result = read(&store);
        if result.is_err() {
            // Whatever failed, the next read starts on a fresh connection.
            let mut slot = self.store.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, &store)) {
                *slot = None;
            }
        }
        result
    }

    /// The runs list as JSON (what /api/runs and the list's stream send).
    pub fn list(&self) -> Utf8Bytes {
        self.list.borrow().clone()
    }

    /// The board of run `id`, opened on first use (blocking: call off the async threads).
    fn board(&self, id: i64) -> Result<Option<Arc<Board>>, StoreError> {
        if let Some(run) = self.runs.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(Some(run.board.clone()));
        }
        let _one_at_a_time = self.opening.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(run) = self.runs.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return Ok(Some(run.board.clone()));
        }
        let Some(run) = self.open(id)? else {
            return Ok(None);
        };
        let board = run.board.clone();
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(run));
        // A commit between the read and the insert found no board to update: look again.
        self.wake(Wake::Run(id));
        Ok(Some(board))
    }

    /// Reads run `id` as a run's own process starts its board: the fills, then every stored bar
    /// of the run with the strategy's lines after it.
    fn open(&self, id: i64) -> Result<Option<FleetRun>, StoreError> {
        let Some(run) = self.read(|s| s.run(id))? else {
            return Ok(None);
        };
        let series = self.read(|s| s.series_summary(run.series_id))?;
        let config: Value = serde_json::from_str(&run.config).unwrap_or_default();
        let strategy_config: StrategyConfig = serde_json::from_value(config["strategy"].clone())
            .map_err(|e| StoreError::Corrupt(format!("run {id}'s strategy in its stored config: {e}")))?;
        let mut strategy = strategy_config
            .build()
            .map_err(|e| StoreError::Corrupt(format!("run {id}'s strategy: {e}")))?;
        let broker: BrokerConfig = serde_json::from_value(config["broker"].clone()).unwrap_or_default();
        let interval = Interval::from_secs(series.interval_secs)
            .ok_or_else(|| StoreError::Corrupt(format!("run {id}'s interval {} s", series.interval_secs)))?;
        let text = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
        let meta = BoardMeta {
            pair: series.pair.clone(),
            interval_secs: series.interval_secs,
            source: text("source"),
            data: text("data"),
            run_id: id,
            strategy: strategy_config.describe(),
            lines: strategy.line_names(),
            paper: true,
            initial_cash: run.initial_cash,
            fee_rate: broker.fee_rate,
            sizing: broker.sizing.to_string(),
        };
        let fills = self.read(|s| s.fills(id))?;
        let reasons = self.read(|s| s.order_reasons(id))?;
        let mut seed = BoardSeed::new(&meta, interval, &fills, reasons, data_mode(&meta.source));
        let mut account = Account::new(run.initial_cash);
        let mut pending = fills.iter().peekable();
        let mut last_bar = None;
        if let (Some(first), Some(last)) = (run.first_bar_ts, run.last_bar_ts) {
            // Bounded by the run's own first and last bar: a series is shared by every run on
            // the same data.
            self.read(|s| {
                s.for_each_bar(run.series_id, first, last, &mut |bar| {
                    strategy.on_bar(&bar);
                    seed.bar(&bar, strategy.line_values());
                    while let Some(fill) = pending.next_if(|f| f.ts <= bar.ts) {
                        account.apply(fill);
                    }
                    account.mark(bar.close);
                    last_bar = Some(bar.ts);
                })
            })?;
        }
        pending.for_each(|fill| account.apply(fill));
        let metrics = Arc::new(Metrics::default());
        metrics.bars_closed.store(run.bars_seen, Ordering::Relaxed);
        metrics.fills_stored.store(fills.len() as u64, Ordering::Relaxed);
        if let Some(t) = last_bar {
            metrics.last_event_ns.store(t.nanos(), Ordering::Relaxed);
        }
        // Nobody steers a run from here: its controls answer that the run is not this process's.
        let (controls, _) = mpsc::channel(1);
        let board = Arc::new(Board::new(
            meta,
            seed,
            metrics,
            controls,
            self.clients.clone(),
            self.queue_frames,
            BoardStore {
                data_dir: std::path::PathBuf::new(),
                reader: Some(pg_reader(&self.url)),
                series_id: run.series_id,
                config,
            },
        ));
        if run.status != RunStatus::Running {
            board.publish(&mut vec![finished(run.status)], true, None, wall_ms());
        }
        Ok(Some(FleetRun {
            board,
            follow: Mutex::new(Follow {
                series_id: run.series_id,
                status: run.status,
                last_bar,
                last_order: fills.last().map_or(0, |f| f.order_id),
                account,
                strategy,
            }),
        }))
    }

    /// Reads what is new for one open board and publishes it as one frame.
    fn follow(&self, id: i64, run: &FleetRun) -> Result<(), StoreError> {
        let mut f = run.follow.lock().unwrap_or_else(|e| e.into_inner());
        let Some(record) = self.read(|s| s.run(id))? else {
            return Ok(());
        };
        let mut bars: Vec<Bar> = Vec::new();
        if let Some(last) = record.last_bar_ts
            && f.last_bar.is_none_or(|shown| last > shown)
        {
            let from = match f.last_bar {
                // The store keeps milliseconds: the next bar is at least one later.
                Some(shown) => Timestamp::from_millis(shown.millis() + 1),
                None => record.first_bar_ts.unwrap_or(last),
            };
            let series = f.series_id;
            self.read(|s| s.for_each_bar(series, from, last, &mut |bar| bars.push(bar)))?;
        }
        let after = f.last_order;
        let fills = self.read(|s| s.fills_after(id, after))?;
        let mut changes = Vec::with_capacity(bars.len() + fills.len() + 1);
        let mut fills = fills.into_iter().peekable();
        for bar in bars {
            while let Some(fill) = fills.next_if(|(fill, _)| fill.ts <= bar.ts) {
                book(&mut f, &mut changes, fill);
            }
            f.strategy.on_bar(&bar);
            f.account.mark(bar.close);
            f.last_bar = Some(bar.ts);
            changes.push(Change::Bar {
                lines: f.strategy.line_values(),
                equity: f.account.equity(),
                exposed: f.account.position() > Decimal::ZERO,
                bar,
                closed: true,
            });
        }
        for fill in fills {
            book(&mut f, &mut changes, fill);
        }
        if record.status != f.status {
            f.status = record.status;
            changes.push(finished(record.status));
            if record.status == RunStatus::Running {
                // Resumed by a new process: its stream flows again.
                changes.push(Change::Feed(FeedStatus::Connected));
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        let metrics = &run.board.metrics;
        metrics.bars_closed.store(record.bars_seen, Ordering::Relaxed);
        metrics.fills_stored.store(f.last_order, Ordering::Relaxed);
        if let Some(t) = f.last_bar {
            metrics.last_event_ns.store(t.nanos(), Ordering::Relaxed);
        }
        run.board.publish(&mut changes, true, None, wall_ms());
        Ok(())
    }

    fn refresh_list(&self) -> Result<(), StoreError> {
        let runs = self.read(PgStore::overview)?;
        // A run that has just ended still holds its claim for a moment after its last commit,
        // and letting it go raises no notification: such a list is read again shortly.
        let settling = runs.iter().any(|r| r.claimed && r.status != RunStatus::Running);
        self.settling.store(settling, Ordering::Relaxed);
        let rows: Vec<RunRow> = runs.iter().map(RunRow::new).collect();
        let text = serde_json::to_string(&json!({ "type": "runs", "runs": rows })).expect("the runs list serializes");
        self.list.send_if_modified(|list| {
            let changed = list.as_str() != text;
            if changed {
                *list = Utf8Bytes::from(text);
            }
            changed
        });
        Ok(())
    }

    /// The follower: waits for a notification (or the fallback's time), takes every other
    /// one waiting too (a burst of commits is one read per run), and reads what changed.
    fn run_follower(self: Arc<Self>, wakes: std_mpsc::Receiver<Wake>) {
        let mut failing = false;
        let mut last_recheck = Instant::now();
        loop {
            let mut runs = BTreeSet::new();
            let mut all = false;
            let to_recheck = self.recheck.saturating_sub(last_recheck.elapsed());
            let settling = self.settling.load(Ordering::Relaxed);
            let wait = if settling { to_recheck.min(SETTLE) } else { to_recheck };
            match wakes.recv_timeout(wait) {
                Ok(Wake::Run(id)) => {
                    runs.insert(id);
                }
                Ok(Wake::All) => all = true,
                Err(std_mpsc::RecvTimeoutError::Timeout) if last_recheck.elapsed() >= self.recheck => {
                    self.counters.rechecks.fetch_add(1, Ordering::Relaxed);
                    all = true;
                }
                // Settling: only the list is read again.
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(wake) = wakes.try_recv() {
                match wake {
                    Wake::Run(id) => {
                        runs.insert(id);
                    }
                    Wake::All => all = true,
                }
            }
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            if all {
                last_recheck = Instant::now();
            }
            let open: Vec<(i64, Arc<FleetRun>)> = {
                let map = self.runs.lock().unwrap_or_else(|e| e.into_inner());
                map.iter()
                    .filter(|(id, _)| all || runs.contains(id))
                    .map(|(id, run)| (*id, run.clone()))
                    .collect()
            };
            let mut result = self.refresh_list();
            for (id, run) in open {
                result = result.and(self.follow(id, &run));
            }
            match result {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "the fleet dashboard cannot read the store: {e}; the next notification or re-check tries again"
                    );
                }
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the fleet dashboard reads the store again");
                }
                _ => {}
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// A fill of a followed run: into its books, then onto its board.
fn book(f: &mut Follow, changes: &mut Vec<Change>, (fill, reason): (Fill, Option<OrderReason>)) {
    f.account.apply(&fill);
    f.last_order = fill.order_id;
    changes.push(Change::Fill { fill, reason });
}

fn finished(status: RunStatus) -> Change {
    Change::Finished {
        status: status.as_str(),
    }
}

fn data_mode(source: &str) -> DataMode {
    match source {
        "replay" => DataMode::Replay(Speed::Max),
        "sim" | "simulation" => DataMode::Simulation(Speed::Max),
        _ => DataMode::Live,
    }
}

/// One row of the runs list (exact decimal strings for money, as everywhere in the API).
#[derive(Serialize)]
struct RunRow {
    id: i64,
    pair: String,
    strategy: String,
    broker: String,
    source: String,
    data: String,
    interval_secs: i64,
    /// As stored: running, interrupted, completed or failed.
    status: &'static str,
    /// Whether a writer holds the run's claim now.
    live: bool,
    /// What a person wants to know: `live` (a writer holds it), `stopped` (unfinished, no
    /// writer: it resumes when its process starts again), `finished` or `failed`.
    state: &'static str,
    initial_cash: Decimal,
    equity: Decimal,
    return_pct: Decimal,
    fills: u64,
    bars: u64,
    /// Unix seconds.
    last_bar: Option<i64>,
    updated_at: i64,
}

impl RunRow {
    fn new(run: &RunOverview) -> Self {
        let config: Value = serde_json::from_str(&run.config).unwrap_or_default();
        let strategy = serde_json::from_value::<StrategyConfig>(config["strategy"].clone())
            .map_or_else(|_| "?".to_owned(), |s| s.describe());
        let equity = run.equity().normalize();
        let return_pct = (equity - run.initial_cash)
            .checked_div(run.initial_cash)
            .map_or(Decimal::ZERO, |r| (r * Decimal::ONE_HUNDRED).round_dp(6).normalize());
        let state = match (run.claimed, run.status) {
            (true, _) => "live",
            (false, RunStatus::Completed) => "finished",
            (false, RunStatus::Failed) => "failed",
            (false, RunStatus::Running | RunStatus::Interrupted) => "stopped",
        };
        Self {
            id: run.id,
            pair: run.pair.clone(),
            strategy,
            // As the run stored it (`venue`); runs stored before it was kept were paper runs.
            broker: config["venue"].as_str().unwrap_or("paper").to_owned(),
            source: config["source"].as_str().unwrap_or_default().to_owned(),
            data: run.identity.clone(),
            interval_secs: run.interval_secs,
            status: run.status.as_str(),
            live: run.claimed,
            state,
            initial_cash: run.initial_cash.normalize(),
            equity,
            return_pct,
            fills: run.fills,
            bars: run.bars_seen,
            last_bar: run.last_bar_ts.map(Timestamp::secs),
            updated_at: run.updated_at.secs(),
        }
    }
}

/// Starts the fleet on `server`: its follower thread and its listener. `store` is the reading
/// connection; `url` opens the listener's own.
pub fn attach(server: &Arc<Server>, store: PgStore, url: &str, recheck: Duration) -> Result<(), StoreError> {
    let (wake, wakes) = std_mpsc::channel();
    let fleet = Arc::new(Fleet {
        store: Mutex::new(Some(Arc::new(store))),
        url: url.to_owned(),
        runs: Mutex::new(HashMap::new()),
        opening: Mutex::new(()),
        list: watch::channel(Utf8Bytes::from_static(r#"{"type":"runs","runs":[]}"#)).0,
        wake: Mutex::new(wake.clone()),
        counters: FleetCounters::default(),
        recheck,
        clients: server.clients.clone(),
        queue_frames: server.queue_frames,
        stopped: AtomicBool::new(false),
        settling: AtomicBool::new(false),
    });
    // The list is there before the first page asks.
    fleet.refresh_list()?;
    let follower = fleet.clone();
    std::thread::Builder::new()
        .name("fleet".into())
        .spawn(move || follower.run_follower(wakes))
        .map_err(|e| StoreError::Unusable(format!("cannot start the fleet's thread: {e}")))?;
    let hearer = Arc::downgrade(&fleet);
    nanotrader_store_pg::listen_runs(url, move |event| {
        let Some(fleet) = hearer.upgrade() else {
            return ControlFlow::Break(());
        };
        if fleet.stopped.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        match event {
            RunsEvent::Changed(id) => {
                fleet.counters.notifications.fetch_add(1, Ordering::Relaxed);
                fleet.wake(Wake::Run(id));
            }
            RunsEvent::Listening { again } => {
                fleet.counters.listening.store(true, Ordering::Relaxed);
                if again {
                    fleet.wake(Wake::All);
                }
            }
            RunsEvent::Quiet => {}
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| StoreError::Unusable(format!("cannot start the fleet's listener: {e}")))?;
    let _ = server.fleet.set(fleet);
    Ok(())
}

fn fleet_of(server: &Server) -> Result<&Arc<Fleet>, ApiError> {
    server.fleet.get().ok_or_else(|| {
        ApiError::not_found("this dashboard shows one process's runs: the runs list is `nanotrader serve`'s")
    })
}

/// The board of run `id`, opened on first use.
pub async fn board(server: &Server, id: i64) -> Result<Arc<Board>, ApiError> {
    let fleet = fleet_of(server)?.clone();
    tokio::task::spawn_blocking(move || fleet.board(id))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store read: {e}")))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store read: {e}")))?
        .ok_or_else(|| ApiError::not_found(format!("no run {id} in the store")))
}

/// `/api/runs`: every run, and what the fleet has done (notifications heard, reads made).
pub async fn runs(State(server): State<Arc<Server>>) -> Result<Response, ApiError> {
    let fleet = fleet_of(&server)?;
    let list: Value = serde_json::from_str(fleet.list().as_str()).unwrap_or_default();
    let c = &fleet.counters;
    Ok(Json(json!({
        "runs": list["runs"],
        "listening": c.listening.load(Ordering::Relaxed),
        "notifications": c.notifications.load(Ordering::Relaxed),
        "reads": c.reads.load(Ordering::Relaxed),
        "rechecks": c.rechecks.load(Ordering::Relaxed),
        "recheck_secs": fleet.recheck.as_secs_f64(),
    }))
    .into_response())
}

/// `/api/runs/{id}`: the run's row of the list with its board's account, performance and status.
pub async fn run(
    State(server): State<Arc<Server>>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::bad_request("a run id is a whole number"))?;
    let board = board(&server, id).await?;
    let fleet = fleet_of(&server)?;
    let list: Value = serde_json::from_str(fleet.list().as_str()).unwrap_or_default();
    let row = list["runs"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == id).cloned())
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "run": row,
        "meta": board.meta,
        "account": board.account(),
        "performance": board.performance(),
        "status": board.status(),
    }))
    .into_response())
}

/// `/ws/runs`: the runs list now, then again whenever it changes.
pub async fn runs_stream(
    State(server): State<Arc<Server>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade?;
    let list = fleet_of(&server)?.list.subscribe();
    Ok(upgrade
        .protocols([super::stream::SUBPROTOCOL])
        .read_buffer_size(super::stream::MAX_CLIENT_MESSAGE)
        .max_message_size(super::stream::MAX_READ_MESSAGE)
        .max_frame_size(super::stream::MAX_READ_MESSAGE)
        .on_upgrade(move |socket| serve_list(socket, list)))
}

async fn serve_list(socket: WebSocket, mut list: watch::Receiver<Utf8Bytes>) {
    let (mut sink, mut incoming) = socket.split();
    let first = list.borrow_and_update().clone();
    if sink.send(Message::Text(first)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            changed = list.changed() => {
                if changed.is_err() {
                    break;
                }
                let text = list.borrow_and_update().clone();
                if sink.send(Message::Text(text)).await.is_err() {
                    break;
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    let _ = tokio::time::timeout(Duration::from_secs(5), sink.close()).await;
                    break;
                }
                // Pages send nothing else; anything is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The fleet board's history pages: a read-only connection of their own to the database.
fn pg_reader(url: &str) -> crate::board::OpenReader {
    let url = url.to_owned();
    Arc::new(move || {
        let store: Box<dyn nanotrader_store::RunStore + Send> = Box::new(PgStore::connect_read_only(&url)?);
        Ok(store)
    })
}
