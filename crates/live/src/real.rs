//! `--broker kraken`: real orders. Each is journaled before it leaves and sent once; an order
//! whose answer was lost is looked up by its client id (open orders, then closed orders) until it
//! is found or proven absent, never sent again. The exchange's trades are recorded exactly as it
//! reports them, and the account is the exchange's balances (cash = USD, position = BTC).

use std::collections::BTreeMap;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tokio::sync::mpsc;

use nanotrader_broker::{Account, Broker, BrokerConfig, Fill, Order, OrderReason, PaperBroker};
use nanotrader_kraken::private::{
    AddOrderOutcome, Order as KrakenOrder, OrderRequest, OrderStatus, PrivateClient, Trade,
};
use nanotrader_market::Timestamp;
use nanotrader_store::{ExchangeFill, OrderState, Store};

use crate::{Gate, PairRules, Rails};

/// How often, and how many times, a lost answer is looked up before the order counts as absent
/// (a just-placed order may take a moment to appear in Kraken's lists).
const LOOKUP_EVERY: Duration = Duration::from_millis(500);
const LOOKUPS: u32 = 20;
/// A lookup must find nothing this many times in a row to prove an order absent.
const ABSENT_PROOFS: u32 = 3;
/// Attempts beyond the first for a balances read that failed in passing.
const BALANCE_ATTEMPTS: u32 = 4;
/// How long a placed market order may take to close.
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

/// The exchange's asset names of the pair (REST Balance keys), e.g. `XXBT` and `ZUSD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assets {
    pub base: String,
    pub quote: String,
}

/// What the exchange task learned of one order.
#[derive(Debug, Default)]
pub struct Learned {
    pub state: Option<OrderState>,
    pub txid: Option<String>,
    pub detail: Option<String>,
    pub order: Option<KrakenOrder>,
    pub trades: Vec<Trade>,
    pub balances: Option<BTreeMap<String, Decimal>>,
}

struct Job {
    request: OrderRequest,
    answer: std_mpsc::SyncSender<Learned>,
}

/// `--broker kraken`, over the signed client.
pub struct LiveBroker {
    account: Account,
    config: BrokerConfig,
    next_order_id: u64,
    journal: Store,
    run_id: i64,
    gate: Gate,
    assets: Assets,
    jobs: mpsc::UnboundedSender<Job>,
    answer_within: Duration,
}

impl LiveBroker {
    /// Reconciles the journal with the exchange (orders whose outcome was never learned are
    /// looked up; their trades recorded), takes the exchange's balances as the account, and
    /// starts the exchange task. Before it returns, nothing new is sent.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: BrokerConfig,
        next_order_id: u64,
        client: PrivateClient,
        mut journal: Store,
        run_id: i64,
        rules: PairRules,
        rails: Rails,
        assets: Assets,
        answer_within: Duration,
    ) -> Result<Self, String> {
        reconcile(&client, &mut journal, run_id).await;
        crate::reserve::reconcile_reserved(&client, &mut journal, run_id).await;
        let balances = balances(&client).await.map_err(|e| format!("Kraken Balance: {e}"))?;
        let mut account = Account::new(Decimal::ZERO);
        account.set_holdings(
            balances.get(&assets.quote).copied().unwrap_or_default(),
            balances.get(&assets.base).copied().unwrap_or_default(),
        );
        tracing::info!(
            "broker kraken: REAL orders; the account is Kraken's: {} {} and {} {}",
            account.cash(),
            assets.quote,
            account.position(),
            assets.base
        );
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(Job { request, answer }) = queue.recv().await {
                let learned = place(&client, &request).await;
                let _ = answer.send(learned);
            }
        });
        Ok(Self {
            account,
            config,
            next_order_id,
            journal,
            run_id,
            gate: Gate::new(rules, rails),
            assets,
            jobs,
            answer_within,
        })
    }

    /// Sends the order `trial` decided, once, and books what the exchange did.
    fn send(&mut self, order: Order, fill: Fill) -> Option<(Order, Fill)> {
        let (position, equity) = (self.account.position(), self.account.equity());
        let request = self
            .gate
            .admit(&self.journal, self.run_id, &order, &fill, position, equity, false)?;
        let (cl_ord_id, volume) = (request.cl_ord_id.clone().unwrap_or_default(), request.volume);
        let (answer, answered) = std_mpsc::sync_channel(1);
        if self.jobs.send(Job { request, answer }).is_err() {
            self.record(
                &cl_ord_id,
                OrderState::NotPlaced,
                None,
                Some("the exchange task has stopped"),
            );
            return None;
        }
        let learned = match answered.recv_timeout(self.answer_within) {
            Ok(learned) => learned,
            Err(_) => {
                // Still being learned: the journal says unknown, the next start looks it up.
                let why = format!("no outcome within {:?}", self.answer_within);
                tracing::warn!("order {} ({cl_ord_id}): {why}; looked up at the next start", order.id);
                self.record(&cl_ord_id, OrderState::Unknown, None, Some(&why));
                return None;
            }
        };
        let state = learned.state.unwrap_or(OrderState::Unknown);
        if state == OrderState::Placed {
            // The trades are recorded before the journal says placed: a kill in between leaves
            // the order unfinished in the journal, and the next start records them (idempotently).
            let txid = learned.txid.clone();
            let booked = self.book(order, &cl_ord_id, learned);
            self.record(&cl_ord_id, state, txid.as_deref(), None);
            return booked;
        }
        self.record(&cl_ord_id, state, learned.txid.as_deref(), learned.detail.as_deref());
        if state == OrderState::Rejected
            && let Some(alerts) = &self.gate.alerts
        {
            alerts.rejected(&cl_ord_id, learned.detail.as_deref().unwrap_or("refused"));
        }
        {
            tracing::warn!(
                "order {} ({} {volume}) {state}: {}",
                order.id,
                order.side,
                learned.detail.as_deref().unwrap_or("")
            );
            None
        }
    }

    /// Records the exchange's trades and takes its balances; the fill the run stores is the
    /// order as the exchange reports it (volume executed, average price, fee).
    fn book(&mut self, order: Order, cl_ord_id: &str, learned: Learned) -> Option<(Order, Fill)> {
        let kraken = learned.order?;
        let txid = kraken.txid.clone();
        let trades: Vec<ExchangeFill> = learned
            .trades
            .iter()
            .map(|t| exchange_fill(t, self.run_id, order.id, cl_ord_id))
            .collect();
        if let Err(e) = self.journal.record_exchange_fills(&trades) {
            tracing::error!("order {txid}: its trades could not be recorded: {e}");
        }
        if kraken.volume_executed <= Decimal::ZERO {
            return None;
        }
        let realized_before = self.account.realized_pnl();
        for t in &learned.trades {
            self.account.book(t.side, t.volume, t.price, t.fee);
        }
        if let Some(balances) = &learned.balances {
            let cash = balances.get(&self.assets.quote).copied().unwrap_or_default();
            let position = balances.get(&self.assets.base).copied().unwrap_or_default();
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
        }
        self.next_order_id = self.next_order_id.max(order.id + 1);
        let order = Order {
            qty: kraken.volume_executed,
            ..order
        };
        let fill = Fill {
            order_id: order.id,
            ts: order.ts,
            side: order.side,
            qty: kraken.volume_executed,
            price: kraken.average_price,
            fee: kraken.fee,
            cash_after: self.account.cash(),
            position_after: self.account.position(),
            realized_pnl: self.account.realized_pnl() - realized_before,
        };
        Some((order, fill))
    }

    fn record(&self, cl_ord_id: &str, state: OrderState, txid: Option<&str>, detail: Option<&str>) {
        if let Err(e) = self.journal.set_order_state(cl_ord_id, state, txid, detail) {
            tracing::error!("order {cl_ord_id} is {state}, but the journal could not say so: {e}");
        }
    }

    /// What paper sizing would trade with this account at `price`.
    fn decide(&self, change: i8, ts: Timestamp, price: Decimal, reason: Option<OrderReason>) -> Option<(Order, Fill)> {
        let mut trial = PaperBroker::resume(self.config.clone(), self.account.clone(), self.next_order_id);
        match reason {
            None => trial.follow(change, ts, price),
            Some(reason) => trial.exit(ts, price, reason),
        }
    }
}

impl LiveBroker {
    /// Tells refused orders (and a daily-loss halt) to `alerts` too.
    pub fn with_alerts(mut self, alerts: Option<crate::Alerts>) -> Self {
        self.gate.alerts = alerts;
        self
    }
}

impl Broker for LiveBroker {
    fn mark(&mut self, price: Decimal) {
        self.account.mark(price);
    }

    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let (order, fill) = self.decide(change, ts, price, None)?;
        self.send(order, fill)
    }

    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        let (order, fill) = self.decide(-1, ts, price, Some(reason))?;
        self.send(order, fill)
    }

    fn account(&self) -> &Account {
        &self.account
    }

    fn next_order_id(&self) -> u64 {
        self.next_order_id
    }
}

/// Sends `request` once and learns what became of it.
pub async fn place(client: &PrivateClient, request: &OrderRequest) -> Learned {
    let cl_ord_id = request.cl_ord_id.clone().unwrap_or_default();
    let txid = match client.add_order(request).await {
        AddOrderOutcome::Accepted(added) => added.txids.first().cloned(),
        AddOrderOutcome::Rejected(e) => {
            return Learned {
                state: Some(OrderState::Rejected),
                detail: Some(e.to_string()),
                ..Learned::default()
            };
        }
        AddOrderOutcome::NotSent(e) => {
            return Learned {
                state: Some(OrderState::NotPlaced),
                detail: Some(format!("not sent: {e}")),
                ..Learned::default()
            };
        }
        AddOrderOutcome::Unknown(e) => {
            tracing::warn!("order {cl_ord_id}: the answer was lost ({e}); looking it up by its client id");
            match find(client, &cl_ord_id).await {
                Found::Placed(txid) => Some(txid),
                Found::Absent => {
                    return Learned {
                        state: Some(OrderState::NotPlaced),
                        detail: Some(format!("answer lost ({e}); proven absent at the exchange")),
                        ..Learned::default()
                    };
                }
                Found::Unknown(why) => {
                    return Learned {
                        state: Some(OrderState::Unknown),
                        detail: Some(format!("answer lost ({e}); lookups failed: {why}")),
                        ..Learned::default()
                    };
                }
            }
        }
    };
    let Some(txid) = txid else {
        return Learned {
            state: Some(OrderState::Unknown),
            detail: Some("accepted without an order id".into()),
            ..Learned::default()
        };
    };
    let mut learned = Learned {
        state: Some(OrderState::Placed),
        txid: Some(txid.clone()),
        ..Learned::default()
    };
    learned.order = closed(client, &txid).await;
    if let Some(order) = &learned.order {
        let since = order.opened.map(|t| t.secs() - 1);
        match client.trades_history_all(since, None).await {
            Ok(trades) => learned.trades = trades.into_iter().filter(|t| t.ordertxid == txid).collect(),
            Err(e) => tracing::warn!("order {txid}: its trades could not be read yet: {e}"),
        }
    }
    match balances(client).await {
        Ok(balances) => learned.balances = Some(balances),
        Err(e) => tracing::warn!("Kraken Balance after order {txid}: {e}"),
    }
    learned
}

/// One of the exchange's trades of the run's order `order_id`, as the exchange reported it.
fn exchange_fill(t: &Trade, run_id: i64, order_id: u64, cl_ord_id: &str) -> ExchangeFill {
    ExchangeFill {
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
    }
}

/// Kraken's balances; a read, so a passing failure (unavailable, busy, throttled, a network
/// error) is asked again a few times, a second apart.
async fn balances(
    client: &PrivateClient,
) -> Result<BTreeMap<String, Decimal>, nanotrader_kraken::private::PrivateError> {
    let mut attempt = 0;
    loop {
        match client.balance().await {
            Ok(balances) => return Ok(balances),
            Err(e) if e.is_retryable() && attempt < BALANCE_ATTEMPTS => {
                attempt += 1;
                tracing::debug!("Kraken Balance: {e}; asking again");
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

/// The order `txid` once it is closed (a market order closes at once), or as last seen.
async fn closed(client: &PrivateClient, txid: &str) -> Option<KrakenOrder> {
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
        tokio::time::sleep(LOOKUP_EVERY).await;
    }
}

/// At start, before anything new is sent: every journaled order whose outcome was never
/// learned is looked up by its client id; found, its trades are recorded; absent, it is marked
/// not placed. Each difference is logged once; the exchange's record wins.
async fn reconcile(client: &PrivateClient, journal: &mut Store, run_id: i64) {
    let Ok(orders) = journal.sent_orders(run_id) else {
        return;
    };
    for sent in orders
        .into_iter()
        .filter(|o| !o.validate && matches!(o.state, OrderState::Sending | OrderState::Unknown))
    {
        let state = match find(client, &sent.cl_ord_id).await {
            Found::Placed(txid) => {
                let order = closed(client, &txid).await;
                let since = order.as_ref().and_then(|o| o.opened).map(|t| t.secs() - 1);
                if let Ok(trades) = client.trades_history_all(since, None).await {
                    let fills: Vec<ExchangeFill> = trades
                        .iter()
                        .filter(|t| t.ordertxid == txid)
                        .map(|t| exchange_fill(t, run_id, sent.order_id, &sent.cl_ord_id))
                        .collect();
                    let _ = journal.record_exchange_fills(&fills);
                }
                tracing::warn!(
                    "order {} ({}) was placed at Kraken as {txid} though this run never learned it; its trades are recorded and Kraken's balances taken",
                    sent.order_id,
                    sent.cl_ord_id
                );
                (OrderState::Placed, Some(txid))
            }
            Found::Absent => {
                tracing::warn!(
                    "order {} ({}) never reached Kraken: marked not placed",
                    sent.order_id,
                    sent.cl_ord_id
                );
                (OrderState::NotPlaced, None)
            }
            Found::Unknown(why) => {
                tracing::warn!(
                    "order {} ({}) could not be looked up ({why}); still unknown",
                    sent.order_id,
                    sent.cl_ord_id
                );
                continue;
            }
        };
        let _ = journal.set_order_state(
            &sent.cl_ord_id,
            state.0,
            state.1.as_deref(),
            Some("reconciled at start"),
        );
    }
}
