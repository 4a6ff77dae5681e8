//! The streaming reader on every layout, its errors and real files.

use std::io::Cursor;

use super::*;
use crate::types::{Bar, Side, Trade};
use rust_decimal::Decimal;

fn reader(text: &str, skip: bool) -> Result<CsvReader, SourceError> {
    CsvReader::from_reader("data.csv", Cursor::new(text.as_bytes().to_vec()), skip)
}

fn read_all(text: &str, skip: bool) -> Result<(CsvReader, Vec<MarketEvent>), String> {
    let mut r = reader(text, skip).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    while let Some(ev) = r.read_event().map_err(|e| e.to_string())? {
        events.push(ev);
    }
    Ok((r, events))
}

fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn bar(ts: i64, o: &str, h: &str, l: &str, c: &str, v: &str, n: u32) -> MarketEvent {
    MarketEvent::Bar(Bar {
        ts: Timestamp::from_secs(ts),
        open: d(o),
        high: d(h),
        low: d(l),
        close: d(c),
        volume: d(v),
        trades: n,
    })
}

fn bar_of(ts: i64, o: &str, h: &str, l: &str, c: &str, v: &str, n: u32) -> Bar {
    match bar(ts, o, h, l, c, v, n) {
        MarketEvent::Bar(b) => b,
        _ => unreachable!(),
    }
}

fn trade(ns: i64, price: &str, size: &str, side: Option<Side>) -> MarketEvent {
    MarketEvent::Trade(Trade {
        ts: Timestamp::from_nanos(ns),
        price: d(price),
        size: d(size),
        side,
    })
}

#[test]
fn every_layout_reads() {
    let cases: Vec<(&str, &str, CsvKind, Vec<MarketEvent>)> = vec![
        (
            "bars",
            "ts,open,high,low,close,volume\n60,10,12,9,11,1.5\n120,11,11,11,11,0\n",
            CsvKind::Bars,
            vec![
                bar(60, "10", "12", "9", "11", "1.5", 0),
                bar(120, "11", "11", "11", "11", "0", 0),
            ],
        ),
        (
            "bars with trades, an ignored vwap column, spaces, CRLF and a BOM",
            "\u{feff}ts, open,high,low,close,vwap,volume,trades\r\n60, 10,12,9,11,10.5,1.5,3\r\n",
            CsvKind::Bars,
            vec![bar(60, "10", "12", "9", "11", "1.5", 3)],
        ),
        (
            "trades, sharing a timestamp",
            "ts_ns,price,volume,side,trade_id\n5,100.5,0.1,buy,1\n5,100.4,0.2,sell,2\n",
            CsvKind::Trades,
            vec![
                trade(5, "100.5", "0.1", Some(Side::Buy)),
                trade(5, "100.4", "0.2", Some(Side::Sell)),
            ],
        ),
        (
            "trades with an unknown side",
            "ts_ns,price,volume,side\n5,100.5,0.1,\n",
            CsvKind::Trades,
            vec![trade(5, "100.5", "0.1", None)],
        ),
        (
            "kraken time and sales (no header)",
            "1381095255.6133,122.5,0.1\n1381095256,123,0.2\n",
            CsvKind::Trades,
            vec![
                trade(1_381_095_255_613_300_000, "122.5", "0.1", None),
                trade(1_381_095_256_000_000_000, "123", "0.2", None),
            ],
        ),
        (
            "kraken ohlcvt (no header)",
            "1381095240,122,123,121,122.5,4.2,7\n",
            CsvKind::Bars,
            vec![bar(1_381_095_240, "122", "123", "121", "122.5", "4.2", 7)],
        ),
        (
            "pandas to_csv of a DatetimeIndex: unnamed first column, ISO times, floats",
            ",open,high,low,close,volume\n2017-09-03 00:00:20,4642.39,4652.71,4642.39,4652.69,1e-05\n\
             2017-09-03 00:01:20+00:00,4652.69,4652.69,4652.69,4652.69,0.0\n",
            CsvKind::Bars,
            vec![
                bar(1_504_396_820, "4642.39", "4652.71", "4642.39", "4652.69", "0.00001", 0),
                bar(1_504_396_880, "4652.69", "4652.69", "4652.69", "4652.69", "0", 0),
            ],
        ),
        (
            "Yahoo-style daily bars: dates, Adj Close ignored, blank lines skipped",
            "Date,Open,High,Low,Close,Adj Close,Volume\n2017-09-03,4585,4714,4469,4582,4582,1.5\n\n\
             2017-09-04,4582,4582,4000,4236,4236,2\n\n",
            CsvKind::Bars,
            vec![
                bar(1_504_396_800, "4585", "4714", "4469", "4582", "1.5", 0),
                bar(1_504_483_200, "4582", "4582", "4000", "4236", "2", 0),
            ],
        ),
        (
            "quoted fields (QUOTE_ALL), one holding a comma and a newline",
            "\"ts\",\"open\",\"high\",\"low\",\"close\",\"volume\",\"note\"\n\
             \"60\",\"10\",\"12\",\"9\",\"11\",\"1.5\",\"a, \"\"b\"\"\nc\"\n\"120\",\"11\",\"11\",\"11\",\"11\",\"0\",\"\"\n",
            CsvKind::Bars,
            vec![
                bar(60, "10", "12", "9", "11", "1.5", 0),
                bar(120, "11", "11", "11", "11", "0", 0),
            ],
        ),
        (
            "Binance klines (no header, ms times, count as trades)",
            "1502942400000,4261.48,4261.48,4261.48,4261.48,1.775183,1502942459999,7564.9,3,0.075183,320.39,0\n",
            CsvKind::Bars,
            vec![bar(
                1_502_942_400,
                "4261.48",
                "4261.48",
                "4261.48",
                "4261.48",
                "1.775183",
                3,
            )],
        ),
        (
            "Binance klines with a header and µs times",
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
             1735689600000000,1,1,1,1,2,1735689659999999,2,4,1,1,0\n",
            CsvKind::Bars,
            vec![bar(1_735_689_600, "1", "1", "1", "1", "2", 4)],
        ),
        (
            "Binance trades (no header): the taker sold when the buyer made the book",
            "3735683259,61837.63,0.02,1236.75,1723161255342,True,True\n\
             3735683260,61837.64,0.048,2968.2,1723161255617,false,True\n",
            CsvKind::Trades,
            vec![
                trade(1_723_161_255_342_000_000, "61837.63", "0.02", Some(Side::Sell)),
                trade(1_723_161_255_617_000_000, "61837.64", "0.048", Some(Side::Buy)),
            ],
        ),
        (
            "bars stamped at their close, in ms, with a trade count named count",
            "timestamp,open,high,low,close,volume,count\n1504396859999,1,2,1,2,3,7\n",
            CsvKind::Bars,
            vec![MarketEvent::Bar(Bar {
                ts: Timestamp::from_millis(1_504_396_859_999),
                ..bar_of(1, "1", "2", "1", "2", "3", 7)
            })],
        ),
    ];
    for (what, text, kind, expected) in cases {
        let (r, events) = read_all(text, false).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.kind(), kind, "{what}");
        assert_eq!(events, expected, "{what}");
        assert_eq!(r.skipped_rows(), 0, "{what}");
    }
}

#[test]
fn bar_interval_is_the_smallest_step() {
    for (text, secs) in [
        ("ts,open,high,low,close,volume\n0,1,1,1,1,1\n", 60),
        ("ts,open,high,low,close,volume\n0,1,1,1,1,1\n300,1,1,1,1,1\n", 300),
        (
            "ts,open,high,low,close,volume\n0,1,1,1,1,1\n600,1,1,1,1,1\n900,1,1,1,1,1\n",
            300,
        ),
    ] {
        let r = reader(text, false).unwrap();
        assert_eq!(r.bar_interval(), Interval::from_secs(secs), "{text}");
    }
    let trades = reader("ts_ns,price,volume,side\n1,1,1,buy\n", false).unwrap();
    assert_eq!(trades.bar_interval(), None);
}

#[test]
fn bad_input_is_refused_with_file_and_line() {
    const BARS: &str = "ts,open,high,low,close,volume\n";
    const TRADES: &str = "ts_ns,price,volume,side\n";
    let cases = [
        (
            format!("{TRADES}1,abc,1,buy\n"),
            "data.csv line 2, column 2 (price): found 'abc', expected a number like 4652.69",
        ),
        (
            format!("{BARS}60,1,1,1,1,1\n60,x,1,1,1,1\n"),
            "data.csv line 3, column 2 (open): found 'x', expected a number",
        ),
        (
            format!("{BARS}1504396920,1,1,1,1,1\n1504396860,1,1,1,1,1\n"),
            "data.csv line 3, column 1 (ts): time 2017-09-03T00:01:00.000Z is before the previous \
             row's (2017-09-03T00:02:00.000Z): rows must be sorted by time, oldest first",
        ),
        (
            format!("{BARS}1504396860,1,1,1,1,1\n1504396860,1,1,1,1,1\n"),
            "data.csv line 3, column 1 (ts): duplicate timestamp 2017-09-03T00:01:00.000Z",
        ),
        (
            format!("{TRADES}7,1,1,buy\n6,1,1,buy\n"),
            "data.csv line 3, column 1 (ts_ns): time 1970-01-01T00:00:00.000Z is before",
        ),
        (
            "10.5,1,1\n10.25,1,1\n".to_string(),
            "data.csv line 2, column 1 (time): time 1970-01-01T00:00:10.250Z is before the previous \
             row's (1970-01-01T00:00:10.500Z)",
        ),
        (String::new(), "data.csv: empty file (no header or no rows)"),
        (BARS.to_string(), "data.csv: empty file (no header or no rows)"),
        ("\n\n".to_string(), "data.csv: empty file (no header or no rows)"),
        (
            format!("{TRADES}1,0,1,buy\n"),
            "line 2, column 2 (price): found '0', expected a price above 0",
        ),
        (
            format!("{BARS}60,-1,1,1,1,1\n"),
            "column 2 (open): found '-1', expected a price above 0",
        ),
        (
            format!("{BARS}60,1,1,1,1,-2\n"),
            "column 6 (volume): found '-2', expected a volume of 0 or more",
        ),
        (
            format!("{TRADES}1,1,0,buy\n"),
            "column 3 (volume): found '0', expected a volume above 0",
        ),
        (format!("{BARS}60,5,5,6,5,1\n"), "line 2: high 5 is below low 6"),
        (
            format!("{BARS}60,7,6,5,5,1\n"),
            "open 7 is outside the bar's range [5, 6]",
        ),
        (format!("{BARS}60,1,1,1,1\n"), "line 2: expected 6 fields, found 5"),
        (
            format!("{TRADES}1,1,1,up\n"),
            "column 4 (side): found 'up', expected buy or sell",
        ),
        (
            format!("{BARS}6e1,1,1,1,1,1\n"),
            "line 2, column 1 (ts): found '6e1', expected a time (unix seconds, ms, µs or ns, or an ISO 8601",
        ),
        (
            format!("{BARS}9223372037,1,1,1,1,1\n"),
            "found '9223372037', expected a time",
        ),
        (
            format!("{BARS}2017-09-03 25:00,1,1,1,1,1\n"),
            "found '2017-09-03 25:00', expected a time",
        ),
        (
            format!("{BARS}1504396800.0005,1,1,1,1,1\n"),
            "found '1504396800.0005', expected a bar time to the millisecond at most",
        ),
        (
            format!("{BARS}60,1,1,1,1,1\n120,\"1,1,1,1,1\n"),
            "line 3: a quoted field is not closed",
        ),
        (
            "ts,open,high,low,close\n".to_string(),
            "line 1: header 'ts,open,high,low,close' has no 'volume' column",
        ),
        (
            "time,price\n".to_string(),
            "line 1: header 'time,price' has no 'volume' column",
        ),
        (
            "when,bid\n".to_string(),
            "line 1: unrecognised header 'when,bid': no time column",
        ),
        ("1,2,3,4\n".to_string(), "line 1: no header and 4 columns"),
    ];
    for (text, expected) in cases {
        let err = read_all(&text, false).map(|_| ()).unwrap_err();
        assert!(err.contains(expected), "{text:?}:\n got {err}\nwant {expected}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = CsvReader::open("/nonexistent/data.csv", false).err().unwrap();
    assert_eq!(
        err.to_string(),
        "cannot read /nonexistent/data.csv: No such file or directory"
    );
}

#[test]
fn bad_rows_can_be_skipped_and_counted() {
    let text = "ts,open,high,low,close,volume\n60,1,1,1,1,1\nx,1,1,1,1,1\n60,1,1,1,1,1\n\
                120,1,1,1,1,1\n180,1,1\n240,1,1,1,1,1\n";
    let (r, events) = read_all(text, true).unwrap();
    assert_eq!(r.skipped_rows(), 3);
    let times: Vec<i64> = events.iter().map(|e| e.ts().unwrap().secs()).collect();
    assert_eq!(times, [60, 120, 240]);

    let err = read_all("ts_ns,price,volume,side\n1,x,1,buy\n", true).err();
    assert_eq!(err.as_deref(), Some("data.csv: no valid rows (1 bad rows skipped)"));
}

#[test]
fn real_files_read_whole() {
    let (r, bars) = read_all(
        include_str!("../../../../assets/btcusd_1m_20170903_20170904.csv"),
        false,
    )
    .unwrap();
    assert_eq!((bars.len(), r.bar_interval()), (2880, Some(Interval::ONE_MINUTE)));
    assert_eq!(
        bars[0],
        bar(
            1_504_396_800,
            "4642.39",
            "4652.71",
            "4642.39",
            "4652.69",
            "6.63487803",
            0
        )
    );

    let (r, trades) = read_all(
        include_str!("../../../../tests/data/xbtusdt_trades_kraken_rest_20251110.csv"),
        false,
    )
    .unwrap();
    assert_eq!((trades.len(), r.kind()), (1000, CsvKind::Trades));
    assert_eq!(
        trades[0],
        trade(1_762_795_433_971_744_500, "105433.6", "0.00027625", Some(Side::Buy))
    );
}

#[test]
fn columns_pick_any_layout() {
    let text = "id;x,when,c,o,h,l,qty\n1,1504396800,5,4,6,3,2\n2,1504396860,5,5,5,5,0\n";
    let options = CsvOptions {
        skip_bad_rows: false,
        columns: Some("when,o,h,l,c,qty".parse().unwrap()),
    };
    let mut r = CsvReader::from_reader_with("data.csv", Cursor::new(text.as_bytes().to_vec()), &options).unwrap();
    let mut events = Vec::new();
    while let Some(ev) = r.read_event().unwrap() {
        events.push(ev);
    }
    assert_eq!(
        events,
        [
            bar(1_504_396_800, "4", "6", "3", "5", "2", 0),
            bar(1_504_396_860, "5", "5", "5", "5", "0", 0)
        ]
    );
    // By position, headerless.
    let options = CsvOptions {
        skip_bad_rows: false,
        columns: Some("2,5,6,7,4,8".parse().unwrap()),
    };
    let text = "1,1504396800,x,5,4,6,3,2\n";
    let mut r = CsvReader::from_reader_with("data.csv", Cursor::new(text.as_bytes().to_vec()), &options).unwrap();
    assert_eq!(
        r.read_event().unwrap(),
        Some(bar(1_504_396_800, "4", "6", "3", "5", "2", 0))
    );
}
