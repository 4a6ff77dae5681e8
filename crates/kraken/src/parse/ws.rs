//! WebSocket v2 frames (numbers as JSON numbers, times as RFC 3339) and the requests we send.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::{DecNum, Rfc3339, check_candle, malformed, positive};
use crate::error::KrakenError;
use nanotrader_market::{Bar, Quote, Side, Timestamp, Trade};

/// One public WS v2 frame, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsMessage {
    /// Sent on connect and when the engine state changes; `system` is `online`,
    /// `maintenance`, `cancel_only` or `post_only`.
    Status {
        system: String,
        version: Option<String>,
    },
    /// Sent about once a second while subscribed and otherwise idle.
    Heartbeat,
    Pong {
        req_id: Option<u64>,
    },
    /// One ack per symbol for `subscribe`/`unsubscribe` (and Kraken's `method: "error"`).
    /// A missing `success` counts as failure.
    SubscribeResult {
        method: String,
        channel: Option<String>,
        symbol: Option<String>,
        success: bool,
        error: Option<String>,
        req_id: Option<u64>,
        /// The exchange's time when it answered (`time_out`), if given and readable.
        time_out: Option<Timestamp>,
    },
    Ticker {
        symbol: String,
        last: Decimal,
        bid: Decimal,
        bid_qty: Decimal,
        ask: Decimal,
        ask_qty: Decimal,
        /// Exchange time, when the message carries one (older formats did not).
        ts: Option<Timestamp>,
        snapshot: bool,
    },
    /// Trades of one symbol, oldest first; empty `symbol` only if `data` was empty.
    Trades {
        symbol: String,
        trades: Vec<WsTrade>,
        snapshot: bool,
    },
    /// Candles of one symbol. Updates repeat the running candle with growing values; a
    /// candle is final once one with a later open time arrives.
    Ohlc {
        symbol: String,
        bars: Vec<WsOhlc>,
        snapshot: bool,
    },
    /// A channel (or, for a response, the method) we do not use, e.g. `book`.
    Other {
        channel: String,
    },
}

impl WsMessage {
    /// Top of book from a ticker, stamped with its own time or else `received` (the local
    /// receive time). `None` for other messages.
    pub fn quote(&self, received: Timestamp) -> Option<Quote> {
        match self {
            WsMessage::Ticker {
                bid,
                bid_qty,
                ask,
                ask_qty,
                ts,
                ..
            } => Some(Quote {
                ts: ts.unwrap_or(received),
                bid: *bid,
                bid_size: *bid_qty,
                ask: *ask,
                ask_size: *ask_qty,
            }),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsTrade {
    pub trade: Trade,
    /// Per-pair sequence number.
    pub trade_id: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsOhlc {
    /// `bar.ts` is `interval_begin`, the candle's open time (the deprecated per-candle
    /// `timestamp` is its end).
    pub bar: Bar,
    pub interval_minutes: u32,
}

/// The fields of every frame kind we read; the rest (`time_in`, `timestamp`, ...) is skipped.
/// Responses carry `method`, channel messages carry `channel`.
#[derive(Deserialize)]
struct Frame<'a> {
    method: Option<&'a str>,
    channel: Option<&'a str>,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    success: Option<bool>,
    error: Option<String>,
    req_id: Option<u64>,
    symbol: Option<String>,
    /// Read leniently: an odd time must not cost a subscription's answer.
    #[serde(borrow)]
    time_out: Option<&'a RawValue>,
}

pub fn parse_ws(text: &str) -> Result<WsMessage, KrakenError> {
    let frame: Frame = serde_json::from_str(text).map_err(|e| malformed(format!("WS: {e}")))?;
    if let Some(method) = frame.method {
        return response(method, &frame);
    }
    let Some(channel) = frame.channel else {
        return Err(malformed("WS: neither method nor channel"));
    };
    match channel {
        "heartbeat" => Ok(WsMessage::Heartbeat),
        "status" => status(&frame),
        "ticker" => ticker(&frame),
        "trade" => trades(&frame),
        "ohlc" => ohlc(&frame),
        other => Ok(WsMessage::Other {
            channel: other.to_string(),
        }),
    }
}

fn response(method: &str, frame: &Frame) -> Result<WsMessage, KrakenError> {
    #[derive(Deserialize)]
    struct Ack {
        channel: Option<String>,
        symbol: Option<String>,
    }
    match method {
        "pong" => Ok(WsMessage::Pong { req_id: frame.req_id }),
        "subscribe" | "unsubscribe" | "error" => {
            // Error acks have no `result` and name the symbol at the top level.
            let ack = match frame.result {
                Some(raw) => decode::<Ack>(raw, method)?,
                None => Ack {
                    channel: None,
                    symbol: None,
                },
            };
            Ok(WsMessage::SubscribeResult {
                method: method.to_string(),
                channel: ack.channel,
                symbol: ack.symbol.or_else(|| frame.symbol.clone()),
                success: frame.success.unwrap_or(false),
                error: frame.error.clone(),
                req_id: frame.req_id,
                time_out: frame
                    .time_out
                    .and_then(|raw| serde_json::from_str::<&str>(raw.get()).ok())
                    .and_then(super::rfc3339),
            })
        }
        other => Ok(WsMessage::Other {
            channel: other.to_string(),
        }),
    }
}

fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue, what: &str) -> Result<T, KrakenError> {
    serde_json::from_str(raw.get()).map_err(|e| malformed(format!("WS {what}: {e}")))
}

fn data<'a, T: Deserialize<'a>>(frame: &Frame<'a>, channel: &str) -> Result<Vec<T>, KrakenError> {
    let raw = frame.data.ok_or_else(|| malformed(format!("WS {channel}: no data")))?;
    decode(raw, channel)
}

fn snapshot(frame: &Frame, channel: &str) -> Result<bool, KrakenError> {
    match frame.kind {
        Some("snapshot") => Ok(true),
        Some("update") => Ok(false),
        other => Err(malformed(format!(
            "WS {channel}: type {other:?}, expected snapshot or update"
        ))),
    }
}

/// The one symbol a message is about; Kraken sends one symbol per data message.
fn one_symbol<'a>(mut symbols: impl Iterator<Item = &'a str>, channel: &str) -> Result<String, KrakenError> {
    let first = symbols.next().unwrap_or_default();
    if symbols.any(|s| s != first) {
        return Err(malformed(format!("WS {channel}: several symbols in one message")));
    }
    Ok(first.to_string())
}

fn status(frame: &Frame) -> Result<WsMessage, KrakenError> {
    #[derive(Deserialize)]
    struct Row {
        system: String,
        version: Option<String>,
    }
    let row = data::<Row>(frame, "status")?
        .into_iter()
        .next()
        .ok_or_else(|| malformed("WS status: empty data"))?;
    Ok(WsMessage::Status {
        system: row.system,
        version: row.version,
    })
}

fn ticker(frame: &Frame) -> Result<WsMessage, KrakenError> {
    #[derive(Deserialize)]
    struct Row<'a> {
        symbol: &'a str,
        bid: DecNum,
        bid_qty: DecNum,
        ask: DecNum,
        ask_qty: DecNum,
        last: DecNum,
        timestamp: Option<Rfc3339>,
    }
    let snapshot = snapshot(frame, "ticker")?;
    let rows: Vec<Row> = data(frame, "ticker")?;
    let [row] = <[Row; 1]>::try_from(rows)
        .map_err(|rows| malformed(format!("WS ticker: {} entries, expected 1", rows.len())))?;
    if ![row.last.0, row.bid.0, row.ask.0].into_iter().all(positive) {
        return Err(malformed(format!(
            "WS ticker {}: a price is not above zero",
            row.symbol
        )));
    }
    Ok(WsMessage::Ticker {
        symbol: row.symbol.to_string(),
        last: row.last.0,
        bid: row.bid.0,
        bid_qty: row.bid_qty.0,
        ask: row.ask.0,
        ask_qty: row.ask_qty.0,
        ts: row.timestamp.map(|t| t.0),
        snapshot,
    })
}

fn trades(frame: &Frame) -> Result<WsMessage, KrakenError> {
    #[derive(Deserialize)]
    struct Row<'a> {
        symbol: &'a str,
        side: &'a str,
        price: DecNum,
        qty: DecNum,
        trade_id: u64,
        timestamp: Rfc3339,
    }
    let snapshot = snapshot(frame, "trade")?;
    let rows: Vec<Row> = data(frame, "trade")?;
    let symbol = one_symbol(rows.iter().map(|r| r.symbol), "trade")?;
    let trades = rows
        .into_iter()
        .map(|r| {
            let side: Side = r
                .side
                .parse()
                .map_err(|e: String| malformed(format!("WS trade: {e}")))?;
            if !positive(r.price.0) || !positive(r.qty.0) {
                return Err(malformed(format!(
                    "WS trade {}: price and qty must be above zero",
                    r.trade_id
                )));
            }
            Ok(WsTrade {
                trade: Trade {
                    ts: r.timestamp.0,
                    price: r.price.0,
                    size: r.qty.0,
                    side: Some(side),
                },
                trade_id: r.trade_id,
            })
        })
        .collect::<Result<_, KrakenError>>()?;
    Ok(WsMessage::Trades {
        symbol,
        trades,
        snapshot,
    })
}

fn ohlc(frame: &Frame) -> Result<WsMessage, KrakenError> {
    #[derive(Deserialize)]
    struct Row<'a> {
        symbol: &'a str,
        open: DecNum,
        high: DecNum,
        low: DecNum,
        close: DecNum,
        volume: DecNum,
        trades: u32,
        interval_begin: Rfc3339,
        interval: u32,
    }
    let snapshot = snapshot(frame, "ohlc")?;
    let rows: Vec<Row> = data(frame, "ohlc")?;
    let symbol = one_symbol(rows.iter().map(|r| r.symbol), "ohlc")?;
    let bars = rows
        .into_iter()
        .map(|r| {
            let bar = Bar {
                ts: r.interval_begin.0,
                open: r.open.0,
                high: r.high.0,
                low: r.low.0,
                close: r.close.0,
                volume: r.volume.0,
                trades: r.trades,
            };
            check_candle(&bar).map_err(|e| malformed(format!("WS ohlc: {e}")))?;
            Ok(WsOhlc {
                bar,
                interval_minutes: r.interval,
            })
        })
        .collect::<Result<_, KrakenError>>()?;
    Ok(WsMessage::Ohlc { symbol, bars, snapshot })
}

/// `{"method":"subscribe","params":{"channel":..,"symbol":[..]},"req_id":..}`; symbols in the
/// v2 spelling (`BTC/USD`). `interval_minutes` is for `ohlc`. `trade` asks for the snapshot
/// (Kraken's default there is none) so a reconnect sees the latest trades again.
pub fn subscribe_request(channel: &str, symbols: &[&str], req_id: u64, interval_minutes: Option<u32>) -> String {
    let mut params = json!({ "channel": channel, "symbol": symbols });
    if let Some(interval) = interval_minutes {
        params["interval"] = json!(interval);
    }
    if channel == "trade" {
        params["snapshot"] = json!(true);
    }
    json!({ "method": "subscribe", "params": params, "req_id": req_id }).to_string()
}

/// Application-level ping; Kraken answers `pong` with the same `req_id`.
pub fn ping_request(req_id: u64) -> String {
    json!({ "method": "ping", "req_id": req_id }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{d, fixture};

    struct Case {
        file: &'static str,
        expected: WsMessage,
    }

    fn ns(n: i64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    fn ack(method: &str, channel: &str, symbol: &str, req_id: Option<u64>, time_out: &str) -> WsMessage {
        WsMessage::SubscribeResult {
            method: method.into(),
            channel: Some(channel.into()),
            symbol: Some(symbol.into()),
            success: true,
            error: None,
            req_id,
            time_out: crate::parse::rfc3339(time_out),
        }
    }

    fn ws_trade(price: &str, qty: &str, at: i64, side: Side, id: u64) -> WsTrade {
        WsTrade {
            trade: Trade {
                ts: ns(at),
                price: d(price),
                size: d(qty),
                side: Some(side),
            },
            trade_id: id,
        }
    }

    /// A candle from (open time s, [o, h, l, c, volume], trades, interval).
    fn candle(open_s: i64, ohlcv: [&str; 5], trades: u32, interval_minutes: u32) -> WsOhlc {
        WsOhlc {
            bar: Bar {
                ts: Timestamp::from_secs(open_s),
                open: d(ohlcv[0]),
                high: d(ohlcv[1]),
                low: d(ohlcv[2]),
                close: d(ohlcv[3]),
                volume: d(ohlcv[4]),
                trades,
            },
            interval_minutes,
        }
    }

    fn algo_ticker(ask: &str, ask_qty: &str, snapshot: bool) -> WsMessage {
        WsMessage::Ticker {
            symbol: "ALGO/USD".into(),
            last: d("0.10035"),
            bid: d("0.10025"),
            bid_qty: d("740.0"),
            ask: d(ask),
            ask_qty: d(ask_qty),
            ts: Some(ns(1_695_632_671_742_648_000)),
            snapshot,
        }
    }

    #[test]
    fn every_ws_fixture_parses_to_its_message() {
        let cases = vec![
            Case {
                file: "ws_status.json",
                expected: WsMessage::Status {
                    system: "online".into(),
                    version: Some("2.0.0".into()),
                },
            },
            Case {
                file: "ws_heartbeat.json",
                expected: WsMessage::Heartbeat,
            },
            Case {
                file: "ws_pong.json",
                expected: WsMessage::Pong { req_id: Some(101) },
            },
            Case {
                file: "ws_subscribe_ack_ticker.json",
                expected: ack("subscribe", "ticker", "ALGO/USD", None, "2023-09-25T09:04:31.742648Z"),
            },
            Case {
                file: "ws_subscribe_ack_ticker_btcusd.json",
                expected: ack(
                    "subscribe",
                    "ticker",
                    "BTC/USD",
                    Some(12_345_678),
                    "2023-09-25T09:04:31.742648Z",
                ),
            },
            Case {
                file: "ws_subscribe_ack_trade.json",
                expected: ack("subscribe", "trade", "MATIC/USD", None, "2023-09-25T09:21:10.428375Z"),
            },
            Case {
                file: "ws_subscribe_ack_ohlc.json",
                expected: ack("subscribe", "ohlc", "ALGO/USD", None, "2023-10-04T16:26:01.802791Z"),
            },
            Case {
                file: "ws_subscribe_ack_book.json",
                expected: ack("subscribe", "book", "MATIC/USD", None, "2023-10-06T17:35:55.219067Z"),
            },
            Case {
                file: "ws_unsubscribe_ack_ticker.json",
                expected: ack("unsubscribe", "ticker", "ALGO/USD", None, "2023-09-25T09:04:31.742648Z"),
            },
            Case {
                file: "ws_subscribe_error.json",
                expected: WsMessage::SubscribeResult {
                    method: "subscribe".into(),
                    channel: None,
                    symbol: Some("XBT/USD".into()),
                    success: false,
                    error: Some("Currency pair not supported XBT/USD".into()),
                    req_id: Some(2),
                    time_out: crate::parse::rfc3339("2023-09-25T09:04:31.742648Z"),
                },
            },
            Case {
                // Kraken answers a bad unsubscribe with method "subscribe".
                file: "ws_unsubscribe_error_not_found.json",
                expected: WsMessage::SubscribeResult {
                    method: "subscribe".into(),
                    channel: None,
                    symbol: Some("BTC/USD".into()),
                    success: false,
                    error: Some("Subscription Not Found".into()),
                    req_id: Some(123_456_789),
                    time_out: crate::parse::rfc3339("2023-09-25T09:04:31.742648Z"),
                },
            },
            Case {
                file: "ws_ticker_snapshot.json",
                expected: algo_ticker("0.10036", "1361.44813783", true),
            },
            Case {
                file: "ws_ticker_update.json",
                expected: algo_ticker("0.10035", "740.0", false),
            },
            Case {
                file: "ws_trade_snapshot.json",
                expected: WsMessage::Trades {
                    symbol: "MATIC/USD".into(),
                    trades: vec![
                        ws_trade("0.5147", "6423.46326", 1_695_628_116_925_533_000, Side::Buy, 4_665_846),
                        ws_trade(
                            "0.5147",
                            "1136.19677815",
                            1_695_628_176_925_603_000,
                            Side::Buy,
                            4_665_847,
                        ),
                    ],
                    snapshot: true,
                },
            },
            Case {
                file: "ws_trade_update.json",
                expected: WsMessage::Trades {
                    symbol: "MATIC/USD".into(),
                    trades: vec![ws_trade(
                        "0.5117",
                        "40.0",
                        1_695_628_177_708_706_000,
                        Side::Sell,
                        4_665_906,
                    )],
                    snapshot: false,
                },
            },
            Case {
                file: "ws_ohlc_snapshot.json",
                expected: WsMessage::Ohlc {
                    symbol: "ALGO/USD".into(),
                    bars: vec![
                        candle(
                            1_696_433_100,
                            ["0.09875", "0.09875", "0.09875", "0.09875", "201.86015"],
                            1,
                            5,
                        ),
                        candle(
                            1_696_433_400,
                            ["0.09875", "0.0988", "0.09875", "0.09875", "16255.46368"],
                            13,
                            5,
                        ),
                    ],
                    snapshot: true,
                },
            },
            Case {
                file: "ws_ohlc_update.json",
                expected: WsMessage::Ohlc {
                    symbol: "MATIC/USD".into(),
                    bars: vec![candle(
                        1_696_436_700,
                        ["0.5624", "0.5628", "0.5622", "0.5627", "30927.68066226"],
                        12,
                        5,
                    )],
                    snapshot: false,
                },
            },
            Case {
                file: "ws_book_snapshot.json",
                expected: WsMessage::Other { channel: "book".into() },
            },
            Case {
                file: "ws_book_update.json",
                expected: WsMessage::Other { channel: "book".into() },
            },
            Case {
                file: "synthetic_btcusd/ws_subscribe_ack_ticker.json",
                expected: ack("subscribe", "ticker", "BTC/USD", Some(1), "2025-11-11T00:13:50.001060Z"),
            },
            Case {
                file: "synthetic_btcusd/ws_subscribe_ack_ohlc_1m.json",
                expected: ack("subscribe", "ohlc", "BTC/USD", Some(3), "2025-11-11T00:13:50.101060Z"),
            },
            Case {
                file: "synthetic_btcusd/ws_ticker_snapshot.json",
                expected: WsMessage::Ticker {
                    symbol: "BTC/USD".into(),
                    last: d("105899.4"),
                    bid: d("105944.2"),
                    bid_qty: d("0.002"),
                    ask: d("105944.3"),
                    ask_qty: d("0.136"),
                    ts: Some(ns(1_762_820_035_982_277_000)),
                    snapshot: true,
                },
            },
            Case {
                file: "synthetic_btcusd/ws_trade_update.json",
                expected: WsMessage::Trades {
                    symbol: "BTC/USD".into(),
                    trades: vec![ws_trade(
                        "105899.4",
                        "0.00009443",
                        1_762_820_035_982_277_000,
                        Side::Sell,
                        10_219_207,
                    )],
                    snapshot: false,
                },
            },
            Case {
                file: "synthetic_btcusd/ws_ohlc_update_1m.json",
                expected: WsMessage::Ohlc {
                    symbol: "BTC/USD".into(),
                    bars: vec![candle(
                        1_762_819_980,
                        ["105899.4", "105899.4", "105899.4", "105899.4", "0.00009443"],
                        1,
                        1,
                    )],
                    snapshot: false,
                },
            },
        ];
        for case in cases {
            let got = parse_ws(&fixture(case.file));
            assert_eq!(got, Ok(case.expected), "{}", case.file);
        }
    }

    #[test]
    fn synthetic_ohlc_snapshot_keeps_gaps_and_open_times() {
        let Ok(WsMessage::Ohlc { symbol, bars, snapshot }) =
            parse_ws(&fixture("synthetic_btcusd/ws_ohlc_snapshot_1m.json"))
        else {
            panic!("not an ohlc message");
        };
        assert_eq!((symbol.as_str(), snapshot, bars.len()), ("BTC/USD", true, 9));
        assert_eq!(
            bars[0],
            candle(
                1_762_819_200,
                ["106021.6", "106021.6", "106007.2", "106007.2", "0.37704712"],
                5,
                1,
            )
        );
        assert_eq!(
            bars[8],
            candle(
                1_762_819_920,
                ["105858.4", "105872.3", "105858.4", "105872.3", "0.00094258"],
                2,
                1,
            )
        );
        // Trade-less minutes are simply absent (00:01, 00:02, 00:08, 00:09).
        let minutes: Vec<i64> = bars.iter().map(|b| (b.bar.ts.secs() - 1_762_819_200) / 60).collect();
        assert_eq!(minutes, [0, 3, 4, 5, 6, 7, 10, 11, 12]);
    }

    #[test]
    fn decimals_keep_their_written_scale() {
        let Ok(WsMessage::Ticker { bid_qty, .. }) = parse_ws(&fixture("ws_ticker_update.json")) else {
            panic!("not a ticker");
        };
        assert_eq!(bid_qty.to_string(), "740.0");
        let Ok(WsMessage::Trades { trades, .. }) = parse_ws(&fixture("synthetic_btcusd/ws_trade_update.json")) else {
            panic!("not trades");
        };
        assert_eq!(trades[0].trade.size.to_string(), "0.00009443");
    }

    #[test]
    fn ticker_gives_a_quote() {
        let msg = parse_ws(&fixture("synthetic_btcusd/ws_ticker_snapshot.json")).unwrap();
        let received = ns(1);
        assert_eq!(
            msg.quote(received),
            Some(Quote {
                ts: ns(1_762_820_035_982_277_000),
                bid: d("105944.2"),
                bid_size: d("0.002"),
                ask: d("105944.3"),
                ask_size: d("0.136"),
            })
        );
        // Without a timestamp the receive time stands in.
        let old = r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD",
            "bid":1,"bid_qty":2,"ask":3,"ask_qty":4,"last":2}]}"#;
        let quote = parse_ws(old).unwrap().quote(received).unwrap();
        assert_eq!((quote.ts, quote.ask_size), (received, d("4")));
        assert_eq!(WsMessage::Heartbeat.quote(received), None);
    }

    #[test]
    fn requests_match_the_reference_fixtures() {
        let as_value = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        // The fixtures carry no req_id; ours always does.
        let with_req_id = |file: &str, req_id: u64| {
            let mut v = as_value(&fixture(file));
            v["req_id"] = json!(req_id);
            v
        };
        let cases = [
            (
                subscribe_request("ticker", &["ALGO/USD"], 1, None),
                with_req_id("ws_subscribe_request_ticker.json", 1),
            ),
            (
                subscribe_request("trade", &["MATIC/USD"], 2, None),
                with_req_id("ws_subscribe_request_trade.json", 2),
            ),
            (
                subscribe_request("ohlc", &["ALGO/USD", "MATIC/USD"], 3, Some(5)),
                with_req_id("ws_subscribe_request_ohlc.json", 3),
            ),
            (ping_request(101), as_value(&fixture("ws_ping.json"))),
        ];
        for (ours, reference) in cases {
            assert_eq!(as_value(&ours), reference, "{ours}");
        }
    }

    #[test]
    fn malformed_frames_are_refused_without_panicking() {
        let deep = "[".repeat(10_000);
        let ticker_fixture = fixture("ws_ticker_snapshot.json");
        let cases = [
            ("empty", ""),
            ("garbage", "garbage"),
            ("truncated", &ticker_fixture[..ticker_fixture.len() / 2]),
            ("array", "[]"),
            ("null", "null"),
            ("deep nesting", deep.as_str()),
            ("neither method nor channel", r#"{"foo":1}"#),
            ("channel not a string", r#"{"channel":5}"#),
            ("success not a bool", r#"{"method":"subscribe","success":"yes"}"#),
            (
                "ack result a list",
                r#"{"method":"subscribe","result":[],"success":true}"#,
            ),
            ("status without data", r#"{"channel":"status","type":"update"}"#),
            ("status empty", r#"{"channel":"status","type":"update","data":[]}"#),
            (
                "ticker without type",
                r#"{"channel":"ticker","data":[{"symbol":"A","bid":1,"bid_qty":1,"ask":1,"ask_qty":1,"last":1}]}"#,
            ),
            ("ticker without data", r#"{"channel":"ticker","type":"update"}"#),
            (
                "ticker data not a list",
                r#"{"channel":"ticker","type":"update","data":{}}"#,
            ),
            ("ticker empty", r#"{"channel":"ticker","type":"update","data":[]}"#),
            (
                "ticker price as string",
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"A","bid":"1","bid_qty":1,"ask":1,"ask_qty":1,"last":1}]}"#,
            ),
            (
                "ticker price null",
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"A","bid":null,"bid_qty":1,"ask":1,"ask_qty":1,"last":1}]}"#,
            ),
            (
                "ticker without last",
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"A","bid":1,"bid_qty":1,"ask":1,"ask_qty":1}]}"#,
            ),
            (
                "ticker bad timestamp",
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"A","bid":1,"bid_qty":1,"ask":1,"ask_qty":1,"last":1,"timestamp":"noon"}]}"#,
            ),
            (
                "two tickers",
                r#"{"channel":"ticker","type":"update","data":[{"symbol":"A","bid":1,"bid_qty":1,"ask":1,"ask_qty":1,"last":1},{"symbol":"A","bid":1,"bid_qty":1,"ask":1,"ask_qty":1,"last":1}]}"#,
            ),
            (
                "trade bad side",
                r#"{"channel":"trade","type":"update","data":[{"symbol":"A","side":"up","price":1,"qty":1,"trade_id":1,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
            ),
            (
                "trade negative id",
                r#"{"channel":"trade","type":"update","data":[{"symbol":"A","side":"buy","price":1,"qty":1,"trade_id":-1,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
            ),
            (
                "trade huge number",
                r#"{"channel":"trade","type":"update","data":[{"symbol":"A","side":"buy","price":1e999,"qty":1,"trade_id":1,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
            ),
            (
                "trades of two symbols",
                r#"{"channel":"trade","type":"update","data":[
                {"symbol":"A","side":"buy","price":1,"qty":1,"trade_id":1,"timestamp":"2023-09-25T07:49:37.708706Z"},
                {"symbol":"B","side":"buy","price":1,"qty":1,"trade_id":2,"timestamp":"2023-09-25T07:49:37.708706Z"}]}"#,
            ),
            (
                "ohlc without interval_begin",
                r#"{"channel":"ohlc","type":"update","data":[{"symbol":"A","open":1,"high":1,"low":1,"close":1,"trades":1,"volume":1,"interval":1}]}"#,
            ),
            (
                "ohlc fractional trades",
                r#"{"channel":"ohlc","type":"update","data":[{"symbol":"A","open":1,"high":1,"low":1,"close":1,"trades":1.5,"volume":1,"interval_begin":"2023-10-04T16:25:00.000000000Z","interval":1}]}"#,
            ),
        ];
        for (name, text) in cases {
            let got = parse_ws(text);
            assert!(matches!(got, Err(KrakenError::Malformed(_))), "{name}: {got:?}");
        }
    }

    #[test]
    fn unknown_fields_and_channels_are_ignored() {
        let ticker = r#"{"channel":"ticker","type":"snapshot","new_top":{"a":[1,2]},
            "data":[{"symbol":"BTC/USD","bid":1.5,"bid_qty":2,"ask":1.6,"ask_qty":3,
            "last":1.55,"brand_new":"x","nested":{"deep":[null]}}]}"#;
        let Ok(WsMessage::Ticker { last, ts, snapshot, .. }) = parse_ws(ticker) else {
            panic!("ticker with extra fields refused");
        };
        assert_eq!((last, ts, snapshot), (d("1.55"), None, true));
        for (text, channel) in [
            (r#"{"channel":"instrument","type":"snapshot","data":{}}"#, "instrument"),
            (r#"{"channel":"level3"}"#, "level3"),
            (r#"{"method":"add_order","success":true,"result":{}}"#, "add_order"),
        ] {
            assert_eq!(
                parse_ws(text),
                Ok(WsMessage::Other {
                    channel: channel.into()
                })
            );
        }
        // Kraken's `method: "error"` answer to a malformed request is a failed result.
        let Ok(WsMessage::SubscribeResult { success, error, .. }) =
            parse_ws(r#"{"method":"error","error":"Malformed request","success":false}"#)
        else {
            panic!("error response not surfaced");
        };
        assert_eq!((success, error.as_deref()), (false, Some("Malformed request")));
    }
}
