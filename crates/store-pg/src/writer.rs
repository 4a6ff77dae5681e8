//! The run's writer on PostgreSQL: the store crate's [`StoreWriter`] loop over a [`PgTarget`],
//! which writes each batch of steps in one transaction on the connection that holds the run's
//! claim. Every exchange with the server has a deadline ([`crate::session::REPLY_TIMEOUT`]): a connection that
//! stops answering (a partition) is given up and made again, like one the server closed.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_postgres::{Client, Statement, Transaction};

use nanotrader_broker::{AccountSnapshot, Fill, Order};
use nanotrader_market::Bar;
use nanotrader_store::{RunStatus, SignalChange, Step, StoreCmd, StoreError, StoreWriter, WriteTarget, WriterHooks};

use crate::claim::{RunClaim, end_stale_claim, try_claim};
use crate::convert::{at, pg_error};
use crate::redact;
use crate::session::{Session, no_reply, within_waiting};

/// After this bot's stale session was told to end, how long its claim may take to be freed.
const STALE_CLAIM_FREED_WITHIN: Duration = Duration::from_secs(5);

/// Bars sent in one statement (as arrays, unnested by the server) once they go in by INSERT
/// rather than COPY: one round trip for thousands of bars.
const BARS_PER_STATEMENT: usize = 8192;

/// Bars as whole columns (arrays unnested by the server); a bar already stored is kept as it is.
const INSERT_BARS: &str = "INSERT INTO bars (series_id, ts, open, high, low, close, volume, trades)
     SELECT $1, * FROM unnest($2::timestamptz[], $3::numeric[], $4::numeric[], $5::numeric[],
                              $6::numeric[], $7::numeric[], $8::bigint[])
     ON CONFLICT DO NOTHING";

/// Adds bars to a series outside any run (`history --store`), in one transaction: by binary COPY
/// (the writer's), or, when one of them is already stored (a range downloaded again, or bars a
/// live run stored), by INSERT .. ON CONFLICT DO NOTHING; so it adds only the bars missing and
/// changes none already there.
pub(crate) fn insert_bars(client: &mut postgres::Client, series_id: i64, bars: &[Bar]) -> Result<(), StoreError> {
    use postgres::binary_copy::BinaryCopyInWriter;
    use postgres::types::{ToSql, Type};
    let times = bars.iter().map(|b| at(b.ts)).collect::<Result<Vec<_>, _>>()?;
    let mut tx = client.transaction().map_err(pg_error)?;
    let copied = {
        let mut savepoint = tx.savepoint("bars").map_err(pg_error)?;
        let written = (|| {
            let sink = savepoint
                .copy_in("COPY bars (series_id, ts, open, high, low, close, volume, trades) FROM STDIN BINARY")?;
            let n = Type::NUMERIC;
            let types = [
                Type::INT8,
                Type::TIMESTAMPTZ,
                n.clone(),
                n.clone(),
                n.clone(),
                n.clone(),
                n,
                Type::INT8,
            ];
            let mut writer = BinaryCopyInWriter::new(sink, &types);
            for (bar, ts) in bars.iter().zip(&times) {
                let trades = i64::from(bar.trades);
                let row: [&(dyn ToSql + Sync); 8] = [
                    &series_id,
                    ts,
                    &bar.open,
                    &bar.high,
                    &bar.low,
                    &bar.close,
                    &bar.volume,
                    &trades,
                ];
                writer.write(&row)?;
            }
            writer.finish()
        })();
        match written {
            Ok(_) => {
                savepoint.commit().map_err(pg_error)?;
                true
            }
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
                savepoint.rollback().map_err(pg_error)?;
                false
            }
            Err(e) => return Err(pg_error(e)),
        }
    };
    if !copied {
        let column = |f: fn(&Bar) -> Decimal| bars.iter().map(f).collect::<Vec<Decimal>>();
        let trades: Vec<i64> = bars.iter().map(|b| i64::from(b.trades)).collect();
        tx.execute(
            INSERT_BARS,
            &[
                &series_id,
                &times,
                &column(|b| b.open),
                &column(|b| b.high),
                &column(|b| b.low),
                &column(|b| b.close),
                &column(|b| b.volume),
                &trades,
            ],
        )
        .map_err(pg_error)?;
    }
    tx.commit().map_err(pg_error)
}

/// Starts the writer of a claimed run: the same protocol, retries and hooks as SQLite's.
pub fn spawn_writer(
    mut claim: RunClaim,
    series_id: i64,
    commands: mpsc::Receiver<StoreCmd>,
    hooks: WriterHooks,
) -> Result<StoreWriter, StoreError> {
    let runtime = claim
        .runtime
        .take()
        .ok_or_else(|| StoreError::Unusable("the run's claim was already handed to a writer".into()))?;
    let session = claim.session.take();
    let target = PgTarget {
        runtime,
        link: Link {
            last_server_pid: session.as_ref().map(|s| s.server_pid),
            session,
            statements: None,
            url: claim.url.clone(),
            location: redact(&claim.url),
            run_id: claim.run_id,
        },
        copy_bars: true,
    };
    StoreWriter::spawn_with(target, claim.run_id, series_id, commands, hooks)
}

struct PgTarget {
    /// The runtime the connection lives on, driven by the writer's thread for each exchange.
    runtime: Runtime,
    link: Link,
    /// Bars go in by COPY (the fastest way in) until one meets a bar already stored (another run
    /// on the same data); from then on by INSERT .. ON CONFLICT DO NOTHING.
    copy_bars: bool,
}

/// The connection holding the run's claim, made again after a loss.
struct Link {
    /// `None` after the connection was lost or given up, until it is made again (with the claim).
    session: Option<Session>,
    statements: Option<Statements>,
    /// The server process of the last session that held the claim: after a lost connection the
    /// server may keep that session, and the claim with it, until its own TCP gives up on it.
    last_server_pid: Option<i32>,
    url: String,
    location: String,
    run_id: i64,
}

/// The writer's statements, prepared once per connection. Each takes whole columns as arrays
/// (unnested by the server), so a transaction of thousands of steps is a handful of round trips
/// rather than one per fill, signal and snapshot.
struct Statements {
    bars: Statement,
    gaps: Statement,
    signals: Statement,
    orders: Statement,
    fills: Statement,
    snapshots: Statement,
    progress: Statement,
}

impl Statements {
    async fn prepare(c: &Client) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            bars: c.prepare(INSERT_BARS).await?,
            gaps: c.prepare(
                "INSERT INTO gaps (series_id, from_ts, to_ts, missing)
                 SELECT $1, * FROM unnest($2::timestamptz[], $3::timestamptz[], $4::bigint[])
                 ON CONFLICT DO NOTHING",
            )
            .await?,
            signals: c.prepare(
                "INSERT INTO signals (run_id, ts, signal, change)
                 SELECT $1, * FROM unnest($2::timestamptz[], $3::smallint[], $4::smallint[])
                 ON CONFLICT (run_id, ts) DO UPDATE SET signal = EXCLUDED.signal, change = EXCLUDED.change",
            )
            .await?,
            // A commit whose answer was lost with the connection may have happened: the retry
            // then meets the same orders and fills, already stored, and keeps them as they are.
            orders: c.prepare(
                "INSERT INTO orders (run_id, id, ts, side, qty, reason, status)
                 SELECT $1, *, 'filled' FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::numeric[],
                                                    $6::text[])
                 ON CONFLICT DO NOTHING",
            )
            .await?,
            fills: c.prepare(
                "INSERT INTO fills (run_id, order_id, ts, side, qty, price, fee, cash_after, position_after,
                                    realized_pnl)
                 SELECT $1, * FROM unnest($2::bigint[], $3::timestamptz[], $4::text[], $5::numeric[], $6::numeric[],
                                          $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[])
                 ON CONFLICT DO NOTHING",
            )
            .await?,
            snapshots: c.prepare(
                "INSERT INTO account_snapshots
                     (run_id, ts, cash, position, avg_entry, realized_pnl, unrealized_pnl, equity, fees_paid)
                 SELECT $1, * FROM unnest($2::timestamptz[], $3::numeric[], $4::numeric[], $5::numeric[],
                                          $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[])
                 ON CONFLICT (run_id, ts) DO UPDATE SET cash = EXCLUDED.cash, position = EXCLUDED.position,
                     avg_entry = EXCLUDED.avg_entry, realized_pnl = EXCLUDED.realized_pnl,
                     unrealized_pnl = EXCLUDED.unrealized_pnl, equity = EXCLUDED.equity,
                     fees_paid = EXCLUDED.fees_paid",
            )
            .await?,
            progress: c.prepare(
                "UPDATE runs SET first_bar_ts = COALESCE(first_bar_ts, $2), last_bar_ts = COALESCE($3, last_bar_ts),
                     bars_seen = $4, signal = $5, next_order_id = $6, updated_at = now(), status = 'running'
                 WHERE id = $1",
            )
            .await?,
        })
    }
}

impl Link {
    /// The connection and its statements, made again after a loss: the claim went with the old
    /// session (or is still held by it on the server, which this bot then ends), so it is taken
    /// again first; if another process took the run meanwhile the writer stops.
    async fn ready(&mut self) -> Result<(&mut Client, &Statements), StoreError> {
        if self.session.as_ref().is_some_and(|s| s.client.is_closed()) {
            // Found closed between two writes (the server ended it, or the network did): an
            // outage like any other, said once; the retry connects again.
            self.lost();
            return Err(StoreError::Server {
                message: "the connection to the database server was closed".into(),
                transient: true,
            });
        }
        if self.session.is_none() {
            let session = Session::connect(&self.url).await.map_err(|e| match e {
                // Not reachable now: worth waiting for.
                StoreError::Unusable(message) => StoreError::Server {
                    message,
                    transient: true,
                },
                other => other,
            })?;
            self.claim(&session).await?;
            tracing::info!(store = %self.location, run = self.run_id, "reconnected to the store; the run is claimed again");
            self.last_server_pid = Some(session.server_pid);
            self.session = Some(session);
        }
        let session = self.session.as_mut().expect("set above");
        if self.statements.is_none() {
            self.statements = Some(Statements::prepare(&session.client).await.map_err(pg_error)?);
        }
        Ok((&mut session.client, self.statements.as_ref().expect("set above")))
    }

    /// Claims the run on a new session. A claim still held by this bot's previous session (the
    /// server has not noticed that its connection is gone) is taken back by ending that session.
    async fn claim(&self, session: &Session) -> Result<(), StoreError> {
        if try_claim(&session.client, self.run_id).await? {
            return Ok(());
        }
        if let Some(stale) = self.last_server_pid
            && end_stale_claim(&session.client, self.run_id, stale).await?
        {
            tracing::warn!(
                store = %self.location,
                run = self.run_id,
                "the run's claim was still held by this bot's previous session (server pid {stale}), which the lost \
                 connection left behind on the server: that session was ended"
            );
            let deadline = Instant::now() + STALE_CLAIM_FREED_WITHIN;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if try_claim(&session.client, self.run_id).await? {
                    return Ok(());
                }
            }
        }
        Err(StoreError::Server {
            message: format!(
                "run {} was claimed by another process while the connection to {} was down",
                self.run_id, self.location
            ),
            transient: false,
        })
    }

    /// Gives the session up: it is never used again, and its socket is closed.
    fn lost(&mut self) {
        self.statements = None;
        if let Some(session) = self.session.take() {
            session.abandon();
        }
    }
}

impl PgTarget {
    /// Runs one exchange with the server within [`crate::session::REPLY_TIMEOUT`]; a session that failed or did
    /// not answer in time is given up.
    fn exchange<T>(
        &mut self,
        waiting: &mut dyn FnMut(),
        work: impl AsyncFnOnce(&mut Link) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = within_waiting(&self.runtime, work(&mut self.link), waiting).unwrap_or_else(|| Err(no_reply()));
        // After a failure, a session the server closed, or one left mid-conversation (no answer
        // in time, a lost connection), is never used again. One found closed after a success is
        // left for the next exchange to find, so the loss is said (`Link::ready`).
        let broken = self.link.session.as_ref().is_some_and(|s| s.client.is_closed());
        if result.is_err() && (broken || matches!(&result, Err(StoreError::Server { transient: true, .. }))) {
            self.link.lost();
        }
        result
    }
}

impl Drop for PgTarget {
    /// The session ends politely where the server answers (the claim freed at once).
    fn drop(&mut self) {
        self.link.statements = None;
        if let Some(session) = self.link.session.take() {
            session.close(&self.runtime);
        }
    }
}

impl WriteTarget for PgTarget {
    fn location(&self) -> String {
        self.link.location.clone()
    }

    fn write(
        &mut self,
        run_id: i64,
        series_id: i64,
        batches: &[Vec<Step>],
        waiting: &mut dyn FnMut(),
    ) -> Result<(), StoreError> {
        let copy_bars = self.copy_bars;
        let copied = self.exchange(waiting, async move |link: &mut Link| {
            let (client, statements) = link.ready().await?;
            let mut tx = client.transaction().await.map_err(pg_error)?;
            let copied = write_steps(
                &mut tx,
                statements,
                run_id,
                series_id,
                copy_bars,
                batches.iter().flatten(),
            )
            .await?;
            // Durable when this returns (synchronous_commit, the server's default). A commit
            // whose answer is lost (or late) may have happened: the retry stores each step once.
            tx.commit().await.map_err(pg_error)?;
            Ok(copied)
        })?;
        if !copied {
            self.copy_bars = false;
        }
        Ok(())
    }

    fn finish(&mut self, run_id: i64, status: RunStatus) -> Result<(), StoreError> {
        self.exchange(&mut || {}, async move |link: &mut Link| {
            let (client, _) = link.ready().await?;
            client
                .execute(
                    "UPDATE runs SET status = $2, updated_at = now() WHERE id = $1",
                    &[&run_id, &status.as_str()],
                )
                .await
                .map_err(pg_error)?;
            Ok(())
        })
    }

    fn is_transient(&self, error: &StoreError) -> bool {
        matches!(error, StoreError::Server { transient: true, .. })
    }

    fn describe(&self, error: &StoreError) -> String {
        match error {
            StoreError::Server {
                message,
                transient: true,
            } => {
                format!("{message} (the database server is unreachable or busy: writes resume when it answers)")
            }
            StoreError::Server { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// Bars gathered column by column for one array statement.
#[derive(Default)]
struct BarColumns {
    ts: Vec<DateTime<Utc>>,
    values: [Vec<Decimal>; 5],
    trades: Vec<i64>,
}

impl BarColumns {
    fn push(&mut self, ts: DateTime<Utc>, bar: &Bar) {
        self.ts.push(ts);
        for (column, value) in self
            .values
            .iter_mut()
            .zip([bar.open, bar.high, bar.low, bar.close, bar.volume])
        {
            column.push(value);
        }
        self.trades.push(i64::from(bar.trades));
    }

    async fn flush(&mut self, tx: &Transaction<'_>, statement: &Statement, series_id: i64) -> Result<(), StoreError> {
        if self.ts.is_empty() {
            return Ok(());
        }
        let [open, high, low, close, volume] = &self.values;
        tx.execute(
            statement,
            &[&series_id, &self.ts, open, high, low, close, volume, &self.trades],
        )
        .await
        .map_err(pg_error)?;
        self.ts.clear();
        self.values.iter_mut().for_each(Vec::clear);
        self.trades.clear();
        Ok(())
    }
}

impl BarColumns {
    /// All the bars by one binary COPY, inside a savepoint: `Ok(false)` (and nothing written)
    /// when one of them is already stored, for the caller to insert them the idempotent way.
    async fn copy(&mut self, tx: &mut Transaction<'_>, series_id: i64) -> Result<bool, StoreError> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::{ToSql, Type};
        if self.ts.is_empty() {
            return Ok(true);
        }
        let savepoint = tx.savepoint("bars").await.map_err(pg_error)?;
        let written = async {
            let sink = savepoint
                .copy_in("COPY bars (series_id, ts, open, high, low, close, volume, trades) FROM STDIN BINARY")
                .await?;
            let numeric = Type::NUMERIC;
            let types = [
                Type::INT8,
                Type::TIMESTAMPTZ,
                numeric.clone(),
                numeric.clone(),
                numeric.clone(),
                numeric.clone(),
                numeric,
                Type::INT8,
            ];
            let writer = BinaryCopyInWriter::new(sink, &types);
            let mut writer = std::pin::pin!(writer);
            let [open, high, low, close, volume] = &self.values;
            for i in 0..self.ts.len() {
                let row: [&(dyn ToSql + Sync); 8] = [
                    &series_id,
                    &self.ts[i],
                    &open[i],
                    &high[i],
                    &low[i],
                    &close[i],
                    &volume[i],
                    &self.trades[i],
                ];
                writer.as_mut().write(&row).await?;
            }
            writer.finish().await
        }
        .await;
        match written {
            Ok(_) => {
                savepoint.commit().await.map_err(pg_error)?;
                self.ts.clear();
                self.values.iter_mut().for_each(Vec::clear);
                self.trades.clear();
                Ok(true)
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                savepoint.rollback().await.map_err(pg_error)?;
                Ok(false)
            }
            Err(e) => Err(pg_error(e)),
        }
    }

    /// The bars by INSERT .. ON CONFLICT DO NOTHING, `BARS_PER_STATEMENT` at a time.
    async fn insert(&mut self, tx: &Transaction<'_>, statement: &Statement, series_id: i64) -> Result<(), StoreError> {
        let mut rest = std::mem::take(self);
        while !rest.ts.is_empty() {
            let n = rest.ts.len().min(BARS_PER_STATEMENT);
            let mut chunk = BarColumns {
                ts: rest.ts.drain(..n).collect(),
                values: Default::default(),
                trades: rest.trades.drain(..n).collect(),
            };
            for (to, from) in chunk.values.iter_mut().zip(rest.values.iter_mut()) {
                *to = from.drain(..n).collect();
            }
            chunk.flush(tx, statement, series_id).await?;
        }
        Ok(())
    }
}

/// Everything but the bars of one transaction, column by column.
#[derive(Default)]
struct Columns {
    gap_from: Vec<DateTime<Utc>>,
    gap_to: Vec<DateTime<Utc>>,
    gap_missing: Vec<i64>,
    signal_ts: Vec<DateTime<Utc>>,
    signal: Vec<i16>,
    signal_change: Vec<i16>,
    order_id: Vec<i64>,
    order_ts: Vec<DateTime<Utc>>,
    order_side: Vec<&'static str>,
    order_qty: Vec<Decimal>,
    order_reason: Vec<&'static str>,
    fill_id: Vec<i64>,
    fill_ts: Vec<DateTime<Utc>>,
    fill_side: Vec<&'static str>,
    /// qty, price, fee, cash_after, position_after, realized_pnl.
    fill_values: [Vec<Decimal>; 6],
    snapshot_ts: Vec<DateTime<Utc>>,
    /// cash, position, realized_pnl, unrealized_pnl, equity, fees_paid.
    snapshot_values: [Vec<Decimal>; 6],
    snapshot_avg_entry: Vec<Option<Decimal>>,
}

impl Columns {
    fn execution(&mut self, order: &Order, fill: &Fill) -> Result<(), StoreError> {
        self.order_id.push(order.id as i64);
        self.order_ts.push(at(order.ts)?);
        self.order_side.push(order.side.as_str());
        self.order_qty.push(order.qty);
        self.order_reason.push(order.reason.as_str());
        self.fill_id.push(fill.order_id as i64);
        self.fill_ts.push(at(fill.ts)?);
        self.fill_side.push(fill.side.as_str());
        let values = [
            fill.qty,
            fill.price,
            fill.fee,
            fill.cash_after,
            fill.position_after,
            fill.realized_pnl,
        ];
        for (column, value) in self.fill_values.iter_mut().zip(values) {
            column.push(value);
        }
        Ok(())
    }

    /// A later snapshot or signal of the same time replaces the earlier (as SQLite's INSERT OR
    /// REPLACE does); one statement may not touch a row twice, so the earlier is dropped here.
    fn snapshot(&mut self, s: &AccountSnapshot) -> Result<(), StoreError> {
        let ts = at(s.ts)?;
        let values = [
            s.cash,
            s.position,
            s.realized_pnl,
            s.unrealized_pnl,
            s.equity,
            s.fees_paid,
        ];
        if self.snapshot_ts.last() == Some(&ts) {
            let last = self.snapshot_ts.len() - 1;
            for (column, value) in self.snapshot_values.iter_mut().zip(values) {
                column[last] = value;
            }
            self.snapshot_avg_entry[last] = s.avg_entry;
            return Ok(());
        }
        self.snapshot_ts.push(ts);
        for (column, value) in self.snapshot_values.iter_mut().zip(values) {
            column.push(value);
        }
        self.snapshot_avg_entry.push(s.avg_entry);
        Ok(())
    }

    fn signal(&mut self, sig: &SignalChange) -> Result<(), StoreError> {
        let ts = at(sig.ts)?;
        if self.signal_ts.last() == Some(&ts) {
            let last = self.signal_ts.len() - 1;
            self.signal[last] = i16::from(sig.signal);
            self.signal_change[last] = i16::from(sig.change);
            return Ok(());
        }
        self.signal_ts.push(ts);
        self.signal.push(i16::from(sig.signal));
        self.signal_change.push(i16::from(sig.change));
        Ok(())
    }

    async fn write(
        &self,
        tx: &Transaction<'_>,
        st: &Statements,
        run_id: i64,
        series_id: i64,
    ) -> Result<(), StoreError> {
        if !self.gap_from.is_empty() {
            tx.execute(&st.gaps, &[&series_id, &self.gap_from, &self.gap_to, &self.gap_missing])
                .await
                .map_err(pg_error)?;
        }
        if !self.signal_ts.is_empty() {
            tx.execute(
                &st.signals,
                &[&run_id, &self.signal_ts, &self.signal, &self.signal_change],
            )
            .await
            .map_err(pg_error)?;
        }
        if !self.order_id.is_empty() {
            tx.execute(
                &st.orders,
                &[
                    &run_id,
                    &self.order_id,
                    &self.order_ts,
                    &self.order_side,
                    &self.order_qty,
                    &self.order_reason,
                ],
            )
            .await
            .map_err(pg_error)?;
            let [qty, price, fee, cash, position, pnl] = &self.fill_values;
            tx.execute(
                &st.fills,
                &[
                    &run_id,
                    &self.fill_id,
                    &self.fill_ts,
                    &self.fill_side,
                    qty,
                    price,
                    fee,
                    cash,
                    position,
                    pnl,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        if !self.snapshot_ts.is_empty() {
            let [cash, position, realized, unrealized, equity, fees] = &self.snapshot_values;
            tx.execute(
                &st.snapshots,
                &[
                    &run_id,
                    &self.snapshot_ts,
                    cash,
                    position,
                    &self.snapshot_avg_entry,
                    realized,
                    unrealized,
                    equity,
                    fees,
                ],
            )
            .await
            .map_err(pg_error)?;
        }
        Ok(())
    }
}

/// Writes the steps; whether the bars went in by COPY (`false`: one was already stored, so they
/// were inserted the idempotent way, and later transactions should start that way).
async fn write_steps<'a>(
    tx: &mut Transaction<'_>,
    st: &Statements,
    run_id: i64,
    series_id: i64,
    copy_bars: bool,
    steps: impl Iterator<Item = &'a Step>,
) -> Result<bool, StoreError> {
    let mut bars = BarColumns::default();
    let mut rest = Columns::default();
    let mut first_bar: Option<DateTime<Utc>> = None;
    let mut last_progress = None;
    for step in steps {
        if let Some(bar) = &step.bar {
            let time = at(bar.ts)?;
            first_bar.get_or_insert(time);
            bars.push(time, bar);
            if !copy_bars && bars.ts.len() == BARS_PER_STATEMENT {
                bars.flush(tx, &st.bars, series_id).await?;
            }
        }
        if let Some(gap) = &step.gap {
            rest.gap_from.push(at(gap.from)?);
            rest.gap_to.push(at(gap.to)?);
            rest.gap_missing.push(gap.missing as i64);
        }
        if let Some(sig) = &step.signal {
            rest.signal(sig)?;
        }
        if let Some(execution) = &step.execution {
            rest.execution(&execution.order, &execution.fill)?;
        }
        if let Some(snap) = &step.snapshot {
            rest.snapshot(snap)?;
        }
        last_progress = Some(step.progress);
    }
    let copied = copy_bars && bars.copy(tx, series_id).await?;
    if !copied {
        bars.insert(tx, &st.bars, series_id).await?;
    }
    rest.write(tx, st, run_id, series_id).await?;
    if let Some(p) = last_progress {
        let last_bar = p.last_bar_ts.map(at).transpose()?;
        tx.execute(
            &st.progress,
            &[
                &run_id,
                &first_bar,
                &last_bar,
                &(p.bars_seen as i64),
                &i16::from(p.signal),
                &(p.next_order_id as i64),
            ],
        )
        .await
        .map_err(pg_error)?;
    }
    Ok(copied)
}
