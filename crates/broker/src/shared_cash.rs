//! One cash rail for several pairs of a process (`--shared-cash`): each pair keeps its own
//! paper account, fills and P&L, and the cash committed to open positions across all pairs
//! (what their entries cost, fees included) never exceeds the rail (`--initial-cash`).
//!
//! Sizing: an entry may commit at most the rail's free cash divided by the number of pairs
//! without a position (itself included), so the first pair to enter cannot starve the others;
//! within that share the strategy's own sizing rule applies. With nothing free the entry is not
//! made (one log line, counted). What is committed is read from each pair's account, which is
//! rebuilt from its stored fills, so a restart (even after kill -9) finds the rail exactly as it
//! was; no pair trades before every pair has taken its place on the rail.

use std::sync::{Arc, Mutex, PoisonError};

use rust_decimal::{Decimal, RoundingStrategy};
use tokio::sync::watch;

use super::account::Account;
use super::order::{Fill, Order, OrderReason};
use super::paper::PaperBroker;
use super::{Broker, VenueView};
use nanotrader_market::Timestamp;

/// A share is rounded down to this many decimals, so the shares of the free cash never add up
/// to more than it.
const SHARE_DECIMALS: u32 = 12;

/// The rail the pairs of one process share.
pub struct CashRail {
    rail: Decimal,
    /// Per pair: what its open position cost (`None` until the pair has taken its place).
    committed: Mutex<Vec<Option<Decimal>>>,
    /// How many pairs have taken their place.
    placed: watch::Sender<usize>,
}

impl CashRail {
    /// A rail of `rail` for `pairs` pairs.
    pub fn new(rail: Decimal, pairs: usize) -> Arc<Self> {
        Arc::new(Self {
            rail,
            committed: Mutex::new(vec![None; pairs.max(1)]),
            placed: watch::channel(0).0,
        })
    }

    pub fn rail(&self) -> Decimal {
        self.rail
    }

    /// How many pairs share it.
    pub fn pairs(&self) -> usize {
        self.committed.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The rail less what every pair's open position cost.
    pub fn free(&self) -> Decimal {
        let committed = self.committed.lock().unwrap_or_else(PoisonError::into_inner);
        self.rail - committed.iter().flatten().sum::<Decimal>()
    }

    /// Waits until every pair has taken its place (restored its account), so no pair trades on
    /// a rail that does not yet know what the others hold.
    pub async fn every_pair_placed(&self) {
        let pairs = self.committed.lock().unwrap_or_else(PoisonError::into_inner).len();
        let mut placed = self.placed.subscribe();
        let _ = placed.wait_for(|n| *n >= pairs).await;
    }

    /// Pair `index`'s broker on this rail, over its restored paper account.
    pub fn broker(self: &Arc<Self>, index: usize, pair: impl Into<String>, paper: PaperBroker) -> SharedCashBroker {
        let broker = SharedCashBroker {
            paper,
            rail: self.clone(),
            index,
            pair: pair.into(),
            skipped: 0,
        };
        broker.commit();
        broker
    }

    fn set(&self, index: usize, cost: Decimal) {
        let mut committed = self.committed.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = committed.get_mut(index) else {
            return;
        };
        let first = slot.is_none();
        *slot = Some(cost);
        if first {
            let placed = committed.iter().flatten().count();
            if placed == committed.len() {
                // Every pair is restored and none trades yet: the rail as the stored fills left it.
                let free = self.rail - committed.iter().flatten().sum::<Decimal>();
                tracing::info!(
                    "shared cash rail: {} of {} free across {placed} pairs",
                    free.normalize(),
                    self.rail.normalize()
                );
            }
            self.placed.send_replace(placed);
        }
    }

    /// What pair `index` may commit to an entry now: the free cash over the pairs without a
    /// position (itself included), rounded down. `None` until every pair has taken its place.
    fn share(&self, index: usize) -> Option<Decimal> {
        let committed = self.committed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut free = self.rail;
        let mut flat = 0u32;
        for (i, cost) in committed.iter().enumerate() {
            let cost = (*cost)?;
            free -= cost;
            if i == index || cost.is_zero() {
                flat += 1;
            }
        }
        let share = free.checked_div(Decimal::from(flat.max(1)))?;
        Some(share.round_dp_with_strategy(SHARE_DECIMALS, RoundingStrategy::ToZero))
    }
}

/// A pair's paper broker on a shared cash rail: entries take at most the pair's share of the
/// free cash; exits and everything else are the paper broker's.
pub struct SharedCashBroker {
    paper: PaperBroker,
    rail: Arc<CashRail>,
    index: usize,
    pair: String,
    /// Entries not made because the rail had nothing free.
    skipped: u64,
}

impl SharedCashBroker {
    /// Entries not made because the rail had nothing free for this pair.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Tells the rail what this pair's open position cost.
    fn commit(&self) {
        self.rail.set(self.index, self.paper.account().cost_basis());
    }

    fn entry(&mut self, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let share = self.rail.share(self.index).unwrap_or_default();
        let filled = if share > Decimal::ZERO {
            self.paper.enter_within(ts, price, share)
        } else {
            None
        };
        if filled.is_none() && self.paper.account().position().is_zero() {
            self.skipped += 1;
            tracing::info!(
                skipped = self.skipped,
                "{}: no entry at {price}: the shared cash rail has {} free for it ({} of {} free in all)",
                self.pair,
                share.normalize(),
                self.rail.free().normalize(),
                self.rail.rail().normalize()
            );
        }
        filled
    }
}

impl Broker for SharedCashBroker {
    fn mark(&mut self, price: Decimal) {
        self.paper.mark(price);
    }

    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let done = if change > 0 {
            self.entry(ts, price)
        } else {
            self.paper.follow(change, ts, price)
        };
        self.commit();
        done
    }

    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        let done = self.paper.exit(ts, price, reason);
        self.commit();
        done
    }

    fn account(&self) -> &Account {
        self.paper.account()
    }

    fn next_order_id(&self) -> u64 {
        self.paper.next_order_id()
    }

    fn venue(&self) -> Option<VenueView> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BrokerConfig, Sizing};

    fn paper() -> PaperBroker {
        let config = BrokerConfig {
            initial_cash: Decimal::from(10_000),
            sizing: Sizing::Fraction(Decimal::ONE),
            ..BrokerConfig::seed()
        };
        PaperBroker::new(config)
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn entries_share_the_free_cash_and_never_commit_more_than_the_rail() {
        let rail = CashRail::new(Decimal::from(10_000), 3);
        let mut a = rail.broker(0, "A/USD", paper());
        let mut b = rail.broker(1, "B/USD", paper());
        assert_eq!(rail.share(0), None, "no share before every pair has its place");
        let mut c = rail.broker(2, "C/USD", paper());
        assert_eq!(*rail.placed.borrow(), 3);
        let price = Decimal::from(100);
        let (_, fill) = a.follow(1, at(60), price).expect("a enters");
        let cost = |f: &Fill| f.qty * f.price + f.fee;
        assert!(
            cost(&fill) <= Decimal::from(10_000) / Decimal::from(3),
            "a third: {fill:?}"
        );
        b.follow(1, at(60), price).expect("b enters");
        c.follow(1, at(60), price).expect("c takes what is left");
        assert!(
            rail.free() >= Decimal::ZERO && rail.free() < Decimal::from(100),
            "{}",
            rail.free()
        );
        // Nothing left: an entry is not made, and counted.
        let (_, sold) = a.follow(-1, at(120), price).expect("a exits");
        assert_eq!(sold.position_after, Decimal::ZERO);
        let freed = rail.free();
        assert!(freed > Decimal::from(3_000), "a's cost came back: {freed}");
        let (_, again) = a.follow(1, at(180), price).expect("a enters again with what is free");
        assert!(cost(&again) <= freed);
        assert!(rail.free() >= Decimal::ZERO);
        let mut d = CashRail::new(Decimal::ZERO, 1).broker(0, "D/USD", paper());
        assert!(
            d.follow(1, at(60), price).is_none(),
            "a rail with nothing free buys nothing"
        );
        assert_eq!(d.skipped(), 1);
    }

    #[test]
    fn a_restored_pair_takes_its_place_with_what_its_position_cost() {
        let rail = CashRail::new(Decimal::from(10_000), 2);
        let mut first = paper();
        let (_, fill) = first.follow(1, at(60), Decimal::from(100)).unwrap();
        let restored = PaperBroker::resume(
            first.config().clone(),
            Account::rebuild(Decimal::from(10_000), [&fill]),
            2,
        );
        let _a = rail.broker(0, "A/USD", restored);
        let _b = rail.broker(1, "B/USD", paper());
        assert_eq!(rail.free(), Decimal::from(10_000) - (fill.qty * fill.price + fill.fee));
    }
}
