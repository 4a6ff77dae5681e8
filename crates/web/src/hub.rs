//! The hub: one task per board that turns the engine's bus into delta frames. It gathers what
//! arrives and sends a frame at once when the last one is older than `FRAME_GAP`, else when that
//! gap has passed: a bar a second reaches pages immediately, a million bars a second become about
//! twenty frames a second.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, MissedTickBehavior};

use super::board::{Board, Change, wall_ms};
use nanotrader_engine::{Bus, EngineEvent, MarketBatch};

/// Shortest time between two frames of one board.
pub const FRAME_GAP: Duration = Duration::from_millis(50);
/// Shortest time between frames while the engine outruns the pages (frames are snapshots then)...
pub const OVERLOAD_FRAME_GAP: Duration = Duration::from_millis(250);
/// ...made longer with many pages, so that snapshots cost all pages together about this many
/// bytes a second: a thousand pages must not take the engine's cores to copy snapshots that
/// nobody can read that fast.
pub const SNAPSHOT_BYTES_PER_SEC: f64 = 100e6;
pub const MAX_OVERLOAD_FRAME_GAP: Duration = Duration::from_secs(2);
/// How often the status (events/s, lags, clients) is refreshed on the pages.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Subscribes to the bus now (before the engine starts) and returns the hub's task, which runs
/// until the bus closes (the run ended and dropped it).
pub fn hub(board: Arc<Board>, bus: &Bus) -> impl std::future::Future<Output = ()> + Send + 'static {
    let market = bus.market.subscribe();
    let events = bus.events.subscribe();
    hub_loop(board, market, events)
}

async fn hub_loop(
    board: Arc<Board>,
    mut market: broadcast::Receiver<MarketBatch>,
    mut events: broadcast::Receiver<EngineEvent>,
) {
    let mut changes: Vec<Change> = Vec::new();
    let mut status_tick = tokio::time::interval(STATUS_EVERY);
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_frame = Instant::now() - FRAME_GAP;
    let mut gap = FRAME_GAP;
    let mut first_change_ms = None;
    let mut rate_since = (Instant::now(), board.metrics.events.load(Ordering::Relaxed));
    let (mut market_open, mut events_open) = (true, true);
    // The engine's status comes every few seconds; only a change of the exchange's side in it
    // makes a frame (paper never has one).
    let mut venue = None;
    let mut protection = None;
    while market_open || events_open {
        let due = last_frame + gap;
        let mut status = false;
        tokio::select! {
            biased;
            received = events.recv(), if events_open => match received {
                Ok(EngineEvent::Status(report)) => {
                    if report.venue != venue {
                        venue.clone_from(&report.venue);
                        changes.push(Change::Venue(report.venue));
                    }
                    if report.protection != protection {
                        protection.clone_from(&report.protection);
                        changes.push(Change::Protection(report.protection));
                    }
                }
                Ok(event) => push(&mut changes, event),
                Err(RecvError::Lagged(n)) => skipped(&board, n),
                Err(RecvError::Closed) => events_open = false,
            },
            received = market.recv(), if market_open => match received {
                Ok(batch) => batch.iter().cloned().for_each(|event| push(&mut changes, event)),
                Err(RecvError::Lagged(n)) => skipped(&board, n),
                Err(RecvError::Closed) => market_open = false,
            },
            _ = tokio::time::sleep_until(due), if !changes.is_empty() => {}
            _ = status_tick.tick() => status = true,
        }
        if !changes.is_empty() {
            first_change_ms.get_or_insert_with(wall_ms);
        }
        let now = Instant::now();
        if status || (!changes.is_empty() && now >= due) || !(market_open || events_open) {
            let rate = status.then(|| {
                let events_now = board.metrics.events.load(Ordering::Relaxed);
                let secs = now.duration_since(rate_since.0).as_secs_f64().max(1e-3);
                let rate = events_now.saturating_sub(rate_since.1) as f64 / secs;
                rate_since = (now, events_now);
                rate
            });
            let overloaded = board.publish(
                &mut changes,
                status,
                rate,
                first_change_ms.take().unwrap_or_else(wall_ms),
            );
            gap = if overloaded { overload_gap(&board) } else { FRAME_GAP };
            last_frame = now;
        }
    }
}

fn overload_gap(board: &Board) -> Duration {
    // The snapshot just sent is cached: this only reads its length.
    let bytes = board.snapshot().1.len() as f64 * board.clients() as f64;
    Duration::from_secs_f64(bytes / SNAPSHOT_BYTES_PER_SEC).clamp(OVERLOAD_FRAME_GAP, MAX_OVERLOAD_FRAME_GAP)
}

fn push(changes: &mut Vec<Change>, event: EngineEvent) {
    let change = match event {
        EngineEvent::Bar {
            bar,
            closed,
            lines,
            equity,
            position,
        } => Change::Bar {
            bar,
            closed,
            lines,
            equity,
            exposed: position > rust_decimal::Decimal::ZERO,
        },
        EngineEvent::Signal { ts, signal, change } => Change::Signal { ts, signal, change },
        EngineEvent::Fill { order, fill, .. } => Change::Fill {
            fill,
            reason: Some(order.reason),
        },
        EngineEvent::Gap { from, to, missing } => Change::Gap { from, to, missing },
        EngineEvent::Feed(status) => Change::Feed(status),
        EngineEvent::Trading { .. } => Change::Trading,
        EngineEvent::Store { .. } => Change::Store,
        EngineEvent::Finished { status } => Change::Finished { status },
        EngineEvent::Quote(_) | EngineEvent::Status(_) => return,
    };
    // A forming bar replaces the one before it: only the latest matters in a frame.
    if let (Change::Bar { closed: false, .. }, Some(Change::Bar { closed: false, .. })) = (&change, changes.last()) {
        changes.pop();
    }
    changes.push(change);
}

/// The hub fell behind the bus (`n` messages: single events or batches of bars).
fn skipped(board: &Board, n: u64) {
    let before = board.counters.skipped_events.fetch_add(n, Ordering::Relaxed);
    if before == 0 {
        tracing::warn!("the dashboard fell behind the engine and skipped {n} updates (its chart shows a hole)");
    }
}
