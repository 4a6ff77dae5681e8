//! Wall-clock pacing shared by the replay and the simulator: each event is released at its
//! market time divided by the speed, measured from one anchor so rounding never accumulates.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio::time::Instant;

use super::source::SourceError;
use super::types::{Interval, MarketEvent, Timestamp};

/// Trade streams get a `Clock` at every minute boundary they cross: a 1-minute grid also closes
/// 5m, 1h, ... bars on time.
const CLOCK_GRID: Interval = Interval::ONE_MINUTE;
/// Caps one wait so absurd speeds or data cannot overflow the timer.
const MAX_WAIT: Duration = Duration::from_secs(365 * 86_400);

/// How fast market time runs against the wall clock.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Speed {
    /// As fast as the consumer takes events, with no timers at all.
    Max,
    /// Market seconds per wall second (60 plays an hour in a minute).
    Factor(f64),
}

impl Speed {
    /// Refuses factors that cannot pace: zero, negative, NaN or infinite.
    pub fn check(self) -> Result<Self, InvalidSpeed> {
        match self {
            Speed::Factor(f) if !(f.is_finite() && f > 0.0) => Err(InvalidSpeed(f.to_string())),
            ok => Ok(ok),
        }
    }
}

/// A speed that cannot pace a replay: zero, negative, not a number or infinite.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid speed '{0}': must be 'max' or a positive number such as 60 or 0.5")]
pub struct InvalidSpeed(pub String);

impl FromStr for Speed {
    type Err = InvalidSpeed;
    /// `max`, or a factor such as `60`, `60x` or `0.5`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = s.strip_suffix(['x', 'X']).unwrap_or(s);
        match number.parse::<f64>() {
            Ok(f) => Speed::Factor(f).check(),
            Err(_) => Err(InvalidSpeed(s.to_owned())),
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Max => f.write_str("max"),
            Speed::Factor(x) => write!(f, "{x}"),
        }
    }
}

/// Holds the next event until its paced wall time. Everything lives in `self` across the only
/// await, so a dropped `pace` future loses nothing: the next call waits for the same event.
pub(crate) struct Pacer {
    factor: f64,
    /// Bars are known at their close, `interval` after their open time.
    bar_interval: Interval,
    /// Wall and market time of the first released event.
    anchor: Option<(Instant, Timestamp)>,
    /// Grid bucket of the last trade taken, to spot a crossed boundary.
    last_bucket: Option<Timestamp>,
    /// A boundary to announce before `pending`.
    clock: Option<Timestamp>,
    /// The next event and the market time at which it is known.
    pending: Option<(MarketEvent, Timestamp)>,
}

impl Pacer {
    /// `None` at `Speed::Max`: sources then hand events out directly.
    pub fn new(speed: Speed, bar_interval: Interval) -> Result<Option<Self>, SourceError> {
        match speed.check().map_err(|e| SourceError::Input(e.to_string()))? {
            Speed::Max => Ok(None),
            Speed::Factor(factor) => Ok(Some(Self {
                factor,
                bar_interval,
                anchor: None,
                last_bucket: None,
                clock: None,
                pending: None,
            })),
        }
    }

    /// The next event from `pull`, released at its paced time (a `Clock` may come first).
    pub async fn pace(
        &mut self,
        pull: impl FnOnce() -> Result<Option<MarketEvent>, SourceError>,
    ) -> Result<Option<MarketEvent>, SourceError> {
        if self.pending.is_none() {
            match pull()? {
                Some(ev) => self.hold(ev),
                None => return Ok(None),
            }
        }
        if let Some(boundary) = self.clock {
            self.wait_for(boundary).await;
            self.clock = None;
            return Ok(Some(MarketEvent::Clock(boundary)));
        }
        if let Some((_, known_at)) = self.pending {
            self.wait_for(known_at).await;
        }
        Ok(self.pending.take().map(|(ev, _)| ev))
    }

    fn hold(&mut self, ev: MarketEvent) {
        let known_at = match &ev {
            MarketEvent::Bar(b) => b.ts.plus(self.bar_interval),
            other => other.ts().unwrap_or_default(),
        };
        if let MarketEvent::Trade(t) = &ev {
            let bucket = t.ts.floor_to(CLOCK_GRID);
            if let Some(prev) = self.last_bucket.filter(|&prev| bucket > prev) {
                self.clock = Some(prev.plus(CLOCK_GRID));
            }
            self.last_bucket = Some(bucket);
        }
        self.pending = Some((ev, known_at));
    }

    async fn wait_for(&mut self, market: Timestamp) {
        let (wall0, market0) = *self.anchor.get_or_insert_with(|| (Instant::now(), market));
        let ahead_secs = market.0.saturating_sub(market0.0).max(0) as f64 / 1e9 / self.factor;
        let wait = Duration::try_from_secs_f64(ahead_secs).map_or(MAX_WAIT, |d| d.min(MAX_WAIT));
        let deadline = wall0.checked_add(wait).unwrap_or(wall0);
        // Behind schedule (a fast factor): no timer, release at once.
        if deadline > Instant::now() {
            tokio::time::sleep_until(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_print_and_refuse() {
        for (text, speed, shown) in [
            ("max", Speed::Max, "max"),
            ("MAX", Speed::Max, "max"),
            ("60", Speed::Factor(60.0), "60"),
            ("60x", Speed::Factor(60.0), "60"),
            ("0.5", Speed::Factor(0.5), "0.5"),
        ] {
            let parsed: Speed = text.parse().unwrap();
            assert_eq!(parsed, speed, "{text}");
            assert_eq!(parsed.to_string(), shown);
        }
        for bad in ["0", "-1", "NaN", "inf", "", "fast", "1e999"] {
            let err = bad.parse::<Speed>().unwrap_err();
            assert!(err.to_string().starts_with("invalid speed"), "{bad}: {err}");
        }
        assert!(Speed::Factor(0.0).check().is_err());
    }
}
