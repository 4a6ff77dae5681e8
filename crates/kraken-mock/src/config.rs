//! What a mock exchange replays, how fast, and which failures it injects.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use rust_decimal::Decimal;

use nanotrader_market::Timestamp;

/// Settings of one `MockKraken`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Trades CSV to replay (`ts_ns,price,volume,side`, or any trade layout `CsvReader` reads).
    pub data: PathBuf,
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Market seconds per wall second (600 plays 10 market minutes per second).
    pub speed: f64,
    /// Relabels the data so its first minute is this one (e.g. `Timestamp::now()`, for clients
    /// that compare exchange time with their own clock). The shift is whole minutes, so every
    /// trade keeps its minute. `None` serves the data's own times.
    pub market_start: Option<Timestamp>,
    pub faults: Faults,
    /// The one account of the private API. `None` refuses every private call with
    /// `EAPI:Invalid key`, as the mock always did: a paper run needs no account.
    pub private: Option<PrivateConfig>,
    /// Markets served beside BTC/USD (whose trades are `data`), each with a tape of its own:
    /// AssetPairs lists it, REST and WebSocket v2 serve it, its trade ids count on their own.
    /// The account trades BTC/USD only.
    pub more_pairs: Vec<MockPair>,
}

/// One more market: its WS v2 symbol (`ETH/USD`) and its trades CSV. Its AssetPairs entry is
/// BTC/USD's rules under this pair's names (key and altname `ETHUSD`, wsname `ETH/USD`), as
/// Kraken names the pairs it listed lately.
#[derive(Clone, Debug)]
pub struct MockPair {
    pub symbol: String,
    pub data: PathBuf,
}

impl MockPair {
    pub fn new(symbol: impl Into<String>, data: impl Into<PathBuf>) -> Self {
        Self {
            symbol: symbol.into(),
            data: data.into(),
        }
    }
}

impl MockConfig {
    /// Replays `data` in real time on a free loopback port, without faults.
    pub fn new(data: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            speed: 1.0,
            market_start: None,
            faults: Faults::default(),
            private: None,
            more_pairs: Vec::new(),
        }
    }
}

/// The account behind the private REST API and the authenticated WebSocket.
#[derive(Clone, Debug)]
pub struct PrivateConfig {
    /// `API-Key` header value the mock accepts.
    pub api_key: String,
    /// The API secret, base64 as Kraken hands it out; `API-Sign` is checked with it.
    pub api_secret: String,
    /// Starting `ZUSD` balance.
    pub usd: Decimal,
    /// Starting `XXBT` balance.
    pub btc: Decimal,
    /// Fee rate of fills that rest on the book first (0.0016 = 0.16 %, Kraken's starter rate).
    pub maker_fee: Decimal,
    /// Fee rate of fills that take (0.0026 = 0.26 %).
    pub taker_fee: Decimal,
    /// The counters' caps and decay (section 6 of the reference); `Limits::tier` fills them.
    pub limits: Limits,
    /// Each fill of an order is split into this many trades (each with its own trade id and
    /// fee), so clients meet partial fills; 1 fills at once. A volume too small to split into
    /// whole lots fills in one trade.
    pub fill_parts: u32,
}

impl PrivateConfig {
    /// A starter account with 10,000 USD and no BTC, paying Kraken's starter fees.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            usd: Decimal::from(10_000),
            btc: Decimal::ZERO,
            maker_fee: Decimal::new(16, 4),
            taker_fee: Decimal::new(26, 4),
            limits: Limits::tier(Tier::Starter),
            fill_parts: 1,
        }
    }
}

/// Kraken's verification tiers, which set the rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Starter,
    Intermediate,
    Pro,
}

/// The two counters Kraken keeps per account: the REST "API counter" (per key) and the
/// trading-engine counter (per pair). Both decay continuously in wall time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Above this the API counter answers `EAPI:Rate limit exceeded`.
    pub api_max: f64,
    /// API counter decay per wall second.
    pub api_decay: f64,
    /// Above this the pair's trading counter answers `EOrder:Rate limit exceeded`.
    pub trading_max: f64,
    /// Trading counter decay per wall second.
    pub trading_decay: f64,
}

impl Limits {
    /// Kraken's published numbers for `tier`.
    pub fn tier(tier: Tier) -> Self {
        let (api_max, api_decay, trading_max, trading_decay) = match tier {
            Tier::Starter => (15.0, 0.33, 60.0, 1.0),
            Tier::Intermediate => (20.0, 0.5, 125.0, 2.34),
            Tier::Pro => (20.0, 1.0, 180.0, 3.75),
        };
        Self {
            api_max,
            api_decay,
            trading_max,
            trading_decay,
        }
    }
}

/// Failures to inject; all off by default. "Every N" counts from 1 (N = 3 hits the 3rd, 6th, ...
/// request or frame) and 0 means never.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Drops each WebSocket connection this long after it opened, without a close frame.
    pub drop_after: Option<Duration>,
    /// Periodic silence on each WebSocket connection, which stays open.
    pub stall: Option<Stall>,
    /// Replaces every Nth WebSocket frame of a connection by text that is not JSON.
    pub garbage_every: u64,
    /// Cuts every Nth WebSocket frame of a connection in half.
    pub truncate_every: u64,
    /// Adds unknown fields to every message (REST and WebSocket, top level and inside items).
    pub extra_fields: bool,
    /// Answers every Nth REST request with `EAPI:Rate limit exceeded`.
    pub rate_limit_every: u64,
    /// Answers every Nth REST request with HTTP 503 and an HTML body, as a proxy in front would.
    pub server_error_every: u64,
    /// Delays every REST response by this much.
    pub slow_rest: Option<Duration>,
    /// Refuses every subscription as if its symbol did not exist.
    pub reject_subscriptions: bool,
    /// The next N AddOrders are placed (and executed) but their reply is lost, as `lost_reply`
    /// says: what a client must reconcile by `cl_ord_id` instead of retrying.
    pub lose_addorder_reply: u32,
    /// How a lost reply looks to the client.
    pub lost_reply: LostReply,
    /// The next N AddOrders are placed, then answered with HTTP 500 and no JSON.
    pub addorder_http_500: u32,
    /// The next N private calls answer `EService:Unavailable` and do nothing.
    pub service_unavailable: u32,
    /// The next N private calls answer `EAPI:Invalid nonce` whatever their nonce, doing nothing.
    pub invalid_nonce: u32,
    /// Drops each authenticated WebSocket after it has sent this many messages, without a
    /// close frame.
    pub drop_auth_ws_after: Option<u32>,
}

/// What the client of a lost AddOrder reply sees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LostReply {
    /// The connection closes without any response. (The handler unwinds to end the
    /// connection's task, so this needs the default `panic = "unwind"`.)
    #[default]
    Close,
    /// No response until the client gives up (or the mock stops).
    Hold,
}

/// Sends nothing at all (not even heartbeats or pongs) for `duration`, starting `every`,
/// `2 * every`, ... after the connection opened; what falls in the silence is lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stall {
    pub every: Duration,
    pub duration: Duration,
}
