//! The run's own connection (the one holding its claim and writing its steps): tokio-postgres on
//! a small runtime of the writer's own, so every exchange with the server has a deadline. The
//! synchronous client has none: a server that stops answering without closing the connection
//! (a network partition, a machine gone dark) would hang the writer, and the engine behind its
//! full queue, for ever.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};

use nanotrader_store::StoreError;

use crate::convert::pg_error;
use crate::{client_config, redact};

/// The longest the writer waits on the server for one exchange: a connection made and the run
/// claimed, or one transaction written and committed (at most `MAX_STEPS_PER_TX` steps, well
/// under a second on a working server). Past it the connection is given up as dead.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection and the task that drives its socket.
pub(crate) struct Session {
    pub client: Client,
    connection: JoinHandle<()>,
    /// The server process serving this session (`pg_backend_pid()`).
    pub server_pid: i32,
}

impl Session {
    /// Connects (on the caller's runtime); a failure is `Unusable`, in one line.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = client_config(url)?;
        let unreachable = |e| match pg_error(e) {
            StoreError::Server { message, .. } => {
                StoreError::Unusable(format!("cannot connect to the store {}: {message}", redact(url)))
            }
            other => other,
        };
        let (client, connection) = config.connect(NoTls).await.map_err(unreachable)?;
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        let server_pid = match client.query_one("SELECT pg_backend_pid()", &[]).await {
            Ok(row) => row.get(0),
            Err(e) => {
                connection.abort();
                return Err(pg_error(e));
            }
        };
        Ok(Self {
            client,
            connection,
            server_pid,
        })
    }

    /// Ends the session politely (the server told at once, the claim freed at once) when the
    /// server answers, else by closing the socket.
    pub fn close(self, runtime: &Runtime) {
        let Self { client, connection, .. } = self;
        drop(client);
        let abort = connection.abort_handle();
        let _ = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(1), connection).await });
        abort.abort();
    }

    /// Gives the session up (no answer in time, or broken): its socket is closed without a word,
    /// the next time the runtime runs.
    pub fn abandon(self) {
        self.connection.abort();
    }
}

/// The runtime a run's connection lives on: one thread, the caller's.
pub(crate) fn runtime() -> Result<Runtime, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Unusable(format!("cannot start the store connection's runtime: {e}")))
}

/// After this long without an answer, the writer starts taking the engine's steps aside while
/// it waits (see `WriteTarget::write`); a working server answers well before.
const TAKE_ASIDE_AFTER: Duration = Duration::from_secs(1);

/// Runs `work` on `runtime`, giving up after [`REPLY_TIMEOUT`]: `None` when the server did not
/// answer in time.
pub(crate) fn within<T>(runtime: &Runtime, work: impl Future<Output = T>) -> Option<T> {
    within_waiting(runtime, work, &mut || {})
}

/// [`within`], calling `waiting` every 10 ms once the server has kept it waiting for
/// `TAKE_ASIDE_AFTER`.
pub(crate) fn within_waiting<T>(
    runtime: &Runtime,
    work: impl Future<Output = T>,
    waiting: &mut dyn FnMut(),
) -> Option<T> {
    runtime.block_on(async {
        let work = tokio::time::timeout(REPLY_TIMEOUT, work);
        let mut work = std::pin::pin!(work);
        let start = tokio::time::Instant::now() + TAKE_ASIDE_AFTER;
        let mut tick = tokio::time::interval_at(start, Duration::from_millis(10));
        loop {
            tokio::select! {
                done = &mut work => return done.ok(),
                _ = tick.tick() => waiting(),
            }
        }
    })
}

/// The failure of a server that did not answer in time.
pub(crate) fn no_reply() -> StoreError {
    StoreError::Server {
        message: format!(
            "no answer from the database server in {} s (the connection is given up)",
            REPLY_TIMEOUT.as_secs()
        ),
        transient: true,
    }
}
