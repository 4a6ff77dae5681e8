//! The API's query parameters, read exactly as openapi.json describes them: every value the
//! description allows is answered, every other one is a 400 (schemathesis checks both ways, so
//! the limits here and the `pattern`/`minimum`/`maximum`/`maxLength` there must agree).

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use super::errors::ApiError;
use nanotrader_market::Timestamp;

/// Longest code on either side of a pair's slash (openapi.json: `pattern`, and `maxLength` 33).
const MAX_PAIR_CODE_LEN: usize = 16;
/// Longest `from`/`to` (openapi.json: `maxLength`): an RFC 3339 time with nanoseconds and an
/// offset is 35 characters.
pub const MAX_TIME_LEN: usize = 40;
/// Largest `before` (openapi.json: `maximum`): order ids are stored as SQLite integers.
pub const MAX_BEFORE: u64 = i64::MAX as u64;
/// Most digits of unix seconds (openapi.json: `pattern`): any such number fits an i64.
const MAX_SECONDS_DIGITS: usize = 18;

/// The query string's parameters (the last of repeated ones).
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(params) = Query::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        Ok(Self(params))
    }
}

impl Params {
    #[cfg(test)]
    fn of(pairs: &[(&str, &str)]) -> Self {
        Self(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// `pair`: `BASE/QUOTE`, each 1 to 16 letters, digits, `.`, `_` or `-` (any case).
    pub fn pair(&self) -> Result<Option<&str>, ApiError> {
        let Some(pair) = self.0.get("pair") else {
            return Ok(None);
        };
        let code = |c: &str| {
            (1..=MAX_PAIR_CODE_LEN).contains(&c.len())
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        match pair.split_once('/') {
            Some((base, quote)) if code(base) && code(quote) => Ok(Some(pair)),
            _ => Err(ApiError::bad_request(format!(
                "pair '{pair}' is not BASE/QUOTE (e.g. BTC/USD)"
            ))),
        }
    }

    /// `run`: a run id (the fleet dashboard's boards), a whole number from 1 to `i64::MAX`.
    pub fn run(&self) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.0.get("run") else {
            return Ok(None);
        };
        whole_number(text)
            .filter(|n| (1..=i64::MAX as u64).contains(n))
            .map(|n| Some(n as i64))
            .ok_or_else(|| ApiError::bad_request(format!("run '{text}' is not a run id")))
    }

    /// `limit`: a whole number from 1 to `max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.0.get("limit") else {
            return Ok(default);
        };
        whole_number(text)
            .filter(|n| (1..=max as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad_request(format!("limit '{text}' must be a whole number from 1 to {max}")))
    }

    /// `before`: an order id, a whole number from 0 to `MAX_BEFORE`.
    pub fn before(&self) -> Result<Option<u64>, ApiError> {
        let Some(text) = self.0.get("before") else {
            return Ok(None);
        };
        whole_number(text)
            .filter(|n| *n <= MAX_BEFORE)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("before '{text}' is not an order id")))
    }

    /// `from` or `to`: unix seconds, a date (`2024-01-01`, midnight UTC) or an RFC 3339 time.
    /// Times outside what the store can hold (before 1970, after 2262) are clamped to its ends:
    /// as bounds of a range they still mean "from the first bar" and "to the last".
    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        let Some(text) = self.0.get(name) else {
            return Ok(None);
        };
        parse_time(text).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name} '{text}' is not unix seconds, a date (2024-01-01) or an RFC 3339 time (2024-01-01T12:00:00Z)"
            ))
        })
    }
}

/// ASCII digits only (no sign, no spaces: what the description's `integer` is on the wire).
fn whole_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Too many digits for a u64 is simply too large.
    Some(text.parse().unwrap_or(u64::MAX))
}

fn parse_time(text: &str) -> Option<Timestamp> {
    if text.len() > MAX_TIME_LEN || !text.is_ascii() {
        return None;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.len() <= MAX_SECONDS_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = text.parse().ok()?;
        return Some(clamped(i128::from(secs) * 1_000_000_000));
    }
    // RFC 3339's full-date is exactly `YYYY-MM-DD` (chrono's %Y alone would take signs, more digits).
    if text.len() == 10 {
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        let secs = date.and_hms_opt(0, 0, 0)?.and_utc().timestamp();
        return Some(clamped(i128::from(secs) * 1_000_000_000));
    }
    // chrono also takes a space for the `T` (RFC 3339 allows it only outside the grammar).
    if !matches!(text.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let nanos = i128::from(time.timestamp()) * 1_000_000_000 + i128::from(time.timestamp_subsec_nanos());
    Some(clamped(nanos))
}

fn clamped(nanos: i128) -> Timestamp {
    Timestamp::from_nanos(nanos.clamp(0, i128::from(i64::MAX)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> Option<i64> {
        Params::of(&[("from", text)]).time("from").ok().flatten().map(|t| t.0)
    }

    #[test]
    fn times_take_the_three_documented_forms_and_nothing_else() {
        const S: i64 = 1_000_000_000;
        assert_eq!(time("1504400400"), Some(1504400400 * S));
        assert_eq!(time("0"), Some(0));
        assert_eq!(time("2017-09-03"), Some(1504396800 * S));
        assert_eq!(time("2017-09-03T01:00:00Z"), Some(1504400400 * S));
        assert_eq!(time("2017-09-03t01:00:00.5z"), Some(1504400400 * S + S / 2));
        assert_eq!(time("2017-09-03T03:00:00+02:00"), Some(1504400400 * S));
        // Outside the store's range: clamped, not refused, not overflowing.
        assert_eq!(time("-5"), Some(0));
        assert_eq!(time("0001-01-01"), Some(0));
        assert_eq!(time("999999999999999999"), Some(i64::MAX));
        assert_eq!(time("9999-12-31T23:59:59.999999+23:59"), Some(i64::MAX));
        for bad in [
            "",
            " 5",
            "+5",
            "5 ",
            "1e9",
            "9999999999999999999",
            "yesterday",
            "2023-02-30",
            "2024-1-1",
            "+2024-01-01",
            "2017-09-03 01:00:00Z",
            "2017-09-03T01:00:00",
            "2017-09-03T25:00:00Z",
            "2017-09-03T01:00:00Z ",
            "2017-09-03T01:00:00.1234567890123456789012Z",
        ] {
            assert_eq!(time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn numbers_are_plain_digits_within_their_limits() {
        let limit = |text: &str| Params::of(&[("limit", text)]).limit(1000, 10_000).ok();
        assert_eq!(Params::of(&[]).limit(1000, 10_000).ok(), Some(1000));
        assert_eq!(limit("1"), Some(1));
        assert_eq!(limit("10000"), Some(10_000));
        assert_eq!(limit("007"), Some(7));
        for bad in [
            "0",
            "10001",
            "",
            "+5",
            " 5",
            "-1",
            "1.0",
            "abc",
            "99999999999999999999999",
        ] {
            assert_eq!(limit(bad), None, "{bad:?}");
        }
        let before = |text: &str| Params::of(&[("before", text)]).before().ok().flatten();
        assert_eq!(before("0"), Some(0));
        assert_eq!(before("9223372036854775807"), Some(MAX_BEFORE));
        assert_eq!(before("9223372036854775808"), None);
        assert_eq!(before("x"), None);
    }

    #[test]
    fn pairs_are_base_slash_quote() {
        let pair = |text: &str| Params::of(&[("pair", text)]).pair().ok().flatten().map(str::to_owned);
        assert_eq!(pair("BTC/USD").as_deref(), Some("BTC/USD"));
        assert_eq!(pair("eth2.s/usd").as_deref(), Some("eth2.s/usd"));
        for bad in [
            "BTCUSD",
            "/USD",
            "BTC/",
            "BTC/USD/EUR",
            " BTC/USD",
            "BTC/US D",
            "ABCDEFGHIJKLMNOPQ/USD",
        ] {
            assert_eq!(pair(bad), None, "{bad:?}");
        }
        assert_eq!(Params::of(&[]).pair().ok(), Some(None));
    }
}
