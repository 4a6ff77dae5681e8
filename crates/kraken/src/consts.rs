//! Kraken endpoints, limits and client timings in one place, each with the reason for its value.

use std::time::Duration;

/// Production REST host; every path below starts with `/0/public/` or `/0/private/`.
pub const REST_BASE_URL: &str = "https://api.kraken.com";
/// Public WebSocket v2 endpoint (v2 speaks `BTC/USD`, not the v1 `XBT/USD`).
pub const WS_PUBLIC_URL: &str = "wss://ws.kraken.com/v2";
/// Authenticated WebSocket v2 endpoint (`executions`, `balances`; a token in every request).
pub const WS_AUTH_URL: &str = "wss://ws-auth.kraken.com/v2";

/// Server time, for clock-skew checks.
pub const PATH_TIME: &str = "/0/public/Time";
/// `online` / `maintenance` / `cancel_only` / `post_only`.
pub const PATH_SYSTEM_STATUS: &str = "/0/public/SystemStatus";
/// The only reliable source of a pair's four names and its decimals.
pub const PATH_ASSET_PAIRS: &str = "/0/public/AssetPairs";
/// Last trade (`c`) and top of book; has no timestamp.
pub const PATH_TICKER: &str = "/0/public/Ticker";
/// Candles, used to back-fill after a gap.
pub const PATH_OHLC: &str = "/0/public/OHLC";
/// Public trades with a nanosecond `since` cursor.
pub const PATH_TRADES: &str = "/0/public/Trades";

/// Spacing between public REST calls: Kraken publishes no number for the per-IP public limit;
/// historic guidance and ccxt's default are about 1 request/s. Overruns show as
/// `EGeneral:Too many requests` or HTTP 429.
/// See <https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits>.
pub const PUBLIC_REST_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// REST Trades answers at most this many trades per call; a shorter page is the end of the tape.
pub const TRADES_PAGE_MAX: usize = 1000;
/// REST OHLC keeps at most 720 committed candles whatever `since` asks (plus the running one).
pub const OHLC_MAX_ROWS: usize = 720;
/// Candle lengths Kraken accepts, in minutes (REST `interval` and WS `ohlc` `interval`).
pub const OHLC_INTERVALS_MINUTES: [u32; 9] = [1, 5, 15, 30, 60, 240, 1440, 10080, 21600];

/// First reconnect delay: long enough not to hammer Cloudflare, short enough to miss little.
pub const RECONNECT_INITIAL: Duration = Duration::from_secs(1);
/// Reconnect delays stop growing here, so a long outage is retried once a minute.
pub const RECONNECT_MAX: Duration = Duration::from_secs(60);
/// Each failed attempt doubles the delay.
pub const RECONNECT_FACTOR: u32 = 2;
/// Delays vary by up to ±20 % so many clients do not reconnect in lockstep after an outage.
pub const RECONNECT_JITTER: f64 = 0.2;

/// No WS frame for this long means the connection is dead: Kraken sends a heartbeat about
/// every second when idle, so 15 s is many missed beats without tripping on a slow network.
pub const FEED_SILENCE_TIMEOUT: Duration = Duration::from_secs(15);
/// A REST call that has not answered in 10 s is retried rather than waited on.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Retryable REST failures are tried this many more times before the error is surfaced.
pub const MAX_RETRIES: u32 = 5;
