//! Loading history for a backtest: from the binary cache when it is fresh, else from the CSV
//! (plain or gzip), through the fast reader when the file allows it and the engine's own reader
//! and bar aggregator otherwise, so the bars are exactly those a replay of the file would close.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::cache::{self, CacheKey};
use super::columns::BarColumns;
use super::fast_csv;
use crate::market::csv::cannot_read;
use crate::market::{BarAggregator, BarEvent, CsvKind, CsvReader, Interval, SourceError};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Use the cache when fresh, write it when missing or stale.
    #[default]
    Auto,
    /// Neither read nor write it.
    Off,
    /// Rebuild it from the CSV.
    Refresh,
}

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The bar interval to backtest at; `None` for the file's own (1 minute for trades).
    pub interval: Option<Interval>,
    pub cache: CacheMode,
    /// Also load open, high, low, volume and trade counts (reports, per-bar strategies).
    pub detail: bool,
}

/// Where the bars came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LoadPath {
    Cache,
    FastCsv,
    Reader,
}

impl LoadPath {
    pub fn as_str(self) -> &'static str {
        match self {
            LoadPath::Cache => "binary cache",
            LoadPath::FastCsv => "CSV",
            LoadPath::Reader => "CSV (general reader)",
        }
    }
}

pub struct Loaded {
    pub bars: BarColumns,
    pub path: LoadPath,
    /// The cache file written, or why it could not be.
    pub cache_written: Option<Result<PathBuf, String>>,
    /// The file's last line, when the CSV was read (not for the cache).
    pub last_line: Option<u64>,
}

/// Loads `path` as bars; errors name the file (and the line, for bad rows).
pub fn load(path: &Path, opts: &LoadOptions, progress: &ProgressBar) -> Result<Loaded, SourceError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(&name, &e))?;
    if meta.is_dir() {
        return Err(SourceError::Input(format!("{name} is a directory, not a CSV file")));
    }
    let key = CacheKey::from_metadata(&meta, opts.interval).map_err(|e| cannot_read(&name, &e))?;
    let cache_path = cache::path_for(path);
    if opts.cache == CacheMode::Auto {
        match cache::read(&cache_path, key, opts.detail) {
            Ok(Some(bars)) => {
                return Ok(Loaded {
                    bars,
                    path: LoadPath::Cache,
                    cache_written: None,
                    last_line: None,
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("ignoring the cache {}: {e}", cache_path.display()),
        }
    }
    progress.set_length(meta.len());
    let gzip = is_gzip(path).map_err(|e| cannot_read(&name, &e))?;
    let fast = if gzip {
        None
    } else {
        fast_csv::read(path, opts.interval, opts.detail, &|bytes| progress.set_position(bytes))
            .map_err(|e| cannot_read(&name, &e))?
    };
    let (bars, load_path, last_line) = match fast {
        // One header line, then one row per bar.
        Some(bars) => {
            let lines = bars.len() as u64 + 1;
            (bars, LoadPath::FastCsv, lines)
        }
        None => {
            progress.set_position(0);
            let (bars, last_line) = read_with_engine_reader(path, &name, gzip, opts.interval, progress)?;
            (bars, LoadPath::Reader, last_line)
        }
    };
    progress.set_position(meta.len());
    let cache_written = (opts.cache != CacheMode::Off).then(|| {
        cache::write(&cache_path, key, &bars)
            .map(|()| cache_path.clone())
            .map_err(|e| format!("cannot write {}: {e}", cache_path.display()))
    });
    let mut bars = bars;
    if !opts.detail {
        bars.detail = None;
    }
    Ok(Loaded {
        bars,
        path: load_path,
        cache_written,
        last_line: Some(last_line),
    })
}

fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let mut file = File::open(path)?;
    let mut got = 0;
    while got < 2 {
        match file.read(&mut magic[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got == 2 && magic == [0x1f, 0x8b])
}

/// The engine's path: `CsvReader` (any layout, bars or trades, checked row by row) and the
/// `BarAggregator` at the requested interval.
pub(crate) fn read_with_engine_reader(
    path: &Path,
    name: &str,
    gzip: bool,
    want: Option<Interval>,
    progress: &ProgressBar,
) -> Result<(BarColumns, u64), SourceError> {
    let file = File::open(path).map_err(|e| cannot_read(name, &e))?;
    let counted = progress.wrap_read(file);
    let input: Box<dyn Read + Send> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            counted,
        )))
    } else {
        Box::new(counted)
    };
    let mut reader = CsvReader::from_reader(name, input, false)?;
    let native = reader.bar_interval();
    let interval = want.or(native).unwrap_or_default();
    if let Some(native) = native
        && native > interval
    {
        return Err(SourceError::Input(format!(
            "{name} has {native} bars, coarser than the requested --interval {interval}: use --interval {native} or finer data"
        )));
    }
    let mut aggregator = BarAggregator::new(interval, native);
    let mut bars = BarColumns::new(interval, true);
    let mut unfit: Option<String> = None;
    let mut on_bar = |event: BarEvent| {
        if let BarEvent::Closed(bar) = event
            && let Err(field) = bars.push(&bar)
            && unfit.is_none()
        {
            unfit = Some(format!(
                "{name}: the bar at {} has a {field} the backtester cannot hold exactly \
                 (it works in units of 0.00000001 up to 9999999999)",
                bar.ts
            ));
        }
    };
    while let Some(event) = reader.read_event()? {
        aggregator.on_event(&event, &mut on_bar);
    }
    aggregator.finish(&mut on_bar);
    if let Some(message) = unfit {
        return Err(SourceError::Input(message));
    }
    if bars.is_empty() {
        let what = match reader.kind() {
            CsvKind::Bars => "bars",
            CsvKind::Trades => "trades",
        };
        return Err(SourceError::Input(format!("{name}: no {what} to backtest")));
    }
    Ok((bars, reader.last_row_line()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(cache: CacheMode) -> LoadOptions {
        LoadOptions {
            interval: None,
            cache,
            detail: true,
        }
    }

    fn shared_data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
    }

    /// The fast reader and the engine's reader agree bar for bar on real files.
    #[test]
    fn fast_path_equals_the_engine_reader() {
        for file in [
            "btcusd_1m_20171217.csv",
            "btcusd_1m_20180404_20180406.csv",
            "btcusd_1m_20161007_20161009.csv",
            "xbtusdt_1m_kraken_rest_20251110_20251111.csv",
        ] {
            let path = shared_data(file);
            let fast = fast_csv::read(&path, None, true, &|_| {})
                .unwrap()
                .expect("plain bar file");
            let general = read_with_engine_reader(&path, file, false, None, &ProgressBar::hidden())
                .unwrap()
                .0;
            assert_eq!(fast, general, "{file}");
        }
        // Float noise in volumes (as in exported data) is rounded alike on both paths.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noisy.csv");
        std::fs::write(
            &path,
            "ts,open,high,low,close,volume\n60,5,6,4,5.5,218102.59507500002\n120,5,5,5,5,0.000000015\n\
             180,5,5,5,5,0.000000025\n240,5,5,5,5,3.00000000500001\n",
        )
        .unwrap();
        let fast = fast_csv::read(&path, None, true, &|_| {})
            .unwrap()
            .expect("plain bar file");
        let general = read_with_engine_reader(&path, "noisy.csv", false, None, &ProgressBar::hidden())
            .unwrap()
            .0;
        assert_eq!(fast, general);
    }

    #[test]
    fn gzip_and_cache_give_the_same_bars() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("bars.csv");
        std::fs::copy(shared_data("btcusd_1m_20171217.csv"), &plain).unwrap();
        let gz = dir.path().join("bars.csv.gz");
        let mut encoder = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(&std::fs::read(&plain).unwrap()).unwrap();
        encoder.finish().unwrap();

        let hidden = ProgressBar::hidden();
        let first = load(&plain, &opts(CacheMode::Auto), &hidden).unwrap();
        assert_eq!(first.path, LoadPath::FastCsv);
        assert_eq!(first.bars.len(), 1440);
        assert_eq!(first.cache_written, Some(Ok(cache::path_for(&plain))));
        let second = load(&plain, &opts(CacheMode::Auto), &hidden).unwrap();
        assert_eq!(second.path, LoadPath::Cache);
        assert_eq!(second.bars, first.bars);
        let refreshed = load(&plain, &opts(CacheMode::Refresh), &hidden).unwrap();
        assert_eq!(refreshed.path, LoadPath::FastCsv);
        let zipped = load(&gz, &opts(CacheMode::Off), &hidden).unwrap();
        assert_eq!((zipped.path, zipped.cache_written), (LoadPath::Reader, None));
        assert_eq!(zipped.bars, first.bars);

        // Five-minute bars from the one-minute file: the aggregator's work, then cached apart.
        let five = LoadOptions {
            interval: Interval::from_secs(300),
            ..opts(CacheMode::Auto)
        };
        let resampled = load(&plain, &five, &hidden).unwrap();
        assert_eq!((resampled.path, resampled.bars.len()), (LoadPath::Reader, 288));
        assert_eq!(load(&plain, &five, &hidden).unwrap().path, LoadPath::Cache);
        assert_eq!(
            load(&plain, &opts(CacheMode::Auto), &hidden).unwrap().path,
            LoadPath::FastCsv
        );
    }

    #[test]
    fn trades_become_one_minute_bars() {
        let path = shared_data("btcusd_trades_kraken_20190701.csv");
        let loaded = load(&path, &opts(CacheMode::Off), &ProgressBar::hidden()).unwrap();
        assert_eq!(loaded.path, LoadPath::Reader);
        assert_eq!(loaded.bars.interval, Interval::ONE_MINUTE);
        assert!((50..=61).contains(&loaded.bars.len()), "{}", loaded.bars.len());
    }
}
