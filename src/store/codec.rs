//! Conversions between domain values and their stored form.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rust_decimal::Decimal;

use super::StoreError;

/// Bar prices and volumes are stored as INTEGER counts of 1e-8 (as exchanges count satoshis)
/// when that is exact, else as the decimal's TEXT: compact and fast to write, never rounded.
pub const FIXED_SCALE: u32 = 8;
const FIXED_FACTORS: [i128; 9] = [100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1];

pub fn fixed_to_sql(value: Decimal) -> ToSqlOutput<'static> {
    let scale = value.scale();
    if scale <= FIXED_SCALE
        && let Some(units) = value.mantissa().checked_mul(FIXED_FACTORS[scale as usize])
        && let Ok(units) = i64::try_from(units)
    {
        return ToSqlOutput::Owned(Value::Integer(units));
    }
    ToSqlOutput::Owned(Value::Text(value.to_string()))
}

pub fn fixed_from_sql(value: ValueRef) -> Result<Decimal, StoreError> {
    match value {
        ValueRef::Integer(units) => Ok(Decimal::new(units, FIXED_SCALE).normalize()),
        ValueRef::Text(text) => dec(std::str::from_utf8(text).unwrap_or_default()),
        other => Err(StoreError::Corrupt(format!("bar value of type {}", other.data_type()))),
    }
}
use crate::market::{Side, Timestamp};

pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub fn dec(text: &str) -> Result<Decimal, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("decimal '{text}'")))
}

pub fn side(text: &str) -> Result<Side, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt(format!("side '{text}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_values_round_trip_exactly() {
        for text in [
            "0",
            "4652.69",
            "0.00000001",
            "46319",
            "2300413.7295",
            "0.123456789",
            "-1.5",
            "92233720368.54775807",
            "92233720368.54775808",
            "79228162514264337593543950335",
        ] {
            let value: Decimal = text.parse().unwrap();
            let stored = match fixed_to_sql(value) {
                ToSqlOutput::Owned(v) => v,
                _ => unreachable!(),
            };
            let back = fixed_from_sql(ValueRef::from(&stored)).unwrap();
            assert_eq!(back, value, "{text}");
        }
        let finer: Decimal = "0.123456789".parse().unwrap();
        assert!(
            matches!(fixed_to_sql(finer), ToSqlOutput::Owned(Value::Text(_))),
            "finer than 1e-8 stays text"
        );
    }
}
