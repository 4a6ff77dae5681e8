//! SQLite store: the source of truth for bars, signals, orders, fills, account snapshots and runs.
//!
//! It owns the schema, the one-writer lock and durability (a step is announced only once it is
//! on disk). It knows the market's and the broker's types; it must not know the engine, the
//! strategies or any way of showing data (web, reports).
//!
//! Reads happen here on the caller's thread (start-up, exports); all writes of a running engine go
//! through the [`StoreWriter`] thread, batched, so the engine never waits on the disk.

mod codec;
mod journal;
mod lock;
#[cfg(test)]
mod read_tests;
mod schema;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use rust_decimal::Decimal;

use codec::{dec, fixed_from_sql, side, ts};
use nanotrader_broker::{Fill, OrderReason};
use nanotrader_market::{Bar, Interval, Timestamp};

pub use journal::{ExchangeFill, OrderJournal, OrderState, RESERVE_BATCH, SentOrder};
pub use lock::{DataDirLock, LOCK_FILE};
pub use writer::{
    Execution, FINISH_RETRY_FOR, Gap, MAX_BACKLOG_STEPS, OnCommit, OnHealth, Progress, SignalChange, Step, StoreCmd,
    StoreWriter, WriteTarget, WriterHooks, WriterStats,
};

/// The database file inside the data directory.
pub const DB_FILE: &str = "nanotrader.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory or database cannot be used at all (bad path, permissions, corrupt file).
    #[error("{0}")]
    Unusable(String),
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored value does not parse back: the file was edited or damaged.
    #[error("store: corrupt value: {0}")]
    Corrupt(String),
    /// A database server's failure (PostgreSQL, `nanotrader-store-pg`), in its words; whether
    /// waiting can cure it (the server restarting, the network back) is decided where the
    /// server's error code is known.
    #[error("store: {message}")]
    Server { message: String, transient: bool },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Running now, or killed without a clean stop: resumable.
    Running,
    /// Stopped cleanly before its source ended (Ctrl-C): resumable.
    Interrupted,
    /// Its finite source ended: a new command starts a new run.
    Completed,
    /// Stopped by an error: resumable once the cause is fixed.
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Interrupted => "interrupted",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "running" => RunStatus::Running,
            "interrupted" => RunStatus::Interrupted,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("run status '{other}'"))),
        })
    }
}

/// A run as stored: its identity, configuration and how far it got.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    /// Hash of everything that must match for a restart to continue this run.
    pub run_key: String,
    pub series_id: i64,
    pub status: RunStatus,
    pub created_at: Timestamp,
    /// The run's configuration as JSON, for people and the dashboard.
    pub config: String,
    /// Source parameters fixed at creation (e.g. the simulator's start), as JSON.
    pub source_params: String,
    pub initial_cash: Decimal,
    pub first_bar_ts: Option<Timestamp>,
    pub last_bar_ts: Option<Timestamp>,
    pub bars_seen: u64,
    pub signal: i8,
    pub next_order_id: u64,
}

/// A stored bar series at a glance.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSummary {
    pub identity: String,
    pub pair: String,
    pub interval_secs: i64,
    pub bars: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    pub gaps: u64,
    pub missing_intervals: u64,
}

/// What a new run is.
pub struct NewRun<'a> {
    pub run_key: &'a str,
    pub series_id: i64,
    pub config: &'a str,
    pub source_params: &'a str,
    pub initial_cash: Decimal,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held by a store opened for writing, so the data directory stays locked while it is open.
    _writer_lock: Option<DataDirLock>,
    /// Client ids committed ahead for orders (see `journal`). The store lives on one thread at
    /// a time (its connection does too), so a `RefCell`.
    reserve: std::cell::RefCell<journal::Reserve>,
    /// Orders recorded under a reserved id, written with the connection's next write.
    pending: std::cell::RefCell<Vec<SentOrder>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close_journal();
    }
}

impl Store {
    /// Opens (creating if needed) the store in the locked data directory for writing and brings
    /// its schema up to date. Only the directory's one writer can: see [`DataDirLock`].
    pub fn open(lock: &DataDirLock) -> Result<Self, StoreError> {
        let path = lock.dir().join(DB_FILE);
        let conn = open_connection(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
        migrate(&conn, &path)?;
        Ok(Self {
            conn,
            path,
            _writer_lock: Some(lock.clone()),
            reserve: Default::default(),
            pending: Default::default(),
        })
    }

    /// Opens an existing store for reading only, without a lock: beside a running writer (WAL
    /// lets readers read while it writes), on a read-only file system, and never creating the
    /// data directory or the file. The schema is not migrated; every version up to this one is
    /// readable.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.is_file() {
            return Err(StoreError::Unusable(format!(
                "no store at {} (run `nanotrader run` or `nanotrader demo` first, or pass --data-dir)",
                path.display()
            )));
        }
        let conn = match read_only_connection(&path) {
            Ok(conn) => conn,
            Err(e) if cannot_hold_wal_index(&path, &e) => immutable_connection(&path)?,
            Err(e) => return Err(read_only_failure(&path, &e)),
        };
        // Version 0 is a SQLite file without the store's tables (an empty file, another program's
        // database): refused here, rather than failing at the first read with "no such table".
        if check_version(&conn, &path)? == 0 {
            return Err(StoreError::Unusable(format!(
                "no nanotrader store in {}: the file has none of its tables (an empty file, or another program's \
                 database); move it aside, or pass --data-dir",
                path.display()
            )));
        }
        Ok(Self {
            conn,
            path,
            _writer_lock: None,
            reserve: Default::default(),
            pending: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the whole file once before a run writes to it (about 0.2 s per million bars), so a
    /// damaged store is refused, and left as it is, instead of being written into.
    pub fn check_intact(&self) -> Result<(), StoreError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
            .map_err(|e| damaged(&self.path, &e.to_string()))?;
        if verdict != "ok" {
            return Err(damaged(&self.path, &verdict));
        }
        Ok(())
    }

    /// The id of the bar series for this data, created on first use.
    pub fn series_id(&self, identity: &str, pair: &str, interval: Interval) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT OR IGNORE INTO series (identity, pair, interval_secs) VALUES (?1, ?2, ?3)",
            params![identity, pair, interval.secs()],
        )?;
        Ok(self.conn.query_row(
            "SELECT id FROM series WHERE identity = ?1 AND pair = ?2 AND interval_secs = ?3",
            params![identity, pair, interval.secs()],
            |r| r.get(0),
        )?)
    }

    pub fn create_run(&self, run: &NewRun) -> Result<RunRecord, StoreError> {
        let now = Timestamp::now().millis();
        self.conn.execute(
            "INSERT INTO runs (run_key, series_id, status, created_at, updated_at, config, source_params, initial_cash)
             VALUES (?1, ?2, 'running', ?3, ?3, ?4, ?5, ?6)",
            params![
                run.run_key,
                run.series_id,
                now,
                run.config,
                run.source_params,
                run.initial_cash.to_string()
            ],
        )?;
        let id = self.conn.last_insert_rowid();
        self.run(id)?
            .ok_or_else(|| StoreError::Corrupt(format!("run {id} vanished after insert")))
    }

    /// The newest run with this key that has not completed: a restart continues it.
    pub fn resumable_run(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM runs WHERE run_key = ?1 ORDER BY id DESC LIMIT 1",
                [run_key],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        Ok(self.run(id)?.filter(|r| r.status != RunStatus::Completed))
    }

    pub fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("{RUN_COLUMNS} WHERE id = ?1"))?;
        let row = stmt.query_row([id], raw_run).optional()?;
        row.map(RawRun::into_record).transpose()
    }

    pub fn latest_run(&self) -> Result<Option<RunRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{RUN_COLUMNS} ORDER BY id DESC LIMIT 1"))?;
        let row = stmt.query_row([], raw_run).optional()?;
        row.map(RawRun::into_record).transpose()
    }

    /// The newest run whose bar series is of `pair`.
    pub fn latest_run_with_pair(&self, pair: &str) -> Result<Option<RunRecord>, StoreError> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT r.id FROM runs r JOIN series s ON s.id = r.series_id
                 WHERE s.pair = ?1 ORDER BY r.id DESC LIMIT 1",
                [pair],
                |r| r.get(0),
            )
            .optional()?;
        id.map_or(Ok(None), |id| self.run(id))
    }

    /// What a series is and how much of it is stored: identity, bar count, first and last bar,
    /// and the gaps marked in it.
    pub fn series_summary(&self, series_id: i64) -> Result<SeriesSummary, StoreError> {
        let (identity, pair, interval_secs): (String, String, i64) = self.conn.query_row(
            "SELECT identity, pair, interval_secs FROM series WHERE id = ?1",
            [series_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (bars, first, last): (i64, Option<i64>, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), MIN(ts), MAX(ts) FROM bars WHERE series_id = ?1",
            [series_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let (gaps, missing): (i64, Option<i64>) = self.conn.query_row(
            "SELECT COUNT(*), SUM(missing) FROM gaps WHERE series_id = ?1",
            [series_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(SeriesSummary {
            identity,
            pair,
            interval_secs,
            bars: bars as u64,
            first: first.map(ts),
            last: last.map(ts),
            gaps: gaps as u64,
            missing_intervals: missing.unwrap_or(0) as u64,
        })
    }

    /// The series of a pair, each with its id and summary, the one with most bars first.
    pub fn series_of_pair(&self, pair: &str) -> Result<Vec<(i64, SeriesSummary)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM series WHERE pair = ?1")?;
        let ids = stmt
            .query_map([pair], |r| r.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut series = ids
            .into_iter()
            .map(|id| Ok((id, self.series_summary(id)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        series.sort_by(|a, b| b.1.bars.cmp(&a.1.bars).then(a.0.cmp(&b.0)));
        Ok(series)
    }

    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!("{RUN_COLUMNS} ORDER BY id"))?;
        let rows = stmt.query_map([], raw_run)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(RawRun::into_record).collect()
    }

    pub fn set_run_status(&self, id: i64, status: RunStatus) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, status.as_str(), Timestamp::now().millis()],
        )?;
        Ok(())
    }

    /// The run's fills in the order they happened.
    pub fn fills(&self, run_id: i64) -> Result<Vec<Fill>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILL_COLUMNS}, NULL FROM fills f WHERE run_id = ?1 ORDER BY order_id"
        ))?;
        let rows = stmt.query_map([run_id], fill_row)?;
        rows.map(|row| fill_from_row(row?).map(|(fill, _)| fill)).collect()
    }

    /// At most `limit` of the run's fills with an order id below `before` (all when `None`):
    /// the latest of them, oldest first, each with the reason of its order. Reads only the page,
    /// so a run with a million fills answers as fast as one with ten.
    pub fn fills_page(
        &self,
        run_id: i64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Fill, Option<OrderReason>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {FILL_COLUMNS}, o.reason FROM fills f
             LEFT JOIN orders o ON o.run_id = f.run_id AND o.id = f.order_id
             WHERE f.run_id = ?1 AND f.order_id < ?2 ORDER BY f.order_id DESC LIMIT ?3"
        ))?;
        let before = before.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![run_id, before, limit], fill_row)?;
        let mut page = rows
            .map(|row| fill_from_row(row?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        page.reverse();
        Ok(page)
    }

    /// Why each of the run's orders was placed, by order id.
    pub fn order_reasons(&self, run_id: i64) -> Result<std::collections::HashMap<u64, OrderReason>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, reason FROM orders WHERE run_id = ?1")?;
        let rows = stmt.query_map([run_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut reasons = std::collections::HashMap::new();
        for row in rows {
            let (id, reason) = row?;
            if let Some(reason) = order_reason(&reason) {
                reasons.insert(id as u64, reason);
            }
        }
        Ok(reasons)
    }

    /// Adds bars to a series outside any run (history downloads); bars already there are kept.
    pub fn insert_bars(&mut self, series_id: i64, bars: &[Bar]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let mut inserter = writer::BarInserter::new(series_id);
        for bar in bars {
            inserter.push(&tx, bar)?;
        }
        inserter.flush(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// At most `limit` stored bars of the series in `[from, to]`, oldest first: the first ones
    /// from `from`, or with `latest` the last ones up to `to`.
    pub fn bars_page(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
        latest: bool,
    ) -> Result<Vec<Bar>, StoreError> {
        let sql = if latest {
            "SELECT ts, open, high, low, close, volume, trades FROM bars
             WHERE series_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts DESC LIMIT ?4"
        } else {
            "SELECT ts, open, high, low, close, volume, trades FROM bars
             WHERE series_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts LIMIT ?4"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(params![series_id, from.millis(), to.millis(), limit as i64])?;
        let mut bars = Vec::with_capacity(limit.min(4096));
        while let Some(r) = rows.next()? {
            bars.push(bar_from_row(r)?);
        }
        if latest {
            bars.reverse();
        }
        Ok(bars)
    }

    /// Calls `f` with each stored bar of the series in `[from, to]`, oldest first, streaming.
    pub fn for_each_bar(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        mut f: impl FnMut(Bar),
    ) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts, open, high, low, close, volume, trades FROM bars
             WHERE series_id = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts",
        )?;
        let mut rows = stmt.query(params![series_id, from.millis(), to.millis()])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            f(bar_from_row(r)?);
            n += 1;
        }
        Ok(n)
    }
}

/// A row of `SELECT ts, open, high, low, close, volume, trades FROM bars`.
fn bar_from_row(r: &rusqlite::Row) -> Result<Bar, StoreError> {
    let value = |i| fixed_from_sql(r.get_ref(i)?);
    Ok(Bar {
        ts: ts(r.get(0)?),
        open: value(1)?,
        high: value(2)?,
        low: value(3)?,
        close: value(4)?,
        volume: value(5)?,
        trades: r.get(6)?,
    })
}

const RUN_COLUMNS: &str = "SELECT id, run_key, series_id, status, created_at, config, source_params, initial_cash,
    first_bar_ts, last_bar_ts, bars_seen, signal, next_order_id FROM runs";

/// A run row before its text columns are parsed (parsing errors are ours, not SQLite's).
struct RawRun {
    id: i64,
    run_key: String,
    series_id: i64,
    status: String,
    created_at: i64,
    config: String,
    source_params: String,
    initial_cash: String,
    first_bar_ts: Option<i64>,
    last_bar_ts: Option<i64>,
    bars_seen: i64,
    signal: i64,
    next_order_id: i64,
}

fn raw_run(r: &rusqlite::Row) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        id: r.get(0)?,
        run_key: r.get(1)?,
        series_id: r.get(2)?,
        status: r.get(3)?,
        created_at: r.get(4)?,
        config: r.get(5)?,
        source_params: r.get(6)?,
        initial_cash: r.get(7)?,
        first_bar_ts: r.get(8)?,
        last_bar_ts: r.get(9)?,
        bars_seen: r.get(10)?,
        signal: r.get(11)?,
        next_order_id: r.get(12)?,
    })
}

impl RawRun {
    fn into_record(self) -> Result<RunRecord, StoreError> {
        Ok(RunRecord {
            id: self.id,
            run_key: self.run_key,
            series_id: self.series_id,
            status: self.status.parse()?,
            created_at: ts(self.created_at),
            config: self.config,
            source_params: self.source_params,
            initial_cash: dec(&self.initial_cash)?,
            first_bar_ts: self.first_bar_ts.map(ts),
            last_bar_ts: self.last_bar_ts.map(ts),
            bars_seen: self.bars_seen as u64,
            signal: self.signal as i8,
            next_order_id: self.next_order_id as u64,
        })
    }
}

pub(crate) fn open_connection(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    // Each connection lives on one thread at a time: SQLite's own per-call mutex is not needed.
    let flags = flags | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let unusable = |e: rusqlite::Error| open_failure(path, &e);
    let conn = Connection::open_with_flags(path, flags).map_err(unusable)?;
    // WAL lets readers (exports, the dashboard) run beside the writer; FULL makes each commit
    // durable against power loss, and commits are batched so it stays cheap.
    conn.pragma_update(None, "journal_mode", "WAL").map_err(unusable)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(unusable)?;
    // Statement journals and temporary b-trees in memory, not in temporary files.
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(unusable)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(unusable)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(unusable)?;
    Ok(conn)
}

/// The columns `fill_row` reads, in its order (the table aliased `f`).
const FILL_COLUMNS: &str =
    "f.order_id, f.ts, f.side, f.qty, f.price, f.fee, f.cash_after, f.position_after, f.realized_pnl";

type FillRow = (i64, i64, String, [String; 6], Option<String>);

/// One row of `FILL_COLUMNS` then an order reason (or NULL).
fn fill_row(r: &rusqlite::Row) -> rusqlite::Result<FillRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        [r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
        r.get(9)?,
    ))
}

fn fill_from_row((order_id, at, side_text, m, reason): FillRow) -> Result<(Fill, Option<OrderReason>), StoreError> {
    let fill = Fill {
        order_id: order_id as u64,
        ts: ts(at),
        side: side(&side_text)?,
        qty: dec(&m[0])?,
        price: dec(&m[1])?,
        fee: dec(&m[2])?,
        cash_after: dec(&m[3])?,
        position_after: dec(&m[4])?,
        realized_pnl: dec(&m[5])?,
    };
    Ok((fill, reason.as_deref().and_then(order_reason)))
}

/// An order's stored reason (`entry`, `exit`, `flatten`); unknown words are none.
pub fn order_reason(text: &str) -> Option<OrderReason> {
    match text {
        "entry" => Some(OrderReason::Entry),
        "exit" => Some(OrderReason::Exit),
        "flatten" => Some(OrderReason::Flatten),
        _ => None,
    }
}

/// A store that cannot be opened, in words a person can act on.
fn open_failure(path: &Path, e: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => damaged(path, &e.to_string()),
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            StoreError::Unusable(format!(
                "cannot open store {}: {e} (the data directory and its files must be writable: a read-only disk or \
             directory cannot hold a store)",
                path.display()
            ))
        }
        _ => StoreError::Unusable(format!("cannot open store {}: {e}", path.display())),
    }
}

/// A damaged store: refused, never replaced.
fn damaged(path: &Path, detail: &str) -> StoreError {
    // SQLite's integrity report spans lines; the error is one.
    let detail = detail
        .lines()
        .map(|l| l.trim().trim_matches('*').trim())
        .filter(|l| !l.is_empty() && *l != "in database main")
        .collect::<Vec<_>>()
        .join("; ");
    StoreError::Unusable(format!(
        "store {} is damaged ({detail}); nanotrader leaves it as it is: move it aside to start a new store, or \
         restore it from a backup",
        path.display()
    ))
}

/// The store's schema version, refused when it is newer than this nanotrader knows.
fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| StoreError::Unusable(format!("cannot read store {}: {}", path.display(), e)))?;
    let known = schema::MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::Unusable(format!(
            "store {} has schema version {version}, newer than this nanotrader knows ({known}): upgrade nanotrader",
            path.display()
        )));
    }
    Ok(version)
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version = check_version(conn, path)?;
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// A connection that only reads `target` (a path, or a `file:` URI).
fn read_only_connection(target: impl AsRef<Path>) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(target, flags)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // SQLite opens lazily: the first read meets a file it cannot open or a WAL index it cannot
    // create.
    conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))?;
    Ok(conn)
}

/// The store file read as it is, with SQLite's `immutable` URI parameter: no WAL index (`-shm`),
/// no locks, nothing created. Exact only when nothing writes the store and its write-ahead log
/// holds nothing; see `cannot_hold_wal_index`.
fn immutable_connection(path: &Path) -> Result<Connection, StoreError> {
    let mut uri = std::path::absolute(path)
        .ok()
        .and_then(|abs| url::Url::from_file_path(abs).ok())
        .ok_or_else(|| StoreError::Unusable(format!("cannot open store {}: not a usable path", path.display())))?;
    uri.set_query(Some("immutable=1"));
    read_only_connection(uri.as_str()).map_err(|e| read_only_failure(path, &e))
}

/// A file beside the store: its write-ahead log (`-wal`) or WAL index (`-shm`).
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Whether a read-only open failed because SQLite cannot create the WAL index (`-shm`) beside a
/// store that has none: the directory or file system is read-only. Then nothing can be writing
/// the store (a writer needs that index), and when no write-ahead log holds data the database file
/// alone is the whole store, which an immutable read reads exactly. A store whose log does hold
/// data is not read that way: the data would be missed.
fn cannot_hold_wal_index(path: &Path, e: &rusqlite::Error) -> bool {
    let wal_empty = std::fs::metadata(beside(path, "-wal")).map_or(true, |m| m.len() == 0);
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) && !beside(path, "-shm").exists() && wal_empty
}

/// A store that cannot be opened for reading, in words a person can act on.
fn read_only_failure(path: &Path, e: &rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let (wal, shm) = (beside(path, "-wal"), beside(path, "-shm"));
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => damaged(path, &e.to_string()),
        Some(ErrorCode::CannotOpen) if wal.is_file() && !shm.exists() => StoreError::Unusable(format!(
            "cannot read store {}: its write-ahead log {} holds data that SQLite reads only with an index {} \
             beside it, which this read-only directory cannot hold: read it once where it is writable",
            path.display(),
            wal.display(),
            shm.display()
        )),
        _ => StoreError::Unusable(format!("cannot open store {} for reading: {e}", path.display())),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    // Drop the " (os error 13)" tail: the words are what a person needs.
    text.split(" (os error").next().unwrap_or(&text).to_owned()
}

/// What a run needs of its store to be found, created and continued exactly where it stopped,
/// and what the read commands (`runs`, `fills`, `bars`) read.
///
/// Two implementations: the SQLite [`Store`] and PostgreSQL's `PgStore` (`nanotrader-store-pg`).
/// Each honours:
/// - **Durable before announced.** A run's steps reach the store through its writer
///   ([`StoreWriter`], over a [`WriteTarget`]), each closed bar one atomic step (bar, gap,
///   signal, order, fill, account snapshot, run progress) committed with its neighbours; the
///   engine announces a fill only after `WriterHooks::on_commit` says the transaction holding it
///   committed.
/// - **Resume.** `resumable_run` finds the latest unfinished run of a key; its progress (last
///   bar, bars seen, signal, next order id) and its fills are exactly what was committed, so a
///   run restarted after kill -9 continues with no fill lost or doubled.
/// - **Idempotent steps.** A bar already stored (runs on the same data share a series) is not
///   written again, and a transaction retried after a failure stores its steps once: a failed
///   one leaves nothing behind.
/// - Exact values: prices, sizes and money come back digit for digit (bar values normalized).
pub trait RunStore {
    /// Where the store is, for messages (a file's path, a database's address without password).
    fn location(&self) -> String;
    /// The latest run of `run_key` that has not completed.
    fn resumable_run(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError>;
    fn create_run(&self, run: &NewRun) -> Result<RunRecord, StoreError>;
    /// The bar series of this data, pair and interval, created on first use.
    fn series_id(&self, identity: &str, pair: &str, interval: Interval) -> Result<i64, StoreError>;
    /// The run's fills, oldest first.
    fn fills(&self, run_id: i64) -> Result<Vec<Fill>, StoreError>;
    /// Each stored bar of the series in `[from, to]`, oldest first; how many there were.
    fn for_each_bar(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        f: &mut dyn FnMut(Bar),
    ) -> Result<u64, StoreError>;
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError>;
    fn latest_run(&self) -> Result<Option<RunRecord>, StoreError>;
    /// The newest run whose bar series is of `pair`.
    fn latest_run_with_pair(&self, pair: &str) -> Result<Option<RunRecord>, StoreError>;
    /// Every run, oldest first.
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError>;
    fn set_run_status(&self, id: i64, status: RunStatus) -> Result<(), StoreError>;
    /// Why each of the run's orders was placed, by order id.
    fn order_reasons(&self, run_id: i64) -> Result<std::collections::HashMap<u64, OrderReason>, StoreError>;
    fn series_summary(&self, series_id: i64) -> Result<SeriesSummary, StoreError>;
    /// The series of a pair, each with its id and summary, the one with most bars first.
    fn series_of_pair(&self, pair: &str) -> Result<Vec<(i64, SeriesSummary)>, StoreError>;
    /// The run's recorded exchange trades, in time order.
    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError>;
    /// At most `limit` of the run's fills with an order id below `before` (all when `None`):
    /// the latest of them, oldest first, each with its order's reason (the dashboard's pages).
    fn fills_page(
        &self,
        run_id: i64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Fill, Option<OrderReason>)>, StoreError>;
    /// At most `limit` stored bars of the series in `[from, to]`, oldest first: the first ones
    /// from `from`, or with `latest` the last ones up to `to`.
    fn bars_page(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
        latest: bool,
    ) -> Result<Vec<Bar>, StoreError>;
}

impl RunStore for Store {
    fn location(&self) -> String {
        self.path().display().to_string()
    }
    fn resumable_run(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        Store::resumable_run(self, run_key)
    }
    fn create_run(&self, run: &NewRun) -> Result<RunRecord, StoreError> {
        Store::create_run(self, run)
    }
    fn series_id(&self, identity: &str, pair: &str, interval: Interval) -> Result<i64, StoreError> {
        Store::series_id(self, identity, pair, interval)
    }
    fn fills(&self, run_id: i64) -> Result<Vec<Fill>, StoreError> {
        Store::fills(self, run_id)
    }
    fn for_each_bar(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        f: &mut dyn FnMut(Bar),
    ) -> Result<u64, StoreError> {
        Store::for_each_bar(self, series_id, from, to, f)
    }
    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        Store::run(self, id)
    }
    fn latest_run(&self) -> Result<Option<RunRecord>, StoreError> {
        Store::latest_run(self)
    }
    fn latest_run_with_pair(&self, pair: &str) -> Result<Option<RunRecord>, StoreError> {
        Store::latest_run_with_pair(self, pair)
    }
    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        Store::runs(self)
    }
    fn set_run_status(&self, id: i64, status: RunStatus) -> Result<(), StoreError> {
        Store::set_run_status(self, id, status)
    }
    fn order_reasons(&self, run_id: i64) -> Result<std::collections::HashMap<u64, OrderReason>, StoreError> {
        Store::order_reasons(self, run_id)
    }
    fn series_summary(&self, series_id: i64) -> Result<SeriesSummary, StoreError> {
        Store::series_summary(self, series_id)
    }
    fn series_of_pair(&self, pair: &str) -> Result<Vec<(i64, SeriesSummary)>, StoreError> {
        Store::series_of_pair(self, pair)
    }
    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError> {
        Store::exchange_fills(self, run_id)
    }
    fn fills_page(
        &self,
        run_id: i64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Fill, Option<OrderReason>)>, StoreError> {
        Store::fills_page(self, run_id, before, limit)
    }
    fn bars_page(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
        latest: bool,
    ) -> Result<Vec<Bar>, StoreError> {
        Store::bars_page(self, series_id, from, to, limit, latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store as the first schema version left it, with one series.
    fn version_1_store(dir: &Path) -> PathBuf {
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.execute_batch("INSERT INTO series VALUES (1, 'data', 'BTC/USD', 60); PRAGMA user_version = 1;")
            .unwrap();
        path
    }

    fn version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn an_older_store_is_read_as_it_is_and_gets_the_views_from_its_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = version_1_store(dir.path());
        let reader = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.series_of_pair("BTC/USD").unwrap().len(), 1);
        assert!(reader.runs().unwrap().is_empty());
        drop(reader);
        assert_eq!(version(&path), 1, "a reader does not migrate");

        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let writer = Store::open(&lock).unwrap();
        assert_eq!(version(&path), schema::MIGRATIONS.len() as i64);
        let views: i64 = writer
            .conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'view'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(views, 4);
    }

    #[test]
    fn a_reader_refuses_a_newer_store_and_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = version_1_store(dir.path());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let err = Store::open_read_only(dir.path()).err().unwrap().to_string();
        assert!(err.contains("schema version 99, newer"), "{err}");

        let missing = dir.path().join("missing");
        let err = Store::open_read_only(&missing).err().unwrap().to_string();
        assert!(err.starts_with("no store at "), "{err}");
        assert!(!missing.exists());
    }

    #[test]
    fn a_reader_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        version_1_store(dir.path());
        let reader = Store::open_read_only(dir.path()).unwrap();
        let err = reader.series_id("other", "ETH/USD", Interval::ONE_MINUTE).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
