//! What was recorded can be seen exactly: `bars --csv` gives back the replayed bars, and the
//! gaps in the data are marked, never filled.

mod common;
use common::*;

#[test]
fn stored_bars_equal_the_replayed_file_and_gaps_are_marked() {
    let dir = tempfile::tempdir().unwrap();
    // 3,887 real bars with 433 missing minutes (one, then a 432-minute outage).
    let data = repo_file("tests/data/btcusd_1m_20180404_20180406.csv");
    let out = nanotrader(dir.path(), &["run", "--data", data.to_str().unwrap(), "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let exported = stdout(&nanotrader(dir.path(), &["bars", "--csv", "--pair", "BTC/USD"]));
    let original = std::fs::read_to_string(&data).unwrap();
    let as_numbers = |text: &str| -> Vec<String> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').take(6).map(plain_number).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(exported.lines().next(), Some("ts,open,high,low,close,volume"));
    assert_eq!(
        as_numbers(&exported),
        as_numbers(&original),
        "no bar invented, lost or changed"
    );

    let summary = stdout(&nanotrader(dir.path(), &["bars"]));
    assert!(summary.contains("3887 stored"), "{summary}");
    assert!(summary.contains("2 (433 intervals"), "{summary}");
}
