//! The real binary against the mock Kraken exchange on loopback, with every fault the mock can
//! inject: the run keeps going, reconnects, and the stored bars equal the exchange's bars, with
//! no gap and no duplicate; a run started mid-minute stores that whole minute; the REST poller
//! stays within its request budget; a Kraken that cannot be reached is one line naming why.
//!
//! Every wait is for a condition (bars stored, faults injected, lines logged), checked a few
//! times a second up to a generous ceiling, so a loaded machine only makes the tests slower.

mod common;
use common::pg::TestDb;
use common::running::{Running, Stopped};
use common::*;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use nanotrader_kraken_mock::{Faults, MockConfig, MockCounters, MockKraken, Stall};
use nanotrader_market::{Bar, Timestamp};
use serde_json::Value;

const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
/// 10 market minutes per wall second: an hour of trades plays in 6 s.
const SPEED: f64 = 600.0;
/// Hours of trades the fault cases replay (the hour above, repeated): 96 s of market at 600x,
/// more than any wait below.
const TAPE_HOURS: i64 = 16;
/// The longest wait for a condition; met in a few seconds on an idle machine.
const CEILING: Duration = Duration::from_secs(80);

/// The hour of real trades repeated `hours` times, each copy an hour later, in `dir`.
fn repeated_trades(dir: &Path, hours: i64) -> PathBuf {
    let text = std::fs::read_to_string(repo_file(TRADES)).expect("the trades file reads");
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let rows: Vec<(i64, &str)> = lines
        .map(|l| {
            let (ts, rest) = l.split_once(',').expect("a trade row");
            (ts.parse().expect("ts_ns"), rest)
        })
        .collect();
    let mut out = format!("{header}\n");
    for hour in 0..hours {
        for (ts, rest) in &rows {
            let _ = writeln!(out, "{},{rest}", ts + hour * 3_600 * 1_000_000_000);
        }
    }
    let path = dir.join("trades.csv");
    std::fs::write(&path, out).unwrap();
    path
}

async fn start_mock_on(data: PathBuf, speed: f64, faults: Faults) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = MockConfig {
        speed,
        market_start: Some(Timestamp::now()),
        faults,
        ..MockConfig::new(data)
    };
    MockKraken::start(config).await.expect("the mock starts")
}

/// The mock replaying `TAPE_HOURS` of real trades at `SPEED`.
async fn start_mock(faults: Faults) -> MockKraken {
    let tmp = tempfile::tempdir().unwrap();
    // The mock reads the whole file at start: the directory may go afterwards.
    start_mock_on(repeated_trades(tmp.path(), TAPE_HOURS), SPEED, faults).await
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

/// A run against the mock, once it prints its dashboard line. Started off the runtime's
/// threads, which serve the mock.
async fn start_run(dir: &Path, mock: &MockKraken, extra: &[&str]) -> Running {
    let mut cmd = kraken_run(dir, mock);
    cmd.args(["--status-secs", "1"]).args(extra);
    tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap()
}

/// Stops a run as Ctrl-C does and collects what it wrote.
async fn interrupt(running: Running) -> Stopped {
    tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap()
}

/// The bars the run has stored, as its API serves them (oldest first, `t` = open time).
async fn api_bars(running: &Running) -> Vec<Value> {
    let url = format!("{}/api/bars?limit=10000", running.url);
    let Ok(response) = http().get(url).send().await else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["bars"].as_array().cloned().unwrap_or_default()
}

/// Waits until `done(stored bars, stderr so far)` holds, up to `CEILING`; the run must not stop.
async fn wait_until(what: &str, running: &mut Running, mut done: impl FnMut(&[Value], &str) -> bool) {
    let deadline = Instant::now() + CEILING;
    loop {
        let bars = api_bars(running).await;
        let log = running.stderr_so_far();
        if done(&bars, &log) {
            return;
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("{what}: the run stopped by itself ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {CEILING:?} ({} bars stored):\n{log}",
            bars.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// Runs against a mock with `faults` until `min_bars` are stored and `seen` holds (faults
/// injected and noticed), then stops it with Ctrl-C; the stored bars must be the exchange's.
async fn fault_case(
    case: &str,
    faults: Faults,
    min_bars: usize,
    seen: impl Fn(&MockCounters, &str) -> bool,
) -> (MockKraken, String) {
    let mock = start_mock(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_run(dir.path(), &mock, &[]).await;
    wait_until(case, &mut running, |bars, log| {
        bars.len() >= min_bars && seen(&mock.counters(), log)
    })
    .await;
    let stopped = interrupt(running).await;
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{case}: exit {:?}\n{log}", stopped.status);
    assert!(!log.contains("panicked"), "{case}: {log}");
    assert_bars_match(dir.path(), &mock, min_bars, case);
    (mock, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_feed_stores_the_exchange_bars() {
    let (mock, log) = fault_case("no fault", Faults::default(), 25, |_, log| {
        log.contains("status BTC/USD:")
    })
    .await;
    assert!(mock.counters().subscriptions >= 3, "trade, ticker and ohlc");
    assert!(!log.contains("differs from Kraken's candle"), "{log}");
    assert!(log.contains("status BTC/USD:"), "periodic status lines: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_reconnected_and_back_filled() {
    let faults = Faults {
        drop_after: Some(Duration::from_millis(1500)),
        ..Faults::default()
    };
    let (mock, log) = fault_case("dropped connections", faults, 20, |c, log| {
        c.faults.dropped_connections >= 1 && c.ws_connections >= 2 && log.contains("Kraken WebSocket down")
    })
    .await;
    let counters = mock.counters();
    assert!(
        counters.faults.dropped_connections >= 1 && counters.ws_connections >= 2,
        "{counters:?}"
    );
    let reconnect_lines = log.lines().filter(|l| l.contains("Kraken WebSocket down")).count();
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
    let (mock, log) = fault_case("silent stalls", faults, 15, |c, log| {
        c.faults.stalls >= 1 && log.contains("silent for")
    })
    .await;
    assert!(mock.counters().faults.stalls >= 1);
    assert!(log.contains("silent for"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_frames_are_counted_and_skipped() {
    let faults = Faults {
        garbage_every: 5,
        truncate_every: 7,
        ..Faults::default()
    };
    let (mock, log) = fault_case("garbage and truncated frames", faults, 15, |c, log| {
        c.faults.garbage_frames >= 1 && c.faults.truncated_frames >= 1 && log.contains("malformed Kraken message")
    })
    .await;
    let f = mock.counters().faults;
    assert!(f.garbage_frames >= 1 && f.truncated_frames >= 1, "{f:?}");
    let logged = log.lines().filter(|l| l.contains("malformed Kraken message")).count();
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
    fault_case("unknown fields", faults, 25, |c, _| c.faults.extra_fields >= 1).await;
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
    let (mock, _) = fault_case("REST faults", faults, 15, |c, _| {
        c.faults.rate_limited >= 1 && c.faults.server_errors >= 1
    })
    .await;
    let f = mock.counters().faults;
    assert!(f.rate_limited >= 1 && f.server_errors >= 1, "{f:?}");
}

/// Trades every 50 ms of market time for `minutes`, from a minute's start, prices and sizes
/// varying, so each minute holds 1,200 trades (more than a WebSocket snapshot's 50).
fn dense_trades(dir: &Path, minutes: i64) -> PathBuf {
    let start_ns: i64 = 1_561_939_200 * 1_000_000_000;
    let mut out = String::from("ts_ns,price,volume,side\n");
    for i in 0..minutes * 1_200 {
        let price = 1_000_000 + (i * 7_919) % 2_000; // cents
        let side = if i % 3 == 0 { "sell" } else { "buy" };
        let _ = writeln!(
            out,
            "{},{}.{:02},0.{:04},{side}",
            start_ns + i * 50_000_000,
            price / 100,
            price % 100,
            1 + (i * 37) % 9_000
        );
    }
    let path = dir.join("dense.csv");
    std::fs::write(&path, out).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_mid_minute_stores_that_whole_minute() {
    // 6x: a market minute lasts 10 s, so the run subscribes well inside the minute it starts in.
    let tmp = tempfile::tempdir().unwrap();
    let mock = start_mock_on(dense_trades(tmp.path(), 20), 6.0, Faults::default()).await;
    let first_minute = mock.market_time().floor_to(nanotrader_market::Interval::ONE_MINUTE);
    // Start once the first minute is under way.
    let deadline = Instant::now() + CEILING;
    while mock.market_time() < first_minute.add_secs(6) {
        assert!(Instant::now() < deadline, "the mock's clock does not move");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_run(dir.path(), &mock, &[]).await;
    wait_until("the first bar", &mut running, |bars, _| !bars.is_empty()).await;
    let bars = api_bars(&running).await;
    let stopped = interrupt(running).await;
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{log}");

    let counters = mock.counters();
    let subscribed = counters.trade_subscribed_at.expect("the run subscribed to trades");
    let minute = subscribed.floor_to(nanotrader_market::Interval::ONE_MINUTE);
    let first = &bars[0];
    assert_eq!(
        first["t"].as_i64(),
        Some(minute.secs()),
        "the first bar is the minute the run subscribed in ({subscribed})"
    );
    let expected = mock
        .expected_bars(mock.market_time())
        .into_iter()
        .find(|b| b.ts == minute)
        .expect("the tape has that minute");
    let number = |v: &Value| plain_number(v.as_str().unwrap_or_else(|| panic!("a decimal string: {v}")));
    for (field, value) in [
        ("o", expected.open),
        ("h", expected.high),
        ("l", expected.low),
        ("c", expected.close),
        ("v", expected.volume),
    ] {
        assert_eq!(
            number(&first[field]),
            plain_number(&value.to_string()),
            "first bar's {field}: {first}"
        );
    }
    assert_eq!(first["trades"].as_u64(), Some(u64::from(expected.trades)), "{first}");
    // The minute's trades before the subscription were more than a snapshot holds: REST
    // Trades filled them in.
    let before = (subscribed.nanos() - minute.nanos()) / 50_000_000;
    assert!(
        before > 50,
        "subscribed only {before} trades into the minute: too early to tell"
    );
    assert!(counters.rest.trades >= 1, "{counters:?}");
    assert!(!log.contains("differs from Kraken's candle"), "{log}");
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
async fn a_kraken_that_cannot_be_reached_is_one_line_naming_why() {
    let mock = start_mock(Faults::default()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mock_port = mock.rest_url().rsplit(':').next().unwrap().to_owned();
    let tls_rest = format!("https://127.0.0.1:{mock_port}");
    let tls_ws = format!("wss://127.0.0.1:{mock_port}/v2");
    let closed_rest = format!("http://127.0.0.1:{closed}");
    let closed_ws = format!("ws://127.0.0.1:{closed}/v2");
    let mock_rest = mock.rest_url();
    let mock_ws = mock.ws_url();
    let hint = "to run without Kraken, try `nanotrader demo` or `nanotrader run --source sim`";
    let cases = [
        (
            "unresolvable host",
            ["http://nonexistent.invalid", mock_ws.as_str()],
            "cannot reach Kraken's REST API at http://nonexistent.invalid: DNS lookup failed for nonexistent.invalid; "
                .to_owned(),
        ),
        (
            "closed REST port",
            [closed_rest.as_str(), mock_ws.as_str()],
            format!("cannot reach Kraken's REST API at {closed_rest}: connection refused by 127.0.0.1:{closed}; "),
        ),
        (
            "REST without TLS",
            [tls_rest.as_str(), mock_ws.as_str()],
            format!("cannot reach Kraken's REST API at {tls_rest}: TLS handshake with 127.0.0.1 failed: "),
        ),
        (
            "closed WebSocket port",
            [mock_rest.as_str(), closed_ws.as_str()],
            format!("cannot reach Kraken's WebSocket at {closed_ws}: connection refused by 127.0.0.1:{closed}; "),
        ),
        (
            "WebSocket without TLS",
            [mock_rest.as_str(), tls_ws.as_str()],
            format!("cannot reach Kraken's WebSocket at {tls_ws}: TLS handshake with 127.0.0.1 failed: "),
        ),
    ];
    for (case, [rest, ws], expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let child = bin()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["run", "--kraken-rest-url", rest, "--kraken-ws-url", ws])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = refused(child).await;
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{case}: one line: {err}");
        assert!(lines[0].starts_with("error: "), "{case}: {err}");
        assert!(lines[0].contains(&expected), "{case}: '{expected}' missing from {err}");
        assert!(lines[0].ends_with(hint), "{case}: the hint: {err}");
        assert!(
            !stdout(&out).contains("dashboard:"),
            "{case}: no dashboard line before a start-up failure: {}",
            stdout(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_live_run_resumes_without_a_gap() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_run(dir.path(), &mock, &[]).await;
    wait_until("the first run", &mut running, |bars, _| bars.len() >= 5).await;
    drop(running); // SIGKILL
    let mut running = start_run(dir.path(), &mock, &[]).await;
    wait_until("the resumed run", &mut running, |bars, log| {
        log.contains("resuming run 1") && bars.len() >= 25
    })
    .await;
    let stopped = interrupt(running).await;
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{log}");
    assert!(log.contains("resuming run 1"), "{log}");
    assert_bars_match(dir.path(), &mock, 25, "kill and restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_poller_stays_within_its_request_budget() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(dir.path()).args([
        "run",
        "--source",
        "kraken-rest",
        "--kraken-rest-url",
        &mock.rest_url(),
    ]);
    let started = Instant::now();
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_until("three polls", &mut running, |_, _| mock.counters().rest.ticker >= 3).await;
    let stopped = interrupt(running).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    let rest = mock.counters().rest;
    // One AssetPairs call, then at most one Ticker call per second.
    assert_eq!(rest.asset_pairs, 1);
    assert!(
        rest.ticker >= 3 && rest.ticker as f64 <= elapsed + 1.0,
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
    let mock = start_mock_on(repo_file(TRADES), SPEED, Faults::default()).await;
    // Let the whole hour of trades become history (6.5 s at 600x).
    let history_at = mock.market_time().add_secs(65 * 60);
    while mock.market_time() < history_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        nanotrader_market::BarAggregator::new("2m".parse().unwrap(), Some(nanotrader_market::Interval::ONE_MINUTE));
    for bar in &all {
        agg.on_event(&nanotrader_market::MarketEvent::Bar(*bar), &mut |e| {
            if let nanotrader_market::BarEvent::Closed(b) = e {
                two_minute.push(b)
            }
        });
    }
    agg.finish(&mut |e| {
        if let nanotrader_market::BarEvent::Closed(b) = e {
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

/// The 1m bars stored in the PostgreSQL database, as rows like `as_rows`'s (read as psql would).
fn stored_pg_bars(db: &TestDb) -> Vec<String> {
    pg::off_runtime(|| stored_pg_bars_here(db))
}

fn stored_pg_bars_here(db: &TestDb) -> Vec<String> {
    db.client()
        .query(
            "SELECT extract(epoch FROM b.ts)::bigint, b.open::text, b.high::text, b.low::text, b.close::text,
                    b.volume::text
             FROM bars b JOIN series s ON s.id = b.series_id WHERE s.interval_secs = 60 ORDER BY b.ts",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            (1..6).fold(r.get::<_, i64>(0).to_string(), |row, i| {
                format!("{row},{}", plain_number(r.get(i)))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_into_postgres_is_exact_takes_an_overlap_and_is_idempotent() {
    let Some(db) = TestDb::create("history_pg") else {
        return;
    };
    let mock = start_mock_on(repo_file(TRADES), SPEED, Faults::default()).await;
    let history_at = mock.market_time().add_secs(65 * 60);
    while mock.market_time() < history_at {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = mock.expected_bars(mock.market_time());
    let (since, until) = (all[0].ts.secs(), all[all.len() - 1].ts.secs() + 60);
    let half = since + (until - since) / 2;
    let dir = tempfile::tempdir().unwrap();
    let into_pg = |since: i64, until: i64| {
        let mut cmd = bin();
        cmd.arg("--data-dir")
            .arg(dir.path())
            .args(["--db-url", &db.url()])
            .args(["history", "--kraken-rest-url", &mock.rest_url(), "--store"])
            .args(["--since", &since.to_string(), "--until", &until.to_string()]);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };

    // The first half, by binary COPY into an empty series.
    let said = into_pg(since, half);
    assert!(
        said.contains("into the store postgres://") && said.contains("Kraken OHLC"),
        "{said}"
    );
    let first_half: Vec<Bar> = all.iter().filter(|b| b.ts.secs() < half).copied().collect();
    assert_eq!(
        stored_pg_bars(&db),
        as_rows(&first_half),
        "the exchange's bars, exactly"
    );
    // The whole range, overlapping the stored half: the missing bars added, the stored kept.
    into_pg(since, until);
    assert_eq!(
        stored_pg_bars(&db),
        as_rows(&all),
        "the overlap is neither lost nor doubled"
    );
    // Again: nothing changes.
    into_pg(since, until);
    assert_eq!(stored_pg_bars(&db), as_rows(&all), "running it again changes nothing");
    // The stored series backtests from PostgreSQL as a run's bars do.
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["--db-url", &db.url()])
        .args([
            "backtest",
            "--from-store",
            "--pair",
            "BTC/USD",
            "--interval",
            "1m",
            "--json",
        ]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let figures: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(figures["bars"], all.len(), "{figures}");
    // History is not a run.
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["--db-url", &db.url(), "runs"]);
    let out = cmd.output().unwrap();
    assert!(!stdout(&out).contains("running"), "{}", stdout(&out));
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
