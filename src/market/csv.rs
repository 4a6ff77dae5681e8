//! Streaming reader for bar and trade CSV files: finds the layout from the header (or from a
//! numeric first line, for Kraken's headerless exports), checks every row and yields
//! `MarketEvent`s with no allocation per row.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use ::csv::{ByteRecord, ReaderBuilder};
use rust_decimal::Decimal;

use super::parse;
use super::source::SourceError;
use super::types::{Bar, Interval, MarketEvent, Side, Timestamp, Trade};

/// Bar rows read ahead when opening, to infer the interval before the first row is used.
const INTERVAL_PROBE_ROWS: usize = 1_000;
/// Skipped rows warned about one by one; later ones are only counted.
const WARNED_BAD_ROWS: u64 = 5;
const BUFFER_BYTES: usize = 64 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Longest piece of a bad field quoted back in an error.
const QUOTED_BYTES: usize = 40;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CsvKind {
    Bars,
    Trades,
}

/// How a trade file writes time.
#[derive(Copy, Clone, Debug)]
enum TsUnit {
    /// `ts_ns`: integer nanoseconds.
    Nanos,
    /// Kraken time and sales: unix seconds, maybe with a fraction.
    Secs,
}

/// Column positions, found once from the header.
#[derive(Copy, Clone, Debug)]
enum Layout {
    Bars {
        ts: usize,
        open: usize,
        high: usize,
        low: usize,
        close: usize,
        volume: usize,
        trades: Option<usize>,
    },
    Trades {
        ts: usize,
        unit: TsUnit,
        price: usize,
        volume: usize,
        side: Option<usize>,
    },
}

/// Yields the rows of one CSV file as `MarketEvent::Bar` or `MarketEvent::Trade`, in order.
pub struct CsvReader {
    name: String,
    rows: ::csv::Reader<Box<dyn Read + Send>>,
    record: ByteRecord,
    layout: Layout,
    /// Fields every row must have (the header's or the first line's count).
    width: usize,
    prev_ts: Option<Timestamp>,
    /// Rows parsed while opening (interval probe), handed out before reading on.
    lookahead: VecDeque<MarketEvent>,
    bar_interval: Option<Interval>,
    skip_bad_rows: bool,
    skipped: u64,
    last_row_line: u64,
}

impl CsvReader {
    /// Opens a file; errors name it as given.
    pub fn open(path: impl AsRef<Path>, skip_bad_rows: bool) -> Result<Self, SourceError> {
        let name = path.as_ref().display().to_string();
        match File::open(path.as_ref()) {
            Ok(file) => Self::from_reader(name, file, skip_bad_rows),
            Err(e) => Err(cannot_read(&name, &e)),
        }
    }

    /// Reads from any byte stream (e.g. data built into the binary); `name` is used in errors.
    pub fn from_reader(
        name: impl Into<String>,
        input: impl Read + Send + 'static,
        skip_bad_rows: bool,
    ) -> Result<Self, SourceError> {
        let name = name.into();
        let mut input = BufReader::with_capacity(BUFFER_BYTES, input);
        // Spreadsheets save UTF-8 with a BOM, which would hide the first header name.
        if input
            .fill_buf()
            .map_err(|e| cannot_read(&name, &e))?
            .starts_with(UTF8_BOM)
        {
            input.consume(UTF8_BOM.len());
        }
        let input: Box<dyn Read + Send> = Box::new(input);
        let mut rows = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(BUFFER_BYTES)
            .from_reader(input);
        let mut record = ByteRecord::new();
        if !rows.read_byte_record(&mut record).map_err(|e| csv_error(&name, e))? {
            return Err(empty_file(&name));
        }
        let line = record.position().map_or(1, |p| p.line());
        let (layout, has_header) =
            detect(&record).map_err(|msg| SourceError::Input(format!("{name} line {line}: {msg}")))?;
        let mut reader = Self {
            name,
            rows,
            width: record.len(),
            record,
            layout,
            prev_ts: None,
            lookahead: VecDeque::new(),
            bar_interval: None,
            skip_bad_rows,
            skipped: 0,
            last_row_line: 0,
        };
        if !has_header && let Some(ev) = reader.take_record()? {
            reader.lookahead.push_back(ev);
        }
        reader.prime()?;
        Ok(reader)
    }

    /// Whether the file holds bars or trades.
    pub fn kind(&self) -> CsvKind {
        match self.layout {
            Layout::Bars { .. } => CsvKind::Bars,
            Layout::Trades { .. } => CsvKind::Trades,
        }
    }

    /// The bar interval inferred from the first rows; `None` for trade files.
    pub fn bar_interval(&self) -> Option<Interval> {
        self.bar_interval
    }

    /// The line of the last good row read so far (1-based), for messages about the end of the data.
    pub fn last_row_line(&self) -> u64 {
        self.last_row_line
    }

    /// Bad rows skipped so far (only with `skip_bad_rows`).
    pub fn skipped_rows(&self) -> u64 {
        self.skipped
    }

    /// The next row as an event, `Ok(None)` at the end of the file.
    pub fn read_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        if let Some(ev) = self.lookahead.pop_front() {
            return Ok(Some(ev));
        }
        self.read_row()
    }

    /// Reads ahead so an empty file fails at open and bar files know their interval.
    fn prime(&mut self) -> Result<(), SourceError> {
        let wanted = match self.layout {
            Layout::Bars { .. } => INTERVAL_PROBE_ROWS,
            Layout::Trades { .. } => 1,
        };
        while self.lookahead.len() < wanted {
            match self.read_row()? {
                Some(ev) => self.lookahead.push_back(ev),
                None => break,
            }
        }
        if self.lookahead.is_empty() {
            return Err(match self.skipped {
                0 => empty_file(&self.name),
                n => SourceError::Input(format!("{}: no valid rows ({n} bad rows skipped)", self.name)),
            });
        }
        if let Layout::Bars { .. } = self.layout {
            self.bar_interval = Some(infer_interval(&self.lookahead));
        }
        Ok(())
    }

    fn read_row(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        loop {
            let more = self
                .rows
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.name, e))?;
            if !more {
                return Ok(None);
            }
            if let Some(ev) = self.take_record()? {
                return Ok(Some(ev));
            }
        }
    }

    /// The current record as an event; `Ok(None)` when it was bad and is skipped.
    fn take_record(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        let line = self.record.position().map_or(0, |p| p.line());
        let msg = match self.parse_record() {
            Ok(ev) => {
                self.last_row_line = line;
                return Ok(Some(ev));
            }
            Err(msg) => msg,
        };
        if !self.skip_bad_rows {
            return Err(SourceError::Input(format!("{} line {line}: {msg}", self.name)));
        }
        self.skipped += 1;
        if self.skipped <= WARNED_BAD_ROWS {
            tracing::warn!("skipping bad row: {} line {line}: {msg}", self.name);
        }
        if self.skipped == WARNED_BAD_ROWS {
            tracing::warn!("{}: further bad rows are skipped silently", self.name);
        }
        Ok(None)
    }

    fn parse_record(&mut self) -> Result<MarketEvent, String> {
        let rec = &self.record;
        if rec.len() != self.width {
            return Err(format!("expected {} fields, found {}", self.width, rec.len()));
        }
        let field = |i: usize| rec.get(i).unwrap_or_default().trim_ascii();
        let (event, ts, ts_text) = match self.layout {
            Layout::Bars {
                ts,
                open,
                high,
                low,
                close,
                volume,
                trades,
            } => {
                let ts_text = field(ts);
                let ts = parse::uint(ts_text)
                    .and_then(|secs| secs.checked_mul(1_000_000_000))
                    .map(Timestamp::from_nanos)
                    .ok_or_else(|| invalid("timestamp", ts_text))?;
                let bar = Bar {
                    ts,
                    open: parse_price(field(open), "open")?,
                    high: parse_price(field(high), "high")?,
                    low: parse_price(field(low), "low")?,
                    close: parse_price(field(close), "close")?,
                    volume: parse_volume(field(volume), false)?,
                    trades: match trades {
                        Some(i) => parse::uint(field(i))
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| invalid("trades", field(i)))?,
                        None => 0,
                    },
                };
                check_range(&bar)?;
                (MarketEvent::Bar(bar), ts, ts_text)
            }
            Layout::Trades {
                ts,
                unit,
                price,
                volume,
                side,
            } => {
                let ts_text = field(ts);
                let nanos = match unit {
                    TsUnit::Nanos => parse::uint(ts_text),
                    TsUnit::Secs => parse::secs_to_nanos(ts_text),
                };
                let ts = Timestamp::from_nanos(nanos.ok_or_else(|| invalid("timestamp", ts_text))?);
                let trade = Trade {
                    ts,
                    price: parse_price(field(price), "price")?,
                    size: parse_volume(field(volume), true)?,
                    side: match side {
                        Some(i) => parse_side(field(i))?,
                        None => None,
                    },
                };
                (MarketEvent::Trade(trade), ts, ts_text)
            }
        };
        if let Some(prev) = self.prev_ts {
            self.check_order(prev, ts, ts_text)?;
        }
        self.prev_ts = Some(ts);
        Ok(event)
    }

    /// Bars must strictly ascend; trades may share a timestamp but never go back.
    fn check_order(&self, prev: Timestamp, ts: Timestamp, ts_text: &[u8]) -> Result<(), String> {
        let bars = matches!(self.layout, Layout::Bars { .. });
        if ts > prev || (ts == prev && !bars) {
            return Ok(());
        }
        let shown = quote(ts_text);
        Err(match self.layout {
            Layout::Bars { .. } if ts == prev => format!("duplicate timestamp {shown}"),
            Layout::Bars { .. } => format!(
                "timestamp {shown} is not after the previous row ({}): rows must be sorted ascending",
                prev.secs()
            ),
            Layout::Trades { unit, .. } => format!(
                "timestamp {shown} is before the previous row ({}): rows must be sorted ascending",
                show_ts(prev, unit)
            ),
        })
    }
}

/// Finds the layout from the first line; the flag says whether that line is a header.
fn detect(first: &ByteRecord) -> Result<(Layout, bool), String> {
    let first_field = first.get(0).unwrap_or_default().trim_ascii();
    if parse::decimal(first_field).is_some() {
        return match first.len() {
            3 => Ok(Layout::Trades {
                ts: 0,
                unit: TsUnit::Secs,
                price: 1,
                volume: 2,
                side: None,
            }),
            6 | 7 => Ok(Layout::Bars {
                ts: 0,
                open: 1,
                high: 2,
                low: 3,
                close: 4,
                volume: 5,
                trades: (first.len() == 7).then_some(6),
            }),
            n => Err(format!(
                "no header and {n} columns: expected 3 (Kraken time and sales: \
                 unix_seconds,price,volume) or 7 (Kraken OHLCVT: \
                 unix_seconds,open,high,low,close,volume,trades)"
            )),
        }
        .map(|layout| (layout, false));
    }
    let find = |name: &str| {
        first
            .iter()
            .position(|f| f.trim_ascii().eq_ignore_ascii_case(name.as_bytes()))
    };
    let need = |name: &str| find(name).ok_or_else(|| format!("missing column '{name}'"));
    let layout = if let (Some(ts), Some(price)) = (find("ts_ns"), find("price")) {
        Layout::Trades {
            ts,
            unit: TsUnit::Nanos,
            price,
            volume: need("volume")?,
            side: find("side"),
        }
    } else if let (Some(ts), Some(open)) = (find("ts"), find("open")) {
        Layout::Bars {
            ts,
            open,
            high: need("high")?,
            low: need("low")?,
            close: need("close")?,
            volume: need("volume")?,
            trades: find("trades"),
        }
    } else {
        return Err(format!(
            "unrecognised header '{}': expected ts,open,high,low,close,volume[,trades] (bars) \
             or ts_ns,price,volume,side[,trade_id] (trades)",
            quote(&first.iter().collect::<Vec<_>>().join(&b','))
        ));
    };
    Ok((layout, true))
}

/// The smallest step between consecutive bars: a file with holes still shows its true interval.
fn infer_interval(bars: &VecDeque<MarketEvent>) -> Interval {
    let mut times = bars.iter().filter_map(MarketEvent::ts);
    let mut prev = times.next();
    let mut step: Option<i64> = None;
    for ts in times {
        if let Some(p) = prev {
            let d = ts.secs() - p.secs();
            if d > 0 && step.is_none_or(|s| d < s) {
                step = Some(d);
            }
        }
        prev = Some(ts);
    }
    step.and_then(Interval::from_secs).unwrap_or_default()
}

fn parse_price(text: &[u8], what: &str) -> Result<Decimal, String> {
    match parse::decimal(text) {
        // Sign and zero tests are bit checks; comparing to ZERO costs a full decimal compare.
        Some(p) if p.is_sign_positive() && !p.is_zero() => Ok(p),
        Some(_) => Err(format!("invalid {what} '{}': prices must be positive", quote(text))),
        None => Err(invalid(what, text)),
    }
}

/// Trades must have a size; a bar may have none (Kraken writes flat bars for quiet minutes).
fn parse_volume(text: &[u8], must_be_positive: bool) -> Result<Decimal, String> {
    match parse::decimal(text) {
        Some(v) if v.is_zero() && !must_be_positive => Ok(v),
        Some(v) if v.is_sign_positive() && !v.is_zero() => Ok(v),
        Some(_) if must_be_positive => Err(format!("invalid volume '{}': must be positive", quote(text))),
        Some(_) => Err(format!("invalid volume '{}': must not be negative", quote(text))),
        None => Err(invalid("volume", text)),
    }
}

fn check_range(bar: &Bar) -> Result<(), String> {
    if bar.high < bar.low {
        return Err(format!("high {} is below low {}", bar.high, bar.low));
    }
    for (what, p) in [("open", bar.open), ("close", bar.close)] {
        if p < bar.low || p > bar.high {
            return Err(format!(
                "{what} {p} is outside the bar's range [{}, {}]",
                bar.low, bar.high
            ));
        }
    }
    Ok(())
}

/// Unknown sides are allowed as an empty field.
fn parse_side(text: &[u8]) -> Result<Option<Side>, String> {
    match text {
        b"" => Ok(None),
        b"buy" | b"b" | b"BUY" | b"Buy" | b"B" => Ok(Some(Side::Buy)),
        b"sell" | b"s" | b"SELL" | b"Sell" | b"S" => Ok(Some(Side::Sell)),
        _ => Err(format!("invalid side '{}': expected buy or sell", quote(text))),
    }
}

fn invalid(what: &str, text: &[u8]) -> String {
    format!("invalid {what} '{}'", quote(text))
}

/// A field as text for an error message, cut short so a binary file cannot flood the log.
fn quote(text: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(&text[..text.len().min(QUOTED_BYTES)])
}

/// A timestamp in the unit the file writes it in.
fn show_ts(ts: Timestamp, unit: TsUnit) -> String {
    match unit {
        TsUnit::Nanos => ts.nanos().to_string(),
        TsUnit::Secs => {
            let frac = ts.nanos().rem_euclid(1_000_000_000);
            if frac == 0 {
                ts.secs().to_string()
            } else {
                let digits = format!("{frac:09}");
                format!("{}.{}", ts.secs(), digits.trim_end_matches('0'))
            }
        }
    }
}

fn empty_file(name: &str) -> SourceError {
    SourceError::Input(format!("{name}: empty file (no header or no rows)"))
}

pub(crate) fn cannot_read(name: &str, e: &io::Error) -> SourceError {
    // "No such file or directory (os error 2)": the OS code means nothing to a user.
    let text = e.to_string();
    let reason = text.split(" (os error").next().unwrap_or(&text);
    SourceError::Input(format!("cannot read {name}: {reason}"))
}

fn csv_error(name: &str, e: ::csv::Error) -> SourceError {
    let text = e.to_string();
    match e.into_kind() {
        ::csv::ErrorKind::Io(io) => cannot_read(name, &io),
        // Not expected: byte records skip UTF-8 checks and rows may vary in length.
        _ => SourceError::Input(format!("{name}: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn reader(text: &str, skip: bool) -> Result<CsvReader, SourceError> {
        CsvReader::from_reader("data.csv", Cursor::new(text.as_bytes().to_vec()), skip)
    }

    fn read_all(text: &str, skip: bool) -> Result<(CsvReader, Vec<MarketEvent>), String> {
        let mut r = reader(text, skip).map_err(|e| e.to_string())?;
        let mut events = Vec::new();
        while let Some(ev) = r.read_event().map_err(|e| e.to_string())? {
            events.push(ev);
        }
        Ok((r, events))
    }

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn bar(ts: i64, o: &str, h: &str, l: &str, c: &str, v: &str, n: u32) -> MarketEvent {
        MarketEvent::Bar(Bar {
            ts: Timestamp::from_secs(ts),
            open: d(o),
            high: d(h),
            low: d(l),
            close: d(c),
            volume: d(v),
            trades: n,
        })
    }

    fn trade(ns: i64, price: &str, size: &str, side: Option<Side>) -> MarketEvent {
        MarketEvent::Trade(Trade {
            ts: Timestamp::from_nanos(ns),
            price: d(price),
            size: d(size),
            side,
        })
    }

    #[test]
    fn every_layout_reads() {
        let cases: Vec<(&str, &str, CsvKind, Vec<MarketEvent>)> = vec![
            (
                "bars",
                "ts,open,high,low,close,volume\n60,10,12,9,11,1.5\n120,11,11,11,11,0\n",
                CsvKind::Bars,
                vec![
                    bar(60, "10", "12", "9", "11", "1.5", 0),
                    bar(120, "11", "11", "11", "11", "0", 0),
                ],
            ),
            (
                "bars with trades, an ignored vwap column, spaces, CRLF and a BOM",
                "\u{feff}ts, open,high,low,close,vwap,volume,trades\r\n60, 10,12,9,11,10.5,1.5,3\r\n",
                CsvKind::Bars,
                vec![bar(60, "10", "12", "9", "11", "1.5", 3)],
            ),
            (
                "trades, sharing a timestamp",
                "ts_ns,price,volume,side,trade_id\n5,100.5,0.1,buy,1\n5,100.4,0.2,sell,2\n",
                CsvKind::Trades,
                vec![
                    trade(5, "100.5", "0.1", Some(Side::Buy)),
                    trade(5, "100.4", "0.2", Some(Side::Sell)),
                ],
            ),
            (
                "trades with an unknown side",
                "ts_ns,price,volume,side\n5,100.5,0.1,\n",
                CsvKind::Trades,
                vec![trade(5, "100.5", "0.1", None)],
            ),
            (
                "kraken time and sales (no header)",
                "1381095255.6133,122.5,0.1\n1381095256,123,0.2\n",
                CsvKind::Trades,
                vec![
                    trade(1_381_095_255_613_300_000, "122.5", "0.1", None),
                    trade(1_381_095_256_000_000_000, "123", "0.2", None),
                ],
            ),
            (
                "kraken ohlcvt (no header)",
                "1381095240,122,123,121,122.5,4.2,7\n",
                CsvKind::Bars,
                vec![bar(1_381_095_240, "122", "123", "121", "122.5", "4.2", 7)],
            ),
        ];
        for (what, text, kind, expected) in cases {
            let (r, events) = read_all(text, false).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.kind(), kind, "{what}");
            assert_eq!(events, expected, "{what}");
            assert_eq!(r.skipped_rows(), 0, "{what}");
        }
    }

    #[test]
    fn bar_interval_is_the_smallest_step() {
        for (text, secs) in [
            ("ts,open,high,low,close,volume\n0,1,1,1,1,1\n", 60),
            ("ts,open,high,low,close,volume\n0,1,1,1,1,1\n300,1,1,1,1,1\n", 300),
            (
                "ts,open,high,low,close,volume\n0,1,1,1,1,1\n600,1,1,1,1,1\n900,1,1,1,1,1\n",
                300,
            ),
        ] {
            let r = reader(text, false).unwrap();
            assert_eq!(r.bar_interval(), Interval::from_secs(secs), "{text}");
        }
        let trades = reader("ts_ns,price,volume,side\n1,1,1,buy\n", false).unwrap();
        assert_eq!(trades.bar_interval(), None);
    }

    #[test]
    fn bad_input_is_refused_with_file_and_line() {
        const BARS: &str = "ts,open,high,low,close,volume\n";
        const TRADES: &str = "ts_ns,price,volume,side\n";
        let cases = [
            (format!("{TRADES}1,abc,1,buy\n"), "data.csv line 2: invalid price 'abc'"),
            (
                format!("{BARS}60,1,1,1,1,1\n60,x,1,1,1,1\n"),
                "data.csv line 3: invalid open 'x'",
            ),
            (
                format!("{BARS}1504396920,1,1,1,1,1\n1504396860,1,1,1,1,1\n"),
                "data.csv line 3: timestamp 1504396860 is not after the previous row \
                 (1504396920): rows must be sorted ascending",
            ),
            (
                format!("{BARS}1504396860,1,1,1,1,1\n1504396860,1,1,1,1,1\n"),
                "data.csv line 3: duplicate timestamp 1504396860",
            ),
            (
                format!("{TRADES}7,1,1,buy\n6,1,1,buy\n"),
                "data.csv line 3: timestamp 6 is before the previous row (7): rows must be \
                 sorted ascending",
            ),
            (
                "10.5,1,1\n10.25,1,1\n".to_string(),
                "data.csv line 2: timestamp 10.25 is before the previous row (10.5)",
            ),
            (String::new(), "data.csv: empty file (no header or no rows)"),
            (BARS.to_string(), "data.csv: empty file (no header or no rows)"),
            (
                format!("{TRADES}1,0,1,buy\n"),
                "line 2: invalid price '0': prices must be positive",
            ),
            (
                format!("{BARS}60,-1,1,1,1,1\n"),
                "invalid open '-1': prices must be positive",
            ),
            (
                format!("{BARS}60,1,1,1,1,-2\n"),
                "invalid volume '-2': must not be negative",
            ),
            (format!("{TRADES}1,1,0,buy\n"), "invalid volume '0': must be positive"),
            (format!("{BARS}60,5,5,6,5,1\n"), "line 2: high 5 is below low 6"),
            (
                format!("{BARS}60,7,6,5,5,1\n"),
                "open 7 is outside the bar's range [5, 6]",
            ),
            (format!("{BARS}60,1,1,1,1\n"), "line 2: expected 6 fields, found 5"),
            (format!("{TRADES}1,1,1,up\n"), "invalid side 'up': expected buy or sell"),
            (format!("{BARS}6e1,1,1,1,1,1\n"), "invalid timestamp '6e1'"),
            (
                format!("{BARS}9223372037,1,1,1,1,1\n"),
                "invalid timestamp '9223372037'",
            ),
            (
                "ts,open,high,low,close\n".to_string(),
                "line 1: missing column 'volume'",
            ),
            ("time,price\n".to_string(), "line 1: unrecognised header 'time,price'"),
            ("1,2,3,4\n".to_string(), "line 1: no header and 4 columns"),
        ];
        for (text, expected) in cases {
            let err = read_all(&text, false).map(|_| ()).unwrap_err();
            assert!(err.contains(expected), "{text:?}:\n got {err}\nwant {expected}");
        }
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = CsvReader::open("/nonexistent/data.csv", false).err().unwrap();
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent/data.csv: No such file or directory"
        );
    }

    #[test]
    fn bad_rows_can_be_skipped_and_counted() {
        let text = "ts,open,high,low,close,volume\n60,1,1,1,1,1\nx,1,1,1,1,1\n60,1,1,1,1,1\n\
                    120,1,1,1,1,1\n180,1,1\n240,1,1,1,1,1\n";
        let (r, events) = read_all(text, true).unwrap();
        assert_eq!(r.skipped_rows(), 3);
        let times: Vec<i64> = events.iter().map(|e| e.ts().unwrap().secs()).collect();
        assert_eq!(times, [60, 120, 240]);

        let err = read_all("ts_ns,price,volume,side\n1,x,1,buy\n", true).err();
        assert_eq!(err.as_deref(), Some("data.csv: no valid rows (1 bad rows skipped)"));
    }

    #[test]
    fn real_files_read_whole() {
        let (r, bars) = read_all(include_str!("../../assets/btcusd_1m_20170903_20170904.csv"), false).unwrap();
        assert_eq!((bars.len(), r.bar_interval()), (2880, Some(Interval::ONE_MINUTE)));
        assert_eq!(
            bars[0],
            bar(
                1_504_396_800,
                "4642.39",
                "4652.71",
                "4642.39",
                "4652.69",
                "6.63487803",
                0
            )
        );

        let (r, trades) = read_all(
            include_str!("../../tests/data/xbtusdt_trades_kraken_rest_20251110.csv"),
            false,
        )
        .unwrap();
        assert_eq!((trades.len(), r.kind()), (1000, CsvKind::Trades));
        assert_eq!(
            trades[0],
            trade(1_762_795_433_971_744_500, "105433.6", "0.00027625", Some(Side::Buy))
        );
    }
}
