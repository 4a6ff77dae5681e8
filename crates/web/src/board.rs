//! One pair's dashboard: the state a page needs, updated from the engine's bus by the hub, and the
//! frames sent to every page. State changes only when a delta frame is made, under one lock, so a
//! snapshot always equals "every delta up to its `seq`".

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc};

use super::view::{AccountView, BarPoint, BuyAndHold, FillView, Lines, StatusView, VenueStatus, num};
use nanotrader_broker::{Account, Fill, OrderReason, VenueView};
use nanotrader_engine::{ControlRequest, Metrics};
use nanotrader_format::{DataMode, PairFormat};
use nanotrader_market::{Bar, FeedStatus, Timestamp};
use nanotrader_perf::{PerfTracker, Performance};
use nanotrader_strategy::LineValues;

/// Closed bars a page gets in its snapshot (and the hub keeps in memory).
pub const SNAPSHOT_BARS: usize = 2_000;
/// Fills a page gets in its snapshot; /api/fills reads them all from the store.
pub const SNAPSHOT_FILLS: usize = 1_000;
/// Frames queued per page before it counts as fallen behind and gets a fresh snapshot instead.
pub const CLIENT_QUEUE_FRAMES: usize = 64;
/// A frame that would carry more closed bars than this (the engine is replaying at full speed)
/// is sent as a snapshot instead: smaller, and what the page would end up showing anyway.
pub const FRAME_MAX_BARS: usize = 500;

/// What a page is told once, in its snapshot: the run it watches.
#[derive(Clone, Debug, Serialize)]
pub struct BoardMeta {
    pub pair: String,
    pub interval_secs: i64,
    pub source: String,
    pub data: String,
    pub run_id: i64,
    pub strategy: String,
    pub lines: Vec<String>,
    pub paper: bool,
    pub initial_cash: Decimal,
    pub fee_rate: Decimal,
    pub sizing: String,
}

/// One change, as it appears in a delta frame.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Delta {
    Bar { closed: bool, bar: BarPoint },
    Signal { t: i64, signal: i8, change: i8 },
    Fill { fill: FillView },
    Account { account: AccountView, perf: Performance },
    Status { status: StatusView },
    Gap { from: i64, to: i64, missing: u64 },
}

/// What the hub hands over for the next frame.
#[derive(Clone, Debug)]
pub enum Change {
    /// A bar from the engine, with its equity and exposure after the bar's own trade (the fill
    /// itself arrives once stored, possibly a few bars later at full speed).
    Bar {
        bar: Bar,
        closed: bool,
        lines: LineValues,
        equity: Decimal,
        exposed: bool,
    },
    Signal {
        ts: Timestamp,
        signal: i8,
        change: i8,
    },
    Fill {
        fill: Fill,
        reason: Option<OrderReason>,
    },
    Gap {
        from: Timestamp,
        to: Timestamp,
        missing: u64,
    },
    Feed(FeedStatus),
    /// Trading was paused or resumed: the state itself is in the engine's metrics.
    Trading,
    /// Store writes started failing or work again: the state itself is in the engine's metrics.
    Store,
    /// A live broker's exchange side changed (balances, orders, a halt); paper has none.
    Venue(Option<VenueView>),
    /// The protections halted new entries (why), or stopped halting them.
    Protection(Option<String>),
    Finished {
        status: &'static str,
    },
}

/// Live counters that do not go through the state lock.
#[derive(Debug, Default)]
pub struct BoardCounters {
    pub frames: AtomicU64,
    pub resyncs: AtomicU64,
    pub skipped_events: AtomicU64,
    /// `sent_ms` of the newest frame, as f64 bits: how far behind a page is, is measured from it.
    pub newest_sent_ms: AtomicU64,
}

impl BoardCounters {
    pub fn newest_sent_ms(&self) -> f64 {
        f64::from_bits(self.newest_sent_ms.load(Ordering::Relaxed))
    }
}

/// Opens a read-only connection to the store a board's run is in (PostgreSQL's, or another
/// than the data directory's SQLite file).
pub type OpenReader =
    Arc<dyn Fn() -> Result<Box<dyn nanotrader_store::RunStore + Send>, nanotrader_store::StoreError> + Send + Sync>;

/// Where a board's run lives in the store.
pub struct BoardStore {
    pub data_dir: std::path::PathBuf,
    /// How the API's history pages reach the store; `None`: the data directory's SQLite file.
    pub reader: Option<OpenReader>,
    pub series_id: i64,
    pub config: serde_json::Value,
}

pub struct Board {
    pub meta: BoardMeta,
    pub metrics: Arc<Metrics>,
    pub counters: BoardCounters,
    pub controls: mpsc::Sender<ControlRequest>,
    /// Every delta frame, to every page; a page further behind than the channel holds is told
    /// it lagged and gets a snapshot.
    frames: broadcast::Sender<Utf8Bytes>,
    state: Mutex<BoardState>,
    /// Shared page count of the whole server (for the status).
    clients: Arc<AtomicU64>,
    /// The run's settings as stored (no secrets), for /api/config.
    pub config: serde_json::Value,
    /// The store this board's run is in, read by the API's history queries on a connection of
    /// their own (opened on first use).
    pub data_dir: std::path::PathBuf,
    pub series_id: i64,
    pub open_reader: Option<OpenReader>,
    pub reader: Mutex<Option<Box<dyn nanotrader_store::RunStore + Send>>>,
}

struct BoardState {
    seq: u64,
    bars: VecDeque<BarPoint>,
    forming: Option<BarPoint>,
    fills: VecDeque<FillView>,
    fills_total: u64,
    account: Account,
    account_ts: Timestamp,
    perf: PerfTracker,
    run: &'static str,
    feed: &'static str,
    feed_reason: Option<String>,
    reconnects: u64,
    backfilled_trades: u64,
    gaps: u64,
    events_per_sec: f64,
    line_count: usize,
    /// Live feed, replay or simulation: only a live feed's lag behind the wall clock means
    /// something.
    mode: DataMode,
    buy_hold: BuyAndHold,
    /// The pair's tick, for the page to show prices with.
    prices: PairFormat,
    venue: Option<VenueStatus>,
    protection: Option<String>,
    cached_snapshot: Option<(u64, Utf8Bytes)>,
}

/// The state of a run as stored, handed to a new board: the account from the fills, then the
/// stored bars with the indicator lines a warm-up computes.
pub struct BoardSeed {
    state: BoardState,
    pending_fills: VecDeque<Fill>,
    reasons: std::collections::HashMap<u64, OrderReason>,
}

impl BoardSeed {
    pub fn new(
        meta: &BoardMeta,
        interval: nanotrader_market::Interval,
        fills: &[Fill],
        reasons: std::collections::HashMap<u64, OrderReason>,
        mode: DataMode,
    ) -> Self {
        let initial = meta.initial_cash;
        let state = BoardState {
            seq: 0,
            bars: VecDeque::with_capacity(SNAPSHOT_BARS),
            forming: None,
            fills: VecDeque::with_capacity(SNAPSHOT_FILLS.min(fills.len() + 16)),
            fills_total: 0,
            account: Account::new(initial),
            account_ts: Timestamp::default(),
            perf: PerfTracker::new(num(initial), interval),
            run: "running",
            // A replay or a simulator flows from the start; a network feed says when it connects.
            feed: if mode.is_live() { "connecting" } else { "connected" },
            feed_reason: None,
            reconnects: 0,
            backfilled_trades: 0,
            gaps: 0,
            events_per_sec: 0.0,
            line_count: meta.lines.len(),
            mode,
            buy_hold: BuyAndHold::new(initial, meta.fee_rate),
            prices: PairFormat::new(&meta.pair),
            venue: None,
            protection: None,
            cached_snapshot: None,
        };
        Self {
            state,
            pending_fills: fills.iter().cloned().collect(),
            reasons,
        }
    }

    /// A stored closed bar with the lines after it; fills up to the bar's time are booked first,
    /// as the engine did.
    pub fn bar(&mut self, bar: &Bar, lines: LineValues) {
        while self.pending_fills.front().is_some_and(|f| f.ts <= bar.ts) {
            let fill = self.pending_fills.pop_front().expect("checked above");
            self.state.book_fill(&fill, self.reasons.get(&fill.order_id).copied());
        }
        self.state.close_bar(bar, lines, None);
    }

    fn finish(mut self) -> BoardState {
        while let Some(fill) = self.pending_fills.pop_front() {
            self.state.book_fill(&fill, self.reasons.get(&fill.order_id).copied());
        }
        self.state
    }
}

impl BoardState {
    fn book_fill(&mut self, fill: &Fill, reason: Option<OrderReason>) -> FillView {
        self.account.apply(fill);
        self.account_ts = self.account_ts.max(fill.ts);
        self.fills_total += 1;
        let view = FillView::new(fill, reason);
        if self.fills.len() == SNAPSHOT_FILLS {
            self.fills.pop_front();
        }
        self.fills.push_back(view.clone());
        view
    }

    /// A closed bar; `engine` holds the engine's equity and exposure after it, else (a stored
    /// bar) they come from the books, which already hold the bar's fills.
    fn close_bar(&mut self, bar: &Bar, lines: LineValues, engine: Option<(Decimal, bool)>) -> BarPoint {
        self.account.mark(bar.close);
        self.account_ts = bar.ts;
        let (equity, exposed) =
            engine.unwrap_or_else(|| (self.account.equity(), self.account.position() > Decimal::ZERO));
        self.perf.on_bar(num(equity), exposed);
        self.buy_hold.on_close(bar.close);
        self.prices.observe_price(bar.close);
        let point = BarPoint::new(bar, Lines::new(lines, self.line_count), equity, &self.buy_hold);
        if self.bars.len() == SNAPSHOT_BARS {
            self.bars.pop_front();
        }
        self.bars.push_back(point.clone());
        if self.forming.as_ref().is_some_and(|f| f.t <= point.t) {
            self.forming = None;
        }
        point
    }

    fn account_view(&self) -> AccountView {
        AccountView::new(&self.account, self.account_ts)
    }

    fn performance(&self) -> Performance {
        self.perf.report(&self.account, self.fills_total)
    }

    fn status_view(&self, metrics: &Metrics, clients: u64, skipped: u64) -> StatusView {
        let produced = metrics.steps_produced.load(Ordering::Relaxed);
        let stored = metrics.steps_stored.load(Ordering::Relaxed);
        let last_event = metrics.last_event_ns.load(Ordering::Relaxed);
        let last_price = self
            .forming
            .as_ref()
            .map(|f| f.c)
            .or_else(|| self.bars.back().map(|b| b.c));
        let store_error = metrics.store_error();
        StatusView {
            run: self.run,
            mode: self.mode.key(),
            speed: self.mode.speed(),
            data_time: (last_event != 0).then(|| Timestamp(last_event).secs()),
            price_decimals: self.prices.price_decimals(),
            feed: self.feed,
            feed_reason: self.feed_reason.clone(),
            trading: if metrics.paused.load(Ordering::Relaxed) {
                "paused"
            } else {
                "active"
            },
            events_per_sec: self.events_per_sec,
            bars: metrics.bars_closed.load(Ordering::Relaxed),
            fills: self.fills_total,
            // An exchange's clock a little ahead of ours is no lag at all.
            feed_lag_ms: (self.mode.is_live() && last_event != 0)
                .then(|| ((Timestamp::now().nanos() - last_event) / 1_000_000).max(0)),
            store_lag_steps: produced.saturating_sub(stored),
            store: if store_error.is_some() { "failing" } else { "ok" },
            store_error,
            reconnects: self.reconnects,
            backfilled_trades: self.backfilled_trades,
            gaps: self.gaps,
            clients,
            last_price: self.account.last_price().map(|p| p.normalize()),
            change_pct: last_price.and_then(|last| self.change_pct(last)),
            skipped_events: skipped,
            venue: self.venue.clone(),
            halted: self.protection.clone(),
        }
    }

    /// The last price against the close a day of market time earlier (or the oldest bar held).
    fn change_pct(&self, last: f64) -> Option<f64> {
        let newest = self.forming.as_ref().or(self.bars.back())?;
        let day_ago = newest.t - 86_400;
        let i = self.bars.partition_point(|b| b.t < day_ago);
        let base = self.bars.get(i)?.c;
        (base > 0.0).then(|| (last / base - 1.0) * 100.0)
    }
}

impl Board {
    pub fn new(
        meta: BoardMeta,
        seed: BoardSeed,
        metrics: Arc<Metrics>,
        controls: mpsc::Sender<ControlRequest>,
        clients: Arc<AtomicU64>,
        queue_frames: usize,
        store: BoardStore,
    ) -> Self {
        Self {
            meta,
            metrics,
            counters: BoardCounters::default(),
            controls,
            frames: broadcast::channel(queue_frames.max(1)).0,
            state: Mutex::new(seed.finish()),
            clients,
            config: store.config,
            data_dir: store.data_dir,
            series_id: store.series_id,
            open_reader: store.reader,
            reader: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, BoardState> {
        // A panic while holding the lock leaves plain data behind; showing it beats failing.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.frames.subscribe()
    }

    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Applies the changes gathered since the last frame and sends them as one delta frame (or
    /// as a snapshot when there are too many bars; then returns true). `status` adds a status
    /// event (the hub's once-a-second tick) even without changes.
    pub fn publish(&self, changes: &mut Vec<Change>, status: bool, events_per_sec: Option<f64>, sent_ms: f64) -> bool {
        if changes.is_empty() && !status {
            return false;
        }
        let closed_bars = changes
            .iter()
            .filter(|c| matches!(c, Change::Bar { closed: true, .. }))
            .count();
        let mut events = Vec::with_capacity(changes.len() + 2);
        let mut forming = None;
        let mut account_changed = false;
        let mut status_changed = status;
        let mut state = self.state();
        if let Some(rate) = events_per_sec {
            state.events_per_sec = rate;
        }
        for change in changes.drain(..) {
            match change {
                Change::Bar {
                    bar,
                    closed: false,
                    lines,
                    equity,
                    ..
                } => {
                    state.account.mark(bar.close);
                    let point = BarPoint::new(&bar, Lines::new(lines, state.line_count), equity, &state.buy_hold);
                    state.forming = Some(point.clone());
                    forming = Some(point);
                    account_changed = true;
                }
                Change::Bar {
                    bar,
                    lines,
                    equity,
                    exposed,
                    ..
                } => {
                    let point = state.close_bar(&bar, lines, Some((equity, exposed)));
                    if forming.as_ref().is_some_and(|f: &BarPoint| f.t <= point.t) {
                        forming = None;
                    }
                    events.push(Delta::Bar {
                        closed: true,
                        bar: point,
                    });
                    account_changed = true;
                }
                Change::Signal { ts, signal, change } => events.push(Delta::Signal {
                    t: ts.secs(),
                    signal,
                    change,
                }),
                Change::Fill { fill, reason } => {
                    let view = state.book_fill(&fill, reason);
                    events.push(Delta::Fill { fill: view });
                    account_changed = true;
                }
                Change::Gap { from, to, missing } => {
                    state.gaps += 1;
                    events.push(Delta::Gap {
                        from: from.secs(),
                        to: to.secs(),
                        missing,
                    });
                }
                Change::Feed(feed) => {
                    match feed {
                        FeedStatus::Connected => {
                            state.feed = "connected";
                            state.feed_reason = None;
                        }
                        FeedStatus::Disconnected { reason } => {
                            state.feed = "disconnected";
                            state.reconnects += 1;
                            state.feed_reason = Some(reason);
                        }
                        FeedStatus::Stale { silent_for_ms } => {
                            state.feed = "stale";
                            state.feed_reason = Some(format!("no message for {} s", silent_for_ms / 1000));
                        }
                        FeedStatus::Backfilled { trades } => state.backfilled_trades += trades,
                    }
                    status_changed = true;
                }
                Change::Trading | Change::Store => status_changed = true,
                Change::Venue(venue) => {
                    let venue = venue.as_ref().map(VenueStatus::new);
                    if venue != state.venue {
                        state.venue = venue;
                        status_changed = true;
                    }
                }
                Change::Protection(reason) => {
                    if reason != state.protection {
                        state.protection = reason;
                        status_changed = true;
                    }
                }
                Change::Finished { status } => {
                    state.run = status;
                    state.feed = "ended";
                    status_changed = true;
                }
            }
        }
        if let Some(point) = forming {
            events.push(Delta::Bar {
                closed: false,
                bar: point,
            });
        }
        if account_changed {
            events.push(Delta::Account {
                account: state.account_view(),
                perf: state.performance(),
            });
        }
        if status_changed {
            let skipped = self.counters.skipped_events.load(Ordering::Relaxed);
            events.push(Delta::Status {
                status: state.status_view(&self.metrics, self.clients(), skipped),
            });
        }
        state.seq += 1;
        self.counters.newest_sent_ms.store(sent_ms.to_bits(), Ordering::Relaxed);
        if closed_bars > FRAME_MAX_BARS {
            drop(state);
            let (_, snapshot) = self.snapshot();
            self.counters.frames.fetch_add(1, Ordering::Relaxed);
            let _ = self.frames.send(snapshot);
            return true;
        }
        let frame = DeltaFrame {
            kind: "delta",
            seq: state.seq,
            sent_ms,
            events: &events,
        };
        let text = serde_json::to_string(&frame).expect("dashboard frames serialize");
        self.counters.frames.fetch_add(1, Ordering::Relaxed);
        // Sent under the lock, so a page that subscribed before taking a snapshot sees every
        // frame after it, in order.
        let _ = self.frames.send(Utf8Bytes::from(text));
        false
    }

    /// The whole picture as of the last frame, serialized once per frame however many pages ask.
    pub fn snapshot(&self) -> (u64, Utf8Bytes) {
        let mut state = self.state();
        if let Some((seq, text)) = &state.cached_snapshot
            && *seq == state.seq
        {
            return (*seq, text.clone());
        }
        let skipped = self.counters.skipped_events.load(Ordering::Relaxed);
        let snapshot = Snapshot {
            kind: "snapshot",
            seq: state.seq,
            meta: &self.meta,
            bars: &state.bars,
            forming: state.forming.as_ref(),
            fills: &state.fills,
            account: state.account_view(),
            perf: state.performance(),
            status: state.status_view(&self.metrics, self.clients(), skipped),
        };
        let text = Utf8Bytes::from(serde_json::to_string(&snapshot).expect("dashboard snapshots serialize"));
        let seq = state.seq;
        state.cached_snapshot = Some((seq, text.clone()));
        (seq, text)
    }

    pub fn account(&self) -> AccountView {
        self.state().account_view()
    }

    pub fn performance(&self) -> Performance {
        self.state().performance()
    }

    pub fn status(&self) -> StatusView {
        let skipped = self.counters.skipped_events.load(Ordering::Relaxed);
        self.state().status_view(&self.metrics, self.clients(), skipped)
    }

    /// A board of the fleet dashboard (`nanotrader serve`): fed from PostgreSQL, with no data
    /// directory of its own and no engine to steer.
    pub fn from_fleet(&self) -> bool {
        self.data_dir.as_os_str().is_empty()
    }

    pub fn paused(&self) -> bool {
        self.metrics.paused.load(Ordering::Relaxed)
    }
}

#[derive(Serialize)]
struct DeltaFrame<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    sent_ms: f64,
    events: &'a [Delta],
}

#[derive(Serialize)]
struct Snapshot<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    meta: &'a BoardMeta,
    bars: &'a VecDeque<BarPoint>,
    forming: Option<&'a BarPoint>,
    fills: &'a VecDeque<FillView>,
    account: AccountView,
    perf: Performance,
    status: StatusView,
}

/// Wall-clock milliseconds since the epoch, for `sent_ms` (delivery latency on the page side).
pub fn wall_ms() -> f64 {
    Timestamp::now().nanos() as f64 / 1e6
}

#[cfg(test)]
mod tests {
    //! The frames a page gets, read as `stream::serve_page` reads them: it subscribes before it
    //! takes its snapshot, skips deltas the snapshot already holds, and takes a fresh snapshot
    //! when its bounded queue overflowed.

    use axum::extract::ws::Utf8Bytes;
    use serde_json::{Value, json};
    use tokio::sync::broadcast::error::TryRecvError;

    use super::*;
    use nanotrader_market::{Interval, Side, Speed};

    /// 2024-01-01 00:00:00 UTC.
    const T0: i64 = 1_704_067_200;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_secs(T0 + minute * 60)
    }

    fn bar(minute: i64, close: &str) -> Bar {
        let close = d(close);
        Bar {
            ts: at(minute),
            open: close - Decimal::ONE,
            high: close + Decimal::ONE,
            low: close - Decimal::TWO,
            close,
            volume: d("1.5"),
            trades: 3,
        }
    }

    fn closed(minute: i64, close: &str, equity: &str) -> Change {
        Change::Bar {
            bar: bar(minute, close),
            closed: true,
            lines: [Some(100.5), None, None],
            equity: d(equity),
            exposed: false,
        }
    }

    fn meta() -> BoardMeta {
        BoardMeta {
            pair: "BTC/USD".into(),
            interval_secs: 60,
            source: "replay".into(),
            data: "test.csv".into(),
            run_id: 7,
            strategy: "sma-cross 2/3".into(),
            lines: vec!["sma 2".into()],
            paper: true,
            initial_cash: d("10000"),
            fee_rate: d("0.001"),
            sizing: "fixed:2".into(),
        }
    }

    /// A board whose stored history is one bar, closing at 100 (the buy-and-hold entry).
    fn board(queue_frames: usize) -> Board {
        let meta = meta();
        let mut seed = BoardSeed::new(
            &meta,
            Interval::ONE_MINUTE,
            &[],
            Default::default(),
            DataMode::Replay(Speed::Max),
        );
        seed.bar(&bar(0, "100"), [Some(99.5), None, None]);
        let (controls, _) = mpsc::channel(1);
        Board::new(
            meta,
            seed,
            Arc::new(Metrics::default()),
            controls,
            Arc::new(AtomicU64::new(0)),
            queue_frames,
            BoardStore {
                data_dir: std::path::PathBuf::from("unused"),
                reader: None,
                series_id: 1,
                config: Value::Null,
            },
        )
    }

    fn publish(board: &Board, changes: impl IntoIterator<Item = Change>) -> bool {
        board.publish(&mut changes.into_iter().collect(), false, None, 1_000.0)
    }

    fn parse(text: &Utf8Bytes) -> Value {
        serde_json::from_str(text.as_str()).unwrap()
    }

    /// A page, reading its frames as `stream::serve_page` does.
    struct Page {
        frames: broadcast::Receiver<Utf8Bytes>,
        seq: u64,
        received: Vec<Value>,
    }

    impl Page {
        fn open(board: &Board) -> Self {
            let frames = board.subscribe();
            let (seq, snapshot) = board.snapshot();
            Self {
                frames,
                seq,
                received: vec![parse(&snapshot)],
            }
        }

        /// Takes every frame queued for the page now.
        fn read(&mut self, board: &Board) {
            loop {
                match self.frames.try_recv() {
                    Ok(text) => {
                        let frame = parse(&text);
                        if frame["type"] == "delta" && frame["seq"].as_u64().unwrap() <= self.seq {
                            continue;
                        }
                        self.seq = frame["seq"].as_u64().unwrap();
                        self.received.push(frame);
                    }
                    Err(TryRecvError::Lagged(_)) => {
                        self.frames = self.frames.resubscribe();
                        let (seq, snapshot) = board.snapshot();
                        self.seq = seq;
                        self.received.push(parse(&snapshot));
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => return,
                }
            }
        }

        /// What each frame received was, with its seq: `("snapshot", 0)`, `("delta", 1)`...
        fn kinds(&self) -> Vec<(String, u64)> {
            self.received
                .iter()
                .map(|f| (f["type"].as_str().unwrap().to_owned(), f["seq"].as_u64().unwrap()))
                .collect()
        }
    }

    fn kinds(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(kind, seq)| (kind.to_string(), *seq)).collect()
    }

    #[test]
    fn a_page_gets_a_snapshot_then_every_delta_in_sequence_with_exact_values() {
        let board = board(CLIENT_QUEUE_FRAMES);
        let mut page = Page::open(&board);
        let buy = Fill {
            order_id: 1,
            ts: at(1),
            side: Side::Buy,
            qty: d("2"),
            price: d("101"),
            fee: d("0.202"),
            cash_after: d("9797.798"),
            position_after: d("2"),
            realized_pnl: Decimal::ZERO,
        };
        publish(
            &board,
            [
                closed(1, "101", "10000"),
                Change::Signal {
                    ts: at(1),
                    signal: 1,
                    change: 1,
                },
            ],
        );
        publish(
            &board,
            [Change::Fill {
                fill: buy,
                reason: Some(OrderReason::Entry),
            }],
        );
        publish(
            &board,
            [Change::Bar {
                bar: bar(2, "103"),
                closed: false,
                lines: [Some(102.0), None, None],
                equity: d("10003.798"),
                exposed: true,
            }],
        );
        page.read(&board);
        assert_eq!(
            page.kinds(),
            kinds(&[("snapshot", 0), ("delta", 1), ("delta", 2), ("delta", 3)])
        );

        let snapshot = &page.received[0];
        assert_eq!(snapshot["meta"]["run_id"], 7);
        assert_eq!(
            snapshot["bars"],
            json!([{"t": T0, "o": 99.0, "h": 101.0, "l": 98.0, "c": 100.0, "v": 1.5, "lines": [99.5],
                    "eq": 10000.0, "bh": 9990.0}])
        );
        assert_eq!(snapshot["forming"], Value::Null);
        assert_eq!(snapshot["fills"], json!([]));
        assert_eq!(snapshot["account"]["cash"], "10000");
        assert_eq!(snapshot["account"]["last_price"], "100");

        let events = |i: usize| page.received[i]["events"].as_array().unwrap().clone();
        let first = events(1);
        assert_eq!(first.len(), 3, "{first:?}");
        assert_eq!(
            first[0],
            json!({"k": "bar", "closed": true, "bar": {"t": T0 + 60, "o": 100.0, "h": 102.0, "l": 99.0,
                   "c": 101.0, "v": 1.5, "lines": [100.5], "eq": 10000.0, "bh": 10089.9}})
        );
        assert_eq!(first[1], json!({"k": "signal", "t": T0 + 60, "signal": 1, "change": 1}));
        assert_eq!(first[2]["k"], "account");
        assert_eq!(first[2]["account"]["last_price"], "101");

        let second = events(2);
        assert_eq!(second.len(), 2, "{second:?}");
        assert_eq!(
            second[0],
            json!({"k": "fill", "fill": {"order_id": 1, "t": T0 + 60, "side": "buy", "qty": "2",
                   "price": "101", "fee": "0.202", "cash_after": "9797.798", "position_after": "2",
                   "realized_pnl": "0", "reason": "entry"}})
        );
        assert_eq!(
            second[1]["account"],
            json!({"ts": T0 + 60, "cash": "9797.798", "position": "2", "avg_entry": "101.101",
                   "realized_pnl": "0", "unrealized_pnl": "-0.202", "equity": "9999.798",
                   "fees_paid": "0.202", "return_pct": "-0.00202", "last_price": "101"})
        );
        assert_eq!(second[1]["perf"]["trades"], 1);

        let third = events(3);
        assert_eq!(third.len(), 2, "{third:?}");
        assert_eq!(
            third[0],
            json!({"k": "bar", "closed": false, "bar": {"t": T0 + 120, "o": 102.0, "h": 104.0, "l": 101.0,
                   "c": 103.0, "v": 1.5, "lines": [102.0], "eq": 10003.798, "bh": 9990.0 * 103.0 / 100.0}})
        );
        assert_eq!(third[1]["account"]["equity"], "10003.798");
        assert_eq!(third[1]["account"]["unrealized_pnl"], "3.798");

        // A page opening now gets all of that in its snapshot, at the last delta's seq.
        let late = Page::open(&board);
        let snapshot = &late.received[0];
        assert_eq!(snapshot["seq"], 3);
        assert_eq!(snapshot["bars"][1], first[0]["bar"]);
        assert_eq!(snapshot["forming"], third[0]["bar"]);
        assert_eq!(snapshot["fills"], json!([second[0]["fill"]]));
        assert_eq!(snapshot["account"], third[1]["account"]);
    }

    fn venue(halted: Option<&str>) -> VenueView {
        use nanotrader_broker::OrderView;
        VenueView {
            broker: "kraken".into(),
            live: true,
            balances: [
                ("XXBT".to_owned(), d("0.0123456789")),
                ("ZUSD".to_owned(), d("5000.1000")),
            ]
            .into(),
            orders: vec![
                OrderView {
                    cl_ord_id: "nt-7-2".into(),
                    txid: None,
                    ts: at(2),
                    side: Side::Sell,
                    order_type: "limit".into(),
                    volume: d("0.0100"),
                    filled: d("0"),
                    limit_price: Some(d("101.50")),
                    state: "sending".into(),
                    detail: None,
                },
                OrderView {
                    cl_ord_id: "nt-7-1".into(),
                    txid: Some("OUF4EM-FRGI2-MQMWZD".into()),
                    ts: at(1),
                    side: Side::Buy,
                    order_type: "market".into(),
                    volume: d("0.01"),
                    filled: d("0.01"),
                    limit_price: None,
                    state: "filled".into(),
                    detail: Some("2 trades".into()),
                },
            ],
            halted: halted.map(str::to_owned),
            stops: Some("on Kraken: stop-loss 2%".to_owned()),
        }
    }

    #[test]
    fn the_exchange_side_shows_in_the_status_only_when_it_changes_and_paper_has_none() {
        let board = board(CLIENT_QUEUE_FRAMES);
        let mut page = Page::open(&board);
        assert_eq!(
            page.received[0]["status"]["venue"],
            Value::Null,
            "paper has no exchange side"
        );

        publish(&board, [Change::Venue(Some(venue(Some("daily loss over 5 %"))))]);
        publish(&board, [Change::Venue(Some(venue(Some("daily loss over 5 %"))))]);
        publish(&board, [Change::Venue(Some(venue(None)))]);
        page.read(&board);
        let status_of = |i: usize| {
            let events = page.received[i]["events"].as_array().unwrap();
            events.iter().find(|e| e["k"] == "status").map(|e| e["status"].clone())
        };
        let halted = status_of(1).expect("a new exchange side is a status event");
        assert_eq!(
            halted["venue"],
            json!({
                "broker": "kraken", "live": true,
                "balances": {"XXBT": "0.0123456789", "ZUSD": "5000.1"},
                "orders": [
                    {"cl_ord_id": "nt-7-2", "txid": null, "t": T0 + 120, "side": "sell", "order_type": "limit",
                     "volume": "0.01", "filled": "0", "limit_price": "101.5", "state": "sending", "detail": null},
                    {"cl_ord_id": "nt-7-1", "txid": "OUF4EM-FRGI2-MQMWZD", "t": T0 + 60, "side": "buy",
                     "order_type": "market", "volume": "0.01", "filled": "0.01", "limit_price": null,
                     "state": "filled", "detail": "2 trades"}
                ],
                "halted": "daily loss over 5 %",
                "stops": "on Kraken: stop-loss 2%"
            })
        );
        assert_eq!(status_of(2), None, "the same exchange side again changes nothing");
        let lifted = status_of(3).expect("the halt lifted is a status event");
        assert_eq!(lifted["venue"]["halted"], Value::Null);
        assert_eq!(board.status().venue.unwrap().orders.len(), 2);
        assert_eq!(Page::open(&board).received[0]["status"]["venue"], lifted["venue"]);
    }

    #[test]
    fn a_delta_published_between_subscribing_and_the_snapshot_is_not_shown_twice() {
        let board = board(CLIENT_QUEUE_FRAMES);
        let frames = board.subscribe();
        publish(&board, [closed(1, "101", "10000")]);
        let (seq, snapshot) = board.snapshot();
        assert_eq!(seq, 1, "the snapshot holds the delta");
        assert_eq!(parse(&snapshot)["bars"].as_array().unwrap().len(), 2);
        let mut page = Page {
            frames,
            seq,
            received: vec![parse(&snapshot)],
        };
        publish(&board, [closed(2, "102", "10000")]);
        page.read(&board);
        assert_eq!(page.kinds(), kinds(&[("snapshot", 1), ("delta", 2)]));
        assert_eq!(page.received[1]["events"][0]["bar"]["t"], T0 + 120);
    }

    #[test]
    fn a_page_that_keeps_up_with_its_queue_gets_every_delta() {
        let board = board(CLIENT_QUEUE_FRAMES);
        let mut page = Page::open(&board);
        for minute in 1..=CLIENT_QUEUE_FRAMES as i64 {
            publish(&board, [closed(minute, "101", "10000")]);
        }
        page.read(&board);
        let mut expected = vec![("snapshot", 0)];
        expected.extend((1..=CLIENT_QUEUE_FRAMES as u64).map(|seq| ("delta", seq)));
        assert_eq!(page.kinds(), kinds(&expected));
    }

    #[test]
    fn a_page_that_falls_behind_its_queue_gets_a_fresh_snapshot_then_the_deltas_after_it() {
        let board = board(CLIENT_QUEUE_FRAMES);
        let mut page = Page::open(&board);
        let mut queue = board.subscribe();
        // One frame more than a page's queue holds, while the page reads nothing.
        let behind = CLIENT_QUEUE_FRAMES as u64 + 1;
        for minute in 1..=behind as i64 {
            publish(&board, [closed(minute, &(100 + minute).to_string(), "10000")]);
        }
        // The queue kept the newest frames and says how many of the oldest it dropped.
        assert!(matches!(queue.try_recv(), Err(TryRecvError::Lagged(1))));
        assert_eq!(parse(&queue.try_recv().unwrap())["seq"], 2);

        page.read(&board);
        assert_eq!(page.kinds(), kinds(&[("snapshot", 0), ("snapshot", behind)]));
        let bars = page.received[1]["bars"].as_array().unwrap();
        assert_eq!(bars.len() as u64, behind + 1, "the stored bar and one per frame missed");
        assert_eq!(bars.last().unwrap()["c"], (100 + behind) as f64);
        assert_eq!(page.received[1]["account"]["last_price"], (100 + behind).to_string());

        publish(&board, [closed(behind as i64 + 1, "200", "10000")]);
        page.read(&board);
        assert_eq!(
            page.kinds(),
            kinds(&[("snapshot", 0), ("snapshot", behind), ("delta", behind + 1)])
        );
    }

    #[test]
    fn a_frame_of_more_bars_than_a_delta_carries_goes_out_as_a_snapshot() {
        let board = board(CLIENT_QUEUE_FRAMES);
        let mut page = Page::open(&board);
        let many = |from: i64, count: usize| (from..from + count as i64).map(|m| closed(m, "101", "10000"));
        assert!(!publish(&board, many(1, FRAME_MAX_BARS)), "at the limit: a delta");
        assert!(publish(&board, many(1 + FRAME_MAX_BARS as i64, FRAME_MAX_BARS + 1)));
        page.read(&board);
        assert_eq!(page.kinds(), kinds(&[("snapshot", 0), ("delta", 1), ("snapshot", 2)]));
        let bars = page.received[2]["bars"].as_array().unwrap();
        assert_eq!(bars.len(), SNAPSHOT_BARS.min(1 + 2 * FRAME_MAX_BARS + 1));
        assert_eq!(bars.last().unwrap()["t"], at(2 * FRAME_MAX_BARS as i64 + 1).secs());
    }
}
