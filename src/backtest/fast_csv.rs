//! The fast path for the common case, a plain bar file (`ts,open,high,low,close,volume[,trades]`):
//! the file is read in place (memory-mapped), its lines counted and then parsed on all cores
//! straight into fixed-point columns, with no copy and no allocation per row. Lines of the usual
//! shape are read at once (`bar_line`), others field by field by a cursor. It accepts only
//! rows the general reader would accept with the same values; at the first row it is not sure
//! about it gives up (`Ok(None)`) and the general reader takes over, so every error message
//! comes from one place.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::bar_line::{self, POW10, Row, swar_value};
use super::columns::{BarColumns, BarDetail, MAX_WHOLE_DIGITS, SCALE, UNIT};
use super::mapped;
use crate::market::Interval;

/// Big enough that a piece is worth a task, small enough that the cores share the work evenly
/// and progress moves smoothly.
const PIECE_BYTES: usize = 1 << 20;
/// Rows looked at to find the bar interval (as the general reader does).
const INTERVAL_PROBE_ROWS: usize = 1_000;
const HEADER: &[u8] = b"ts,open,high,low,close,volume";
/// Timestamps beyond this many seconds would overflow nanoseconds.
const MAX_SECS: i64 = i64::MAX / 1_000_000_000;

/// The file's bars at its own interval, or `None` when it is not a plain bar file, its bars do
/// not sit on their interval's grid, or the interval asked for differs (resampling is the
/// general reader's job). Every field is checked; open, high, low, volume and trade counts are
/// kept only with `detail`. `on_bytes` is told how far parsing has got.
pub fn read(
    path: &Path,
    want: Option<Interval>,
    detail: bool,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> std::io::Result<Option<BarColumns>> {
    let file = File::open(path)?;
    let Some(map) = mapped::map(&file)? else {
        return Ok(None);
    };
    let text: &[u8] = &map;
    let mut start = if text.starts_with(b"\xEF\xBB\xBF") { 3 } else { 0 };
    let Some(header_end) = memchr::memchr(b'\n', &text[start..]).map(|i| start + i) else {
        return Ok(None);
    };
    let header = text[start..header_end]
        .strip_suffix(b"\r")
        .unwrap_or(&text[start..header_end]);
    let with_trades = match header.strip_prefix(HEADER) {
        Some(b"") => false,
        Some(b",trades") => true,
        _ => return Ok(None),
    };
    start = header_end + 1;

    // Lines are counted first, so that each piece knows where its rows go and all of them are
    // parsed at once into columns of the exact length.
    let pieces = split_lines(&text[start..], PIECE_BYTES);
    let counts: Vec<usize> = pieces
        .par_iter()
        .map(|piece| count_lines(&text[start..][piece.clone()]))
        .collect();
    let rows: usize = counts.iter().sum();
    if rows == 0 {
        return Ok(None);
    }
    let mut cols = Columns::zeroed(rows, detail);
    let mut outs = Vec::with_capacity(pieces.len());
    let mut rest = cols.slices();
    for &count in &counts {
        let (out, tail) = rest.split_at(count);
        outs.push(out);
        rest = tail;
    }
    let parsed = AtomicU64::new(start as u64);
    let all_parsed = pieces.par_iter().zip(outs).all(|(piece, out)| {
        let ok = parse_lines(&text[start..], piece.clone(), with_trades, out);
        on_bytes(parsed.fetch_add(piece.len() as u64, Ordering::Relaxed) + piece.len() as u64);
        ok
    });
    if !all_parsed {
        return Ok(None);
    }
    // Order across the pieces' edges (inside a piece it is checked while parsing).
    let mut edge = 0;
    for &count in &counts {
        if edge > 0 && count > 0 && cols.ts[edge] <= cols.ts[edge - 1] {
            return Ok(None);
        }
        edge += count;
    }
    let interval = smallest_step(&cols.ts[..cols.ts.len().min(INTERVAL_PROBE_ROWS)]);
    if want.is_some_and(|w| w != interval) {
        return Ok(None);
    }
    if !on_grid(&cols.ts, interval.secs()) {
        return Ok(None);
    }
    Ok(Some(BarColumns {
        interval,
        ts: cols.ts.into(),
        close: cols.close.into(),
        detail: detail.then_some(BarDetail {
            open: cols.open.into(),
            high: cols.high.into(),
            low: cols.low.into(),
            volume: cols.volume.into(),
            trades: cols.trades.into(),
        }),
    }))
}

/// The text cut after newlines into ranges of about `size` bytes (the last takes the rest).
fn split_lines(text: &[u8], size: usize) -> Vec<std::ops::Range<usize>> {
    let mut pieces = Vec::with_capacity(text.len() / size + 1);
    let mut start = 0;
    while text.len() - start > size {
        match memchr::memchr(b'\n', &text[start + size..]) {
            Some(i) => {
                let end = start + size + i + 1;
                pieces.push(start..end);
                start = end;
            }
            None => break,
        }
    }
    pieces.push(start..text.len());
    pieces
}

/// Whether every time is a multiple of `step`: the first is checked, then each gap, which is
/// nearly always exactly one step (a division per bar would cost more than the parsing). On all
/// cores: a million gaps take a millisecond or two on one.
fn on_grid(ts: &[i64], step: i64) -> bool {
    ts.first().is_none_or(|t| t % step == 0)
        && ts
            .par_windows(2)
            .with_min_len(1 << 14)
            .all(|w| w[1] - w[0] == step || (w[1] - w[0]) % step == 0)
}

/// The smallest step between consecutive bars, as the general reader infers it.
fn smallest_step(ts: &[i64]) -> Interval {
    ts.windows(2)
        .map(|w| w[1] - w[0])
        .filter(|d| *d > 0)
        .min()
        .and_then(Interval::from_secs)
        .unwrap_or_default()
}

/// The parsed columns; the detail ones stay empty without `detail`.
struct Columns {
    ts: Vec<i64>,
    open: Vec<i64>,
    high: Vec<i64>,
    low: Vec<i64>,
    close: Vec<i64>,
    volume: Vec<i64>,
    trades: Vec<u32>,
}

impl Columns {
    /// Room for `rows` rows as zeroed memory fresh from the allocator: the pages are only
    /// touched, and so faulted in, by the parsing threads' writes, in parallel, rather than by
    /// a zero-fill on one thread first.
    fn zeroed(rows: usize, detail: bool) -> Self {
        let room = if detail { rows } else { 0 };
        let columns = Self {
            ts: vec![0; rows],
            open: vec![0; room],
            high: vec![0; room],
            low: vec![0; room],
            close: vec![0; rows],
            volume: vec![0; room],
            trades: vec![0; room],
        };
        for column in [
            &columns.ts,
            &columns.open,
            &columns.high,
            &columns.low,
            &columns.close,
            &columns.volume,
        ] {
            mapped::advise_huge_pages(column);
        }
        mapped::advise_huge_pages(&columns.trades);
        columns
    }

    fn slices(&mut self) -> Slices<'_> {
        Slices {
            ts: &mut self.ts,
            open: &mut self.open,
            high: &mut self.high,
            low: &mut self.low,
            close: &mut self.close,
            volume: &mut self.volume,
            trades: &mut self.trades,
        }
    }
}

/// Output slices for a run of lines.
struct Slices<'a> {
    ts: &'a mut [i64],
    open: &'a mut [i64],
    high: &'a mut [i64],
    low: &'a mut [i64],
    close: &'a mut [i64],
    volume: &'a mut [i64],
    trades: &'a mut [u32],
}

impl<'a> Slices<'a> {
    /// Detail columns are empty when not kept, and stay empty on both sides.
    fn split_at(self, mid: usize) -> (Slices<'a>, Slices<'a>) {
        fn split<T>(v: &mut [T], mid: usize) -> (&mut [T], &mut [T]) {
            let mid = if v.is_empty() { 0 } else { mid };
            v.split_at_mut(mid)
        }
        let (ts0, ts1) = self.ts.split_at_mut(mid);
        let (o0, o1) = split(self.open, mid);
        let (h0, h1) = split(self.high, mid);
        let (l0, l1) = split(self.low, mid);
        let (c0, c1) = self.close.split_at_mut(mid);
        let (v0, v1) = split(self.volume, mid);
        let (n0, n1) = split(self.trades, mid);
        (
            Slices {
                ts: ts0,
                open: o0,
                high: h0,
                low: l0,
                close: c0,
                volume: v0,
                trades: n0,
            },
            Slices {
                ts: ts1,
                open: o1,
                high: h1,
                low: l1,
                close: c1,
                volume: v1,
                trades: n1,
            },
        )
    }
}

/// Lines in a piece; a last line without its newline counts.
fn count_lines(piece: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', piece).count() + usize::from(!piece.is_empty() && !piece.ends_with(b"\n"))
}

/// The lines in `text[piece]` into `out`, one row each; `false` at the first line not sure to
/// be read as the general reader would. Lines of a common shape are read at once
/// (`bar_line`), the others by the cursor, field by field.
fn parse_lines(text: &[u8], piece: std::ops::Range<usize>, with_trades: bool, out: Slices) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = bar_line::Avx2::detect() {
        // SAFETY: this CPU has the features the function is compiled for (`detect` saw them).
        return unsafe { parse_lines_avx2(text, piece, with_trades, out, avx2) };
    }
    parse_lines_with(text, piece, with_trades, out, bar_line::Baseline)
}

/// The same code compiled for newer x86_64 CPUs: variable shifts, bit scans and vector compares
/// take fewer instructions there.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn parse_lines_avx2(
    text: &[u8],
    piece: std::ops::Range<usize>,
    with_trades: bool,
    out: Slices,
    avx2: bar_line::Avx2,
) -> bool {
    parse_lines_with(text, piece, with_trades, out, avx2)
}

#[inline(always)]
fn parse_lines_with<M: bar_line::Marker>(
    text: &[u8],
    piece: std::ops::Range<usize>,
    with_trades: bool,
    out: Slices,
    marker: M,
) -> bool {
    let detail = !out.open.is_empty();
    let careful_text = &text[..piece.end];
    let mut pos = piece.start;
    let mut prev_ts = i64::MIN;
    for k in 0..out.ts.len() {
        // (No closures here: they would not be compiled for the CPU features above.)
        let at_once = match text.get(pos..pos + bar_line::BYTES_NEEDED) {
            Some(window) if detail => {
                bar_line::read::<M, true>(window.try_into().expect("window"), with_trades, marker)
            }
            Some(window) => bar_line::read::<M, false>(window.try_into().expect("window"), with_trades, marker),
            None => None,
        };
        let row = match at_once {
            Some((row, len)) if pos + len <= piece.end => {
                pos += len;
                row
            }
            _ => {
                let mut cursor = Cursor {
                    text: careful_text,
                    pos,
                };
                let Some(row) = cursor.line(with_trades, detail) else {
                    return false;
                };
                pos = cursor.pos;
                row
            }
        };
        // One branch for all the checks (`&`, not `&&`): they nearly always hold.
        let sane = (row.ts > prev_ts)
            & (row.ts <= MAX_SECS)
            & (row.low > 0)
            & (row.low <= row.open)
            & (row.low <= row.close)
            & (row.open <= row.high)
            & (row.close <= row.high);
        if !sane {
            return false;
        }
        prev_ts = row.ts;
        out.ts[k] = row.ts;
        out.close[k] = row.close;
        if detail {
            out.open[k] = row.open;
            out.high[k] = row.high;
            out.low[k] = row.low;
            out.volume[k] = row.volume;
            out.trades[k] = row.trades;
        }
    }
    pos >= piece.end
}

struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    /// One line, field by field, through its newline; without `detail` the volume is only
    /// checked (0).
    fn line(&mut self, with_trades: bool, detail: bool) -> Option<Row> {
        let ts = self.uint(b',')?;
        let open = self.fixed(b',')?;
        let high = self.fixed(b',')?;
        let low = self.fixed(b',')?;
        let close = self.fixed(b',')?;
        let volume_end = if with_trades { b',' } else { b'\n' };
        let volume = if detail {
            self.volume::<true>(volume_end)?
        } else {
            self.volume::<false>(volume_end)?
        };
        let trades = if with_trades {
            u32::try_from(self.uint(b'\n')?).ok()?
        } else {
            0
        };
        Some(Row {
            ts,
            open,
            high,
            low,
            close,
            volume,
            trades,
        })
    }

    /// Consumes the field's terminator: `end`, or for the last field a newline (with an optional
    /// carriage return before it) or the end of the text.
    #[inline(always)]
    fn terminate(&mut self, end: u8) -> bool {
        match self.text.get(self.pos) {
            Some(&b) if b == end => {
                self.pos += 1;
                true
            }
            Some(b'\r') if end == b'\n' && self.text.get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                true
            }
            None => end == b'\n',
            _ => false,
        }
    }

    /// Up to 8 digits from the cursor, as (value, count). Eight bytes at a time (SWAR): one
    /// load finds where the digits stop and three multiplications add them up (without
    /// `VALUE`, for a field only checked, they are skipped and the value is 0).
    #[inline(always)]
    fn digits8<const VALUE: bool>(&mut self) -> (i64, usize) {
        let Some(bytes) = self.text.get(self.pos..self.pos + 8) else {
            return self.digits8_slow();
        };
        let chunk = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        let values = chunk.wrapping_sub(0x3030_3030_3030_3030);
        // A byte's top bit is set unless it is an ASCII digit; a borrow or carry only reaches
        // bytes after the first non-digit, which are not used.
        let non_digits = (chunk.wrapping_add(0x4646_4646_4646_4646) | values) & 0x8080_8080_8080_8080;
        let count = (non_digits.trailing_zeros() / 8) as usize;
        if count == 0 || !VALUE {
            self.pos += count;
            return (0, count);
        }
        self.pos += count;
        (swar_value(values, count), count)
    }

    /// `digits8` near the end of the text.
    fn digits8_slow(&mut self) -> (i64, usize) {
        let (mut value, mut count) = (0i64, 0usize);
        while count < 8 {
            match self.text.get(self.pos) {
                Some(&b) if b.is_ascii_digit() => {
                    value = value * 10 + i64::from(b - b'0');
                    count += 1;
                    self.pos += 1;
                }
                _ => break,
            }
        }
        (value, count)
    }

    /// A run of at most `max` digits (max <= 18), as (value, count); `None` when longer.
    #[inline(always)]
    fn digit_run<const VALUE: bool>(&mut self, max: usize) -> Option<(i64, usize)> {
        let (mut value, mut count) = self.digits8::<VALUE>();
        let mut last = count;
        while last == 8 {
            let (more, n) = self.digits8::<VALUE>();
            if count + n > max {
                return None;
            }
            value = value * POW10[n] + more;
            count += n;
            last = n;
        }
        (count <= max).then_some((value, count))
    }

    /// Plain digits (at most 18).
    #[inline(always)]
    fn uint(&mut self, end: u8) -> Option<i64> {
        let (value, digits) = self.digit_run::<true>(18)?;
        (digits > 0 && self.terminate(end)).then_some(value)
    }

    /// A price: `123`, `123.45` or `0.00000001`, at most 10 whole digits and 8 decimals, in
    /// 1e-8 units.
    #[inline(always)]
    fn fixed(&mut self, end: u8) -> Option<i64> {
        self.number::<true>(end, false)
    }

    /// A volume: as a price, but decimals past the 8th are rounded half to even (volume is only
    /// shown, and the general path rounds it the same way); float noise such as
    /// `218102.59507500002` is common in exported data. Without `VALUE` it is only checked
    /// (and 0 is returned): a backtest without a report keeps no volumes.
    #[inline(always)]
    fn volume<const VALUE: bool>(&mut self, end: u8) -> Option<i64> {
        self.number::<VALUE>(end, true)
    }

    #[inline(always)]
    fn number<const VALUE: bool>(&mut self, end: u8, round_extra_decimals: bool) -> Option<i64> {
        let (whole, whole_digits) = self.digit_run::<VALUE>(MAX_WHOLE_DIGITS)?;
        if whole_digits == 0 {
            return None;
        }
        let mut value = whole * UNIT;
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let (frac, frac_digits) = self.digits8::<VALUE>();
            value += match frac_digits {
                0 => return None,
                1..8 => frac * POW10[SCALE as usize - frac_digits],
                _ if self.text.get(self.pos).is_some_and(u8::is_ascii_digit) => {
                    self.past_the_eighth_decimal(frac, round_extra_decimals)?
                }
                _ => frac,
            };
        }
        self.terminate(end).then_some(value)
    }

    /// Eight decimals read (`frac`, in 1e-8 units); any more are rounded half to even when
    /// `round` allows them (float noise in volumes), else refused. Rare, so kept out of line.
    #[cold]
    #[inline(never)]
    fn past_the_eighth_decimal(&mut self, frac: i64, round: bool) -> Option<i64> {
        let digits_from = self.pos;
        // The first dropped decimal, and whether any later one is not zero.
        let (mut first_dropped, mut sticky) = (None, false);
        while let Some(&b) = self.text.get(self.pos).filter(|b| b.is_ascii_digit()) {
            match first_dropped {
                None => first_dropped = Some(b - b'0'),
                Some(_) => sticky |= b != b'0',
            }
            self.pos += 1;
        }
        let Some(first_dropped) = first_dropped else {
            return Some(frac);
        };
        if !round || SCALE as usize + (self.pos - digits_from) > MAX_DECIMALS {
            return None;
        }
        let up = first_dropped > 5 || (first_dropped == 5 && (sticky || frac % 2 == 1));
        Some(frac + i64::from(up))
    }
}

/// Decimals read at most (rust_decimal holds 28 digits in all).
const MAX_DECIMALS: usize = 20;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<BarColumns> {
        parse_keeping(text, true)
    }

    fn parse_keeping(text: &str, detail: bool) -> Option<BarColumns> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        std::fs::write(&path, text).unwrap();
        read(&path, None, detail, &|_| {}).unwrap()
    }

    #[test]
    fn reads_plain_bar_files() {
        let cols = parse("ts,open,high,low,close,volume\n60,1.5,2,1,2,0.00000001\r\n120,2,2,2,2,0\n").unwrap();
        assert_eq!(cols.interval, Interval::ONE_MINUTE);
        assert_eq!(cols.ts, [60, 120]);
        assert_eq!(cols.close, [200_000_000, 200_000_000]);
        let d = cols.detail.unwrap();
        assert_eq!(d.open, [150_000_000, 200_000_000]);
        assert_eq!(d.volume, [1, 0]);
        let cols = parse("ts,open,high,low,close,volume,trades\n3600,1,1,1,1,1,7\n7200,1,1,1,1,1,0").unwrap();
        assert_eq!(cols.interval.secs(), 3600);
        assert_eq!(cols.detail.unwrap().trades, [7, 0]);
    }

    /// The eight-at-a-time digit reader against a digit-by-digit one, on random fields.
    #[test]
    fn swar_digits_match_a_plain_reading() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20_000 {
            let whole: String = (0..rng.random_range(0..13))
                .map(|_| rng.random_range(b'0'..=b'9') as char)
                .collect();
            let frac: String = (0..rng.random_range(0..11))
                .map(|_| rng.random_range(b'0'..=b'9') as char)
                .collect();
            let tail = [",", "\n", "\r\n", "", "x", ".5,"][rng.random_range(0..6)];
            let field = if rng.random_bool(0.5) {
                format!("{whole}.{frac}{tail}")
            } else {
                format!("{whole}{tail}")
            };
            let want_uint = (!whole.is_empty() && whole.len() <= 18 && matches!(tail, "," | "\n" | "\r\n" | ""))
                .then(|| whole.parse::<i64>().unwrap());
            let text = format!("{whole}{tail}");
            let mut cursor = Cursor {
                text: text.as_bytes(),
                pos: 0,
            };
            let end = if tail == "," { b',' } else { b'\n' };
            assert_eq!(cursor.uint(end), want_uint, "uint {text:?}");

            let mut cursor = Cursor {
                text: field.as_bytes(),
                pos: 0,
            };
            let got = cursor.fixed(end);
            let body = field.trim_end_matches(tail);
            let plain = !whole.is_empty()
                && whole.len() <= MAX_WHOLE_DIGITS
                && !(field.contains('.') && body.ends_with('.'))
                && body.split('.').nth(1).is_none_or(|f| !f.is_empty() && f.len() <= 8)
                && matches!(tail, "," | "\n" | "\r\n" | "");
            let want = plain.then(|| {
                let d: rust_decimal::Decimal = body.parse().unwrap();
                crate::backtest::columns::to_fixed(d).unwrap()
            });
            assert_eq!(got, want, "fixed {field:?}");
            // With more text after the field, as in a file: the same verdict, and the cursor
            // just past the terminator. (A field ended by the end of the text would run on.)
            if tail.is_empty() {
                continue;
            }
            let padded = format!("{field}12.5,7\n9876543210,1.25\n");
            let mut cursor = Cursor {
                text: padded.as_bytes(),
                pos: 0,
            };
            let got = cursor.fixed(end);
            assert_eq!(got, want, "fixed {padded:?}");
            if got.is_some() {
                assert_eq!(cursor.pos, field.len(), "{padded:?}");
            }
            // A volume only checked (not kept) gets the same verdict as one converted.
            let verdict = |convert: bool| {
                let mut cursor = Cursor {
                    text: padded.as_bytes(),
                    pos: 0,
                };
                let ok = if convert {
                    cursor.volume::<true>(end).is_some()
                } else {
                    cursor.volume::<false>(end).is_some()
                };
                (ok, cursor.pos)
            };
            assert_eq!(verdict(false), verdict(true), "volume {padded:?}");
        }
    }

    /// A random field for `lines_read_at_once_match_the_careful_reading`: mostly well formed,
    /// sometimes too long, empty, doubly dotted or with a stray byte.
    fn random_field(rng: &mut impl rand::Rng, decimals_allowed: bool) -> String {
        let digits = |rng: &mut dyn rand::RngCore, n: usize| -> String {
            (0..n).map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8)).collect()
        };
        let whole_len = if rng.random_bool(0.9) {
            rng.random_range(1..=8)
        } else {
            [0, 9, 10, 11, 17][rng.random_range(0..5)]
        };
        let mut field = digits(rng, whole_len);
        if decimals_allowed && rng.random_bool(0.7) {
            let decimals = if rng.random_bool(0.9) {
                rng.random_range(1..=8)
            } else {
                rng.random_range(0..=11)
            };
            field = format!("{field}.{}", digits(rng, decimals));
            if rng.random_bool(0.03) {
                field.push_str(".5");
            }
        }
        if rng.random_bool(0.03) {
            let at = rng.random_range(0..=field.len());
            let stray = ["-", " ", "x", "\r", "e", "+", "\u{e9}", "."][rng.random_range(0..8)];
            field.insert_str(at, stray);
        }
        field
    }

    /// Whatever line the at-once reader takes, it reads exactly as the careful cursor does (row
    /// and length); on the usual shapes it does take them. Both instruction sets are checked.
    #[test]
    fn lines_read_at_once_match_the_careful_reading() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
        let mut taken = 0;
        for i in 0..60_000 {
            let with_trades = i % 3 == 0;
            let mut fields = vec![random_field(&mut rng, false)];
            fields.extend((0..5).map(|_| random_field(&mut rng, true)));
            if with_trades {
                fields.push(random_field(&mut rng, false));
            }
            if rng.random_bool(0.02) {
                fields.pop();
            } else if rng.random_bool(0.02) {
                fields.push("1".into());
            }
            let ending = if rng.random_bool(0.1) { "\r\n" } else { "\n" };
            let line = format!("{}{ending}", fields.join(","));
            // What follows the line in a file: more lines.
            let text = format!("{line}1522800060,1.5,2,1,2,3\n{}", "9".repeat(80));
            let window: &[u8; bar_line::BYTES_NEEDED] = text.as_bytes()[..bar_line::BYTES_NEEDED].try_into().unwrap();
            for detail in [true, false] {
                let mut cursor = Cursor {
                    text: text.as_bytes(),
                    pos: 0,
                };
                let careful = cursor.line(with_trades, detail).map(|row| (row, cursor.pos));
                let baseline = if detail {
                    bar_line::read::<_, true>(window, with_trades, bar_line::Baseline)
                } else {
                    bar_line::read::<_, false>(window, with_trades, bar_line::Baseline)
                };
                if let Some(at_once) = baseline {
                    assert_eq!(Some(at_once), careful, "{line:?} detail {detail}");
                    taken += 1;
                }
                #[cfg(target_arch = "x86_64")]
                if let Some(avx2) = bar_line::Avx2::detect() {
                    let wide = if detail {
                        bar_line::read::<_, true>(window, with_trades, avx2)
                    } else {
                        bar_line::read::<_, false>(window, with_trades, avx2)
                    };
                    assert_eq!(wide, baseline, "{line:?} detail {detail}");
                }
            }
        }
        assert!(taken > 10_000, "only {taken} lines read at once");
        // The usual shapes are all taken.
        for line in [
            "1522800000,7424.91,7424.91,7422,7422,7.14319709\n",
            "1732406400,98234.5,98300.12,98200,98250.3,12.3456789\r\n",
            "1640991660,46319,46385,46319,46377,2300413.7295\n",
            "60,1,1,1,1,0\n",
            "1700000000,1234567890.12345678,1,1,1,0.00000001\n",
        ] {
            let text = format!("{line}{}", " ".repeat(bar_line::BYTES_NEEDED));
            let window = text.as_bytes()[..bar_line::BYTES_NEEDED].try_into().unwrap();
            let (row, len) = bar_line::read::<_, true>(window, false, bar_line::Baseline).expect(line);
            assert_eq!(len, line.len());
            let mut cursor = Cursor {
                text: text.as_bytes(),
                pos: 0,
            };
            assert_eq!(cursor.line(false, true), Some(row), "{line:?}");
        }
    }

    #[test]
    fn volume_decimals_past_the_eighth_round_half_to_even() {
        let volumes = |text: &str| {
            let body: String = text
                .split(' ')
                .enumerate()
                .map(|(i, v)| format!("{},1,1,1,1,{v}\n", 60 * (i + 1)))
                .collect();
            parse(&format!("ts,open,high,low,close,volume\n{body}"))
                .unwrap()
                .detail
                .unwrap()
                .volume
        };
        assert_eq!(
            volumes("218102.59507500002 0.000000005 0.000000015 0.0000000050001 0.000000004999 1.123456789"),
            [21_810_259_507_500, 0, 2, 1, 0, 112_345_679]
        );
    }

    #[test]
    fn leaves_anything_doubtful_to_the_general_reader() {
        for text in [
            "",
            "ts,open,high,low,close\n60,1,1,1,1\n",
            "time,open,high,low,close,volume\n60,1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,1\n60,1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n120,1,1,1,1,1\n60,1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,x,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1e3,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,0.000000001,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,0.000000000000000000001\n",
            "ts,open,high,low,close,volume\n60,1, 1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,1,1,2,1,1\n",
            "ts,open,high,low,close,volume\n60,0,1,0,1,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,1\n\n120,1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n90,1,1,1,1,1\n150,1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,1.,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,-1,1,1,1,1\n",
            "ts,open,high,low,close,volume\n60,12345678901,12345678901,12345678901,12345678901,1\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,1x\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,.5\n",
            "ts,open,high,low,close,volume\n60,1,1,1,1,1.000000001\n120,1,1,1,1,12345678901\n",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
            // Volumes only checked, not kept: the same verdicts.
            assert_eq!(parse_keeping(text, false), None, "{text:?}");
        }
        let light = parse_keeping("ts,open,high,low,close,volume\n60,1,2,1,2,0.123456789\n", false).unwrap();
        assert_eq!((light.close.to_vec(), light.detail), (vec![200_000_000], None));
    }

    /// Long lines first, short ones after: more rows than the first block suggested.
    #[test]
    fn columns_grow_past_the_first_estimate() {
        let mut text = String::from("ts,open,high,low,close,volume\n");
        for i in 0..200_000i64 {
            let row = if i < 40_000 {
                format!(
                    "{},1000000.12345678,1000000.12345678,1000000.12345678,1000000.12345678,1234567.12345678\n",
                    60 * (i + 1)
                )
            } else {
                format!("{},1,1,1,1,0\n", 60 * (i + 1))
            };
            text.push_str(&row);
        }
        let cols = parse(&text).unwrap();
        assert_eq!(cols.len(), 200_000);
        assert_eq!(cols.close[39_999], 100_000_012_345_678);
        assert_eq!((cols.ts[199_999], cols.close[199_999]), (12_000_000, UNIT));
    }

    #[test]
    fn big_files_parse_in_parallel_pieces_and_check_order_across_them() {
        let mut text = String::from("ts,open,high,low,close,volume\n");
        for i in 0..100_000i64 {
            text.push_str(&format!("{},{}.5,{}.5,{}.5,{}.5,1\n", 60 * (i + 1), i, i, i, i));
        }
        let cols = parse(&text).unwrap();
        assert_eq!(cols.len(), 100_000);
        assert!(cols.ts.windows(2).all(|w| w[1] == w[0] + 60));
        assert_eq!(cols.close[99_999], 99_999 * UNIT + UNIT / 2);
        // Swap two rows in the middle, where a parallel cut may fall.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(50_000, 50_001);
        assert_eq!(parse(&lines.join("\n")), None);
    }
}
