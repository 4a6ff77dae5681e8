//! The dashboard server of a real `nanotrader` process, over HTTP and WebSocket on loopback:
//! snapshot then deltas, history after a restart, slow-page resync, the API and the token rules.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const DATA: &str = "assets/btcusd_1m_20170903_20170904.csv";
const TOKEN: &str = "test-token-Zq8vN3xK5pL2";

/// A running `nanotrader` with its dashboard; killed when dropped.
struct Running {
    child: Child,
    url: String,
    stdout: std::sync::mpsc::Receiver<String>,
}

impl Running {
    fn start(dir: &std::path::Path, args: &[&str]) -> Self {
        let mut child = bin()
            .arg("--data-dir")
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("nanotrader starts");
        let (tx, stdout) = std::sync::mpsc::channel();
        let pipe = child.stdout.take().unwrap();
        // Drained on a thread so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let line = stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("nanotrader prints its dashboard URL");
            if let Some(url) = line.strip_prefix("dashboard: ") {
                break url.split_whitespace().next().unwrap().trim_end_matches('/').to_owned();
            }
        };
        let running = Self { child, url, stdout };
        running.wait_until_serving();
        running
    }

    /// `run` replaying the built-in data set at `speed`, plus `extra` options.
    fn replay(dir: &std::path::Path, speed: &str, extra: &[&str]) -> Self {
        let data = repo_file(DATA);
        let mut args = vec!["run", "--data", data.to_str().unwrap(), "--speed", speed];
        args.extend_from_slice(extra);
        Self::start(dir, &args)
    }

    /// The server is up before the run is: waits for the run to show.
    fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.status_is_ok() {
            assert!(Instant::now() < deadline, "the run never showed on the dashboard");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A plain blocking GET of /api/status (the test's runtime may not be running yet).
    fn status_is_ok(&self) -> bool {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://");
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        let request = format!("GET /api/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let mut head = [0u8; 12];
        stream.write_all(request.as_bytes()).is_ok() && stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
    }

    fn ws_url(&self) -> String {
        self.url.replacen("http://", "ws://", 1) + "/ws"
    }

    /// Waits for a stdout line containing `text`.
    fn wait_for_line(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = self
                .stdout
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no line with '{text}'"));
            if line.contains(text) {
                return;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_json(url: &str) -> Value {
    let response = http().get(url).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, protocols: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

async fn next_frame(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")
            .expect("the stream stays open")
            .expect("a readable frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("frames are JSON");
        }
    }
}

fn dec(v: &Value) -> f64 {
    v.as_str().expect("a decimal string").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_gets_a_snapshot_then_every_delta_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::replay(dir.path(), "3000", &["--stay"]);
    let mut ws = connect(&app.ws_url(), "nanotrader.v1").await.unwrap();
    let snapshot = next_frame(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["meta"]["pair"], "BTC/USD");
    assert_eq!(snapshot["meta"]["lines"], serde_json::json!(["SMA 10", "SMA 20"]));
    assert_eq!(snapshot["meta"]["paper"], true);
    // A replay is labelled with its speed, never as live.
    assert_eq!(snapshot["status"]["mode"], "replay");
    assert_eq!(snapshot["status"]["speed"], "3000x");
    let mut seq = snapshot["seq"].as_u64().unwrap();
    let mut last_bar = snapshot["bars"]
        .as_array()
        .unwrap()
        .last()
        .map_or(0, |b| b["t"].as_i64().unwrap());
    let mut fills = snapshot["fills"].as_array().unwrap().len();
    let mut account = snapshot["account"].clone();
    let (mut closed, mut forming) = (0, 0);
    loop {
        let frame = next_frame(&mut ws).await;
        assert_eq!(frame["type"], "delta", "no resync expected for a page that keeps up");
        let next = frame["seq"].as_u64().unwrap();
        assert_eq!(next, seq + 1, "delta frames come in order, none missing");
        seq = next;
        let mut finished = false;
        for event in frame["events"].as_array().unwrap() {
            match event["k"].as_str().unwrap() {
                "bar" if event["closed"] == true => {
                    let t = event["bar"]["t"].as_i64().unwrap();
                    assert!(t > last_bar, "closed bars move forward: {t} after {last_bar}");
                    assert_eq!(event["bar"]["lines"].as_array().unwrap().len(), 2);
                    last_bar = t;
                    closed += 1;
                }
                "bar" => forming += 1,
                "fill" => fills += 1,
                "account" => account = event["account"].clone(),
                "status" => finished = event["status"]["run"] == "completed",
                _ => {}
            }
        }
        if finished {
            break;
        }
    }
    assert!(closed > 1000, "{closed} closed bars streamed");
    assert_eq!(forming, 0, "a bar file closes each bar at once");
    // After the end, the page's picture equals the API's and the store's.
    let api_account = get_json(&format!("{}/api/account", app.url)).await;
    assert_eq!(account, api_account);
    let stored = get_json(&format!("{}/api/fills", app.url)).await;
    assert_eq!(stored["fills"].as_array().unwrap().len(), fills);
    assert!(fills > 10);
    let last_fill = stored["fills"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(dec(&last_fill["cash_after"]), dec(&api_account["cash"]));
    let status = get_json(&format!("{}/api/status", app.url)).await;
    assert_eq!(status["status"]["run"], "completed");
    assert_eq!(status["status"]["fills"].as_u64().unwrap() as usize, fills);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_dashboard_shows_the_stored_history() {
    let dir = tempfile::tempdir().unwrap();
    {
        let first = Running::replay(dir.path(), "6000", &[]);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = get_json(&format!("{}/api/status", first.url)).await;
            if status["status"]["bars"].as_u64().unwrap() > 300 {
                break;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Killed without warning, like a crash.
    }
    // What the killed run left in the store.
    let out = nanotrader(dir.path(), &["bars", "--csv"]);
    let stored_before = stdout(&out).lines().count() - 1;
    // The store commits a moment after the engine counts a bar: a kill loses the last few.
    assert!(stored_before > 250, "{stored_before} bars stored");
    let second = Running::replay(dir.path(), "1", &[]);
    let stored = get_json(&format!("{}/api/bars?limit=10000", second.url)).await;
    let stored = stored["bars"].as_array().unwrap()[..stored_before].to_vec();
    let mut ws = connect(&second.ws_url(), "nanotrader.v1").await.unwrap();
    let snapshot = next_frame(&mut ws).await;
    let bars = snapshot["bars"].as_array().unwrap();
    assert!(
        bars.len() >= stored.len(),
        "{} bars shown, {} stored",
        bars.len(),
        stored.len()
    );
    for (shown, stored) in bars.iter().zip(&stored) {
        assert_eq!(shown["t"], stored["t"]);
        assert_eq!(shown["c"].as_f64().unwrap(), dec(&stored["c"]));
    }
    // Buy and hold starts again from the run's first close (all cash in, one 0.4 % fee).
    let first_hold = bars[0]["bh"].as_f64().unwrap();
    assert!((first_hold - 100_000.0 * 0.996).abs() < 1e-6, "{first_hold}");
    // The indicators were recomputed from the stored bars: SMA 20 exists from the 20th bar.
    assert!(bars[18]["lines"][1].is_null());
    assert!(bars[19]["lines"][1].is_number());
    let fills = get_json(&format!("{}/api/fills", second.url)).await;
    // The resumed run goes on trading: a fill may be stored between the snapshot and this read.
    let shown = snapshot["fills"].as_array().unwrap();
    let stored_fills = fills["fills"].as_array().unwrap();
    assert!(!shown.is_empty() && stored_fills.len() >= shown.len());
    assert_eq!(
        shown[..],
        stored_fills[..shown.len()],
        "the page's fills are the stored ones, reasons included"
    );
    assert_eq!(snapshot["fills"][0]["reason"], "entry");
    // The books (not the mark, which moves with each new bar) equal the API's.
    let account = get_json(&format!("{}/api/account", second.url)).await;
    for field in ["cash", "position", "fees_paid", "realized_pnl", "avg_entry"] {
        assert_eq!(snapshot["account"][field], account[field], "{field}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_stops_reading_is_resynced_and_the_engine_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::start(
        dir.path(),
        &[
            "run",
            "--source",
            "sim",
            "--speed",
            "max",
            "--sim-tick-secs",
            "20",
            "--web-queue-frames",
            "2",
        ],
    );
    // A page with a tiny receive window that reads its snapshot, then nothing for a while.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr: std::net::SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = app.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "nanotrader.v1".parse().unwrap());
    let (mut slow, _) = tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut slow).await["type"], "snapshot");
    // A page that keeps up, beside it.
    let mut fast = connect(&app.ws_url(), "nanotrader.v1").await.unwrap();
    assert_eq!(next_frame(&mut fast).await["type"], "snapshot");

    let bars = || async {
        get_json(&format!("{}/api/status", app.url)).await["status"]["bars"]
            .as_u64()
            .unwrap()
    };
    let bars_before = bars().await;
    // The slow page reads nothing for a while; the fast one keeps reading.
    let stall_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < stall_until {
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(10), fast.next()).await {}
    }
    let bars_after = bars().await;
    assert!(
        bars_after > bars_before,
        "the engine went on: {bars_before} -> {bars_after}"
    );
    // When the slow page reads again, the server finds it fell behind and sends it a snapshot
    // (counted), then it is live again.
    let resyncs = || async {
        let text = http()
            .get(format!("{}/metrics", app.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric(&text, "nanotrader_dashboard_resyncs_total")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while resyncs().await < 1.0 {
        assert!(Instant::now() < deadline, "the slow page was never resynced");
        let until = Instant::now() + Duration::from_millis(200);
        while let Ok(Some(_)) = tokio::time::timeout_at(until.into(), slow.next()).await {}
    }
    let frame = next_frame(&mut slow).await;
    assert!(
        frame["seq"].as_u64().is_some(),
        "the page is live again: {}",
        frame["type"]
    );
}

/// The bar open times of an /api/bars answer.
fn bar_times(answer: &Value) -> Vec<i64> {
    answer["bars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["t"].as_i64().unwrap())
        .collect()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A run with many fills: /api/fills answers a page at a time, and the pages put together are
/// every stored fill, once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_come_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::replay(dir.path(), "max", &["--stay", "--short", "2", "--long", "3"]);
    app.wait_for_line("the dashboard stays up");
    let base = &app.url;
    let stored: Vec<u64> = {
        let db = rusqlite::Connection::open(dir.path().join("nanotrader.sqlite")).unwrap();
        let mut stmt = db.prepare("SELECT order_id FROM fills ORDER BY order_id").unwrap();
        stmt.query_map([], |r| r.get::<_, i64>(0))
            .unwrap()
            .map(|id| id.unwrap() as u64)
            .collect()
    };
    assert!(stored.len() > 150, "{} fills", stored.len());
    let latest = get_json(&format!("{base}/api/fills")).await;
    let default_page = latest["fills"].as_array().unwrap();
    assert_eq!(default_page.len(), stored.len().min(1000));
    assert_eq!(default_page.last().unwrap()["order_id"], *stored.last().unwrap());

    let mut pages = Vec::new();
    let mut url = format!("{base}/api/fills?limit=60");
    loop {
        let page = get_json(&url).await;
        let fills = page["fills"].as_array().unwrap();
        assert!(fills.len() <= 60);
        pages.push(
            fills
                .iter()
                .map(|f| f["order_id"].as_u64().unwrap())
                .collect::<Vec<_>>(),
        );
        match page["next_before"].as_u64() {
            Some(before) => url = format!("{base}/api/fills?limit=60&before={before}"),
            None => break,
        }
    }
    let together: Vec<u64> = pages.into_iter().rev().flatten().collect();
    assert_eq!(together, stored, "the pages are every stored fill, once, in order");
    let response = http().get(format!("{base}/api/fills?before=x")).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = http()
        .get(format!("{base}/api/fills?limit=10001"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// A replay's status says what it is (mode "replay", its speed, the data's own time) and gives no
/// lag behind the wall clock; prices are shown at BTC/USD's tick. Every bar carries buy and hold
/// as the backtest defines it (the same figure as `backtest --json` of the same file), while the
/// account in the API stays exact to the last digit of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_says_so_and_buy_and_hold_rides_beside_the_equity() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::replay(dir.path(), "max", &["--stay"]);
    app.wait_for_line("the dashboard stays up");
    let base = &app.url;
    let status = get_json(&format!("{base}/api/status")).await;
    let s = &status["status"];
    assert_eq!(
        (&s["mode"], &s["speed"]),
        (&Value::from("replay"), &Value::from("max speed"))
    );
    assert_eq!(
        s["feed_lag_ms"],
        Value::Null,
        "a replay has no lag behind the wall clock"
    );
    assert_eq!(s["price_decimals"], 1, "BTC/USD's tick on Kraken (pair_decimals)");
    let first = bar_times(&get_json(&format!("{base}/api/bars?from=0&limit=1")).await)[0];
    let last = bar_times(&get_json(&format!("{base}/api/bars?limit=1")).await)[0];
    let data_time = s["data_time"].as_i64().expect("the data's own time");
    assert!(
        (first..=last + 60).contains(&data_time),
        "{data_time} within the data's {first}..{last}"
    );

    let mut ws = connect(&app.ws_url(), "nanotrader.v1").await.unwrap();
    let snapshot = next_frame(&mut ws).await;
    assert_eq!(snapshot["status"]["mode"], "replay");
    let first_close = dec(&get_json(&format!("{base}/api/bars?from=0&limit=1")).await["bars"][0]["c"]);
    let invested = dec(&snapshot["meta"]["initial_cash"]) * (1.0 - dec(&snapshot["meta"]["fee_rate"]));
    let bars = snapshot["bars"].as_array().unwrap();
    assert!(bars.len() > 1000);
    for bar in bars {
        let want = invested * bar["c"].as_f64().unwrap() / first_close;
        let got = bar["bh"].as_f64().expect("a buy-and-hold value on every bar");
        assert!((got - want).abs() <= 1e-9 * want, "bar {}: {got} vs {want}", bar["t"]);
    }
    let data = repo_file(DATA);
    let out = nanotrader(
        dir.path(),
        &["backtest", "--data", data.to_str().unwrap(), "--json", "--cache", "off"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let backtest: Value = serde_json::from_slice(&out.stdout).unwrap();
    let shown = (bars.last().unwrap()["bh"].as_f64().unwrap() / dec(&snapshot["meta"]["initial_cash"]) - 1.0) * 100.0;
    let reported = backtest["buy_and_hold_return_pct"].as_f64().unwrap();
    assert!(
        (shown - reported).abs() < 1e-9,
        "dashboard {shown} %, backtest {reported} %"
    );

    // Exact for machines: the API's cash is the store's, every digit (not rounded to the cent).
    let account = get_json(&format!("{base}/api/account")).await;
    let stored = fills_csv(dir.path(), None);
    let stored_cash = stored.last().unwrap().split(',').nth(5).unwrap().to_owned();
    assert_eq!(plain_number(account["cash"].as_str().unwrap()), stored_cash);
    assert!(
        stored_cash.split('.').nth(1).is_some_and(|d| d.len() > 2),
        "{stored_cash}"
    );
    let perf = get_json(&format!("{base}/api/performance")).await;
    assert_eq!(perf["ratios_meaningful"], perf["round_trips"].as_u64().unwrap() >= 30);
    assert!(perf["sharpe"].is_number(), "machines get the number either way: {perf}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_and_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::replay(dir.path(), "max", &["--stay"]);
    app.wait_for_line("the dashboard stays up");
    let base = &app.url;
    let openapi = get_json(&format!("{base}/api/openapi.json")).await;
    assert_eq!(openapi["openapi"], "3.1.0");
    for path in [
        "/api/status",
        "/api/account",
        "/api/performance",
        "/api/fills",
        "/api/bars",
        "/api/config",
        "/api/pairs",
        "/metrics",
        "/api/control/{action}",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} is documented");
    }
    let bars = get_json(&format!("{base}/api/bars?from=2017-09-03T01:00:00Z&limit=3")).await;
    let t = bar_times(&bars);
    assert_eq!(t, [1504400400, 1504400460, 1504400520]);
    let last = get_json(&format!("{base}/api/bars?limit=2")).await;
    let last = bar_times(&last);
    assert_eq!(last.len(), 2);
    assert!(last[0] < last[1]);
    for bad in [
        "limit=0",
        "limit=abc",
        "limit=20000",
        "from=yesterday",
        "to=99999999999999999999",
    ] {
        let response = http().get(format!("{base}/api/bars?{bad}")).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{bad}: {body}");
    }
    // A range that ends before it starts is well formed, and empty.
    let empty = get_json(&format!("{base}/api/bars?from=2017-09-03T02:00:00Z&to=2017-09-03")).await;
    assert_eq!(bar_times(&empty), Vec::<i64>::new());
    // Times beyond what the store holds are its ends, not errors.
    let all = get_json(&format!("{base}/api/bars?from=-99999&to=9999-12-31&limit=10000")).await;
    assert!(bar_times(&all).len() > 2000);
    let missing = http()
        .get(format!("{base}/api/status?pair=ETH/USD"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // One pair: the picker has nothing to offer but it.
    let pairs = get_json(&format!("{base}/api/pairs")).await;
    assert_eq!(pairs["pairs"].as_array().map(Vec::len), Some(1), "{pairs}");
    assert_eq!(pairs["pairs"][0]["pair"], "BTC/USD");
    let config = get_json(&format!("{base}/api/config")).await;
    assert_eq!(config["run"]["strategy"]["kind"], "sma-cross");
    let performance = get_json(&format!("{base}/api/performance")).await;
    assert!(performance["trades"].as_u64().unwrap() > 10);
    assert!(performance["max_drawdown_pct"].as_f64().unwrap() > 0.0);
    let metrics = http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metric(&metrics, "nanotrader_bars_closed_total") > 2000.0);
    assert_eq!(
        metric(&metrics, "nanotrader_fills_total"),
        performance["trades"].as_u64().unwrap() as f64
    );
    assert!(metrics.contains("# TYPE nanotrader_store_write_seconds_total counter"));
    // A run that has ended takes no orders.
    let response = control(base, "flatten", None, &[]).await;
    assert_eq!(response.status(), 409);
}

async fn control(base: &str, action: &str, token: Option<&str>, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http()
        .post(format!("{base}/api/control/{action}"))
        .header("X-Nanotrader-Control", "1")
        .header("Content-Type", "application/json")
        .body("{}");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_flatten_reach_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let app = Running::replay(dir.path(), "600", &[]);
    let base = &app.url;
    // Wait for a position, then flatten it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let account = get_json(&format!("{base}/api/account")).await;
        if dec(&account["position"]) > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no position opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paused: Value = control(base, "pause", None, &[]).await.json().await.unwrap();
    assert_eq!(paused["paused"], true);
    let flattened: Value = control(base, "flatten", None, &[]).await.json().await.unwrap();
    let order = flattened["order_id"].as_u64().expect("the position was sold");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fills = get_json(&format!("{base}/api/fills")).await;
        if let Some(fill) = fills["fills"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["order_id"] == order)
        {
            assert_eq!(fill["side"], "sell");
            assert_eq!(dec(&fill["position_after"]), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "the flatten fill was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Paused: signals come and go, no order is placed.
    let fills_paused = get_json(&format!("{base}/api/fills")).await["fills"]
        .as_array()
        .unwrap()
        .len();
    let status = get_json(&format!("{base}/api/status")).await;
    assert_eq!(status["status"]["trading"], "paused");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fills_later = get_json(&format!("{base}/api/fills")).await["fills"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(fills_paused, fills_later, "no fills while paused");
    let resumed: Value = control(base, "resume", None, &[]).await.json().await.unwrap();
    assert_eq!(resumed["paused"], false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while get_json(&format!("{base}/api/fills")).await["fills"]
        .as_array()
        .unwrap()
        .len()
        == fills_later
    {
        assert!(Instant::now() < deadline, "no fill after resuming");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_public_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = nanotrader(dir.path(), &["demo", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("without an access token") && err.contains("--web-token"),
        "{err}"
    );
    let out = nanotrader(dir.path(), &["demo", "--listen", "0.0.0.0:0", "--web-token", "short"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("at least 16 characters"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_everything_but_the_page_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    // The token comes from the environment, as the help recommends.
    let data = repo_file(DATA);
    let mut child = bin()
        .env("NANOTRADER_WEB_TOKEN", TOKEN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--data", data.to_str().unwrap(), "--speed", "600"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("a dashboard line").unwrap();
        if let Some(url) = line.strip_prefix("dashboard: ") {
            break url.trim().trim_end_matches('/').to_owned();
        }
    };
    let mut seen = String::new();
    // The page and its assets are public (they hold nothing of the run).
    for path in [
        "/",
        "/assets/app.js",
        "/assets/theme.css",
        "/assets/style.css",
        "/assets/lightweight-charts.js",
    ] {
        let response = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
            "{csp}"
        );
        seen += &response.text().await.unwrap();
    }
    for path in [
        "/api/status",
        "/api/account",
        "/api/fills",
        "/api/bars",
        "/api/config",
        "/api/performance",
        "/api/pairs",
        "/metrics",
    ] {
        let none = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(none.status(), 401, "{path} without a token");
        let wrong = http()
            .get(format!("{base}{path}"))
            .bearer_auth("test-token-Zq8vN3xK5pL3")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
        let right = http()
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(right.status(), 200, "{path} with the token");
        seen += &right.text().await.unwrap();
    }
    let ws = base.replacen("http://", "ws://", 1) + "/ws";
    assert!(
        connect(&ws, "nanotrader.v1").await.is_err(),
        "a stream without the token"
    );
    assert!(connect(&ws, "nanotrader.v1, bearer.wrong-token-0000000").await.is_err());
    let mut stream = connect(&ws, &format!("nanotrader.v1, bearer.{TOKEN}")).await.unwrap();
    seen += &next_frame(&mut stream).await.to_string();

    // Control: the token, our header, JSON, and no cross-site origin.
    assert_eq!(control(&base, "pause", None, &[]).await.status(), 401);
    assert_eq!(
        control(&base, "pause", Some("test-token-Zq8vN3xK5pL3"), &[])
            .await
            .status(),
        401
    );
    let host = base.trim_start_matches("http://").to_owned();
    let cross = [("Origin", "http://evil.example")];
    assert_eq!(control(&base, "pause", Some(TOKEN), &cross).await.status(), 403);
    let cross = [("Sec-Fetch-Site", "cross-site")];
    assert_eq!(control(&base, "pause", Some(TOKEN), &cross).await.status(), 403);
    let form = http()
        .post(format!("{base}/api/control/pause"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 403, "a form post (no custom header) is refused");
    let own = format!("http://{host}");
    let same = [("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let response = control(&base, "pause", Some(TOKEN), &same).await;
    assert_eq!(response.status(), 200);
    seen += &response.text().await.unwrap();
    // A DNS-rebinding Host is not answered even with the token... on loopback binds.
    let rebound = http()
        .get(format!("{base}/api/status"))
        .bearer_auth(TOKEN)
        .header("Host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);

    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    seen += &String::from_utf8_lossy(&output.stderr);
    for line in lines.map_while(Result::ok) {
        seen += &line;
    }
    assert!(
        !seen.contains(TOKEN),
        "the token appeared in a response, the page or the logs"
    );
}
