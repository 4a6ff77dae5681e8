//! The log observer: one line per fill, per burst of gaps and per status period; nothing per bar.

mod gaps;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::engine::EngineEvent;
use crate::market::FeedStatus;
use gaps::GapNotices;

pub async fn log_events(mut events: broadcast::Receiver<EngineEvent>, pair: String) {
    let mut lagged_total = 0u64;
    let mut gaps = GapNotices::default();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = sleep_until(gaps.due()) => {
                if let Some(line) = gaps.take_line(Instant::now()) {
                    tracing::info!("{line}");
                }
                continue;
            }
        };
        match event {
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
                tracing::debug!("gap: {missing} interval(s) with no trades from {from} to {to}");
                gaps.add(from, to, missing, Instant::now());
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
                gaps.fell_behind();
                tracing::debug!("log observer fell behind: {lagged_total} events skipped so far");
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    if let Some(line) = gaps.take_line(Instant::now()) {
        tracing::info!("{line}");
    }
}

/// Sleeps until `at`, or forever without one (a disabled `select!` branch).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn format_lag(ms: i64) -> String {
    match ms {
        ms if ms < 10_000 => format!("{ms} ms"),
        ms if ms < 86_400_000 => format!("{} s", ms / 1000),
        ms => format!("{} days (replayed data)", ms / 86_400_000),
    }
}
