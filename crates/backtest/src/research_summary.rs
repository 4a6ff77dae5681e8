//! What a grid sweep and a walk-forward print: a table for people, or the same figures as JSON.

use std::io::{self, Write};

use serde::Serialize;

use super::grid::{GridResult, ParamAxis};
use super::summary::{SingleSummary, Timings, rate, write_body};
use super::sweep::RankBy;
use super::walk_forward::WalkForward;
use nanotrader_format::{self as human_format, NONE};
use nanotrader_perf::Performance;

/// A sweep over `--param` grids.
#[derive(Clone, Debug, Serialize)]
pub struct GridSummary {
    pub mode: &'static str,
    /// Valid combinations backtested.
    pub combinations: usize,
    /// Combinations of the grid that are no valid strategy (e.g. short >= long), not run.
    pub invalid_combinations: usize,
    pub metric: RankBy,
    pub params: Vec<ParamAxis>,
    pub top: Vec<GridResult>,
    /// The best combination's full backtest.
    pub best: SingleSummary,
    pub timings: Timings,
}

/// A walk-forward over a grid.
#[derive(Clone, Debug, Serialize)]
pub struct WalkForwardSummary {
    pub mode: &'static str,
    /// Combinations of the grid tried on each in-sample part.
    pub combinations: usize,
    pub params: Vec<ParamAxis>,
    pub walk_forward: WalkForward,
    /// The combination chosen on the last fold, backtested over all the bars.
    pub best: SingleSummary,
    pub timings: Timings,
}

/// --metric's value for people: a ratio only where the span carries it.
fn metric_text(metric: RankBy, value: Option<f64>, p: &Performance) -> String {
    match metric {
        RankBy::Sharpe | RankBy::Sortino => p.ratio_text(value),
        _ => value.map_or(NONE.to_owned(), |v| human_format::fixed_f64(v, 2)),
    }
}

fn names(params: &[ParamAxis]) -> String {
    params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(" x ")
}

pub fn print_grid(out: &mut impl Write, s: &GridSummary) -> io::Result<()> {
    writeln!(
        out,
        "nanotrader sweep: {} combinations of {} on {} ({} bars of {}), ranked by {}",
        s.combinations,
        names(&s.params),
        s.best.data.source,
        s.best.bars,
        s.best.data.interval,
        s.metric.label()
    )?;
    if s.invalid_combinations > 0 {
        writeln!(
            out,
            "  ({} combinations of the grid are no valid strategy and were not run)",
            s.invalid_combinations
        )?;
    }
    let width = s.top.iter().map(|r| r.label.len()).max().unwrap_or(0).max(11);
    writeln!(
        out,
        "  {:>4}  {:<width$}  {:>10}  {:>9}  {:>8}  {:>8}  {:>8}  {:>7}  {:>8}",
        "rank", "combination", "return %", "max DD %", "Sharpe", "Sortino", "win %", "fills", "fees"
    )?;
    for (i, r) in s.top.iter().enumerate() {
        let p = &r.performance;
        writeln!(
            out,
            "  {:>4}  {:<width$}  {:>10}  {:>9}  {:>8}  {:>8}  {:>8}  {:>7}  {:>8}",
            i + 1,
            r.label,
            human_format::fixed_f64(p.return_pct, 2),
            human_format::fixed_f64(p.max_drawdown_pct, 2),
            p.ratio_text(p.sharpe),
            p.ratio_text(p.sortino),
            p.win_rate_pct
                .map_or(NONE.to_owned(), |v| human_format::fixed_f64(v, 2)),
            p.trades,
            s.best.display.money(r.fees_paid),
        )?;
    }
    writeln!(out, "best: {}", s.best.strategy_name)?;
    write_body(out, &s.best)?;
    writeln!(
        out,
        "  time          load {:.3} s ({}), sweep {:.3} s ({} bar-steps/s on {} threads)",
        s.timings.load_secs,
        s.best.data.loaded_from,
        s.timings.compute_secs,
        rate(s.combinations * s.best.bars, s.timings.compute_secs).replace(" bars/s", ""),
        rayon::current_num_threads()
    )
}

pub fn print_walk_forward(out: &mut impl Write, s: &WalkForwardSummary) -> io::Result<()> {
    let w = &s.walk_forward;
    writeln!(
        out,
        "nanotrader walk-forward: {} folds of {} ({} bars of {}); each of folds 2..{} traded with the best of {} \
         combinations of {} by {} on all the bars before it",
        w.folds_split,
        s.best.data.source,
        s.best.bars,
        s.best.data.interval,
        w.folds_split,
        s.combinations,
        names(&s.params),
        w.metric.label()
    )?;
    let width = w.folds.iter().map(|f| f.chosen.len()).max().unwrap_or(0).max(6);
    let metric = match w.metric {
        RankBy::Sharpe => "Sharpe",
        RankBy::Sortino => "Sortino",
        RankBy::Return => "return %",
        RankBy::MaxDrawdown => "max DD %",
        RankBy::WinRate => "win %",
    };
    // The returns beside the metric, unless the metric is the return.
    let returns = w.metric != RankBy::Return;
    let pair = |a: String, b: String| {
        if returns {
            format!("  {a:>9}  {b:>9}")
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "  {:>4}  {:>17}  {:>17}  {:<width$}  {:>12}  {:>12}{}  {:>6}",
        "fold",
        "in sample bars",
        "out of sample bars",
        "chosen",
        format!("IS {metric}"),
        format!("OOS {metric}"),
        pair("IS ret %".into(), "OOS ret %".into()),
        "fills"
    )?;
    for f in &w.folds {
        let (is, oos) = (&f.in_sample_performance, &f.out_of_sample_performance);
        writeln!(
            out,
            "  {:>4}  {:>17}  {:>17}  {:<width$}  {:>12}  {:>12}{}  {:>6}{}",
            f.fold,
            format!("{}..{}", f.in_sample.first_bar, f.in_sample.last_bar),
            format!("{}..{}", f.out_of_sample.first_bar, f.out_of_sample.last_bar),
            f.chosen,
            metric_text(w.metric, f.in_sample_metric, is),
            metric_text(w.metric, f.out_of_sample_metric, oos),
            pair(
                human_format::fixed_f64(is.return_pct, 2),
                human_format::fixed_f64(oos.return_pct, 2)
            ),
            oos.trades,
            if f.disagrees {
                "  <- made money in sample only"
            } else {
                ""
            }
        )?;
    }
    let st = &w.stitched;
    let money = &s.best.display;
    writeln!(
        out,
        "stitched out of sample: bars {}..{} ({} bars, {} days), each part starting from the previous one's equity",
        st.first_bar,
        st.first_bar + st.bars.saturating_sub(1),
        st.bars,
        human_format::fixed_f64(st.span_days, 1)
    )?;
    writeln!(
        out,
        "  equity        {} -> {}  ({})",
        money.money_unit(st.start_equity),
        money.money_unit(st.end_equity),
        human_format::signed_percent(st.return_pct)
    )?;
    writeln!(out, "  max drawdown  {}", human_format::percent(st.max_drawdown_pct))?;
    match &st.ratios_reason {
        Some(why) => writeln!(out, "  Sharpe        {NONE}   Sortino {NONE}   ({why})")?,
        None => writeln!(
            out,
            "  Sharpe        {}   Sortino {}",
            human_format::ratio(st.sharpe),
            human_format::ratio(st.sortino)
        )?,
    }
    writeln!(
        out,
        "  trades        {} fills, {} round trips, win rate {}",
        st.fills,
        st.round_trips,
        human_format::percent(st.win_rate_pct)
    )?;
    if w.warnings.is_empty() {
        writeln!(
            out,
            "in and out of sample agree (no warning: see docs/research.md for the rule)"
        )?;
    }
    for warning in &w.warnings {
        writeln!(out, "WARNING: {warning}: the optimum may only fit the past")?;
    }
    writeln!(out, "last fold's choice over all bars: {}", s.best.strategy_name)?;
    write_body(out, &s.best)?;
    writeln!(
        out,
        "  time          load {:.3} s ({}), walk-forward {:.3} s on {} threads",
        s.timings.load_secs,
        s.best.data.loaded_from,
        s.timings.compute_secs,
        rayon::current_num_threads()
    )
}
