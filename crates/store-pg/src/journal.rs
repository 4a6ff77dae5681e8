//! The live brokers' order journal on PostgreSQL: [`OrderJournal`] with the SQLite store's
//! guarantees (see the trait's doc): client ids committed ahead in batches, an order's details
//! written with the next commit, the reserve topped up with an order's outcome, and at a clean
//! stop the noted records written and the unused ids retired. A commit is durable when it
//! returns (`synchronous_commit`, the server's default), except [`OrderJournal::flush_journal`]'s,
//! which does not wait for the disk (`SET LOCAL synchronous_commit = off`): the next durable
//! commit of any session makes it durable too, as SQLite's WAL does.

use std::cell::RefCell;
use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use postgres::Transaction;
use rust_decimal::Decimal;

use nanotrader_market::Side;
use nanotrader_store::{ExchangeFill, OrderJournal, OrderState, RESERVE_BATCH, RunStore, SentOrder, StoreError};

use crate::PgStore;
use crate::convert::{at, pg_error, ts};

/// The reserved ids this journal committed and has not handed out yet.
#[derive(Debug, Default)]
struct Reserve {
    run_id: Option<i64>,
    /// Reserved for validations (orders that never execute): a start retires them unlooked.
    validate: bool,
    ids: VecDeque<String>,
}

/// A live broker's journal in a PostgreSQL store: one connection of its own (on a thread of its
/// own, as every connection here).
pub struct PgJournal {
    store: PgStore,
    reserve: RefCell<Reserve>,
    /// Orders noted under a reserved id, written with the next commit.
    pending: RefCell<Vec<SentOrder>>,
}

impl PgJournal {
    /// Connects to `url` (the schema brought up to date).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            store: PgStore::connect(url)?,
            reserve: RefCell::default(),
            pending: RefCell::default(),
        })
    }

    /// One transaction: the noted orders written first, then `f`; committed durably unless
    /// `durable` is false. On failure the noted orders are kept for the next commit.
    fn commit<R: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let pending: Vec<SentOrder> = self.pending.borrow_mut().drain(..).collect();
        let kept = pending.clone();
        let result = self.store.call(move |c| {
            let mut tx = c.transaction().map_err(pg_error)?;
            if !durable {
                tx.batch_execute("SET LOCAL synchronous_commit = off")
                    .map_err(pg_error)?;
            }
            write_pending(&mut tx, &pending)?;
            let answer = f(&mut tx)?;
            tx.commit().map_err(pg_error)?;
            Ok(answer)
        });
        if result.is_err() {
            let mut noted = self.pending.borrow_mut();
            let later: Vec<SentOrder> = noted.drain(..).collect();
            noted.extend(kept);
            noted.extend(later);
        }
        result
    }

    fn keep_reserved(&self, run_id: i64, ids: &[String]) {
        let mut reserve = self.reserve.borrow_mut();
        if reserve.run_id != Some(run_id) {
            // Another run's ids stay reserved in the database; that run's next start retires them.
            reserve.ids.clear();
            reserve.run_id = Some(run_id);
        }
        reserve.ids.extend(ids.iter().cloned());
    }

    fn ids_where(&self, run_id: i64, validate_only: bool) -> Result<Vec<String>, StoreError> {
        self.store.call(move |c| {
            let rows = c
                .query(
                    "SELECT cl_ord_id FROM exchange_orders
                     WHERE run_id = $1 AND state = 'reserved' AND (validate OR NOT $2) ORDER BY seq",
                    &[&run_id, &validate_only],
                )
                .map_err(pg_error)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }
}

/// Writes the noted orders in `tx`. An id that is no longer reserved is refused (an id is used
/// once): said, and left out.
fn write_pending(tx: &mut Transaction<'_>, pending: &[SentOrder]) -> Result<(), StoreError> {
    if pending.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare(
            "UPDATE exchange_orders SET order_id = $3, ts = $4, side = $5, volume = $6, validate = $7, state = $8,
                    txid = $9, detail = $10, updated_at = now()
             WHERE cl_ord_id = $1 AND run_id = $2 AND state = 'reserved'",
        )
        .map_err(pg_error)?;
    for order in pending {
        let written = tx
            .execute(
                &statement,
                &[
                    &order.cl_ord_id,
                    &order.run_id,
                    &(order.order_id as i64),
                    &at(order.ts)?,
                    &order.side.as_str(),
                    &order.volume,
                    &order.validate,
                    &order.state.as_str(),
                    &order.txid,
                    &order.detail,
                ],
            )
            .map_err(pg_error)?;
        if written != 1 {
            tracing::error!(
                "order {} used client id {}, which is not reserved for run {}: not journaled",
                order.order_id,
                order.cl_ord_id,
                order.run_id
            );
        }
    }
    Ok(())
}

/// Inserts `n` fresh reserved ids (UUID v4) for `run_id` in `tx`, in one statement.
fn insert_reserved(tx: &mut Transaction<'_>, run_id: i64, n: usize, validate: bool) -> Result<Vec<String>, StoreError> {
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    tx.execute(
        "INSERT INTO exchange_orders (cl_ord_id, run_id, validate, state, updated_at)
         SELECT id, $2, $3, 'reserved', now() FROM unnest($1::text[]) WITH ORDINALITY AS t (id, n) ORDER BY n",
        &[&ids, &run_id, &validate],
    )
    .map_err(pg_error)?;
    Ok(ids)
}

fn side(text: &str) -> Result<Side, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("side '{text}'")))
}

impl OrderJournal for PgJournal {
    fn reserve_for_validation(&self) {
        self.reserve.borrow_mut().validate = true;
    }

    fn reserve_client_ids(&self, run_id: i64, n: usize) -> Result<Vec<String>, StoreError> {
        let validate = self.reserve.borrow().validate;
        let ids = self.commit(true, move |tx| insert_reserved(tx, run_id, n, validate))?;
        self.keep_reserved(run_id, &ids);
        Ok(ids)
    }

    fn take_client_id(&self, run_id: i64) -> Result<String, StoreError> {
        {
            let mut reserve = self.reserve.borrow_mut();
            if reserve.run_id == Some(run_id)
                && let Some(id) = reserve.ids.pop_front()
            {
                return Ok(id);
            }
        }
        self.reserve_client_ids(run_id, RESERVE_BATCH)?;
        self.reserve
            .borrow_mut()
            .ids
            .pop_front()
            .ok_or_else(|| StoreError::Corrupt("a fresh reservation holds no client id".into()))
    }

    fn client_ids_in_reserve(&self) -> usize {
        self.reserve.borrow().ids.len()
    }

    fn journal_reserved(&self, order: &SentOrder) {
        self.pending.borrow_mut().push(order.clone());
    }

    fn flush_journal(&self) -> Result<(), StoreError> {
        if self.pending.borrow().is_empty() {
            return Ok(());
        }
        self.commit(false, |_| Ok(()))
    }

    fn reserved_client_ids(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        self.ids_where(run_id, false)
    }

    fn reserved_for_validation(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        self.ids_where(run_id, true)
    }

    fn retire_client_id(&self, cl_ord_id: &str, detail: &str) -> Result<bool, StoreError> {
        self.reserve.borrow_mut().ids.retain(|id| id != cl_ord_id);
        let (id, detail) = (cl_ord_id.to_owned(), detail.to_owned());
        self.store.call(move |c| {
            let changed = c
                .execute(
                    "UPDATE exchange_orders SET state = 'retired', detail = $2, updated_at = now()
                     WHERE cl_ord_id = $1 AND state = 'reserved'",
                    &[&id, &detail],
                )
                .map_err(pg_error)?;
            Ok(changed > 0)
        })
    }

    fn record_exchange_fills(&self, fills: &[ExchangeFill]) -> Result<usize, StoreError> {
        let fills = fills.to_vec();
        self.commit(true, move |tx| {
            let statement = tx
                .prepare(
                    "INSERT INTO exchange_fills (trade_id, run_id, order_id, cl_ord_id, txid, ts, side, qty, price, cost, fee)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (trade_id) DO NOTHING",
                )
                .map_err(pg_error)?;
            let mut added = 0;
            for f in &fills {
                added += tx
                    .execute(
                        &statement,
                        &[
                            &f.trade_id,
                            &f.run_id,
                            &(f.order_id as i64),
                            &f.cl_ord_id,
                            &f.txid,
                            &at(f.ts)?,
                            &f.side.as_str(),
                            &f.qty,
                            &f.price,
                            &f.cost,
                            &f.fee,
                        ],
                    )
                    .map_err(pg_error)? as usize;
            }
            Ok(added)
        })
    }

    fn set_order_state(
        &self,
        cl_ord_id: &str,
        state: OrderState,
        txid: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        let (top_up, validate) = {
            let reserve = self.reserve.borrow();
            (reserve.run_id.filter(|_| reserve.ids.is_empty()), reserve.validate)
        };
        let (id, txid, detail) = (cl_ord_id.to_owned(), txid.map(str::to_owned), detail.map(str::to_owned));
        // The reserve is topped up here, after an order has left and in the same commit, so the
        // batch's commit never sits between a decision and its send.
        let fresh = self.commit(true, move |tx| {
            let changed = tx
                .execute(
                    "UPDATE exchange_orders SET state = $2, txid = COALESCE($3, txid), detail = COALESCE($4, detail),
                            updated_at = now()
                     WHERE cl_ord_id = $1 AND state NOT IN ('reserved', 'retired')",
                    &[&id, &state.as_str(), &txid, &detail],
                )
                .map_err(pg_error)?;
            if changed == 0 {
                return Err(StoreError::Corrupt(format!("no journaled order {id}")));
            }
            match top_up {
                Some(run_id) => insert_reserved(tx, run_id, RESERVE_BATCH, validate),
                None => Ok(Vec::new()),
            }
        })?;
        if let Some(run_id) = top_up {
            self.keep_reserved(run_id, &fresh);
        }
        Ok(())
    }

    fn sent_orders(&self, run_id: i64) -> Result<Vec<SentOrder>, StoreError> {
        self.store.call(move |c| {
            let rows = c
                .query(
                    "SELECT cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail
                     FROM exchange_orders WHERE run_id = $1 AND state NOT IN ('reserved', 'retired')
                     ORDER BY order_id, ts",
                    &[&run_id],
                )
                .map_err(pg_error)?;
            rows.iter()
                .map(|r| {
                    Ok(SentOrder {
                        cl_ord_id: r.get(0),
                        run_id: r.get(1),
                        order_id: r.get::<_, i64>(2) as u64,
                        ts: ts(r.get::<_, DateTime<Utc>>(3)),
                        side: side(r.get(4))?,
                        volume: r.get::<_, Decimal>(5),
                        validate: r.get(6),
                        state: r.get::<_, &str>(7).parse()?,
                        txid: r.get(8),
                        detail: r.get(9),
                    })
                })
                .collect()
        })
    }

    fn sent_order(&self, cl_ord_id: &str) -> Result<Option<String>, StoreError> {
        let id = cl_ord_id.to_owned();
        self.store.call(move |c| {
            let row = c
                .query_opt("SELECT state FROM exchange_orders WHERE cl_ord_id = $1", &[&id])
                .map_err(pg_error)?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError> {
        RunStore::exchange_fills(&self.store, run_id)
    }
}

impl Drop for PgJournal {
    /// A clean stop: the noted records written (durably), then the ids never handed out retired,
    /// so nothing is left to look up. A crash runs none of this: the start looks them up.
    fn drop(&mut self) {
        if !self.pending.borrow().is_empty()
            && let Err(e) = self.commit(true, |_| Ok(()))
        {
            tracing::error!("orders not journaled at close ({e}); the next start looks them up");
        }
        let ids: Vec<String> = self.reserve.borrow_mut().ids.drain(..).collect();
        if ids.is_empty() {
            return;
        }
        let retired = self.store.call(move |c| {
            c.execute(
                "UPDATE exchange_orders SET state = 'retired', detail = 'unused at stop', updated_at = now()
                 WHERE cl_ord_id = ANY($1) AND state = 'reserved'",
                &[&ids],
            )
            .map_err(pg_error)
        });
        if let Err(e) = retired {
            // Harmless: the next start looks them up and retires them.
            tracing::debug!("unused client ids not retired at stop: {e}");
        }
    }
}
