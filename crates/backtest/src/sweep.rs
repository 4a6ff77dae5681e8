//! Parameter sweeps: the SMA crossover over a grid of (short, long) windows, every combination
//! a full backtest, run in parallel on all cores over the same loaded bars.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::ProgressBar;
use rayon::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;

use super::columns::BarColumns;
use super::simulate::{self, Keep, Settings};
use nanotrader_perf::Performance;
use nanotrader_strategy::{MAX_WINDOW, StrategyConfig};

/// Most combinations one sweep may ask for.
pub const MAX_COMBINATIONS: usize = 1_000_000;

/// Window sizes as written on the command line: `10`, `5,10,20`, `5..50` or `5..50:5`
/// (inclusive; without `:STEP` the sweep's `--step`, else 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axis {
    List(Vec<usize>),
    Range {
        from: usize,
        to: usize,
        step: Option<usize>,
    },
}

impl Axis {
    pub fn values(&self, default_step: usize) -> Vec<usize> {
        match self {
            Axis::List(values) => values.clone(),
            Axis::Range { from, to, step } => (*from..=*to).step_by(step.unwrap_or(default_step).max(1)).collect(),
        }
    }

    /// The one value of a plain `--short 10`.
    pub fn single(&self) -> Option<usize> {
        match self {
            Axis::List(values) if values.len() == 1 => Some(values[0]),
            _ => None,
        }
    }
}

impl FromStr for Axis {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let window = |s: &str| -> Result<usize, String> {
            match s.trim().parse::<usize>() {
                Ok(0) => Err(format!("'{text}': windows count bars from 1")),
                Ok(w) if w > MAX_WINDOW => Err(format!("'{text}': windows are at most {MAX_WINDOW} bars")),
                Ok(w) => Ok(w),
                Err(_) => Err(format!("'{text}' is not a window: use 10, 5,10,20, 5..50 or 5..50:5")),
            }
        };
        if let Some((from, rest)) = text.split_once("..") {
            let (to, step) = match rest.split_once(':') {
                Some((to, step)) => (to, Some(window(step)?)),
                None => (rest, None),
            };
            let (from, to) = (window(from)?, window(to)?);
            if from > to {
                return Err(format!("'{text}': the range runs backwards"));
            }
            return Ok(Axis::Range { from, to, step });
        }
        let values = text.split(',').map(window).collect::<Result<Vec<_>, _>>()?;
        Ok(Axis::List(values))
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Axis::List(values) => {
                let texts: Vec<String> = values.iter().map(ToString::to_string).collect();
                f.write_str(&texts.join(","))
            }
            Axis::Range { from, to, step: None } => write!(f, "{from}..{to}"),
            Axis::Range {
                from,
                to,
                step: Some(step),
            } => write!(f, "{from}..{to}:{step}"),
        }
    }
}

/// What a sweep ranks by.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RankBy {
    /// Annualised Sharpe ratio.
    Sharpe,
    /// Annualised Sortino ratio.
    Sortino,
    /// Total return.
    Return,
    /// Maximum drawdown (smaller ranks higher).
    MaxDrawdown,
    /// Winning round trips in percent.
    WinRate,
}

impl RankBy {
    pub fn label(self) -> &'static str {
        match self {
            RankBy::Sharpe => "Sharpe (annualised)",
            RankBy::Sortino => "Sortino (annualised)",
            RankBy::Return => "return %",
            RankBy::MaxDrawdown => "max drawdown %",
            RankBy::WinRate => "win rate %",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            RankBy::Sharpe => "sharpe",
            RankBy::Sortino => "sortino",
            RankBy::Return => "return_pct",
            RankBy::MaxDrawdown => "max_drawdown_pct",
            RankBy::WinRate => "win_rate_pct",
        }
    }

    /// The figure as shown; `None` where it is undefined.
    pub fn value(self, p: &Performance) -> Option<f64> {
        match self {
            RankBy::Sharpe => p.sharpe,
            RankBy::Sortino => p.sortino,
            RankBy::Return => Some(p.return_pct),
            RankBy::MaxDrawdown => Some(p.max_drawdown_pct),
            RankBy::WinRate => p.win_rate_pct,
        }
        .filter(|v| v.is_finite())
    }

    /// Higher is better after this.
    pub(crate) fn score(self, p: &Performance) -> Option<f64> {
        let v = self.value(p)?;
        Some(if self == RankBy::MaxDrawdown { -v } else { v })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ComboResult {
    pub short: usize,
    pub long: usize,
    pub performance: Performance,
    #[serde(with = "rust_decimal::serde::str")]
    pub end_equity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub fees_paid: Decimal,
}

/// The valid (short < long) combinations of the grid, shortest windows first.
pub fn combinations(shorts: &[usize], longs: &[usize]) -> Vec<(usize, usize)> {
    let mut combos: Vec<(usize, usize)> = shorts
        .iter()
        .flat_map(|&s| longs.iter().filter(move |&&l| s < l).map(move |&l| (s, l)))
        .collect();
    combos.sort_unstable();
    combos.dedup();
    combos
}

/// A sweep stopped before its end (Ctrl-C): how many combinations were done.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Interrupted {
    pub done: usize,
}

/// Backtests every combination in parallel; results in the order of `combos`. Once `stop` is
/// set no combination starts, and those running finish.
pub fn run(
    bars: &BarColumns,
    combos: &[(usize, usize)],
    settings: &Settings,
    progress: &ProgressBar,
    stop: &AtomicBool,
) -> Result<Vec<ComboResult>, Interrupted> {
    if let Some(swept) = super::sweep_kernel::run(bars, combos, settings, progress, stop) {
        return swept;
    }
    let results: Vec<Option<ComboResult>> = combos
        .par_iter()
        .map(|&(short, long)| {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let strategy = StrategyConfig::SmaCross { short, long };
            let outcome =
                simulate::run(bars, &strategy, settings, Keep::default()).expect("combinations are validated windows");
            progress.inc(1);
            Some(ComboResult {
                short,
                long,
                performance: outcome.performance,
                end_equity: outcome.account.equity(),
                fees_paid: outcome.account.fees_paid(),
            })
        })
        .collect();
    let done = results.iter().flatten().count();
    if done < combos.len() {
        return Err(Interrupted { done });
    }
    Ok(results.into_iter().flatten().collect())
}

/// Best first by `metric`; undefined values last; ties by return, then by the smaller windows.
pub fn rank(results: &mut [ComboResult], metric: RankBy) {
    results.sort_by(|a, b| {
        let (sa, sb) = (metric.score(&a.performance), metric.score(&b.performance));
        let by_metric = match (sa, sb) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_metric
            .then(b.performance.return_pct.total_cmp(&a.performance.return_pct))
            .then((a.short, a.long).cmp(&(b.short, b.long)))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_lists_and_inclusive_ranges() {
        let axis = |s: &str| s.parse::<Axis>();
        assert_eq!(axis("10").unwrap().single(), Some(10));
        assert_eq!(axis("5,10,20").unwrap().values(1), [5, 10, 20]);
        assert_eq!(axis("5..8").unwrap().values(1), [5, 6, 7, 8]);
        assert_eq!(axis("5..20").unwrap().values(5), [5, 10, 15, 20]);
        assert_eq!(axis("5..21:5").unwrap().values(2), [5, 10, 15, 20]);
        assert_eq!(axis("5..21:5").unwrap().to_string(), "5..21:5");
        for bad in ["0", "x", "10..5", "5..", "5..10:0", "1..2000000", ""] {
            let e = axis(bad).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        assert_eq!(combinations(&[5, 10, 20], &[10, 20]), [(5, 10), (5, 20), (10, 20)]);
    }

    #[test]
    fn ranking_puts_undefined_last_and_small_drawdowns_first() {
        let result = |short, sharpe: Option<f64>, dd| ComboResult {
            short,
            long: 100,
            performance: Performance {
                sharpe,
                max_drawdown_pct: dd,
                ..Performance::default()
            },
            end_equity: Decimal::ZERO,
            fees_paid: Decimal::ZERO,
        };
        let mut results = vec![
            result(1, None, 5.0),
            result(2, Some(1.0), 9.0),
            result(3, Some(2.0), 1.0),
        ];
        rank(&mut results, RankBy::Sharpe);
        assert_eq!(results.iter().map(|r| r.short).collect::<Vec<_>>(), [3, 2, 1]);
        rank(&mut results, RankBy::MaxDrawdown);
        assert_eq!(results.iter().map(|r| r.short).collect::<Vec<_>>(), [3, 1, 2]);
    }
}
