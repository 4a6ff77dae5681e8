//! Walk-forward: a grid judged out of sample.
//!
//! The bars are split into N consecutive folds of (nearly) equal length. Anchored (expanding)
//! windows: for k = 1..N-1, the grid is optimised (by --metric) on folds 1..k, its in-sample
//! part, and the best combination is then traded on fold k+1, its out-of-sample part. So there
//! are N-1 out-of-sample parts; they touch end to end, never overlap, and cover folds 2..N.
//!
//! Warm-up: an out-of-sample part's strategy is fed every bar before the part (its indicators
//! are what they would be live), but trades only inside it: decisions, stops' entries and the
//! figures start at the part's first bar. A signal already long when the part begins waits for
//! its next entry, as a run waits for its first deciding bar.
//!
//! Stitched: each part starts in cash with the previous part's ending equity (an open position
//! valued at the part's last close, as a backtest's end is), the first with the starting cash;
//! the chained equity is the stitched out-of-sample curve, and its figures are computed over it.
//!
//! Disagreement (the warning): in-sample and out-of-sample are said to disagree widely when
//! - on more than half of the folds the in-sample return is above 0 and the out-of-sample return
//!   is not; or
//! - the stitched out-of-sample Sharpe (0 when it is undefined) falls short of the mean in-sample
//!   Sharpe by more than half of that mean's size (below half of it when it is positive, below
//!   1.5 times it when it is negative).

use std::sync::atomic::AtomicBool;

use indicatif::ProgressBar;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use super::columns::BarColumns;
use super::grid::{Combination, GridResult, StrategyGrid, rank as rank_grid, run as run_grid};
use super::simulate::{self, Keep, Settings};
use super::sweep::{Interrupted, RankBy};
use nanotrader_market::Timestamp;
use nanotrader_perf::{PerfTracker, Performance};
use nanotrader_strategy::StrategyConfig;

/// The bars of each fold's in-sample and out-of-sample parts (0-based, end exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoldRanges {
    pub in_sample: std::ops::Range<usize>,
    pub out_of_sample: std::ops::Range<usize>,
}

/// The N-1 anchored folds of `bars` bars split in `n` (`n >= 2`, `bars >= n`).
pub fn fold_ranges(bars: usize, n: usize) -> Vec<FoldRanges> {
    let cut = |k: usize| k * bars / n;
    (1..n)
        .map(|k| FoldRanges {
            in_sample: 0..cut(k),
            out_of_sample: cut(k)..cut(k + 1),
        })
        .collect()
}

/// A part of the bars, as people and machines read it.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// 1-based, inclusive.
    pub first_bar: usize,
    pub last_bar: usize,
    pub bars: usize,
    pub from: String,
    pub to: String,
}

impl Part {
    fn of(bars: &BarColumns, range: &std::ops::Range<usize>) -> Part {
        let time = |i: usize| Timestamp::from_millis(bars.ts[i]).to_string();
        Part {
            first_bar: range.start + 1,
            last_bar: range.end,
            bars: range.len(),
            from: time(range.start),
            to: time(range.end - 1),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FoldResult {
    /// 1-based: out-of-sample part k is fold k+1 of the split.
    pub fold: usize,
    pub in_sample: Part,
    pub out_of_sample: Part,
    /// The combination chosen in sample: `short=10 long=30`.
    pub chosen: String,
    /// Its index in the grid's combinations.
    #[serde(skip)]
    pub index: usize,
    #[serde(serialize_with = "ordered_map")]
    pub params: Vec<(String, String)>,
    /// Valid combinations tried in sample.
    pub combinations: usize,
    /// --metric in sample and out of sample (`None` where undefined).
    pub in_sample_metric: Option<f64>,
    pub out_of_sample_metric: Option<f64>,
    pub in_sample_performance: Performance,
    pub out_of_sample_performance: Performance,
    #[serde(with = "rust_decimal::serde::str")]
    pub start_equity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub end_equity: Decimal,
    /// In sample above 0, out of sample not.
    pub disagrees: bool,
    /// The out-of-sample equity at each of its bars' close.
    #[serde(skip)]
    pub equity_curve: Vec<f64>,
}

fn ordered_map<S: serde::Serializer>(pairs: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// The out-of-sample parts chained.
#[derive(Clone, Debug, Serialize)]
pub struct Stitched {
    pub first_bar: usize,
    pub bars: usize,
    #[serde(with = "rust_decimal::serde::str")]
    pub start_equity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub end_equity: Decimal,
    pub return_pct: f64,
    pub max_drawdown_pct: f64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub span_days: f64,
    pub ratios_meaningful: bool,
    pub ratios_reason: Option<String>,
    pub fills: u64,
    pub round_trips: u64,
    pub win_rate_pct: Option<f64>,
    /// Every out-of-sample bar's equity, in order.
    #[serde(skip)]
    pub equity_curve: Vec<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WalkForward {
    /// "anchored": in sample is every bar before the out-of-sample part.
    pub scheme: &'static str,
    /// Folds the bars were split into (N); there are N-1 out-of-sample parts.
    pub folds_split: usize,
    pub metric: RankBy,
    pub folds: Vec<FoldResult>,
    pub stitched: Stitched,
    /// Why in and out of sample disagree widely; empty when they do not.
    pub warnings: Vec<String>,
}

/// Optimises `grid` on each fold's in-sample part and trades the best on its out-of-sample
/// part; `Err` when interrupted, or (as text) when a fold has no valid combination.
#[allow(clippy::too_many_arguments)]
pub fn run(
    bars: &BarColumns,
    grid: &StrategyGrid,
    combos: &[Combination],
    settings: &Settings,
    metric: RankBy,
    n: usize,
    progress: &ProgressBar,
    stop: &AtomicBool,
) -> Result<Result<WalkForward, String>, Interrupted> {
    let mut folds = Vec::new();
    let mut equity = settings.broker.initial_cash;
    let (mut fills, mut trips, mut wins) = (0u64, 0u64, 0u64);
    let mut done = 0;
    for (k, ranges) in fold_ranges(bars.len(), n).into_iter().enumerate() {
        let in_sample = bars.slice(ranges.in_sample.clone());
        let mut run = run_grid(&in_sample, grid, combos, settings, progress, stop)
            .map_err(|Interrupted { done: d }| Interrupted { done: done + d })?;
        done += combos.len();
        if run.results.is_empty() {
            return Ok(Err(format!(
                "fold {}: no valid combination in sample{}",
                k + 2,
                run.first_invalid.map(|w| format!(" ({w})")).unwrap_or_default()
            )));
        }
        rank_grid(&mut run.results, metric);
        let best: &GridResult = &run.results[0];
        let part = bars.slice(0..ranges.out_of_sample.end);
        let from = ranges.out_of_sample.start;
        let strategy: StrategyConfig = match grid
            .deciding_from(settings.decide_from_bar.max(from as u64 + 1))
            .strategy(&combos[best.index])
        {
            Ok(strategy) => strategy,
            Err(e) => return Ok(Err(format!("fold {}: {e}", k + 2))),
        };
        let mut oos_settings = settings.clone();
        oos_settings.broker.initial_cash = equity;
        let keep = Keep {
            equity_curve: true,
            ..Keep::default()
        };
        let outcome = match simulate::run_from(&part, &strategy, &oos_settings, keep, from) {
            Ok(outcome) => outcome,
            Err(e) => return Ok(Err(format!("fold {}: {e}", k + 2))),
        };
        let end_equity = outcome.account.equity();
        fills += outcome.fill_count;
        trips += outcome.account.round_trips();
        wins += outcome.account.winning_round_trips();
        let oos = outcome.performance;
        folds.push(FoldResult {
            fold: k + 2,
            in_sample: Part::of(bars, &ranges.in_sample),
            out_of_sample: Part::of(bars, &ranges.out_of_sample),
            chosen: best.label.clone(),
            index: best.index,
            params: best.params.clone(),
            combinations: run.results.len(),
            in_sample_metric: metric.value(&best.performance),
            out_of_sample_metric: metric.value(&oos),
            disagrees: best.performance.return_pct > 0.0 && oos.return_pct <= 0.0,
            in_sample_performance: best.performance.clone(),
            out_of_sample_performance: oos,
            start_equity: equity,
            end_equity,
            equity_curve: outcome.equity_curve,
        });
        equity = end_equity;
    }
    let stitched = stitch(bars, settings, &folds, fills, trips, wins);
    let warnings = disagreement(&folds, &stitched);
    Ok(Ok(WalkForward {
        scheme: "anchored",
        folds_split: n,
        metric,
        folds,
        stitched,
        warnings,
    }))
}

fn stitch(bars: &BarColumns, settings: &Settings, folds: &[FoldResult], fills: u64, trips: u64, wins: u64) -> Stitched {
    let start = settings.broker.initial_cash;
    let end = folds.last().map_or(start, |f| f.end_equity);
    let curve: Vec<f64> = folds.iter().flat_map(|f| f.equity_curve.iter().copied()).collect();
    let mut perf = PerfTracker::new(start.to_f64().unwrap_or(0.0), bars.interval);
    for &e in &curve {
        perf.on_bar(e, false);
    }
    // The tracker takes the return from an account: one holding the ending equity in cash.
    let figures = perf.report(&nanotrader_broker::Account::new(end), fills);
    let ratios_reason = nanotrader_perf::ratios_reason(figures.span_days, trips);
    Stitched {
        first_bar: folds.first().map_or(1, |f| f.out_of_sample.first_bar),
        bars: curve.len(),
        start_equity: start,
        end_equity: end,
        return_pct: figures.return_pct,
        max_drawdown_pct: figures.max_drawdown_pct,
        sharpe: figures.sharpe,
        sortino: figures.sortino,
        span_days: figures.span_days,
        ratios_meaningful: ratios_reason.is_none(),
        ratios_reason,
        fills,
        round_trips: trips,
        win_rate_pct: (trips > 0).then(|| wins as f64 / trips as f64 * 100.0),
        equity_curve: curve,
    }
}

/// The module's rule (see its doc), each reason one line.
fn disagreement(folds: &[FoldResult], stitched: &Stitched) -> Vec<String> {
    let mut warnings = Vec::new();
    let flipped = folds.iter().filter(|f| f.disagrees).count();
    if flipped * 2 > folds.len() {
        warnings.push(format!(
            "in sample and out of sample disagree: on {flipped} of {} folds the chosen combination made money in sample \
             and none out of sample",
            folds.len()
        ));
    }
    let sharpes: Vec<f64> = folds
        .iter()
        .filter_map(|f| f.in_sample_performance.sharpe)
        .filter(|s| s.is_finite())
        .collect();
    if !sharpes.is_empty() {
        let mean_in = sharpes.iter().sum::<f64>() / sharpes.len() as f64;
        let out = stitched.sharpe.filter(|s| s.is_finite()).unwrap_or(0.0);
        if out < mean_in - mean_in.abs() / 2.0 {
            warnings.push(format!(
                "in sample and out of sample disagree: the stitched out-of-sample Sharpe ({out:.2}) is below the mean \
                 in-sample Sharpe ({mean_in:.2}) by more than half of it"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_folds_touch_end_to_end_and_cover_the_tail() {
        for (bars, n) in [(10, 2), (100, 4), (101, 3), (7, 7), (1_000_003, 10)] {
            let folds = fold_ranges(bars, n);
            assert_eq!(folds.len(), n - 1);
            assert_eq!(folds[0].out_of_sample.start, bars / n);
            assert_eq!(folds.last().unwrap().out_of_sample.end, bars);
            for pair in folds.windows(2) {
                assert_eq!(pair[0].out_of_sample.end, pair[1].out_of_sample.start);
            }
            for f in &folds {
                assert_eq!(f.in_sample, 0..f.out_of_sample.start);
                assert!(!f.out_of_sample.is_empty() && !f.in_sample.is_empty());
            }
        }
    }
}
