//! Market data on NATS JetStream: one feed process publishes each trade and each closed bar of
//! its pairs; any number of bots consume the bars as their source.
//!
//! Subjects (documented in docs/deploy.md): `md.<exchange>.<pair>.trade` and
//! `md.<exchange>.<pair>.bar.<interval secs>`, the pair with `/` as `-` (`md.kraken.BTC-USD.bar.60`),
//! all in one stream (`MARKET_DATA` taking `md.>`, both configurable) with bounded retention. Each message
//! carries `Nats-Msg-Id` (a bar: pair, interval and its time; a trade: pair, time, price, size
//! and its place among identical ones), so a message published twice (two feeds, a restarted
//! one) within the stream's duplicate window is stored once; a restarted feed also starts after
//! the last bar the stream holds, and a consumer skips any bar not after the last it took.
//!
//! It owns the subjects, the wire format and the stream's settings. It knows the market's
//! types; it must not know the exchange adapters, the engine, the store or the command line.
//! nats-server 2.9 is the oldest server it must work with: only its features are used.

mod publish;
mod source;
mod wire;

use std::time::Duration;

pub use publish::FeedPublisher;
pub use source::{NatsSource, NatsSourceConfig};
pub use wire::{BarMessage, TradeMessage};

/// The stream and its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// The stream's name (`MARKET_DATA`).
    pub name: String,
    /// The first token of its subjects (`md`): the stream takes `<prefix>.>`.
    pub prefix: String,
    /// Messages older than this are dropped.
    pub max_age: Duration,
    /// The stream's size limit in bytes (the oldest go first); `None`: none.
    pub max_bytes: Option<i64>,
    /// How long a `Nats-Msg-Id` is remembered, so a second publish is dropped.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "MARKET_DATA".to_owned(),
            prefix: "md".to_owned(),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: None,
            duplicate_window: Duration::from_secs(10 * 60),
        }
    }
}

/// What went wrong with the bus: one line each.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot reach NATS at {url}: {cause}")]
    Connect { url: String, cause: String },
    #[error("JetStream stream {stream}: {cause}")]
    Stream { stream: String, cause: String },
    #[error("publishing to {subject}: {cause}")]
    Publish { subject: String, cause: String },
    #[error("consuming {subject}: {cause}")]
    Consume { subject: String, cause: String },
    #[error("a message on {subject} could not be read: {cause}")]
    Malformed { subject: String, cause: String },
}

/// The subject token of a pair: `BTC/USD` -> `BTC-USD` (a subject token holds no `.`, `*`,
/// `>` or whitespace; those become `_`).
pub fn pair_token(pair: &str) -> String {
    pair.chars()
        .map(|c| match c {
            '/' => '-',
            '.' | '*' | '>' | ' ' | '\t' => '_',
            c => c,
        })
        .collect()
}

/// `md.kraken.BTC-USD.trade`.
pub fn trade_subject(prefix: &str, exchange: &str, pair: &str) -> String {
    format!("{prefix}.{exchange}.{}.trade", pair_token(pair))
}

/// `md.kraken.BTC-USD.bar.60`.
pub fn bar_subject(prefix: &str, exchange: &str, pair: &str, interval_secs: i64) -> String {
    format!("{prefix}.{exchange}.{}.bar.{interval_secs}", pair_token(pair))
}

/// Connects to NATS (a server that is not there is an error at once); later drops are
/// reconnected by the client.
pub(crate) async fn connect(url: &str) -> Result<async_nats::Client, BusError> {
    let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(5));
    let connecting = async_nats::connect_with_options(url, options);
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(BusError::Connect {
            url: url.to_owned(),
            cause: e.to_string(),
        }),
        Err(_) => Err(BusError::Connect {
            url: url.to_owned(),
            cause: "no answer within 10 s".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests;
