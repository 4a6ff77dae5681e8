//! The real binary against the mock Kraken exchange on loopback, with every fault the mock can
//! inject: the run keeps going, reconnects, and the stored bars equal the exchange's bars, with
//! no gap and no duplicate; the REST poller stays within its request budget.

mod common;
use common::*;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use nanotrader::kraken::mock::{Faults, MockConfig, MockKraken, Stall};
use nanotrader::market::{Bar, Timestamp};

const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
/// 10 market minutes per wall second: the hour of trades plays in 6 s.
const SPEED: f64 = 600.0;

async fn start_mock(faults: Faults) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = MockConfig {
        speed: SPEED,
        market_start: Some(Timestamp::now()),
        faults,
        ..MockConfig::new(repo_file(TRADES))
    };
    MockKraken::start(config).await.expect("the mock starts")
}

fn spawn_kraken_run(dir: &Path, mock: &MockKraken, extra: &[&str]) -> Child {
    kraken_run(dir, mock)
        .args(["--status-secs", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanotrader starts")
}

/// Lets the run go for `wall`, then stops it with SIGINT and returns what it printed.
async fn run_for(child: Child, wall: Duration) -> Output {
    tokio::time::sleep(wall).await;
    let pid = child.id().to_string();
    let _ = std::process::Command::new("kill").args(["-INT", &pid]).status();
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

/// Waits for a run that must stop by itself with a usage error (exit code 2).
async fn refused(child: Child) -> Output {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    out
}

fn stored_bars(dir: &Path) -> Vec<String> {
    let out = nanotrader(dir, &["bars", "--csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(plain_number).collect::<Vec<_>>().join(","))
        .collect()
}

fn as_rows(bars: &[Bar]) -> Vec<String> {
    bars.iter()
        .map(|b| {
            [b.open, b.high, b.low, b.close, b.volume]
                .iter()
                .fold(b.ts.secs().to_string(), |row, v| {
                    format!("{row},{}", plain_number(&v.to_string()))
                })
        })
        .collect()
}

/// The stored bars are exactly the exchange's bars over the stored span: none missing inside it,
/// none invented, none changed.
fn assert_bars_match(dir: &Path, mock: &MockKraken, min_bars: usize, case: &str) {
    let stored = stored_bars(dir);
    assert!(stored.len() >= min_bars, "{case}: only {} bars stored", stored.len());
    let first: i64 = stored[0].split(',').next().unwrap().parse().unwrap();
    let last: i64 = stored[stored.len() - 1].split(',').next().unwrap().parse().unwrap();
    let expected: Vec<String> = as_rows(&mock.expected_bars(mock.market_time()))
        .into_iter()
        .filter(|row| {
            let ts: i64 = row.split(',').next().unwrap().parse().unwrap();
            (first..=last).contains(&ts)
        })
        .collect();
    assert_eq!(stored, expected, "{case}: stored bars differ from the exchange's");
}

async fn fault_case(case: &str, faults: Faults, min_bars: usize) -> (MockKraken, Output) {
    let mock = start_mock(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run_for(spawn_kraken_run(dir.path(), &mock, &[]), Duration::from_secs(5)).await;
    assert!(out.status.success(), "{case}: exit {:?}\n{}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{case}: {}", stderr(&out));
    assert_bars_match(dir.path(), &mock, min_bars, case);
    (mock, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_feed_stores_the_exchange_bars() {
    let (mock, out) = fault_case("no fault", Faults::default(), 25).await;
    assert!(mock.counters().subscriptions >= 3, "trade, ticker and ohlc");
    assert!(
        !stderr(&out).contains("differs from Kraken's candle"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("status BTC/USD:"),
        "periodic status lines: {}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_reconnected_and_back_filled() {
    let faults = Faults {
        drop_after: Some(Duration::from_millis(1500)),
        ..Faults::default()
    };
    let (mock, out) = fault_case("dropped connections", faults, 20).await;
    let counters = mock.counters();
    assert!(
        counters.faults.dropped_connections >= 1 && counters.ws_connections >= 2,
        "{counters:?}"
    );
    let reconnect_lines = stderr(&out)
        .lines()
        .filter(|l| l.contains("Kraken WebSocket down"))
        .count();
    assert!(
        reconnect_lines >= 1 && reconnect_lines as u64 <= counters.ws_connections,
        "one line per disconnect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_stalls_are_detected_and_recovered() {
    let faults = Faults {
        stall: Some(Stall {
            every: Duration::from_secs(2),
            duration: Duration::from_secs(2),
        }),
        ..Faults::default()
    };
    let (mock, out) = fault_case("silent stalls", faults, 15).await;
    assert!(mock.counters().faults.stalls >= 1);
    assert!(stderr(&out).contains("silent for"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_frames_are_counted_and_skipped() {
    let faults = Faults {
        garbage_every: 5,
        truncate_every: 7,
        ..Faults::default()
    };
    let (mock, out) = fault_case("garbage and truncated frames", faults, 15).await;
    let f = mock.counters().faults;
    assert!(f.garbage_frames >= 1 && f.truncated_frames >= 1, "{f:?}");
    let logged = stderr(&out)
        .lines()
        .filter(|l| l.contains("malformed Kraken message"))
        .count();
    assert!(
        (1..=20).contains(&logged),
        "logged once in a while, not per frame: {logged}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_ignored() {
    let faults = Faults {
        extra_fields: true,
        ..Faults::default()
    };
    fault_case("unknown fields", faults, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_and_slow_answers_are_retried() {
    // Drops force REST back-fills, which then meet the REST faults.
    let faults = Faults {
        drop_after: Some(Duration::from_millis(1500)),
        rate_limit_every: 3,
        server_error_every: 4,
        slow_rest: Some(Duration::from_millis(300)),
        ..Faults::default()
    };
    let (mock, _) = fault_case("REST faults", faults, 15).await;
    let f = mock.counters().faults;
    assert!(f.rate_limited >= 1 && f.server_errors >= 1, "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_stops_the_run_with_a_clear_error() {
    let mock = start_mock(Faults {
        reject_subscriptions: true,
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_kraken_run(dir.path(), &mock, &[]);
    let out = refused(child).await;
    assert!(
        stderr(&out).contains("refused the trade subscription"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_pair_is_refused_before_connecting() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_kraken_run(dir.path(), &mock, &["--pair", "ETH/XYZ"]);
    let out = refused(child).await;
    assert!(stderr(&out).contains("unknown pair 'ETH/XYZ'"), "{}", stderr(&out));
    assert_eq!(mock.counters().ws_connections, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_live_run_resumes_without_a_gap() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_kraken_run(dir.path(), &mock, &[]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = run_for(spawn_kraken_run(dir.path(), &mock, &[]), Duration::from_millis(2500)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("resuming run 1"), "{}", stderr(&out));
    assert_bars_match(dir.path(), &mock, 25, "kill and restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_poller_stays_within_its_request_budget() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let child = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--source", "kraken-rest", "--kraken-rest-url", &mock.rest_url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let out = run_for(child, Duration::from_secs(4)).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", stderr(&out));
    let rest = mock.counters().rest;
    // One AssetPairs call, then at most one Ticker call per second.
    assert_eq!(rest.asset_pairs, 1);
    assert!(
        rest.ticker >= 2 && rest.ticker as f64 <= elapsed + 1.0,
        "{} ticker calls in {elapsed:.1} s",
        rest.ticker
    );
    assert_eq!(rest.trades + rest.ohlc, 0, "the poller asks for nothing else");
}

fn history(dir: &Path, mock: &MockKraken, args: &[&str]) -> Output {
    bin()
        .arg("--data-dir")
        .arg(dir)
        .args(["history", "--kraken-rest-url", &mock.rest_url()])
        .args(args)
        .output()
        .unwrap()
}

fn csv_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ts,open,high,low,close,volume,trades"));
    lines
        .map(|l| l.split(',').take(6).map(plain_number).collect::<Vec<_>>().join(","))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_downloads_are_exact_resumable_and_idempotent() {
    let mock = start_mock(Faults::default()).await;
    // Let the whole hour of trades become history (6 s at 600x).
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let all = mock.expected_bars(mock.market_time());
    let (since, until) = (all[0].ts.secs(), all[all.len() - 1].ts.secs() + 60);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bars.csv");
    let (since_arg, until_arg) = (since.to_string(), until.to_string());

    // Recent enough for OHLC: one call, Kraken's flat zero-volume minutes left out as gaps.
    let half = (since + (until - since) / 2).to_string();
    let out = history(
        dir.path(),
        &mock,
        &["--since", &since_arg, "--until", &half, "--out", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Kraken OHLC"), "{}", stdout(&out));
    let whole_range_to_file = || {
        history(
            dir.path(),
            &mock,
            &[
                "--since",
                &since_arg,
                "--until",
                &until_arg,
                "--out",
                file.to_str().unwrap(),
            ],
        )
    };
    // Interrupted mid-line: the cut line is dropped and fetched again.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() - 7]).unwrap();
    let out = whole_range_to_file();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("continuing after"), "{}", stdout(&out));
    assert_eq!(
        csv_rows(&file),
        as_rows(&all),
        "OHLC history equals the exchange's bars"
    );
    let before = std::fs::read(&file).unwrap();
    let out = whole_range_to_file();
    assert!(
        out.status.success() && stdout(&out).contains(" 0 1m bars"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "running it again changes nothing"
    );

    // An interval OHLC does not serve is rebuilt from the Trades endpoint with its cursor.
    let file2 = dir.path().join("bars2m.csv");
    let out = history(
        dir.path(),
        &mock,
        &[
            "--since",
            &since_arg,
            "--until",
            &until_arg,
            "--interval",
            "2m",
            "--out",
            file2.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Kraken Trades"), "{}", stdout(&out));
    let mut two_minute = Vec::new();
    let mut agg =
        nanotrader::market::BarAggregator::new("2m".parse().unwrap(), Some(nanotrader::market::Interval::ONE_MINUTE));
    for bar in &all {
        agg.on_event(&nanotrader::market::MarketEvent::Bar(*bar), &mut |e| {
            if let nanotrader::market::BarEvent::Closed(b) = e {
                two_minute.push(b)
            }
        });
    }
    agg.finish(&mut |e| {
        if let nanotrader::market::BarEvent::Closed(b) = e {
            two_minute.push(b)
        }
    });
    // Only bars that end inside the range are complete.
    two_minute.retain(|b| b.ts.secs() + 120 <= until);
    assert_eq!(
        csv_rows(&file2),
        as_rows(&two_minute),
        "Trades history equals the exchange's trades in 2m bars"
    );

    // Straight into the store: idempotent too.
    for _ in 0..2 {
        let out = history(
            dir.path(),
            &mock,
            &["--since", &since_arg, "--until", &until_arg, "--store"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let summary = stdout(&nanotrader(dir.path(), &["runs"]));
    assert!(!summary.contains("running"), "history is not a run: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pair_is_checked_before_any_starts() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_kraken_run(dir.path(), &mock, &["--pair", "BTC/USD,ETH/XYZ"]);
    let out = refused(child).await;
    assert!(stderr(&out).contains("unknown pair 'ETH/XYZ'"), "{}", stderr(&out));
    assert_eq!(mock.counters().ws_connections, 0, "no pair started");
}
