//! Between nanotrader's values and PostgreSQL's: times, bar values, errors.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use nanotrader_market::Timestamp;
use nanotrader_store::StoreError;

/// 0001-01-01 and 9999-12-31 in milliseconds: the widest range asked of the database (an
/// unbounded read asks from `i64::MIN`, which no timestamptz holds).
const MIN_MS: i64 = -62_135_596_800_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// A time as stored: milliseconds, as the SQLite store keeps them, so both stores hold the same.
pub fn at(ts: Timestamp) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ts.millis())
        .ok_or_else(|| StoreError::Corrupt(format!("time {} ms out of range", ts.millis())))
}

/// A bound of a range read, clamped to what the database holds.
pub fn bound(ts: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ts.millis().clamp(MIN_MS, MAX_MS)).unwrap_or_default()
}

pub fn ts(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_millis(at.timestamp_millis())
}

/// A bar value as the SQLite store gives it back: normalized when it has at most 8 decimals and
/// fits its 1e-8 integer form, else exactly as stored; so both stores export the same text.
pub fn bar_value(value: Decimal) -> Decimal {
    const FACTORS: [i128; 9] = [100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];
    let scale = value.scale();
    let fits = scale <= 8
        && value
            .mantissa()
            .checked_mul(FACTORS[scale as usize])
            .is_some_and(|units| i64::try_from(units).is_ok());
    if fits { value.normalize() } else { value }
}

/// Whether waiting can cure this failure: the connection lost (a server restarting, the network
/// away), the server shutting down or short of resources, a lock or serialization conflict.
pub fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // No SQLSTATE: an I/O or protocol failure of the connection.
        None => e.as_db_error().is_none(),
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(code, "40001" | "40P01" | "55P03" | "55006")
        }
    }
}

/// The server's failure in one line: its message and SQLSTATE, or the connection's failure and
/// its cause (rust-postgres shows "db error" or "error connecting to server" alone).
pub fn pg_error(e: postgres::Error) -> StoreError {
    let transient = is_transient(&e);
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                let words = cause.to_string();
                if !text.contains(&words) {
                    text.push_str(": ");
                    text.push_str(&words);
                }
                source = cause.source();
            }
            text
        }
    };
    StoreError::Server {
        message: message.replace('\n', " "),
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_values_come_back_as_sqlite_gives_them() {
        for (stored, read) in [
            ("4652.690", "4652.69"),
            ("0.00000001", "0.00000001"),
            ("0.1234567890", "0.1234567890"),
            ("92233720368.54775808", "92233720368.54775808"),
            ("1.50000000", "1.5"),
        ] {
            let value: Decimal = stored.parse().unwrap();
            assert_eq!(bar_value(value).to_string(), read, "{stored}");
        }
    }

    #[test]
    fn times_are_milliseconds_and_unbounded_reads_clamp() {
        let t = Timestamp::from_millis(1_504_396_820_123);
        assert_eq!(ts(at(t).unwrap()), t);
        // The widest times there are (nanoseconds: 1677 to 2262) are read bounds the server takes.
        for edge in [Timestamp(i64::MIN), Timestamp(i64::MAX)] {
            let millis = bound(edge).timestamp_millis();
            assert_eq!(millis, edge.millis());
            assert!((MIN_MS..=MAX_MS).contains(&millis));
        }
    }
}
