//! Loading history for a backtest: from the binary cache when it is fresh, else from the CSV
//! (plain, read in place, or gzip, inflated into memory) through the parallel reader
//! (`fast_csv`), which takes every layout and falls back row by row; the few files only the
//! streaming path can decide go through the engine's own reader and bar aggregator, so the bars
//! are always exactly those a replay of the file would close.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::ProgressBar;

use super::cache::{self, CacheKey};
use super::columns::BarColumns;
use super::fast_csv;
use super::mapped::{self, MappedText};
use nanotrader_market::csv::cannot_read;
use nanotrader_market::{BarAggregator, BarEvent, ColumnSpec, CsvKind, CsvOptions, CsvReader, Interval, SourceError};

/// The cache folder's default bound.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 2 << 30;

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
    /// Where caches live (`DATA_DIR/cache`); `None` keeps none.
    pub cache_dir: Option<PathBuf>,
    /// The most the cache folder may hold; the least recently used caches go first.
    pub cache_max_bytes: u64,
    /// Also load open, high, low, volume and trade counts (reports, per-bar strategies).
    pub detail: bool,
    /// `--columns`, for layouts the file does not tell.
    pub columns: Option<ColumnSpec>,
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
            LoadPath::Reader => "CSV (streaming reader)",
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
    /// The file as mapped for reading, kept until the caller lets it go (`MappedText::release`).
    pub text: Option<MappedText>,
}

/// Loads `path` as bars; errors name the file (and the line, for bad rows).
pub fn load(path: &Path, opts: &LoadOptions, progress: &ProgressBar) -> Result<Loaded, SourceError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| cannot_read(&name, &e))?;
    if meta.is_dir() {
        return Err(SourceError::Input(format!("{name} is a directory, not a CSV file")));
    }
    let columns_text = opts.columns.as_ref().map(ToString::to_string);
    let key = CacheKey::from_metadata(path, &meta, opts.interval, columns_text.as_deref())
        .map_err(|e| cannot_read(&name, &e))?;
    let cache_path = opts.cache_dir.as_deref().map(|dir| cache::path_for(dir, &key));
    if opts.cache == CacheMode::Auto
        && let Some(cache_path) = &cache_path
    {
        match cache::read(cache_path, key, opts.detail) {
            Ok(Some(bars)) => {
                cache::touch(cache_path);
                return Ok(Loaded {
                    bars,
                    path: LoadPath::Cache,
                    cache_written: None,
                    last_line: None,
                    text: None,
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("ignoring the cache {}: {e}", cache_path.display()),
        }
    }
    progress.set_length(meta.len());
    let gzip = is_gzip(path).map_err(|e| cannot_read(&name, &e))?;
    let file = File::open(path).map_err(|e| cannot_read(&name, &e))?;
    let mapped = if gzip {
        None
    } else {
        mapped::map(&file).map_err(|e| cannot_read(&name, &e))?
    };
    let inflated;
    let text: Option<&[u8]> = match &mapped {
        Some(map) => Some(map),
        None if gzip => {
            inflated = inflate(file, &name, progress)?;
            Some(&inflated)
        }
        // Not a regular file (a pipe): read as a stream.
        None => None,
    };
    let fast = match text {
        Some(text) => {
            let scale = |bytes: u64| if gzip { meta.len() } else { bytes };
            fast_csv::read(
                text,
                &name,
                opts.interval,
                opts.detail,
                opts.columns.as_ref(),
                &|bytes| progress.set_position(scale(bytes)),
            )?
        }
        None => fast_csv::FastRead::General,
    };
    // The map is handed to the caller, which lets it go once its work is done (`MappedText`).
    let text = mapped.map(MappedText::new);
    let (bars, load_path, last_line) = match fast {
        fast_csv::FastRead::Bars(loaded) => {
            let loaded = *loaded;
            (loaded.bars, LoadPath::FastCsv, loaded.last_line)
        }
        fast_csv::FastRead::General => {
            progress.set_position(0);
            let csv = CsvOptions {
                skip_bad_rows: false,
                columns: opts.columns.clone(),
            };
            let (bars, last_line) = read_with_engine_reader(path, &name, gzip, opts.interval, &csv, progress)?;
            (bars, LoadPath::Reader, last_line)
        }
    };
    progress.set_position(meta.len());
    let cache_written = match (&cache_path, opts.cache) {
        (Some(cache_path), CacheMode::Auto | CacheMode::Refresh) => Some(
            cache::write(cache_path, key, &bars)
                .map(|()| {
                    if let Some(dir) = cache_path.parent()
                        && let Err(e) = cache::evict(dir, opts.cache_max_bytes, cache_path)
                    {
                        tracing::warn!("cannot trim the cache folder {}: {e}", dir.display());
                    }
                    cache_path.clone()
                })
                .map_err(|e| format!("cannot write {}: {e}", cache_path.display())),
        ),
        _ => None,
    };
    let mut bars = bars;
    if !opts.detail {
        bars.detail = None;
    }
    Ok(Loaded {
        bars,
        path: load_path,
        cache_written,
        last_line: Some(last_line),
        text,
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

/// A gzip file's text, whole, for the parallel reader (it takes as much memory as the text).
fn inflate(file: File, name: &str, progress: &ProgressBar) -> Result<Vec<u8>, SourceError> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 16, progress.wrap_read(file)))
        .read_to_end(&mut text)
        .map_err(|e| cannot_read(name, &e))?;
    Ok(text)
}

/// The engine's path: `CsvReader` (any layout, bars or trades, checked row by row) and the
/// `BarAggregator` at the requested interval.
pub fn read_with_engine_reader(
    path: &Path,
    name: &str,
    gzip: bool,
    want: Option<Interval>,
    csv: &CsvOptions,
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
    let mut reader = CsvReader::from_reader_with(name, input, csv)?;
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

    fn opts(cache: CacheMode, dir: &Path) -> LoadOptions {
        LoadOptions {
            interval: None,
            cache,
            cache_dir: Some(dir.join("cache")),
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            detail: true,
            columns: None,
        }
    }

    fn shared_data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data")
            .join(name)
    }

    fn streaming(path: &Path, want: Option<Interval>) -> BarColumns {
        let name = path.display().to_string();
        read_with_engine_reader(path, &name, false, want, &CsvOptions::default(), &ProgressBar::hidden())
            .unwrap()
            .0
    }

    /// The parallel reader and the engine's streaming reader agree bar for bar on real files,
    /// bars and trades, at their own interval and merged.
    #[test]
    fn parallel_path_equals_the_engine_reader() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "btcusd_1m_20171217.csv",
            "btcusd_1m_20180404_20180406.csv",
            "btcusd_1m_20161007_20161009.csv",
            "xbtusdt_1m_kraken_rest_20251110_20251111.csv",
            "btcusd_trades_kraken_20190701.csv",
            "xbtusdt_trades_kraken_rest_20251110.csv",
        ] {
            let path = shared_data(file);
            for want in [None, Interval::from_secs(300), Interval::from_secs(3600)] {
                let loaded = load(
                    &path,
                    &LoadOptions {
                        interval: want,
                        ..opts(CacheMode::Off, dir.path())
                    },
                    &ProgressBar::hidden(),
                )
                .unwrap();
                assert_eq!(loaded.path, LoadPath::FastCsv, "{file} at {want:?}");
                assert_eq!(loaded.bars, streaming(&path, want), "{file} at {want:?}");
            }
        }
        // Float noise in volumes (as in exported data) is rounded alike on both paths.
        let path = dir.path().join("noisy.csv");
        std::fs::write(
            &path,
            "ts,open,high,low,close,volume\n60,5,6,4,5.5,218102.59507500002\n120,5,5,5,5,0.000000015\n\
             180,5,5,5,5,0.000000025\n240,5,5,5,5,3.00000000500001\n",
        )
        .unwrap();
        let loaded = load(&path, &opts(CacheMode::Off, dir.path()), &ProgressBar::hidden()).unwrap();
        assert_eq!(loaded.path, LoadPath::FastCsv);
        assert_eq!(loaded.bars, streaming(&path, None));
    }

    #[test]
    fn gzip_and_cache_give_the_same_bars_and_the_users_folder_stays_as_it_was() {
        use std::io::Write;
        let data_dir = tempfile::tempdir().unwrap();
        let users = tempfile::tempdir().unwrap();
        let plain = users.path().join("bars.csv");
        std::fs::copy(shared_data("btcusd_1m_20171217.csv"), &plain).unwrap();
        let gz = users.path().join("bars.csv.gz");
        let mut encoder = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        encoder.write_all(&std::fs::read(&plain).unwrap()).unwrap();
        encoder.finish().unwrap();
        let listing = || {
            let mut names: Vec<_> = std::fs::read_dir(users.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing();

        let hidden = ProgressBar::hidden();
        let auto = opts(CacheMode::Auto, data_dir.path());
        let first = load(&plain, &auto, &hidden).unwrap();
        assert_eq!(first.path, LoadPath::FastCsv);
        assert_eq!(first.bars.len(), 1440);
        let written = first.cache_written.clone().unwrap().unwrap();
        assert!(
            written.starts_with(data_dir.path().join("cache")),
            "{}",
            written.display()
        );
        let second = load(&plain, &auto, &hidden).unwrap();
        assert_eq!(second.path, LoadPath::Cache);
        assert_eq!(second.bars, first.bars);
        let refreshed = load(&plain, &opts(CacheMode::Refresh, data_dir.path()), &hidden).unwrap();
        assert_eq!(refreshed.path, LoadPath::FastCsv);
        let zipped = load(&gz, &opts(CacheMode::Off, data_dir.path()), &hidden).unwrap();
        assert_eq!((zipped.path, zipped.cache_written), (LoadPath::FastCsv, None));
        assert_eq!(zipped.bars, first.bars);

        // Five-minute bars from the one-minute file, cached apart.
        let five = LoadOptions {
            interval: Interval::from_secs(300),
            ..opts(CacheMode::Auto, data_dir.path())
        };
        let resampled = load(&plain, &five, &hidden).unwrap();
        assert_eq!((resampled.path, resampled.bars.len()), (LoadPath::FastCsv, 288));
        assert_eq!(resampled.bars, streaming(&plain, Interval::from_secs(300)));
        assert_eq!(load(&plain, &five, &hidden).unwrap().path, LoadPath::Cache);
        assert_eq!(load(&plain, &auto, &hidden).unwrap().path, LoadPath::Cache);
        // A changed file is read again.
        let mut text = std::fs::read_to_string(&plain).unwrap();
        text.push_str("1513555200,19000,19000,19000,19000,1\n");
        std::fs::write(&plain, text).unwrap();
        let grown = load(&plain, &auto, &hidden).unwrap();
        assert_eq!((grown.path, grown.bars.len()), (LoadPath::FastCsv, 1441));

        assert_eq!(listing(), before, "nothing written beside the user's files");
        // Bounded: with room for one cache, only the newest stays.
        let tight = LoadOptions {
            cache_max_bytes: 1,
            ..opts(CacheMode::Auto, data_dir.path())
        };
        load(&gz, &tight, &hidden).unwrap();
        let caches = std::fs::read_dir(data_dir.path().join("cache")).unwrap().count();
        assert_eq!(caches, 1);
    }

    #[test]
    fn trades_become_one_minute_bars() {
        let dir = tempfile::tempdir().unwrap();
        let path = shared_data("btcusd_trades_kraken_20190701.csv");
        let loaded = load(&path, &opts(CacheMode::Off, dir.path()), &ProgressBar::hidden()).unwrap();
        assert_eq!(loaded.path, LoadPath::FastCsv);
        assert_eq!(loaded.bars.interval, Interval::ONE_MINUTE);
        assert!((50..=61).contains(&loaded.bars.len()), "{}", loaded.bars.len());
    }
}
