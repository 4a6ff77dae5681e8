//! A compact binary copy of loaded bars, so the second backtest of a file skips text parsing: a
//! 64-byte header, then each column as little-endian integers, read straight into the column
//! vectors. Caches live under the data dir (`DATA_DIR/cache/`, never beside the user's file),
//! one per source path, interval and `--columns`, named by a hash of those; one is used only
//! while the source file has the same size and modification time; anything else rebuilds it.
//! The folder is bounded in size: the least recently used caches are removed first.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::columns::{BarColumns, BarDetail, Column};
use super::mapped;
use nanotrader_market::Interval;

// Version 2: bar times in milliseconds (version 1 held seconds).
const MAGIC: &[u8; 8] = b"NTBARS\x00\x02";
const HEADER_BYTES: usize = 64;
const HAS_DETAIL: u64 = 1;

/// What the cache must match to stand for the source file.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    pub source_len: u64,
    pub source_mtime_ns: i64,
    /// The interval asked for, 0 for the file's own.
    pub requested_secs: i64,
    /// A hash of the source's full path and the `--columns` it is read with.
    pub source_hash: u64,
}

impl CacheKey {
    pub fn of(source: &Path, requested: Option<Interval>, columns: Option<&str>) -> io::Result<Self> {
        Self::from_metadata(source, &fs::metadata(source)?, requested, columns)
    }

    /// The key for a source file already looked at.
    pub fn from_metadata(
        source: &Path,
        meta: &fs::Metadata,
        requested: Option<Interval>,
        columns: Option<&str>,
    ) -> io::Result<Self> {
        let mtime = meta.modified()?;
        let source_mtime_ns = match mtime.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
        };
        // The same file by any relative name; a path that cannot be resolved is used as given.
        let full = fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&full, &mut hasher);
        std::hash::Hash::hash(&columns, &mut hasher);
        Ok(Self {
            source_len: meta.len(),
            source_mtime_ns,
            requested_secs: requested.map_or(0, Interval::secs),
            source_hash: std::hash::Hasher::finish(&hasher),
        })
    }

    /// The cache file's name: one per source, interval and columns. (`DefaultHasher` may change
    /// with the toolchain; a changed name only costs one rebuild, and the old file is evicted.)
    fn file_name(&self) -> String {
        format!("{:016x}-{}.ntbars", self.source_hash, self.requested_secs)
    }
}

/// The caches' folder under the data dir.
pub fn dir_in(data_dir: &Path) -> PathBuf {
    data_dir.join("cache")
}

/// The cache file for `key` in `dir`.
pub fn path_for(dir: &Path, key: &CacheKey) -> PathBuf {
    dir.join(key.file_name())
}

/// Marks a cache as just used (its modification time), so eviction takes the least recently
/// used first. A read-only data dir just keeps the old order.
pub fn touch(cache: &Path) {
    if let Ok(file) = File::options().append(true).open(cache) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// Removes the least recently used caches in `dir` until they take at most `max_bytes`, never
/// `keep` (the one just written); returns how many were removed.
pub fn evict(dir: &Path, max_bytes: u64, keep: &Path) -> io::Result<usize> {
    let mut caches: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "ntbars") {
            continue;
        }
        let meta = entry.metadata()?;
        caches.push((meta.modified()?, meta.len(), path));
    }
    let mut total: u64 = caches.iter().map(|c| c.1).sum();
    caches.sort();
    let mut removed = 0;
    for (_, len, path) in caches {
        if total <= max_bytes {
            break;
        }
        if path == keep {
            continue;
        }
        if fs::remove_file(&path).is_ok() {
            total -= len;
            removed += 1;
        }
    }
    Ok(removed)
}

struct Header {
    key: CacheKey,
    interval_secs: i64,
    rows: usize,
    flags: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut out = [0u8; HEADER_BYTES];
        out[..8].copy_from_slice(MAGIC);
        let fields = [
            self.key.source_len as i64,
            self.key.source_mtime_ns,
            self.key.requested_secs,
            self.interval_secs,
            self.rows as i64,
            self.flags as i64,
            self.key.source_hash as i64,
        ];
        for (i, value) in fields.iter().enumerate() {
            out[8 + i * 8..16 + i * 8].copy_from_slice(&value.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8; HEADER_BYTES]) -> Option<Self> {
        if &bytes[..8] != MAGIC {
            return None;
        }
        let field = |i: usize| i64::from_le_bytes(bytes[8 + i * 8..16 + i * 8].try_into().expect("8 bytes"));
        Some(Self {
            key: CacheKey {
                source_len: field(0) as u64,
                source_mtime_ns: field(1),
                requested_secs: field(2),
                source_hash: field(6) as u64,
            },
            interval_secs: field(3),
            rows: usize::try_from(field(4)).ok()?,
            flags: field(5) as u64,
        })
    }
}

/// The cached bars if the cache matches `key`; `Ok(None)` when there is none or it is stale.
/// The columns are read in place from a memory map (see `mapped`); without `detail`, only times
/// and closes are touched.
pub fn read(cache: &Path, key: CacheKey, detail: bool) -> io::Result<Option<BarColumns>> {
    if !cfg!(target_endian = "little") {
        return Ok(None);
    }
    let file = match File::open(cache) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Pages are mapped as they are first read: a backtest that keeps no fills never reads the
    // time column, and mapping it up front would cost more than the faults it saves.
    let Some(map) = mapped::map(&file)? else {
        return Ok(None);
    };
    let Some(header) = map
        .get(..HEADER_BYTES)
        .and_then(|raw| Header::decode(raw.try_into().ok()?))
    else {
        return Ok(None);
    };
    let Some(interval) = Interval::from_secs(header.interval_secs) else {
        return Ok(None);
    };
    let n = header.rows;
    let has_detail = header.flags & HAS_DETAIL != 0;
    let row_bytes = if has_detail { 6 * 8 + 4 } else { 2 * 8 };
    let expected_len = HEADER_BYTES as u64 + n as u64 * row_bytes;
    if header.key != key || map.len() as u64 != expected_len || (detail && !has_detail) {
        return Ok(None);
    }
    let column_bytes = n * 8;
    let at = |k: usize| HEADER_BYTES + k * column_bytes;
    let columns = (|| {
        let ts = Column::mapped(&map, at(0), n)?;
        let close = Column::mapped(&map, at(1), n)?;
        let detail = if detail {
            Some(BarDetail {
                open: Column::mapped(&map, at(2), n)?,
                high: Column::mapped(&map, at(3), n)?,
                low: Column::mapped(&map, at(4), n)?,
                volume: Column::mapped(&map, at(5), n)?,
                trades: Column::mapped(&map, at(6), n)?,
            })
        } else {
            None
        };
        Some(BarColumns {
            interval,
            ts,
            close,
            detail,
        })
    })();
    Ok(columns)
}

/// Writes the cache atomically (a temporary file renamed over the old one): times and closes,
/// and the other columns when the bars have them.
pub fn write(cache: &Path, key: CacheKey, bars: &BarColumns) -> io::Result<()> {
    if !cfg!(target_endian = "little") {
        return Ok(());
    }
    let header = Header {
        key,
        interval_secs: bars.interval.secs(),
        rows: bars.len(),
        flags: if bars.detail.is_some() { HAS_DETAIL } else { 0 },
    };
    if let Some(dir) = cache.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut tmp_name = cache.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let written = (|| {
        let mut out = io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        out.write_all(&header.encode())?;
        out.write_all(bytemuck::cast_slice(&bars.ts))?;
        out.write_all(bytemuck::cast_slice(&bars.close))?;
        if let Some(detail) = &bars.detail {
            for column in [&detail.open, &detail.high, &detail.low, &detail.volume] {
                out.write_all(bytemuck::cast_slice(column))?;
            }
            out.write_all(bytemuck::cast_slice(&detail.trades))?;
        }
        // No fsync: a cache lost in a crash is stale by its length and is rebuilt.
        out.into_inner().map_err(|e| e.into_error())?.flush()
    })();
    match written.and_then(|()| fs::rename(&tmp, cache)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> BarColumns {
        BarColumns {
            interval: Interval::ONE_MINUTE,
            ts: vec![60_000, 120_000, 180_000].into(),
            close: vec![5, 6, 7].into(),
            detail: Some(BarDetail {
                open: vec![4, 5, 6].into(),
                high: vec![8, 9, 10].into(),
                low: vec![1, 2, 3].into(),
                volume: vec![0, 1, 2].into(),
                trades: vec![3, 2, 1].into(),
            }),
        }
    }

    #[test]
    fn round_trips_and_refuses_a_stale_or_damaged_cache() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("bars.csv");
        fs::write(&source, "whatever").unwrap();
        let key = CacheKey::of(&source, None, None).unwrap();
        let cache = path_for(&dir.path().join("cache"), &key);
        // Another path, or other columns, is another cache.
        assert_ne!(CacheKey::of(&source, None, Some("1,2,3,4,5,6")).unwrap(), key);
        fs::copy(&source, dir.path().join("same.csv")).unwrap();
        assert_ne!(
            CacheKey::of(&dir.path().join("same.csv"), None, None)
                .unwrap()
                .source_hash,
            key.source_hash
        );
        assert_eq!(
            CacheKey::of(&dir.path().join(".").join("bars.csv"), None, None).unwrap(),
            key
        );
        assert!(read(&cache, key, true).unwrap().is_none());
        write(&cache, key, &bars()).unwrap();
        assert_eq!(read(&cache, key, true).unwrap(), Some(bars()));
        let light = read(&cache, key, false).unwrap().unwrap();
        assert_eq!(
            (light.ts.to_vec(), light.close.to_vec(), light.detail),
            (vec![60_000, 120_000, 180_000], vec![5, 6, 7], None)
        );

        let other_interval = CacheKey {
            requested_secs: 300,
            ..key
        };
        assert!(read(&cache, other_interval, true).unwrap().is_none());
        let grown = CacheKey {
            source_len: key.source_len + 1,
            ..key
        };
        assert!(read(&cache, grown, true).unwrap().is_none());
        let bytes = fs::read(&cache).unwrap();
        fs::write(&cache, &bytes[..bytes.len() - 1]).unwrap();
        assert!(read(&cache, key, true).unwrap().is_none());

        // Times and closes only: enough for a strategy, not for a report.
        let mut light = bars();
        light.detail = None;
        write(&cache, key, &light).unwrap();
        assert_eq!(read(&cache, key, false).unwrap(), Some(light));
        assert!(read(&cache, key, true).unwrap().is_none());
    }

    #[test]
    fn the_least_recently_used_caches_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (i, name) in ["a.ntbars", "b.ntbars", "c.ntbars"].iter().enumerate() {
            let path = dir.path().join(name);
            fs::write(&path, vec![0u8; 1000]).unwrap();
            let file = File::options().append(true).open(&path).unwrap();
            file.set_modified(old + std::time::Duration::from_secs(i as u64))
                .unwrap();
        }
        fs::write(dir.path().join("notes.txt"), vec![0u8; 5000]).unwrap();
        // `a` is the oldest, but was just used.
        touch(&dir.path().join("a.ntbars"));
        let keep = dir.path().join("c.ntbars");
        assert_eq!(evict(dir.path(), 2000, &keep).unwrap(), 1);
        let left: Vec<bool> = ["a.ntbars", "b.ntbars", "c.ntbars", "notes.txt"]
            .iter()
            .map(|n| dir.path().join(n).exists())
            .collect();
        assert_eq!(left, [true, false, true, true]);
        // The one just written stays even when alone it is too big.
        assert_eq!(evict(dir.path(), 10, &keep).unwrap(), 1);
        assert!(keep.exists() && !dir.path().join("a.ntbars").exists());
    }
}
