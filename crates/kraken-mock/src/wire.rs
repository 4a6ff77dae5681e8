//! Kraken's spellings of numbers and times: REST decimal strings at fixed precision, WS v2 JSON
//! numbers, and the time formats each place uses.

use chrono::{DateTime, SecondsFormat};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::{Number, Value};

use nanotrader_market::Timestamp;

/// XXBTZUSD `pair_decimals`: OHLC prices are written `"106038.2"`.
pub(super) const PRICE_DECIMALS: u32 = 1;
/// XXBTZUSD `lot_decimals`: volumes are written `"0.00032101"`.
pub(super) const LOT_DECIMALS: u32 = 8;
/// Ticker prices carry five decimals whatever the pair: `"30303.20000"`.
pub(super) const TICKER_DECIMALS: u32 = 5;
/// XXBTZUSD `tick_size`, 0.1.
pub(super) const TICK: Decimal = Decimal::from_parts(1, 0, 0, false, 1);

/// REST text of a value from the data, padded to `decimals`; finer digits the data has are
/// kept, never rounded away.
pub(super) fn text(value: Decimal, decimals: u32) -> String {
    if value.scale() >= decimals {
        value.to_string()
    } else {
        rounded(value, decimals)
    }
}

/// REST text of a computed value (a vwap), rounded to `decimals`.
pub(super) fn rounded(value: Decimal, decimals: u32) -> String {
    format!("{:.*}", decimals as usize, value)
}

/// A WS v2 number: JSON numbers, not strings (shortest `f64` spelling, e.g. `9.443e-5`).
pub(super) fn number(value: Decimal) -> Value {
    value
        .to_f64()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// REST trade time: float seconds, as short as the `f64` nearest to the exact time allows.
pub(super) fn float_secs(ts: Timestamp) -> Value {
    let exact = format!("{}.{:09}", ts.secs(), ts.nanos().rem_euclid(1_000_000_000));
    exact
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

/// WS v2 times: RFC 3339 with microseconds, `2023-09-25T07:49:37.708706Z`.
pub(super) fn micros(ts: Timestamp) -> String {
    rfc3339(ts, SecondsFormat::Micros)
}

/// WS v2 `interval_begin` and the ohlc message time: nanoseconds.
pub(super) fn nanos(ts: Timestamp) -> String {
    rfc3339(ts, SecondsFormat::Nanos)
}

/// REST SystemStatus time: whole seconds, `2025-11-11T00:17:10Z`.
pub(super) fn whole_secs(ts: Timestamp) -> String {
    rfc3339(ts, SecondsFormat::Secs)
}

/// REST Time's not-quite-RFC-1123: two-digit year, space-padded day (`Wed,  9 Jan 19 ...`).
pub(super) fn rfc1123(ts: Timestamp) -> String {
    DateTime::from_timestamp_nanos(ts.nanos())
        .format("%a, %e %b %y %H:%M:%S +0000")
        .to_string()
}

fn rfc3339(ts: Timestamp, format: SecondsFormat) -> String {
    DateTime::from_timestamp_nanos(ts.nanos()).to_rfc3339_opts(format, true)
}
