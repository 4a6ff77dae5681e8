//! Store faults on a real SQLite file under a real `nanotrader run`: the database locked by another
//! process mid-run, the disk filling up mid-run (a small tmpfs), the disk turning read-only mid-run
//! (ext4 on a loop device, after a file-system error), and stores that cannot be used at start (a
//! corrupt file, a truncated file, a read-only file system).
//!
//! While writes fail the engine must say so (log and dashboard), keep following the market, retry
//! with back-off, and never announce a fill the store does not hold; once the fault clears the
//! store must hold exactly what an uninterrupted run stores. A store that cannot be used at start
//! is refused with a clear error and left byte for byte as it was.
//!
//! The disk and read-only cases mount file systems, which needs root (CAP_SYS_ADMIN); elsewhere
//! they say they are skipped, unless `NANOTRADER_REQUIRE_MOUNT=1` makes that a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::running::Running;
use common::store_check::*;
use common::{bin, repo_file, stderr, stdout, webhook_receiver};
use serde_json::Value;

const DATA: &str = "tests/data/btcusd_1m_20180404_20180406.csv";
/// Market seconds per wall second: the data's two days in about 25 s, so faults land mid-run.
const SPEED: &str = "7000";
/// Bars stored before a fault is staged: the strategy trades often in the hour after them.
const BARS_BEFORE_FAULT: u64 = 600;
/// How long a fault is held.
const FAULT_FOR: Duration = Duration::from_secs(4);

fn data() -> String {
    repo_file(DATA).display().to_string()
}

/// A paced replay with the dashboard on, so the test can watch its status while the store fails.
fn start_run(dir: &Path) -> Running {
    let data = data();
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["run", "--source", "replay", "--data", &data, "--speed", SPEED])
        .args(STRATEGY);
    Running::start(cmd)
}

/// The uninterrupted run's result, and the run under test once it has stored
/// `BARS_BEFORE_FAULT` bars.
fn start_with_bars_stored(dir: &Path) -> (Reference, Running) {
    let reference = reference(&data());
    let app = start_run(dir);
    wait_until("bars are stored", Duration::from_secs(30), || {
        bars_seen(dir) >= BARS_BEFORE_FAULT
    });
    (reference, app)
}

fn status(app: &Running) -> Value {
    let (code, body) = app.get_json("/api/status");
    assert_eq!(code, 200, "/api/status: {body}");
    body["status"].clone()
}

fn count(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("status has no {key}: {v}"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fills the store holds, read on `conn` (inside its transaction when it holds one).
fn stored_fills(conn: &rusqlite::Connection) -> u64 {
    conn.query_row("SELECT COUNT(*) FROM fills", [], |r| r.get::<_, i64>(0))
        .unwrap() as u64
}

/// What was seen while a fault was held.
struct DuringFault {
    /// Bars the engine closed while the store could not be written.
    bars_closed: u64,
    /// The most fills the dashboard ever announced, and the fills the store held meanwhile.
    most_announced: u64,
    stored: u64,
    failing_seen: Option<String>,
}

/// Watches the dashboard for `FAULT_FOR` while a fault holds the store at `stored` fills.
fn watch_fault(app: &Running, stored: u64) -> DuringFault {
    let first = status(app);
    let mut seen = DuringFault {
        bars_closed: 0,
        most_announced: 0,
        stored,
        failing_seen: None,
    };
    let until = Instant::now() + FAULT_FOR;
    let mut last = first.clone();
    while Instant::now() < until {
        let now = status(app);
        seen.most_announced = seen.most_announced.max(count(&now, "fills"));
        if now["store"] == "failing" {
            seen.failing_seen = now["store_error"].as_str().map(str::to_owned);
        }
        last = now;
        std::thread::sleep(Duration::from_millis(50));
    }
    seen.bars_closed = count(&last, "bars") - count(&first, "bars");
    seen
}

/// What must hold for a fault that cleared mid-run: the stream went on, nothing unstored was
/// announced, the failure was reported and cleared, and the run ends exactly like an
/// uninterrupted one.
fn check_recovery(case: &str, app: Running, dir: &Path, during: DuringFault, error_words: &str, reference: &Reference) {
    assert!(
        during.bars_closed >= 50,
        "the engine kept following the market while the store failed ({} bars)",
        during.bars_closed
    );
    assert!(
        during.most_announced <= during.stored,
        "announced {} fills while the store held {}",
        during.most_announced,
        during.stored
    );
    let reason = during.failing_seen.expect("the dashboard said the store was failing");
    assert!(reason.contains(error_words), "store error on the dashboard: {reason}");
    wait_until("the store works again", Duration::from_secs(20), || {
        status(&app)["store"] == "ok"
    });
    // The fills made during the fault, now stored, are announced (the dashboard counts them as
    // its hub takes them in).
    let stored_now = {
        let reader = rusqlite::Connection::open_with_flags(
            dir.join("nanotrader.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        stored_fills(&reader)
    };
    assert!(stored_now > during.stored, "fills were made during the fault");
    wait_until("the stored fills are announced", Duration::from_secs(10), || {
        count(&status(&app), "fills") >= stored_now
    });
    let after = status(&app);
    let log_so_far = app.stderr_so_far();
    let out = app.wait(Duration::from_secs(120));
    assert!(
        out.status.success(),
        "the run ends normally: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        log.matches("store writes failing").count(),
        1,
        "the failure is logged once: {log}"
    );
    assert!(log.contains(error_words), "the log says why: {log}");
    assert!(
        log_so_far.contains("store writes work again"),
        "the recovery is logged: {log}"
    );
    let checked = check_prefix(dir, reference, "after the fault");
    assert_eq!(checked.bars, reference.bars.len(), "every bar is stored");
    assert_eq!(checked.fills, reference.fills.len(), "every fill is stored, once");
    let recovered = log_so_far
        .lines()
        .find(|l| l.contains("store writes work again"))
        .unwrap_or_default();
    eprintln!(
        "{case}: {} bars closed during the fault, at most {} fills announced while {} were stored, {} announced \
         once stored again; {}",
        during.bars_closed,
        during.most_announced,
        during.stored,
        count(&after, "fills"),
        recovered.split_once("INFO ").map_or(recovered, |(_, rest)| rest)
    );
}

#[test]
fn a_database_locked_by_another_process_is_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, app) = start_with_bars_stored(dir.path());

    // Another process takes the write lock and keeps it (WAL readers still read).
    let mut other = rusqlite::Connection::open(dir.path().join("nanotrader.sqlite")).unwrap();
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let stored = stored_fills(&lock);
    let during = watch_fault(&app, stored);
    assert_eq!(stored_fills(&lock), stored, "nothing was written past the lock");
    lock.rollback().unwrap();

    check_recovery("locked", app, dir.path(), during, "locked", &reference);
}

/// The kinds of the alerts received so far, in order.
fn alert_kinds(got: &std::sync::Mutex<Vec<Value>>) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// `--notify-url`: a store outage (the database locked by another process) and its recovery
/// reach the webhook once each, however many times the writer retries meanwhile, between the
/// run's start and stop, with the run's id and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_and_its_recovery_are_alerted_once_each() {
    let (url, got) = webhook_receiver().await;
    let received = got.clone();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let data = data();
        let mut cmd = bin();
        cmd.arg("--data-dir")
            .arg(dir.path())
            .args(["run", "--source", "replay", "--data", &data, "--speed", SPEED])
            .args(STRATEGY)
            .args(["--notify-url", &url]);
        let app = Running::start(cmd);
        wait_until("bars are stored", Duration::from_secs(30), || {
            bars_seen(dir.path()) >= BARS_BEFORE_FAULT
        });

        let mut other = rusqlite::Connection::open(dir.path().join("nanotrader.sqlite")).unwrap();
        let lock = other
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .unwrap();
        wait_until("the outage is alerted", Duration::from_secs(20), || {
            alert_kinds(&received).iter().any(|k| k == "store_down")
        });
        // Held a while longer: the writer keeps retrying, and no alert more is sent for it.
        std::thread::sleep(FAULT_FOR);
        lock.rollback().unwrap();
        wait_until("the recovery is alerted", Duration::from_secs(20), || {
            alert_kinds(&received).iter().any(|k| k == "store_up")
        });
        let out = app.interrupt();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    })
    .await
    .unwrap();

    let kinds = alert_kinds(&got);
    let store: Vec<&str> = kinds
        .iter()
        .map(String::as_str)
        .filter(|k| k.starts_with("store_"))
        .collect();
    assert_eq!(store, ["store_down", "store_up"], "one each: {kinds:?}");
    let at = |kind: &str| kinds.iter().position(|k| k == kind).unwrap();
    assert!(
        at("started") < at("store_down") && at("store_up") < at("stopped"),
        "{kinds:?}"
    );
    let events = got.lock().unwrap().clone();
    let run = events[at("started")]["run"].as_i64().unwrap();
    let down = &events[at("store_down")];
    let up = &events[at("store_up")];
    assert_eq!((down["run"].as_i64(), up["run"].as_i64()), (Some(run), Some(run)));
    assert!(down["detail"].as_str().unwrap().contains("locked"), "{down}");
    assert!(down["text"].as_str().unwrap().starts_with("Store down: "), "{down}");
    assert!(up["text"].as_str().unwrap().starts_with("Store back: "), "{up}");
}

// ---------------------------------------------------------------------------------------------
// Faults that need a file system of our own.

/// Says why a test that needs to mount a file system cannot run here.
fn skip<T>(why: &str) -> Option<T> {
    assert!(
        std::env::var_os("NANOTRADER_REQUIRE_MOUNT").is_none(),
        "cannot mount a file system: {why}"
    );
    eprintln!("SKIPPED: cannot mount a file system (needs root): {why}");
    None
}

/// A small tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or says why it cannot (not root) and returns `None`.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self { dir }),
            other => skip(&match other {
                Ok(o) => stderr(&o),
                Err(e) => e.to_string(),
            }),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {options}: {}", stderr(&out));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Writes a file until the file system is full; returns its path.
fn fill_up(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "the disk fills up (ENOSPC): {e}");
                break;
            }
        }
    }
    // The last few bytes: small writes until nothing fits.
    while file.write(&[0x5a]).is_ok_and(|n| n == 1) {}
    path
}

#[test]
fn a_full_disk_is_waited_out() {
    let Some(disk) = Tmpfs::mount("48m") else { return };
    let dir = disk.path().join("store");
    let (reference, app) = start_with_bars_stored(&dir);

    let filler = fill_up(&disk.path());
    // The write-ahead log reuses its space for a while; the first failure comes once it must grow.
    wait_until("the store reports the full disk", Duration::from_secs(20), || {
        status(&app)["store"] == "failing"
    });
    let reader = rusqlite::Connection::open_with_flags(
        dir.join("nanotrader.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let stored = stored_fills(&reader);
    let during = watch_fault(&app, stored);
    let still = stored_fills(&reader);
    let during = DuringFault {
        stored: still,
        ..during
    };
    std::fs::remove_file(filler).unwrap();

    check_recovery("disk full", app, &dir, during, "full", &reference);
}

/// Runs `nanotrader run` on a store that cannot be used; returns its one-line error.
fn refused_at_start(dir: &Path) -> String {
    let data = data();
    let out = bin()
        .arg("--data-dir")
        .arg(dir)
        .args([
            "run", "--source", "replay", "--data", &data, "--speed", "max", "--no-web",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a store that cannot be used is refused: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "no panic: {err}"
    );
    assert!(err.contains("nanotrader.sqlite"), "the error names the file: {err}");
    err
}

/// A finished store of the test data, as bytes.
fn finished_store() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "run", "--source", "replay", "--data", &data, "--speed", "max", "--no-web",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(dir.path().join("nanotrader.sqlite")).unwrap()
}

#[test]
fn a_corrupt_store_is_refused_and_left_as_it_was() {
    let good = finished_store();
    let mut garbage = vec![0u8; 64 * 1024];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    let mut bad_header = good.clone();
    bad_header[..16].copy_from_slice(b"not sqlite at al");
    let truncated = good[..good.len() / 2].to_vec();
    // Data pages scribbled over, the schema's left whole (the first pages): damage only the
    // whole-file check at start finds.
    let mut scribbled = good.clone();
    let pages = scribbled.len() / 4096;
    for page in pages / 2..pages {
        scribbled[page * 4096..page * 4096 + 64].fill(0xee);
    }
    for (name, bytes, words) in [
        ("random bytes", garbage, "not a database"),
        ("a damaged header", bad_header, "not a database"),
        ("a truncated file", truncated, "malformed"),
        ("scribbled pages", scribbled, "btreeInitPage"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nanotrader.sqlite");
        std::fs::write(&file, &bytes).unwrap();
        let err = refused_at_start(dir.path());
        assert!(err.contains(words), "{name}: {err}");
        assert!(
            err.contains("is damaged") && err.contains("leaves it as it is"),
            "{name}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line: {err}");
        assert!(
            std::fs::read(&file).unwrap() == bytes,
            "{name}: the file is left as it was"
        );
    }
}

#[test]
fn a_read_only_store_is_refused_and_left_as_it_was() {
    let Some(disk) = Tmpfs::mount("16m") else { return };
    let good = finished_store();
    let file = disk.path().join("nanotrader.sqlite");
    std::fs::write(&file, &good).unwrap();
    disk.remount("ro");
    let err = refused_at_start(&disk.path());
    assert!(err.contains("must be writable"), "{err}");
    assert!(std::fs::read(&file).unwrap() == good, "the file is left as it was");
    disk.remount("rw");
}

#[test]
fn a_stop_during_a_store_outage_waits_for_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, app) = start_with_bars_stored(dir.path());
    let db = dir.path().join("nanotrader.sqlite");
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let mut other = rusqlite::Connection::open(db).unwrap();
        let lock = other
            .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
            .unwrap();
        locked_tx.send(stored_fills(&lock)).unwrap();
        std::thread::sleep(FAULT_FOR);
        lock.rollback().unwrap();
    });
    let stored_at_lock = locked.recv().unwrap();
    let bars_at_lock = count(&status(&app), "bars");
    wait_until("the store reports the lock", Duration::from_secs(10), || {
        status(&app)["store"] == "failing"
    });
    wait_until("the engine goes on past the lock", Duration::from_secs(10), || {
        count(&status(&app), "bars") >= bars_at_lock + 150
    });
    // Ctrl-C while nothing can be written: the stop waits for the store instead of dropping steps.
    let out = app.interrupt();
    holder.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("the engine has stopped; retrying"), "{log}");
    assert!(log.contains("store writes work again"), "{log}");
    let checked = check_prefix(dir.path(), &reference, "stopped during the outage");
    assert!(
        checked.fills > stored_at_lock as usize,
        "the fills made during the outage were stored at the stop ({} then {})",
        stored_at_lock,
        checked.fills
    );
}

/// An ext4 file system on a loop device, mounted with `errors=remount-ro` like many a server's
/// root; unmounted when dropped.
struct Ext4 {
    image: tempfile::NamedTempFile,
    dir: tempfile::TempDir,
}

impl Ext4 {
    fn mount() -> Option<Self> {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(64 << 20).unwrap();
        let made = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image.path()).output();
        if !made.as_ref().is_ok_and(|o| o.status.success()) {
            return skip(&format!("mkfs.ext4: {made:?}"));
        }
        let dir = tempfile::tempdir().unwrap();
        let fs = Self { image, dir };
        fs.mount_image().map_or(Some(fs), |why| skip(&why))
    }

    fn mount_image(&self) -> Option<String> {
        let out = Command::new("mount")
            .args(["-o", "loop,errors=remount-ro"])
            .arg(self.image.path())
            .arg(self.dir.path())
            .output()
            .ok()?;
        (!out.status.success()).then(|| stderr(&out))
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// What happens when the kernel meets an error on the disk: the file system turns read-only
    /// under the open store (ext4's own test hook for that).
    fn fail(&self) {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(self.dir.path())
            .output()
            .unwrap();
        let device = stdout(&out);
        let device = device.trim().trim_start_matches("/dev/");
        std::fs::write(format!("/sys/fs/ext4/{device}/trigger_fs_error"), "1").unwrap();
    }

    /// What an operator does next: unmount, check, mount again.
    fn repair(&self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
        let out = Command::new("fsck.ext4")
            .args(["-y"])
            .arg(self.image.path())
            .output()
            .unwrap();
        // 0: clean, 1: errors corrected.
        assert!(matches!(out.status.code(), Some(0 | 1)), "fsck: {}", stderr(&out));
        assert!(self.mount_image().is_none(), "the repaired disk mounts again");
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_disk_turned_read_only_mid_run_loses_nothing() {
    let Some(disk) = Ext4::mount() else { return };
    let dir = disk.path().join("store");
    let (reference, app) = start_with_bars_stored(&dir);
    let reader = rusqlite::Connection::open_with_flags(
        dir.join("nanotrader.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    stored_fills(&reader);

    disk.fail();
    wait_until("the store reports the read-only disk", Duration::from_secs(20), || {
        status(&app)["store"] == "failing"
    });
    let stored = stored_fills(&reader);
    let during = watch_fault(&app, stored);
    assert!(
        during.bars_closed >= 50,
        "the engine kept following the market ({} bars)",
        during.bars_closed
    );
    assert!(
        during.most_announced <= stored,
        "announced {} fills while the store held {stored}",
        during.most_announced
    );
    let reason = during.failing_seen.expect("the dashboard said why");
    assert!(reason.contains("readonly") || reason.contains("I/O"), "{reason}");
    drop(reader);

    // The disk will not come back by itself: stop, give up on the unstored steps (Ctrl-C twice),
    // repair the disk, and start the same command again.
    let pid = app.child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    wait_until("the stop waits for the store", Duration::from_secs(10), || {
        app.stderr_so_far().contains("the engine has stopped; retrying")
    });
    let out = app.interrupt();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    disk.repair();
    check_prefix(&dir, &reference, "after the read-only disk was repaired");

    let data = data();
    let out = bin()
        .arg("--data-dir")
        .arg(&dir)
        .args([
            "run", "--source", "replay", "--data", &data, "--speed", "max", "--no-web",
        ])
        .args(STRATEGY)
        .output()
        .unwrap();
    assert!(out.status.success(), "the run resumes: {}", stderr(&out));
    let checked = check_prefix(&dir, &reference, "resumed after the repair");
    assert_eq!(checked.bars, reference.bars.len(), "every bar is stored");
    assert_eq!(checked.fills, reference.fills.len(), "every fill is stored, once");
    eprintln!(
        "read-only disk: {} bars closed during the fault, at most {} fills announced while {stored} were stored \
         (dashboard: {reason}); after repair and restart {} bars and {} fills, as uninterrupted",
        during.bars_closed, during.most_announced, checked.bars, checked.fills
    );
}
