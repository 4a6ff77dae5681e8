//! [`RunStore`] for PostgreSQL: finding, creating and reading runs, bars and fills.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use postgres::Row;
use postgres::fallible_iterator::FallibleIterator;
use rust_decimal::Decimal;

use nanotrader_broker::{Fill, OrderReason};
use nanotrader_market::{Bar, Interval, Side, Timestamp};
use nanotrader_store::{ExchangeFill, NewRun, RunRecord, RunStatus, RunStore, SeriesSummary, StoreError, order_reason};

use crate::PgStore;
use crate::convert::{bar_value, bound, pg_error, ts};

const RUN_COLUMNS: &str = "SELECT id, run_key, series_id, status, created_at, config, source_params, initial_cash,
    first_bar_ts, last_bar_ts, bars_seen, signal, next_order_id FROM runs";

/// Bars handed from the connection's thread to the reader at a time.
const BAR_CHUNK: usize = 4096;

fn run_record(r: &Row) -> Result<RunRecord, StoreError> {
    let status: String = r.get(3);
    Ok(RunRecord {
        id: r.get(0),
        run_key: r.get(1),
        series_id: r.get(2),
        status: RunStatus::from_str(&status)?,
        created_at: ts(r.get(4)),
        config: r.get(5),
        source_params: r.get(6),
        initial_cash: r.get(7),
        first_bar_ts: r.get::<_, Option<DateTime<Utc>>>(8).map(ts),
        last_bar_ts: r.get::<_, Option<DateTime<Utc>>>(9).map(ts),
        bars_seen: r.get::<_, i64>(10) as u64,
        signal: r.get::<_, i16>(11) as i8,
        next_order_id: r.get::<_, i64>(12) as u64,
    })
}

fn side(text: &str) -> Result<Side, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("side '{text}'")))
}

fn bar(r: &Row) -> Bar {
    let value = |i| bar_value(r.get::<_, Decimal>(i));
    Bar {
        ts: ts(r.get(0)),
        open: value(1),
        high: value(2),
        low: value(3),
        close: value(4),
        volume: value(5),
        trades: u32::try_from(r.get::<_, i64>(6)).unwrap_or(u32::MAX),
    }
}

impl PgStore {
    fn run_where(&self, condition: &'static str, param: Option<String>) -> Result<Option<RunRecord>, StoreError> {
        self.call(move |c| {
            let sql = format!("{RUN_COLUMNS} {condition}");
            let row = match &param {
                Some(p) => c.query_opt(&sql, &[p]),
                None => c.query_opt(&sql, &[]),
            }
            .map_err(pg_error)?;
            row.as_ref().map(run_record).transpose()
        })
    }
}

impl RunStore for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn resumable_run(&self, run_key: &str) -> Result<Option<RunRecord>, StoreError> {
        let found = self.run_where(
            "WHERE id = (SELECT max(id) FROM runs WHERE run_key = $1)",
            Some(run_key.to_owned()),
        )?;
        Ok(found.filter(|r| r.status != RunStatus::Completed))
    }

    fn create_run(&self, run: &NewRun) -> Result<RunRecord, StoreError> {
        let (key, series_id, config, params, cash) = (
            run.run_key.to_owned(),
            run.series_id,
            run.config.to_owned(),
            run.source_params.to_owned(),
            run.initial_cash,
        );
        self.call(move |c| {
            let sql = format!(
                "WITH created AS (
                     INSERT INTO runs (run_key, series_id, status, created_at, updated_at, config, source_params,
                                       initial_cash)
                     VALUES ($1, $2, 'running', now(), now(), $3, $4, $5) RETURNING *)
                 {}",
                RUN_COLUMNS.replace("FROM runs", "FROM created")
            );
            let row = c
                .query_one(&sql, &[&key, &series_id, &config, &params, &cash])
                .map_err(pg_error)?;
            run_record(&row)
        })
    }

    fn series_id(&self, identity: &str, pair: &str, interval: Interval) -> Result<i64, StoreError> {
        let (identity, pair, secs) = (identity.to_owned(), pair.to_owned(), interval.secs());
        self.call(move |c| {
            c.execute(
                "INSERT INTO series (identity, pair, interval_secs) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&identity, &pair, &secs],
            )
            .map_err(pg_error)?;
            let row = c
                .query_one(
                    "SELECT id FROM series WHERE identity = $1 AND pair = $2 AND interval_secs = $3",
                    &[&identity, &pair, &secs],
                )
                .map_err(pg_error)?;
            Ok(row.get(0))
        })
    }

    fn fills(&self, run_id: i64) -> Result<Vec<Fill>, StoreError> {
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT order_id, ts, side, qty, price, fee, cash_after, position_after, realized_pnl
                     FROM fills WHERE run_id = $1 ORDER BY order_id",
                    &[&run_id],
                )
                .map_err(pg_error)?;
            rows.iter()
                .map(|r| {
                    Ok(Fill {
                        order_id: r.get::<_, i64>(0) as u64,
                        ts: ts(r.get(1)),
                        side: side(r.get(2))?,
                        qty: r.get(3),
                        price: r.get(4),
                        fee: r.get(5),
                        cash_after: r.get(6),
                        position_after: r.get(7),
                        realized_pnl: r.get(8),
                    })
                })
                .collect()
        })
    }

    fn for_each_bar(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        f: &mut dyn FnMut(Bar),
    ) -> Result<u64, StoreError> {
        // Streamed: the connection's thread reads rows as the server sends them and hands them
        // over in chunks through a small bounded queue, so a million bars never sit in memory.
        let (chunks_tx, chunks) = std::sync::mpsc::sync_channel::<Vec<Bar>>(4);
        let (done_tx, done) = std::sync::mpsc::channel::<Result<(), StoreError>>();
        let (from, to) = (bound(from), bound(to));
        self.send(move |c| {
            let result = (|| {
                let mut rows = c
                    .query_raw(
                        "SELECT ts, open, high, low, close, volume, trades FROM bars
                         WHERE series_id = $1 AND ts BETWEEN $2 AND $3 ORDER BY ts",
                        [&series_id as &(dyn postgres::types::ToSql + Sync), &from, &to],
                    )
                    .map_err(pg_error)?;
                let mut chunk = Vec::with_capacity(BAR_CHUNK);
                while let Some(row) = rows.next().map_err(pg_error)? {
                    chunk.push(bar(&row));
                    if chunk.len() == BAR_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(BAR_CHUNK));
                        if chunks_tx.send(full).is_err() {
                            return Ok(());
                        }
                    }
                }
                if !chunk.is_empty() {
                    let _ = chunks_tx.send(chunk);
                }
                Ok(())
            })();
            drop(chunks_tx);
            let _ = done_tx.send(result);
        })?;
        let mut n = 0;
        for chunk in chunks {
            for bar in chunk {
                f(bar);
                n += 1;
            }
        }
        done.recv()
            .map_err(|_| StoreError::Unusable(format!("the connection to the store {} has ended", self.location)))??;
        Ok(n)
    }

    fn run(&self, id: i64) -> Result<Option<RunRecord>, StoreError> {
        self.call(move |c| {
            let row = c
                .query_opt(&format!("{RUN_COLUMNS} WHERE id = $1"), &[&id])
                .map_err(pg_error)?;
            row.as_ref().map(run_record).transpose()
        })
    }

    fn latest_run(&self) -> Result<Option<RunRecord>, StoreError> {
        self.run_where("ORDER BY id DESC LIMIT 1", None)
    }

    fn latest_run_with_pair(&self, pair: &str) -> Result<Option<RunRecord>, StoreError> {
        self.run_where(
            "WHERE id = (SELECT max(r.id) FROM runs r JOIN series s ON s.id = r.series_id WHERE s.pair = $1)",
            Some(pair.to_owned()),
        )
    }

    fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.call(|c| {
            let rows = c.query(&format!("{RUN_COLUMNS} ORDER BY id"), &[]).map_err(pg_error)?;
            rows.iter().map(run_record).collect()
        })
    }

    fn set_run_status(&self, id: i64, status: RunStatus) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE runs SET status = $2, updated_at = now() WHERE id = $1",
                &[&id, &status.as_str()],
            )
            .map_err(pg_error)?;
            Ok(())
        })
    }

    fn fills_page(
        &self,
        run_id: i64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(Fill, Option<OrderReason>)>, StoreError> {
        let before = before.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT f.order_id, f.ts, f.side, f.qty, f.price, f.fee, f.cash_after, f.position_after,
                            f.realized_pnl, o.reason
                     FROM fills f LEFT JOIN orders o ON o.run_id = f.run_id AND o.id = f.order_id
                     WHERE f.run_id = $1 AND f.order_id < $2 ORDER BY f.order_id DESC LIMIT $3",
                    &[&run_id, &before, &limit],
                )
                .map_err(pg_error)?;
            let mut page = rows
                .iter()
                .map(|r| {
                    let fill = Fill {
                        order_id: r.get::<_, i64>(0) as u64,
                        ts: ts(r.get(1)),
                        side: side(r.get(2))?,
                        qty: r.get(3),
                        price: r.get(4),
                        fee: r.get(5),
                        cash_after: r.get(6),
                        position_after: r.get(7),
                        realized_pnl: r.get(8),
                    };
                    Ok((fill, r.get::<_, Option<&str>>(9).and_then(order_reason)))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            page.reverse();
            Ok(page)
        })
    }

    fn bars_page(
        &self,
        series_id: i64,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
        latest: bool,
    ) -> Result<Vec<Bar>, StoreError> {
        let (from, to) = (bound(from), bound(to));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            let sql = if latest {
                "SELECT ts, open, high, low, close, volume, trades FROM bars
                 WHERE series_id = $1 AND ts BETWEEN $2 AND $3 ORDER BY ts DESC LIMIT $4"
            } else {
                "SELECT ts, open, high, low, close, volume, trades FROM bars
                 WHERE series_id = $1 AND ts BETWEEN $2 AND $3 ORDER BY ts LIMIT $4"
            };
            let rows = c.query(sql, &[&series_id, &from, &to, &limit]).map_err(pg_error)?;
            let mut bars: Vec<Bar> = rows.iter().map(bar).collect();
            if latest {
                bars.reverse();
            }
            Ok(bars)
        })
    }

    fn order_reasons(&self, run_id: i64) -> Result<HashMap<u64, OrderReason>, StoreError> {
        self.call(move |c| {
            let rows = c
                .query("SELECT id, reason FROM orders WHERE run_id = $1", &[&run_id])
                .map_err(pg_error)?;
            Ok(rows
                .iter()
                .filter_map(|r| order_reason(r.get(1)).map(|reason| (r.get::<_, i64>(0) as u64, reason)))
                .collect())
        })
    }

    fn series_summary(&self, series_id: i64) -> Result<SeriesSummary, StoreError> {
        self.call(move |c| {
            let row = c
                .query_one(
                    "SELECT s.identity, s.pair, s.interval_secs,
                            (SELECT count(*) FROM bars WHERE series_id = s.id),
                            (SELECT min(ts) FROM bars WHERE series_id = s.id),
                            (SELECT max(ts) FROM bars WHERE series_id = s.id),
                            (SELECT count(*) FROM gaps WHERE series_id = s.id),
                            (SELECT coalesce(sum(missing), 0)::bigint FROM gaps WHERE series_id = s.id)
                     FROM series s WHERE s.id = $1",
                    &[&series_id],
                )
                .map_err(pg_error)?;
            Ok(SeriesSummary {
                identity: row.get(0),
                pair: row.get(1),
                interval_secs: row.get(2),
                bars: row.get::<_, i64>(3) as u64,
                first: row.get::<_, Option<DateTime<Utc>>>(4).map(ts),
                last: row.get::<_, Option<DateTime<Utc>>>(5).map(ts),
                gaps: row.get::<_, i64>(6) as u64,
                missing_intervals: row.get::<_, i64>(7) as u64,
            })
        })
    }

    fn series_of_pair(&self, pair: &str) -> Result<Vec<(i64, SeriesSummary)>, StoreError> {
        let owned = pair.to_owned();
        let ids: Vec<i64> = self.call(move |c| {
            let rows = c
                .query("SELECT id FROM series WHERE pair = $1", &[&owned])
                .map_err(pg_error)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })?;
        let mut series = ids
            .into_iter()
            .map(|id| Ok((id, self.series_summary(id)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        // The order SQLite's store gives: most bars first, then the oldest series.
        series.sort_by(|a, b| b.1.bars.cmp(&a.1.bars).then(a.0.cmp(&b.0)));
        Ok(series)
    }

    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError> {
        self.call(move |c| {
            let rows = c
                .query(
                    "SELECT trade_id, run_id, order_id, cl_ord_id, txid, ts, side, qty, price, cost, fee
                     FROM exchange_fills WHERE run_id = $1 ORDER BY ts, trade_id",
                    &[&run_id],
                )
                .map_err(pg_error)?;
            rows.iter()
                .map(|r| {
                    Ok(ExchangeFill {
                        trade_id: r.get(0),
                        run_id: r.get(1),
                        order_id: r.get::<_, i64>(2) as u64,
                        cl_ord_id: r.get(3),
                        txid: r.get(4),
                        ts: ts(r.get(5)),
                        side: side(r.get(6))?,
                        qty: r.get(7),
                        price: r.get(8),
                        cost: r.get(9),
                        fee: r.get(10),
                    })
                })
                .collect()
        })
    }
}
