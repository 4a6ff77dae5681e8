//! Protections (issue 20 point 3): the max-drawdown and daily-loss halts take the same decisions
//! in `run` (bar by bar, paper) and `backtest` (which reports each halt and the entries it
//! refused), survive a kill -9 (a halted run stays halted), show on the dashboard with a Resume
//! that lifts them, and refuse bad values with one line.

mod common;
use common::*;

use std::time::{Duration, Instant};

/// A fast crossover that trades often and pays fees: it loses steadily, so the rails have work.
const CHURN: [&str; 6] = ["--short", "2", "--long", "5", "--fee-rate", "0.004"];

#[test]
fn protections_halt_entries_alike_in_run_and_backtest() {
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "tests/data/btcusd_1m_20180404_20180406.csv",
            [&CHURN[..], &["--max-drawdown", "3%"]].concat(),
            "max_drawdown",
        ),
        (
            "tests/data/btcusd_1m_20180404_20180406.csv",
            [&CHURN[..], &["--max-daily-loss-usd", "1500"]].concat(),
            "daily_loss",
        ),
        // Unaligned bars from a trade tape, a strategy file with stops, both rails.
        (
            "tests/data/btcusd_trades_kraken_20190701.csv",
            vec![
                "--strategy",
                "ema-cross",
                "--fast",
                "3",
                "--slow",
                "7",
                "--stop-loss",
                "0.2%",
                "--max-drawdown",
                "1.5",
                "--max-daily-loss-usd",
                "4000",
            ],
            "",
        ),
    ];
    for (file, options, rule) in cases {
        let data = repo_file(file);
        let data = data.to_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut run = vec![
            "run", "--source", "replay", "--speed", "max", "--no-web", "--data", data,
        ];
        run.extend_from_slice(&options);
        let out = nanotrader(dir.path(), &run);
        assert!(out.status.success(), "{file} {options:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("protection: "),
            "the halt is logged: {}",
            stderr(&out)
        );
        let engine = fills_csv(dir.path(), None);
        let (batch, json) = backtest_fills(dir.path(), data, &options);
        assert_eq!(batch, engine, "{file} {options:?}");

        let report = &json["protections"];
        let halts = report["halts"].as_array().expect("the backtest reports its halts");
        assert!(!halts.is_empty(), "{options:?}: {report}");
        if !rule.is_empty() {
            assert_eq!(halts[0]["rule"], rule, "{report}");
        }
        assert!(halts[0]["ts"].as_str().unwrap().ends_with('Z'), "{report}");
        assert!(report["refused_entries"].as_u64().unwrap() > 0, "{report}");

        // Without the rails the same strategy trades more: they did something.
        let unguarded: Vec<&str> = options
            .chunks(2)
            .filter(|kv| !kv[0].starts_with("--max-"))
            .flatten()
            .copied()
            .collect();
        let (free, free_json) = backtest_fills(dir.path(), data, &unguarded);
        assert!(
            free.len() > batch.len(),
            "{options:?}: {} vs {}",
            free.len(),
            batch.len()
        );
        assert!(free_json.get("protections").is_none(), "none without rails");

        // The summary says what the rails did, beside the figures.
        let mut text = vec!["backtest", "--data", data, "--cache", "off"];
        text.extend_from_slice(&options);
        let out = nanotrader(dir.path(), &text);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("  protections   "), "{}", stdout(&out));
    }
}

/// The backtest's single-core and two-core paths are one rule: a file long enough for two cores.
#[test]
fn a_long_backtest_with_protections_matches_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("long.csv");
    repeat_bars(&repo_file("tests/data/btcusd_1m_20180404_20180406.csv"), &long, 120_000);
    let data = long.to_str().unwrap();
    let options = [&CHURN[..], &["--max-daily-loss-usd", "900"]].concat();
    let (batch, json) = backtest_fills(dir.path(), data, &options);
    assert!(json["protections"]["halts"].as_array().unwrap().len() > 3);
    let mut run = vec![
        "run", "--source", "replay", "--speed", "max", "--no-web", "--data", data,
    ];
    run.extend_from_slice(&options);
    let out = nanotrader(dir.path(), &run);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fills_csv(dir.path(), None), batch);
}

/// A run halted by its max drawdown, killed with -9 and started again, stays halted: it ends
/// with exactly the fills of an uninterrupted run (its rails' state is rebuilt from the stored
/// bars and fills).
#[test]
fn a_halted_run_killed_with_9_stays_halted() {
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv");
    let data = data.to_str().unwrap();
    let options = [&CHURN[..], &["--max-drawdown", "2%"]].concat();
    let whole = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--data", data, "--speed", "max", "--no-web"];
    args.extend_from_slice(&options);
    let out = nanotrader(whole.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = fills_csv(whole.path(), None);

    let dir = tempfile::tempdir().unwrap();
    let mut paced = vec!["run", "--data", data, "--speed", "6000", "--no-web"];
    paced.extend_from_slice(&options);
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(dir.path()).args(&paced);
    let mut child = running::Running::start_without_dashboard(cmd);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !child.stderr_so_far().contains("protection: max drawdown") {
        assert!(child.is_running(), "the paced run ended before it halted");
        assert!(Instant::now() < deadline, "no halt within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = child.kill();
    assert!(!stopped.status.success());
    let out = nanotrader(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming run 1"), "{}", stderr(&out));
    assert_eq!(fills_csv(dir.path(), None), want);
}

#[test]
fn the_dashboard_shows_a_halt_and_resume_lifts_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv");
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(dir.path()).args([
        "run",
        "--data",
        data.to_str().unwrap(),
        "--speed",
        "3000",
        "--listen",
        "127.0.0.1:0",
    ]);
    cmd.args(CHURN).args(["--max-drawdown", "0.5%"]);
    let app = running::Running::start(cmd);
    let deadline = Instant::now() + Duration::from_secs(120);
    let halted = loop {
        let (code, status) = app.get_json("/api/status");
        assert_eq!(code, 200);
        if let Some(why) = status["status"]["halted"].as_str() {
            break why.to_owned();
        }
        assert_eq!(status["status"]["run"], "running", "the run ended before it halted");
        assert!(Instant::now() < deadline, "no halt shown within 120 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(halted.starts_with("max drawdown: equity "), "{halted}");
    let (code, reply) = app.post_json("/api/control/resume");
    assert_eq!(code, 200, "{reply}");
    // The status goes out as the halt is lifted; a later one may halt again (the rule still
    // holds, counted afresh from the equity at the Resume): the lifted one is seen first.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, status) = app.get_json("/api/status");
        if status["status"]["halted"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "the halt was not lifted: {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(app.stderr_so_far().contains("protections: halt lifted by a Resume"));
}

/// The same halt in a real browser: the banner, the badge, and its Resume button.
#[test]
fn the_halt_banner_shows_in_a_real_browser() {
    let Some(scripts) = browser_scripts("protections") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv");
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(dir.path()).args([
        "run",
        "--data",
        data.to_str().unwrap(),
        "--speed",
        "600",
        "--listen",
        "127.0.0.1:0",
    ]);
    cmd.args(CHURN).args(["--max-drawdown", "0.5%"]);
    let app = running::Running::start(cmd);
    let out = run_browser_script(
        &scripts.join("protection.mjs"),
        &[app.url.as_ref()],
        Duration::from_secs(180),
    )
    .expect("protection.mjs finished within 180 s");
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(app.stderr_so_far().contains("protections: halt lifted by a Resume"));
}

#[test]
fn bad_protections_get_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo_file("tests/data/btcusd_1m_20171217.csv");
    let data = data.to_str().unwrap();
    for (flag, value, says) in [
        (
            "--max-drawdown",
            "0",
            "--max-drawdown must be above 0 % and below 100 %, got 0",
        ),
        (
            "--max-drawdown",
            "100%",
            "--max-drawdown must be above 0 % and below 100 %, got 100",
        ),
        (
            "--max-drawdown",
            "a lot",
            "'a lot' is not a percentage: write 20% or 20",
        ),
        (
            "--max-daily-loss-usd",
            "-5",
            "--max-daily-loss-usd must be positive, got -5",
        ),
        (
            "--max-daily-loss-usd",
            "0",
            "--max-daily-loss-usd must be positive, got 0",
        ),
    ] {
        let given = format!("{flag}={value}");
        for command in ["backtest", "run"] {
            let mut args = vec![command, "--data", data, &given];
            if command == "run" {
                args.extend(["--speed", "max", "--no-web"]);
            }
            let out = nanotrader(dir.path(), &args);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(says), "{args:?}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
}

/// A sweep applies the rails to every combination exactly as a single backtest does (the SMA
/// grid's kernel hands sweeps with protections to the per-combination path).
#[test]
fn a_sweep_with_protections_gives_each_combination_its_single_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv");
    let data = data.to_str().unwrap();
    let rails = ["--max-drawdown", "3%", "--max-daily-loss-usd", "2500"];
    let mut sweep = vec![
        "backtest", "--data", data, "--cache", "off", "--json", "--short", "2,3", "--long", "5,8", "--top", "4",
    ];
    sweep.extend_from_slice(&rails);
    let out = nanotrader(dir.path(), &sweep);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = json["top"].as_array().unwrap();
    assert_eq!(top.len(), 4);
    for combo in top {
        let (short, long) = (combo["short"].to_string(), combo["long"].to_string());
        let mut single = vec![
            "backtest", "--data", data, "--cache", "off", "--json", "--short", &short, "--long", &long,
        ];
        single.extend_from_slice(&rails);
        let out = nanotrader(dir.path(), &single);
        assert!(out.status.success(), "{}", stderr(&out));
        let one: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(combo["end_equity"], one["end_equity"], "{short}/{long}");
        assert!(
            one["protections"]["refused_entries"].as_u64().unwrap() > 0,
            "{short}/{long}: {one}"
        );
    }
}
