//! Crash safety: a run killed with SIGKILL and started again, any number of times, ends with
//! exactly the fills of an uninterrupted run; a run stopped with SIGINT stops cleanly.

mod common;
use common::*;

use std::process::{Child, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const DATA: &str = "assets/btcusd_1m_20170903_20170904.csv";

fn spawn_run(dir: &std::path::Path, speed: &str) -> Child {
    bin()
        .arg("--data-dir")
        .arg(dir)
        .args([
            "run",
            "--data",
            repo_file(DATA).to_str().unwrap(),
            "--preset",
            "seed",
            "--speed",
            speed,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanotrader starts")
}

/// Waits until the child has stored at least `min_fills` fills (so the kill lands mid-run).
fn wait_for_fills(dir: &std::path::Path, child: &mut Child, min_fills: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        if dir.join("nanotrader.sqlite").exists() {
            let out = nanotrader(dir, &["fills", "--csv"]);
            if out.status.success() {
                let n = stdout(&out).lines().count().saturating_sub(1);
                if n >= min_fills {
                    return n;
                }
            }
        }
        assert!(Instant::now() < deadline, "no progress");
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_and_restarted_runs_end_with_the_uninterrupted_fills() {
    let reference_dir = tempfile::tempdir().unwrap();
    let out = nanotrader(
        reference_dir.path(),
        &[
            "run",
            "--data",
            repo_file(DATA).to_str().unwrap(),
            "--preset",
            "seed",
            "--speed",
            "max",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = fills_csv(reference_dir.path(), None);
    assert_eq!(expected.len(), 150);

    let dir = tempfile::tempdir().unwrap();
    // 2,880 one-minute bars at 12,000x take about 14 s: room for several kills mid-run.
    for min_fills in [10, 40, 90] {
        let mut child = spawn_run(dir.path(), "12000");
        wait_for_fills(dir.path(), &mut child, min_fills);
        child.kill().unwrap(); // SIGKILL: no flush, no clean-up
        child.wait().unwrap();
        let stored = fills_csv(dir.path(), None);
        assert!(stored.len() >= min_fills);
        assert_eq!(
            stored,
            expected[..stored.len()],
            "stored fills are a prefix of the uninterrupted run's"
        );
    }
    let mut child = spawn_run(dir.path(), "max");
    let status = child.wait().unwrap();
    let mut summary = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut summary).unwrap();
    assert!(status.success(), "final run failed");
    assert!(
        summary.contains("nanotrader run 1 completed"),
        "the same run was resumed:\n{summary}"
    );
    assert!(summary.contains("bars          2880 ("), "{summary}");
    assert_eq!(fills_csv(dir.path(), None), expected, "no fill lost or repeated");
}

#[test]
fn sigint_stops_cleanly_and_the_next_start_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(dir.path(), "12000");
    wait_for_fills(dir.path(), &mut child, 5);
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "SIGINT is a clean stop: {}", stderr(&output));
    assert!(stdout(&output).contains("interrupted"), "{}", stdout(&output));
    let runs = stdout(&nanotrader(dir.path(), &["runs"]));
    assert!(runs.contains("interrupted"), "{runs}");

    let out = nanotrader(
        dir.path(),
        &["run", "--data", repo_file(DATA).to_str().unwrap(), "--preset", "seed"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nanotrader run 1 completed"), "{}", stdout(&out));
    assert_eq!(
        fills_csv(dir.path(), None),
        reference_fills("tests/data/seed_btcusd_1m_20170903_20170904_trades.csv")
    );
}
