//! Crash safety: `nanotrader run` on a replay is killed with SIGKILL at random points and restarted
//! each time. After every kill the store must hold an exact prefix of an uninterrupted run: every
//! bar up to the last one processed (none missing, none extra), exactly the fills those bars made
//! (none lost, none duplicated, none changed), and books that equal the books rebuilt from those
//! fills. The last start runs to the end and must match the uninterrupted run in full.
//!
//! CI kills a few times per data set; `NANOTRADER_CRASH_KILLS=50` (and optionally
//! `NANOTRADER_CRASH_DATA=FILE`) gives the full count (see RELIABILITY.md and
//! bench/crash_safety.sh).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::store_check::*;
use common::{repo_file, stderr};
use rand::{Rng, SeedableRng};

/// Time a paced kill is aimed at after each start, at most (the run is paced to outlast them all).
const MAX_KILL_DELAY: Duration = Duration::from_millis(400);
const MIN_KILL_DELAY: Duration = Duration::from_millis(20);

/// How the killed run is driven.
#[derive(Copy, Clone, Debug)]
enum Pace {
    /// Paced so that processing every bar takes longer than all the kill delays together; each
    /// kill comes at a random time after the start: in the stream, between and during fills.
    Paced,
    /// As fast as it goes, over data made long enough to outlast the kills; each kill comes a
    /// random moment after the store has grown, while the writer is busy with the next
    /// transaction (at full speed it always is).
    Max,
}

/// Whether the store holds no run yet (the next start creates it).
fn no_run_yet(dir: &Path) -> bool {
    nanotrader::store::Store::open_existing(dir).is_ok_and(|store| store.runs().is_ok_and(|runs| runs.is_empty()))
}

/// Kills a replay of `data` `kills` times at random points, restarting it each time, then lets
/// it finish. Returns the progress seen at each kill.
fn kill_and_restart(data: &str, pace: Pace, kills: usize, seed: u64) -> Vec<Checked> {
    let work = tempfile::tempdir().unwrap();
    let (data, reference, speed) = match pace {
        Pace::Paced => {
            let reference = reference(data);
            let wall = (MAX_KILL_DELAY.as_secs_f64() * kills as f64 * 1.5).max(1.0);
            let span = reference.bars.last().unwrap().ts.secs() - reference.bars[0].ts.secs();
            (data.to_owned(), reference, format!("{:.0}", span as f64 / wall))
        }
        Pace::Max => {
            let long = work.path().join("long.csv");
            let bars = std::env::var("NANOTRADER_CRASH_BARS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(150_000);
            repeat_bars(Path::new(data), &long, bars);
            let long = long.display().to_string();
            (long.clone(), reference(&long), "max".to_owned())
        }
    };
    let data = data.as_str();
    let args = run_args(data, &speed);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut seen: Vec<Checked> = Vec::with_capacity(kills);
    for k in 0..kills {
        let mut child = spawn(dir.path(), &args);
        let started = Instant::now();
        let before = seen.last().map_or(0, |c| c.bars as u64);
        let delay = match pace {
            // Every other paced kill waits for the restarted run to store new bars first: on a
            // loaded machine a start can outlast every random delay, and the kills would then all
            // land in start-up. The other kills still land anywhere, start-up included.
            Pace::Paced if k % 2 == 1 => {
                wait_for_progress(dir.path(), before, &mut child);
                started.elapsed() + rng.random_range(Duration::ZERO..MAX_KILL_DELAY / 4)
            }
            Pace::Paced => rng.random_range(MIN_KILL_DELAY..MAX_KILL_DELAY),
            Pace::Max => {
                wait_for_progress(dir.path(), before, &mut child);
                started.elapsed() + rng.random_range(Duration::ZERO..Duration::from_millis(50))
            }
        };
        std::thread::sleep(delay.saturating_sub(started.elapsed()));
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!(
                "start {k} ended by itself ({status}) after {:?}: {err}",
                started.elapsed()
            );
        }
        child.kill().unwrap(); // SIGKILL: no clean-up of any kind
        child.wait().unwrap();
        if !dir.path().join("nanotrader.sqlite").exists() || no_run_yet(dir.path()) {
            // Killed in start-up, before the store or the run in it was created.
            seen.push(Checked { bars: 0, fills: 0 });
            continue;
        }
        seen.push(check_prefix(
            dir.path(),
            &reference,
            &format!("{data}: after kill {k} at {delay:?}"),
        ));
    }
    let out = spawn(dir.path(), &args).wait_with_output().unwrap();
    assert!(out.status.success(), "the last start failed: {}", stderr(&out));
    let checked = check_prefix(dir.path(), &reference, &format!("{data}: at the end"));
    assert_eq!(
        checked.bars,
        reference.bars.len(),
        "{data}: every bar is stored at the end"
    );
    assert_eq!(
        checked.fills,
        reference.fills.len(),
        "{data}: every fill is stored at the end"
    );
    let (_store, run, _, _) = stored(dir.path());
    assert_eq!(run.status.as_str(), "completed");
    eprintln!(
        "{data} ({pace:?}): {kills} kills, progress at each (bars/fills): {}",
        seen.iter()
            .map(|c| format!("{}/{}", c.bars, c.fills))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let progressed = seen.windows(2).filter(|w| w[1].bars > w[0].bars).count();
    assert!(
        progressed * 2 >= kills.saturating_sub(1),
        "{data}: the run must get on between kills: {seen:?}"
    );
    seen
}

/// Waits until the run in `dir` has stored more than `before` bars or has ended.
fn wait_for_progress(dir: &Path, before: u64, child: &mut std::process::Child) {
    let limit = Instant::now() + Duration::from_secs(60);
    while bars_seen(dir) <= before && child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < limit, "a restarted run stored no new bar in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes a bar file of at least `bars` rows: copies of `source` one after another in time.
fn repeat_bars(source: &Path, out: &Path, bars: usize) {
    let text = std::fs::read_to_string(source).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<(i64, &str)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (ts, rest) = l.split_once(',').unwrap();
            (ts.parse().unwrap(), rest)
        })
        .collect();
    let span = rows.last().unwrap().0 - rows[0].0 + 60;
    let mut csv = String::from(header);
    csv.push('\n');
    for copy in 0..bars.div_ceil(rows.len()).max(1) as i64 {
        for (ts, rest) in &rows {
            csv.push_str(&format!("{},{rest}\n", ts + copy * span));
        }
    }
    std::fs::write(out, csv).unwrap();
}

fn kills_from_env(default: usize) -> usize {
    std::env::var("NANOTRADER_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bar_data() -> String {
    std::env::var("NANOTRADER_CRASH_DATA").unwrap_or_else(|_| {
        repo_file("tests/data/btcusd_1m_20180404_20180406.csv")
            .display()
            .to_string()
    })
}

#[test]
fn killed_paced_replays_resume_exactly() {
    kill_and_restart(&bar_data(), Pace::Paced, kills_from_env(5), 7);
}

#[test]
fn killed_max_speed_replays_resume_exactly() {
    kill_and_restart(&bar_data(), Pace::Max, kills_from_env(3), 13);
}

/// Trades made into bars: a kill also loses the bar being formed, which a restart must rebuild
/// from the same trades.
#[test]
fn killed_trade_replays_resume_exactly() {
    let data = repo_file("tests/data/xbtusdt_trades_kraken_rest_20251110.csv")
        .display()
        .to_string();
    kill_and_restart(&data, Pace::Paced, kills_from_env(4), 11);
}
