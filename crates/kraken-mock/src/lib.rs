//! A mock Kraken exchange for tests and offline demos: replays a trades CSV on a market clock
//! and serves it over real HTTP (Kraken's public REST endpoints) and WebSocket v2 (`status`,
//! `heartbeat`, `ping`, `ticker`, `trade`, `ohlc` on BTC/USD, and on any more pairs given
//! their own trades: `MockConfig::more_pairs`, several symbols on one connection as Kraken
//! allows), in Kraken's formats, with optional fault injection.
//!
//! With `MockConfig::private` set it also holds one account and serves Kraken's private REST
//! API (`POST /0/private/<Method>`, signed with `API-Key`/`API-Sign`, nonces and both rate
//! counters checked) and the authenticated WebSocket v2 (`ws_auth_url`: `executions` and
//! `balances` with a `GetWebSocketsToken` token). Orders trade BTC/USD against the tape: market
//! orders (and limits that cross) take at the last trade's price, resting limits fill as maker
//! when a later trade reaches them, each fill optionally split into parts; balances move by
//! exactly cost and fee. Tests can inspect every private call, order, fill and balance.
//! Without an account every private call is refused with `EAPI:Invalid key`.
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
//!
//! // With an account (the secret is base64, as Kraken's are):
//! use nanotrader_kraken_mock::PrivateConfig;
//! let mut config = MockConfig::new("tests/data/btcusd_trades_kraken_20190701.csv");
//! config.private = Some(PrivateConfig::new("key", "c2VjcmV0"));
//! let mock = MockKraken::start(config).await?;
//! println!("{}", mock.ws_auth_url());
//! assert!(mock.private_calls().is_empty());
//! mock.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod counters;
mod faults;
mod markets;
mod private;
mod rest;
mod tape;
mod wire;
mod ws;
mod ws_messages;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
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
use markets::PairMarket;
use nanotrader_market::{Bar, Timestamp};
use private::Private;
use rust_decimal::Decimal;
use tape::Tape;

pub use config::{Faults, Limits, LostReply, MockConfig, MockPair, PrivateConfig, Stall, Tier};
pub use counters::{FaultCounts, MockCounters, RestRequests};
pub use private::account::{Execution, Offset, OrderStatus, OrderType, PlacedOrder, Trigger};

/// The AssetPairs entries served, copied from the reference fixtures (XXBTZUSD: Kraken's docs
/// example; XBTUSDT: a recorded response).
const ASSET_PAIRS: &str = include_str!("asset_pairs.json");
/// How long `shutdown` waits for sessions whose client stopped reading.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The authenticated WebSocket's path (Kraken's is `wss://ws-auth.kraken.com/v2`).
const WS_AUTH_PATH: &str = "/ws-auth/v2";
/// How often resting orders are matched against the tape and the dead man's switch checked.
const MATCH_EVERY: Duration = Duration::from_millis(20);

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
    /// BTC/USD first (the account's market), then `MockConfig::more_pairs` in order.
    pairs: Vec<PairMarket>,
    clock: MarketClock,
    faults: Faults,
    counters: Counters,
    asset_pairs: Map<String, Value>,
    /// REST requests so far, for the every-Nth faults.
    rest_requests: AtomicU64,
    /// The account behind the private API, when configured.
    private: Option<Private>,
}

impl Market {
    /// BTC/USD's tape: the account's market.
    fn tape(&self) -> &Tape {
        &self.pairs[0].tape
    }

    /// The market `pair=` names (any of its spellings, any case).
    fn pair_named(&self, name: &str) -> Option<&PairMarket> {
        self.pairs.iter().find(|p| p.answers_to(name))
    }

    /// The market with WS v2 symbol `symbol`, as its index in `pairs`.
    fn pair_index(&self, symbol: &str) -> Option<usize> {
        self.pairs.iter().position(|p| p.symbol == symbol)
    }
}

/// Fills resting orders as the tape's trades reach them and fires the dead man's switch, so
/// that happens (and reaches the authenticated sockets) without any request.
async fn match_orders(app: App) {
    let Some(private) = &app.market.private else {
        return;
    };
    let mut stop = app.stop.clone();
    let mut tick = tokio::time::interval(MATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let market = &app.market;
                private.lock().account.advance(market.tape(), market.clock.now());
            }
            _ = stop.changed() => return,
        }
    }
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
        let mut asset_pairs = serde_json::from_str(ASSET_PAIRS).map_err(io::Error::other)?;
        let (data, market_start, more) = (config.data.clone(), config.market_start, config.more_pairs.clone());
        let (pairs, asset_pairs) = tokio::task::spawn_blocking(move || {
            let mut pairs = vec![PairMarket::btc(Tape::load(&data, market_start)?)];
            for pair in &more {
                pairs.push(PairMarket::more(pair, market_start, &mut asset_pairs)?);
            }
            io::Result::Ok((pairs, asset_pairs))
        })
        .await
        .map_err(io::Error::other)??;
        let tape = &pairs[0].tape;
        let clock = MarketClock::start(tape.first_ts(), config.speed);
        let private = config
            .private
            .map(|account| Private::new(account, &config.faults, &asset_pairs, tape, clock.now()))
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let market = Arc::new(Market {
            clock,
            pairs,
            faults: config.faults,
            counters: Counters::default(),
            asset_pairs,
            rest_requests: AtomicU64::new(0),
            private,
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
            .route(WS_AUTH_PATH, get(private::ws::upgrade))
            .with_state(app.clone());
        if market.private.is_some() {
            tokio::spawn(match_orders(app));
        }
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

    /// `ws://127.0.0.1:PORT/ws-auth/v2`: the authenticated WebSocket (`executions`,
    /// `balances`), Kraken's `wss://ws-auth.kraken.com/v2`.
    pub fn ws_auth_url(&self) -> String {
        format!("ws://{}{WS_AUTH_PATH}", self.addr)
    }

    /// Private REST calls received per method (`AddOrder`, `Balance`, ...), answered or not:
    /// a paper run must leave this empty.
    pub fn private_calls(&self) -> BTreeMap<String, u64> {
        self.counters().rest.private_methods
    }

    /// Every order placed (validate-only ones are not), in placement order, as it is now.
    pub fn placed_orders(&self) -> Vec<PlacedOrder> {
        self.with_account(|state| state.account.orders().iter().map(|o| o.placed.clone()).collect())
    }

    /// Every fill so far, oldest first.
    pub fn executions(&self) -> Vec<Execution> {
        self.with_account(|state| state.account.fills().iter().map(|f| f.execution.clone()).collect())
    }

    /// The account's balances by Kraken asset id (`ZUSD`, `XXBT`), exact.
    pub fn balances(&self) -> BTreeMap<String, Decimal> {
        self.with_account(|state| {
            let balances = state.account.balances();
            balances.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        })
    }

    /// Deposits `amount` of `asset` (`ZUSD` or `XXBT`; negative: a withdrawal) into the
    /// account, as a person would outside any bot; told on the `balances` channel.
    pub fn deposit(&self, asset: &str, amount: Decimal) {
        let asset = match asset {
            "ZUSD" => private::account::USD,
            "XXBT" => private::account::BTC,
            other => panic!("the mock holds ZUSD and XXBT, not {other}"),
        };
        if let Some(private) = &self.market.private {
            let now = self.market.clock.now();
            private.lock().account.deposit(asset, amount, now);
        }
    }

    /// Runs `read` on the account brought up to market time; empty without an account.
    fn with_account<T: Default>(&self, read: impl FnOnce(&private::State) -> T) -> T {
        let Some(private) = &self.market.private else {
            return T::default();
        };
        let mut state = private.lock();
        state.account.advance(self.market.tape(), self.market.clock.now());
        read(&state)
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
        self.market.tape().expected_bars(until)
    }

    /// `expected_bars` of the market with WS v2 symbol `symbol` (`BTC/USD`, or one of
    /// `MockConfig::more_pairs`); `None` for a symbol the mock does not serve.
    pub fn expected_bars_of(&self, symbol: &str, until: Timestamp) -> Option<Vec<Bar>> {
        let pair = self
            .market
            .pairs
            .iter()
            .find(|p| p.symbol.eq_ignore_ascii_case(symbol))?;
        Some(pair.tape.expected_bars(until))
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
