//! `nanotrader backtest` end to end, on real files: the seed's known answers, the same fills as a
//! `run --speed max` of the same data, metrics recomputed here independently, sweeps, the binary
//! cache, gzip, the store, and bad input.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `file` (relative to the repository) copied into `dir`, so the binary cache lands there.
fn copy_in(dir: &Path, file: &str) -> PathBuf {
    let from = repo_file(file);
    let to = dir.join(from.file_name().unwrap());
    std::fs::copy(&from, &to).unwrap();
    to
}

fn backtest(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["backtest"];
    all.extend_from_slice(args);
    nanotrader(dir, &all)
}

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "backtest failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

fn csv_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ts,side,qty,price,fee,cash_after,position_after"));
    lines.map(str::to_owned).collect()
}

#[test]
fn seed_preset_reproduces_the_reference_trades_and_account() {
    let cases = [
        ("assets/btcusd_1m_20170903_20170904.csv", "btcusd_1m_20170903_20170904"),
        ("tests/data/btcusd_1m_20171217.csv", "btcusd_1m_20171217"),
        // An exact tie of the two averages (bar 618) that float arithmetic decides wrongly.
        (
            "tests/data/btcusd_1m_20161007_20161009.csv",
            "btcusd_1m_20161007_20161009",
        ),
    ];
    for (bars, name) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = copy_in(dir.path(), bars);
        let trades = dir.path().join("trades.csv");
        let out = backtest(
            dir.path(),
            &[
                "--data",
                data.to_str().unwrap(),
                "--preset",
                "seed",
                "--json",
                "--trades",
                trades.to_str().unwrap(),
            ],
        );
        let result = json(&out);
        assert_eq!(
            csv_rows(&trades),
            reference_fills(&format!("tests/data/seed_{name}_trades.csv")),
            "{bars}"
        );
        let account: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_file(&format!("tests/data/seed_{name}_account.json"))).unwrap(),
        )
        .unwrap();
        let number = |v: &Value| plain_number(v.as_str().unwrap());
        assert_eq!(number(&result["cash"]), number(&account["cash"]), "{bars}");
        assert_eq!(number(&result["position"]), number(&account["position"]), "{bars}");
        assert_eq!(number(&result["end_equity"]), number(&account["equity"]), "{bars}");
        assert_eq!(result["fills"], account["trades"], "{bars}");
        assert_eq!(result["bars"], account["rows"], "{bars}");
    }
}

/// The backtester and the engine, fed the same file, make the same fills to the last digit.
#[test]
fn a_backtest_fills_exactly_like_a_max_speed_run() {
    let cases: &[(&str, &[&str])] = &[
        (
            "tests/data/btcusd_1m_20180404_20180406.csv",
            &["--short", "5", "--long", "30"],
        ),
        (
            "tests/data/btcusd_1m_20171217.csv",
            &["--strategy", "ema-cross", "--fast", "8", "--slow", "21"],
        ),
        (
            "tests/data/btcusd_1m_20171217.csv",
            &["--preset", "seed", "--sizing", "fraction:0.5"],
        ),
        (
            "tests/data/btcusd_trades_kraken_20190701.csv",
            &["--short", "3", "--long", "7", "--fee-rate", "0.001"],
        ),
        (
            "tests/data/xbtusdt_1m_kraken_rest_20251110_20251111.csv",
            &["--strategy", "rsi-threshold", "--rsi-period", "7"],
        ),
    ];
    for (file, options) in cases {
        let dir = tempfile::tempdir().unwrap();
        let data = copy_in(dir.path(), file);
        let data = data.to_str().unwrap();
        let mut run = vec![
            "run", "--source", "replay", "--speed", "max", "--no-web", "--data", data,
        ];
        run.extend_from_slice(options);
        let out = nanotrader(dir.path(), &run);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        let engine_fills = fills_csv(dir.path(), None);

        let trades = dir.path().join("trades.csv");
        let mut args = vec!["--data", data, "--json", "--trades", trades.to_str().unwrap()];
        args.extend_from_slice(options);
        let result = json(&backtest(dir.path(), &args));
        assert!(!engine_fills.is_empty(), "{file} {options:?}: no fills to compare");
        assert_eq!(csv_rows(&trades), engine_fills, "{file} {options:?}");
        assert_eq!(result["fills"], engine_fills.len(), "{file}");

        // And again from the binary cache the first backtest wrote.
        let again = json(&backtest(dir.path(), &args));
        assert_eq!(again["data"]["loaded_from"], "binary cache", "{file}");
        assert_eq!(csv_rows(&trades), engine_fills, "{file} from the cache");
        assert_eq!(again["end_equity"], result["end_equity"]);
    }
}

struct Bar {
    ts: i64,
    close: f64,
}

fn read_bars(path: &Path) -> Vec<Bar> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Bar {
                ts: f[0].parse().unwrap(),
                close: f[4].parse().unwrap(),
            }
        })
        .collect()
}

fn close_to(got: &Value, want: f64, what: &str) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{what} missing: {got}"));
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: backtest {got}, recomputed {want}"
    );
}

/// Every figure of the summary, recomputed here from the bars and the fills alone.
#[test]
fn metrics_match_an_independent_computation() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_in(dir.path(), "tests/data/btcusd_1m_20180404_20180406.csv");
    let trades = dir.path().join("trades.csv");
    let result = json(&backtest(
        dir.path(),
        &[
            "--data",
            data.to_str().unwrap(),
            "--short",
            "7",
            "--long",
            "40",
            "--json",
            "--trades",
            trades.to_str().unwrap(),
        ],
    ));
    let bars = read_bars(&data);
    let fills: Vec<Vec<String>> = csv_rows(&trades)
        .iter()
        .map(|r| r.split(',').map(str::to_owned).collect())
        .collect();
    let initial = 100_000.0;
    let (mut cash, mut position) = (initial, 0.0);
    let mut next_fill = fills.iter().peekable();
    let (mut equity, mut exposed) = (Vec::new(), 0usize);
    for bar in &bars {
        while let Some(f) = next_fill.next_if(|f| f[0].parse::<i64>().unwrap() == bar.ts) {
            cash = f[5].parse().unwrap();
            position = f[6].parse().unwrap();
        }
        equity.push(cash + position * bar.close);
        exposed += usize::from(position > 0.0);
    }
    assert!(next_fill.next().is_none(), "every fill is on a bar");
    let returns: Vec<f64> = std::iter::once(initial)
        .chain(equity.iter().copied())
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] / w[0] - 1.0)
        .collect();
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let downside = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    let per_year = (365.0f64 * 24.0 * 60.0).sqrt();
    let mut peak = initial;
    let mut max_dd: f64 = 0.0;
    for &e in &equity {
        peak = peak.max(e);
        max_dd = max_dd.max((peak - e) / peak);
    }
    // Round trips: a buy then a sell; won when the cash after the sell beats the cash before the buy.
    let (mut trips, mut won, mut cash_before) = (0, 0, initial);
    for f in &fills {
        let after: f64 = f[5].parse().unwrap();
        if f[1] == "buy" {
            continue;
        }
        trips += 1;
        won += usize::from(after > cash_before);
        cash_before = after;
    }
    let (first, last) = (bars[0].close, bars[bars.len() - 1].close);

    assert!(
        fills.len() > 20 && trips > 10,
        "a meaningful sample: {} fills",
        fills.len()
    );
    close_to(
        &result["return_pct"],
        (equity[equity.len() - 1] / initial - 1.0) * 100.0,
        "return",
    );
    close_to(&result["max_drawdown_pct"], max_dd * 100.0, "max drawdown");
    close_to(&result["sharpe"], mean / sd * per_year, "Sharpe");
    close_to(&result["sortino"], mean / downside * per_year, "Sortino");
    close_to(
        &result["exposure_pct"],
        exposed as f64 / bars.len() as f64 * 100.0,
        "exposure",
    );
    close_to(&result["win_rate_pct"], won as f64 / trips as f64 * 100.0, "win rate");
    close_to(
        &result["buy_and_hold_return_pct"],
        (0.996 * last / first - 1.0) * 100.0,
        "buy and hold",
    );
    assert_eq!(result["round_trips"], trips);
    let fees: f64 = fills.iter().map(|f| f[4].parse::<f64>().unwrap()).sum();
    close_to(
        &Value::from(result["fees_paid"].as_str().unwrap().parse::<f64>().unwrap()),
        fees,
        "fees",
    );
}

/// `d` to the cent, half away from zero, with thousands separators: worked out here apart from
/// the program's own formatting.
fn cents(d: rust_decimal::Decimal) -> String {
    let rounded = d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    let text = format!("{rounded:.2}");
    let (whole, fraction) = text.split_once('.').unwrap();
    let (sign, digits) = whole.strip_prefix('-').map_or(("", whole), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{fraction}")
}

/// People read the summary rounded: money to the cent, percentages to 2 places, and no Sharpe or
/// Sortino over 2 days and 17 round trips (with the reason). The JSON and the fills CSV of the
/// same backtest keep every digit.
#[test]
fn the_text_summary_shows_cents_and_the_json_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_in(dir.path(), "assets/btcusd_1m_20170903_20170904.csv");
    let trades = dir.path().join("trades.csv");
    let args = ["--data", data.to_str().unwrap(), "--short", "30", "--long", "120"];
    let out = backtest(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut json_args = args.to_vec();
    json_args.extend(["--json", "--trades", trades.to_str().unwrap()]);
    let exact = json(&backtest(dir.path(), &json_args));

    let end: rust_decimal::Decimal = exact["end_equity"].as_str().unwrap().parse().unwrap();
    let fees: rust_decimal::Decimal = exact["fees_paid"].as_str().unwrap().parse().unwrap();
    assert!(end.normalize().scale() > 2, "the JSON keeps every digit: {end}");
    assert!(fees.normalize().scale() > 2, "the JSON keeps every digit: {fees}");
    let last_fill = csv_rows(&trades).pop().unwrap();
    assert_eq!(
        last_fill.split(',').nth(5).unwrap(),
        exact["cash"].as_str().unwrap(),
        "the fills CSV is exact too"
    );
    for line in [
        "  start equity  100,000.00 USD\n".to_owned(),
        format!("  end equity    {} USD  (-18.39%)\n", cents(end)),
        format!("  fees paid     {} USD   (fee rate 0.4%", cents(fees)),
        "  Sharpe        —   Sortino —   (needs 30 days of bars or 30 round trips; this run has 2.0 days and 17)\n"
            .to_owned(),
        "  trades        34 fills, 17 round trips, win rate 5.88%\n".to_owned(),
    ] {
        assert!(text.contains(&line), "{line:?} missing from:\n{text}");
    }
    assert_eq!(cents(end), "81,607.12");
    assert!(!text.contains(exact["end_equity"].as_str().unwrap()), "{text}");
    assert_eq!(exact["ratios_meaningful"], false);
    assert!(exact["sharpe"].as_f64().is_some(), "machines still get the number");
    assert_eq!(
        exact["ratios_reason"],
        "needs 30 days of bars or 30 round trips; this run has 2.0 days and 17"
    );

    // 75 round trips carry the ratios, even over 2 days: shown to 2 places.
    let seed = ["--data", data.to_str().unwrap(), "--preset", "seed"];
    let text = stdout(&backtest(dir.path(), &seed));
    let mut json_args = seed.to_vec();
    json_args.push("--json");
    let exact = json(&backtest(dir.path(), &json_args));
    assert_eq!(exact["ratios_meaningful"], true);
    let sharpe = format!("{:.2}", exact["sharpe"].as_f64().unwrap());
    assert!(text.contains(&format!("  Sharpe        {sharpe}   Sortino ")), "{text}");
    assert!(text.contains("  end equity    99,997.35 USD  (0.00%)\n"), "{text}");
    assert_eq!(exact["end_equity"], "99997.35129");
}

#[test]
fn a_sweep_ranks_every_combination_and_agrees_with_single_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_in(dir.path(), "tests/data/btcusd_1m_20180404_20180406.csv");
    let data = data.to_str().unwrap();
    let report = dir.path().join("sweep.html");
    let result = json(&backtest(
        dir.path(),
        &[
            "--data",
            data,
            "--short",
            "2..10:2",
            "--long",
            "5..30",
            "--step",
            "5",
            "--metric",
            "return",
            "--top",
            "50",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    // shorts 2,4,6,8,10 x longs 5,10,...,30, keeping short < long.
    let expected: usize = [2, 4, 6, 8, 10]
        .iter()
        .map(|s| [5, 10, 15, 20, 25, 30].iter().filter(|l| *l > s).count())
        .sum();
    assert_eq!(result["mode"], "sweep");
    assert_eq!(result["combinations"], expected);
    let top = result["top"].as_array().unwrap();
    assert_eq!(top.len(), expected);
    let returns: Vec<f64> = top
        .iter()
        .map(|r| r["performance"]["return_pct"].as_f64().unwrap())
        .collect();
    assert!(
        returns.windows(2).all(|w| w[0] >= w[1]),
        "ranked by return: {returns:?}"
    );

    // Any combination, backtested alone, gives the sweep's figures.
    for pick in [&top[0], &top[expected / 2], &top[expected - 1]] {
        let (short, long) = (pick["short"].to_string(), pick["long"].to_string());
        let single = json(&backtest(
            dir.path(),
            &["--data", data, "--short", &short, "--long", &long, "--json"],
        ));
        assert_eq!(single["end_equity"], pick["end_equity"], "{short}/{long}");
        assert_eq!(
            single["return_pct"], pick["performance"]["return_pct"],
            "{short}/{long}"
        );
        assert_eq!(single["sharpe"], pick["performance"]["sharpe"], "{short}/{long}");
    }
    assert_eq!(result["best"]["strategy"]["short"], top[0]["short"]);
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("report-data"), "the report embeds its data");
}

#[test]
fn gzip_files_and_the_store_give_the_same_backtest() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = copy_in(dir.path(), "tests/data/btcusd_1m_20171217.csv");
    let gz = dir.path().join("bars.csv.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    encoder.write_all(&std::fs::read(&data).unwrap()).unwrap();
    encoder.finish().unwrap();

    let plain = json(&backtest(
        dir.path(),
        &["--data", data.to_str().unwrap(), "--json", "--cache", "off"],
    ));
    let zipped = json(&backtest(dir.path(), &["--data", gz.to_str().unwrap(), "--json"]));
    assert_eq!(zipped["end_equity"], plain["end_equity"]);
    assert_eq!(zipped["fills"], plain["fills"]);

    // A run stores its bars; the store then backtests like the file.
    let out = nanotrader(
        dir.path(),
        &[
            "run",
            "--source",
            "replay",
            "--speed",
            "max",
            "--no-web",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stored = json(&backtest(dir.path(), &["--from-store", "--pair", "BTC/USD", "--json"]));
    assert_eq!(stored["bars"], plain["bars"]);
    assert_eq!(stored["end_equity"], plain["end_equity"]);
    let ranged = json(&backtest(
        dir.path(),
        &[
            "--from-store",
            "--since",
            "1513512000",
            "--until",
            "2017-12-17T18:00:00Z",
            "--json",
        ],
    ));
    assert_eq!(ranged["bars"], 6 * 60, "12:00 to 18:00, the end exclusive");
}

#[test]
fn bad_input_names_the_file_and_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let header = "ts,open,high,low,close,volume\n";
    let rows: String = (1..=30)
        .map(|i| format!("{},{i},{i},{i},{i},1\n", 1_600_000_000 + 60 * i))
        .collect();
    let lines: Vec<&str> = rows.lines().collect();
    let with = |i: usize, row: &str| {
        let mut l = lines.clone();
        l[i] = row;
        format!("{header}{}\n", l.join("\n"))
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("unsorted.csv", with(9, "1600000000,1,1,1,1,1"), "line 11"),
        (
            "duplicate.csv",
            with(9, lines[8]),
            "line 11, column 1 (ts): duplicate timestamp 2020-09-13T12:35:40.000Z",
        ),
        (
            "text.csv",
            with(4, "1600000300,1,1,1,abc,1"),
            "line 6, column 5 (close): found 'abc', expected a number like 4652.69",
        ),
        ("empty.csv", String::new(), "empty file"),
        ("header-only.csv", header.to_owned(), "empty file"),
        ("short.csv", format!("{header}{}\n", lines[..15].join("\n")), "line 16"),
    ];
    for (name, text, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = backtest(dir.path(), &["--data", path.to_str().unwrap(), "--long", "20"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(want),
            "{name}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    let missing = backtest(dir.path(), &["--data", "/nonexistent/bars.csv"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("cannot read /nonexistent/bars.csv"),
        "{}",
        stderr(&missing)
    );
    // A refused backtest leaves the trades file of an earlier one as it was (the file is made
    // ready while the backtest computes, so only once nothing can refuse it).
    let earlier = dir.path().join("earlier-trades.csv");
    std::fs::write(&earlier, "kept\n").unwrap();
    for args in [
        &["--short", "30", "--long", "20"][..],
        &["--short", "10..5"],
        &["--short", "20..30", "--long", "5..10"],
        &["--strategy", "ema-cross", "--short", "5..10"],
        &["--long", "20"],
    ] {
        let path = dir.path().join("short.csv");
        let mut all = vec!["--data", path.to_str().unwrap(), "--trades", earlier.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = backtest(dir.path(), &all);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim().lines().count(), 1, "{args:?}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&earlier).unwrap(), "kept\n", "{args:?}");
    }
    // A trades file that cannot be made: one line naming it, after the backtest.
    let data = dir.path().join("good.csv");
    std::fs::write(&data, format!("{header}{rows}")).unwrap();
    let unwritable = dir.path().join("no-such-dir").join("trades.csv");
    let out = backtest(
        dir.path(),
        &[
            "--data",
            data.to_str().unwrap(),
            "--long",
            "20",
            "--trades",
            unwritable.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("cannot write {}", unwritable.display())), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn ctrl_c_during_a_sweep_says_how_far_it_got_and_exits_130() {
    use std::io::Read as _;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    // 20,000 bars: the grid's 7,925 combinations take many seconds, here and anywhere.
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for i in 0..20_000i64 {
        let cents = 400_000 + (i * 7_919) % 30_000 - (i / 50 % 7) * 1_000;
        let price = |c: i64| format!("{}.{:02}", c / 100, c % 100);
        text.push_str(&format!(
            "{},{},{},{},{},1.5\n",
            1_504_396_800 + i * 60,
            price(cents),
            price(cents + 100),
            price(cents - 100),
            price(cents)
        ));
    }
    let data = dir.path().join("long.csv");
    std::fs::write(&data, text).unwrap();
    let mut child = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "backtest",
            "--data",
            data.to_str().unwrap(),
            "--short",
            "5..50",
            "--long",
            "10..200",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr_log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let drain = common::running::drain(child.stderr.take().unwrap(), stderr_log.clone());
    let so_far = || String::from_utf8_lossy(&stderr_log.lock().unwrap()).into_owned();
    // Once the sweep says it has started, Ctrl-C.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !so_far().contains("sweep: 7,925 combinations on ") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before its sweep started: {}",
            so_far()
        );
        assert!(Instant::now() < deadline, "no sweep line: {}", so_far());
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after Ctrl-C: {}", so_far());
        std::thread::sleep(Duration::from_millis(20));
    };
    drain.join().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let err = so_far();
    assert_eq!(status.code(), Some(130), "{err}");
    let last = err.lines().last().unwrap_or_default();
    let done: usize = last
        .strip_prefix("interrupted: ")
        .and_then(|rest| rest.strip_suffix(" of 7,925 combinations done"))
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap_or_else(|| panic!("one line saying how far it got: {err}"));
    assert!(done < 7_925, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.is_empty(), "no summary for a sweep that did not finish: {out}");
}
