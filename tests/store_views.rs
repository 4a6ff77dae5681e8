//! The store's views for people (`bars_v`, `fills_v`, `account_snapshots_v`, `runs_v`) read as
//! people read them: pandas and Python's sqlite3 from the pinned test venv, and the sqlite3 shell.
//! They must equal the CSV exports of the same run as numbers (a REAL against an exact decimal:
//! within a double's precision), give right answers to `sum()` and `datetime()`, and the README's
//! examples must print what the README shows.

mod common;

use std::path::Path;
use std::process::Command;

use common::store_check::STRATEGY;
use common::*;

/// Two days of real bars with gaps; the strategy trades often, with a fee and fractional sizing,
/// so cash and fees carry many decimals.
const DATA: &str = "tests/data/btcusd_1m_20180404_20180406.csv";

/// Runs the replay into `dir` and writes its `fills --csv` and `bars --csv` beside it.
fn run_and_export(dir: &Path) {
    let data = repo_file(DATA);
    let out = bin()
        .arg("--data-dir")
        .arg(dir)
        .args(["run", "--source", "replay", "--data"])
        .arg(&data)
        .args(["--speed", "max", "--no-web", "-q"])
        .args(STRATEGY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    for (what, file) in [("fills", "fills.csv"), ("bars", "bars.csv")] {
        let out = nanotrader(dir, &[what, "--csv"]);
        assert!(out.status.success(), "{what} --csv: {}", stderr(&out));
        std::fs::write(dir.join(file), &out.stdout).unwrap();
    }
}

/// Reads the views with pandas (`read_sql` with `parse_dates`) and the exports with `read_csv`,
/// and compares them row by row; then asks Python's sqlite3 a `sum()` and a `datetime()`.
const COMPARE: &str = r#"
import sqlite3
import sys
from decimal import Decimal

import numpy as np
import pandas as pd

db, fills_csv, bars_csv = sys.argv[1:4]
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def compare(name, sql, csv, columns):
    view = pd.read_sql(sql, con, parse_dates=["time"])
    exported = pd.read_csv(csv, float_precision="round_trip")
    assert len(view) == len(exported) > 100, (name, len(view), len(exported))
    assert str(view["time"].dt.tz) == "UTC", view["time"].dtype
    assert view["time"].notna().all(), name
    expected_time = pd.to_datetime(exported["ts"], unit="s", utc=True)
    assert (view["time"] == expected_time).all(), name
    assert (view["unix_time"] == exported["ts"]).all(), name
    identical = ulps = 0
    for column in columns:
        assert view[column].dtype == np.float64, (name, column, view[column].dtype)
        got = view[column].to_numpy()
        want = exported[column].to_numpy(dtype=np.float64)
        # The view's REAL against the exact decimal read as a double: within 2 units in the last place.
        off = np.abs(got - want) / np.spacing(np.abs(want))
        assert (off <= 2).all(), (name, column, got[off > 2][:5], want[off > 2][:5])
        identical += int((got == want).sum())
        ulps = max(ulps, float(off.max()))
    print(f"{name}: {len(view)} rows, {identical} of {len(view) * len(columns)} numbers identical to the "
          f"export's, none more than {ulps:.0f} ulp off")
    return view, exported


fills, fills_exported = compare(
    "fills_v", "SELECT * FROM fills_v WHERE run_id = 1", fills_csv,
    ["qty", "price", "fee", "cash_after", "position_after"],
)
assert (fills["side"] == fills_exported["side"]).all()
compare("bars_v", "SELECT * FROM bars_v WHERE series_id = 1", bars_csv,
        ["open", "high", "low", "close", "volume"])

# sqlite3 itself: a sum of money and the date functions.
total, first, last, days = con.execute(
    "SELECT sum(price), datetime(min(time)), datetime(max(unix_time), 'unixepoch'), count(DISTINCT date(time))"
    " FROM fills_v WHERE run_id = 1"
).fetchone()
with open(fills_csv) as f:
    rows = [line.split(",") for line in f.read().splitlines()[1:]]
exact = sum(Decimal(r[3]) for r in rows)
assert abs(Decimal(repr(total)) - exact) <= exact * Decimal("1e-14"), (total, exact)
stamp = lambda ts: pd.Timestamp(int(ts), unit="s", tz="UTC").strftime("%Y-%m-%d %H:%M:%S")
assert (first, last) == (stamp(rows[0][0]), stamp(rows[-1][0])), (first, last)
assert days == 3, days
print(f"sum(price) {total!r} (exact {exact}); datetime() {first} .. {last}")
"#;

#[test]
fn the_views_equal_the_csv_exports_read_with_pandas() {
    let Some(python) = python("the_views_equal_the_csv_exports_read_with_pandas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    run_and_export(dir.path());
    let out = run_python(
        &python,
        COMPARE,
        &[
            dir.path().join("nanotrader.sqlite").as_os_str(),
            dir.path().join("fills.csv").as_os_str(),
            dir.path().join("bars.csv").as_os_str(),
        ],
    );
    print!("{}", stdout(&out));
}

#[test]
fn runs_v_and_account_snapshots_v_match_the_exact_tables() {
    let dir = tempfile::tempdir().unwrap();
    run_and_export(dir.path());
    let conn = rusqlite::Connection::open_with_flags(
        dir.path().join("nanotrader.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    type RunRow = (i64, String, String, String, String, i64, f64, i64);
    let run: RunRow = conn
        .query_row(
            "SELECT run_id, pair, status, first_bar_time, last_bar_time, bars_seen, initial_cash, fills FROM runs_v",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .unwrap();
    let fills = fills_csv(dir.path(), None).len() as i64;
    assert_eq!(
        run,
        (
            1,
            "BTC/USD".into(),
            "completed".into(),
            "2018-04-04T00:00:00Z".into(),
            "2018-04-06T23:59:00Z".into(),
            3887,
            100000.0,
            fills
        )
    );
    let (created, created_ms): (String, i64) = conn
        .query_row(
            "SELECT v.created_at, r.created_at FROM runs_v v JOIN runs r ON r.id = v.run_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        created,
        nanotrader_market::Timestamp::from_millis(created_ms).to_rfc3339(),
        "the wall-clock start in milliseconds"
    );

    // Every snapshot: each REAL within 2 units in the last place of its exact decimal.
    let columns = "cash, position, realized_pnl, unrealized_pnl, equity, fees_paid";
    let read = |sql: String| -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = conn.prepare(&sql).unwrap();
        let width = stmt.column_count();
        stmt.query_map([], |r| (0..width).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let views = read(format!(
        "SELECT time, {columns} FROM account_snapshots_v WHERE run_id = 1"
    ));
    let tables = read(format!(
        "SELECT ts, {columns} FROM account_snapshots WHERE run_id = 1 ORDER BY ts"
    ));
    assert_eq!(views.len(), tables.len());
    use rusqlite::types::Value;
    let mut snapshots = 0;
    for (view, table) in views.iter().zip(&tables) {
        let (Value::Text(time), Value::Integer(ms)) = (&view[0], &table[0]) else {
            panic!("{view:?} {table:?}")
        };
        let ts = nanotrader_market::Timestamp::from_millis(*ms);
        assert_eq!(
            *time,
            ts.to_rfc3339().replace(".000Z", "Z"),
            "whole seconds without a fraction"
        );
        for (real, exact) in view[1..].iter().zip(&table[1..]) {
            let (Value::Real(real), Value::Text(exact)) = (real, exact) else {
                panic!("at {time}: {real:?} for {exact:?}")
            };
            let nearest: f64 = exact.parse().unwrap();
            let ulp = f64::from_bits(nearest.abs().to_bits() + 1) - nearest.abs();
            assert!((real - nearest).abs() <= 2.0 * ulp, "at {time}: {real} for {exact}");
        }
        snapshots += 1;
    }
    assert!(snapshots > 10, "{snapshots} snapshots");
}

/// The fenced blocks of the README's section `title`: (language, body) in order.
fn readme_blocks(title: &str) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(repo_file("README.md")).unwrap();
    let start = readme
        .find(&format!("\n## {title}\n"))
        .unwrap_or_else(|| panic!("README has no section '{title}'"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in section.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some("")) => blocks.push(open.take().unwrap()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Each example block (`lang`) with the `text` block that follows it: the output it shows.
fn examples(blocks: &[(String, String)], lang: &str) -> Vec<(String, String)> {
    blocks
        .windows(2)
        .filter(|w| w[0].0 == lang && w[1].0 == "text")
        .map(|w| (w[0].1.clone(), w[1].1.clone()))
        .collect()
}

/// Lines with their runs of spaces made one (column widths may vary between sqlite3 versions).
fn words(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn the_readmes_examples_print_what_it_shows() {
    let blocks = readme_blocks("Reading the store");
    let sqlite = examples(&blocks, "sh");
    let pandas = examples(&blocks, "python");
    assert_eq!(
        (sqlite.len(), pandas.len()),
        (1, 1),
        "one sqlite3 and one pandas example"
    );
    // The run the README's examples read: the seed strategy over the built-in data set, into
    // ./nanotrader-data as a plain `nanotrader run` makes it.
    let work = tempfile::tempdir().unwrap();
    let out = nanotrader(
        &work.path().join("nanotrader-data"),
        &[
            "run",
            "--data",
            repo_file("assets/btcusd_1m_20170903_20170904.csv").to_str().unwrap(),
            "--preset",
            "seed",
            "-q",
            "--no-web",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let (command, shown) = &sqlite[0];
    if Command::new("sqlite3").arg("-version").output().is_ok() {
        let out = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(work.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}: {}", stderr(&out));
        assert_eq!(words(&stdout(&out)), words(shown), "the sqlite3 example");
    } else {
        eprintln!("\n*** the README's sqlite3 example not run: no sqlite3 shell (apt-get install sqlite3)\n");
    }

    let Some(python) = python("the README's pandas example") else {
        return;
    };
    let (script, shown) = &pandas[0];
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().map(str::trim_end).collect::<Vec<_>>(),
        shown.lines().map(str::trim_end).collect::<Vec<_>>(),
        "the pandas example"
    );
}
