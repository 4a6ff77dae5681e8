//! The dashboard server: the page, its live stream, a JSON API and /metrics, in the same process
//! as the engine (see docs/dashboard.md). Loopback by default; anything else needs a token.
//!
//! It owns what a browser or a scraper sees and the rules of HTTP and WebSocket. It reads the
//! engine's bus and the store; it must not know the command line, config files, exchanges or
//! the backtest, and it never writes to the store.

mod api;
mod assets;
mod board;
mod errors;
mod fleet;
mod hub;
mod metrics;
mod params;
mod security;
mod stream;
mod view;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};

pub use board::{Board, BoardMeta, BoardSeed, BoardStore, CLIENT_QUEUE_FRAMES, OpenReader};
pub use fleet::{DEFAULT_RECHECK, Fleet, FleetCounters, attach as attach_fleet};
pub use security::{AccessToken, SecurityError, check_bind};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How the dashboard is served.
#[derive(Clone, Debug)]
pub struct WebConfig {
    pub listen: SocketAddr,
    pub token: Option<AccessToken>,
    /// Keep serving after a finite run ended, until Ctrl-C.
    pub stay: bool,
    /// Frames queued per page before it is treated as fallen behind.
    pub queue_frames: usize,
}

/// What every request handler shares.
pub struct Server {
    boards: RwLock<Vec<Arc<Board>>>,
    /// Told when a board is added, so a page opened during start-up waits for the run.
    board_added: watch::Sender<usize>,
    pub token: Option<AccessToken>,
    /// Bound to a loopback address: only loopback Host names are answered.
    pub loopback_only: bool,
    /// Pages connected to a live stream, over all boards.
    pub clients: Arc<AtomicU64>,
    pub queue_frames: usize,
    /// The server's own runtime (see `WebHandle`).
    runtime: tokio::runtime::Handle,
    /// `nanotrader serve`: every run of a PostgreSQL store, read from it (see `fleet`).
    fleet: OnceLock<Arc<fleet::Fleet>>,
}

impl Server {
    pub fn boards(&self) -> Vec<Arc<Board>> {
        self.boards.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Shows a run (one per pair); a board for the same pair replaces the old one. Boards are
    /// kept in the order their runs were created (a new process's: the order of `--pair`),
    /// whichever started first: the first is the page's default and the picker's order.
    pub fn add_board(&self, board: Arc<Board>) {
        let mut boards = self.boards.write().unwrap_or_else(|e| e.into_inner());
        boards.retain(|b| b.meta.pair != board.meta.pair);
        boards.push(board);
        boards.sort_by_key(|b| b.meta.run_id);
        self.board_added.send_replace(boards.len());
    }

    /// Runs a board's hub on the server's threads: turning the engine's events into frames is
    /// serving work too, and yields to the engine like the rest of it.
    pub fn spawn_hub(&self, board: Arc<Board>, bus: &nanotrader_engine::Bus) {
        self.runtime.spawn(hub::hub(board, bus));
    }

    /// Waits (a little) for the first run to start: the server is up before the run is.
    pub async fn wait_for_a_board(&self, patience: std::time::Duration) {
        let mut added = self.board_added.subscribe();
        let _ = tokio::time::timeout(patience, added.wait_for(|n| *n > 0)).await;
    }
}

/// Threads of the server's own runtime.
const WEB_THREADS: usize = 1;
/// Nice value of the server's threads: when the engine and the dashboard both want a core, the
/// engine gets it. Serving pages must not slow trading; with cores to spare it changes nothing.
const WEB_NICE: libc::c_int = 10;

fn yield_cores_to_the_engine() {
    // On Linux a thread has its own nice value, and `who = 0` names the calling thread.
    // SAFETY: setpriority only changes the calling thread's scheduling priority.
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, WEB_NICE) };
    if done != 0 {
        tracing::debug!(
            "cannot lower the dashboard threads' priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// A running server; dropping it (or `stop`) shuts it down.
pub struct WebHandle {
    pub server: Arc<Server>,
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    /// The server runs on threads of its own: a thousand pages' tasks never queue ahead of the
    /// engine's, and at most `WEB_THREADS` cores go to serving while the engine runs at full speed.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for WebHandle {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside the engine's async context.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl WebHandle {
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops accepting and closes the open connections.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.task).await;
    }
}

/// Kernel send buffer of each connection. Left to itself Linux lets it grow to megabytes, and a
/// page that reads slowly then sits minutes behind on frames already sent, unseen by the stream's
/// lag check; a small buffer makes its queue overflow soon, so it is resynced with a snapshot.
const SEND_BUFFER_BYTES: usize = 16 * 1024;

fn limit_send_buffer(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = socket2::SockRef::from(&*stream).set_send_buffer_size(SEND_BUFFER_BYTES) {
        tracing::debug!("cannot set a connection's send buffer: {e}");
    }
}

/// Why the dashboard could not start; each is one line for the user.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Security(#[from] security::SecurityError),
    #[error("cannot serve the dashboard on {addr}: {source}{}", bind_hint(source))]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the dashboard's address: {0}")]
    Address(std::io::Error),
    #[error("cannot start the dashboard's threads: {0}")]
    Threads(std::io::Error),
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        " (is another nanotrader running? use --listen 127.0.0.1:0 for a free port, or --no-web)"
    } else {
        ""
    }
}

/// Binds and starts serving. Errors are one line for the user (a taken port, a missing token).
pub async fn start(config: &WebConfig) -> Result<WebHandle, StartError> {
    security::check_bind(&config.listen, config.token.as_ref())?;
    let cannot_serve = |addr: SocketAddr| move |source: std::io::Error| StartError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(config.listen).map_err(cannot_serve(config.listen))?;
    let addr = listener.local_addr().map_err(StartError::Address)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WEB_THREADS)
        .thread_name("web")
        .on_thread_start(yield_cores_to_the_engine)
        .enable_all()
        .build()
        .map_err(StartError::Threads)?;
    let listener = {
        let _in_web_runtime = runtime.enter();
        listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
            .map_err(cannot_serve(addr))?
    };
    let server = Arc::new(Server {
        boards: RwLock::new(Vec::new()),
        board_added: watch::channel(0).0,
        token: config.token.clone(),
        loopback_only: addr.ip().is_loopback(),
        clients: Arc::new(AtomicU64::new(0)),
        queue_frames: config.queue_frames,
        runtime: runtime.handle().clone(),
        fleet: OnceLock::new(),
    });
    let app = router(server.clone());
    let (stop, mut stopped) = watch::channel(false);
    let task = runtime.spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        let listener = axum::serve::ListenerExt::tap_io(listener, limit_send_buffer);
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!("the dashboard server stopped: {e}");
        }
    });
    Ok(WebHandle {
        server,
        addr,
        stop,
        task,
        runtime: Some(runtime),
    })
}

/// The routes, then (innermost first): the access guard, compression, the security headers.
/// Every error on every route is `errors::ApiError`'s JSON, headers included.
pub fn router(server: Arc<Server>) -> Router {
    let control = post(api::control).route_layer(axum::middleware::from_fn(security::control_from_our_page));
    Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/assets/{*file}", get(page))
        .route("/runs", get(page))
        .route("/runs/{id}", get(page))
        .route("/ws", get(live))
        .route("/ws/runs", get(fleet::runs_stream))
        .route("/api/runs", get(fleet::runs))
        .route("/api/runs/{id}", get(fleet::run))
        .route("/api/status", get(api::status))
        .route("/api/account", get(api::account))
        .route("/api/performance", get(api::performance))
        .route("/api/fills", get(api::fills))
        .route("/api/bars", get(api::bars))
        .route("/api/config", get(api::config))
        .route("/api/pairs", get(api::pairs))
        .route("/api/openapi.json", get(api::openapi))
        .route("/api/control/{action}", control)
        .route("/metrics", get(metrics::metrics))
        .fallback(errors::no_route)
        // After the routes: it is set on each of them.
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(server.clone(), security::guard))
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(not_an_upgrade)))
        .layer(axum::middleware::from_fn(security::headers))
        .with_state(server)
}

/// The page, its assets and the JSON are compressed (gzip or br, as the client accepts); a
/// WebSocket upgrade is not an answer with a body to compress.
fn not_an_upgrade(status: StatusCode, _: axum::http::Version, _: &HeaderMap, _: &axum::http::Extensions) -> bool {
    status != StatusCode::SWITCHING_PROTOCOLS
}

/// The page; on the fleet dashboard `/` and `/runs` are the runs list and `/runs/{id}` a run's
/// board (the same page as a run's own dashboard, which reads the run from its address).
async fn page(State(server): State<Arc<Server>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let fleet = server.fleet.get().is_some();
    match path {
        "/" | "/runs" if fleet => assets::asset("/runs.html", &headers),
        "/runs" => errors::ApiError::not_found(
            "this dashboard shows one process's runs: the runs list is `nanotrader serve`'s",
        )
        .into_response(),
        _ if path.starts_with("/runs/") => {
            let id = &path["/runs/".len()..];
            if !fleet || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return errors::ApiError::not_found("no such page").into_response();
            }
            assets::asset("/", &headers)
        }
        _ => assets::asset(path, &headers),
    }
}

async fn live(
    State(server): State<Arc<Server>>,
    params: params::Params,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, errors::ApiError> {
    let upgrade = upgrade?;
    if params.run()?.is_none() {
        server.wait_for_a_board(std::time::Duration::from_secs(10)).await;
    }
    let board = api::board(&server, &params).await?;
    let clients = server.clients.clone();
    Ok(upgrade
        .protocols([stream::SUBPROTOCOL])
        // Pages send nothing but the close: small buffers for a thousand of them. A message over
        // `MAX_CLIENT_MESSAGE` is read whole (up to `MAX_READ_MESSAGE`) and refused with 1009:
        // refused from its header instead, its unread bytes would make our close a TCP reset,
        // which can drop the Close frame before the client reads it.
        .read_buffer_size(stream::MAX_CLIENT_MESSAGE)
        .max_message_size(stream::MAX_READ_MESSAGE)
        .max_frame_size(stream::MAX_READ_MESSAGE)
        .write_buffer_size(0)
        .on_upgrade(move |socket| stream::serve_page(socket, board, clients)))
}
