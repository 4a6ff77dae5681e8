//! Replays a CSV file, or the demo data built into the binary, as a market feed: paced against
//! the wall clock, optionally looped, and resumable from a given market time.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::csv::{CsvOptions, CsvReader, cannot_read};
use super::pacing::{Pacer, Speed};
use super::source::{Source, SourceError, SourceInfo};
use super::types::{Interval, MarketEvent, Timestamp};

/// Two real days of Coinbase BTC-USD 1-minute bars (see `assets/README.md`).
pub const DEMO_DATA_NAME: &str = "btcusd_1m_20170903_20170904.csv";
pub const DEMO_DATA: &[u8] = include_bytes!("../../../assets/btcusd_1m_20170903_20170904.csv");

const DEFAULT_PAIR: &str = "BTC/USD";

#[derive(Clone, Debug, PartialEq)]
pub struct ReplayConfig {
    pub speed: Speed,
    /// Start again from the top at the end, shifted forward in time.
    pub looping: bool,
    /// Skip events before this market time (resuming after a restart).
    pub start_at: Option<Timestamp>,
    /// How to read the file (bad rows, `--columns`).
    pub csv: CsvOptions,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            speed: Speed::Max,
            looping: false,
            start_at: None,
            csv: CsvOptions::default(),
        }
    }
}

/// A `Source` over the rows of one bar or trade CSV file.
pub struct ReplaySource {
    info: SourceInfo,
    feed: Feed,
    /// `None` at `Speed::Max`.
    pacer: Option<Pacer>,
}

impl ReplaySource {
    /// Replays a file; `pair` defaults to `BTC/USD`.
    pub fn open(path: impl AsRef<Path>, pair: Option<&str>, config: ReplayConfig) -> Result<Self, SourceError> {
        let path = path.as_ref();
        let origin = Origin::File(path.to_path_buf());
        let reader = origin.open(&config.csv)?;
        let name = path.display().to_string();
        let (size, hash) = File::open(path)
            .and_then(content_hash)
            .map_err(|e| cannot_read(&name, &e))?;
        let file_name = path
            .file_name()
            .map_or(name.clone(), |n| n.to_string_lossy().into_owned());
        let mut identity = format!("replay:{file_name}:{size}:{hash:016x}");
        // Other columns make other bars from the same file.
        if let Some(columns) = &config.csv.columns {
            identity.push_str(&format!(":columns={columns}"));
        }
        Self::new(origin, reader, identity, pair, config)
    }

    /// Replays the demo data built into the binary.
    pub fn builtin(config: ReplayConfig) -> Result<Self, SourceError> {
        let reader = Origin::Builtin.open(&config.csv)?;
        let identity = format!("builtin:{DEMO_DATA_NAME}");
        Self::new(Origin::Builtin, reader, identity, None, config)
    }

    fn new(
        origin: Origin,
        reader: CsvReader,
        identity: String,
        pair: Option<&str>,
        config: ReplayConfig,
    ) -> Result<Self, SourceError> {
        let bar_interval = reader.bar_interval();
        let info = SourceInfo {
            kind: "replay",
            identity,
            pair: pair.unwrap_or(DEFAULT_PAIR).to_string(),
            finite: !config.looping,
            bar_interval,
        };
        // Trade files loop on whole minutes so every pass buckets its trades alike.
        let step = bar_interval.unwrap_or_default();
        Ok(Self {
            info,
            pacer: Pacer::new(config.speed, step)?,
            feed: Feed {
                origin,
                reader,
                csv: config.csv.clone(),
                looping: config.looping,
                start_at: config.start_at,
                step,
                shift: 0,
                first: None,
                last: Timestamp::default(),
            },
        })
    }

    /// Bad rows skipped so far in the current pass over the file.
    pub fn skipped_rows(&self) -> u64 {
        self.feed.reader.skipped_rows()
    }
}

impl Source for ReplaySource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    async fn next_event(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        match &mut self.pacer {
            None => self.feed.pull(),
            Some(pacer) => pacer.pace(|| self.feed.pull()).await,
        }
    }
}

/// Where to (re)open the data from.
enum Origin {
    File(PathBuf),
    Builtin,
}

impl Origin {
    fn open(&self, options: &CsvOptions) -> Result<CsvReader, SourceError> {
        match self {
            Origin::File(path) => CsvReader::open_with(path, options),
            Origin::Builtin => CsvReader::from_reader_with(DEMO_DATA_NAME, DEMO_DATA, options),
        }
    }
}

/// The file's rows, shifted in time for each loop and filtered by `start_at`.
struct Feed {
    origin: Origin,
    reader: CsvReader,
    csv: CsvOptions,
    looping: bool,
    start_at: Option<Timestamp>,
    /// Loops are a whole number of these long.
    step: Interval,
    /// Nanoseconds added to every timestamp in the current loop.
    shift: i64,
    /// First and last timestamps in the file, as written.
    first: Option<Timestamp>,
    last: Timestamp,
}

impl Feed {
    fn pull(&mut self) -> Result<Option<MarketEvent>, SourceError> {
        loop {
            let Some(mut ev) = self.reader.read_event()? else {
                if !self.looping {
                    return Ok(None);
                }
                self.rewind()?;
                continue;
            };
            let ts = match &mut ev {
                MarketEvent::Bar(b) => &mut b.ts,
                MarketEvent::Trade(t) => &mut t.ts,
                // A CSV file yields only bars and trades.
                _ => return Ok(Some(ev)),
            };
            self.first.get_or_insert(*ts);
            self.last = *ts;
            ts.0 = ts.0.saturating_add(self.shift);
            // Resuming: skip what the previous run already saw, with no pacing.
            if self.start_at.is_some_and(|start| *ts < start) {
                continue;
            }
            return Ok(Some(ev));
        }
    }

    /// Starts the next loop, later by the file's span so market time keeps rising.
    fn rewind(&mut self) -> Result<(), SourceError> {
        let first = self.first.unwrap_or_default().floor_to(self.step);
        let last = self.last.floor_to(self.step);
        let period = last.plus(self.step).0.saturating_sub(first.0);
        let mut shift = self.shift.checked_add(period);
        // Resuming far ahead: jump over whole loops that end before `start_at`.
        if let (Some(start), Some(s)) = (self.start_at, shift) {
            let behind = start.0.saturating_sub(self.last.0.saturating_add(s));
            if behind > 0 {
                let loops = behind.div_euclid(period) + i64::from(behind.rem_euclid(period) > 0);
                shift = loops.checked_mul(period).and_then(|d| s.checked_add(d));
            }
        }
        self.shift = shift
            .filter(|s| self.last.0.checked_add(*s).is_some())
            .ok_or_else(|| SourceError::Fatal("replay looped past the last representable time".into()))?;
        self.reader = self.origin.open(&self.csv)?;
        Ok(())
    }
}

/// Size and a hash of the content. FxHash-style mixing of 8-byte words with a splitmix64 finish:
/// several GB/s and the same on every platform and version. Stored identities depend on it, so
/// never change it.
fn content_hash(mut input: impl Read) -> io::Result<(u64, u64)> {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut size, mut h) = (0u64, 0u64);
    loop {
        let n = fill(&mut input, &mut buf)?;
        // Only the last chunk can be short, so the words never depend on how reads split.
        let mut words = buf[..n].chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        size += n as u64;
        if n < buf.len() {
            break;
        }
    }
    h ^= size;
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Ok((size, h ^ (h >> 31)))
}

/// Reads until `buf` is full or the input ends.
fn fill(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    const BARS: &str = "ts,open,high,low,close,volume\n60,1,1,1,1,1\n120,2,2,2,2,1\n180,3,3,3,3,1\n";

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn times(src: &mut ReplaySource, n: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < n {
            match src.next_event().await.unwrap() {
                Some(ev) => out.push(ev.ts().unwrap().secs()),
                None => break,
            }
        }
        out
    }

    #[tokio::test]
    async fn max_speed_yields_exactly_the_rows() {
        let mut src = ReplaySource::builtin(ReplayConfig::default()).unwrap();
        let mut rows = CsvReader::from_reader("demo", DEMO_DATA, false).unwrap();
        let mut n = 0;
        while let Some(ev) = src.next_event().await.unwrap() {
            assert_eq!(Some(ev), rows.read_event().unwrap());
            n += 1;
        }
        assert_eq!(n, 2880);
        assert_eq!(rows.read_event().unwrap(), None);
        assert_eq!(
            src.info(),
            &SourceInfo {
                kind: "replay",
                identity: "builtin:btcusd_1m_20170903_20170904.csv".into(),
                pair: "BTC/USD".into(),
                finite: true,
                bar_interval: Some(Interval::ONE_MINUTE),
            }
        );
    }

    #[test]
    fn identity_names_the_file_its_size_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(&dir, "a.csv", BARS);
        let identity = |path: &Path| {
            let src = ReplaySource::open(path, Some("ETH/USD"), ReplayConfig::default()).unwrap();
            assert_eq!(src.info().pair, "ETH/USD");
            src.info().identity.clone()
        };
        let first = identity(&a);
        assert!(first.starts_with(&format!("replay:a.csv:{}:", BARS.len())), "{first}");
        assert_eq!(first.len(), "replay:a.csv:79:".len() + 16);
        assert_eq!(first, identity(&a));
        write(&dir, "a.csv", &BARS.replace("3,3,3,3,1", "3,3,3,3,2"));
        assert_ne!(first, identity(&a));

        let err = ReplaySource::open(dir.path().join("none.csv"), None, ReplayConfig::default());
        assert!(
            err.err()
                .unwrap()
                .to_string()
                .ends_with("none.csv: No such file or directory")
        );
        let zero = ReplayConfig {
            speed: Speed::Factor(0.0),
            ..ReplayConfig::default()
        };
        assert!(ReplaySource::open(&a, None, zero).is_err());
    }

    #[test]
    fn content_hash_does_not_depend_on_read_sizes() {
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = content_hash(&data[..]).unwrap();
        // A reader that hands out 3 bytes at a time.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        assert_eq!(content_hash(Trickle(&data)).unwrap(), whole);
        assert_eq!(whole.0, 200_003);
        assert_ne!(content_hash(&data[1..]).unwrap().1, whole.1);
    }

    #[tokio::test]
    async fn looping_shifts_each_pass_forward() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "bars.csv", BARS);
        let looping = ReplayConfig {
            looping: true,
            ..ReplayConfig::default()
        };
        let mut src = ReplaySource::open(&path, None, looping.clone()).unwrap();
        assert!(!src.info().finite);
        assert_eq!(times(&mut src, 9).await, [60, 120, 180, 240, 300, 360, 420, 480, 540]);

        // Trade files loop on whole minutes.
        let trades = write(
            &dir,
            "t.csv",
            "ts_ns,price,volume,side\n10000000000,1,1,buy\n70000000000,1,1,sell\n",
        );
        let mut src = ReplaySource::open(&trades, None, looping.clone()).unwrap();
        assert_eq!(src.info().bar_interval, None);
        assert_eq!(times(&mut src, 6).await, [10, 70, 130, 190, 250, 310]);

        // Resuming many loops ahead lands in the right loop at once.
        let resume = ReplayConfig {
            start_at: Some(Timestamp::from_secs(1_800_000)),
            ..looping
        };
        let mut src = ReplaySource::open(&path, None, resume).unwrap();
        assert_eq!(times(&mut src, 3).await, [1_800_000, 1_800_060, 1_800_120]);
    }

    #[tokio::test]
    async fn start_at_skips_earlier_events() {
        let start = Timestamp::from_secs(1_504_396_800 + 100 * 60);
        let config = ReplayConfig {
            start_at: Some(start),
            ..ReplayConfig::default()
        };
        let mut src = ReplaySource::builtin(config).unwrap();
        let got = times(&mut src, usize::MAX).await;
        assert_eq!((got.len(), got[0]), (2780, start.secs()));
    }

    #[tokio::test(start_paused = true)]
    async fn bars_are_released_at_their_close_scaled_by_speed() {
        let config = ReplayConfig {
            speed: Speed::Factor(60.0),
            ..ReplayConfig::default()
        };
        let mut src = ReplaySource::builtin(config).unwrap();
        let wall0 = Instant::now();
        for i in 0..5u64 {
            let ev = src.next_event().await.unwrap().unwrap();
            assert!(matches!(ev, MarketEvent::Bar(_)));
            // One market minute per wall second, from the first bar on.
            assert_eq!(wall0.elapsed(), Duration::from_secs(i), "bar {i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn trade_replay_announces_quiet_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "t.csv",
            "ts_ns,price,volume,side\n0,1,1,buy\n10000000000,1,1,buy\n130000000000,1,1,sell\n",
        );
        let config = ReplayConfig {
            speed: Speed::Factor(10.0),
            ..ReplayConfig::default()
        };
        let mut src = ReplaySource::open(&path, None, config).unwrap();
        let wall0 = Instant::now();
        let mut seen = Vec::new();
        while let Some(ev) = src.next_event().await.unwrap() {
            let kind = if matches!(ev, MarketEvent::Clock(_)) {
                "clock"
            } else {
                "trade"
            };
            seen.push((kind, ev.ts().unwrap().secs(), wall0.elapsed().as_millis()));
        }
        assert_eq!(
            seen,
            [
                ("trade", 0, 0),
                ("trade", 10, 1000),
                ("clock", 60, 6000),
                ("trade", 130, 13000)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_wait_loses_no_event() {
        let config = ReplayConfig {
            speed: Speed::Factor(60.0),
            ..ReplayConfig::default()
        };
        let mut src = ReplaySource::builtin(config).unwrap();
        let first = src.next_event().await.unwrap().unwrap();
        let wall0 = Instant::now();
        let early = tokio::time::timeout(Duration::from_millis(400), src.next_event()).await;
        assert!(early.is_err(), "the second bar is due after 1 s");
        let second = src.next_event().await.unwrap().unwrap();
        assert_eq!(wall0.elapsed(), Duration::from_secs(1));
        assert_eq!(second.ts().unwrap().secs(), first.ts().unwrap().secs() + 60);
    }
}
