//! `nanotrader feed`: Kraken's market data (WebSocket, REST back-fill, the exact trade tape) for
//! one or more pairs, published to NATS JetStream for any number of bots (`run --source nats`).
//!
//! One Kraken WebSocket carries every pair; each pair publishes on a task of its own: it starts
//! after the last bar the stream holds (so a restarted feed leaves no gap: the tape is
//! back-filled from there), publishes each trade and each closed bar, and waits for the
//! stream's acknowledgement before the next, so what a bot reads is stored. A second feed of the same pairs publishes the same message ids, which the
//! stream drops within its duplicate window.

use std::time::Duration;

use clap::Args;
use nanotrader_bus::{FeedPublisher, StreamSettings};
use nanotrader_kraken::consts::PUBLIC_REST_MIN_INTERVAL;
use nanotrader_kraken::{KrakenWsSource, RestClient, WsFeedConfig, WsPair};
use nanotrader_market::{BarAggregator, BarEvent, FeedStatus, Interval, MarketEvent, Source};

use crate::app::AppError;
use crate::config::DEFAULT_NATS_URL;

// The doc comments are the command-line help, where a URL is plain text.
#[allow(rustdoc::bare_urls)]
#[derive(Debug, Args)]
pub struct FeedArgs {
    /// Pairs, as users write them, comma-separated (BTC/USD,ETH/USD).
    #[arg(long, env = "NANOTRADER_PAIR", default_value = "BTC/USD", value_delimiter = ',')]
    pub pair: Vec<String>,
    /// Bar interval of the published bars (1m, 5m, 1h, ...).
    #[arg(long, env = "NANOTRADER_INTERVAL", default_value = "1m")]
    pub interval: Interval,
    /// NATS server [default: nats://127.0.0.1:4222].
    #[arg(long, env = "NANOTRADER_NATS_URL", value_name = "URL")]
    pub nats_url: Option<String>,
    /// The JetStream stream to publish to (made when missing).
    #[arg(
        long,
        env = "NANOTRADER_NATS_STREAM",
        default_value = "MARKET_DATA",
        value_name = "NAME"
    )]
    pub nats_stream: String,
    /// The first token of the subjects (`md.kraken.BTC-USD.bar.60`).
    #[arg(
        long,
        env = "NANOTRADER_NATS_SUBJECT_PREFIX",
        default_value = "md",
        value_name = "TOKEN"
    )]
    pub nats_subject_prefix: String,
    /// Messages older than this many hours are dropped from the stream.
    #[arg(long, env = "NANOTRADER_RETENTION_HOURS", default_value_t = 168.0)]
    pub retention_hours: f64,
    /// The stream's size limit in MiB (the oldest messages go first) [default: none].
    #[arg(long, env = "NANOTRADER_RETENTION_MAX_MB")]
    pub retention_max_mb: Option<u64>,
    /// How long the stream remembers a message id, so a second feed or a restarted one adds
    /// nothing twice.
    #[arg(long, env = "NANOTRADER_DUPLICATE_WINDOW_SECS", default_value_t = 600)]
    pub duplicate_window_secs: u64,
    /// Kraken REST base URL [default: https://api.kraken.com].
    #[arg(long, env = "NANOTRADER_KRAKEN_REST_URL", value_name = "URL")]
    pub kraken_rest_url: Option<String>,
    /// Kraken WebSocket v2 URL [default: wss://ws.kraken.com/v2].
    #[arg(long, env = "NANOTRADER_KRAKEN_WS_URL", value_name = "URL")]
    pub kraken_ws_url: Option<String>,
    /// Seconds without any message after which the WebSocket is reconnected.
    #[arg(long, env = "NANOTRADER_FEED_TIMEOUT_SECS", default_value_t = 15.0)]
    pub feed_timeout_secs: f64,
}

/// Runs the feed until Ctrl-C (or a pair's feed fails for good).
pub async fn feed(args: FeedArgs) -> Result<(), AppError> {
    let url = args.nats_url.clone().unwrap_or_else(|| DEFAULT_NATS_URL.to_owned());
    if !(args.retention_hours.is_finite() && args.retention_hours > 0.0) {
        return Err(AppError::input(format!(
            "retention-hours must be positive, got {}",
            args.retention_hours
        )));
    }
    let Ok(feed_timeout) = Duration::try_from_secs_f64(args.feed_timeout_secs) else {
        return Err(AppError::input(
            "feed-timeout-secs must be a positive number of seconds",
        ));
    };
    let settings = StreamSettings {
        name: args.nats_stream.clone(),
        prefix: args.nats_subject_prefix.clone(),
        max_age: Duration::from_secs_f64(args.retention_hours * 3600.0),
        max_bytes: args.retention_max_mb.map(|mb| (mb as i64).saturating_mul(1 << 20)),
        duplicate_window: Duration::from_secs(args.duplicate_window_secs.max(1)),
    };
    let rest_url = args
        .kraken_rest_url
        .clone()
        .unwrap_or_else(|| nanotrader_kraken::consts::REST_BASE_URL.to_owned());
    let ws_url = args
        .kraken_ws_url
        .clone()
        .unwrap_or_else(|| nanotrader_kraken::consts::WS_PUBLIC_URL.to_owned());
    let rest = RestClient::new(&rest_url, PUBLIC_REST_MIN_INTERVAL).map_err(|e| AppError::runtime(e.to_string()))?;
    let mut pairs = Vec::new();
    for pair in &args.pair {
        pairs.push(crate::sources::resolve_pair(&rest, pair, false).await?);
    }
    let mut publishers = Vec::new();
    let mut ws_pairs = Vec::new();
    for pair in pairs {
        let publisher = FeedPublisher::connect(&url, "kraken", &settings)
            .await
            .map_err(|e| AppError::input(e.to_string()))?;
        let user = pair.names.user.clone();
        let last = publisher
            .last_bar(&user, args.interval.secs())
            .await
            .map_err(|e| AppError::runtime(e.to_string()))?;
        // A restarted feed goes on after the stream's last bar: the tape is back-filled from there.
        let start_at = last.map(|bar| bar.ts.plus(args.interval));
        if let Some(at) = start_at {
            tracing::info!("feed {user}: the stream has bars up to {at}; going on from there");
        }
        publishers.push((publisher, last, user));
        ws_pairs.push(WsPair {
            names: pair.names,
            start_at,
        });
    }
    let config = WsFeedConfig {
        silence_timeout: feed_timeout,
        ..WsFeedConfig::new(&ws_url, args.interval)
    };
    let sources = KrakenWsSource::connect(config, rest, ws_pairs)
        .await
        .map_err(|e| AppError::input(format!("cannot reach Kraken's WebSocket at {ws_url}: {e}")))?;
    let mut tasks = tokio::task::JoinSet::new();
    for ((publisher, last, user), source) in publishers.into_iter().zip(sources) {
        let interval = args.interval;
        tasks.spawn(async move {
            publish_pair(publisher, source, interval, last, &user)
                .await
                .map_err(|e| format!("{user}: {e}"))
        });
    }
    tracing::info!(
        "feed: publishing {} to stream {} at {url} (subjects {}.kraken.<pair>.trade and .bar.{})",
        args.pair.join(", "),
        settings.name,
        settings.prefix,
        args.interval.secs()
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("feed: stopping");
            Ok(())
        }
        Some(ended) = tasks.join_next() => match ended {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AppError::runtime(e)),
            Err(e) => Err(AppError::runtime(format!("a pair's feed task failed: {e}"))),
        },
    }
}

/// One pair: each trade of Kraken's tape and each closed bar after `last` published.
async fn publish_pair(
    mut publisher: FeedPublisher,
    mut source: impl Source,
    interval: Interval,
    last: Option<nanotrader_market::Bar>,
    user: &str,
) -> Result<(), String> {
    let mut aggregator = BarAggregator::new(interval, None);
    let mut closed = Vec::new();
    let (mut trades, mut bars) = (0u64, 0u64);
    loop {
        let event = match source.next_event().await {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        match &event {
            MarketEvent::Trade(trade) => {
                let stored = publisher.publish_trade(user, trade).await.map_err(|e| e.to_string())?;
                trades += u64::from(stored);
            }
            MarketEvent::Status(FeedStatus::Disconnected { reason }) => {
                tracing::warn!("feed {user}: Kraken disconnected ({reason}); the tape is back-filled on reconnect");
            }
            _ => {}
        }
        aggregator.on_event(&event, &mut |e| {
            if let BarEvent::Closed(bar) = e {
                closed.push(bar);
            }
        });
        for bar in closed.drain(..) {
            if last.is_some_and(|last| bar.ts <= last.ts) {
                continue;
            }
            if publisher
                .publish_bar(user, &bar, interval.secs())
                .await
                .map_err(|e| e.to_string())?
            {
                bars += 1;
                if bars.is_multiple_of(60) {
                    tracing::info!("feed {user}: {bars} bars and {trades} trades published");
                }
            }
        }
    }
}
