//! Loading a CSV of any layout `market::csv` reads (bars or trades; headers with aliases, pandas,
//! Yahoo, Kraken and Binance exports, `--columns`; unix or ISO times; quoting, CRLF, a BOM) into
//! fixed-point columns, on all cores: the text is read in place (memory-mapped; a gzip file is
//! inflated into memory first), its lines counted and then parsed in pieces, each straight
//! into its rows of the columns, with no allocation per row.
//!
//! Each line is read the quickest way that is sure to read it as the streaming reader would:
//! at once (`bar_line`, vector compares) for the usual `ts,open,high,low,close,volume` shape,
//! else field by field in fixed point, and only where that is unsure (an exponent, a sign, more
//! than 8 decimals, a bad field) by the streaming reader's own row parser (`RowParser`), which
//! also words every error. So it falls back row by row, never for the whole file, except for
//! what a piece of the file cannot decide alone: a quoted field holding a newline, a value the
//! backtester cannot hold in fixed point, or volumes past the 8th decimal summed into coarser
//! bars; those files go to the general path (`load::read_with_engine_reader`).

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::bar_line::{self, POW10, Row, swar_value};
use super::columns::{BarColumns, BarDetail, MAX_WHOLE_DIGITS, SCALE, UNIT, to_fixed};
use nanotrader_market::csv::format::{Columns as LayoutColumns, SideColumn};
use nanotrader_market::csv::time::TimeUnit;
use nanotrader_market::csv::{self, ColumnSpec, Layout, RowError, RowParser, Split, row, time};
use nanotrader_market::{Interval, MarketEvent, SourceError, Timestamp};

/// Big enough that a piece is worth a task, small enough that the cores share the work evenly
/// and progress moves smoothly.
const PIECE_BYTES: usize = 1 << 20;
/// Timestamps beyond this many seconds would overflow nanoseconds.
const MAX_SECS: i64 = i64::MAX / 1_000_000_000;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// What the fast path made of a file.
pub enum FastRead {
    /// The file's bars, at its own interval or merged into the one asked for.
    Bars(Box<Loaded>),
    /// A file only the streaming path can decide (see the module's note).
    General,
}

pub struct Loaded {
    pub bars: BarColumns,
    /// The file's last line (1-based), for messages about the end of the data.
    pub last_line: u64,
}

/// The bars of `text` (a whole file), at `want` or the file's own interval; errors name `name`,
/// the line and the column, as the streaming reader words them.
pub fn read(
    text: &[u8],
    name: &str,
    want: Option<Interval>,
    detail: bool,
    columns: Option<&ColumnSpec>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<FastRead, SourceError> {
    let input_error = |msg: String| SourceError::Input(format!("{name} {msg}"));
    let empty = || SourceError::Input(format!("{name}: empty file (no header or no rows)"));
    let mut start = if text.starts_with(csv::UTF8_BOM) { 3 } else { 0 };
    // The first line that is not blank: the header, or the first row of a headerless file.
    let mut lines_before = 0u64;
    let (first, first_end) = loop {
        if start >= text.len() {
            return Err(empty());
        }
        let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i);
        lines_before += 1;
        if text[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
            break (&text[start..end], end);
        }
        start = (end + 1).min(text.len());
    };
    let mut fields = Vec::new();
    if row::split(first, &mut fields) == Split::OpenQuote {
        return Ok(FastRead::General);
    }
    let texts: Vec<&[u8]> = fields.iter().map(|&(a, b)| &first[a as usize..b as usize]).collect();
    let layout =
        csv::format::detect(&texts, columns).map_err(|msg| input_error(format!("line {lines_before}: {msg}")))?;
    // Rows start after the header, or at the first line of a headerless file.
    let (data_start, first_data_line) = if layout.has_header {
        ((first_end + 1).min(text.len()), lines_before + 1)
    } else {
        (start, lines_before)
    };
    let data = &text[data_start..];
    let bars = layout.kind() == csv::CsvKind::Bars;

    // Lines are counted first, so that each piece knows where its rows go and all of them are
    // parsed at once into columns of the exact length (blank lines leave room, closed after).
    let pieces = split_lines(data, PIECE_BYTES);
    let counts: Vec<usize> = pieces
        .par_iter()
        .map(|piece| count_lines(&data[piece.clone()]))
        .collect();
    let lines: usize = counts.iter().sum();
    let mut cols = Columns::zeroed(lines, if bars { detail } else { false }, !bars);
    let mut outs = Vec::with_capacity(pieces.len());
    let mut rest = cols.slices();
    for &count in &counts {
        let (out, tail) = rest.split_at(count);
        outs.push(out);
        rest = tail;
    }
    let parsed = AtomicU64::new(data_start as u64);
    let shape = Shape::of(&layout, first_row(data));
    let results: Vec<Piece> = pieces
        .par_iter()
        .zip(outs)
        .map(|(piece, out)| {
            let result = parse_piece(data, piece.clone(), &layout, shape, out);
            on_bytes(parsed.fetch_add(piece.len() as u64, Ordering::Relaxed) + piece.len() as u64);
            result
        })
        .collect();

    // The first problem in the file's order: a piece's first row out of order with the last
    // row before it, or a row the piece stopped at.
    let mut line_base = first_data_line;
    let mut prev: Option<i64> = None;
    for (piece, &count) in results.iter().zip(&counts) {
        if let (Some(p), Some((line, ts))) = (prev, piece.first_row)
            && let Err(e) = check_order(&layout, p, ts)
        {
            return Err(input_error(e.describe(&layout, line_base + line as u64)));
        }
        match &piece.stop {
            Some(Stop::General) => return Ok(FastRead::General),
            Some(Stop::Error { line, error }) => {
                return Err(input_error(error.describe(&layout, line_base + *line as u64)));
            }
            None => {}
        }
        prev = piece.last_ts.or(prev);
        line_base += count as u64;
    }
    let rows: usize = results.iter().map(|p| p.rows).sum();
    if rows == 0 {
        return Err(empty());
    }
    cols.close_holes(&results, &counts);
    let last_line = first_data_line + lines as u64 - 1;
    let rounded = results.iter().any(|p| p.rounded);

    let bars = if bars {
        let native = infer_interval(&cols.ts[..cols.ts.len().min(csv::INTERVAL_PROBE_ROWS)]);
        let interval = want.unwrap_or(native);
        if native > interval {
            return Err(SourceError::Input(format!(
                "{name} has {native} bars, coarser than the requested --interval {interval}: use --interval {native} or finer data"
            )));
        }
        let columns = cols.into_bars(native, detail);
        if interval == native {
            columns
        } else if rounded {
            // The general path sums the exact volumes, then rounds: so must this.
            return Ok(FastRead::General);
        } else {
            match merge_bars(&columns, interval) {
                Some(merged) => merged,
                None => return Ok(FastRead::General),
            }
        }
    } else {
        match trades_to_bars(&cols, want.unwrap_or_default(), detail) {
            Some(bars) => bars,
            None => return Ok(FastRead::General),
        }
    };
    Ok(FastRead::Bars(Box::new(Loaded { bars, last_line })))
}

/// The text cut after newlines into ranges of about `size` bytes (the last takes the rest).
fn split_lines(text: &[u8], size: usize) -> Vec<Range<usize>> {
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

/// The smallest step between consecutive bar times (ms), as the streaming reader infers it.
fn infer_interval(ts: &[i64]) -> Interval {
    csv::infer_interval(ts.iter().map(|&t| Timestamp::from_millis(t)))
}

/// Bars strictly ascending, trades never going back; times in the columns' unit.
fn check_order(layout: &Layout, prev: i64, ts: i64) -> Result<(), RowError> {
    let time = |t: i64| match layout.kind() {
        csv::CsvKind::Bars => Timestamp::from_millis(t),
        csv::CsvKind::Trades => Timestamp::from_nanos(t),
    };
    csv::check_order(layout, time(prev), time(ts))
}

/// Merges bars into a coarser interval on its boundaries, as the engine's aggregator does;
/// `None` when a merged volume would not fit.
fn merge_bars(bars: &BarColumns, interval: Interval) -> Option<BarColumns> {
    let step = interval.secs().checked_mul(1000)?;
    let mut out = Columns::zeroed(0, bars.detail.is_some(), false);
    for i in 0..bars.len() {
        let bucket = bars.ts[i].div_euclid(step) * step;
        let fresh = out.ts.last() != Some(&bucket);
        if fresh {
            out.ts.push(bucket);
            out.close.push(bars.close[i]);
        } else {
            *out.close.last_mut()? = bars.close[i];
        }
        if let Some(d) = &bars.detail {
            if fresh {
                out.open.push(d.open[i]);
                out.high.push(d.high[i]);
                out.low.push(d.low[i]);
                out.volume.push(d.volume[i]);
                out.trades.push(d.trades[i]);
            } else {
                let high = out.high.last_mut()?;
                *high = (*high).max(d.high[i]);
                let low = out.low.last_mut()?;
                *low = (*low).min(d.low[i]);
                let volume = out.volume.last_mut()?;
                *volume = volume.checked_add(d.volume[i])?;
                let trades = out.trades.last_mut()?;
                *trades = trades.saturating_add(d.trades[i]);
            }
        }
    }
    Some(out.into_bars(interval, bars.detail.is_some()))
}

/// Trades into bars of `interval` on its boundaries, as the engine's aggregator makes them;
/// `None` when a volume would not fit.
fn trades_to_bars(trades: &Columns, interval: Interval, detail: bool) -> Option<BarColumns> {
    let step_ns = interval.secs().checked_mul(1_000_000_000)?;
    let mut out = Columns::zeroed(0, detail, false);
    let mut last_bucket = None;
    // The bar's volume, summed even when not kept: a bar past the fixed-point range is the
    // general path's error.
    let mut bar_volume = 0i64;
    for ((&ts, &price), &size) in trades.ts.iter().zip(&trades.close).zip(&trades.volume) {
        let bucket = ts.div_euclid(step_ns) * step_ns;
        if last_bucket != Some(bucket) {
            last_bucket = Some(bucket);
            out.ts.push(bucket / NANOS_PER_MILLI);
            out.close.push(price);
            bar_volume = size;
            if detail {
                out.open.push(price);
                out.high.push(price);
                out.low.push(price);
                out.volume.push(size);
                out.trades.push(1);
            }
            continue;
        }
        *out.close.last_mut()? = price;
        bar_volume = bar_volume.checked_add(size)?;
        if detail {
            let high = out.high.last_mut()?;
            *high = (*high).max(price);
            let low = out.low.last_mut()?;
            *low = (*low).min(price);
            *out.volume.last_mut()? = bar_volume;
            let trades = out.trades.last_mut()?;
            *trades = trades.saturating_add(1);
        }
    }
    Some(out.into_bars(interval, detail))
}

/// The parsed columns. Bars: times in ms, the detail ones empty without `detail`. Trades:
/// times in ns, prices in `close`, sizes in `volume`.
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
    fn zeroed(rows: usize, detail: bool, trades: bool) -> Self {
        let room = if detail { rows } else { 0 };
        let columns = Self {
            ts: zeroed_column(rows),
            open: zeroed_column(room),
            high: zeroed_column(room),
            low: zeroed_column(room),
            close: zeroed_column(rows),
            volume: zeroed_column(if detail || trades { rows } else { 0 }),
            trades: zeroed_column(room),
        };
        for column in [
            &columns.ts,
            &columns.open,
            &columns.high,
            &columns.low,
            &columns.close,
            &columns.volume,
        ] {
            super::mapped::advise_huge_capacity(column);
        }
        super::mapped::advise_huge_capacity(&columns.trades);
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

    /// Moves each piece's rows up to close the room its blank lines left.
    fn close_holes(&mut self, pieces: &[Piece], counts: &[usize]) {
        if pieces.iter().zip(counts).all(|(p, &c)| p.rows == c) {
            return;
        }
        let (mut from, mut to) = (0, 0);
        let mut keep: Vec<Range<usize>> = Vec::new();
        for (p, &count) in pieces.iter().zip(counts) {
            keep.push(from..from + p.rows);
            from += count;
        }
        for range in keep {
            let n = range.len();
            for column in self.value_columns() {
                if !column.is_empty() {
                    column.copy_within(range.clone(), to);
                }
            }
            if !self.trades.is_empty() {
                self.trades.copy_within(range.clone(), to);
            }
            to += n;
        }
        for column in self.value_columns() {
            if !column.is_empty() {
                column.truncate(to);
            }
        }
        if !self.trades.is_empty() {
            self.trades.truncate(to);
        }
    }

    /// Every `i64` column (the ones not kept are empty).
    fn value_columns(&mut self) -> [&mut Vec<i64>; 6] {
        [
            &mut self.ts,
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
        ]
    }

    fn into_bars(self, interval: Interval, detail: bool) -> BarColumns {
        BarColumns {
            interval,
            ts: self.ts.into(),
            close: self.close.into(),
            detail: detail.then_some(BarDetail {
                open: self.open.into(),
                high: self.high.into(),
                low: self.low.into(),
                volume: self.volume.into(),
                trades: self.trades.into(),
            }),
        }
    }
}

/// `len` zeros, fresh from the allocator (untouched), with room past them for huge pages to
/// back the column's last rows too (`mapped::huge_capacity`; the room is never touched).
fn zeroed_column<T: Clone + Default>(len: usize) -> Vec<T> {
    let mut column = vec![T::default(); super::mapped::huge_capacity::<T>(len)];
    column.truncate(len);
    column
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
    /// Columns not kept are empty, and stay empty on both sides.
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

    #[inline(always)]
    fn put(&mut self, k: usize, row: &Row) {
        self.ts[k] = row.ts;
        self.close[k] = row.close;
        if !self.open.is_empty() {
            self.open[k] = row.open;
            self.high[k] = row.high;
            self.low[k] = row.low;
            self.trades[k] = row.trades;
        }
        if !self.volume.is_empty() {
            self.volume[k] = row.volume;
        }
    }
}

/// The first line of `data` that is not blank.
fn first_row(data: &[u8]) -> Option<&[u8]> {
    data.split(|&b| b == b'\n')
        .find(|line| line.iter().any(|b| !b.is_ascii_whitespace()))
}

/// Lines in a piece; a last line without its newline counts.
fn count_lines(piece: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', piece).count() + usize::from(!piece.is_empty() && !piece.ends_with(b"\n"))
}

/// How one piece went.
struct Piece {
    rows: usize,
    /// The line (index in the piece) and time of its first row, to check order across pieces.
    first_row: Option<(usize, i64)>,
    last_ts: Option<i64>,
    stop: Option<Stop>,
    /// A volume had decimals past the 8th, rounded.
    rounded: bool,
}

enum Stop {
    /// The row at this line (index in the piece) is refused.
    Error { line: usize, error: RowError },
    /// Only the streaming path can decide the file.
    General,
}

/// What kind of lines a layout has, for the quickest readers.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Shape {
    /// `ts,open,high,low,close,volume[,trades]` with unix times: `bar_line` and the cursor.
    PlainBars {
        with_trades: bool,
        unit: TimeUnit,
    },
    Bars,
    Trades,
}

impl Shape {
    /// From the layout, and the first row for how it writes time.
    fn of(layout: &Layout, first_row: Option<&[u8]>) -> Self {
        let mut fields = Vec::new();
        let unix_time = first_row.is_some_and(|row| {
            row::split(row, &mut fields);
            fields
                .get(layout.ts)
                .is_some_and(|&(a, b)| row[a as usize..b as usize].iter().all(u8::is_ascii_digit))
        });
        match layout.columns {
            LayoutColumns::Bars { trades, .. } if layout.is_plain_bars() && unix_time => Shape::PlainBars {
                with_trades: trades.is_some(),
                unit: layout.time_unit,
            },
            LayoutColumns::Bars { .. } => Shape::Bars,
            LayoutColumns::Trades { .. } => Shape::Trades,
        }
    }
}

/// The lines in `text[piece]` into `out`, one row each (blank lines none); stops at the first
/// row refused or undecidable here.
fn parse_piece(text: &[u8], piece: Range<usize>, layout: &Layout, shape: Shape, out: Slices) -> Piece {
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = bar_line::Avx2::detect() {
        // SAFETY: this CPU has the features the function is compiled for (`detect` saw them).
        return unsafe { parse_piece_avx2(text, piece, layout, shape, out, avx2) };
    }
    parse_piece_with(text, piece, layout, shape, out, bar_line::Baseline)
}

/// The same code compiled for newer x86_64 CPUs: variable shifts, bit scans and vector compares
/// take fewer instructions there.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,popcnt,lzcnt")]
unsafe fn parse_piece_avx2(
    text: &[u8],
    piece: Range<usize>,
    layout: &Layout,
    shape: Shape,
    out: Slices,
    avx2: bar_line::Avx2,
) -> Piece {
    parse_piece_with(text, piece, layout, shape, out, avx2)
}

#[inline(always)]
fn parse_piece_with<M: bar_line::Marker>(
    text: &[u8],
    piece: Range<usize>,
    layout: &Layout,
    shape: Shape,
    mut out: Slices,
    marker: M,
) -> Piece {
    let keep_volume = !out.volume.is_empty();
    let bars = shape != Shape::Trades;
    let careful_text = &text[..piece.end];
    let mut result = Piece {
        rows: 0,
        first_row: None,
        last_ts: None,
        stop: None,
        rounded: false,
    };
    let mut careful: Option<RowParser> = None;
    let mut fields: Vec<(u32, u32)> = Vec::with_capacity(layout.width);
    let mut last_date = time::LastDate::default();
    let plan = roles(layout);
    let mut pos = piece.start;
    let mut line = 0usize;
    let mut prev_ts = i64::MIN;
    let mut k = 0usize;
    let detail = !out.open.is_empty();
    while pos < piece.end {
        // (No closures here: they would not be compiled for the CPU features above.)
        if let Shape::PlainBars { with_trades, unit } = shape {
            // The usual lines back to back, in the tightest loop; any other line leaves it for
            // the steps below, and the loop takes up again after it.
            while let Some(window) = text.get(pos..pos + bar_line::BYTES_NEEDED) {
                let window: &[u8; bar_line::BYTES_NEEDED] = window.try_into().expect("window");
                let at_once = if keep_volume {
                    bar_line::read::<M, true>(window, with_trades, marker)
                } else {
                    bar_line::read::<M, false>(window, with_trades, marker)
                };
                let Some((row, len)) = at_once else { break };
                let Some(ms) = unix_millis(row.ts, unit) else { break };
                // One branch for all the checks (`&`, not `&&`): they nearly always hold.
                let sane = (pos + len <= piece.end)
                    & (ms > prev_ts)
                    & (row.low > 0)
                    & (row.low <= row.open)
                    & (row.low <= row.close)
                    & (row.open <= row.high)
                    & (row.close <= row.high);
                if !sane || k >= out.ts.len() {
                    break;
                }
                if result.first_row.is_none() {
                    result.first_row = Some((line, ms));
                }
                out.ts[k] = ms;
                out.close[k] = row.close;
                if detail {
                    out.open[k] = row.open;
                    out.high[k] = row.high;
                    out.low[k] = row.low;
                    out.volume[k] = row.volume;
                    out.trades[k] = row.trades;
                }
                prev_ts = ms;
                k += 1;
                line += 1;
                pos += len;
            }
            if pos >= piece.end {
                break;
            }
        }
        let mut taken = None;
        if let Shape::PlainBars { with_trades, unit } = shape {
            let at_once = match text.get(pos..pos + bar_line::BYTES_NEEDED) {
                Some(window) if keep_volume => {
                    bar_line::read::<M, true>(window.try_into().expect("window"), with_trades, marker)
                }
                Some(window) => bar_line::read::<M, false>(window.try_into().expect("window"), with_trades, marker),
                None => None,
            };
            if let Some((mut row, len)) = at_once
                && pos + len <= piece.end
                && let Some(ms) = unix_millis(row.ts, unit)
            {
                row.ts = ms;
                taken = Some((row, pos + len));
            }
        }
        if taken.is_none() && !matches!(shape, Shape::PlainBars { .. }) {
            // Any layout in one pass over the line, which also finds its end.
            let mut cursor = Cursor::new(careful_text, pos);
            if let Some(row) = cursor.any_line(&plan, layout.time_unit, bars, keep_volume, &mut last_date) {
                result.rounded |= cursor.rounded;
                taken = Some((row, cursor.pos));
            }
        }
        let (row, next) = match taken {
            Some(found) => found,
            None => {
                let end = memchr::memchr(b'\n', &text[pos..piece.end]).map_or(piece.end, |i| pos + i);
                let next = (end + 1).min(piece.end);
                let this = &text[pos..end];
                if this.iter().all(u8::is_ascii_whitespace) {
                    pos = next;
                    line += 1;
                    continue;
                }
                let mut quick = None;
                if let Shape::PlainBars { with_trades, unit } = shape {
                    let mut cursor = Cursor::new(careful_text, pos);
                    if let Some(mut row) = cursor.line(with_trades, keep_volume)
                        && cursor.pos == next
                        && let Some(ms) = unix_millis(row.ts, unit)
                    {
                        row.ts = ms;
                        result.rounded |= cursor.rounded;
                        quick = Some(row);
                    }
                }
                if quick.is_none() && matches!(shape, Shape::PlainBars { .. }) {
                    // Any layout in one pass over the line (a plain header over other times).
                    let mut cursor = Cursor::new(careful_text, pos);
                    if let Some(row) = cursor.any_line(&plan, layout.time_unit, bars, keep_volume, &mut last_date)
                        && cursor.pos == next
                    {
                        result.rounded |= cursor.rounded;
                        quick = Some(row);
                    }
                }
                if quick.is_none() {
                    // Any layout field by field (spaces, quoted commas).
                    match any_row(this, layout, &mut fields, &mut last_date) {
                        AnyRow::Row(row, rounded) => {
                            result.rounded |= rounded;
                            quick = Some(row);
                        }
                        AnyRow::Unsure => {}
                        AnyRow::OpenQuote => {
                            result.stop = Some(Stop::General);
                            return result;
                        }
                    }
                }
                let row = match quick {
                    Some(row) => row,
                    None => {
                        if memchr::memchr(b'"', this).is_some() && row::split(this, &mut fields) == Split::OpenQuote {
                            result.stop = Some(Stop::General);
                            return result;
                        }
                        let parser = careful.get_or_insert_with(|| RowParser::new(layout.clone()));
                        match parser.parse(this) {
                            Ok(event) => match fixed_row(&event) {
                                Some((row, rounded)) => {
                                    result.rounded |= rounded;
                                    row
                                }
                                None => {
                                    result.stop = Some(Stop::General);
                                    return result;
                                }
                            },
                            Err(error) => {
                                result.stop = Some(Stop::Error { line, error });
                                return result;
                            }
                        }
                    }
                };
                (row, next)
            }
        };
        // One branch for all the checks (`&`, not `&&`): they nearly always hold.
        let sane = if bars {
            (row.ts > prev_ts)
                & (row.low > 0)
                & (row.low <= row.open)
                & (row.low <= row.close)
                & (row.open <= row.high)
                & (row.close <= row.high)
        } else {
            (row.ts >= prev_ts) & (row.close > 0) & (row.volume > 0)
        };
        if !sane {
            // What is wrong with the row itself comes first, as in the streaming reader; then
            // its order.
            let this = &text[pos..next];
            let this = this.strip_suffix(b"\n").unwrap_or(this);
            let error = careful
                .get_or_insert_with(|| RowParser::new(layout.clone()))
                .parse(this)
                .err()
                .or_else(|| check_order(layout, prev_ts, row.ts).err());
            result.stop = Some(match error {
                Some(error) => Stop::Error { line, error },
                None => Stop::General,
            });
            return result;
        }
        if result.first_row.is_none() {
            result.first_row = Some((line, row.ts));
        }
        prev_ts = row.ts;
        out.put(k, &row);
        k += 1;
        line += 1;
        pos = next;
    }
    result.rows = k;
    result.last_ts = (k > 0).then_some(prev_ts);
    result
}

/// A plain unix time in ms, its unit named or told by size as `time` tells it; `None` for a
/// time finer than a millisecond (the careful reader words that) or out of range.
#[inline(always)]
fn unix_millis(value: i64, unit: TimeUnit) -> Option<i64> {
    let per_milli = match unit {
        TimeUnit::Secs => return (value <= MAX_SECS).then(|| value * 1000),
        TimeUnit::Millis => 1,
        TimeUnit::Micros => 1_000,
        TimeUnit::Nanos => NANOS_PER_MILLI,
        TimeUnit::BySize if value < 100_000_000_000 => return (value <= MAX_SECS).then(|| value * 1000),
        TimeUnit::BySize if value < 100_000_000_000_000 => 1,
        TimeUnit::BySize if value < 100_000_000_000_000_000 => 1_000,
        TimeUnit::BySize => NANOS_PER_MILLI,
    };
    (value % per_milli == 0).then(|| value / per_milli)
}

/// What each column of a layout is for, for `Cursor::any_line`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Role {
    Ignored,
    Time,
    Open,
    High,
    Low,
    Close,
    Volume,
    Trades,
    Price,
    Size,
    /// `buy`/`sell`/`b`/`s`, any case, or empty.
    SideWords,
    /// `true`/`false`/`1`/`0`, any case, or empty.
    SideBuyerIsMaker,
}

fn roles(layout: &Layout) -> Vec<Role> {
    let mut roles = vec![Role::Ignored; layout.width];
    roles[layout.ts] = Role::Time;
    match layout.columns {
        LayoutColumns::Bars {
            open,
            high,
            low,
            close,
            volume,
            trades,
        } => {
            for (i, role) in [
                (open, Role::Open),
                (high, Role::High),
                (low, Role::Low),
                (close, Role::Close),
                (volume, Role::Volume),
            ] {
                roles[i] = role;
            }
            if let Some(i) = trades {
                roles[i] = Role::Trades;
            }
        }
        LayoutColumns::Trades { price, size, side } => {
            roles[price] = Role::Price;
            roles[size] = Role::Size;
            match side {
                Some(SideColumn::Words(i)) => roles[i] = Role::SideWords,
                Some(SideColumn::BuyerIsMaker(i)) => roles[i] = Role::SideBuyerIsMaker,
                None => {}
            }
        }
    }
    roles
}

/// Where the field at `from` ends: the first `end`, newline or quote (a quote is for the
/// slower readers), or the end of the text. Sixteen bytes at a time with SSE2 (a byte loop took
/// a tenth of a pandas row's instructions on its 19-byte times).
#[inline(always)]
fn field_end(text: &[u8], mut from: usize, end: u8) -> usize {
    #[cfg(target_arch = "x86_64")]
    while from + 16 <= text.len() {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is part of every x86_64 target; 16 bytes from `from` are in the text, and
        // an unaligned load needs no alignment.
        let hits = unsafe {
            let bytes = _mm_loadu_si128(text.as_ptr().add(from).cast::<__m128i>());
            let stops = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(bytes, _mm_set1_epi8(end as i8)),
                    _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'\n' as i8)),
                ),
                _mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8)),
            );
            _mm_movemask_epi8(stops) as u32
        };
        if hits != 0 {
            return from + hits.trailing_zeros() as usize;
        }
        from += 16;
    }
    text[from..]
        .iter()
        .position(|&b| b == end || b == b'\n' || b == b'"')
        .map_or(text.len(), |at| from + at)
}

/// A side the careful reader takes (`row::words_side`, `row::buyer_maker_side`).
fn valid_side(field: &[u8], role: Role) -> bool {
    let is = |word: &[u8]| field.eq_ignore_ascii_case(word);
    field.is_empty()
        || match role {
            Role::SideWords => is(b"buy") || is(b"b") || is(b"sell") || is(b"s"),
            _ => is(b"true") || is(b"false") || field == b"1" || field == b"0",
        }
}

/// A row the quick field-by-field reader made, or why it did not.
enum AnyRow {
    /// The row, and whether a volume was rounded past its 8th decimal.
    Row(Row, bool),
    /// Not sure: the careful reader decides.
    Unsure,
    /// A quoted field runs on past the line.
    OpenQuote,
}

/// A line of any layout read in fixed point, field by field: plain numbers and the times
/// `time` reads. Bars get times in ms, trades in ns (price in `close`, size in `volume`).
#[inline]
fn any_row(line: &[u8], layout: &Layout, fields: &mut Vec<(u32, u32)>, last_date: &mut time::LastDate) -> AnyRow {
    if row::split(line, fields) == Split::OpenQuote {
        return AnyRow::OpenQuote;
    }
    if fields.len() != layout.width {
        return AnyRow::Unsure;
    }
    let field = |i: usize| {
        let (a, b) = fields[i];
        &line[a as usize..b as usize]
    };
    let Some(nanos) = time::parse_cached(field(layout.ts), layout.time_unit, last_date) else {
        return AnyRow::Unsure;
    };
    let built = match layout.columns {
        LayoutColumns::Bars {
            open,
            high,
            low,
            close,
            volume,
            trades,
        } => (|| {
            if nanos % NANOS_PER_MILLI != 0 {
                return None;
            }
            let (volume, rounded) = fixed_volume(field(volume))?;
            let row = Row {
                ts: nanos / NANOS_PER_MILLI,
                open: fixed(field(open))?,
                high: fixed(field(high))?,
                low: fixed(field(low))?,
                close: fixed(field(close))?,
                volume,
                trades: match trades {
                    Some(i) => u32::try_from(plain_uint(field(i))?).ok()?,
                    None => 0,
                },
            };
            Some((row, rounded))
        })(),
        LayoutColumns::Trades { price, size, side } => (|| {
            // The side only needs to be valid.
            let side_ok = match side {
                Some(SideColumn::Words(i)) => valid_side(field(i), Role::SideWords),
                Some(SideColumn::BuyerIsMaker(i)) => valid_side(field(i), Role::SideBuyerIsMaker),
                None => true,
            };
            let row = Row {
                ts: nanos,
                close: fixed(field(price))?,
                volume: fixed(field(size))?,
                ..Row::default()
            };
            side_ok.then_some((row, false))
        })(),
    };
    match built {
        Some((row, rounded)) => AnyRow::Row(row, rounded),
        None => AnyRow::Unsure,
    }
}

/// An event of the careful reader in fixed point; `None` when a value cannot be held so (the
/// general path says which).
fn fixed_row(event: &MarketEvent) -> Option<(Row, bool)> {
    match event {
        MarketEvent::Bar(b) => {
            let volume = b.volume.round_dp(SCALE);
            Some((
                Row {
                    ts: b.ts.millis(),
                    open: to_fixed(b.open)?,
                    high: to_fixed(b.high)?,
                    low: to_fixed(b.low)?,
                    close: to_fixed(b.close)?,
                    volume: to_fixed(volume)?,
                    trades: b.trades,
                },
                volume != b.volume,
            ))
        }
        MarketEvent::Trade(t) => Some((
            Row {
                ts: t.ts.nanos(),
                close: to_fixed(t.price)?,
                volume: to_fixed(t.size)?,
                ..Row::default()
            },
            false,
        )),
        _ => None,
    }
}

/// Plain digits (at most 18).
#[inline]
fn plain_uint(field: &[u8]) -> Option<i64> {
    if field.is_empty() || field.len() > 18 {
        return None;
    }
    digits_value(field)
}

/// A plain price (`123`, `123.45`, at most 10 whole digits and 8 decimals) in 1e-8 units.
#[inline]
fn fixed(field: &[u8]) -> Option<i64> {
    let (whole, frac) = split_number(field)?;
    if frac.len() > SCALE as usize {
        return None;
    }
    Some(whole * UNIT + digits_value(frac)? * POW10[SCALE as usize - frac.len()])
}

/// A volume: as a price, but decimals past the 8th are rounded half to even (float noise in
/// exported data), as the general path does; the flag says whether any were.
#[inline]
fn fixed_volume(field: &[u8]) -> Option<(i64, bool)> {
    let (whole, frac) = split_number(field)?;
    if frac.len() <= SCALE as usize {
        return Some((
            whole * UNIT + digits_value(frac)? * POW10[SCALE as usize - frac.len()],
            false,
        ));
    }
    if frac.len() > MAX_DECIMALS {
        return None;
    }
    let kept = digits_value(&frac[..SCALE as usize])?;
    let first_dropped = frac[SCALE as usize].wrapping_sub(b'0');
    let rest = &frac[SCALE as usize + 1..];
    if first_dropped > 9 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sticky = rest.iter().any(|&b| b != b'0');
    let up = first_dropped > 5 || (first_dropped == 5 && (sticky || kept % 2 == 1));
    let rounded = first_dropped != 0 || sticky;
    Some((whole * UNIT + kept + i64::from(up), rounded))
}

/// The whole part's value and the decimals' bytes of `123.45` (checked as digits later); both
/// parts must have digits when there is a dot, the whole part at most `MAX_WHOLE_DIGITS`.
#[inline]
fn split_number(field: &[u8]) -> Option<(i64, &[u8])> {
    let mut whole = 0i64;
    for (i, &b) in field.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            whole = whole * 10 + i64::from(digit);
            if i >= MAX_WHOLE_DIGITS {
                return None;
            }
            continue;
        }
        let frac = &field[i + 1..];
        return (b == b'.' && i > 0 && !frac.is_empty()).then_some((whole, frac));
    }
    (!field.is_empty()).then_some((whole, &[][..]))
}

/// ASCII digits (at most 18) as a number; `None` for anything else.
#[inline]
fn digits_value(digits: &[u8]) -> Option<i64> {
    let mut value = 0i64;
    for &b in digits {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(value)
}

struct Cursor<'a> {
    text: &'a [u8],
    pos: usize,
    /// A volume had decimals past the 8th, rounded.
    rounded: bool,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a [u8], pos: usize) -> Self {
        Self {
            text,
            pos,
            rounded: false,
        }
    }

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

    /// A line of any layout in one pass, each column read as its role needs (numbers eight
    /// digits at a time, times by `time`, other columns skipped): bars get times in ms, trades
    /// in ns (price in `close`, size in `volume`). `None` for anything it is not sure of (the
    /// slower readers decide).
    #[inline(always)]
    fn any_line(
        &mut self,
        roles: &[Role],
        unit: TimeUnit,
        bars: bool,
        keep_volume: bool,
        last_date: &mut time::LastDate,
    ) -> Option<Row> {
        let mut row = Row::default();
        let last = roles.len() - 1;
        for (i, &role) in roles.iter().enumerate() {
            let end = if i == last { b'\n' } else { b',' };
            if self.text.get(self.pos) == Some(&b'"') {
                // A quoted field: its text between the quotes, with no quote inside.
                let open = self.pos + 1;
                let close = open + memchr::memchr(b'"', self.text.get(open..)?)?;
                let inner = &self.text[open..close];
                self.pos = close + 1;
                if !self.terminate(end) {
                    return None;
                }
                match role {
                    Role::Ignored => {}
                    Role::SideWords | Role::SideBuyerIsMaker => {
                        if !valid_side(inner, role) {
                            return None;
                        }
                    }
                    Role::Time => row.ts = self.time(inner, unit, bars, last_date)?,
                    Role::Trades => row.trades = u32::try_from(plain_uint(inner)?).ok()?,
                    Role::Volume | Role::Size => {
                        let (value, rounded) = fixed_volume(inner)?;
                        if rounded && role == Role::Size {
                            return None;
                        }
                        self.rounded |= rounded;
                        row.volume = value;
                    }
                    Role::Open => row.open = fixed(inner)?,
                    Role::High => row.high = fixed(inner)?,
                    Role::Low => row.low = fixed(inner)?,
                    Role::Close | Role::Price => row.close = fixed(inner)?,
                }
                continue;
            }
            match role {
                Role::Ignored | Role::SideWords | Role::SideBuyerIsMaker | Role::Time => {
                    let start = self.pos;
                    let stop = field_end(self.text, start, end);
                    self.pos = stop;
                    let field = self.text[start..stop]
                        .strip_suffix(b"\r")
                        .unwrap_or(&self.text[start..stop]);
                    if !self.terminate(end) {
                        return None;
                    }
                    match role {
                        Role::Time => row.ts = self.time(field, unit, bars, last_date)?,
                        // Valid sides only (the careful reader words the others).
                        Role::SideWords | Role::SideBuyerIsMaker if !valid_side(field, role) => return None,
                        _ => {}
                    }
                }
                Role::Open => row.open = self.fixed(end)?,
                Role::High => row.high = self.fixed(end)?,
                Role::Low => row.low = self.fixed(end)?,
                Role::Close | Role::Price => row.close = self.fixed(end)?,
                // Sizes must not round: trades sum into bars exactly on the general path.
                Role::Size => row.volume = self.number::<true>(end, false)?,
                Role::Volume if keep_volume => row.volume = self.volume::<true>(end)?,
                Role::Volume => {
                    self.volume::<false>(end)?;
                }
                Role::Trades => row.trades = u32::try_from(self.uint(end)?).ok()?,
            }
        }
        Some(row)
    }

    /// A time field in the columns' unit: ms for bars (finer is the careful reader's error), ns
    /// for trades.
    #[inline(always)]
    fn time(&self, field: &[u8], unit: TimeUnit, bars: bool, last_date: &mut time::LastDate) -> Option<i64> {
        let nanos = time::parse_cached(field, unit, last_date)?;
        if !bars {
            return Some(nanos);
        }
        (nanos % NANOS_PER_MILLI == 0).then_some(nanos / NANOS_PER_MILLI)
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
        self.rounded |= first_dropped != 0 || sticky;
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

    /// The bars when this path takes the file (`None` when it leaves it to the streaming path
    /// or refuses it).
    fn parse_keeping(text: &str, detail: bool) -> Option<BarColumns> {
        match read(text.as_bytes(), "bars.csv", None, detail, None, &|_| {}) {
            Ok(FastRead::Bars(loaded)) => Some(loaded.bars),
            _ => None,
        }
    }

    /// This path and the streaming reader (with the engine's aggregator) give the same bars or
    /// the same error; `true` when this path decided the file itself.
    fn agrees_with_the_streaming_reader(text: &str, want: Option<Interval>) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bars.csv");
        std::fs::write(&path, text).unwrap();
        let name = path.display().to_string();
        let hidden = indicatif::ProgressBar::hidden();
        let streaming = crate::load::read_with_engine_reader(
            &path,
            &name,
            false,
            want,
            &nanotrader_market::CsvOptions::default(),
            &hidden,
        );
        let streaming = streaming.map(|(bars, _)| bars).map_err(|e| e.to_string());
        match read(text.as_bytes(), &name, want, true, None, &|_| {}) {
            Ok(FastRead::Bars(loaded)) => {
                assert_eq!(Ok(loaded.bars), streaming, "{text:?}");
                true
            }
            Ok(FastRead::General) => false,
            Err(e) => {
                assert_eq!(Err(e.to_string()), streaming, "{text:?}");
                true
            }
        }
    }

    #[test]
    fn reads_plain_bar_files() {
        let cols = parse("ts,open,high,low,close,volume\n60,1.5,2,1,2,0.00000001\r\n120,2,2,2,2,0\n").unwrap();
        assert_eq!(cols.interval, Interval::ONE_MINUTE);
        assert_eq!(cols.ts, [60_000, 120_000]);
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
            let mut cursor = Cursor::new(text.as_bytes(), 0);
            let end = if tail == "," { b',' } else { b'\n' };
            assert_eq!(cursor.uint(end), want_uint, "uint {text:?}");

            let mut cursor = Cursor::new(field.as_bytes(), 0);
            let got = cursor.fixed(end);
            let body = field.trim_end_matches(tail);
            let plain = !whole.is_empty()
                && whole.len() <= MAX_WHOLE_DIGITS
                && !(field.contains('.') && body.ends_with('.'))
                && body.split('.').nth(1).is_none_or(|f| !f.is_empty() && f.len() <= 8)
                && matches!(tail, "," | "\n" | "\r\n" | "");
            let want = plain.then(|| {
                let d: rust_decimal::Decimal = body.parse().unwrap();
                crate::columns::to_fixed(d).unwrap()
            });
            assert_eq!(got, want, "fixed {field:?}");
            // With more text after the field, as in a file: the same verdict, and the cursor
            // just past the terminator. (A field ended by the end of the text would run on.)
            if tail.is_empty() {
                continue;
            }
            let padded = format!("{field}12.5,7\n9876543210,1.25\n");
            let mut cursor = Cursor::new(padded.as_bytes(), 0);
            let got = cursor.fixed(end);
            assert_eq!(got, want, "fixed {padded:?}");
            if got.is_some() {
                assert_eq!(cursor.pos, field.len(), "{padded:?}");
            }
            // A volume only checked (not kept) gets the same verdict as one converted.
            let verdict = |convert: bool| {
                let mut cursor = Cursor::new(padded.as_bytes(), 0);
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
                let mut cursor = Cursor::new(text.as_bytes(), 0);
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
            let mut cursor = Cursor::new(text.as_bytes(), 0);
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

    /// Odd files, each decided by this path as the streaming reader decides it (bars or the
    /// same error), but for the few only the streaming path can decide.
    #[test]
    fn odd_files_read_as_the_streaming_reader_reads_them() {
        const H: &str = "ts,open,high,low,close,volume\n";
        let decided_here = [
            String::new(),
            "\n \n".into(),
            H.into(),
            "ts,open,high,low,close\n60,1,1,1,1\n".into(),
            "time,open,high,low,close,volume\n60,1,1,1,1,1\n".into(),
            format!("{H}60,1,1,1,1,1\n60,1,1,1,1,1\n"),
            format!("{H}120,1,1,1,1,1\n60,1,1,1,1,1\n"),
            format!("{H}60,1,1,1,x,1\n"),
            format!("{H}60,1,1,1,1e0,1\n"),
            format!("{H}60,1,1,1,1,1e-8\n"),
            format!("{H}60,1,1,1,1,0.000000000000000000001\n"),
            format!("{H}60,1, 1,1,1,1\n"),
            format!("{H}60,1,1,1,1,1,1\n"),
            format!("{H}60,1,1,1,1\n"),
            format!("{H}60,1,1,2,1,1\n"),
            format!("{H}60,0,1,0,1,1\n"),
            format!("{H}60,1,1,1,1,1\n\n120,1,1,1,1,1\n\n"),
            format!("{H}90,1,1,1,1,1\n150,1,1,1,1,1\n"),
            format!("{H}60,1.,1,1,1,1\n"),
            format!("{H}60,-1,1,1,1,1\n"),
            format!("{H}60,1,1,1,1,1x\n"),
            format!("{H}60,1,1,1,1,.5\n"),
            format!("{H}60,1,1,1,1,1.000000001\n120,1,1,1,1,12345678901\n"),
            format!("{H}60,\"1\",1,1,1,1\n"),
            format!("{H}2017-09-03 00:00:20,1,1,1,1,1\n2017-09-03T00:01:20Z,1,2,1,2,0\n"),
            format!("{H}1504396800000,1,1,1,1,1\n1504396860000,1,1,1,1,1\n"),
            format!("{H}1504396800.5,1,1,1,1,1\n"),
            "Date,Open,High,Low,Close,Adj Close,Volume\n2017-09-03,4585,4714,4469,4582,4582,1\n".into(),
            ",open,high,low,close,volume\n2017-09-03 00:00:00+00:00,1,1,1,1,1.5\n".into(),
            "1381095240,122,123,121,122.5,4.2,7\n1381095300,122,123,121,122.5,4.2,7\n".into(),
            "ts_ns,price,volume,side\n1000000000,1,1,buy\n61000000000,2,0.5,sell\n61000000000,3,1,\n".into(),
            "ts_ns,price,volume,side\n1000000000,1,1,up\n".into(),
            "ts_ns,price,volume,side\n2000000000,1,1,buy\n1000000000,1,1,buy\n".into(),
            "1381095255.6133,122.5,0.1\n1381095256,123,0.2\n".into(),
        ];
        for text in &decided_here {
            assert!(
                agrees_with_the_streaming_reader(text, None),
                "left to the streaming path: {text:?}"
            );
            // Merged into 5-minute bars: the same, where it decides (volumes past the 8th
            // decimal are summed exactly by the streaming path).
            agrees_with_the_streaming_reader(text, Interval::from_secs(300));
        }
        // Only the streaming path can decide these: a quoted newline, a price past 8 decimals,
        // and volumes past the 8th decimal summed into coarser bars.
        for (text, want) in [
            (format!("{H}60,1,1,1,1,1,\"a\nb\"\n"), None),
            (format!("{H}60,1,1,0.000000001,1,1\n"), None),
            (
                format!("{H}60,1,1,1,1,0.123456789\n120,1,1,1,1,1\n"),
                Interval::from_secs(300),
            ),
        ] {
            assert!(!agrees_with_the_streaming_reader(&text, want), "{text:?}");
        }
        let light = parse_keeping("ts,open,high,low,close,volume\n60,1,2,1,2,0.123456789\n", false).unwrap();
        assert_eq!((light.close.to_vec(), light.detail), (vec![200_000_000], None));
    }

    /// Random files of random layouts, times, quoting and (sometimes bad) fields: this path
    /// and the streaming reader always agree, bar for bar or error for error.
    #[test]
    fn random_files_read_as_the_streaming_reader_reads_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(23);
        let mut decided = 0;
        for round in 0..400 {
            let trades = rng.random_bool(0.3);
            let quote = rng.random_bool(0.2);
            let q = |s: String, rng: &mut rand_chacha::ChaCha8Rng| {
                if quote && rng.random_bool(0.7) {
                    format!("\"{s}\"")
                } else {
                    s
                }
            };
            let header = if trades {
                [
                    "ts_ns,price,volume,side",
                    "time,Price,qty,is_buyer_maker,extra",
                    "Timestamp,price,size",
                ][rng.random_range(0..3)]
            } else {
                [
                    "ts,open,high,low,close,volume",
                    ",open,high,low,close,volume",
                    "Date,Open,High,Low,Close,Adj Close,Volume",
                    "timestamp,open,high,low,close,volume,trades,quote",
                ][rng.random_range(0..4)]
            };
            let names: Vec<&str> = header.split(',').collect();
            let mut text = String::new();
            if rng.random_bool(0.1) {
                text.push('\u{feff}');
            }
            text.push_str(
                &names
                    .iter()
                    .map(|n| q(n.to_string(), &mut rng))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            text.push('\n');
            let mut t: i64 = 1_500_000_000 + rng.random_range(0..60);
            let rows = rng.random_range(1..60);
            let crlf = rng.random_bool(0.2);
            for _ in 0..rows {
                t += [60, 60, 60, 120, 61, 0, 59][rng.random_range(0..7)];
                let time = match (rng.random_range(0..6), names[0]) {
                    (_, "ts_ns") => format!("{}", t * 1_000_000_000 + rng.random_range(0..3) * 1_000_000),
                    (0, _) => format!("{}", t * 1000),
                    (1, _) => chrono::DateTime::from_timestamp(t, 0)
                        .unwrap()
                        .format("%Y-%m-%d %H:%M:%S")
                        .to_string(),
                    (2, _) => chrono::DateTime::from_timestamp(t, 0)
                        .unwrap()
                        .format("%Y-%m-%dT%H:%M:%S+00:00")
                        .to_string(),
                    (3, _) if rng.random_bool(0.1) => format!("{t}.5"),
                    _ => format!("{t}"),
                };
                let price = |rng: &mut rand_chacha::ChaCha8Rng| -> String {
                    match rng.random_range(0..40) {
                        0 => "x".into(),
                        1 => "-1".into(),
                        2 => "1e2".into(),
                        3 => " 7.5".into(),
                        4 => "0.000000001".into(),
                        _ => format!("{}.{}", rng.random_range(1..200), rng.random_range(0..100)),
                    }
                };
                let mut fields = vec![time];
                if trades {
                    fields.push(price(&mut rng));
                    fields.push(["0.5", "1", "0.123456789", "0", "2.25"][rng.random_range(0..5)].to_string());
                    if names.len() > 3 {
                        fields.push(["buy", "sell", "", "True", "false", "up"][rng.random_range(0..6)].to_string());
                    }
                    if names.len() > 4 {
                        fields.push("z".into());
                    }
                } else {
                    let (lo, hi) = (rng.random_range(100..200), rng.random_range(200..300));
                    let open = if rng.random_bool(0.95) {
                        format!("{}", rng.random_range(lo..=hi))
                    } else {
                        price(&mut rng)
                    };
                    fields.push(open);
                    fields.push(format!("{hi}"));
                    fields.push(format!("{lo}"));
                    let close = if rng.random_bool(0.95) {
                        format!("{}.5", rng.random_range(lo..hi))
                    } else {
                        price(&mut rng)
                    };
                    if names.len() == 7 {
                        fields.push(close.clone());
                    }
                    fields.push(close);
                    fields.push(["1.5", "0", "218102.59507500002", "1e-05", "3"][rng.random_range(0..5)].to_string());
                    if names.len() == 8 {
                        fields.push(["7", "7.0", "x"][rng.random_range(0..3)].to_string());
                        fields.push("1".into());
                    }
                }
                if rng.random_bool(0.02) {
                    fields.pop();
                }
                let line: Vec<String> = fields.into_iter().map(|f| q(f, &mut rng)).collect();
                text.push_str(&line.join(","));
                text.push_str(if crlf { "\r\n" } else { "\n" });
                if rng.random_bool(0.03) {
                    text.push('\n');
                }
            }
            let want = [None, Interval::from_secs(300)][round % 2];
            decided += usize::from(agrees_with_the_streaming_reader(&text, want));
        }
        assert!(decided > 300, "only {decided} of 400 decided by the parallel path");
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
        assert_eq!((cols.ts[199_999], cols.close[199_999]), (12_000_000_000, UNIT));
    }

    #[test]
    fn big_files_parse_in_parallel_pieces_and_check_order_across_them() {
        let mut text = String::from("ts,open,high,low,close,volume\n");
        for i in 0..100_000i64 {
            text.push_str(&format!("{},{}.5,{}.5,{}.5,{}.5,1\n", 60 * (i + 1), i, i, i, i));
        }
        let cols = parse(&text).unwrap();
        assert_eq!(cols.len(), 100_000);
        assert!(cols.ts.windows(2).all(|w| w[1] == w[0] + 60_000));
        assert_eq!(cols.close[99_999], 99_999 * UNIT + UNIT / 2);
        // Swap two rows in the middle, where a parallel cut may fall: the same error, on the
        // same line, as the streaming reader's.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.swap(50_000, 50_001);
        assert_eq!(parse(&lines.join("\n")), None);
        assert!(agrees_with_the_streaming_reader(&lines.join("\n"), None));
    }

    /// The shapes of the benchmark's file: times off the minute, missing minutes, an extra
    /// column, ISO times, blank lines; over several pieces, with a bad row far down.
    #[test]
    fn every_shape_over_many_pieces_reads_as_the_streaming_reader_reads_it() {
        let mut plain = String::from("ts,open,high,low,close,volume\n");
        let mut iso = String::from("Date,Open,High,Low,Close,Adj Close,Volume,Trades\n");
        let mut t = 1_504_396_820i64;
        for i in 0..60_000i64 {
            // About one minute in a hundred is missing.
            t += if i % 97 == 0 { 120 } else { 60 };
            let close = 4000 + (i * 7919) % 500;
            let row = format!(
                "{},{}.25,{}.5,{},{}.25,{}.125",
                t,
                close,
                close + 1,
                close - 1,
                close,
                i % 13
            );
            plain.push_str(&row);
            plain.push('\n');
            let when = chrono::DateTime::from_timestamp(t, 0)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S");
            let fields: Vec<&str> = row.split(',').collect();
            iso.push_str(&format!(
                "{when},{},{},{},{},{},{},{}\r\n",
                fields[1],
                fields[2],
                fields[3],
                fields[4],
                fields[4],
                fields[5],
                i % 5
            ));
            if i == 20_000 {
                plain.push('\n');
                iso.push_str("\r\n");
            }
        }
        for text in [&plain, &iso] {
            let cols = parse(text).unwrap();
            assert_eq!(cols.len(), 60_000);
            assert_eq!(cols.ts[0] % 60_000, 20_000, "bars keep their own time");
            assert!(agrees_with_the_streaming_reader(text, None));
            assert!(agrees_with_the_streaming_reader(text, Interval::from_secs(300)));
            // A bad row far down: the same message and line as the streaming reader's.
            let bad = text.replacen(".125", ".12x", 5).replacen(".12x", ".125", 4);
            assert!(agrees_with_the_streaming_reader(&bad, None));
        }
    }
}
