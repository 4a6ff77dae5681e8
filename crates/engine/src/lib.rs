//! The event loop: source -> bars -> strategy -> broker, with everything that happened published
//! on the observer bus and handed, in order, to the store writer.
//!
//! It owns the order of events in a run. It knows the market, strategy, broker and store crates
//! through their seams; it must not know the command line, the configuration file, the web
//! dashboard or any exchange's protocol.

mod session;

pub use session::{Books, Restored, RunPlan, RunSession, SessionError, restore, resume_from};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use nanotrader_broker::{AccountSnapshot, Broker, Fill, Guard, Order, OrderReason, VenueView};
use nanotrader_market::{Bar, FeedStatus, Interval, MarketEvent, Quote, Source, SourceError, Timestamp};
use nanotrader_market::{BarAggregator, BarEvent};
use nanotrader_store::{Execution, Gap, Progress, SignalChange, WriterHooks};
use nanotrader_store::{RunStatus, Step, StoreCmd};
use nanotrader_strategy::{DecisionRule, LineValues, Signal, Strategy};

/// Capacity of the observer bus: a subscriber further behind than this is told it lagged and
/// must resync, rather than slowing the engine.
pub const BUS_CAPACITY: usize = 4096;
/// The market topic holds batches of up to `MARKET_BATCH_MAX` bars: this many batches are a
/// quarter of a second of a full-speed replay, and a bounded few MiB for an observer that lags
/// (it is told, and resyncs) rather than hundreds.
pub const MARKET_BUS_CAPACITY: usize = 1024;
/// Market events (bars, signals, quotes) are published in batches of at most this many, so an
/// observer costs one channel message per batch at full replay speed...
pub const MARKET_BATCH_MAX: usize = 256;
/// ...and at most this long after the last batch, so a live feed's events go out at once.
pub const MARKET_BATCH_GAP: Duration = Duration::from_millis(2);
/// Batches of steps queued for the store writer before the engine waits (backpressure).
pub const STORE_QUEUE_BATCHES: usize = 32;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub interval: Interval,
    /// Decisions are taken from this bar on (1-based); the seed waited for 22 records.
    pub decide_from_bar: u64,
    /// An account snapshot is stored every this many bars (each fill row holds the account too).
    pub snapshot_every_bars: u64,
    /// How often a status line is published.
    pub status_every: Duration,
    /// Steps are handed to the store at least this often, or when this many are pending.
    pub flush_every: Duration,
    pub flush_steps: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            interval: Interval::ONE_MINUTE,
            decide_from_bar: 1,
            snapshot_every_bars: 60,
            status_every: Duration::from_secs(5),
            flush_every: Duration::from_millis(20),
            flush_steps: 2048,
        }
    }
}

/// Where a resumed run stands (all zero for a new run).
/// What trades and how: the strategy, the broker and the first bar a decision may be taken on.
/// The same for a live run and a backtest.
#[derive(Clone, Debug, PartialEq)]
pub struct Trading {
    pub strategy: nanotrader_strategy::StrategyConfig,
    pub broker: nanotrader_broker::BrokerConfig,
    /// Decisions are taken from this bar on (1-based).
    pub decide_from_bar: u64,
    /// Rails that halt new entries (max drawdown, daily loss); none by default.
    pub protections: nanotrader_broker::Protections,
}

#[derive(Clone, Debug, Default)]
pub struct ResumeState {
    pub bars_seen: u64,
    pub signal: Signal,
    pub last_bar: Option<Bar>,
}

/// A request from the dashboard (or any other controller) to the engine.
#[derive(Debug)]
pub enum Control {
    /// Stop acting on signals (the strategy keeps running, so resuming picks up its state).
    Pause,
    Resume,
    /// Sell the whole position now at the last price.
    Flatten,
}

/// The engine's answer to a [`Control`].
#[derive(Clone, Debug, Serialize)]
pub struct ControlReply {
    pub paused: bool,
    /// The flattening order, when there was a position to sell; its fill is announced (like
    /// every fill) once stored.
    pub order_id: Option<u64>,
    pub message: String,
}

pub type ControlRequest = (Control, oneshot::Sender<ControlReply>);

/// What observers (logs, dashboard, metrics) are told. Fills are published only once stored.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EngineEvent {
    /// A bar changed (`closed: false`, still forming) or closed; with the indicator lines and
    /// the equity marked at its close.
    Bar {
        bar: Bar,
        closed: bool,
        lines: LineValues,
        equity: Decimal,
        /// The position held after the bar (and after any trade it caused).
        position: Decimal,
    },
    Quote(Quote),
    Gap {
        from: Timestamp,
        to: Timestamp,
        missing: u64,
    },
    Signal {
        ts: Timestamp,
        signal: i8,
        change: i8,
    },
    /// A durable fill: its order, the fill and the account right after it.
    Fill {
        order: Order,
        fill: Fill,
        account: AccountSnapshot,
    },
    Feed(FeedStatus),
    /// Store writes started failing (`healthy: false`, with why) or work again (`true`): one
    /// event per change, from the store writer's thread.
    Store {
        healthy: bool,
        detail: String,
    },
    /// Trading was paused or resumed.
    Trading {
        paused: bool,
    },
    Status(StatusReport),
    Finished {
        status: &'static str,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub events_per_sec: f64,
    pub bars: u64,
    pub fills: u64,
    pub equity: Decimal,
    pub position: Decimal,
    /// Wall clock minus the market time of the last event (meaningful for live feeds).
    pub feed_lag_ms: Option<i64>,
    /// The market time of the last event: the data's own time (what a replay shows).
    pub data_ts: Option<Timestamp>,
    /// Steps produced but not yet committed by the store writer.
    pub store_lag_steps: u64,
    /// A live broker's exchange side: balances, orders, a halt.
    pub venue: Option<VenueView>,
    /// Why the protections (`--max-drawdown`, a paper run's `--max-daily-loss-usd`) halt new
    /// entries, while they do.
    pub protection: Option<String>,
}

/// Counters shared with the store writer and, later, /metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub events: AtomicU64,
    pub bars_closed: AtomicU64,
    pub gaps: AtomicU64,
    pub fills_stored: AtomicU64,
    pub steps_produced: AtomicU64,
    pub steps_stored: AtomicU64,
    /// Store transactions committed and the time they took, in total.
    pub store_commits: AtomicU64,
    pub store_write_nanos: AtomicU64,
    /// Market time of the last event, in unix nanoseconds (0 before any): the feed lag.
    pub last_event_ns: AtomicI64,
    /// Why store writes are failing right now (`None` while they work), and how many times
    /// they started failing.
    pub store_error: std::sync::Mutex<Option<String>>,
    pub store_outages: AtomicU64,
    /// Whether trading is paused: set before a control is answered, so that a status read after
    /// the answer shows it (the board's frames follow a moment later).
    pub paused: AtomicBool,
}

impl Metrics {
    pub fn store_error(&self) -> Option<String> {
        self.store_error.lock().map(|e| e.clone()).unwrap_or(None)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("the store writer stopped: {0}")]
    StoreGone(String),
}

/// How the loop ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The finite source ended.
    Completed,
    /// Shut down on request (Ctrl-C).
    Interrupted,
}

impl Outcome {
    pub fn run_status(self) -> RunStatus {
        match self {
            Outcome::Completed => RunStatus::Completed,
            Outcome::Interrupted => RunStatus::Interrupted,
        }
    }
}

/// Market events published together.
pub type MarketBatch = Arc<[EngineEvent]>;

/// The observer bus, in two topics so that observers of trading events (the logs) are not woken
/// for every bar, and bars cost nothing to publish when nobody watches them.
#[derive(Clone, Debug)]
pub struct Bus {
    /// `Bar`, `Quote` and `Signal`, in batches (see `MARKET_BATCH_MAX`), in order.
    pub market: broadcast::Sender<MarketBatch>,
    /// Everything else: durable fills, gaps, feed and engine status.
    pub events: broadcast::Sender<EngineEvent>,
}

impl Bus {
    pub fn new() -> Self {
        Self {
            market: broadcast::channel(MARKET_BUS_CAPACITY).0,
            events: broadcast::channel(BUS_CAPACITY).0,
        }
    }
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the engine's output goes: the bus for observers, the queue for the store writer.
pub struct EngineOutputs {
    pub bus: Bus,
    pub store: mpsc::Sender<StoreCmd>,
    pub metrics: Arc<Metrics>,
}

pub struct Engine {
    config: EngineConfig,
    aggregator: BarAggregator,
    strategy: Box<dyn Strategy>,
    /// Where orders go (the execution seam): paper, or an exchange's.
    broker: Box<dyn Broker>,
    /// Rung by a broker whose fills arrive after its orders (a live one).
    broker_updates: Option<Arc<Notify>>,
    /// Whether the last status showed the broker's halt: a change is published at once.
    halt_shown: bool,
    rule: DecisionRule,
    /// The protections (max drawdown, daily loss): each closed bar's equity, before its order.
    guard: Option<Guard>,
    signal: Signal,
    bars_seen: u64,
    last_bar_ts: Option<Timestamp>,
    bar_events: Vec<BarEvent>,
    pending_gap: Option<Gap>,
    pending_steps: Vec<Step>,
    last_flush: Instant,
    last_event_ts: Option<Timestamp>,
    bus: Bus,
    store: mpsc::Sender<StoreCmd>,
    metrics: Arc<Metrics>,
    status_clock: StatusClock,
    controls: Option<mpsc::Receiver<ControlRequest>>,
    paused: bool,
    market_batch: Vec<EngineEvent>,
    last_market_publish: Instant,
}

impl Engine {
    /// `strategy` must already be warmed up with the run's stored bars when resuming.
    pub fn new(
        config: EngineConfig,
        aggregator: BarAggregator,
        strategy: Box<dyn Strategy>,
        broker: impl Broker + 'static,
        resume: ResumeState,
        outputs: EngineOutputs,
    ) -> Self {
        let EngineOutputs { bus, store, metrics } = outputs;
        let mut broker: Box<dyn Broker> = Box::new(broker);
        // A run restarted in a trade: its exits go to a broker whose stops rest at the exchange,
        // which places them when none rest (one refused, or a crash before they were sent).
        if resume.signal == Signal::Long
            && let (Some(plan), Some(bar)) = (strategy.exit_plan(), resume.last_bar)
        {
            broker.guard_position(plan, bar.ts, bar.close);
        }
        let broker_updates = broker.updates();
        Self {
            aggregator,
            strategy,
            broker,
            broker_updates,
            halt_shown: false,
            rule: DecisionRule {
                decide_from_bar: config.decide_from_bar,
            },
            guard: None,
            signal: resume.signal,
            bars_seen: resume.bars_seen,
            last_bar_ts: resume.last_bar.map(|b| b.ts),
            bar_events: Vec::with_capacity(4),
            pending_gap: None,
            pending_steps: Vec::with_capacity(config.flush_steps),
            last_flush: Instant::now(),
            last_event_ts: None,
            bus,
            store,
            metrics,
            status_clock: StatusClock::new(),
            controls: None,
            paused: false,
            market_batch: Vec::new(),
            last_market_publish: Instant::now(),
            config,
        }
    }

    /// Lets a controller pause, resume and flatten while the engine runs.
    /// Protections checked at each closed bar's close (see `nanotrader_broker::Guard`); a resumed
    /// run passes the guard rebuilt from its stored bars and fills.
    pub fn with_protections(mut self, guard: Option<Guard>) -> Self {
        self.guard = guard;
        self
    }

    pub fn with_controls(mut self, controls: mpsc::Receiver<ControlRequest>) -> Self {
        self.controls = Some(controls);
        self
    }

    pub fn broker(&self) -> &dyn Broker {
        self.broker.as_ref()
    }

    /// Runs until the source ends or `shutdown` turns true, then flushes the store and marks the run.
    pub async fn run<S: Source>(
        &mut self,
        source: &mut S,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Outcome, EngineError> {
        let mut ticker = tokio::time::interval(self.config.flush_every.min(self.config.status_every));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let outcome = loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break Outcome::Interrupted;
                    }
                }
                event = source.next_event() => match event? {
                    Some(event) => self.on_event(event).await?,
                    None => {
                        self.close_forming_bar().await?;
                        break Outcome::Completed;
                    }
                },
                Some((control, reply)) = next_control(&mut self.controls) => {
                    let answer = self.on_control(control).await?;
                    let _ = reply.send(answer);
                }
                () = broker_update(&self.broker_updates) => self.on_broker_fills().await?,
                _ = ticker.tick() => {
                    self.publish_market_batch();
                    if !self.pending_steps.is_empty() {
                        self.flush().await?;
                    }
                    self.maybe_publish_status();
                }
            }
        };
        self.finish(outcome.run_status()).await?;
        Ok(outcome)
    }

    async fn on_event(&mut self, event: MarketEvent) -> Result<(), EngineError> {
        self.metrics.events.fetch_add(1, Ordering::Relaxed);
        self.status_clock.events += 1;
        match &event {
            MarketEvent::Status(status) => {
                let _ = self.bus.events.send(EngineEvent::Feed(status.clone()));
                return Ok(());
            }
            MarketEvent::Quote(quote) => {
                self.broker.quote(quote.bid, quote.ask);
                self.last_event_ts = Some(quote.ts);
                self.metrics.last_event_ns.store(quote.ts.nanos(), Ordering::Relaxed);
                self.emit_market(EngineEvent::Quote(*quote));
                self.maybe_publish_market_batch();
                return Ok(());
            }
            MarketEvent::Trade(_) | MarketEvent::Bar(_) | MarketEvent::Clock(_) => {}
        }
        self.last_event_ts = event.ts();
        if let Some(ts) = self.last_event_ts {
            self.metrics.last_event_ns.store(ts.nanos(), Ordering::Relaxed);
        }
        let mut bar_events = std::mem::take(&mut self.bar_events);
        self.aggregator.on_event(&event, &mut |e| bar_events.push(e));
        let result = self.handle_bar_events(&mut bar_events).await;
        self.bar_events = bar_events;
        result?;
        self.maybe_publish_market_batch();
        if self.status_clock.events.is_multiple_of(4096) {
            self.maybe_publish_status();
            if self.last_flush.elapsed() >= self.config.flush_every && !self.pending_steps.is_empty() {
                self.flush().await?;
            }
        }
        Ok(())
    }

    async fn close_forming_bar(&mut self) -> Result<(), EngineError> {
        let mut bar_events = std::mem::take(&mut self.bar_events);
        self.aggregator.finish(&mut |e| bar_events.push(e));
        let result = self.handle_bar_events(&mut bar_events).await;
        self.bar_events = bar_events;
        result
    }

    async fn handle_bar_events(&mut self, events: &mut Vec<BarEvent>) -> Result<(), EngineError> {
        for event in events.drain(..) {
            match event {
                BarEvent::Forming(bar) => {
                    self.broker.mark(bar.close);
                    self.publish_bar(bar, false);
                }
                BarEvent::Gap { from, to, missing } => {
                    self.metrics.gaps.fetch_add(1, Ordering::Relaxed);
                    self.pending_gap = Some(Gap { from, to, missing });
                    let _ = self.bus.events.send(EngineEvent::Gap { from, to, missing });
                }
                BarEvent::Closed(bar) => {
                    self.on_closed_bar(bar).await;
                    // On a live feed the ticker flushes within `flush_every`, so a fill is stored and
                    // announced promptly; at replay speed, batches fill up instead.
                    if self.pending_steps.len() >= self.config.flush_steps {
                        self.flush().await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The heart of the engine: one closed bar through strategy and broker.
    async fn on_closed_bar(&mut self, bar: Bar) {
        self.bars_seen += 1;
        self.last_bar_ts = Some(bar.ts);
        self.metrics.bars_closed.fetch_add(1, Ordering::Relaxed);
        let signal = self.strategy.on_bar(&bar);
        self.broker.mark(bar.close);
        let change = signal.as_i8() - self.signal.as_i8();
        let order = self.rule.order(self.bars_seen, self.signal, signal);
        self.signal = signal;
        let refused = self.guard_refuses(bar.ts, order);

        let mut filled = None;
        if let Some(order) = order
            && !self.paused
            && !refused
        {
            // A stop fills at its own price (the strategy says so); everything else at the close.
            let price = self.strategy.fill_price().unwrap_or(bar.close);
            // An entry's stop and target prices go with it: a broker may place them at the
            // exchange (`--stops exchange`).
            if order > 0
                && let Some(plan) = self.strategy.exit_plan()
            {
                self.broker.plan_exits(plan);
            }
            filled = self.broker.follow(order, bar.ts, price);
            // A broker whose answer comes from its own tasks on this thread: the engine yields
            // to them, and goes on with the answer.
            if filled.is_none()
                && let Some(answer) = self.broker.answer()
            {
                filled = answer.await;
            }
        }
        let account = self.broker.account();
        let execution = filled.map(|(order, fill)| {
            Box::new(Execution {
                order,
                fill,
                account: account.snapshot(bar.ts),
            })
        });
        let snapshot = self
            .bars_seen
            .is_multiple_of(self.config.snapshot_every_bars)
            .then(|| Box::new(account.snapshot(bar.ts)));
        let signal_change = (change != 0).then_some(SignalChange {
            ts: bar.ts,
            signal: signal.as_i8(),
            change,
        });

        self.publish_bar(bar, true);
        if let Some(s) = signal_change {
            self.emit_market(EngineEvent::Signal {
                ts: s.ts,
                signal: s.signal,
                change: s.change,
            });
        }
        self.publish_status_on_halt_change();
        self.pending_steps.push(Step {
            bar: Some(bar),
            gap: self.pending_gap.take(),
            signal: signal_change,
            execution,
            snapshot,
            progress: Progress {
                last_bar_ts: Some(bar.ts),
                bars_seen: self.bars_seen,
                signal: signal.as_i8(),
                next_order_id: self.broker.next_order_id(),
            },
        });
        self.metrics.steps_produced.fetch_add(1, Ordering::Relaxed);
    }

    /// Feeds the protections this close's equity; whether they refuse `order` (an entry).
    fn guard_refuses(&mut self, ts: Timestamp, order: Option<i8>) -> bool {
        let Some(guard) = &mut self.guard else {
            return false;
        };
        let was_halted = guard.halts_entries();
        if let Some(halt) = guard.observe(ts, self.broker.account().equity()) {
            tracing::warn!("protection: {halt}");
        }
        let refuses = order == Some(1) && guard.halts_entries();
        if refuses {
            guard.refuse_entry();
            tracing::info!("entry at {ts} refused: {}", guard.reason().unwrap_or_default());
        }
        if was_halted != guard.halts_entries() {
            // The dashboard's halt banner changes now, not at the next status.
            self.publish_status();
        }
        refuses
    }

    async fn on_control(&mut self, control: Control) -> Result<ControlReply, EngineError> {
        let mut order_id = None;
        let message = match control {
            Control::Pause | Control::Resume => {
                let pause = matches!(control, Control::Pause);
                if self.paused != pause {
                    self.paused = pause;
                    self.metrics.paused.store(pause, Ordering::Relaxed);
                    let _ = self.bus.events.send(EngineEvent::Trading { paused: pause });
                    tracing::info!("trading {} on request", if pause { "paused" } else { "resumed" });
                }
                if !pause {
                    // Resume also lifts a live broker's risk halt (a person decided); the status
                    // goes out now, so the dashboard's halt banner goes without waiting for the
                    // next one.
                    let halted = self.broker.venue().is_some_and(|v| v.halted.is_some());
                    self.broker.resume();
                    let lifted = self.guard.as_mut().is_some_and(Guard::resume);
                    if lifted {
                        tracing::info!("protections: halt lifted by a Resume");
                    }
                    if halted || lifted {
                        self.publish_status();
                    }
                }
                if pause {
                    "trading paused: signals are followed but no orders are placed".to_owned()
                } else {
                    "trading active".to_owned()
                }
            }
            Control::Flatten => {
                let handed_over = self.broker.next_order_id();
                match self.flatten().await {
                    Some(id) => {
                        order_id = Some(id);
                        // Stored now, so the fill is durable and announced promptly.
                        self.flush().await?;
                        format!("order {id} sells the whole position at the last price")
                    }
                    // A live broker hands the order to the exchange; its fill follows.
                    None if self.broker.next_order_id() > handed_over => {
                        order_id = Some(handed_over);
                        format!("order {handed_over} sells the whole position: sent to the exchange, its fill follows")
                    }
                    None if self.broker.account().position() > Decimal::ZERO => {
                        "the position could not be sold now: see the log".to_owned()
                    }
                    None => "no position to flatten".to_owned(),
                }
            }
        };
        Ok(ControlReply {
            paused: self.paused,
            order_id,
            message,
        })
    }

    /// Sells the whole position at the last price, as a step of its own (no bar).
    async fn flatten(&mut self) -> Option<u64> {
        let price = self.broker.account().last_price()?;
        let ts = self.last_event_ts.or(self.last_bar_ts)?;
        let mut filled = self.broker.exit(ts, price, OrderReason::Flatten);
        if filled.is_none()
            && let Some(answer) = self.broker.answer()
        {
            filled = answer.await;
        }
        let (order, fill) = filled?;
        let id = order.id;
        let account = self.broker.account().snapshot(ts);
        self.pending_steps.push(Step {
            bar: None,
            gap: None,
            signal: None,
            execution: Some(Box::new(Execution { order, fill, account })),
            snapshot: None,
            progress: Progress {
                last_bar_ts: self.last_bar_ts,
                bars_seen: self.bars_seen,
                signal: self.signal.as_i8(),
                next_order_id: self.broker.next_order_id(),
            },
        });
        self.metrics.steps_produced.fetch_add(1, Ordering::Relaxed);
        Some(id)
    }

    /// Fills a live broker learned after its orders left: each a step of its own (no bar),
    /// stored now so it is durable and announced promptly.
    async fn on_broker_fills(&mut self) -> Result<(), EngineError> {
        if self.take_broker_fills() > 0 {
            self.flush().await?;
            self.publish_status();
        }
        Ok(())
    }

    fn take_broker_fills(&mut self) -> usize {
        let fills = self.broker.poll();
        let count = fills.len();
        for (order, fill) in fills {
            let account = self.broker.account().snapshot(fill.ts);
            self.pending_steps.push(Step {
                bar: None,
                gap: None,
                signal: None,
                execution: Some(Box::new(Execution { order, fill, account })),
                snapshot: None,
                progress: Progress {
                    last_bar_ts: self.last_bar_ts,
                    bars_seen: self.bars_seen,
                    signal: self.signal.as_i8(),
                    next_order_id: self.broker.next_order_id(),
                },
            });
            self.metrics.steps_produced.fetch_add(1, Ordering::Relaxed);
        }
        count
    }

    fn publish_bar(&mut self, bar: Bar, closed: bool) {
        if self.bus.market.receiver_count() > 0 {
            let account = self.broker.account();
            let event = EngineEvent::Bar {
                bar,
                closed,
                lines: self.strategy.line_values(),
                equity: account.equity(),
                position: account.position(),
            };
            self.market_batch.push(event);
        }
    }

    /// Queues a market event for observers; nothing is kept when nobody observes.
    fn emit_market(&mut self, event: EngineEvent) {
        if self.bus.market.receiver_count() > 0 {
            self.market_batch.push(event);
        }
    }

    fn maybe_publish_market_batch(&mut self) {
        if !self.market_batch.is_empty()
            && (self.market_batch.len() >= MARKET_BATCH_MAX || self.last_market_publish.elapsed() >= MARKET_BATCH_GAP)
        {
            self.publish_market_batch();
        }
    }

    fn publish_market_batch(&mut self) {
        self.last_market_publish = Instant::now();
        if !self.market_batch.is_empty() {
            let batch: MarketBatch = std::mem::take(&mut self.market_batch).into();
            let _ = self.bus.market.send(batch);
        }
    }

    async fn flush(&mut self) -> Result<(), EngineError> {
        self.last_flush = Instant::now();
        if self.pending_steps.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.pending_steps, Vec::with_capacity(self.config.flush_steps));
        self.store
            .send(StoreCmd::Steps(batch))
            .await
            .map_err(|_| EngineError::StoreGone("its queue closed".into()))
    }

    async fn finish(&mut self, status: RunStatus) -> Result<(), EngineError> {
        self.publish_market_batch();
        // A live broker cancels what rests (--cancel-on-exit); the fills it learns are stored.
        // Awaited, not waited for: the broker's tasks may run on this very thread.
        self.broker.stop_async().await;
        self.take_broker_fills();
        self.flush().await?;
        let (done, stored) = oneshot::channel();
        self.store
            .send(StoreCmd::Finish { status, done })
            .await
            .map_err(|_| EngineError::StoreGone("its queue closed".into()))?;
        stored
            .await
            .map_err(|_| EngineError::StoreGone("it did not confirm the final write".into()))?;
        self.publish_status();
        let _ = self.bus.events.send(EngineEvent::Finished {
            status: status.as_str(),
        });
        Ok(())
    }

    /// A live broker's halt (or its end) is shown at once, not at the next status.
    fn publish_status_on_halt_change(&mut self) {
        if self.broker_updates.is_none() {
            return;
        }
        let halted = self.broker.venue().is_some_and(|v| v.halted.is_some());
        if halted != self.halt_shown {
            self.publish_status();
        }
    }

    fn maybe_publish_status(&mut self) {
        if self.status_clock.since.elapsed() >= self.config.status_every {
            self.publish_status();
        }
    }

    fn publish_status(&mut self) {
        let elapsed = self.status_clock.since.elapsed().as_secs_f64().max(1e-9);
        let account = self.broker.account();
        let produced = self.metrics.steps_produced.load(Ordering::Relaxed);
        let stored = self.metrics.steps_stored.load(Ordering::Relaxed);
        let report = StatusReport {
            events_per_sec: self.status_clock.events as f64 / elapsed,
            bars: self.bars_seen,
            fills: self.metrics.fills_stored.load(Ordering::Relaxed),
            equity: account.equity(),
            position: account.position(),
            feed_lag_ms: self
                .last_event_ts
                .map(|ts| (Timestamp::now().nanos() - ts.nanos()) / 1_000_000),
            data_ts: self.last_event_ts,
            store_lag_steps: produced.saturating_sub(stored),
            venue: self.broker.venue(),
            protection: self.guard.as_ref().and_then(Guard::reason),
        };
        self.halt_shown = report.venue.as_ref().is_some_and(|v| v.halted.is_some());
        let _ = self.bus.events.send(EngineEvent::Status(report));
        self.status_clock = StatusClock::new();
    }
}

/// Returns when the broker has fills to give; never for a broker without updates (paper).
async fn broker_update(updates: &Option<Arc<Notify>>) {
    match updates {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The next control request, or never when there is no controller (or it went away).
async fn next_control(controls: &mut Option<mpsc::Receiver<ControlRequest>>) -> Option<ControlRequest> {
    match controls {
        Some(rx) => match rx.recv().await {
            Some(request) => Some(request),
            None => {
                *controls = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

struct StatusClock {
    since: Instant,
    events: u64,
}

impl StatusClock {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            events: 0,
        }
    }
}

/// The store writer's hooks: count what is durable and only then announce fills; keep the
/// store's health where the dashboard and /metrics read it, and announce an outage and its end
/// (once each: the writer also reports a changed reason mid-outage).
pub fn writer_hooks(events: broadcast::Sender<EngineEvent>, metrics: Arc<Metrics>) -> WriterHooks {
    let health = metrics.clone();
    let health_events = events.clone();
    let on_health = Box::new(move |error: Option<&str>| {
        let was_failing = health.store_error().is_some();
        if error.is_some() && !was_failing {
            health.store_outages.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut slot) = health.store_error.lock() {
            *slot = error.map(str::to_owned);
        }
        // After the slot is set, so an observer reading the metrics on this event sees the change.
        // A broadcast send never waits, so the writer (and the engine behind it) never does.
        match error {
            Some(why) if !was_failing => {
                let _ = health_events.send(EngineEvent::Store {
                    healthy: false,
                    detail: why.to_owned(),
                });
            }
            None if was_failing => {
                let _ = health_events.send(EngineEvent::Store {
                    healthy: true,
                    detail: "store writes work again; nothing was lost".to_owned(),
                });
            }
            _ => {}
        }
    });
    let on_commit = Box::new(move |batches: &[Vec<Step>], took: Duration| {
        metrics.store_commits.fetch_add(1, Ordering::Relaxed);
        metrics
            .store_write_nanos
            .fetch_add(took.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        let steps: usize = batches.iter().map(Vec::len).sum();
        metrics.steps_stored.fetch_add(steps as u64, Ordering::Relaxed);
        for step in batches.iter().flatten() {
            if let Some(execution) = &step.execution {
                metrics.fills_stored.fetch_add(1, Ordering::Relaxed);
                let Execution { order, fill, account } = execution.as_ref().clone();
                let _ = events.send(EngineEvent::Fill { order, fill, account });
            }
        }
    });
    WriterHooks { on_commit, on_health }
}

#[cfg(test)]
mod tests;
