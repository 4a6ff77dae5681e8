//! The feed's side: the stream made (or its limits brought up to date), each trade and closed
//! bar published with its `Nats-Msg-Id` and stored (acknowledged) before the next.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage, stream};
use bytes::Bytes;
use rust_decimal::Decimal;

use nanotrader_market::{Bar, Trade};

use crate::wire::{BarMessage, TradeMessage};
use crate::{BusError, StreamSettings, bar_subject, connect, trade_subject};

/// The first and the longest wait between two attempts to publish a message.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Publishes one exchange's trades and bars to the stream.
pub struct FeedPublisher {
    js: jetstream::Context,
    stream: stream::Stream,
    prefix: String,
    exchange: String,
    /// Per pair: the last trade's (time, price, size) and how many of them were seen, for ids.
    repeats: HashMap<String, ((i64, Decimal, Decimal), u32)>,
}

impl FeedPublisher {
    /// Connects and makes the stream (`<prefix>.>`), or brings an existing one's limits to `settings`.
    pub async fn connect(url: &str, exchange: &str, settings: &StreamSettings) -> Result<Self, BusError> {
        let client = connect(url).await?;
        let js = jetstream::new(client);
        let config = stream::Config {
            name: settings.name.clone(),
            subjects: vec![format!("{}.>", settings.prefix)],
            max_age: settings.max_age,
            max_bytes: settings.max_bytes.unwrap_or(-1),
            duplicate_window: settings.duplicate_window,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let stream_error = |cause: String| BusError::Stream {
            stream: settings.name.clone(),
            cause,
        };
        let mut stream = js
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| stream_error(e.to_string()))?;
        let info = stream.info().await.map_err(|e| stream_error(e.to_string()))?;
        let current = &info.config;
        if current.max_age != config.max_age
            || current.max_bytes != config.max_bytes
            || current.duplicate_window != config.duplicate_window
        {
            tracing::info!(
                "stream {}: retention set to {:?} and {} bytes, duplicate window {:?}",
                config.name,
                config.max_age,
                config.max_bytes,
                config.duplicate_window
            );
            js.update_stream(config)
                .await
                .map_err(|e| stream_error(e.to_string()))?;
        }
        Ok(Self {
            js,
            stream,
            prefix: settings.prefix.clone(),
            exchange: exchange.to_owned(),
            repeats: HashMap::new(),
        })
    }

    /// The last bar of `pair` at `interval_secs` the stream holds: a restarted feed goes on
    /// after it.
    pub async fn last_bar(&self, pair: &str, interval_secs: i64) -> Result<Option<Bar>, BusError> {
        let subject = bar_subject(&self.prefix, &self.exchange, pair, interval_secs);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => {
                let bar: BarMessage = serde_json::from_slice(&message.payload).map_err(|e| BusError::Malformed {
                    subject: subject.clone(),
                    cause: e.to_string(),
                })?;
                Ok(Some(bar.bar()))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(BusError::Consume {
                subject,
                cause: e.to_string(),
            }),
        }
    }

    /// Publishes a closed bar and waits until the stream stored it; `false` when the stream
    /// already had it (another feed's, or this one's before a restart).
    pub async fn publish_bar(&self, pair: &str, bar: &Bar, interval_secs: i64) -> Result<bool, BusError> {
        let message = BarMessage::new(bar, interval_secs);
        let id = message.message_id(pair);
        let subject = bar_subject(&self.prefix, &self.exchange, pair, interval_secs);
        self.publish(subject, id, &message).await
    }

    /// Publishes a trade and waits until the stream stored it; `false` for a duplicate.
    pub async fn publish_trade(&mut self, pair: &str, trade: &Trade) -> Result<bool, BusError> {
        let message = TradeMessage::new(trade);
        let key = (message.ts, message.price, message.size);
        let nth = match self.repeats.get_mut(pair) {
            Some((last, n)) if *last == key => {
                *n += 1;
                *n
            }
            _ => {
                self.repeats.insert(pair.to_owned(), (key, 0));
                0
            }
        };
        let id = message.message_id(pair, nth);
        let subject = trade_subject(&self.prefix, &self.exchange, pair);
        self.publish(subject, id, &message).await
    }

    /// Publishes until the stream acknowledges: a message that could not be stored (NATS away,
    /// no acknowledgement in time) is sent again with the same `Nats-Msg-Id`, so the stream
    /// keeps one copy whatever happened to the first attempt. Said once when it starts failing
    /// and once when it works again.
    async fn publish(&self, subject: String, id: String, message: &impl serde::Serialize) -> Result<bool, BusError> {
        let payload = Bytes::from(serde_json::to_vec(message).map_err(|e| BusError::Publish {
            subject: subject.clone(),
            cause: e.to_string(),
        })?);
        let mut failing: Option<Instant> = None;
        let mut wait = RETRY_FIRST;
        loop {
            match self.try_publish(&subject, &id, payload.clone()).await {
                Ok(stored) => {
                    if let Some(since) = failing {
                        tracing::info!("NATS: publishing again after {:.1} s", since.elapsed().as_secs_f64());
                    }
                    return Ok(stored);
                }
                Err(cause) => {
                    if failing.is_none() {
                        failing = Some(Instant::now());
                        tracing::warn!("NATS: cannot publish to {subject} ({cause}); trying again until it works");
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn try_publish(&self, subject: &str, id: &str, payload: Bytes) -> Result<bool, String> {
        let publish = PublishMessage::build().payload(payload).message_id(id);
        let ack = self
            .js
            .send_publish(subject.to_owned(), publish)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| {
                if e.kind() == PublishErrorKind::TimedOut {
                    "the stream did not acknowledge in time".to_owned()
                } else {
                    e.to_string()
                }
            })?;
        Ok(!ack.duplicate)
    }
}
