//! The store's reads, as the `runs`, `fills` and `bars` commands and a resume use them: what the
//! real writer thread stored reads back exactly, beside a running writer too, and a file that is
//! not a store is refused with the store's own error.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rust_decimal::Decimal;
use tokio::sync::{mpsc, oneshot};

use super::writer::{Execution, Gap, Progress, SignalChange, WriterHooks, WriterStats};
use super::*;
use nanotrader_broker::{AccountSnapshot, Order};
use nanotrader_market::Side;

/// How long a test waits for the writer's commit: generous, the machine may be loaded.
const PATIENCE: Duration = Duration::from_secs(60);

/// 2024-01-01 00:00:00 UTC.
const T0_MS: i64 = 1_704_067_200_000;

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn ms(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0_MS + offset_ms)
}

fn bar(at: Timestamp, [open, high, low, close, volume]: [&str; 5], trades: u32) -> Bar {
    Bar {
        ts: at,
        open: d(open),
        high: d(high),
        low: d(low),
        close: d(close),
        volume: d(volume),
        trades,
    }
}

/// Bars whose values take each stored form: whole units of 1e-8 (INTEGER), finer than that or
/// too large for 64 bits of 1e-8 (a BLOB of the text), at times with and without milliseconds.
fn tricky_bars() -> Vec<Bar> {
    vec![
        bar(ms(0), ["4652.69", "4700", "4600.5", "4652.69", "0.00000001"], 3),
        bar(ms(60_000), ["0.123456789", "0.2", "0.1", "0.15", "12.5"], 1),
        bar(
            ms(120_000),
            ["92233720368.54775808", "92233720368.54775808", "1", "2", "2300413.7295"],
            0,
        ),
        bar(
            ms(180_999),
            ["-1.5", "0", "-2", "-0.000000001", "79228162514264337593543950335"],
            4_000_000_000,
        ),
    ]
}

fn step_with_bar(bar: Bar, bars_seen: u64) -> Step {
    Step {
        bar: Some(bar),
        gap: None,
        signal: None,
        execution: None,
        snapshot: None,
        progress: Progress {
            last_bar_ts: Some(bar.ts),
            bars_seen,
            signal: 0,
            next_order_id: 1,
        },
    }
}

fn account_after(fill: &Fill) -> AccountSnapshot {
    AccountSnapshot {
        ts: fill.ts,
        cash: fill.cash_after,
        position: fill.position_after,
        avg_entry: None,
        realized_pnl: fill.realized_pnl,
        unrealized_pnl: Decimal::ZERO,
        equity: fill.cash_after,
        fees_paid: fill.fee,
        return_pct: Decimal::ZERO,
    }
}

/// A step that trades: the fill's order placed for `reason`.
fn trading_step(fill: &Fill, reason: OrderReason, bars_seen: u64) -> Step {
    let order = Order {
        id: fill.order_id,
        ts: fill.ts,
        side: fill.side,
        qty: fill.qty,
        reason,
    };
    Step {
        bar: None,
        gap: None,
        signal: None,
        execution: Some(Box::new(Execution {
            order,
            fill: fill.clone(),
            account: account_after(fill),
        })),
        snapshot: None,
        progress: Progress {
            last_bar_ts: None,
            bars_seen,
            signal: i8::from(fill.side == Side::Buy),
            next_order_id: fill.order_id + 1,
        },
    }
}

/// Fills with money figures of many digits (and trailing zeros, kept as they were written).
fn fills() -> Vec<(Fill, OrderReason)> {
    let fill = |order_id, at, side, [qty, price, fee, cash, position, pnl]: [&str; 6]| Fill {
        order_id,
        ts: at,
        side,
        qty: d(qty),
        price: d(price),
        fee: d(fee),
        cash_after: d(cash),
        position_after: d(position),
        realized_pnl: d(pnl),
    };
    vec![
        (
            fill(
                1,
                ms(60_000),
                Side::Buy,
                [
                    "0.00012345",
                    "43210.98765432",
                    "0.0053342081",
                    "9994.66126000",
                    "0.00012345",
                    "0",
                ],
            ),
            OrderReason::Entry,
        ),
        (
            fill(
                2,
                ms(120_500),
                Side::Sell,
                [
                    "0.00012345",
                    "43999.1",
                    "0.0054316889",
                    "10000.08802011",
                    "0",
                    "0.42676011",
                ],
            ),
            OrderReason::Exit,
        ),
        (
            fill(
                3,
                ms(180_999),
                Side::Buy,
                ["1.5", "0.123456789012345678", "0", "9999.902834927", "1.5", "0"],
            ),
            OrderReason::Entry,
        ),
        (
            fill(
                4,
                ms(181_000),
                Side::Sell,
                ["1.5", "0.2", "0.0003", "10000.202534927", "0", "0.1148148164814815"],
            ),
            OrderReason::Flatten,
        ),
    ]
}

/// A store in `dir` with one series and one run on it.
fn store_with_run(dir: &Path, run_key: &str, identity: &str) -> (Store, RunRecord) {
    let lock = DataDirLock::acquire(dir).unwrap();
    let store = Store::open(&lock).unwrap();
    let series_id = store.series_id(identity, "BTC/USD", Interval::ONE_MINUTE).unwrap();
    let run = store
        .create_run(&NewRun {
            run_key,
            series_id,
            config: r#"{"strategy":"sma-cross 10/20"}"#,
            source_params: r#"{"start_secs":1704067200}"#,
            initial_cash: d("10000.50"),
        })
        .unwrap();
    (store, run)
}

fn quiet_hooks() -> WriterHooks {
    WriterHooks {
        on_commit: Box::new(|_, _| {}),
        on_health: Box::new(|_| {}),
    }
}

/// Writes the batches through the real writer thread, then finishes the run with `status`.
fn write(store: &Store, run: &RunRecord, batches: Vec<Vec<Step>>, status: RunStatus) -> WriterStats {
    let (tx, rx) = mpsc::channel(8);
    let writer = StoreWriter::spawn(store.path(), run.id, run.series_id, rx, quiet_hooks()).unwrap();
    for batch in batches {
        tx.blocking_send(StoreCmd::Steps(batch)).unwrap();
    }
    let (done, stored) = oneshot::channel();
    tx.blocking_send(StoreCmd::Finish { status, done }).unwrap();
    stored.blocking_recv().expect("the writer confirms the final write");
    writer.join().unwrap()
}

#[test]
fn runs_are_listed_with_what_their_writer_stored() {
    let dir = tempfile::tempdir().unwrap();
    let before = Timestamp::now().millis();
    let (store, first) = store_with_run(dir.path(), "key-1", "replay:a.csv");
    let bars = tricky_bars();
    let steps = vec![
        step_with_bar(bars[0], 1),
        Step {
            signal: Some(SignalChange {
                ts: bars[1].ts,
                signal: 1,
                change: 1,
            }),
            progress: Progress {
                last_bar_ts: Some(bars[1].ts),
                bars_seen: 2,
                signal: 1,
                next_order_id: 5,
            },
            ..step_with_bar(bars[1], 2)
        },
    ];
    write(&store, &first, vec![steps], RunStatus::Completed);
    let other_series = store.series_id("sim:seed=7", "ETH/USD", Interval::ONE_MINUTE).unwrap();
    let second = store
        .create_run(&NewRun {
            run_key: "key-2",
            series_id: other_series,
            config: "{}",
            source_params: "{}",
            initial_cash: d("0.00000001"),
        })
        .unwrap();
    assert_eq!(
        store.resumable_run("key-1").unwrap(),
        None,
        "a completed run is not resumed"
    );
    // A later run under the first key: the newest run of a key is the one a restart continues.
    let third = store
        .create_run(&NewRun {
            run_key: "key-1",
            series_id: first.series_id,
            config: "{}",
            source_params: "{}",
            initial_cash: d("1"),
        })
        .unwrap();
    let after = Timestamp::now().millis();
    drop(store);

    let reader = Store::open_read_only(dir.path()).unwrap();
    let runs = reader.runs().unwrap();
    assert_eq!(runs.len(), 3);
    let (one, two, three) = (&runs[0], &runs[1], &runs[2]);
    assert_eq!(*three, third);
    for run in [one, two, three] {
        let created = run.created_at.millis();
        assert!(
            (before..=after).contains(&created),
            "{created} outside {before}..={after}"
        );
    }
    assert_eq!(
        *one,
        RunRecord {
            id: first.id,
            run_key: "key-1".into(),
            series_id: first.series_id,
            status: RunStatus::Completed,
            created_at: one.created_at,
            config: r#"{"strategy":"sma-cross 10/20"}"#.into(),
            source_params: r#"{"start_secs":1704067200}"#.into(),
            initial_cash: d("10000.50"),
            first_bar_ts: Some(bars[0].ts),
            last_bar_ts: Some(bars[1].ts),
            bars_seen: 2,
            signal: 1,
            next_order_id: 5,
        }
    );
    assert_eq!(one.initial_cash.to_string(), "10000.50", "the cash as it was written");
    assert_eq!(*two, second);
    assert_eq!(
        (two.status, two.bars_seen, two.first_bar_ts, two.next_order_id),
        (RunStatus::Running, 0, None, 1)
    );
    assert_eq!(two.initial_cash.to_string(), "0.00000001");

    assert_eq!(reader.run(first.id).unwrap().as_ref(), Some(one));
    assert_eq!(reader.run(999).unwrap(), None);
    assert_eq!(reader.latest_run().unwrap().as_ref(), Some(three));
    assert_eq!(reader.latest_run_with_pair("BTC/USD").unwrap().as_ref(), Some(three));
    assert_eq!(reader.latest_run_with_pair("ETH/USD").unwrap().as_ref(), Some(two));
    assert_eq!(reader.latest_run_with_pair("XRP/USD").unwrap(), None);
    assert_eq!(reader.resumable_run("key-1").unwrap().as_ref(), Some(three));
    assert_eq!(reader.resumable_run("key-2").unwrap().as_ref(), Some(two));
    assert_eq!(reader.resumable_run("key-3").unwrap(), None);
}

#[test]
fn bars_read_back_exactly_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, run) = store_with_run(dir.path(), "key", "replay:a.csv");
    let bars = tricky_bars();
    let mut steps: Vec<Step> = bars.iter().zip(1..).map(|(b, n)| step_with_bar(*b, n)).collect();
    // The last bar comes after a hole of two intervals.
    steps[3].gap = Some(Gap {
        from: ms(120_000 + 60_000),
        to: ms(180_999),
        missing: 2,
    });
    // Split over two transactions, as a running engine's batches are.
    let later = steps.split_off(2);
    write(&store, &run, vec![steps, later], RunStatus::Completed);
    // A history download later brings other values for a stored time: the stored bar is kept.
    let mut rewritten = bars[1];
    rewritten.close = d("999");
    store.insert_bars(run.series_id, &[rewritten]).unwrap();

    let reader = Store::open_read_only(dir.path()).unwrap();
    let (from, to) = (ms(0), ms(181_000));
    assert_eq!(reader.bars_page(run.series_id, from, to, 10, false).unwrap(), bars);
    assert_eq!(reader.bars_page(run.series_id, from, to, 2, false).unwrap(), bars[..2]);
    assert_eq!(reader.bars_page(run.series_id, from, to, 2, true).unwrap(), bars[2..]);
    // Both ends of the range are inclusive, to the millisecond.
    let range = |from, to| reader.bars_page(run.series_id, ms(from), ms(to), 10, false).unwrap();
    assert_eq!(range(60_000, 120_000), bars[1..3]);
    assert_eq!(range(60_001, 180_998), bars[2..3]);
    assert_eq!(range(60_000, 180_999), bars[1..4]);
    let mut streamed = Vec::new();
    let count = reader
        .for_each_bar(run.series_id, from, to, |b| streamed.push(b))
        .unwrap();
    assert_eq!((count, streamed), (4, bars.clone()));
    // Equal as decimals is not enough: the digits are the ones written.
    let texts: Vec<[String; 5]> = reader
        .bars_page(run.series_id, from, to, 10, false)
        .unwrap()
        .iter()
        .map(|b| [b.open, b.high, b.low, b.close, b.volume].map(|v| v.to_string()))
        .collect();
    assert_eq!(
        texts[1..],
        [
            ["0.123456789", "0.2", "0.1", "0.15", "12.5"].map(String::from),
            ["92233720368.54775808", "92233720368.54775808", "1", "2", "2300413.7295"].map(String::from),
            ["-1.5", "0", "-2", "-0.000000001", "79228162514264337593543950335"].map(String::from),
        ]
    );
    assert_eq!(
        reader.series_summary(run.series_id).unwrap(),
        SeriesSummary {
            identity: "replay:a.csv".into(),
            pair: "BTC/USD".into(),
            interval_secs: 60,
            bars: 4,
            first: Some(ms(0)),
            last: Some(ms(180_999)),
            gaps: 1,
            missing_intervals: 2,
        }
    );
    let series = reader.series_of_pair("BTC/USD").unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].0, run.series_id);
}

#[test]
fn fills_read_back_exactly_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run) = store_with_run(dir.path(), "key", "replay:a.csv");
    let fills = fills();
    let steps = fills
        .iter()
        .zip(1..)
        .map(|((fill, reason), n)| trading_step(fill, *reason, n))
        .collect();
    write(&store, &run, vec![steps], RunStatus::Interrupted);

    let reader = Store::open_read_only(dir.path()).unwrap();
    let all: Vec<Fill> = fills.iter().map(|(fill, _)| fill.clone()).collect();
    let read = reader.fills(run.id).unwrap();
    assert_eq!(read, all);
    // The digits as written, trailing zeros included.
    assert_eq!(read[0].cash_after.to_string(), "9994.66126000");
    assert_eq!(read[2].price.to_string(), "0.123456789012345678");
    assert_eq!(read[3].realized_pnl.to_string(), "0.1148148164814815");

    let page = |before, limit| reader.fills_page(run.id, before, limit).unwrap();
    let with_reasons: Vec<_> = fills.iter().map(|(f, r)| (f.clone(), Some(*r))).collect();
    assert_eq!(page(None, 10), with_reasons);
    assert_eq!(page(None, 2), with_reasons[2..], "the latest page, oldest first");
    assert_eq!(page(Some(3), 1), with_reasons[1..2]);
    assert_eq!(page(Some(1), 10), []);
    assert_eq!(
        reader.order_reasons(run.id).unwrap(),
        HashMap::from([
            (1, OrderReason::Entry),
            (2, OrderReason::Exit),
            (3, OrderReason::Entry),
            (4, OrderReason::Flatten),
        ])
    );
    assert_eq!(reader.fills(run.id + 1).unwrap(), [], "another run's fills are its own");
    let stored = reader.run(run.id).unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.bars_seen, stored.next_order_id),
        (RunStatus::Interrupted, 4, 5)
    );
}

#[test]
fn a_reader_beside_a_running_writer_sees_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, run) = store_with_run(dir.path(), "key", "replay:a.csv");
    let bars = tricky_bars();
    let (committed_tx, committed) = std::sync::mpsc::channel();
    let hooks = WriterHooks {
        on_commit: Box::new(move |batches: &[Vec<Step>], _| {
            let _ = committed_tx.send(batches.iter().map(Vec::len).sum::<usize>());
        }),
        on_health: Box::new(|_| {}),
    };
    let (tx, rx) = mpsc::channel(8);
    let writer = StoreWriter::spawn(store.path(), run.id, run.series_id, rx, hooks).unwrap();
    let read_all = |reader: &Store| reader.bars_page(run.series_id, ms(0), ms(181_000), 10, false).unwrap();

    tx.blocking_send(StoreCmd::Steps(vec![
        step_with_bar(bars[0], 1),
        step_with_bar(bars[1], 2),
    ]))
    .unwrap();
    assert_eq!(committed.recv_timeout(PATIENCE), Ok(2));
    // The data directory stays locked by the writing store; the reader takes no lock.
    assert!(DataDirLock::acquire(dir.path()).is_err());
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(read_all(&reader), bars[..2]);

    tx.blocking_send(StoreCmd::Steps(vec![step_with_bar(bars[2], 3)]))
        .unwrap();
    assert_eq!(committed.recv_timeout(PATIENCE), Ok(1));
    assert_eq!(read_all(&reader), bars[..3], "the same reader sees the next commit");
    assert_eq!(reader.run(run.id).unwrap().unwrap().bars_seen, 3);

    drop(tx);
    writer.join().unwrap();
    assert_eq!(read_all(&reader), bars[..3]);
}

#[test]
fn a_missing_store_or_a_file_that_is_not_one_is_refused_with_the_stores_error() {
    let dir = tempfile::tempdir().unwrap();

    // No file in the directory: nothing is created.
    match Store::open_read_only(dir.path()) {
        Err(StoreError::Unusable(e)) => assert!(e.starts_with("no store at "), "{e}"),
        other => panic!("expected Unusable, got {:?}", other.map(|s| s.path().to_owned())),
    }
    assert!(!dir.path().join(DB_FILE).exists());

    // Some other file under the store's name: refused as damaged, and left as it was.
    let path = dir.path().join(DB_FILE);
    let foreign = b"date,price\n2024-01-01,42000\n".repeat(200);
    std::fs::write(&path, &foreign).unwrap();
    match Store::open_read_only(dir.path()) {
        Err(StoreError::Unusable(e)) => {
            assert!(e.contains("is damaged"), "{e}");
            assert!(e.contains("nanotrader leaves it as it is"), "{e}");
        }
        other => panic!("expected Unusable, got {:?}", other.map(|s| s.path().to_owned())),
    }
    assert_eq!(std::fs::read(&path).unwrap(), foreign, "the file is left as it was");

    // The writer refuses it too, and does not write into it.
    let lock = DataDirLock::acquire(dir.path()).unwrap();
    match Store::open(&lock) {
        Err(StoreError::Unusable(e)) => assert!(e.contains("is damaged"), "{e}"),
        Err(other) => panic!("expected Unusable, got {other:?}"),
        Ok(_) => panic!("a file that is not a store was opened for writing"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), foreign);
}

#[test]
fn a_sqlite_file_without_the_stores_tables_is_refused_by_a_reader() {
    // Another program's database, and an empty file, under the store's name.
    let foreign = tempfile::tempdir().unwrap();
    rusqlite::Connection::open(foreign.path().join(DB_FILE))
        .unwrap()
        .execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('not a store');")
        .unwrap();
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join(DB_FILE), b"").unwrap();
    for dir in [foreign.path(), empty.path()] {
        let path = dir.join(DB_FILE);
        let before = std::fs::read(&path).unwrap();
        match Store::open_read_only(dir) {
            Err(StoreError::Unusable(e)) => {
                assert!(
                    e.starts_with(&format!("no nanotrader store in {}", path.display())),
                    "{e}"
                )
            }
            Err(other) => panic!("expected Unusable, got {other:?}"),
            Ok(store) => panic!("opened {} as a store: runs() says {:?}", path.display(), store.runs()),
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "the file is left as it was");
    }
}
