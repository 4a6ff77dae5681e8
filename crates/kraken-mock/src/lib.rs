//! A mock Kraken exchange for tests and offline demos: replays a trades CSV on a market clock
//! and serves it over real HTTP (Kraken's public REST endpoints) and WebSocket v2 (`status`,
//! `heartbeat`, `ping`, `ticker`, `trade`, `ohlc` on BTC/USD), in Kraken's formats, with
//! optional fault injection.
//!
//! It owns what the mock exchange says and when. It depends on the market crate's types only,
//! never on the Kraken adapter it stands in for: the two agree because both follow Kraken's
//! documented formats and recorded payloads, not because they share code. Tests and offline
//! demos use it (a dev-dependency of the binary); nothing shipped links it.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use nanotrader_kraken_mock::{MockConfig, MockKraken};
//! let mut config = MockConfig::new("tests/data/btcusd_trades_kraken_20190701.csv");
//! config.speed = 600.0;
//! let mock = MockKraken::start(config).await?;
//! println!("{} {}", mock.rest_url(), mock.ws_url());
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod counters;
mod faults;
mod rest;
mod tape;
mod wire;
mod ws;
mod ws_messages;

#[cfg(test)]
mod tests;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::middleware::from_fn_with_state;
use axum::routing::get;
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use clock::MarketClock;
use counters::Counters;
use nanotrader_market::{Bar, Timestamp};
use tape::Tape;

pub use config::{Faults, MockConfig, Stall};
pub use counters::{FaultCounts, MockCounters, RestRequests};

/// The AssetPairs entries served, copied from the reference fixtures (XXBTZUSD: Kraken's docs
/// example; XBTUSDT: a recorded response).
const ASSET_PAIRS: &str = include_str!("asset_pairs.json");
/// How long `shutdown` waits for sessions whose client stopped reading.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running mock exchange. Dropping it stops it without waiting; `shutdown` waits.
pub struct MockKraken {
    addr: SocketAddr,
    market: Arc<Market>,
    /// Dropping or signalling it stops the server and every WebSocket session.
    stop: watch::Sender<()>,
    server: JoinHandle<()>,
    /// Yields `None` once every request and session holding an `App` has finished.
    finished: mpsc::Receiver<()>,
}

/// What every request and session reads.
struct Market {
    tape: Tape,
    clock: MarketClock,
    faults: Faults,
    counters: Counters,
    asset_pairs: Map<String, Value>,
    /// REST requests so far, for the every-Nth faults.
    rest_requests: AtomicU64,
}

/// Router state: the market plus the stop signal and a liveness token for `shutdown`.
#[derive(Clone)]
struct App {
    market: Arc<Market>,
    stop: watch::Receiver<()>,
    _alive: mpsc::Sender<()>,
}

impl MockKraken {
    /// Loads the data, binds the listener and starts serving; the market clock starts now.
    pub async fn start(config: MockConfig) -> io::Result<Self> {
        if !(config.speed.is_finite() && config.speed > 0.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("speed must be a positive number, not {}", config.speed),
            ));
        }
        let asset_pairs = serde_json::from_str(ASSET_PAIRS).map_err(io::Error::other)?;
        let (data, market_start) = (config.data.clone(), config.market_start);
        let tape = tokio::task::spawn_blocking(move || Tape::load(&data, market_start))
            .await
            .map_err(io::Error::other)??;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let market = Arc::new(Market {
            clock: MarketClock::start(tape.first_ts(), config.speed),
            tape,
            faults: config.faults,
            counters: Counters::default(),
            asset_pairs,
            rest_requests: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(());
        let (alive, finished) = mpsc::channel(1);
        let app = App {
            market: Arc::clone(&market),
            stop: stop_rx.clone(),
            _alive: alive,
        };
        // The fault layer wraps REST only: `/v2` is added after it.
        let router = rest::routes()
            .layer(from_fn_with_state(app.clone(), faults::rest))
            .route("/v2", get(ws::upgrade))
            .with_state(app);
        let mut stopped = stop_rx;
        let server = tokio::spawn(async move {
            let serving = axum::serve(listener, router).with_graceful_shutdown(async move {
                // Err means the sender is gone: stop as well.
                let _ = stopped.changed().await;
            });
            if let Err(e) = serving.await {
                tracing::debug!("mock kraken server ended: {e}");
            }
        });
        tracing::debug!(%addr, "mock kraken listening");
        Ok(Self {
            addr,
            market,
            stop,
            server,
            finished,
        })
    }

    /// `http://127.0.0.1:PORT`, the base of every REST path.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/v2`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v2", self.addr)
    }

    /// The mock's current market time.
    pub fn market_time(&self) -> Timestamp {
        self.market.clock.now()
    }

    pub fn counters(&self) -> MockCounters {
        self.market.counters.snapshot()
    }

    /// The closed 1-minute bars the data implies up to `until` (minutes without trades absent):
    /// what a client building bars from this mock should end up with.
    pub fn expected_bars(&self, until: Timestamp) -> Vec<Bar> {
        self.market.tape.expected_bars(until)
    }

    /// Stops accepting, lets running requests finish, closes WebSockets with a close frame and
    /// waits for all of it.
    pub async fn shutdown(self) {
        let Self {
            stop,
            server,
            mut finished,
            ..
        } = self;
        stop.send_replace(());
        if let Err(e) = server.await {
            tracing::debug!("mock kraken server task failed: {e}");
        }
        let drained = async { while finished.recv().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            tracing::debug!("mock kraken: sessions still open after {SHUTDOWN_GRACE:?}, leaving them");
        }
    }
}
