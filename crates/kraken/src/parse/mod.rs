//! Kraken wire formats to typed values, with no I/O. REST puts money in JSON strings, WS v2 in
//! JSON numbers; both become exact `Decimal`s parsed from the text, never through `f64`.
//! Unknown fields are ignored everywhere so that Kraken can add some without breaking us.

mod rest;
mod ws;

pub use rest::{
    AssetPair, OhlcPage, RestTicker, RestTrade, SystemStatus, TradesPage, parse_asset_pairs, parse_ohlc,
    parse_system_status, parse_ticker, parse_time, parse_trades,
};
pub use ws::{WsMessage, WsOhlc, WsTrade, parse_ws, ping_request, subscribe_request};

use std::fmt;

use rust_decimal::Decimal;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::value::RawValue;

use super::error::KrakenError;
use nanotrader_market::Timestamp;
use nanotrader_market::parse::{decimal, secs_to_nanos};

fn malformed(reason: impl Into<String>) -> KrakenError {
    KrakenError::Malformed(reason.into())
}

/// Prices and trade sizes must be above zero: a message saying otherwise is broken, and a zero
/// price would reach the strategy and the broker (which divide by it).
fn positive(value: Decimal) -> bool {
    value.is_sign_positive() && !value.is_zero()
}

/// Prices of a candle above zero and its volume not below; the message for refusing it otherwise.
fn check_candle(bar: &nanotrader_market::Bar) -> Result<(), String> {
    let prices = [bar.open, bar.high, bar.low, bar.close];
    if !prices.into_iter().all(positive) || !(bar.volume.is_sign_positive() || bar.volume.is_zero()) {
        return Err(format!(
            "candle at {} with a price not above zero or a negative volume",
            bar.ts
        ));
    }
    Ok(())
}

/// A decimal held in a JSON string (REST): `"30300.10000"`. A bare number is refused, so no
/// value can sneak in through `f64`.
struct DecStr(Decimal);

impl<'de> Deserialize<'de> for DecStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DecStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DecStr, E> {
                decimal(v.as_bytes())
                    .map(DecStr)
                    .ok_or_else(|| E::custom(format!("bad decimal '{v}'")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A decimal held in a JSON number (WS v2): `0.10025`, `740.0`, `9.443e-05`, read from the
/// number's own text so every written digit (and the scale) is kept.
struct DecNum(Decimal);

impl<'de> Deserialize<'de> for DecNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        number(raw.get())
            .map(DecNum)
            .ok_or_else(|| de::Error::custom(format!("expected a decimal number, got {raw}")))
    }
}

/// The text of a JSON number as a `Decimal`; `None` for strings, booleans, objects...
fn number(text: &str) -> Option<Decimal> {
    if text.contains(['e', 'E']) {
        // from_scientific takes the exponent literally (no float detour).
        if !text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return None;
        }
        Decimal::from_scientific(text).ok()
    } else {
        decimal(text.as_bytes())
    }
}

/// An RFC 3339 instant (`2023-10-04T15:25:00.000000000Z`), to the nanosecond.
struct Rfc3339(Timestamp);

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Rfc3339;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Rfc3339, E> {
                rfc3339(v)
                    .map(Rfc3339)
                    .ok_or_else(|| E::custom(format!("bad timestamp '{v}'")))
            }
        }
        d.deserialize_str(V)
    }
}

pub(crate) fn rfc3339(text: &str) -> Option<Timestamp> {
    let nanos = chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp_nanos_opt()?;
    Some(Timestamp::from_nanos(nanos))
}

/// Fractional Unix seconds as written in a JSON number (`1688669597.8277369`), to the
/// nanosecond without going through `f64` (which would blur the last digits).
struct SecsNum(Timestamp);

impl<'de> Deserialize<'de> for SecsNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(d)?;
        secs_to_nanos(raw.get().as_bytes())
            .map(|ns| SecsNum(Timestamp::from_nanos(ns)))
            .ok_or_else(|| de::Error::custom(format!("expected unix seconds, got {raw}")))
    }
}

/// Whole Unix seconds as a `Timestamp`, refusing values that would overflow nanoseconds.
fn secs(s: i64) -> Option<Timestamp> {
    s.checked_mul(1_000_000_000).map(Timestamp::from_nanos)
}

/// `Decimal` from literal test text, keeping the written scale.
#[cfg(test)]
pub(crate) fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/kraken/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_text_becomes_an_exact_decimal() {
        for (text, expected) in [
            ("0.10025", "0.10025"),
            ("740.0", "740.0"),
            ("105944.2", "105944.2"),
            ("-0.00017", "-0.00017"),
            ("9.443e-05", "0.00009443"),
            ("5.1E-5", "0.000051"),
            ("1.5e+3", "1500"),
            ("2e3", "2000"),
            ("12345678901234567890.12345678", "12345678901234567890.12345678"),
        ] {
            let got = number(text).map(|d| d.to_string());
            assert_eq!(got.as_deref(), Some(expected), "{text}");
        }
        // More digits than a Decimal holds: refused rather than silently rounded.
        assert_eq!(number("0.1000000000000000055511151231257827"), None);
        for bad in ["\"1.5\"", "true", "null", "{}", "[1]", "", "e5", "1e", "1e-99"] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_keeps_nanoseconds() {
        for (text, ns) in [
            ("2023-10-04T15:25:00.000000000Z", 1_696_433_100_000_000_000),
            ("2023-09-25T09:04:31.742648Z", 1_695_632_671_742_648_000),
            ("2025-11-11T00:13:55.982277754Z", 1_762_820_035_982_277_754),
            ("2025-11-11T00:17:10Z", 1_762_820_230_000_000_000),
        ] {
            assert_eq!(rfc3339(text), Some(Timestamp::from_nanos(ns)), "{text}");
        }
        for bad in ["", "2023-10-04", "yesterday", "9999999-01-01T00:00:00Z"] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }
}

#[cfg(test)]
mod every_fixture {
    use super::*;
    use crate::error::KrakenError;

    /// Every recorded or documented payload, including endpoints nanotrader does not call yet
    /// (private, Depth, Spread): REST ones are well-formed envelopes (a result, or a typed error),
    /// WebSocket ones parse. The typed values are checked fixture by fixture in `rest` and `ws`.
    #[test]
    fn every_fixture_file_parses() {
        let dir = format!("{}/../../tests/fixtures/kraken", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<String> = Vec::new();
        for sub in ["", "synthetic_btcusd/"] {
            for entry in std::fs::read_dir(format!("{dir}/{sub}")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".json") {
                    files.push(format!("{sub}{name}"));
                }
            }
        }
        assert!(files.len() >= 50, "the fixtures are all here: {}", files.len());
        for name in files {
            let text = fixture(&name);
            let base = name.rsplit('/').next().unwrap_or(&name);
            if base.starts_with("ws_") {
                assert!(parse_ws(&text).is_ok(), "{name}: {:?}", parse_ws(&text));
            } else {
                match rest::result(text.as_bytes(), &name) {
                    Ok(_) => assert!(!base.contains("error"), "{name} should be an error"),
                    Err(KrakenError::Malformed(e)) => panic!("{name}: {e}"),
                    Err(_) => assert!(base.contains("error") || base.contains("insufficient"), "{name}"),
                }
            }
        }
    }
}
