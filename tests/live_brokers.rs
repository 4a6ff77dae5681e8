//! The brokers that reach Kraken (issue 18), the real binary against the mock exchange on
//! loopback: paper and every refused live broker make zero private requests (counted at the
//! mock); `kraken-validate` journals each order before it leaves, has Kraken check it
//! (`validate=true`, nothing placed) and fills on paper only what Kraken accepted.
//!
//! Every wait is for a condition, up to a generous ceiling: a loaded machine only makes the
//! tests slower.

mod common;
use common::pg::TestDb;
use common::running::Running;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nanotrader_kraken_mock::{Faults, Limits, MockConfig, MockKraken, PrivateConfig, Tier};
use nanotrader_market::Timestamp;
use rust_decimal::Decimal;

const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";
/// 10 market minutes per wall second: a bar closes every 0.1 s.
const SPEED: f64 = 600.0;
const CEILING: Duration = Duration::from_secs(80);
const KEY: &str = "mock-api-key";
/// Kraken's published example secret (64 bytes, base64).
const SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

async fn start_mock() -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = Decimal::from(10_000);
    account.btc = Decimal::ONE;
    let config = MockConfig {
        speed: SPEED,
        market_start: Some(Timestamp::now()),
        faults: Faults::default(),
        private: Some(account),
        ..MockConfig::new(repo_file(TRADES))
    };
    MockKraken::start(config).await.expect("the mock starts")
}

fn with_keys(mut cmd: Command) -> Command {
    cmd.env("KRAKEN_API_KEY", KEY).env("KRAKEN_API_SECRET", SECRET);
    cmd
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn private_calls(mock: &MockKraken) -> u64 {
    mock.private_calls().values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_and_refused_live_brokers_make_no_private_request() {
    let mock = start_mock().await;
    let dir = tempfile::tempdir().unwrap();

    // Real money without --confirm-live: one line, exit 2, before any private request.
    let mut cmd = with_keys(kraken_run(dir.path(), &mock));
    cmd.args(["--broker", "kraken", "--no-web"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--confirm-live") && err.trim().lines().count() == 1,
        "{err}"
    );

    // Missing keys: one line naming the variables, exit 2.
    let mut cmd = kraken_run(dir.path(), &mock);
    cmd.args(["--broker", "kraken-validate", "--no-web"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("KRAKEN_API_KEY"), "{}", stderr(&out));

    // Malformed keys: refused the same way, and the secret is never echoed.
    let mut cmd = kraken_run(dir.path(), &mock);
    cmd.args(["--broker", "kraken-validate", "--no-web"])
        .env("KRAKEN_API_KEY", KEY)
        .env("KRAKEN_API_SECRET", "not base64 at all!");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not base64 at all"), "{}", stderr(&out));

    // Stops at the exchange on paper: refused, paper has no exchange to hold them.
    let mut cmd = with_keys(kraken_run(dir.path(), &mock));
    cmd.args(["--stops", "exchange", "--stop-loss", "2%", "--no-web"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--stops exchange") && err.trim().lines().count() == 1,
        "{err}"
    );

    // A live broker on a replay: refused, it has no live market.
    let mut cmd = with_keys(bin());
    cmd.arg("--data-dir")
        .arg(dir.path())
        .args(["run", "--broker", "kraken-validate", "--no-web"]);
    cmd.arg("--data")
        .arg(repo_file("tests/data/btcusd_trades_kraken_20190701.csv"));
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--source kraken"), "{}", stderr(&out));

    // Paper, with keys in the environment and a strategy that trades every few bars: it reads
    // no key and sends nothing private.
    let mut cmd = with_keys(kraken_run(dir.path(), &mock));
    cmd.args([
        "--short",
        "1",
        "--long",
        "2",
        "--sizing",
        "fixed:0.001",
        "--status-secs",
        "1",
    ]);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for(
        "paper fills",
        &mut running,
        |at| fills(at) >= 2,
        &At::sqlite(dir.path()),
    )
    .await;
    tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    assert_eq!(private_calls(&mock), 0, "{:?}", mock.private_calls());
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kraken_validate_has_kraken_check_each_order_and_fills_only_those_on_paper() {
    let dir = tempfile::tempdir().unwrap();
    kraken_validate_case(&At::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kraken_validate_journals_in_postgres_as_in_sqlite() {
    let Some(db) = TestDb::create("validate_pg") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let at = At::pg(dir.path(), &db);
    kraken_validate_case(&at).await;
    // The ids this run reserved and never used were retired at its stop: nothing to look up.
    assert_eq!(db.reserved(), 0);
    // The run says which broker it traded through (the fleet dashboard's broker column).
    assert_eq!(db.venues(), ["kraken-validate"]);
}

async fn kraken_validate_case(at: &At) {
    let mock = start_mock().await;
    let mut cmd = with_keys(at.run(kraken_run(&at.dir, &mock)));
    cmd.args([
        "--broker",
        "kraken-validate",
        "--short",
        "1",
        "--long",
        "2",
        "--sizing",
        "fixed:0.001",
        "--status-secs",
        "1",
    ]);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for("validated fills", &mut running, |at| fills(at) >= 3, at).await;
    let stopped = tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    let log = String::from_utf8_lossy(&stopped.stderr).to_string();
    assert!(log.contains("kraken-validate"), "the broker says what it does: {log}");
    assert!(!log.contains(SECRET) && !log.contains(KEY), "no key in the log");

    // Nothing placed; every AddOrder was a validation; every fill is a validated order.
    assert!(mock.placed_orders().is_empty(), "validate places nothing");
    let journal = journal(at);
    let add_orders = mock.private_calls().get("AddOrder").copied().unwrap_or(0) as usize;
    assert_eq!(
        add_orders,
        journal.len(),
        "one AddOrder per journaled order: {journal:?}"
    );
    assert!(journal.iter().all(|(_, validate, _)| *validate), "{journal:?}");
    let validated = journal.iter().filter(|(state, _, _)| state == "validated").count();
    assert_eq!(validated, fills(at), "the paper fills are the validated orders");
    // Client ids are UUIDs, one per order.
    let mut ids: Vec<&str> = journal.iter().map(|(_, _, id)| id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), journal.len());
    assert!(
        ids.iter().all(|id| id.len() == 36 && id.matches('-').count() == 4),
        "{ids:?}"
    );
    mock.shutdown().await;
}

/// Where a test's run stores: the SQLite file in its data directory, or a PostgreSQL database
/// (`NANOTRADER_DB_URL`, the data directory then holding only the key's nonces).
#[derive(Clone)]
struct At {
    dir: PathBuf,
    db_url: Option<String>,
}

impl At {
    fn sqlite(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            db_url: None,
        }
    }

    fn pg(dir: &Path, db: &TestDb) -> Self {
        Self {
            dir: dir.to_owned(),
            db_url: Some(db.url()),
        }
    }

    /// `cmd` storing here.
    fn run(&self, mut cmd: Command) -> Command {
        if let Some(url) = &self.db_url {
            cmd.env("NANOTRADER_DB_URL", url);
        }
        cmd
    }

    fn pg_client(&self) -> Option<postgres::Client> {
        self.db_url
            .as_ref()
            .map(|url| postgres::Client::connect(url, postgres::NoTls).expect("the test database answers"))
    }

    fn sqlite_conn(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.dir.join("nanotrader.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// Rows of `sql` (every column text), from whichever store.
    fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        pg::off_runtime(|| self.rows_here(sql))
    }

    fn rows_here(&self, sql: &str) -> Vec<Vec<String>> {
        match self.pg_client() {
            Some(mut client) => client
                .query(sql, &[])
                .unwrap()
                .iter()
                .map(|r| (0..r.len()).map(|i| r.get::<_, String>(i)).collect())
                .collect(),
            None => {
                let conn = self.sqlite_conn();
                let mut stmt = conn.prepare(sql).unwrap();
                let width = stmt.column_count();
                stmt.query_map([], |r| (0..width).map(|i| r.get::<_, String>(i)).collect())
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
        }
    }
}

impl TestDb {
    /// The broker of each stored run (`venue` in its stored settings), by run id.
    fn venues(&self) -> Vec<String> {
        pg::off_runtime(|| {
            self.client()
                .query("SELECT config FROM runs ORDER BY id", &[])
                .unwrap()
                .iter()
                .map(|r| {
                    let config: serde_json::Value = serde_json::from_str(r.get(0)).unwrap();
                    config["venue"].as_str().unwrap_or("missing").to_owned()
                })
                .collect()
        })
    }

    /// Client ids still reserved (none after a clean stop).
    fn reserved(&self) -> i64 {
        pg::off_runtime(|| {
            self.client()
                .query_one("SELECT count(*) FROM exchange_orders WHERE state = 'reserved'", &[])
                .unwrap()
                .get(0)
        })
    }
}

/// The run's fills as `fills --csv` exports them.
fn fills(at: &At) -> usize {
    let mut cmd = at.run(bin());
    cmd.arg("--data-dir").arg(&at.dir).args(["fills", "--csv"]);
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return 0;
    }
    stdout(&out).lines().count().saturating_sub(1)
}

/// The journal of orders sent to Kraken: (state, validate, cl_ord_id), read with sqlite or psql
/// as a person would.
fn journal(at: &At) -> Vec<(String, bool, String)> {
    let validate = if at.db_url.is_some() {
        "CASE WHEN validate THEN '1' ELSE '0' END"
    } else {
        "CAST(validate AS TEXT)"
    };
    at.rows(&format!(
        "SELECT state, {validate}, cl_ord_id FROM exchange_orders WHERE state NOT IN ('reserved', 'retired')
         ORDER BY order_id, ts"
    ))
    .into_iter()
    .map(|row| (row[0].clone(), row[1] == "1", row[2].clone()))
    .collect()
}

async fn wait_for(what: &str, running: &mut Running, done: fn(&At) -> bool, at: &At) {
    let deadline = Instant::now() + CEILING;
    loop {
        let owned = at.clone();
        // The check runs the binary: off the runtime's threads, which serve the mock.
        if tokio::task::spawn_blocking(move || done(&owned)).await.unwrap() {
            return;
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!(
                "{what}: the run stopped by itself ({status}):\n{}",
                running.stderr_so_far()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {CEILING:?}:\n{}",
            running.stderr_so_far()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_webhook_and_its_secret_is_never_shown() {
    let (url, got) = webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(dir.path()).args([
        "run",
        "--data",
        "tests/data/btcusd_trades_kraken_20190701.csv",
        "--no-web",
        "--notify-url",
        &url,
    ]);
    cmd.current_dir(repo_file(""));
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out) + &stdout(&out);
    assert!(
        !log.contains("s3cr3t-w3bh00k-t0k3n"),
        "the webhook's secret is redacted: {log}"
    );
    let events = got.lock().unwrap().clone();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"stopped"), "{kinds:?}");
    let fills = nanotrader(dir.path(), &["fills", "--csv"]);
    let stored = stdout(&fills).lines().count() - 1;
    assert!(stored > 0);
    assert_eq!(
        kinds.iter().filter(|k| **k == "fill").count(),
        stored,
        "one alert per fill"
    );
    let first_fill = events.iter().find(|e| e["event"] == "fill").unwrap();
    assert!(
        first_fill["price"].is_string() && first_fill["qty"].is_string(),
        "exact amounts: {first_fill}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_orders_are_placed_once_and_the_books_are_the_exchanges() {
    // Partial fills (each order as three trades); the first order's answer is lost after it was
    // placed, the second gets a 500.
    let faults = Faults {
        lose_addorder_reply: 1,
        addorder_http_500: 1,
        ..Faults::default()
    };
    let dir = tempfile::tempdir().unwrap();
    real_orders_case(faults, &At::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_orders_through_a_postgres_journal_are_placed_once_and_the_books_are_the_exchanges() {
    let Some(db) = TestDb::create("real_orders_pg") else {
        return;
    };
    let faults = Faults {
        lose_addorder_reply: 1,
        addorder_http_500: 1,
        ..Faults::default()
    };
    let dir = tempfile::tempdir().unwrap();
    real_orders_case(faults, &At::pg(dir.path(), &db)).await;
    assert_eq!(db.reserved(), 0, "unused ids retired at the stop");
}

async fn real_orders_case(faults: Faults, at: &At) {
    let mock = start_live_mock(faults, 3, SPEED).await;
    let mut cmd = at.run(live_run(&at.dir, &mock));
    cmd.args(["--status-secs", "1"]);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for("real fills", &mut running, |at| fills(at) >= 4, at).await;
    let stopped = tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    let log = String::from_utf8_lossy(&stopped.stderr).to_string();
    assert!(log.contains("REAL orders"), "{log}");
    assert!(!log.contains(SECRET), "no secret in the log");

    let journal = assert_placed_once(&mock, at);
    assert_eq!(mock.private_calls()["AddOrder"], journal.len() as u64, "{journal:?}");
    assert!(
        journal
            .iter()
            .all(|(state, validate, _)| !validate && state == "closed"),
        "{journal:?}"
    );
    // The fills came on the authenticated WebSocket: no order had to be read over REST.
    assert!(log.contains("Kraken's private feed is up"), "{log}");
    let calls = mock.private_calls();
    assert!(calls.get("GetWebSocketsToken").copied().unwrap_or(0) >= 1, "{calls:?}");
    assert_eq!(calls.get("QueryOrders").copied().unwrap_or(0), 0, "{calls:?}");
    let executions = assert_books_are_the_exchanges(&mock, at);
    // `fills --csv` lists each partial fill with Kraken's order and trade ids.
    let mut cmd = at.run(bin());
    cmd.arg("--data-dir").arg(&at.dir).args(["fills", "--csv"]);
    let out = cmd.output().unwrap();
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("ts,side,qty,price,fee,cash_after,position_after,order_id,trade_id")
    );
    let mut exported: Vec<Trade> = lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            (f[8].to_owned(), f[7].to_owned(), dec(f[2]), dec(f[3]), dec(f[4]))
        })
        .collect();
    exported.sort();
    assert_eq!(exported, executions, "one row per exchange trade, with its ids");
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_orders_rest_post_only_at_the_best_price_and_end_by_fill_cancel_or_fallback() {
    let mock = start_live_mock(Faults::default(), 1, SPEED).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = live_run(dir.path(), &mock);
    cmd.args([
        "--order-type",
        "limit",
        "--limit-timeout-secs",
        "2",
        "--status-secs",
        "1",
    ]);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for(
        "limit fills",
        &mut running,
        |at| fills(at) >= 2,
        &At::sqlite(dir.path()),
    )
    .await;
    let stopped = tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    let log = String::from_utf8_lossy(&stopped.stderr).to_string();
    let placed = mock.placed_orders();
    let limits: Vec<_> = placed.iter().filter(|o| o.price.is_some()).collect();
    assert!(!limits.is_empty(), "{placed:?}");
    assert!(limits.iter().all(|o| o.post_only), "post-only: {placed:?}");
    // Priced on the tick.
    assert!(
        limits
            .iter()
            .all(|o| (o.price.unwrap() * Decimal::from(10)).fract().is_zero()),
        "{placed:?}"
    );
    let journal = assert_placed_once(&mock, &At::sqlite(dir.path()));
    // Stopping cancelled what rested: nothing is left open.
    assert!(
        journal
            .iter()
            .all(|(state, _, _)| state != "placed" && state != "sending"),
        "{journal:?}\n{log}"
    );
    assert!(mock.private_calls().get("CancelAllOrdersAfter").copied().unwrap_or(0) >= 1);
    assert_books_are_the_exchanges(&mock, &At::sqlite(dir.path()));
    mock.shutdown().await;
}

/// A dashboard control (pause, resume, flatten), as the page sends it.
async fn control(base: &str, action: &str) -> serde_json::Value {
    common::http()
        .post(format!("{base}/api/control/{action}"))
        .header("X-Nanotrader-Control", "1")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_flatten_work_live_and_flatten_sells_at_the_exchange() {
    let mock = start_live_mock(Faults::default(), 2, SPEED).await;
    let dir = tempfile::tempdir().unwrap();
    let running = tokio::task::spawn_blocking({
        let cmd = live_run(dir.path(), &mock);
        move || Running::start(cmd)
    })
    .await
    .unwrap();
    let base = running.url.clone();
    let btc = || mock.balances().get("XXBT").copied().unwrap_or_default();
    // Long at the exchange, then paused so the strategy trades no more.
    let deadline = Instant::now() + CEILING;
    loop {
        assert!(Instant::now() < deadline, "a position to flatten");
        if btc() > Decimal::ZERO {
            let reply = control(&base, "pause").await;
            assert_eq!(reply["paused"], true, "{reply}");
            if btc() > Decimal::ZERO && mock.placed_orders().iter().all(|o| o.vol_exec == o.volume) {
                break;
            }
            control(&base, "resume").await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let placed = mock.placed_orders().len();
    let reply = control(&base, "flatten").await;
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sells the whole position"),
        "{reply}"
    );
    while btc() > Decimal::ZERO || fills(&At::sqlite(dir.path())) == 0 {
        assert!(Instant::now() < deadline + CEILING, "the flatten fills at the exchange");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.placed_orders().len(), placed + 1, "one sell sent");
    assert_eq!(mock.placed_orders().last().unwrap().side, nanotrader_market::Side::Sell);
    // Paused: no order of the strategy's after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.placed_orders().len(), placed + 1);
    let _ = tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    assert_placed_once(&mock, &At::sqlite(dir.path()));
    assert_books_are_the_exchanges(&mock, &At::sqlite(dir.path()));
    mock.shutdown().await;
}

/// A trade as (trade id, order id, volume, price, fee).
type Trade = (String, String, Decimal, Decimal, Decimal);

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The mock with a 10,000 USD account on a pro tier (each real order costs about six calls on
/// the private API counter: at 600x market speed only a pro account keeps up), orders executing
/// as `fill_parts` trades, and `faults`. The hour of trades lasts 3,600 / `speed` seconds.
async fn start_live_mock(faults: Faults, fill_parts: u32, speed: f64) -> MockKraken {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = Decimal::from(10_000);
    account.fill_parts = fill_parts;
    account.limits = Limits::tier(Tier::Pro);
    let config = MockConfig {
        speed,
        market_start: Some(Timestamp::now()),
        faults,
        private: Some(account),
        ..MockConfig::new(repo_file(TRADES))
    };
    MockKraken::start(config).await.expect("the mock starts")
}

/// `run --broker kraken --confirm-live` against the mock, 0.001 BTC an order.
fn live_run(dir: &Path, mock: &MockKraken) -> Command {
    let mut cmd = with_keys(kraken_run(dir, mock));
    cmd.args([
        "--broker",
        "kraken",
        "--confirm-live",
        "--kraken-tier",
        "pro",
        "--sizing",
        "fixed:0.001",
    ]);
    cmd
}

/// No client id placed twice, and the journal says placed (or closed, its trades all recorded)
/// exactly for the placed orders. The journal, for more checks.
fn assert_placed_once(mock: &MockKraken, at: &At) -> Vec<(String, bool, String)> {
    let placed = mock.placed_orders();
    let mut ids: Vec<String> = placed.iter().filter_map(|o| o.cl_ord_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), placed.len(), "no client id placed twice");
    // No order past the 100 USD rail (checked at the decision's price; filled near it).
    for order in &placed {
        let cost: Decimal = mock
            .executions()
            .iter()
            .filter(|e| e.order_id == order.txid)
            .map(|e| e.cost)
            .sum();
        assert!(cost <= Decimal::from(100), "{order:?} filled for {cost}");
    }
    let journal = journal(at);
    assert_eq!(
        journal
            .iter()
            .filter(|(state, _, _)| state == "placed" || state == "closed")
            .count(),
        placed.len(),
        "{journal:?}"
    );
    journal
}

/// The stored trades are the exchange's executions, exactly (stored as Kraken wrote them, e.g.
/// "10863.30000", equal as numbers); the last stored account is the exchange's balances,
/// exactly. The executions, sorted, for more checks.
fn assert_books_are_the_exchanges(mock: &MockKraken, at: &At) -> Vec<Trade> {
    // PostgreSQL's numeric read as text, as psql shows it.
    let text = |column: &str| {
        if at.db_url.is_some() {
            format!("{column}::text")
        } else {
            column.to_owned()
        }
    };
    let stored: Vec<Trade> = at
        .rows(&format!(
            "SELECT trade_id, txid, {}, {}, {} FROM exchange_fills ORDER BY trade_id",
            text("qty"),
            text("price"),
            text("fee")
        ))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), dec(&r[2]), dec(&r[3]), dec(&r[4])))
        .collect();
    let mut executions: Vec<Trade> = mock
        .executions()
        .into_iter()
        .map(|e| (e.trade_id, e.order_id, e.qty, e.price, e.fee))
        .collect();
    executions.sort();
    assert_eq!(stored, executions);
    let last = at.rows(&format!(
        "SELECT {}, {} FROM fills ORDER BY order_id DESC LIMIT 1",
        text("cash_after"),
        text("position_after")
    ));
    let (cash, position) = (&last[0][0], &last[0][1]);
    let balances = mock.balances();
    assert_eq!(dec(cash), balances["ZUSD"]);
    assert_eq!(dec(position), balances["XXBT"]);
    executions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_killed_at_random_moments_places_nothing_twice_and_keeps_the_exchanges_books() {
    let dir = tempfile::tempdir().unwrap();
    killed_live_case(&At::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_on_postgres_killed_at_random_moments_places_nothing_twice_and_keeps_the_exchanges_books() {
    let Some(db) = TestDb::create("killed_live_pg") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    killed_live_case(&At::pg(dir.path(), &db)).await;
}

async fn killed_live_case(at: &At) {
    use rand::{Rng, SeedableRng};
    let mock = start_live_mock(Faults::default(), 2, SPEED).await;
    let command = |mock: &MockKraken| {
        let mut cmd = at.run(live_run(&at.dir, mock));
        cmd.arg("--no-web");
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(18);
    let mut placed_before = 0;
    for round in 0..3 {
        let mut child = command(&mock).spawn().unwrap();
        // Until this round has placed an order, then a random moment more, then kill -9.
        let deadline = Instant::now() + CEILING;
        while mock.placed_orders().len() <= placed_before {
            assert!(Instant::now() < deadline, "round {round}: no order placed");
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: the run stopped by itself"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..400))).await;
        child.kill().unwrap();
        let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();
        placed_before = mock.placed_orders().len();
    }
    // A last start reconciles what the kills left unfinished, then is killed too.
    let mut cmd = command(&mock);
    cmd.env("NANOTRADER_NO_WEB", "true");
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + CEILING;
    // Reconciled: nothing unfinished, and every placed order journaled as placed (one sent under
    // a reserved id just before a kill is journaled only once the start has found it).
    let unfinished = |journal: &[(String, bool, String)]| {
        journal
            .iter()
            .any(|(state, _, _)| state == "sending" || state == "unknown" || state == "placed")
            || journal.iter().filter(|(state, _, _)| state == "closed").count() < mock.placed_orders().len()
    };
    while unfinished(&journal(at)) {
        assert!(Instant::now() < deadline, "reconciled: {:?}", journal(at));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await.unwrap();

    let journal = assert_placed_once(&mock, at);
    assert_eq!(
        mock.private_calls()["AddOrder"] as usize,
        journal.len(),
        "each journaled order sent once"
    );
    // Each decision sent once: an entry taken again on the bars a restart replays (its step was
    // killed before it was stored) is not a second buy.
    let sides: Vec<_> = mock.placed_orders().iter().map(|o| o.side).collect();
    assert!(
        sides.windows(2).all(|w| w[0] != w[1]),
        "entries and exits alternate: {sides:?}"
    );
    // Every execution at the exchange is in the store, exactly once.
    let stored = at.rows("SELECT trade_id FROM exchange_fills");
    assert_eq!(stored.len(), mock.executions().len());
    if at.db_url.is_some() {
        assert!(!at.dir.join("nanotrader.sqlite").exists(), "all of it in PostgreSQL");
    }
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_kraken_refuses_is_an_alert() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut account = PrivateConfig::new(KEY, SECRET);
    account.usd = Decimal::from(10_000);
    account.btc = Decimal::ONE;
    let config = MockConfig {
        speed: SPEED,
        market_start: Some(Timestamp::now()),
        // The first private call, the first order's validation, is refused.
        faults: Faults {
            service_unavailable: 1,
            ..Faults::default()
        },
        private: Some(account),
        ..MockConfig::new(repo_file(TRADES))
    };
    let mock = MockKraken::start(config).await.expect("the mock starts");
    let (url, got) = webhook_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = with_keys(kraken_run(dir.path(), &mock));
    cmd.args([
        "--broker",
        "kraken-validate",
        "--short",
        "1",
        "--long",
        "2",
        "--sizing",
        "fixed:0.001",
        "--notify-url",
        &url,
    ]);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for(
        "a validated fill after the refusal",
        &mut running,
        |at| fills(at) >= 1,
        &At::sqlite(dir.path()),
    )
    .await;
    tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    let events = got.lock().unwrap().clone();
    let rejected: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "order_rejected").collect();
    assert_eq!(rejected.len(), 1, "{events:?}");
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("EService:Unavailable"),
        "{events:?}"
    );
    let journal = journal(&At::sqlite(dir.path()));
    assert_eq!(rejected[0]["cl_ord_id"].as_str(), Some(journal[0].2.as_str()));
    mock.shutdown().await;
}

/// A live run under one private fault: it keeps trading, nothing is placed twice, the stored
/// trades are the exchange's executions and the account is its balances.
/// `speed`: the hour of trades lasts 3,600 / speed seconds of wall time, and a fault that costs
/// the run seconds (a read asked again a second later) needs a slower market to leave time for
/// a few crossings.
async fn live_fault_case(faults: Faults, speed: f64) {
    let mock = start_live_mock(faults, 1, speed).await;
    let dir = tempfile::tempdir().unwrap();
    let cmd = live_run(dir.path(), &mock);
    let mut running = tokio::task::spawn_blocking(move || Running::start(cmd)).await.unwrap();
    wait_for("real fills", &mut running, |at| fills(at) >= 2, &At::sqlite(dir.path())).await;
    tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    assert_placed_once(&mock, &At::sqlite(dir.path()));
    assert_books_are_the_exchanges(&mock, &At::sqlite(dir.path()));
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_through_invalid_nonces_places_each_order_once() {
    live_fault_case(
        Faults {
            invalid_nonce: 3,
            ..Faults::default()
        },
        SPEED,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_through_an_unavailable_exchange_places_each_order_once() {
    // Balance at start is asked three times more, a second apart.
    live_fault_case(
        Faults {
            service_unavailable: 3,
            ..Faults::default()
        },
        120.0,
    )
    .await;
}

/// `--stops exchange` (issue 20): the entry's stop-loss rests at Kraken as a real order; a bot
/// killed (-9) with it resting adopts it at the next start instead of placing it again, and
/// shows it on the dashboard; a stop that fills while the bot is down is recorded from the
/// exchange's trades, once. The strategy enters at the first bar and never exits by itself, so
/// every exit is the stop's; 1 % under the entry is reached in the tape's fifth or sixth minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_on_the_exchange_survives_a_kill_is_adopted_once_and_its_fill_recorded_once() {
    use nanotrader_kraken_mock::{OrderStatus, OrderType};
    // One market minute every six wall seconds: time to kill and restart before the stop fills.
    let mock = start_live_mock(Faults::default(), 2, 10.0).await;
    let dir = tempfile::tempdir().unwrap();
    let at = At::sqlite(dir.path());
    let strategy = dir.path().join("hold.toml");
    std::fs::write(
        &strategy,
        "name = \"hold\"\nentry = \"close > 0\"\nexit = \"close < 0\"\n",
    )
    .unwrap();
    let command = || {
        let mut cmd = live_run(dir.path(), &mock);
        cmd.arg("--strategy-file").arg(&strategy).args([
            "--stops",
            "exchange",
            "--stop-loss",
            "1%",
            "--take-profit",
            "5%",
            "--status-secs",
            "1",
        ]);
        cmd
    };
    let stops = |mock: &MockKraken| -> Vec<nanotrader_kraken_mock::PlacedOrder> {
        mock.placed_orders()
            .into_iter()
            .filter(|o| o.order_type == OrderType::StopLoss)
            .collect()
    };
    let deadline = Instant::now() + CEILING;

    // 1. The entry fills, then its stop-loss rests at Kraken for the bought volume.
    let running = tokio::task::spawn_blocking({
        let cmd = command();
        move || Running::start(cmd)
    })
    .await
    .unwrap();
    // Killed once the stop rests and the entry's fill is stored (a kill before that is the
    // crash tests' business: the run would not know it is long).
    loop {
        let stored = {
            let at = at.clone();
            tokio::task::spawn_blocking(move || fills(&at) >= 1).await.unwrap()
        };
        if stored && stops(&mock).iter().any(|o| o.status == OrderStatus::Open) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a resting stop-loss: {}",
            running.stderr_so_far()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop = stops(&mock).remove(0);
    assert_eq!((stop.side, stop.volume), (nanotrader_market::Side::Sell, dec("0.001")));
    let entry = mock
        .placed_orders()
        .into_iter()
        .find(|o| o.order_type == OrderType::Market)
        .expect("the entry");
    assert_eq!(entry.vol_exec, dec("0.001"), "placed after the entry filled");
    // 1 % under the entry's bar close, on the pair's tick.
    let trigger = stop.trigger.expect("a trigger").price;
    let bought = mock.executions()[0].price;
    assert!(
        trigger > bought * dec("0.98") && trigger < bought,
        "{trigger} for {bought}"
    );
    // The take-profit for the same volume: Kraken holds the volume of the open stop, so it is
    // refused for funds, and the bot watches it.
    assert!(
        mock.placed_orders()
            .iter()
            .all(|o| o.order_type != OrderType::TakeProfit),
        "{:?}",
        mock.placed_orders()
    );
    let mut running = running;
    running.child.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || running.wait(Duration::from_secs(5)))
        .await
        .unwrap();

    // 2. Restarted with the stop resting: adopted, not placed again, and on the dashboard.
    let running = tokio::task::spawn_blocking({
        let cmd = command();
        move || Running::start(cmd)
    })
    .await
    .unwrap();
    let status = loop {
        let (_, status) = {
            let running = &running;
            tokio::task::block_in_place(|| running.get_json("/api/status"))
        };
        let venue = &status["status"]["venue"];
        let adopted = venue["orders"].as_array().is_some_and(|orders| {
            orders
                .iter()
                .any(|o| o["order_type"] == "stop-loss" && o["state"] == "open")
        });
        if adopted {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the stop adopted and shown: {status}\n{}",
            running.stderr_so_far()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        status["status"]["venue"]["stops"], "on Kraken: stop-loss 1%, take-profit 5%",
        "{status}"
    );
    assert!(running.stderr_so_far().contains("adopted, not placed again"));
    let open: Vec<_> = stops(&mock)
        .into_iter()
        .filter(|o| o.status == OrderStatus::Open)
        .collect();
    assert_eq!(open.len(), 1, "exactly one stop at the exchange: {open:?}");
    assert_eq!(stops(&mock).len(), 1, "never placed twice");
    let mut running = running;
    running.child.kill().unwrap();
    let _ = tokio::task::spawn_blocking(move || running.wait(Duration::from_secs(5)))
        .await
        .unwrap();

    // 3. While the bot is down the market falls through the stop: Kraken sells.
    let fell = Instant::now() + CEILING;
    while !mock.executions().iter().any(|e| e.order_id == stop.txid) {
        assert!(Instant::now() < fell, "the stop triggers: {:?}", stops(&mock));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 4. The next start records the stop's trades from the exchange, once; the books are
    // Kraken's; nothing is placed twice.
    let running = tokio::task::spawn_blocking({
        let cmd = command();
        move || Running::start(cmd)
    })
    .await
    .unwrap();
    let recorded = |at: &At| {
        at.rows("SELECT state FROM exchange_orders WHERE state = 'placed' OR state = 'sending'")
            .is_empty()
            && at.rows("SELECT trade_id FROM exchange_fills").len() == mock.executions().len()
            // The entry, and the stop's exit as the run's fill.
            && at.rows("SELECT CAST(order_id AS TEXT) FROM fills").len() == 2
    };
    let later = Instant::now() + CEILING;
    while !recorded(&at) {
        assert!(Instant::now() < later, "reconciled: {}", running.stderr_so_far());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stopped = tokio::task::spawn_blocking(move || running.interrupt()).await.unwrap();
    let log = String::from_utf8_lossy(&stopped.stderr).to_string();
    assert!(log.contains("filled at Kraken while the bot was down"), "{log}");
    assert_eq!(stops(&mock).len(), 1, "one stop-loss ever placed");
    let stop_trades = at.rows(&format!(
        "SELECT trade_id FROM exchange_fills WHERE txid = '{}'",
        stop.txid
    ));
    let executed: Vec<_> = mock
        .executions()
        .into_iter()
        .filter(|e| e.order_id == stop.txid)
        .collect();
    assert_eq!(stop_trades.len(), executed.len(), "each of the stop's trades once");
    assert_placed_once(&mock, &at);
    assert_eq!(
        mock.balances()["XXBT"],
        Decimal::ZERO,
        "the stop sold the position, once"
    );
    // The run's books: its last fill (the stop's exit) ends at Kraken's balances.
    assert_books_are_the_exchanges(&mock, &at);
    mock.shutdown().await;
}
