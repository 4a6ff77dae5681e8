//! Alerts to a webhook (`--notify-url`): the run's fills, feed and store outages and their
//! recoveries, read from the bus on a task of their own, handed to the notifier's queue (which
//! never blocks: it drops the oldest when a receiver is down). Start and stop are sent by the
//! command.

use nanotrader_engine::EngineEvent;
use nanotrader_market::FeedStatus;
use nanotrader_notify::{Event, NotifyHandle, Side};
use tokio::sync::broadcast;

/// Forwards the bus's fills, feed changes and store health changes as alerts until the bus
/// closes. The engine announces the store's changes once each; the feed's are made so here.
pub async fn forward(mut events: broadcast::Receiver<EngineEvent>, alerts: NotifyHandle, run: i64, pair: String) {
    // One alert per outage, one per recovery.
    let mut down = false;
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match event {
            EngineEvent::Fill { order, fill, .. } => alerts.notify(Event::Fill {
                run,
                pair: pair.clone(),
                side: match fill.side {
                    nanotrader_market::Side::Buy => Side::Buy,
                    nanotrader_market::Side::Sell => Side::Sell,
                },
                qty: fill.qty,
                price: fill.price,
                fee: fill.fee,
                order_id: order.id.to_string(),
                trade_id: fill.order_id.to_string(),
                ts: chrono::DateTime::from_timestamp_millis(fill.ts.millis()).unwrap_or_default(),
            }),
            EngineEvent::Feed(FeedStatus::Disconnected { reason }) if !down => {
                down = true;
                alerts.notify(Event::FeedDown {
                    pair: pair.clone(),
                    detail: reason,
                });
            }
            EngineEvent::Feed(FeedStatus::Stale { silent_for_ms }) if !down => {
                down = true;
                alerts.notify(Event::FeedDown {
                    pair: pair.clone(),
                    detail: format!("no message for {} s", silent_for_ms / 1000),
                });
            }
            EngineEvent::Feed(FeedStatus::Connected | FeedStatus::Backfilled { .. }) if down => {
                down = false;
                alerts.notify(Event::FeedUp {
                    pair: pair.clone(),
                    detail: "the feed is back".to_owned(),
                });
            }
            EngineEvent::Store { healthy: false, detail } => alerts.notify(Event::StoreDown { run, detail }),
            EngineEvent::Store { healthy: true, detail } => alerts.notify(Event::StoreUp { run, detail }),
            _ => {}
        }
    }
}
