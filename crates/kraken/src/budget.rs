//! Client-side pacing: a request budget for REST calls and an exponential back-off with jitter.

use std::time::Duration;

use rand::Rng;
use tokio::sync::Mutex;
use tokio::time::{Instant, sleep_until};

/// Spaces requests at least `min_interval` apart across every task that shares it, so the client
/// stays inside Kraken's public budget however many callers there are.
#[derive(Debug)]
pub struct RequestBudget {
    min_interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl RequestBudget {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            next_slot: Mutex::new(None),
        }
    }

    /// Waits for the next free slot and takes it. Waiters are served in arrival order.
    pub async fn acquire(&self) {
        // Holding the (fair) lock while sleeping is what queues the callers.
        let mut next = self.next_slot.lock().await;
        let now = Instant::now();
        let slot = next.map_or(now, |n| n.max(now));
        if slot > now {
            sleep_until(slot).await;
        }
        *next = Some(slot + self.min_interval);
    }

    /// After the exchange said "too many requests": no request before `pause` has passed.
    pub async fn pause_for(&self, pause: Duration) {
        let mut next = self.next_slot.lock().await;
        let until = Instant::now() + pause;
        *next = Some(next.map_or(until, |n| n.max(until)));
    }
}

/// Exponential back-off with jitter: `initial`, doubling up to `max`, each delay spread by
/// +/- `jitter` (a fraction) so that many clients do not retry in lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, jitter: f64) -> Self {
        Self {
            initial,
            max,
            jitter: jitter.clamp(0.0, 1.0),
            attempt: 0,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        base.mul_f64(1.0 + spread).min(self.max)
    }

    /// How many delays have been handed out since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_budget() {
        let budget = std::sync::Arc::new(RequestBudget::new(Duration::from_secs(1)));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let b = budget.clone();
            tasks.push(tokio::spawn(async move {
                b.acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap() - start);
        }
        times.sort();
        assert_eq!(times, (0..5).map(Duration::from_secs).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_pushes_the_next_slot_back() {
        let budget = RequestBudget::new(Duration::from_secs(1));
        budget.acquire().await;
        budget.pause_for(Duration::from_secs(10)).await;
        let start = Instant::now();
        budget.acquire().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_within_the_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 0.2);
        for expected in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0] {
            let d = b.next_delay().as_secs_f64();
            assert!(
                d <= 60.0 && (d - expected).abs() <= expected * 0.2 + 1e-9,
                "{d} vs {expected}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(1200));
        let mut exact = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 0.0);
        assert_eq!(exact.next_delay(), Duration::from_millis(100));
        assert_eq!(exact.next_delay(), Duration::from_millis(200));
    }
}
