//! The dashboard in a real browser: tests/browser/dashboard.mjs drives headless Chromium
//! (through playwright-core) against a real `nanotrader demo` and checks the chart, the account
//! against the API, fill markers, the controls, the replay's label ("replay 3000x", the data's
//! time, never "live"), the buy-and-hold line and legend, and the CSP. It needs /usr/bin/chromium and Node.js:
//! without them the test is skipped loudly, unless NANOTRADER_REQUIRE_BROWSER=1 (set in CI) makes
//! that a failure. Screenshots land in target/dashboard.png and target/dashboard-phone.png.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

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

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let Some(scripts) = browser_scripts("dashboard_browser") else {
        return;
    };
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let demo = Demo::start(data_dir.path());
    let screenshot = repo_file("target/dashboard.png");

    let label = format!("replay {SPEED}x");
    let args = [demo.url.as_ref(), screenshot.as_os_str(), label.as_ref()];
    let Some(out) = run_browser_script(&scripts.join("dashboard.mjs"), &args, SCRIPT_TIMEOUT) else {
        panic!("dashboard.mjs did not finish within {SCRIPT_TIMEOUT:?}\n{}", demo.log());
    };
    assert!(
        out.status.success(),
        "the browser test failed against {} (its progress is above):\n{}\n{}",
        demo.url,
        stderr(&out),
        demo.log()
    );
    assert!(screenshot.is_file(), "no screenshot at {}", screenshot.display());
}
