//! `--preset seed` reproduces the original program's trades exactly (known answers in
//! ../shared/reference, copied to tests/data).

mod common;
use common::*;

struct Case {
    bars: &'static str,
    trades: &'static str,
    account: &'static str,
}

const CASES: &[Case] = &[
    Case {
        bars: "assets/btcusd_1m_20170903_20170904.csv",
        trades: "tests/data/seed_btcusd_1m_20170903_20170904_trades.csv",
        account: "tests/data/seed_btcusd_1m_20170903_20170904_account.json",
    },
    Case {
        bars: "tests/data/btcusd_1m_20171217.csv",
        trades: "tests/data/seed_btcusd_1m_20171217_trades.csv",
        account: "tests/data/seed_btcusd_1m_20171217_account.json",
    },
];

#[test]
fn seed_preset_reproduces_the_reference_trades_and_account() {
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let data = repo_file(case.bars);
        let out = nanotrader(
            dir.path(),
            &[
                "run",
                "--source",
                "replay",
                "--data",
                data.to_str().unwrap(),
                "--preset",
                "seed",
                "--speed",
                "max",
            ],
        );
        assert!(out.status.success(), "{}: {}", case.bars, stderr(&out));
        assert_eq!(
            fills_csv(dir.path(), None),
            reference_fills(case.trades),
            "{}",
            case.bars
        );

        let account: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(repo_file(case.account)).unwrap()).unwrap();
        let summary = stdout(&out);
        let cash = account["cash"].as_str().unwrap();
        assert!(
            summary.contains(&format!("cash          {cash}\n")),
            "final cash {cash} not in:\n{summary}"
        );
        let bars = account["rows"].as_u64().unwrap();
        assert!(summary.contains(&format!("bars          {bars} (")), "{summary}");
        assert!(
            stderr(&out).contains("BUY"),
            "one log line per trade expected:\n{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_finished_run_is_not_resumed_and_fresh_runs_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = repo_file("tests/data/btcusd_1m_20171217.csv");
    let args = ["run", "--data", data.to_str().unwrap(), "--preset", "seed"];
    assert!(nanotrader(dir.path(), &args).status.success());
    let first = fills_csv(dir.path(), Some(1));
    let again = nanotrader(dir.path(), &args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nanotrader run 2 completed"),
        "{}",
        stdout(&again)
    );
    assert_eq!(fills_csv(dir.path(), Some(2)), first);
    assert_eq!(fills_csv(dir.path(), Some(1)), first, "run 1 untouched");
}
