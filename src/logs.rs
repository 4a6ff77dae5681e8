//! The log observer: one line per fill, per gap and per status period; nothing per bar.

use tokio::sync::broadcast;

use crate::engine::EngineEvent;
use crate::market::FeedStatus;

pub async fn log_events(mut events: broadcast::Receiver<EngineEvent>, pair: String) {
    let mut lagged_total = 0u64;
    loop {
        match events.recv().await {
            Ok(EngineEvent::Fill { fill, .. }) => tracing::info!(
                "{} {} {} {} @ {} fee {} cash {} position {}",
                fill.ts,
                fill.side.as_str().to_uppercase(),
                fill.qty.normalize(),
                pair,
                fill.price.normalize(),
                fill.fee.normalize(),
                fill.cash_after.normalize(),
                fill.position_after.normalize(),
            ),
            Ok(EngineEvent::Gap { from, to, missing }) => {
                tracing::info!("gap: {missing} interval(s) with no trades from {from} to {to} (marked, not filled)")
            }
            Ok(EngineEvent::Status(s)) => tracing::info!(
                "status {}: {:.0} events/s, {} bars, {} fills, equity {}, position {}, feed lag {}, store lag {} bars",
                pair,
                s.events_per_sec,
                s.bars,
                s.fills,
                s.equity.round_dp(2),
                s.position.normalize(),
                s.feed_lag_ms.map_or_else(|| "-".to_owned(), format_lag),
                s.store_lag_steps,
            ),
            Ok(EngineEvent::Feed(status)) => match status {
                FeedStatus::Connected => tracing::info!("feed connected"),
                FeedStatus::Disconnected { reason } => {
                    tracing::warn!("feed disconnected: {reason}")
                }
                FeedStatus::Stale { silent_for_ms } => {
                    tracing::warn!("feed silent for {} s", silent_for_ms / 1000)
                }
                FeedStatus::Backfilled { .. } => {} // the feed logs its own back-fills, once each
            },
            Ok(EngineEvent::Finished { .. }) => break,
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                // Logging must never slow the engine; say once in a while what was skipped.
                lagged_total += n;
                tracing::debug!("log observer fell behind: {lagged_total} events skipped so far");
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

fn format_lag(ms: i64) -> String {
    match ms {
        ms if ms < 10_000 => format!("{ms} ms"),
        ms if ms < 86_400_000 => format!("{} s", ms / 1000),
        ms => format!("{} days (replayed data)", ms / 86_400_000),
    }
}
