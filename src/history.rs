//! `nanotrader history`: Kraken bars for a past range, into a CSV file (the format of our data
//! files) or into the store. Recent ranges come from OHLC in one call; older ones are rebuilt from
//! the Trades endpoint, page by page with its cursor. Resumable and idempotent: it continues
//! after the last bar already written, and writes only closed bars.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Seek};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use nanotrader_format::plain;
use nanotrader_kraken::PairNames;
use nanotrader_kraken::consts::{MAX_RETRIES, OHLC_INTERVALS_MINUTES, OHLC_MAX_ROWS};
use nanotrader_kraken::{RestClient, Retries};
use nanotrader_market::{Bar, Interval, MarketEvent, Timestamp};
use nanotrader_market::{BarAggregator, BarEvent};
use nanotrader_store::{RunStore, Store, StoreError};
use nanotrader_store_pg::PgStore;

pub const CSV_HEADER: &str = "ts,open,high,low,close,volume,trades";

pub struct HistoryRequest {
    pub interval: Interval,
    pub since: Timestamp,
    /// End of the range (exclusive); `None` = up to the last closed bar.
    pub until: Option<Timestamp>,
}

/// What was done, for the closing line.
#[derive(Debug, Default)]
pub struct HistoryReport {
    pub bars: u64,
    pub gaps: u64,
    pub requests: u64,
    pub resumed_after: Option<Timestamp>,
    pub endpoint: &'static str,
}

/// Where bars go: both kinds know the last bar they hold, so a new call continues after it.
pub trait BarSink {
    fn last_ts(&self) -> Option<Timestamp>;
    fn write(&mut self, bars: &[Bar]) -> io::Result<()>;
}

/// Why a download stopped; one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Kraken(#[from] nanotrader_kraken::KrakenError),
    #[error("cannot write bars: {0}")]
    Write(#[source] io::Error),
}

pub async fn download(
    client: &RestClient,
    pair: &PairNames,
    req: &HistoryRequest,
    sink: &mut dyn BarSink,
) -> Result<HistoryReport, HistoryError> {
    let step = req.interval;
    let mut report = HistoryReport::default();
    let mut since = req.since.floor_to(step);
    if let Some(last) = sink.last_ts().filter(|last| *last >= since) {
        since = last.plus(step);
        report.resumed_after = Some(last);
    }
    let now = client.server_time(Retries::UpTo(MAX_RETRIES)).await?;
    report.requests += 1;
    // Only closed bars: the range ends at the start of the bar forming now, at the latest.
    let until = req.until.unwrap_or(now).min(now.floor_to(step)).floor_to(step);
    if since >= until {
        report.endpoint = "none (already complete)";
        return Ok(report);
    }
    let progress = Progress::new(since, until);
    let minutes = (step.secs() / 60) as u32;
    let ohlc_reach = now.floor_to(step).nanos() - (OHLC_MAX_ROWS as i64) * step.secs() * 1_000_000_000;
    if step.secs() % 60 == 0 && OHLC_INTERVALS_MINUTES.contains(&minutes) && since.nanos() >= ohlc_reach {
        report.endpoint = "OHLC";
        let page = client
            .ohlc(
                &pair.rest_altname,
                minutes,
                Some(since.secs() - 1),
                Retries::UpTo(MAX_RETRIES),
            )
            .await?;
        report.requests += 1;
        // Kraken fills minutes without trades with flat zero-volume bars: those are gaps, not bars.
        let bars: Vec<Bar> = page
            .bars
            .into_iter()
            .filter(|b| b.ts >= since && b.ts < until && !(b.volume.is_zero() && b.trades == 0))
            .collect();
        report.gaps = count_gaps(since, &bars, step);
        write(sink, &bars, &mut report)?;
        progress.finish(until);
        return Ok(report);
    }

    report.endpoint = "Trades";
    let mut aggregator = BarAggregator::new(step, None);
    // The cursor restarts just before the last trade taken and ids drop the overlap: trades that
    // share a timestamp across a page boundary are neither lost nor counted twice.
    let (mut last_ts, mut last_id): (Option<Timestamp>, Option<u64>) = (None, None);
    let mut closed = Vec::new();
    loop {
        let cursor = (last_ts.unwrap_or(since).nanos() - 1).to_string();
        let page = client
            .trades(&pair.rest_altname, Some(&cursor), Retries::UpTo(MAX_RETRIES))
            .await?;
        report.requests += 1;
        let exhausted = page.trades.len() < nanotrader_kraken::consts::TRADES_PAGE_MAX;
        let (mut reached_end, mut took) = (false, 0);
        for t in &page.trades {
            let seen = match (t.id, last_id) {
                (Some(id), Some(last)) => id <= last,
                _ => last_ts.is_some_and(|last| t.trade.ts < last),
            };
            if seen || t.trade.ts < since {
                continue;
            }
            if t.trade.ts >= until {
                reached_end = true;
                break;
            }
            (last_ts, last_id, took) = (Some(t.trade.ts), t.id.or(last_id), took + 1);
            aggregator.on_event(&MarketEvent::Trade(t.trade), &mut |e| {
                collect(e, &mut closed, &mut report)
            });
            progress.at(t.trade.ts);
        }
        write(sink, &closed, &mut report)?;
        closed.clear();
        if reached_end || exhausted || took == 0 {
            break;
        }
    }
    // The range is over: its last bar is complete.
    aggregator.finish(&mut |e| collect(e, &mut closed, &mut report));
    write(sink, &closed, &mut report)?;
    progress.finish(until);
    Ok(report)
}

fn collect(event: BarEvent, closed: &mut Vec<Bar>, report: &mut HistoryReport) {
    match event {
        BarEvent::Closed(bar) => closed.push(bar),
        BarEvent::Gap { .. } => report.gaps += 1,
        BarEvent::Forming(_) => {}
    }
}

fn write(sink: &mut dyn BarSink, bars: &[Bar], report: &mut HistoryReport) -> Result<(), HistoryError> {
    sink.write(bars).map_err(HistoryError::Write)?;
    report.bars += bars.len() as u64;
    Ok(())
}

fn count_gaps(since: Timestamp, bars: &[Bar], step: Interval) -> u64 {
    let mut expected = since;
    let mut gaps = 0;
    for bar in bars {
        if bar.ts > expected {
            gaps += 1;
        }
        expected = bar.ts.plus(step);
    }
    gaps
}

/// A progress bar on a terminal; elsewhere a plain line every tenth of the range.
struct Progress {
    bar: Option<ProgressBar>,
    since: Timestamp,
    span: i64,
    next_tenth: std::cell::Cell<i64>,
}

impl Progress {
    fn new(since: Timestamp, until: Timestamp) -> Self {
        let span = (until.secs() - since.secs()).max(1);
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(span as u64);
            if let Ok(style) = ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} (eta {eta})") {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            since,
            span,
            next_tenth: std::cell::Cell::new(1),
        }
    }

    fn at(&self, ts: Timestamp) {
        let done = (ts.secs() - self.since.secs()).clamp(0, self.span);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(ts.to_rfc3339());
            }
            None => {
                let tenth = done * 10 / self.span;
                if tenth >= self.next_tenth.get() {
                    self.next_tenth.set(tenth + 1);
                    eprintln!("history: {}% (at {ts})", tenth * 10);
                }
            }
        }
    }

    fn finish(&self, until: Timestamp) {
        self.at(until);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A CSV file in our data format, appended to; a line cut short by an interruption is dropped.
pub struct CsvSink {
    path: PathBuf,
    writer: csv::Writer<File>,
    last: Option<Timestamp>,
}

impl CsvSink {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let (last, keep) = scan(&file, path)?;
        file.set_len(keep)?;
        file.seek(io::SeekFrom::End(0))?;
        let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(file);
        if keep == 0 {
            writer.write_record(CSV_HEADER.split(','))?;
            writer.flush()?;
        }
        Ok(Self {
            path: path.to_owned(),
            writer,
            last,
        })
    }
}

/// The last bar's time and the length of the file's complete lines.
fn scan(file: &File, path: &Path) -> io::Result<(Option<Timestamp>, u64)> {
    let mut reader = BufReader::new(file);
    let mut line = String::new();
    let (mut keep, mut last) = (0u64, None);
    let mut first = true;
    while reader.read_line(&mut line)? > 0 {
        if !line.ends_with('\n') {
            break; // cut short: dropped, its bar is fetched again
        }
        if first {
            if line.trim_end() != CSV_HEADER {
                return Err(io::Error::other(format!(
                    "{} exists and is not a history file (header '{}', expected '{CSV_HEADER}')",
                    path.display(),
                    line.trim_end()
                )));
            }
            first = false;
        } else if let Some(secs) = line.split(',').next().and_then(|s| s.parse::<i64>().ok()) {
            last = Some(Timestamp::from_secs(secs));
        }
        keep += line.len() as u64;
        line.clear();
    }
    Ok((last, keep))
}

impl BarSink for CsvSink {
    fn last_ts(&self) -> Option<Timestamp> {
        self.last
    }

    fn write(&mut self, bars: &[Bar]) -> io::Result<()> {
        for b in bars {
            self.writer.write_record([
                b.ts.secs().to_string(),
                plain(b.open),
                plain(b.high),
                plain(b.low),
                plain(b.close),
                plain(b.volume),
                b.trades.to_string(),
            ])?;
            self.last = Some(b.ts);
        }
        // Each page is on disk before the next is fetched: an interruption loses one page at most.
        self.writer.flush()
    }
}

impl Drop for CsvSink {
    fn drop(&mut self) {
        if let Err(e) = self.writer.flush() {
            tracing::warn!("could not flush {}: {e}", self.path.display());
        }
    }
}

/// The store's bar series for Kraken's pair and interval, shared with live runs (SQLite, or
/// PostgreSQL by binary COPY). Live runs may already hold any part of the range, so it is
/// fetched whole; storing a bar twice is a no-op in both.
pub struct StoreSink {
    insert: Box<InsertBars>,
}

/// Adds bars to the sink's series (bars already stored kept as they are).
type InsertBars = dyn FnMut(&[Bar]) -> Result<(), StoreError>;

impl StoreSink {
    pub fn sqlite(mut store: Store, pair: &PairNames, interval: Interval) -> Result<Self, StoreError> {
        let series_id = store.series_id(&identity(pair), &pair.user, interval)?;
        Ok(Self {
            insert: Box::new(move |bars| store.insert_bars(series_id, bars)),
        })
    }

    pub fn postgres(store: PgStore, pair: &PairNames, interval: Interval) -> Result<Self, StoreError> {
        let series_id = RunStore::series_id(&store, &identity(pair), &pair.user, interval)?;
        Ok(Self {
            insert: Box::new(move |bars| store.insert_bars(series_id, bars)),
        })
    }
}

/// The series a live Kraken run of the pair stores its bars in.
fn identity(pair: &PairNames) -> String {
    format!("kraken:{}", pair.user)
}

impl BarSink for StoreSink {
    fn last_ts(&self) -> Option<Timestamp> {
        None
    }

    fn write(&mut self, bars: &[Bar]) -> io::Result<()> {
        (self.insert)(bars).map_err(io::Error::other)
    }
}
