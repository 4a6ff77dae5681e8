//! REST public responses: `{"error":[...],"result":{...}}`, numbers as strings.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{DecStr, Rfc3339, SecsNum, check_candle, malformed, positive, secs};
use crate::error::KrakenError;
use nanotrader_market::{Bar, Side, Timestamp, Trade};

/// One tradable pair as AssetPairs describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetPair {
    /// Result key, e.g. `XXBTZUSD` (`XBTUSDT` for newer assets: there is no formula).
    pub key: String,
    /// e.g. `XBTUSD`.
    pub altname: String,
    /// WS v1 name, e.g. `XBT/USD`; some pairs have none.
    pub wsname: Option<String>,
    /// Asset ids, e.g. `XXBT`, `ZUSD`, `USDT`.
    pub base: String,
    pub quote: String,
    /// Price decimals.
    pub pair_decimals: u32,
    /// Volume decimals.
    pub lot_decimals: u32,
    /// Minimum order volume in base units.
    pub ordermin: Option<Decimal>,
    /// Minimum order value in quote units.
    pub costmin: Option<Decimal>,
    /// The price step of a limit order.
    pub tick_size: Option<Decimal>,
}

/// REST Ticker for one pair. Has no timestamp: Kraken sends none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestTicker {
    pub key: String,
    /// Price of the last trade, `c[0]`.
    pub last: Decimal,
    /// Size of the last trade, `c[1]`.
    pub last_size: Decimal,
    /// `b[0]`, `a[0]`.
    pub bid: Decimal,
    pub ask: Decimal,
    /// `b[2]`, `a[2]`: in every sample seen these are the placeholder `1.000`, not the real
    /// top-of-book size; use WS ticker or Depth for sizes.
    pub bid_size: Decimal,
    pub ask_size: Decimal,
}

/// A page of REST OHLC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OhlcPage {
    /// All rows, oldest first, as given (trade-less minutes included, flat at the previous
    /// close); the last one is the still-forming bar.
    pub bars: Vec<Bar>,
    /// Open time (unix s) of the newest finished bar; pass it back as `since`.
    pub last: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestTrade {
    pub trade: Trade,
    /// Per-pair sequence number; absent in the old 6-column format.
    pub id: Option<u64>,
}

/// A page of REST Trades, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradesPage {
    pub trades: Vec<RestTrade>,
    /// Opaque cursor (nanoseconds as text) for the next `since`; may be empty at the end.
    pub last: String,
}

/// REST SystemStatus: `online`, `maintenance`, `cancel_only` or `post_only`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemStatus {
    pub status: String,
    pub timestamp: Timestamp,
}

/// Reads the envelope and hands back the raw `result`. Kraken errors win over any `result`
/// (which may be absent or `{}` on failure); warnings alone are not failures.
pub(super) fn result<'a>(body: &'a [u8], what: &str) -> Result<&'a RawValue, KrakenError> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(default)]
        error: Vec<String>,
        #[serde(borrow)]
        result: Option<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| malformed(format!("{what}: {e}")))?;
    if let Some(err) = KrakenError::from_error_strings(&envelope.error) {
        return Err(err);
    }
    envelope
        .result
        .ok_or_else(|| malformed(format!("{what}: neither result nor error")))
}

fn decode<'a, T: Deserialize<'a>>(raw: &'a RawValue, what: &str) -> Result<T, KrakenError> {
    serde_json::from_str(raw.get()).map_err(|e| malformed(format!("{what}: {e}")))
}

/// `result = {<pairKey>: rows, "last": cursor}`: the rows of the one pair asked for, found
/// without guessing the key (Kraken answers under the canonical key whatever name was sent).
/// Rows are the one array-valued entry, so a scalar field added later does not confuse us.
fn single_pair<'a>(raw: &'a RawValue, what: &str) -> Result<(&'a RawValue, &'a RawValue), KrakenError> {
    let mut map: BTreeMap<String, &RawValue> = decode(raw, what)?;
    let last = map
        .remove("last")
        .ok_or_else(|| malformed(format!("{what}: no 'last'")))?;
    let mut pairs = map.into_values().filter(|v| v.get().starts_with('['));
    match (pairs.next(), pairs.next()) {
        (Some(rows), None) => Ok((rows, last)),
        (None, _) => Err(malformed(format!("{what}: no pair in result"))),
        (Some(_), Some(_)) => Err(malformed(format!("{what}: several pairs in result"))),
    }
}

/// `last` as written: an integer in docs, a string in some captures; both accepted.
fn text_of(raw: &RawValue) -> &str {
    let text = raw.get();
    text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text)
}

/// Server time (`unixtime`; the `rfc1123` field is not real RFC 1123 and is ignored).
pub fn parse_time(body: &[u8]) -> Result<Timestamp, KrakenError> {
    #[derive(Deserialize)]
    struct Time {
        unixtime: i64,
    }
    let time: Time = decode(result(body, "Time")?, "Time")?;
    secs(time.unixtime).ok_or_else(|| malformed("Time: unixtime out of range"))
}

pub fn parse_system_status(body: &[u8]) -> Result<SystemStatus, KrakenError> {
    #[derive(Deserialize)]
    struct Status {
        status: String,
        timestamp: Rfc3339,
    }
    let s: Status = decode(result(body, "SystemStatus")?, "SystemStatus")?;
    Ok(SystemStatus {
        status: s.status,
        timestamp: s.timestamp.0,
    })
}

/// Every pair in the answer, sorted by key.
pub fn parse_asset_pairs(body: &[u8]) -> Result<Vec<AssetPair>, KrakenError> {
    #[derive(Deserialize)]
    struct Pair {
        altname: String,
        wsname: Option<String>,
        base: String,
        quote: String,
        pair_decimals: u32,
        lot_decimals: u32,
        ordermin: Option<DecStr>,
        costmin: Option<DecStr>,
        tick_size: Option<DecStr>,
    }
    let pairs: BTreeMap<String, Pair> = decode(result(body, "AssetPairs")?, "AssetPairs")?;
    Ok(pairs
        .into_iter()
        .map(|(key, p)| AssetPair {
            key,
            altname: p.altname,
            wsname: p.wsname,
            base: p.base,
            quote: p.quote,
            pair_decimals: p.pair_decimals,
            lot_decimals: p.lot_decimals,
            ordermin: p.ordermin.map(|d| d.0),
            costmin: p.costmin.map(|d| d.0),
            tick_size: p.tick_size.map(|d| d.0),
        })
        .collect())
}

/// Every pair in the answer, sorted by key.
pub fn parse_ticker(body: &[u8]) -> Result<Vec<RestTicker>, KrakenError> {
    #[derive(Deserialize)]
    struct Raw {
        a: Vec<DecStr>,
        b: Vec<DecStr>,
        c: Vec<DecStr>,
    }
    let tickers: BTreeMap<String, Raw> = decode(result(body, "Ticker")?, "Ticker")?;
    tickers
        .into_iter()
        .map(|(key, t)| {
            let at = |v: &[DecStr], i: usize, name: &str| {
                v.get(i)
                    .map(|d| d.0)
                    .ok_or_else(|| malformed(format!("Ticker {key}: {name}[{i}] missing")))
            };
            let ticker = RestTicker {
                last: at(&t.c, 0, "c")?,
                last_size: at(&t.c, 1, "c")?,
                bid: at(&t.b, 0, "b")?,
                ask: at(&t.a, 0, "a")?,
                bid_size: at(&t.b, 2, "b")?,
                ask_size: at(&t.a, 2, "a")?,
                key,
            };
            if ![ticker.last, ticker.bid, ticker.ask].into_iter().all(positive) {
                return Err(malformed(format!("Ticker {}: a price is not above zero", ticker.key)));
            }
            Ok(ticker)
        })
        .collect()
}

pub fn parse_ohlc(body: &[u8]) -> Result<OhlcPage, KrakenError> {
    let (rows, last) = single_pair(result(body, "OHLC")?, "OHLC")?;
    let rows: Vec<OhlcRow> = decode(rows, "OHLC")?;
    let last = text_of(last)
        .parse()
        .map_err(|_| malformed(format!("OHLC: bad last {last}")))?;
    Ok(OhlcPage {
        bars: rows.into_iter().map(|r| r.0).collect(),
        last,
    })
}

pub fn parse_trades(body: &[u8]) -> Result<TradesPage, KrakenError> {
    let (rows, last) = single_pair(result(body, "Trades")?, "Trades")?;
    let rows: Vec<TradeRow> = decode(rows, "Trades")?;
    Ok(TradesPage {
        trades: rows.into_iter().map(|r| r.0).collect(),
        last: text_of(last).to_string(),
    })
}

/// Reads the next element of a row, or says which column is missing.
fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(seq: &mut A, column: &str) -> Result<T, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::custom(format!("row ends before {column}")))
}

/// Skips columns Kraken may add after the ones we know.
fn drain<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// `[time, open, high, low, close, vwap, volume, count]`.
struct OhlcRow(Bar);

impl<'de> Deserialize<'de> for OhlcRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OhlcRow;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an OHLC row [time, o, h, l, c, vwap, volume, count]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OhlcRow, A::Error> {
                let time: i64 = next(&mut seq, "time")?;
                let open: DecStr = next(&mut seq, "open")?;
                let high: DecStr = next(&mut seq, "high")?;
                let low: DecStr = next(&mut seq, "low")?;
                let close: DecStr = next(&mut seq, "close")?;
                let _vwap: IgnoredAny = next(&mut seq, "vwap")?;
                let volume: DecStr = next(&mut seq, "volume")?;
                let trades: u32 = next(&mut seq, "count")?;
                drain(&mut seq)?;
                let ts = secs(time).ok_or_else(|| de::Error::custom("time out of range"))?;
                let bar = Bar {
                    ts,
                    open: open.0,
                    high: high.0,
                    low: low.0,
                    close: close.0,
                    volume: volume.0,
                    trades,
                };
                check_candle(&bar).map_err(de::Error::custom)?;
                Ok(OhlcRow(bar))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `[price, volume, time, side, ordertype, misc, trade_id?]`.
struct TradeRow(RestTrade);

impl<'de> Deserialize<'de> for TradeRow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TradeRow;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a trade row [price, volume, time, side, ordertype, misc, id]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TradeRow, A::Error> {
                let price: DecStr = next(&mut seq, "price")?;
                let size: DecStr = next(&mut seq, "volume")?;
                let time: SecsNum = next(&mut seq, "time")?;
                let side = match next::<&str, _>(&mut seq, "side")? {
                    "b" => Side::Buy,
                    "s" => Side::Sell,
                    other => return Err(de::Error::custom(format!("bad side '{other}'"))),
                };
                if !positive(price.0) || !positive(size.0) {
                    return Err(de::Error::custom("price and volume must be above zero"));
                }
                let _ordertype: IgnoredAny = next(&mut seq, "ordertype")?;
                let _misc: IgnoredAny = next(&mut seq, "misc")?;
                // The old API stopped at `misc`.
                let id = seq.next_element::<u64>()?;
                drain(&mut seq)?;
                Ok(TradeRow(RestTrade {
                    trade: Trade {
                        ts: time.0,
                        price: price.0,
                        size: size.0,
                        side: Some(side),
                    },
                    id,
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{d, fixture};

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    fn bar(t: i64, o: &str, h: &str, l: &str, c: &str, v: &str, n: u32) -> Bar {
        Bar {
            ts: ts(t),
            open: d(o),
            high: d(h),
            low: d(l),
            close: d(c),
            volume: d(v),
            trades: n,
        }
    }

    fn trade(price: &str, size: &str, ns: i64, side: Side, id: u64) -> RestTrade {
        RestTrade {
            trade: Trade {
                ts: Timestamp::from_nanos(ns),
                price: d(price),
                size: d(size),
                side: Some(side),
            },
            id: Some(id),
        }
    }

    struct Case<T> {
        file: &'static str,
        expected: T,
    }

    #[test]
    fn time_and_status() {
        let body = fixture("rest_time.json");
        assert_eq!(parse_time(body.as_bytes()), Ok(ts(1_762_820_224)));
        let body = fixture("rest_system_status.json");
        assert_eq!(
            parse_system_status(body.as_bytes()),
            Ok(SystemStatus {
                status: "online".into(),
                timestamp: ts(1_762_820_230),
            })
        );
    }

    #[test]
    fn asset_pairs() {
        let cases = [
            Case {
                file: "rest_assetpairs_xbtusd.json",
                expected: AssetPair {
                    key: "XXBTZUSD".into(),
                    altname: "XBTUSD".into(),
                    wsname: Some("XBT/USD".into()),
                    base: "XXBT".into(),
                    quote: "ZUSD".into(),
                    pair_decimals: 1,
                    lot_decimals: 8,
                    ordermin: Some(d("0.0001")),
                    costmin: Some(d("0.5")),
                    tick_size: Some(d("0.1")),
                },
            },
            Case {
                file: "rest_assetpairs_xbtusdt_recorded.json",
                expected: AssetPair {
                    key: "XBTUSDT".into(),
                    altname: "XBTUSDT".into(),
                    wsname: Some("XBT/USDT".into()),
                    base: "XXBT".into(),
                    quote: "USDT".into(),
                    pair_decimals: 1,
                    lot_decimals: 8,
                    ordermin: Some(d("0.00005")),
                    costmin: Some(d("0.5")),
                    tick_size: Some(d("0.1")),
                },
            },
        ];
        for case in cases {
            let got = parse_asset_pairs(fixture(case.file).as_bytes());
            assert_eq!(got, Ok(vec![case.expected]), "{}", case.file);
        }
    }

    #[test]
    fn tickers() {
        let cases = [
            Case {
                file: "rest_ticker_xbtusd.json",
                expected: RestTicker {
                    key: "XXBTZUSD".into(),
                    last: d("30303.20000"),
                    last_size: d("0.00067643"),
                    bid: d("30300.00000"),
                    ask: d("30300.10000"),
                    bid_size: d("1.000"),
                    ask_size: d("1.000"),
                },
            },
            Case {
                file: "rest_ticker_xbtusdt_recorded.json",
                expected: RestTicker {
                    key: "XBTUSDT".into(),
                    last: d("105899.40000"),
                    last_size: d("0.00009443"),
                    bid: d("105944.20000"),
                    ask: d("105944.30000"),
                    bid_size: d("1.000"),
                    ask_size: d("1.000"),
                },
            },
        ];
        for case in cases {
            let got = parse_ticker(fixture(case.file).as_bytes());
            assert_eq!(got, Ok(vec![case.expected]), "{}", case.file);
        }
        // The scale as written survives (5 decimals on Ticker prices).
        let got = parse_ticker(fixture("rest_ticker_xbtusd.json").as_bytes()).unwrap();
        assert_eq!(got[0].last.to_string(), "30303.20000");
    }

    struct OhlcExpected {
        rows: usize,
        last: i64,
        first: Bar,
        /// (index, bar) checks inside the page.
        picks: Vec<(usize, Bar)>,
    }

    #[test]
    fn ohlc_pages() {
        let recorded = |file| Case {
            file,
            expected: OhlcExpected {
                rows: 721,
                last: 1_762_820_160,
                first: bar(
                    1_762_777_020,
                    "106038.2",
                    "106038.2",
                    "106038.2",
                    "106038.2",
                    "0.00000000",
                    0,
                ),
                picks: vec![
                    (
                        3,
                        bar(
                            1_762_777_200,
                            "106038.1",
                            "106044.3",
                            "106038.1",
                            "106040.1",
                            "0.08317981",
                            3,
                        ),
                    ),
                    // The 00:13 candle holds the single last recorded trade.
                    (
                        716,
                        bar(
                            1_762_819_980,
                            "105899.4",
                            "105899.4",
                            "105899.4",
                            "105899.4",
                            "0.00009443",
                            1,
                        ),
                    ),
                    // The still-forming bar: flat, no trades, one minute after `last`.
                    (
                        720,
                        bar(
                            1_762_820_220,
                            "105899.4",
                            "105899.4",
                            "105899.4",
                            "105899.4",
                            "0.00000000",
                            0,
                        ),
                    ),
                ],
            },
        };
        let cases = [
            recorded("rest_ohlc_xbtusd_1m.json"),
            recorded("rest_ohlc_xbtusdt_1m_recorded.json"),
            Case {
                file: "rest_ohlc_xbtusd_docs.json",
                expected: OhlcExpected {
                    rows: 4,
                    // The docs example's `last` is not its second-to-last row: kept as given.
                    last: 1_688_672_160,
                    first: bar(
                        1_688_671_200,
                        "30306.1",
                        "30306.2",
                        "30305.7",
                        "30305.7",
                        "3.39243896",
                        23,
                    ),
                    picks: vec![(
                        3,
                        bar(
                            1_688_671_380,
                            "30291.8",
                            "30295.1",
                            "30291.8",
                            "30295.0",
                            "1.01836275",
                            9,
                        ),
                    )],
                },
            },
        ];
        for case in cases {
            let page = parse_ohlc(fixture(case.file).as_bytes()).unwrap();
            let want = case.expected;
            assert_eq!(page.bars.len(), want.rows, "{}", case.file);
            assert_eq!(page.last, want.last, "{}", case.file);
            assert_eq!(page.bars[0], want.first, "{}", case.file);
            for (i, bar) in want.picks {
                assert_eq!(page.bars[i], bar, "{} row {i}", case.file);
            }
            assert!(page.bars.windows(2).all(|w| w[0].ts < w[1].ts));
        }
        let page = parse_ohlc(fixture("rest_ohlc_xbtusd_1m.json").as_bytes()).unwrap();
        assert_eq!(page.bars[719].ts, ts(page.last), "last = newest finished bar");
    }

    struct TradesExpected {
        count: usize,
        last: &'static str,
        first: RestTrade,
        end: RestTrade,
    }

    #[test]
    fn trades_pages() {
        let cases = [
            Case {
                file: "rest_trades_xbtusd.json",
                expected: TradesExpected {
                    count: 3,
                    last: "1688671969993150842",
                    first: trade(
                        "30243.40000",
                        "0.34507674",
                        1_688_669_597_827_736_900,
                        Side::Buy,
                        61_044_952,
                    ),
                    end: trade(
                        "30243.30000",
                        "0.01235716",
                        1_688_669_602_698_379_000,
                        Side::Sell,
                        61_044_956,
                    ),
                },
            },
            Case {
                file: "rest_trades_xbtusdt_recorded.json",
                expected: TradesExpected {
                    count: 50,
                    last: "1762820035982277754",
                    first: trade(
                        "105912.10000",
                        "0.00055684",
                        1_762_818_845_684_083_200,
                        Side::Sell,
                        10_219_158,
                    ),
                    // Time as written (.9822779); the cursor keeps the true ns (...277754).
                    end: trade(
                        "105899.40000",
                        "0.00009443",
                        1_762_820_035_982_277_900,
                        Side::Sell,
                        10_219_207,
                    ),
                },
            },
        ];
        for case in cases {
            let page = parse_trades(fixture(case.file).as_bytes()).unwrap();
            let want = case.expected;
            assert_eq!(page.trades.len(), want.count, "{}", case.file);
            assert_eq!(page.last, want.last, "{}", case.file);
            assert_eq!(page.trades[0], want.first, "{}", case.file);
            assert_eq!(page.trades.last(), Some(&want.end), "{}", case.file);
        }
        let page = parse_trades(fixture("rest_trades_xbtusdt_recorded.json").as_bytes()).unwrap();
        let buys = page.trades.iter().filter(|t| t.trade.side == Some(Side::Buy)).count();
        assert_eq!(buys, 15);
        let ids: Vec<u64> = page.trades.iter().filter_map(|t| t.id).collect();
        assert_eq!(ids, (10_219_158..=10_219_207).collect::<Vec<_>>());
    }

    #[test]
    fn error_fixtures_give_typed_errors_from_every_parser() {
        let cases = [
            Case {
                file: "rest_error_rate_limit.json",
                expected: (KrakenError::RateLimited("EAPI:Rate limit exceeded".into()), true),
            },
            Case {
                file: "rest_error_service_unavailable.json",
                expected: (KrakenError::ServiceUnavailable, true),
            },
            Case {
                file: "rest_error_invalid_arguments.json",
                expected: (KrakenError::InvalidArguments("ordertype".into()), false),
            },
            Case {
                file: "rest_error_unknown_pair.json",
                expected: (KrakenError::UnknownAssetPair("EQuery:Unknown asset pair".into()), false),
            },
            Case {
                file: "rest_error_invalid_nonce.json",
                expected: (KrakenError::InvalidNonce, false),
            },
            Case {
                file: "rest_error_invalid_signature.json",
                expected: (KrakenError::InvalidSignature, false),
            },
            Case {
                file: "private_addorder_insufficient_funds.json",
                expected: (KrakenError::InsufficientFunds, false),
            },
        ];
        for case in cases {
            let body = fixture(case.file);
            let body = body.as_bytes();
            let (want, retryable) = case.expected;
            assert_eq!(parse_time(body), Err(want.clone()), "{}", case.file);
            assert_eq!(parse_system_status(body).err(), Some(want.clone()));
            assert_eq!(parse_asset_pairs(body), Err(want.clone()));
            assert_eq!(parse_ticker(body), Err(want.clone()));
            assert_eq!(parse_ohlc(body), Err(want.clone()));
            assert_eq!(parse_trades(body), Err(want.clone()));
            assert_eq!(want.is_retryable(), retryable, "{}", case.file);
        }
        // Both failure shapes from the docs: `result` absent or `{}`; warnings do not fail.
        let with_empty_result = br#"{"error":["EService:Busy"],"result":{}}"#;
        assert_eq!(parse_ticker(with_empty_result), Err(KrakenError::ServiceBusy));
        let warned = br#"{"error":["WGeneral:Something"],"result":{"unixtime":5}}"#;
        assert_eq!(parse_time(warned), Ok(ts(5)));
    }

    #[test]
    fn malformed_bodies_are_refused_without_panicking() {
        let ohlc = fixture("rest_ohlc_xbtusd_docs.json");
        let truncated = &ohlc.as_bytes()[..ohlc.len() / 2];
        let bodies: [(&str, &[u8]); 14] = [
            ("empty", b""),
            ("html", b"<html><body>502 Bad Gateway</body></html>"),
            ("truncated", truncated),
            ("not utf-8", b"\xff\xfe{}"),
            ("no result", br#"{"error":[]}"#),
            ("error not a list", br#"{"error":"EService:Busy"}"#),
            ("result a list", br#"{"error":[],"result":[]}"#),
            (
                "number price",
                br#"{"error":[],"result":{"X":[[1,30306.1,"1","1","1","1","1",2]],"last":1}}"#,
            ),
            (
                "short row",
                br#"{"error":[],"result":{"X":[[1,"1","1","1"]],"last":1}}"#,
            ),
            (
                "bad decimal",
                br#"{"error":[],"result":{"X":[[1,"1.2.3","1","1","1","1","1",2]],"last":1}}"#,
            ),
            ("no last", br#"{"error":[],"result":{"X":[]}}"#),
            ("no pair", br#"{"error":[],"result":{"last":1}}"#),
            ("two pairs", br#"{"error":[],"result":{"X":[],"Y":[],"last":1}}"#),
            (
                "time overflow",
                br#"{"error":[],"result":{"X":[[9223372036854775807,"1","1","1","1","1","1",2]],"last":1}}"#,
            ),
        ];
        for (name, body) in bodies {
            assert!(
                matches!(parse_ohlc(body), Err(KrakenError::Malformed(_))),
                "{name}: {:?}",
                parse_ohlc(body)
            );
        }
        let trades: [(&str, &[u8]); 5] = [
            (
                "bad side",
                br#"{"error":[],"result":{"X":[["1","1",1.5,"x","m","",1]],"last":"1"}}"#,
            ),
            (
                "time as string",
                br#"{"error":[],"result":{"X":[["1","1","1.5","b","m","",1]],"last":"1"}}"#,
            ),
            (
                "negative time",
                br#"{"error":[],"result":{"X":[["1","1",-1.5,"b","m","",1]],"last":"1"}}"#,
            ),
            (
                "exponent time",
                br#"{"error":[],"result":{"X":[["1","1",1.5e9,"b","m","",1]],"last":"1"}}"#,
            ),
            (
                "id not a number",
                br#"{"error":[],"result":{"X":[["1","1",1.5,"b","m","","T1"]],"last":"1"}}"#,
            ),
        ];
        for (name, body) in trades {
            assert!(
                matches!(parse_trades(body), Err(KrakenError::Malformed(_))),
                "{name}: {:?}",
                parse_trades(body)
            );
        }
        let tickers: [(&str, &[u8]); 2] = [
            (
                "short c",
                br#"{"error":[],"result":{"X":{"a":["1","1","1"],"b":["1","1","1"],"c":["1"]}}}"#,
            ),
            ("missing a", br#"{"error":[],"result":{"X":{"b":[],"c":[]}}}"#),
        ];
        for (name, body) in tickers {
            assert!(matches!(parse_ticker(body), Err(KrakenError::Malformed(_))), "{name}");
        }
        let pairs = br#"{"error":[],"result":{"X":{"altname":"X","base":"A","quote":"B","pair_decimals":-1,"lot_decimals":8}}}"#;
        assert!(matches!(parse_asset_pairs(pairs), Err(KrakenError::Malformed(_))));
        assert!(matches!(
            parse_time(br#"{"error":[],"result":{"unixtime":"soon"}}"#),
            Err(KrakenError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_fields_and_extra_columns_are_ignored() {
        let ohlc = br#"{"error":[],"new":1,"result":{"XXBTZUSD":[
            [60,"1.5","2","1","1.75","1.6","0.5",3,"future column",{"x":1}]],
            "last":"0","hint":"x"}}"#;
        let page = parse_ohlc(ohlc).unwrap();
        assert_eq!(page.bars, vec![bar(60, "1.5", "2", "1", "1.75", "0.5", 3)]);
        assert_eq!(page.last, 0);
        // The old 6-column trades (no id), and an extra column after the id.
        let trades = br#"{"error":[],"result":{"XXBTZUSD":[
            ["1.0","2.0",1.000000001,"b","l",""],
            ["1.0","2.0",2,"s","m","",7,"extra"]],"last":12}}"#;
        let page = parse_trades(trades).unwrap();
        assert_eq!(page.trades[0].id, None);
        assert_eq!(page.trades[0].trade.ts, Timestamp::from_nanos(1_000_000_001));
        assert_eq!(page.trades[1].id, Some(7));
        assert_eq!(page.trades[1].trade.side, Some(Side::Sell));
        assert_eq!(page.last, "12");
        let pairs = br#"{"error":[],"result":{"K":{"altname":"A","base":"B","quote":"Q",
            "pair_decimals":2,"lot_decimals":3,"brand_new":[1,2]}}}"#;
        let got = parse_asset_pairs(pairs).unwrap();
        assert_eq!(got[0].wsname, None);
        assert_eq!(got[0].ordermin, None);
    }
}
