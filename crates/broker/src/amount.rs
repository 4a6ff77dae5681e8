//! The numbers the books are kept in. `Account` and `PaperBroker` are written once, over any
//! `Amount`: `rust_decimal::Decimal` for the engine and for every record, and `FastDecimal`
//! where a backtest keeps no records and books hundreds of thousands of fills. Both give the
//! same values with the same scales (a test holds them equal operation by operation), so a
//! backtest's books do not depend on which one kept them.

use std::cmp::Ordering;
use std::fmt;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// What the account and the broker do with money.
pub trait Amount: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    const ZERO: Self;
    fn from_decimal(d: Decimal) -> Self;
    fn to_decimal(self) -> Decimal;
    /// `mantissa * 10^-scale`, as `Decimal::new`.
    fn new(mantissa: i64, scale: u32) -> Self;
    /// `None` unless the mantissa fits 96 bits and the scale 28, as `Decimal::try_from_i128_with_scale`.
    fn from_i128_with_scale(mantissa: i128, scale: u32) -> Option<Self>;
    fn mantissa(self) -> i128;
    fn scale(self) -> u32;
    fn is_zero(self) -> bool;
    fn checked_add(self, other: Self) -> Option<Self>;
    fn checked_sub(self, other: Self) -> Option<Self>;
    fn checked_mul(self, other: Self) -> Option<Self>;
    fn saturating_add(self, other: Self) -> Self;
    fn saturating_sub(self, other: Self) -> Self;
    fn saturating_mul(self, other: Self) -> Self;
    /// The value without trailing zeros (`Decimal::normalize`).
    fn trim(self) -> Self;
    /// The nearest f64 (`decimal_to_f64`); for statistics only.
    fn to_f64(self) -> f64;

    // Rare in the books (sizing by fraction, partial sells): done by `Decimal` itself.
    // (Called by path: as methods, this trait's would be picked over `Decimal`'s `&self` ones.)
    fn checked_div(self, other: Self) -> Option<Self> {
        Decimal::checked_div(self.to_decimal(), other.to_decimal()).map(Self::from_decimal)
    }
    fn floor(self) -> Self {
        Self::from_decimal(Decimal::floor(&self.to_decimal()))
    }
    fn round_dp(self, dp: u32) -> Self {
        Self::from_decimal(Decimal::round_dp(&self.to_decimal(), dp))
    }
}

impl Amount for Decimal {
    const ZERO: Self = Decimal::ZERO;
    fn from_decimal(d: Decimal) -> Self {
        d
    }
    fn to_decimal(self) -> Decimal {
        self
    }
    fn new(mantissa: i64, scale: u32) -> Self {
        Decimal::new(mantissa, scale)
    }
    fn from_i128_with_scale(mantissa: i128, scale: u32) -> Option<Self> {
        Decimal::try_from_i128_with_scale(mantissa, scale).ok()
    }
    fn mantissa(self) -> i128 {
        Decimal::mantissa(&self)
    }
    fn scale(self) -> u32 {
        Decimal::scale(&self)
    }
    fn is_zero(self) -> bool {
        Decimal::is_zero(&self)
    }
    fn checked_add(self, other: Self) -> Option<Self> {
        Decimal::checked_add(self, other)
    }
    fn checked_sub(self, other: Self) -> Option<Self> {
        Decimal::checked_sub(self, other)
    }
    fn checked_mul(self, other: Self) -> Option<Self> {
        Decimal::checked_mul(self, other)
    }
    fn saturating_add(self, other: Self) -> Self {
        Decimal::saturating_add(self, other)
    }
    fn saturating_sub(self, other: Self) -> Self {
        Decimal::saturating_sub(self, other)
    }
    fn saturating_mul(self, other: Self) -> Self {
        Decimal::saturating_mul(self, other)
    }
    fn trim(self) -> Self {
        trim(self)
    }
    fn to_f64(self) -> f64 {
        decimal_to_f64(self)
    }
}

/// `d.normalize()`, in machine-word arithmetic when the mantissa fits 64 bits (it nearly always
/// does for money): a fill trims five amounts, and a backtest makes hundreds of thousands of fills.
pub fn trim(d: Decimal) -> Decimal {
    let Ok(mantissa) = i64::try_from(d.mantissa()) else {
        return d.normalize();
    };
    if mantissa == 0 {
        return Decimal::ZERO;
    }
    let (mantissa, scale) = strip_zeros(mantissa.unsigned_abs(), d.scale());
    Decimal::from_parts(mantissa as u32, (mantissa >> 32) as u32, 0, d.is_sign_negative(), scale)
}

/// A non-zero mantissa and its scale without the trailing zeros. They are stripped eight, four,
/// two, then one at a time: a price such as 46377 held in units of 1e-8 has eight.
fn strip_zeros(mut mantissa: u64, mut scale: u32) -> (u64, u32) {
    for (zeros, power) in [(8, 100_000_000), (4, 10_000), (2, 100)] {
        while scale >= zeros && mantissa.is_multiple_of(power) {
            mantissa /= power;
            scale -= zeros;
        }
    }
    while scale > 0 && mantissa.is_multiple_of(10) {
        mantissa /= 10;
        scale -= 1;
    }
    (mantissa, scale)
}

/// A decimal as the nearest f64, cheaply when its mantissa is below 2^53 and its scale at most
/// 22 (one correctly rounded division of two exact f64s); for statistics only. The result
/// depends on the value alone, not on trailing zeros: a value the cheap way cannot take is
/// trimmed and tried again before the general conversion.
pub fn decimal_to_f64(d: Decimal) -> f64 {
    exact_to_f64(d.mantissa(), d.scale()).unwrap_or_else(|| {
        let trimmed = trim(d);
        exact_to_f64(trimmed.mantissa(), trimmed.scale())
            .unwrap_or_else(|| ToPrimitive::to_f64(&trimmed).unwrap_or(f64::NAN))
    })
}

fn exact_to_f64(mantissa: i128, scale: u32) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
        1e20, 1e21, 1e22,
    ];
    let scale = scale as usize;
    (mantissa.unsigned_abs() < (1u128 << 53) && scale < POW10.len()).then(|| (mantissa as i64) as f64 / POW10[scale])
}

/// A `Decimal`'s value, scale and sign, kept so that the common operations of bookkeeping
/// (sums and products of amounts below 2^64 that need no rounding, comparisons) are inlined
/// machine arithmetic. Anything else (a result `Decimal` would round, the cancellation of a
/// negative amount, whose zero's sign depends on `Decimal`'s path) is handed to `Decimal`
/// itself, so every result is the one `Decimal` gives.
///
/// One `u128` holds it all, as a `Decimal` does, so that it lives in two registers: the
/// magnitude in the low 96 bits, the scale in the next 8, the sign in the top bit.
#[derive(Copy, Clone)]
pub struct FastDecimal(u128);

/// One past the largest magnitude a `Decimal` holds.
const MAGNITUDE_LIMIT: u128 = 1 << 96;
const SCALE_SHIFT: u32 = 96;
const SIGN_BIT: u128 = 1 << 127;
const MAX_SCALE: u32 = Decimal::MAX_SCALE;

pub(super) const POW10: [u128; 39] = {
    let mut table = [1u128; 39];
    let mut i = 1;
    while i < table.len() {
        table[i] = table[i - 1] * 10;
        i += 1;
    }
    table
};

/// The powers of ten that fit 64 bits, for the paths that stay in machine words.
pub(super) const POW10_U64: [u64; 20] = {
    let mut table = [0u64; 20];
    let mut i = 0;
    while i < table.len() {
        table[i] = POW10[i] as u64;
        i += 1;
    }
    table
};

impl FastDecimal {
    /// `magnitude` must be below 2^96 and `scale` at most 28.
    #[inline(always)]
    const fn pack(magnitude: u128, scale: u32, negative: bool) -> Self {
        Self(magnitude | ((scale as u128) << SCALE_SHIFT) | if negative { SIGN_BIT } else { 0 })
    }

    #[inline(always)]
    const fn magnitude(self) -> u128 {
        self.0 & (MAGNITUDE_LIMIT - 1)
    }

    #[inline(always)]
    const fn scale_digits(self) -> u32 {
        ((self.0 >> SCALE_SHIFT) & 0xff) as u32
    }

    #[inline(always)]
    const fn negative(self) -> bool {
        self.0 & SIGN_BIT != 0
    }

    /// The magnitude, when it fits 64 bits.
    #[inline(always)]
    fn small(self) -> Option<u64> {
        u64::try_from(self.magnitude()).ok()
    }

    /// The sum or difference when both magnitudes fit 64 bits and the result needs no rounding:
    /// `Decimal`'s own 64-bit path, inlined. `None` sends the operation to `Decimal`.
    #[inline(always)]
    fn add_sub_fast(self, other: Self, subtract: bool) -> Option<Self> {
        // `Decimal` returns an operand itself when the other is zero.
        if self.magnitude() == 0 {
            if subtract && other.magnitude() != 0 {
                return Some(Self(other.0 ^ SIGN_BIT));
            }
            return Some(other);
        }
        if other.magnitude() == 0 {
            return Some(self);
        }
        let (a, b) = (self.small()?, other.small()?);
        let (sa, sb) = (self.scale_digits(), other.scale_digits());
        let (a, b, scale) = match sa.cmp(&sb) {
            Ordering::Equal => (u128::from(a), u128::from(b), sa),
            Ordering::Less => (widened(a, sb - sa)?, u128::from(b), sb),
            Ordering::Greater => (u128::from(a), widened(b, sa - sb)?, sa),
        };
        let negative = self.negative();
        let (magnitude, negative) = if subtract == (negative != other.negative()) {
            (a + b, negative)
        } else if a > b {
            (a - b, negative)
        } else if a == b {
            // An exact cancellation is a zero at the larger scale, positive when the first operand
            // is; `Decimal`'s paths give a negative one's zero different signs.
            if negative {
                return None;
            }
            (0, false)
        } else {
            (b - a, !negative)
        };
        (magnitude < MAGNITUDE_LIMIT).then_some(Self::pack(magnitude, scale, negative))
    }

    /// The product when both magnitudes fit 64 bits and it needs no rounding.
    #[inline(always)]
    fn mul_fast(self, other: Self) -> Option<Self> {
        // `Decimal` gives a bare zero for any product with zero.
        if self.magnitude() == 0 || other.magnitude() == 0 {
            return Some(Self::ZERO);
        }
        let magnitude = u128::from(self.small()?) * u128::from(other.small()?);
        let scale = self.scale_digits() + other.scale_digits();
        (magnitude < MAGNITUDE_LIMIT && scale <= MAX_SCALE).then_some(Self::pack(
            magnitude,
            scale,
            self.negative() != other.negative(),
        ))
    }

    #[cold]
    #[inline(never)]
    fn by_decimal(self, other: Self, op: fn(Decimal, Decimal) -> Option<Decimal>) -> Option<Self> {
        op(self.to_decimal(), other.to_decimal()).map(Self::from_decimal)
    }

    #[cold]
    #[inline(never)]
    fn by_decimal_saturating(self, other: Self, op: fn(Decimal, Decimal) -> Decimal) -> Self {
        Self::from_decimal(op(self.to_decimal(), other.to_decimal()))
    }
}

/// `magnitude * 10^digits`, when the power fits 64 bits (the product then fits 128).
#[inline(always)]
fn widened(magnitude: u64, digits: u32) -> Option<u128> {
    let power = *POW10_U64.get(digits as usize)?;
    Some(u128::from(magnitude) * u128::from(power))
}

impl fmt::Debug for FastDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_decimal(), f)
    }
}

impl Amount for FastDecimal {
    const ZERO: Self = Self(0);

    #[inline]
    fn from_decimal(d: Decimal) -> Self {
        Self::pack(d.mantissa().unsigned_abs(), d.scale(), d.is_sign_negative())
    }

    #[inline]
    fn to_decimal(self) -> Decimal {
        let m = self.magnitude();
        let mut d = Decimal::from_parts(m as u32, (m >> 32) as u32, (m >> 64) as u32, false, self.scale_digits());
        // `from_parts` makes every zero positive; `Decimal`'s own arithmetic can leave it negative.
        d.set_sign_negative(self.negative());
        d
    }

    #[inline]
    fn new(mantissa: i64, scale: u32) -> Self {
        assert!(scale <= MAX_SCALE, "scale {scale} is beyond a decimal's {MAX_SCALE}");
        Self::pack(u128::from(mantissa.unsigned_abs()), scale, mantissa < 0)
    }

    fn from_i128_with_scale(mantissa: i128, scale: u32) -> Option<Self> {
        let magnitude = mantissa.unsigned_abs();
        (magnitude < MAGNITUDE_LIMIT && scale <= MAX_SCALE).then(|| Self::pack(magnitude, scale, mantissa < 0))
    }

    #[inline]
    fn mantissa(self) -> i128 {
        // Below 2^96: the conversion cannot wrap.
        let magnitude = self.magnitude() as i128;
        if self.negative() { -magnitude } else { magnitude }
    }

    #[inline]
    fn scale(self) -> u32 {
        self.scale_digits()
    }

    #[inline]
    fn is_zero(self) -> bool {
        self.magnitude() == 0
    }

    #[inline(always)]
    fn checked_add(self, other: Self) -> Option<Self> {
        self.add_sub_fast(other, false)
            .or_else(|| self.by_decimal(other, Decimal::checked_add))
    }

    #[inline(always)]
    fn checked_sub(self, other: Self) -> Option<Self> {
        self.add_sub_fast(other, true)
            .or_else(|| self.by_decimal(other, Decimal::checked_sub))
    }

    #[inline(always)]
    fn checked_mul(self, other: Self) -> Option<Self> {
        self.mul_fast(other)
            .or_else(|| self.by_decimal(other, Decimal::checked_mul))
    }

    #[inline(always)]
    fn saturating_add(self, other: Self) -> Self {
        self.add_sub_fast(other, false)
            .unwrap_or_else(|| self.by_decimal_saturating(other, Decimal::saturating_add))
    }

    #[inline(always)]
    fn saturating_sub(self, other: Self) -> Self {
        self.add_sub_fast(other, true)
            .unwrap_or_else(|| self.by_decimal_saturating(other, Decimal::saturating_sub))
    }

    #[inline(always)]
    fn saturating_mul(self, other: Self) -> Self {
        self.mul_fast(other)
            .unwrap_or_else(|| self.by_decimal_saturating(other, Decimal::saturating_mul))
    }

    #[inline]
    fn trim(self) -> Self {
        if self.magnitude() == 0 {
            return Self::ZERO;
        }
        match self.small() {
            Some(small) => {
                let (magnitude, scale) = strip_zeros(small, self.scale_digits());
                Self::pack(u128::from(magnitude), scale, self.negative())
            }
            None => Self::from_decimal(self.to_decimal().normalize()),
        }
    }

    #[inline]
    fn to_f64(self) -> f64 {
        match exact_to_f64(self.mantissa(), self.scale_digits()) {
            Some(f) => f,
            None => decimal_to_f64(self.to_decimal()),
        }
    }
}

impl PartialEq for FastDecimal {
    #[inline(always)]
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FastDecimal {}

impl PartialOrd for FastDecimal {
    #[inline(always)]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FastDecimal {
    /// By value, as `Decimal` compares: `-0 == 0 == 0.00`.
    #[inline(always)]
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.signum(), other.signum());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        // Same sign, both non-zero: compare magnitudes at one scale.
        let by_magnitude = if self.scale_digits() == other.scale_digits() {
            self.magnitude().cmp(&other.magnitude())
        } else {
            self.cmp_rescaled_magnitudes(*other)
        };
        if a < 0 { by_magnitude.reverse() } else { by_magnitude }
    }
}

impl FastDecimal {
    /// -1, 0 or 1, a zero of either sign being 0.
    #[inline(always)]
    fn signum(self) -> i8 {
        let non_zero = i8::from(self.magnitude() != 0);
        if self.negative() { -non_zero } else { non_zero }
    }

    /// The magnitudes compared at the larger of the two (different) scales.
    #[inline]
    fn cmp_rescaled_magnitudes(self, other: Self) -> Ordering {
        let (sa, sb) = (self.scale_digits(), other.scale_digits());
        let (low, high, digits, flipped) = if sa < sb {
            (self, other, sb - sa, false)
        } else {
            (other, self, sa - sb, true)
        };
        let by_magnitude = match low.small().and_then(|m| widened(m, digits)) {
            Some(up) => up.cmp(&high.magnitude()),
            None => rescaled_cmp_wide(low.magnitude(), digits, high.magnitude()),
        };
        if flipped { by_magnitude.reverse() } else { by_magnitude }
    }
}

/// `magnitude * 10^digits` against `other` in full width. A magnitude too big to rescale is
/// the larger, the other being below 2^96.
#[cold]
fn rescaled_cmp_wide(magnitude: u128, digits: u32, other: u128) -> Ordering {
    magnitude
        .checked_mul(POW10[digits as usize])
        .map_or(Ordering::Greater, |up| up.cmp(&other))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Value, scale and sign: what `Decimal`'s text and arithmetic depend on.
    fn parts(d: Decimal) -> (Decimal, u32, bool, String) {
        (d, d.scale(), d.is_sign_negative(), d.to_string())
    }

    /// Awkward decimals: zeros of either sign and any scale, small money amounts, values near
    /// the 96-bit limit, trailing zeros, the extreme scales.
    fn random_decimal(rng: &mut ChaCha8Rng) -> Decimal {
        let scale = match rng.random_range(0..4) {
            0 => rng.random_range(0..=8),
            1 => rng.random_range(0..=28),
            _ => rng.random_range(0..=4) * 4,
        };
        let mantissa: i128 = match rng.random_range(0..8) {
            0 => 0,
            1 => rng.random_range(-20..20),
            2 => rng.random_range(-(1i128 << 95)..(1i128 << 95)) * 2 + rng.random_range(0..2),
            3 => rng.random_range(-1_000_000..1_000_000) * 10i128.pow(rng.random_range(0..12)),
            _ => rng.random_range(-10_000_000_000_000..10_000_000_000_000),
        };
        let mantissa = mantissa.clamp(-(1i128 << 96) + 1, (1i128 << 96) - 1);
        let mut d = Decimal::from_i128_with_scale(mantissa, scale);
        if mantissa == 0 && rng.random_bool(0.3) {
            d.set_sign_negative(true);
        }
        d
    }

    #[test]
    fn every_operation_gives_what_decimal_gives() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        for _ in 0..200_000 {
            let (a, b) = (random_decimal(&mut rng), random_decimal(&mut rng));
            let (fa, fb) = (FastDecimal::from_decimal(a), FastDecimal::from_decimal(b));
            assert_eq!(parts(fa.to_decimal()), parts(a), "{a}");
            let same = |what: &str, fast: Option<FastDecimal>, want: Option<Decimal>| {
                assert_eq!(fast.map(|f| parts(f.to_decimal())), want.map(parts), "{a} {what} {b}");
            };
            same("+", fa.checked_add(fb), a.checked_add(b));
            same("-", fa.checked_sub(fb), a.checked_sub(b));
            same("*", fa.checked_mul(fb), a.checked_mul(b));
            same("+|", Some(fa.saturating_add(fb)), Some(a.saturating_add(b)));
            same("-|", Some(fa.saturating_sub(fb)), Some(a.saturating_sub(b)));
            same("*|", Some(fa.saturating_mul(fb)), Some(a.saturating_mul(b)));
            same("/", fa.checked_div(fb), a.checked_div(b));
            same("trim", Some(fa.trim()), Some(a.normalize()));
            same("floor", Some(fa.floor()), Some(Decimal::floor(&a)));
            same("round", Some(fa.round_dp(3)), Some(Decimal::round_dp(&a, 3)));
            assert_eq!(fa.cmp(&fb), a.cmp(&b), "{a} cmp {b}");
            assert_eq!(fa == fb, a == b, "{a} == {b}");
            assert_eq!(fa.is_zero(), a.is_zero());
            assert_eq!((fa.mantissa(), Amount::scale(fa)), (a.mantissa(), a.scale()));
            assert_eq!(fa.to_f64().to_bits(), decimal_to_f64(a).to_bits(), "{a} as f64");
            // Equal values in other spellings give the same f64.
            assert_eq!(
                decimal_to_f64(a.normalize()).to_bits(),
                decimal_to_f64(a).to_bits(),
                "{a}"
            );
        }
    }

    #[test]
    fn trimming_equals_normalize() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10_000 {
            let mantissa: i128 = match rng.random_range(0..3) {
                0 => rng.random_range(-1_000_000..1_000_000) * 10i128.pow(rng.random_range(0..6)),
                1 => rng.random_range(i64::MIN as i128..=i64::MAX as i128),
                _ => rng.random_range(-(1i128 << 95)..(1i128 << 95)),
            };
            let d = Decimal::from_i128_with_scale(mantissa, rng.random_range(0..=28));
            let (got, want) = (trim(d), d.normalize());
            assert_eq!((got, got.scale()), (want, want.scale()), "{d}");
        }
    }
}
