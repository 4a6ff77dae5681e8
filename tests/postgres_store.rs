//! The PostgreSQL store (`--db-url postgres://...`) against a real server: the same fills and
//! bars as SQLite, a run killed with -9 and resumed ends with exactly the uninterrupted run's
//! fills, one writer per run (a second claimant refused while the first runs; a dead process's
//! claim free at once), and psql reading the values and times as they are.
//!
//! Each test has a database of its own, created and dropped here. With no server at
//! 127.0.0.1:5432 (or `NANOTRADER_TEST_PG`, a URL without database) the tests are skipped with a
//! loud message, unless `NANOTRADER_REQUIRE_POSTGRES=1` (CI) makes that a failure.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::*;

const DATA: &str = "assets/btcusd_1m_20170903_20170904.csv";
/// A strategy that trades often, with a fee, so exact decimals with many digits are stored.
const FEES: &[&str] = &[
    "--short",
    "3",
    "--long",
    "8",
    "--fee-rate",
    "0.0026",
    "--sizing",
    "fraction:0.5",
];

/// `nanotrader --db-url URL ARGS` (a data directory of its own too, which it must not need).
fn pg(db: &TestDb, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(dir).arg("--db-url").arg(db.url()).args(args);
    cmd
}

fn output(mut cmd: Command) -> Output {
    cmd.output().expect("the nanotrader binary runs")
}

fn run_args<'a>(data: &'a str, speed: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "--data", data, "--speed", speed, "--no-web", "-q"];
    args.extend_from_slice(extra);
    args
}

fn spawn(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanotrader starts")
}

/// `fills --csv` or `bars --csv` of the latest run, whole text.
fn export(db: &TestDb, dir: &Path, what: &str) -> String {
    let out = output(pg(db, dir, &[what, "--csv"]));
    assert!(out.status.success(), "{what} --csv from PostgreSQL: {}", stderr(&out));
    stdout(&out)
}

/// Stored fills of the latest run, or none while the store or its run does not exist yet.
fn stored_fills(db: &TestDb, dir: &Path) -> Option<usize> {
    let out = output(pg(db, dir, &["fills", "--csv"]));
    out.status
        .success()
        .then(|| stdout(&out).lines().count().saturating_sub(1))
}

fn wait_for_fills(db: &TestDb, dir: &Path, child: &mut Child, min_fills: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        if stored_fills(db, dir).is_some_and(|n| n >= min_fills) {
            return;
        }
        assert!(Instant::now() < deadline, "no progress in 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sqlite_export(dir: &Path, what: &str) -> String {
    let out = nanotrader(dir, &[what, "--csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn a_replay_into_postgres_stores_exactly_the_fills_and_bars_of_sqlite() {
    let Some(db) = TestDb::create("same_as_sqlite") else {
        return;
    };
    let data_2017 = repo_file(DATA).display().to_string();
    let data_2018 = repo_file("tests/data/btcusd_1m_20180404_20180406.csv")
        .display()
        .to_string();
    for (data, extra) in [(&data_2017, &["--preset", "seed"][..]), (&data_2018, FEES)] {
        let lite = tempfile::tempdir().unwrap();
        let out = nanotrader(lite.path(), &run_args(data, "max", extra));
        assert!(out.status.success(), "{}", stderr(&out));
        let dir = tempfile::tempdir().unwrap();
        let out = output(pg(&db, dir.path(), &run_args(data, "max", extra)));
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            export(&db, dir.path(), "fills"),
            sqlite_export(lite.path(), "fills"),
            "{data}"
        );
        assert_eq!(
            export(&db, dir.path(), "bars"),
            sqlite_export(lite.path(), "bars"),
            "{data}"
        );
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "a PostgreSQL run leaves the data directory alone"
        );
    }
    // A second run on the same data shares its bar series: its bars are met already stored (the
    // writer's COPY gives way to INSERT .. ON CONFLICT DO NOTHING) and its fills are the same.
    let dir = tempfile::tempdir().unwrap();
    let first_fills = export(&db, dir.path(), "fills");
    let mut again = run_args(&data_2018, "max", FEES);
    again.push("--fresh");
    let out = output(pg(&db, dir.path(), &again));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nanotrader run 3 completed"), "{}", stdout(&out));
    assert_eq!(export(&db, dir.path(), "fills"), first_fills);
    let runs = stdout(&output(pg(&db, Path::new("."), &["runs"])));
    assert_eq!(runs.matches("completed").count(), 3, "{runs}");
}

#[test]
fn a_run_killed_mid_replay_resumes_with_exactly_the_fills_of_an_uninterrupted_run() {
    let Some(reference_db) = TestDb::create("kill_reference") else {
        return;
    };
    let Some(db) = TestDb::create("kill_resume") else {
        return;
    };
    let data = repo_file(DATA).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = output(pg(&reference_db, dir.path(), &run_args(&data, "max", FEES)));
    assert!(out.status.success(), "{}", stderr(&out));
    let expected_fills = export(&reference_db, dir.path(), "fills");
    let expected_bars = export(&reference_db, dir.path(), "bars");
    let expected: Vec<&str> = expected_fills.lines().collect();
    assert!(expected.len() > 100, "the strategy trades often: {}", expected.len());

    // 2,880 one-minute bars at 12,000x take about 14 s: room for several kills mid-run.
    for min_fills in [10, 40, 90] {
        let mut child = spawn(pg(&db, dir.path(), &run_args(&data, "12000", FEES)));
        wait_for_fills(&db, dir.path(), &mut child, min_fills);
        child.kill().unwrap(); // SIGKILL: no flush, no clean-up
        child.wait().unwrap();
        let stored = export(&db, dir.path(), "fills");
        let stored: Vec<&str> = stored.lines().collect();
        assert!(stored.len() > min_fills);
        assert_eq!(
            stored,
            expected[..stored.len()],
            "the stored fills are a prefix of the uninterrupted run's"
        );
    }
    let out = output(pg(&db, dir.path(), &run_args(&data, "max", FEES)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("completed"), "{}", stdout(&out));
    assert_eq!(
        export(&db, dir.path(), "fills"),
        expected_fills,
        "no fill lost or repeated"
    );
    assert_eq!(
        export(&db, dir.path(), "bars"),
        expected_bars,
        "no bar lost or repeated"
    );
    let runs = stdout(&output(pg(&db, dir.path(), &["runs"])));
    assert_eq!(runs.lines().count(), 2, "one run, resumed each time:\n{runs}");
}

/// At full speed the writer is always inside its next transaction (thousands of bars each): a
/// kill there must leave the last committed one and nothing of the next.
#[test]
fn runs_killed_at_full_speed_mid_transaction_resume_exactly() {
    let Some(reference_db) = TestDb::create("max_reference") else {
        return;
    };
    let Some(db) = TestDb::create("max_resume") else { return };
    let work = tempfile::tempdir().unwrap();
    let long = work.path().join("long.csv");
    repeat_bars(&repo_file("tests/data/btcusd_1m_20180404_20180406.csv"), &long, 100_000);
    let data = long.display().to_string();
    let out = output(pg(&reference_db, work.path(), &run_args(&data, "max", FEES)));
    assert!(out.status.success(), "{}", stderr(&out));
    let expected_fills = export(&reference_db, work.path(), "fills");
    let expected: Vec<&str> = expected_fills.lines().collect();
    let bars_seen = |db: &TestDb| -> i64 {
        db.client()
            .query_opt("SELECT bars_seen FROM runs ORDER BY id DESC LIMIT 1", &[])
            .ok()
            .flatten()
            .map_or(0, |r| r.get(0))
    };
    let mut before = 0;
    for kill in 0..3 {
        let mut child = spawn(pg(&db, work.path(), &run_args(&data, "max", FEES)));
        let deadline = Instant::now() + Duration::from_secs(120);
        // Killed once it has stored more than at the last kill: while it writes the next batch.
        while bars_seen(&db) <= before {
            assert!(
                child.try_wait().unwrap().is_none(),
                "start {kill} ended before it was killed"
            );
            assert!(Instant::now() < deadline, "no progress in 120 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let seen = bars_seen(&db);
        assert!(seen > before && seen < 100_000, "killed mid-run: {seen} bars");
        before = seen;
        let stored = export(&db, work.path(), "fills");
        let stored: Vec<&str> = stored.lines().collect();
        assert_eq!(
            stored,
            expected[..stored.len()],
            "a prefix of the uninterrupted run's fills"
        );
        let bars: i64 = db.client().query_one("SELECT count(*) FROM bars", &[]).unwrap().get(0);
        assert_eq!(bars, seen, "exactly the bars the run says it processed");
    }
    let out = output(pg(&db, work.path(), &run_args(&data, "max", FEES)));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        export(&db, work.path(), "fills"),
        expected_fills,
        "no fill lost or repeated"
    );
    assert_eq!(
        export(&db, work.path(), "bars"),
        export(&reference_db, work.path(), "bars"),
        "no bar lost or repeated"
    );
}

#[test]
fn a_second_claimant_is_refused_while_the_first_runs_and_a_dead_claim_is_free_at_once() {
    let Some(db) = TestDb::create("claim") else { return };
    let data = repo_file(DATA).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Paced to last minutes: it is killed long before.
    let mut first = spawn(pg(&db, dir.path(), &run_args(&data, "600", FEES)));
    wait_for_fills(&db, dir.path(), &mut first, 1);
    assert_eq!(db.claims(), 1, "the running run is claimed");

    let second = output(pg(&db, dir.path(), &run_args(&data, "600", FEES)));
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    let err = stderr(&second);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("run 1 in postgres://") && err.contains("being written by another nanotrader process"),
        "{err}"
    );
    // The first goes on: still running, and still storing.
    let before = stored_fills(&db, dir.path()).unwrap();
    wait_for_fills(&db, dir.path(), &mut first, before + 1);

    first.kill().unwrap();
    first.wait().unwrap();
    // The dead process's session ends with it, and its claim with the session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.claims() > 0 {
        assert!(Instant::now() < deadline, "the killed process's claim was not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let third = output(pg(&db, dir.path(), &run_args(&data, "max", FEES)));
    assert!(third.status.success(), "the freed run resumes: {}", stderr(&third));
    assert!(
        stdout(&third).contains("nanotrader run 1 completed"),
        "{}",
        stdout(&third)
    );
    // A finished run leaves no claim: its session ends as the process does (the server may take
    // a moment to see it go).
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.claims() > 0 {
        assert!(Instant::now() < deadline, "a finished run leaves no claim");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn psql_reads_numeric_values_and_timestamptz_times() {
    let Some(db) = TestDb::create("psql") else { return };
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = output(pg(&db, dir.path(), &run_args(&data, "max", FEES)));
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = "SELECT pg_typeof(f.price), pg_typeof(f.ts), f.ts, f.price, f.fee, f.cash_after, \
               (SELECT pg_typeof(open) FROM bars LIMIT 1), (SELECT min(ts) FROM bars) \
               FROM fills f ORDER BY f.order_id LIMIT 1";
    let psql = Command::new("psql")
        .args(["-X", "-A", "-t", "-F", "|", "-d", &db.url(), "-c", sql])
        .env("PGTZ", "UTC")
        .output();
    let psql = match psql {
        Ok(out) => out,
        Err(e) => {
            assert!(
                std::env::var("NANOTRADER_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "psql is missing: {e}"
            );
            eprintln!("\n*** SKIPPED psql_reads_numeric_values_and_timestamptz_times: no psql ({e}) ***\n");
            return;
        }
    };
    assert!(psql.status.success(), "{}", stderr(&psql));
    let row = stdout(&psql);
    let fields: Vec<&str> = row.trim().split('|').collect();
    // The same values `fills --csv` exports, digit for digit.
    let first = export(&db, dir.path(), "fills");
    let csv: Vec<&str> = first.lines().nth(1).unwrap().split(',').collect();
    let ts: i64 = csv[0].parse().unwrap();
    let expected_time = chrono_like_utc(ts);
    assert_eq!(fields.len(), 8, "{row}");
    assert_eq!(
        [fields[0], fields[1], fields[2], fields[6], fields[7]],
        [
            "numeric",
            "timestamp with time zone",
            expected_time.as_str(),
            "numeric",
            "2018-04-04 00:00:00+00"
        ],
        "{row}"
    );
    // Exact decimals as text (no exponent, no rounding): the exported values, equal as numbers
    // (the export leaves trailing zeros off).
    for (psql, csv) in [(fields[3], csv[3]), (fields[4], csv[4]), (fields[5], csv[5])] {
        assert!(!psql.contains(['e', 'E']), "{psql}");
        let (a, b): (rust_decimal::Decimal, rust_decimal::Decimal) = (psql.parse().unwrap(), csv.parse().unwrap());
        assert_eq!(a, b, "{row}");
    }
}

/// `YYYY-MM-DD HH:MM:SS+00` of unix seconds, as psql shows a timestamptz in UTC.
fn chrono_like_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}+00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The writer's connection cut mid-run (the server ends its session, as a restart or a network
/// cut would): the run says so once, keeps going on its queue, reconnects and claims its run
/// again, says so once, and ends with exactly the fills of an uninterrupted run.
#[test]
fn a_cut_connection_is_reconnected_and_reclaimed_and_nothing_is_lost() {
    let Some(db) = TestDb::create("cut") else { return };
    let data = repo_file(DATA).display().to_string();
    let lite = tempfile::tempdir().unwrap();
    let out = nanotrader(lite.path(), &run_args(&data, "max", FEES));
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pg(
        &db,
        dir.path(),
        &["run", "--data", &data, "--speed", "12000", "--no-web"],
    );
    cmd.args(FEES);
    let mut child = spawn(cmd);
    wait_for_fills(&db, dir.path(), &mut child, 10);
    let cut: Vec<bool> = db
        .client()
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND classid = x'6e747200'::int::oid
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        cut,
        [true],
        "the writer's session (the one holding the claim) was ended"
    );
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("store writes failing").count(), 1, "{err}");
    assert_eq!(err.matches("the run is claimed again").count(), 1, "{err}");
    assert_eq!(err.matches("store writes work again").count(), 1, "{err}");
    assert_eq!(export(&db, dir.path(), "fills"), sqlite_export(lite.path(), "fills"));
    assert_eq!(export(&db, dir.path(), "bars"), sqlite_export(lite.path(), "bars"));
}

/// The backtest's JSON without what differs between two runs of it: its timings (and where the
/// bars were loaded from, which names the store).
fn figures(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "backtest failed: {}", stderr(out));
    let mut value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("backtest --json prints JSON");
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|key, _| !key.ends_with("_secs") && key != "timings" && key != "loaded_from");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

#[test]
fn backtest_from_postgres_gives_exactly_the_backtest_from_sqlite() {
    let Some(db) = TestDb::create("backtest_same") else {
        return;
    };
    let data = repo_file(DATA).display().to_string();
    let (sqlite_dir, pg_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The same bars into both stores: the same replay.
    let out = nanotrader(sqlite_dir.path(), &run_args(&data, "max", &[]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = output(pg(&db, pg_dir.path(), &run_args(&data, "max", &[])));
    assert!(out.status.success(), "{}", stderr(&out));

    let ranges: [&[&str]; 2] = [&[], &["--since", "2017-09-03T06:00:00Z", "--until", "1504432800"]];
    for range in ranges {
        let trades = |dir: &Path| dir.join("trades.csv").display().to_string();
        let (sqlite_trades, pg_trades) = (trades(sqlite_dir.path()), trades(pg_dir.path()));
        let args = |trades: &str| {
            let mut args: Vec<String> = [
                "backtest",
                "--from-store",
                "--pair",
                "BTC/USD",
                "--json",
                "--trades",
                trades,
            ]
            .map(String::from)
            .to_vec();
            args.extend(FEES.iter().chain(range).map(|a| a.to_string()));
            args
        };
        let sqlite_args = args(&sqlite_trades);
        let from_sqlite = nanotrader(
            sqlite_dir.path(),
            &sqlite_args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let pg_args = args(&pg_trades);
        let from_pg = output(pg(
            &db,
            pg_dir.path(),
            &pg_args.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let (sqlite_figures, pg_figures) = (figures(&from_sqlite), figures(&from_pg));
        assert!(sqlite_figures["fills"].as_u64().unwrap_or(0) > 0, "{sqlite_figures}");
        assert_eq!(pg_figures, sqlite_figures, "range {range:?}");
        let (sqlite_csv, pg_csv) = (
            std::fs::read_to_string(&sqlite_trades).unwrap(),
            std::fs::read_to_string(&pg_trades).unwrap(),
        );
        assert!(sqlite_csv.lines().count() > 1, "{sqlite_csv}");
        assert_eq!(pg_csv, sqlite_csv, "the same trades, digit for digit (range {range:?})");
    }
    // A pair the database has no bars of: one line naming the store, exit 2.
    let out = output(pg(
        &db,
        pg_dir.path(),
        &["backtest", "--from-store", "--pair", "ETH/USD"],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("has no ETH/USD bars") && err.contains("postgres://") && err.trim().lines().count() == 1,
        "{err}"
    );
}

/// The SQLite journal's rules (crates/store/src/journal.rs's tests), held by PostgreSQL's.
#[test]
fn the_postgres_order_journal_keeps_the_sqlite_journals_rules() {
    use nanotrader_market::{Interval, Side, Timestamp};
    use nanotrader_store::{NewRun, OrderJournal, OrderState, RESERVE_BATCH, RunStore, SentOrder};
    use nanotrader_store_pg::{PgJournal, PgStore};
    let Some(db) = TestDb::create("journal_rules") else {
        return;
    };
    let store = PgStore::connect(&db.url()).unwrap();
    let series_id = store
        .series_id("kraken:BTC/USD", "BTC/USD", Interval::ONE_MINUTE)
        .unwrap();
    let run = store
        .create_run(&NewRun {
            run_key: "k",
            series_id,
            config: "{}",
            source_params: "{}",
            initial_cash: 100.into(),
        })
        .unwrap()
        .id;
    let order = |cl_ord_id: &str, order_id: u64| SentOrder {
        cl_ord_id: cl_ord_id.into(),
        run_id: run,
        order_id,
        ts: Timestamp::from_secs(60),
        side: Side::Sell,
        volume: "0.00100000".parse().unwrap(),
        validate: false,
        state: OrderState::Sending,
        txid: None,
        detail: None,
    };
    let journal = PgJournal::connect(&db.url()).unwrap();
    let ids = journal.reserve_client_ids(run, 4).unwrap();
    assert_eq!(
        journal.reserved_client_ids(run).unwrap(),
        ids,
        "committed, oldest first"
    );
    assert!(
        journal.sent_orders(run).unwrap().is_empty(),
        "a reserved id is not an order"
    );
    // Another connection sees them: they are in the database, not only in memory.
    assert_eq!(
        PgJournal::connect(&db.url()).unwrap().reserved_client_ids(run).unwrap(),
        ids
    );

    let taken = journal.take_client_id(run).unwrap();
    assert_eq!(taken, ids[0]);
    journal.journal_reserved(&order(&taken, 7));
    assert_eq!(
        journal.sent_order(&taken).unwrap().as_deref(),
        Some("reserved"),
        "noted, not written"
    );
    journal
        .set_order_state(&taken, OrderState::Placed, Some("OTX-1"), None)
        .unwrap();
    let orders = journal.sent_orders(run).unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        (
            orders[0].order_id,
            orders[0].side,
            orders[0].volume.to_string(),
            orders[0].state
        ),
        (7, Side::Sell, "0.00100000".to_owned(), OrderState::Placed),
        "the details and the outcome in one commit, the volume exactly as sent"
    );
    assert_eq!(orders[0].txid.as_deref(), Some("OTX-1"));

    // Retired: never an order, never taken, never reused.
    assert!(journal.retire_client_id(&ids[1], "test").unwrap());
    assert!(!journal.retire_client_id(&ids[1], "test").unwrap(), "retired once");
    assert!(
        !journal.retire_client_id(&taken, "test").unwrap(),
        "a used id is not retired"
    );
    assert_ne!(journal.take_client_id(run).unwrap(), ids[1]);
    journal.journal_reserved(&order(&ids[1], 8));
    assert!(
        journal
            .set_order_state(&ids[1], OrderState::Placed, None, None)
            .is_err()
    );
    assert_eq!(journal.sent_order(&ids[1]).unwrap().as_deref(), Some("retired"));
    // A reserved id has no outcome: it is not an order yet.
    assert!(
        journal
            .set_order_state(&ids[3], OrderState::Placed, None, None)
            .is_err()
    );

    // The reserve empties, and the next outcome tops it up in its commit.
    while journal.client_ids_in_reserve() > 0 {
        journal.take_client_id(run).unwrap();
    }
    let next = journal.take_client_id(run).unwrap();
    assert_eq!(
        journal.client_ids_in_reserve(),
        RESERVE_BATCH - 1,
        "none left: a batch reserved there"
    );
    while journal.client_ids_in_reserve() > 0 {
        journal.take_client_id(run).unwrap();
    }
    journal.journal_reserved(&order(&next, 9));
    journal
        .set_order_state(&next, OrderState::Rejected, None, Some("no"))
        .unwrap();
    assert_eq!(journal.client_ids_in_reserve(), RESERVE_BATCH);

    // The exchange's trades are recorded once, exactly.
    let fill = nanotrader_store::ExchangeFill {
        trade_id: "T1".into(),
        run_id: run,
        order_id: 7,
        cl_ord_id: taken.clone(),
        txid: "OTX-1".into(),
        ts: Timestamp::from_secs(61),
        side: Side::Sell,
        qty: "0.00100000".parse().unwrap(),
        price: "10863.30000".parse().unwrap(),
        cost: "10.86330000".parse().unwrap(),
        fee: "0.02824458".parse().unwrap(),
    };
    assert_eq!(journal.record_exchange_fills(std::slice::from_ref(&fill)).unwrap(), 1);
    assert_eq!(
        journal.record_exchange_fills(std::slice::from_ref(&fill)).unwrap(),
        0,
        "once"
    );
    assert_eq!(journal.exchange_fills(run).unwrap(), vec![fill]);

    // A clean stop writes what was noted and retires what was never handed out.
    let held = journal.reserved_client_ids(run).unwrap();
    let last = journal.take_client_id(run).unwrap();
    journal.journal_reserved(&order(&last, 10));
    let unused = journal.client_ids_in_reserve();
    assert!(unused > 0);
    drop(journal);
    let journal = PgJournal::connect(&db.url()).unwrap();
    assert!(
        journal
            .sent_orders(run)
            .unwrap()
            .iter()
            .any(|o| o.cl_ord_id == last && o.order_id == 10)
    );
    let still = journal.reserved_client_ids(run).unwrap();
    assert!(
        still.iter().all(|id| held.contains(id) && *id != last),
        "only ids taken by no order of this journal stay reserved"
    );
    assert_eq!(
        still.len(),
        held.len() - 1 - unused,
        "the ids never handed out were retired"
    );
    // A crash runs no destructor: what it held stays reserved, for the start to look up.
    let fresh = journal.reserve_client_ids(run, 2).unwrap();
    std::mem::forget(journal);
    let reserved = PgJournal::connect(&db.url()).unwrap().reserved_client_ids(run).unwrap();
    assert!(fresh.iter().all(|id| reserved.contains(id)), "{reserved:?}");
}

/// A live broker's journal whose connection the server ended (a restart, a cut network): the
/// call that meets the loss fails (so no order leaves without its committed id), and the next
/// one works on a fresh connection, with every id committed before still there.
#[test]
fn the_postgres_order_journal_reconnects_after_its_connection_is_cut() {
    use nanotrader_market::{Interval, Side, Timestamp};
    use nanotrader_store::{NewRun, OrderJournal, OrderState, RunStore, SentOrder};
    use nanotrader_store_pg::{PgJournal, PgStore};
    let Some(db) = TestDb::create("journal_reconnect") else {
        return;
    };
    let run = {
        let store = PgStore::connect(&db.url()).unwrap();
        let series_id = store
            .series_id("kraken:BTC/USD", "BTC/USD", Interval::ONE_MINUTE)
            .unwrap();
        store
            .create_run(&NewRun {
                run_key: "k",
                series_id,
                config: "{}",
                source_params: "{}",
                initial_cash: 100.into(),
            })
            .unwrap()
            .id
    };
    let journal = PgJournal::connect(&db.url()).unwrap();
    let ids = journal.reserve_client_ids(run, 2).unwrap();
    let ended: i64 = db
        .client()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ended >= 1, "the journal's session ended");
    let deadline = Instant::now() + Duration::from_secs(60);
    let reserved = loop {
        match journal.reserved_client_ids(run) {
            Ok(reserved) => break reserved,
            Err(e) => {
                assert!(Instant::now() < deadline, "the journal never came back: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(reserved, ids, "the ids committed before the loss");
    let taken = journal.take_client_id(run).unwrap();
    journal.journal_reserved(&SentOrder {
        cl_ord_id: taken.clone(),
        run_id: run,
        order_id: 1,
        ts: Timestamp::from_secs(60),
        side: Side::Buy,
        volume: "0.001".parse().unwrap(),
        validate: false,
        state: OrderState::Sending,
        txid: None,
        detail: None,
    });
    journal
        .set_order_state(&taken, OrderState::Placed, Some("OTX"), None)
        .unwrap();
    let orders = journal.sent_orders(run).unwrap();
    assert_eq!((orders.len(), orders[0].state), (1, OrderState::Placed));
}

/// The run's own dashboard reads its history pages (`/api/fills`, `/api/bars`) from PostgreSQL
/// when the run is stored there: the same fills and bars as the exports, no SQLite file read.
#[test]
fn the_dashboard_pages_of_a_postgres_run_read_postgres() {
    let Some(db) = TestDb::create("pages") else { return };
    let data = repo_file(DATA).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = pg(&db, dir.path(), &["run", "--data", &data, "--speed", "3000"]);
    cmd.args(FEES);
    let app = common::running::Running::start(cmd);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while stored_fills(&db, dir.path()).unwrap_or(0) < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "no fills stored: {}",
            app.stderr_so_far()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (status, fills) = app.get_json("/api/fills?limit=1000");
    assert_eq!(status, 200, "{fills}");
    let (status, bars) = app.get_json("/api/bars?limit=5&from=0");
    assert_eq!(status, 200, "{bars}");
    let stopped = app.interrupt();
    assert!(stopped.status.success(), "{}", String::from_utf8_lossy(&stopped.stderr));
    // The exports after the stop hold at least what the pages showed, in the same order.
    let stored = export(&db, dir.path(), "fills");
    let stored: Vec<&str> = stored.lines().skip(1).collect();
    let page = fills["fills"].as_array().unwrap();
    assert!(page.len() >= 6, "{fills}");
    for (shown, row) in page.iter().zip(&stored) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(shown["t"].as_i64().unwrap().to_string(), cols[0], "{shown} vs {row}");
        assert_eq!(
            plain_number(shown["price"].as_str().unwrap()),
            plain_number(cols[3]),
            "{shown} vs {row}"
        );
    }
    let stored_bars = export(&db, dir.path(), "bars");
    let first: Vec<&str> = stored_bars.lines().skip(1).take(5).collect();
    let page = bars["bars"].as_array().unwrap();
    assert_eq!(page.len(), 5, "{bars}");
    for (shown, row) in page.iter().zip(&first) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(shown["t"].as_i64().unwrap().to_string(), cols[0], "{shown} vs {row}");
        assert_eq!(
            plain_number(&shown["c"].to_string().replace('"', "")),
            plain_number(cols[4]),
            "{shown} vs {row}"
        );
    }
    assert!(
        !dir.path().join("nanotrader.sqlite").exists(),
        "no SQLite file was made beside a PostgreSQL run"
    );
}
