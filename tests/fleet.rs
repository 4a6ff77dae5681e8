//! The fleet dashboard (`nanotrader serve --db-url postgres://...`) against a real PostgreSQL and
//! real `nanotrader run` processes: the runs list shows every run with its strategy, pair, state
//! and exact equity; a page's stream on a run's board gets the bars and fills that run commits
//! without reloading, through the database's notifications (the fallback re-read is set to an
//! hour, so nothing else could bring them), and nothing is read while nothing changes; a token
//! is required off loopback.
//!
//! Each test has a database of its own, created and dropped here. With no server at
//! 127.0.0.1:5432 (or `NANOTRADER_TEST_PG`, a URL without database) the tests are skipped with a
//! loud message, unless `NANOTRADER_REQUIRE_POSTGRES=1` (CI) makes that a failure.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::running::Running;
use common::*;
use futures_util::StreamExt;
use rust_decimal::Decimal;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const DATA: &str = "assets/btcusd_1m_20170903_20170904.csv";
const TOKEN: &str = "fleet-test-token-0123456789";

/// `nanotrader run` of the sample data into the test's database.
fn run(db: &TestDb, dir: &std::path::Path, speed: &str, strategy: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir)
        .arg("--db-url")
        .arg(db.url())
        .args(["run", "--data"])
        .arg(repo_file(DATA))
        .args(["--speed", speed, "--no-web", "-q"])
        .args(strategy);
    cmd
}

fn serve(db: &TestDb, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("--db-url").arg(db.url()).arg("serve").args(extra);
    cmd
}

/// Polls `/api/runs` until `ready` holds for it (60 s at most).
fn wait_for_list(app: &Running, what: &str, ready: impl Fn(&[Value]) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = app.get_json("/api/runs");
        assert_eq!(code, 200, "{body}");
        if body["runs"].as_array().is_some_and(|runs| ready(runs)) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 60 s: {body}\n{}",
            app.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn row(list: &Value, id: i64) -> Value {
    list["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["id"] == id).cloned())
        .unwrap_or(Value::Null)
}

fn dec(v: &Value) -> Decimal {
    v.as_str()
        .unwrap_or_else(|| panic!("a decimal string: {v}"))
        .parse()
        .unwrap()
}

/// A run's equity as its own books end: the cash and position after its last fill (the initial
/// cash before any) at the close of its last bar; and its initial cash.
fn stored_equity(db: &TestDb, run: i64) -> (Decimal, Decimal) {
    let row = db
        .client()
        .query_one(
            "SELECT r.initial_cash, f.cash_after, f.position_after, b.close
             FROM runs r
             JOIN bars b ON b.series_id = r.series_id AND b.ts = r.last_bar_ts
             LEFT JOIN LATERAL (SELECT cash_after, position_after FROM fills WHERE run_id = r.id
                                ORDER BY order_id DESC LIMIT 1) f ON true
             WHERE r.id = $1",
            &[&run],
        )
        .unwrap();
    let cash: Decimal = row.get(0);
    let after: Option<Decimal> = row.get(1);
    let position: Option<Decimal> = row.get(2);
    let close: Decimal = row.get(3);
    (after.unwrap_or(cash) + position.unwrap_or_default() * close, cash)
}

fn run_ids(db: &TestDb) -> Vec<i64> {
    db.client()
        .query("SELECT id FROM runs ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws, deadline: Instant) -> Option<Value> {
    loop {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(text.as_str()).ok(),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

// A plain test with a runtime for the stream alone: the synchronous PostgreSQL client the test
// reads the database with must not run inside one.
#[test]
fn the_fleet_dashboard_lists_every_run_and_follows_a_writing_run_through_notifications() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = TestDb::create("fleet_follow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A finished run, at full speed.
    let out = run(
        &db,
        dir.path(),
        "max",
        &["--short", "3", "--long", "8", "--fee-rate", "0.0026"],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let finished = *run_ids(&db).last().unwrap();

    // The fallback re-read is an hour away: whatever arrives comes by notification. Its
    // connections are named, to be cut below.
    let mut cmd = bin();
    cmd.arg("--db-url")
        .arg(format!("{}?application_name=fleet-under-test", db.url()))
        .args(["serve", "--recheck-secs", "3600"]);
    let app = Running::start(cmd);
    let list = wait_for_list(&app, "the finished run listed", |runs| runs.len() == 1);
    let a = row(&list, finished);
    assert_eq!(a["strategy"], "sma-cross 3/8", "{a}");
    assert_eq!(a["pair"], "BTC/USD", "{a}");
    assert_eq!(a["broker"], "paper", "{a}");
    assert_eq!(a["source"], "replay", "{a}");
    assert_eq!(a["state"], "finished", "{a}");
    assert_eq!(a["live"], false, "{a}");
    let (equity, cash) = stored_equity(&db, finished);
    assert_eq!(
        dec(&a["equity"]),
        equity,
        "the list's equity is the run's books at its last close: {a}"
    );
    assert_eq!(
        dec(&a["return_pct"]),
        ((equity - cash) / cash * Decimal::ONE_HUNDRED).round_dp(6).normalize()
    );
    assert!(
        a["fills"].as_u64().unwrap() > 0 && a["bars"].as_u64().unwrap() > 2000,
        "{a}"
    );

    // A second run, writing while the dashboard watches: 20 bars a second.
    let writer = Killed(
        run(&db, dir.path(), "1200", &["--short", "5", "--long", "12"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let list = wait_for_list(&app, "the writing run listed as live", |runs| {
        runs.len() == 2 && runs[1]["live"] == true && runs[1]["bars"].as_u64().unwrap_or(0) > 0
    });
    let live = list["runs"][1]["id"].as_i64().unwrap();
    let b = row(&list, live);
    assert_eq!(b["strategy"], "sma-cross 5/12", "{b}");
    assert_eq!(b["state"], "live", "{b}");
    assert_eq!(b["status"], "running", "{b}");
    assert_eq!(row(&list, finished)["state"], "finished");

    // A page on the writing run's board: its snapshot, then the bars committed after it.
    let ws_url = app.url.replacen("http://", "ws://", 1) + &format!("/ws?run={live}");
    let mut request = ws_url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "nanotrader.v1".parse().unwrap());
    let (mut ws, _) = rt.block_on(tokio_tungstenite::connect_async(request)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let snapshot = rt.block_on(next_json(&mut ws, deadline)).expect("a snapshot");
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["meta"]["run_id"], live);
    assert_eq!(snapshot["meta"]["strategy"], "sma-cross 5/12");
    assert_eq!(
        snapshot["meta"]["lines"].as_array().unwrap().len(),
        2,
        "the strategy's lines"
    );
    let last_shown = snapshot["bars"]
        .as_array()
        .unwrap()
        .last()
        .map_or(0, |b| b["t"].as_i64().unwrap());
    let (mut new_bars, mut fills) = (0, 0);
    while new_bars < 40 || fills == 0 {
        let Some(frame) = rt.block_on(next_json(&mut ws, deadline)) else {
            panic!(
                "only {new_bars} new bars and {fills} fills within 60 s\n{}",
                app.stderr_so_far()
            );
        };
        if frame["type"] != "delta" {
            continue;
        }
        for event in frame["events"].as_array().unwrap() {
            match event["k"].as_str() {
                Some("bar") => {
                    assert_eq!(event["closed"], true, "the store holds closed bars only");
                    let t = event["bar"]["t"].as_i64().unwrap();
                    assert!(t > last_shown, "a bar already shown came again: {event}");
                    assert!(event["bar"]["lines"].as_array().is_some_and(|l| !l.is_empty()));
                    new_bars += 1;
                }
                Some("fill") => fills += 1,
                _ => {}
            }
        }
    }
    let (_, body) = app.get_json("/api/runs");
    assert!(body["notifications"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(body["rechecks"], 0, "nothing came by the fallback: {body}");

    // The server ends the dashboard's sessions (as a restart would): it says so once, listens
    // again, reads on a new connection, and the page keeps getting the run's bars.
    let cut: i64 = db
        .client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name = 'fleet-under-test'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(cut, 2, "the dashboard reads on one connection and listens on another");
    let mut after_cut = 0;
    while after_cut < 20 {
        let Some(frame) = rt.block_on(next_json(&mut ws, deadline + Duration::from_secs(60))) else {
            panic!("no bars after the connections were cut\n{}", app.stderr_so_far());
        };
        let events = frame["events"].as_array().cloned().unwrap_or_default();
        after_cut += events.iter().filter(|e| e["k"] == "bar").count();
    }
    let log = app.stderr_so_far();
    assert_eq!(log.matches("lost its connection to the store").count(), 1, "{log}");
    assert_eq!(log.matches("listens to the store again").count(), 1, "{log}");
    // The reading connection fails at most once, and says so back when it works again.
    let failed = log.matches("cannot read the store").count();
    assert!(failed <= 1, "{log}");
    assert_eq!(log.matches("reads the store again").count(), failed, "{log}");
    eprintln!("the dashboard's log after its connections were cut:\n{log}");

    // The writer stops (as Ctrl-C): the list says so, the board says the run ended.
    let pid = writer.0.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let list = wait_for_list(&app, "the stopped run listed as stopped", |runs| {
        runs.len() == 2 && runs[1]["state"] == "stopped"
    });
    assert_eq!(row(&list, live)["status"], "interrupted");
    let mut ended = false;
    while !ended {
        let Some(frame) = rt.block_on(next_json(&mut ws, deadline + Duration::from_secs(30))) else {
            panic!("the board never said the run ended");
        };
        let events = frame["events"].as_array().cloned().unwrap_or_default();
        ended = events
            .iter()
            .any(|e| e["k"] == "status" && e["status"]["run"] == "interrupted");
    }

    // Nothing changes now, and nothing is read: no polling.
    let reads = |app: &Running| app.get_json("/api/runs").1["reads"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let before = reads(&app);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(reads(&app), before, "the fleet read the store with nothing changed");
    drop(writer);
    let stopped = app.interrupt();
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
}

#[test]
fn the_fleet_dashboard_needs_a_token_off_loopback_and_a_postgres_store() {
    // Without PostgreSQL: a SQLite store is refused in one line.
    let dir = tempfile::tempdir().unwrap();
    let out = nanotrader(dir.path(), &["serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--db-url postgres://") && err.trim().lines().count() == 1,
        "{err}"
    );

    let Some(db) = TestDb::create("fleet_token") else {
        return;
    };
    // The store must exist: a run creates it.
    let out = run(&db, dir.path(), "max", &[]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let mut exposed = serve(&db, &[]);
    exposed.env("NANOTRADER_LISTEN", "0.0.0.0:0");
    let out = exposed.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("without an access token"), "{}", stderr(&out));

    let mut guarded = serve(&db, &[]);
    guarded
        .env("NANOTRADER_LISTEN", "0.0.0.0:0")
        .env("NANOTRADER_WEB_TOKEN", TOKEN);
    let app = Running::start(guarded);
    let port = app.url.rsplit(':').next().unwrap().to_owned();
    let base = format!("http://127.0.0.1:{port}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = http();
        let page = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), 200, "the page itself holds no data");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let board_page = client.get(format!("{base}/runs/1")).send().await.unwrap();
        assert_eq!(board_page.status(), 200);
        for path in ["/api/runs", "/api/runs/1", "/api/status?run=1"] {
            let refused = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(refused.status(), 401, "{path} without the token");
        }
        let answered = client
            .get(format!("{base}/api/runs"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answered.status(), 200);
        let body: Value = answered.json().await.unwrap();
        assert_eq!(body["runs"].as_array().unwrap().len(), 1, "{body}");
        let run = client
            .get(format!("{base}/api/runs/1"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(run.status(), 200);
        let run: Value = run.json().await.unwrap();
        assert_eq!(run["meta"]["run_id"], 1, "{run}");
        // The board books every fill itself: the same equity as the list's, digit for digit.
        assert_eq!(dec(&run["account"]["equity"]), dec(&body["runs"][0]["equity"]), "{run}");
        let missing = client
            .get(format!("{base}/api/runs/99"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    });
    let stopped = app.interrupt();
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
}

/// The runs list and a run's board in headless Chromium (tests/browser/fleet.mjs): skipped
/// loudly without Chromium and Node.js unless NANOTRADER_REQUIRE_BROWSER=1.
#[test]
fn the_fleet_dashboard_works_in_a_real_browser() {
    let Some(scripts) = browser_scripts("fleet_browser") else {
        return;
    };
    let Some(db) = TestDb::create("fleet_browser") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run(&db, dir.path(), "max", &["--short", "3", "--long", "8"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Still writing while the browser watches: 10 bars a second for nearly five minutes.
    let _writer = Killed(
        run(&db, dir.path(), "600", &["--short", "5", "--long", "12"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let app = Running::start(serve(&db, &[]));
    wait_for_list(&app, "both runs listed, one live", |runs| {
        runs.len() == 2 && runs.iter().any(|r| r["live"] == true)
    });
    let screenshot = repo_file("target/fleet.png");
    let args = [app.url.as_ref(), screenshot.as_os_str(), "2".as_ref()];
    let Some(out) = run_browser_script(&scripts.join("fleet.mjs"), &args, Duration::from_secs(180)) else {
        panic!("fleet.mjs did not finish within 180 s\n{}", app.stderr_so_far());
    };
    assert!(
        out.status.success(),
        "the browser test failed against {} (its progress is above):\n{}\n{}",
        app.url,
        stderr(&out),
        app.stderr_so_far()
    );
    assert!(screenshot.is_file());
}
