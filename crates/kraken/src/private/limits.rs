//! Client-side copies of Kraken's private rate counters (README section 6), so the bot's own
//! traffic never pushes one over its limit: a call waits until its cost fits.
//!
//! The REST "API counter" (per key) takes +1 for most calls and +2 for TradesHistory/ledgers;
//! AddOrder and CancelOrder go to the per-pair trading counter instead (+1 to add, a cancel by
//! the order's age). Both decay continuously at the tier's rate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The account's verification tier, which sets the counters' caps and decay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tier {
    #[default]
    Starter,
    Intermediate,
    Pro,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Kraken tier '{0}': expected starter, intermediate or pro")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "starter" => Ok(Self::Starter),
            "intermediate" => Ok(Self::Intermediate),
            "pro" => Ok(Self::Pro),
            _ => Err(UnknownTier(s.to_owned())),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Starter => "starter",
            Self::Intermediate => "intermediate",
            Self::Pro => "pro",
        })
    }
}

/// A counter's cap and its decay per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterSpec {
    pub cap: f64,
    pub decay_per_sec: f64,
}

impl Tier {
    /// The REST API counter.
    pub fn api_counter(self) -> CounterSpec {
        let (cap, decay_per_sec) = match self {
            Self::Starter => (15.0, 0.33),
            Self::Intermediate => (20.0, 0.5),
            Self::Pro => (20.0, 1.0),
        };
        CounterSpec { cap, decay_per_sec }
    }

    /// The trading counter, one per pair.
    pub fn trading_counter(self) -> CounterSpec {
        let (cap, decay_per_sec) = match self {
            Self::Starter => (60.0, 1.0),
            Self::Intermediate => (125.0, 2.34),
            Self::Pro => (180.0, 3.75),
        };
        CounterSpec { cap, decay_per_sec }
    }
}

/// What a private call costs on the API counter.
pub fn api_cost(method: &str) -> u32 {
    match method {
        // Trading-engine calls: counted per pair, not here.
        "AddOrder" | "CancelOrder" => 0,
        "TradesHistory" | "Ledgers" | "QueryLedgers" => 2,
        _ => 1,
    }
}

/// What cancelling an order of this age adds to its pair's trading counter.
pub fn cancel_cost(age: Duration) -> u32 {
    match age.as_secs_f64() {
        a if a < 5.0 => 8,
        a if a < 10.0 => 6,
        a if a < 15.0 => 5,
        a if a < 45.0 => 4,
        a if a < 90.0 => 2,
        a if a < 300.0 => 1,
        _ => 0,
    }
}

/// Costs are whole numbers and decay is continuous: this much over the cap is float noise.
const EPSILON: f64 = 1e-9;
/// Our copy stays this far below the cap. A call is counted here before it is sent, but lands
/// on Kraken's counter only when it arrives: when the counter starts from empty, Kraken's
/// decays later than ours, so without room a burst ends just over the cap (seen against the
/// mock exchange). One call of room covers 1 / decay seconds of latency (1 s on Pro, 3 s on
/// Starter).
const HEADROOM: f64 = 1.0;

/// A decaying counter, given the time that passed; the clock is the caller's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counter {
    spec: CounterSpec,
    level: f64,
}

impl Counter {
    pub fn new(spec: CounterSpec) -> Self {
        Self { spec, level: 0.0 }
    }

    pub fn level(&self) -> f64 {
        self.level
    }

    pub fn decay(&mut self, elapsed: Duration) {
        self.level = (self.level - elapsed.as_secs_f64() * self.spec.decay_per_sec).max(0.0);
    }

    /// How long until `cost` fits under the cap less the headroom (zero when it fits now). A
    /// cost above that waits for an empty counter.
    pub fn wait_for(&self, cost: u32) -> Duration {
        let limit = self.spec.cap - HEADROOM;
        let room = if f64::from(cost) > limit {
            0.0
        } else {
            limit - f64::from(cost)
        };
        let excess = self.level - room;
        if excess <= EPSILON {
            return Duration::ZERO;
        }
        // Rounded up to the microsecond so the wait never ends just short of the room.
        let micros = (excess / self.spec.decay_per_sec * 1e6).ceil();
        Duration::from_micros(micros as u64)
    }

    pub fn add(&mut self, cost: u32) {
        self.level += f64::from(cost);
    }

    /// Kraken said the counter is over: our copy was behind (another client on the key?), so
    /// count it as full.
    pub fn fill(&mut self) {
        self.level = self.level.max(self.spec.cap);
    }
}

#[cfg(feature = "client")]
pub use limiter::RateLimits;

#[cfg(feature = "client")]
mod limiter {
    use std::collections::HashMap;

    use tokio::sync::Mutex;
    use tokio::time::{Instant, sleep};

    use super::{Counter, Tier};

    #[derive(Debug)]
    struct Timed {
        counter: Counter,
        at: Instant,
    }

    impl Timed {
        fn new(counter: Counter) -> Self {
            Self {
                counter,
                at: Instant::now(),
            }
        }

        fn catch_up(&mut self) {
            let now = Instant::now();
            self.counter.decay(now - self.at);
            self.at = now;
        }

        /// Waits until `cost` fits, then takes it. Called with the lock held, which queues the
        /// callers in arrival order (tokio's mutex is fair).
        async fn acquire(&mut self, cost: u32) {
            loop {
                self.catch_up();
                let wait = self.counter.wait_for(cost);
                if wait.is_zero() {
                    self.counter.add(cost);
                    return;
                }
                sleep(wait).await;
            }
        }
    }

    /// The API counter and the per-pair trading counters of one key, on tokio's clock.
    #[derive(Debug)]
    pub struct RateLimits {
        tier: Tier,
        api: Mutex<Timed>,
        trading: Mutex<HashMap<String, Timed>>,
    }

    impl RateLimits {
        pub fn new(tier: Tier) -> Self {
            Self {
                tier,
                api: Mutex::new(Timed::new(Counter::new(tier.api_counter()))),
                trading: Mutex::new(HashMap::new()),
            }
        }

        pub fn tier(&self) -> Tier {
            self.tier
        }

        /// Waits until `cost` fits on the API counter and takes it.
        pub async fn acquire_api(&self, cost: u32) {
            if cost > 0 {
                self.api.lock().await.acquire(cost).await;
            }
        }

        /// Waits until `cost` fits on `pair`'s trading counter and takes it. One lock for all
        /// pairs keeps it simple; the bot trades one or two.
        pub async fn acquire_trading(&self, pair: &str, cost: u32) {
            if cost == 0 {
                return;
            }
            let mut pairs = self.trading.lock().await;
            let spec = self.tier.trading_counter();
            pairs
                .entry(pair.to_owned())
                .or_insert_with(|| Timed::new(Counter::new(spec)))
                .acquire(cost)
                .await;
        }

        /// After `EAPI:Rate limit exceeded`: the API counter is full.
        pub async fn api_exceeded(&self) {
            let mut api = self.api.lock().await;
            api.catch_up();
            api.counter.fill();
        }

        /// After `EOrder:Rate limit exceeded` on `pair`: its counter is full.
        pub async fn trading_exceeded(&self, pair: &str) {
            let spec = self.tier.trading_counter();
            let mut pairs = self.trading.lock().await;
            let timed = pairs
                .entry(pair.to_owned())
                .or_insert_with(|| Timed::new(Counter::new(spec)));
            timed.catch_up();
            timed.counter.fill();
        }

        /// The API counter's level now, for tests and metrics.
        pub async fn api_level(&self) -> f64 {
            let mut api = self.api.lock().await;
            api.catch_up();
            api.counter.level()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_parse_from_the_flag() {
        assert_eq!("starter".parse::<Tier>().unwrap(), Tier::Starter);
        assert_eq!("Intermediate".parse::<Tier>().unwrap(), Tier::Intermediate);
        assert_eq!(" PRO ".parse::<Tier>().unwrap(), Tier::Pro);
        assert_eq!(
            "gold".parse::<Tier>().unwrap_err().to_string(),
            "unknown Kraken tier 'gold': expected starter, intermediate or pro"
        );
        assert_eq!(Tier::default(), Tier::Starter);
        for tier in [Tier::Starter, Tier::Intermediate, Tier::Pro] {
            assert_eq!(tier.to_string().parse::<Tier>().unwrap(), tier);
        }
    }

    #[test]
    fn costs_per_section_6() {
        assert_eq!(api_cost("Balance"), 1);
        assert_eq!(api_cost("OpenOrders"), 1);
        assert_eq!(api_cost("TradesHistory"), 2);
        assert_eq!(api_cost("AddOrder"), 0);
        assert_eq!(api_cost("CancelOrder"), 0);
        let s = Duration::from_secs_f64;
        for (age, cost) in [
            (0.0, 8),
            (4.9, 8),
            (5.0, 6),
            (9.9, 6),
            (10.0, 5),
            (15.0, 4),
            (44.9, 4),
            (45.0, 2),
            (90.0, 1),
            (299.0, 1),
            (300.0, 0),
            (3600.0, 0),
        ] {
            assert_eq!(cancel_cost(s(age)), cost, "{age}");
        }
    }

    #[test]
    fn a_counter_waits_exactly_until_the_cost_fits() {
        let mut c = Counter::new(Tier::Starter.api_counter());
        // 15 on Starter, less one call of headroom.
        for _ in 0..14 {
            assert_eq!(c.wait_for(1), Duration::ZERO);
            c.add(1);
        }
        let wait = c.wait_for(1);
        assert!((wait.as_secs_f64() - 1.0 / 0.33).abs() < 1e-5, "{wait:?}");
        assert!(c.wait_for(2) > wait);
        c.decay(wait);
        assert_eq!(c.wait_for(1), Duration::ZERO);
        c.decay(Duration::from_secs(3600));
        assert_eq!(c.level(), 0.0);
        // More than the cap at once: waits for an empty counter, then goes.
        c.add(3);
        assert!(c.wait_for(100) > Duration::ZERO);
        c.decay(Duration::from_secs(10));
        assert_eq!(c.wait_for(100), Duration::ZERO);
    }

    #[cfg(feature = "client")]
    mod paced {
        use super::*;
        use tokio::time::Instant;

        /// Kraken's own count of our calls at the moments they were made, decaying as it does.
        fn server_levels(times: &[Duration], costs: &[u32], spec: CounterSpec) -> Vec<f64> {
            let mut level = 0.0_f64;
            let mut prev = Duration::ZERO;
            let mut levels = Vec::new();
            for (t, cost) in times.iter().zip(costs) {
                level = (level - (*t - prev).as_secs_f64() * spec.decay_per_sec).max(0.0);
                level += f64::from(*cost);
                prev = *t;
                levels.push(level);
            }
            levels
        }

        #[tokio::test(start_paused = true)]
        async fn a_burst_of_20_balance_calls_on_starter_waits_instead_of_exceeding_15() {
            let limits = std::sync::Arc::new(RateLimits::new(Tier::Starter));
            let start = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let l = limits.clone();
                tasks.push(tokio::spawn(async move {
                    l.acquire_api(api_cost("Balance")).await;
                    Instant::now() - start
                }));
            }
            let mut times = Vec::new();
            for t in tasks {
                times.push(t.await.unwrap());
            }
            times.sort();
            // 15 on Starter, less one call of headroom.
            assert!(times[..14].iter().all(|t| t.is_zero()), "{times:?}");
            assert!(times[14] >= Duration::from_secs_f64(1.0 / 0.33), "{times:?}");
            let levels = server_levels(&times, &[1; 20], Tier::Starter.api_counter());
            assert!(levels.iter().all(|l| *l <= 15.0 + 1e-6), "{levels:?}");
            // Paced at the decay rate once full, not slower: the 20th waited about 6 decays.
            assert!(times[19] <= Duration::from_secs_f64(6.0 / 0.33 + 0.01), "{times:?}");
        }

        #[tokio::test(start_paused = true)]
        async fn trades_history_costs_two_and_orders_use_the_pair_counter() {
            let limits = RateLimits::new(Tier::Starter);
            for _ in 0..7 {
                limits.acquire_api(api_cost("TradesHistory")).await;
            }
            assert_eq!(limits.api_level().await, 14.0);
            // AddOrder does not touch the API counter...
            limits.acquire_api(api_cost("AddOrder")).await;
            assert_eq!(limits.api_level().await, 14.0);
            let start = Instant::now();
            limits.acquire_api(2).await;
            assert!(Instant::now() - start >= Duration::from_secs_f64(1.0 / 0.33));

            // ...but the pair's trading counter: 59 adds fit on starter (60 less the headroom),
            // the next waits a second, and another pair is not held back.
            let start = Instant::now();
            for _ in 0..59 {
                limits.acquire_trading("XBTUSD", 1).await;
            }
            assert_eq!(Instant::now(), start);
            limits.acquire_trading("ETHUSD", 8).await;
            assert_eq!(Instant::now(), start);
            limits.acquire_trading("XBTUSD", 1).await;
            assert_eq!(Instant::now() - start, Duration::from_secs(1));
        }

        #[tokio::test(start_paused = true)]
        async fn a_refusal_from_kraken_fills_our_copy() {
            let limits = RateLimits::new(Tier::Pro);
            limits.acquire_api(1).await;
            limits.api_exceeded().await;
            assert_eq!(limits.api_level().await, 20.0);
            let start = Instant::now();
            limits.acquire_api(1).await;
            // Down to 18 (the cap less the headroom and the cost) at 1/s.
            assert_eq!(Instant::now() - start, Duration::from_secs(2));
            limits.trading_exceeded("XBTUSD").await;
            let start = Instant::now();
            limits.acquire_trading("XBTUSD", 1).await;
            // 2 / 3.75 s, on tokio's millisecond timer.
            let waited = Instant::now() - start;
            assert!(
                waited >= Duration::from_micros(533_333) && waited <= Duration::from_millis(535),
                "{waited:?}"
            );
        }
    }
}
