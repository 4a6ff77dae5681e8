//! The backtest's HTML report in a real browser: reports rendered by
//! `nanotrader_backtest::render_report` from synthetic data are opened from `file://` by
//! tests/browser/report.mjs in headless Chromium (through playwright-core), offline and with
//! every request refused, and checked: charts, markers, heatmap, tables, hovering, no console
//! error. It needs /usr/bin/chromium and Node.js: without them the test is skipped loudly, unless
//! NANOTRADER_REQUIRE_BROWSER=1 (set in CI) makes that a failure. Screenshots land in
//! target/report.png and target/report-phone.png, the full report in target/report.html.

mod common;
use common::*;

use std::time::{Duration, Instant};

use nanotrader_backtest::{
    Candle, FillRow, FoldRow, GridData, GridRow, LineSeries, Point, PriceSeries, ReportData, SummaryRow, SweepData,
    SweepRow, WalkForwardData, render_report as render,
};

/// report.mjs stops itself after 90 s; this only catches a stuck `node`.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);
const START: i64 = 1_513_468_800; // 2017-12-17 00:00 UTC

fn sma(closes: &[f64], window: usize, times: &[i64]) -> Vec<Point> {
    (window..=closes.len())
        .map(|end| Point {
            time: times[end - 1],
            value: closes[end - window..end].iter().sum::<f64>() / window as f64,
        })
        .collect()
}

/// 3,000 one-minute candles of a sine-ish walk, two SMAs, 40 fills, a 10 x 20 sweep.
fn full_report() -> ReportData {
    const BARS: usize = 3_000;
    let mut noise = 0x2545_f491_u64;
    let mut next = || {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        (noise % 1000) as f64 / 1000.0 - 0.5
    };
    let times: Vec<i64> = (0..BARS as i64).map(|i| START + i * 60).collect();
    let mut candles = Vec::with_capacity(BARS);
    let mut prev: f64 = 19_000.0;
    for (i, &time) in times.iter().enumerate() {
        let x = i as f64;
        let close = 19_000.0 + 600.0 * (x / 400.0).sin() + 150.0 * (x / 37.0).sin() + x * 0.2 + next() * 40.0;
        let (open, high, low) = (
            prev,
            prev.max(close) + next().abs() * 25.0,
            prev.min(close) - next().abs() * 25.0,
        );
        candles.push(Candle {
            time,
            open,
            high,
            low,
            close,
        });
        prev = close;
    }
    let closes: Vec<f64> = candles.iter().map(|c| c.close).collect();

    // 40 fills, alternating buy and sell; the account holds between a buy and its sell.
    let mut cash = 10_000.0_f64;
    let mut qty = 0.0_f64;
    let mut fills = Vec::new();
    let mut fill_at = std::collections::HashMap::new();
    for k in 0..40 {
        let i = 40 + k * 72;
        let price = closes[i];
        let buy = k % 2 == 0;
        if buy {
            qty = cash * 0.999 / price;
            cash = 0.0;
        } else {
            cash = qty * price * 0.999;
            qty = 0.0;
        }
        fill_at.insert(i, (cash, qty));
        fills.push(FillRow {
            time: times[i] + 59,
            side: if buy { "buy" } else { "sell" }.into(),
            qty: format!("{:.8}", if buy { qty } else { cash / price / 0.999 }),
            price: format!("{price:.2}"),
            fee: format!("{:.4}", 10_000.0 * 0.001),
            cash_after: format!("{cash:.2}"),
            position_after: format!("{qty:.8}"),
        });
    }
    let (mut cash, mut qty) = (10_000.0, 0.0);
    let mut equity = Vec::with_capacity(BARS);
    let mut drawdown = Vec::with_capacity(BARS);
    let mut peak = f64::MIN;
    for (i, &time) in times.iter().enumerate() {
        if let Some(&(c, q)) = fill_at.get(&i) {
            (cash, qty) = (c, q);
        }
        let value = cash + qty * closes[i];
        peak = peak.max(value);
        equity.push(Point { time, value });
        drawdown.push(Point {
            time,
            value: (value / peak - 1.0) * 100.0,
        });
    }
    let buy_hold_equity = times
        .iter()
        .zip(&closes)
        .map(|(&time, c)| Point {
            time,
            value: 10_000.0 * 0.999 * c / closes[0],
        })
        .collect();

    let shorts: Vec<usize> = (1..=10).map(|k| k * 4).collect();
    let longs: Vec<usize> = (1..=20).map(|k| k * 5).collect();
    let mut values = Vec::new();
    let mut combos = Vec::new();
    for &s in &shorts {
        let mut row = Vec::new();
        for &l in &longs {
            let v = if s >= l || (s, l) == (8, 60) {
                None // invalid, or (8, 60): undefined (no trades)
            } else {
                Some(2.5 * ((s as f64) / 9.0).sin() * ((l as f64) / 30.0).cos() - 0.4)
            };
            if let Some(v) = v {
                combos.push((s, l, v));
            }
            row.push(v);
        }
        values.push(row);
    }
    combos.sort_by(|a, b| b.2.total_cmp(&a.2));
    let top = combos
        .iter()
        .take(10)
        .map(|&(short, long, v)| SweepRow {
            short,
            long,
            return_pct: v * 7.0,
            sharpe: Some(v),
            sortino: Some(v * 1.4),
            max_drawdown_pct: 3.0 + long as f64 / 10.0,
            trades: (400 / long) as u64,
            win_rate_pct: if short == 4 { None } else { Some(45.0 + v) },
        })
        .collect();

    let row = |label: &str, value: &str, note: &str| SummaryRow {
        label: label.into(),
        value: value.into(),
        note: note.into(),
    };
    let walk = walk_forward(&times, &equity);
    ReportData {
        title: "sma-cross 10/20 on btcusd_1m_20171217.csv".into(),
        generated_by: "nanotrader 0.1.0 backtest (browser test)".into(),
        summary: vec![
            row("Data", "3000 bars of 1m", "2017-12-17 00:00 .. 2017-12-19 01:59"),
            row("Start equity", "10000", "USD"),
            row("End equity", "10412.37", "USD, marked at the last close"),
            row("Total return", "+4.12%", ""),
            row("Buy and hold", "-1.31%", "bought at the first close, fee paid once"),
            row("Max drawdown", "6.02%", "from a peak of equity at a bar close"),
            row("Sharpe", "1.87", "annualised, 24/7"),
            row("Trades", "20", "round trips"),
        ],
        assumptions: vec![
            "Fee 0.1% of each fill's value; sizing all-in; starting cash 10000.".into(),
            "Fills at the bar's close; decisions from bar 20.".into(),
            "Sharpe and Sortino: annualised for a 24/7 market at the bar interval.".into(),
            "Charts show every bar.".into(),
        ],
        price: PriceSeries {
            lines: vec![
                LineSeries {
                    name: "SMA 10".into(),
                    points: sma(&closes, 10, &times),
                },
                LineSeries {
                    name: "SMA 20".into(),
                    points: sma(&closes, 20, &times),
                },
            ],
            candles,
            bar_seconds: 60,
            source_bars: BARS as u64,
            price_decimals: Some(2),
        },
        equity,
        buy_hold_equity,
        drawdown_pct: drawdown,
        fills,
        fills_total: 40,
        sweep: Some(SweepData {
            metric: "sharpe".into(),
            metric_label: "Sharpe (annualised)".into(),
            shorts,
            longs,
            values,
            note: Some("Sharpe and Sortino are shown only for combinations with 30 round trips or more.".into()),
            top,
        }),
        grid: Some(GridData {
            metric: "return_pct".into(),
            metric_label: "return %".into(),
            params: vec!["channel".into(), "stop_loss".into()],
            combinations: 4,
            note: Some("2 combinations of the grid are no valid strategy and were not run.".into()),
            top: (0..4)
                .map(|i| GridRow {
                    values: vec![format!("{}", 10 + 10 * i), "1.5%".into()],
                    return_pct: 4.0 - i as f64,
                    sharpe: Some(1.0),
                    trades: 10,
                    ..GridRow::default()
                })
                .collect(),
        }),
        walk_forward: Some(walk),
    }
}

/// Three folds whose stitched equity is the report's equity after its first quarter.
fn walk_forward(times: &[i64], equity: &[Point]) -> WalkForwardData {
    let start = times.len() / 4;
    WalkForwardData {
        scheme: "Anchored walk-forward: 4 folds.".into(),
        metric: "sharpe".into(),
        metric_label: "Sharpe (annualised)".into(),
        folds: (2..=4)
            .map(|fold| FoldRow {
                fold,
                in_sample: format!("1..{}", (fold - 1) * 750),
                out_of_sample: format!("{}..{}", (fold - 1) * 750 + 1, fold * 750),
                chosen: "short=10 long=30".into(),
                in_sample_metric: Some(2.5),
                out_of_sample_metric: Some(-0.5),
                in_sample_return_pct: 3.0,
                out_of_sample_return_pct: -1.0,
                out_of_sample_trades: 12,
                disagrees: true,
            })
            .collect(),
        stitched_equity: equity[start..].to_vec(),
        fold_starts: vec![times[750], times[1500], times[2250]],
        stitched: vec![SummaryRow {
            label: "Total return".into(),
            value: "-2.97%".into(),
            note: String::new(),
        }],
        warnings: vec!["in sample and out of sample disagree: on 3 of 3 folds ...".into()],
        rule: "The rule.".into(),
    }
}

/// One candle, no fills, no sweep, and a title that tries to end its element.
fn single_candle_report() -> ReportData {
    let p = |value| vec![Point { time: START, value }];
    ReportData {
        title: "</script><script>window.__pwned=1</script> & <b>bold</b>".into(),
        generated_by: "nanotrader test".into(),
        summary: vec![SummaryRow {
            label: "Total return".into(),
            value: "+0.00%".into(),
            note: "</td></tr></table><img src=x onerror=window.__pwned=2>".into(),
        }],
        assumptions: vec!["Fills at the close.".into()],
        price: PriceSeries {
            candles: vec![Candle {
                time: START,
                open: 0.000123,
                high: 0.000130,
                low: 0.000120,
                close: 0.000125,
            }],
            lines: Vec::new(),
            bar_seconds: 3600,
            source_bars: 1,
            // No tick given: the page picks enough decimals for the smallest price.
            price_decimals: None,
        },
        equity: p(10_000.0),
        buy_hold_equity: p(9_990.0),
        drawdown_pct: p(0.0),
        ..ReportData::default()
    }
}

/// Nothing at all, with a sweep that has no combinations.
fn empty_report() -> ReportData {
    ReportData {
        title: "empty".into(),
        sweep: Some(SweepData {
            metric: "return_pct".into(),
            metric_label: "return %".into(),
            ..SweepData::default()
        }),
        ..ReportData::default()
    }
}

fn expectations(data: &ReportData, charts: bool) -> serde_json::Value {
    let sweep = data.sweep.as_ref();
    serde_json::json!({
        "charts": charts,
        "candles": data.price.candles.len(),
        "lines": data.price.lines.len(),
        "markers": if charts { data.fills.len() } else { 0 },
        "fillRows": data.fills.len(),
        "fillsCount": data.fills_total.to_string(),
        "summaryRows": data.summary.len(),
        "summaryLabels": data.summary.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
        "assumptions": data.assumptions.len(),
        "sweep": sweep.is_some(),
        "heatmapCells": sweep.map_or(0, |s| s.shorts.len() * s.longs.len()),
        "heatmapEmptyCells": sweep.map_or(0, |s| s.values.iter().flatten().filter(|v| v.is_none()).count()),
        "topRows": sweep.map_or(0, |s| s.top.len()),
        "priceDecimals": data.price.price_decimals,
        "sweepNote": sweep.and_then(|s| s.note.clone()),
        "gridRows": data.grid.as_ref().map_or(0, |g| g.top.len()),
        "wfFolds": data.walk_forward.as_ref().map_or(0, |w| w.folds.len()),
        "wfPoints": data.walk_forward.as_ref().map_or(0, |w| w.stitched_equity.len()),
        "wfWarnings": data.walk_forward.as_ref().map_or(0, |w| w.warnings.len()),
    })
}

#[test]
fn the_report_works_offline_in_a_real_browser() {
    let Some(scripts) = browser_scripts("report_browser") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");

    let full = full_report();
    assert_eq!(
        full.sweep.as_ref().map(|s| (s.shorts.len(), s.longs.len())),
        Some((10, 20))
    );
    let cases = [
        ("full", full, true),
        ("single candle", single_candle_report(), true),
        ("empty", empty_report(), false),
    ];
    let mut specs = Vec::new();
    for (i, (name, data, charts)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("report-{i}.html"));
        let started = Instant::now();
        let page = render(data);
        let took = started.elapsed();
        std::fs::write(&file, &page).expect("the report is written");
        println!("{name}: {} bytes rendered in {took:?}", page.len());
        let mut spec = serde_json::json!({
            "name": name,
            "file": file,
            "title": data.title,
            "expect": expectations(data, *charts),
        });
        if i == 0 {
            // Kept to open by hand.
            let _ = std::fs::write(repo_file("target/report.html"), &page);
            spec["screenshot"] = repo_file("target/report.png").to_string_lossy().into();
            spec["phone_screenshot"] = repo_file("target/report-phone.png").to_string_lossy().into();
        }
        specs.push(spec);
    }
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, serde_json::json!({ "cases": specs }).to_string()).expect("the spec is written");
    let screenshot = repo_file("target/report.png");
    let _ = std::fs::remove_file(&screenshot);

    let Some(out) = run_browser_script(&scripts.join("report.mjs"), &[spec_file.as_os_str()], SCRIPT_TIMEOUT) else {
        panic!("report.mjs did not finish within {SCRIPT_TIMEOUT:?}");
    };
    assert!(
        out.status.success(),
        "the browser test failed (its progress is above):\n{}",
        stderr(&out)
    );
    assert!(screenshot.is_file(), "no screenshot at {}", screenshot.display());
}
