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
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{bin, repo_file, stderr};
use nanotrader::broker::{Account, Fill};
use nanotrader::market::{Bar, Timestamp};
use nanotrader::store::Store;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;

/// A strategy that trades often, and a fee, so most kills land near a fill.
const STRATEGY: &[&str] = &[
    "--short",
    "3",
    "--long",
    "8",
    "--fee-rate",
    "0.0026",
    "--sizing",
    "fraction:0.5",
];
/// Time a paced kill is aimed at after each start, at most (the run is paced to outlast them all).
const MAX_KILL_DELAY: Duration = Duration::from_millis(400);
const MIN_KILL_DELAY: Duration = Duration::from_millis(20);

/// What an uninterrupted run stored.
struct Reference {
    bars: Vec<Bar>,
    fills: Vec<Fill>,
}

/// What the store held after one kill.
#[derive(Debug)]
struct Checked {
    bars: usize,
    fills: usize,
}

fn run_args<'a>(data: &'a str, speed: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "run", "--source", "replay", "--data", data, "--speed", speed, "--no-web", "-q",
    ];
    args.extend_from_slice(STRATEGY);
    args
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    bin()
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the nanotrader binary starts")
}

fn stored(dir: &Path) -> (Store, nanotrader::store::RunRecord, Vec<Bar>, Vec<Fill>) {
    let store = Store::open_existing(dir).expect("the store opens after a kill");
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1, "a restart resumes the run instead of starting another");
    let run = runs.into_iter().next().unwrap();
    let mut bars = Vec::new();
    store
        .for_each_bar(
            run.series_id,
            Timestamp::from_secs(0),
            Timestamp::from_secs(i64::MAX / 2_000_000_000),
            |b| bars.push(b),
        )
        .unwrap();
    let fills = store.fills(run.id).unwrap();
    (store, run, bars, fills)
}

fn reference(data: &str) -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("--data-dir")
        .arg(dir.path())
        .args(run_args(data, "max"))
        .output()
        .unwrap();
    assert!(out.status.success(), "reference run failed: {}", stderr(&out));
    let (_store, run, bars, fills) = stored(dir.path());
    assert_eq!(run.status.as_str(), "completed");
    assert!(
        fills.len() >= 20,
        "the strategy must trade for the test to mean anything"
    );
    Reference { bars, fills }
}

/// The store after a kill is an exact prefix of the uninterrupted run.
fn check_prefix(dir: &Path, reference: &Reference, context: &str) -> Checked {
    let (store, run, bars, fills) = stored(dir);
    // Bars: exactly those of the reference up to the last bar the run says it processed.
    let last = run.last_bar_ts;
    let expected_bars = reference
        .bars
        .iter()
        .take_while(|b| last.is_some_and(|l| b.ts <= l))
        .count();
    assert_eq!(
        bars.len(),
        expected_bars,
        "{context}: stored bars vs bars processed (last {last:?})"
    );
    assert_eq!(
        bars[..],
        reference.bars[..expected_bars],
        "{context}: stored bars differ"
    );
    // Fills: exactly those the processed bars made, with the same ids, amounts and outcomes.
    let expected_fills = reference
        .fills
        .iter()
        .take_while(|f| last.is_some_and(|l| f.ts <= l))
        .count();
    assert_eq!(fills.len(), expected_fills, "{context}: a fill was lost or duplicated");
    assert_eq!(
        fills[..],
        reference.fills[..expected_fills],
        "{context}: stored fills differ"
    );
    assert_eq!(
        run.next_order_id,
        fills.last().map_or(1, |f| f.order_id + 1),
        "{context}: next order id"
    );
    // Books: the account rebuilt from the fills is the one every fill and snapshot recorded.
    let account = Account::rebuild(run.initial_cash, &fills);
    if let Some(f) = fills.last() {
        assert_eq!(
            (account.cash(), account.position()),
            (f.cash_after, f.position_after),
            "{context}"
        );
    }
    // Snapshots are periodic: the last one holds the books after the fills up to its time.
    if let Some((ts, cash, position)) = last_snapshot(&store, run.id) {
        let then = Account::rebuild(run.initial_cash, fills.iter().take_while(|f| f.ts <= ts));
        assert_eq!(
            (cash, position),
            (then.cash(), then.position()),
            "{context}: last snapshot"
        );
    }
    Checked {
        bars: bars.len(),
        fills: fills.len(),
    }
}

fn last_snapshot(store: &Store, run_id: i64) -> Option<(Timestamp, Decimal, Decimal)> {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.query_row(
        "SELECT ts, cash, position FROM account_snapshots WHERE run_id = ?1 ORDER BY ts DESC LIMIT 1",
        [run_id],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
    )
    .ok()
    .map(|(ts, c, p)| (Timestamp::from_millis(ts), c.parse().unwrap(), p.parse().unwrap()))
}

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
        let delay = match pace {
            Pace::Paced => rng.random_range(MIN_KILL_DELAY..MAX_KILL_DELAY),
            Pace::Max => {
                let before = seen.last().map_or(0, |c| c.bars as u64);
                while bars_seen(dir.path()) <= before && child.try_wait().unwrap().is_none() {
                    std::thread::sleep(Duration::from_millis(5));
                }
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
        if !dir.path().join("nanotrader.sqlite").exists() {
            seen.push(Checked { bars: 0, fills: 0 }); // killed before the store was created
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

/// The run's processed bar count as stored, read while it runs (0 before there is a run).
fn bars_seen(dir: &Path) -> u64 {
    let path = dir.join("nanotrader.sqlite");
    if !path.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| {
            c.query_row("SELECT bars_seen FROM runs ORDER BY id LIMIT 1", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map_or(0, |n| n as u64)
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
