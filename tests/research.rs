//! `nanotrader backtest --param NAME=A..B:STEP` and `--walk-forward N` end to end, with the real
//! binary on real files: a grid's figures are each combination's alone, decimal steps are exact,
//! the walk-forward's out-of-sample parts tile the data and chain into the stitched equity, the
//! warning fires on a random walk and not on a trend, and bad grids get one line and exit 2.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use serde_json::Value;

const DATA: &str = "tests/data/btcusd_1m_20180404_20180406.csv";

fn backtest(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["backtest", "--cache", "off"];
    all.extend_from_slice(args);
    nanotrader(dir, &all)
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "backtest failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn data() -> String {
    repo_file(DATA).display().to_string()
}

#[test]
fn a_grid_over_a_file_parameter_gives_each_combination_its_own_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let file = repo_file("examples/strategies/breakout.toml").display().to_string();
    let result = json(&backtest(
        dir.path(),
        &[
            "--data",
            &data,
            "--strategy-file",
            &file,
            "--param",
            "channel=10..30:10",
            "--param",
            "exit_channel=5,8",
            "--metric",
            "return",
            "--top",
            "100",
            "--json",
        ],
    ));
    assert_eq!(result["mode"], "sweep");
    assert_eq!(result["combinations"], 6);
    assert_eq!(result["params"][0]["name"], "channel");
    assert_eq!(result["params"][0]["values"], serde_json::json!(["10", "20", "30"]));
    let top = result["top"].as_array().unwrap();
    assert_eq!(top.len(), 6);
    let returns: Vec<f64> = top
        .iter()
        .map(|r| r["performance"]["return_pct"].as_f64().unwrap())
        .collect();
    assert!(
        returns.windows(2).all(|w| w[0] >= w[1]),
        "ranked by return: {returns:?}"
    );
    let mut labels: Vec<&str> = top.iter().map(|r| r["label"].as_str().unwrap()).collect();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            "channel=10 exit_channel=5",
            "channel=10 exit_channel=8",
            "channel=20 exit_channel=5",
            "channel=20 exit_channel=8",
            "channel=30 exit_channel=5",
            "channel=30 exit_channel=8"
        ]
    );
    // Every combination, backtested alone with single --param values, gives the grid's figures.
    for pick in top {
        let (channel, exit) = (
            pick["params"]["channel"].as_str().unwrap(),
            pick["params"]["exit_channel"].as_str().unwrap(),
        );
        let single = json(&backtest(
            dir.path(),
            &[
                "--data",
                &data,
                "--strategy-file",
                &file,
                "--param",
                &format!("channel={channel}"),
                "--param",
                &format!("exit_channel={exit}"),
                "--json",
            ],
        ));
        let what = pick["label"].as_str().unwrap();
        assert_eq!(single["end_equity"], pick["end_equity"], "{what}");
        assert_eq!(single["fills"], pick["performance"]["trades"], "{what}");
        assert_eq!(single["return_pct"], pick["performance"]["return_pct"], "{what}");
        assert_eq!(single["sharpe"], pick["performance"]["sharpe"], "{what}");
    }
    assert_eq!(result["best"]["end_equity"], top[0]["end_equity"]);
}

#[test]
fn a_decimal_stop_grid_steps_exactly_and_matches_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let result = json(&backtest(
        dir.path(),
        &[
            "--data",
            &data,
            "--short",
            "5",
            "--long",
            "30",
            "--param",
            "stop_loss=0.1%..0.3%:0.1%",
            "--metric",
            "return",
            "--json",
        ],
    ));
    assert_eq!(
        result["params"][0]["values"],
        serde_json::json!(["0.1%", "0.2%", "0.3%"]),
        "exact decimal steps"
    );
    let top = result["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    let mut equities = Vec::new();
    for pick in top {
        let stop = pick["params"]["stop_loss"].as_str().unwrap();
        let single = json(&backtest(
            dir.path(),
            &[
                "--data",
                &data,
                "--short",
                "5",
                "--long",
                "30",
                "--stop-loss",
                stop,
                "--json",
            ],
        ));
        assert_eq!(single["end_equity"], pick["end_equity"], "stop {stop}");
        assert_eq!(single["fills"], pick["performance"]["trades"], "stop {stop}");
        equities.push(pick["end_equity"].as_str().unwrap().to_owned());
    }
    equities.dedup();
    assert!(equities.len() > 1, "the stops change the outcome: {equities:?}");
}

/// Folds of a walk-forward as JSON.
fn folds(result: &Value) -> &Vec<Value> {
    result["walk_forward"]["folds"].as_array().unwrap()
}

fn decimal(v: &Value) -> rust_decimal::Decimal {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn walk_forward_parts_tile_the_data_and_chain_into_the_stitched_equity() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let report = dir.path().join("wf.html");
    let result = json(&backtest(
        dir.path(),
        &[
            "--data",
            &data,
            "--short",
            "2..10:4",
            "--long",
            "15..45:15",
            "--param",
            "stop_loss=0.5%,1%",
            "--walk-forward",
            "4",
            "--metric",
            "return",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    assert_eq!(result["mode"], "walk_forward");
    let bars = result["best"]["bars"].as_u64().unwrap() as usize;
    let folds = folds(&result);
    assert_eq!(folds.len(), 3, "4 folds: 3 out-of-sample parts");
    let n = |v: &Value| v.as_u64().unwrap() as usize;
    assert_eq!(n(&folds[0]["out_of_sample"]["first_bar"]), bars / 4 + 1);
    assert_eq!(n(&folds[2]["out_of_sample"]["last_bar"]), bars);
    for (k, fold) in folds.iter().enumerate() {
        // In sample: every bar before the part.
        assert_eq!(n(&fold["in_sample"]["first_bar"]), 1);
        assert_eq!(
            n(&fold["in_sample"]["last_bar"]) + 1,
            n(&fold["out_of_sample"]["first_bar"])
        );
        if k > 0 {
            let before = &folds[k - 1];
            assert_eq!(
                n(&before["out_of_sample"]["last_bar"]) + 1,
                n(&fold["out_of_sample"]["first_bar"]),
                "out-of-sample parts touch, never overlap"
            );
            assert_eq!(
                fold["start_equity"], before["end_equity"],
                "each part starts where the last ended"
            );
        }
    }
    let stitched = &result["walk_forward"]["stitched"];
    assert_eq!(decimal(&folds[0]["start_equity"]), decimal(&stitched["start_equity"]));
    assert_eq!(stitched["end_equity"], folds[2]["end_equity"]);
    assert_eq!(
        n(&stitched["bars"]),
        folds.iter().map(|f| n(&f["out_of_sample"]["bars"])).sum::<usize>()
    );
    let fills: u64 = folds
        .iter()
        .map(|f| f["out_of_sample_performance"]["trades"].as_u64().unwrap())
        .sum();
    assert_eq!(stitched["fills"], fills);

    // Each part again, as a plain backtest: the bars up to its end, trading from its first bar,
    // starting with the previous part's equity, with the parameters it chose.
    for (k, fold) in folds.iter().enumerate() {
        let oos = &fold["out_of_sample"];
        let params = fold["params"].as_object().unwrap();
        let mut args = vec![
            "--data".to_owned(),
            data.clone(),
            "--short".to_owned(),
            params["short"].as_str().unwrap().to_owned(),
            "--long".to_owned(),
            params["long"].as_str().unwrap().to_owned(),
            "--stop-loss".to_owned(),
            params["stop_loss"].as_str().unwrap().to_owned(),
            "--decide-from-bar".to_owned(),
            oos["first_bar"].to_string(),
            "--cash".to_owned(),
            fold["start_equity"].as_str().unwrap().to_owned(),
            "--json".to_owned(),
        ];
        if let Some(next) = folds.get(k + 1) {
            args.push("--until".to_owned());
            args.push(next["out_of_sample"]["from"].as_str().unwrap().to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let alone = json(&backtest(dir.path(), &args));
        assert_eq!(
            alone["bars"].as_u64().unwrap() as usize,
            n(&oos["last_bar"]),
            "fold {k}"
        );
        assert_eq!(alone["end_equity"], fold["end_equity"], "fold {k}: {params:?}");
        assert_eq!(alone["fills"], fold["out_of_sample_performance"]["trades"], "fold {k}");
    }

    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("\"walk_forward\":{"),
        "the report embeds the walk-forward"
    );
    assert!(html.contains("id=\"wf-table\""), "with its table");
    assert!(html.contains("\"stitched_equity\":[{"), "and the stitched equity");
}

/// A 1-minute bars CSV of `closes`.
fn write_bars(path: &Path, closes: &[f64]) {
    let mut text = String::from("ts,open,high,low,close,volume\n");
    let mut open = closes[0];
    for (i, &close) in closes.iter().enumerate() {
        let (high, low) = (open.max(close) * 1.0002, open.min(close) * 0.9998);
        text.push_str(&format!(
            "{},{open:.2},{high:.2},{low:.2},{close:.2},1\n",
            1_600_000_000 + 60 * i as i64
        ));
        open = close;
    }
    std::fs::write(path, text).unwrap();
}

/// A seeded uniform number in [-1, 1) (xorshift: the test owns its data).
fn noise(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// No fees: on a random walk some combinations then look good in sample by chance.
fn walk_forward(dir: &Path, data: &Path, report: &Path, text: bool) -> std::process::Output {
    let mut args = vec![
        "--data",
        data.to_str().unwrap(),
        "--param",
        "short=2..12:2",
        "--param",
        "long=15..60:15",
        "--walk-forward",
        "5",
        "--fee-rate",
        "0",
        "--report",
        report.to_str().unwrap(),
    ];
    if !text {
        args.push("--json");
    }
    backtest(dir, &args)
}

fn generated(dir: &Path, name: &str, closes: &[f64]) -> PathBuf {
    let path = dir.join(name);
    write_bars(&path, closes);
    path
}

#[test]
fn the_warning_fires_on_a_random_walk_and_not_on_a_trend() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut price = 10_000.0;
    let walk: Vec<f64> = (0..6_000)
        .map(|_| {
            price *= 1.0 + 0.002 * noise(&mut state);
            price
        })
        .collect();
    // A steady rise in waves (so crossovers keep happening in every fold), with some noise.
    let trend: Vec<f64> = (0..6_000)
        .map(|i| {
            let x = i as f64;
            10_000.0 * (0.0003 * x).exp() * (1.0 + 0.05 * (x / 40.0).sin() + 0.0005 * noise(&mut state))
        })
        .collect();

    let report = dir.path().join("walk.html");
    let data = generated(dir.path(), "walk.csv", &walk);
    let result = json(&walk_forward(dir.path(), &data, &report, false));
    let warnings = result["walk_forward"]["warnings"].as_array().unwrap();
    assert!(
        !warnings.is_empty(),
        "a random walk's optimum is noise: {:#}",
        result["walk_forward"]
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("in sample and out of sample disagree"),
        "the report warns too"
    );
    let text = walk_forward(dir.path(), &data, &report, true);
    assert!(text.status.success(), "{}", stderr(&text));
    assert!(
        stdout(&text).contains("WARNING: in sample and out of sample disagree"),
        "{}",
        stdout(&text)
    );

    let data = generated(dir.path(), "trend.csv", &trend);
    let result = json(&walk_forward(dir.path(), &data, &report, false));
    let wf = &result["walk_forward"];
    assert_eq!(
        wf["warnings"],
        serde_json::json!([]),
        "a clear trend holds out of sample: {wf:#}"
    );
    assert!(wf["stitched"]["return_pct"].as_f64().unwrap() > 0.0);
    let text = walk_forward(dir.path(), &data, &report, true);
    assert!(
        stdout(&text).contains("in and out of sample agree"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn bad_grids_get_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--param", "shrot=1..3"],
            "error: --param shrot: sma-cross has no such parameter; known: long, short, stop_loss, take_profit, \
             trailing_stop, max_bars_in_trade, cooldown_bars",
        ),
        (
            vec!["--param", "short=9..3"],
            "error: --param short=9..3: the range runs backwards; write NAME=10, NAME=5,10,20 or NAME=5..50:5",
        ),
        (
            vec!["--param", "short=1..5:0"],
            "error: --param short=1..5:0: the step must be above 0; write NAME=10, NAME=5,10,20 or NAME=5..50:5",
        ),
        (
            vec!["--param", "stop_loss=1%..4xatr"],
            "error: --param stop_loss=1%..4xatr: both ends of a range take the same unit; write NAME=2%, \
             NAME=1%,2%,3xatr or NAME=1%..4%:0.5%",
        ),
        (
            vec!["--param", "short=1..1000", "--param", "long=1..2000"],
            "error: the grid makes 2000000 combinations (1000 short x 2000 long), more than the 1000000 a sweep may \
             run: use larger steps",
        ),
        (
            vec!["--param", "short=2,3", "--param", "short=4"],
            "error: --param short is given twice: give its values once",
        ),
        (
            vec!["--param", "short=5..10", "--strategy", "ema-cross"],
            "error: --param short: ema-cross has no such parameter; known: fast, slow, stop_loss, take_profit, \
             trailing_stop, max_bars_in_trade, cooldown_bars",
        ),
    ];
    for (options, want) in cases {
        let mut args = vec!["--data", data.as_str()];
        args.extend_from_slice(&options);
        let out = backtest(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{options:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim_end(), want, "{options:?}");
    }
    // `run` trades one value: a range is refused in one line.
    let out = nanotrader(
        dir.path(),
        &["run", "--data", &data, "--no-web", "--param", "short=5..10"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "error: --param short=5..10: lists and ranges are for backtest sweeps; here NAME=VALUE takes one number"
    );
    // --walk-forward takes 2 folds or more (clap's usage error).
    let out = backtest(dir.path(), &["--data", &data, "--walk-forward", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_window_grid_through_param_gives_the_sma_sweeps_results() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let common = ["--data", data.as_str(), "--metric", "return", "--top", "100", "--json"];
    let sweep = json(&backtest(
        dir.path(),
        &[&common[..], &["--short", "2..10:2", "--long", "5..30:5"]].concat(),
    ));
    let grid = json(&backtest(
        dir.path(),
        &[&common[..], &["--param", "short=2..10:2", "--param", "long=5..30:5"]].concat(),
    ));
    // 5 x 6 windows, of which those with short >= long are no crossover.
    assert_eq!(sweep["combinations"], 26);
    assert_eq!(grid["combinations"], 26);
    assert_eq!(grid["invalid_combinations"], 4);
    let mut from_sweep: Vec<(String, String)> = sweep["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                format!("short={} long={}", r["short"], r["long"]),
                r["end_equity"].to_string(),
            )
        })
        .collect();
    let mut from_grid: Vec<(String, String)> = grid["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["label"].as_str().unwrap().to_owned(), r["end_equity"].to_string()))
        .collect();
    from_sweep.sort();
    from_grid.sort();
    assert_eq!(from_grid, from_sweep);
    assert_eq!(grid["best"]["end_equity"], sweep["best"]["end_equity"]);
}

#[test]
fn ctrl_c_during_a_walk_forward_says_how_far_it_got_and_exits_130() {
    use std::io::Read as _;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    // 20,000 bars: 8,786 combinations on each of two in-sample parts take many seconds.
    let closes: Vec<f64> = (0..20_000i64)
        .map(|i| (400_000 + (i * 7_919) % 30_000 - (i / 50 % 7) * 1_000) as f64 / 100.0)
        .collect();
    let data = generated(dir.path(), "long.csv", &closes);
    let mut child = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "backtest",
            "--data",
            data.to_str().unwrap(),
            "--param",
            "short=5..50",
            "--param",
            "long=10..200",
            "--walk-forward",
            "3",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr_log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let drain = common::running::drain(child.stderr.take().unwrap(), stderr_log.clone());
    let so_far = || String::from_utf8_lossy(&stderr_log.lock().unwrap()).into_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !so_far().contains("sweep: 8,786 combinations x 2 folds on ") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before its sweep started: {}",
            so_far()
        );
        assert!(Instant::now() < deadline, "no sweep line: {}", so_far());
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after Ctrl-C: {}", so_far());
        std::thread::sleep(Duration::from_millis(20));
    };
    drain.join().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let err = so_far();
    assert_eq!(status.code(), Some(130), "{err}");
    let last = err.lines().last().unwrap_or_default();
    let done: usize = last
        .strip_prefix("interrupted: ")
        .and_then(|rest| rest.strip_suffix(" of 17,572 combinations done"))
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap_or_else(|| panic!("one line saying how far it got: {err}"));
    assert!(done < 17_572, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        out.is_empty(),
        "no summary for a walk-forward that did not finish: {out}"
    );
}
