//! Paper broker and account: exact money, explicit fees and sizing.
//!
//! It owns the account's books and how an order becomes a fill on paper. It knows the market's
//! types only: not the strategies, the store or the engine that drives it.

mod account;
mod amount;
mod config;
mod order;
mod paper;
mod protections;
mod shared_cash;
mod venue;

pub use account::{Account, AccountSnapshot};
pub use amount::{Amount, FastDecimal, decimal_to_f64};
pub use config::{BrokerConfig, InvalidBroker, Sizing};
pub use order::{Fill, Order, OrderReason};
pub use paper::PaperBroker;
pub use protections::{Guard, Halt, HaltRule, ProtectionReport, Protections};
pub use shared_cash::{CashRail, SharedCashBroker};
pub use venue::{OrderView, VenueView};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use nanotrader_market::{ExitPlan, Timestamp};
use rust_decimal::Decimal;
use tokio::sync::Notify;

/// A broker's answer the engine awaits (boxed: the trait is used as `dyn Broker`).
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The seam between the engine and whoever carries out its orders.
///
/// [`PaperBroker`]: every order fills at once, in full, at the price given, and the account is
/// computed from those fills. A live exchange broker honours what the engine relies on, while
/// the exchange is the truth:
/// - `follow` and `exit` never block the engine: an order is handed over and `None` returned
///   when its fill is not known yet; its fills (possibly several, partial) arrive later, are
///   recorded as the exchange reports them (ids, quantity, price, fee) and the account
///   (`account`) is the exchange's balances, not a sum the bot computes;
/// - an order gets its client id before it leaves, is stored before it is sent and is never
///   sent twice: an unknown outcome is resolved by looking the order up, not by resending it;
/// - `mark` only values the account at a price; it never trades.
pub trait Broker: Send {
    /// Values the account at `price` (a bar's close).
    fn mark(&mut self, price: Decimal);
    /// Acts on a change of the target holding at a bar's close: +1 enters, -1 exits. The order
    /// and its fill when it filled at once.
    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)>;
    /// Closes the whole position (a person's Flatten, or a rule's exit).
    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)>;
    /// The account as the broker knows it.
    fn account(&self) -> &Account;
    /// The id the next order will get (stored with each step, so a restart continues it).
    fn next_order_id(&self) -> u64;

    /// Fills learned since the last call, of orders handed over earlier (a live broker's; paper
    /// fills at once and has none), each with its order and the account right after it.
    fn poll(&mut self) -> Vec<(Order, Fill)> {
        Vec::new()
    }
    /// Woken when `poll` has something, so the engine needs no timer to learn of a fill.
    fn updates(&self) -> Option<Arc<Notify>> {
        None
    }
    /// The exits of the entry the next `follow` makes (its stop and target prices): a live
    /// broker with `--stops exchange` places them at the exchange once the entry has filled.
    /// Paper ignores them: its stops are the strategy's, watched bar by bar.
    fn plan_exits(&mut self, _plan: ExitPlan) {}
    /// The run restarted in a trade whose exits are `plan` (`ts` and `price`: its last bar): a
    /// live broker with `--stops exchange` places them for the position when none rest.
    fn guard_position(&mut self, _plan: ExitPlan, _ts: Timestamp, _price: Decimal) {}
    /// The best bid and ask now (a limit order is priced on them).
    fn quote(&mut self, _bid: Decimal, _ask: Decimal) {}
    /// A person's Resume: lifts a risk halt.
    fn resume(&mut self) {}
    /// The run is ending: a live broker cancels its open orders (`--cancel-on-exit`) and
    /// learns their last fills, which `poll` then gives.
    fn stop(&mut self) {}
    /// `stop`, awaited instead of waited for: the engine's thread keeps running the broker's
    /// own tasks meanwhile (needed where they share it: a current-thread runtime).
    fn stop_async(&mut self) -> BrokerFuture<'_, ()> {
        Box::pin(async move { self.stop() })
    }
    /// The answer to the last `follow` or `exit` when it could not be given at once because
    /// the broker's own tasks, which fetch it, run on the engine's thread (`kraken-validate`
    /// on a current-thread runtime): the engine awaits it and takes the order and its fill as
    /// `follow` would have returned them. `None` when nothing waits (every other broker).
    fn answer(&mut self) -> Option<BrokerFuture<'_, Option<(Order, Fill)>>> {
        None
    }
    /// The exchange's side, for the dashboard; `None` for paper.
    fn venue(&self) -> Option<VenueView> {
        None
    }
}

/// A boxed broker is a broker: the command line picks one at run time.
impl<B: Broker + ?Sized> Broker for Box<B> {
    fn mark(&mut self, price: Decimal) {
        (**self).mark(price);
    }

    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        (**self).follow(change, ts, price)
    }

    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        (**self).exit(ts, price, reason)
    }

    fn account(&self) -> &Account {
        (**self).account()
    }

    fn next_order_id(&self) -> u64 {
        (**self).next_order_id()
    }

    fn poll(&mut self) -> Vec<(Order, Fill)> {
        (**self).poll()
    }

    fn updates(&self) -> Option<Arc<Notify>> {
        (**self).updates()
    }

    fn plan_exits(&mut self, plan: ExitPlan) {
        (**self).plan_exits(plan);
    }

    fn guard_position(&mut self, plan: ExitPlan, ts: Timestamp, price: Decimal) {
        (**self).guard_position(plan, ts, price);
    }

    fn quote(&mut self, bid: Decimal, ask: Decimal) {
        (**self).quote(bid, ask);
    }

    fn resume(&mut self) {
        (**self).resume();
    }

    fn stop(&mut self) {
        (**self).stop();
    }

    fn stop_async(&mut self) -> BrokerFuture<'_, ()> {
        (**self).stop_async()
    }

    fn answer(&mut self) -> Option<BrokerFuture<'_, Option<(Order, Fill)>>> {
        (**self).answer()
    }

    fn venue(&self) -> Option<VenueView> {
        (**self).venue()
    }
}

impl Broker for PaperBroker {
    fn mark(&mut self, price: Decimal) {
        PaperBroker::mark(self, price);
    }

    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        PaperBroker::follow(self, change, ts, price)
    }

    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        PaperBroker::exit(self, ts, price, reason)
    }

    fn account(&self) -> &Account {
        PaperBroker::account(self)
    }

    fn next_order_id(&self) -> u64 {
        PaperBroker::next_order_id(self)
    }
}
