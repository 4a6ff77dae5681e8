//! The log observer: one line per fill, per burst of gaps and per status period; nothing per bar.
//! Figures are for people (human_format): money to the cent, amounts to 8 places, prices at the
//! pair's tick. The exact values are in the store and its exports.

mod gaps;

use tokio::sync::broadcast;
use tokio::time::Instant;

use gaps::GapNotices;
use nanotrader_engine::{EngineEvent, StatusReport};
use nanotrader_format::{DataMode, PairFormat};
use nanotrader_market::{FeedStatus, Timestamp};

pub async fn log_events(mut events: broadcast::Receiver<EngineEvent>, pair: String, mode: DataMode) {
    let mut lagged_total = 0u64;
    let mut format = PairFormat::new(&pair);
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
            Ok(EngineEvent::Bar { bar, closed: true, .. }) => format.observe_price(bar.close),
            Ok(EngineEvent::Fill { fill, .. }) => {
                format.observe_price(fill.price);
                tracing::info!(
                    "{} {} {} {} @ {} fee {} cash {} position {}",
                    fill.ts,
                    fill.side.as_str().to_uppercase(),
                    format.amount(fill.qty),
                    pair,
                    format.price(fill.price),
                    format.money_unit(fill.fee),
                    format.money_unit(fill.cash_after),
                    format.amount_unit(fill.position_after),
                )
            }
            Ok(EngineEvent::Gap { from, to, missing }) => {
                tracing::debug!("gap: {missing} interval(s) with no trades from {from} to {to}");
                gaps.add(from, to, missing, Instant::now());
            }
            Ok(EngineEvent::Status(s)) => tracing::info!("{}", status_line(&pair, mode, &format, &s, Timestamp::now())),
            Ok(EngineEvent::Feed(status)) => match status {
                // A replay or a simulation is never "connected" to anything.
                FeedStatus::Connected if mode.is_live() => tracing::info!("feed connected"),
                FeedStatus::Connected => {}
                FeedStatus::Disconnected { reason } => {
                    tracing::warn!("feed disconnected: {reason}")
                }
                FeedStatus::Stale { silent_for_ms } => {
                    tracing::warn!("feed silent for {}", nanotrader_format::lag(silent_for_ms))
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

/// `status BTC/USD: live, feed lag 250 ms, ...` for a live feed; a replay or a simulation says
/// what it is, its speed and the data's own time instead of a lag behind the wall clock.
fn status_line(pair: &str, mode: DataMode, format: &PairFormat, s: &StatusReport, now: Timestamp) -> String {
    let timing = if mode.is_live() {
        let lag = s
            .data_ts
            .map(|ts| (now.nanos() - ts.nanos()) / 1_000_000)
            .or(s.feed_lag_ms)
            .map_or_else(|| nanotrader_format::NONE.to_owned(), nanotrader_format::lag);
        format!("live, feed lag {lag}")
    } else {
        let data = s
            .data_ts
            .map_or_else(|| nanotrader_format::NONE.to_owned(), nanotrader_format::utc);
        format!("{}, data time {data}", mode.label())
    };
    format!(
        "status {pair}: {timing}, {} events/s, {} bars, {} fills, equity {}, position {}, store lag {} bars",
        nanotrader_format::fixed_f64(s.events_per_sec, 0),
        nanotrader_format::count(s.bars),
        nanotrader_format::count(s.fills),
        format.money_unit(s.equity),
        format.amount_unit(s.position),
        s.store_lag_steps,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotrader_market::Speed;

    fn report(data_ts: Option<Timestamp>) -> StatusReport {
        StatusReport {
            events_per_sec: 1234.4,
            bars: 2880,
            fills: 12,
            equity: "99997.35129".parse().unwrap(),
            position: "0.021776".parse().unwrap(),
            feed_lag_ms: None,
            data_ts,
            store_lag_steps: 0,
            venue: None,
            protection: None,
        }
    }

    #[test]
    fn a_replay_shows_its_speed_and_the_data_time_never_a_lag() {
        let format = PairFormat::new("BTC/USD");
        let old = Some(Timestamp::from_secs(1_504_441_440));
        let now = Timestamp::from_secs(1_750_000_000);
        let line = status_line(
            "BTC/USD",
            DataMode::Replay(Speed::Factor(60.0)),
            &format,
            &report(old),
            now,
        );
        assert_eq!(
            line,
            "status BTC/USD: replay 60x, data time 2017-09-03 12:24:00 UTC, 1,234 events/s, 2,880 bars, \
             12 fills, equity 99,997.35 USD, position 0.02177600 BTC, store lag 0 bars"
        );
        assert!(!line.contains("live") && !line.contains("lag 2"), "{line}");
        let sim = status_line("BTC/USD", DataMode::Simulation(Speed::Max), &format, &report(old), now);
        assert!(
            sim.starts_with("status BTC/USD: simulation max speed, data time 2017-09-03"),
            "{sim}"
        );
    }

    #[test]
    fn a_live_feed_shows_its_lag_in_human_units_never_negative() {
        let format = PairFormat::new("BTC/USD");
        let now = Timestamp::from_secs(1_750_000_000);
        let line = |data_ts| status_line("BTC/USD", DataMode::Live, &format, &report(Some(data_ts)), now);
        assert!(line(now.add_secs(-2)).starts_with("status BTC/USD: live, feed lag 2.0 s,"));
        assert!(line(Timestamp::from_nanos(now.nanos() - 250_000_000)).contains("feed lag 250 ms,"));
        // The exchange's clock a little ahead of ours.
        assert!(
            line(now.add_secs(3)).contains("feed lag 0 ms,"),
            "{}",
            line(now.add_secs(3))
        );
    }
}
