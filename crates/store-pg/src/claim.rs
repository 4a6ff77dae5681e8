//! One writer per run across machines: a run is claimed with a session-level advisory lock on
//! its id, held by the writer's own connection. PostgreSQL frees it when that session ends, so
//! the claim of a process that died (kill -9, a lost machine) is free as soon as the server sees
//! its connection gone.

use tokio::runtime::Runtime;

use nanotrader_store::StoreError;

use crate::convert::pg_error;
use crate::session::{Session, no_reply, runtime, within};
use crate::{LOCK_KEY, LOCK_RUN, PgStore, redact};

/// A claimed run: the session holding the claim (and the runtime it lives on), handed to the
/// run's writer.
pub struct RunClaim {
    pub(crate) runtime: Option<Runtime>,
    pub(crate) session: Option<Session>,
    pub(crate) url: String,
    pub(crate) run_id: i64,
}

impl RunClaim {
    /// Claims run `run_id` on a connection of its own, or says in one line who holds it.
    pub fn take(url: &str, run_id: i64) -> Result<Self, StoreError> {
        let thread_url = url.to_owned();
        // A runtime of the claim's own must not be driven (nor dropped) on an async runtime's
        // thread: this one is made and used on a plain thread, and handed on.
        let (runtime, session) = std::thread::spawn(move || -> Result<(Runtime, Session), StoreError> {
            let runtime = runtime()?;
            let claimed = within(&runtime, async {
                let session = Session::connect(&thread_url).await?;
                if try_claim(&session.client, run_id).await? {
                    Ok(session)
                } else {
                    let holder = holder(&session.client, run_id).await;
                    session.abandon();
                    Err(refused(&thread_url, run_id, holder))
                }
            })
            .unwrap_or_else(|| Err(no_reply()))?;
            Ok((runtime, claimed))
        })
        .join()
        .map_err(|_| StoreError::Unusable("the store's connection thread panicked".into()))??;
        Ok(Self {
            runtime: Some(runtime),
            session: Some(session),
            url: url.to_owned(),
            run_id,
        })
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }
}

impl Drop for RunClaim {
    /// An unused claim (the run failed to start) is closed on a plain thread: its runtime must
    /// not be driven or dropped on an async runtime's thread.
    fn drop(&mut self) {
        let (runtime, session) = (self.runtime.take(), self.session.take());
        if runtime.is_some() || session.is_some() {
            let _ = std::thread::spawn(move || {
                if let (Some(runtime), Some(session)) = (&runtime, session) {
                    session.close(runtime);
                }
                drop(runtime);
            })
            .join();
        }
    }
}

/// `pg_try_advisory_lock` on the run: true when this session now holds it.
pub(crate) async fn try_claim(client: &tokio_postgres::Client, run_id: i64) -> Result<bool, StoreError> {
    let key = run_key(run_id)?;
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_RUN, &key])
        .await
        .map_err(pg_error)?;
    Ok(row.get(0))
}

/// Ends the server session `server_pid` if it holds the claim of `run_id`: a session of this
/// process's that a lost connection left on the server, which may keep it (and the claim) for
/// as long as its TCP keepalives take, hours by default. True when it was told to end.
pub(crate) async fn end_stale_claim(
    client: &tokio_postgres::Client,
    run_id: i64,
    server_pid: i32,
) -> Result<bool, StoreError> {
    let key = run_key(run_id)?;
    let rows = client
        .query(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid AND l.objid = $2::int::oid
               AND l.objsubid = 2 AND l.pid = $3
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&LOCK_RUN, &key, &server_pid],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().any(|row| row.get::<_, bool>(0)))
}

fn run_key(run_id: i64) -> Result<i32, StoreError> {
    i32::try_from(run_id).map_err(|_| StoreError::Unusable(format!("run id {run_id} is too large to claim")))
}

/// Who holds the claim of `run_id`, as the server sees it (application, client address, pid).
async fn holder(client: &tokio_postgres::Client, run_id: i64) -> Option<String> {
    let key = run_key(run_id).ok()?;
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(host(a.client_addr), 'local'), a.application_name
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid AND l.objid = $2::int::oid
               AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&LOCK_RUN, &key],
        )
        .await
        .ok()??;
    let (pid, addr, app): (i32, String, String) = (row.get(0), row.get(1), row.get(2));
    Some(format!("{app} from {addr}, server pid {pid}"))
}

fn refused(url: &str, run_id: i64, holder: Option<String>) -> StoreError {
    let by = holder.map_or_else(String::new, |h| format!(" ({h})"));
    StoreError::Unusable(format!(
        "run {run_id} in {} is being written by another nanotrader process{by}: one writer per run; stop that one \
         first, or start a new run with --fresh",
        redact(url)
    ))
}

/// Serializes finding-or-creating the run of one key between processes, so two bots started
/// together with the same settings meet on one run (and the second is refused by its claim)
/// rather than each creating its own. Held until dropped.
pub struct KeyLock<'a> {
    store: &'a PgStore,
    key: i32,
}

impl PgStore {
    /// Waits for, then holds, the lock of `run_key` on this store's connection.
    pub fn lock_run_key(&self, run_key: &str) -> Result<KeyLock<'_>, StoreError> {
        let text = run_key.to_owned();
        let key = self.call(move |c| {
            let row = c.query_one("SELECT hashtext($1)", &[&text]).map_err(pg_error)?;
            let key: i32 = row.get(0);
            c.execute("SELECT pg_advisory_lock($1, $2)", &[&LOCK_KEY, &key])
                .map_err(pg_error)?;
            Ok(key)
        })?;
        Ok(KeyLock { store: self, key })
    }
}

impl Drop for KeyLock<'_> {
    fn drop(&mut self) {
        let key = self.key;
        let _ = self.store.call(move |c| {
            c.execute("SELECT pg_advisory_unlock($1, $2)", &[&LOCK_KEY, &key])
                .map_err(pg_error)
        });
    }
}
