//! Several pairs in one process against the mock Kraken exchange serving three markets, each
//! with a tape of its own: one WebSocket connection carries them all, and after the mock drops
//! it every pair's stored bars are still exactly that market's bars (no gap, no duplicate, no
//! trade of another pair).
//!
//! Every wait is for a condition, checked a few times a second up to a generous ceiling.

mod common;
use common::running::{Running, Stopped};
use common::*;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nanotrader_kraken_mock::{Faults, MockConfig, MockCounters, MockKraken, MockPair};
use nanotrader_market::{Bar, Timestamp};
use serde_json::Value;

const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
/// 10 market minutes per wall second.
const SPEED: f64 = 600.0;
/// Hours of trades replayed: 96 s of market at 600x, more than any wait below.
const TAPE_HOURS: i64 = 16;
const CEILING: Duration = Duration::from_secs(90);
/// The markets: WS v2 symbol, what is taken off each BTC/USD price, and how many seconds later
/// each trade comes, so no two tapes (and no two pairs' bars) are alike.
const PAIRS: [(&str, i64, i64); 3] = [("BTC/USD", 0, 0), ("ETH/USD", 10_000, 13), ("SOL/USD", 10_500, 29)];

/// The hour of real trades repeated `hours` times, prices lowered by `minus` and times moved
/// by `later_secs`.
fn tape(dir: &Path, name: &str, minus: i64, later_secs: i64) -> PathBuf {
    let text = std::fs::read_to_string(repo_file(TRADES)).expect("the trades file reads");
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let mut out = format!("{header}\n");
    let rows: Vec<(i64, rust_decimal::Decimal, &str)> = lines
        .map(|l| {
            let mut fields = l.splitn(3, ',');
            let ts = fields.next().unwrap().parse().unwrap();
            let price = fields.next().unwrap().parse().unwrap();
            (ts, price, fields.next().unwrap())
        })
        .collect();
    for hour in 0..TAPE_HOURS {
        for (ts, price, rest) in &rows {
            let ts = ts + (hour * 3_600 + later_secs) * 1_000_000_000;
            let _ = writeln!(out, "{ts},{},{rest}", price - rust_decimal::Decimal::from(minus));
        }
    }
    let path = dir.join(format!("{name}.csv"));
    std::fs::write(&path, out).unwrap();
    path
}

async fn start_mock(faults: Faults) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = PAIRS
        .iter()
        .map(|(symbol, minus, later)| tape(tmp.path(), &symbol.replace('/', "_"), *minus, *later))
        .collect();
    let config = MockConfig {
        speed: SPEED,
        market_start: Some(Timestamp::now()),
        faults,
        more_pairs: PAIRS[1..]
            .iter()
            .zip(&files[1..])
            .map(|((symbol, ..), file)| MockPair::new(*symbol, file))
            .collect(),
        ..MockConfig::new(&files[0])
    };
    MockKraken::start(config).await.expect("the mock starts")
}

fn all_pairs() -> String {
    PAIRS.map(|(symbol, ..)| symbol).join(",")
}

async fn start_run(dir: &Path, mock: &MockKraken) -> Running {
    let mut cmd = kraken_run(dir, mock);
    cmd.args(["--status-secs", "1", "--pair", &all_pairs()]);
    tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap()
}

async fn interrupt(running: Running) -> Stopped {
    tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap()
}

/// How many bars the run has stored for `pair`, as its API serves them.
async fn api_bar_count(running: &Running, pair: &str) -> usize {
    let url = format!("{}/api/bars?limit=10000&pair={pair}", running.url);
    let Ok(response) = http().get(url).send().await else {
        return 0;
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["bars"].as_array().map_or(0, Vec::len)
}

/// Waits until every pair has `min_bars` stored and `seen(mock counters, stderr)` holds.
async fn wait_for_bars(
    running: &mut Running,
    mock: &MockKraken,
    min_bars: usize,
    seen: impl Fn(&MockCounters, &str) -> bool,
) {
    let deadline = Instant::now() + CEILING;
    loop {
        let mut counts = Vec::new();
        for (pair, ..) in PAIRS {
            counts.push(api_bar_count(running, pair).await);
        }
        let log = running.stderr_so_far();
        if counts.iter().all(|n| *n >= min_bars) && seen(&mock.counters(), &log) {
            return;
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("the run stopped by itself ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "not reached within {CEILING:?} (bars per pair {counts:?}, {:?}):\n{log}",
            mock.counters()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn rows(bars: &[Bar]) -> Vec<String> {
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

/// Each pair's stored bars are exactly its market's bars over the stored span.
fn assert_every_pair_matches(dir: &Path, mock: &MockKraken, min_bars: usize) {
    for (pair, ..) in PAIRS {
        let out = nanotrader(dir, &["bars", "--pair", pair, "--csv"]);
        assert!(out.status.success(), "{pair}: {}", stderr(&out));
        let stored: Vec<String> = stdout(&out)
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(plain_number).collect::<Vec<_>>().join(","))
            .collect();
        assert!(stored.len() >= min_bars, "{pair}: only {} bars stored", stored.len());
        let ts = |row: &String| row.split(',').next().unwrap().parse::<i64>().unwrap();
        let (first, last) = (ts(&stored[0]), ts(&stored[stored.len() - 1]));
        let expected: Vec<String> = rows(&mock.expected_bars_of(pair, mock.market_time()).unwrap())
            .into_iter()
            .filter(|row| (first..=last).contains(&ts(row)))
            .collect();
        assert_eq!(stored, expected, "{pair}: stored bars differ from the exchange's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pairs_share_one_connection() {
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_run(dir.path(), &mock).await;
    wait_for_bars(&mut running, &mock, 15, |_, _| true).await;
    let counters = mock.counters();
    let stopped = interrupt(running).await;
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{log}");
    assert_eq!(
        counters.ws_connections, 1,
        "one connection for three pairs: {counters:?}"
    );
    assert_eq!(
        counters.subscriptions, 9,
        "trade, ticker and ohlc for each of the three symbols: {counters:?}"
    );
    assert_every_pair_matches(dir.path(), &mock, 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_recovers_every_pair_without_gap_or_duplicate() {
    let faults = Faults {
        drop_after: Some(Duration::from_millis(2500)),
        ..Faults::default()
    };
    let mock = start_mock(faults).await;
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_run(dir.path(), &mock).await;
    wait_for_bars(&mut running, &mock, 20, |c, log| {
        c.faults.dropped_connections >= 2 && log.matches("Kraken WebSocket down").count() >= 2
    })
    .await;
    let stopped = interrupt(running).await;
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let counters = mock.counters();
    let downs = log.lines().filter(|l| l.contains("Kraken WebSocket down")).count() as u64;
    assert!(
        downs >= 2 && downs <= counters.ws_connections,
        "one line per drop of the one shared connection, not one per pair: {downs} lines, {counters:?}"
    );
    assert_every_pair_matches(dir.path(), &mock, 20);
}

/// The dashboard's pair picker in headless Chromium (tests/browser/pairs.mjs): pick ETH/USD, see
/// its board (chart, run, bars, fills at its prices), keep it across a reload. Skipped loudly
/// without Chromium and Node.js, unless NANOTRADER_REQUIRE_BROWSER=1. Screenshot:
/// target/dashboard-pairs.png.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pair_picker_shows_the_picked_pairs_board_in_a_real_browser() {
    let Some(scripts) = browser_scripts("the pair picker") else {
        return;
    };
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut running = start_run(dir.path(), &mock).await;
    // Fills on ETH/USD before the page looks: SMA 10/20 crosses within a few dozen bars.
    let deadline = Instant::now() + CEILING;
    loop {
        let (_, fills) = running.get_json("/api/fills?pair=ETH/USD");
        if fills["fills"].as_array().is_some_and(|f| !f.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ETH/USD fill:\n{}",
            running.stderr_so_far()
        );
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("the run stopped by itself ({status}):\n{}", running.stderr_so_far());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let screenshot = repo_file("target/dashboard-pairs.png");
    // ETH/USD's prices are BTC/USD's less 10,000: all below 2,000, BTC/USD's all above 10,000.
    let (url, shot) = (running.url.clone(), screenshot.clone());
    let out = tokio::task::spawn_blocking(move || {
        let args = [url.as_ref(), shot.as_os_str(), "ETH/USD".as_ref(), "2000".as_ref()];
        run_browser_script(&scripts.join("pairs.mjs"), &args, Duration::from_secs(180))
    })
    .await
    .unwrap();
    let log = running.stderr_so_far();
    let out = out.unwrap_or_else(|| panic!("pairs.mjs did not finish\n{log}"));
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{log}",
        stderr(&out)
    );
    assert!(screenshot.is_file());
    drop(running);
}

/// One pair's fills as `(ts, cost committed after the fill)`: a buy commits what it cost
/// (notional and fee), a sell releases everything (paper sells the whole position).
fn commitments(dir: &Path, run: i64) -> Vec<(f64, rust_decimal::Decimal)> {
    let out = nanotrader(dir, &["fills", "--run", &run.to_string(), "--csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut committed = rust_decimal::Decimal::ZERO;
    stdout(&out)
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let d = |i: usize| f[i].parse::<rust_decimal::Decimal>().unwrap();
            committed = match f[1] {
                "buy" => committed + d(2) * d(3) + d(4),
                _ => rust_decimal::Decimal::ZERO,
            };
            (f[0].parse::<f64>().unwrap(), committed)
        })
        .collect()
}

/// What the pairs' open positions cost after every moment any of them traded, oldest first.
fn committed_over_time(dir: &Path) -> Vec<rust_decimal::Decimal> {
    let per_pair: Vec<_> = (1..=PAIRS.len() as i64).map(|run| commitments(dir, run)).collect();
    let mut moments: Vec<f64> = per_pair.iter().flatten().map(|(ts, _)| *ts).collect();
    moments.sort_by(f64::total_cmp);
    moments.dedup();
    moments
        .iter()
        .map(|at| {
            (per_pair.iter())
                .map(|fills| {
                    fills
                        .iter()
                        .rev()
                        .find(|(ts, _)| ts <= at)
                        .map_or(rust_decimal::Decimal::ZERO, |(_, c)| *c)
                })
                .sum()
        })
        .collect()
}

/// `--shared-cash`: three pairs trade from one rail of 10,000 (each alone would go all in with
/// 10,000 of its own); what their open positions cost never adds up to more, the first entry
/// takes a third, and after kill -9 the restarted process finds the rail exactly as the stored
/// fills left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pairs_share_one_cash_rail_across_a_kill() {
    let rail = rust_decimal::Decimal::from(10_000);
    let mock = start_mock(Faults::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |mock: &MockKraken| {
        let mut cmd = kraken_run(dir.path(), mock);
        cmd.args([
            "--status-secs",
            "1",
            "--pair",
            &all_pairs(),
            "--shared-cash",
            "--cash",
            "10000",
        ]);
        cmd
    };
    let cmd = start(&mock);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    let deadline = Instant::now() + CEILING;
    // Until at least two pairs have held at once.
    let half = rail / rust_decimal::Decimal::from(2);
    while !committed_over_time(dir.path()).iter().any(|c| *c > half) {
        assert!(
            Instant::now() < deadline,
            "no two pairs in position at once:\n{}",
            running.stderr_so_far()
        );
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("the run stopped by itself ({status}):\n{}", running.stderr_so_far());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(running); // SIGKILL
    let before = committed_over_time(dir.path());
    let expected_free = rail - before.last().copied().unwrap_or_default();

    let cmd = start(&mock);
    let running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    let deadline = Instant::now() + CEILING;
    while !running.stderr_so_far().contains("shared cash rail:") {
        assert!(Instant::now() < deadline, "no rail line:\n{}", running.stderr_so_far());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = running.stderr_so_far();
    let line = format!(
        "shared cash rail: {} of 10000 free across 3 pairs",
        expected_free.normalize()
    );
    assert!(
        log.contains(&line),
        "the restart finds the rail as the fills left it ({line}):\n{log}"
    );
    assert!(log.contains("resuming run 1"), "{log}");
    // More trading on the restored rail, then a clean stop.
    let fills_before = before.len();
    let deadline = Instant::now() + CEILING;
    while committed_over_time(dir.path()).len() < fills_before + 4 {
        assert!(
            Instant::now() < deadline,
            "no trading after the restart:\n{}",
            running.stderr_so_far()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stopped = interrupt(running).await;
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{log}");

    let over_time = committed_over_time(dir.path());
    for (i, committed) in over_time.iter().enumerate() {
        assert!(
            *committed <= rail,
            "moment {i}: {committed} committed, over the rail of {rail}"
        );
    }
    let first: Vec<_> = (1..=3).map(|run| commitments(dir.path(), run)).collect();
    let earliest = first
        .iter()
        .filter_map(|fills| fills.first())
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    let third = rail / rust_decimal::Decimal::from(3);
    assert!(
        earliest.1 <= third && earliest.1 > third * rust_decimal::Decimal::new(9, 1),
        "the first entry takes about a third of the rail, not all of it: {}",
        earliest.1
    );
}

/// The rail is paper's: a Kraken account's balance is one pool already. Refused with one line
/// and exit code 2 before anything is reached.
#[test]
fn shared_cash_with_a_kraken_broker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "run",
            "--source",
            "kraken",
            "--pair",
            "BTC/USD,ETH/USD",
            "--shared-cash",
        ])
        .args(["--broker", "kraken-validate", "--kraken-rest-url", "http://127.0.0.1:9"])
        .env("KRAKEN_API_KEY", "key")
        .env("KRAKEN_API_SECRET", "c2VjcmV0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--shared-cash is for paper trading"), "{err}");
}

/// `nanotrader feed --pair A,B,C` publishes the three markets from one WebSocket connection;
/// one bot trading all three from NATS JetStream stores each market's bars exactly. Skipped
/// without a NATS server at 127.0.0.1:4222 (NANOTRADER_NATS_URL), unless NANOTRADER_REQUIRE_NATS=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_publishes_every_pair_from_one_connection() {
    let url = std::env::var("NANOTRADER_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    if std::net::TcpStream::connect(url.trim_start_matches("nats://")).is_err() {
        assert_ne!(
            std::env::var("NANOTRADER_REQUIRE_NATS").as_deref(),
            Ok("1"),
            "NANOTRADER_REQUIRE_NATS=1 but no NATS server answers at {url}"
        );
        eprintln!("SKIPPED: no NATS server at {url}");
        return;
    }
    let mock = start_mock(Faults::default()).await;
    let tag = format!("mp{}n{}", std::process::id(), Timestamp::now().nanos());
    let stream = format!("TEST_{tag}");
    let bus = [
        "--nats-url",
        &url,
        "--nats-stream",
        &stream,
        "--nats-subject-prefix",
        &tag,
    ];
    let tmp = tempfile::tempdir().unwrap();
    let feed_log = tmp.path().join("feed.log");
    let mut feed = bin()
        .arg("feed")
        .args(["--pair", &all_pairs()])
        .args(bus)
        .args(["--kraken-rest-url", &mock.rest_url(), "--kraken-ws-url", &mock.ws_url()])
        .args(["--feed-timeout-secs", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&feed_log).unwrap())
        .spawn()
        .unwrap();
    // The feed makes the stream; the bot waits for it.
    let deadline = Instant::now() + CEILING;
    while !std::fs::read_to_string(&feed_log)
        .unwrap_or_default()
        .contains("feed: publishing")
    {
        assert!(Instant::now() < deadline, "the feed never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--source", "nats", "--pair", &all_pairs(), "--status-secs", "1"])
        .args(bus);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for_bars(&mut running, &mock, 15, |_, _| true).await;
    let counters = mock.counters();
    let stopped = interrupt(running).await;
    let _ = feed.kill();
    let _ = feed.wait();
    let log = String::from_utf8_lossy(&stopped.stderr).into_owned();
    assert!(stopped.status.success(), "{log}");
    assert_eq!(
        counters.ws_connections,
        1,
        "one connection for the feed's three pairs: {counters:?}\n{}",
        std::fs::read_to_string(&feed_log).unwrap_or_default()
    );
    assert_eq!(counters.subscriptions, 9, "{counters:?}");
    assert_every_pair_matches(dir.path(), &mock, 15);
}
