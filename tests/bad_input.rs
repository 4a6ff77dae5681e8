//! Bad input: one clear line on stderr, exit code 2, never a panic.

mod common;
use common::*;

use std::path::Path;

struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Words the one-line message must contain.
    expect: &'static [&'static str],
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn every_bad_input_gets_one_line_and_exit_code_2() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let header = "ts,open,high,low,close,volume\n";
    let malformed = write(
        t,
        "malformed.csv",
        &format!("{header}1,10,11,9,10,1\n61,10,11,9,abc,1\n121,10,11,9,10,1\n"),
    );
    let unsorted = write(
        t,
        "unsorted.csv",
        &format!("{header}120,10,11,9,10,1\n60,10,11,9,10,1\n"),
    );
    let empty = write(t, "empty.csv", "");
    let blocker = write(t, "not-a-dir", "x");
    let bad_config = write(t, "bad.toml", "speed = \"warp\"\n");
    let cases = vec![
        Case {
            name: "unknown flag value",
            args: strings(&["run", "--speed", "fast"]),
            expect: &["--speed", "fast"],
        },
        Case {
            name: "unknown source",
            args: strings(&["run", "--source", "nyse"]),
            expect: &["nyse"],
        },
        Case {
            name: "unknown flag",
            args: strings(&["run", "--sped", "60"]),
            expect: &["--sped"],
        },
        Case {
            name: "missing file",
            args: strings(&["run", "--data", "/nonexistent/bars.csv"]),
            expect: &["/nonexistent/bars.csv"],
        },
        Case {
            name: "malformed row",
            args: strings(&["run", "--data", &malformed]),
            expect: &["malformed.csv", "line 3", "abc"],
        },
        Case {
            name: "unsorted rows",
            args: strings(&["run", "--data", &unsorted]),
            expect: &["unsorted.csv", "line 3"],
        },
        Case {
            name: "empty file",
            args: strings(&["run", "--data", &empty]),
            expect: &["empty.csv", "empty"],
        },
        Case {
            name: "short >= long",
            args: strings(&["run", "--short", "20", "--long", "20"]),
            expect: &["short", "long"],
        },
        Case {
            name: "zero cash",
            args: strings(&["run", "--cash", "0"]),
            expect: &["cash"],
        },
        Case {
            name: "negative cash",
            args: strings(&["run", "--cash=-100"]),
            expect: &["cash"],
        },
        Case {
            name: "unwritable data dir",
            args: strings(&["--data-dir", &format!("{blocker}/sub"), "run"]),
            expect: &["not-a-dir/sub"],
        },
        Case {
            name: "bad config value",
            args: strings(&["--config", &bad_config, "run"]),
            expect: &["bad.toml", "warp"],
        },
        Case {
            name: "missing config",
            args: strings(&["--config", "/nonexistent.toml", "run"]),
            expect: &["/nonexistent.toml"],
        },
        Case {
            name: "bad sizing",
            args: strings(&["run", "--sizing", "fraction:2"]),
            expect: &["fraction"],
        },
        Case {
            name: "fills of a missing store",
            args: strings(&["--data-dir", &format!("{}/none", t.display()), "fills", "--csv"]),
            expect: &["no store"],
        },
    ];
    for case in cases {
        let data_dir = t.join(format!("store-{}", case.name.replace(' ', "-")));
        let mut cmd = bin();
        if !case.args.iter().any(|a| a == "--data-dir") {
            cmd.arg("--data-dir").arg(&data_dir);
        }
        let out = cmd.args(&case.args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: exit code; stderr: {err}", case.name);
        assert!(
            !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
            "{}: {err}",
            case.name
        );
        let message: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert!(!message.is_empty(), "{}: no error line in {err}", case.name);
        for word in case.expect {
            assert!(err.contains(word), "{}: '{word}' missing from {err}", case.name);
        }
    }
}

#[test]
fn skip_bad_rows_goes_on_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for i in 0..60 {
        let close = 100 + (i % 7);
        if i == 30 {
            text.push_str("1800,100,oops,99,100,1\n");
        } else {
            text.push_str(&format!("{},{close},{},{},{close},1\n", i * 60, close + 1, close - 1));
        }
    }
    let data = write(tmp.path(), "some-bad.csv", &text);
    let out = nanotrader(&tmp.path().join("store"), &["run", "--data", &data, "--skip-bad-rows"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("bars          59 ("), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("line 32"),
        "the skipped row is named: {}",
        stderr(&out)
    );
}
