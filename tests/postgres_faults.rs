//! PostgreSQL faults against a running bot (issue 19, point 5): the server restarted mid-run
//! (cleanly, and once as a crash), a network partition between the bot and the server (a relay
//! of the test's own that stops forwarding without closing anything), and several bots sharing
//! one database killed with -9 at random. Each ends with exactly the fills and bars of an
//! uninterrupted run into SQLite, with no duplicate.
//!
//! The restart test runs a PostgreSQL 15 cluster of its own (initdb and pg_ctl in a temp dir, on
//! an ephemeral port; run as the `postgres` user when the test runs as root), never the
//! machine's shared server; the others make a database of their own on the shared server. With
//! no server (or no PostgreSQL 15 binaries) they are skipped with a loud message, unless
//! `NANOTRADER_REQUIRE_POSTGRES=1` (CI) makes that a failure.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg::TestDb;
use common::running::drain;
use common::*;

const DATA_2018: &str = "tests/data/btcusd_1m_20180404_20180406.csv";
/// A strategy that trades often, with a fee, so exact decimals with many digits are stored.
const FEES: &[&str] = &[
    "--short",
    "3",
    "--long",
    "8",
    "--fee-rate",
    "0.0026",
    "--sizing",
    "fraction:0.5",
];
/// Every wait on a condition gives up after this: generous, the machine is shared.
const PATIENCE: Duration = Duration::from_secs(180);

fn required() -> bool {
    std::env::var("NANOTRADER_REQUIRE_POSTGRES").as_deref() == Ok("1")
}

/// Polls `done` every 50 ms until it holds, failing with `what` after [`PATIENCE`].
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `nanotrader` whose output is collected as it comes.
struct Bot {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Bot {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nanotrader starts");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        drain(child.stdout.take().unwrap(), Arc::clone(&stdout));
        drain(child.stderr.take().unwrap(), Arc::clone(&stderr));
        Self { child, stdout, stderr }
    }

    fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// How much it has written to stderr so far (for [`Bot::err_since`]).
    fn err_len(&self) -> usize {
        self.stderr.lock().unwrap().len()
    }

    /// What it wrote to stderr after `offset` bytes.
    fn err_since(&self, offset: usize) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()[offset..]).into_owned()
    }

    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn count(&self, words: &str) -> usize {
        self.err().matches(words).count()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for `words` to be said `times` times in all, the process still running.
    fn wait_said(&mut self, words: &str, times: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count(words) < times {
            assert!(
                self.running(),
                "the bot ended before saying '{words}' {times} times: {}",
                self.err()
            );
            assert!(
                Instant::now() < deadline,
                "the bot did not say '{words}' {times} times in {PATIENCE:?}: {}",
                self.err()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The drains see the pipes close with the process.
                std::thread::sleep(Duration::from_millis(200));
                return status;
            }
            assert!(Instant::now() < deadline, "the bot did not end: {}", self.err());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory in KiB, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A status line's figures: bars closed, fills stored, steps waiting for the store.
#[derive(Copy, Clone, Debug, PartialEq)]
struct Status {
    bars: u64,
    fills: u64,
    store_lag: u64,
}

/// Every `status ...: ..., N bars, N fills, ..., store lag N bars` line of `log`, in order.
fn statuses(log: &str) -> Vec<Status> {
    let number = |s: &str| s.replace(',', "").trim().parse::<u64>().ok();
    log.lines()
        .filter(|l| l.contains("status ") && l.contains("store lag"))
        .filter_map(|l| {
            let parts: Vec<&str> = l.split(", ").collect();
            let bars = parts
                .iter()
                .find(|p| p.ends_with(" bars") && !p.starts_with("store lag"))
                .and_then(|p| number(p.trim_end_matches(" bars")))?;
            let fills = parts
                .iter()
                .find(|p| p.ends_with(" fills"))
                .and_then(|p| number(p.trim_end_matches(" fills")))?;
            let store_lag = parts
                .iter()
                .find_map(|p| p.strip_prefix("store lag "))
                .and_then(|p| number(p.split_whitespace().next()?))?;
            Some(Status { bars, fills, store_lag })
        })
        .collect()
}

/// `nanotrader --data-dir DIR --db-url URL run --data DATA --speed SPEED --no-web` + `extra`.
fn bot_run(url: &str, dir: &Path, data: &str, speed: &str, extra: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.arg("--data-dir")
        .arg(dir)
        .arg("--db-url")
        .arg(url)
        .args(["run", "--data", data, "--speed", speed, "--no-web"])
        .args(extra);
    cmd
}

/// `fills --csv` or `bars --csv` of run `run` (the latest when `None`) in the database at `url`.
fn export(url: &str, what: &str, run: Option<i64>) -> String {
    let mut cmd = bin();
    cmd.args(["--db-url", url, what, "--csv"]);
    let id = run.map(|r| r.to_string());
    if let Some(id) = &id {
        cmd.args(["--run", id]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{what} --csv: {}", stderr(&out));
    stdout(&out)
}

/// Fills and bars of an uninterrupted run into SQLite: what every run here must end with.
fn sqlite_twin(data: &str, extra: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["run", "--data", data, "--speed", "max", "--no-web", "-q"];
    args.extend_from_slice(extra);
    let out = nanotrader(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let export = |what| {
        let out = nanotrader(dir.path(), &[what, "--csv"]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    (export("fills"), export("bars"))
}

fn stored_fills(db: &TestDb, run: i64) -> i64 {
    db.client()
        .query_one("SELECT count(*) FROM fills WHERE run_id = $1", &[&run])
        .map_or(0, |r| r.get(0))
}

fn bars_seen(db: &TestDb, run: i64) -> i64 {
    db.client()
        .query_opt("SELECT bars_seen FROM runs WHERE id = $1", &[&run])
        .ok()
        .flatten()
        .map_or(0, |r| r.get(0))
}

fn runs(db: &TestDb) -> i64 {
    db.client()
        .query_one("SELECT count(*) FROM runs", &[])
        .map_or(0, |r| r.get(0))
}

/// A PostgreSQL 15 cluster of the test's own: a temp dir, an ephemeral port on loopback, trust
/// authentication. Stopped (immediately) and removed when dropped.
struct OwnCluster {
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl OwnCluster {
    fn start(test: &str) -> Option<Self> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            assert!(
                !required(),
                "NANOTRADER_REQUIRE_POSTGRES=1 but {PG_BIN}/initdb is missing"
            );
            eprintln!("\n*** SKIPPED {test}: no PostgreSQL 15 binaries in {PG_BIN} ***\n");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("nt-pg-cluster-").tempdir().unwrap();
        // initdb refuses to run as root: the cluster is then the `postgres` user's.
        let as_postgres = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(dir.path()).unwrap()) == 0;
        if as_postgres {
            let id = |flag: &str| -> u32 {
                let out = Command::new("id").args([flag, "postgres"]).output().unwrap();
                assert!(out.status.success(), "no `postgres` user to run the cluster as");
                stdout(&out).trim().parse().unwrap()
            };
            std::os::unix::fs::chown(dir.path(), Some(id("-u")), Some(id("-g"))).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            data: dir.path().join("data"),
            dir,
            port,
            as_postgres,
        };
        let out = cluster
            .command("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}{}", stdout(&out), stderr(&out));
        cluster.start_server();
        Some(cluster)
    }

    /// A PostgreSQL program, run as the cluster's owner.
    fn command(&self, program: &str) -> Command {
        let path = Path::new(PG_BIN).join(program);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", "120"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    fn start_server(&self) {
        let log = self.dir.path().join("server.log").display().to_string();
        // fsync off: a crash here is the server's process, never the machine's, so what it
        // committed is in the page cache either way; the shared disk is spared.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.pg_ctl(&["-l", &log, "-o", &options, "start"]);
    }

    /// `pg_ctl stop -m MODE`: `fast` (sessions ended, a clean shutdown) or `immediate` (a crash:
    /// recovery from the WAL at the next start).
    fn stop_server(&self, mode: &str) {
        self.pg_ctl(&["-m", mode, "stop"]);
    }

    fn server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// The server restarted twice under a paced run, once cleanly (`-m fast`) and once as a crash
/// (`-m immediate`): each time the bot says once that writes fail, keeps closing bars against
/// its queue while no fill is announced, says once that they work again (reconnected, the run
/// claimed again), and the run ends with exactly SQLite's fills and bars.
#[test]
fn a_postgres_restart_mid_run_loses_nothing_and_says_so_once_each_way() {
    let Some(cluster) = OwnCluster::start("postgres_restart") else {
        return;
    };
    let db = TestDb::create_on(&cluster.server(), "restart");
    let data = repo_file(DATA_2018).display().to_string();
    let (fills, bars) = sqlite_twin(&data, FEES);
    let dir = tempfile::tempdir().unwrap();
    // 3,887 one-minute bars at 6,000x: about 40 s, room for two outages mid-run.
    let mut extra = vec!["--status-secs", "0.25"];
    extra.extend_from_slice(FEES);
    let mut bot = Bot::start(bot_run(&db.url(), dir.path(), &data, "6000", &extra));
    for (outage, mode) in [(1_usize, "fast"), (2, "immediate")] {
        wait_until("fills stored before the outage", || {
            assert!(bot.running(), "{}", bot.err());
            stored_fills(&db, 1) >= 15 * outage as i64
        });
        cluster.stop_server(mode);
        bot.wait_said("store writes failing", outage);
        // While the server is down the engine goes on against its queue: bars keep closing, the
        // store lag grows, and no fill is announced (none is stored).
        let said = bot.err_len();
        let down = |bot: &Bot| statuses(&bot.err_since(said));
        wait_until("bars closing while the server is down", || {
            let seen = down(&bot);
            seen.len() >= 2 && seen.last().unwrap().bars >= seen[0].bars + 50
        });
        let seen = down(&bot);
        assert!(
            seen.iter().all(|s| s.fills == seen[0].fills),
            "no fill announced while the server is down: {seen:?}"
        );
        assert!(seen.last().unwrap().store_lag > 0, "{seen:?}");
        cluster.start_server();
        bot.wait_said("store writes work again", outage);
        assert_eq!(bot.count("store writes failing"), outage, "{}", bot.err());
    }
    let status = bot.wait_exit();
    let err = bot.err();
    assert!(status.success(), "{err}");
    assert!(bot.out().contains("nanotrader run 1 completed"), "{}", bot.out());
    assert_eq!(err.matches("store writes failing").count(), 2, "{err}");
    assert_eq!(err.matches("store writes work again").count(), 2, "{err}");
    assert_eq!(err.matches("the run is claimed again").count(), 2, "{err}");
    assert_eq!(export(&db.url(), "fills", None), fills, "no fill lost or repeated");
    assert_eq!(export(&db.url(), "bars", None), bars, "no bar lost or repeated");
    assert_eq!(runs(&db), 1, "one run throughout");
    assert_eq!(db.duplicate_fills(), 0);
}

/// A TCP relay between the bot and the server that can stop forwarding without closing
/// anything (a partition: the sockets stay open, nothing more arrives either way), let new
/// connections through again while the cut-off ones stay silent for ever (as a server keeps a
/// session whose client vanished), and close every connection (a dropped path).
struct Relay {
    addr: SocketAddr,
    state: tokio::sync::watch::Sender<RelayState>,
    /// Runs the relay's tasks; dropped (and they with it) with the relay.
    _runtime: tokio::runtime::Runtime,
}

#[derive(Copy, Clone, Default, Debug)]
struct RelayState {
    /// New connections are held silent, and so is every connection open at the last cut-off.
    partitioned: bool,
    /// How many partitions began: a connection older than the last one stays silent.
    partitions: u64,
    /// How many times every connection was closed.
    drops: u64,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (state, watch) = tokio::sync::watch::channel(RelayState::default());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let born = *watch.borrow();
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    let cut_off = |s: &RelayState| s.partitioned || s.partitions > born.partitions;
                    if !born.partitioned {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                            _ = watch.wait_for(cut_off) => {}
                        }
                    }
                    // Silent: both sockets held open, nothing read or written, until dropped.
                    let _ = watch.wait_for(|s| s.drops > born.drops).await;
                });
            }
        });
        Self {
            addr,
            state,
            _runtime: runtime,
        }
    }

    fn partition(&self) {
        self.state.send_modify(|s| {
            s.partitioned = true;
            s.partitions += 1;
        });
    }

    /// New connections go through again; those cut off stay silent.
    fn heal(&self) {
        self.state.send_modify(|s| s.partitioned = false);
    }

    /// Every connection held or relayed is closed.
    fn drop_connections(&self) {
        self.state.send_modify(|s| s.drops += 1);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Every held socket closed before the runtime (and its tasks) goes.
        self.drop_connections();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The shared server's address, from `TestDb`'s URL (`postgres://user@host:port`).
fn server_addr(db: &TestDb) -> SocketAddr {
    let authority = db.server.rsplit('@').next().unwrap();
    let authority = authority.trim_start_matches("postgres://");
    use std::net::ToSocketAddrs;
    authority.to_socket_addrs().unwrap().next().unwrap()
}

/// A partition between a bot at full speed and the server: the bot notices the silent
/// connection in bounded time and says so once; it keeps taking the engine's steps until its
/// backlog bound, and from there its memory stops growing; when the path is back (the old
/// session still holding the run's claim on the server, as after a real partition) it ends that
/// session, claims the run again, says so once, and the run ends exactly.
#[test]
fn a_partition_is_noticed_memory_stays_bounded_and_the_bot_reclaims_its_run() {
    let Some(db) = TestDb::create("partition") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let long = work.path().join("long.csv");
    // Enough bars for the backlog bound (200,000 steps) to fill while the path is cut.
    repeat_bars(&repo_file(DATA_2018), &long, 400_000);
    let data = long.display().to_string();
    let (fills, bars) = sqlite_twin(&data, FEES);
    let relay = Relay::start(server_addr(&db));
    let url = format!("postgres://postgres@{}/{}", relay.addr, db.name);
    let mut bot = Bot::start(bot_run(&url, work.path(), &data, "max", FEES));
    wait_until("bars stored before the partition", || {
        assert!(bot.running(), "{}", bot.err());
        bars_seen(&db, 1) >= 10_000
    });
    let rss_before = bot.rss_kib();
    let cut = Instant::now();
    relay.partition();
    bot.wait_said("store writes failing", 1);
    let noticed = cut.elapsed();
    let err = bot.err();
    assert!(err.contains("no answer from the database server"), "{err}");
    // Bounded: the writer's reply deadline (10 s) plus the time to log it, on a loaded machine.
    assert!(noticed < Duration::from_secs(60), "noticed after {noticed:?}");

    // The backlog fills to its bound, then the engine waits for the store: memory stops growing.
    bot.wait_said("the engine now waits for it too", 1);
    let full = Instant::now();
    let rss_full = bot.rss_kib();
    let mut rss_max = rss_full;
    while full.elapsed() < Duration::from_secs(10) {
        rss_max = rss_max.max(bot.rss_kib());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "partition: noticed after {:.1} s; RSS before {} KiB, at the backlog bound {} KiB ({:.1} s after the \
         cut), highest over the next 10 s {} KiB",
        noticed.as_secs_f64(),
        rss_before,
        rss_full,
        (full - cut).as_secs_f64(),
        rss_max
    );
    assert!(
        rss_max <= rss_full + 4 * 1024,
        "memory grew past the backlog bound: {rss_full} KiB -> {rss_max} KiB"
    );
    assert!(bot.running() && bot.count("store writes work again") == 0);

    // The path is back; the old session (and the claim with it) lingers on the server.
    assert!(db.claimed(1), "the cut-off session still holds the run's claim");
    relay.heal();
    bot.wait_said("store writes work again", 1);
    let status = bot.wait_exit();
    let err = bot.err();
    assert!(status.success(), "{err}");
    assert_eq!(err.matches("store writes failing").count(), 1, "{err}");
    assert_eq!(err.matches("store writes work again").count(), 1, "{err}");
    assert_eq!(err.matches("the run is claimed again").count(), 1, "{err}");
    assert_eq!(
        err.matches("still held by this bot's previous session").count(),
        1,
        "{err}"
    );
    assert_eq!(export(&db.url(), "fills", None), fills, "no fill lost or repeated");
    assert_eq!(export(&db.url(), "bars", None), bars, "no bar lost or repeated");
    assert_eq!(db.duplicate_fills(), 0);
    // A finished run leaves no claim (its session ends as the process does).
    wait_until("the finished run's claim to be freed", || !db.claimed(1));
}

/// A partition that ends with the path dropped (every connection closed) under a paced run:
/// noticed once, the engine going on meanwhile, reconnected once, exact at the end.
#[test]
fn a_partition_ended_by_dropped_connections_is_recovered_exactly() {
    let Some(db) = TestDb::create("partition_drop") else {
        return;
    };
    let data = repo_file(DATA_2018).display().to_string();
    let (fills, bars) = sqlite_twin(&data, FEES);
    let relay = Relay::start(server_addr(&db));
    let url = format!("postgres://postgres@{}/{}", relay.addr, db.name);
    let dir = tempfile::tempdir().unwrap();
    let mut extra = vec!["--status-secs", "0.25"];
    extra.extend_from_slice(FEES);
    // About 60 s: the partition (noticed after 10 s) and its end fall inside the run.
    let mut bot = Bot::start(bot_run(&url, dir.path(), &data, "4000", &extra));
    wait_until("fills stored before the partition", || {
        assert!(bot.running(), "{}", bot.err());
        stored_fills(&db, 1) >= 10
    });
    relay.partition();
    bot.wait_said("store writes failing", 1);
    let said = bot.err_len();
    wait_until("bars closing while the path is cut", || {
        let seen = statuses(&bot.err_since(said));
        seen.len() >= 2 && seen.last().unwrap().bars >= seen[0].bars + 50
    });
    relay.drop_connections();
    relay.heal();
    bot.wait_said("store writes work again", 1);
    let status = bot.wait_exit();
    let err = bot.err();
    assert!(status.success(), "{err}");
    assert_eq!(err.matches("store writes failing").count(), 1, "{err}");
    assert_eq!(err.matches("store writes work again").count(), 1, "{err}");
    assert_eq!(export(&db.url(), "fills", None), fills, "no fill lost or repeated");
    assert_eq!(export(&db.url(), "bars", None), bars, "no bar lost or repeated");
    assert_eq!(db.duplicate_fills(), 0);
}

/// A small xorshift: random kill moments that a failure can name (its seed is printed).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Three bots (different strategies and data, each its own run) share one database; each is
/// killed with -9 at random moments three times and restarted, then runs to its end: every
/// run's fills and bars equal its uninterrupted SQLite twin, no (run, order) is stored twice,
/// and a killed bot's claim is free at once.
#[test]
fn bots_killed_at_random_share_one_database_and_each_run_ends_exactly() {
    let Some(db) = TestDb::create("three_bots") else {
        return;
    };
    let seed = std::env::var("NANOTRADER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("kill moments from seed {seed} (NANOTRADER_KILL_SEED={seed} repeats them)");
    let mut dice = Dice(seed);
    let data_2017 = repo_file("assets/btcusd_1m_20170903_20170904.csv")
        .display()
        .to_string();
    let data_2018 = repo_file(DATA_2018).display().to_string();
    let bots: [(&str, Vec<&str>); 3] = [
        (data_2017.as_str(), FEES.to_vec()),
        (
            data_2018.as_str(),
            vec!["--short", "5", "--long", "20", "--fee-rate", "0.001"],
        ),
        (data_2018.as_str(), vec!["--preset", "seed"]),
    ];
    let twins: Vec<(String, String)> = bots.iter().map(|(data, extra)| sqlite_twin(data, extra)).collect();
    let dir = tempfile::tempdir().unwrap();
    let start = |i: usize, speed: &str| Bot::start(bot_run(&db.url(), dir.path(), bots[i].0, speed, &bots[i].1));
    // The first starts one after another, so run i + 1 is bot i's.
    let mut running: Vec<Bot> = Vec::new();
    for i in 0..3 {
        running.push(start(i, "3000"));
        wait_until("the bot's run to exist", || runs(&db) > i as i64);
    }
    for round in 0..3 {
        for (i, bot) in running.iter_mut().enumerate() {
            let run = i as i64 + 1;
            // Killed at a random moment of its run: 0.3 to 2.3 s after this round began for it.
            std::thread::sleep(Duration::from_millis(300 + dice.below(2_000)));
            assert!(bot.running(), "bot {run} ended before its kill: {}", bot.err());
            bot.kill();
            let (bars, fills) = (bars_seen(&db, run), stored_fills(&db, run));
            eprintln!("round {round}: bot {run} killed with {bars} bars and {fills} fills stored");
            if round == 2 {
                assert!(bars > 0, "bot {run}'s kills came mid-run, not before it began");
            }
            // A killed bot's session ends with it, and its claim with the session.
            let killed = Instant::now();
            wait_until("the killed bot's claim to be freed", || !db.claimed(run));
            assert!(killed.elapsed() < Duration::from_secs(10), "round {round}, run {run}");
            *bot = start(i, "3000");
        }
    }
    // Then each to its end, at full speed.
    for (i, bot) in running.iter_mut().enumerate() {
        bot.kill();
        wait_until("the claim to be freed", || !db.claimed(i as i64 + 1));
        *bot = start(i, "max");
    }
    for (i, bot) in running.iter_mut().enumerate() {
        let run = i as i64 + 1;
        let status = bot.wait_exit();
        assert!(status.success(), "bot {run}: {}", bot.err());
        let (fills, bars) = &twins[i];
        assert_eq!(
            &export(&db.url(), "fills", Some(run)),
            fills,
            "run {run}: no fill lost or repeated"
        );
        assert_eq!(
            &export(&db.url(), "bars", Some(run)),
            bars,
            "run {run}: no bar lost or repeated"
        );
    }
    assert_eq!(runs(&db), 3, "each bot resumed its own run every time");
    assert_eq!(db.duplicate_fills(), 0);
    wait_until("the finished runs' claims to be freed", || db.claims() == 0);
}
