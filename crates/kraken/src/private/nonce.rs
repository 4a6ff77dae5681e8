//! Nonces for one API key: milliseconds since the epoch, strictly increasing within the
//! process and across restarts, and owned by one process at a time.
//!
//! Kraken refuses a nonce not above the last one it accepted for the key, so a restart must
//! not go back: the file holds a high-water mark at or above every nonce ever handed out. It is
//! reserved [`NONCE_RESERVE`] ahead and rewritten (atomically, with fsync) only when a nonce
//! would pass it, so signing does not wait for the disk on every request. A restart starts above
//! the mark, whatever the clock says. With [`NonceSource::renewed_ahead`] a thread of its own
//! moves the mark on before half the reserve is used, so no request waits for the disk at all
//! (a live broker's AddOrder would otherwise pay two fsyncs once every 10 s).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use super::credentials::Credentials;

/// How far ahead of the nonce handed out the stored mark is put (10 s of milliseconds): one
/// fsync per 10 s of use at most, and a restart jumps at most this far ahead of the clock.
pub const NONCE_RESERVE: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NonceError {
    /// Another `NonceSource` (most likely another process) uses this file: two users of one key
    /// would refuse each other's nonces.
    #[error("the nonce file {0} is in use by another process with the same Kraken key")]
    Locked(PathBuf),
    #[error("nonce file {path}: {message}")]
    Io { path: PathBuf, message: String },
    /// Not a number: refused rather than restarted from the clock, which could go back.
    #[error("nonce file {path} holds {text:?}, not a nonce")]
    Corrupt { path: PathBuf, text: String },
}

struct State {
    last: u64,
    /// What the file says: never below `last`.
    mark: u64,
}

pub struct NonceSource {
    inner: Arc<Inner>,
    /// Holds the exclusive lock until dropped. A file beside the mark, because the mark file is
    /// replaced by rename and a lock on it would stay with the old file.
    _lock: File,
}

/// What the renewing thread shares with the source.
struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    /// The mark durably in the file; held while the file is written, so writes never cross
    /// and the mark in the file never goes back.
    stored: Mutex<u64>,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// How often the renewing thread looks at the mark.
const RENEW_EVERY: Duration = Duration::from_secs(1);

impl std::fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceSource")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl NonceSource {
    /// The file name for a key's nonces: named by the key's fingerprint, never the key.
    pub fn file_name(credentials: &Credentials) -> String {
        format!("kraken-nonce-{}", credentials.fingerprint())
    }

    /// Opens (or creates) the nonce file at `path`, locked for this process.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, NonceError> {
        Self::open_with_clock(path, now_ms)
    }

    /// As [`open`](Self::open) with another clock (milliseconds since the epoch), for tests.
    pub fn open_with_clock(
        path: impl Into<PathBuf>,
        clock: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<Self, NonceError> {
        let path = path.into();
        let io = |e: std::io::Error| NonceError::Io {
            path: path.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(with_suffix(&path, ".lock"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(NonceError::Locked(path)),
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mark = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<u64>().map_err(|_| NonceError::Corrupt {
                path: path.clone(),
                text: text.chars().take(40).collect(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(e)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                state: Mutex::new(State { last: mark, mark }),
                stored: Mutex::new(mark),
                clock: Box::new(clock),
            }),
            _lock: lock,
        })
    }

    /// The mark kept ahead by a thread of its own (it ends with the source): every `RENEW_EVERY`
    /// it moves the mark to `NONCE_RESERVE` past the clock once less than half the reserve is
    /// left, so `next` finds it ahead and never waits for the disk (unless that thread could
    /// not keep up: then `next` moves it itself, as without this).
    pub fn renewed_ahead(self) -> Self {
        let inner: Weak<Inner> = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new().name("nonce mark".into()).spawn(move || {
            loop {
                std::thread::sleep(RENEW_EVERY);
                let Some(inner) = inner.upgrade() else { return };
                if let Err(e) = inner.renew() {
                    tracing::warn!("nonce mark not moved ahead ({e}); the next request moves it");
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!("nonce mark not kept ahead ({e}): requests move it when it is passed");
        }
        self
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The mark nonces are handed out under (stored in the file before it is used).
    #[cfg(test)]
    fn mark(&self) -> u64 {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner()).mark
    }

    /// The next nonce: `max(now_ms, last + 1)`, after moving the stored mark past it if needed.
    pub fn next(&self) -> Result<u64, NonceError> {
        let inner = &*self.inner;
        // A poisoned lock only means a panic elsewhere; the numbers in it are still valid.
        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let nonce = (inner.clock)().max(state.last + 1);
        if nonce > state.mark {
            let mark = nonce.saturating_add(NONCE_RESERVE);
            inner.store_at_least(mark)?;
            state.mark = mark;
        }
        state.last = nonce;
        Ok(nonce)
    }
}

impl Inner {
    /// Moves the mark to `NONCE_RESERVE` past the clock when less than half the reserve is left.
    /// Nonces go on meanwhile under the mark already stored.
    fn renew(&self) -> Result<(), NonceError> {
        let due = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let from = (self.clock)().max(state.last);
            (from.saturating_add(NONCE_RESERVE / 2) > state.mark).then(|| from.saturating_add(NONCE_RESERVE))
        };
        let Some(mark) = due else { return Ok(()) };
        self.store_at_least(mark)?;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.mark = state.mark.max(mark);
        Ok(())
    }

    /// The file's mark made at least `mark` (durably); never lowered.
    fn store_at_least(&self, mark: u64) -> Result<(), NonceError> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if *stored >= mark {
            return Ok(());
        }
        self.store(mark)?;
        *stored = mark;
        Ok(())
    }

    /// Replaces the file with `mark`: write a temporary file, fsync, rename over, fsync the
    /// directory, so a crash leaves the old mark or the new one, never a torn one.
    fn store(&self, mark: u64) -> Result<(), NonceError> {
        let io = |e: std::io::Error| NonceError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        };
        let tmp = with_suffix(&self.path, ".tmp");
        let mut file = File::create(&tmp).map_err(io)?;
        writeln!(file, "{mark}").map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn clock(start: u64) -> (Arc<AtomicU64>, impl Fn() -> u64 + Send + Sync + 'static) {
        let now = Arc::new(AtomicU64::new(start));
        let read = now.clone();
        (now, move || read.load(Ordering::SeqCst))
    }

    fn stored(path: &Path) -> u64 {
        std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
    }

    #[test]
    fn increasing_with_a_still_clock_and_the_mark_always_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonce");
        let (now, c) = clock(1_000_000);
        let source = NonceSource::open_with_clock(&path, c).unwrap();
        let mut last = 0;
        for step in 0..50 {
            if step % 10 == 0 {
                now.fetch_add(3_000, Ordering::SeqCst);
            }
            let n = source.next().unwrap();
            assert!(n > last, "{n} after {last}");
            assert!(stored(&path) >= n, "the file is ahead of {n}");
            last = n;
        }
        assert_eq!(source.next().unwrap(), last + 1);
    }

    #[test]
    fn the_file_is_rewritten_only_when_the_reserve_is_used_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonce");
        let (now, c) = clock(1_000);
        let source = NonceSource::open_with_clock(&path, c).unwrap();
        assert_eq!(source.next().unwrap(), 1_000);
        assert_eq!(stored(&path), 1_000 + NONCE_RESERVE);
        now.store(1_000 + NONCE_RESERVE, Ordering::SeqCst);
        assert_eq!(source.next().unwrap(), 1_000 + NONCE_RESERVE);
        assert_eq!(stored(&path), 1_000 + NONCE_RESERVE, "still inside the reserve");
        now.store(1_001 + NONCE_RESERVE, Ordering::SeqCst);
        assert_eq!(source.next().unwrap(), 1_001 + NONCE_RESERVE);
        assert_eq!(stored(&path), 1_001 + 2 * NONCE_RESERVE);
    }

    #[test]
    fn renewed_ahead_the_mark_moves_before_a_nonce_reaches_it_and_never_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonce");
        let (now, c) = clock(1_000);
        let source = NonceSource::open_with_clock(&path, c).unwrap().renewed_ahead();
        assert_eq!(source.next().unwrap(), 1_000);
        assert_eq!(stored(&path), 1_000 + NONCE_RESERVE);
        // Less than half the reserve left: the thread moves the mark on by itself.
        let later = 1_001 + NONCE_RESERVE / 2;
        now.store(later, Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while source.mark() != later + NONCE_RESERVE {
            assert!(std::time::Instant::now() < deadline, "the mark is moved ahead");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(stored(&path), later + NONCE_RESERVE, "stored before it is used");
        // The nonces under it need no write; the file never goes back.
        now.store(1_000 + NONCE_RESERVE + 1, Ordering::SeqCst);
        assert_eq!(source.next().unwrap(), 1_001 + NONCE_RESERVE);
        assert_eq!(stored(&path), later + NONCE_RESERVE);
        drop(source);
        // A restart starts above the moved mark.
        let (_, c) = clock(0);
        let again = NonceSource::open_with_clock(&path, c).unwrap();
        assert_eq!(again.next().unwrap(), later + NONCE_RESERVE + 1);
    }

    #[test]
    fn a_restart_never_goes_back_even_with_the_clock_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonce");
        let (_, c) = clock(5_000_000);
        let first = NonceSource::open_with_clock(&path, c).unwrap();
        let handed: Vec<u64> = (0..5).map(|_| first.next().unwrap()).collect();
        drop(first);
        // The clock went back an hour (NTP step, another machine's image): still above.
        let (_, behind) = clock(5_000_000 - 3_600_000);
        let second = NonceSource::open_with_clock(&path, behind).unwrap();
        let n = second.next().unwrap();
        assert!(n > *handed.last().unwrap(), "{n} after {handed:?}");
        assert!(n > 5_000_000 + NONCE_RESERVE - 1, "starts above the stored mark: {n}");
        assert!(second.next().unwrap() > n);
    }

    #[test]
    fn a_stored_mark_ahead_of_the_clock_is_where_nonces_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonce");
        std::fs::write(&path, "1762820235000\n").unwrap();
        let (_, c) = clock(1_000);
        let source = NonceSource::open_with_clock(&path, c).unwrap();
        assert_eq!(source.next().unwrap(), 1_762_820_235_001);
        assert_eq!(source.next().unwrap(), 1_762_820_235_002);
    }

    #[test]
    fn a_second_opener_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("nonce");
        let first = NonceSource::open(&path).unwrap();
        let n = first.next().unwrap();
        assert_eq!(NonceSource::open(&path).unwrap_err(), NonceError::Locked(path.clone()));
        drop(first);
        let again = NonceSource::open(&path).unwrap();
        assert!(again.next().unwrap() > n);
    }

    #[test]
    fn a_corrupt_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nonce");
        std::fs::write(&path, "twelve\n").unwrap();
        assert_eq!(
            NonceSource::open(&path).unwrap_err(),
            NonceError::Corrupt {
                path,
                text: "twelve\n".into()
            }
        );
    }

    #[test]
    fn the_file_name_does_not_contain_the_key() {
        let creds = Credentials::new("my-very-secret-key", &"A".repeat(88)).unwrap();
        let name = NonceSource::file_name(&creds);
        assert_eq!(name, format!("kraken-nonce-{}", creds.fingerprint()));
        assert!(!name.contains("secret"));
    }
}
