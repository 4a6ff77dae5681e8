//! Bar values are stored exactly whatever their size or number of decimals: SQLite's NUMERIC
//! affinity never rounds them to a double nor misreads them, so `bars --csv` gives them back and
//! a run started again over the same store (which reads the stored bars back) succeeds.

mod common;
use common::*;

/// One-minute bars whose values the INTEGER fast path cannot hold: more than 8 decimals (as in
/// FTX volumes), whole numbers beyond i64 units of 1e-8, and up to rust_decimal's 28 digits.
const BARS: &str = "\
ts,open,high,low,close,volume
1522800000,7424.91,7424.91,7422,7422,218102.59507500002
1522800060,7420,7422,7405,7405,13.35069752
1522800120,0.123456789,0.123456789,0.123456781,0.123456782,1234567890.123456789
1522800180,92233720369,92233720370,92233720368,92233720369,123456789012345678
1522800240,1.0000000000000000000000000001,1.0000000000000000000000000001,1,1,79228162514264337593543950335
1522800300,92233720368.54775808,92233720368.54775809,92233720368.54775807,92233720368.54775808,0.00000000000000001
";

fn run(dir: &std::path::Path, data: &std::path::Path) {
    let out = nanotrader(
        dir,
        &[
            "run",
            "--source",
            "replay",
            "--data",
            data.to_str().unwrap(),
            "--speed",
            "max",
            "--no-web",
            "-q",
        ],
    );
    assert!(out.status.success(), "run failed: {}{}", stdout(&out), stderr(&out));
}

fn exported_bars(dir: &std::path::Path) -> Vec<String> {
    let out = nanotrader(dir, &["bars", "--csv"]);
    assert!(out.status.success(), "bars export failed: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ts,open,high,low,close,volume"));
    lines
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn bar_values_beyond_the_integer_form_are_stored_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bars.csv");
    std::fs::write(&data, BARS).unwrap();
    let expected: Vec<String> = BARS
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(plain_number).collect::<Vec<_>>().join(","))
        .collect();
    let as_numbers = |rows: Vec<String>| -> Vec<String> {
        rows.iter()
            .map(|l| l.split(',').map(plain_number).collect::<Vec<_>>().join(","))
            .collect()
    };

    let store = dir.path().join("store");
    run(&store, &data);
    assert_eq!(
        as_numbers(exported_bars(&store)),
        expected,
        "every value exactly as replayed"
    );

    // Started again over the same store: the stored bars are read back, not refused.
    run(&store, &data);
    assert_eq!(
        as_numbers(exported_bars(&store)),
        expected,
        "nothing changed by the second run"
    );
    let out = nanotrader(&store, &["bars"]);
    assert!(out.status.success(), "bars summary failed: {}", stderr(&out));
    assert!(stdout(&out).contains("6 stored"), "{}", stdout(&out));
}

#[test]
fn a_store_from_an_older_version_with_rounded_values_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bars.csv");
    std::fs::write(&data, BARS).unwrap();
    let store = dir.path().join("store");
    run(&store, &data);

    // What older versions left: the TEXT of a value with more than 8 decimals, which SQLite's
    // NUMERIC affinity turned into a REAL (or, for a whole number, an INTEGER).
    let conn = rusqlite::Connection::open(store.join("nanotrader.sqlite")).unwrap();
    let changed = conn
        .execute(
            "UPDATE bars SET volume = CAST('218102.59507500002' AS REAL),
                 open = CAST('0.123456789' AS REAL) WHERE ts = 1522800000000",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let kinds: (String, String) = conn
        .query_row(
            "SELECT typeof(open), typeof(volume) FROM bars WHERE ts = 1522800000000",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(kinds, ("real".to_owned(), "real".to_owned()));
    drop(conn);

    let first = exported_bars(&store).into_iter().next().unwrap();
    assert_eq!(first, "1522800000,0.123456789,7424.91,7422,7422,218102.59507500002");
    run(&store, &data);
    assert_eq!(exported_bars(&store).len(), 6);
}
