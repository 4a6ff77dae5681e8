//! The mock's market clock: replayed time runs `speed` times as fast as the wall clock, from
//! the moment the mock starts.

use std::time::Duration;

use tokio::time::Instant;

use nanotrader_market::Timestamp;

/// Caps one conversion to wall time, so huge gaps or tiny speeds cannot overflow an `Instant`.
const MAX_WAIT: Duration = Duration::from_secs(365 * 86_400);

#[derive(Clone, Copy, Debug)]
pub(super) struct MarketClock {
    wall_start: Instant,
    market_start: Timestamp,
    speed: f64,
}

impl MarketClock {
    /// Starts now at `market_start`; `speed` must be finite and positive (checked by the caller).
    pub(super) fn start(market_start: Timestamp, speed: f64) -> Self {
        Self {
            wall_start: Instant::now(),
            market_start,
            speed,
        }
    }

    pub(super) fn now(&self) -> Timestamp {
        let elapsed = Instant::now().saturating_duration_since(self.wall_start);
        // `as` saturates, so absurd speeds stop at the end of representable time.
        let market = (elapsed.as_nanos() as f64 * self.speed) as i64;
        Timestamp::from_nanos(self.market_start.nanos().saturating_add(market))
    }

    /// The wall instant at which the market reaches `ts`: rounded up, so `now()` then is `>= ts`.
    pub(super) fn wall_at(&self, ts: Timestamp) -> Instant {
        let market = ts.nanos().saturating_sub(self.market_start.nanos()).max(0) as f64;
        let secs = ((market / self.speed).ceil() + 1.0) / 1e9;
        self.wall_start + Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64()))
    }
}
