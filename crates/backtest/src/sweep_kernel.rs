//! The SMA sweep's kernel: every combination over the same bars, with exactly the figures of a
//! backtest of each alone (tests hold them equal), at a fraction of the cost.
//!
//! Combinations run in groups of a few long windows with all their short ones, block of bars by
//! block: each window's moving average is computed once per block for the whole group (a long
//! window is shared by up to 10 combinations on the usual grid), then each combination compares
//! its two columns four bars at a time into a bitmask of its signal, books its changes, and
//! its performance tracker runs four combinations at once (`PerfLanes`). A comparison in f64
//! decides a bar only when the averages differ by far more than the rounding of the f64 means
//! can; the others (exact ties, mostly) are decided in integers as `simulate::sma_cross` does.

use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;
use rayon::prelude::*;

use super::columns::{BarColumns, to_f64};
use super::simulate::{Books, Holding, Keep, Settings, SignalFlip};
use super::sweep::{ComboResult, Interrupted};
use nanotrader_perf::PerfLanes;

/// Combinations whose trackers step together: an AVX2 register of f64.
const LANES: usize = 4;
/// Bars per block: a group's columns (about 20 windows of 8 KiB) stay in the core's L2.
const BLOCK: usize = 1024;
/// A group takes long windows until it has this many combinations: enough for the shorts'
/// columns to be shared, few enough for the groups to spread evenly over the cores.
const GROUP: usize = 96;

/// Everything every group reads.
struct Shared<'a> {
    bars: &'a BarColumns,
    settings: &'a Settings,
    /// The closes as the tracker values them (`to_f64`).
    closes_f64: Vec<f64>,
    /// `prefix[i]`: the sum of the first `i` closes, wrapping; a window's sum, the difference of
    /// two, is exact because every window's sum fits an `i64` (checked).
    prefix: Vec<i64>,
    /// A difference of two f64 means beyond this decides the bar (see `tolerance`).
    tolerance: f64,
    /// Every window's sum is below 2^52 (`fill_means` converts them faster).
    sums_below_2_52: bool,
}

/// The sweep on the kernel, results in the order of `combos`; `None` when the kernel does not
/// take these bars or combinations (a negative close, windows' sums beyond an `i64`, a window
/// pair that is not short < long): the caller then backtests each combination alone.
pub(crate) fn run(
    bars: &BarColumns,
    combos: &[(usize, usize)],
    settings: &Settings,
    progress: &ProgressBar,
    stop: &AtomicBool,
) -> Option<Result<Vec<ComboResult>, Interrupted>> {
    // Protections read each bar's equity in order: the per-combination path takes them.
    if combos.iter().any(|&(short, long)| short == 0 || short >= long) || !settings.protections.is_empty() {
        return None;
    }
    let closes = &bars.close;
    let (min, max) = closes
        .iter()
        .fold((i64::MAX, 0i64), |(lo, hi), &c| (lo.min(c), hi.max(c)));
    let widest = combos.iter().map(|c| c.1).max()?;
    if min < 0 || i128::from(max) * widest as i128 >= 1 << 62 {
        return None;
    }
    let mut prefix = Vec::with_capacity(closes.len() + 1);
    prefix.push(0i64);
    let mut sum = 0i64;
    for &c in closes.iter() {
        sum = sum.wrapping_add(c);
        prefix.push(sum);
    }
    let shared = Shared {
        bars,
        settings,
        closes_f64: closes.iter().map(|&c| to_f64(c)).collect(),
        prefix,
        tolerance: tolerance(max),
        sums_below_2_52: i128::from(max) * (widest as i128) < 1 << 52,
    };
    let groups = groups(combos);
    let done: Vec<Option<Vec<(usize, ComboResult)>>> = groups
        .par_iter()
        .map(|group| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let results = run_group(&shared, combos, group);
            progress.inc(group.len() as u64);
            Some(results)
        })
        .collect();
    let finished: usize = done.iter().flatten().map(Vec::len).sum();
    if finished < combos.len() {
        return Some(Err(Interrupted { done: finished }));
    }
    let mut results: Vec<Option<ComboResult>> = vec![None; combos.len()];
    for (index, result) in done.into_iter().flatten().flatten() {
        results[index] = Some(result);
    }
    Some(Ok(results.into_iter().flatten().collect()))
}

/// Above this, a difference of two f64 means has the sign of the exact one. A mean here is a
/// window's exact integer sum converted to f64, times the f64 reciprocal of its length: three
/// roundings, so within `3.01 * 2^-53` of the exact mean relatively, and every mean is at most
/// `max_close`; two of them differ from the exact difference by at most `6.02 * 2^-53 *
/// max_close`, and their rounded difference keeps its sign. 2^-44 leaves a margin of 80.
fn tolerance(max_close: i64) -> f64 {
    max_close as f64 * 2f64.powi(-44)
}

/// The combinations' indices in groups: by long window, whole long windows at a time, until a
/// group holds `GROUP`; inside a group by short then long window, so that the four lanes of a
/// tracker hold close windows (similar positions: flat together more often).
fn groups(combos: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..combos.len()).collect();
    order.sort_by_key(|&i| (combos[i].1, combos[i].0));
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group: Vec<usize> = Vec::new();
    for (k, &i) in order.iter().enumerate() {
        group.push(i);
        let long_ends = order.get(k + 1).is_none_or(|&next| combos[next].1 != combos[i].1);
        if long_ends && group.len() >= GROUP {
            groups.push(std::mem::take(&mut group));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    for group in &mut groups {
        group.sort_by_key(|&i| (combos[i].0, combos[i].1));
    }
    groups
}

/// One group's combinations backtested, as (index into `combos`, result).
fn run_group(shared: &Shared, combos: &[(usize, usize)], group: &[usize]) -> Vec<(usize, ComboResult)> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { run_group_avx2(shared, combos, group) };
    }
    group_body(shared, combos, group, false)
}

/// The same, compiled for AVX2 (the comparisons and the trackers four f64 at a time).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn run_group_avx2(shared: &Shared, combos: &[(usize, usize)], group: &[usize]) -> Vec<(usize, ComboResult)> {
    group_body(shared, combos, group, true)
}

/// A combination while its group runs.
struct Combo<'a> {
    index: usize,
    short: usize,
    long: usize,
    /// Its two windows' rows in the group's columns.
    short_column: usize,
    long_column: usize,
    books: Books<'a>,
    /// The signal at the bar before the block.
    held_long: bool,
    /// The block's fills: (bar, cash, position) from that bar on.
    holdings: Vec<(usize, f64, f64)>,
}

#[inline(always)]
fn group_body(shared: &Shared, combos: &[(usize, usize)], group: &[usize], avx: bool) -> Vec<(usize, ComboResult)> {
    let bars = shared.bars;
    let n = bars.len();
    let mut windows: Vec<usize> = group.iter().flat_map(|&i| [combos[i].0, combos[i].1]).collect();
    windows.sort_unstable();
    windows.dedup();
    let row = |w: usize| windows.binary_search(&w).expect("every window has its row");
    let mut members: Vec<Combo> = group
        .iter()
        .map(|&index| {
            let (short, long) = combos[index];
            Combo {
                index,
                short,
                long,
                short_column: row(short),
                long_column: row(long),
                books: Books::new(shared.settings, Keep::default(), bars),
                held_long: false,
                holdings: Vec::new(),
            }
        })
        .collect();
    let quads = members.len().div_ceil(LANES);
    let initial_cash = {
        use rust_decimal::prelude::ToPrimitive;
        shared.settings.broker.initial_cash.to_f64().unwrap_or(0.0)
    };
    let mut trackers = vec![PerfLanes::<LANES>::new(initial_cash, bars.interval); quads];
    let mut cash = vec![[initial_cash; LANES]; quads];
    let mut position = vec![[0.0f64; LANES]; quads];
    let mut columns = vec![0.0f64; windows.len() * BLOCK];

    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        for (r, &w) in windows.iter().enumerate() {
            fill_means(
                &mut columns[r * BLOCK..][..end - start],
                &shared.prefix,
                w,
                start,
                shared.sums_below_2_52,
            );
        }
        for combo in &mut members {
            combo.holdings.clear();
            let short_means = &columns[combo.short_column * BLOCK..][..end - start];
            let long_means = &columns[combo.long_column * BLOCK..][..end - start];
            signal_changes(shared, combo, short_means, long_means, start, avx);
        }
        for (q, lanes) in trackers.iter_mut().enumerate() {
            let quad = &members[q * LANES..((q + 1) * LANES).min(members.len())];
            track(
                lanes,
                &mut cash[q],
                &mut position[q],
                quad,
                &shared.closes_f64,
                start..end,
                avx,
            );
        }
    }

    let last_close = bars.close.last().copied();
    members
        .into_iter()
        .enumerate()
        .map(|(m, combo)| {
            let (account, _, fill_count, _) = combo.books.finish(last_close);
            let performance = trackers[m / LANES].lane(m % LANES).report(&account, fill_count);
            (
                combo.index,
                ComboResult {
                    short: combo.short,
                    long: combo.long,
                    performance,
                    end_equity: account.equity(),
                    fees_paid: account.fees_paid(),
                },
            )
        })
        .collect()
}

/// The means of the `window` closes ending at each bar from `start` on (0 before the first
/// full window, which no combination reads).
#[inline(always)]
fn fill_means(column: &mut [f64], prefix: &[i64], window: usize, start: usize, sums_below_2_52: bool) {
    let per_bar = 1.0 / window as f64;
    let empty = (window - 1).saturating_sub(start).min(column.len());
    column[..empty].fill(0.0);
    let (column, first) = (&mut column[empty..], start + empty);
    let (ends, starts) = (
        &prefix[first + 1..][..column.len()],
        &prefix[first + 1 - window..][..column.len()],
    );
    if sums_below_2_52 {
        // The sum's bits under 2^52's exponent make the f64 2^52 + sum exactly; less 2^52 it is
        // the sum. Unlike `as f64` (one conversion at a time without AVX-512), this vectorises:
        // the columns took about 15 instructions a bar, a quarter of the kernel's own (callgrind).
        const TWO_52: f64 = 4_503_599_627_370_496.0;
        for ((mean, &end), &begin) in column.iter_mut().zip(ends).zip(starts) {
            let sum = end.wrapping_sub(begin) as u64;
            *mean = (f64::from_bits(sum | TWO_52.to_bits()) - TWO_52) * per_bar;
        }
    } else {
        for ((mean, &end), &begin) in column.iter_mut().zip(ends).zip(starts) {
            *mean = end.wrapping_sub(begin) as f64 * per_bar;
        }
    }
}

/// The block's signal changes of one combination, booked; the fills' holdings kept for the
/// tracker.
#[inline(always)]
fn signal_changes(
    shared: &Shared,
    combo: &mut Combo,
    short_means: &[f64],
    long_means: &[f64],
    start: usize,
    avx: bool,
) {
    let closes = &shared.bars.close;
    // Until the long average is defined the signal is flat, as it starts.
    let first = combo.long - 1;
    let end = start + short_means.len();
    if first >= end {
        return;
    }
    for (w, (short_word, long_word)) in short_means.chunks(64).zip(long_means.chunks(64)).enumerate() {
        let base = start + w * 64;
        let count = short_word.len();
        if base + count <= first {
            continue;
        }
        let mut valid = if count == 64 { u64::MAX } else { (1u64 << count) - 1 };
        if base < first {
            valid &= u64::MAX << (first - base);
        }
        #[cfg(target_arch = "x86_64")]
        let (above, near) = if avx {
            // SAFETY: `avx` is set only where the CPU has AVX2.
            unsafe { compare_avx(short_word, long_word, shared.tolerance) }
        } else {
            compare(short_word, long_word, shared.tolerance)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (above, near) = compare(short_word, long_word, shared.tolerance);
        let mut long_bits = above & valid;
        let mut unsure = near & valid;
        while unsure != 0 {
            let k = unsure.trailing_zeros() as usize;
            unsure &= unsure - 1;
            if exactly_long(&shared.prefix, combo.short, combo.long, base + k) {
                long_bits |= 1 << k;
            }
        }
        let mut flips = (long_bits ^ ((long_bits << 1) | u64::from(combo.held_long))) & (u64::MAX >> (64 - count));
        combo.held_long = long_bits >> (count - 1) & 1 == 1;
        while flips != 0 {
            let bar = base + flips.trailing_zeros() as usize;
            flips &= flips - 1;
            let change = SignalFlip {
                bar,
                close: closes[bar],
            };
            if let Some(booked) = combo.books.on_change(&change) {
                let holding = Holding::of(booked);
                combo.holdings.push((bar, holding.cash, holding.position));
            }
        }
    }
}

/// Up to 64 bars' comparisons: bit `k` of the first is set where the short mean is above the
/// long one by more than `tolerance`, of the second where they are within it.
#[inline(always)]
fn compare(short_means: &[f64], long_means: &[f64], tolerance: f64) -> (u64, u64) {
    let (mut above, mut near) = (0u64, 0u64);
    for (k, (&s, &l)) in short_means.iter().zip(long_means).enumerate() {
        let d = s - l;
        above |= u64::from(d > tolerance) << k;
        near |= u64::from(d.abs() <= tolerance) << k;
    }
    (above, near)
}

/// `compare`, four bars to an AVX register (the compiler left `compare` one bar at a time:
/// about 9 instructions a bar against 2 here, callgrind).
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn compare_avx(short_means: &[f64], long_means: &[f64], tolerance: f64) -> (u64, u64) {
    use std::arch::x86_64::*;
    let whole = short_means.len().min(long_means.len()) / 4 * 4;
    let (mut above, mut near) = (0u64, 0u64);
    let (limit, magnitude) = (_mm256_set1_pd(tolerance), _mm256_set1_pd(f64::from_bits(!(1u64 << 63))));
    for k in (0..whole).step_by(4) {
        // SAFETY: k + 4 <= whole, within both slices.
        let (s, l) = unsafe {
            (
                _mm256_loadu_pd(short_means.as_ptr().add(k)),
                _mm256_loadu_pd(long_means.as_ptr().add(k)),
            )
        };
        let d = _mm256_sub_pd(s, l);
        above |= (_mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(d, limit)) as u64) << k;
        near |= (_mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LE_OQ>(_mm256_and_pd(d, magnitude), limit)) as u64) << k;
    }
    if whole < short_means.len() {
        let (tail_above, tail_near) = compare(&short_means[whole..], &long_means[whole..], tolerance);
        (above, near) = (above | tail_above << whole, near | tail_near << whole);
    }
    (above, near)
}

/// The crossover's own comparison at `bar`, in integers: `long * sum_short > short * sum_long`.
fn exactly_long(prefix: &[i64], short: usize, long: usize, bar: usize) -> bool {
    let sum = |w: usize| i128::from(prefix[bar + 1].wrapping_sub(prefix[bar + 1 - w]));
    long as i128 * sum(short) > short as i128 * sum(long)
}

/// The block's bars through one quad's trackers: between two fills of any of its combinations
/// every lane's holding is fixed, so a stretch is one call (O(1) when all four are flat).
#[inline(always)]
fn track(
    lanes: &mut PerfLanes<LANES>,
    cash: &mut [f64; LANES],
    position: &mut [f64; LANES],
    quad: &[Combo],
    closes: &[f64],
    block: std::ops::Range<usize>,
    avx: bool,
) {
    let mut next_fill = [0usize; LANES];
    let mut from = block.start;
    loop {
        let mut to = block.end;
        for (l, combo) in quad.iter().enumerate() {
            if let Some(&(bar, _, _)) = combo.holdings.get(next_fill[l]) {
                to = to.min(bar);
            }
        }
        if to > from {
            if position.iter().all(|&p| p == 0.0) {
                lanes.on_flat_bars((to - from) as u64, cash);
            } else {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the group runs on the AVX2 path only where the CPU has AVX2.
                if avx {
                    unsafe { lanes.on_bars_avx(&closes[from..to], cash, position) };
                } else {
                    lanes.on_bars(&closes[from..to], cash, position);
                }
                #[cfg(not(target_arch = "x86_64"))]
                lanes.on_bars(&closes[from..to], cash, position);
            }
        }
        if to == block.end {
            return;
        }
        for (l, combo) in quad.iter().enumerate() {
            if let Some(&(bar, c, p)) = combo.holdings.get(next_fill[l])
                && bar == to
            {
                (cash[l], position[l]) = (c, p);
                next_fill[l] += 1;
            }
        }
        from = to;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{CacheMode, DEFAULT_CACHE_MAX_BYTES, LoadOptions, load};
    use crate::simulate;
    use nanotrader_broker::{BrokerConfig, Sizing};
    use nanotrader_market::Interval;
    use nanotrader_strategy::StrategyConfig;
    use rand::{Rng, SeedableRng};
    use rust_decimal::Decimal;

    /// Each combination backtested alone, as the sweep did before its kernel.
    fn one_by_one(bars: &BarColumns, combos: &[(usize, usize)], settings: &Settings) -> Vec<ComboResult> {
        combos
            .iter()
            .map(|&(short, long)| {
                let strategy = StrategyConfig::SmaCross { short, long };
                let outcome = simulate::run(bars, &strategy, settings, Keep::default()).unwrap();
                ComboResult {
                    short,
                    long,
                    performance: outcome.performance,
                    end_equity: outcome.account.equity(),
                    fees_paid: outcome.account.fees_paid(),
                }
            })
            .collect()
    }

    fn kernel(bars: &BarColumns, combos: &[(usize, usize)], settings: &Settings) -> Vec<ComboResult> {
        run(bars, combos, settings, &ProgressBar::hidden(), &AtomicBool::new(false))
            .expect("the kernel takes these bars")
            .expect("not interrupted")
    }

    /// Equal to the bit: every figure, its f64s by their exact text, the money by its scale too.
    fn assert_same(got: &[ComboResult], want: &[ComboResult], what: &str) {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(format!("{g:?}"), format!("{w:?}"), "{what}");
        }
    }

    fn settings(sizing: Sizing, fee_rate: Decimal) -> Settings {
        Settings {
            broker: BrokerConfig {
                sizing,
                fee_rate,
                ..BrokerConfig::default()
            },
            decide_from_bar: 22,
            protections: Default::default(),
        }
    }

    /// Random walks, some with few distinct prices (exact ties of the averages are common), over
    /// several blocks and a ragged end, under both sizings, with and without fees.
    #[test]
    fn the_kernel_equals_backtesting_each_combination_on_random_data() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
        for round in 0..6 {
            let n = rng.random_range(3_000..6_000);
            let mut price: i64 = 4_000_000_000_000;
            let closes: Vec<i64> = (0..n)
                .map(|_| {
                    if round % 2 == 0 {
                        // Whole units from a handful: ties everywhere.
                        rng.random_range(1..5) * 100_000_000
                    } else {
                        price = (price + rng.random_range(-2_000_000_000..2_000_000_001)).max(100_000_000);
                        price + rng.random_range(0..100)
                    }
                })
                // The last round's windows sum beyond 2^52 (the plain conversion).
                .map(|c| if round == 5 { c * 100 } else { c })
                .collect();
            let bars = BarColumns {
                interval: Interval::ONE_MINUTE,
                ts: (0..n as i64).map(|i| 1_600_000_017_000 + i * 60_000).collect(),
                close: closes.into(),
                detail: None,
            };
            let shorts: Vec<usize> = (1..=13).step_by(3).collect();
            let longs: Vec<usize> = (2..=90).step_by(rng.random_range(5..11)).collect();
            let combos = crate::sweep::combinations(&shorts, &longs);
            let mut traded = false;
            for settings in [
                settings(Sizing::Seed, Decimal::ZERO),
                settings(Sizing::Fraction(Decimal::ONE), Decimal::new(26, 4)),
            ] {
                let want = one_by_one(&bars, &combos, &settings);
                traded |= want.iter().any(|r| r.performance.trades > 100);
                assert_same(&kernel(&bars, &combos, &settings), &want, &format!("round {round}"));
            }
            assert!(traded, "round {round} makes trades");
        }
    }

    /// A real file moved 17 seconds off the minute with a tenth of its minutes missing, loaded
    /// as the command loads it.
    #[test]
    fn the_kernel_equals_backtesting_each_combination_on_a_file_with_gaps() {
        let real =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/btcusd_1m_20180404_20180406.csv");
        let text = std::fs::read_to_string(real).unwrap();
        let mut lines = text.lines();
        let mut csv = format!("{}\n", lines.next().unwrap());
        for (i, line) in lines.enumerate() {
            let (ts, rest) = line.split_once(',').unwrap();
            if i % 10 != 3 {
                csv.push_str(&format!("{},{rest}\n", ts.parse::<i64>().unwrap() + 17));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gaps.csv");
        std::fs::write(&path, csv).unwrap();
        let options = LoadOptions {
            interval: None,
            cache: CacheMode::Off,
            cache_dir: None,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            detail: false,
            columns: None,
        };
        let bars = load(&path, &options, &ProgressBar::hidden()).unwrap().bars;
        assert!(bars.len() > 3_000);
        let combos = crate::sweep::combinations(
            &(5..=50).step_by(5).collect::<Vec<_>>(),
            &(52..=250).step_by(6).collect::<Vec<_>>(),
        );
        for settings in [
            settings(Sizing::Seed, Decimal::ZERO),
            settings(Sizing::Fraction(Decimal::ONE), Decimal::new(26, 4)),
        ] {
            assert_same(
                &kernel(&bars, &combos, &settings),
                &one_by_one(&bars, &combos, &settings),
                "gaps",
            );
        }
    }

    /// Data the kernel does not take (a negative close) goes back to the caller.
    #[test]
    fn bars_beyond_the_kernel_are_left_to_the_caller() {
        let bars = BarColumns {
            interval: Interval::ONE_MINUTE,
            ts: (0..100).collect(),
            close: (0..100).map(|i| if i == 50 { -1 } else { 5 }).collect(),
            detail: None,
        };
        let settings = settings(Sizing::Seed, Decimal::ZERO);
        assert!(
            run(
                &bars,
                &[(2, 5)],
                &settings,
                &ProgressBar::hidden(),
                &AtomicBool::new(false)
            )
            .is_none()
        );
    }
}
