//! `--broker kraken`: real orders. Each is journaled before it leaves and sent once; an order
//! whose answer was lost is looked up by its client id (open orders, then closed orders) until it
//! is found or proven absent, never sent again. The engine never waits for the exchange: an
//! order is handed to the desk (`desk.rs`) and its fills arrive later, recorded exactly as the
//! exchange reports them; the account is the exchange's balances (cash = USD, position = BTC).
//!
//! One run order is worked at a time: it may take several exchange orders (a post-only limit
//! order re-priced, the rest sent at market after its time). A decision taken while one works
//! waits for it, then is taken again against the account the exchange reports.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rust_decimal::{Decimal, RoundingStrategy};
use tokio::sync::{Notify, mpsc};

use nanotrader_broker::{Account, Broker, BrokerConfig, Fill, Order, OrderReason, OrderView, PaperBroker, VenueView};
use nanotrader_kraken::private::{OrderStatus, OrderType, PrivateClient, TrailOffset};
use nanotrader_market::{ExitPlan, Side, Timestamp, TrailDistance};
use nanotrader_store::{ExchangeFill, OrderJournal, OrderState, SentOrder};

use crate::desk::{Balances, Command, Desk, Leg, LegEnd, LegTrade, StopDone, Update};
use crate::{Gate, PairRules, Rails};

/// How often, and how many times, a lost answer is looked up before the order counts as absent
/// (a just-placed order may take a moment to appear in Kraken's lists).
const LOOKUP_EVERY: Duration = Duration::from_millis(500);
const LOOKUPS: u32 = 20;
/// A lookup must find nothing this many times in a row to prove an order absent.
const ABSENT_PROOFS: u32 = 3;
/// Attempts beyond the first for a balances read that failed in passing.
const BALANCE_ATTEMPTS: u32 = 4;
/// How long a stop waits for the desk to cancel and learn the last fills.
const STOP_WITHIN: Duration = Duration::from_secs(20);
/// Orders the dashboard lists.
const ORDERS_SHOWN: usize = 20;
/// Post-only legs re-priced within one order's time before it falls back.
const REPRICES: u32 = 5;

/// The exchange's asset names of the pair (REST Balance keys), e.g. `XXBT` and `ZUSD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assets {
    pub base: String,
    pub quote: String,
}

/// What a limit order that did not fill in its time becomes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LimitFallback {
    /// The rest is sent at market.
    Market,
    /// The rest is given up.
    Skip,
}

/// How orders are placed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OrderKind {
    Market,
    /// Post-only at the best bid (buy) or ask (sell), cancelled after `timeout`, then `fallback`.
    Limit {
        timeout: Duration,
        fallback: LimitFallback,
    },
}

/// How a live broker works with the exchange.
#[derive(Clone, Debug)]
pub struct LiveSettings {
    pub order_kind: OrderKind,
    /// Ctrl-C (the end of the run) cancels open orders.
    pub cancel_on_exit: bool,
    /// The authenticated WebSocket (`executions`); `None`: REST alone.
    pub ws_auth_url: Option<String>,
    /// The quote asset as the WebSocket names it (`USD`): fees are reported per asset.
    pub ws_quote: String,
    /// The base asset as the WebSocket names it (`BTC`): its balance is the position.
    pub ws_base: String,
    /// `--stops exchange`: an entry's stop-loss, take-profit and trailing stop are placed at
    /// the exchange once it fills (the bot keeps watching them too).
    pub stops_on_exchange: bool,
    /// The run's stop rule as a person reads it, for the dashboard (empty without stops).
    pub stop_rule: String,
}

/// The run order being worked at the exchange.
struct Working {
    order: Order,
    /// The price the decision was taken at (the price of a leg before any mark or quote).
    price: Decimal,
    /// Volume to trade in all (on the lot).
    target: Decimal,
    filled: Decimal,
    cost: Decimal,
    fee: Decimal,
    last_ts: Timestamp,
    booked: HashSet<String>,
    realized_before: Decimal,
    /// The exchange order working now.
    leg: Option<String>,
    started: Instant,
    reprices: u32,
    /// An entry's exits, placed at the exchange once it filled (`--stops exchange`).
    exits: Option<ExitPlan>,
}

/// `--stops exchange`: the exchange orders guarding the position an entry opened (a stop-loss,
/// a trailing stop, a take-profit, each for the entry's volume), together the run's exit order.
/// When one fills the others are cancelled; when the strategy exits first they are cancelled
/// before anything is sold, and only what the exchange then says is left is sold.
struct Protection {
    order: Order,
    guards: Vec<Guard>,
    filled: Decimal,
    cost: Decimal,
    fee: Decimal,
    last_ts: Timestamp,
    booked: HashSet<String>,
    realized_before: Decimal,
    /// The guards still open are being cancelled (one filled, or the strategy exits).
    cancelling: bool,
}

struct Guard {
    cl_ord_id: String,
    /// `stop-loss`, `take-profit`, `trailing-stop`.
    kind: &'static str,
    ended: bool,
}

impl Protection {
    fn new(order: Order, realized_before: Decimal) -> Self {
        Self {
            last_ts: order.ts,
            order,
            guards: Vec::new(),
            filled: Decimal::ZERO,
            cost: Decimal::ZERO,
            fee: Decimal::ZERO,
            booked: HashSet::new(),
            realized_before,
            cancelling: false,
        }
    }

    fn guards(&self, cl_ord_id: &str) -> bool {
        self.guards.iter().any(|g| g.cl_ord_id == cl_ord_id)
    }
}

/// A decision taken while an order worked: taken again once it is done.
#[derive(Clone, Copy)]
enum Deferred {
    Follow(i8),
    Exit(OrderReason),
}

impl Deferred {
    /// Whether it sells the position (an exit, a Flatten, a signal gone flat).
    fn exits(self) -> bool {
        matches!(self, Deferred::Exit(_) | Deferred::Follow(i8::MIN..=-1))
    }
}

/// What the run had stored of its orders when it stopped: the broker starts from it.
#[derive(Clone, Debug, Default)]
pub struct RunOrders {
    /// The run's next order id as its last stored step says (a decision taken after that step
    /// was lost with the process).
    pub next_order_id: u64,
    /// The run orders whose fill the run has stored.
    pub booked: BTreeSet<u64>,
}

impl RunOrders {
    /// A run that has stored no order yet.
    pub fn fresh() -> Self {
        Self {
            next_order_id: 1,
            booked: BTreeSet::new(),
        }
    }
}

/// An entry the process sent after the run last stored its state (killed before the decision's
/// step was committed): when the strategy takes the same decision again on the bars it replays,
/// it is not sent again.
#[derive(Clone, Debug)]
struct LostEntry {
    order_id: u64,
    cl_ord_id: String,
}

/// `--broker kraken`, over the signed client.
pub struct LiveBroker {
    account: Account,
    config: BrokerConfig,
    next_order_id: u64,
    lost_entry: Option<LostEntry>,
    journal: Box<dyn OrderJournal>,
    run_id: i64,
    gate: Gate,
    assets: Assets,
    settings: LiveSettings,
    desk: mpsc::UnboundedSender<Command>,
    updates: std_mpsc::Receiver<Update>,
    wake: Arc<Notify>,
    working: Option<Working>,
    deferred: Option<Deferred>,
    /// The exits of the next entry (the strategy's prices, `plan_exits`).
    planned: Option<ExitPlan>,
    /// The stop orders guarding the position now: one set per entry (usually one; an entry
    /// made while an adopted set still rests adds its own).
    protections: Vec<Protection>,
    /// The exchange's balances: total and available, by asset.
    balances: Balances,
    quote: Option<(Decimal, Decimal)>,
    orders: VecDeque<OrderView>,
    ready: Vec<(Order, Fill)>,
    /// The run is ending: nothing new is sent.
    stopping: bool,
}

impl LiveBroker {
    /// Reconciles the journal with the exchange (orders whose outcome was never learned are
    /// looked up; their trades recorded; orders a stopped run left resting are cancelled), takes
    /// the exchange's balances as the account, and starts the desk. Before it returns, nothing
    /// new is sent.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: BrokerConfig,
        stored: RunOrders,
        client: PrivateClient,
        journal: impl OrderJournal + 'static,
        run_id: i64,
        rules: PairRules,
        rails: Rails,
        assets: Assets,
        settings: LiveSettings,
    ) -> Result<Self, String> {
        // Reserved ids first: one found at the exchange becomes a placed order, which the
        // reconciliation then reads to its end like every order a stopped run left open.
        let mut journal: Box<dyn OrderJournal> = Box::new(journal);
        // Ids past every journaled order's: a decision lost with a killed process kept its id.
        let mut next_order_id = journal
            .sent_orders(run_id)
            .unwrap_or_default()
            .iter()
            .map(|o| o.order_id + 1)
            .fold(stored.next_order_id, u64::max);
        crate::reserve::reconcile_reserved(&client, journal.as_mut(), run_id, &mut next_order_id).await;
        let reconciled = reconcile(&client, journal.as_mut(), run_id, settings.stops_on_exchange).await;
        let (lost_entry, unbooked) = lost_with_the_process(journal.as_ref(), run_id, &stored, &reconciled);
        let balances = balances_ex(&client)
            .await
            .map_err(|e| format!("Kraken BalanceEx: {e}"))?;
        let mut account = Account::new(Decimal::ZERO);
        let total = |asset: &str| balances.get(asset).map(|b| b.0).unwrap_or_default();
        account.set_holdings(total(&assets.quote), total(&assets.base));
        tracing::info!(
            "broker kraken: REAL orders; the account is Kraken's: {} {} and {} {}",
            account.cash(),
            assets.quote,
            account.position(),
            assets.base
        );
        let client = Arc::new(client);
        let (desk, commands) = mpsc::unbounded_channel();
        let (out, updates) = std_mpsc::channel();
        let wake = Arc::new(Notify::new());
        let runner = Desk::new(client, settings.ws_quote.clone(), out, Arc::clone(&wake));
        tokio::spawn(runner.run(commands, settings.ws_auth_url.clone()));
        let mut broker = Self {
            account,
            config,
            next_order_id,
            lost_entry,
            journal,
            run_id,
            gate: Gate::new(rules, rails),
            assets,
            settings,
            desk,
            updates,
            wake,
            working: None,
            deferred: None,
            balances,
            quote: None,
            orders: VecDeque::new(),
            ready: Vec::new(),
            stopping: false,
            planned: None,
            protections: Vec::new(),
        };
        broker.adopt(reconciled.adopted);
        broker.fills_while_down(unbooked);
        Ok(broker)
    }

    /// Stop orders a stopped run left guarding its position, found open at start: followed
    /// again (not placed twice), together the run's exit order they were.
    fn adopt(&mut self, adopted: Vec<Adopted>) {
        for a in adopted {
            let at = match self.protections.iter().position(|p| p.order.id == a.sent.order_id) {
                Some(at) => at,
                None => {
                    let order = Order {
                        id: a.sent.order_id,
                        ts: a.sent.ts,
                        side: Side::Sell,
                        qty: a.sent.volume,
                        reason: OrderReason::Exit,
                    };
                    let realized = self.account.realized_pnl();
                    self.protections.push(Protection::new(order, realized));
                    self.protections.len() - 1
                }
            };
            tracing::info!(
                "{} order {} ({}) still guards the position at Kraken: adopted, not placed again",
                a.kind,
                a.txid,
                a.sent.cl_ord_id
            );
            self.orders.push_front(OrderView {
                cl_ord_id: a.sent.cl_ord_id.clone(),
                txid: Some(a.txid.clone()),
                ts: a.sent.ts,
                side: Side::Sell,
                order_type: a.kind.to_owned(),
                volume: a.sent.volume,
                filled: Decimal::ZERO,
                limit_price: a.trigger,
                state: "open".to_owned(),
                detail: Some("adopted at start".to_owned()),
            });
            self.protections[at].guards.push(Guard {
                cl_ord_id: a.sent.cl_ord_id.clone(),
                kind: a.kind,
                ended: false,
            });
            let _ = self.desk.send(Command::Adopt {
                cl_ord_id: a.sent.cl_ord_id,
                txid: a.txid,
            });
        }
    }

    /// The run fills the run never stored: orders the exchange closed whose trades are journaled
    /// but whose run fill was lost with a killed process, or exits stop orders made while the
    /// bot was down (their trades recorded at the reconciliation). One run fill per run order,
    /// for the engine to store, so the run's trades show them. The account is already Kraken's
    /// balances after them.
    fn fills_while_down(&mut self, trades: Vec<ExchangeFill>) {
        let mut by_order: BTreeMap<u64, Vec<ExchangeFill>> = BTreeMap::new();
        for t in trades {
            by_order.entry(t.order_id).or_default().push(t);
        }
        for (id, trades) in by_order {
            let qty: Decimal = trades.iter().map(|t| t.qty).sum();
            if qty <= Decimal::ZERO {
                continue;
            }
            let side = trades[0].side;
            let cost: Decimal = trades.iter().map(|t| t.cost).sum();
            let ts = trades.iter().map(|t| t.ts).max().unwrap_or_else(|| trades[0].ts);
            tracing::warn!(
                "order {id} ({} {qty}) filled at Kraken but the run had not stored its fill: stored now",
                side
            );
            let order = Order {
                id,
                ts,
                side,
                qty,
                reason: if side == Side::Buy {
                    OrderReason::Entry
                } else {
                    OrderReason::Exit
                },
            };
            let fill = Fill {
                order_id: id,
                ts,
                side,
                qty,
                price: average_price(cost, qty),
                fee: trades.iter().map(|t| t.fee).sum(),
                cash_after: self.account.cash(),
                position_after: self.account.position(),
                // The books start from Kraken's balances after it: nothing to realize against.
                realized_pnl: Decimal::ZERO,
            };
            self.ready.push((order, fill));
        }
        if !self.ready.is_empty() {
            self.wake.notify_one();
        }
    }

    /// The set of stop orders `cl_ord_id` belongs to.
    fn guarding(&self, cl_ord_id: &str) -> Option<usize> {
        self.protections.iter().position(|p| p.guards(cl_ord_id))
    }

    /// Tells refused orders (and a daily-loss halt) to `alerts` too.
    pub fn with_alerts(mut self, alerts: Option<crate::Alerts>) -> Self {
        self.gate.alerts = alerts;
        self
    }

    /// What paper sizing would trade, with the exchange's available balances, at `price`.
    fn decide(&self, decision: Deferred, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let mut sizing = Account::new(Decimal::ZERO);
        let available = |asset: &str, total: Decimal| self.balances.get(asset).map(|b| b.1).unwrap_or(total);
        sizing.set_holdings(
            available(&self.assets.quote, self.account.cash()),
            available(&self.assets.base, self.account.position()),
        );
        let mut trial = PaperBroker::resume(self.config.clone(), sizing, self.next_order_id);
        match decision {
            Deferred::Follow(change) => trial.follow(change, ts, price),
            Deferred::Exit(reason) => trial.exit(ts, price, reason),
        }
    }

    /// Takes a decision: worked at the exchange now, or after the order that works.
    fn act(&mut self, decision: Deferred, ts: Timestamp, price: Decimal) {
        if self.stopping {
            tracing::info!("the run is stopping: the decision at {ts} is not sent");
            return;
        }
        // The entry a killed process sent is the strategy's last decision; an exit puts it behind.
        if let Some(lost) = self.lost_entry.take()
            && matches!(decision, Deferred::Follow(change) if change > 0)
        {
            tracing::warn!(
                "the entry decided at {ts} was sent before the restart as order {} ({}): not sent again",
                lost.order_id,
                lost.cl_ord_id
            );
            return;
        }
        if !self.protections.is_empty() && decision.exits() {
            // The stop orders hold the position: cancelled first; what the exchange says is
            // left once they have ended is sold then (nothing, when one of them filled).
            self.deferred = Some(decision);
            self.cancel_protection("the strategy exits");
            return;
        }
        if let Some(working) = &self.working {
            tracing::info!(
                "order {} is still working at Kraken: the new decision follows once it is done",
                working.order.id
            );
            self.deferred = Some(decision);
            return;
        }
        let Some((order, fill)) = self.decide(decision, ts, price) else {
            return;
        };
        let volume = fill.qty;
        let exits = if order.side == Side::Buy {
            self.planned.take()
        } else {
            None
        };
        let working = Working {
            order,
            price,
            target: volume,
            filled: Decimal::ZERO,
            cost: Decimal::ZERO,
            fee: Decimal::ZERO,
            last_ts: ts,
            booked: HashSet::new(),
            realized_before: self.account.realized_pnl(),
            leg: None,
            started: Instant::now(),
            reprices: 0,
            exits,
        };
        self.working = Some(working);
        if self.send_leg(ts, price, volume, self.settings.order_kind).is_some() {
            self.next_order_id += 1;
        } else {
            self.working = None;
        }
    }

    /// Sends one exchange order for `volume` of the working order, checked by the rails and
    /// journaled first. `None` when it was not sent (said in one line).
    fn send_leg(&mut self, ts: Timestamp, price: Decimal, volume: Decimal, kind: OrderKind) -> Option<String> {
        if self.stopping {
            return None;
        }
        let working = self.working.as_ref()?;
        let order = working.order.clone();
        let side = order.side;
        let limit_price = match kind {
            OrderKind::Market => None,
            OrderKind::Limit { .. } => Some(self.limit_price(side, price)),
        };
        let probe = Fill {
            order_id: order.id,
            ts,
            side,
            qty: volume,
            price: limit_price.unwrap_or(price),
            fee: Decimal::ZERO,
            cash_after: Decimal::ZERO,
            position_after: Decimal::ZERO,
            realized_pnl: Decimal::ZERO,
        };
        let (position, equity) = (self.account.position(), self.account.equity());
        let mut request = self.gate.admit(
            self.journal.as_ref(),
            self.run_id,
            &order,
            &probe,
            position,
            equity,
            false,
        )?;
        let cancel_after = match kind {
            OrderKind::Market => None,
            OrderKind::Limit { timeout, .. } => {
                request.order_type = OrderType::Limit {
                    price: limit_price.unwrap_or(price),
                    post_only: true,
                };
                Some(timeout.saturating_sub(working.started.elapsed()))
            }
        };
        let cl_ord_id = request.cl_ord_id.clone().unwrap_or_default();
        self.orders.push_front(OrderView {
            cl_ord_id: cl_ord_id.clone(),
            txid: None,
            ts,
            side,
            order_type: if limit_price.is_some() { "limit" } else { "market" }.to_owned(),
            volume: request.volume,
            filled: Decimal::ZERO,
            limit_price,
            state: OrderState::Sending.to_string(),
            detail: None,
        });
        self.orders.truncate(ORDERS_SHOWN);
        let leg = Leg {
            request,
            cancel_after,
            protective: false,
        };
        if self.desk.send(Command::Place(leg)).is_err() {
            self.record(
                &cl_ord_id,
                OrderState::NotPlaced,
                None,
                Some("the exchange task has stopped"),
            );
            return None;
        }
        // Its details (its id was committed ahead) are written with the next commit: the one
        // that records the exchange's answer, moments later. Not here: the desk task may run on
        // this thread once the engine yields, and a commit now would hold the order back.
        if let Some(working) = &mut self.working {
            working.leg = Some(cl_ord_id.clone());
        }
        Some(cl_ord_id)
    }

    /// The best bid (buy) or ask (sell), or `price` before any quote, on the pair's tick, on
    /// the side that rests.
    fn limit_price(&self, side: Side, price: Decimal) -> Decimal {
        let best = match (self.quote, side) {
            (Some((bid, _)), Side::Buy) => bid,
            (Some((_, ask)), Side::Sell) => ask,
            (None, _) => price,
        };
        let Some(tick) = self.gate.rules.tick_size.filter(|t| *t > Decimal::ZERO) else {
            return best;
        };
        let steps = best / tick;
        let steps = match side {
            Side::Buy => steps.floor(),
            Side::Sell => steps.ceil(),
        };
        steps * tick
    }

    fn on_update(&mut self, update: Update) {
        let (cl_ord_id, txid, trades, end, balances) = match update {
            Update::Leg {
                cl_ord_id,
                txid,
                trades,
                end,
                balances,
            } => (cl_ord_id, txid, trades, end, balances),
            Update::Totals(totals) => return self.take_totals(&totals),
        };
        if !trades.is_empty() {
            self.book(&cl_ord_id, &trades);
        }
        match balances {
            Some(balances) => self.take_balances(balances),
            // An order ended without the balances after it (BalanceEx failed, say, on a loaded
            // machine): the last balances are from before its trades, and the next order would
            // be sized on them; the books, which booked its trades, stand in until the
            // exchange's next balances replace them (seen: a sell sized on the balances from
            // before its buy, of nothing).
            None if end.is_some() => {
                let (cash, position) = (self.account.cash(), self.account.position());
                for (asset, total) in [(&self.assets.quote, cash), (&self.assets.base, position)] {
                    if let Some(entry) = self.balances.get_mut(asset) {
                        *entry = (total, total);
                    }
                }
            }
            None => {}
        }
        if let Some(txid) = &txid
            && end.is_none()
        {
            self.record(&cl_ord_id, OrderState::Placed, Some(txid), None);
            if let Some(view) = self.orders.iter_mut().find(|o| o.cl_ord_id == cl_ord_id) {
                view.txid = Some(txid.clone());
                view.state = "open".to_owned();
            }
        }
        if let Some(end) = end {
            self.leg_ended(&cl_ord_id, txid.as_deref(), end);
        }
    }

    /// The WebSocket's balances between orders (a deposit, a withdrawal, a trade made elsewhere)
    /// replace the books' cash and position. While an order works they wait: its end brings
    /// the balances after it, read whole.
    fn take_totals(&mut self, totals: &BTreeMap<String, Decimal>) {
        if self.working.is_some() {
            return;
        }
        let mut changed = false;
        for (ws, rest) in [
            (&self.settings.ws_base, self.assets.base.clone()),
            (&self.settings.ws_quote, self.assets.quote.clone()),
        ] {
            if let Some(total) = totals.get(ws.as_str()) {
                let entry = self.balances.entry(rest).or_insert((Decimal::ZERO, Decimal::ZERO));
                if entry.0 != *total {
                    // Nothing rests between orders: all of it is available.
                    *entry = (*total, *total);
                    changed = true;
                }
            }
        }
        if changed {
            let balances = self.balances.clone();
            self.take_balances(balances);
        }
    }

    /// The exchange's balances replace the books' cash and position: the exchange is the truth.
    fn take_balances(&mut self, balances: Balances) {
        let total = |asset: &str| balances.get(asset).map(|b| b.0).unwrap_or_default();
        let (cash, position) = (total(&self.assets.quote), total(&self.assets.base));
        if cash != self.account.cash() || position != self.account.position() {
            tracing::info!(
                "Kraken's balances ({cash} {}, {position} {}) replace the books' ({}, {})",
                self.assets.quote,
                self.assets.base,
                self.account.cash(),
                self.account.position()
            );
        }
        self.account.set_holdings(cash, position);
        self.balances = balances;
    }

    /// Records the exchange's trades as reported and books them on the account (which the
    /// next balances then replace: the exchange is the truth).
    fn book(&mut self, cl_ord_id: &str, trades: &[LegTrade]) {
        if let Some(at) = self.guarding(cl_ord_id) {
            return self.book_protection(at, cl_ord_id, trades);
        }
        let Some(working) = &mut self.working else {
            // A late report of an order already done: its trades were recorded with it.
            return;
        };
        let fresh: Vec<&LegTrade> = trades
            .iter()
            .filter(|t| working.booked.insert(t.trade_id.clone()))
            .collect();
        let rows: Vec<ExchangeFill> = fresh
            .iter()
            .map(|t| exchange_fill(t, self.run_id, working.order.id, cl_ord_id))
            .collect();
        if let Err(e) = self.journal.record_exchange_fills(&rows) {
            tracing::error!("order {}: its trades could not be recorded: {e}", working.order.id);
        }
        let mut fresh_qty = Decimal::ZERO;
        for t in fresh {
            self.account.book(t.side, t.qty, t.price, t.fee);
            fresh_qty += t.qty;
            working.filled += t.qty;
            working.cost += t.cost;
            working.fee += t.fee;
            working.last_ts = working.last_ts.max(t.ts);
            tracing::info!(
                "Kraken filled {} {} at {} (fee {}), trade {}",
                t.side,
                t.qty,
                t.price,
                t.fee,
                t.trade_id
            );
        }
        if let Some(view) = self.orders.iter_mut().find(|o| o.cl_ord_id == cl_ord_id) {
            view.filled += fresh_qty;
        }
    }

    fn leg_ended(&mut self, cl_ord_id: &str, txid: Option<&str>, end: LegEnd) {
        let (state, detail) = match &end {
            LegEnd::Filled => (OrderState::Closed, None),
            LegEnd::Canceled { reason, .. } => (OrderState::Closed, Some(reason.clone())),
            LegEnd::Rejected(why) => (OrderState::Rejected, Some(why.clone())),
            LegEnd::NotPlaced(why) => (OrderState::NotPlaced, Some(why.clone())),
            LegEnd::Unknown(why) => (OrderState::Unknown, Some(why.clone())),
        };
        self.record(cl_ord_id, state, txid, detail.as_deref());
        if let Some(view) = self.orders.iter_mut().find(|o| o.cl_ord_id == cl_ord_id) {
            view.txid = txid.map(str::to_owned).or(view.txid.take());
            view.state = match &end {
                LegEnd::Filled => "filled".to_owned(),
                LegEnd::Canceled { .. } => "canceled".to_owned(),
                _ => state.to_string(),
            };
            view.detail = detail.clone();
        }
        let guard = self.guarding(cl_ord_id);
        match &end {
            LegEnd::Rejected(why) => {
                tracing::warn!("order {cl_ord_id} refused by Kraken: {why}");
                // A stop order's refusal is told by its set (`guard_ended`): only when nothing
                // of it rests at the exchange.
                if let (Some(alerts), None) = (&self.gate.alerts, guard) {
                    alerts.rejected(cl_ord_id, why);
                }
            }
            LegEnd::NotPlaced(why) | LegEnd::Unknown(why) => tracing::warn!("order {cl_ord_id} {state}: {why}"),
            LegEnd::Filled | LegEnd::Canceled { .. } => {}
        }
        if let Some(at) = guard {
            return self.guard_ended(at, cl_ord_id, &end);
        }
        let Some(working) = &self.working else { return };
        if working.leg.as_deref() != Some(cl_ord_id) {
            return;
        }
        let remaining = working.target - working.filled;
        let min = self.gate.rules.ordermin.unwrap_or_default();
        if let (LegEnd::Canceled { post_only, .. }, OrderKind::Limit { timeout, fallback }, true) = (
            &end,
            self.settings.order_kind,
            remaining > Decimal::ZERO && remaining >= min,
        ) {
            let price = self.account.last_price().unwrap_or(working.price);
            let ts = working.last_ts;
            let in_time = working.started.elapsed() < timeout;
            if *post_only && in_time && working.reprices < REPRICES {
                tracing::info!("post-only order {cl_ord_id} would have taken: re-priced at the best price");
                if let Some(working) = &mut self.working {
                    working.reprices += 1;
                }
                if self.send_leg(ts, price, remaining, self.settings.order_kind).is_some() {
                    return;
                }
            } else if fallback == LimitFallback::Market {
                tracing::info!("limit order {cl_ord_id} not filled in its time: the rest ({remaining}) at market");
                if self.send_leg(ts, price, remaining, OrderKind::Market).is_some() {
                    return;
                }
            } else {
                tracing::info!("limit order {cl_ord_id} not filled in its time: the rest ({remaining}) given up");
            }
        }
        self.order_done();
    }

    /// The working order is done: its fill (the exchange's trades together) for the run, and
    /// the decision that waited for it.
    fn order_done(&mut self) {
        let Some(working) = self.working.take() else { return };
        if working.filled > Decimal::ZERO {
            let order = Order {
                qty: working.filled,
                ..working.order
            };
            let fill = Fill {
                order_id: order.id,
                ts: working.last_ts,
                side: order.side,
                qty: working.filled,
                price: average_price(working.cost, working.filled),
                fee: working.fee,
                cash_after: self.account.cash(),
                position_after: self.account.position(),
                realized_pnl: self.account.realized_pnl() - working.realized_before,
            };
            self.ready.push((order, fill));
        }
        let exiting = self.deferred.is_some_and(Deferred::exits);
        if working.order.side == Side::Buy
            && working.filled > Decimal::ZERO
            && self.settings.stops_on_exchange
            && !exiting
            && let Some(plan) = working.exits
        {
            self.protect(plan, working.filled, working.last_ts, working.price);
        }
        // Signals alternate, so the latest decision says where the run wants to be: long after
        // an entry, flat after an exit. Already there once this order is done: nothing to send.
        if let Some(decision) = self.deferred.take()
            && let Some(price) = self.account.last_price()
        {
            let wants_long = matches!(decision, Deferred::Follow(change) if change > 0);
            if wants_long != (working.order.side == Side::Buy) {
                self.act(decision, working.last_ts, price);
            }
        }
    }

    /// Places the exits of the entry that just filled `volume` at Kraken (`--stops exchange`):
    /// a stop-loss, a trailing stop and a take-profit, each for the whole volume, each checked
    /// by the rails and journaled with a client id of its own before it leaves. Together they
    /// are the run's exit order. One Kraken refuses (it holds the volume of every open sell
    /// order, so a second one for the same volume may be refused) is still watched by the bot.
    fn protect(&mut self, plan: ExitPlan, volume: Decimal, ts: Timestamp, price: Decimal) {
        let order = Order {
            id: self.next_order_id,
            ts,
            side: Side::Sell,
            qty: volume,
            reason: OrderReason::Exit,
        };
        let mut protection = Protection::new(order.clone(), self.account.realized_pnl());
        let tick = |p: Decimal| match self.gate.rules.tick_size.filter(|t| *t > Decimal::ZERO) {
            Some(tick) => (p / tick).round() * tick,
            None => p,
        };
        let mut legs = Vec::new();
        if let Some(stop) = plan.stop_loss {
            legs.push((
                "stop-loss",
                OrderType::StopLoss { trigger: tick(stop) },
                Some(tick(stop)),
            ));
        }
        if let Some(trailing) = plan.trailing {
            let offset = match trailing {
                TrailDistance::Percent(p) => TrailOffset::Percent(p.normalize()),
                TrailDistance::Amount(a) => {
                    TrailOffset::Price(tick(a).max(self.gate.rules.tick_size.unwrap_or_default()))
                }
            };
            legs.push(("trailing-stop", OrderType::TrailingStop { offset }, None));
        }
        if let Some(take) = plan.take_profit {
            legs.push((
                "take-profit",
                OrderType::TakeProfit { trigger: tick(take) },
                Some(tick(take)),
            ));
        }
        for (kind, order_type, trigger) in legs {
            let probe = Fill {
                order_id: order.id,
                ts,
                side: Side::Sell,
                qty: volume,
                price: trigger.unwrap_or(price),
                fee: Decimal::ZERO,
                cash_after: Decimal::ZERO,
                position_after: Decimal::ZERO,
                realized_pnl: Decimal::ZERO,
            };
            let (position, equity) = (self.account.position(), self.account.equity());
            let Some(mut request) = self.gate.admit(
                self.journal.as_ref(),
                self.run_id,
                &order,
                &probe,
                position,
                equity,
                false,
            ) else {
                tracing::warn!("{kind} not placed at Kraken: the bot watches it");
                continue;
            };
            request.order_type = order_type;
            let cl_ord_id = request.cl_ord_id.clone().unwrap_or_default();
            let detail = match order_type {
                OrderType::TrailingStop { offset } => Some(format!("trailing {offset}")),
                _ => None,
            };
            self.orders.push_front(OrderView {
                cl_ord_id: cl_ord_id.clone(),
                txid: None,
                ts,
                side: Side::Sell,
                order_type: kind.to_owned(),
                volume: request.volume,
                filled: Decimal::ZERO,
                limit_price: trigger,
                state: OrderState::Sending.to_string(),
                detail,
            });
            self.orders.truncate(ORDERS_SHOWN);
            let leg = Leg {
                request,
                cancel_after: None,
                protective: true,
            };
            if self.desk.send(Command::Place(leg)).is_err() {
                self.record(
                    &cl_ord_id,
                    OrderState::NotPlaced,
                    None,
                    Some("the exchange task has stopped"),
                );
                continue;
            }
            tracing::info!("{kind} for {volume} sent to Kraken ({cl_ord_id})");
            protection.guards.push(Guard {
                cl_ord_id,
                kind,
                ended: false,
            });
        }
        if !protection.guards.is_empty() {
            self.next_order_id += 1;
            self.protections.push(protection);
        }
    }

    /// Cancels every stop order still open (once each), saying why.
    fn cancel_protection(&mut self, why: &str) {
        for protection in self.protections.iter_mut().filter(|p| !p.cancelling) {
            protection.cancelling = true;
            for guard in protection.guards.iter().filter(|g| !g.ended) {
                tracing::info!("{} {}: cancelled ({why})", guard.kind, guard.cl_ord_id);
                let _ = self.desk.send(Command::Cancel {
                    cl_ord_id: guard.cl_ord_id.clone(),
                });
            }
        }
    }

    /// A guard's trades: recorded as reported, booked, and the other guards cancelled (one
    /// exit is enough).
    fn book_protection(&mut self, at: usize, cl_ord_id: &str, trades: &[LegTrade]) {
        let protection = &mut self.protections[at];
        let fresh: Vec<&LegTrade> = trades
            .iter()
            .filter(|t| protection.booked.insert(t.trade_id.clone()))
            .collect();
        if fresh.is_empty() {
            return;
        }
        let rows: Vec<ExchangeFill> = fresh
            .iter()
            .map(|t| exchange_fill(t, self.run_id, protection.order.id, cl_ord_id))
            .collect();
        if let Err(e) = self.journal.record_exchange_fills(&rows) {
            tracing::error!("order {}: its trades could not be recorded: {e}", protection.order.id);
        }
        let kind = protection
            .guards
            .iter()
            .find(|g| g.cl_ord_id == cl_ord_id)
            .map_or("stop", |g| g.kind);
        let mut fresh_qty = Decimal::ZERO;
        for t in fresh {
            self.account.book(t.side, t.qty, t.price, t.fee);
            fresh_qty += t.qty;
            protection.filled += t.qty;
            protection.cost += t.cost;
            protection.fee += t.fee;
            protection.last_ts = protection.last_ts.max(t.ts);
            tracing::info!(
                "Kraken's {kind} filled {} {} at {} (fee {}), trade {}",
                t.side,
                t.qty,
                t.price,
                t.fee,
                t.trade_id
            );
        }
        if let Some(view) = self.orders.iter_mut().find(|o| o.cl_ord_id == cl_ord_id) {
            view.filled += fresh_qty;
        }
        // The others are cancelled, not the one filling (a triggered stop fills in parts).
        if !protection.cancelling {
            protection.cancelling = true;
            for guard in protection
                .guards
                .iter()
                .filter(|g| !g.ended && g.cl_ord_id != cl_ord_id)
            {
                tracing::info!("{} {}: cancelled (the {kind} filled)", guard.kind, guard.cl_ord_id);
                let _ = self.desk.send(Command::Cancel {
                    cl_ord_id: guard.cl_ord_id.clone(),
                });
            }
        }
    }

    /// A guard ended; once all of its set have, the exit they made (if any filled) is the
    /// run's; once no set is left, a decision that waited for them is taken against the
    /// balances the exchange reports.
    fn guard_ended(&mut self, at: usize, cl_ord_id: &str, end: &LegEnd) {
        let protection = &mut self.protections[at];
        if let Some(guard) = protection.guards.iter_mut().find(|g| g.cl_ord_id == cl_ord_id) {
            guard.ended = true;
            if let LegEnd::Rejected(why) | LegEnd::NotPlaced(why) = end {
                tracing::warn!("{} not placed at Kraken ({why}): the bot watches it", guard.kind);
                // Alerted when nothing of its set guards the position at the exchange (a
                // take-profit refused beside a resting stop-loss is the usual case, not news).
                let unguarded = protection.filled.is_zero() && protection.guards.iter().all(|g| g.ended);
                if let (LegEnd::Rejected(why), Some(alerts), true) = (end, &self.gate.alerts, unguarded) {
                    alerts.rejected(cl_ord_id, why);
                }
            }
        }
        if protection.guards.iter().any(|g| !g.ended) {
            return;
        }
        let protection = self.protections.remove(at);
        if protection.filled > Decimal::ZERO {
            let order = Order {
                qty: protection.filled,
                ..protection.order
            };
            let fill = Fill {
                order_id: order.id,
                ts: protection.last_ts,
                side: Side::Sell,
                qty: protection.filled,
                price: average_price(protection.cost, protection.filled),
                fee: protection.fee,
                cash_after: self.account.cash(),
                position_after: self.account.position(),
                realized_pnl: self.account.realized_pnl() - protection.realized_before,
            };
            self.ready.push((order, fill));
        }
        if self.protections.is_empty()
            && let Some(decision) = self.deferred.take()
            && let Some(price) = self.account.last_price()
        {
            self.act(decision, protection.last_ts, price);
        }
    }

    fn record(&self, cl_ord_id: &str, state: OrderState, txid: Option<&str>, detail: Option<&str>) {
        if let Err(e) = self.journal.set_order_state(cl_ord_id, state, txid, detail) {
            tracing::error!("order {cl_ord_id} is {state}, but the journal could not say so: {e}");
        }
    }

    /// Whether an order is being worked at the exchange (or a decision waits for one).
    #[cfg(test)]
    pub(crate) fn is_working(&self) -> bool {
        self.working.is_some() || self.deferred.is_some()
    }

    fn cancel_working_entry(&mut self) {
        if let Some(working) = &self.working
            && working.order.side == Side::Buy
            && let Some(leg) = &working.leg
        {
            let _ = self.desk.send(Command::Cancel { cl_ord_id: leg.clone() });
        }
    }
}

impl LiveBroker {
    /// The run is ending: the desk is told to stop (cancelling what rests with
    /// `--cancel-on-exit`) and to say so on `done`; false when the desk is gone already.
    fn stop_begin(&mut self, done: StopDone) -> bool {
        self.stopping = true;
        self.deferred = None;
        let cancel = self.settings.cancel_on_exit;
        self.desk.send(Command::Stop { cancel, done }).is_ok()
    }

    /// After the desk's stop: its last updates taken in.
    fn stop_end(&mut self) {
        while let Ok(update) = self.updates.try_recv() {
            self.on_update(update);
        }
        if self.working.is_some() {
            // Its trades so far are the run's; the journal keeps what is still open.
            self.order_done();
        }
    }
}

impl Broker for LiveBroker {
    fn mark(&mut self, price: Decimal) {
        self.account.mark(price);
        if self.working.is_some() && self.gate.halted_now(self.account.equity()) {
            // A breached daily loss cancels a resting entry too.
            self.cancel_working_entry();
        }
    }

    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        self.act(Deferred::Follow(change), ts, price);
        None
    }

    fn plan_exits(&mut self, plan: ExitPlan) {
        self.planned = Some(plan);
    }

    fn guard_position(&mut self, plan: ExitPlan, ts: Timestamp, price: Decimal) {
        if !self.settings.stops_on_exchange || !self.protections.is_empty() || self.working.is_some() {
            return;
        }
        let available = self
            .balances
            .get(&self.assets.base)
            .map_or(self.account.position(), |b| b.1)
            .round_dp_with_strategy(self.gate.rules.lot_decimals, RoundingStrategy::ToZero);
        if available <= Decimal::ZERO {
            return;
        }
        tracing::warn!("the position ({available}) has no stop order at Kraken: its exits are placed now");
        self.protect(plan, available, ts, price);
    }

    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        self.act(Deferred::Exit(reason), ts, price);
        None
    }

    fn account(&self) -> &Account {
        &self.account
    }

    fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    fn poll(&mut self) -> Vec<(Order, Fill)> {
        while let Ok(update) = self.updates.try_recv() {
            self.on_update(update);
        }
        std::mem::take(&mut self.ready)
    }

    fn updates(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.wake))
    }

    fn quote(&mut self, bid: Decimal, ask: Decimal) {
        if bid > Decimal::ZERO && ask >= bid {
            self.quote = Some((bid, ask));
        }
    }

    fn resume(&mut self) {
        if self.gate.resume(self.account.equity()) {
            tracing::info!("risk halt lifted by a person: the day's loss is counted from now");
        }
    }

    fn stop(&mut self) {
        let (done, finished) = std_mpsc::sync_channel(1);
        if self.stop_begin(StopDone::Wait(done)) {
            // The engine's thread waits (once, at the end of the run); the desk runs meanwhile
            // on another thread (a runtime's worker). Where the desk shares the engine's thread
            // (a current-thread runtime) the engine awaits `stop_async` instead.
            let wait = || finished.recv_timeout(STOP_WITHIN);
            let waited = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
                _ => wait(),
            };
            if waited.is_err() {
                tracing::warn!("Kraken did not confirm every open order's end in time; the next start follows them");
            }
        }
        self.stop_end();
    }

    fn stop_async(&mut self) -> nanotrader_broker::BrokerFuture<'_, ()> {
        Box::pin(async move {
            let (done, finished) = tokio::sync::oneshot::channel();
            if self.stop_begin(StopDone::Await(done))
                && !matches!(tokio::time::timeout(STOP_WITHIN, finished).await, Ok(Ok(())))
            {
                tracing::warn!("Kraken did not confirm every open order's end in time; the next start follows them");
            }
            self.stop_end();
        })
    }

    fn venue(&self) -> Option<VenueView> {
        Some(VenueView {
            broker: "kraken".to_owned(),
            live: true,
            balances: self
                .balances
                .iter()
                .map(|(asset, (total, _))| (asset.clone(), *total))
                .collect(),
            orders: self.orders.iter().cloned().collect(),
            halted: self.gate.halt_reason(),
            stops: (!self.settings.stop_rule.is_empty()).then(|| self.settings.stop_rule.clone()),
        })
    }
}

/// One of the exchange's trades of the run's order `order_id`, as the exchange reported it.
/// A run fill's price: the average of the exchange's prices of its trades (`cost` over `qty`,
/// `qty` > 0), to 10 decimals, as Kraken reports an order's.
fn average_price(cost: Decimal, qty: Decimal) -> Decimal {
    (cost / qty).round_dp_with_strategy(10, RoundingStrategy::MidpointNearestEven)
}

fn exchange_fill(t: &LegTrade, run_id: i64, order_id: u64, cl_ord_id: &str) -> ExchangeFill {
    ExchangeFill {
        trade_id: t.trade_id.clone(),
        run_id,
        order_id,
        cl_ord_id: cl_ord_id.to_owned(),
        txid: t.txid.clone(),
        ts: t.ts,
        side: t.side,
        qty: t.qty,
        price: t.price,
        cost: t.cost,
        fee: t.fee,
    }
}

/// Kraken's balances (total, available) by asset; a read, so a passing failure (unavailable,
/// busy, throttled, a network error) is asked again a few times, a second apart.
pub(crate) async fn balances_ex(client: &PrivateClient) -> Result<Balances, nanotrader_kraken::private::PrivateError> {
    let mut attempt = 0;
    loop {
        match client.balance_ex().await {
            Ok(balances) => {
                return Ok(balances
                    .into_iter()
                    .map(|(asset, b)| (asset, (b.balance, b.available())))
                    .collect());
            }
            Err(e) if e.is_retryable() && attempt < BALANCE_ATTEMPTS => {
                attempt += 1;
                tracing::debug!("Kraken BalanceEx: {e}; asking again");
                tokio::time::sleep(LOOKUP_EVERY * 2).await;
            }
            Err(e) => return Err(e),
        }
    }
}

pub(crate) enum Found {
    Placed(String),
    Absent,
    Unknown(String),
}

/// The order with client id `cl_ord_id`: in open orders, then closed orders, asked again a few
/// times; absent only when every list answered and none had it, `ABSENT_PROOFS` times in a row.
pub(crate) async fn find(client: &PrivateClient, cl_ord_id: &str) -> Found {
    let mut absent = 0;
    let mut last_error = String::new();
    for _ in 0..LOOKUPS {
        let open = client.open_orders(Some(cl_ord_id), false).await;
        let closed = client.closed_orders(None, Some(cl_ord_id), None).await;
        match (open, closed) {
            (Ok(open), Ok(closed)) => {
                let mut found = open
                    .iter()
                    .chain(closed.orders.iter())
                    .filter(|o| o.cl_ord_id.as_deref() == Some(cl_ord_id));
                if let Some(order) = found.next() {
                    return Found::Placed(order.txid.clone());
                }
                absent += 1;
                if absent >= ABSENT_PROOFS {
                    return Found::Absent;
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                absent = 0;
                last_error = e.to_string();
            }
        }
        tokio::time::sleep(LOOKUP_EVERY).await;
    }
    Found::Unknown(last_error)
}

/// A stop order an earlier process of the run left guarding the position, found open at start.
pub(crate) struct Adopted {
    sent: SentOrder,
    txid: String,
    /// `stop-loss`, `take-profit` or `trailing-stop`.
    kind: &'static str,
    trigger: Option<Decimal>,
}

/// What a start's reconciliation leaves the broker: the stop orders to follow again, and the
/// trades of stop orders that filled while the bot was down (recorded; the run's exit fills).
#[derive(Default)]
pub(crate) struct Reconciled {
    adopted: Vec<Adopted>,
}

/// What a killed process left the run without, once the journal is reconciled: the last entry
/// it sent after the run's last stored step (its decision is taken again on the replayed bars
/// and must not be sent twice), and the exchange's trades of closed orders whose run fill was
/// never stored (stop orders adopted and still open are followed instead).
fn lost_with_the_process(
    journal: &dyn OrderJournal,
    run_id: i64,
    stored: &RunOrders,
    reconciled: &Reconciled,
) -> (Option<LostEntry>, Vec<ExchangeFill>) {
    let sent = journal.sent_orders(run_id).unwrap_or_default();
    let lost_entry = sent
        .iter()
        .filter(|o| {
            !o.validate
                && o.side == Side::Buy
                && o.order_id >= stored.next_order_id
                && !matches!(o.state, OrderState::NotPlaced | OrderState::Rejected)
        })
        .max_by_key(|o| o.order_id)
        .map(|o| LostEntry {
            order_id: o.order_id,
            cl_ord_id: o.cl_ord_id.clone(),
        });
    if let Some(lost) = &lost_entry {
        tracing::warn!(
            "order {} ({}) was sent after the run last stored its state: the same entry is not sent again",
            lost.order_id,
            lost.cl_ord_id
        );
    }
    let adopted: HashSet<u64> = reconciled.adopted.iter().map(|a| a.sent.order_id).collect();
    let closed: HashSet<u64> = sent
        .iter()
        .filter(|o| !o.validate && o.state == OrderState::Closed)
        .map(|o| o.order_id)
        .collect();
    let unbooked = journal
        .exchange_fills(run_id)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| {
            closed.contains(&f.order_id) && !stored.booked.contains(&f.order_id) && !adopted.contains(&f.order_id)
        })
        .collect();
    (lost_entry, unbooked)
}

/// The order types that wait for a trigger: stop orders guarding a position.
fn guard_kind(ordertype: &str) -> Option<&'static str> {
    ["stop-loss", "take-profit", "trailing-stop"]
        .into_iter()
        .find(|k| *k == ordertype)
}

/// At start, before anything new is sent: every journaled order whose outcome was never
/// learned is looked up by its client id, and every order the journal left open is read; an
/// order still resting is cancelled (the run that placed it stopped) unless it is a stop order
/// guarding the position and `adopt_stops` (`--stops exchange`): those are returned, to be
/// followed again; the trades of each are recorded; an order proven absent is marked not
/// placed. A stop order that filled while the bot was down has its trades recorded like any
/// other, and its open siblings (the other exits of the same entry) are cancelled. Each
/// difference is logged once; the exchange's record wins.
async fn reconcile(
    client: &PrivateClient,
    journal: &mut dyn OrderJournal,
    run_id: i64,
    adopt_stops: bool,
) -> Reconciled {
    let mut adopted = Vec::new();
    let mut filled_guards = HashSet::new();
    let Ok(orders) = journal.sent_orders(run_id) else {
        return Reconciled::default();
    };
    for sent in orders
        .into_iter()
        .filter(|o| !o.validate && matches!(o.state, OrderState::Sending | OrderState::Unknown | OrderState::Placed))
    {
        let txid = match (&sent.txid, sent.state) {
            (Some(txid), OrderState::Placed) => txid.clone(),
            _ => match find(client, &sent.cl_ord_id).await {
                Found::Placed(txid) => {
                    tracing::warn!(
                        "order {} ({}) was placed at Kraken as {txid} though this run never learned it; its trades are recorded and Kraken's balances taken",
                        sent.order_id,
                        sent.cl_ord_id
                    );
                    txid
                }
                Found::Absent => {
                    tracing::warn!(
                        "order {} ({}) never reached Kraken: marked not placed",
                        sent.order_id,
                        sent.cl_ord_id
                    );
                    let _ = journal.set_order_state(
                        &sent.cl_ord_id,
                        OrderState::NotPlaced,
                        None,
                        Some("reconciled at start"),
                    );
                    continue;
                }
                Found::Unknown(why) => {
                    tracing::warn!(
                        "order {} ({}) could not be looked up ({why}); still unknown",
                        sent.order_id,
                        sent.cl_ord_id
                    );
                    continue;
                }
            },
        };
        let Some(order) = settle(client, &txid, adopt_stops).await else {
            tracing::warn!("order {txid} could not be read at start; followed at the next start");
            let _ = journal.set_order_state(
                &sent.cl_ord_id,
                OrderState::Placed,
                Some(&txid),
                Some("reconciled at start"),
            );
            continue;
        };
        let since = order.opened.map(|t| t.secs() - 1);
        if let Ok(trades) = client.trades_history_all(since, None).await {
            let fills: Vec<ExchangeFill> = trades
                .iter()
                .filter(|t| t.ordertxid == txid)
                .map(|t| exchange_fill(&LegTrade::from_rest(t), run_id, sent.order_id, &sent.cl_ord_id))
                .collect();
            let _ = journal.record_exchange_fills(&fills);
        }
        let done = matches!(
            order.status,
            OrderStatus::Closed | OrderStatus::Canceled | OrderStatus::Expired
        );
        let state = if done { OrderState::Closed } else { OrderState::Placed };
        let _ = journal.set_order_state(&sent.cl_ord_id, state, Some(&txid), Some("reconciled at start"));
        if let Some(kind) = guard_kind(&order.descr.ordertype) {
            if done && order.volume_executed > Decimal::ZERO {
                tracing::warn!(
                    "{kind} order {txid} ({}) filled at Kraken while the bot was down: its trades are recorded and Kraken's balances taken",
                    sent.cl_ord_id
                );
                filled_guards.insert(sent.order_id);
            } else if !done {
                let trigger = (kind != "trailing-stop").then_some(order.descr.price);
                adopted.push(Adopted {
                    sent,
                    txid,
                    kind,
                    trigger,
                });
            }
        }
    }
    // One exit of an entry filled: the others it left are cancelled, not adopted.
    let (siblings, adopted): (Vec<Adopted>, Vec<Adopted>) = adopted
        .into_iter()
        .partition(|a| filled_guards.contains(&a.sent.order_id));
    for sibling in siblings {
        tracing::warn!(
            "{} order {} is left from an exit that filled: cancelled",
            sibling.kind,
            sibling.txid
        );
        let order = settle(client, &sibling.txid, false).await;
        let closed = order.is_some_and(|o| o.status != OrderStatus::Open);
        if closed {
            let _ = journal.set_order_state(
                &sibling.sent.cl_ord_id,
                OrderState::Closed,
                Some(&sibling.txid),
                Some("cancelled at start: another exit filled"),
            );
        }
    }
    Reconciled { adopted }
}

/// The order `txid` closed: an order still open is cancelled (its run stopped) and read again
/// until the exchange says it is closed, for a bounded time; `None` when it cannot be read. A
/// stop order guarding the position is returned open when `keep_stops`.
async fn settle(client: &PrivateClient, txid: &str, keep_stops: bool) -> Option<nanotrader_kraken::private::Order> {
    let mut last = None;
    let mut cancelled = false;
    for _ in 0..LOOKUPS {
        if let Ok(mut orders) = client.query_orders(&[txid]).await
            && let Some(order) = orders.pop()
        {
            let done = matches!(
                order.status,
                OrderStatus::Closed | OrderStatus::Canceled | OrderStatus::Expired
            );
            if done || (keep_stops && guard_kind(&order.descr.ordertype).is_some()) {
                return Some(order);
            }
            // A market order closes by itself within moments; a resting one is cancelled.
            if !cancelled && order.descr.ordertype != "market" {
                tracing::warn!("order {txid} still rests at Kraken from a run that stopped: cancelled");
                let _ = client
                    .cancel_order(nanotrader_kraken::private::OrderRef::Txid(txid.to_owned()))
                    .await;
                cancelled = true;
            }
            last = Some(order);
        }
        tokio::time::sleep(LOOKUP_EVERY).await;
    }
    last
}
