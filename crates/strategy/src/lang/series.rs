//! The language's indicators beyond the strategy crate's own (`Sma`, `Ema`, `Rsi`): O(1) per
//! value, exact `Decimal` arithmetic, `None` until warmed up. Recursive or inexact state is
//! rounded to `STATE_DP` places, as the crate's indicators do.

use std::collections::VecDeque;

use rust_decimal::{Decimal, MathematicalOps};

use crate::indicators::STATE_DP;

/// Weighted moving average, weights 1..=period (the newest heaviest).
#[derive(Clone, Debug)]
pub struct Wma {
    period: usize,
    window: VecDeque<Decimal>,
    sum: Decimal,
    weighted: Decimal,
}

impl Wma {
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            window: VecDeque::new(),
            sum: Decimal::ZERO,
            weighted: Decimal::ZERO,
        }
    }

    pub fn push(&mut self, x: Decimal) -> Option<Decimal> {
        if self.window.len() == self.period {
            // Every weight drops by one (minus the old sum), the new value weighs `period`.
            let dropped = self.window.pop_front().unwrap_or_default();
            self.weighted = self.weighted.checked_sub(self.sum)?;
            self.sum = self.sum.checked_sub(dropped)?;
        }
        self.window.push_back(x);
        let weight = Decimal::from(self.window.len());
        self.weighted = self.weighted.checked_add(x.checked_mul(weight)?)?;
        self.sum = self.sum.checked_add(x)?;
        (self.window.len() == self.period).then(|| {
            let n = Decimal::from(self.period);
            let total = n * (n + Decimal::ONE) / Decimal::TWO;
            self.weighted.checked_div(total).map(|v| v.round_dp(STATE_DP))
        })?
    }
}

/// Population standard deviation over the last `period` values.
#[derive(Clone, Debug)]
pub struct StdDev {
    period: usize,
    window: VecDeque<Decimal>,
    sum: Decimal,
    squares: Decimal,
}

impl StdDev {
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            window: VecDeque::new(),
            sum: Decimal::ZERO,
            squares: Decimal::ZERO,
        }
    }

    pub fn push(&mut self, x: Decimal) -> Option<Decimal> {
        if self.window.len() == self.period {
            let dropped = self.window.pop_front().unwrap_or_default();
            self.sum = self.sum.checked_sub(dropped)?;
            self.squares = self.squares.checked_sub(dropped.checked_mul(dropped)?)?;
        }
        self.window.push_back(x);
        self.sum = self.sum.checked_add(x)?;
        self.squares = self.squares.checked_add(x.checked_mul(x)?)?;
        if self.window.len() < self.period {
            return None;
        }
        // (n * sum(x^2) - sum(x)^2) / n^2, exact but for the final division and root.
        let n = Decimal::from(self.period);
        let spread = n
            .checked_mul(self.squares)?
            .checked_sub(self.sum.checked_mul(self.sum)?)?;
        let variance = spread.max(Decimal::ZERO).checked_div(n.checked_mul(n)?)?;
        variance.sqrt().map(|v| v.round_dp(STATE_DP))
    }
}

/// Highest (`max = true`) or lowest value of the last `period`, by a monotonic queue: each
/// value enters and leaves once.
#[derive(Clone, Debug)]
pub struct Extreme {
    period: usize,
    max: bool,
    seen: usize,
    /// (index, value), values strictly monotonic from front to back.
    queue: VecDeque<(usize, Decimal)>,
}

impl Extreme {
    pub fn new(period: usize, max: bool) -> Self {
        Self {
            period: period.max(1),
            max,
            seen: 0,
            queue: VecDeque::new(),
        }
    }

    pub fn push(&mut self, x: Decimal) -> Option<Decimal> {
        let i = self.seen;
        self.seen += 1;
        while let Some(&(_, back)) = self.queue.back() {
            let dominated = if self.max { back <= x } else { back >= x };
            if !dominated {
                break;
            }
            self.queue.pop_back();
        }
        self.queue.push_back((i, x));
        while let Some(&(j, _)) = self.queue.front() {
            if j + self.period > i {
                break;
            }
            self.queue.pop_front();
        }
        (self.seen >= self.period).then(|| self.queue.front().map(|&(_, v)| v))?
    }
}

/// Wilder's moving average (the ATR's smoothing): the mean of the first `period` values, then
/// `(avg * (period - 1) + x) / period`.
#[derive(Clone, Debug)]
pub struct Rma {
    period: usize,
    seen: usize,
    state: Decimal,
}

impl Rma {
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            seen: 0,
            state: Decimal::ZERO,
        }
    }

    pub fn push(&mut self, x: Decimal) -> Option<Decimal> {
        let n = Decimal::from(self.period);
        if self.seen == self.period {
            let next = self
                .state
                .checked_mul(n - Decimal::ONE)?
                .checked_add(x)?
                .checked_div(n)?;
            self.state = next.round_dp(STATE_DP);
            return Some(self.state);
        }
        self.state = self.state.checked_add(x)?;
        self.seen += 1;
        if self.seen < self.period {
            return None;
        }
        self.state = self.state.checked_div(n)?.round_dp(STATE_DP);
        Some(self.state)
    }
}

/// The true range of a bar: the largest of high - low, |high - previous close| and
/// |low - previous close|; high - low on the first bar.
#[derive(Clone, Debug, Default)]
pub struct TrueRange {
    prev_close: Option<Decimal>,
}

impl TrueRange {
    pub fn push(&mut self, high: Decimal, low: Decimal, close: Decimal) -> Option<Decimal> {
        let range = high.checked_sub(low)?;
        let tr = match self.prev_close.replace(close) {
            None => range,
            Some(prev) => range
                .max(high.checked_sub(prev)?.abs())
                .max(low.checked_sub(prev)?.abs()),
        };
        Some(tr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: i64) -> Decimal {
        Decimal::from(v)
    }

    /// Each against the plain definition over the window, on values that rise and fall.
    #[test]
    fn match_their_definitions() {
        let xs: Vec<Decimal> = [5, 3, 8, 8, 1, 9, 2, 7, 7, 4, 6, 0, 3].into_iter().map(d).collect();
        let n = 4;
        let (mut wma, mut std, mut hi, mut lo) = (
            Wma::new(n),
            StdDev::new(n),
            Extreme::new(n, true),
            Extreme::new(n, false),
        );
        for i in 0..xs.len() {
            let (w, s, h, l) = (wma.push(xs[i]), std.push(xs[i]), hi.push(xs[i]), lo.push(xs[i]));
            if i + 1 < n {
                assert_eq!((w, s, h, l), (None, None, None, None));
                continue;
            }
            let win = &xs[i + 1 - n..=i];
            let weighted: Decimal = win.iter().enumerate().map(|(k, x)| *x * d(k as i64 + 1)).sum();
            assert_eq!(w, Some((weighted / d(10)).round_dp(STATE_DP)));
            assert_eq!(h, win.iter().max().copied());
            assert_eq!(l, win.iter().min().copied());
            let mean: Decimal = win.iter().sum::<Decimal>() / d(4);
            let var: Decimal = win.iter().map(|x| (*x - mean) * (*x - mean)).sum::<Decimal>() / d(4);
            let got = s.unwrap();
            assert!((got * got - var).abs() < Decimal::new(1, 12), "{got} {var}");
        }
    }

    #[test]
    fn wilder_average_and_true_range() {
        let mut rma = Rma::new(3);
        assert_eq!(rma.push(d(3)), None);
        assert_eq!(rma.push(d(6)), None);
        assert_eq!(rma.push(d(9)), Some(d(6)));
        assert_eq!(rma.push(d(12)), Some(d(8)));
        let mut tr = TrueRange::default();
        assert_eq!(tr.push(d(10), d(8), d(9)), Some(d(2)));
        assert_eq!(
            tr.push(d(12), d(11), d(11)),
            Some(d(3)),
            "a gap up: high - previous close"
        );
        assert_eq!(
            tr.push(d(10), d(6), d(7)),
            Some(d(5)),
            "a gap down: previous close - low"
        );
    }
}
