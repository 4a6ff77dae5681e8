//! The dashboard in a real browser: tests/browser/dashboard.mjs drives headless Chromium
//! (through playwright-core) against a real `nanotrader demo` and checks the chart, the account
//! against the API, fill markers, the controls and the CSP. It needs /usr/bin/chromium and Node.js:
//! without them the test is skipped loudly, unless NANOTRADER_REQUIRE_BROWSER=1 (set in CI) makes
//! that a failure. Screenshots land in target/dashboard.png and target/dashboard-phone.png.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// 50 one-minute bars a second: on the built-in data SMA(10) and SMA(20) cross every few dozen
/// bars, so fills come well within a second while the page is watched.
const SPEED: &str = "3000";
/// dashboard.mjs stops itself after 120 s; this only catches a stuck `node`.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// A running `nanotrader demo`; killed when dropped, whatever the test's outcome.
struct Demo {
    child: Child,
    url: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Demo {
    fn start(data_dir: &Path) -> Self {
        let mut child = bin()
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--speed",
                SPEED,
                "--fresh",
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nanotrader starts");
        // Both pipes are drained on threads so the child never blocks on a full pipe; the last
        // log lines are kept for a failure message.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr is piped");
        let kept = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut lines = kept.lock().unwrap_or_else(|e| e.into_inner());
                if lines.len() == 40 {
                    lines.remove(0);
                }
                lines.push(line);
            }
        });
        let (tx, stdout) = mpsc::channel();
        let pipe = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut demo = Self {
            child,
            url: String::new(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        demo.url = loop {
            match stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("dashboard: ") {
                        let url = rest.split_whitespace().next().unwrap_or_default().to_owned();
                        assert!(url.starts_with("http://"), "unexpected dashboard line: {line}");
                        break url;
                    }
                }
                Err(_) => panic!(
                    "nanotrader printed no `dashboard: URL` line within 60 s\n{}",
                    demo.log()
                ),
            }
        };
        demo
    }

    fn log(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        format!("--- nanotrader's last log lines ---\n{}", lines.join("\n"))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why the browser test cannot run here, if it cannot.
fn missing_tools() -> Option<String> {
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
fn install_script_dependencies(dir: &Path) {
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

#[test]
fn the_dashboard_works_in_a_real_browser() {
    if let Some(why) = missing_tools() {
        if std::env::var("NANOTRADER_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("NANOTRADER_REQUIRE_BROWSER=1 but {why}");
        }
        eprintln!("\n**************************************************************");
        eprintln!("*** dashboard_browser skipped: {why}");
        eprintln!("**************************************************************\n");
        return;
    }
    let scripts = repo_file("tests/browser");
    install_script_dependencies(&scripts);
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let demo = Demo::start(data_dir.path());
    let screenshot = repo_file("target/dashboard.png");

    let mut node = Command::new("node")
        .arg(scripts.join("dashboard.mjs"))
        .arg(&demo.url)
        .arg(&screenshot)
        .env("CHROMIUM_PATH", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let started = Instant::now();
    while node.try_wait().expect("node can be waited for").is_none() {
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = node.kill();
            panic!("dashboard.mjs did not finish within {SCRIPT_TIMEOUT:?}\n{}", demo.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = node.wait_with_output().expect("node's output");
    print!("{}", stdout(&out));
    assert!(
        out.status.success(),
        "the browser test failed against {} (its progress is above):\n{}\n{}",
        demo.url,
        stderr(&out),
        demo.log()
    );
    assert!(screenshot.is_file(), "no screenshot at {}", screenshot.display());
}
