//! Gap notices over a long replay of patchy data: one log line per burst of holes, at a bounded
//! rate, while every hole is still stored as a gap of its own.

mod common;
use common::*;

use std::fmt::Write as _;
use std::time::Instant;

/// 1,200 one-minute bars with every third minute missing: 400 holes.
fn patchy_bars(dir: &std::path::Path) -> (std::path::PathBuf, u64) {
    let mut text = String::from("ts,open,high,low,close,volume\n");
    let mut holes = 0;
    for minute in 0..1_200i64 {
        if minute % 3 == 1 {
            holes += 1;
            continue;
        }
        let price = 4_000 + (minute * 37) % 50;
        let _ = writeln!(
            text,
            "{},{price},{},{},{price},1.5",
            1_504_396_800 + minute * 60,
            price + 2,
            price - 2
        );
    }
    let path = dir.join("patchy.csv");
    std::fs::write(&path, text).unwrap();
    (path, holes)
}

/// The holes the gap lines tell of, and whether the log says it fell behind.
fn holes_logged(lines: &[&str]) -> (u64, bool) {
    let mut holes = 0;
    let mut behind = false;
    for line in lines {
        behind |= line.contains("the log fell behind");
        holes += match line.split_once("gaps: ") {
            Some((_, rest)) => rest.split(' ').next().unwrap().parse::<u64>().unwrap(),
            None => 1,
        };
    }
    (holes, behind)
}

#[test]
fn a_replay_with_many_holes_logs_one_line_per_burst() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, holes) = patchy_bars(tmp.path());
    // As fast as possible, then paced at 200 market minutes a second (6 s for the file).
    for speed in ["max", "12000"] {
        let store = tmp.path().join(format!("store-{speed}"));
        let started = Instant::now();
        let out = nanotrader(
            &store,
            &["run", "--data", data.to_str().unwrap(), "--speed", speed, "--no-web"],
        );
        let elapsed = started.elapsed().as_secs_f64();
        let err = stderr(&out);
        assert!(out.status.success(), "{speed}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("gap")).collect();
        // A line when a burst settles, at most one every 5 s, and the last one at the end.
        let bound = (elapsed / 5.0).floor() as usize + 2;
        assert!(
            !lines.is_empty() && lines.len() <= bound,
            "{speed}: {} gap lines in {elapsed:.1} s (at most {bound}):\n{err}",
            lines.len()
        );
        let (logged, behind) = holes_logged(&lines);
        assert!(
            logged == holes || (behind && logged < holes),
            "{speed}: the lines tell of {logged} holes of {holes}:\n{err}"
        );
        let summary = stdout(&nanotrader(&store, &["bars"]));
        assert!(
            summary.contains(&format!("{holes} ({holes} intervals")),
            "{speed}: every hole stored as a gap: {summary}"
        );
    }
}
