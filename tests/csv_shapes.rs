//! The CSVs people have (issue 16, points 1 and 2): real BTC/USD data exported in every shape
//! users bring, made by the tools that make them (pandas from the pinned test venv; Binance's and
//! Kraken's headerless layouts written as those exchanges write them), each backtested and
//! replayed to exactly the trades of the canonical file; and bars that keep their own time
//! (stamped 20 s past the minute, or at their close) through fills, the store, exports, the
//! dashboard and reports.

mod common;
use common::*;

use std::path::{Path, PathBuf};

const DAY: &str = "tests/data/btcusd_1m_20161007_20161009.csv";
const TRADES: &str = "tests/data/btcusd_trades_kraken_20190701.csv";

/// Writes every export of the bar file `DAY` (and of the trade file `TRADES`) into `dir` with
/// pandas; returns (file name, extra arguments) pairs.
fn exports(python: &Path, dir: &Path) -> Vec<(String, Vec<String>)> {
    const SCRIPT: &str = r#"
import csv, sys
import pandas as pd
src, trades_src, out = sys.argv[1], sys.argv[2], sys.argv[3]
bars = pd.read_csv(src)
when = pd.to_datetime(bars["ts"], unit="s")
prices = bars[["open", "high", "low", "close", "volume"]]

# pandas' to_csv of a DatetimeIndex without a name: an unnamed first column, ISO times.
df = prices.set_index(when.rename(None))
df.to_csv(f"{out}/pandas_index.csv")
# A named, tz-aware index, in another zone (times carry their offset).
df = prices.set_index(when.dt.tz_localize("UTC").dt.tz_convert("America/New_York").rename("timestamp"))
df.to_csv(f"{out}/pandas_tz.csv")
# Yahoo-style (yfinance's intraday shape): Datetime, capitalised names, Adj Close.
y = prices.rename(columns=str.capitalize)
y.insert(4, "Adj Close", y["Close"])
y = y.set_index(when.dt.tz_localize("UTC").rename("Datetime"))
y.to_csv(f"{out}/yahoo.csv")
# Milliseconds, an extra column, quoted, CRLF and a BOM, as spreadsheets save them.
ms = prices.copy()
ms.insert(0, "timestamp", bars["ts"] * 1000)
ms["trades"] = 3
ms["quote_volume"] = ms["volume"] * ms["close"]
ms.to_csv(f"{out}/quoted_ms.csv", index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n", encoding="utf-8-sig")
# Binance klines: 12 columns, no header, ms open and close times.
k = pd.DataFrame({
    "open_time": bars["ts"] * 1000, "open": bars["open"], "high": bars["high"], "low": bars["low"],
    "close": bars["close"], "volume": bars["volume"], "close_time": bars["ts"] * 1000 + 59999,
    "quote_volume": bars["volume"] * bars["close"], "count": 7, "taker_buy_volume": bars["volume"] / 2,
    "taker_buy_quote_volume": bars["volume"] * bars["close"] / 2, "ignore": 0})
k.to_csv(f"{out}/binance_klines.csv", index=False, header=False)
# Kraken OHLCVT: 7 columns, no header, unix seconds.
o = bars[["ts", "open", "high", "low", "close", "volume"]].copy()
o["trades"] = 5
o.to_csv(f"{out}/kraken_ohlcvt.csv", index=False, header=False)
# Another layout, named by --columns.
odd = pd.DataFrame({"symbol": "BTC-USD", "c": bars["close"], "lo": bars["low"], "hi": bars["high"],
                    "op": bars["open"], "when": when.dt.strftime("%Y-%m-%dT%H:%M:%SZ"), "qty": bars["volume"]})
odd.to_csv(f"{out}/odd_layout.csv", index=False)
# Kraken time and sales: unix seconds with a fraction, price, volume; no header.
t = pd.read_csv(trades_src)
ts = pd.DataFrame({"t": t["ts_ns"].map(lambda n: f"{n // 10**9}.{n % 10**9:09d}".rstrip("0").rstrip(".")),
                   "price": t["price"], "volume": t["volume"]})
ts.to_csv(f"{out}/kraken_time_and_sales.csv", index=False, header=False)
"#;
    run_python(
        python,
        SCRIPT,
        &[
            repo_file(DAY).as_os_str(),
            repo_file(TRADES).as_os_str(),
            dir.as_os_str(),
        ],
    );
    let none = Vec::new;
    vec![
        ("pandas_index.csv".into(), none()),
        ("pandas_tz.csv".into(), none()),
        ("yahoo.csv".into(), none()),
        ("quoted_ms.csv".into(), none()),
        ("binance_klines.csv".into(), none()),
        ("kraken_ohlcvt.csv".into(), none()),
        (
            "odd_layout.csv".into(),
            vec!["--columns".into(), "when,op,hi,lo,c,qty".into()],
        ),
    ]
}

/// `backtest --preset seed` of `file`: its fills CSV, header dropped.
fn backtest_fills(data_dir: &Path, file: &Path, extra: &[String]) -> Vec<String> {
    std::fs::create_dir_all(data_dir).unwrap();
    let trades = data_dir.join(format!("{}.fills.csv", file.file_name().unwrap().to_string_lossy()));
    let mut args = vec![
        "backtest".to_string(),
        "--data".into(),
        file.to_str().unwrap().into(),
        "--preset".into(),
        "seed".into(),
        "--trades".into(),
        trades.to_str().unwrap().into(),
        "--cache".into(),
        "off".into(),
    ];
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = nanotrader(data_dir, &args);
    assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
    std::fs::read_to_string(&trades)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// `run --speed max --preset seed` of `file` in a fresh data dir: its stored fills.
fn run_fills(file: &Path, extra: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "run".to_string(),
        "--data".into(),
        file.to_str().unwrap().into(),
        "--speed".into(),
        "max".into(),
        "--preset".into(),
        "seed".into(),
        "--no-web".into(),
    ];
    args.extend_from_slice(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = nanotrader(dir.path(), &args);
    assert!(out.status.success(), "{}: {}", file.display(), stderr(&out));
    fills_csv(dir.path(), None)
}

#[test]
fn every_export_trades_exactly_as_the_canonical_file() {
    let Some(python) = python("every_export_trades_exactly_as_the_canonical_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let shapes = exports(&python, &files);
    let canonical = backtest_fills(&data_dir, &repo_file(DAY), &[]);
    assert!(canonical.len() > 100, "{} fills", canonical.len());
    for (name, extra) in &shapes {
        let path = files.join(name);
        assert_eq!(backtest_fills(&data_dir, &path, extra), canonical, "backtest of {name}");
    }
    // The live path reads them alike: a replay makes the same fills.
    for (name, extra) in shapes
        .iter()
        .filter(|(n, _)| ["pandas_tz.csv", "quoted_ms.csv", "odd_layout.csv"].contains(&n.as_str()))
    {
        assert_eq!(run_fills(&files.join(name), extra), canonical, "run of {name}");
    }
    // Kraken's headerless time and sales: the same bars, so the same fills, as its ts_ns file.
    let trades = backtest_fills(&data_dir, &repo_file(TRADES), &["--long".into(), "20".into()]);
    let kraken = backtest_fills(
        &data_dir,
        &files.join("kraken_time_and_sales.csv"),
        &["--long".into(), "20".into()],
    );
    assert_eq!(kraken, trades);
    // The user's folder holds only what they put there: the cache is under the data dir.
    let mut names: Vec<String> = std::fs::read_dir(&files)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.iter().all(|n| n.ends_with(".csv")), "{names:?}");
}

#[test]
fn a_file_that_cannot_be_read_says_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "Date,Open,High,Low,Close,Volume\n2017-09-03,1,1,1,1,1\n2017-09-04,1,1,1,one,1\n",
    )
    .unwrap();
    for command in ["backtest", "run"] {
        let out = nanotrader(dir.path(), &[command, "--data", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{command}: {err}");
        assert!(
            err.contains(&format!(
                "{} line 3, column 5 (Close): found 'one', expected a number like 4652.69",
                path.display()
            )),
            "{command}: {err}"
        );
    }
    let out = nanotrader(
        dir.path(),
        &[
            "backtest",
            "--data",
            path.to_str().unwrap(),
            "--columns",
            "Date,Open,High,Low,Close",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--columns"), "{}", stderr(&out));
}

/// The canonical file with every time moved by `shift` seconds.
fn shifted(dir: &Path, shift: i64) -> PathBuf {
    let text = std::fs::read_to_string(repo_file(DAY)).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines {
        let (ts, rest) = line.split_once(',').unwrap();
        out.push_str(&format!("{},{rest}\n", ts.parse::<i64>().unwrap() + shift));
    }
    let path = dir.join(format!("shifted_{shift}.csv"));
    std::fs::write(&path, out).unwrap();
    path
}

/// The fills with their times moved by `shift` seconds.
fn moved(fills: &[String], shift: i64) -> Vec<String> {
    fills
        .iter()
        .map(|f| {
            let (ts, rest) = f.split_once(',').unwrap();
            format!("{},{rest}", ts.parse::<i64>().unwrap() + shift)
        })
        .collect()
}

#[test]
fn bars_keep_their_own_time_in_run_and_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let canonical = backtest_fills(&data_dir, &repo_file(DAY), &[]);
    // 20 s past the minute, and stamped at the bar's close.
    for shift in [20, 60] {
        let path = shifted(dir.path(), shift);
        let want = moved(&canonical, shift);
        assert_eq!(backtest_fills(&data_dir, &path, &[]), want, "backtest, shift {shift}");

        // The run: fills, stored bars and their export, and the dashboard keep the times.
        let run_dir = tempfile::tempdir().unwrap();
        let mut cmd = bin();
        cmd.arg("--data-dir").arg(run_dir.path()).args([
            "run",
            "--data",
            path.to_str().unwrap(),
            "--speed",
            "max",
            "--preset",
            "seed",
            "--stay",
        ]);
        let running = running::Running::start(cmd);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        // The replay is over once every bar is stored and every fill made.
        let bars = loop {
            // 503 until the run has started.
            let (code, bars) = running.get_json("/api/bars?limit=5000");
            if code == 200
                && bars["bars"].as_array().is_some_and(|b| b.len() == 4216)
                && fills_len(&running) == want.len()
            {
                break bars;
            }
            assert!(std::time::Instant::now() < deadline, "the replay did not finish");
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let times: Vec<i64> = bars["bars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["t"].as_i64().unwrap())
            .collect();
        assert!(
            times.iter().all(|t| t.rem_euclid(60) == shift % 60),
            "dashboard bar times"
        );
        assert_eq!(times[0], 1_475_798_400 + shift);
        drop(running);
        assert_eq!(fills_csv(run_dir.path(), None), want, "run, shift {shift}");
        let exported = nanotrader(run_dir.path(), &["bars", "--csv"]);
        let text = stdout(&exported);
        let stored: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(stored.len(), 4216);
        let file = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<&str> = file.lines().skip(1).collect();
        assert_eq!(stored, rows, "stored bars, shift {shift}");
    }
}

/// The dashboard's count of fills so far.
fn fills_len(running: &running::Running) -> usize {
    let (_, fills) = running.get_json("/api/fills?limit=10000");
    fills["fills"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_report_shows_the_bars_at_their_own_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = shifted(dir.path(), 20);
    let report = dir.path().join("report.html");
    let out = nanotrader(
        dir.path(),
        &[
            "backtest",
            "--data",
            path.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["data"]["first_bar"], "2016-10-07T00:00:20.000Z");
    let html = std::fs::read_to_string(&report).unwrap();
    // The first candle's time, in the chart's seconds.
    assert!(
        html.contains("1475798420"),
        "the report's candles keep the file's times"
    );
    assert!(!html.contains("\"time\":1475798400"), "no candle moved onto the minute");
}
