//! Reading the CSV files people have: bar and trade files in the layouts of `format` (headers
//! with the usual names, pandas and Yahoo exports, Kraken's and Binance's headerless files,
//! anything else by `--columns`), times as `time` reads them, rows as `row` reads them.
//!
//! `CsvReader` streams a file as `MarketEvent`s with no allocation per row. It cuts lines
//! itself (memchr over a large buffer) rather than through the `csv` crate's record reader:
//! that reader's general state machine held the whole path to about 2M rows/s, and this one
//! reads over 10M rows/s (BENCHMARKS.md section 8). Quoted fields, a BOM, CRLF, blank lines and
//! records spanning lines are all taken.

pub mod format;
pub mod row;
pub mod time;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

pub use format::{ColumnSpec, CsvKind, Layout};
pub use row::{RowError, RowParser, Split};

use super::source::SourceError;
use super::types::{Interval, MarketEvent, Timestamp};

/// Bar rows read ahead when opening, to infer the interval before the first row is used.
pub const INTERVAL_PROBE_ROWS: usize = 1_000;
/// Skipped rows warned about one by one; later ones are only counted.
const WARNED_BAD_ROWS: u64 = 5;
const BUFFER_BYTES: usize = 256 * 1024;
/// A record (one line, or lines joined by a quoted newline) longer than this is refused.
const MAX_RECORD_BYTES: usize = 1 << 20;
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How to read a file beyond what it says itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// Skip and count malformed rows instead of stopping at the first.
    pub skip_bad_rows: bool,
    /// The columns to use, for layouts the header or the shape does not tell.
    pub columns: Option<ColumnSpec>,
}

/// Yields the rows of one CSV file as `MarketEvent::Bar` or `MarketEvent::Trade`, in order.
pub struct CsvReader {
    name: String,
    lines: Lines,
    parser: RowParser,
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
        Self::open_with(
            path,
            &CsvOptions {
                skip_bad_rows,
                columns: None,
            },
        )
    }

    pub fn open_with(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Self, SourceError> {
        let name = path.as_ref().display().to_string();
        match File::open(path.as_ref()) {
            Ok(file) => Self::from_reader_with(name, file, options),
            Err(e) => Err(cannot_read(&name, &e)),
        }
    }

    /// Reads from any byte stream (e.g. data built into the binary); `name` is used in errors.
    pub fn from_reader(
        name: impl Into<String>,
        input: impl Read + Send + 'static,
        skip_bad_rows: bool,
    ) -> Result<Self, SourceError> {
        Self::from_reader_with(
            name,
            input,
            &CsvOptions {
                skip_bad_rows,
                columns: None,
            },
        )
    }

    pub fn from_reader_with(
        name: impl Into<String>,
        input: impl Read + Send + 'static,
        options: &CsvOptions,
    ) -> Result<Self, SourceError> {
        let name = name.into();
        let mut lines = Lines::new(Box::new(input));
        let Some((first, line)) = lines.next_record().map_err(|e| cannot_read(&name, &e))? else {
            return Err(empty_file(&name));
        };
        // Spreadsheets save UTF-8 with a BOM, which would hide the first header name.
        let first: &[u8] = first.strip_prefix(UTF8_BOM).unwrap_or(&first);
        let mut fields = Vec::new();
        row::split(first, &mut fields);
        let texts: Vec<&[u8]> = fields.iter().map(|&(a, b)| &first[a as usize..b as usize]).collect();
        let layout = format::detect(&texts, options.columns.as_ref())
            .map_err(|msg| SourceError::Input(format!("{name} line {line}: {msg}")))?;
        let has_header = layout.has_header;
        let first_row = (!has_header).then(|| first.to_vec());
        let mut reader = Self {
            name,
            lines,
            parser: RowParser::new(layout),
            prev_ts: None,
            lookahead: VecDeque::new(),
            bar_interval: None,
            skip_bad_rows: options.skip_bad_rows,
            skipped: 0,
            last_row_line: 0,
        };
        if let Some(row) = first_row
            && let Some(ev) = reader.take_record(&row, line)?
        {
            reader.lookahead.push_back(ev);
        }
        reader.prime()?;
        Ok(reader)
    }

    /// Whether the file holds bars or trades.
    pub fn kind(&self) -> CsvKind {
        self.parser.layout().kind()
    }

    pub fn layout(&self) -> &Layout {
        self.parser.layout()
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
        let wanted = match self.kind() {
            CsvKind::Bars => INTERVAL_PROBE_ROWS,
            CsvKind::Trades => 1,
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
        if self.kind() == CsvKind::Bars {
            self.bar_interval = Some(infer_interval(self.lookahead.iter().filter_map(MarketEvent::ts)));
        }
        Ok(())
    }

    fn read_row(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        loop {
            let Some((start, end, line)) = self.lines.next_range().map_err(|e| cannot_read(&self.name, &e))? else {
                return Ok(None);
            };
            // A quoted field holding a newline: the record goes on on the following lines.
            let mut fields = Vec::new();
            let joined;
            let record: &[u8] = if memchr::memchr(b'"', self.lines.slice(start, end)).is_some()
                && row::split(self.lines.slice(start, end), &mut fields) == Split::OpenQuote
            {
                joined = self.lines.join_quoted(start, end).map_err(|e| match e {
                    JoinError::Io(e) => cannot_read(&self.name, &e),
                    JoinError::TooLong => SourceError::Input(format!(
                        "{} line {line}: a quoted field is not closed within {} MiB",
                        self.name,
                        MAX_RECORD_BYTES >> 20
                    )),
                })?;
                &joined
            } else {
                self.lines.slice(start, end)
            };
            let parsed = self.parser.parse(record);
            if let Some(ev) = self.accept(parsed, line)? {
                return Ok(Some(ev));
            }
        }
    }

    /// One record outside the line reader (the headerless first line).
    fn take_record(&mut self, record: &[u8], line: u64) -> Result<Option<MarketEvent>, SourceError> {
        let parsed = self.parser.parse(record);
        self.accept(parsed, line)
    }

    /// A parsed row, checked for order; `Ok(None)` when it was bad and is skipped.
    fn accept(&mut self, parsed: Result<MarketEvent, RowError>, line: u64) -> Result<Option<MarketEvent>, SourceError> {
        let checked = parsed.and_then(|ev| {
            let ts = ev.ts().unwrap_or_default();
            if let Some(prev) = self.prev_ts {
                check_order(self.parser.layout(), prev, ts)?;
            }
            Ok((ev, ts))
        });
        let error = match checked {
            Ok((ev, ts)) => {
                self.prev_ts = Some(ts);
                self.last_row_line = line;
                return Ok(Some(ev));
            }
            Err(e) => e,
        };
        let msg = error.describe(self.parser.layout(), line);
        if !self.skip_bad_rows {
            return Err(SourceError::Input(format!("{} {msg}", self.name)));
        }
        self.skipped += 1;
        if self.skipped <= WARNED_BAD_ROWS {
            tracing::warn!("skipping bad row: {} {msg}", self.name);
        }
        if self.skipped == WARNED_BAD_ROWS {
            tracing::warn!("{}: further bad rows are skipped silently", self.name);
        }
        Ok(None)
    }
}

/// Bars must strictly ascend; trades may share a timestamp but never go back.
pub fn check_order(layout: &Layout, prev: Timestamp, ts: Timestamp) -> Result<(), RowError> {
    let bars = layout.kind() == CsvKind::Bars;
    if ts > prev || (ts == prev && !bars) {
        return Ok(());
    }
    let message = if bars && ts == prev {
        format!("duplicate timestamp {ts}")
    } else {
        format!("time {ts} is before the previous row's ({prev}): rows must be sorted by time, oldest first")
    };
    Err(RowError {
        column: Some(layout.ts),
        message,
    })
}

/// The smallest step between consecutive bars: a file with holes still shows its true interval.
/// Steps are whole seconds; a bar time's fraction of a second does not change its interval.
pub fn infer_interval(times: impl Iterator<Item = Timestamp>) -> Interval {
    let mut prev: Option<Timestamp> = None;
    let mut step: Option<i64> = None;
    for ts in times {
        if let Some(p) = prev {
            let d = (ts.nanos() - p.nanos()) / 1_000_000_000;
            if d > 0 && step.is_none_or(|s| d < s) {
                step = Some(d);
            }
        }
        prev = Some(ts);
    }
    step.and_then(Interval::from_secs).unwrap_or_default()
}

/// Lines out of a byte stream, read in large blocks; a line is handed out as a range of the
/// block, so nothing is copied unless it spans two blocks.
struct Lines {
    input: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    /// Physical lines handed out so far.
    line: u64,
}

enum JoinError {
    Io(io::Error),
    TooLong,
}

impl Lines {
    fn new(input: Box<dyn Read + Send>) -> Self {
        Self {
            input,
            buf: vec![0; BUFFER_BYTES],
            pos: 0,
            end: 0,
            eof: false,
            line: 0,
        }
    }

    fn slice(&self, start: usize, end: usize) -> &[u8] {
        &self.buf[start..end]
    }

    /// The next non-blank line (as a copy) and its 1-based number.
    fn next_record(&mut self) -> io::Result<Option<(Vec<u8>, u64)>> {
        Ok(self
            .next_range()?
            .map(|(start, end, line)| (self.buf[start..end].to_vec(), line)))
    }

    /// The next non-blank line as `buf[start..end]` (without its newline) and its number.
    fn next_range(&mut self) -> io::Result<Option<(usize, usize, u64)>> {
        loop {
            let Some((start, end)) = self.next_line()? else {
                return Ok(None);
            };
            self.line += 1;
            if self.buf[start..end].iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(Some((start, end, self.line)));
            }
        }
    }

    fn next_line(&mut self) -> io::Result<Option<(usize, usize)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                let start = self.pos;
                self.pos += i + 1;
                return Ok(Some((start, start + i)));
            }
            if self.eof {
                if self.pos < self.end {
                    let start = self.pos;
                    self.pos = self.end;
                    return Ok(Some((start, self.end)));
                }
                return Ok(None);
            }
            self.refill()?;
        }
    }

    /// Keeps the unread tail and reads more after it, growing the buffer for a very long line.
    fn refill(&mut self) -> io::Result<()> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The record starting at `buf[start..end]` joined with the lines after it until its quotes
    /// close (a quoted field holding newlines).
    fn join_quoted(&mut self, start: usize, end: usize) -> Result<Vec<u8>, JoinError> {
        let mut record = self.buf[start..end].to_vec();
        let mut fields = Vec::new();
        loop {
            let Some((a, b)) = self.next_line().map_err(JoinError::Io)? else {
                return Ok(record);
            };
            self.line += 1;
            record.push(b'\n');
            record.extend_from_slice(&self.buf[a..b]);
            if record.len() > MAX_RECORD_BYTES {
                return Err(JoinError::TooLong);
            }
            if row::split(&record, &mut fields) == Split::Done {
                return Ok(record);
            }
        }
    }
}

fn empty_file(name: &str) -> SourceError {
    SourceError::Input(format!("{name}: empty file (no header or no rows)"))
}

pub fn cannot_read(name: &str, e: &io::Error) -> SourceError {
    // "No such file or directory (os error 2)": the OS code means nothing to a user.
    let text = e.to_string();
    let reason = text.split(" (os error").next().unwrap_or(&text);
    SourceError::Input(format!("cannot read {name}: {reason}"))
}

#[cfg(test)]
mod tests;
