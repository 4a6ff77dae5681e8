//! `--source kraken-rest`: the seed's loop done right. One Ticker request per poll, never faster
//! than the public budget, on its own task with a timeout, so a slow answer stalls nothing.

use std::time::Duration;

use super::error::KrakenError;
use super::rest::{RestClient, Retries};
use super::symbols::PairNames;
use nanotrader_market::{EventSender, TaskSource};
use nanotrader_market::{FeedStatus, MarketEvent, Quote, SourceError, Timestamp, Trade};

/// Events buffered between the poller and the engine; a poller is slow, so this never fills.
const QUEUE: usize = 256;

/// `--source kraken-rest`, fed by its poller task.
pub struct RestPollSource;

impl RestPollSource {
    /// Starts polling `pair`'s ticker every `every` (the caller keeps it within Kraken's budget).
    pub fn start(client: RestClient, pair: PairNames, every: Duration) -> TaskSource {
        let info = pair.feed_info("kraken-rest");
        TaskSource::spawn(info, QUEUE, |tx| poll(client, pair, every, tx))
    }
}

async fn poll(client: RestClient, pair: PairNames, every: Duration, tx: EventSender) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing_since: Option<(Timestamp, u64)> = None;
    loop {
        ticks.tick().await;
        let events = match client.ticker(&pair.rest_altname, Retries::None).await {
            Ok(ticker) => {
                // Kraken's ticker has no timestamp: the time of the answer is the honest stamp.
                let ts = Timestamp::now();
                let mut events = Vec::with_capacity(3);
                if let Some((since, failures)) = failing_since.take() {
                    tracing::info!("Kraken REST answering again after {failures} failed polls since {since}");
                    events.push(Ok(MarketEvent::Status(FeedStatus::Connected)));
                }
                events.push(Ok(MarketEvent::Quote(Quote {
                    ts,
                    bid: ticker.bid,
                    bid_size: ticker.bid_size,
                    ask: ticker.ask,
                    ask_size: ticker.ask_size,
                })));
                // A price sample, not a trade: its size is unknown, so it adds no volume.
                events.push(Ok(MarketEvent::Trade(Trade {
                    ts,
                    price: ticker.last,
                    size: rust_decimal::Decimal::ZERO,
                    side: None,
                })));
                events
            }
            Err(e) if !e.is_retryable() => vec![Err(fatal(&pair, e))],
            Err(e) => match &mut failing_since {
                // One log line and one status per outage, not one per poll.
                Some((_, failures)) => {
                    *failures += 1;
                    continue;
                }
                None => {
                    tracing::warn!("Kraken REST poll failed, will keep polling: {e}");
                    failing_since = Some((Timestamp::now(), 1));
                    vec![Ok(MarketEvent::Status(FeedStatus::Disconnected {
                        reason: e.to_string(),
                    }))]
                }
            },
        };
        for event in events {
            let stop = event.is_err();
            if tx.send(event).await.is_err() || stop {
                return;
            }
        }
    }
}

fn fatal(pair: &PairNames, e: KrakenError) -> SourceError {
    match e {
        KrakenError::UnknownAssetPair(_) | KrakenError::UnknownPair(_) => SourceError::Input(format!(
            "Kraken does not know the pair {} ({}): {e}",
            pair.user, pair.rest_altname
        )),
        other => SourceError::Fatal(format!("Kraken REST: {other}")),
    }
}
