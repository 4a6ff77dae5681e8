//! The API against its own description: the pinned schemathesis (tests/python/requirements.txt,
//! in the test venv) runs all its checks against a live `nanotrader demo` on loopback, from the
//! description the server itself serves. Every response must match its documented status,
//! content type and schema; every request the description allows must be answered, every one it
//! forbids refused (4xx); methods a route does not take must be a 405 with `Allow`. 0 failures.

mod common;
use common::running::Running;
use common::*;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Test cases per operation and phase: enough to reach every parameter's edges (the coverage
/// phase tries those whatever this is) in about a minute on a loaded 2-core machine.
const MAX_EXAMPLES: &str = "40";
/// Whole run; only a stuck server or tool would come near it.
const TIMEOUT: Duration = Duration::from_secs(600);

#[test]
fn the_api_matches_its_openapi_description_under_schemathesis() {
    let Some(python) = python("schemathesis") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut demo = bin();
    demo.arg("--data-dir")
        .arg(dir.path().join("store"))
        .args(["demo", "--listen", "127.0.0.1:0"]);
    let app = Running::start(demo);
    // The server is up before the run: wait for it, so no answer is "no run yet".
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.get_json("/api/status").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the demo never showed: {}",
            app.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, spec) = app.get_json("/api/openapi.json");
    assert_eq!(status, 200);
    let operations: usize = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| *path != "/api/openapi.json")
        .map(|(_, methods)| methods.as_object().unwrap().len())
        .sum();
    assert!(operations >= 8, "{operations} operations described");

    let report = dir.path().join("report.json");
    let url = format!("{}/api/openapi.json", app.url);
    // Run in the temporary directory: schemathesis may leave files where it runs.
    let mut st = Command::new(&python);
    st.current_dir(dir.path())
        .args(["-m", "schemathesis.cli", "--no-color", "run", &url])
        .args(["--checks", "all", "--max-examples", MAX_EXAMPLES, "--workers", "1"])
        .args(["--continue-on-failure", "--request-timeout", "60"])
        .args(["--generation-database", ":memory:", "--report", "json"])
        .arg("--report-json-path")
        .arg(&report);
    let out = run_with_timeout(st, TIMEOUT);
    let output = format!("{}{}", stdout(&out), stderr(&out));
    let report: Value = std::fs::read_to_string(&report)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| panic!("schemathesis wrote no report:\n{output}"));
    assert!(
        out.status.success()
            && report["exit_code"] == 0
            && report["failures"].as_array().is_some_and(|f| f.is_empty())
            && report["errors"].as_array().is_some_and(|e| e.is_empty()),
        "schemathesis found problems ({}):\n{output}\n{}",
        out.status,
        app.stderr_so_far()
    );
    // It did test: every operation (the description itself aside), many cases.
    assert_eq!(report["complete"], true, "{output}");
    assert_eq!(report["operations"]["tested"], operations, "{output}");
    let cases = report["test_cases"]["generated"].as_u64().unwrap_or(0);
    assert!(cases as usize >= 10 * operations, "only {cases} test cases:\n{output}");
    println!("{output}");
    // The demo is still running and trading after all that.
    assert_eq!(app.get_json("/api/status").0, 200);
}

/// Runs `cmd` to its end, killing it after `timeout`.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let err = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let drains = [
        running::drain(child.stdout.take().unwrap(), out.clone()),
        running::drain(child.stderr.take().unwrap(), err.clone()),
    ];
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {timeout:?}:\n{}",
                String::from_utf8_lossy(&out.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for drain in drains {
        drain.join().unwrap();
    }
    let take = |buffer: &std::sync::Mutex<Vec<u8>>| std::mem::take(&mut *buffer.lock().unwrap());
    std::process::Output {
        status,
        stdout: take(&out),
        stderr: take(&err),
    }
}
