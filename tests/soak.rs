//! Soak runs of the real binary against the mock Kraken exchange, one per fault kind, each fault
//! injected on a schedule for the whole run (issue 6, point 2). Afterwards the stored bars equal
//! the exchange's bars over the stored span, the faults were really injected, the run kept
//! storing bars after its faults, and (in the long mode) its memory stayed flat.
//!
//! A soak ends on conditions, not on a clock: once the mock's market has passed the soak's
//! time, enough faults were injected, and the run has stored every minute of that time and a bar
//! after its last fault in it (up to a generous ceiling, so a loaded machine is only slower).
//!
//! `NANOTRADER_SOAK_MARKET_MINUTES` sets the replayed market time per kind (default 5: a quick
//! check in `cargo test`); 10 or more is the long mode, where the RSS bound is asserted.
//! `NANOTRADER_SOAK_SPEED` sets the mock's speed in market seconds per wall second (default 40,
//! 6 in the long mode: 10 market minutes take 100 s of wall time). `bench/soak.sh` runs the long
//! mode.

mod common;
use common::*;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nanotrader_kraken_mock::{Faults, MockConfig, MockCounters, MockKraken, Stall};
use nanotrader_market::{Bar, Timestamp};

/// One hour of real Kraken trades, repeated (shifted by whole hours) as long as the soak needs.
const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
const MINUTES_VAR: &str = "NANOTRADER_SOAK_MARKET_MINUTES";
const SPEED_VAR: &str = "NANOTRADER_SOAK_SPEED";
/// From this many market minutes on, the memory bound is asserted.
const LONG_MINUTES: f64 = 10.0;
/// What a soak may wait beyond three times its planned wall time for the run to start and to
/// have stored its market time: only a loaded machine gets near it.
const CEILING: Duration = Duration::from_secs(60);
const MIB: f64 = 1024.0 * 1024.0;

struct Soak {
    market_minutes: f64,
    speed: f64,
}

impl Soak {
    fn from_env() -> Self {
        let number = |var: &str| {
            std::env::var(var).ok().map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .unwrap_or_else(|| panic!("{var}='{v}' is not a positive number"))
            })
        };
        let market_minutes = number(MINUTES_VAR).unwrap_or(5.0);
        let long = market_minutes >= LONG_MINUTES;
        let speed = number(SPEED_VAR).unwrap_or(if long { 6.0 } else { 40.0 });
        Self { market_minutes, speed }
    }

    fn long(&self) -> bool {
        self.market_minutes >= LONG_MINUTES
    }

    fn wall(&self) -> Duration {
        Duration::from_secs_f64(self.market_minutes * 60.0 / self.speed)
    }
}

/// The trades file, repeated hour after hour until it covers `minutes` (plus a margin).
fn trades_file(dir: &Path, minutes: f64) -> PathBuf {
    let text = std::fs::read_to_string(repo_file(TRADES)).expect("the trades file reads");
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    assert_eq!(header, "ts_ns,price,volume,side");
    let rows: Vec<(i64, &str)> = lines
        .map(|l| {
            let (ts, rest) = l.split_once(',').expect("a trade row");
            (ts.parse().expect("ts_ns"), rest)
        })
        .collect();
    // An hour more than the soak's time: the run may take longer than planned to store it.
    let hours = (minutes / 60.0).ceil() as i64 + 1;
    let mut out = String::with_capacity(text.len() * hours as usize);
    out.push_str(header);
    out.push('\n');
    for hour in 0..hours {
        for (ts, rest) in &rows {
            let _ = writeln!(out, "{},{rest}", ts + hour * 3_600 * 1_000_000_000);
        }
    }
    let path = dir.join("trades.csv");
    std::fs::write(&path, out).unwrap();
    path
}

/// The child's resident set size in bytes, from /proc.
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn spawn_run(dir: &Path, mock: &MockKraken) -> Child {
    let store = dir.join("store");
    kraken_run(&store, mock)
        .args(["--status-secs", "5"])
        // To files, not pipes: a long run writes more than a pipe holds.
        .stdout(File::create(dir.join("stdout.log")).unwrap())
        .stderr(File::create(dir.join("stderr.log")).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("nanotrader starts")
}

fn stored_bars(store: &Path) -> Vec<(i64, String)> {
    let out = nanotrader(store, &["bars", "--csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .skip(1)
        .map(|l| {
            let row = l.split(',').map(plain_number).collect::<Vec<_>>().join(",");
            (row.split(',').next().unwrap().parse().unwrap(), row)
        })
        .collect()
}

fn as_rows(bars: &[Bar]) -> Vec<(i64, String)> {
    bars.iter()
        .map(|b| {
            let row = [b.open, b.high, b.low, b.close, b.volume]
                .iter()
                .fold(b.ts.secs().to_string(), |row, v| {
                    format!("{row},{}", plain_number(&v.to_string()))
                });
            (b.ts.secs(), row)
        })
        .collect()
}

/// A fault kind: its schedule and how the mock counts it.
struct Kind {
    name: &'static str,
    faults: Faults,
    injected: fn(&MockCounters) -> u64,
}

/// Drops of the WebSocket, `secs` after each connection opens.
fn drops_every(secs: f64) -> Option<Duration> {
    Some(Duration::from_secs_f64(secs))
}

/// What one soak saw.
struct Figures {
    wall: Duration,
    faults: u64,
    reconnects: u64,
    bars: usize,
    rss_start: u64,
    rss_end: u64,
    rss_max: u64,
}

/// The dashboard's base URL, once the run has printed it (the run has then started).
async fn dashboard_url(dir: &Path, child: &mut Child, case: &str) -> String {
    let deadline = Instant::now() + CEILING;
    loop {
        let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
        if let Some(rest) = out.lines().find_map(|l| l.strip_prefix("dashboard: ")) {
            return rest.split_whitespace().next().unwrap().trim_end_matches('/').to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            panic!("{case}: the run stopped before starting ({status}):\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "{case}: no dashboard line within {CEILING:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Open times of the bars the run has stored, from its API (empty while it cannot answer).
async fn stored_times(url: &str) -> Vec<i64> {
    let Ok(response) = http().get(format!("{url}/api/bars?limit=10000")).send().await else {
        return Vec::new();
    };
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    body["bars"]
        .as_array()
        .map(|bars| bars.iter().filter_map(|b| b["t"].as_i64()).collect())
        .unwrap_or_default()
}

async fn soak(kind: Kind) -> Figures {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let soak = Soak::from_env();
    let case = kind.name;
    let tmp = tempfile::tempdir().unwrap();
    let config = MockConfig {
        speed: soak.speed,
        market_start: Some(Timestamp::now()),
        faults: kind.faults,
        ..MockConfig::new(trades_file(tmp.path(), soak.market_minutes))
    };
    let mock = MockKraken::start(config).await.expect("the mock starts");
    let market_start = mock.market_time();
    // The soak covers this much market time; then it waits for the run to have stored it.
    let span_end = market_start.add_secs((soak.market_minutes * 60.0) as i64);
    let last_minute = span_end.secs().div_euclid(60) * 60 - 60;
    let mut child = spawn_run(tmp.path(), &mock);
    let pid = child.id();
    let started = Instant::now();
    let wall = soak.wall();
    let ceiling = wall * 3 + CEILING;
    // Warm-up: a tenth of the run, at least 2 s (the store opens, the first connection is made).
    let warm_up = (wall / 10).max(Duration::from_secs(2)).min(wall / 2);
    let url = dashboard_url(tmp.path(), &mut child, case).await;
    let min_faults = ((soak.market_minutes / 3.0).ceil() as u64).max(2);

    // Sample the mock's fault counter and the child's memory until the run has covered the
    // soak's market time, met its faults and recovered from the last one inside that time, and
    // stored every bar up to the end of it; each of these only waits on a slow machine.
    let mut fault_times: Vec<Timestamp> = Vec::new();
    let mut seen = 0;
    let mut subscribed: Option<Timestamp> = None;
    let (mut rss_start, mut rss_max) = (None, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let counters = mock.counters();
        let now = (kind.injected)(&counters);
        if now > seen {
            fault_times.push(mock.market_time());
            seen = now;
        }
        subscribed = subscribed.or(counters.trade_subscribed_at);
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(tmp.path().join("stderr.log")).unwrap_or_default();
            panic!("{case}: the run stopped by itself ({status}):\n{log}");
        }
        let rss = rss_bytes(pid).unwrap_or(0);
        rss_max = rss_max.max(rss);
        if rss_start.is_none() && started.elapsed() >= warm_up {
            rss_start = Some(rss);
        }
        let mut stored = Vec::new();
        if mock.market_time() >= span_end && seen >= min_faults {
            stored = stored_times(&url).await;
            let recover_from = fault_times.iter().rev().find(|t| **t <= span_end);
            let recovered = recover_from.is_some_and(|f| stored.iter().any(|ts| *ts >= f.secs()));
            if recovered && stored.last().is_some_and(|ts| *ts >= last_minute) {
                break;
            }
        }
        if started.elapsed() > ceiling {
            let log = std::fs::read_to_string(tmp.path().join("stderr.log")).unwrap_or_default();
            panic!(
                "{case}: not done after {ceiling:?}: {seen} faults (at {fault_times:?}), bars stored up to {:?}, the soak's time ends at {span_end}\n{log}",
                stored.last()
            );
        }
    }
    let rss_end = rss_bytes(pid).unwrap_or(0);
    let market_end = mock.market_time();
    let counters = mock.counters();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let wall = started.elapsed();
    let log = std::fs::read_to_string(tmp.path().join("stderr.log")).unwrap();
    assert!(status.success(), "{case}: exit {status}\n{log}");
    assert!(!log.contains("panicked"), "{case}: {log}");

    // The faults were injected, all along the run.
    let faults = (kind.injected)(&counters);
    assert!(
        faults >= min_faults,
        "{case}: only {faults} faults injected in {:.0} market minutes: {counters:?}",
        soak.market_minutes
    );

    // The stored bars are the exchange's over the stored span, exactly.
    let store = tmp.path().join("store");
    let stored = stored_bars(&store);
    let min_bars = (soak.market_minutes * 0.6).floor() as usize;
    assert!(
        stored.len() >= min_bars.max(2),
        "{case}: only {} bars stored in {:.0} market minutes\n{log}",
        stored.len(),
        soak.market_minutes
    );
    let (first, last) = (stored[0].0, stored[stored.len() - 1].0);
    let expected: Vec<(i64, String)> = as_rows(&mock.expected_bars(market_end))
        .into_iter()
        .filter(|(ts, _)| (first..=last).contains(ts))
        .collect();
    let rows = |bars: &[(i64, String)]| bars.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>();
    assert_eq!(
        rows(&stored),
        rows(&expected),
        "{case}: stored bars differ from the exchange's"
    );
    // The whole run is covered: from the minute it subscribed in (the next one when a fault
    // kept it from completing that minute) to the end of the soak's time.
    let subscribed = subscribed.expect("the run subscribed to trades");
    let start_minute = subscribed.secs().div_euclid(60) * 60;
    assert!(
        first <= start_minute + 60,
        "{case}: the first bar {first} is late (subscribed at {subscribed})\n{log}"
    );
    assert!(
        last >= last_minute,
        "{case}: the last bar {last} is before the soak's last minute {last_minute}\n{log}"
    );
    // Recovered: the latest fault inside the soak's time was followed by complete bars, built
    // only from data that arrived after it.
    let recovered_from = fault_times
        .iter()
        .rev()
        .find(|t| **t <= span_end)
        .unwrap_or_else(|| panic!("{case}: no fault inside the soak's time: {fault_times:?}"));
    let after = stored.iter().filter(|(ts, _)| *ts >= recovered_from.secs()).count();
    assert!(
        after >= 1,
        "{case}: no bar stored after the fault at {}\n{log}",
        recovered_from.secs()
    );

    let reconnects = log.lines().filter(|l| l.contains("Kraken WebSocket down")).count() as u64;
    let rss_start = rss_start.unwrap_or(rss_end);
    let figures = Figures {
        wall,
        faults,
        reconnects,
        bars: stored.len(),
        rss_start,
        rss_end,
        rss_max,
    };
    println!(
        "soak {case:<16} market_min={:.1} wall_s={:.1} speed={} faults={} reconnects={} ws_connections={} bars={} bars_equal_mock=yes last_fault_recovered_at={} rss_start_mib={:.1} rss_end_mib={:.1} rss_max_mib={:.1}",
        (market_end.secs() - market_start.secs()) as f64 / 60.0,
        figures.wall.as_secs_f64(),
        soak.speed,
        figures.faults,
        figures.reconnects,
        counters.ws_connections,
        figures.bars,
        recovered_from.secs(),
        figures.rss_start as f64 / MIB,
        figures.rss_end as f64 / MIB,
        figures.rss_max as f64 / MIB,
    );
    if soak.long() {
        let bound = figures.rss_start as f64 * 1.5 + 8.0 * MIB;
        assert!(
            (figures.rss_end as f64) <= bound,
            "{case}: memory grew: RSS {:.1} MiB after warm-up, {:.1} MiB at the end",
            figures.rss_start as f64 / MIB,
            figures.rss_end as f64 / MIB
        );
    }
    mock.shutdown().await;
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_dropped_connections() {
    let f = soak(Kind {
        name: "drops",
        faults: Faults {
            drop_after: drops_every(2.0),
            ..Faults::default()
        },
        injected: |c| c.faults.dropped_connections,
    })
    .await;
    assert!(f.reconnects >= 1, "every drop is reconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_silent_stalls() {
    soak(Kind {
        name: "stalls",
        faults: Faults {
            stall: Some(Stall {
                every: Duration::from_secs(2),
                duration: Duration::from_millis(1500),
            }),
            ..Faults::default()
        },
        injected: |c| c.faults.stalls,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_garbage_frames() {
    soak(Kind {
        name: "garbage frames",
        faults: Faults {
            garbage_every: 25,
            truncate_every: 37,
            ..Faults::default()
        },
        injected: |c| c.faults.garbage_frames + c.faults.truncated_frames,
    })
    .await;
}

// The REST faults meet the REST back-fill, which runs after every reconnect: the WebSocket is
// dropped every few seconds so that REST is asked all along the run.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_rate_limit_answers() {
    soak(Kind {
        name: "rate limits",
        faults: Faults {
            drop_after: drops_every(2.0),
            rate_limit_every: 2,
            ..Faults::default()
        },
        injected: |c| c.faults.rate_limited,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_server_errors() {
    soak(Kind {
        name: "5xx",
        faults: Faults {
            drop_after: drops_every(2.0),
            server_error_every: 2,
            ..Faults::default()
        },
        injected: |c| c.faults.server_errors,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_slow_responses() {
    soak(Kind {
        name: "slow responses",
        faults: Faults {
            drop_after: drops_every(2.0),
            slow_rest: Some(Duration::from_millis(800)),
            ..Faults::default()
        },
        injected: |c| c.faults.slow_responses,
    })
    .await;
}
