//! One backtest: the strategy's signal over every bar, the paper broker acting on its changes,
//! the performance tracker fed each bar's equity. The SMA crossover runs as a fixed-point column
//! kernel that takes exactly the decisions of `SmaCross` (a test holds them equal); any other
//! strategy runs bar by bar through the `Strategy` trait, as in the engine.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::columns::{BarColumns, to_amount, to_decimal, to_f64};
use nanotrader_broker::{Account, BrokerConfig, FastDecimal, Fill, Guard, PaperBroker, ProtectionReport, Protections};
use nanotrader_market::Timestamp;
use nanotrader_perf::{PerfTracker, Performance};
use nanotrader_strategy::{DecisionRule, InvalidStrategy, Signal, StrategyConfig};

/// How the account trades, as in `run`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub broker: BrokerConfig,
    /// Decisions are taken from this bar on (1-based); the seed waited for 22.
    pub decide_from_bar: u64,
    /// Rails that halt new entries, checked at each bar's close as the engine does.
    pub protections: Protections,
}

/// What to keep besides the figures.
#[derive(Copy, Clone, Debug, Default)]
pub struct Keep {
    pub fills: bool,
    /// The equity at every bar's close (for the report).
    pub equity_curve: bool,
    /// The fills also formatted as the trades CSV's rows (`report::push_fill_rows`), by the
    /// second core while the first books them, when the backtest runs on two (else `None`).
    pub fills_csv: bool,
    /// With `fills_csv`: the fills are wanted only as those rows. When the rows are made on the
    /// way, the list is then not kept (`BacktestResult::fills` stays empty): copying it
    /// together, 120 bytes a fill into fresh pages, was a tenth of the formatting thread's time.
    pub rows_only: bool,
}

#[derive(Clone, Debug)]
pub struct BacktestResult {
    pub fills: Vec<Fill>,
    pub fill_count: u64,
    /// The books after the last bar, marked at its close.
    pub account: Account,
    pub performance: Performance,
    /// Every bar's equity, when kept.
    pub equity_curve: Vec<f64>,
    /// The trades CSV's rows, when asked for and made on the way (see `Keep::fills_csv`).
    pub fills_csv: Option<Vec<u8>>,
    /// What the protections did, when any was set.
    pub protections: Option<ProtectionReport>,
}

/// Runs `strategy` over `bars` on this thread (a sweep runs many at once, one per core).
pub fn run(
    bars: &BarColumns,
    strategy: &StrategyConfig,
    settings: &Settings,
    keep: Keep,
) -> Result<BacktestResult, InvalidStrategy> {
    run_from(bars, strategy, settings, keep, 0)
}

/// `run` whose books and figures start at bar `from` (0-based): the bars before it only warm
/// the strategy up (a walk-forward's out-of-sample part). Decisions wait for `from` (on top of
/// `settings.decide_from_bar`), and the figures and equity curve cover `from..` only.
pub fn run_from(
    bars: &BarColumns,
    strategy: &StrategyConfig,
    settings: &Settings,
    keep: Keep,
    from: usize,
) -> Result<BacktestResult, InvalidStrategy> {
    let changes = signal_changes(bars, strategy)?;
    let settings = &Settings {
        decide_from_bar: settings.decide_from_bar.max(from as u64 + 1),
        ..settings.clone()
    };
    let mut books = Books::new(settings, keep, bars);
    let mut tracker = Tracker::new(settings, keep, bars);
    tracker.holding.from_bar = from;
    for change in &changes {
        if let Some(holding) = books.on_change(change) {
            tracker.hold(holding);
        }
    }
    Ok(finish(books, tracker, bars, None))
}

/// `run` on up to two cores, with the same outcome. A helper thread computes the later parts of
/// the SMA crossover's signal while this thread computes and books the first, then becomes the
/// performance tracker, taking holdings in batches as this thread's broker makes them, and
/// formats their fills as the trades CSV's rows when asked (`Keep::fills_csv`): the tracker
/// leaves that core mostly idle while the broker books (callgrind: about 1,300 instructions a
/// fill booked and recorded, 330 tracked, 800 formatted), so the trades file is ready when the
/// books are, instead of being formatted after them (8 ms of 60 on 2M bars).
pub fn run_on_cores(
    cores: usize,
    bars: &BarColumns,
    strategy: &StrategyConfig,
    settings: &Settings,
    keep: Keep,
) -> Result<BacktestResult, InvalidStrategy> {
    // Below this the thread costs more than it saves.
    const MIN_BARS: usize = 100_000;
    // One message per fill would cost more than the fill.
    const BATCH: usize = 1_024;
    // The protections read every bar's equity as the books stand: one pass, in order.
    if cores < 2 || bars.len() < MIN_BARS || !settings.protections.is_empty() {
        return run(bars, strategy, settings, keep);
    }
    let (sma, whole_signal) = match *strategy {
        StrategyConfig::SmaCross { short, long } => {
            strategy.validate()?;
            (Some((short, long)), Vec::new())
        }
        // Bar by bar through the trait: one pass, here.
        _ => (None, signal_changes(bars, strategy)?),
    };
    // This thread computes the first quarter of the signal and books it, then the second; the
    // helper computes the other two, each handed over when done, so the broker rarely waits.
    // (The helper used to compute three: with the rows it formats, that made it the longer of
    // the two threads, callgrind on 1M bars: 87 M instructions against 80 M, a quarter 7 M.)
    const PARTS: usize = 4;
    const MAIN_PARTS: usize = 2;
    let split = if sma.is_some() { bars.len() / PARTS } else { bars.len() };
    let mut books = Books::new(settings, keep, bars);
    let format_fills = keep.fills && keep.fills_csv;
    // Signal changes made before the helper starts (a strategy other than the SMA crossover).
    let early_changes = whole_signal.len();
    let (tracker, formatted) = std::thread::scope(|scope| {
        let (later_parts_tx, later_parts) = std::sync::mpsc::channel::<Vec<SignalFlip>>();
        // Holdings, and the fills made since the last batch when they are formatted here (moved,
        // not copied: the helper keeps the fills, and sends both emptied vectors back for reuse:
        // a fresh vector per batch is a fresh run of pages, each faulted in on the booking
        // thread, for as many batches as the helper lags behind).
        let (holdings_tx, holdings) = std::sync::mpsc::channel::<(Vec<Booked>, Vec<Fill>)>();
        let (spare_tx, spare) = std::sync::mpsc::channel::<(Vec<Booked>, Vec<Fill>)>();
        let helper = scope.spawn(move || {
            // All of its parts first: the booking thread needs them once it has booked its own.
            // (Taking booked batches between the parts, to keep fewer of them in flight, made
            // the booking thread wait for the parts, yielding its core: slower, measured.)
            let mut changes_seen = early_changes;
            if let Some((short, long)) = sma {
                let part = split.max(1);
                for start in (split * MAIN_PARTS..bars.len()).step_by(part) {
                    let mut changes = Vec::new();
                    sma_cross(
                        &bars.close,
                        short,
                        long,
                        start..(start + part).min(bars.len()),
                        &mut changes,
                    );
                    // (The first parts, booked meanwhile, are about as large as these.)
                    changes_seen += changes.len() * PARTS / (PARTS - MAIN_PARTS);
                    let _ = later_parts_tx.send(changes);
                }
            }
            drop(later_parts_tx);
            let mut tracker = Tracker::new(settings, keep, bars);
            let (mut rows, mut all_fills) = if format_fills {
                fills_room(changes_seen, !keep.rows_only)
            } else {
                (Vec::new(), Vec::new())
            };
            while let Some((mut batch, mut fills)) = spin_recv(&holdings) {
                for holding in batch.drain(..) {
                    tracker.hold(holding);
                }
                if format_fills {
                    nanotrader_format::push_fill_rows(&mut rows, &fills);
                    if keep.rows_only {
                        fills.clear();
                    } else {
                        all_fills.append(&mut fills);
                    }
                }
                let _ = spare_tx.send((batch, fills));
            }
            (tracker, format_fills.then_some((rows, all_fills)))
        });
        let mut whole_signal = Some(whole_signal);
        let mut own_part = |k: usize| match sma {
            Some((short, long)) => {
                let mut changes = Vec::new();
                sma_cross(&bars.close, short, long, k * split..(k + 1) * split, &mut changes);
                changes
            }
            None => whole_signal.take().unwrap_or_default(),
        };
        let mut batch = Vec::with_capacity(BATCH);
        let send = |batch: &mut Vec<Booked>, books: &mut Books| {
            // (A batch's holdings and fills are as many.)
            let (empty_batch, empty_fills) = spare.try_recv().unwrap_or_else(|_| {
                let fills = if format_fills {
                    Vec::with_capacity(BATCH)
                } else {
                    Vec::new()
                };
                (Vec::with_capacity(BATCH), fills)
            });
            let fills = match &mut books.broker {
                Broker::Recording { fills, .. } if format_fills => std::mem::replace(fills, empty_fills),
                _ => Vec::new(),
            };
            let _ = holdings_tx.send((std::mem::replace(batch, empty_batch), fills));
        };
        let mut book = |changes: &[SignalFlip]| {
            for change in changes {
                if let Some(holding) = books.on_change(change) {
                    batch.push(holding);
                    if batch.len() == BATCH {
                        send(&mut batch, &mut books);
                    }
                }
            }
        };
        for k in 0..MAIN_PARTS {
            book(&own_part(k));
        }
        while let Some(changes) = spin_recv(&later_parts) {
            book(&changes);
        }
        send(&mut batch, &mut books);
        drop(holdings_tx);
        helper.join().expect("the helper thread does not panic")
    });
    let mut outcome = finish(books, tracker, bars, None);
    if let Some((rows, fills)) = formatted {
        // The books sent every fill on to be formatted, and kept none.
        outcome.fills = fills;
        outcome.fills_csv = Some(rows);
    }
    Ok(outcome)
}

/// Room for the fills of about `changes` signal changes (there are at most as many fills) and
/// their trades CSV rows, reserved at once and backed by huge pages where the kernel has them.
/// Grown a batch at a time instead, these two were the 2M-bar benchmark's most faulted memory:
/// about 4,400 of its 10,400 page faults (4 KiB each, 2 microseconds apiece in this VM), all on
/// the thread that formats the rows, which is the longer of the backtest's two. Only the pages
/// written are ever faulted in; a guess too small only grows as before.
fn fills_room(changes: usize, listed: bool) -> (Vec<u8>, Vec<Fill>) {
    // A row is about 45 bytes (`1640993777,buy,0.002,46416,0,99907.168,0.002`).
    const ROW_BYTES: usize = 64;
    let fills = changes + 1_024;
    let rows = Vec::with_capacity(super::mapped::huge_capacity::<u8>(fills.saturating_mul(ROW_BYTES)));
    let all = if listed {
        Vec::with_capacity(super::mapped::huge_capacity::<Fill>(fills))
    } else {
        Vec::new()
    };
    super::mapped::advise_huge_capacity(&rows);
    super::mapped::advise_huge_capacity(&all);
    (rows, all)
}

/// The next message, or `None` once the sender is gone. It spins, then yields, rather than
/// sleeps: the sender is busy on the other core, and waking a sleeping thread (in a VM, a
/// sleeping virtual CPU) takes longer than a batch does.
fn spin_recv<T>(from: &std::sync::mpsc::Receiver<T>) -> Option<T> {
    use std::sync::mpsc::TryRecvError;
    let mut spins = 0u32;
    loop {
        match from.try_recv() {
            Ok(message) => return Some(message),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if spins < 1 << 12 => {
                spins += 1;
                std::hint::spin_loop();
            }
            Err(TryRecvError::Empty) => std::thread::yield_now(),
        }
    }
}

fn finish(books: Books, tracker: Tracker, bars: &BarColumns, fills_csv: Option<Vec<u8>>) -> BacktestResult {
    let (account, fills, fill_count, protections) = books.finish(bars.close.last().copied());
    let (perf, equity_curve) = tracker.finish();
    BacktestResult {
        performance: perf.report(&account, fill_count),
        fills,
        fill_count,
        account,
        equity_curve,
        fills_csv,
        protections,
    }
}

/// A bar at which the strategy's signal changes (flat to long, long to flat, alternately; it
/// starts flat), with its close taken while the column is being read anyway. Its time is read
/// only for a fill's record: a backtest that keeps none never touches the time column.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SignalFlip {
    pub bar: usize,
    pub close: i64,
}

pub fn signal_changes(bars: &BarColumns, strategy: &StrategyConfig) -> Result<Vec<SignalFlip>, InvalidStrategy> {
    strategy.validate()?;
    let mut changes = Vec::new();
    match *strategy {
        StrategyConfig::SmaCross { short, long } => sma_cross(&bars.close, short, long, 0..bars.len(), &mut changes),
        // A strategy file: its column form, node by node over the whole series.
        StrategyConfig::File(ref file) => {
            let all: Vec<_> = (0..bars.len()).map(|i| bars.bar(i)).collect();
            let mut held = Signal::Flat;
            for (i, signal) in file.program().signals(&all).into_iter().enumerate() {
                if signal != held {
                    held = signal;
                    changes.on_change(i, bars.close[i]);
                }
            }
        }
        _ => {
            let mut strategy = strategy.build()?;
            let mut held = Signal::Flat;
            for i in 0..bars.len() {
                let signal = strategy.on_bar(&bars.bar(i));
                if signal != held {
                    held = signal;
                    // A stop's own price (8 decimals at most: the strategy rounds it).
                    let price = strategy.fill_price().and_then(crate::columns::to_fixed);
                    changes.on_change(i, price.unwrap_or(bars.close[i]));
                }
            }
        }
    }
    Ok(changes)
}

/// Whatever takes the bars at which the signal changes (it starts flat and alternates).
trait ChangeSink {
    fn on_change(&mut self, bar: usize, close: i64);
}

impl ChangeSink for Vec<SignalFlip> {
    #[inline]
    fn on_change(&mut self, bar: usize, close: i64) {
        self.push(SignalFlip { bar, close });
    }
}

/// The SMA crossover over the close column, at the bars of `range`: rolling sums, compared
/// cross-multiplied (`long * sum_short > short * sum_long`), in `i64` when the data cannot
/// overflow it. Changes are reported against the signal at the bar before `range`.
fn sma_cross(closes: &[i64], short: usize, long: usize, range: std::ops::Range<usize>, sink: &mut impl ChangeSink) {
    // An upper bound of the largest close read (at most twice it) in one cheap vectorised pass;
    // a negative close (never in real data) sets the sign bit and takes the wide path.
    let read = range.start.saturating_sub(long)..range.end.min(closes.len());
    let bound = closes
        .get(read)
        .unwrap_or_default()
        .iter()
        .fold(0i64, |acc, &c| acc | c);
    let fits_i64 = bound >= 0 && (bound as i128) * (long as i128) * (long as i128) < i64::MAX as i128;
    if fits_i64 {
        sma_cross_with::<i64>(closes, short, long, range, sink);
    } else {
        sma_cross_with::<i128>(closes, short, long, range, sink);
    }
}

fn sma_cross_with<T>(
    closes: &[i64],
    short: usize,
    long: usize,
    range: std::ops::Range<usize>,
    sink: &mut impl ChangeSink,
) where
    T: Copy
        + From<i64>
        + PartialOrd
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<Output = T>,
{
    let n = closes.len().min(range.end);
    // Until the long average is defined (bar `long - 1`) the signal is flat, as it starts.
    let first = range.start.max(long - 1);
    if first >= n {
        return;
    }
    let (short_n, long_n) = (T::from(short as i64), T::from(long as i64));
    let sum = |window: &[i64]| window.iter().fold(T::from(0), |acc, &c| acc + T::from(c));
    // The sums over the windows ending at `first`, and the signal held before it.
    let (mut sum_short, mut sum_long) = (
        sum(&closes[first + 1 - short..=first]),
        sum(&closes[first + 1 - long..=first]),
    );
    let is_long = |sum_short: T, sum_long: T| long_n * sum_short > short_n * sum_long;
    let mut held_long = first >= long && {
        let leaving = T::from(closes[first]);
        is_long(
            sum_short - leaving + T::from(closes[first - short]),
            sum_long - leaving + T::from(closes[first - long]),
        )
    };
    if is_long(sum_short, sum_long) != held_long {
        held_long = !held_long;
        sink.on_change(first, closes[first]);
    }
    // Each bar adds its close and drops the one leaving each window; the signal lives in a
    // register. A change (about one bar in seventeen on real data) would be a mispredicted
    // branch, so every bar writes its offset into a block's buffer and only a change advances
    // it; the sink then hears of the block's changes.
    const BLOCK: usize = 4096;
    let mut offsets = [0u16; BLOCK];
    let mut start = first + 1;
    while start < n {
        let end = (start + BLOCK).min(n);
        let entering = &closes[start..end];
        let len = entering.len();
        let (out_short, out_long) = (&closes[start - short..][..len], &closes[start - long..][..len]);
        let mut changes = 0;
        for k in 0..len {
            let close = T::from(entering[k]);
            sum_short = sum_short + (close - T::from(out_short[k]));
            sum_long = sum_long + (close - T::from(out_long[k]));
            let now_long = is_long(sum_short, sum_long);
            // (Never wraps: there are at most as many changes as bars in a block.)
            offsets[changes & (BLOCK - 1)] = k as u16;
            changes += usize::from(now_long != held_long);
            held_long = now_long;
        }
        for &k in &offsets[..changes] {
            let bar = start + usize::from(k);
            sink.on_change(bar, closes[bar]);
        }
        start = end;
    }
}

/// The account from a bar on, after a fill, as booked: all the tracker needs of the broker.
/// The tracker turns it into a `Holding` (callgrind: the two conversions to f64 were about 100
/// of the 1,300 instructions a fill took the broker's thread).
#[derive(Copy, Clone, Debug)]
pub(crate) struct Booked {
    from_bar: usize,
    cash: FastDecimal,
    position: FastDecimal,
}

/// The account from a bar on, valued in f64 for the statistics.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Holding {
    pub(crate) from_bar: usize,
    pub(crate) cash: f64,
    pub(crate) position: f64,
}

/// The paper broker acting on each change of the signal, at the bar's close.
pub(crate) struct Books<'a> {
    times: &'a [i64],
    closes: &'a [i64],
    broker: Broker,
    rule: DecisionRule,
    signal: Signal,
    fill_count: u64,
    /// The protections, and the first bar whose equity they have not seen yet.
    guard: Option<Guard<FastDecimal>>,
    guarded_to: usize,
}

enum Broker {
    /// Every fill kept: the books in `FastDecimal`, each fill's figures turned into `Decimal`
    /// (the same values) as it is recorded.
    Recording {
        broker: PaperBroker<FastDecimal>,
        fills: Vec<Fill>,
    },
    /// Only the books, kept in `FastDecimal`: the same values, several times faster.
    Quiet(PaperBroker<FastDecimal>),
}

impl<'a> Books<'a> {
    pub(crate) fn new(settings: &Settings, keep: Keep, bars: &'a BarColumns) -> Self {
        let config = settings.broker.clone();
        Self {
            times: &bars.ts,
            closes: &bars.close,
            guard: Guard::new(
                &settings.protections,
                <FastDecimal as nanotrader_broker::Amount>::from_decimal(config.initial_cash),
            ),
            guarded_to: 0,
            broker: if keep.fills {
                Broker::Recording {
                    broker: PaperBroker::new(config),
                    fills: Vec::new(),
                }
            } else {
                Broker::Quiet(PaperBroker::new(config))
            },
            rule: DecisionRule {
                decide_from_bar: settings.decide_from_bar,
            },
            signal: Signal::Flat,
            fill_count: 0,
        }
    }

    /// The new holding when the change brings a fill.
    pub(crate) fn on_change(&mut self, &SignalFlip { bar, close }: &SignalFlip) -> Option<Booked> {
        let signal = match self.signal {
            Signal::Flat => Signal::Long,
            Signal::Long => Signal::Flat,
        };
        // The engine's rule; `bar` counts from 0.
        let change = self.rule.order(bar as u64 + 1, self.signal, signal);
        self.signal = signal;
        if self.guard.is_some() {
            self.guard_through(bar);
            if let Some(guard) = &mut self.guard
                && change == Some(1)
                && guard.halts_entries()
            {
                guard.refuse_entry();
                return None;
            }
        }
        let change = change?;
        let holding = match &mut self.broker {
            Broker::Recording { broker, fills } => {
                let price = to_amount(close);
                broker.mark(price);
                let ts = Timestamp::from_millis(self.times[bar]);
                fills.push(broker.follow_recorded(change, ts, price)?);
                Booked::of(broker.account(), bar)
            }
            Broker::Quiet(broker) => {
                let price = to_amount(close);
                broker.mark(price);
                if !broker.follow_quietly(change, price) {
                    return None;
                }
                Booked::of(broker.account(), bar)
            }
        };
        self.fill_count += 1;
        Some(holding)
    }

    /// The protections fed each bar's equity up to `bar` (inclusive), marked at its close with
    /// the books as they stand, as the engine does before the bar's order. A flat stretch's
    /// equity is the cash throughout: its first and last bars tell the rails all the others would.
    fn guard_through(&mut self, bar: usize) {
        let from = self.guarded_to;
        if bar < from {
            return;
        }
        self.guarded_to = bar + 1;
        let (broker, Some(guard)) = (
            match &mut self.broker {
                Broker::Recording { broker, .. } | Broker::Quiet(broker) => broker,
            },
            &mut self.guard,
        ) else {
            return;
        };
        let ts = |i: usize| Timestamp::from_millis(self.times[i]);
        if nanotrader_broker::Amount::is_zero(broker.account().position()) {
            let cash = broker.account().cash();
            guard.observe(ts(from), cash);
            if bar > from {
                guard.observe(ts(bar), cash);
            }
            return;
        }
        for i in from..=bar {
            broker.mark(to_amount(self.closes[i]));
            guard.observe(ts(i), broker.account().equity());
        }
    }

    /// The books marked at the last close, the fills kept and their count, what the protections
    /// did.
    pub(crate) fn finish(mut self, last_close: Option<i64>) -> (Account, Vec<Fill>, u64, Option<ProtectionReport>) {
        if let Some(last) = self.closes.len().checked_sub(1)
            && self.guard.is_some()
        {
            self.guard_through(last);
        }
        let protections = self.guard.as_ref().map(Guard::report);
        let (mut account, fills) = match self.broker {
            Broker::Recording { broker, fills } => (broker.account().to_decimal(), fills),
            Broker::Quiet(broker) => (broker.account().to_decimal(), Vec::new()),
        };
        if let Some(last) = last_close {
            account.mark(to_decimal(last));
        }
        (account, fills, self.fill_count, protections)
    }
}

impl Booked {
    fn of(account: &Account<FastDecimal>, bar: usize) -> Self {
        Booked {
            from_bar: bar,
            cash: account.cash(),
            position: account.position(),
        }
    }
}

impl Holding {
    /// The account from the booked bar on. The fill's own figures are these, trimmed; the
    /// conversion gives the same f64 for both.
    pub(crate) fn of(booked: Booked) -> Self {
        use nanotrader_broker::Amount;
        Holding {
            from_bar: booked.from_bar,
            cash: booked.cash.to_f64(),
            position: booked.position.to_f64(),
        }
    }
}

/// The performance tracker fed every bar's equity: between fills the holding is fixed, so a
/// flat stretch is one step and a long one a tight loop.
struct Tracker<'a> {
    closes: &'a [i64],
    perf: PerfTracker,
    holding: Holding,
    keep_curve: bool,
    equity_curve: Vec<f64>,
}

impl<'a> Tracker<'a> {
    fn new(settings: &Settings, keep: Keep, bars: &'a BarColumns) -> Self {
        let cash = settings.broker.initial_cash.to_f64().unwrap_or(0.0);
        Self {
            closes: &bars.close,
            perf: PerfTracker::new(cash, bars.interval),
            holding: Holding {
                from_bar: 0,
                cash,
                position: 0.0,
            },
            keep_curve: keep.equity_curve,
            equity_curve: if keep.equity_curve {
                Vec::with_capacity(bars.len())
            } else {
                Vec::new()
            },
        }
    }

    /// Tracks the bars up to the new holding's first, then holds it.
    fn hold(&mut self, booked: Booked) {
        self.track_to(booked.from_bar);
        self.holding = Holding::of(booked);
    }

    fn finish(mut self) -> (PerfTracker, Vec<f64>) {
        self.track_to(self.closes.len());
        (self.perf, self.equity_curve)
    }

    /// The bars from the holding's start to `end` (exclusive), valued with the holding.
    fn track_to(&mut self, end: usize) {
        let range = self.holding.from_bar..end;
        if range.is_empty() {
            return;
        }
        let Holding { cash, position, .. } = self.holding;
        self.holding.from_bar = end;
        if position == 0.0 {
            self.perf.on_flat_bars(range.len() as u64, cash);
            if self.keep_curve {
                self.equity_curve.extend(std::iter::repeat_n(cash, range.len()));
            }
            return;
        }
        // A local copy of the tracker stays in registers through the loop.
        let mut perf = self.perf.clone();
        let closes = &self.closes[range];
        if self.keep_curve {
            for &close in closes {
                let equity = cash + position * to_f64(close);
                perf.on_bar(equity, true);
                self.equity_curve.push(equity);
            }
        } else {
            for &close in closes {
                perf.on_bar(cash + position * to_f64(close), true);
            }
        }
        self.perf = perf;
    }
}

/// Buying with all the cash at the first close (paying the fee once) and holding to the last,
/// in percent; `None` without bars.
pub fn buy_and_hold_pct(bars: &BarColumns, fee_rate: Decimal) -> Option<f64> {
    let (first, last) = (*bars.close.first()?, *bars.close.last()?);
    let kept = 1.0 - fee_rate.to_f64().unwrap_or(0.0);
    Some((kept * to_f64(last) / to_f64(first) - 1.0) * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotrader_broker::Sizing;
    use nanotrader_market::{Bar, Interval};
    use nanotrader_strategy::Strategy;
    use rand::{Rng, SeedableRng};

    fn columns(closes: &[i64]) -> BarColumns {
        BarColumns {
            interval: Interval::ONE_MINUTE,
            ts: (1..=closes.len() as i64).map(|i| i * 60).collect(),
            close: closes.to_vec().into(),
            detail: None,
        }
    }

    /// The kernel's signal equals `SmaCross::on_bar`'s on data full of ties, in both widths.
    #[test]
    fn kernel_decides_exactly_like_the_strategy() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for round in 0..40 {
            let n = rng.random_range(1..400);
            // Few distinct prices make equal averages common; huge ones force the i128 path.
            let scale: i64 = if round % 2 == 0 { 1 } else { 10_i64.pow(18) / 4 };
            let closes: Vec<i64> = (0..n).map(|_| rng.random_range(1..4) * scale).collect();
            let short = rng.random_range(1..8);
            let long = short + rng.random_range(1..12);
            let bars = columns(&closes);

            let mut strategy = nanotrader_strategy::SmaCross::new(short, long);
            let mut want = Vec::new();
            for i in 0..n {
                let bar = Bar {
                    ts: Timestamp::from_millis(bars.ts[i]),
                    ..bars.bar(i)
                };
                want.push(strategy.on_bar(&bar));
            }
            let mut changes = Vec::new();
            if round % 2 == 0 {
                sma_cross_with::<i64>(&bars.close, short, long, 0..n, &mut changes);
            } else {
                sma_cross_with::<i128>(&bars.close, short, long, 0..n, &mut changes);
            }
            // Every bar's signal, rebuilt from the changes.
            let mut got = Vec::with_capacity(n);
            let (mut signal, mut next) = (Signal::Flat, changes.iter().peekable());
            for i in 0..n {
                if let Some(change) = next.next_if(|c| c.bar == i) {
                    assert_eq!(change.close, bars.close[i]);
                    signal = match signal {
                        Signal::Flat => Signal::Long,
                        Signal::Long => Signal::Flat,
                    };
                }
                got.push(signal);
            }
            assert_eq!(got, want, "round {round}: {short}/{long} over {closes:?}");
            // The entry point picks the width by itself and agrees.
            let mut picked = Vec::new();
            sma_cross(&bars.close, short, long, 0..n, &mut picked);
            assert_eq!(picked, changes);
            // Cut anywhere, the two parts make the same changes as the whole.
            let cut = rng.random_range(0..=n);
            let mut parts = Vec::new();
            sma_cross(&bars.close, short, long, 0..cut, &mut parts);
            sma_cross(&bars.close, short, long, cut..n, &mut parts);
            assert_eq!(parts, changes, "cut at {cut}");
        }
    }

    /// Two cores, one core, with or without fill records: the same books and figures, to the bit.
    #[test]
    fn every_way_of_running_gives_the_same_outcome() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // A random walk long enough for the two-core path, with prices of up to 8 decimals.
        let mut price: i64 = 4_000_000_000_000;
        let closes: Vec<i64> = (0..150_001)
            .map(|_| {
                price = (price + rng.random_range(-2_000_000_000..2_000_000_001)).max(100_000_000);
                price + rng.random_range(0..100)
            })
            .collect();
        let bars = columns(&closes);
        let fee_rates = [Decimal::ZERO, Decimal::new(26, 4)];
        // The SMA crossover's signal is computed in parts on both threads; any other strategy's
        // whole, before the helper starts; a slow crossover makes few changes (the room reserved
        // for the fills and rows is then mostly its fixed part).
        for (sizing, fee_rate, config) in [
            (
                Sizing::Seed,
                fee_rates[0],
                StrategyConfig::SmaCross { short: 7, long: 30 },
            ),
            (
                Sizing::Fraction(Decimal::ONE),
                fee_rates[1],
                StrategyConfig::SmaCross { short: 7, long: 30 },
            ),
            (
                Sizing::Seed,
                fee_rates[0],
                StrategyConfig::EmaCross { fast: 5, slow: 40 },
            ),
            (
                Sizing::Seed,
                fee_rates[1],
                StrategyConfig::SmaCross {
                    short: 300,
                    long: 2_000,
                },
            ),
        ] {
            let settings = Settings {
                broker: BrokerConfig {
                    sizing,
                    fee_rate,
                    ..BrokerConfig::default()
                },
                decide_from_bar: 22,
                protections: Default::default(),
            };
            let all = Keep {
                fills: true,
                equity_curve: true,
                fills_csv: true,
                rows_only: false,
            };
            let rows_only = Keep { rows_only: true, ..all };
            let one = run(&bars, &config, &settings, all).unwrap();
            assert!(one.fill_count > 20, "{config:?}: {}", one.fill_count);
            // One core formats no rows on the way: the trades file is written from the fills.
            assert_eq!(one.fills_csv, None);
            let mut want_csv = Vec::new();
            nanotrader_format::write_fills_csv(&mut want_csv, &one.fills).unwrap();
            for (cores, keep) in [(2, all), (2, rows_only), (2, Keep::default()), (1, Keep::default())] {
                let other = run_on_cores(cores, &bars, &config, &settings, keep).unwrap();
                assert_eq!(other.fill_count, one.fill_count);
                assert_eq!(other.account, one.account);
                // Scales too: the quiet books are kept in another number type.
                assert_eq!(format!("{:?}", other.account), format!("{:?}", one.account));
                assert_eq!(other.performance, one.performance, "{cores} cores, {keep:?}");
                if keep.fills {
                    if keep.rows_only {
                        assert!(other.fills.is_empty(), "the rows alone are kept");
                    } else {
                        assert_eq!(other.fills, one.fills);
                    }
                    assert_eq!(other.equity_curve, one.equity_curve);
                    // The rows formatted while booking are the trades file's, byte for byte.
                    let rows = other.fills_csv.as_deref().expect("rows formatted on two cores");
                    assert_eq!([nanotrader_format::FILLS_CSV_HEADER, rows].concat(), want_csv);
                }
            }
        }
    }

    #[test]
    fn sizing_and_fees_follow_the_broker() {
        let closes: Vec<i64> = [5, 4, 3, 4, 5, 6, 5, 4, 3, 2, 3, 4, 5]
            .iter()
            .map(|c| c * 100_000_000)
            .collect();
        let bars = columns(&closes);
        let settings = Settings {
            broker: BrokerConfig {
                sizing: Sizing::Fraction(Decimal::ONE),
                ..BrokerConfig::default()
            },
            decide_from_bar: 1,
            protections: Default::default(),
        };
        let keep = Keep {
            fills: true,
            equity_curve: true,
            ..Keep::default()
        };
        let config = StrategyConfig::SmaCross { short: 1, long: 2 };
        let out = run(&bars, &config, &settings, keep).unwrap();
        // Replayed through the engine's broker by hand: the same fills.
        let mut broker = PaperBroker::new(settings.broker.clone());
        let mut strategy = config.build().unwrap();
        let (mut prev, mut fills) = (Signal::Flat, Vec::new());
        for i in 0..bars.len() {
            let bar = bars.bar(i);
            let signal = strategy.on_bar(&bar);
            broker.mark(bar.close);
            if let Some((_, fill)) = broker.follow(signal.as_i8() - prev.as_i8(), bar.ts, bar.close) {
                fills.push(fill);
            }
            prev = signal;
        }
        assert!(!fills.is_empty());
        assert_eq!(out.fills, fills);
        assert_eq!(out.account.equity(), broker.account().equity());
        assert_eq!(out.equity_curve.len(), bars.len());
        assert_eq!(out.performance.trades, fills.len() as u64);
    }
}
