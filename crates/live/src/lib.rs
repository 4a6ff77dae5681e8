//! Live brokers: the engine's orders sent to an exchange. Every order gets a client order id
//! (a UUID) committed in the store before it leaves (committed ahead, a couple at a time, so no
//! fsync sits between a decision and its send; see `reserve`), and is checked against the
//! exchange's rules (lot size, minimum order) and the rails (largest order, orders per hour)
//! first; an order past a rule or a rail is not sent, and says so in one line.
//!
//! [`ValidateBroker`] (`--broker kraken-validate`): each order goes to Kraken's AddOrder with
//! `validate=true` (checked, never executed) and, once Kraken accepts it, is filled on paper.
//! [`LiveBroker`] (`--broker kraken`): real orders, sent once, an unknown outcome looked up by the
//! client id, the exchange's trades recorded as reported and its balances taken as the account.
//!
//! It owns how an order reaches an exchange and what its answer means for the run. It knows the
//! broker seam, the store's order journal and the Kraken adapter's private client; it must not
//! know the engine, the strategies, the dashboard or the command line.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use rust_decimal::{Decimal, RoundingStrategy};
use tokio::sync::mpsc;

use nanotrader_broker::{Account, Broker, Fill, Order, OrderReason, OrderView, PaperBroker, VenueView};
use nanotrader_kraken::private::{AddOrderOutcome, OrderRequest, OrderType, PrivateClient, TrailOffset};
use nanotrader_market::{ExitPlan, Side, Timestamp, TrailDistance};
use nanotrader_store::{OrderJournal, OrderState, SentOrder};

/// The exchange's rules for one pair's orders (from AssetPairs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PairRules {
    /// The pair as AddOrder takes it, e.g. `XBTUSD`.
    pub rest_pair: String,
    /// Volume decimals: a volume is rounded down to these.
    pub lot_decimals: u32,
    /// Smallest volume, in the base asset.
    pub ordermin: Option<Decimal>,
    /// Smallest order value, in the quote asset.
    pub costmin: Option<Decimal>,
    /// A limit price's step.
    pub tick_size: Option<Decimal>,
}

/// The rails around a live broker's orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rails {
    /// Largest order value in the quote currency (at the decision's price).
    pub max_order_value: Decimal,
    /// Most orders sent in any hour.
    pub max_orders_per_hour: u32,
    /// Largest position (base asset) an entry may lead to; none without a limit.
    pub max_position: Option<Decimal>,
    /// The loss in a UTC day (from the day's first equity) that halts new entries until the next
    /// day; none: 5 % of the day's starting equity.
    pub max_daily_loss: Option<Decimal>,
}

impl Rails {
    /// The rails with their defaults: orders up to `max_order_value`, 30 an hour, no position
    /// limit, a daily loss of 5 % of the day's starting equity.
    pub fn new(max_order_value: Decimal) -> Self {
        Self {
            max_order_value,
            max_orders_per_hour: 30,
            max_position: None,
            max_daily_loss: None,
        }
    }
}

/// The share of the day's starting equity whose loss halts new entries when no limit is given.
const DEFAULT_DAILY_LOSS: Decimal = Decimal::from_parts(5, 0, 0, false, 2);

/// Why an order was not sent: one line each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("order of {volume} is under the exchange's minimum of {min}: not sent")]
    UnderMinimum { volume: Decimal, min: Decimal },
    #[error("order worth {value} is under the exchange's minimum value of {min}: not sent")]
    UnderMinimumValue { value: Decimal, min: Decimal },
    #[error("order worth {value} is over --max-order-usd {max}: not sent")]
    OverMaxOrder { value: Decimal, max: Decimal },
    #[error("{max} orders were sent in the last hour (--max-orders-per-hour): not sent")]
    TooManyOrders { max: u32 },
    #[error("the position would be {after}, over --max-position {max}: not sent")]
    OverMaxPosition { after: Decimal, max: Decimal },
    #[error("today's loss of {loss} reached the daily limit of {limit}: new entries halted until the next UTC day")]
    DailyLossHalt { loss: Decimal, limit: Decimal },
}

/// The exchange's rules and the rails, checked before an order is journaled and sent.
pub(crate) struct Gate {
    pub(crate) rules: PairRules,
    rails: Rails,
    sent: VecDeque<Instant>,
    /// The UTC day (days since the epoch, market time) and the equity it started with.
    day: Option<(i64, Decimal)>,
    /// The day whose loss halted entries (said once).
    halted: Option<i64>,
    /// Where a halt and a refused order are told (`--notify-url`), with the run and pair.
    pub(crate) alerts: Option<Alerts>,
}

/// A broker's alerts: the webhook's queue, and what they are about.
#[derive(Clone)]
pub struct Alerts {
    pub notify: nanotrader_notify::NotifyHandle,
    pub run: i64,
    pub pair: String,
}

impl Alerts {
    pub(crate) fn rejected(&self, cl_ord_id: &str, reason: &str) {
        self.notify.notify(nanotrader_notify::Event::OrderRejected {
            run: self.run,
            pair: self.pair.clone(),
            reason: reason.to_owned(),
            cl_ord_id: cl_ord_id.to_owned(),
        });
    }
}

impl Gate {
    pub(crate) fn new(rules: PairRules, rails: Rails) -> Self {
        Self {
            rules,
            rails,
            sent: VecDeque::new(),
            day: None,
            halted: None,
            alerts: None,
        }
    }

    /// The volume to send for `fill` (on the exchange's lot), or why it is not sent; `position`
    /// and `equity` are the account's before the order.
    pub(crate) fn check(&mut self, fill: &Fill, position: Decimal, equity: Decimal) -> Result<Decimal, Refused> {
        let volume = fill
            .qty
            .round_dp_with_strategy(self.rules.lot_decimals, RoundingStrategy::ToZero);
        let entry = fill.side == nanotrader_market::Side::Buy;
        let today = fill.ts.secs().div_euclid(86_400);
        let start = match self.day {
            Some((day, start)) if day == today => start,
            _ => {
                self.day = Some((today, equity));
                equity
            }
        };
        let limit = self.daily_limit(start);
        let loss = start - equity;
        if entry && loss >= limit && limit > Decimal::ZERO {
            self.halt(today, loss, limit);
            return Err(Refused::DailyLossHalt {
                loss: loss.round_dp(2),
                limit,
            });
        }
        if entry
            && let Some(max) = self.rails.max_position
            && position + volume > max
        {
            return Err(Refused::OverMaxPosition {
                after: position + volume,
                max,
            });
        }
        if let Some(min) = self.rules.ordermin
            && volume < min
        {
            return Err(Refused::UnderMinimum { volume, min });
        }
        let value = volume * fill.price;
        if let Some(min) = self.rules.costmin
            && value < min
        {
            return Err(Refused::UnderMinimumValue { value, min });
        }
        if value > self.rails.max_order_value {
            return Err(Refused::OverMaxOrder {
                value: value.round_dp(2),
                max: self.rails.max_order_value,
            });
        }
        let hour_ago = Instant::now().checked_sub(Duration::from_secs(3600));
        while let (Some(first), Some(hour_ago)) = (self.sent.front(), hour_ago) {
            if *first > hour_ago {
                break;
            }
            self.sent.pop_front();
        }
        if self.sent.len() >= self.rails.max_orders_per_hour as usize {
            return Err(Refused::TooManyOrders {
                max: self.rails.max_orders_per_hour,
            });
        }
        Ok(volume)
    }

    /// Whether today's loss (from the day's starting equity) has reached the limit with the
    /// account at `equity` now; halts (and says so once) when it has.
    pub(crate) fn halted_now(&mut self, equity: Decimal) -> bool {
        let Some((today, start)) = self.day else {
            return false;
        };
        let limit = self.daily_limit(start);
        let loss = start - equity;
        if limit > Decimal::ZERO && loss >= limit {
            self.halt(today, loss, limit);
            return true;
        }
        self.halted == Some(today)
    }

    /// A person's Resume: the day's loss is counted afresh from `equity`. Whether a halt was lifted.
    pub(crate) fn resume(&mut self, equity: Decimal) -> bool {
        let lifted = self.halted.is_some();
        self.halted = None;
        if let Some((day, _)) = self.day {
            self.day = Some((day, equity));
        }
        lifted
    }

    /// Why new entries are halted now, for the dashboard.
    pub(crate) fn halt_reason(&self) -> Option<String> {
        let (today, start) = self.day?;
        (self.halted == Some(today)).then(|| {
            format!(
                "today's loss reached the daily limit of {} (--max-daily-loss-usd): new entries halted until the next UTC day or a Resume",
                self.daily_limit(start)
            )
        })
    }

    fn daily_limit(&self, start: Decimal) -> Decimal {
        self.rails
            .max_daily_loss
            .unwrap_or((start * DEFAULT_DAILY_LOSS).round_dp(2))
    }

    fn halt(&mut self, today: i64, loss: Decimal, limit: Decimal) {
        if self.halted == Some(today) {
            return;
        }
        self.halted = Some(today);
        tracing::warn!("risk halt: today's loss of {} reached {limit}", loss.round_dp(2));
        if let Some(alerts) = &self.alerts {
            alerts.notify.notify(nanotrader_notify::Event::RiskHalt {
                run: alerts.run,
                rule: "max-daily-loss-usd".into(),
                detail: format!(
                    "today's loss of {} reached {limit}: new entries halted until the next UTC day",
                    loss.round_dp(2)
                ),
            });
        }
    }

    /// What an order becomes before it leaves: checked (`check`), given its client id (one
    /// committed ahead), journaled, counted for the hourly rail. `None` (said in one line) when
    /// it must not be sent: past a rule or a rail, or no client id could be committed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn admit(
        &mut self,
        journal: &dyn OrderJournal,
        run_id: i64,
        order: &Order,
        fill: &Fill,
        position: Decimal,
        equity: Decimal,
        validate: bool,
    ) -> Option<OrderRequest> {
        let volume = match self.check(fill, position, equity) {
            Ok(volume) => volume,
            Err(refused) => {
                tracing::warn!("{} {}: {refused}", order.side, fill.qty);
                return None;
            }
        };
        // An id committed ahead: no fsync between this decision and its send (the journal
        // reserves a batch here only when none is left).
        let cl_ord_id = match journal.take_client_id(run_id) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(
                    "order {} not sent: no client id could be committed for it: {e}",
                    order.id
                );
                return None;
            }
        };
        let journaled = SentOrder {
            cl_ord_id: cl_ord_id.clone(),
            run_id,
            order_id: order.id,
            ts: order.ts,
            side: order.side,
            volume,
            validate,
            state: OrderState::Sending,
            txid: None,
            detail: None,
        };
        // The order's details beside its id, written with the journal's next write, after the
        // order has left (see `Store::journal_reserved`: the id is durable already).
        journal.journal_reserved(&journaled);
        self.sent.push_back(Instant::now());
        Some(OrderRequest {
            pair: self.rules.rest_pair.clone(),
            side: order.side,
            order_type: OrderType::Market,
            volume,
            cl_ord_id: Some(cl_ord_id),
            validate,
        })
    }
}

/// One order's way to the exchange: the request and where its answer goes.
struct Submission {
    request: OrderRequest,
    answer: AnswerTo,
}

/// Where Kraken's answer goes: to a thread that waits for it, or to a task that awaits it (the
/// engine on the submitter's own thread, which must not block).
enum AnswerTo {
    Wait(std_mpsc::SyncSender<AddOrderOutcome>),
    Await(tokio::sync::oneshot::Sender<AddOrderOutcome>),
}

impl AnswerTo {
    fn send(self, outcome: AddOrderOutcome) {
        // The broker may have stopped waiting: nothing is lost, the journal has the order.
        match self {
            AnswerTo::Wait(answer) => {
                let _ = answer.send(outcome);
            }
            AnswerTo::Await(answer) => {
                let _ = answer.send(outcome);
            }
        }
    }
}

/// The other end of an [`AnswerTo`].
enum Answered {
    Wait(std_mpsc::Receiver<AddOrderOutcome>),
    Await(tokio::sync::oneshot::Receiver<AddOrderOutcome>),
}

impl Answered {
    /// A pair of ends: awaited when the submitter shares the engine's thread.
    fn pair(awaited: bool) -> (AnswerTo, Answered) {
        if awaited {
            let (to, from) = tokio::sync::oneshot::channel();
            (AnswerTo::Await(to), Answered::Await(from))
        } else {
            let (to, from) = std_mpsc::sync_channel(1);
            (AnswerTo::Wait(to), Answered::Wait(from))
        }
    }

    /// The answer, or `None` when none came `within`. `Wait` blocks the thread (it completes
    /// on the first poll); `Await` yields to the submitter.
    async fn outcome(self, within: Duration) -> Option<AddOrderOutcome> {
        match self {
            Answered::Wait(answered) => answered.recv_timeout(within).ok(),
            Answered::Await(answered) => tokio::time::timeout(within, answered).await.ok()?.ok(),
        }
    }
}

/// Runs a future that never waits for a wake-up (one whose waits all block: [`Answered::Wait`]).
fn at_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => unreachable!("a blocking wait is never pending"),
    }
}

/// What `follow` or `exit` left for the engine to await (`ValidateBroker::answer`).
enum Call {
    Follow {
        trial: PaperBroker,
        order: Order,
        fill: Fill,
        exits: Option<ExitPlan>,
    },
    Exit {
        trial: PaperBroker,
        order: Order,
        fill: Fill,
    },
}

/// `--broker kraken-validate`: the paper account, with every order first checked by Kraken.
///
/// The engine waits for Kraken's answer (bounded by `answer_within`), so the order's paper fill
/// is in the same step as the bar that decided it; the answer itself is fetched on the runtime
/// by the submitter task. Started on a current-thread runtime (the binary's engine thread), the
/// submitter shares the engine's thread: `follow` then leaves the order for [`Broker::answer`],
/// which the engine awaits (the submitter and the HTTP connection run meanwhile, on the same
/// thread, with no other thread woken); on a multi-thread runtime `follow` blocks for it.
pub struct ValidateBroker {
    paper: PaperBroker,
    journal: Box<dyn OrderJournal>,
    run_id: i64,
    gate: Gate,
    submit: mpsc::UnboundedSender<Submission>,
    answer_within: Duration,
    /// The latest orders and what Kraken said of each, for the dashboard.
    orders: VecDeque<OrderView>,
    /// `--stops exchange`: an entry's exits are sent for validation too (the bot watches them).
    stops_on_exchange: bool,
    stop_rule: String,
    /// The exits of the next entry.
    planned: Option<ExitPlan>,
    /// The submitter shares the engine's thread (a current-thread runtime): answers are awaited.
    awaited: bool,
    /// What the engine is to await (`answer`), when `awaited`.
    call: Option<Call>,
}

/// Orders the dashboard lists.
const ORDERS_SHOWN: usize = 20;

impl ValidateBroker {
    /// Starts the submitter task (on the current tokio runtime) over `client`; `paper` is the
    /// run's restored paper account and `journal` a connection to the run's store.
    pub fn start(
        paper: PaperBroker,
        client: PrivateClient,
        journal: impl OrderJournal + 'static,
        run_id: i64,
        rules: PairRules,
        rails: Rails,
        answer_within: Duration,
    ) -> Self {
        // A validation never executes, so the run's ids reserved for validations by an earlier
        // process are retired without a lookup; then a batch is committed ahead for the first
        // orders.
        let journal: Box<dyn OrderJournal> = Box::new(journal);
        reserve::retire_reserved_for_validation(journal.as_ref(), run_id);
        if let Err(e) = journal.reserve_client_ids(run_id, nanotrader_store::RESERVE_BATCH) {
            tracing::warn!("client ids not reserved ahead ({e}); the first order reserves them");
        }
        let (submit, mut submissions) = mpsc::unbounded_channel::<Submission>();
        let awaited = matches!(
            tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()),
            Ok(tokio::runtime::RuntimeFlavor::CurrentThread)
        );
        tokio::spawn(async move {
            while let Some(Submission { request, answer }) = submissions.recv().await {
                answer.send(client.add_order(&request).await);
            }
        });
        Self {
            paper,
            journal,
            run_id,
            gate: Gate::new(rules, rails),
            submit,
            answer_within,
            orders: VecDeque::new(),
            stops_on_exchange: false,
            stop_rule: String::new(),
            planned: None,
            awaited,
            call: None,
        }
    }

    /// `--stops exchange` (`on_exchange`): after each entry its stop-loss, trailing stop and
    /// take-profit are sent to Kraken with `validate=true` too (checked, never placed); the bot
    /// watches them, as paper does. `rule` is shown on the dashboard.
    pub fn with_stops(mut self, on_exchange: bool, rule: String) -> Self {
        self.stops_on_exchange = on_exchange;
        self.stop_rule = rule;
        self
    }

    /// Sends the exits of the entry that filled `volume` for validation: each journaled with a
    /// client id of its own, each answer recorded; nothing is placed, nothing fills.
    async fn validate_exits(&mut self, plan: ExitPlan, entry: &Fill) {
        let order = Order {
            id: self.paper.next_order_id(),
            ts: entry.ts,
            side: Side::Sell,
            qty: entry.qty,
            reason: OrderReason::Exit,
        };
        let mut exits = Vec::new();
        if let Some(stop) = plan.stop_loss {
            exits.push((
                "stop-loss",
                OrderType::StopLoss {
                    trigger: self.on_tick(stop),
                },
                Some(stop),
            ));
        }
        if let Some(trailing) = plan.trailing {
            let offset = match trailing {
                TrailDistance::Percent(p) => TrailOffset::Percent(p.normalize()),
                TrailDistance::Amount(a) => TrailOffset::Price(self.on_tick(a)),
            };
            exits.push(("trailing-stop", OrderType::TrailingStop { offset }, None));
        }
        if let Some(take) = plan.take_profit {
            exits.push((
                "take-profit",
                OrderType::TakeProfit {
                    trigger: self.on_tick(take),
                },
                Some(take),
            ));
        }
        for (kind, order_type, trigger) in exits {
            let probe = Fill {
                price: trigger.unwrap_or(entry.price),
                side: Side::Sell,
                ..entry.clone()
            };
            let account = self.paper.account();
            let (position, equity) = (account.position(), account.equity());
            let Some(mut request) = self.gate.admit(
                self.journal.as_ref(),
                self.run_id,
                &order,
                &probe,
                position,
                equity,
                true,
            ) else {
                continue;
            };
            request.order_type = order_type;
            let cl_ord_id = request.cl_ord_id.clone().unwrap_or_default();
            self.orders.push_front(OrderView {
                cl_ord_id: cl_ord_id.clone(),
                txid: None,
                ts: entry.ts,
                side: Side::Sell,
                order_type: kind.to_owned(),
                volume: request.volume,
                filled: Decimal::ZERO,
                limit_price: trigger.map(|t| self.on_tick(t)),
                state: OrderState::Sending.to_string(),
                detail: None,
            });
            self.orders.truncate(ORDERS_SHOWN);
            let (answer, answered) = Answered::pair(self.awaited);
            if self.submit.send(Submission { request, answer }).is_err() {
                self.record(&cl_ord_id, OrderState::NotPlaced, Some("the submitter has stopped"));
                continue;
            }
            match answered.outcome(self.answer_within).await {
                Some(AddOrderOutcome::Accepted(_)) => {
                    tracing::info!("{kind} validated by Kraken (not placed: kraken-validate); the bot watches it");
                    self.record(&cl_ord_id, OrderState::Validated, Some("validated; watched by the bot"));
                    if let Some(view) = self.orders.iter_mut().find(|o| o.cl_ord_id == cl_ord_id) {
                        view.filled = Decimal::ZERO;
                    }
                }
                Some(AddOrderOutcome::Rejected(e)) => {
                    let why = e.to_string();
                    tracing::warn!("{kind} refused by Kraken: {why}");
                    self.record(&cl_ord_id, OrderState::Rejected, Some(&why));
                }
                Some(AddOrderOutcome::NotSent(e) | AddOrderOutcome::Unknown(e)) => {
                    let why = format!("validation not answered: {e}");
                    self.record(&cl_ord_id, OrderState::NotPlaced, Some(&why));
                }
                None => {
                    let why = format!("no answer within {:?}", self.answer_within);
                    self.record(&cl_ord_id, OrderState::NotPlaced, Some(&why));
                }
            }
        }
    }

    /// `price` on the pair's tick (nearest).
    fn on_tick(&self, price: Decimal) -> Decimal {
        match self.gate.rules.tick_size.filter(|t| *t > Decimal::ZERO) {
            Some(tick) => (price / tick).round() * tick,
            None => price,
        }
    }

    /// Sends what `trial` (a copy of the paper account that made the order) did to Kraken for
    /// validation; on acceptance the copy becomes the account.
    async fn validate(&mut self, trial: PaperBroker, order: Order, fill: Fill) -> Option<(Order, Fill)> {
        let account = self.paper.account();
        let (position, equity) = (account.position(), account.equity());
        let request = self.gate.admit(
            self.journal.as_ref(),
            self.run_id,
            &order,
            &fill,
            position,
            equity,
            true,
        )?;
        let (cl_ord_id, volume) = (request.cl_ord_id.clone().unwrap_or_default(), request.volume);
        self.orders.push_front(OrderView {
            cl_ord_id: cl_ord_id.clone(),
            txid: None,
            ts: order.ts,
            side: order.side,
            order_type: "market".to_owned(),
            volume,
            filled: Decimal::ZERO,
            limit_price: None,
            state: OrderState::Sending.to_string(),
            detail: None,
        });
        self.orders.truncate(ORDERS_SHOWN);
        let (answer, answered) = Answered::pair(self.awaited);
        if self.submit.send(Submission { request, answer }).is_err() {
            self.record(&cl_ord_id, OrderState::NotPlaced, Some("the submitter has stopped"));
            return None;
        }
        match answered.outcome(self.answer_within).await {
            Some(AddOrderOutcome::Accepted(_)) => {
                self.record(&cl_ord_id, OrderState::Validated, None);
                self.paper = trial;
                Some((order, fill))
            }
            Some(AddOrderOutcome::Rejected(e)) => {
                let why = e.to_string();
                tracing::warn!("order {} ({} {volume}) refused by Kraken: {why}", order.id, order.side);
                self.record(&cl_ord_id, OrderState::Rejected, Some(&why));
                if let Some(alerts) = &self.gate.alerts {
                    alerts.rejected(&cl_ord_id, &why);
                }
                None
            }
            // A validation places nothing, so an unanswered one is simply not validated.
            Some(AddOrderOutcome::NotSent(e) | AddOrderOutcome::Unknown(e)) => {
                let why = format!("validation not answered: {e}");
                tracing::warn!("order {} ({} {volume}): {why}; not filled", order.id, order.side);
                self.record(&cl_ord_id, OrderState::NotPlaced, Some(&why));
                None
            }
            None => {
                let why = format!("no answer within {:?}", self.answer_within);
                tracing::warn!("order {} ({} {volume}): {why}; not filled", order.id, order.side);
                self.record(&cl_ord_id, OrderState::NotPlaced, Some(&why));
                None
            }
        }
    }

    /// Carries out what `follow` or `exit` decided: Kraken's check, then the paper fill.
    async fn carry(&mut self, call: Call) -> Option<(Order, Fill)> {
        match call {
            Call::Follow {
                trial,
                order,
                fill,
                exits,
            } => {
                let done = self.validate(trial, order, fill).await?;
                if let Some(plan) = exits.filter(|_| self.stops_on_exchange) {
                    self.validate_exits(plan, &done.1).await;
                }
                Some(done)
            }
            Call::Exit { trial, order, fill } => self.validate(trial, order, fill).await,
        }
    }

    /// `call` carried out now (blocking for the answer), or left for `answer` when answers are
    /// awaited.
    fn call(&mut self, call: Call) -> Option<(Order, Fill)> {
        if self.awaited {
            self.call = Some(call);
            return None;
        }
        at_once(self.carry(call))
    }

    fn record(&mut self, cl_ord_id: &str, state: OrderState, detail: Option<&str>) {
        if let Some(view) = self.orders.iter_mut().find(|o| o.cl_ord_id == cl_ord_id) {
            view.state = state.to_string();
            view.detail = detail.map(str::to_owned);
            if state == OrderState::Validated {
                view.filled = view.volume;
            }
        }
        if let Err(e) = self.journal.set_order_state(cl_ord_id, state, None, detail) {
            tracing::error!("order {cl_ord_id} is {state}, but the journal could not say so: {e}");
        }
    }
}

impl Broker for ValidateBroker {
    fn mark(&mut self, price: Decimal) {
        self.paper.mark(price);
    }

    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let mut trial = self.paper.clone();
        let (order, fill) = trial.follow(change, ts, price)?;
        let exits = if order.side == Side::Buy {
            self.planned.take()
        } else {
            None
        };
        self.call(Call::Follow {
            trial,
            order,
            fill,
            exits,
        })
    }

    fn answer(&mut self) -> Option<nanotrader_broker::BrokerFuture<'_, Option<(Order, Fill)>>> {
        let call = self.call.take()?;
        Some(Box::pin(self.carry(call)))
    }

    fn plan_exits(&mut self, plan: ExitPlan) {
        self.planned = Some(plan);
    }

    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        let mut trial = self.paper.clone();
        let (order, fill) = trial.exit(ts, price, reason)?;
        self.call(Call::Exit { trial, order, fill })
    }

    fn account(&self) -> &Account {
        self.paper.account()
    }

    fn next_order_id(&self) -> u64 {
        self.paper.next_order_id()
    }

    fn resume(&mut self) {
        if self.gate.resume(self.paper.account().equity()) {
            tracing::info!("risk halt lifted by a person: the day's loss is counted from now");
        }
    }

    fn venue(&self) -> Option<VenueView> {
        Some(VenueView {
            broker: "kraken-validate".to_owned(),
            live: false,
            balances: Default::default(),
            orders: self.orders.iter().cloned().collect(),
            halted: self.gate.halt_reason(),
            stops: (!self.stop_rule.is_empty()).then(|| self.stop_rule.clone()),
        })
    }
}

mod desk;
mod real;
mod reserve;

pub use real::{Assets, LimitFallback, LiveBroker, LiveSettings, OrderKind, RunOrders};

impl ValidateBroker {
    /// Tells refused orders (and a daily-loss halt) to `alerts` too.
    pub fn with_alerts(mut self, alerts: Option<Alerts>) -> Self {
        self.gate.alerts = alerts;
        self
    }
}

#[cfg(test)]
mod tests;
