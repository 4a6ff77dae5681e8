//! One backtest: the strategy's signal over every bar, the paper broker acting on its changes,
//! the performance tracker fed each bar's equity. The SMA crossover runs as a fixed-point column
//! kernel that takes exactly the decisions of `SmaCross` (a test holds them equal); any other
//! strategy runs bar by bar through the `Strategy` trait, as in the engine.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use super::columns::{BarColumns, decimal_to_f64, to_decimal, to_f64};
use crate::broker::{Account, BrokerConfig, Fill, PaperBroker};
use crate::market::Timestamp;
use crate::perf::{PerfTracker, Performance};
use crate::strategy::{Signal, StrategyConfig};

/// How the account trades, as in `run`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub broker: BrokerConfig,
    /// Decisions are taken from this bar on (1-based); the seed waited for 22.
    pub decide_from_bar: u64,
}

/// What to keep besides the figures.
#[derive(Copy, Clone, Debug, Default)]
pub struct Keep {
    pub fills: bool,
    /// The equity at every bar's close (for the report).
    pub equity_curve: bool,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub fills: Vec<Fill>,
    pub fill_count: u64,
    /// The books after the last bar, marked at its close.
    pub account: Account,
    pub performance: Performance,
    /// Every bar's equity, when kept.
    pub equity_curve: Vec<f64>,
}

/// Runs `strategy` over `bars`.
pub fn run(bars: &BarColumns, strategy: &StrategyConfig, settings: &Settings, keep: Keep) -> Result<Outcome, String> {
    let changes = signal_changes(bars, strategy)?;
    let mut sim = Simulator::new(settings, keep, bars);
    let mut from = 0;
    for change in &changes {
        sim.steady(from..change.bar);
        sim.on_signal_change(change);
        from = change.bar + 1;
    }
    sim.steady(from..bars.len());
    Ok(sim.finish())
}

/// A bar at which the strategy's signal changes (flat to long, long to flat, alternately; it
/// starts flat), with its time and close taken while the columns are being read anyway.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub bar: usize,
    pub ts: i64,
    pub close: i64,
}

pub fn signal_changes(bars: &BarColumns, strategy: &StrategyConfig) -> Result<Vec<Change>, String> {
    strategy.validate()?;
    let mut changes = ChangeList {
        signal: Signal::Flat,
        at: Vec::new(),
    };
    match *strategy {
        StrategyConfig::SmaCross { short, long } => sma_cross(&bars.ts, &bars.close, short, long, &mut changes),
        _ => {
            let mut strategy = strategy.build()?;
            for i in 0..bars.len() {
                let signal = strategy.on_bar(&bars.bar(i));
                changes.on_bar(i, bars.ts[i], bars.close[i], signal);
            }
        }
    }
    Ok(changes.at)
}

/// Whatever takes the signal after each bar.
trait SignalSink {
    fn on_bar(&mut self, i: usize, ts: i64, close: i64, signal: Signal);
}

struct ChangeList {
    signal: Signal,
    at: Vec<Change>,
}

impl SignalSink for ChangeList {
    #[inline(always)]
    fn on_bar(&mut self, bar: usize, ts: i64, close: i64, signal: Signal) {
        if signal != self.signal {
            self.signal = signal;
            self.at.push(Change { bar, ts, close });
        }
    }
}

/// The SMA crossover over the close column: rolling sums, compared cross-multiplied
/// (`long * sum_short > short * sum_long`), in `i64` when the data cannot overflow it.
fn sma_cross(ts: &[i64], closes: &[i64], short: usize, long: usize, sink: &mut impl SignalSink) {
    let max_close = closes.iter().copied().max().unwrap_or(0).max(0) as i128;
    let fits_i64 = max_close * (long as i128) * (long as i128) < i64::MAX as i128;
    if fits_i64 {
        sma_cross_with::<i64>(ts, closes, short, long, sink);
    } else {
        sma_cross_with::<i128>(ts, closes, short, long, sink);
    }
}

fn sma_cross_with<T>(ts: &[i64], closes: &[i64], short: usize, long: usize, sink: &mut impl SignalSink)
where
    T: Copy
        + From<i64>
        + PartialOrd
        + std::ops::Add<Output = T>
        + std::ops::Sub<Output = T>
        + std::ops::Mul<Output = T>,
{
    let n = closes.len().min(ts.len());
    let (short_n, long_n) = (T::from(short as i64), T::from(long as i64));
    let (mut sum_short, mut sum_long) = (T::from(0), T::from(0));
    // Warm-up: the long average is not defined yet, so the signal is flat.
    let warm_up = (long - 1).min(n);
    for (i, &close) in closes[..warm_up].iter().enumerate() {
        sum_short = sum_short + T::from(close);
        if i >= short {
            sum_short = sum_short - T::from(closes[i - short]);
        }
        sum_long = sum_long + T::from(close);
        sink.on_bar(i, ts[i], close, Signal::Flat);
    }
    if n < long {
        return;
    }
    let signal = |sum_short: T, sum_long: T| {
        if long_n * sum_short > short_n * sum_long {
            Signal::Long
        } else {
            Signal::Flat
        }
    };
    // The first bar with both averages: nothing leaves the long window yet.
    let first = long - 1;
    sum_short = sum_short + T::from(closes[first]) - T::from(closes[first - short]);
    sum_long = sum_long + T::from(closes[first]);
    sink.on_bar(first, ts[first], closes[first], signal(sum_short, sum_long));
    // Then each bar adds its close and drops the one leaving each window (no bounds checks;
    // times are read along, as a stream, for the rare change).
    let entering = closes[long..n].iter().zip(&ts[long..n]);
    let leaving = closes[long - short..n - short].iter().zip(&closes[..n - long]);
    for (k, ((&close, &t), (&out_short, &out_long))) in entering.zip(leaving).enumerate() {
        sum_short = sum_short + T::from(close) - T::from(out_short);
        sum_long = sum_long + T::from(close) - T::from(out_long);
        sink.on_bar(long + k, t, close, signal(sum_short, sum_long));
    }
}

/// The broker and the performance tracker, driven over the bars: between signal changes the
/// position is fixed, so a flat stretch is one step for the tracker and a long one a tight loop.
struct Simulator<'a> {
    bars: &'a BarColumns,
    broker: PaperBroker,
    perf: PerfTracker,
    decide_from_bar: u64,
    signal: Signal,
    cash: f64,
    position: f64,
    keep: Keep,
    fills: Vec<Fill>,
    fill_count: u64,
    equity_curve: Vec<f64>,
}

impl<'a> Simulator<'a> {
    fn new(settings: &Settings, keep: Keep, bars: &'a BarColumns) -> Self {
        let cash = settings.broker.initial_cash.to_f64().unwrap_or(0.0);
        Self {
            bars,
            broker: PaperBroker::new(settings.broker.clone()),
            perf: PerfTracker::new(cash, bars.interval),
            decide_from_bar: settings.decide_from_bar,
            signal: Signal::Flat,
            cash,
            position: 0.0,
            keep,
            fills: Vec::new(),
            fill_count: 0,
            equity_curve: if keep.equity_curve {
                Vec::with_capacity(bars.len())
            } else {
                Vec::new()
            },
        }
    }

    /// Bars without a signal change: no order, the equity follows the close.
    fn steady(&mut self, range: std::ops::Range<usize>) {
        if range.is_empty() {
            return;
        }
        if self.position == 0.0 {
            self.perf.on_flat_bars(range.len() as u64, self.cash);
            if self.keep.equity_curve {
                self.equity_curve.extend(std::iter::repeat_n(self.cash, range.len()));
            }
            return;
        }
        // A local copy of the tracker stays in registers through the loop.
        let mut perf = self.perf.clone();
        let (cash, position) = (self.cash, self.position);
        let closes = &self.bars.close[range];
        if self.keep.equity_curve {
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

    /// The bar at which the signal changes: the broker acts on it at the bar's close.
    fn on_signal_change(&mut self, &Change { bar: i, ts, close }: &Change) {
        let signal = match self.signal {
            Signal::Flat => Signal::Long,
            Signal::Long => Signal::Flat,
        };
        let change = signal.as_i8() - self.signal.as_i8();
        self.signal = signal;
        if i as u64 + 1 >= self.decide_from_bar {
            let price = to_decimal(close);
            self.broker.mark(price);
            if let Some((_order, fill)) = self.broker.follow(change, Timestamp::from_secs(ts), price) {
                self.cash = decimal_to_f64(fill.cash_after);
                self.position = decimal_to_f64(fill.position_after);
                self.fill_count += 1;
                if self.keep.fills {
                    self.fills.push(fill);
                }
            }
        }
        let equity = self.cash + self.position * to_f64(close);
        self.perf.on_bar(equity, self.position != 0.0);
        if self.keep.equity_curve {
            self.equity_curve.push(equity);
        }
    }

    fn finish(mut self) -> Outcome {
        if let Some(&last) = self.bars.close.last() {
            self.broker.mark(to_decimal(last));
        }
        let account = self.broker.account().clone();
        Outcome {
            performance: self.perf.report(&account, self.fill_count),
            fills: self.fills,
            fill_count: self.fill_count,
            account,
            equity_curve: self.equity_curve,
        }
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
    use crate::broker::Sizing;
    use crate::market::{Bar, Interval};
    use crate::strategy::Strategy;
    use rand::{Rng, SeedableRng};

    fn columns(closes: &[i64]) -> BarColumns {
        BarColumns {
            interval: Interval::ONE_MINUTE,
            ts: (1..=closes.len() as i64).map(|i| i * 60).collect(),
            close: closes.to_vec(),
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

            let mut strategy = crate::strategy::SmaCross::new(short, long);
            let mut want = Vec::new();
            for i in 0..n {
                let bar = Bar {
                    ts: Timestamp::from_secs(bars.ts[i]),
                    ..bars.bar(i)
                };
                want.push(strategy.on_bar(&bar));
            }
            let mut got = Recorder(Vec::new());
            if round % 2 == 0 {
                sma_cross_with::<i64>(&bars.ts, &bars.close, short, long, &mut got);
            } else {
                sma_cross_with::<i128>(&bars.ts, &bars.close, short, long, &mut got);
            }
            assert_eq!(got.0, want, "round {round}: {short}/{long} over {closes:?}");
        }
    }

    struct Recorder(Vec<Signal>);

    impl SignalSink for Recorder {
        fn on_bar(&mut self, _: usize, _: i64, _: i64, signal: Signal) {
            self.0.push(signal);
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
        };
        let keep = Keep {
            fills: true,
            equity_curve: true,
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
