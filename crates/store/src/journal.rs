//! The journal of orders sent to an exchange: each is written and committed before it leaves,
//! under its client order id, and its state then follows what the exchange said. A restart reads
//! it to find the orders whose outcome it must still learn from the exchange.

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

impl Store {
    /// Records the exchange's trades (committed when this returns); a trade already recorded is
    /// kept as it was, so recording after a lookup and again after a restart is harmless.
    pub fn record_exchange_fills(&mut self, fills: &[ExchangeFill]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
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
        let changed = self.conn.execute(
            "UPDATE exchange_orders SET state = ?2, txid = COALESCE(?3, txid), detail = COALESCE(?4, detail), updated_ms = ?5
             WHERE cl_ord_id = ?1",
            params![cl_ord_id, state.as_str(), txid, detail, Timestamp::now().millis()],
        )?;
        if changed == 0 {
            return Err(StoreError::Corrupt(format!("no journaled order {cl_ord_id}")));
        }
        Ok(())
    }

    /// The run's journaled orders, oldest first.
    pub fn sent_orders(&self, run_id: i64) -> Result<Vec<SentOrder>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cl_ord_id, run_id, order_id, ts, side, volume, validate, state, txid, detail
             FROM exchange_orders WHERE run_id = ?1 ORDER BY order_id, ts",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDirLock, NewRun};
    use nanotrader_market::Interval;

    #[test]
    fn an_order_is_journaled_once_and_follows_the_exchange() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
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
        let order = SentOrder {
            cl_ord_id: "5b0a9d34-0f6c-4b5e-9d3e-2b1b2c3d4e5f".into(),
            run_id: run.id,
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
        let read = store.sent_orders(run.id).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].state, OrderState::Placed);
        assert_eq!(read[0].txid.as_deref(), Some("OABC12-DEF34-GHI567"));
        assert_eq!(read[0].volume.to_string(), "0.00120000", "the volume exactly as sent");
        assert!(store.set_order_state("nope", OrderState::Rejected, None, None).is_err());
    }
}
