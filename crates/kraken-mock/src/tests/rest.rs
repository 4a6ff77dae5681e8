//! REST endpoints against the reference README's shapes.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::*;
use nanotrader_market::{Side, Timestamp};

const FIRST_TRADE_SECS: i64 = 1_561_939_203;

fn result(body: &Value) -> &Value {
    assert_eq!(body["error"], json!([]), "{body}");
    &body["result"]
}

fn assert_error(body: &Value, error: &str) {
    assert_eq!(body, &json!({ "error": [error] }));
}

#[tokio::test]
async fn time_and_status_tell_market_time() {
    let mock = start(FROZEN, Faults::default()).await;
    let time = get_json(&mock, "/0/public/Time").await;
    assert_eq!(result(&time)["unixtime"], FIRST_TRADE_SECS);
    // Kraken's own spelling: two-digit year, space-padded day.
    assert_eq!(result(&time)["rfc1123"], "Mon,  1 Jul 19 00:00:03 +0000");
    let status = get_json(&mock, "/0/public/SystemStatus").await;
    assert_eq!(
        result(&status),
        &json!({ "status": "online", "timestamp": "2019-07-01T00:00:03Z" })
    );
    let rest = mock.counters().rest;
    assert_eq!((rest.time, rest.system_status), (1, 1));
}

#[tokio::test]
async fn asset_pairs_are_kraken_fixtures_found_by_any_name() {
    let mock = start(FROZEN, Faults::default()).await;
    let all = get_json(&mock, "/0/public/AssetPairs").await;
    let keys: Vec<&String> = result(&all).as_object().unwrap().keys().collect();
    assert_eq!(keys, ["XBTUSDT", "XXBTZUSD"]);
    for name in ["XBTUSD", "XXBTZUSD", "XBT/USD", "BTC/USD", "xbtusd"] {
        let one = get_json(&mock, &format!("/0/public/AssetPairs?pair={name}")).await;
        let pair = &result(&one)["XXBTZUSD"];
        assert_eq!(result(&one).as_object().unwrap().len(), 1, "{name}");
        assert_eq!(
            (&pair["altname"], &pair["wsname"], &pair["base"], &pair["quote"]),
            (&json!("XBTUSD"), &json!("XBT/USD"), &json!("XXBT"), &json!("ZUSD"))
        );
        assert_eq!((&pair["pair_decimals"], &pair["tick_size"]), (&json!(1), &json!("0.1")));
    }
    let both = get_json(&mock, "/0/public/AssetPairs?pair=XBTUSD,BTC/USDT").await;
    assert_eq!(result(&both).as_object().unwrap().len(), 2);
    let unknown = get_json(&mock, "/0/public/AssetPairs?pair=XBTUSD,DOGEUSD").await;
    assert_error(&unknown, "EQuery:Unknown asset pair");
}

#[tokio::test]
async fn ticker_c_is_the_last_trade_and_a_b_a_tick_around_it() {
    let mock = start(FROZEN, Faults::default()).await;
    let first = data_trades()[0];
    for pair in ["XBTUSD", "XXBTZUSD", "BTC/USD"] {
        let body = get_json(&mock, &format!("/0/public/Ticker?pair={pair}")).await;
        let ticker = &result(&body)["XXBTZUSD"];
        assert_eq!(ticker["c"], json!(["10749.40000", "0.00400000"]));
        assert_eq!(ticker["a"], json!(["10749.50000", "1", "1.000"]));
        assert_eq!(ticker["b"], json!(["10749.30000", "1", "1.000"]));
        assert_eq!(ticker["v"], json!(["0.00400000", "0.00400000"]));
        assert_eq!(ticker["p"], json!(["10749.40000", "10749.40000"]));
        assert_eq!(ticker["t"], json!([1, 1]));
        assert_eq!(ticker["l"], json!(["10749.40000", "10749.40000"]));
        assert_eq!(ticker["h"], json!(["10749.40000", "10749.40000"]));
        assert_eq!(ticker["o"], "10749.40000");
        assert_eq!(dec(&ticker["c"][0]), first.price);
    }
    let unknown = get_json(&mock, "/0/public/Ticker?pair=ETHUSD").await;
    assert_error(&unknown, "EQuery:Unknown asset pair");
    // XBTUSDT is listed by AssetPairs but has no market data here.
    let usdt = get_json(&mock, "/0/public/Ticker?pair=XBTUSDT").await;
    assert_error(&usdt, "EQuery:Unknown asset pair");
}

#[tokio::test]
async fn ticker_totals_cover_the_public_trades() {
    let mock = start(FAST, Faults::default()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = get_json(&mock, "/0/public/Ticker?pair=XBTUSD").await;
    let ticker = &result(&body)["XXBTZUSD"];
    let count = ticker["t"][1].as_u64().unwrap() as usize;
    assert!(count > 1);
    // The data is one hour of one day: "today" and "last 24 hours" agree.
    assert_eq!(ticker["t"][0], ticker["t"][1]);
    let public = &data_trades()[..count];
    let last = public[count - 1];
    assert_eq!(dec(&ticker["c"][0]), last.price);
    assert_eq!(dec(&ticker["c"][1]), last.size);
    assert_eq!(dec(&ticker["a"][0]), last.price + Decimal::new(1, 1));
    assert_eq!(dec(&ticker["b"][0]), last.price - Decimal::new(1, 1));
    let volume: Decimal = public.iter().map(|t| t.size).sum();
    assert_eq!(dec(&ticker["v"][1]), volume);
    let high = public.iter().map(|t| t.price).max().unwrap();
    let low = public.iter().map(|t| t.price).min().unwrap();
    assert_eq!((dec(&ticker["h"][1]), dec(&ticker["l"][1])), (high, low));
    assert_eq!(dec(&ticker["o"]), public[0].price);
    for field in ["a", "b", "c", "l", "h"] {
        let text = ticker[field][0].as_str().unwrap();
        assert_eq!(text.split('.').nth(1).map(str::len), Some(5), "{field}");
    }
}

#[tokio::test]
async fn ohlc_rows_are_contiguous_with_the_forming_candle_last() {
    let mock = start(FAST, Faults::default()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = get_json(&mock, "/0/public/OHLC?pair=XBTUSD&interval=1").await;
    let rows = result(&body)["XXBTZUSD"].as_array().unwrap();
    let last = result(&body)["last"].as_i64().unwrap();
    let time = |row: &Value| row[0].as_i64().unwrap();
    assert!(rows.len() >= 15, "{} rows", rows.len());
    // Fewer than 720 minutes since the data began: the first row is its first minute.
    assert_eq!(time(&rows[0]), FIRST_TRADE_SECS / 60 * 60);
    for pair in rows.windows(2) {
        assert_eq!(time(&pair[1]) - time(&pair[0]), 60);
    }
    let forming = time(rows.last().unwrap());
    assert_eq!(last, forming - 60, "last = newest committed candle");
    assert!(mock.market_time() >= Timestamp::from_secs(forming));

    // Committed traded rows are exactly the bars a client should build; quiet ones are flat.
    let bars = mock.expected_bars(Timestamp::from_secs(forming));
    let mut bars = bars.iter();
    let mut prev_close = None;
    for row in &rows[..rows.len() - 1] {
        let fields: Vec<&str> = row.as_array().unwrap()[1..7]
            .iter()
            .map(|v| v.as_str().expect("numbers are strings"))
            .collect();
        let count = row[7].as_u64().unwrap();
        if count == 0 {
            let close = prev_close.unwrap();
            assert_eq!(&fields[..4], [close; 4]);
            assert_eq!(&fields[4..], ["0.0", "0.00000000"]);
            continue;
        }
        let bar = bars.next().expect("a bar per traded row");
        assert_eq!(bar.ts.secs(), time(row));
        let values: Vec<Decimal> = [1, 2, 3, 4, 6].iter().map(|&i| dec(&row[i])).collect();
        assert_eq!(values, [bar.open, bar.high, bar.low, bar.close, bar.volume], "{row}");
        assert_eq!(count, u64::from(bar.trades));
        let vwap = dec(&row[5]);
        assert!(bar.low <= vwap && vwap <= bar.high, "{row}");
        prev_close = Some(fields[3]);
    }
    assert!(bars.next().is_none());

    // `since` is exclusive: passing `last` back starts at the candle that was forming.
    let next = get_json(&mock, &format!("/0/public/OHLC?pair=XBTUSD&since={last}")).await;
    let rows = result(&next)["XXBTZUSD"].as_array().unwrap();
    assert_eq!(time(&rows[0]), forming);
}

#[tokio::test]
async fn ohlc_keeps_720_committed_rows_and_fills_after_the_data_ends() {
    // 10 market hours per wall second: past the hour of data and the 12-hour window.
    let mock = start(36_000.0, Faults::default()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = get_json(&mock, "/0/public/OHLC?pair=XXBTZUSD").await;
    let rows = result(&body)["XXBTZUSD"].as_array().unwrap();
    assert_eq!(rows.len(), 721);
    for pair in rows.windows(2) {
        assert_eq!(pair[1][0].as_i64().unwrap() - pair[0][0].as_i64().unwrap(), 60);
    }
    // The data ended hours ago: every row is flat at its last price, with no volume.
    let final_price = format!("{:.1}", data_trades().last().unwrap().price);
    let flat = json!([
        final_price,
        final_price,
        final_price,
        final_price,
        "0.0",
        "0.00000000",
        0
    ]);
    for row in rows {
        assert_eq!(row.as_array().unwrap()[1..], flat.as_array().unwrap()[..], "{row}");
    }
    let last = result(&body)["last"].as_i64().unwrap();
    assert_eq!(last, rows[719][0].as_i64().unwrap());
}

#[tokio::test]
async fn trades_page_forward_with_the_nanosecond_cursor() {
    let mock = start(FAST, Faults::default()).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let data = data_trades();
    let page = get_json(&mock, "/0/public/Trades?pair=XBTUSD&since=0&count=100").await;
    let rows = result(&page)["XXBTZUSD"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    for (i, (row, trade)) in rows.iter().zip(&data).enumerate() {
        assert_eq!(dec(&row[0]), trade.price);
        assert_eq!(dec(&row[1]), trade.size);
        let secs = row[2].as_f64().unwrap();
        assert!((secs - trade.ts.nanos() as f64 / 1e9).abs() < 1e-6, "{row}");
        let side = if trade.side == Some(Side::Sell) { "s" } else { "b" };
        assert_eq!((&row[3], &row[4], &row[5]), (&json!(side), &json!("m"), &json!("")));
        assert_eq!(row[6], i + 1, "trade_id");
        assert_eq!(row[0].as_str().unwrap().split('.').nth(1).map(str::len), Some(5));
        assert_eq!(row[1].as_str().unwrap().split('.').nth(1).map(str::len), Some(8));
    }
    let last = result(&page)["last"].as_str().unwrap();
    assert_eq!(last, data[99].ts.nanos().to_string());

    let next = get_json(&mock, &format!("/0/public/Trades?pair=XBTUSD&since={last}&count=100")).await;
    let rows = result(&next)["XXBTZUSD"].as_array().unwrap();
    assert_eq!(rows[0][6], 101);
    assert_eq!(rows.len(), 100);

    // Without `since`: the newest public trades, up to 1000.
    let newest = get_json(&mock, "/0/public/Trades?pair=XBTUSD").await;
    let rows = result(&newest)["XXBTZUSD"].as_array().unwrap();
    let top = rows.last().unwrap()[6].as_u64().unwrap();
    assert_eq!(rows.len() as u64, top.min(1000));
    assert_eq!(result(&newest)["last"], data[top as usize - 1].ts.nanos().to_string());

    // Nothing after the cursor: no rows, and the cursor comes back unchanged.
    let future = "4102444800000000000";
    let empty = get_json(&mock, &format!("/0/public/Trades?pair=XBTUSD&since={future}")).await;
    assert_eq!(result(&empty), &json!({ "XXBTZUSD": [], "last": future }));
}

#[tokio::test]
async fn bad_rest_input_gets_kraken_errors() {
    let mock = start(FROZEN, Faults::default()).await;
    for (path, error) in [
        (
            "/0/public/OHLC?pair=XBTUSD&interval=5",
            "EGeneral:Invalid arguments:interval",
        ),
        (
            "/0/public/OHLC?pair=XBTUSD&since=abc",
            "EGeneral:Invalid arguments:since",
        ),
        ("/0/public/OHLC?interval=1", "EGeneral:Invalid arguments:pair"),
        ("/0/public/OHLC?pair=ETHUSD", "EQuery:Unknown asset pair"),
        (
            "/0/public/Trades?pair=XBTUSD&count=0",
            "EGeneral:Invalid arguments:count",
        ),
        (
            "/0/public/Trades?pair=XBTUSD&count=5000",
            "EGeneral:Invalid arguments:count",
        ),
        (
            "/0/public/Trades?pair=XBTUSD&since=-5",
            "EGeneral:Invalid arguments:since",
        ),
        (
            "/0/public/Trades?pair=XBTUSD&since=1e999",
            "EGeneral:Invalid arguments:since",
        ),
        ("/0/public/Trades?pair=XBT%2FUSDT", "EQuery:Unknown asset pair"),
        ("/0/public/Depth?pair=XBTUSD", "EGeneral:Unknown method"),
        ("/0/private/Balance", "EGeneral:Unknown method"),
    ] {
        assert_error(&get_json(&mock, path).await, error);
    }
    let odd = get_json(&mock, "/0/public/Ticker?pair=%ZZ&pair=%00").await;
    assert_error(&odd, "EQuery:Unknown asset pair");
    // Fractional seconds are a valid `since`.
    let ok = get_json(&mock, "/0/public/Trades?pair=XBTUSD&since=1561939203.1").await;
    assert_eq!(result(&ok)["XXBTZUSD"].as_array().unwrap().len(), 1);
    assert_eq!(mock.counters().rest.other, 2);
}
