//! One writer per run across machines: a run is claimed with a session-level advisory lock on
//! its id, held by the writer's own connection. PostgreSQL frees it when that session ends, so
//! the claim of a process that died (kill -9, a lost machine) is free as soon as the server sees
//! its connection gone.

use postgres::Client;

use nanotrader_store::StoreError;

use crate::convert::pg_error;
use crate::{LOCK_KEY, LOCK_RUN, PgStore, connect, redact};

/// A claimed run: the connection holding the claim, handed to the run's writer.
pub struct RunClaim {
    pub(crate) client: Option<Client>,
    pub(crate) url: String,
    pub(crate) run_id: i64,
}

impl RunClaim {
    /// Claims run `run_id` on a connection of its own, or says in one line who holds it.
    pub fn take(url: &str, run_id: i64) -> Result<Self, StoreError> {
        let thread_url = url.to_owned();
        // The synchronous client must not run on an async runtime's thread (see the crate doc).
        let client = std::thread::spawn(move || -> Result<Client, StoreError> {
            let mut client = connect(&thread_url)?;
            if try_claim(&mut client, run_id)? {
                Ok(client)
            } else {
                Err(refused(&thread_url, run_id, holder(&mut client, run_id)))
            }
        })
        .join()
        .map_err(|_| StoreError::Unusable("the store's connection thread panicked".into()))??;
        Ok(Self {
            client: Some(client),
            url: url.to_owned(),
            run_id,
        })
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }
}

impl Drop for RunClaim {
    /// An unused claim (the run failed to start) is closed on a plain thread: the client's own
    /// runtime must not be dropped on an async runtime's thread.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// `pg_try_advisory_lock` on the run: true when this session now holds it.
pub(crate) fn try_claim(client: &mut Client, run_id: i64) -> Result<bool, StoreError> {
    let key = run_key(run_id)?;
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&LOCK_RUN, &key])
        .map_err(pg_error)?;
    Ok(row.get(0))
}

fn run_key(run_id: i64) -> Result<i32, StoreError> {
    i32::try_from(run_id).map_err(|_| StoreError::Unusable(format!("run id {run_id} is too large to claim")))
}

/// Who holds the claim of `run_id`, as the server sees it (application, client address, pid).
fn holder(client: &mut Client, run_id: i64) -> Option<String> {
    let key = run_key(run_id).ok()?;
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(host(a.client_addr), 'local'), a.application_name
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::int::oid AND l.objid = $2::int::oid
               AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&LOCK_RUN, &key],
        )
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
