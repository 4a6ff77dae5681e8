//! One CSV line into a bar or a trade, by a file's `Layout`: fields cut at commas (quoted fields
//! too), every used field checked, no allocation per row. Both the streaming reader and the
//! backtest's parallel loader read rows here, so a row means the same and fails with the same
//! message on every path.

use std::borrow::Cow;

use rust_decimal::Decimal;

use super::format::{Columns, Layout, SideColumn};
use super::time;
use crate::parse;
use crate::types::{Bar, MarketEvent, Side, Timestamp, Trade};

/// Longest piece of a bad field quoted back in an error.
const QUOTED_BYTES: usize = 40;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// Why a row was refused: the column (0-based) when one field is at fault, and the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    pub column: Option<usize>,
    pub message: String,
}

impl RowError {
    fn row(message: String) -> Self {
        Self { column: None, message }
    }

    /// `line 12, column 3 (high): ...` (the caller adds the file's name).
    pub fn describe(&self, layout: &Layout, line: u64) -> String {
        match self.column {
            Some(c) => format!("line {line}, {}: {}", layout.column_name(c), self.message),
            None => format!("line {line}: {}", self.message),
        }
    }
}

/// The outcome of cutting a line into fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Split {
    Done,
    /// A quoted field runs past the end of the line: the record goes on on the next line.
    OpenQuote,
}

/// Cuts `line` (no newline; a trailing `\r` is dropped) into field ranges. Fields are trimmed
/// of spaces; a quoted field is its text between the quotes (a doubled quote inside is left
/// doubled: no number or time has one, so it only matters in ignored columns).
///
/// Commas are found 16 bytes at a time (SSE2, which every x86_64 has): a call to `memchr` per
/// short field cost more than the rest of the row's parsing (measured: about 40 % of a
/// row of pandas' ISO export went to `memchr`'s set-up). A quote anywhere sends the line to
/// the quote-aware cut.
#[inline]
pub fn split(line: &[u8], fields: &mut Vec<(u32, u32)>) -> Split {
    fields.clear();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    {
        let mut base = 0;
        while base < line.len() {
            // The last chunk overlaps the one before it (or is padded, for a short line): its
            // bytes already seen are masked off.
            let (chunk_at, seen) = if base + 16 <= line.len() {
                (base, 0)
            } else if line.len() >= 16 {
                (line.len() - 16, base - (line.len() - 16))
            } else {
                (0, 0)
            };
            let (commas, quotes) = if line.len() >= 16 {
                commas_and_quotes(line[chunk_at..chunk_at + 16].try_into().expect("16 bytes"))
            } else {
                let mut padded = [0u8; 16];
                padded[..line.len()].copy_from_slice(line);
                commas_and_quotes(&padded)
            };
            let unseen = !0u32 << seen;
            if quotes & unseen != 0 {
                return split_quoted(line, fields);
            }
            let mut rest = commas & unseen;
            while rest != 0 {
                let at = chunk_at + rest.trailing_zeros() as usize;
                fields.push(trimmed(line, start, at));
                start = at + 1;
                rest &= rest - 1;
            }
            base = chunk_at + 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (at, &b) in line.iter().enumerate() {
        if b == b',' {
            fields.push(trimmed(line, start, at));
            start = at + 1;
        } else if b == b'"' {
            return split_quoted(line, fields);
        }
    }
    fields.push(trimmed(line, start, line.len()));
    Split::Done
}

/// Bit i set where byte i is a comma, and where it is a quote.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn commas_and_quotes(chunk: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8};
    // SAFETY: SSE2 is part of every x86_64 target; the chunk holds the 16 bytes loaded, and an
    // unaligned load needs no alignment.
    unsafe {
        let bytes = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
        let commas = _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b',' as i8)));
        let quotes = _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(b'"' as i8)));
        (commas as u32, quotes as u32)
    }
}

/// `split` for a line with quotes.
fn split_quoted(line: &[u8], fields: &mut Vec<(u32, u32)>) -> Split {
    fields.clear();
    let mut start = 0;
    loop {
        let lead = line[start..].iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        if line.get(start + lead) == Some(&b'"') {
            let open = start + lead + 1;
            let mut at = open;
            let close = loop {
                match memchr::memchr(b'"', &line[at..]) {
                    Some(i) if line.get(at + i + 1) == Some(&b'"') => at += i + 2,
                    Some(i) => break at + i,
                    None => return Split::OpenQuote,
                }
            };
            fields.push((open as u32, close as u32));
            match memchr::memchr(b',', &line[close..]) {
                Some(i) => start = close + i + 1,
                None => return Split::Done,
            }
        } else {
            match memchr::memchr(b',', &line[start..]) {
                Some(i) => {
                    fields.push(trimmed(line, start, start + i));
                    start += i + 1;
                }
                None => {
                    fields.push(trimmed(line, start, line.len()));
                    return Split::Done;
                }
            }
        }
    }
}

#[inline(always)]
fn trimmed(line: &[u8], start: usize, end: usize) -> (u32, u32) {
    let field = &line[start..end];
    // Nearly every field has no spaces: two byte checks.
    let spaced = |b: Option<&u8>| b.is_some_and(u8::is_ascii_whitespace);
    if !spaced(field.first()) && !spaced(field.last()) {
        return (start as u32, end as u32);
    }
    let lead = field.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let trail = field[lead..]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    ((start + lead) as u32, (end - trail) as u32)
}

/// Reads rows of one layout.
pub struct RowParser {
    layout: Layout,
    fields: Vec<(u32, u32)>,
    last_date: time::LastDate,
}

impl RowParser {
    pub fn new(layout: Layout) -> Self {
        Self {
            fields: Vec::with_capacity(layout.width),
            layout,
            last_date: time::LastDate::default(),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A whole record (one line, or several when a quoted field holds a newline) as an event.
    pub fn parse(&mut self, record: &[u8]) -> Result<MarketEvent, RowError> {
        if split(record, &mut self.fields) == Split::OpenQuote {
            return Err(RowError::row("a quoted field is not closed".into()));
        }
        self.parse_split(record)
    }

    /// The fields cut by the last `split` of `record`.
    fn parse_split(&mut self, record: &[u8]) -> Result<MarketEvent, RowError> {
        let layout = &self.layout;
        if self.fields.len() != layout.width {
            return Err(RowError::row(format!(
                "expected {} fields, found {}",
                layout.width,
                self.fields.len()
            )));
        }
        let field = |i: usize| {
            let (a, b) = self.fields[i];
            &record[a as usize..b as usize]
        };
        let ts_text = field(layout.ts);
        let nanos = time::parse_cached(ts_text, layout.time_unit, &mut self.last_date).ok_or_else(|| RowError {
            column: Some(layout.ts),
            message: format!(
                "found '{}', expected a time (unix seconds, ms, µs or ns, or an ISO 8601 date or date-time)",
                quote(ts_text)
            ),
        })?;
        let ts = Timestamp::from_nanos(nanos);
        Ok(match layout.columns {
            Columns::Bars {
                open,
                high,
                low,
                close,
                volume,
                trades,
            } => {
                if nanos % NANOS_PER_MILLI != 0 {
                    return Err(RowError {
                        column: Some(layout.ts),
                        message: format!(
                            "found '{}', expected a bar time to the millisecond at most (the store keeps milliseconds)",
                            quote(ts_text)
                        ),
                    });
                }
                let bar = Bar {
                    ts,
                    open: price(field(open), open)?,
                    high: price(field(high), high)?,
                    low: price(field(low), low)?,
                    close: price(field(close), close)?,
                    volume: parse_volume(field(volume), volume, false)?,
                    trades: match trades {
                        Some(i) => count(field(i), i)?,
                        None => 0,
                    },
                };
                check_range(&bar)?;
                MarketEvent::Bar(bar)
            }
            Columns::Trades { price: p, size, side } => MarketEvent::Trade(Trade {
                ts,
                price: price(field(p), p)?,
                size: parse_volume(field(size), size, true)?,
                side: match side {
                    Some(SideColumn::Words(i)) => words_side(field(i), i)?,
                    Some(SideColumn::BuyerIsMaker(i)) => buyer_maker_side(field(i), i)?,
                    None => None,
                },
            }),
        })
    }
}

/// A number as written: plain (`4652.69`) or in exponent form (`1e-05`, as pandas writes small
/// floats), exactly.
pub fn number(text: &[u8]) -> Option<Decimal> {
    if let Some(d) = parse::decimal(text) {
        return Some(d);
    }
    if text.iter().any(|b| matches!(b, b'e' | b'E')) {
        let text = std::str::from_utf8(text).ok()?;
        return Decimal::from_scientific(text).ok();
    }
    None
}

fn price(text: &[u8], column: usize) -> Result<Decimal, RowError> {
    match number(text) {
        // Sign and zero tests are bit checks; comparing to ZERO costs a full decimal compare.
        Some(p) if p.is_sign_positive() && !p.is_zero() => Ok(p),
        Some(_) => Err(found(column, text, "a price above 0")),
        None => Err(found(column, text, "a number like 4652.69")),
    }
}

/// Trades must have a size; a bar may have none (Kraken writes flat bars for quiet minutes).
fn parse_volume(text: &[u8], column: usize, must_be_positive: bool) -> Result<Decimal, RowError> {
    match number(text) {
        Some(v) if v.is_zero() && !must_be_positive => Ok(v),
        Some(v) if v.is_sign_positive() && !v.is_zero() => Ok(v),
        Some(_) if must_be_positive => Err(found(column, text, "a volume above 0")),
        Some(_) => Err(found(column, text, "a volume of 0 or more")),
        None => Err(found(column, text, "a number like 1.25")),
    }
}

/// A trade count: a whole number (`7`, or `7.0` as pandas writes a float column).
fn count(text: &[u8], column: usize) -> Result<u32, RowError> {
    parse::uint(text)
        .or_else(|| {
            number(text)
                .filter(|d| d.fract().is_zero())
                .and_then(|d| i64::try_from(d).ok())
        })
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| found(column, text, "a whole number of trades"))
}

fn check_range(bar: &Bar) -> Result<(), RowError> {
    let less = |a: &Decimal, b: &Decimal| before(a, b);
    if less(&bar.high, &bar.low) {
        return Err(RowError::row(format!("high {} is below low {}", bar.high, bar.low)));
    }
    for (what, p) in [("open", bar.open), ("close", bar.close)] {
        if less(&p, &bar.low) || less(&bar.high, &p) {
            return Err(RowError::row(format!(
                "{what} {p} is outside the bar's range [{}, {}]",
                bar.low, bar.high
            )));
        }
    }
    Ok(())
}

/// `a < b` for two prices: their mantissas brought to one scale and compared as integers,
/// which costs a fifth of rust_decimal's general comparison (four of them on every bar row).
#[inline]
fn before(a: &Decimal, b: &Decimal) -> bool {
    const POW10: [i128; 19] = {
        let mut table = [1i128; 19];
        let mut i = 1;
        while i < 19 {
            table[i] = table[i - 1] * 10;
            i += 1;
        }
        table
    };
    let (sa, sb) = (a.scale() as usize, b.scale() as usize);
    let (ma, mb) = (a.mantissa(), b.mantissa());
    let x = POW10.get(sb.saturating_sub(sa)).and_then(|f| ma.checked_mul(*f));
    let y = POW10.get(sa.saturating_sub(sb)).and_then(|f| mb.checked_mul(*f));
    match (x, y) {
        (Some(x), Some(y)) => x < y,
        _ => a < b,
    }
}

/// Unknown sides are allowed as an empty field.
fn words_side(text: &[u8], column: usize) -> Result<Option<Side>, RowError> {
    match text {
        b"" => Ok(None),
        t if t.eq_ignore_ascii_case(b"buy") || t.eq_ignore_ascii_case(b"b") => Ok(Some(Side::Buy)),
        t if t.eq_ignore_ascii_case(b"sell") || t.eq_ignore_ascii_case(b"s") => Ok(Some(Side::Sell)),
        _ => Err(found(column, text, "buy or sell")),
    }
}

/// Binance's `is_buyer_maker`: the taker sold when the buyer made the book.
fn buyer_maker_side(text: &[u8], column: usize) -> Result<Option<Side>, RowError> {
    match text {
        t if t.eq_ignore_ascii_case(b"true") || t == b"1" => Ok(Some(Side::Sell)),
        t if t.eq_ignore_ascii_case(b"false") || t == b"0" => Ok(Some(Side::Buy)),
        b"" => Ok(None),
        _ => Err(found(column, text, "true or false")),
    }
}

fn found(column: usize, text: &[u8], expected: &str) -> RowError {
    RowError {
        column: Some(column),
        message: format!("found '{}', expected {expected}", quote(text)),
    }
}

/// A field as text for an error message, cut short so a binary file cannot flood the log.
pub fn quote(text: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(&text[..text.len().min(QUOTED_BYTES)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> (Split, Vec<String>) {
        let mut out = Vec::new();
        let split = split(line.as_bytes(), &mut out);
        let texts = out
            .iter()
            .map(|&(a, b)| line[a as usize..b as usize].to_owned())
            .collect();
        (split, texts)
    }

    #[test]
    fn fields_are_cut_at_commas_and_quotes() {
        assert_eq!(fields("1,2,3\r").1, ["1", "2", "3"]);
        assert_eq!(fields(" 1 , 2,3 ").1, ["1", "2", "3"]);
        assert_eq!(fields("a,,b").1, ["a", "", "b"]);
        assert_eq!(fields("").1, [""]);
        assert_eq!(
            fields("\"2017-09-03 00:00:00\",\"4642.39\",1,\"x,y\"").1,
            ["2017-09-03 00:00:00", "4642.39", "1", "x,y"]
        );
        assert_eq!(fields("\"say \"\"hi\"\"\",2").1, ["say \"\"hi\"\"", "2"]);
        assert_eq!(fields("1,\"open").0, Split::OpenQuote);
        assert_eq!(
            fields("1,\"a\nb\",2"),
            (Split::Done, vec!["1".into(), "a\nb".into(), "2".into()])
        );
    }

    /// The vector cut against a plain byte-by-byte one, on lines of every length around the
    /// 16-byte chunks, with and without spaces and quotes.
    #[test]
    fn the_vector_cut_matches_a_plain_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20_000 {
            let len = rng.random_range(0..70);
            let line: String = (0..len)
                .map(|_| match rng.random_range(0..20) {
                    0..=2 => ',',
                    3 => ' ',
                    4 if rng.random_bool(0.2) => '"',
                    _ => char::from(b'0' + rng.random_range(0..10)),
                })
                .collect();
            let mut got = Vec::new();
            let verdict = split(line.as_bytes(), &mut got);
            if line.contains('"') {
                let mut quoted = Vec::new();
                assert_eq!(verdict, split_quoted(line.as_bytes(), &mut quoted), "{line:?}");
                if verdict == Split::Done {
                    assert_eq!(got, quoted, "{line:?}");
                }
                continue;
            }
            let mut want = Vec::new();
            let mut start = 0;
            for (at, b) in line.bytes().enumerate() {
                if b == b',' {
                    want.push(trimmed(line.as_bytes(), start, at));
                    start = at + 1;
                }
            }
            want.push(trimmed(line.as_bytes(), start, line.len()));
            assert_eq!((verdict, got), (Split::Done, want), "{line:?}");
        }
    }

    #[test]
    fn numbers_plain_or_with_an_exponent() {
        assert_eq!(number(b"4652.69"), Some("4652.69".parse().unwrap()));
        assert_eq!(number(b"1e-05"), Some("0.00001".parse().unwrap()));
        assert_eq!(number(b"2.5E3"), Some("2500".parse().unwrap()));
        assert_eq!(number(b"1,5"), None);
        assert_eq!(number(b"nan"), None);
    }
}
