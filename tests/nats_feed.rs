//! One feed, many bots (issue 19, points 2, 3 and 5 in part): `nanotrader feed` reads the mock
//! exchange and publishes to the real NATS server with JetStream; bots with different strategies
//! trade from it (`run --source nats`). The feed is killed with -9 and restarted, a bot too: each
//! bot's stored bars are the exchange's bars over its span, none missing, none twice.
//!
//! Needs nats-server with JetStream at 127.0.0.1:4222 (or NANOTRADER_NATS_URL): skipped with a
//! loud message without one, unless NANOTRADER_REQUIRE_NATS=1 (CI) makes that a failure.

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, nanotrader, plain_number, repo_file, stderr, stdout};
use nanotrader_kraken_mock::{Faults, MockConfig, MockKraken};
use nanotrader_market::{Bar, Timestamp};

const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
/// 10 market minutes per wall second.
const SPEED: f64 = 600.0;
const CEILING: Duration = Duration::from_secs(90);

fn nats_url() -> Option<String> {
    let url = std::env::var("NANOTRADER_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let addr = url.trim_start_matches("nats://").to_owned();
    if std::net::TcpStream::connect(&addr).is_ok() {
        return Some(url);
    }
    if std::env::var("NANOTRADER_REQUIRE_NATS").as_deref() == Ok("1") {
        panic!("NANOTRADER_REQUIRE_NATS=1 but no NATS server answers at {url}");
    }
    eprintln!("SKIPPED: no NATS server at {url}; set NANOTRADER_REQUIRE_NATS=1 to require one");
    None
}

/// The day's hour of trades repeated, so the tape outlasts the test at 600x.
fn repeated_trades(dir: &Path, hours: i64) -> PathBuf {
    let text = std::fs::read_to_string(repo_file(TRADES)).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    let rows: Vec<(i64, &str)> = lines
        .map(|l| {
            let (ts, rest) = l.split_once(',').unwrap();
            (ts.parse().unwrap(), rest)
        })
        .collect();
    for hour in 0..hours {
        for (ts, rest) in &rows {
            let _ = writeln!(out, "{},{rest}", ts + hour * 3_600 * 1_000_000_000);
        }
    }
    let path = dir.join("trades.csv");
    std::fs::write(&path, out).unwrap();
    path
}

struct Bus {
    url: String,
    stream: String,
    prefix: String,
}

impl Bus {
    fn args(&self) -> Vec<String> {
        vec![
            "--nats-url".into(),
            self.url.clone(),
            "--nats-stream".into(),
            self.stream.clone(),
            "--nats-subject-prefix".into(),
            self.prefix.clone(),
        ]
    }
}

fn spawn(mut cmd: Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    cmd.stdout(Stdio::null()).stderr(Stdio::from(file));
    cmd.spawn().expect("nanotrader starts")
}

fn spawn_feed(mock: &MockKraken, bus: &Bus, log: &Path) -> Child {
    let mut cmd = bin();
    cmd.arg("feed")
        .args(bus.args())
        .args(["--kraken-rest-url", &mock.rest_url(), "--kraken-ws-url", &mock.ws_url()])
        .args(["--feed-timeout-secs", "1"]);
    spawn(cmd, log)
}

fn spawn_bot(dir: &Path, bus: &Bus, strategy: &str, log: &Path) -> Child {
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["run", "--source", "nats", "--no-web", "--strategy", strategy])
        .args(bus.args());
    spawn(cmd, log)
}

/// The bars a bot stored, as `ts,open,high,low,close,volume` with plain numbers.
fn stored_bars(dir: &Path) -> Vec<String> {
    let out = nanotrader(dir, &["bars", "--csv"]);
    if !out.status.success() {
        return Vec::new();
    }
    stdout(&out)
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(6).map(plain_number).collect::<Vec<_>>().join(","))
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

async fn wait_for_bars(what: &str, dir: &Path, at_least: usize, children: &mut [&mut Child], logs: &[&Path]) {
    let deadline = Instant::now() + CEILING;
    loop {
        let n = stored_bars(dir).len();
        if n >= at_least {
            return;
        }
        for child in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let text: Vec<String> = logs
                    .iter()
                    .map(|l| std::fs::read_to_string(l).unwrap_or_default())
                    .collect();
                panic!(
                    "{what}: a process stopped by itself ({status}):\n{}",
                    text.join("\n----\n")
                );
            }
        }
        assert!(Instant::now() < deadline, "{what}: {n} bars after {CEILING:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The stored bars are the exchange's over the stored span: none missing, none twice, none
/// changed.
fn assert_exchange_bars(dir: &Path, mock: &MockKraken, who: &str) -> Vec<String> {
    let stored = stored_bars(dir);
    let ts = |row: &String| -> i64 { row.split(',').next().unwrap().parse().unwrap() };
    let (first, last) = (ts(&stored[0]), ts(&stored[stored.len() - 1]));
    let expected: Vec<String> = as_rows(&mock.expected_bars(mock.market_time()))
        .into_iter()
        .filter(|row| (first..=last).contains(&ts(row)))
        .collect();
    assert_eq!(stored, expected, "{who}: the stored bars are the exchange's");
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_on_the_bus_store_the_feeds_bars_exactly_across_kills_of_the_feed_and_a_bot() {
    let Some(url) = nats_url() else { return };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let mock = MockKraken::start(MockConfig {
        speed: SPEED,
        market_start: Some(Timestamp::now()),
        faults: Faults::default(),
        ..MockConfig::new(repeated_trades(tmp.path(), 16))
    })
    .await
    .unwrap();
    let tag = format!("t{}n{}", std::process::id(), Timestamp::now().nanos());
    let bus = Bus {
        url: url.clone(),
        stream: format!("TEST_{tag}"),
        prefix: tag,
    };
    let (a, b) = (tmp.path().join("bot-a"), tmp.path().join("bot-b"));
    let logs: Vec<PathBuf> = ["feed1", "feed2", "a1", "a2", "b"]
        .iter()
        .map(|n| tmp.path().join(format!("{n}.log")))
        .collect();

    let mut feed = spawn_feed(&mock, &bus, &logs[0]);
    // The feed makes the stream; a bot started before it would be refused in one line.
    let deadline = Instant::now() + CEILING;
    loop {
        let out = bin()
            .arg("--data-dir")
            .arg(tmp.path().join("probe"))
            .args(["run", "--source", "nats", "--no-web"])
            .args(bus.args())
            .args(["--since", "2100-01-01"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut out = out;
        if out.try_wait().unwrap().is_none() {
            kill(&mut out);
            break;
        }
        let text = stderr(&out.wait_with_output().unwrap());
        assert!(text.contains(&bus.stream), "a missing stream is named: {text}");
        assert!(Instant::now() < deadline, "the feed made no stream");
    }
    let mut bot_a = spawn_bot(&a, &bus, "sma-cross", &logs[2]);
    let mut bot_b = spawn_bot(&b, &bus, "ema-cross", &logs[4]);
    let all_logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_for_bars(
        "before the feed's kill",
        &a,
        15,
        &mut [&mut feed, &mut bot_a, &mut bot_b],
        &all_logs,
    )
    .await;

    // kill -9 the feed and start another: it goes on after the stream's last bar.
    kill(&mut feed);
    let mut feed = spawn_feed(&mock, &bus, &logs[1]);
    let before = stored_bars(&a).len();
    wait_for_bars(
        "after the feed's restart",
        &a,
        before + 15,
        &mut [&mut feed, &mut bot_a, &mut bot_b],
        &all_logs,
    )
    .await;

    // kill -9 a bot and restart it: it goes on after its last stored bar.
    kill(&mut bot_a);
    let before = stored_bars(&a).len();
    let mut bot_a = spawn_bot(&a, &bus, "sma-cross", &logs[3]);
    wait_for_bars(
        "after the bot's restart",
        &a,
        before + 10,
        &mut [&mut feed, &mut bot_a, &mut bot_b],
        &all_logs,
    )
    .await;
    wait_for_bars("the second bot", &b, 40, &mut [&mut feed, &mut bot_b], &all_logs).await;
    for child in [&mut feed, &mut bot_a, &mut bot_b] {
        kill(child);
    }

    let stored_a = assert_exchange_bars(&a, &mock, "bot a");
    let stored_b = assert_exchange_bars(&b, &mock, "bot b");
    // Both bots read the same feed: where both have bars, they are the same bars.
    let common: Vec<&String> = stored_a.iter().filter(|row| stored_b.contains(row)).collect();
    assert!(
        common.len() >= 30,
        "the bots share the feed's bars ({} in common)",
        common.len()
    );
    let restart = std::fs::read_to_string(&logs[1]).unwrap();
    assert!(
        restart.contains("going on from there"),
        "the second feed continued: {restart}"
    );
    mock.shutdown().await;
    // The test's stream goes with it.
    let client = async_nats::connect(&url).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream(&bus.stream)
        .await
        .unwrap();
}

/// A nats-server of the test's own (the machine's shared one must not be restarted), with
/// JetStream in `dir`, on `port`.
fn spawn_nats(dir: &Path, port: u16, log: &Path) -> Child {
    let mut cmd = Command::new("nats-server");
    cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir);
    spawn(cmd, log)
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + CEILING;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_restarted_mid_run_loses_no_bar_and_repeats_none() {
    if nats_url().is_none() {
        return;
    }
    if Command::new("nats-server").arg("--version").output().is_err() {
        assert!(
            std::env::var("NANOTRADER_REQUIRE_NATS").as_deref() != Ok("1"),
            "NANOTRADER_REQUIRE_NATS=1 but nats-server is not installed"
        );
        eprintln!("SKIPPED: no nats-server binary to restart");
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let mock = MockKraken::start(MockConfig {
        speed: SPEED,
        market_start: Some(Timestamp::now()),
        faults: Faults::default(),
        ..MockConfig::new(repeated_trades(tmp.path(), 16))
    })
    .await
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = tmp.path().join("jetstream");
    let logs: Vec<PathBuf> = ["nats1", "nats2", "feed", "bot"]
        .iter()
        .map(|n| tmp.path().join(format!("{n}.log")))
        .collect();
    let mut nats = spawn_nats(&store, port, &logs[0]);
    wait_listening(port).await;
    let bus = Bus {
        url: format!("nats://127.0.0.1:{port}"),
        stream: "MARKET_DATA".into(),
        prefix: "md".into(),
    };
    let mut feed = spawn_feed(&mock, &bus, &logs[2]);
    let dir = tmp.path().join("bot");
    // The bot starts once the feed has made the stream.
    let deadline = Instant::now() + CEILING;
    while !std::fs::read_to_string(&logs[2])
        .unwrap_or_default()
        .contains("feed: publishing")
    {
        assert!(Instant::now() < deadline, "the feed starts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut bot = spawn_bot(&dir, &bus, "sma-cross", &logs[3]);
    let all_logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_for_bars("before the restart", &dir, 15, &mut [&mut feed, &mut bot], &all_logs).await;

    // nats-server stops (as a restart does) and comes back on the same port and store.
    let _ = Command::new("kill").arg("-TERM").arg(nats.id().to_string()).status();
    let _ = nats.wait();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut nats = spawn_nats(&store, port, &logs[1]);
    wait_listening(port).await;
    let before = stored_bars(&dir).len();
    wait_for_bars(
        "after the restart",
        &dir,
        before + 15,
        &mut [&mut feed, &mut bot],
        &all_logs,
    )
    .await;
    for child in [&mut feed, &mut bot, &mut nats] {
        kill(child);
    }
    assert_exchange_bars(&dir, &mock, "the bot");
    let log = std::fs::read_to_string(&logs[3]).unwrap();
    assert!(log.contains("NATS: "), "the bot said NATS went away: {log}");
    eprintln!("{log}\n----\n{}", std::fs::read_to_string(&logs[2]).unwrap());
    mock.shutdown().await;
}
