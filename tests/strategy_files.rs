//! Strategy files (`--strategy-file`, and the built-in files `--strategy` names) end to end:
//! the built-in files make exactly the built-ins' trades (the seed's with `--preset seed`);
//! `run` (bar by bar) and `backtest` (column by column) make the same fills from any file; a
//! bad file gets one line with file:line:column and exit 2.

mod common;
use common::*;

use std::path::Path;

#[test]
fn the_sma_cross_file_with_the_seed_preset_makes_the_seeds_trades() {
    let file = repo_file("examples/strategies/sma_cross.toml");
    let file = file.to_str().unwrap();
    for name in ["btcusd_1m_20171217", "btcusd_1m_20161007_20161009"] {
        let dir = tempfile::tempdir().unwrap();
        let data = repo_file(&format!("tests/data/{name}.csv"));
        let data = data.to_str().unwrap();
        let want = reference_fills(&format!("tests/data/seed_{name}_trades.csv"));
        let (fills, json) = backtest_fills(dir.path(), data, &["--preset", "seed", "--strategy-file", file]);
        assert_eq!(fills, want, "backtest {name}");
        assert_eq!(json["strategy"]["kind"], "sma-cross", "the file runs as the built-in");
        let out = nanotrader(
            dir.path(),
            &[
                "run",
                "--data",
                data,
                "--speed",
                "max",
                "--no-web",
                "--preset",
                "seed",
                "--strategy-file",
                file,
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(fills_csv(dir.path(), None), want, "run {name}");
    }
}

#[test]
fn run_and_backtest_make_the_same_fills_from_any_strategy_file() {
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.toml");
    std::fs::write(
        &custom,
        "# Not a built-in: a fast EMA over the typical price against a WMA, with an RSI filter.\n\
         name = \"typical\"\n\
         entry = \"ema((high + low + close) / 3, fast) crosses_above wma(close, slow) and rsi(close, 9) < 70\"\n\
         exit = \"ema((high + low + close) / 3, fast) < wma(close, slow) - stddev(close, slow) / 2\"\n\
         [params]\nfast = 5\nslow = 17\n",
    )
    .unwrap();
    let custom = custom.display().to_string();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "tests/data/btcusd_1m_20171217.csv",
            vec!["--strategy", "macd-cross", "--param", "trend=30"],
        ),
        (
            "tests/data/btcusd_1m_20180404_20180406.csv",
            vec!["--strategy", "bollinger-reversion"],
        ),
        (
            "tests/data/xbtusdt_1m_kraken_rest_20251110_20251111.csv",
            vec!["--strategy", "breakout", "--param", "channel=15", "--fee-rate", "0.001"],
        ),
        ("tests/data/btcusd_1m_20171217.csv", vec!["--strategy-file", &custom]),
        (
            "tests/data/btcusd_trades_kraken_20190701.csv",
            vec!["--strategy-file", &custom, "--param", "slow=5", "--param", "fast=2"],
        ),
        (
            "tests/data/btcusd_trades_kraken_20190701.csv",
            vec![
                "--strategy",
                "macd-cross",
                "--param",
                "trend=5",
                "--param",
                "fast=3",
                "--param",
                "slow=8",
                "--param",
                "signal=3",
            ],
        ),
    ];
    for (file, options) in cases {
        let run_dir = tempfile::tempdir().unwrap();
        let data = repo_file(file);
        let data = data.to_str().unwrap();
        let mut run = vec![
            "run", "--source", "replay", "--speed", "max", "--no-web", "--data", data,
        ];
        run.extend_from_slice(&options);
        let out = nanotrader(run_dir.path(), &run);
        assert!(out.status.success(), "{file} {options:?}: {}", stderr(&out));
        let engine = fills_csv(run_dir.path(), None);
        let (batch, json) = backtest_fills(run_dir.path(), data, &options);
        assert!(
            engine.len() >= 2,
            "{file} {options:?}: too few fills to compare: {engine:?}"
        );
        assert_eq!(batch, engine, "{file} {options:?}");
        assert_eq!(json["strategy"]["kind"], "file", "{options:?}");
    }
}

#[test]
fn a_bad_strategy_file_or_parameter_gets_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo_file("tests/data/btcusd_1m_20171217.csv");
    let data = data.to_str().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nentry = \"close > sma(close, 10\"\nexit = \"close < 1\"\n",
    )
    .unwrap();
    let bad = bad.display().to_string();
    let sma = repo_file("examples/strategies/sma_cross.toml").display().to_string();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["--strategy-file", &bad],
            format!(
                "error: {bad}:2:31: expected an operator (+ - * /, a comparison, and, or) or `,` or `)` at the end of the rule"
            ),
        ),
        (
            vec!["--strategy-file", &sma, "--param", "shrt=5"],
            format!("error: {sma}: no parameter `shrt` in this file (it has: long, short)"),
        ),
        (
            vec!["--strategy-file", &sma, "--param", "short"],
            "error: --param takes NAME=VALUE with a number for VALUE, got 'short'".into(),
        ),
        (
            vec!["--strategy-file", &sma, "--strategy", "ema-cross"],
            "error: both --strategy ema-cross and --strategy-file were given: choose one".into(),
        ),
        (
            vec!["--strategy-file", "/nonexistent/s.toml"],
            "error: /nonexistent/s.toml: cannot read the strategy file: No such file or directory (os error 2)".into(),
        ),
    ];
    for (options, want) in cases {
        for command in ["backtest", "run"] {
            let mut args = vec![command, "--data", data];
            args.extend_from_slice(&options);
            let out = nanotrader(dir.path(), &args);
            assert_eq!(out.status.code(), Some(2), "{command} {options:?}: {}", stderr(&out));
            assert_eq!(stderr(&out).trim_end(), want, "{command} {options:?}");
        }
    }
}

/// Closes by bar time (unix seconds), from a `ts,open,high,low,close,...` file.
fn closes(path: &Path) -> std::collections::HashMap<i64, String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].parse::<i64>().unwrap(), f[4].to_string())
        })
        .collect()
}

#[test]
fn stops_fill_at_their_own_price_alike_in_run_and_backtest() {
    let data = repo_file("tests/data/btcusd_1m_20171217.csv");
    let bar_close = closes(&data);
    let data = data.to_str().unwrap();
    let stops_file = tempfile::tempdir().unwrap();
    let with_exits = stops_file.path().join("ema_with_exits.toml");
    std::fs::write(
        &with_exits,
        "entry = \"ema(close, 5) crosses_above ema(close, 20)\"\nexit = \"ema(close, 5) < ema(close, 20)\"\n\
         [exits]\nstop-loss = \"1.5xatr\"\ntake-profit = \"0.6%\"\ncooldown-bars = 10\n",
    )
    .unwrap();
    let with_exits = with_exits.display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--stop-loss", "0.3%", "--take-profit", "0.5%", "--cooldown-bars", "5"],
        vec![
            "--strategy",
            "ema-cross",
            "--fast",
            "5",
            "--slow",
            "20",
            "--trailing-stop",
            "0.4%",
            "--max-bars-in-trade",
            "90",
        ],
        vec!["--strategy-file", &with_exits],
        // The flag over the file's stop.
        vec![
            "--strategy-file",
            &with_exits,
            "--stop-loss",
            "0.2%",
            "--fee-rate",
            "0.001",
        ],
    ];
    for options in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut run = vec![
            "run", "--source", "replay", "--speed", "max", "--no-web", "--data", data,
        ];
        run.extend_from_slice(&options);
        let out = nanotrader(dir.path(), &run);
        assert!(out.status.success(), "{options:?}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("  stops         checked from the bar after the entry"),
            "{}",
            stdout(&out)
        );
        let engine = fills_csv(dir.path(), None);
        let (batch, json) = backtest_fills(dir.path(), data, &options);
        assert_eq!(batch, engine, "{options:?}");
        assert_eq!(json["strategy"]["kind"], "with-exits", "{options:?}");
        assert!(
            json["assumptions"]["fills"]
                .as_str()
                .unwrap()
                .contains("opened through it"),
            "the stop rule is said beside the figures: {}",
            json["assumptions"]
        );
        // Some exits are at a stop's or target's price, not at their bar's close.
        let off_close = engine
            .iter()
            .filter(|row| {
                let f: Vec<&str> = row.split(',').collect();
                let close = &bar_close[&f[0].parse::<i64>().unwrap()];
                plain_number(close) != plain_number(f[3])
            })
            .count();
        assert!(engine.len() >= 4, "{options:?}: {engine:?}");
        assert!(off_close > 0, "{options:?}: every fill at a close: {engine:?}");
    }
}

/// A run of a strategy file with stops, killed with -9 mid-run and started again, ends with
/// exactly the fills of an uninterrupted run: the file and its parameters are stored with the
/// run, and the stops' state is rebuilt from the stored bars.
#[test]
fn a_strategy_file_run_killed_with_stops_resumes_exactly() {
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv");
    let data = data.to_str().unwrap();
    let options = [
        "--strategy",
        "macd-cross",
        "--param",
        "trend=30",
        "--stop-loss",
        "0.5%",
        "--cooldown-bars",
        "3",
    ];
    let whole = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--data", data, "--speed", "max", "--no-web"];
    args.extend_from_slice(&options);
    assert!(nanotrader(whole.path(), &args).status.success());
    let want = fills_csv(whole.path(), None);

    let dir = tempfile::tempdir().unwrap();
    let mut paced = vec!["run", "--data", data, "--speed", "3000", "--no-web"];
    paced.extend_from_slice(&options);
    let mut child = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(&paced)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the paced run ended before it was killed"
        );
        let out = nanotrader(dir.path(), &["fills", "--csv"]);
        if out.status.success() && stdout(&out).lines().count() > 5 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no fills stored within 120 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = fills_csv(dir.path(), None).len();
    assert!(
        killed_at < want.len(),
        "killed before the end: {killed_at} of {}",
        want.len()
    );
    let out = nanotrader(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming run 1"), "{}", stderr(&out));
    assert_eq!(fills_csv(dir.path(), None), want);
}
