//! Helpers for tests that drive the real `nanotrader` binary against a real SQLite file.
#![allow(dead_code)]

pub mod pg;
pub mod running;
pub mod store_check;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nanotrader"));
    // Keep the tests' environment from leaking into the binary's configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("NANOTRADER_") {
            cmd.env_remove(key);
        }
    }
    // Nor any Kraken key of the machine's: a test's keys are the mock's, given explicitly.
    for key in ["KRAKEN_API_KEY", "KRAKEN_API_SECRET", "kraken_key", "kraken_secret"] {
        cmd.env_remove(key);
    }
    // Nor the machine's database: `DATABASE_URL` would move every test's store to it.
    cmd.env_remove("DATABASE_URL");
    // Tests run side by side: each dashboard takes a free port instead of 8080.
    cmd.env("NANOTRADER_LISTEN", "127.0.0.1:0");
    cmd
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// `run --source kraken` against the mock exchange with the store in `data_dir`, noticing a
/// silent feed after 1 s; callers add their own arguments and output handling.
pub fn kraken_run(data_dir: &Path, mock: &nanotrader_kraken_mock::MockKraken) -> Command {
    let mut cmd = bin();
    cmd.arg("--data-dir").arg(data_dir).args([
        "run",
        "--source",
        "kraken",
        "--kraken-rest-url",
        &mock.rest_url(),
        "--kraken-ws-url",
        &mock.ws_url(),
        "--kraken-ws-auth-url",
        &mock.ws_auth_url(),
        "--feed-timeout-secs",
        "1",
    ]);
    cmd
}

/// A webhook receiver on loopback (for `--notify-url`), on the calling runtime: its URL, whose
/// path stands for a secret, and every JSON body it got, in order.
pub async fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = axum::Router::new().route(
        "/hooks/{secret}",
        post({
            let got = got.clone();
            move |axum::Json(body): axum::Json<serde_json::Value>| {
                let got = got.clone();
                async move {
                    got.lock().unwrap().push(body);
                    "ok"
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/hooks/s3cr3t-w3bh00k-t0k3n-abcdef",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// An HTTP client for the dashboard's API (rustls with the ring provider, as the binary uses).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs the binary with `args` against the store in `data_dir`.
pub fn nanotrader(data_dir: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("the nanotrader binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stored fills of the latest run (or `run`) as CSV rows, header dropped.
pub fn fills_csv(data_dir: &Path, run: Option<i64>) -> Vec<String> {
    let mut args = vec!["fills", "--csv"];
    let id;
    if let Some(r) = run {
        id = r.to_string();
        args.extend(["--run", &id]);
    }
    let out = nanotrader(data_dir, &args);
    assert!(out.status.success(), "fills export failed: {}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("ts,side,qty,price,fee,cash_after,position_after,order_id,trade_id")
    );
    // The rows as the reference has them; the broker's ids (on paper, the order id twice) apart.
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let (row, ids) = fields.split_at(7);
            assert!(
                ids.len() == 2 && ids[0] == ids[1] && ids[0].parse::<u64>().is_ok(),
                "{line}"
            );
            row.join(",")
        })
        .collect()
}

/// Reference trades (ts,side,qty,price,cash_after,position_after) in our export's shape
/// (a fee column of 0 after the price: the seed paid no fees). The reference spells some numbers
/// the way Python's `Decimal.normalize` does (`4.56E+3`); they are compared as numbers.
pub fn reference_fills(rel: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_file(rel)).expect("reference trades readable");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let n = |s: &str| plain_number(s);
            format!("{},{},{},{},0,{},{}", f[0], f[1], n(f[2]), n(f[3]), n(f[4]), n(f[5]))
        })
        .collect()
}

/// A decimal written plainly without trailing zeros, whatever its input spelling.
pub fn plain_number(text: &str) -> String {
    let d = if text.contains(['e', 'E']) {
        rust_decimal::Decimal::from_scientific(text)
    } else {
        text.parse::<rust_decimal::Decimal>()
    }
    .unwrap_or_else(|e| panic!("reference number '{text}': {e}"));
    if d.is_zero() {
        "0".to_owned()
    } else {
        d.normalize().to_string()
    }
}

/// Debian's Chromium, which the browser tests drive through playwright-core.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// tests/browser with its pinned playwright-core installed, or `None` when `test` has to be
/// skipped because Chromium or Node.js is missing (loudly; a failure under
/// NANOTRADER_REQUIRE_BROWSER=1, as in CI).
pub fn browser_scripts(test: &str) -> Option<PathBuf> {
    if let Some(why) = missing_browser_tools() {
        if std::env::var("NANOTRADER_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("NANOTRADER_REQUIRE_BROWSER=1 but {why}");
        }
        eprintln!("\n**************************************************************");
        eprintln!("*** {test} skipped: {why}");
        eprintln!("**************************************************************\n");
        return None;
    }
    let dir = repo_file("tests/browser");
    install_browser_script_dependencies(&dir);
    Some(dir)
}

/// Why a browser test cannot run here, if it cannot.
fn missing_browser_tools() -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!(
            "chromium not installed ({CHROMIUM} is missing; apt-get install -y --no-install-recommends chromium)"
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("Node.js not installed (`node` does not run)".into()),
    }
}

/// playwright-core, pinned by tests/browser/package-lock.json, installed on first use.
fn install_browser_script_dependencies(dir: &Path) {
    if dir.join("node_modules/playwright-core/package.json").is_file() {
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let out = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `npm ci` in {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "`npm ci` in {} failed:\n{}{}",
        dir.display(),
        stdout(&out),
        stderr(&out)
    );
}

/// Runs `node SCRIPT ARGS...` against `CHROMIUM` and prints its progress; `None` when it did not
/// finish within `timeout` (it is killed then).
pub fn run_browser_script(script: &Path, args: &[&std::ffi::OsStr], timeout: std::time::Duration) -> Option<Output> {
    let mut node = Command::new("node")
        .arg(script)
        .args(args)
        .env("CHROMIUM_PATH", CHROMIUM)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node starts");
    let started = std::time::Instant::now();
    while node.try_wait().expect("node can be waited for").is_none() {
        if started.elapsed() > timeout {
            let _ = node.kill();
            let _ = node.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = node.wait_with_output().expect("node's output");
    print!("{}", stdout(&out));
    Some(out)
}

/// The pinned test venv's Python (tests/python/requirements.txt: pandas, schemathesis), made by
/// `.ci/run` as target/test-venv, or `None` when `test` has to be skipped because it is missing
/// (loudly; a failure under NANOTRADER_REQUIRE_PYTHON=1, as in CI). Make it by hand with
/// `python3 -m venv target/test-venv && target/test-venv/bin/pip install -r tests/python/requirements.txt`.
pub fn python(test: &str) -> Option<PathBuf> {
    let python = repo_file("target/test-venv/bin/python");
    if python.is_file() {
        return Some(python);
    }
    let why = format!("the test venv is missing ({} does not exist)", python.display());
    if std::env::var("NANOTRADER_REQUIRE_PYTHON").is_ok_and(|v| v == "1") {
        panic!("NANOTRADER_REQUIRE_PYTHON=1 but {why}");
    }
    eprintln!("\n**************************************************************");
    eprintln!("*** {test} skipped: {why}");
    eprintln!("**************************************************************\n");
    None
}

/// Runs `python -c SCRIPT ARGS...` and returns its output, failing the test with its stderr when
/// it fails.
pub fn run_python(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> Output {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("the test venv's python runs");
    assert!(out.status.success(), "python failed:\n{}{}", stdout(&out), stderr(&out));
    out
}

/// Writes a bar file of at least `bars` rows: copies of `source` one after another in time.
pub fn repeat_bars(source: &Path, out: &Path, bars: usize) {
    let text = std::fs::read_to_string(source).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<(i64, &str)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (ts, rest) = l.split_once(',').unwrap();
            (ts.parse().unwrap(), rest)
        })
        .collect();
    let span = rows.last().unwrap().0 - rows[0].0 + 60;
    let mut csv = String::from(header);
    csv.push('\n');
    for copy in 0..bars.div_ceil(rows.len()).max(1) as i64 {
        for (ts, rest) in &rows {
            csv.push_str(&format!("{},{rest}\n", ts + copy * span));
        }
    }
    std::fs::write(out, csv).unwrap();
}

/// `backtest --data DATA OPTIONS --json --trades FILE` in `dir`: the trades file's rows (no
/// header) and the JSON.
pub fn backtest_fills(dir: &Path, data: &str, options: &[&str]) -> (Vec<String>, serde_json::Value) {
    let trades = dir.join("trades.csv");
    let mut args = vec!["backtest", "--data", data, "--cache", "off", "--json", "--trades"];
    args.push(trades.to_str().unwrap());
    args.extend_from_slice(options);
    let out = nanotrader(dir, &args);
    assert!(out.status.success(), "{options:?}: {}", stderr(&out));
    let json = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(&trades).unwrap();
    (text.lines().skip(1).map(str::to_owned).collect(), json)
}
