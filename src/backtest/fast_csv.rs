//! The fast path for the common case, a plain bar file (`ts,open,high,low,close,volume[,trades]`):
//! read in large blocks, each block's lines parsed on all cores straight into fixed-point columns,
//! with no allocation per row. It accepts only rows the general reader would accept with the
//! same values; at the first row it is not sure about it gives up (`Ok(None)`) and the general
//! reader takes over, so every error message comes from one place.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::columns::{BarColumns, BarDetail, MAX_WHOLE_DIGITS, SCALE, UNIT};
use crate::market::Interval;

const BLOCK_BYTES: usize = 8 << 20;
/// Rows looked at to find the bar interval (as the general reader does).
const INTERVAL_PROBE_ROWS: usize = 1_000;
const HEADER: &[u8] = b"ts,open,high,low,close,volume";
/// Timestamps beyond this many seconds would overflow nanoseconds.
const MAX_SECS: i64 = i64::MAX / 1_000_000_000;

/// The file's bars at its own interval, or `None` when it is not a plain bar file, its bars do
/// not sit on their interval's grid, or the interval asked for differs (resampling is the
/// general reader's job). `on_bytes` is told how far reading has got.
pub fn read(path: &Path, want: Option<Interval>, on_bytes: &mut dyn FnMut(u64)) -> std::io::Result<Option<BarColumns>> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; BLOCK_BYTES];
    let mut filled = read_some(&mut file, &mut buf, 0)?;
    let mut start = if buf[..filled].starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let Some(header_end) = memchr::memchr(b'\n', &buf[start..filled]).map(|i| start + i) else {
        return Ok(None);
    };
    let header = buf[start..header_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[start..header_end]);
    let with_trades = match header.strip_prefix(HEADER) {
        Some(b"") => false,
        Some(b",trades") => true,
        _ => return Ok(None),
    };
    start = header_end + 1;

    let mut cols = Columns::default();
    // Room for every row from the start (estimated from the first block), so the columns are
    // never copied while they grow.
    let sample = &buf[start..filled];
    let sample_lines = memchr::memchr_iter(b'\n', sample).count().max(1);
    let file_len = file.metadata().map_or(filled as u64, |m| m.len());
    let estimate = (file_len as f64 / sample.len().max(1) as f64 * sample_lines as f64 * 1.02) as usize + 1024;
    cols.reserve(estimate.min(1 << 31));
    let mut total_read = filled as u64;
    loop {
        let at_eof = filled < buf.len();
        // Complete lines only; the tail moves to the front of the next block.
        let end = if at_eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &buf[start..filled]) {
                Some(i) => start + i + 1,
                None if start == 0 => return Ok(None), // a line longer than a block
                None => start,
            }
        };
        if !parse_block(&buf[start..end], with_trades, &mut cols) {
            return Ok(None);
        }
        on_bytes(total_read);
        if at_eof {
            break;
        }
        buf.copy_within(end..filled, 0);
        filled -= end;
        start = 0;
        let got = read_some(&mut file, &mut buf, filled)?;
        total_read += (got - filled) as u64;
        filled = got;
    }
    if cols.ts.is_empty() {
        return Ok(None);
    }
    let interval = smallest_step(&cols.ts[..cols.ts.len().min(INTERVAL_PROBE_ROWS)]);
    if want.is_some_and(|w| w != interval) {
        return Ok(None);
    }
    let step = interval.secs();
    if cols.ts.iter().any(|t| t % step != 0) {
        return Ok(None);
    }
    Ok(Some(BarColumns {
        interval,
        ts: cols.ts,
        close: cols.close,
        detail: Some(BarDetail {
            open: cols.open,
            high: cols.high,
            low: cols.low,
            volume: cols.volume,
            trades: cols.trades,
        }),
    }))
}

/// Fills `buf[from..]` as far as the file allows; returns the bytes now held.
fn read_some(file: &mut File, buf: &mut [u8], mut filled: usize) -> std::io::Result<usize> {
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

#[derive(Default)]
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
    fn reserve(&mut self, rows: usize) {
        for v in [
            &mut self.ts,
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
        ] {
            v.reserve_exact(rows);
        }
        self.trades.reserve_exact(rows);
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
    fn split_at(self, mid: usize) -> (Slices<'a>, Slices<'a>) {
        let (ts0, ts1) = self.ts.split_at_mut(mid);
        let (o0, o1) = self.open.split_at_mut(mid);
        let (h0, h1) = self.high.split_at_mut(mid);
        let (l0, l1) = self.low.split_at_mut(mid);
        let (c0, c1) = self.close.split_at_mut(mid);
        let (v0, v1) = self.volume.split_at_mut(mid);
        let (n0, n1) = self.trades.split_at_mut(mid);
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

/// Parses whole lines into the columns, in parallel halves; false at the first doubtful row.
fn parse_block(block: &[u8], with_trades: bool, cols: &mut Columns) -> bool {
    // A final line without its newline still counts.
    let lines = memchr::memchr_iter(b'\n', block).count() + usize::from(!block.is_empty() && !block.ends_with(b"\n"));
    if lines == 0 {
        return true;
    }
    let base = cols.ts.len();
    let grow = |v: &mut Vec<i64>| v.resize(base + lines, 0);
    for v in [
        &mut cols.ts,
        &mut cols.open,
        &mut cols.high,
        &mut cols.low,
        &mut cols.close,
        &mut cols.volume,
    ] {
        grow(v);
    }
    cols.trades.resize(base + lines, 0);
    let out = Slices {
        ts: &mut cols.ts[base..],
        open: &mut cols.open[base..],
        high: &mut cols.high[base..],
        low: &mut cols.low[base..],
        close: &mut cols.close[base..],
        volume: &mut cols.volume[base..],
        trades: &mut cols.trades[base..],
    };
    if !parse_parallel(block, lines, with_trades, out) {
        return false;
    }
    // Order across the block's start (inside each piece it is checked while parsing).
    base == 0 || cols.ts[base] > cols.ts[base - 1]
}

/// Splits the lines in two at a line boundary while the pieces are big, parsing them in parallel.
fn parse_parallel(block: &[u8], lines: usize, with_trades: bool, out: Slices) -> bool {
    const MIN_PARALLEL_LINES: usize = 16_384;
    if lines < MIN_PARALLEL_LINES {
        return parse_lines(block, with_trades, out);
    }
    let half = block.len() / 2;
    let Some(cut) = memchr::memchr(b'\n', &block[half..]).map(|i| half + i + 1) else {
        return parse_lines(block, with_trades, out);
    };
    let (first, second) = block.split_at(cut);
    let first_lines = memchr::memchr_iter(b'\n', first).count();
    let (out0, out1) = out.split_at(first_lines);
    let second_lines = lines - first_lines;
    let (a, b) = rayon::join(
        || parse_parallel(first, first_lines, with_trades, out0),
        || parse_parallel(second, second_lines, with_trades, out1),
    );
    // The second piece's first row must follow the first piece's last.
    a && b && (second_lines == 0 || first_lines == 0 || out_ts_ordered(first, second))
}

/// Checks the order across a cut by re-reading the two timestamps around it.
fn out_ts_ordered(first: &[u8], second: &[u8]) -> bool {
    let last_line = {
        let body = &first[..first.len() - 1];
        let begin = memchr::memrchr(b'\n', body).map_or(0, |i| i + 1);
        &body[begin..]
    };
    match (leading_uint(last_line), leading_uint(second)) {
        (Some(a), Some(b)) => b > a,
        _ => false,
    }
}

fn leading_uint(line: &[u8]) -> Option<i64> {
    let mut cursor = Cursor { text: line, pos: 0 };
    cursor.uint(b',')
}

fn parse_lines(block: &[u8], with_trades: bool, out: Slices) -> bool {
    let mut cursor = Cursor { text: block, pos: 0 };
    let mut prev_ts = i64::MIN;
    for k in 0..out.ts.len() {
        let Some(ts) = cursor.uint(b',') else { return false };
        let (Some(open), Some(high), Some(low), Some(close)) = (
            cursor.fixed(b','),
            cursor.fixed(b','),
            cursor.fixed(b','),
            cursor.fixed(b','),
        ) else {
            return false;
        };
        let volume_end = if with_trades { b',' } else { b'\n' };
        let Some(volume) = cursor.volume(volume_end) else {
            return false;
        };
        let trades = if with_trades {
            match cursor.uint(b'\n').and_then(|n| u32::try_from(n).ok()) {
                Some(n) => n,
                None => return false,
            }
        } else {
            0
        };
        let sane = ts > prev_ts
            && ts <= MAX_SECS
            && open > 0
            && high > 0
            && low > 0
            && close > 0
            && low <= high
            && (low..=high).contains(&open)
            && (low..=high).contains(&close);
        if !sane {
            return false;
        }
        prev_ts = ts;
        out.ts[k] = ts;
        out.open[k] = open;
        out.high[k] = high;
        out.low[k] = low;
        out.close[k] = close;
        out.volume[k] = volume;
        out.trades[k] = trades;
    }
    cursor.pos >= block.len()
}

struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
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

    /// Plain digits (at most 18).
    #[inline(always)]
    fn uint(&mut self, end: u8) -> Option<i64> {
        let begin = self.pos;
        let mut value: i64 = 0;
        while let Some(&b) = self.text.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value * 10 + i64::from(b - b'0');
            self.pos += 1;
        }
        let digits = self.pos - begin;
        ((1..=18).contains(&digits) && self.terminate(end)).then_some(value)
    }

    /// A price: `123`, `123.45` or `0.00000001`, at most 10 whole digits and 8 decimals, in
    /// 1e-8 units.
    #[inline(always)]
    fn fixed(&mut self, end: u8) -> Option<i64> {
        self.number(end, false)
    }

    /// A volume: as a price, but decimals past the 8th are rounded half to even (volume is only
    /// shown, and the general path rounds it the same way); float noise such as
    /// `218102.59507500002` is common in exported data.
    #[inline(always)]
    fn volume(&mut self, end: u8) -> Option<i64> {
        self.number(end, true)
    }

    #[inline(always)]
    fn number(&mut self, end: u8, round_extra_decimals: bool) -> Option<i64> {
        let begin = self.pos;
        let mut whole: i64 = 0;
        while let Some(&b) = self.text.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            whole = whole * 10 + i64::from(b - b'0');
            self.pos += 1;
        }
        let whole_digits = self.pos - begin;
        if whole_digits > MAX_WHOLE_DIGITS {
            return None;
        }
        let mut frac: i64 = 0;
        let mut frac_digits = 0usize;
        // The first dropped decimal, and whether any later one is not zero.
        let (mut first_dropped, mut sticky) = (0u8, false);
        if self.text.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let digits_from = self.pos;
            while let Some(&b) = self.text.get(self.pos) {
                if !b.is_ascii_digit() {
                    break;
                }
                let digit = b - b'0';
                match frac_digits {
                    0..8 => frac = frac * 10 + i64::from(digit),
                    8 => first_dropped = digit,
                    _ => sticky |= digit != 0,
                }
                frac_digits += 1;
                self.pos += 1;
            }
            let too_long = self.pos - digits_from > MAX_DECIMALS;
            if frac_digits == 0 || too_long || (frac_digits > SCALE as usize && !round_extra_decimals) {
                return None;
            }
        }
        if whole_digits == 0 || !self.terminate(end) {
            return None;
        }
        let kept = frac_digits.min(SCALE as usize);
        let mut value = whole * UNIT + frac * POW10[SCALE as usize - kept];
        if first_dropped > 5 || (first_dropped == 5 && (sticky || value % 2 == 1)) {
            value += 1;
        }
        Some(value)
    }
}

/// Decimals read at most (rust_decimal holds 28 digits in all).
const MAX_DECIMALS: usize = 20;

const POW10: [i64; 9] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<BarColumns> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        std::fs::write(&path, text).unwrap();
        read(&path, None, &mut |_| {}).unwrap()
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
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
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
