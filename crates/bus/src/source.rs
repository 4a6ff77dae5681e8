//! The bots' side: a source of closed bars read from the stream.
//!
//! It reads the pair's bar subject from the stream's beginning (as far as retention keeps it)
//! and yields the bars after `after` (a restarted bot's last stored bar) and from `since` on,
//! each once, in order. Starting by time on the server would select by the time a bar was
//! published, not its own time, and a back-filled bar is published late: so the skip is by the
//! bar's own time, here, over at most the stream's retention. When NATS goes away the consumer
//! is made again after the last message taken, so nothing is missed or repeated.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures_util::StreamExt;

use nanotrader_market::{EventSender, FeedStatus, Interval, MarketEvent, SourceInfo, TaskSource, Timestamp};

use crate::wire::BarMessage;
use crate::{BusError, bar_subject, connect};

/// Events buffered between the consumer task and the engine.
const QUEUE: usize = 4096;
/// The wait before a consumer is made again after NATS went away.
const RETRY_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct NatsSourceConfig {
    pub url: String,
    /// The stream the feed publishes to, and its subjects' first token (`md`).
    pub stream: String,
    pub prefix: String,
    /// The exchange and pair the feed publishes, e.g. `kraken` and `BTC/USD`.
    pub exchange: String,
    pub pair: String,
    pub interval: Interval,
    /// Only bars after this one (the last a restarted bot stored).
    pub after: Option<Timestamp>,
    /// Only bars from this time on (`--since`).
    pub since: Option<Timestamp>,
}

/// Opens the bar source: connects and checks the stream is there (a missing stream is one
/// line saying to start the feed), then reads on a task of its own.
pub struct NatsSource;

impl NatsSource {
    /// What a source of this config is (its identity goes into the run key).
    pub fn info(config: &NatsSourceConfig) -> SourceInfo {
        SourceInfo {
            kind: "nats",
            identity: format!("nats:{}:{}", config.exchange, config.pair),
            pair: config.pair.clone(),
            finite: false,
            bar_interval: Some(config.interval),
        }
    }

    pub async fn open(config: NatsSourceConfig) -> Result<TaskSource, BusError> {
        let client = connect(&config.url).await?;
        let js = jetstream::new(client);
        let stream = js.get_stream(&config.stream).await.map_err(|e| BusError::Stream {
            stream: config.stream.clone(),
            cause: format!("{e} (is `nanotrader feed` publishing to {}?)", config.url),
        })?;
        let info = Self::info(&config);
        Ok(TaskSource::spawn(info, QUEUE, move |events| {
            consume(stream, config, events)
        }))
    }
}

async fn consume(stream: jetstream::stream::Stream, config: NatsSourceConfig, events: EventSender) {
    let subject = bar_subject(&config.prefix, &config.exchange, &config.pair, config.interval.secs());
    let mut last_ts = config.after;
    let mut last_seq = 0u64;
    let mut down = false;
    let mut said_skip = false;
    loop {
        let deliver_policy = if last_seq == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: last_seq + 1,
            }
        };
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject.clone(),
                deliver_policy,
                ..Default::default()
            })
            .await;
        let messages = match consumer {
            Ok(consumer) => consumer.messages().await,
            Err(e) => Err(async_nats::jetstream::consumer::StreamError::with_source(
                async_nats::jetstream::consumer::StreamErrorKind::Other,
                e,
            )),
        };
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                if !down {
                    down = true;
                    tracing::warn!("NATS: cannot read {subject}: {e}; trying again every {RETRY_EVERY:?}");
                    let reason = format!("NATS: {e}");
                    if events
                        .send(Ok(MarketEvent::Status(FeedStatus::Disconnected { reason })))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        if events
            .send(Ok(MarketEvent::Status(FeedStatus::Connected)))
            .await
            .is_err()
        {
            return;
        }
        if down {
            down = false;
            tracing::info!("NATS: reading {subject} again after stream sequence {last_seq}");
        }
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    tracing::debug!("NATS: {subject}: {e}");
                    break;
                }
            };
            if let Ok(info) = message.info() {
                last_seq = info.stream_sequence;
            }
            let bar = match serde_json::from_slice::<BarMessage>(&message.payload) {
                Ok(bar) => bar.bar(),
                Err(e) => {
                    // Counted and skipped: one bad message must not stop a bot.
                    tracing::warn!("NATS: a message on {subject} could not be read ({e}); skipped");
                    continue;
                }
            };
            if last_ts.is_some_and(|last| bar.ts <= last) || config.since.is_some_and(|since| bar.ts < since) {
                if !said_skip && last_ts.is_some() {
                    said_skip = true;
                    tracing::debug!("NATS: skipping bars up to the last one stored");
                }
                continue;
            }
            last_ts = Some(bar.ts);
            if events.send(Ok(MarketEvent::Bar(bar))).await.is_err() {
                return;
            }
        }
        // The consumer ended (NATS went away, or it could not be kept): made again after the
        // last message taken.
        if !down {
            down = true;
            tracing::warn!("NATS: the consumer of {subject} ended; made again after stream sequence {last_seq}");
            let reason = "NATS consumer ended".to_owned();
            if events
                .send(Ok(MarketEvent::Status(FeedStatus::Disconnected { reason })))
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}
