//! Exact numbers as text for machines (files, the store's exports): every digit kept, trailing
//! zeros after the point left off, no thousands separators.

use std::io::{self, Write};

use rust_decimal::Decimal;

/// Exact decimals without trailing zeros, as in the reference files (`0.021`, `99901.32751`, `0`).
pub fn plain(d: Decimal) -> String {
    let mut text = Vec::with_capacity(24);
    let _ = write_plain(&mut text, d);
    String::from_utf8(text).unwrap_or_default()
}

/// `plain`, written straight out: the mantissa's digits (itoa) with the point put in and the
/// trailing zeros left off. A backtest's trades file writes five of these per fill, and going
/// through `normalize` and a `String` each cost about 1,000 instructions a number (callgrind),
/// a third of the whole 2M-bar CSV -> trades run.
pub fn write_plain(out: &mut impl Write, d: Decimal) -> io::Result<()> {
    let mut buffer = itoa::Buffer::new();
    let mantissa = d.mantissa().unsigned_abs();
    // 64-bit digits are several times quicker to make than 128-bit ones.
    let digits = match u64::try_from(mantissa) {
        Ok(small) => buffer.format(small).as_bytes(),
        Err(_) => buffer.format(mantissa).as_bytes(),
    };
    let scale = d.scale() as usize;
    // Trailing zeros after the point go; "0" stays "0".
    let zeros = digits.iter().rev().take(scale).take_while(|&&b| b == b'0').count();
    let (digits, scale) = (&digits[..digits.len() - zeros], scale - zeros);
    if digits.is_empty() || digits == b"0" {
        return out.write_all(b"0");
    }
    if d.is_sign_negative() {
        out.write_all(b"-")?;
    }
    if scale == 0 {
        return out.write_all(digits);
    }
    if digits.len() > scale {
        let (whole, frac) = digits.split_at(digits.len() - scale);
        out.write_all(whole)?;
        out.write_all(b".")?;
        return out.write_all(frac);
    }
    out.write_all(b"0.")?;
    for _ in digits.len()..scale {
        out.write_all(b"0")?;
    }
    out.write_all(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick writer against rust_decimal's own normalised text, on every kind of value.
    #[test]
    fn plain_decimals_match_the_normalised_text() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut cases: Vec<Decimal> = [
            "0",
            "-0",
            "0.000",
            "1",
            "10",
            "100.00",
            "-1.50",
            "0.021",
            "0.00000001",
            "99901.32751",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        cases.extend([Decimal::MAX, Decimal::MIN, Decimal::new(1, 28), Decimal::new(-5, 28)]);
        for _ in 0..20_000 {
            let mantissa = rng.random_range(-10i64.pow(15)..10i64.pow(15)) * [1, 10, 1000][rng.random_range(0..3)];
            cases.push(Decimal::new(mantissa, rng.random_range(0..=20)));
        }
        for d in cases {
            let want = if d.is_zero() {
                "0".to_owned()
            } else {
                d.normalize().to_string()
            };
            assert_eq!(plain(d), want, "{d:?}");
        }
    }
}
