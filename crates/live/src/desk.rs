//! The exchange desk: the task that carries a live broker's orders to Kraken and follows them.
//!
//! Each order leg is sent once. Its trades come from the authenticated WebSocket's `executions`
//! channel as they happen; REST (QueryOrders, TradesHistory) fills any gap: a leg the feed has
//! not finished, a feed that is down, a snapshot after a reconnect. When a leg ends its
//! trades are complete (the sum of the trades equals the exchange's executed volume) and the
//! balances are read. Everything learned goes back to the broker on the engine's side, which
//! journals it and books it; the desk itself writes nothing.
//!
//! While a limit leg rests, the dead man's switch (CancelAllOrdersAfter) is armed and refreshed,
//! so orders do not outlive a bot that died.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use nanotrader_kraken::private::{
    AddOrderOutcome, ExecOrderStatus, ExecType, ExecutionReport, OrderRef, OrderRequest, OrderStatus, OrderType,
    PrivateClient, PrivateEvent, PrivateFeed, PrivateWsConfig, Trade,
};
use nanotrader_market::{Side, Timestamp};

/// The dead man's switch: orders are cancelled this long after the last refresh...
const DEAD_MAN_TIMEOUT_SECS: u32 = 60;
/// ...which comes this often while a limit order rests.
const DEAD_MAN_REFRESH: Duration = Duration::from_secs(20);
/// The switch is disarmed this long after the last limit order ended.
const DEAD_MAN_IDLE: Duration = Duration::from_secs(2);
/// How often the desk looks at its legs.
const TICK: Duration = Duration::from_millis(250);
/// A leg is asked about over REST when the feed has said nothing of it for this long (the feed
/// is up), or this often while the feed is down (kept under the starter tier's API counter).
const REST_CHECK_FEED_UP: Duration = Duration::from_secs(10);
const REST_CHECK_FEED_DOWN: Duration = Duration::from_secs(3);
/// How long a stop waits for its cancelled legs to end.
const STOP_WITHIN: Duration = Duration::from_secs(15);

/// An order leg to send: one exchange order of a run's order.
#[derive(Debug)]
pub(crate) struct Leg {
    pub request: OrderRequest,
    /// A resting limit leg is cancelled after this long.
    pub cancel_after: Option<Duration>,
    /// A stop-loss, take-profit or trailing stop guarding the position (`--stops exchange`):
    /// it outlives the run (a stop neither cancels it nor waits for it).
    pub protective: bool,
}

pub(crate) enum Command {
    Place(Leg),
    Cancel {
        cl_ord_id: String,
    },
    /// Follows an order an earlier process placed and left resting (a stop adopted at start).
    Adopt {
        cl_ord_id: String,
        txid: String,
    },
    /// Cancels every open leg (when `cancel`), learns their last trades, then answers.
    Stop {
        cancel: bool,
        done: StopDone,
    },
}

/// Where the desk says its stop is done: a thread that waits (the engine on a runtime of its
/// own) or a task that awaits (the engine on the desk's own thread, which must not block).
pub(crate) enum StopDone {
    Wait(std_mpsc::SyncSender<()>),
    Await(tokio::sync::oneshot::Sender<()>),
}

impl StopDone {
    fn send(self) {
        match self {
            StopDone::Wait(done) => {
                let _ = done.send(());
            }
            StopDone::Await(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// How a leg ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LegEnd {
    /// Filled in full.
    Filled,
    /// Cancelled (by us, by the exchange, or a post-only order that would have taken) or
    /// expired; its trades so far stand.
    Canceled {
        reason: String,
        post_only: bool,
    },
    Rejected(String),
    /// Proven never placed.
    NotPlaced(String),
    /// Placed or not could not be learned: the next start looks it up.
    Unknown(String),
}

/// One of the exchange's trades of a leg, as it reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LegTrade {
    pub trade_id: String,
    pub txid: String,
    pub ts: Timestamp,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub cost: Decimal,
    pub fee: Decimal,
}

impl LegTrade {
    pub(crate) fn from_rest(t: &Trade) -> Self {
        Self {
            trade_id: t.txid.clone(),
            txid: t.ordertxid.clone(),
            ts: t.time,
            side: t.side,
            qty: t.volume,
            price: t.price,
            cost: t.cost,
            fee: t.fee,
        }
    }
}

/// What the desk learned; the broker journals and books it.
#[derive(Debug)]
pub(crate) enum Update {
    Leg {
        cl_ord_id: String,
        /// The exchange's order id, once known.
        txid: Option<String>,
        trades: Vec<LegTrade>,
        end: Option<LegEnd>,
        /// Read once the leg ended: the account after its trades.
        balances: Option<Balances>,
    },
    /// The authenticated WebSocket's `balances`: each asset's total, by its WebSocket name
    /// (`BTC`, `USD`), as it changed (deposits, withdrawals, trades).
    Totals(BTreeMap<String, Decimal>),
}

/// The exchange's balances by asset: (total, available).
pub(crate) type Balances = BTreeMap<String, (Decimal, Decimal)>;

struct Tracked {
    cl_ord_id: String,
    txid: String,
    limit: bool,
    seen: HashSet<String>,
    executed: Decimal,
    opened: Option<Timestamp>,
    placed: Instant,
    cancel_after: Option<Duration>,
    cancel_sent: bool,
    protective: bool,
    /// When the exchange (or we) last said something about it.
    heard: Instant,
    /// The feed said it ended; REST confirms its trades.
    ended: Option<(ExecOrderStatus, Option<String>, Option<Decimal>)>,
}

/// Reports kept for orders not known yet: Kraken may tell of an order (even fill it) on the
/// feed before AddOrder's answer arrives.
const EARLY_MAX: usize = 256;

pub(crate) struct Desk {
    client: Arc<PrivateClient>,
    early: HashMap<String, Vec<ExecutionReport>>,
    /// The quote asset as the WebSocket names it (fees are reported per asset).
    ws_quote: String,
    legs: HashMap<String, Tracked>,
    out: std_mpsc::Sender<Update>,
    wake: Arc<Notify>,
    feed_up: bool,
    dead_man_armed: bool,
    dead_man_refreshed: Option<Instant>,
    last_limit_end: Option<Instant>,
    /// When the last BalanceEx read that went to the broker started.
    balances_read_at: Option<std::time::Instant>,
}

impl Desk {
    pub(crate) fn new(
        client: Arc<PrivateClient>,
        ws_quote: String,
        out: std_mpsc::Sender<Update>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            client,
            early: HashMap::new(),
            ws_quote,
            legs: HashMap::new(),
            out,
            wake,
            feed_up: false,
            dead_man_armed: false,
            dead_man_refreshed: None,
            last_limit_end: None,
            balances_read_at: None,
        }
    }

    /// Runs until the broker goes away; `ws_auth_url` `None` works on REST alone.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, ws_auth_url: Option<String>) {
        let mut feed = ws_auth_url.map(|url| PrivateFeed::spawn(Arc::clone(&self.client), PrivateWsConfig::new(&url)));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Place(leg)) => self.place(leg).await,
                    Some(Command::Cancel { cl_ord_id }) => self.cancel(&cl_ord_id).await,
                    Some(Command::Adopt { cl_ord_id, txid }) => self.adopt(cl_ord_id, txid).await,
                    Some(Command::Stop { cancel, done }) => {
                        self.stop(cancel).await;
                        done.send();
                    }
                    None => break,
                },
                event = next_event(&mut feed) => match event {
                    Some(event) => self.on_feed(event).await,
                    None => {
                        tracing::warn!("Kraken's private feed stopped: orders are followed over REST");
                        feed = None;
                        self.feed_up = false;
                    }
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
        self.arm_dead_man(false).await;
    }

    fn send(&self, update: Update) {
        if self.out.send(update).is_ok() {
            self.wake.notify_one();
        }
    }

    fn send_leg(&self, cl_ord_id: &str, txid: Option<String>, trades: Vec<LegTrade>, end: Option<LegEnd>) {
        self.send(Update::Leg {
            cl_ord_id: cl_ord_id.to_owned(),
            txid,
            trades,
            end,
            balances: None,
        });
    }

    async fn place(&mut self, leg: Leg) {
        let cl_ord_id = leg.request.cl_ord_id.clone().unwrap_or_default();
        let limit = matches!(leg.request.order_type, OrderType::Limit { .. });
        let txid = match self.client.add_order(&leg.request).await {
            AddOrderOutcome::Accepted(added) => added.txids.first().cloned(),
            AddOrderOutcome::Rejected(e) => {
                return self.send_leg(&cl_ord_id, None, Vec::new(), Some(LegEnd::Rejected(e.to_string())));
            }
            AddOrderOutcome::NotSent(e) => {
                let end = LegEnd::NotPlaced(format!("not sent: {e}"));
                return self.send_leg(&cl_ord_id, None, Vec::new(), Some(end));
            }
            AddOrderOutcome::Unknown(e) => {
                tracing::warn!("order {cl_ord_id}: the answer was lost ({e}); looking it up by its client id");
                match crate::real::find(&self.client, &cl_ord_id).await {
                    crate::real::Found::Placed(txid) => Some(txid),
                    crate::real::Found::Absent => {
                        let end = LegEnd::NotPlaced(format!("answer lost ({e}); proven absent at the exchange"));
                        return self.send_leg(&cl_ord_id, None, Vec::new(), Some(end));
                    }
                    crate::real::Found::Unknown(why) => {
                        let end = LegEnd::Unknown(format!("answer lost ({e}); lookups failed: {why}"));
                        return self.send_leg(&cl_ord_id, None, Vec::new(), Some(end));
                    }
                }
            }
        };
        let Some(txid) = txid else {
            let end = LegEnd::Unknown("accepted without an order id".into());
            return self.send_leg(&cl_ord_id, None, Vec::new(), Some(end));
        };
        self.send_leg(&cl_ord_id, Some(txid.clone()), Vec::new(), None);
        let now = Instant::now();
        self.legs.insert(
            txid.clone(),
            Tracked {
                cl_ord_id,
                txid: txid.clone(),
                limit,
                seen: HashSet::new(),
                executed: Decimal::ZERO,
                opened: None,
                placed: now,
                cancel_after: leg.cancel_after,
                cancel_sent: false,
                protective: leg.protective,
                heard: now,
                ended: None,
            },
        );
        if let Some(reports) = self.early.remove(&txid) {
            for report in &reports {
                self.on_execution(report);
            }
            if self.legs.get(&txid).is_some_and(|l| l.ended.is_some()) {
                self.finish_if_complete(&txid).await;
            }
        }
        self.early.clear();
        if limit && self.legs.contains_key(&txid) && !self.dead_man_armed {
            self.arm_dead_man(true).await;
        }
    }

    /// Follows a resting order placed before this process: its state and any trades are read
    /// at once, then as any other leg's.
    async fn adopt(&mut self, cl_ord_id: String, txid: String) {
        let now = Instant::now();
        self.legs.insert(
            txid.clone(),
            Tracked {
                cl_ord_id,
                txid: txid.clone(),
                limit: false,
                seen: HashSet::new(),
                executed: Decimal::ZERO,
                opened: None,
                placed: now,
                cancel_after: None,
                cancel_sent: false,
                protective: true,
                heard: now,
                ended: None,
            },
        );
        self.check(&txid).await;
    }

    async fn cancel(&mut self, cl_ord_id: &str) {
        let Some(txid) = self
            .legs
            .values()
            .find(|l| l.cl_ord_id == cl_ord_id)
            .map(|l| l.txid.clone())
        else {
            return;
        };
        self.cancel_leg(&txid).await;
    }

    async fn cancel_leg(&mut self, txid: &str) {
        let Some(leg) = self.legs.get_mut(txid) else { return };
        if leg.cancel_sent {
            return;
        }
        leg.cancel_sent = true;
        match self.client.cancel_order(OrderRef::Txid(txid.to_owned())).await {
            Ok(_) => tracing::info!("order {txid}: cancel sent"),
            // Already closed (filled) or unknown to the exchange: REST tells what it became.
            Err(e) => tracing::info!("order {txid}: cancel not taken ({e}); its state is read"),
        }
        if let Some(leg) = self.legs.get_mut(txid) {
            leg.heard = Instant::now() - REST_CHECK_FEED_UP;
        }
    }

    async fn on_feed(&mut self, event: PrivateEvent) {
        match event {
            PrivateEvent::Connected => {
                if !self.feed_up {
                    tracing::info!("Kraken's private feed is up: fills arrive as they happen");
                }
                self.feed_up = true;
            }
            PrivateEvent::Disconnected { reason } => {
                tracing::warn!(
                    "Kraken's private feed dropped ({reason}): orders are followed over REST until it is back"
                );
                self.feed_up = false;
            }
            PrivateEvent::Fatal(e) => {
                tracing::error!("Kraken's private feed stopped: {e}; orders are followed over REST");
                self.feed_up = false;
            }
            PrivateEvent::Snapshot { orders, trades } => {
                for trade in &trades {
                    self.on_execution(trade);
                }
                // A leg missing from the open orders ended while the feed was away: REST says how.
                let open: HashSet<&str> = orders.iter().map(|o| o.order_id.as_str()).collect();
                let gone: Vec<String> = self
                    .legs
                    .keys()
                    .filter(|t| !open.contains(t.as_str()))
                    .cloned()
                    .collect();
                for txid in gone {
                    self.check(&txid).await;
                }
            }
            PrivateEvent::Execution(report) => {
                let txid = report.order_id.clone();
                self.on_execution(&report);
                if self.legs.get(&txid).is_some_and(|l| l.ended.is_some()) {
                    self.finish_if_complete(&txid).await;
                }
            }
            // A message that arrived before the last BalanceEx read (queued while an order was
            // followed over REST) is older than what that read told the broker: taken after it,
            // it would undo the order's trades (seen: a sell sized on the balances from before
            // its buy, of nothing). Newer ones, deposits among them, go on.
            PrivateEvent::Balances { balances, received, .. } => {
                if self.balances_read_at.is_none_or(|read| received >= read) {
                    self.send(Update::Totals(balances));
                }
            }
        }
    }

    /// A fill or a status of one of the desk's legs (others' orders are ignored).
    fn on_execution(&mut self, report: &ExecutionReport) {
        let Some(leg) = self.legs.get_mut(&report.order_id) else {
            if self.early.len() < EARLY_MAX {
                self.early
                    .entry(report.order_id.clone())
                    .or_default()
                    .push(report.clone());
            }
            return;
        };
        leg.heard = Instant::now();
        let mut new = Vec::new();
        if let (ExecType::Trade, Some(fill)) = (&report.exec_type, &report.trade)
            && leg.seen.insert(fill.exec_id.clone())
        {
            let trade = LegTrade {
                trade_id: fill.exec_id.clone(),
                txid: leg.txid.clone(),
                ts: report.timestamp,
                side: report.side.unwrap_or(Side::Buy),
                qty: fill.last_qty,
                price: fill.last_price,
                cost: fill.cost,
                fee: fill.fee_in(&self.ws_quote),
            };
            leg.executed += trade.qty;
            new.push(trade);
        }
        if let Some(status) = &report.order_status
            && matches!(
                status,
                ExecOrderStatus::Filled | ExecOrderStatus::Canceled | ExecOrderStatus::Expired
            )
        {
            leg.ended = Some((status.clone(), report.reason.clone(), report.cum_qty));
        }
        if !new.is_empty() {
            let cl_ord_id = leg.cl_ord_id.clone();
            self.send_leg(&cl_ord_id, None, new, None);
        }
    }

    /// A leg the feed said ended: finished at once when its trades add up to what the
    /// exchange executed, otherwise REST fills the gap.
    async fn finish_if_complete(&mut self, txid: &str) {
        let Some(leg) = self.legs.get(txid) else { return };
        let Some((status, reason, cum_qty)) = leg.ended.clone() else {
            return;
        };
        if cum_qty.is_some_and(|q| q == leg.executed) {
            let end = end_of(status == ExecOrderStatus::Filled, reason, leg);
            self.finish(txid, Vec::new(), end).await;
        } else {
            self.check(txid).await;
        }
    }

    /// Asks REST what became of a leg; its missing trades are read and, once it is closed,
    /// it is finished.
    async fn check(&mut self, txid: &str) {
        let order = match self.client.query_orders(&[txid]).await {
            Ok(mut orders) => orders.pop(),
            Err(e) => {
                tracing::debug!("QueryOrders {txid}: {e}");
                return;
            }
        };
        let Some(order) = order else { return };
        let Some(leg) = self.legs.get_mut(txid) else { return };
        leg.heard = Instant::now();
        leg.opened = order.opened;
        let mut trades = Vec::new();
        if order.volume_executed > leg.executed {
            let since = order.opened.map(|t| t.secs() - 1);
            match self.client.trades_history_all(since, None).await {
                Ok(all) => {
                    for t in all.iter().filter(|t| t.ordertxid == txid) {
                        if leg.seen.insert(t.txid.clone()) {
                            leg.executed += t.volume;
                            trades.push(LegTrade::from_rest(t));
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("TradesHistory for {txid}: {e}");
                    return;
                }
            }
        }
        let closed = matches!(
            order.status,
            OrderStatus::Closed | OrderStatus::Canceled | OrderStatus::Expired
        );
        if closed && leg.executed >= order.volume_executed {
            let filled = order.status == OrderStatus::Closed;
            let reason = order.reason.clone();
            let end = end_of(filled, reason, leg);
            self.finish(txid, trades, end).await;
        } else if !trades.is_empty() {
            let cl_ord_id = leg.cl_ord_id.clone();
            self.send_leg(&cl_ord_id, None, trades, None);
        }
    }

    async fn finish(&mut self, txid: &str, trades: Vec<LegTrade>, end: LegEnd) {
        let Some(leg) = self.legs.remove(txid) else { return };
        // With the balances after it: the broker books the trades, then takes the exchange's
        // account as the truth.
        self.balances_read_at = Some(std::time::Instant::now());
        let balances = match crate::real::balances_ex(&self.client).await {
            Ok(balances) => Some(balances),
            Err(e) => {
                tracing::warn!("Kraken BalanceEx after order {txid}: {e}");
                None
            }
        };
        self.send(Update::Leg {
            cl_ord_id: leg.cl_ord_id.clone(),
            txid: Some(leg.txid.clone()),
            trades,
            end: Some(end),
            balances,
        });
        if leg.limit {
            self.last_limit_end = Some(Instant::now());
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        let every = if self.feed_up {
            REST_CHECK_FEED_UP
        } else {
            REST_CHECK_FEED_DOWN
        };
        let mut due = Vec::new();
        let mut expired = Vec::new();
        for leg in self.legs.values() {
            if leg
                .cancel_after
                .is_some_and(|after| now.duration_since(leg.placed) >= after)
                && !leg.cancel_sent
            {
                expired.push(leg.txid.clone());
            } else if now.duration_since(leg.heard) >= every {
                due.push(leg.txid.clone());
            }
        }
        for txid in expired {
            tracing::info!("order {txid}: not filled within its time: cancelled");
            self.cancel_leg(&txid).await;
        }
        for txid in due {
            self.check(&txid).await;
        }
        let resting = self.legs.values().any(|l| l.limit);
        if resting
            && self
                .dead_man_refreshed
                .is_none_or(|at| at.elapsed() >= DEAD_MAN_REFRESH)
        {
            self.arm_dead_man(true).await;
        } else if !resting && self.dead_man_armed && self.last_limit_end.is_none_or(|at| at.elapsed() >= DEAD_MAN_IDLE)
        {
            // Disarmed a moment after the last limit order ended, not between a cancelled
            // order and its re-priced successor.
            self.arm_dead_man(false).await;
        }
    }

    /// Arms (refreshes) or disarms the dead man's switch.
    async fn arm_dead_man(&mut self, arm: bool) {
        if !arm && !self.dead_man_armed {
            return;
        }
        let secs = if arm { DEAD_MAN_TIMEOUT_SECS } else { 0 };
        match self.client.cancel_all_orders_after(secs).await {
            Ok(_) => {
                if arm && !self.dead_man_armed {
                    tracing::info!(
                        "dead man's switch armed: Kraken cancels open orders {secs} s after the bot stops refreshing it"
                    );
                }
                self.dead_man_armed = arm;
                self.dead_man_refreshed = arm.then(Instant::now);
            }
            Err(e) => {
                tracing::warn!("CancelAllOrdersAfter({secs}): {e}");
                // Tried again at the next tick.
                self.dead_man_armed = arm || self.dead_man_armed;
                self.dead_man_refreshed = None;
            }
        }
    }

    /// Cancels the open legs (when `cancel`) and learns how they ended. Stop orders guarding
    /// the position stay at the exchange: the position they guard stays too.
    async fn stop(&mut self, cancel: bool) {
        let deadline = Instant::now() + STOP_WITHIN;
        let working = |legs: &HashMap<String, Tracked>| -> Vec<String> {
            legs.values()
                .filter(|l| !l.protective)
                .map(|l| l.txid.clone())
                .collect()
        };
        if cancel {
            for txid in working(&self.legs) {
                self.cancel_leg(&txid).await;
            }
        }
        while !working(&self.legs).is_empty() && Instant::now() < deadline {
            for txid in working(&self.legs) {
                self.check(&txid).await;
            }
            if !working(&self.legs).is_empty() {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        for leg in self.legs.values() {
            if leg.protective {
                tracing::info!(
                    "stop order {} ({}) stays at Kraken guarding the position; the next start adopts it",
                    leg.txid,
                    leg.cl_ord_id
                );
            } else {
                tracing::warn!(
                    "order {} ({}) is still open at Kraken as the bot stops; the next start follows it",
                    leg.txid,
                    leg.cl_ord_id
                );
            }
        }
        if !self.legs.values().any(|l| l.limit) {
            self.arm_dead_man(false).await;
        }
    }
}

fn end_of(filled: bool, reason: Option<String>, leg: &Tracked) -> LegEnd {
    if filled {
        return LegEnd::Filled;
    }
    let reason = reason.unwrap_or_else(|| {
        if leg.cancel_sent {
            "cancelled by the bot".into()
        } else {
            "cancelled".into()
        }
    });
    let post_only = reason.to_ascii_lowercase().contains("post");
    LegEnd::Canceled { reason, post_only }
}

async fn next_event(feed: &mut Option<PrivateFeed>) -> Option<PrivateEvent> {
    match feed {
        Some(feed) => feed.recv().await,
        None => std::future::pending().await,
    }
}
