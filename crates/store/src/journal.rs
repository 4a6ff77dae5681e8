//! The journal of orders sent to an exchange: each is written and committed before it leaves,
//! under its client order id, and its state then follows what the exchange said. A restart reads
//! it to find the orders whose outcome it must still learn from the exchange.
//!
//! Client ids are committed ahead (reserved, a batch in one transaction): an order takes the next
//! reserved id, so the commit that makes its id durable happened before the decision, not
//! between the decision and the send. A reserved id that was never recorded as used may still
//! have been sent just before a crash, so a start looks every reserved id up at the exchange.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use rusqlite::{OptionalExtension, params};
use rust_decimal::Decimal;

use nanotrader_market::{Side, Timestamp};

use crate::{Store, StoreError, codec};

/// Where an order sent to an exchange stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Written, about to be sent (or sent, with no answer yet).
    Sending,
    /// Checked by the exchange (`validate`), never placed.
    Validated,
    /// The exchange took it (it has the exchange's id); it may still rest and fill.
    Placed,
    /// The exchange closed it (filled, cancelled or expired): its trades are all recorded.
    Closed,
    /// The exchange refused it: not placed.
    Rejected,
    /// The answer was lost: placed or not is for a lookup by client id to prove.
    Unknown,
    /// Proven absent at the exchange after a lost answer: not placed.
    NotPlaced,
    /// A client id committed ahead for the run, not yet taken by an order.
    Reserved,
    /// A reserved id never used (proven absent at the exchange, or let go unused): never reused.
    Retired,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Sending => "sending",
            OrderState::Validated => "validated",
            OrderState::Placed => "placed",
            OrderState::Closed => "closed",
            OrderState::Rejected => "rejected",
            OrderState::Unknown => "unknown",
            OrderState::NotPlaced => "not_placed",
            OrderState::Reserved => "reserved",
            OrderState::Retired => "retired",
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderState {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "sending" => OrderState::Sending,
            "validated" => OrderState::Validated,
            "placed" => OrderState::Placed,
            "closed" => OrderState::Closed,
            "rejected" => OrderState::Rejected,
            "unknown" => OrderState::Unknown,
            "not_placed" => OrderState::NotPlaced,
            "reserved" => OrderState::Reserved,
            "retired" => OrderState::Retired,
            other => return Err(StoreError::Corrupt(format!("unknown order state '{other}'"))),
        })
    }
}

/// One order sent (or about to be sent) to an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentOrder {
    pub cl_ord_id: String,
    pub run_id: i64,
    /// The run's own order id (what its fills refer to).
    pub order_id: u64,
    pub ts: Timestamp,
    pub side: Side,
    pub volume: Decimal,
    /// Sent with `validate`: checked, never placed.
    pub validate: bool,
    pub state: OrderState,
    /// The exchange's order id, once known.
    pub txid: Option<String>,
    /// The exchange's words (a rejection's reason) or how the state was learned.
    pub detail: Option<String>,
}

/// One of the exchange's trades of an order, exactly as the exchange reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeFill {
    /// The exchange's trade id.
    pub trade_id: String,
    pub run_id: i64,
    /// The run's own order id.
    pub order_id: u64,
    pub cl_ord_id: String,
    /// The exchange's order id.
    pub txid: String,
    pub ts: Timestamp,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub cost: Decimal,
    /// In the quote currency.
    pub fee: Decimal,
}

/// How many client ids one reservation commits (one transaction). Small, because a start after a
/// crash looks each one still reserved up at the exchange: two calls a round, three rounds to
/// prove it absent, on Kraken's API counter (15 at the Starter tier, back at 0.33 a second),
/// so 4 ids held up a start by about 40 s. Two are enough: both brokers record each order's
/// outcome (which tops the reserve up) before the next decision.
pub const RESERVE_BATCH: usize = 2;

/// The reserved client ids this connection committed and has not handed out yet.
#[derive(Debug, Default)]
pub(crate) struct Reserve {
    run_id: Option<i64>,
    /// Reserved for validations (`validate` set on the row): such ids never execute, so a start
    /// may retire them without a lookup; ids reserved for real orders never are.
    validate: bool,
    /// Empty: a top-up is due with the connection's next state record (after the order that
    /// emptied it has left).
    ids: VecDeque<String>,
}

/// The order journal a live broker writes to (`--broker kraken`, `kraken-validate`): SQLite's
/// [`Store`] or PostgreSQL's `nanotrader_store_pg::PgJournal`, each one connection of the
/// broker's own. What each keeps:
/// - every client id is committed (reserved, [`RESERVE_BATCH`] at a time) before an order can
///   take it, and taken once: [`take_client_id`](Self::take_client_id) costs no commit;
/// - an order's details ([`journal_reserved`](Self::journal_reserved)) are written with the
///   next write, in its commit; a crash before it loses only the run's order id beside the
///   client id, and a start looks every still-reserved id up at the exchange;
/// - the reserve is topped up with an order's outcome ([`set_order_state`](Self::set_order_state)),
///   after the order has left, so no commit sits between a decision and its send;
/// - dropped (a clean stop): the noted records written, the ids never handed out retired.
pub trait OrderJournal: Send {
    /// The ids reserved from now on are for validations (never executed: a start retires them
    /// without a lookup).
    fn reserve_for_validation(&self);
    /// Commits `n` fresh client ids for `run_id` in one transaction and keeps them to hand out.
    fn reserve_client_ids(&self, run_id: i64, n: usize) -> Result<Vec<String>, StoreError>;
    /// The next reserved client id (committed already); a batch is reserved here when none is left.
    fn take_client_id(&self, run_id: i64) -> Result<String, StoreError>;
    /// How many reserved ids this journal still holds.
    fn client_ids_in_reserve(&self) -> usize;
    /// Notes `order` under its reserved id, written with the journal's next write.
    fn journal_reserved(&self, order: &SentOrder);
    /// Writes the noted orders now, without waiting for the disk (the next durable commit
    /// makes them durable too).
    fn flush_journal(&self) -> Result<(), StoreError>;
    /// The run's reserved ids not yet used, oldest first (every connection's).
    fn reserved_client_ids(&self, run_id: i64) -> Result<Vec<String>, StoreError>;
    /// The run's reserved ids that were reserved for validations, oldest first.
    fn reserved_for_validation(&self, run_id: i64) -> Result<Vec<String>, StoreError>;
    /// Retires a reserved id (committed); false when it was not reserved.
    fn retire_client_id(&self, cl_ord_id: &str, detail: &str) -> Result<bool, StoreError>;
    /// Records the exchange's trades (committed); one already recorded is kept as it was.
    /// How many were new.
    fn record_exchange_fills(&self, fills: &[ExchangeFill]) -> Result<usize, StoreError>;
    /// Records what the exchange said of an order (committed), topping the reserve up when empty.
    fn set_order_state(
        &self,
        cl_ord_id: &str,
        state: OrderState,
        txid: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The run's journaled orders (not the reserved or retired ids), oldest first.
    fn sent_orders(&self, run_id: i64) -> Result<Vec<SentOrder>, StoreError>;
    /// The state of the journal's row `cl_ord_id`, if any.
    fn sent_order(&self, cl_ord_id: &str) -> Result<Option<String>, StoreError>;
    /// The run's recorded exchange trades, in time order.
    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError>;
}

/// A journal chosen at run time (SQLite's or PostgreSQL's) is a journal.
impl<J: OrderJournal + ?Sized> OrderJournal for Box<J> {
    fn reserve_for_validation(&self) {
        (**self).reserve_for_validation();
    }
    fn reserve_client_ids(&self, run_id: i64, n: usize) -> Result<Vec<String>, StoreError> {
        (**self).reserve_client_ids(run_id, n)
    }
    fn take_client_id(&self, run_id: i64) -> Result<String, StoreError> {
        (**self).take_client_id(run_id)
    }
    fn client_ids_in_reserve(&self) -> usize {
        (**self).client_ids_in_reserve()
    }
    fn journal_reserved(&self, order: &SentOrder) {
        (**self).journal_reserved(order);
    }
    fn flush_journal(&self) -> Result<(), StoreError> {
        (**self).flush_journal()
    }
    fn reserved_client_ids(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        (**self).reserved_client_ids(run_id)
    }
    fn reserved_for_validation(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        (**self).reserved_for_validation(run_id)
    }
    fn retire_client_id(&self, cl_ord_id: &str, detail: &str) -> Result<bool, StoreError> {
        (**self).retire_client_id(cl_ord_id, detail)
    }
    fn record_exchange_fills(&self, fills: &[ExchangeFill]) -> Result<usize, StoreError> {
        (**self).record_exchange_fills(fills)
    }
    fn set_order_state(
        &self,
        cl_ord_id: &str,
        state: OrderState,
        txid: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        (**self).set_order_state(cl_ord_id, state, txid, detail)
    }
    fn sent_orders(&self, run_id: i64) -> Result<Vec<SentOrder>, StoreError> {
        (**self).sent_orders(run_id)
    }
    fn sent_order(&self, cl_ord_id: &str) -> Result<Option<String>, StoreError> {
        (**self).sent_order(cl_ord_id)
    }
    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError> {
        (**self).exchange_fills(run_id)
    }
}

impl OrderJournal for Store {
    fn reserve_for_validation(&self) {
        Store::reserve_for_validation(self);
    }
    fn reserve_client_ids(&self, run_id: i64, n: usize) -> Result<Vec<String>, StoreError> {
        Store::reserve_client_ids(self, run_id, n)
    }
    fn take_client_id(&self, run_id: i64) -> Result<String, StoreError> {
        Store::take_client_id(self, run_id)
    }
    fn client_ids_in_reserve(&self) -> usize {
        Store::client_ids_in_reserve(self)
    }
    fn journal_reserved(&self, order: &SentOrder) {
        Store::journal_reserved(self, order);
    }
    fn flush_journal(&self) -> Result<(), StoreError> {
        Store::flush_journal(self)
    }
    fn reserved_client_ids(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        Store::reserved_client_ids(self, run_id)
    }
    fn reserved_for_validation(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        Store::reserved_for_validation(self, run_id)
    }
    fn retire_client_id(&self, cl_ord_id: &str, detail: &str) -> Result<bool, StoreError> {
        Store::retire_client_id(self, cl_ord_id, detail)
    }
    fn record_exchange_fills(&self, fills: &[ExchangeFill]) -> Result<usize, StoreError> {
        Store::record_exchange_fills(self, fills)
    }
    fn set_order_state(
        &self,
        cl_ord_id: &str,
        state: OrderState,
        txid: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        Store::set_order_state(self, cl_ord_id, state, txid, detail)
    }
    fn sent_orders(&self, run_id: i64) -> Result<Vec<SentOrder>, StoreError> {
        Store::sent_orders(self, run_id)
    }
    fn sent_order(&self, cl_ord_id: &str) -> Result<Option<String>, StoreError> {
        Store::sent_order(self, cl_ord_id)
    }
    fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError> {
        Store::exchange_fills(self, run_id)
    }
}

/// Rows that are client ids, not orders (no side, no volume).
const NOT_ORDERS: &str = "('reserved', 'retired')";

impl Store {
    fn reserve_mut(&self) -> std::cell::RefMut<'_, Reserve> {
        self.reserve.borrow_mut()
    }

    /// Marks the ids this connection reserves from now on as ids for validations (orders that
    /// never execute): see [`reserved_for_validation`](Self::reserved_for_validation).
    pub fn reserve_for_validation(&self) {
        self.reserve_mut().validate = true;
    }

    /// Commits `n` fresh client ids (UUID v4) for `run_id` in one transaction (one fsync) and
    /// keeps them for [`take_client_id`](Self::take_client_id). Returns them.
    pub fn reserve_client_ids(&self, run_id: i64, n: usize) -> Result<Vec<String>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        self.write_pending(&tx)?;
        let validate = self.reserve.borrow().validate;
        let ids = insert_reserved(&tx, run_id, n, validate)?;
        tx.commit()?;
        self.keep_reserved(run_id, &ids);
        Ok(ids)
    }

    fn keep_reserved(&self, run_id: i64, ids: &[String]) {
        let mut reserve = self.reserve_mut();
        if reserve.run_id != Some(run_id) {
            // Another run's ids stay reserved in the file; that run's next start retires them.
            reserve.ids.clear();
            reserve.run_id = Some(run_id);
        }
        reserve.ids.extend(ids.iter().cloned());
    }

    /// The next reserved client id for an order of `run_id`: committed already, so no fsync.
    /// With none left, a batch is reserved here (correct, one fsync slower). A taken id leaves
    /// this connection's reserve for good: whatever happens next, it is never handed out again.
    pub fn take_client_id(&self, run_id: i64) -> Result<String, StoreError> {
        {
            let mut reserve = self.reserve_mut();
            if reserve.run_id == Some(run_id)
                && let Some(id) = reserve.ids.pop_front()
            {
                return Ok(id);
            }
        }
        self.reserve_client_ids(run_id, RESERVE_BATCH)?;
        self.reserve_mut()
            .ids
            .pop_front()
            .ok_or_else(|| StoreError::Corrupt("a fresh reservation holds no client id".into()))
    }

    /// How many reserved ids this connection still holds.
    pub fn client_ids_in_reserve(&self) -> usize {
        self.reserve.borrow().ids.len()
    }

    /// Records `order` under its reserved client id (taken with
    /// [`take_client_id`](Self::take_client_id)). Nothing is written here: the record is written
    /// with this connection's next write (the order's outcome, its trades), in the same commit,
    /// or by [`flush_journal`](Self::flush_journal); so no disk write sits between a decision
    /// and its send. (A `synchronous=NORMAL` update here, measured, cost 70-110 µs: more than
    /// the rest of the way to the wire.)
    ///
    /// Why that is safe: the id itself was committed durably when it was reserved, and a start
    /// looks every still-reserved id up at the exchange, as for an order whose answer was lost.
    /// A crash before the record is written loses only the run's order id beside the client id;
    /// the order's side, volume and trades are taken from the exchange.
    pub fn journal_reserved(&self, order: &SentOrder) {
        self.pending.borrow_mut().push(order.clone());
    }

    /// Writes the orders recorded with [`journal_reserved`](Self::journal_reserved) now, without
    /// waiting for an fsync (`synchronous=NORMAL` for this commit): for a caller that has handed
    /// its order over and has time before the answer. In WAL mode commits reach the log in
    /// order, so the connection's next durable commit makes this one durable too.
    pub fn flush_journal(&self) -> Result<(), StoreError> {
        if self.pending.borrow().is_empty() {
            return Ok(());
        }
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let written = (|| -> Result<(), StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            self.write_pending(&tx)?;
            tx.commit()?;
            Ok(())
        })();
        // FULL again for every other commit, whatever happened.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        written
    }

    /// Writes the pending records in `tx`. An id that is no longer reserved is refused (an id is
    /// used once): said, and left out.
    fn write_pending(&self, tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
        let pending: Vec<SentOrder> = self.pending.borrow_mut().drain(..).collect();
        if pending.is_empty() {
            return Ok(());
        }
        let mut stmt = tx.prepare_cached(
            "UPDATE exchange_orders SET order_id = ?3, ts = ?4, side = ?5, volume = ?6, validate = ?7, state = ?8,
                    txid = ?9, detail = ?10, updated_ms = ?11
             WHERE cl_ord_id = ?1 AND run_id = ?2 AND state = 'reserved'",
        )?;
        for order in &pending {
            let written = stmt.execute(params![
                order.cl_ord_id,
                order.run_id,
                order.order_id as i64,
                order.ts.millis(),
                order.side.as_str(),
                order.volume.to_string(),
                order.validate,
                order.state.as_str(),
                order.txid,
                order.detail,
                Timestamp::now().millis(),
            ]);
            match written {
                Ok(1) => {}
                Ok(_) => tracing::error!(
                    "order {} used client id {}, which is not reserved for run {}: not journaled",
                    order.order_id,
                    order.cl_ord_id,
                    order.run_id
                ),
                Err(e) => {
                    // Kept for the next write: the update may succeed then.
                    self.pending.borrow_mut().extend(pending.iter().cloned());
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// The run's reserved client ids not yet used, oldest first (from the file: every
    /// connection's).
    pub fn reserved_client_ids(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cl_ord_id FROM exchange_orders WHERE run_id = ?1 AND state = 'reserved' ORDER BY rowid",
        )?;
        let ids = stmt
            .query_map([run_id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// The run's reserved ids that were reserved for validations, oldest first: they never
    /// execute, so they may be retired without a lookup. (The run may have been resumed with
    /// another broker: ids reserved for real orders are left for a live start to look up.)
    pub fn reserved_for_validation(&self, run_id: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cl_ord_id FROM exchange_orders WHERE run_id = ?1 AND state = 'reserved' AND validate ORDER BY rowid",
        )?;
        let ids = stmt
            .query_map([run_id], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ids)
    }

    /// Retires a reserved client id (committed): it is never used. False when it was not
    /// reserved (already used or retired).
    pub fn retire_client_id(&self, cl_ord_id: &str, detail: &str) -> Result<bool, StoreError> {
        self.reserve_mut().ids.retain(|id| id != cl_ord_id);
        let changed = self.conn.execute(
            "UPDATE exchange_orders SET state = 'retired', detail = ?2, updated_ms = ?3
             WHERE cl_ord_id = ?1 AND state = 'reserved'",
            params![cl_ord_id, detail, Timestamp::now().millis()],
        )?;
        Ok(changed > 0)
    }

    /// At close: the pending records written (durably), then the unused ids retired.
    pub(crate) fn close_journal(&self) {
        let written = (|| -> Result<(), StoreError> {
            if self.pending.borrow().is_empty() {
                return Ok(());
            }
            let tx = self.conn.unchecked_transaction()?;
            self.write_pending(&tx)?;
            tx.commit()?;
            Ok(())
        })();
        if let Err(e) = written {
            // Their ids stay reserved: the next start looks them up.
            tracing::error!("orders not journaled at close ({e}); the next start looks them up");
        }
        self.retire_unused_reserve();
    }

    /// Retires the reserved ids this connection still holds: they were never handed out, so
    /// never sent. Done when the store closes, so a clean stop leaves nothing to look up.
    fn retire_unused_reserve(&self) {
        let ids: Vec<String> = self.reserve_mut().ids.drain(..).collect();
        if ids.is_empty() {
            return;
        }
        let retire = || -> Result<(), StoreError> {
            let tx = self.conn.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE exchange_orders SET state = 'retired', detail = 'unused at stop', updated_ms = ?2
                     WHERE cl_ord_id = ?1 AND state = 'reserved'",
                )?;
                let now = Timestamp::now().millis();
                for id in &ids {
                    stmt.execute(params![id, now])?;
                }
            }
            tx.commit()?;
            Ok(())
        };
        if let Err(e) = retire() {
            // Harmless: the next start looks them up and retires them.
            tracing::debug!("unused client ids not retired at stop: {e}");
        }
    }

    /// Records the exchange's trades (committed when this returns); a trade already recorded is
    /// kept as it was, so recording after a lookup and again after a restart is harmless.
    pub fn record_exchange_fills(&self, fills: &[ExchangeFill]) -> Result<usize, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        self.write_pending(&tx)?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO exchange_fills (trade_id, run_id, order_id, cl_ord_id, txid, ts, side, qty, price, cost, fee)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for f in fills {
                added += stmt.execute(params![
                    f.trade_id,
                    f.run_id,
                    f.order_id as i64,
                    f.cl_ord_id,
                    f.txid,
                    f.ts.millis(),
                    f.side.as_str(),
                    f.qty.to_string(),
                    f.price.to_string(),
                    f.cost.to_string(),
                    f.fee.to_string(),
                ])?;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// The run's recorded exchange trades, in time order (none in a store older than the journal,
    /// which a reader leaves as it is).
    pub fn exchange_fills(&self, run_id: i64) -> Result<Vec<ExchangeFill>, StoreError> {
        let has_table: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'exchange_fills')",
            [],
            |r| r.get(0),
        )?;
        if !has_table {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT trade_id, run_id, order_id, cl_ord_id, txid, ts, side, qty, price, cost, fee
             FROM exchange_fills WHERE run_id = ?1 ORDER BY ts, trade_id",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                [r.get::<_, String>(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?],
            ))
        })?;
        let mut fills = Vec::new();
        for row in rows {
            let (trade_id, run_id, order_id, cl_ord_id, txid, ts, [side, qty, price, cost, fee]) = row?;
            fills.push(ExchangeFill {
                trade_id,
                run_id,
                order_id: order_id as u64,
                cl_ord_id,
                txid,
                ts: codec::ts(ts),
                side: codec::side(&side)?,
                qty: codec::dec(&qty)?,
                price: codec::dec(&price)?,
                cost: codec::dec(&cost)?,
                fee: codec::dec(&fee)?,
            });
        }
        Ok(fills)
    }

    /// Writes `order` (committed when this returns): the record that exists before the order
    /// leaves. A client id already journaled is refused, so an order can never be sent twice
    /// under one id.
    pub fn journal_order(&self, order: &SentOrder) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO exchange_orders (cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                order.cl_ord_id,
                order.run_id,
                order.order_id as i64,
                order.ts.millis(),
                order.side.as_str(),
                order.volume.to_string(),
                order.validate,
                order.state.as_str(),
                order.txid,
                order.detail,
                Timestamp::now().millis(),
            ],
        )?;
        Ok(())
    }

    /// Records what the exchange said of the order `cl_ord_id` (committed when this returns).
    pub fn set_order_state(
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
        let tx = self.conn.unchecked_transaction()?;
        self.write_pending(&tx)?;
        let changed = tx.execute(
            &format!(
                "UPDATE exchange_orders SET state = ?2, txid = COALESCE(?3, txid), detail = COALESCE(?4, detail),
                        updated_ms = ?5
                 WHERE cl_ord_id = ?1 AND state NOT IN {NOT_ORDERS}"
            ),
            params![cl_ord_id, state.as_str(), txid, detail, Timestamp::now().millis()],
        )?;
        if changed == 0 {
            return Err(StoreError::Corrupt(format!("no journaled order {cl_ord_id}")));
        }
        // The reserve is topped up here, after an order has left and in the same commit (one
        // fsync for both), so the batch's fsync never sits between a decision and its send.
        let fresh = match top_up {
            Some(run_id) => insert_reserved(&tx, run_id, RESERVE_BATCH, validate)?,
            None => Vec::new(),
        };
        tx.commit()?;
        if let Some(run_id) = top_up {
            self.keep_reserved(run_id, &fresh);
        }
        Ok(())
    }

    /// The run's journaled orders, oldest first.
    pub fn sent_orders(&self, run_id: i64) -> Result<Vec<SentOrder>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail
             FROM exchange_orders WHERE run_id = ?1 AND state NOT IN ('reserved', 'retired') ORDER BY order_id, ts",
        )?;
        let rows = stmt.query_map([run_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, Option<String>>(8)?,
                r.get::<_, Option<String>>(9)?,
            ))
        })?;
        let mut orders = Vec::new();
        for row in rows {
            let (cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail) = row?;
            orders.push(SentOrder {
                cl_ord_id,
                run_id,
                order_id: order_id as u64,
                ts: codec::ts(ts),
                side: codec::side(&side)?,
                volume: codec::dec(&volume)?,
                validate,
                state: state.parse()?,
                txid,
                detail,
            });
        }
        Ok(orders)
    }

    /// The journaled order `cl_ord_id`, if any.
    pub fn sent_order(&self, cl_ord_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM exchange_orders WHERE cl_ord_id = ?1",
                [cl_ord_id],
                |r| r.get::<_, String>(0),
            )
            .optional()?)
    }
}

/// Inserts `n` fresh reserved ids for `run_id` in `tx` (the caller commits).
fn insert_reserved(
    tx: &rusqlite::Transaction<'_>,
    run_id: i64,
    n: usize,
    validate: bool,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO exchange_orders (cl_ord_id, run_id, validate, state, updated_ms) VALUES (?1, ?2, ?4, 'reserved', ?3)",
    )?;
    let now = Timestamp::now().millis();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        stmt.execute(params![id, run_id, now, validate])?;
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDirLock, NewRun};
    use nanotrader_market::Interval;

    /// A store file with one run.
    fn store_with_run(dir: &std::path::Path) -> (DataDirLock, Store, i64) {
        let lock = DataDirLock::acquire(dir).unwrap();
        let store = Store::open(&lock).unwrap();
        let series_id = store
            .series_id("kraken:BTC/USD", "BTC/USD", Interval::ONE_MINUTE)
            .unwrap();
        let run = store
            .create_run(&NewRun {
                run_key: "k",
                series_id,
                config: "{}",
                source_params: "{}",
                initial_cash: Decimal::from(100),
            })
            .unwrap();
        (lock, store, run.id)
    }

    fn order(cl_ord_id: &str, run_id: i64, order_id: u64) -> SentOrder {
        SentOrder {
            cl_ord_id: cl_ord_id.into(),
            run_id,
            order_id,
            ts: Timestamp::from_secs(60),
            side: Side::Sell,
            volume: "0.00100000".parse().unwrap(),
            validate: false,
            state: OrderState::Sending,
            txid: None,
            detail: None,
        }
    }

    #[test]
    fn a_reserved_id_is_taken_once_recorded_with_the_next_write_and_retired_ids_are_never_orders() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, store, run) = store_with_run(dir.path());
        let ids = store.reserve_client_ids(run, 4).unwrap();
        assert_eq!(ids.len(), 4);
        assert_eq!(store.reserved_client_ids(run).unwrap(), ids, "committed, oldest first");
        assert!(
            store.sent_orders(run).unwrap().is_empty(),
            "a reserved id is not an order"
        );
        // Another connection sees them: they are in the file, not only in memory.
        assert_eq!(Store::open(&lock).unwrap().reserved_client_ids(run).unwrap(), ids);

        let taken = store.take_client_id(run).unwrap();
        assert_eq!(taken, ids[0]);
        store.journal_reserved(&order(&taken, run, 7));
        // Noted, not written yet: the file still says reserved.
        assert_eq!(store.sent_order(&taken).unwrap().as_deref(), Some("reserved"));
        store
            .set_order_state(&taken, OrderState::Placed, Some("OTX-1"), None)
            .unwrap();
        let orders = store.sent_orders(run).unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(
            (
                orders[0].order_id,
                orders[0].side,
                orders[0].volume.to_string(),
                orders[0].state
            ),
            (7, Side::Sell, "0.00100000".to_owned(), OrderState::Placed),
            "the details and the outcome in one commit"
        );
        assert_eq!(orders[0].txid.as_deref(), Some("OTX-1"));

        // Retired: never an order, never taken, never reused.
        assert!(store.retire_client_id(&ids[1], "test").unwrap());
        assert!(!store.retire_client_id(&ids[1], "test").unwrap(), "retired once");
        assert!(
            !store.retire_client_id(&taken, "test").unwrap(),
            "a used id is not retired"
        );
        assert_eq!(store.sent_order(&ids[1]).unwrap().as_deref(), Some("retired"));
        assert_ne!(store.take_client_id(run).unwrap(), ids[1]);
        assert!(store.sent_orders(run).unwrap().iter().all(|o| o.cl_ord_id != ids[1]));
        // A retired id noted for an order is not written, and its outcome is refused.
        store.journal_reserved(&order(&ids[1], run, 8));
        assert!(store.set_order_state(&ids[1], OrderState::Placed, None, None).is_err());
        assert_eq!(store.sent_order(&ids[1]).unwrap().as_deref(), Some("retired"));
        // A reserved id has no outcome either: it is not an order yet.
        assert!(store.set_order_state(&ids[3], OrderState::Placed, None, None).is_err());
    }

    #[test]
    fn the_reserve_is_topped_up_after_an_order_and_refilled_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (_lock, store, run) = store_with_run(dir.path());
        // None reserved: the first take reserves a batch there and then (the slow way).
        let first = store.take_client_id(run).unwrap();
        assert_eq!(store.client_ids_in_reserve(), RESERVE_BATCH - 1);
        let mut taken = vec![first];
        while store.client_ids_in_reserve() > 0 {
            taken.push(store.take_client_id(run).unwrap());
        }
        // Empty: the next state record (after the order has left) commits a fresh batch with it.
        store.journal_reserved(&order(&taken[0], run, 1));
        store
            .set_order_state(&taken[0], OrderState::Rejected, None, Some("no"))
            .unwrap();
        assert_eq!(store.client_ids_in_reserve(), RESERVE_BATCH);
        assert_eq!(
            store.reserved_client_ids(run).unwrap().len(),
            RESERVE_BATCH + taken.len() - 1,
            "the taken ids not yet recorded stay reserved in the file"
        );
        // Every id handed out is fresh.
        for _ in 0..3 * RESERVE_BATCH {
            let id = store.take_client_id(run).unwrap();
            assert!(!taken.contains(&id));
            taken.push(id);
        }
    }

    #[test]
    fn closing_writes_what_was_noted_and_retires_what_was_never_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, store, run) = store_with_run(dir.path());
        let ids = store.reserve_client_ids(run, RESERVE_BATCH).unwrap();
        let taken = store.take_client_id(run).unwrap();
        store.journal_reserved(&order(&taken, run, 3));
        drop(store);
        let store = Store::open(&lock).unwrap();
        let orders = store.sent_orders(run).unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!(
            (orders[0].cl_ord_id.as_str(), orders[0].state),
            (taken.as_str(), OrderState::Sending)
        );
        assert!(store.reserved_client_ids(run).unwrap().is_empty());
        for id in &ids[1..] {
            assert_eq!(store.sent_order(id).unwrap().as_deref(), Some("retired"));
        }
        // A crash runs no destructor: what it held stays reserved, for the start to look up.
        let ids = store.reserve_client_ids(run, 2).unwrap();
        std::mem::forget(store);
        let store = Store::open(&lock).unwrap();
        assert_eq!(store.reserved_client_ids(run).unwrap(), ids);
    }

    #[test]
    fn a_store_of_schema_3_keeps_its_journal_and_takes_reserved_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::DB_FILE);
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &crate::schema::MIGRATIONS[..3] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "PRAGMA user_version = 3;
                 INSERT INTO series VALUES (1, 'kraken:BTC/USD', 'BTC/USD', 60);
                 INSERT INTO runs (id, run_key, series_id, status, created_at, updated_at, config, source_params,
                                   initial_cash) VALUES (1, 'k', 1, 'running', 0, 0, '{}', '{}', '100');
                 INSERT INTO exchange_orders VALUES ('old-id', 1, 4, 60000, 'buy', '0.001', 0, 'placed', 'OTX', NULL, 0);",
            )
            .unwrap();
        }
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let store = Store::open(&lock).unwrap();
        let orders = store.sent_orders(1).unwrap();
        assert_eq!(orders.len(), 1);
        assert_eq!((orders[0].cl_ord_id.as_str(), orders[0].order_id), ("old-id", 4));
        assert_eq!(store.reserve_client_ids(1, 2).unwrap().len(), 2);
        // Only a reserved or retired row may lack the order's details.
        assert!(
            store
                .conn
                .execute(
                    "INSERT INTO exchange_orders (cl_ord_id, run_id, validate, state, updated_ms) VALUES ('x', 1, 0, 'sending', 0)",
                    [],
                )
                .is_err()
        );
    }

    #[test]
    fn an_order_is_journaled_once_and_follows_the_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let (_lock, store, run_id) = store_with_run(dir.path());
        let order = SentOrder {
            cl_ord_id: "5b0a9d34-0f6c-4b5e-9d3e-2b1b2c3d4e5f".into(),
            run_id,
            order_id: 1,
            ts: Timestamp::from_secs(60),
            side: Side::Buy,
            volume: "0.00120000".parse().unwrap(),
            validate: false,
            state: OrderState::Sending,
            txid: None,
            detail: None,
        };
        store.journal_order(&order).unwrap();
        assert!(store.journal_order(&order).is_err(), "one client id, one order");
        store
            .set_order_state(&order.cl_ord_id, OrderState::Placed, Some("OABC12-DEF34-GHI567"), None)
            .unwrap();
        let read = store.sent_orders(run_id).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].state, OrderState::Placed);
        assert_eq!(read[0].txid.as_deref(), Some("OABC12-DEF34-GHI567"));
        assert_eq!(read[0].volume.to_string(), "0.00120000", "the volume exactly as sent");
        assert!(store.set_order_state("nope", OrderState::Rejected, None, None).is_err());
    }
}
