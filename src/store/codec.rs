//! Conversions between domain values and their stored form.

use rust_decimal::Decimal;

use super::StoreError;
use crate::market::{Side, Timestamp};

pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub fn dec(text: &str) -> Result<Decimal, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("decimal '{text}'")))
}

pub fn side(text: &str) -> Result<Side, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("side '{text}'")))
}
