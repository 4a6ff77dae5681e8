//! The run's writer on PostgreSQL: the store crate's [`StoreWriter`] loop over a [`PgTarget`],
//! which writes each batch of steps in one transaction on the connection that holds the run's
//! claim.

use chrono::{DateTime, Utc};
use postgres::{Client, Statement, Transaction};
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use nanotrader_broker::{AccountSnapshot, Fill, Order};
use nanotrader_store::{RunStatus, Step, StoreCmd, StoreError, StoreWriter, WriteTarget, WriterHooks};

use crate::claim::{RunClaim, try_claim};
use crate::convert::{at, pg_error};
use crate::{connect, redact};

/// Bars sent in one statement (as arrays, unnested by the server): one round trip for thousands
/// of bars, which is what makes a replay's throughput.
const BARS_PER_STATEMENT: usize = 8192;

/// Starts the writer of a claimed run: the same protocol, retries and hooks as SQLite's.
pub fn spawn_writer(
    mut claim: RunClaim,
    series_id: i64,
    commands: mpsc::Receiver<StoreCmd>,
    hooks: WriterHooks,
) -> Result<StoreWriter, StoreError> {
    let target = PgTarget {
        client: claim.client.take(),
        statements: None,
        url: claim.url.clone(),
        location: redact(&claim.url),
        run_id: claim.run_id,
    };
    StoreWriter::spawn_with(target, claim.run_id, series_id, commands, hooks)
}

struct PgTarget {
    /// `None` after the connection was lost, until it is made again (with the claim).
    client: Option<Client>,
    statements: Option<Statements>,
    url: String,
    location: String,
    run_id: i64,
}

/// The writer's statements, prepared once per connection.
struct Statements {
    bars: Statement,
    gap: Statement,
    signal: Statement,
    order: Statement,
    fill: Statement,
    snapshot: Statement,
    progress: Statement,
}

impl Statements {
    fn prepare(c: &mut Client) -> Result<Self, postgres::Error> {
        Ok(Self {
            bars: c.prepare(
                "INSERT INTO bars (series_id, ts, open, high, low, close, volume, trades)
                 SELECT $1, * FROM unnest($2::timestamptz[], $3::numeric[], $4::numeric[], $5::numeric[],
                                          $6::numeric[], $7::numeric[], $8::bigint[])
                 ON CONFLICT DO NOTHING",
            )?,
            gap: c.prepare(
                "INSERT INTO gaps (series_id, from_ts, to_ts, missing) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )?,
            signal: c.prepare(
                "INSERT INTO signals (run_id, ts, signal, change) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run_id, ts) DO UPDATE SET signal = EXCLUDED.signal, change = EXCLUDED.change",
            )?,
            // A commit whose answer was lost with the connection may have happened: the retry
            // then meets the same order and fill, already stored, and keeps them as they are.
            order: c.prepare(
                "INSERT INTO orders (run_id, id, ts, side, qty, reason, status) VALUES ($1, $2, $3, $4, $5, $6, 'filled')
                 ON CONFLICT DO NOTHING",
            )?,
            fill: c.prepare(
                "INSERT INTO fills (run_id, order_id, ts, side, qty, price, fee, cash_after, position_after,
                                    realized_pnl)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            )?,
            snapshot: c.prepare(
                "INSERT INTO account_snapshots
                     (run_id, ts, cash, position, avg_entry, realized_pnl, unrealized_pnl, equity, fees_paid)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (run_id, ts) DO UPDATE SET cash = EXCLUDED.cash, position = EXCLUDED.position,
                     avg_entry = EXCLUDED.avg_entry, realized_pnl = EXCLUDED.realized_pnl,
                     unrealized_pnl = EXCLUDED.unrealized_pnl, equity = EXCLUDED.equity,
                     fees_paid = EXCLUDED.fees_paid",
            )?,
            progress: c.prepare(
                "UPDATE runs SET first_bar_ts = COALESCE(first_bar_ts, $2), last_bar_ts = COALESCE($3, last_bar_ts),
                     bars_seen = $4, signal = $5, next_order_id = $6, updated_at = now(), status = 'running'
                 WHERE id = $1",
            )?,
        })
    }
}

impl PgTarget {
    /// The connection, made again after a loss: the claim went with the old session, so it is
    /// taken again first, and if another process took the run meanwhile the writer stops.
    fn connection(&mut self) -> Result<(&mut Client, &Statements), StoreError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            self.statements = None;
            let mut client = connect(&self.url).map_err(|e| match e {
                // Not reachable now: worth waiting for.
                StoreError::Unusable(message) => StoreError::Server {
                    message,
                    transient: true,
                },
                other => other,
            })?;
            if !try_claim(&mut client, self.run_id)? {
                return Err(StoreError::Server {
                    message: format!(
                        "run {} was claimed by another process while the connection to {} was down",
                        self.run_id, self.location
                    ),
                    transient: false,
                });
            }
            tracing::info!(store = %self.location, run = self.run_id, "reconnected to the store; the run is claimed again");
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("set above");
        if self.statements.is_none() {
            self.statements = Some(Statements::prepare(client).map_err(pg_error)?);
        }
        Ok((client, self.statements.as_ref().expect("set above")))
    }
}

impl WriteTarget for PgTarget {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn write(&mut self, run_id: i64, series_id: i64, batches: &[Vec<Step>]) -> Result<(), StoreError> {
        let result = (|| {
            let (client, statements) = self.connection()?;
            let mut tx = client.transaction().map_err(pg_error)?;
            write_steps(&mut tx, statements, run_id, series_id, batches.iter().flatten())?;
            // Durable when this returns (synchronous_commit, the server's default).
            tx.commit().map_err(pg_error)
        })();
        if result.is_err() && self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        result
    }

    fn finish(&mut self, run_id: i64, status: RunStatus) -> Result<(), StoreError> {
        let (client, _) = self.connection()?;
        client
            .execute(
                "UPDATE runs SET status = $2, updated_at = now() WHERE id = $1",
                &[&run_id, &status.as_str()],
            )
            .map_err(pg_error)?;
        Ok(())
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
    fn flush(&mut self, tx: &mut Transaction, statement: &Statement, series_id: i64) -> Result<(), StoreError> {
        if self.ts.is_empty() {
            return Ok(());
        }
        let [open, high, low, close, volume] = &self.values;
        tx.execute(
            statement,
            &[&series_id, &self.ts, open, high, low, close, volume, &self.trades],
        )
        .map_err(pg_error)?;
        self.ts.clear();
        self.values.iter_mut().for_each(Vec::clear);
        self.trades.clear();
        Ok(())
    }
}

fn write_steps<'a>(
    tx: &mut Transaction,
    st: &Statements,
    run_id: i64,
    series_id: i64,
    steps: impl Iterator<Item = &'a Step>,
) -> Result<(), StoreError> {
    let mut bars = BarColumns::default();
    let mut first_bar: Option<DateTime<Utc>> = None;
    let mut last_progress = None;
    for step in steps {
        if let Some(bar) = &step.bar {
            let time = at(bar.ts)?;
            first_bar.get_or_insert(time);
            bars.ts.push(time);
            for (column, value) in bars
                .values
                .iter_mut()
                .zip([bar.open, bar.high, bar.low, bar.close, bar.volume])
            {
                column.push(value);
            }
            bars.trades.push(i64::from(bar.trades));
            if bars.ts.len() == BARS_PER_STATEMENT {
                bars.flush(tx, &st.bars, series_id)?;
            }
        }
        if let Some(gap) = &step.gap {
            tx.execute(
                &st.gap,
                &[&series_id, &at(gap.from)?, &at(gap.to)?, &(gap.missing as i64)],
            )
            .map_err(pg_error)?;
        }
        if let Some(sig) = &step.signal {
            tx.execute(
                &st.signal,
                &[&run_id, &at(sig.ts)?, &i16::from(sig.signal), &i16::from(sig.change)],
            )
            .map_err(pg_error)?;
        }
        if let Some(execution) = &step.execution {
            write_execution(tx, st, run_id, &execution.order, &execution.fill)?;
        }
        if let Some(snap) = &step.snapshot {
            write_snapshot(tx, st, run_id, snap)?;
        }
        last_progress = Some(step.progress);
    }
    bars.flush(tx, &st.bars, series_id)?;
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
        .map_err(pg_error)?;
    }
    Ok(())
}

fn write_execution(
    tx: &mut Transaction,
    st: &Statements,
    run_id: i64,
    order: &Order,
    fill: &Fill,
) -> Result<(), StoreError> {
    tx.execute(
        &st.order,
        &[
            &run_id,
            &(order.id as i64),
            &at(order.ts)?,
            &order.side.as_str(),
            &order.qty,
            &order.reason.as_str(),
        ],
    )
    .map_err(pg_error)?;
    tx.execute(
        &st.fill,
        &[
            &run_id,
            &(fill.order_id as i64),
            &at(fill.ts)?,
            &fill.side.as_str(),
            &fill.qty,
            &fill.price,
            &fill.fee,
            &fill.cash_after,
            &fill.position_after,
            &fill.realized_pnl,
        ],
    )
    .map_err(pg_error)?;
    Ok(())
}

fn write_snapshot(tx: &mut Transaction, st: &Statements, run_id: i64, s: &AccountSnapshot) -> Result<(), StoreError> {
    tx.execute(
        &st.snapshot,
        &[
            &run_id,
            &at(s.ts)?,
            &s.cash,
            &s.position,
            &s.avg_entry,
            &s.realized_pnl,
            &s.unrealized_pnl,
            &s.equity,
            &s.fees_paid,
        ],
    )
    .map_err(pg_error)?;
    Ok(())
}
