//! The engine driven by an in-memory source, with a real store in a temporary directory: what
//! it trades and when, pause and resume, flatten, gap marking, and the store-failure path.
//!
//! Tests wait on conditions (bus events, control replies), each with a generous timeout, never
//! on a wall-clock budget: they must pass on a loaded two-core machine.

use std::collections::VecDeque;
use std::path::Path;

use nanotrader_broker::{BrokerConfig, PaperBroker, Sizing};
use nanotrader_market::{Side, SourceInfo};
use nanotrader_store::WriterStats;
use nanotrader_store::{DataDirLock, NewRun, Store, StoreError, StoreWriter};
use nanotrader_strategy::MAX_LINES;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::*;

/// How long any one awaited condition may take before the test fails: generous, since the
/// machine may be loaded; a passing test never waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// 2024-01-01 00:00:00 UTC: the first bar's open time.
const T0: Timestamp = Timestamp::from_secs(1_704_067_200);

const RUN_KEY: &str = "engine-test";

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The open time of the bar `minute` minutes after `T0`.
fn at(minute: i64) -> Timestamp {
    T0.add_secs(minute * 60)
}

/// A one-minute bar that traded at one price.
fn bar(minute: i64, price: &str) -> Bar {
    let price = d(price);
    Bar {
        ts: at(minute),
        open: price,
        high: price,
        low: price,
        close: price,
        volume: Decimal::ONE,
        trades: 1,
    }
}

/// A source fed through a channel: every event the test sends, in order, then the end once the
/// test drops the sender. Its one-minute bars pass the aggregator unchanged, each closed at once.
struct ChannelSource {
    info: SourceInfo,
    events: mpsc::UnboundedReceiver<MarketEvent>,
}

impl ChannelSource {
    /// A source paced by the test: it waits for each event the test sends.
    fn paced() -> (mpsc::UnboundedSender<MarketEvent>, Self) {
        let (feed, events) = mpsc::unbounded_channel();
        let info = SourceInfo {
            kind: "test",
            identity: "test:bars".into(),
            pair: "BTC/USD".into(),
            finite: true,
            bar_interval: Some(Interval::ONE_MINUTE),
        };
        (feed, Self { info, events })
    }

    /// A finite source of these bars, ending after the last.
    fn of_bars(bars: &[Bar]) -> Self {
        let (feed, source) = Self::paced();
        for bar in bars {
            feed.send(MarketEvent::Bar(*bar)).unwrap();
        }
        source
    }
}

impl Source for ChannelSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    // Cancel-safe as the trait asks: an unbounded receiver loses nothing when a `recv` is dropped.
    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        Ok(self.events.recv().await)
    }
}

/// A strategy that answers each closed bar with the next signal of its script.
struct Scripted {
    signals: VecDeque<Signal>,
}

impl Strategy for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn line_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn on_bar(&mut self, bar: &Bar) -> Signal {
        self.signals
            .pop_front()
            .unwrap_or_else(|| panic!("no signal scripted for the bar at {}", bar.ts))
    }
    fn line_values(&self) -> LineValues {
        [None; MAX_LINES]
    }
}

/// 10 000 in cash, a fee of 0.1 % and two units per entry: fills with figures checked by hand.
fn broker_config() -> BrokerConfig {
    BrokerConfig {
        initial_cash: d("10000"),
        fee_rate: d("0.001"),
        sizing: Sizing::Fixed(d("2")),
        qty_step: d("0.01"),
    }
}

fn engine_config(decide_from_bar: u64) -> EngineConfig {
    EngineConfig {
        interval: Interval::ONE_MINUTE,
        decide_from_bar,
        snapshot_every_bars: 1_000,
        // No status reports in the way of the events the tests wait for.
        status_every: Duration::from_secs(3_600),
        flush_every: Duration::from_millis(20),
        flush_steps: 2_048,
    }
}

/// A fill as the broker books it: what the tests expect, to the last digit.
#[allow(clippy::too_many_arguments)]
fn fill(order_id: u64, minute: i64, side: Side, price: &str, fee: &str, cash: &str, position: &str, pnl: &str) -> Fill {
    Fill {
        order_id,
        ts: at(minute),
        side,
        qty: d("2"),
        price: d(price),
        fee: d(fee),
        cash_after: d(cash),
        position_after: d(position),
        realized_pnl: d(pnl),
    }
}

/// Everything around one engine: a real store and its writer thread in a temporary directory,
/// the bus and receivers subscribed before the engine starts.
struct Rig {
    _dir: tempfile::TempDir,
    /// Holds the data directory's write lock, as the binary's store does; the tests read through it.
    store: Store,
    run_id: i64,
    series_id: i64,
    metrics: Arc<Metrics>,
    writer: Option<StoreWriter>,
    /// For waiting on events as they come.
    events: broadcast::Receiver<EngineEvent>,
    /// Every event, read only once the run is over.
    log: broadcast::Receiver<EngineEvent>,
    market: broadcast::Receiver<MarketBatch>,
    shutdown: watch::Sender<bool>,
}

impl Rig {
    fn new(decide_from_bar: u64, signals: &[Signal]) -> (Self, Engine) {
        Self::with_store(decide_from_bar, signals, |_| {})
    }

    /// `prepare` gets the store file once its schema is there, before the writer opens it.
    fn with_store(decide_from_bar: u64, signals: &[Signal], prepare: impl FnOnce(&Path)) -> (Self, Engine) {
        Self::with_broker(decide_from_bar, signals, prepare, PaperBroker::new(broker_config()))
    }

    fn with_broker(
        decide_from_bar: u64,
        signals: &[Signal],
        prepare: impl FnOnce(&Path),
        broker: impl Broker + 'static,
    ) -> (Self, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let store = Store::open(&lock).unwrap();
        let series_id = store.series_id("test:bars", "BTC/USD", Interval::ONE_MINUTE).unwrap();
        let run = store
            .create_run(&NewRun {
                run_key: RUN_KEY,
                series_id,
                config: "{}",
                source_params: "{}",
                initial_cash: broker_config().initial_cash,
            })
            .unwrap();
        prepare(store.path());

        let bus = Bus::new();
        let metrics = Arc::new(Metrics::default());
        let (store_tx, store_rx) = mpsc::channel(STORE_QUEUE_BATCHES);
        let writer = StoreWriter::spawn(
            store.path(),
            run.id,
            series_id,
            store_rx,
            writer_hooks(bus.events.clone(), metrics.clone()),
        )
        .unwrap();
        let rig = Rig {
            events: bus.events.subscribe(),
            log: bus.events.subscribe(),
            market: bus.market.subscribe(),
            _dir: dir,
            store,
            run_id: run.id,
            series_id,
            metrics: metrics.clone(),
            writer: Some(writer),
            shutdown: watch::channel(false).0,
        };
        let strategy = Box::new(Scripted {
            signals: signals.iter().copied().collect(),
        });
        let engine = Engine::new(
            engine_config(decide_from_bar),
            BarAggregator::new(Interval::ONE_MINUTE, Some(Interval::ONE_MINUTE)),
            strategy,
            broker,
            ResumeState::default(),
            EngineOutputs {
                bus,
                store: store_tx,
                metrics,
            },
        );
        (rig, engine)
    }

    /// Runs the engine over the source to its end, with nothing else going on.
    async fn run_to_end(&self, engine: &mut Engine, source: &mut ChannelSource) -> Result<Outcome, EngineError> {
        tokio::time::timeout(PATIENCE, engine.run(source, self.shutdown.subscribe()))
            .await
            .expect("the engine finishes its source")
    }

    /// Drops the engine (closing the store queue, as the binary does) and waits for the writer.
    fn stop(&mut self, engine: Engine) -> Result<WriterStats, StoreError> {
        drop(engine);
        self.writer.take().expect("stopped once").join()
    }

    /// The next event matching `found`, skipping others.
    async fn event<R>(&mut self, what: &str, found: impl FnMut(&EngineEvent) -> Option<R>) -> R {
        wait_for(&mut self.events, what, found).await
    }

    /// Waits until the engine has closed the bar at `minute`; the position held after it.
    async fn closed_bar(&mut self, minute: i64) -> Decimal {
        let ts = at(minute);
        wait_for(&mut self.market, &format!("the bar at {ts} closed"), |batch| {
            batch.iter().find_map(|event| match event {
                EngineEvent::Bar {
                    bar,
                    closed: true,
                    position,
                    ..
                } if bar.ts == ts => Some(*position),
                _ => None,
            })
        })
        .await
    }

    /// Waits for the announcement of the fill of order `id`.
    async fn fill_announced(&mut self, id: u64) -> (Order, Fill) {
        self.event(&format!("the fill of order {id}"), |event| match event {
            EngineEvent::Fill { order, fill, .. } if order.id == id => Some((order.clone(), fill.clone())),
            _ => None,
        })
        .await
    }

    /// Every event published, once the run is over.
    fn all_events(&mut self) -> Vec<EngineEvent> {
        drain(&mut self.log)
    }

    /// The signal changes published on the market topic, as (minute, signal, change).
    fn signals_published(&mut self) -> Vec<(i64, i8, i8)> {
        drain(&mut self.market)
            .iter()
            .flat_map(|batch| batch.iter())
            .filter_map(|event| match event {
                EngineEvent::Signal { ts, signal, change } => Some(((ts.secs() - T0.secs()) / 60, *signal, *change)),
                _ => None,
            })
            .collect()
    }

    fn stored_fills(&self) -> Vec<Fill> {
        self.store.fills(self.run_id).unwrap()
    }
}

/// The fills announced on the bus, in order.
fn announced_fills(events: &[EngineEvent]) -> Vec<Fill> {
    events
        .iter()
        .filter_map(|event| match event {
            EngineEvent::Fill { fill, .. } => Some(fill.clone()),
            _ => None,
        })
        .collect()
}

async fn wait_for<T: Clone, R>(
    rx: &mut broadcast::Receiver<T>,
    what: &str,
    mut found: impl FnMut(&T) -> Option<R>,
) -> R {
    let search = async {
        loop {
            match rx.recv().await {
                Ok(item) => {
                    if let Some(result) = found(&item) {
                        return result;
                    }
                }
                Err(RecvError::Lagged(n)) => panic!("the test fell {n} messages behind while waiting for {what}"),
                Err(RecvError::Closed) => panic!("the bus closed before {what}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, search)
        .await
        .unwrap_or_else(|_| panic!("no sign of {what} after {PATIENCE:?}"))
}

/// Whatever the receiver holds now.
fn drain<T: Clone>(rx: &mut broadcast::Receiver<T>) -> Vec<T> {
    let mut items = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(item) => items.push(item),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return items,
            Err(TryRecvError::Lagged(n)) => panic!("the test missed {n} messages"),
        }
    }
}

async fn send_control(controls: &mpsc::Sender<ControlRequest>, control: Control) -> ControlReply {
    let (reply, answer) = oneshot::channel();
    controls
        .send((control, reply))
        .await
        .expect("the engine takes controls");
    tokio::time::timeout(PATIENCE, answer)
        .await
        .expect("the engine answers a control")
        .expect("the engine answers rather than dropping the request")
}

/// One bar per signal, at these closes, through a run deciding from `decide_from_bar`: the fills
/// stored, after checking that exactly those were announced, and the signal changes published.
async fn trades_of(decide_from_bar: u64, script: &[(&str, Signal)]) -> (Vec<Fill>, Vec<(i64, i8, i8)>) {
    let signals: Vec<Signal> = script.iter().map(|(_, signal)| *signal).collect();
    let bars: Vec<Bar> = script
        .iter()
        .enumerate()
        .map(|(i, (close, _))| bar(i as i64, close))
        .collect();
    let (mut rig, mut engine) = Rig::new(decide_from_bar, &signals);
    let mut source = ChannelSource::of_bars(&bars);
    let outcome = rig.run_to_end(&mut engine, &mut source).await.unwrap();
    assert_eq!(outcome, Outcome::Completed);
    rig.stop(engine).unwrap();

    let run = rig.store.run(rig.run_id).unwrap().unwrap();
    assert_eq!(run.status, nanotrader_store::RunStatus::Completed);
    assert_eq!(run.bars_seen, bars.len() as u64);
    let stored = rig.stored_fills();
    assert_eq!(
        announced_fills(&rig.all_events()),
        stored,
        "announced exactly what was stored"
    );
    assert_eq!(run.next_order_id, stored.len() as u64 + 1);
    (stored, rig.signals_published())
}

#[tokio::test]
async fn signal_changes_before_the_decide_from_bar_are_not_traded() {
    use Signal::{Flat, Long};
    // The signal goes long at bar 2, one bar before decisions start: no order. It goes flat at
    // bar 3 (nothing to sell) and long again at bar 4, which is traded, as is the exit at bar 5.
    let script = [
        ("100", Flat),
        ("101", Long),
        ("102", Flat),
        ("104", Long),
        ("110", Flat),
    ];
    let (fills, signals) = trades_of(3, &script).await;
    assert_eq!(
        fills,
        [
            fill(1, 3, Side::Buy, "104", "0.208", "9791.792", "2", "0"),
            fill(2, 4, Side::Sell, "110", "0.22", "10011.572", "0", "11.572"),
        ]
    );
    // Every change is published, traded or not.
    assert_eq!(signals, [(1, 1, 1), (2, 0, -1), (3, 1, 1), (4, 0, -1)]);
}

#[tokio::test]
async fn a_signal_change_on_the_decide_from_bar_itself_is_traded() {
    use Signal::{Flat, Long};
    let script = [("100", Flat), ("101", Flat), ("102", Long), ("110", Flat)];
    let (fills, signals) = trades_of(3, &script).await;
    assert_eq!(
        fills,
        [
            fill(1, 2, Side::Buy, "102", "0.204", "9795.796", "2", "0"),
            fill(2, 3, Side::Sell, "110", "0.22", "10015.576", "0", "15.576"),
        ]
    );
    assert_eq!(signals, [(2, 1, 1), (3, 0, -1)]);
}

#[tokio::test]
async fn a_pause_stops_new_orders_while_bars_keep_coming_and_a_resume_trades_again() {
    use Signal::{Flat, Long};
    let (mut rig, engine) = Rig::new(1, &[Long, Flat, Long, Flat]);
    let (controls, requests) = mpsc::channel(8);
    let mut engine = engine.with_controls(requests);
    let (feed, mut source) = ChannelSource::paced();
    let shutdown = rig.shutdown.subscribe();
    let metrics = rig.metrics.clone();

    let script = async {
        let reply = send_control(&controls, Control::Pause).await;
        assert!(reply.paused);
        assert_eq!(reply.order_id, None);
        assert_eq!(
            reply.message,
            "trading paused: signals are followed but no orders are placed"
        );
        assert!(metrics.paused.load(Ordering::Relaxed), "set before the answer");
        rig.event("trading paused", |e| {
            matches!(e, EngineEvent::Trading { paused: true }).then_some(())
        })
        .await;

        // Long, then flat, while paused: both bars close, no order is placed.
        feed.send(MarketEvent::Bar(bar(0, "100"))).unwrap();
        assert_eq!(
            rig.closed_bar(0).await,
            Decimal::ZERO,
            "no position bought while paused"
        );
        feed.send(MarketEvent::Bar(bar(1, "101"))).unwrap();
        assert_eq!(rig.closed_bar(1).await, Decimal::ZERO);

        let reply = send_control(&controls, Control::Resume).await;
        assert!(!reply.paused);
        assert_eq!(reply.message, "trading active");
        assert!(!metrics.paused.load(Ordering::Relaxed));

        // The next rise is traded again, and so is the fall after it.
        feed.send(MarketEvent::Bar(bar(2, "102"))).unwrap();
        assert_eq!(rig.closed_bar(2).await, d("2"));
        feed.send(MarketEvent::Bar(bar(3, "110"))).unwrap();
        assert_eq!(rig.closed_bar(3).await, Decimal::ZERO);
        drop(feed);
    };
    let (outcome, ()) = tokio::join!(engine.run(&mut source, shutdown), script);
    assert_eq!(outcome.unwrap(), Outcome::Completed);
    rig.stop(engine).unwrap();

    let expected = [
        fill(1, 2, Side::Buy, "102", "0.204", "9795.796", "2", "0"),
        fill(2, 3, Side::Sell, "110", "0.22", "10015.576", "0", "15.576"),
    ];
    assert_eq!(rig.stored_fills(), expected);
    let events = rig.all_events();
    assert_eq!(announced_fills(&events), expected);
    let trading: Vec<bool> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Trading { paused } => Some(*paused),
            _ => None,
        })
        .collect();
    assert_eq!(trading, [true, false]);
    // The paused bars were stored like any other.
    let stored_bars = rig.store.bars_page(rig.series_id, at(0), at(3), 10, false).unwrap();
    assert_eq!(
        stored_bars,
        [bar(0, "100"), bar(1, "101"), bar(2, "102"), bar(3, "110")]
    );
}

/// Paper books behind a halt a person lifts, as a live broker's rail does: what the engine must
/// do with a broker's halt is the same whoever raised it.
struct Halting {
    paper: PaperBroker,
    halted: Option<String>,
}

impl Broker for Halting {
    fn mark(&mut self, price: Decimal) {
        self.paper.mark(price);
    }
    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        self.paper.follow(change, ts, price)
    }
    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        self.paper.exit(ts, price, reason)
    }
    fn account(&self) -> &nanotrader_broker::Account {
        self.paper.account()
    }
    fn next_order_id(&self) -> u64 {
        self.paper.next_order_id()
    }
    fn resume(&mut self) {
        self.halted = None;
    }
    fn venue(&self) -> Option<VenueView> {
        Some(VenueView {
            broker: "kraken".into(),
            live: true,
            halted: self.halted.clone(),
            stops: None,
            ..VenueView::default()
        })
    }
}

#[tokio::test]
async fn a_resume_lifts_the_brokers_halt_and_the_status_says_so_at_once() {
    let broker = Halting {
        paper: PaperBroker::new(broker_config()),
        halted: Some("daily loss over the limit".into()),
    };
    let (mut rig, engine) = Rig::with_broker(1, &[], |_| {}, broker);
    let (controls, requests) = mpsc::channel(8);
    let mut engine = engine.with_controls(requests);
    let (feed, mut source) = ChannelSource::paced();
    let shutdown = rig.shutdown.subscribe();
    assert!(engine.broker().venue().unwrap().halted.is_some());

    let script = async {
        // Not paused, yet halted: the Resume is for the halt. The status comes at once (the
        // tests' regular ones come hourly), before the source ends and its last one.
        let reply = send_control(&controls, Control::Resume).await;
        assert!(!reply.paused);
        let venue = rig
            .event("a status after the Resume", |event| match event {
                EngineEvent::Status(report) => Some(report.venue.clone()),
                _ => None,
            })
            .await
            .expect("a broker with a venue shows it");
        assert_eq!(venue.halted, None, "the halt is lifted");
        assert_eq!(venue.broker, "kraken");
        drop(feed);
    };
    let (outcome, ()) = tokio::join!(engine.run(&mut source, shutdown), script);
    assert_eq!(outcome.unwrap(), Outcome::Completed);
    assert_eq!(engine.broker().venue().unwrap().halted, None);
    rig.stop(engine).unwrap();
}

#[tokio::test]
async fn flatten_sells_the_whole_position_at_the_last_price() {
    use Signal::{Flat, Long};
    let (mut rig, engine) = Rig::new(1, &[Long, Long, Flat]);
    let (controls, requests) = mpsc::channel(8);
    let mut engine = engine.with_controls(requests);
    let (feed, mut source) = ChannelSource::paced();
    let shutdown = rig.shutdown.subscribe();

    let script = async {
        feed.send(MarketEvent::Bar(bar(0, "100"))).unwrap();
        let (entry, _) = rig.fill_announced(1).await;
        assert_eq!(entry.reason, OrderReason::Entry);
        // Still long at 105: no trade, but the last price moves there.
        feed.send(MarketEvent::Bar(bar(1, "105"))).unwrap();
        assert_eq!(rig.closed_bar(1).await, d("2"));

        let reply = send_control(&controls, Control::Flatten).await;
        assert_eq!(reply.order_id, Some(2));
        assert_eq!(reply.message, "order 2 sells the whole position at the last price");
        assert!(!reply.paused);
        let (order, fill) = rig.fill_announced(2).await;
        assert_eq!(
            (order.side, order.qty, order.reason, order.ts),
            (Side::Sell, d("2"), OrderReason::Flatten, at(1))
        );
        assert_eq!(fill.side, Side::Sell);

        let reply = send_control(&controls, Control::Flatten).await;
        assert_eq!(reply.order_id, None);
        assert_eq!(reply.message, "no position to flatten");

        // The signal's own exit then finds nothing to sell.
        feed.send(MarketEvent::Bar(bar(2, "106"))).unwrap();
        assert_eq!(rig.closed_bar(2).await, Decimal::ZERO);
        drop(feed);
    };
    let (outcome, ()) = tokio::join!(engine.run(&mut source, shutdown), script);
    assert_eq!(outcome.unwrap(), Outcome::Completed);
    rig.stop(engine).unwrap();

    let expected = [
        fill(1, 0, Side::Buy, "100", "0.2", "9799.8", "2", "0"),
        fill(2, 1, Side::Sell, "105", "0.21", "10009.59", "0", "9.59"),
    ];
    assert_eq!(rig.stored_fills(), expected);
    assert_eq!(announced_fills(&rig.all_events()), expected);
    let reasons: Vec<_> = rig
        .store
        .fills_page(rig.run_id, None, 10)
        .unwrap()
        .into_iter()
        .map(|(_, reason)| reason)
        .collect();
    assert_eq!(reasons, [Some(OrderReason::Entry), Some(OrderReason::Flatten)]);
    let run = rig.store.run(rig.run_id).unwrap().unwrap();
    assert_eq!(
        (run.bars_seen, run.next_order_id),
        (3, 3),
        "the flatten is a step without a bar"
    );
}

#[tokio::test]
async fn a_gap_in_the_bars_is_announced_and_stored() {
    use Signal::Flat;
    // Minutes 2 and 3 are missing.
    let (mut rig, mut engine) = Rig::new(1, &[Flat; 4]);
    let mut source = ChannelSource::of_bars(&[bar(0, "100"), bar(1, "101"), bar(4, "104"), bar(5, "105")]);
    let outcome = rig.run_to_end(&mut engine, &mut source).await.unwrap();
    assert_eq!(outcome, Outcome::Completed);
    rig.stop(engine).unwrap();

    let gaps: Vec<_> = rig
        .all_events()
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Gap { from, to, missing } => Some((from, to, missing)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps, [(at(2), at(4), 2)]);
    assert_eq!(rig.metrics.gaps.load(Ordering::Relaxed), 1);

    let summary = rig.store.series_summary(rig.series_id).unwrap();
    assert_eq!((summary.bars, summary.gaps, summary.missing_intervals), (4, 1, 2));
    let conn = rusqlite::Connection::open(rig.store.path()).unwrap();
    let stored: (i64, i64, i64) = conn
        .query_row("SELECT from_ts, to_ts, missing FROM gaps", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(stored, (at(2).millis(), at(4).millis(), 2));
}

#[tokio::test]
async fn a_store_that_refuses_a_write_stops_the_run_and_nothing_unstored_is_announced() {
    use Signal::{Flat, Long};
    // A real SQLite failure that waiting cannot cure: the second fill breaks a constraint.
    let refuse_second_fill = |path: &Path| {
        rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse_second_fill BEFORE INSERT ON fills WHEN NEW.order_id = 2
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .unwrap();
    };
    let (mut rig, mut engine) = Rig::with_store(1, &[Long, Flat], refuse_second_fill);
    let (feed, mut source) = ChannelSource::paced();
    let shutdown = rig.shutdown.subscribe();

    let script = async {
        feed.send(MarketEvent::Bar(bar(0, "100"))).unwrap();
        rig.fill_announced(1).await;
        // The exit's step cannot be written; then the source ends and the engine finishes.
        feed.send(MarketEvent::Bar(bar(1, "110"))).unwrap();
        rig.closed_bar(1).await;
        drop(feed);
    };
    let (result, ()) = tokio::join!(engine.run(&mut source, shutdown), script);
    let error = result.expect_err("the engine stops when the store writer gives up");
    assert!(matches!(error, EngineError::StoreGone(_)), "{error:?}");

    let error = rig
        .stop(engine)
        .expect_err("the writer reports why it gave up")
        .to_string();
    assert!(error.contains("refused by the test"), "{error}");
    assert!(
        error.contains("1 steps (1 fills) were not stored and were never reported as done"),
        "{error}"
    );
    let health = rig
        .metrics
        .store_error()
        .expect("the failure is where the dashboard reads it");
    assert!(health.contains("refused by the test"), "{health}");
    assert_eq!(rig.metrics.store_outages.load(Ordering::Relaxed), 1);
    assert_eq!(rig.metrics.fills_stored.load(Ordering::Relaxed), 1);

    let entry = fill(1, 0, Side::Buy, "100", "0.2", "9799.8", "2", "0");
    let events = rig.all_events();
    let store = store_events(&events);
    assert!(
        store.len() == 1 && !store[0].0 && store[0].1.contains("refused by the test"),
        "one outage announced, never a recovery: {store:?}"
    );
    assert_eq!(
        announced_fills(&events),
        std::slice::from_ref(&entry),
        "only the stored fill was announced"
    );
    assert_eq!(rig.stored_fills(), [entry]);
    assert!(
        !events.iter().any(|e| matches!(e, EngineEvent::Finished { .. })),
        "a run whose last steps were lost is not announced as finished"
    );
    // The run stays resumable from its last stored bar.
    let run = rig.store.resumable_run(RUN_KEY).unwrap().expect("still resumable");
    assert_eq!(run.status, nanotrader_store::RunStatus::Running);
    assert_eq!((run.bars_seen, run.last_bar_ts, run.next_order_id), (1, Some(at(0)), 2));
}

/// The store events announced (healthy, detail), in order.
fn store_events(events: &[EngineEvent]) -> Vec<(bool, String)> {
    events
        .iter()
        .filter_map(|event| match event {
            EngineEvent::Store { healthy, detail } => Some((*healthy, detail.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn the_store_health_hook_announces_each_change_once() {
    let bus = Bus::new();
    let mut events = bus.events.subscribe();
    let metrics = Arc::new(Metrics::default());
    let mut hooks = writer_hooks(bus.events.clone(), metrics.clone());
    // The writer reports the failure again when its reason changes, and success after each write.
    for health in [Some("locked"), Some("disk full"), None, None, Some("locked")] {
        (hooks.on_health)(health);
    }
    let announced: Vec<(bool, String)> = store_events(&drain(&mut events));
    let recovered = "store writes work again; nothing was lost".to_owned();
    assert_eq!(
        announced,
        [
            (false, "locked".to_owned()),
            (true, recovered),
            (false, "locked".to_owned())
        ]
    );
    assert_eq!(metrics.store_outages.load(Ordering::Relaxed), 2);
    assert_eq!(metrics.store_error().as_deref(), Some("locked"));
}

#[tokio::test]
async fn a_store_outage_and_its_recovery_are_announced_once_each() {
    use Signal::{Flat, Long};
    let (mut rig, mut engine) = Rig::new(1, &[Long, Flat, Long]);
    let (feed, mut source) = ChannelSource::paced();
    let shutdown = rig.shutdown.subscribe();
    let path = rig.store.path().to_owned();

    let script = async {
        feed.send(MarketEvent::Bar(bar(0, "100"))).unwrap();
        rig.fill_announced(1).await;
        // Another connection holds the write lock: the writer retries with back-off meanwhile,
        // reporting the failure on every attempt, while the engine goes on with the market.
        let mut other = rusqlite::Connection::open(&path).unwrap();
        let lock = other
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .unwrap();
        feed.send(MarketEvent::Bar(bar(1, "110"))).unwrap();
        let why = rig
            .event("the store outage", |event| match event {
                EngineEvent::Store { healthy: false, detail } => Some(detail.clone()),
                _ => None,
            })
            .await;
        assert!(why.contains("locked"), "{why}");
        feed.send(MarketEvent::Bar(bar(2, "105"))).unwrap();
        rig.closed_bar(2).await;
        lock.rollback().unwrap();
        // The writer announces what it stored (fills 2 and 3), then that it works again.
        rig.event("the store's recovery", |event| {
            matches!(event, EngineEvent::Store { healthy: true, .. }).then_some(())
        })
        .await;
        drop(feed);
    };
    let (result, ()) = tokio::join!(engine.run(&mut source, shutdown), script);
    assert_eq!(result.unwrap(), Outcome::Completed);
    rig.stop(engine).unwrap();

    let events = rig.all_events();
    let store = store_events(&events);
    assert_eq!(store.len(), 2, "one outage, one recovery: {store:?}");
    assert!(!store[0].0 && store[0].1.contains("locked"), "{store:?}");
    assert!(store[1].0, "{store:?}");
    assert_eq!(rig.metrics.store_outages.load(Ordering::Relaxed), 1);
    assert_eq!(rig.metrics.store_error(), None);
    assert_eq!(announced_fills(&events).len(), 3, "every fill announced once stored");
    assert_eq!(rig.stored_fills().len(), 3);
}

/// A stopped run comes back exactly through the store: the strategy fed the stored bars ends on
/// the stored signal and the broker holds the stored fills' account; a fill whose recorded
/// account does not follow from the fills, or bars that lead the strategy elsewhere, are refused.
#[tokio::test]
async fn a_stopped_run_is_restored_exactly_and_a_store_that_disagrees_is_refused() {
    let script = [Signal::Flat, Signal::Long, Signal::Long];
    let (mut rig, mut engine) = Rig::new(1, &script);
    let mut source = ChannelSource::of_bars(&[bar(0, "100"), bar(1, "101"), bar(2, "102")]);
    rig.run_to_end(&mut engine, &mut source).await.unwrap();
    rig.stop(engine).unwrap();
    let run = rig.store.run(rig.run_id).unwrap().unwrap();
    let fills = rig.store.fills(run.id).unwrap();
    assert_eq!(fills, vec![fill(1, 1, Side::Buy, "101", "0.202", "9797.798", "2", "0")]);
    let scripted = |signals: &[Signal]| Scripted {
        signals: signals.iter().copied().collect(),
    };

    let mut seen = Vec::new();
    let restored = session::restore(
        &rig.store,
        &run,
        &fills,
        broker_config(),
        &Default::default(),
        session::Books::Paper,
        &mut scripted(&script),
        |bar, _| seen.push(bar.ts),
    )
    .unwrap();
    assert_eq!(seen, vec![at(0), at(1), at(2)]);
    assert_eq!((restored.resume.bars_seen, restored.resume.signal), (3, Signal::Long));
    assert_eq!(restored.resume.last_bar.map(|b| b.close), Some(d("102")));
    let account = restored.broker.account();
    assert_eq!((account.cash(), account.position()), (d("9797.798"), d("2")));
    assert_eq!(account.last_price(), Some(d("102")), "marked at the last stored close");
    assert_eq!(restored.broker.next_order_id(), run.next_order_id);

    let mut tampered = fills.clone();
    tampered[0].cash_after += Decimal::ONE;
    let refused = session::restore(
        &rig.store,
        &run,
        &tampered,
        broker_config(),
        &Default::default(),
        session::Books::Paper,
        &mut scripted(&script),
        |_, _| {},
    );
    assert!(
        matches!(refused, Err(session::SessionError::FillsDisagree { .. })),
        "{:?}",
        refused.err()
    );
    let elsewhere = [Signal::Flat; 3];
    let refused = session::restore(
        &rig.store,
        &run,
        &fills,
        broker_config(),
        &Default::default(),
        session::Books::Paper,
        &mut scripted(&elsewhere),
        |_, _| {},
    );
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("stored bars lead its strategy to signal 0, not the stored 1: cannot resume it exactly"),
        "{message}"
    );
}

/// A broker whose fills come later, as an exchange's do: each order is held until the test
/// releases it (or the run stops), then given by `poll` after a wake-up.
struct LaterBroker {
    paper: PaperBroker,
    shared: Arc<LaterShared>,
}

#[derive(Default)]
struct LaterShared {
    /// The broker's halt, as its venue shows it.
    halted: AtomicBool,
    held: std::sync::Mutex<Vec<(Order, Fill)>>,
    ready: std::sync::Mutex<Vec<(Order, Fill)>>,
    wake: Arc<Notify>,
    resumes: AtomicU64,
}

impl LaterShared {
    fn release(&self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        self.ready.lock().unwrap().extend(held);
        self.wake.notify_one();
    }
}

impl Broker for LaterBroker {
    fn mark(&mut self, price: Decimal) {
        self.paper.mark(price);
    }
    fn follow(&mut self, change: i8, ts: Timestamp, price: Decimal) -> Option<(Order, Fill)> {
        let filled = self.paper.follow(change, ts, price)?;
        self.shared.held.lock().unwrap().push(filled);
        None
    }
    fn exit(&mut self, ts: Timestamp, price: Decimal, reason: OrderReason) -> Option<(Order, Fill)> {
        let filled = self.paper.exit(ts, price, reason)?;
        self.shared.held.lock().unwrap().push(filled);
        None
    }
    fn account(&self) -> &nanotrader_broker::Account {
        self.paper.account()
    }
    fn next_order_id(&self) -> u64 {
        self.paper.next_order_id()
    }
    fn poll(&mut self) -> Vec<(Order, Fill)> {
        std::mem::take(&mut *self.shared.ready.lock().unwrap())
    }
    fn updates(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.shared.wake))
    }
    fn resume(&mut self) {
        self.shared.resumes.fetch_add(1, Ordering::Relaxed);
    }
    fn stop(&mut self) {
        self.shared.release();
    }
    fn venue(&self) -> Option<VenueView> {
        Some(VenueView {
            broker: "later".into(),
            halted: self
                .shared
                .halted
                .load(Ordering::Relaxed)
                .then(|| "a test halt".to_owned()),
            ..VenueView::default()
        })
    }
}

#[tokio::test]
async fn fills_that_arrive_after_their_order_are_stored_and_announced_when_the_broker_wakes() {
    use Signal::{Flat, Long};
    let shared = Arc::new(LaterShared::default());
    let broker = LaterBroker {
        paper: PaperBroker::new(broker_config()),
        shared: Arc::clone(&shared),
    };
    let (mut rig, engine) = Rig::with_broker(1, &[Long, Long, Flat], |_| {}, Box::new(broker));
    let (controls, requests) = mpsc::channel(8);
    let mut engine = engine.with_controls(requests);
    let (feed, mut source) = ChannelSource::paced();
    let shutdown = rig.shutdown.subscribe();

    let script = async {
        feed.send(MarketEvent::Bar(bar(0, "100"))).unwrap();
        rig.closed_bar(0).await;
        // The broker halts: the next bar's status says so at once (statuses are otherwise an
        // hour apart here).
        shared.halted.store(true, Ordering::Relaxed);
        feed.send(MarketEvent::Bar(bar(1, "101"))).unwrap();
        let venue = rig
            .event("a status with the halt", |event| match event {
                EngineEvent::Status(report) => report.venue.clone(),
                _ => None,
            })
            .await;
        assert_eq!(venue.halted.as_deref(), Some("a test halt"));
        rig.closed_bar(1).await;
        assert!(rig.stored_fills().is_empty(), "nothing filled yet");
        // The exchange reports the entry's fill: the status (with the broker's side) follows at
        // once, and the fill is stored, then announced, without a bar.
        shared.release();
        let venue = rig
            .event("a status with the venue", |event| match event {
                EngineEvent::Status(report) => report.venue.clone(),
                _ => None,
            })
            .await;
        assert_eq!(venue.halted.as_deref(), Some("a test halt"));
        let (order, fill) = rig.fill_announced(1).await;
        assert_eq!((order.side, fill.price), (Side::Buy, d("100")));
        assert_eq!(rig.stored_fills().len(), 1, "stored before it was announced");
        // Resume reaches the broker (a person lifting a halt).
        send_control(&controls, Control::Resume).await;
        assert_eq!(shared.resumes.load(Ordering::Relaxed), 1);
        // The exit is handed over; the run ends before it is reported: stopping the broker
        // learns it, and it is stored with the run's last write.
        feed.send(MarketEvent::Bar(bar(2, "102"))).unwrap();
        rig.closed_bar(2).await;
        drop(feed);
    };
    let (outcome, ()) = tokio::join!(engine.run(&mut source, shutdown), script);
    assert_eq!(outcome.unwrap(), Outcome::Completed);
    rig.stop(engine).unwrap();
    let stored = rig.stored_fills();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!((stored[1].side, stored[1].price), (Side::Sell, d("102")));
    assert_eq!(announced_fills(&rig.all_events()), stored);
}
