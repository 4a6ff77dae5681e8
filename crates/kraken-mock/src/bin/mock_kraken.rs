//! `mock_kraken`: the mock Kraken exchange as a process, for offline demos and manual tests.
//! Prints its REST and WebSocket URLs, serves until Ctrl-C.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use nanotrader_kraken_mock::{Faults, Limits, LostReply, MockConfig, MockKraken, MockPair, PrivateConfig, Stall, Tier};
use nanotrader_market::Timestamp;
use rust_decimal::Decimal;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "mock_kraken",
    about = "A mock Kraken exchange (public REST + WebSocket v2, and with --api-key the private \
             REST API and authenticated WebSocket v2) replaying a trades CSV."
)]
struct Args {
    /// Trades CSV to replay (ts_ns,price,volume,side).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "tests/data/btcusd_trades_kraken_20190701.csv"
    )]
    data: PathBuf,

    /// One more market beside BTC/USD, with its own trades CSV: `ETH/USD=eth_trades.csv`
    /// (repeatable).
    #[arg(long = "pair", value_name = "SYMBOL=FILE", value_parser = more_pair)]
    more_pairs: Vec<MockPair>,

    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,

    /// Market seconds per wall second (600 = 10 market minutes per second).
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    speed: f64,

    /// Relabel the data to start at this minute: `now` or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = when)]
    market_start: Option<Timestamp>,

    /// Drop every WebSocket connection (no close frame) this many seconds after it opens.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    drop_after: Option<Duration>,

    /// Go silent on each WebSocket connection every this many seconds (with --stall-for).
    #[arg(long, value_name = "SECS", value_parser = seconds, requires = "stall_for")]
    stall_every: Option<Duration>,

    /// Length of each silence, in seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds, requires = "stall_every")]
    stall_for: Option<Duration>,

    /// Replace every Nth WebSocket frame of a connection by non-JSON text.
    #[arg(long, value_name = "N", default_value_t = 0)]
    garbage_every: u64,

    /// Cut every Nth WebSocket frame of a connection in half.
    #[arg(long, value_name = "N", default_value_t = 0)]
    truncate_every: u64,

    /// Add unknown fields to every message.
    #[arg(long)]
    extra_fields: bool,

    /// Answer every Nth REST request with EAPI:Rate limit exceeded.
    #[arg(long, value_name = "N", default_value_t = 0)]
    rate_limit_every: u64,

    /// Answer every Nth REST request with HTTP 503.
    #[arg(long, value_name = "N", default_value_t = 0)]
    server_error_every: u64,

    /// Delay every REST response by this many seconds.
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    slow_rest: Option<Duration>,

    /// Refuse every subscription as if the symbol did not exist.
    #[arg(long)]
    reject_subscriptions: bool,

    /// API key of the mock's one account; without it every private call is refused
    /// (EAPI:Invalid key).
    #[arg(long, env = "MOCK_KRAKEN_API_KEY", requires = "api_secret", hide_env_values = true)]
    api_key: Option<String>,

    /// The account's API secret, base64 (Kraken's format).
    #[arg(long, env = "MOCK_KRAKEN_API_SECRET", requires = "api_key", hide_env_values = true)]
    api_secret: Option<String>,

    /// Starting USD (ZUSD) balance.
    #[arg(long, value_name = "DECIMAL", default_value = "10000")]
    balance_usd: Decimal,

    /// Starting BTC (XXBT) balance.
    #[arg(long, value_name = "DECIMAL", default_value = "0")]
    balance_btc: Decimal,

    /// Maker fee rate (0.0016 = 0.16 %).
    #[arg(long, value_name = "RATE", default_value = "0.0016")]
    maker_fee: Decimal,

    /// Taker fee rate (0.0026 = 0.26 %).
    #[arg(long, value_name = "RATE", default_value = "0.0026")]
    taker_fee: Decimal,

    /// Verification tier: sets the API and trading rate limits.
    #[arg(long, value_enum, default_value_t = TierArg::Starter)]
    tier: TierArg,

    /// Split every fill into this many trades (partial fills).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    fill_parts: u32,

    /// Place the next N AddOrders but lose their replies (see --lost-reply).
    #[arg(long, value_name = "N", default_value_t = 0)]
    lose_addorder_reply: u32,

    /// How a lost reply looks: the connection closes, or no answer until the client gives up.
    #[arg(long, value_enum, default_value_t = LostReplyArg::Close)]
    lost_reply: LostReplyArg,

    /// Place the next N AddOrders, then answer HTTP 500.
    #[arg(long, value_name = "N", default_value_t = 0)]
    addorder_http_500: u32,

    /// Answer the next N private calls EService:Unavailable (doing nothing).
    #[arg(long, value_name = "N", default_value_t = 0)]
    service_unavailable: u32,

    /// Answer the next N private calls EAPI:Invalid nonce (doing nothing).
    #[arg(long, value_name = "N", default_value_t = 0)]
    invalid_nonce: u32,

    /// Drop each authenticated WebSocket (no close frame) after it sent N messages.
    #[arg(long, value_name = "N")]
    drop_auth_ws_after: Option<u32>,

    /// More logging: -v for debug, -vv for trace.
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
}

impl Args {
    fn config(&self) -> MockConfig {
        let mut config = MockConfig::new(&self.data);
        config.listen = self.listen;
        config.speed = self.speed;
        config.market_start = self.market_start;
        config.more_pairs = self.more_pairs.clone();
        config.faults = Faults {
            drop_after: self.drop_after,
            stall: self
                .stall_every
                .zip(self.stall_for)
                .map(|(every, duration)| Stall { every, duration }),
            garbage_every: self.garbage_every,
            truncate_every: self.truncate_every,
            extra_fields: self.extra_fields,
            rate_limit_every: self.rate_limit_every,
            server_error_every: self.server_error_every,
            slow_rest: self.slow_rest,
            reject_subscriptions: self.reject_subscriptions,
            lose_addorder_reply: self.lose_addorder_reply,
            lost_reply: match self.lost_reply {
                LostReplyArg::Close => LostReply::Close,
                LostReplyArg::Hold => LostReply::Hold,
            },
            addorder_http_500: self.addorder_http_500,
            service_unavailable: self.service_unavailable,
            invalid_nonce: self.invalid_nonce,
            drop_auth_ws_after: self.drop_auth_ws_after,
        };
        config.private = self
            .api_key
            .as_ref()
            .zip(self.api_secret.as_ref())
            .map(|(key, secret)| {
                let mut account = PrivateConfig::new(key, secret);
                account.usd = self.balance_usd;
                account.btc = self.balance_btc;
                account.maker_fee = self.maker_fee;
                account.taker_fee = self.taker_fee;
                account.limits = Limits::tier(match self.tier {
                    TierArg::Starter => Tier::Starter,
                    TierArg::Intermediate => Tier::Intermediate,
                    TierArg::Pro => Tier::Pro,
                });
                account.fill_parts = self.fill_parts;
                account
            });
        config
    }
}

/// `SYMBOL=FILE`, e.g. `ETH/USD=eth_trades.csv`.
fn more_pair(text: &str) -> Result<MockPair, String> {
    match text.split_once('=') {
        Some((symbol, file)) if symbol.contains('/') && !file.is_empty() => Ok(MockPair::new(symbol, file)),
        _ => Err(format!(
            "expected SYMBOL=FILE such as ETH/USD=eth_trades.csv, got '{text}'"
        )),
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TierArg {
    Starter,
    Intermediate,
    Pro,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LostReplyArg {
    Close,
    Hold,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("'{text}' is not a positive number")),
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

fn when(text: &str) -> Result<Timestamp, String> {
    if text.eq_ignore_ascii_case("now") {
        return Ok(Timestamp::now());
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .map(Timestamp::from_nanos)
        .ok_or_else(|| format!("'{text}' is neither 'now' nor an RFC 3339 time"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let level = ["info", "debug", "trace"][usize::from(args.verbose.min(2))];
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(format!("nanotrader={level},warn")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let mock = match MockKraken::start(args.config()).await {
        Ok(mock) => mock,
        Err(e) => {
            eprintln!("error: cannot start the mock: {e}");
            return ExitCode::from(1);
        }
    };
    println!("REST {}", mock.rest_url());
    println!("WS   {}", mock.ws_url());
    if args.api_key.is_some() {
        println!("WS auth {}", mock.ws_auth_url());
    }
    println!("market time {}", mock.market_time());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot wait for Ctrl-C: {e}");
    }
    let counters = mock.counters();
    println!(
        "served: {} WebSocket connections, {} subscriptions, {} WebSocket messages, {} public REST requests",
        counters.ws_connections,
        counters.subscriptions,
        counters.ws_messages_sent,
        counters.public_requests()
    );
    mock.shutdown().await;
    ExitCode::SUCCESS
}
