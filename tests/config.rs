//! Configuration precedence through the real binary: flag > environment > config file > preset > default.

mod common;
use common::*;

#[test]
fn flags_beat_environment_beat_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("from-file");
    let config = tmp.path().join("nanotrader.toml");
    std::fs::write(
        &config,
        format!(
            "data-dir = \"{}\"\nshort = 5\nlong = 30\nfee-rate = 0.001\nsizing = \"fixed:0.01\"\npreset = \"seed\"\n",
            store.display()
        ),
    )
    .unwrap();
    let data = repo_file("tests/data/btcusd_1m_20171217.csv");
    let out = bin()
        .args([
            "--config",
            config.to_str().unwrap(),
            "run",
            "--data",
            data.to_str().unwrap(),
            "--short",
            "6",
        ])
        .env("NANOTRADER_LONG", "40")
        .env("NANOTRADER_SHORT", "7")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        store.join("nanotrader.sqlite").is_file(),
        "data-dir comes from the config file"
    );

    let runs = stdout(&nanotrader(&store, &["runs"]));
    // short: flag (6) over env (7) over file (5); long: env (40) over file (30); the preset fills
    // decide-from-bar (22) but not what the file set (fee, sizing).
    for expected in [
        "\"short\":6",
        "\"long\":40",
        "\"fee_rate\":\"0.001\"",
        "\"sizing\":\"fixed:0.01\"",
        "\"decide_from_bar\":22",
    ] {
        assert!(runs.contains(expected), "{expected} missing from {runs}");
    }
    assert!(
        stdout(&out).contains("strategy      sma-cross 6/40"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn several_pairs_run_side_by_side_each_in_its_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = nanotrader(
        dir.path(),
        &[
            "run",
            "--source",
            "sim",
            "--pair",
            "BTC/USD, ETH/USD",
            "--sim-duration",
            "3h",
            "--sim-tick-secs",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = stdout(&out);
    for expected in [
        "nanotrader run 1 completed",
        "nanotrader run 2 completed",
        "(BTC/USD bars 1m)",
        "(ETH/USD bars 1m)",
    ] {
        assert!(summary.contains(expected), "{expected} missing from {summary}");
    }
    for pair in ["BTC/USD", "ETH/USD"] {
        let bars = stdout(&nanotrader(dir.path(), &["bars", "--pair", pair]));
        assert!(bars.contains("180 stored"), "{pair}: {bars}");
    }
    let replay = nanotrader(dir.path(), &["run", "--pair", "BTC/USD,ETH/USD", "--data", "x.csv"]);
    assert_eq!(replay.status.code(), Some(2));
    assert!(
        stderr(&replay).contains("several pairs need a live source"),
        "{}",
        stderr(&replay)
    );
}

#[test]
fn config_file_mistakes_name_the_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("nanotrader.toml");
    let data = repo_file("tests/data/btcusd_1m_20171217.csv");
    let run_with = |text: &str| {
        std::fs::write(&config, text).unwrap();
        bin()
            .arg("--data-dir")
            .arg(tmp.path().join("store"))
            .args([
                "--config",
                config.to_str().unwrap(),
                "run",
                "--data",
                data.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let cases = [
        (
            "short = 5\nlong = 30\n\nspeed = \"fast\"\n",
            "nanotrader.toml line 4, column 9, key 'speed': invalid speed 'fast'",
        ),
        (
            "short = 5\nfee_rate = 0.001\n",
            "nanotrader.toml line 2, column 1, key 'fee_rate': unknown key (did you mean 'fee-rate'?)",
        ),
        ("short = 5\nlong = \n", "nanotrader.toml line 2, column "),
    ];
    for (text, expected) in cases {
        let out = run_with(text);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text}: {err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
        assert!(line.contains(expected), "{text}: '{expected}' missing from {err}");
        assert!(line.contains(config.to_str().unwrap()), "the file is named: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}
