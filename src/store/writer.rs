//! The store writer: a dedicated thread that receives the engine's steps, writes them in batched
//! transactions and only then reports them as committed (a fill is durable before it is announced).

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::codec::fixed_to_sql;
use super::{RunStatus, StoreError, open_connection};
use crate::broker::{AccountSnapshot, Fill, Order};
use crate::market::{Bar, Timestamp};

/// Most steps written in one transaction: bounds the time a commit takes and what a crash redoes.
const MAX_STEPS_PER_TX: usize = 65_536;
/// Bars inserted by one multi-row INSERT: far fewer statement executions per bar.
const BARS_PER_INSERT: usize = 64;
/// A failed transaction is retried this many times, with doubling back-off, before the writer gives up.
const MAX_WRITE_ATTEMPTS: u32 = 6;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);

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
    pub trade: Option<Box<Trade>>,
    /// A periodic account snapshot (the account at each fill travels with the trade).
    pub snapshot: Option<Box<AccountSnapshot>>,
    pub progress: Progress,
}

/// An order, its fill and the account right after it.
#[derive(Clone, Debug, PartialEq)]
pub struct Trade {
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

pub struct StoreWriter {
    thread: JoinHandle<Result<WriterStats, StoreError>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub transactions: u64,
    pub steps: u64,
    pub retries: u64,
}

impl StoreWriter {
    /// Starts the writer thread for one run on its own connection.
    pub fn spawn(
        db_path: &Path,
        run_id: i64,
        series_id: i64,
        commands: mpsc::Receiver<StoreCmd>,
        on_commit: OnCommit,
    ) -> Result<Self, StoreError> {
        let conn = open_connection(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        // Checkpoints (copying the WAL into the database) run on their own thread, so the writer
        // spends its time on new data; see `Checkpointer`.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // A larger page cache for the connection that appends up to a million bars a second.
        conn.pragma_update(None, "cache_size", -16_384)?;
        let checkpointer = Checkpointer::spawn(db_path)?;
        let path = db_path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let writer = Writer {
                    conn,
                    path,
                    run_id,
                    series_id,
                    stats: WriterStats::default(),
                };
                let result = writer.run(commands, on_commit);
                checkpointer.stop();
                result
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

struct Writer {
    conn: Connection,
    path: PathBuf,
    run_id: i64,
    series_id: i64,
    stats: WriterStats,
}

impl Writer {
    fn run(
        mut self,
        mut commands: mpsc::Receiver<StoreCmd>,
        mut on_commit: OnCommit,
    ) -> Result<WriterStats, StoreError> {
        // Batches are kept as the engine sent them (no copying into one big vector).
        let mut batches: Vec<Vec<Step>> = Vec::new();
        while let Some(cmd) = commands.blocking_recv() {
            let mut finish = None;
            let mut queued = 0;
            let mut take = |cmd: StoreCmd, queued: &mut usize| match cmd {
                StoreCmd::Steps(steps) => {
                    *queued += steps.len();
                    batches.push(steps);
                    None
                }
                StoreCmd::Finish { status, done } => Some((status, done)),
            };
            finish = finish.or(take(cmd, &mut queued));
            // Coalesce whatever else is already queued into the same transaction.
            while finish.is_none() && queued < MAX_STEPS_PER_TX {
                match commands.try_recv() {
                    Ok(cmd) => finish = take(cmd, &mut queued),
                    Err(_) => break,
                }
            }
            if queued > 0 {
                let started = std::time::Instant::now();
                self.write_with_retry(&batches)?;
                on_commit(&batches, started.elapsed());
            }
            batches.clear();
            if let Some((status, done)) = finish {
                self.conn.execute(
                    "UPDATE runs SET status = ?2, updated_at = ?3 WHERE id = ?1",
                    params![self.run_id, status.as_str(), Timestamp::now().millis()],
                )?;
                let _ = done.send(());
                break;
            }
        }
        Ok(self.stats)
    }

    fn write_with_retry(&mut self, steps: &[Vec<Step>]) -> Result<(), StoreError> {
        let mut delay = FIRST_RETRY_DELAY;
        let mut attempt = 1;
        loop {
            match self.write(steps) {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(attempts = attempt, "store write succeeded after retrying");
                    }
                    return Ok(());
                }
                Err(e) if attempt < MAX_WRITE_ATTEMPTS => {
                    if attempt == 1 {
                        tracing::warn!(store = %self.path.display(), "store write failed, retrying with back-off: {e}");
                    }
                    self.stats.retries += 1;
                    std::thread::sleep(delay);
                    delay *= 2;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, batches: &[Vec<Step>]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        write_steps(&tx, self.run_id, self.series_id, batches.iter().flatten())?;
        tx.commit()?;
        self.stats.transactions += 1;
        self.stats.steps += batches.iter().map(Vec::len).sum::<usize>() as u64;
        Ok(())
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
        if let Some(trade) = &step.trade {
            write_trade(tx, run_id, &trade.order, &trade.fill)?;
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

fn write_trade(tx: &Transaction, run_id: i64, order: &Order, fill: &Fill) -> Result<(), StoreError> {
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
