//! Who may open a data directory: one writer at a time, readers anywhere.
//!
//! A writing command (`run`, `demo`, `history --store`) beside a running one is refused with one
//! line naming the holder's pid and exit 2, and the running one ends exactly as an uninterrupted
//! run; a lock file left by a killed run does not block the restart. The reading commands (`runs`,
//! `fills`, `bars`, `backtest --from-store`) take no lock: they work beside a running bot and on a
//! read-only file system, and never create a missing store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Two real days of 1-minute bars: the seed preset makes 150 fills over them.
const DATA: &str = "assets/btcusd_1m_20170903_20170904.csv";
/// The run under test lasts about 20 s at this pace, long enough to be tried against mid-run.
const PACED: &str = "9000";

fn run_args(speed: &str) -> Vec<String> {
    [
        "run",
        "--data",
        repo_file(DATA).to_str().unwrap(),
        "--preset",
        "seed",
        "--speed",
        speed,
        "--no-web",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn spawn_run(dir: &Path, speed: &str) -> Child {
    bin()
        .arg("--data-dir")
        .arg(dir)
        .args(run_args(speed))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nanotrader starts")
}

/// The fills of an uninterrupted run of the same command.
fn uninterrupted_fills() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(run_args("max"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fills = fills_csv(dir.path(), None);
    assert_eq!(fills.len(), 150);
    fills
}

/// Waits (reading beside the writer, as a person would) until the run has stored `min` fills.
fn wait_for_fills(dir: &Path, child: &mut Child, min: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the run ended too early");
        if dir.join("nanotrader.sqlite").exists() {
            let out = nanotrader(dir, &["fills", "--csv"]);
            if out.status.success() && stdout(&out).lines().count() > min {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no fills stored within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts `out` is a refusal naming `pid`: exit 2, one line, no panic.
fn assert_refused_by(out: &Output, what: &str, dir: &Path, pid: u32) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: exit code; stderr: {err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: the data dir {} is in use by another nanotrader (pid {pid}); stop it or use --data-dir",
            dir.display()
        ),
        "{what}: one line naming the holder"
    );
}

#[test]
fn a_second_writer_is_refused_and_the_first_run_ends_as_if_alone() {
    let expected = uninterrupted_fills();
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn_run(dir.path(), PACED);
    wait_for_fills(dir.path(), &mut first, 10);
    let pid = first.id();
    let lock_file = dir.path().join("nanotrader.lock");
    assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), format!("{pid}\n"));

    // The same command again: before this change it resumed the first's run beside it.
    let mut args = vec!["--data-dir".to_owned(), dir.path().display().to_string()];
    args.extend(run_args("max"));
    let second = bin().args(&args).output().unwrap();
    assert_refused_by(&second, "a second run", dir.path(), pid);
    let demo = nanotrader(dir.path(), &["demo", "--no-web"]);
    assert_refused_by(&demo, "demo", dir.path(), pid);
    // Refused before any request: the unreachable exchange is never asked.
    let history = nanotrader(
        dir.path(),
        &[
            "history",
            "--pair",
            "BTC/USD",
            "--since",
            "2017-09-03",
            "--store",
            "--kraken-rest-url",
            "http://127.0.0.1:9",
        ],
    );
    assert_refused_by(&history, "history --store", dir.path(), pid);

    // Readers take no lock: they read beside the writer.
    for args in [
        &["runs"][..],
        &["fills"],
        &["bars"],
        &["bars", "--csv"],
        &["backtest", "--from-store", "--pair", "BTC/USD", "--preset", "seed"],
    ] {
        let out = nanotrader(dir.path(), args);
        assert!(out.status.success(), "{args:?} beside the writer: {}", stderr(&out));
    }
    let runs = stdout(&nanotrader(dir.path(), &["runs"]));
    assert!(runs.contains("running"), "{runs}");

    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run is still running after the refusals (the test needs it mid-run)"
    );
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "the first run ends normally: {}", stderr(&out));
    assert!(stdout(&out).contains("nanotrader run 1 completed"), "{}", stdout(&out));
    assert_eq!(
        fills_csv(dir.path(), None),
        expected,
        "exactly the uninterrupted run's fills"
    );
    let runs = stdout(&nanotrader(dir.path(), &["runs"]));
    assert_eq!(
        runs.lines()
            .filter(|l| l.contains("completed") || l.contains("running"))
            .count(),
        1,
        "one run, no second one: {runs}"
    );
}

#[test]
fn a_killed_runs_lock_file_does_not_block_the_restart() {
    let expected = uninterrupted_fills();
    let dir = tempfile::tempdir().unwrap();
    let mut killed = spawn_run(dir.path(), PACED);
    wait_for_fills(dir.path(), &mut killed, 10);
    let pid = killed.id();
    killed.kill().unwrap(); // SIGKILL: the lock file stays, with the dead process's pid
    killed.wait().unwrap();
    let lock_file = dir.path().join("nanotrader.lock");
    assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), format!("{pid}\n"));

    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(run_args("max"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the restart gets the lock at once: {}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("nanotrader run 1 completed"), "{}", stdout(&out));
    assert_eq!(fills_csv(dir.path(), None), expected);
    assert_ne!(
        std::fs::read_to_string(&lock_file).unwrap(),
        format!("{pid}\n"),
        "the restart wrote its own pid"
    );
}

/// The reading commands, each with what a store of the seed run must show.
const READ_COMMANDS: &[&[&str]] = &[
    &["runs"],
    &["fills", "--csv"],
    &["fills"],
    &["bars"],
    &["bars", "--csv"],
    &[
        "backtest",
        "--from-store",
        "--pair",
        "BTC/USD",
        "--preset",
        "seed",
        "--json",
    ],
];

/// What each reading command prints for the store in `dir`.
fn read_all(dir: &Path) -> Vec<(String, Output)> {
    READ_COMMANDS
        .iter()
        .map(|args| (args.join(" "), nanotrader(dir, args)))
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A directory that cannot be written, holding copies of `files`: a tmpfs remounted read-only
/// (root), else one made read-only with chmod (which binds everyone but root).
struct ReadOnlyDir {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl ReadOnlyDir {
    fn with_copies(files: &[PathBuf]) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
            .arg(dir.path())
            .output()
            .is_ok_and(|o| o.status.success());
        let this = Self { dir, mounted };
        for file in files {
            std::fs::copy(file, this.path().join(file.file_name().unwrap())).unwrap();
        }
        if mounted {
            let out = Command::new("mount")
                .args(["-o", "remount,ro"])
                .arg(this.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "remount ro: {}", stderr(&out));
        } else {
            use std::os::unix::fs::PermissionsExt;
            for file in std::fs::read_dir(this.path()).unwrap() {
                std::fs::set_permissions(file.unwrap().path(), std::fs::Permissions::from_mode(0o444)).unwrap();
            }
            std::fs::set_permissions(this.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        if std::fs::write(this.path().join("probe"), b"x").is_ok() {
            assert!(
                std::env::var_os("NANOTRADER_REQUIRE_MOUNT").is_none(),
                "cannot make a read-only directory: no mount (needs root) and chmod does not bind root"
            );
            eprintln!("SKIPPED: cannot make a read-only directory (root without mount rights)");
            return None;
        }
        Some(this)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// The reading commands give the same answers from a read-only copy of the store in `original`
/// as from the original, and leave the copy as it was.
fn assert_reads_the_same(original: &Path, copy: &ReadOnlyDir, case: &str) {
    let expected = read_all(original);
    let before = names(&copy.path());
    for ((command, expected), (_, got)) in expected.iter().zip(read_all(&copy.path())) {
        assert!(
            got.status.success(),
            "{case}: `{command}` on a read-only file system: {}",
            stderr(&got)
        );
        // Only the store's path (some summaries name it) and the backtest's timings differ.
        let text = |o: &Output, dir: &Path| {
            let text = stdout(o).replace(&dir.display().to_string(), "DIR");
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(mut json) => {
                    json.as_object_mut().map(|o| o.remove("timings"));
                    json.to_string()
                }
                Err(_) => text,
            }
        };
        assert_eq!(
            text(&got, &copy.path()),
            text(expected, original),
            "{case}: `{command}`"
        );
    }
    assert_eq!(names(&copy.path()), before, "{case}: nothing created");
}

#[test]
fn readers_work_on_a_read_only_file_system_and_never_create_a_store() {
    // A finished store: the database file alone (the writer folded and removed its log).
    let finished = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--data-dir")
        .arg(finished.path())
        .args(run_args("max"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(finished.path()), ["nanotrader.lock", "nanotrader.sqlite"]);
    let db = finished.path().join("nanotrader.sqlite");
    let Some(copy) = ReadOnlyDir::with_copies(std::slice::from_ref(&db)) else {
        return;
    };
    assert_reads_the_same(finished.path(), &copy, "a finished store");
    // A writer is refused there with the reason.
    let mut args = vec!["--data-dir".to_owned(), copy.path().display().to_string()];
    args.extend(run_args("max"));
    let out = bin().args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("must be writable"), "{}", stderr(&out));
    drop(copy);

    // A killed run's store: its write-ahead log and WAL index beside it hold the latest fills.
    let killed = tempfile::tempdir().unwrap();
    let mut child = spawn_run(killed.path(), PACED);
    wait_for_fills(killed.path(), &mut child, 10);
    child.kill().unwrap();
    child.wait().unwrap();
    let files: Vec<PathBuf> = ["nanotrader.sqlite", "nanotrader.sqlite-wal", "nanotrader.sqlite-shm"]
        .iter()
        .map(|f| killed.path().join(f))
        .collect();
    assert!(files.iter().all(|f| f.is_file()), "{:?}", names(killed.path()));
    let Some(copy) = ReadOnlyDir::with_copies(&files) else {
        return;
    };
    let wal_only = ReadOnlyDir::with_copies(&files[..2]).expect("made read-only once already");
    let fills = stdout(&nanotrader(&copy.path(), &["fills", "--csv"]));
    assert!(fills.lines().count() > 10, "the killed run's fills are read: {fills}");
    assert_reads_the_same(killed.path(), &copy, "a killed run's store");

    // Its log without the index cannot be read where the index cannot be made: said in one line.
    let out = nanotrader(&wal_only.path(), &["fills", "--csv"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("nanotrader.sqlite-wal") && err.contains("where it is writable"),
        "{err}"
    );

    // No store: one line, and neither the directory nor a file is created.
    let nowhere = tempfile::tempdir().unwrap();
    let missing = nowhere.path().join("none");
    for args in READ_COMMANDS {
        let out = nanotrader(&missing, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("no store at"), "{args:?}: {err}");
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
}
