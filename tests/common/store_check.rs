//! The store of a replay run checked against an uninterrupted run of the same data: what crash
//! and fault tests hold a damaged run to.

use std::path::Path;
use std::process::{Child, Stdio};

use nanotrader_broker::{Account, Fill};
use nanotrader_market::{Bar, Timestamp};
use nanotrader_store::Store;
use rust_decimal::Decimal;

use super::{bin, stderr};

/// A strategy that trades often, and a fee, so most kills land near a fill.
pub const STRATEGY: &[&str] = &[
    "--short",
    "3",
    "--long",
    "8",
    "--fee-rate",
    "0.0026",
    "--sizing",
    "fraction:0.5",
];
/// What an uninterrupted run stored.
pub struct Reference {
    pub bars: Vec<Bar>,
    pub fills: Vec<Fill>,
}

/// What the store held after one kill.
#[derive(Debug)]
pub struct Checked {
    pub bars: usize,
    pub fills: usize,
}

pub fn run_args<'a>(data: &'a str, speed: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "run", "--source", "replay", "--data", data, "--speed", speed, "--no-web", "-q",
    ];
    args.extend_from_slice(STRATEGY);
    args
}

pub fn spawn(dir: &Path, args: &[&str]) -> Child {
    bin()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the nanotrader binary starts")
}

pub fn stored(dir: &Path) -> (Store, nanotrader_store::RunRecord, Vec<Bar>, Vec<Fill>) {
    let store = Store::open_read_only(dir).expect("the store opens after a kill");
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1, "a restart resumes the run instead of starting another");
    let run = runs.into_iter().next().unwrap();
    let mut bars = Vec::new();
    store
        .for_each_bar(
            run.series_id,
            Timestamp::from_secs(0),
            Timestamp::from_secs(i64::MAX / 2_000_000_000),
            |b| bars.push(b),
        )
        .unwrap();
    let fills = store.fills(run.id).unwrap();
    (store, run, bars, fills)
}

pub fn reference(data: &str) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(run_args(data, "max"))
        .output()
        .unwrap();
    assert!(out.status.success(), "reference run failed: {}", stderr(&out));
    let (_store, run, bars, fills) = stored(dir.path());
    assert_eq!(run.status.as_str(), "completed");
    assert!(
        fills.len() >= 20,
        "the strategy must trade for the test to mean anything"
    );
    Reference { bars, fills }
}

/// The store after a kill is an exact prefix of the uninterrupted run.
pub fn check_prefix(dir: &Path, reference: &Reference, context: &str) -> Checked {
    let (store, run, bars, fills) = stored(dir);
    // Bars: exactly those of the reference up to the last bar the run says it processed.
    let last = run.last_bar_ts;
    let expected_bars = reference
        .bars
        .iter()
        .take_while(|b| last.is_some_and(|l| b.ts <= l))
        .count();
    assert_eq!(
        bars.len(),
        expected_bars,
        "{context}: stored bars vs bars processed (last {last:?})"
    );
    assert_eq!(
        bars[..],
        reference.bars[..expected_bars],
        "{context}: stored bars differ"
    );
    // Fills: exactly those the processed bars made, with the same ids, amounts and outcomes.
    let expected_fills = reference
        .fills
        .iter()
        .take_while(|f| last.is_some_and(|l| f.ts <= l))
        .count();
    assert_eq!(fills.len(), expected_fills, "{context}: a fill was lost or duplicated");
    assert_eq!(
        fills[..],
        reference.fills[..expected_fills],
        "{context}: stored fills differ"
    );
    assert_eq!(
        run.next_order_id,
        fills.last().map_or(1, |f| f.order_id + 1),
        "{context}: next order id"
    );
    // Books: the account rebuilt from the fills is the one every fill and snapshot recorded.
    let account = Account::rebuild(run.initial_cash, &fills);
    if let Some(f) = fills.last() {
        assert_eq!(
            (account.cash(), account.position()),
            (f.cash_after, f.position_after),
            "{context}"
        );
    }
    // Snapshots are periodic: the last one holds the books after the fills up to its time.
    if let Some((ts, cash, position)) = last_snapshot(&store, run.id) {
        let then = Account::rebuild(run.initial_cash, fills.iter().take_while(|f| f.ts <= ts));
        assert_eq!(
            (cash, position),
            (then.cash(), then.position()),
            "{context}: last snapshot"
        );
    }
    Checked {
        bars: bars.len(),
        fills: fills.len(),
    }
}

pub fn last_snapshot(store: &Store, run_id: i64) -> Option<(Timestamp, Decimal, Decimal)> {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row(
        "SELECT ts, cash, position FROM account_snapshots WHERE run_id = ?1 ORDER BY ts DESC LIMIT 1",
        [run_id],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
    )
    .ok()
    .map(|(ts, c, p)| (Timestamp::from_millis(ts), c.parse().unwrap(), p.parse().unwrap()))
}

/// Whether the store in `dir` holds a run yet (a kill in start-up can leave a store without one,
/// or without its schema: migrations commit whole, so the `runs` table is there or not).
pub fn run_created(dir: &Path) -> bool {
    let path = dir.join("nanotrader.sqlite");
    if !path.exists() {
        return false;
    }
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("a killed run's store opens");
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs'", [], |r| {
            r.get(0)
        })
        .expect("a killed run's store reads");
    tables == 1
        && conn
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get::<_, i64>(0))
            .expect("a killed run's runs read")
            > 0
}

/// The run's processed bar count as stored, read while it runs (0 before there is a run).
pub fn bars_seen(dir: &Path) -> u64 {
    let path = dir.join("nanotrader.sqlite");
    if !path.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row("SELECT bars_seen FROM runs ORDER BY id LIMIT 1", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map_or(0, |n| n as u64)
}
