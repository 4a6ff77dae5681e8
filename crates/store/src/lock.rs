//! One writer per data directory: a writing command holds an exclusive OS lock (`flock` on Linux,
//! through std's `File::try_lock`) on `nanotrader.lock` in the data directory for as long as it
//! runs. The kernel releases the lock when the process ends in any way, SIGKILL included, so a lock
//! file left behind never blocks the next start. The file is never deleted: deleting it would let a
//! second process lock a new file while the first still holds the old one. It holds the holder's
//! pid, so a refused command can say which process has the directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DB_FILE, StoreError, io_reason};

/// The lock file inside the data directory.
pub const LOCK_FILE: &str = "nanotrader.lock";

/// How long a refused command waits for the holder to write its pid: the holder writes it right
/// after taking the lock, so an empty file only means the two started at the same moment.
const PID_WRITE_WAIT: Duration = Duration::from_secs(1);

/// Proof that this process is the data directory's one writer; the lock is released when the last
/// clone is dropped (or the process ends).
#[derive(Clone, Debug)]
pub struct DataDirLock {
    held: Arc<Held>,
}

#[derive(Debug)]
struct Held {
    dir: PathBuf,
    /// Open for as long as the lock is held: closing it releases the lock.
    _file: File,
}

impl DataDirLock {
    /// Creates `dir` if needed and takes its lock, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unusable(format!(
                "cannot create data directory {}: {}",
                dir.display(),
                io_reason(&e)
            ))
        })?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                StoreError::Unusable(format!(
                    "cannot open store {} for writing: cannot create its lock file {}: {} (the data directory and \
                     its files must be writable: a read-only disk or directory cannot hold a store)",
                    dir.join(DB_FILE).display(),
                    path.display(),
                    io_reason(&e)
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_pid(&mut file).map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"));
                return Err(StoreError::Unusable(format!(
                    "the data dir {} is in use by another nanotrader ({holder}); stop it or use --data-dir",
                    dir.display()
                )));
            }
            Err(TryLockError::Error(e)) => {
                return Err(StoreError::Unusable(format!(
                    "cannot lock the data dir {} ({}): {}",
                    dir.display(),
                    path.display(),
                    io_reason(&e)
                )));
            }
        }
        // The previous holder's pid (if any) is stale now: replace it with ours.
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .map_err(|e| {
                StoreError::Unusable(format!(
                    "cannot write the lock file {}: {}",
                    path.display(),
                    io_reason(&e)
                ))
            })?;
        Ok(Self {
            held: Arc::new(Held {
                dir: dir.to_path_buf(),
                _file: file,
            }),
        })
    }

    /// The locked data directory.
    pub fn dir(&self) -> &Path {
        &self.held.dir
    }
}

/// The holder's pid from the lock file, waiting briefly for a holder that has only just locked it.
fn read_pid(file: &mut File) -> Option<u32> {
    let deadline = Instant::now() + PID_WRITE_WAIT;
    loop {
        let mut text = String::new();
        let pid = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .ok()
            .and_then(|_| text.trim().parse().ok());
        if pid.is_some() || Instant::now() >= deadline {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = DataDirLock::acquire(&data).unwrap();
        assert_eq!(
            std::fs::read_to_string(data.join(LOCK_FILE)).unwrap(),
            format!("{}\n", std::process::id())
        );
        // A second open file description conflicts even within one process, as another process's
        // would.
        let refused = DataDirLock::acquire(&data).unwrap_err().to_string();
        assert_eq!(
            refused,
            format!(
                "the data dir {} is in use by another nanotrader (pid {}); stop it or use --data-dir",
                data.display(),
                std::process::id()
            )
        );
        let clone = first.clone();
        drop(first);
        assert!(DataDirLock::acquire(&data).is_err(), "a clone keeps the lock");
        drop(clone);
        let again = DataDirLock::acquire(&data).unwrap();
        assert_eq!(again.dir(), data);
    }

    #[test]
    fn a_stale_lock_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        // What a killed holder leaves: the file with its pid, and no lock (the kernel dropped it).
        std::fs::write(dir.path().join(LOCK_FILE), "4194304\nleftover text\n").unwrap();
        let _lock = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            format!("{}\n", std::process::id()),
            "the stale pid is replaced"
        );
    }
}
