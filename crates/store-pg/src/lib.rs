//! PostgreSQL store: the SQLite store's runs, bars, gaps, signals, orders, fills and account
//! snapshots in one database that many bots share, each with its own runs.
//!
//! Behind the same seams as SQLite: [`PgStore`] implements [`nanotrader_store::RunStore`] (what a
//! run needs to begin, resume and be read back), and [`spawn_writer`] runs the same
//! [`StoreWriter`] loop (batching, retry with back-off, bounded backlog, the engine's
//! `WriterHooks`) over a PostgreSQL [`WriteTarget`]. Values are `numeric` and times
//! `timestamptz` (see `migrations/`), so psql and pandas read them as they are.
//!
//! **Libraries.** `postgres` (the synchronous client of rust-postgres) with `refinery` for
//! versioned migrations: the store's writer is a plain thread that blocks on each commit (a
//! fill is announced only after it), which a synchronous client fits without a second async
//! runtime in the engine's way (the writer's own connection is the async client under it, on a
//! one-thread runtime of the writer's, so each exchange has a deadline: see `session.rs`); refinery embeds the SQL files at build time and records each
//! applied version in `refinery_schema_history`, refusing a database migrated by a newer
//! nanotrader. (sqlx would have brought an async pool and compile-time checked queries, neither
//! of which a single-connection writer thread needs.) The synchronous client runs its own small
//! runtime and must not be called on an async runtime's thread, so every connection here lives
//! on a thread of its own: [`PgStore`] hands its queries to one, the writer is one.
//!
//! A live broker's order journal is [`PgJournal`] (the store crate's `OrderJournal`), on a
//! connection of its own; `history --store` adds bars with [`PgStore::insert_bars`] (the
//! writer's binary COPY). A [`PgStore`] connection the server ended is made again before its
//! next call.
//!
//! **One writer per run, across machines.** A run is claimed with a session-level advisory lock
//! on its id ([`RunClaim`]), held by the writer's connection for as long as it writes: a second
//! claimant is refused at once; a process that dies loses its session, and with it the claim.
//! A session cut off by a partition may outlive its connection on the server (until the
//! server's TCP gives up on it): the writer that reconnects ends its own previous session, known
//! by its server pid, and claims the run again.

mod claim;
mod convert;
mod fleet;
mod journal;
mod read;
mod session;
mod writer;

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::{Client, NoTls};

use nanotrader_store::StoreError;

pub use claim::{KeyLock, RunClaim};
pub use fleet::{RUNS_CHANNEL, RunOverview, RunsEvent, listen_runs};
pub use journal::PgJournal;
pub use writer::spawn_writer;
// The writer's types, for callers that only see this crate.
pub use nanotrader_store::{StoreWriter, WriteTarget};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Advisory lock namespaces (the first of the two 32-bit keys), so nanotrader's locks never
/// meet another program's in a shared database: "nt" + a letter.
pub(crate) const LOCK_MIGRATE: i32 = 0x6e74_6d00;
pub(crate) const LOCK_RUN: i32 = 0x6e74_7200;
pub(crate) const LOCK_KEY: i32 = 0x6e74_6b00;

/// How long a connection attempt may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A peer that vanished (a network partition, a machine gone) is noticed by TCP itself: data
/// sent and not acknowledged for `TCP_USER_TIMEOUT` ends the connection, and so do keepalive
/// probes unanswered `KEEPALIVES_RETRIES` times on an idle one (about 30 s), where the system's
/// defaults would wait hours. A URL's own settings (`tcp_user_timeout=`, `keepalives_idle=`, ...)
/// win.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
const KEEPALIVES_IDLE: Duration = Duration::from_secs(15);
const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVES_RETRIES: u32 = 3;
/// The client library's default idle time, which a URL that says nothing leaves.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_info, host)) => {
            let user = user_info.split(':').next().unwrap_or_default();
            let hidden = if user_info.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// The client's settings for `url`: a bounded connection attempt, nanotrader's name on the
/// server, and a dead peer noticed in bounded time (see `TCP_USER_TIMEOUT`).
pub(crate) fn client_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| StoreError::Unusable(format!("--db-url {}: {e}", redact(url))))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("nanotrader");
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
        config.keepalives_idle(KEEPALIVES_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVES_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVES_RETRIES);
    }
    Ok(config)
}

/// A new connection to `url` (the synchronous client, for migrations and reads).
pub(crate) fn connect(url: &str) -> Result<Client, StoreError> {
    let config = postgres::Config::from(client_config(url)?);
    config.connect(NoTls).map_err(|e| {
        let failure = convert::pg_error(e);
        match failure {
            // Nothing answers, or the server refuses us: the user's to fix, one line, exit 2.
            StoreError::Server { message, .. } => {
                StoreError::Unusable(format!("cannot connect to the store {}: {message}", redact(url)))
            }
            other => other,
        }
    })
}

/// Brings the schema up to date, one process at a time (bots starting together wait for each
/// other rather than race on `CREATE TABLE`).
pub(crate) fn migrate(client: &mut Client, location: &str) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1, 0)", &[&LOCK_MIGRATE])
        .map_err(convert::pg_error)?;
    let result = embedded::migrations::runner()
        .set_abort_missing(true)
        .run(client)
        .map(|_| ())
        .map_err(|e| {
            StoreError::Unusable(format!(
                "cannot bring the store {location} up to date: {e} (a newer nanotrader may have migrated it: upgrade)"
            ))
        });
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1, 0)", &[&LOCK_MIGRATE])
        .map_err(convert::pg_error);
    result.and(unlocked.map(|_| ()))
}

/// Lets go of a connection that no longer answers. Dropping the synchronous client waits for
/// its connection to close, which a silent peer (a partition) never lets happen: that wait goes
/// on a thread of its own, which ends when TCP gives up on the peer (`TCP_USER_TIMEOUT`) or with
/// the process.
fn abandon(client: Client) {
    let _ = std::thread::Builder::new()
        .name("store-pg-close".into())
        .spawn(move || drop(client));
}

type Job = Box<dyn FnOnce(&mut Client) + Send>;

/// The PostgreSQL store for reading and for beginning runs (the writes of a running engine go
/// through [`spawn_writer`]). Its one connection lives on a thread of its own (see the crate
/// doc); each call is handed to it and waited for.
pub struct PgStore {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    url: String,
    location: String,
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date (versioned migrations, at start).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::start(url, true)
    }

    /// Connects without migrating: for the read commands, which never change the database. A
    /// database with no store in it is refused in one line.
    pub fn connect_read_only(url: &str) -> Result<Self, StoreError> {
        let store = Self::start(url, false)?;
        let has_store: bool = store.call(|c| {
            let row = c
                .query_one("SELECT to_regclass('runs') IS NOT NULL", &[])
                .map_err(convert::pg_error)?;
            Ok(row.get(0))
        })?;
        if !has_store {
            return Err(StoreError::Unusable(format!(
                "no nanotrader store in {} (run `nanotrader run --db-url ...` first)",
                store.location
            )));
        }
        Ok(store)
    }

    fn start(url: &str, migrate_schema: bool) -> Result<Self, StoreError> {
        let location = redact(url);
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let (ready_tx, ready) = std_mpsc::channel();
        let (thread_url, thread_location) = (url.to_owned(), location.clone());
        let thread = std::thread::Builder::new()
            .name("store-pg".into())
            .spawn(move || {
                let opened = connect(&thread_url).and_then(|mut client| {
                    if migrate_schema {
                        migrate(&mut client, &thread_location)?;
                    }
                    Ok(client)
                });
                let mut client = match opened {
                    Ok(client) => {
                        let _ = ready_tx.send(Ok(()));
                        client
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    // A connection lost since the last job (the server restarted, the network
                    // cut) is made again; where that fails too, the job fails with the reason.
                    if client.is_closed() || client.is_valid(CONNECT_TIMEOUT).is_err() {
                        match connect(&thread_url) {
                            Ok(fresh) => abandon(std::mem::replace(&mut client, fresh)),
                            Err(e) => tracing::debug!("the store's connection is lost and not made again: {e}"),
                        }
                    }
                    job(&mut client);
                }
                if client.is_valid(Duration::from_secs(1)).is_err() {
                    abandon(client);
                }
            })
            .map_err(|e| StoreError::Unusable(format!("cannot start the store's connection thread: {e}")))?;
        let store = Self {
            jobs: Some(jobs),
            thread: Some(thread),
            url: url.to_owned(),
            location,
        };
        ready
            .recv()
            .map_err(|_| StoreError::Unusable("the store's connection thread ended".into()))??;
        Ok(store)
    }

    /// The database's URL as given (with its password: for connections, never for messages).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds bars to a series outside any run (`history --store`): committed when this returns,
    /// bars already stored kept as they are (see `writer::insert_bars`).
    pub fn insert_bars(&self, series_id: i64, bars: &[nanotrader_market::Bar]) -> Result<(), StoreError> {
        if bars.is_empty() {
            return Ok(());
        }
        let bars = bars.to_vec();
        self.call(move |c| writer::insert_bars(c, series_id, &bars))
    }

    /// Runs `f` with the connection on its thread and waits for its answer.
    pub(crate) fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (answer_tx, answer) = std_mpsc::channel();
        let gone = || StoreError::Unusable(format!("the connection to the store {} has ended", self.location));
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move |client| {
                let _ = answer_tx.send(f(client));
            }))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    /// Hands `f` to the connection's thread without waiting; for streaming reads, whose caller
    /// waits on its own channel.
    pub(crate) fn send(&self, f: impl FnOnce(&mut Client) + Send + 'static) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(Box::new(f)).ok())
            .ok_or_else(|| StoreError::Unusable(format!("the connection to the store {} has ended", self.location)))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Closing the queue ends the thread, which closes the connection there (never on an async
        // runtime's thread).
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("postgres://bot:s3cret@db.example:5432/trading?sslmode=disable"),
            "postgres://bot:***@db.example:5432/trading?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        assert!(is_postgres_url("postgresql://h/db") && !is_postgres_url("sqlite://x"));
    }
}
