//! One line of a plain bar file (`ts,open,high,low,close,volume[,trades]`) read at once: a few
//! vector compares mark every separator, dot and digit of its first 64 bytes, the fields are
//! cut at the separators' bits, and each field's digits are added up eight at a time. Only the
//! common shapes are taken: a line of at most 64 bytes, plain digits, at most 8 decimals. For
//! anything else it answers `None` and the careful reader (`fast_csv`'s cursor) decides, so the
//! two never disagree on a value or a verdict.

use super::columns::{MAX_WHOLE_DIGITS, SCALE, UNIT};

/// Bytes of a line looked at.
const WINDOW: usize = 64;
/// Bytes the text must hold from a line's start: the window, and room for an 8-byte load at
/// any field in it.
pub const BYTES_NEEDED: usize = WINDOW + 8;

/// A bar as written in the file: times in seconds, prices and volume in 1e-8 units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Row {
    pub ts: i64,
    pub open: i64,
    pub high: i64,
    pub low: i64,
    pub close: i64,
    pub volume: i64,
    pub trades: u32,
}

/// The line at the start of `text` and the bytes it takes with its newline, or `None` when it
/// is not of a common shape. Without `VOLUME` the volume is only checked (and 0 is returned).
///
/// The line's shape is checked on its masks at once, and each field's on its own bits, with
/// few branches: a verdict is only looked at once the whole line is read.
#[inline(always)]
pub fn read<M: Marker, const VOLUME: bool>(
    text: &[u8; BYTES_NEEDED],
    with_trades: bool,
    marker: M,
) -> Option<(Row, usize)> {
    let window: &[u8; WINDOW] = text[..WINDOW].try_into().expect("window");
    let marks = marker.marks(window);
    let newline = marks.newlines.trailing_zeros() as usize;
    if newline == WINDOW {
        return None;
    }
    let end = newline - usize::from(newline > 0 && window[newline - 1] == b'\r');
    let line = (1u64 << end) - 1;
    let separators = (marks.commas & line) | (1 << end);
    let dots = marks.dots & line;
    // Only digits, commas and dots; no empty field; no dot first or last in a field.
    let misplaced = (line & !(marks.digits | marks.commas | marks.dots))
        | (separators & ((separators << 1) | 1))
        | (dots & ((separators << 1) | 1 | (separators >> 1)));
    if misplaced != 0 {
        return None;
    }
    let mut rest = separators;
    let mut cut = || {
        let at = rest.trailing_zeros() as usize;
        rest &= rest.wrapping_sub(1);
        at
    };
    let (ts_end, open_end, high_end, low_end, close_end, volume_end) = (cut(), cut(), cut(), cut(), cut(), cut());
    let trades_end = if with_trades { cut() } else { volume_end };
    // As many fields as expected: the last one ends the line.
    if rest != 0 || trades_end != end {
        return None;
    }
    let mut fields = Fields { text, dots, bad: false };
    let ts = fields.uint(0, ts_end);
    // Prices of at most 8 bytes (nearly all of them) take a shorter way: their limits hold by
    // their length alone. (Each length less one is below 8 exactly when all of them are.)
    let short_prices =
        ((open_end - ts_end - 2) | (high_end - open_end - 2) | (low_end - high_end - 2) | (close_end - low_end - 2))
            < 8;
    let (open, high, low, close) = if short_prices {
        let ([open, high, low, close], bad) = marker.short_prices(
            text,
            [ts_end + 1, open_end + 1, high_end + 1, low_end + 1],
            [open_end, high_end, low_end, close_end],
            fields.dots,
        );
        fields.bad |= bad;
        // The prices' dots are theirs: the volume's split sees only its own.
        fields.dots &= u64::MAX << close_end;
        (open, high, low, close)
    } else {
        (
            fields.decimal::<true>(ts_end + 1, open_end),
            fields.decimal::<true>(open_end + 1, high_end),
            fields.decimal::<true>(high_end + 1, low_end),
            fields.decimal::<true>(low_end + 1, close_end),
        )
    };
    let row = Row {
        ts,
        open,
        high,
        low,
        close,
        volume: fields.decimal::<VOLUME>(close_end + 1, volume_end),
        trades: if with_trades {
            u32::try_from(fields.uint(volume_end + 1, trades_end)).ok()?
        } else {
            0
        },
    };
    (!fields.bad).then_some((row, newline + 1))
}

/// Bit i of each mask tells about byte i of the window.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Marks {
    commas: u64,
    newlines: u64,
    dots: u64,
    digits: u64,
}

/// How a window's marks are found and a line's four short prices converted: one way per
/// instruction set.
pub trait Marker: Copy {
    fn marks(self, window: &[u8; WINDOW]) -> Marks;

    /// The four prices whose fields run from `starts` to `ends` (each of 1..=8 bytes, inside the
    /// window, only digits and dots, no dot first or last; `dots` marks the line's dots from
    /// the first price on), in 1e-8 units, and whether one had two dots (its value is then
    /// meaningless). One field after the other, `Fields::short_price`.
    #[inline(always)]
    fn short_prices(
        self,
        text: &[u8; BYTES_NEEDED],
        starts: [usize; 4],
        ends: [usize; 4],
        dots: u64,
    ) -> ([i64; 4], bool) {
        scalar_short_prices(text, starts, ends, dots)
    }
}

/// `Marker::short_prices` one field after the other: the portable way, and the vector one's
/// check.
#[inline(always)]
fn scalar_short_prices(text: &[u8; BYTES_NEEDED], starts: [usize; 4], ends: [usize; 4], dots: u64) -> ([i64; 4], bool) {
    let mut fields = Fields { text, dots, bad: false };
    let values = [0, 1, 2, 3].map(|i| fields.short_price(starts[i], ends[i]));
    (values, fields.bad)
}

/// Sixteen bytes per compare with SSE2, which every x86_64 CPU has; byte by byte elsewhere.
#[derive(Clone, Copy)]
pub struct Baseline;

impl Marker for Baseline {
    #[inline(always)]
    fn marks(self, window: &[u8; WINDOW]) -> Marks {
        #[cfg(target_arch = "x86_64")]
        {
            sse2_marks(window)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            byte_by_byte_marks(window)
        }
    }
}

/// Thirty-two bytes per compare, on CPUs with AVX2 (and BMI2, which code built for it may use).
/// Only `detect` makes one, so holding one proves the CPU has them.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2(());

#[cfg(target_arch = "x86_64")]
impl Avx2 {
    pub fn detect() -> Option<Self> {
        (std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("bmi2")).then_some(Self(()))
    }
}

#[cfg(target_arch = "x86_64")]
impl Marker for Avx2 {
    #[inline(always)]
    fn marks(self, window: &[u8; WINDOW]) -> Marks {
        // SAFETY: an `Avx2` exists only where `detect` found AVX2.
        unsafe { avx2_marks(window) }
    }

    #[inline(always)]
    fn short_prices(
        self,
        text: &[u8; BYTES_NEEDED],
        starts: [usize; 4],
        _ends: [usize; 4],
        _dots: u64,
    ) -> ([i64; 4], bool) {
        // SAFETY: an `Avx2` exists only where `detect` found AVX2.
        unsafe { avx2_short_prices(text, starts) }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn sse2_marks(window: &[u8; WINDOW]) -> Marks {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_set1_epi8, _mm_sub_epi8,
    };
    let mut marks = Marks::default();
    for (i, chunk) in window.chunks_exact(16).enumerate() {
        let shift = 16 * i;
        // SAFETY: SSE2 is part of every x86_64 target; the chunk holds the 16 bytes loaded, and
        // an unaligned load needs no alignment.
        unsafe {
            let bytes = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let commas = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b',' as i8));
            let newlines = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\n' as i8));
            let dots = _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'.' as i8));
            // A digit is a byte at most 9 above '0' (unsigned).
            let above_zero = _mm_sub_epi8(bytes, _mm_set1_epi8(b'0' as i8));
            let digits = _mm_cmpeq_epi8(_mm_min_epu8(above_zero, _mm_set1_epi8(9)), above_zero);
            marks.commas |= u64::from(_mm_movemask_epi8(commas) as u16) << shift;
            marks.newlines |= u64::from(_mm_movemask_epi8(newlines) as u16) << shift;
            marks.dots |= u64::from(_mm_movemask_epi8(dots) as u16) << shift;
            marks.digits |= u64::from(_mm_movemask_epi8(digits) as u16) << shift;
        }
    }
    marks
}

/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_marks(window: &[u8; WINDOW]) -> Marks {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_set1_epi8,
        _mm256_sub_epi8,
    };
    let mut marks = Marks::default();
    for (i, chunk) in window.chunks_exact(32).enumerate() {
        let shift = 32 * i;
        // SAFETY: the chunk holds the 32 bytes loaded, and an unaligned load needs no alignment.
        let bytes = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
        let commas = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b',' as i8));
        let newlines = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'\n' as i8));
        let dots = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'.' as i8));
        let above_zero = _mm256_sub_epi8(bytes, _mm256_set1_epi8(b'0' as i8));
        let digits = _mm256_cmpeq_epi8(_mm256_min_epu8(above_zero, _mm256_set1_epi8(9)), above_zero);
        marks.commas |= u64::from(_mm256_movemask_epi8(commas) as u32) << shift;
        marks.newlines |= u64::from(_mm256_movemask_epi8(newlines) as u32) << shift;
        marks.dots |= u64::from(_mm256_movemask_epi8(dots) as u32) << shift;
        marks.digits |= u64::from(_mm256_movemask_epi8(digits) as u32) << shift;
    }
    marks
}

/// `Marker::short_prices` with the four fields side by side in one AVX2 register, a 64-bit
/// lane each: the lane's own comma ends its field (a field of 8 bytes has none: all of it), its
/// first dot is squeezed out, its digits are moved to the top and added up pairwise
/// (`maddubs`, `madd`, one multiplication), and the sum is scaled by its decimals. Callgrind:
/// the four scalar conversions took about 140 instructions a line, these about 45.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn avx2_short_prices(text: &[u8; BYTES_NEEDED], starts: [usize; 4]) -> ([i64; 4], bool) {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_and_si256, _mm256_andnot_si256, _mm256_cmpeq_epi8, _mm256_madd_epi16,
        _mm256_maddubs_epi16, _mm256_min_epu8, _mm256_movemask_epi8, _mm256_mul_epu32, _mm256_or_si256,
        _mm256_permutevar8x32_epi32, _mm256_sad_epu8, _mm256_set_epi64x, _mm256_set1_epi8, _mm256_set1_epi16,
        _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_setr_epi32, _mm256_setzero_si256, _mm256_slli_epi64,
        _mm256_sllv_epi64, _mm256_srli_epi64, _mm256_storeu_si256, _mm256_sub_epi8, _mm256_sub_epi64,
    };
    let word = |at: usize| {
        let at = at & (WINDOW - 1);
        let bytes: &[u8; 8] = text[at..at + 8].try_into().expect("8 bytes");
        i64::from_le_bytes(*bytes)
    };
    let bytes = _mm256_set_epi64x(word(starts[3]), word(starts[2]), word(starts[1]), word(starts[0]));
    let zero = _mm256_setzero_si256();
    // The bytes below a lane's lowest set bit (all of them when none is set).
    let below_lowest = |mask: __m256i| {
        let lowest = _mm256_and_si256(mask, _mm256_sub_epi64(zero, mask));
        _mm256_sub_epi64(lowest, _mm256_set1_epi64x(1))
    };
    let field = below_lowest(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b',' as i8)));
    let dots = _mm256_and_si256(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(b'.' as i8)), field);
    let whole = below_lowest(dots);
    // The bytes after the first dot move down one, over it.
    let squeeze = |x: __m256i| {
        _mm256_or_si256(
            _mm256_and_si256(x, whole),
            _mm256_andnot_si256(whole, _mm256_srli_epi64(x, 8)),
        )
    };
    let digits = squeeze(_mm256_sub_epi8(bytes, _mm256_set1_epi8(b'0' as i8)));
    let byte_ones = _mm256_set1_epi8(1);
    let count = _mm256_sad_epu8(_mm256_and_si256(squeeze(field), byte_ones), zero);
    let whole_count = _mm256_sad_epu8(_mm256_and_si256(_mm256_and_si256(whole, field), byte_ones), zero);
    // The digits to the top bytes, zeros before (the bytes past the field go out).
    let top = _mm256_sllv_epi64(
        digits,
        _mm256_sub_epi64(_mm256_set1_epi64x(64), _mm256_slli_epi64(count, 3)),
    );
    // A second dot stays a byte above 9 (every other byte of the field is a digit).
    let in_range = _mm256_cmpeq_epi8(_mm256_min_epu8(top, _mm256_set1_epi8(9)), top);
    let bad = _mm256_movemask_epi8(in_range) != -1;
    // The first byte of a pair, and the first pair of a four, are worth ten and a hundred times
    // the second; the first four of the eight ten thousand times the last.
    let pairs = _mm256_maddubs_epi16(top, _mm256_set1_epi16(0x010A));
    let fours = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x0001_0064));
    let value = _mm256_add_epi64(
        _mm256_mul_epu32(fours, _mm256_set1_epi64x(10_000)),
        _mm256_srli_epi64(fours, 32),
    );
    // Times 10^(8 - decimals): the table's entry at the lane's decimals (at most 6 here).
    let scales = _mm256_setr_epi32(100_000_000, 10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10);
    let scale = _mm256_permutevar8x32_epi32(scales, _mm256_sub_epi64(count, whole_count));
    let scaled = _mm256_mul_epu32(value, scale);
    let mut values = [0i64; 4];
    // SAFETY: the array holds the 32 bytes stored, and an unaligned store needs no alignment.
    unsafe { _mm256_storeu_si256(values.as_mut_ptr().cast::<__m256i>(), scaled) };
    (values, bad)
}

/// The marks one byte at a time: the portable way, and the vector ones' check.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn byte_by_byte_marks(window: &[u8; WINDOW]) -> Marks {
    let mask = |is: fn(&u8) -> bool| {
        window
            .iter()
            .enumerate()
            .fold(0u64, |mask, (i, b)| mask | (u64::from(is(b)) << i))
    };
    Marks {
        commas: mask(|b| *b == b','),
        newlines: mask(|b| *b == b'\n'),
        dots: mask(|b| *b == b'.'),
        digits: mask(u8::is_ascii_digit),
    }
}

/// The line's fields, read between separators already found and checked: each is non-empty,
/// inside the window, and has no dot first or last.
struct Fields<'a> {
    text: &'a [u8; BYTES_NEEDED],
    /// Dots in the fields not read yet.
    dots: u64,
    /// Whether a field was not of a common shape (its value is then meaningless).
    bad: bool,
}

impl Fields<'_> {
    /// The dots of the field that ends at `stop` (those before it), taken off the rest.
    #[inline(always)]
    fn dots_before(&mut self, stop: usize) -> u64 {
        let dots = self.dots & ((1u64 << stop) - 1);
        self.dots ^= dots;
        dots
    }

    /// Plain digits (at most 16).
    #[inline(always)]
    fn uint(&mut self, start: usize, stop: usize) -> i64 {
        let count = stop - start;
        self.bad |= self.dots_before(stop) != 0;
        if count > 16 {
            self.bad = true;
            return 0;
        }
        self.digits(start, count)
    }

    /// A price or a volume, `123` or `123.45`: at most 10 whole digits and 8 decimals, in 1e-8
    /// units. Without `VALUE` only checked (0).
    #[inline(always)]
    fn decimal<const VALUE: bool>(&mut self, start: usize, stop: usize) -> i64 {
        let (dot, whole, decimals, two_dots) = self.split(start, stop);
        let bad = two_dots | (whole > MAX_WHOLE_DIGITS) | (decimals > SCALE as usize);
        self.bad |= bad;
        if !VALUE {
            return 0;
        }
        if stop - start <= 8 {
            return self.one_word_value(start, whole, decimals);
        }
        if bad {
            return 0;
        }
        let mut value = self.digits(start, whole) * UNIT;
        if decimals > 0 {
            value += self.digits(dot + 1, decimals) * POW10[SCALE as usize - decimals];
        }
        value
    }

    /// A price of at most 8 bytes, in 1e-8 units: it cannot break the limits on digits, only
    /// hold a dot too many.
    #[inline(always)]
    fn short_price(&mut self, start: usize, stop: usize) -> i64 {
        let (_, whole, decimals, two_dots) = self.split(start, stop);
        self.bad |= two_dots;
        self.one_word_value(start, whole, decimals)
    }

    /// The field from `start` to `stop` as (where its dot is, or `stop` without one; its whole
    /// digits; its decimals; whether it has more than one dot).
    #[inline(always)]
    fn split(&mut self, start: usize, stop: usize) -> (usize, usize, usize, bool) {
        let dots = self.dots_before(stop);
        let dot = (dots | (1u64 << stop)).trailing_zeros() as usize;
        let decimals = stop - dot - usize::from(dots != 0);
        (dot, dot - start, decimals, dots & dots.wrapping_sub(1) != 0)
    }

    /// A field of at most 8 bytes (so at most 6 decimals) in 1e-8 units: the dot squeezed out
    /// (the bytes after it move down one), all the digits added up at once.
    #[inline(always)]
    fn one_word_value(&self, start: usize, whole: usize, decimals: usize) -> i64 {
        let values = self.word(start) ^ ASCII_ZEROS;
        let whole_bytes = u64::MAX >> (64 - 8 * whole);
        let squeezed = (values & whole_bytes) | ((values >> 8) & !whole_bytes);
        // (The mask changes nothing here; it only spares a bounds check.)
        swar_value(squeezed, whole + decimals) * SCALE_BY_DECIMALS[decimals & 7]
    }

    /// The number written by the `count` (1..=16) digits from `start`.
    #[inline(always)]
    fn digits(&self, start: usize, count: usize) -> i64 {
        if count <= 8 {
            return swar_value(self.word(start) ^ ASCII_ZEROS, count);
        }
        let high = swar_value(self.word(start) ^ ASCII_ZEROS, count - 8);
        let low = swar_value(self.word(start + count - 8) ^ ASCII_ZEROS, 8);
        high * UNIT + low
    }

    /// Eight bytes from `at`, which is inside the window (the mask changes nothing, and tells
    /// the compiler that no bounds check is needed).
    #[inline(always)]
    fn word(&self, at: usize) -> u64 {
        let at = at & (WINDOW - 1);
        let bytes: &[u8; 8] = self.text[at..at + 8].try_into().expect("8 bytes");
        u64::from_le_bytes(*bytes)
    }
}

const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// The number written by the first `count` (1..=8) digit values in `values` (a byte each, the
/// first the most significant; anything after them is ignored): three multiplications add up
/// pairs, then quads, then the eight.
#[inline(always)]
pub fn swar_value(values: u64, count: usize) -> i64 {
    // The digits move to the top bytes, zeros before.
    let v = values << (8 * (8 - count));
    let v = ((v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let v = ((v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    let v = ((v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32;
    v as i64
}

pub const POW10: [i64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// What a number with that many decimals is multiplied by to be in 1e-8 units.
const SCALE_BY_DECIMALS: [i64; 8] = {
    let mut table = [0; 8];
    let mut decimals = 0;
    while decimals < 8 {
        table[decimals] = POW10[SCALE as usize - decimals];
        decimals += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The four prices of random fields of 1..=8 bytes (digits and dots, none first or last,
    /// sometimes two) in one vector: the same verdicts as one field after the other, and the
    /// same values as the exact decimals where both take them.
    #[test]
    fn vector_short_prices_match_the_scalar_ones() {
        use rand::{Rng, SeedableRng};
        #[cfg(target_arch = "x86_64")]
        let avx2 = Avx2::detect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let mut checked = 0;
        for _ in 0..100_000 {
            let fields: Vec<Vec<u8>> = (0..4)
                .map(|_| {
                    let len = rng.random_range(1..=8);
                    let mut field: Vec<u8> = (0..len).map(|_| rng.random_range(b'0'..=b'9')).collect();
                    // Dots inside (not first, not last): mostly none or one, now and then two.
                    for _ in 0..[0, 1, 1, 2][rng.random_range(0..4)] {
                        if len >= 3 {
                            field[rng.random_range(1..len - 1)] = b'.';
                        }
                    }
                    field
                })
                .collect();
            let mut line = b"1640991677".to_vec();
            let (mut starts, mut ends) = ([0; 4], [0; 4]);
            for (i, field) in fields.iter().enumerate() {
                line.push(b',');
                starts[i] = line.len();
                line.extend_from_slice(field);
                ends[i] = line.len();
            }
            line.extend_from_slice(b",2300413.7295\n");
            line.resize(BYTES_NEEDED, b'7');
            let text: &[u8; BYTES_NEEDED] = line[..].try_into().unwrap();
            let dots = text[..WINDOW]
                .iter()
                .enumerate()
                .fold(0u64, |m, (i, &b)| m | (u64::from(b == b'.') << i));
            let (values, bad) = scalar_short_prices(text, starts, ends, dots);
            let two_dots = fields.iter().any(|f| f.iter().filter(|&&b| b == b'.').count() > 1);
            assert_eq!(bad, two_dots, "{fields:?}");
            if !bad {
                for (field, &value) in fields.iter().zip(&values) {
                    let exact: rust_decimal::Decimal = std::str::from_utf8(field).unwrap().parse().unwrap();
                    assert_eq!(Some(value), crate::columns::to_fixed(exact), "{field:?}");
                }
            }
            assert_eq!(Baseline.short_prices(text, starts, ends, dots), (values, bad));
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = avx2 {
                let (wide, wide_bad) = avx2.short_prices(text, starts, ends, dots);
                assert_eq!(wide_bad, bad, "{fields:?}");
                if !bad {
                    assert_eq!(wide, values, "{fields:?}");
                    checked += 1;
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if avx2.is_some() {
            assert!(checked > 50_000, "{checked}");
        }
    }

    #[test]
    fn vector_marks_match_byte_by_byte_marks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let alphabet = b"0123456789,.\n\r-x /:\xff\x00";
        for _ in 0..10_000 {
            let window: [u8; WINDOW] = std::array::from_fn(|_| {
                if rng.random_bool(0.1) {
                    rng.random()
                } else {
                    alphabet[rng.random_range(0..alphabet.len())]
                }
            });
            let expected = byte_by_byte_marks(&window);
            assert_eq!(Baseline.marks(&window), expected, "{window:?}");
            #[cfg(target_arch = "x86_64")]
            if let Some(avx2) = Avx2::detect() {
                assert_eq!(avx2.marks(&window), expected, "{window:?}");
            }
        }
    }
}
