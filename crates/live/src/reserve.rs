//! Client ids committed ahead (the journal's reserved ids) at a start. A reserved id that was
//! never recorded as used may still have been sent just before a crash (it is taken and sent
//! before its order's details are written), so a live start looks each one up at the exchange,
//! never sends anything: found, it becomes an ordinary journaled order with the exchange's
//! details and trades; proven absent, it is retired and never used. A clean stop retires the ids
//! it never handed out (see `Store`'s drop), so normally there is nothing to look up.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use nanotrader_kraken::private::{Order as KrakenOrder, OrderStatus, PrivateClient};
use nanotrader_market::Timestamp;
use nanotrader_store::{ExchangeFill, OrderJournal, OrderState, RESERVE_BATCH, SentOrder};

use crate::real::{Found, find};

/// How long a found market order may take to close, and how often it is asked.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);
const ASK_EVERY: Duration = Duration::from_millis(500);

/// Every reserved id of `run_id` looked up at the exchange (OpenOrders and ClosedOrders by
/// `cl_ord_id`, as for an order whose answer was lost); then a fresh batch is committed ahead, so
/// the first order does not wait for an fsync. An id whose lookups fail stays reserved (never
/// handed out) for the next start.
/// An id found gets the run order id `next_order_id` (then advanced): the one it had was lost.
pub async fn reconcile_reserved(
    client: &PrivateClient,
    journal: &mut dyn OrderJournal,
    run_id: i64,
    next_order_id: &mut u64,
) {
    let ids = match journal.reserved_client_ids(run_id) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!("reserved client ids cannot be read ({e}); they stay reserved");
            Vec::new()
        }
    };
    // Looked up side by side: proving an id absent takes three rounds half a second apart, and
    // the waits overlap (the client still sends one request at a time).
    let found = join_all(ids.iter().map(|id| find(client, id)).collect()).await;
    for (id, found) in ids.iter().zip(found) {
        match found {
            Found::Placed(txid) => {
                if record_found(client, journal, run_id, *next_order_id, id, &txid).await {
                    *next_order_id += 1;
                }
            }
            Found::Absent => match journal.retire_client_id(id, "reserved, proven absent at the exchange at start") {
                Ok(_) => tracing::debug!("reserved client id {id} never reached Kraken: retired"),
                Err(e) => {
                    tracing::error!("reserved client id {id} could not be retired ({e}); looked up again next start")
                }
            },
            Found::Unknown(why) => {
                tracing::warn!("reserved client id {id} could not be looked up ({why}); looked up again next start")
            }
        }
    }
    if let Err(e) = journal.reserve_client_ids(run_id, RESERVE_BATCH) {
        tracing::warn!("client ids not reserved ahead ({e}); the first order reserves them");
    }
}

/// For a broker whose orders never execute: the run's ids reserved for validations retired
/// without a lookup, and the ids this journal reserves marked as such. Ids a live broker of the
/// same run reserved (a run resumed with another broker) stay reserved for the next live start
/// to look up: one of them may have been sent.
pub(crate) fn retire_reserved_for_validation(journal: &dyn OrderJournal, run_id: i64) {
    journal.reserve_for_validation();
    for id in journal.reserved_for_validation(run_id).unwrap_or_default() {
        if let Err(e) = journal.retire_client_id(&id, "reserved for a validation: never executes") {
            tracing::warn!("reserved client id {id} not retired: {e}");
        }
    }
    let live = journal.reserved_client_ids(run_id).map(|ids| ids.len()).unwrap_or(0);
    if live > 0 {
        tracing::warn!(
            "{live} client id(s) reserved by a live run of this run are left for the next `--broker kraken` start to look up"
        );
    }
}

/// A reserved id found placed: journaled with the exchange's details (the run order id it had
/// is unknown, so a fresh one, `order_id`), its trades recorded, then marked placed, in the
/// order `reconcile` uses: a kill in between leaves it unknown, for the next start to finish.
/// Whether it was journaled (and took `order_id`).
async fn record_found(
    client: &PrivateClient,
    journal: &mut dyn OrderJournal,
    run_id: i64,
    order_id: u64,
    cl_ord_id: &str,
    txid: &str,
) -> bool {
    let order = settled(client, txid).await;
    let (side, volume, ts) = match &order {
        Some(o) => (o.descr.side, o.volume, o.opened.unwrap_or_else(Timestamp::now)),
        None => {
            tracing::warn!(
                "reserved client id {cl_ord_id} is order {txid} at Kraken, which could not be read; looked up again next start"
            );
            return false;
        }
    };
    let sent = SentOrder {
        cl_ord_id: cl_ord_id.to_owned(),
        run_id,
        order_id,
        ts,
        side,
        volume,
        validate: false,
        state: OrderState::Unknown,
        txid: Some(txid.to_owned()),
        detail: Some("sent before a crash, before it was recorded; found at start".into()),
    };
    journal.journal_reserved(&sent);
    if let Err(e) = journal.flush_journal() {
        tracing::error!("order {txid} ({cl_ord_id}) found at start but not journaled: {e}");
        return false;
    }
    let since = order.as_ref().and_then(|o| o.opened).map(|t| t.secs() - 1);
    match client.trades_history_all(since, None).await {
        Ok(trades) => {
            let fills: Vec<ExchangeFill> = trades
                .iter()
                .filter(|t| t.ordertxid == txid)
                .map(|t| ExchangeFill {
                    trade_id: t.txid.clone(),
                    run_id,
                    order_id,
                    cl_ord_id: cl_ord_id.to_owned(),
                    txid: t.ordertxid.clone(),
                    ts: t.time,
                    side: t.side,
                    qty: t.volume,
                    price: t.price,
                    cost: t.cost,
                    fee: t.fee,
                })
                .collect();
            if let Err(e) = journal.record_exchange_fills(&fills) {
                tracing::error!("order {txid}: its trades could not be recorded ({e}); it stays unknown");
                return true;
            }
        }
        Err(e) => {
            // Unknown in the journal: the next start's reconciliation records its trades.
            tracing::warn!("order {txid}: its trades could not be read ({e}); it stays unknown");
            return true;
        }
    }
    tracing::warn!(
        "reserved client id {cl_ord_id} was placed at Kraken as {txid} before a crash, though never recorded; journaled with its trades"
    );
    if let Err(e) = journal.set_order_state(cl_ord_id, OrderState::Placed, Some(txid), Some("reconciled at start")) {
        tracing::error!("order {txid} is placed, but the journal could not say so: {e}");
    }
    true
}

/// The order `txid` once closed (a market order closes at once), or as last seen.
async fn settled(client: &PrivateClient, txid: &str) -> Option<KrakenOrder> {
    let started = Instant::now();
    let mut last = None;
    loop {
        if let Ok(mut orders) = client.query_orders(&[txid]).await
            && let Some(order) = orders.pop()
        {
            let done = matches!(
                order.status,
                OrderStatus::Closed | OrderStatus::Canceled | OrderStatus::Expired
            );
            last = Some(order);
            if done {
                return last;
            }
        }
        if started.elapsed() > CLOSE_WITHIN {
            return last;
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

/// Runs `futures` side by side on this task, their outputs in their order. Hand-written: a few
/// lines instead of a `futures` dependency for this one use.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(out) => *output = Some(out),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
