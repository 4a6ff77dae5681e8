//! Conversions between domain values and their stored form.

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rust_decimal::Decimal;

use super::StoreError;

/// Bar prices and volumes are stored as INTEGER counts of 1e-8 (as exchanges count satoshis)
/// when that is exact, else as a BLOB holding the decimal's UTF-8 text: compact and fast to write,
/// never rounded. Not TEXT: the `bars` value columns have NUMERIC affinity, and SQLite turns
/// numeric-looking TEXT into a REAL (rounded to a double) or an INTEGER (then misread as units of
/// 1e-8); a BLOB is never converted.
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
    ToSqlOutput::Owned(Value::Blob(value.to_string().into_bytes()))
}

pub fn fixed_from_sql(value: ValueRef) -> Result<Decimal, StoreError> {
    match value {
        ValueRef::Integer(units) => Ok(Decimal::new(units, FIXED_SCALE).normalize()),
        ValueRef::Blob(text) | ValueRef::Text(text) => match std::str::from_utf8(text) {
            Ok(text) => dec(text),
            Err(_) => Err(StoreError::Corrupt("bar value that is not UTF-8 text".into())),
        },
        // Older versions stored these values as TEXT, which SQLite already converted to a double:
        // the exact decimal is gone, and the shortest text giving back that double is what SQLite
        // kept, so read that instead of failing (and refusing the whole store).
        ValueRef::Real(f) => format!("{f}")
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("bar value {f:e} out of range"))),
        other => Err(StoreError::Corrupt(format!("bar value of type {}", other.data_type()))),
    }
}
use nanotrader_market::{Side, Timestamp};

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
            matches!(fixed_to_sql(finer), ToSqlOutput::Owned(Value::Blob(_))),
            "finer than 1e-8 is stored as a BLOB of its text"
        );
    }

    /// Inserts each value into a `bars`-like column of NUMERIC affinity and reads it back.
    fn through_numeric_column(values: &[Decimal]) -> Vec<(String, Decimal)> {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (i INTEGER PRIMARY KEY, v ANY NOT NULL)")
            .unwrap();
        for value in values {
            conn.execute("INSERT INTO t (v) VALUES (?1)", [fixed_to_sql(*value)])
                .unwrap();
        }
        let mut stmt = conn.prepare("SELECT typeof(v), v FROM t ORDER BY i").unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut back = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            back.push((r.get(0).unwrap(), fixed_from_sql(r.get_ref(1).unwrap()).unwrap()));
        }
        back
    }

    #[test]
    fn sqlite_never_converts_a_stored_bar_value() {
        let values: Vec<Decimal> = [
            "218102.59507500002",
            "0.123456789",
            "92233720369",
            "123456789012345678",
            "92233720368.54775808",
            "79228162514264337593543950335",
            "-0.000000001",
            "4652.69",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let back = through_numeric_column(&values);
        for (value, (kind, read)) in values.iter().zip(&back) {
            assert_eq!(read, value, "{value} came back as {kind}");
            assert!(kind == "integer" || kind == "blob", "{value} stored as {kind}");
        }
    }

    #[test]
    fn an_old_style_real_reads_as_the_double_sqlite_kept() {
        // What older versions left behind: the decimal's TEXT, turned into a REAL by SQLite.
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (i INTEGER PRIMARY KEY, v ANY NOT NULL);
             INSERT INTO t (v) VALUES ('218102.59507500002'), ('0.123456789'), ('1.000000001'),
                 ('1234567890.123456789'), ('-0.000000001');",
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT typeof(v), v FROM t ORDER BY i").unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut back = Vec::new();
        while let Some(r) = rows.next().unwrap() {
            assert_eq!(r.get::<_, String>(0).unwrap(), "real");
            let ValueRef::Real(f) = r.get_ref(1).unwrap() else {
                unreachable!()
            };
            let read = fixed_from_sql(ValueRef::Real(f)).unwrap();
            assert_eq!(read.to_string().parse::<f64>().unwrap(), f, "the same double");
            back.push(read.to_string());
        }
        assert_eq!(
            back,
            [
                "218102.59507500002",
                "0.123456789",
                "1.000000001",
                "1234567890.1234567",
                "-0.000000001"
            ]
        );
    }
}
