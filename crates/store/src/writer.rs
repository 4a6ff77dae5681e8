//! The store writer: a dedicated thread that receives the engine's steps, writes them in batched
//! transactions and only then reports them as committed (a fill is durable before it is announced).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, Transaction, params};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::codec::fixed_to_sql;
use super::{RunStatus, StoreError, open_connection};
use nanotrader_broker::{AccountSnapshot, Fill, Order};
use nanotrader_market::{Bar, Timestamp};

/// Most steps written in one transaction: bounds the time a commit takes and what a crash redoes.
const MAX_STEPS_PER_TX: usize = 65_536;
/// Bars inserted by one multi-row INSERT: far fewer statement executions per bar.
const BARS_PER_INSERT: usize = 64;
/// A write that failed for a reason that can pass (a full disk, a lock held by another process, a
/// read-only or failing file) is retried with doubling back-off up to this delay, for as long as
/// the engine runs: the market stream and the strategy go on meanwhile.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// A failure that will not pass by waiting (a constraint broken, a corrupt page) is tried this
/// many times, then the run stops: retrying it for ever would only hide it.
const MAX_PERMANENT_ATTEMPTS: u32 = 3;
/// Steps held in memory while the store cannot be written (about four months of one-minute
/// bars); past this the writer stops taking more and the engine waits for it.
pub const MAX_BACKLOG_STEPS: usize = 200_000;
/// Once the engine has finished (or stopped), how long the writer keeps retrying what is left
/// before it gives up and says what was not stored.
pub const FINISH_RETRY_FOR: Duration = Duration::from_secs(30);
/// While the store fails, a reminder is logged this often.
const STILL_FAILING_EVERY: Duration = Duration::from_secs(60);
/// The writer waits on a lock held by another connection this long before it counts a failure
/// (and keeps taking the engine's steps while it backs off).
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// A run of empty intervals in a bar series.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub from: Timestamp,
    pub to: Timestamp,
    pub missing: u64,
}

/// A change of the strategy's signal (the seed's entry/exit column).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SignalChange {
    pub ts: Timestamp,
    pub signal: i8,
    pub change: i8,
}

/// Where the run stands after a step: what a restart needs to continue exactly.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct Progress {
    pub last_bar_ts: Option<Timestamp>,
    pub bars_seen: u64,
    pub signal: i8,
    pub next_order_id: u64,
}

/// Everything one engine step produced. Written atomically, so the store always holds a prefix
/// of the engine's history: never a bar without the fill it caused. The rare parts are boxed so
/// the common step (a bar and nothing else) stays small in the queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub bar: Option<Bar>,
    pub gap: Option<Gap>,
    pub signal: Option<SignalChange>,
    pub execution: Option<Box<Execution>>,
    /// A periodic account snapshot (the account at each fill travels with the trade).
    pub snapshot: Option<Box<AccountSnapshot>>,
    pub progress: Progress,
}

/// An order, its fill and the account right after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Execution {
    pub order: Order,
    pub fill: Fill,
    pub account: AccountSnapshot,
}

pub enum StoreCmd {
    Steps(Vec<Step>),
    /// Write everything received so far, mark the run, answer, and stop.
    Finish {
        status: RunStatus,
        done: oneshot::Sender<()>,
    },
}

/// Called on the writer thread after each committed transaction, with its batches of steps and
/// the time the transaction took.
pub type OnCommit = Box<dyn FnMut(&[Vec<Step>], Duration) + Send>;

/// Called on the writer thread when writes start failing (with the reason) and when they work
/// again (with `None`).
pub type OnHealth = Box<dyn FnMut(Option<&str>) + Send>;

/// What the writer tells the rest of the process.
pub struct WriterHooks {
    pub on_commit: OnCommit,
    pub on_health: OnHealth,
}

pub struct StoreWriter {
    thread: JoinHandle<Result<WriterStats, StoreError>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub transactions: u64,
    pub steps: u64,
    /// Failed write attempts that were retried.
    pub retries: u64,
}

impl StoreWriter {
    /// Starts the writer thread for one run on its own connection.
    pub fn spawn(
        db_path: &Path,
        run_id: i64,
        series_id: i64,
        commands: mpsc::Receiver<StoreCmd>,
        hooks: WriterHooks,
    ) -> Result<Self, StoreError> {
        let conn = open_connection(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.busy_timeout(WRITER_BUSY_TIMEOUT)?;
        // Checkpoints (copying the WAL into the database) run on their own thread, so the writer
        // spends its time on new data; see `Checkpointer`.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A larger page cache for the connection that appends up to a million bars a second.
        conn.pragma_update(None, "cache_size", -16_384)?;
        let checkpointer = Some(Checkpointer::spawn(db_path)?);
        let target = SqliteTarget {
            conn,
            path: db_path.to_path_buf(),
            checkpointer,
        };
        Self::spawn_with(target, run_id, series_id, commands, hooks)
    }

    /// Starts the writer thread for one run over any [`WriteTarget`]: the same batching, retries,
    /// back-off, backlog bound and hooks for every store.
    pub fn spawn_with(
        target: impl WriteTarget,
        run_id: i64,
        series_id: i64,
        commands: mpsc::Receiver<StoreCmd>,
        hooks: WriterHooks,
    ) -> Result<Self, StoreError> {
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let writer = Writer {
                    location: target.location(),
                    target,
                    run_id,
                    series_id,
                    stats: WriterStats::default(),
                    commands,
                    hooks,
                    backlog: VecDeque::new(),
                    backlog_steps: 0,
                    finish: None,
                    engine_gone: false,
                    outage: None,
                };
                writer.run()
            })
            .map_err(|e| StoreError::Unusable(format!("cannot start the store writer: {e}")))?;
        Ok(Self { thread })
    }

    /// Waits for the thread to end (after `Finish`, or when every sender is gone).
    pub fn join(self) -> Result<WriterStats, StoreError> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(StoreError::Unusable("the store writer thread panicked".into())))
    }
}

/// How often the checkpointer folds the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Runs passive WAL checkpoints beside the writer (SQLite allows one checkpointer next to one
/// writer), then a final truncating one so a finished run leaves a compact file.
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn spawn(db_path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                let checkpoint = |mode: &str| {
                    if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
                        tracing::debug!("WAL checkpoint ({mode}) did not run: {e}");
                    }
                };
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                    checkpoint("PASSIVE");
                }
                checkpoint("TRUNCATE");
            })
            .map_err(|e| StoreError::Unusable(format!("cannot start the store checkpointer: {e}")))?;
        Ok(Self { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// What a [`StoreWriter`] writes into. Implemented here for SQLite and by
/// `nanotrader-store-pg` for PostgreSQL; the writer's loop (batching, retry with back-off, the
/// backlog bound, the hooks) is the same for both.
pub trait WriteTarget: Send + 'static {
    /// Where, for messages (never a password).
    fn location(&self) -> String;
    /// Writes every step of `batches` in one transaction: all of it durable when this returns
    /// `Ok`, none of it when it fails (so a retry stores each step once). A target that can be
    /// kept waiting by its server calls `waiting` every few milliseconds while it waits: that
    /// takes the engine's new steps aside (up to the backlog bound), so the engine goes on while
    /// a slow or silent server is waited for.
    fn write(
        &mut self,
        run_id: i64,
        series_id: i64,
        batches: &[Vec<Step>],
        waiting: &mut dyn FnMut(),
    ) -> Result<(), StoreError>;
    /// Marks the run's final status.
    fn finish(&mut self, run_id: i64, status: RunStatus) -> Result<(), StoreError>;
    /// Whether waiting can cure this failure.
    fn is_transient(&self, error: &StoreError) -> bool;
    /// The failure in words a person can act on.
    fn describe(&self, error: &StoreError) -> String;
}

/// The SQLite file of a data directory, with its checkpointer.
struct SqliteTarget {
    conn: Connection,
    path: PathBuf,
    checkpointer: Option<Checkpointer>,
}

impl WriteTarget for SqliteTarget {
    fn location(&self) -> String {
        self.path.display().to_string()
    }
    fn write(
        &mut self,
        run_id: i64,
        series_id: i64,
        batches: &[Vec<Step>],
        _waiting: &mut dyn FnMut(),
    ) -> Result<(), StoreError> {
        // A local file: a write waits at most the busy timeout (a lock), never on a peer.
        write(&mut self.conn, run_id, series_id, batches)
    }
    fn finish(&mut self, run_id: i64, status: RunStatus) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![run_id, status.as_str(), Timestamp::now().millis()],
        )?;
        Ok(())
    }
    fn is_transient(&self, error: &StoreError) -> bool {
        is_transient(error)
    }
    fn describe(&self, error: &StoreError) -> String {
        describe_failure(error)
    }
}

impl Drop for SqliteTarget {
    /// The final truncating checkpoint runs once the writer is done with the file.
    fn drop(&mut self) {
        if let Some(checkpointer) = self.checkpointer.take() {
            checkpointer.stop();
        }
    }
}

struct Writer<T: WriteTarget> {
    target: T,
    location: String,
    run_id: i64,
    series_id: i64,
    stats: WriterStats,
    commands: mpsc::Receiver<StoreCmd>,
    hooks: WriterHooks,
    /// Batches received and not yet committed, oldest first, kept as the engine sent them.
    backlog: VecDeque<Vec<Step>>,
    backlog_steps: usize,
    /// The engine's last command, answered once everything before it is stored.
    finish: Option<(RunStatus, oneshot::Sender<()>)>,
    /// The engine dropped its end of the queue (it stopped, with or without `Finish`).
    engine_gone: bool,
    outage: Option<Outage>,
}

/// The current run of failed writes.
struct Outage {
    since: Instant,
    attempts: u64,
    /// Consecutive failures that waiting will not cure.
    permanent_attempts: u32,
    delay: Duration,
    reason: String,
    reminded: Instant,
    backlog_full_said: bool,
    /// When the engine is done, the time after which the writer gives up.
    give_up_at: Option<Instant>,
}

impl<T: WriteTarget> Writer<T> {
    fn run(mut self) -> Result<WriterStats, StoreError> {
        loop {
            if self.backlog.is_empty() {
                if let Some((status, done)) = self.finish.take() {
                    self.target.finish(self.run_id, status)?;
                    let _ = done.send(());
                    return Ok(self.stats);
                }
                if self.engine_gone {
                    return Ok(self.stats);
                }
                match self.commands.blocking_recv() {
                    Some(cmd) => self.take(cmd),
                    None => self.engine_gone = true,
                }
            }
            // Coalesce whatever else is already queued into the same transaction.
            while self.finish.is_none() && !self.engine_gone && self.backlog_steps < MAX_STEPS_PER_TX {
                match self.commands.try_recv() {
                    Ok(cmd) => self.take(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => self.engine_gone = true,
                }
            }
            if !self.backlog.is_empty() {
                self.write_front()?;
            }
        }
    }

    fn take(&mut self, cmd: StoreCmd) {
        match cmd {
            StoreCmd::Steps(steps) => {
                self.backlog_steps += steps.len();
                self.backlog.push_back(steps);
            }
            StoreCmd::Finish { status, done } => self.finish = Some((status, done)),
        }
    }

    /// Writes the oldest batches (up to `MAX_STEPS_PER_TX` steps) in one transaction; on failure
    /// keeps them, waits out the back-off while still taking the engine's steps, and returns so
    /// the caller tries again.
    fn write_front(&mut self) -> Result<(), StoreError> {
        let mut count = 0;
        let mut steps = 0;
        for batch in &self.backlog {
            if count > 0 && steps + batch.len() > MAX_STEPS_PER_TX {
                break;
            }
            count += 1;
            steps += batch.len();
        }
        let started = Instant::now();
        // Steps the engine sends while the target waits on its server, kept aside (the batches
        // being written are borrowed) and appended to the backlog after.
        let mut aside: Vec<Vec<Step>> = Vec::new();
        let mut aside_steps = 0;
        let result = {
            let (run_id, series_id) = (self.run_id, self.series_id);
            let room = MAX_BACKLOG_STEPS.saturating_sub(self.backlog_steps);
            let (commands, finish, engine_gone) = (&mut self.commands, &mut self.finish, &mut self.engine_gone);
            let mut waiting = || {
                while finish.is_none() && !*engine_gone && aside_steps < room {
                    match commands.try_recv() {
                        Ok(StoreCmd::Steps(steps)) => {
                            aside_steps += steps.len();
                            aside.push(steps);
                        }
                        Ok(StoreCmd::Finish { status, done }) => *finish = Some((status, done)),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => *engine_gone = true,
                    }
                }
            };
            let batches = self.backlog.make_contiguous();
            self.target.write(run_id, series_id, &batches[..count], &mut waiting)
        };
        let elapsed = started.elapsed();
        self.backlog_steps += aside_steps;
        self.backlog.extend(aside);
        match result {
            Ok(()) => {
                self.stats.transactions += 1;
                self.stats.steps += steps as u64;
                let batches = self.backlog.make_contiguous();
                (self.hooks.on_commit)(&batches[..count], elapsed);
                self.backlog.drain(..count);
                self.backlog_steps -= steps;
                if let Some(outage) = self.outage.take() {
                    tracing::info!(
                        store = %self.location,
                        "store writes work again after {} failed attempts over {:.1} s; nothing was lost",
                        outage.attempts,
                        outage.since.elapsed().as_secs_f64()
                    );
                    (self.hooks.on_health)(None);
                }
                Ok(())
            }
            Err(e) => {
                self.stats.retries += 1;
                self.on_failure(e)?;
                self.back_off();
                Ok(())
            }
        }
    }

    /// Records a failed write, tells people about it once (and then once a minute), and decides
    /// whether it is worth retrying.
    fn on_failure(&mut self, error: StoreError) -> Result<(), StoreError> {
        let permanent = !self.target.is_transient(&error);
        let reason = self.target.describe(&error);
        let outage = self.outage.get_or_insert_with(|| {
            tracing::warn!(
                store = %self.location,
                "store writes failing: {reason}. Retrying with back-off; the market data and the strategy keep \
                 running, and fills are announced only once stored"
            );
            Outage {
                since: Instant::now(),
                attempts: 0,
                permanent_attempts: 0,
                delay: FIRST_RETRY_DELAY,
                reason: String::new(),
                reminded: Instant::now(),
                backlog_full_said: false,
                give_up_at: None,
            }
        });
        if outage.attempts == 0 || outage.reason != reason {
            (self.hooks.on_health)(Some(&reason));
        }
        outage.attempts += 1;
        outage.permanent_attempts = if permanent { outage.permanent_attempts + 1 } else { 0 };
        if outage.reason != reason && outage.attempts > 1 {
            tracing::warn!(store = %self.location, "store writes now failing with: {reason}");
        }
        outage.reason = reason;
        if outage.reminded.elapsed() >= STILL_FAILING_EVERY {
            outage.reminded = Instant::now();
            tracing::warn!(
                store = %self.location,
                "store writes still failing after {} attempts over {:.0} s: {}; {} steps wait in memory",
                outage.attempts,
                outage.since.elapsed().as_secs_f64(),
                outage.reason,
                self.backlog_steps
            );
        }
        if outage.permanent_attempts >= MAX_PERMANENT_ATTEMPTS {
            return Err(self.give_up(error));
        }
        if (self.finish.is_some() || self.engine_gone) && outage.give_up_at.is_none() {
            outage.give_up_at = Some(Instant::now() + FINISH_RETRY_FOR);
            tracing::warn!(
                "the engine has stopped; retrying the last {} steps for up to {} s (Ctrl-C again to give up: \
                 the run then resumes from its last stored bar)",
                self.backlog_steps,
                FINISH_RETRY_FOR.as_secs()
            );
        }
        if outage.give_up_at.is_some_and(|at| Instant::now() >= at) {
            return Err(self.give_up(error));
        }
        Ok(())
    }

    /// The error that ends the run, saying what was not stored.
    fn give_up(&self, error: StoreError) -> StoreError {
        let fills = self.backlog.iter().flatten().filter(|s| s.execution.is_some()).count();
        StoreError::Unusable(format!(
            "cannot write to store {}: {}; {} steps ({} fills) were not stored and were never reported as done, \
             the run resumes from its last stored bar",
            self.location,
            self.target.describe(&error),
            self.backlog_steps,
            fills
        ))
    }

    /// Waits out the current back-off delay, meanwhile taking the engine's steps into the
    /// backlog (so the market stream never waits on a failing disk) until it is full.
    fn back_off(&mut self) {
        let Some(outage) = self.outage.as_mut() else { return };
        let until = Instant::now() + outage.delay;
        outage.delay = (outage.delay * 2).min(MAX_RETRY_DELAY);
        if let Some(give_up_at) = outage.give_up_at {
            outage.delay = outage.delay.min(give_up_at.saturating_duration_since(Instant::now()));
        }
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            if self.finish.is_some() || self.engine_gone || self.backlog_steps >= MAX_BACKLOG_STEPS {
                let outage = self.outage.as_mut().expect("set above");
                if self.backlog_steps >= MAX_BACKLOG_STEPS && !outage.backlog_full_said {
                    outage.backlog_full_said = true;
                    tracing::warn!(
                        "{} steps wait for the store: the engine now waits for it too",
                        self.backlog_steps
                    );
                }
                std::thread::sleep(until - now);
                return;
            }
            match self.commands.try_recv() {
                Ok(cmd) => self.take(cmd),
                Err(TryRecvError::Empty) => std::thread::sleep((until - now).min(Duration::from_millis(10))),
                Err(TryRecvError::Disconnected) => self.engine_gone = true,
            }
        }
    }
}

fn write(conn: &mut Connection, run_id: i64, series_id: i64, batches: &[Vec<Step>]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    write_steps(&tx, run_id, series_id, batches.iter().flatten())?;
    tx.commit()?;
    Ok(())
}

/// Whether waiting can cure a failed write: space freed, a lock released, permissions restored.
fn is_transient(error: &StoreError) -> bool {
    match error {
        StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => matches!(
            e.code,
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::OutOfMemory
        ),
        _ => false,
    }
}

/// The failure in words a person can act on.
fn describe_failure(error: &StoreError) -> String {
    let hint = match error {
        StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => match e.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => " (another process holds a lock on the database)",
            ErrorCode::DiskFull => " (free some space on its disk)",
            ErrorCode::ReadOnly | ErrorCode::PermissionDenied | ErrorCode::CannotOpen => {
                " (make the data directory and its files writable)"
            }
            ErrorCode::SystemIoFailure => " (the disk or file system reported an error)",
            _ => "",
        },
        _ => "",
    };
    match error {
        StoreError::Sql(e) => format!("{e}{hint}"),
        other => format!("{other}{hint}"),
    }
}

fn write_steps<'a>(
    tx: &Transaction,
    run_id: i64,
    series_id: i64,
    steps: impl Iterator<Item = &'a Step>,
) -> Result<(), StoreError> {
    let mut bars = BarInserter::new(series_id);
    let mut first_bar: Option<Timestamp> = None;
    let mut last_progress = None;
    for step in steps {
        if let Some(bar) = &step.bar {
            bars.push(tx, bar)?;
            first_bar.get_or_insert(bar.ts);
        }
        if let Some(gap) = &step.gap {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO gaps (series_id, from_ts, to_ts, missing) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                series_id,
                gap.from.millis(),
                gap.to.millis(),
                gap.missing as i64
            ])?;
        }
        if let Some(sig) = &step.signal {
            tx.prepare_cached("INSERT OR REPLACE INTO signals (run_id, ts, signal, change) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![run_id, sig.ts.millis(), sig.signal, sig.change])?;
        }
        if let Some(execution) = &step.execution {
            write_execution(tx, run_id, &execution.order, &execution.fill)?;
        }
        if let Some(snap) = &step.snapshot {
            write_snapshot(tx, run_id, snap)?;
        }
        last_progress = Some(step.progress);
    }
    bars.flush(tx)?;
    if let Some(p) = last_progress {
        tx.prepare_cached(
            "UPDATE runs SET first_bar_ts = COALESCE(first_bar_ts, ?2), last_bar_ts = COALESCE(?3, last_bar_ts),
                 bars_seen = ?4, signal = ?5, next_order_id = ?6, updated_at = ?7, status = 'running'
             WHERE id = ?1",
        )?
        .execute(params![
            run_id,
            first_bar.map(Timestamp::millis),
            p.last_bar_ts.map(Timestamp::millis),
            p.bars_seen as i64,
            p.signal,
            p.next_order_id as i64,
            Timestamp::now().millis()
        ])?;
    }
    Ok(())
}

/// Collects bars and inserts them `BARS_PER_INSERT` rows per statement.
pub(crate) struct BarInserter {
    series_id: i64,
    pending: Vec<Bar>,
}

impl BarInserter {
    pub(crate) fn new(series_id: i64) -> Self {
        Self {
            series_id,
            pending: Vec::with_capacity(BARS_PER_INSERT),
        }
    }

    pub(crate) fn push(&mut self, tx: &Transaction, bar: &Bar) -> Result<(), StoreError> {
        self.pending.push(*bar);
        if self.pending.len() == BARS_PER_INSERT {
            self.flush(tx)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self, tx: &Transaction) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(&bar_insert_sql(self.pending.len()))?;
        for (i, bar) in self.pending.iter().enumerate() {
            let base = i * 8;
            stmt.raw_bind_parameter(base + 1, self.series_id)?;
            stmt.raw_bind_parameter(base + 2, bar.ts.millis())?;
            for (j, value) in [bar.open, bar.high, bar.low, bar.close, bar.volume]
                .into_iter()
                .enumerate()
            {
                stmt.raw_bind_parameter(base + 3 + j, fixed_to_sql(value))?;
            }
            stmt.raw_bind_parameter(base + 8, bar.trades)?;
        }
        stmt.raw_execute()?;
        self.pending.clear();
        Ok(())
    }
}

fn bar_insert_sql(rows: usize) -> String {
    let row = "(?,?,?,?,?,?,?,?)";
    format!(
        "INSERT OR IGNORE INTO bars (series_id, ts, open, high, low, close, volume, trades) VALUES {}",
        vec![row; rows].join(",")
    )
}

fn write_execution(tx: &Transaction, run_id: i64, order: &Order, fill: &Fill) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO orders (run_id, id, ts, side, qty, reason, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'filled')",
    )?
    .execute(params![
        run_id,
        order.id as i64,
        order.ts.millis(),
        order.side.as_str(),
        order.qty.to_string(),
        order.reason.as_str()
    ])?;
    tx.prepare_cached(
        "INSERT INTO fills (run_id, order_id, ts, side, qty, price, fee, cash_after, position_after, realized_pnl)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        run_id,
        fill.order_id as i64,
        fill.ts.millis(),
        fill.side.as_str(),
        fill.qty.to_string(),
        fill.price.to_string(),
        fill.fee.to_string(),
        fill.cash_after.to_string(),
        fill.position_after.to_string(),
        fill.realized_pnl.to_string()
    ])?;
    Ok(())
}

fn write_snapshot(tx: &Transaction, run_id: i64, s: &AccountSnapshot) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO account_snapshots
             (run_id, ts, cash, position, avg_entry, realized_pnl, unrealized_pnl, equity, fees_paid)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        run_id,
        s.ts.millis(),
        s.cash.to_string(),
        s.position.to_string(),
        s.avg_entry.map(|d| d.to_string()),
        s.realized_pnl.to_string(),
        s.unrealized_pnl.to_string(),
        s.equity.to_string(),
        s.fees_paid.to_string()
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real SQLite failure, from a real file.
    fn failure(open: OpenFlags, sql: &str) -> StoreError {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
            .unwrap();
        let conn = Connection::open_with_flags(&path, open).unwrap();
        StoreError::Sql(conn.execute_batch(sql).unwrap_err())
    }

    /// A target whose first write is kept waiting by a silent server (calling `waiting` as a
    /// real one does) and then fails; later writes record what they stored.
    struct SilentOnce {
        silent_for: Option<Duration>,
        silence_over: std::sync::Arc<std::sync::atomic::AtomicBool>,
        stored: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    }

    impl WriteTarget for SilentOnce {
        fn location(&self) -> String {
            "silent".into()
        }
        fn write(
            &mut self,
            _: i64,
            _: i64,
            batches: &[Vec<Step>],
            waiting: &mut dyn FnMut(),
        ) -> Result<(), StoreError> {
            if let Some(silence) = self.silent_for.take() {
                let until = Instant::now() + silence;
                while Instant::now() < until {
                    waiting();
                    std::thread::sleep(Duration::from_millis(5));
                }
                self.silence_over.store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(StoreError::Server {
                    message: "no answer".into(),
                    transient: true,
                });
            }
            let mut stored = self.stored.lock().unwrap();
            stored.extend(batches.iter().flatten().map(|s| s.progress.bars_seen));
            Ok(())
        }
        fn finish(&mut self, _: i64, _: RunStatus) -> Result<(), StoreError> {
            Ok(())
        }
        fn is_transient(&self, _: &StoreError) -> bool {
            true
        }
        fn describe(&self, e: &StoreError) -> String {
            e.to_string()
        }
    }

    fn step(n: u64) -> Step {
        Step {
            bar: None,
            gap: None,
            signal: None,
            execution: None,
            snapshot: None,
            progress: Progress {
                bars_seen: n,
                ..Progress::default()
            },
        }
    }

    /// While the server keeps a write waiting, the engine's steps are still taken (far more
    /// than its queue holds), and once the server answers they are all stored, in order.
    #[test]
    fn steps_are_taken_while_a_silent_server_keeps_a_write_waiting() {
        let silence_over = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let target = SilentOnce {
            silent_for: Some(Duration::from_secs(2)),
            silence_over: silence_over.clone(),
            stored: stored.clone(),
        };
        let (tx, rx) = mpsc::channel(2);
        let hooks = WriterHooks {
            on_commit: Box::new(|_, _| {}),
            on_health: Box::new(|_| {}),
        };
        let writer = StoreWriter::spawn_with(target, 1, 1, rx, hooks).unwrap();
        for n in 0..50 {
            tx.blocking_send(StoreCmd::Steps(vec![step(n)])).unwrap();
        }
        // 50 batches through a queue of 2, all taken while the first write still waited.
        assert!(!silence_over.load(std::sync::atomic::Ordering::SeqCst));
        let (done, stored_all) = oneshot::channel();
        tx.blocking_send(StoreCmd::Finish {
            status: RunStatus::Completed,
            done,
        })
        .unwrap();
        stored_all.blocking_recv().unwrap();
        let stats = writer.join().unwrap();
        assert_eq!(stats.retries, 1);
        assert_eq!(*stored.lock().unwrap(), (0..50).collect::<Vec<u64>>());
    }

    #[test]
    fn a_read_only_store_is_retried_and_a_broken_constraint_is_not() {
        let read_only = failure(OpenFlags::SQLITE_OPEN_READ_ONLY, "INSERT INTO t VALUES (2)");
        assert!(is_transient(&read_only), "{read_only}");
        assert!(describe_failure(&read_only).contains("writable"), "{read_only}");
        let duplicate = failure(OpenFlags::SQLITE_OPEN_READ_WRITE, "INSERT INTO t VALUES (1)");
        assert!(!is_transient(&duplicate), "{duplicate}");
    }
}
