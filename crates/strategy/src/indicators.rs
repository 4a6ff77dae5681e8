//! Streaming indicators: O(1) work and fixed memory per update, exact `Decimal` arithmetic.
//!
//! The SMA keeps an exact running sum. The EMA and RSI are recursive and their divisions are
//! inexact, so their state is rounded to `STATE_DP` places after each update: the scale then
//! never grows and a run over millions of bars cannot overflow `Decimal`'s 28 digits.
//! Arithmetic saturates instead of panicking, which only matters for absurd inputs (sums near
//! `Decimal::MAX`, about 7.9e28).

use rust_decimal::Decimal;

/// Decimal places kept in the recursive EMA and RSI state (rounded half-even).
pub const STATE_DP: u32 = 16;

/// Simple moving average over the last `period` values.
#[derive(Clone, Debug)]
pub struct Sma {
    period: usize,
    /// The last `period` values; once full, `oldest` is the slot overwritten next.
    window: Vec<Decimal>,
    oldest: usize,
    sum: Decimal,
}

impl Sma {
    /// A period of 0 is treated as 1 (configurations are validated before they get here).
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            // Grows with the data, so a huge period costs nothing until values arrive.
            window: Vec::new(),
            oldest: 0,
            sum: Decimal::ZERO,
        }
    }

    pub fn push(&mut self, value: Decimal) {
        if self.window.len() < self.period {
            self.window.push(value);
        } else {
            let dropped = std::mem::replace(&mut self.window[self.oldest], value);
            self.sum = self.sum.saturating_sub(dropped);
            self.oldest = (self.oldest + 1) % self.period;
        }
        self.sum = self.sum.saturating_add(value);
    }

    pub fn is_ready(&self) -> bool {
        self.window.len() == self.period
    }

    /// Exact sum of the values in the window (of all values so far during warm-up).
    pub fn sum(&self) -> Decimal {
        self.sum
    }

    pub fn period(&self) -> usize {
        self.period
    }

    /// The mean, `None` until `period` values have been pushed.
    pub fn value(&self) -> Option<Decimal> {
        self.is_ready().then(|| self.sum / Decimal::from(self.period))
    }
}

/// Exponential moving average with `alpha = 2 / (period + 1)`, seeded with the simple mean of
/// the first `period` values.
#[derive(Clone, Debug)]
pub struct Ema {
    period: usize,
    seen: usize,
    /// Sum of the values during warm-up, then the EMA itself.
    state: Decimal,
}

impl Ema {
    /// A period of 0 is treated as 1.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            seen: 0,
            state: Decimal::ZERO,
        }
    }

    pub fn push(&mut self, value: Decimal) {
        if self.is_ready() {
            // ema += alpha * (x - ema), as 2 * (x - ema) / (period + 1) to divide only once.
            let step = value.saturating_sub(self.state).saturating_mul(Decimal::TWO) / self.alpha_denom();
            self.state = self.state.saturating_add(step.round_dp(STATE_DP));
            return;
        }
        self.state = self.state.saturating_add(value);
        self.seen += 1;
        if self.is_ready() {
            self.state = (self.state / Decimal::from(self.period)).round_dp(STATE_DP);
        }
    }

    pub fn is_ready(&self) -> bool {
        self.seen == self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    /// The EMA, `None` until `period` values have been pushed.
    pub fn value(&self) -> Option<Decimal> {
        self.is_ready().then_some(self.state)
    }

    /// `period + 1`, at least 2, so dividing by it can never overflow.
    fn alpha_denom(&self) -> Decimal {
        Decimal::from(self.period) + Decimal::ONE
    }
}

/// Wilder's relative strength index over `period` price changes.
#[derive(Clone, Debug)]
pub struct Rsi {
    period: usize,
    prev: Option<Decimal>,
    changes: usize,
    /// Sums of gains and losses during warm-up, then Wilder's smoothed averages.
    avg_gain: Decimal,
    avg_loss: Decimal,
}

impl Rsi {
    /// A period of 0 is treated as 1.
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            prev: None,
            changes: 0,
            avg_gain: Decimal::ZERO,
            avg_loss: Decimal::ZERO,
        }
    }

    pub fn push(&mut self, value: Decimal) {
        let Some(prev) = self.prev.replace(value) else {
            return;
        };
        let change = value.saturating_sub(prev);
        let gain = change.max(Decimal::ZERO);
        let loss = (-change).max(Decimal::ZERO);
        if self.is_ready() {
            self.avg_gain = self.smooth(self.avg_gain, gain);
            self.avg_loss = self.smooth(self.avg_loss, loss);
            return;
        }
        self.avg_gain = self.avg_gain.saturating_add(gain);
        self.avg_loss = self.avg_loss.saturating_add(loss);
        self.changes += 1;
        if self.is_ready() {
            let n = Decimal::from(self.period);
            self.avg_gain = (self.avg_gain / n).round_dp(STATE_DP);
            self.avg_loss = (self.avg_loss / n).round_dp(STATE_DP);
        }
    }

    /// True once `period` changes (`period + 1` values) have been seen.
    pub fn is_ready(&self) -> bool {
        self.changes == self.period
    }

    pub fn period(&self) -> usize {
        self.period
    }

    /// RSI in [0, 100], `None` during warm-up. 100 when there were no losses; 50 when the price
    /// did not move at all (no gains and no losses: neither side is stronger).
    pub fn value(&self) -> Option<Decimal> {
        if !self.is_ready() {
            return None;
        }
        // 100 - 100 / (1 + gain/loss) == 100 * gain / (gain + loss): no division by a zero
        // loss, and the ratio is at most 1 so scaling it cannot overflow.
        let total = self.avg_gain.saturating_add(self.avg_loss);
        if total.is_zero() {
            return Some(Decimal::from(50));
        }
        Some((self.avg_gain / total * Decimal::ONE_HUNDRED).round_dp(STATE_DP))
    }

    /// Wilder's smoothing: (avg * (period - 1) + x) / period.
    fn smooth(&self, avg: Decimal, x: Decimal) -> Decimal {
        let n = Decimal::from(self.period);
        (avg.saturating_mul(n - Decimal::ONE).saturating_add(x) / n).round_dp(STATE_DP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn ds(values: &[&str]) -> Vec<Decimal> {
        values.iter().map(|s| d(s)).collect()
    }

    /// Pushes every value and records the indicator after each one.
    fn run<T>(
        ind: &mut T,
        values: &[&str],
        push: fn(&mut T, Decimal),
        value: fn(&T) -> Option<Decimal>,
    ) -> Vec<Option<Decimal>> {
        ds(values)
            .into_iter()
            .map(|v| {
                push(ind, v);
                value(ind)
            })
            .collect()
    }

    /// Period, inputs, and the expected value after each input.
    type Case = (usize, &'static [&'static str], &'static [Option<&'static str>]);

    fn expected(values: &[Option<&str>]) -> Vec<Option<Decimal>> {
        values.iter().map(|v| v.map(d)).collect()
    }

    #[test]
    fn sma_warms_up_then_slides() {
        let cases: &[Case] = &[
            (1, &["5", "7.5"], &[Some("5"), Some("7.5")]),
            (
                3,
                &["1", "2", "3", "4", "10"],
                &[None, None, Some("2"), Some("3"), Some("5.6666666666666666666666666667")],
            ),
            (
                2,
                &["19516.96", "19567.63", "19349.99"],
                &[None, Some("19542.295"), Some("19458.81")],
            ),
            // Period 0 behaves as 1.
            (0, &["3"], &[Some("3")]),
        ];
        for &(period, input, want) in cases {
            let mut sma = Sma::new(period);
            let got = run(&mut sma, input, Sma::push, Sma::value);
            assert_eq!(got, expected(want), "period {period}");
        }
    }

    #[test]
    fn sma_sum_is_exact_and_ring_wraps() {
        let mut sma = Sma::new(3);
        let mut sums = vec![];
        for v in ds(&["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]) {
            sma.push(v);
            sums.push(sma.sum());
        }
        assert_eq!(sums, ds(&["0.1", "0.3", "0.6", "0.9", "1.2", "1.5", "1.8"]));
        assert_eq!(sma.period(), 3);
        assert!(sma.is_ready());
    }

    #[test]
    fn ema_matches_hand_computed_values() {
        // Expected values: python3 decimal, prec 60, with the same half-even rounding of each
        // step to 16 places: ema += ((x - ema) * 2 / (period + 1)).quantize(1e-16).
        let cases: &[Case] = &[
            // alpha = 1: the EMA is the last value.
            (1, &["4", "9", "2.5"], &[Some("4"), Some("9"), Some("2.5")]),
            // alpha = 0.5, seeded with mean(2, 4) = 3.
            (
                3,
                &["2", "4", "6", "8", "7"],
                &[None, None, Some("4"), Some("6"), Some("6.5")],
            ),
            // Seed mean(10, 11, 12) = 11, then alpha = 0.4.
            (
                4,
                &["10", "11", "12", "13", "20", "15"],
                &[None, None, None, Some("11.5"), Some("14.9"), Some("14.94")],
            ),
            // An inexact seed: 10/3.
            (
                3,
                &["1", "3", "6", "10", "7"],
                &[
                    None,
                    None,
                    Some("3.3333333333333333"),
                    Some("6.6666666666666667"),
                    Some("6.8333333333333333"),
                ],
            ),
            // Real closes and an inexact alpha, 2/11.
            (
                10,
                &[
                    "19516.96", "19567.63", "19349.99", "19399.99", "19487.25", "19400.01", "19350.02", "19398.9",
                    "19390.12", "19351.01", "19392", "19411.09", "19479.49",
                ],
                &[
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    Some("19421.188"),
                    Some("19415.8810909090909091"),
                    Some("19415.0099834710743802"),
                    Some("19426.7336228399699474"),
                ],
            ),
        ];
        for &(period, input, want) in cases {
            let mut ema = Ema::new(period);
            let got = run(&mut ema, input, Ema::push, Ema::value);
            assert_eq!(got, expected(want), "period {period}");
        }
    }

    #[test]
    fn rsi_matches_hand_computed_values() {
        // Expected values: python3 decimal, prec 60; averages rounded half-even to 16 places
        // after each update, RSI = (100 * gain / (gain + loss)).quantize(1e-16).
        let cases: &[Case] = &[
            // Only gains: 100. Flat: 50. Only losses: 0.
            (2, &["1", "2", "3"], &[None, None, Some("100")]),
            (2, &["5", "5", "5", "5"], &[None, None, Some("50"), Some("50")]),
            (2, &["3", "2", "1", "0.5"], &[None, None, Some("0"), Some("0")]),
            // Changes +1, -1 -> 50; then +2: gain (0.5*1+2)/2 = 1.25, loss 0.25 -> 83.33..
            (
                2,
                &["10", "11", "10", "12", "12"],
                &[
                    None,
                    None,
                    Some("50"),
                    Some("83.3333333333333333"),
                    Some("83.3333333333333333"),
                ],
            ),
            // Period 3: changes +2, -1, +3 -> averages rounded to 16 places; then -2.
            (
                3,
                &["100", "102", "101", "104", "102"],
                &[None, None, None, Some("83.333333333333335"), Some("55.555555555555555")],
            ),
        ];
        for &(period, input, want) in cases {
            let mut rsi = Rsi::new(period);
            let got = run(&mut rsi, input, Rsi::push, Rsi::value);
            assert_eq!(got, expected(want), "period {period} on {input:?}");
        }
    }

    #[test]
    fn rsi_period_14_on_real_closes() {
        // First 16 closes of tests/data/btcusd_1m_20171217.csv; python3 decimal as above.
        let closes = [
            "19516.96", "19567.63", "19349.99", "19399.99", "19487.25", "19400.01", "19350.02", "19398.9", "19390.12",
            "19351.01", "19392", "19411.09", "19479.49", "19458.93", "19425.77", "19410.23",
        ];
        let mut rsi = Rsi::new(14);
        let got = run(&mut rsi, &closes, Rsi::push, Rsi::value);
        assert!(got[..14].iter().all(Option::is_none));
        assert_eq!(got[14], Some(d("44.4516105479635421")));
        assert_eq!(got[15], Some(d("43.5644191083585537")));
    }

    /// A deterministic price walk with mixed scales (2 to 8 places), prices from cents to ~1e7.
    fn walk(n: usize) -> impl Iterator<Item = Decimal> {
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut price = Decimal::from(20_000);
        (0..n).map(move |_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = (seed >> 33) as i64;
            let scale = 2 + (r % 7) as u32;
            let step = Decimal::new(r % 200_001 - 100_000, scale);
            price = (price + step).clamp(Decimal::new(1, 2), Decimal::from(10_000_000));
            price
        })
    }

    #[test]
    fn a_million_updates_stay_bounded_and_exact() {
        let (mut sma, mut ema, mut rsi) = (Sma::new(50), Ema::new(26), Rsi::new(14));
        let mut window = std::collections::VecDeque::new();
        let (mut lo, mut hi) = (Decimal::MAX, Decimal::MIN);
        for price in walk(1_000_000) {
            sma.push(price);
            ema.push(price);
            rsi.push(price);
            window.push_back(price);
            if window.len() > 50 {
                window.pop_front();
            }
            (lo, hi) = (lo.min(price), hi.max(price));
        }
        // The running sum never drifted from the true sum of the window.
        assert_eq!(sma.sum(), window.iter().sum::<Decimal>());
        let ema = ema.value().unwrap();
        assert!(lo <= ema && ema <= hi, "{ema} outside [{lo}, {hi}]");
        assert!(ema.scale() <= STATE_DP);
        let rsi = rsi.value().unwrap();
        assert!(Decimal::ZERO <= rsi && rsi <= Decimal::ONE_HUNDRED);
    }

    #[test]
    fn extreme_values_saturate_instead_of_panicking() {
        let (mut sma, mut ema, mut rsi) = (Sma::new(3), Ema::new(3), Rsi::new(3));
        for v in [Decimal::MAX, Decimal::MAX, Decimal::MIN, Decimal::MAX, Decimal::MIN] {
            sma.push(v);
            ema.push(v);
            rsi.push(v);
            let _ = (sma.value(), ema.value(), rsi.value());
        }
        assert!(
            rsi.value()
                .is_some_and(|r| r >= Decimal::ZERO && r <= Decimal::ONE_HUNDRED)
        );
    }
}
