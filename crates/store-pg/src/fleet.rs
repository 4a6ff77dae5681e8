//! What the fleet dashboard (`nanotrader serve`) reads: every run at a glance, the fills of a run
//! after the ones already shown, and the notifications the writers' commits raise (see
//! `migrations/V2__notify_runs.sql`), heard on a connection of their own.

use std::ops::ControlFlow;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::fallible_iterator::FallibleIterator;
use rust_decimal::Decimal;

use nanotrader_broker::{Fill, OrderReason};
use nanotrader_market::Timestamp;
use nanotrader_store::{RunStatus, StoreError, order_reason};

use crate::convert::{pg_error, ts};
use crate::{LOCK_RUN, PgStore, connect, redact};

/// The channel a run's id is announced on when a transaction that changed it commits.
pub const RUNS_CHANNEL: &str = "nanotrader_runs";

/// One run as the runs list shows it. Equity is the run's cash and position after its last fill
/// (the initial cash before any) marked at the close of its last stored bar: what its own
/// dashboard shows after that bar.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOverview {
    pub id: i64,
    pub status: RunStatus,
    /// Whether a writer holds the run's claim now (its advisory lock): the run is live.
    pub claimed: bool,
    pub config: String,
    pub pair: String,
    pub identity: String,
    pub interval_secs: i64,
    pub initial_cash: Decimal,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_bar_ts: Option<Timestamp>,
    pub bars_seen: u64,
    pub fills: u64,
    pub cash: Decimal,
    pub position: Decimal,
    pub last_close: Option<Decimal>,
}

impl RunOverview {
    /// Cash plus the position at the last close (exact).
    pub fn equity(&self) -> Decimal {
        self.cash + self.position * self.last_close.unwrap_or_default()
    }
}

impl PgStore {
    /// Every run, oldest first, in one statement.
    pub fn overview(&self) -> Result<Vec<RunOverview>, StoreError> {
        self.call(|c| {
            let rows = c
                .query(
                    "SELECT r.id, r.status, r.config, s.pair, s.identity, s.interval_secs, r.initial_cash,
                            r.created_at, r.updated_at, r.last_bar_ts, r.bars_seen,
                            (SELECT count(*) FROM fills WHERE run_id = r.id),
                            f.cash_after, f.position_after,
                            (SELECT close FROM bars WHERE series_id = r.series_id AND ts = r.last_bar_ts),
                            EXISTS (SELECT 1 FROM pg_locks l
                                    WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid
                                      AND l.objid = r.id::int::oid AND l.objsubid = 2
                                      AND l.database = (SELECT oid FROM pg_database
                                                        WHERE datname = current_database()))
                     FROM runs r JOIN series s ON s.id = r.series_id
                     LEFT JOIN LATERAL (SELECT cash_after, position_after FROM fills
                                        WHERE run_id = r.id ORDER BY order_id DESC LIMIT 1) f ON true
                     ORDER BY r.id",
                    &[&LOCK_RUN],
                )
                .map_err(pg_error)?;
            rows.iter()
                .map(|r| {
                    let initial_cash: Decimal = r.get(6);
                    Ok(RunOverview {
                        id: r.get(0),
                        status: RunStatus::from_str(r.get(1))?,
                        config: r.get(2),
                        pair: r.get(3),
                        identity: r.get(4),
                        interval_secs: r.get(5),
                        initial_cash,
                        created_at: ts(r.get(7)),
                        updated_at: ts(r.get(8)),
                        last_bar_ts: r.get::<_, Option<DateTime<Utc>>>(9).map(ts),
                        bars_seen: r.get::<_, i64>(10) as u64,
                        fills: r.get::<_, i64>(11) as u64,
                        cash: r.get::<_, Option<Decimal>>(12).unwrap_or(initial_cash),
                        position: r.get::<_, Option<Decimal>>(13).unwrap_or_default(),
                        last_close: r.get(14),
                        claimed: r.get(15),
                    })
                })
                .collect()
        })
    }

    /// The fills of `run_id` with an order id above `after`, in order, each with its order's
    /// reason.
    pub fn fills_after(&self, run_id: i64, after: u64) -> Result<Vec<(Fill, Option<OrderReason>)>, StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT f.order_id, f.ts, f.side, f.qty, f.price, f.fee, f.cash_after, f.position_after,
                            f.realized_pnl, o.reason
                     FROM fills f LEFT JOIN orders o ON o.run_id = f.run_id AND o.id = f.order_id
                     WHERE f.run_id = $1 AND f.order_id > $2 ORDER BY f.order_id",
                    &[&run_id, &after],
                )
                .map_err(pg_error)?;
            rows.iter()
                .map(|r| {
                    let side: &str = r.get(2);
                    let reason = r.get::<_, Option<&str>>(9).and_then(order_reason);
                    let fill = Fill {
                        order_id: r.get::<_, i64>(0) as u64,
                        ts: ts(r.get(1)),
                        side: side
                            .parse()
                            .map_err(|_| StoreError::Corrupt(format!("side '{side}'")))?,
                        qty: r.get(3),
                        price: r.get(4),
                        fee: r.get(5),
                        cash_after: r.get(6),
                        position_after: r.get(7),
                        realized_pnl: r.get(8),
                    };
                    Ok((fill, reason))
                })
                .collect()
        })
    }

    /// Whether the store announces its changes (migration 2): a store last brought up to date
    /// by an older nanotrader does not, until a run of this one opens it.
    pub fn notifies(&self) -> Result<bool, StoreError> {
        self.call(|c| {
            let row = c
                .query_one("SELECT to_regproc('nanotrader_notify_run') IS NOT NULL", &[])
                .map_err(pg_error)?;
            Ok(row.get(0))
        })
    }
}

/// What the listener hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsEvent {
    /// Listening (again, after `again`): notifications sent while it was not are lost, so the
    /// hearer should read everything afresh.
    Listening { again: bool },
    /// A transaction that changed this run committed.
    Changed(i64),
    /// Nothing heard for a moment: the hearer answers whether it still wants events.
    Quiet,
}

/// First and longest wait before connecting again.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the listener looks up from waiting, to see whether its hearer is gone.
const WAKE: Duration = Duration::from_millis(500);
/// A quiet connection is asked this often whether the server is still there (a server that
/// vanished sends nothing, so waiting alone would never tell).
const PING_EVERY: Duration = Duration::from_secs(10);

/// LISTENs on [`RUNS_CHANNEL`] on a connection of its own, on a thread of its own (the
/// synchronous client must not run on an async runtime's thread), and hands each event to
/// `hear` until it answers `Break`. A lost connection is made again with back-off, said once in
/// the log each way.
pub fn listen_runs(
    url: &str,
    mut hear: impl FnMut(RunsEvent) -> ControlFlow<()> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let url = url.to_owned();
    std::thread::Builder::new()
        .name("store-pg-listen".into())
        .spawn(move || {
            let location = redact(&url);
            let mut retry = RETRY_MIN;
            let mut ever_listened = false;
            let mut outage: Option<String> = None;
            loop {
                let listening = connect(&url).and_then(|mut client| {
                    client
                        .batch_execute(&format!("LISTEN {RUNS_CHANNEL}"))
                        .map_err(pg_error)?;
                    Ok(client)
                });
                let mut client = match listening {
                    Ok(client) => client,
                    Err(e) => {
                        if outage.is_none() {
                            tracing::warn!(store = %location, "the fleet dashboard cannot listen to the store: {e}; trying again");
                            outage = Some(e.to_string());
                        }
                        if sleep_unless_gone(&mut hear, retry).is_break() {
                            return;
                        }
                        retry = (retry * 2).min(RETRY_MAX);
                        continue;
                    }
                };
                if outage.take().is_some() {
                    tracing::info!(store = %location, "the fleet dashboard listens to the store again");
                }
                retry = RETRY_MIN;
                if hear(RunsEvent::Listening { again: ever_listened }).is_break() {
                    return;
                }
                ever_listened = true;
                let mut last_ping = std::time::Instant::now();
                let lost = loop {
                    let mut notifications = client.notifications();
                    let mut heard = notifications.timeout_iter(WAKE);
                    match heard.next() {
                        Ok(Some(n)) => {
                            // Anything else on the channel is not ours to read.
                            if let Ok(id) = n.payload().parse::<i64>()
                                && hear(RunsEvent::Changed(id)).is_break()
                            {
                                return;
                            }
                        }
                        Ok(None) => {
                            drop(heard);
                            drop(notifications);
                            if client.is_closed() {
                                break "the connection closed".to_owned();
                            }
                            if last_ping.elapsed() >= PING_EVERY {
                                last_ping = std::time::Instant::now();
                                if let Err(e) = client.simple_query("") {
                                    break pg_error(e).to_string();
                                }
                            }
                            if hear(RunsEvent::Quiet).is_break() {
                                return;
                            }
                        }
                        Err(e) => break pg_error(e).to_string(),
                    }
                };
                tracing::warn!(store = %location, "the fleet dashboard lost its connection to the store ({lost}); trying again");
                outage = Some(lost);
                // Dropped here, on this plain thread (see above).
                drop(client);
            }
        })
}

/// Waits `pause`, then asks the hearer whether it still wants events.
fn sleep_unless_gone(hear: &mut impl FnMut(RunsEvent) -> ControlFlow<()>, pause: Duration) -> ControlFlow<()> {
    std::thread::sleep(pause);
    hear(RunsEvent::Quiet)
}
