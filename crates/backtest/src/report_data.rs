//! The data of the HTML report: the backtest's series brought down to what a page can draw
//! (at most `MAX_CANDLES` candles, each summing whole bars), with the summary as text.

use std::collections::HashMap;

use rust_decimal::prelude::ToPrimitive;

use super::columns::{BarColumns, to_f64};
use super::grid::{GridResult, ParamAxis};
use super::html::{
    Candle, FillRow, FoldRow, GridData, GridRow, LineSeries, Point, PriceSeries, ReportData, SummaryRow, SweepData,
    SweepRow, WalkForwardData,
};
use super::simulate::BacktestResult;
use super::summary::SingleSummary;
use super::sweep::{ComboResult, RankBy};
use super::walk_forward::WalkForward;
use nanotrader_format::plain;
use nanotrader_format::{self as human_format, NONE};
use nanotrader_strategy::{MAX_LINES, StrategyConfig};

/// Candles drawn at most; longer data is shown in coarser candles.
pub const MAX_CANDLES: usize = 20_000;
/// Fills listed and marked at most (the latest ones).
pub const MAX_FILLS: usize = 5_000;

pub fn build(
    bars: &BarColumns,
    strategy: &StrategyConfig,
    outcome: &BacktestResult,
    summary: &SingleSummary,
    sweep: Option<SweepData>,
) -> ReportData {
    let n = bars.len();
    let per_candle = n.div_ceil(MAX_CANDLES).max(1);
    let groups: Vec<(usize, usize)> = (0..n)
        .step_by(per_candle)
        .map(|start| (start, (start + per_candle).min(n)))
        .collect();
    // The chart counts time in seconds.
    let time = |i: usize| bars.ts[i].div_euclid(1000);

    let candles = groups
        .iter()
        .map(|&(a, b)| {
            let (open, high, low) = match &bars.detail {
                Some(d) => (
                    d.open[a],
                    *d.high[a..b].iter().max().expect("non-empty group"),
                    *d.low[a..b].iter().min().expect("non-empty group"),
                ),
                None => (
                    bars.close[a],
                    *bars.close[a..b].iter().max().expect("non-empty group"),
                    *bars.close[a..b].iter().min().expect("non-empty group"),
                ),
            };
            Candle {
                time: time(a),
                open: to_f64(open),
                high: to_f64(high),
                low: to_f64(low),
                close: to_f64(bars.close[b - 1]),
            }
        })
        .collect();

    let lines = indicator_lines(bars, strategy, &groups);

    let curve = &outcome.equity_curve;
    let initial = summary.start_equity.to_f64().unwrap_or(0.0);
    let equity = if curve.len() == n {
        groups
            .iter()
            .map(|&(a, b)| Point {
                time: time(a),
                value: curve[b - 1],
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut drawdown_pct = Vec::with_capacity(groups.len());
    if curve.len() == n {
        let mut peak = initial;
        for &(a, b) in &groups {
            let mut worst: f64 = 0.0;
            for &e in &curve[a..b] {
                peak = peak.max(e);
                if peak > 0.0 {
                    worst = worst.min((e / peak - 1.0) * 100.0);
                }
            }
            drawdown_pct.push(Point {
                time: time(a),
                value: worst,
            });
        }
    }
    let kept = 1.0 - summary.assumptions.broker.fee_rate.to_f64().unwrap_or(0.0);
    let first_close = bars.close.first().map_or(1.0, |&c| to_f64(c));
    let buy_hold_equity = groups
        .iter()
        .map(|&(a, b)| Point {
            time: time(a),
            value: initial * kept * to_f64(bars.close[b - 1]) / first_close,
        })
        .collect();

    let shown = &summary.display;
    let skip = outcome.fills.len().saturating_sub(MAX_FILLS);
    let fills = outcome.fills[skip..]
        .iter()
        .map(|f| {
            // Markers sit on a drawn candle: the one holding the fill's bar.
            let ts = f.ts.millis();
            let i = bars.ts.partition_point(|&t| t <= ts).saturating_sub(1);
            FillRow {
                time: time(i - i % per_candle),
                side: f.side.to_string(),
                qty: shown.amount(f.qty),
                price: shown.price(f.price),
                fee: shown.money(f.fee),
                cash_after: shown.money(f.cash_after),
                position_after: shown.amount(f.position_after),
            }
        })
        .collect();

    ReportData {
        title: format!("{} on {}", summary.strategy_name, file_name(&summary.data.source)),
        generated_by: format!("nanotrader {} backtest", env!("CARGO_PKG_VERSION")),
        summary: summary_rows(summary),
        assumptions: vec![
            format!(
                "Fee {}% of each fill's value; sizing {}; starting cash {}.",
                plain(summary.assumptions.broker.fee_rate * rust_decimal::Decimal::ONE_HUNDRED),
                summary.assumptions.broker.sizing,
                shown.money_unit(summary.assumptions.broker.initial_cash)
            ),
            format!(
                "Fills {}; decisions from bar {}.",
                summary.assumptions.fills, summary.assumptions.decide_from_bar
            ),
            format!(
                "Sharpe and Sortino: {}; shown only over {:.0} days of bars or {} round trips.",
                summary.assumptions.annualisation,
                nanotrader_perf::RATIO_MIN_DAYS,
                nanotrader_perf::RATIO_MIN_ROUND_TRIPS
            ),
            format!(
                "Money in {} to the cent, amounts to {} places, prices at the pair's tick ({} decimals); \
                 rounded half away from zero. The JSON (--json) and the fills CSV (--trades) are exact.",
                if shown.quote.is_empty() {
                    "the quote currency"
                } else {
                    &shown.quote
                },
                human_format::CRYPTO_DECIMALS,
                shown.price_decimals()
            ),
            format!("Buy and hold: {}.", summary.assumptions.buy_and_hold),
            if per_candle > 1 {
                format!(
                    "Charts show {} candles of {} bars each; fill markers sit on the candle holding the fill.",
                    groups.len(),
                    per_candle
                )
            } else {
                "Charts show every bar.".to_owned()
            },
        ],
        price: PriceSeries {
            candles,
            lines,
            bar_seconds: bars.interval.secs() * per_candle as i64,
            source_bars: n as u64,
            price_decimals: Some(shown.price_decimals()),
        },
        equity,
        buy_hold_equity,
        drawdown_pct,
        fills,
        fills_total: outcome.fill_count,
        sweep,
        grid: None,
        walk_forward: None,
    }
}

fn file_name(source: &str) -> &str {
    std::path::Path::new(source)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(source)
}

/// The strategy's lines at the end of each candle: straight from the fixed-point closes for the
/// SMA crossover, through the strategy itself otherwise.
fn indicator_lines(bars: &BarColumns, strategy: &StrategyConfig, groups: &[(usize, usize)]) -> Vec<LineSeries> {
    let Ok(mut built) = strategy.build() else {
        return Vec::new();
    };
    let names = built.line_names();
    let time = |i: usize| bars.ts[i].div_euclid(1000);
    let mut points: Vec<Vec<Point>> = vec![Vec::with_capacity(groups.len()); names.len().min(MAX_LINES)];
    if let StrategyConfig::SmaCross { short, long } = *strategy {
        let prefix: Vec<i128> = std::iter::once(0)
            .chain(bars.close.iter().scan(0i128, |sum, &c| {
                *sum += i128::from(c);
                Some(*sum)
            }))
            .collect();
        for &(a, b) in groups {
            let end = b; // bars [.., end)
            for (line, window) in [short, long].into_iter().enumerate() {
                if end >= window {
                    let sum = prefix[end] - prefix[end - window];
                    points[line].push(Point {
                        time: time(a),
                        value: sum as f64 / window as f64 / super::columns::UNIT as f64,
                    });
                }
            }
        }
    } else {
        let mut next_group = groups.iter().peekable();
        for i in 0..bars.len() {
            built.on_bar(&bars.bar(i));
            if let Some(&&(a, b)) = next_group.peek()
                && i + 1 == b
            {
                next_group.next();
                for (line, value) in built.line_values().into_iter().enumerate().take(points.len()) {
                    if let Some(value) = value {
                        points[line].push(Point { time: time(a), value });
                    }
                }
            }
        }
    }
    names
        .into_iter()
        .zip(points)
        .map(|(name, points)| LineSeries { name, points })
        .collect()
}

fn summary_rows(s: &SingleSummary) -> Vec<SummaryRow> {
    let row = |label: &str, value: String, note: &str| SummaryRow {
        label: label.to_owned(),
        value,
        note: note.to_owned(),
    };
    let money = &s.display;
    let perf = s.performance();
    let ratio_note = s.ratios_reason.as_deref().unwrap_or("annualised, 24/7");
    let mut rows = vec![
        row(
            "Data",
            format!("{} bars of {}", s.bars, s.data.interval),
            &format!(
                "{} .. {}",
                s.data.first_bar.as_deref().unwrap_or(NONE),
                s.data.last_bar.as_deref().unwrap_or(NONE)
            ),
        ),
        row("Start equity", money.money(s.start_equity), &money.quote),
        row(
            "End equity",
            money.money(s.end_equity),
            &format!("{}, marked at the last close", money.quote),
        ),
        row("Total return", human_format::signed_percent(s.return_pct), ""),
        row(
            "Buy and hold",
            human_format::signed_percent(s.buy_and_hold_return_pct),
            s.assumptions.buy_and_hold,
        ),
        row(
            "Max drawdown",
            human_format::percent(s.max_drawdown_pct),
            "from a peak of equity at a bar close",
        ),
        row("Sharpe", perf.ratio_text(s.sharpe), ratio_note),
        row("Sortino", perf.ratio_text(s.sortino), ratio_note),
        row(
            "Trades",
            format!("{} fills, {} round trips", s.fills, s.round_trips),
            "",
        ),
        row(
            "Win rate",
            human_format::percent(s.win_rate_pct),
            "round trips closed at a profit",
        ),
        row(
            "Average trade",
            s.avg_trade_pnl.map_or(NONE.to_owned(), |d| {
                let text = money.money(d);
                if d.is_sign_positive() && !text.trim_start_matches(['0', '.', ',']).is_empty() {
                    format!("+{text}")
                } else {
                    text
                }
            }),
            &format!("{} realized per round trip, after fees", money.quote),
        ),
        row(
            "Exposure",
            human_format::percent(s.exposure_pct),
            "bars holding a position",
        ),
        row("Fees paid", money.money(s.fees_paid), &money.quote),
    ];
    if let Some(report) = &s.protections {
        rows.push(row(
            "Protections",
            format!(
                "{} halts, {} entries refused",
                report.halts.len(),
                report.refused_entries
            ),
            &format!(
                "{}; a halt stops new entries at a bar's close, exits go on",
                report.rules.describe().unwrap_or_default()
            ),
        ));
    }
    rows
}

/// The heatmap and the top results of a sweep.
pub fn sweep_data(results: &[ComboResult], shorts: &[usize], longs: &[usize], metric: RankBy, top: usize) -> SweepData {
    let mut rows: Vec<usize> = shorts.to_vec();
    let mut cols: Vec<usize> = longs.to_vec();
    for axis in [&mut rows, &mut cols] {
        axis.sort_unstable();
        axis.dedup();
    }
    // A ratio the combination's span cannot carry is no value for people: an empty cell.
    let ratio_metric = matches!(metric, RankBy::Sharpe | RankBy::Sortino);
    let by_combo: HashMap<(usize, usize), Option<f64>> = results
        .iter()
        .map(|r| {
            let shown = !ratio_metric || r.performance.ratios_meaningful;
            ((r.short, r.long), metric.value(&r.performance).filter(|_| shown))
        })
        .collect();
    let note = results.iter().any(|r| !r.performance.ratios_meaningful).then(|| {
        format!(
            "Sharpe and Sortino are shown only for combinations with {} round trips or more, or over {:.0} days of bars; \
             these bars span {} days.",
            nanotrader_perf::RATIO_MIN_ROUND_TRIPS,
            nanotrader_perf::RATIO_MIN_DAYS,
            results
                .first()
                .map_or(NONE.to_owned(), |r| human_format::fixed_f64(r.performance.span_days, 1))
        )
    });
    let values = rows
        .iter()
        .map(|&s| cols.iter().map(|&l| by_combo.get(&(s, l)).copied().flatten()).collect())
        .collect();
    SweepData {
        metric: metric.key().to_owned(),
        metric_label: metric.label().to_owned(),
        shorts: rows,
        longs: cols,
        values,
        note,
        top: results
            .iter()
            .take(top.max(1))
            .map(|r| SweepRow {
                short: r.short,
                long: r.long,
                return_pct: r.performance.return_pct,
                sharpe: r.performance.shown_sharpe(),
                sortino: r.performance.shown_sortino(),
                max_drawdown_pct: r.performance.max_drawdown_pct,
                trades: r.performance.trades,
                win_rate_pct: r.performance.win_rate_pct,
            })
            .collect(),
    }
}

/// The best combinations of a `--param` grid (best first).
pub fn grid_data(results: &[GridResult], params: &[ParamAxis], invalid: usize, metric: RankBy, top: usize) -> GridData {
    GridData {
        metric: metric.key().to_owned(),
        metric_label: metric.label().to_owned(),
        params: params.iter().map(|p| p.name.clone()).collect(),
        combinations: results.len(),
        note: (invalid > 0)
            .then(|| format!("{invalid} combinations of the grid are no valid strategy and were not run.")),
        top: results
            .iter()
            .take(top.max(1))
            .map(|r| GridRow {
                values: r.params.iter().map(|(_, v)| v.clone()).collect(),
                return_pct: r.performance.return_pct,
                sharpe: r.performance.shown_sharpe(),
                sortino: r.performance.shown_sortino(),
                max_drawdown_pct: r.performance.max_drawdown_pct,
                trades: r.performance.trades,
                win_rate_pct: r.performance.win_rate_pct,
            })
            .collect(),
    }
}

/// The walk-forward section: the folds' table, the stitched out-of-sample equity (at most
/// `MAX_CANDLES` points, each the equity at the end of a run of bars) and the warning.
pub fn walk_forward_data(bars: &BarColumns, w: &WalkForward, shown: &nanotrader_format::PairFormat) -> WalkForwardData {
    let time = |i: usize| bars.ts[i].div_euclid(1000);
    let st = &w.stitched;
    let first = st.first_bar.saturating_sub(1);
    let n = st.equity_curve.len().min(bars.len().saturating_sub(first));
    let per_point = n.div_ceil(MAX_CANDLES).max(1);
    let stitched_equity = (0..n)
        .step_by(per_point)
        .map(|a| {
            let b = (a + per_point).min(n);
            Point {
                time: time(first + a),
                value: st.equity_curve[b - 1],
            }
        })
        .collect();
    let part = |p: &super::walk_forward::Part| format!("{}..{} ({} .. {})", p.first_bar, p.last_bar, p.from, p.to);
    let ratio = |v: Option<f64>| {
        if st.ratios_meaningful {
            human_format::ratio(v)
        } else {
            NONE.to_owned()
        }
    };
    let row = |label: &str, value: String, note: String| SummaryRow {
        label: label.to_owned(),
        value,
        note,
    };
    WalkForwardData {
        scheme: format!(
            "Anchored walk-forward: the bars split into {} folds; for each of folds 2..{}, the grid is optimised by {} \
             on every bar before it (in sample) and the best combination traded on it (out of sample), its indicators \
             warmed up on the bars before it. Each out-of-sample part starts from the previous part's ending equity.",
            w.folds_split,
            w.folds_split,
            w.metric.label()
        ),
        metric: w.metric.key().to_owned(),
        metric_label: w.metric.label().to_owned(),
        folds: w
            .folds
            .iter()
            .map(|f| FoldRow {
                fold: f.fold,
                in_sample: part(&f.in_sample),
                out_of_sample: part(&f.out_of_sample),
                chosen: f.chosen.clone(),
                in_sample_metric: f.in_sample_metric,
                out_of_sample_metric: f.out_of_sample_metric,
                in_sample_return_pct: f.in_sample_performance.return_pct,
                out_of_sample_return_pct: f.out_of_sample_performance.return_pct,
                out_of_sample_trades: f.out_of_sample_performance.trades,
                disagrees: f.disagrees,
            })
            .collect(),
        stitched_equity,
        fold_starts: w.folds.iter().map(|f| time(f.out_of_sample.first_bar - 1)).collect(),
        stitched: vec![
            row(
                "Out-of-sample bars",
                format!("{}", st.bars),
                format!("{} days", human_format::fixed_f64(st.span_days, 1)),
            ),
            row("Start equity", shown.money(st.start_equity), shown.quote.clone()),
            row(
                "End equity",
                shown.money(st.end_equity),
                format!("{}, parts chained", shown.quote),
            ),
            row(
                "Total return",
                human_format::signed_percent(st.return_pct),
                String::new(),
            ),
            row(
                "Max drawdown",
                human_format::percent(st.max_drawdown_pct),
                String::new(),
            ),
            row(
                "Sharpe",
                ratio(st.sharpe),
                st.ratios_reason
                    .clone()
                    .unwrap_or_else(|| "annualised, 24/7".to_owned()),
            ),
            row(
                "Sortino",
                ratio(st.sortino),
                st.ratios_reason
                    .clone()
                    .unwrap_or_else(|| "annualised, 24/7".to_owned()),
            ),
            row(
                "Trades",
                format!("{} fills, {} round trips", st.fills, st.round_trips),
                format!("win rate {}", human_format::percent(st.win_rate_pct)),
            ),
        ],
        warnings: w.warnings.clone(),
        rule: "In and out of sample are said to disagree widely when, on more than half of the folds, the chosen \
               combination's in-sample return is above 0 and its out-of-sample return is not; or when the stitched \
               out-of-sample Sharpe falls short of the mean in-sample Sharpe by more than half of that mean's size."
            .to_owned(),
    }
}
