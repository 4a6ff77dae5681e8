//! Performance figures of a run, kept up to date in O(1) per closed bar: return, drawdown,
//! exposure and Sharpe from the equity at each bar's close, trade counts from the account.
//! Statistics are f64 (they are ratios for people, not money).

use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use crate::broker::Account;
use crate::market::Interval;

const SECS_PER_YEAR: f64 = 365.0 * 24.0 * 3600.0;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Performance {
    pub return_pct: f64,
    pub max_drawdown_pct: f64,
    /// Winning round trips over round trips; `None` before the first round trip closes.
    pub win_rate_pct: Option<f64>,
    /// Fills.
    pub trades: u64,
    pub round_trips: u64,
    /// Closed bars that ended holding a position, in percent of all closed bars.
    pub exposure_pct: f64,
    /// Mean over standard deviation of the per-bar equity returns, annualised for a market open
    /// around the clock; `None` until there are two returns and they vary.
    pub sharpe: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct PerfTracker {
    initial_equity: f64,
    bars_per_year: f64,
    peak: f64,
    max_drawdown: f64,
    last_equity: Option<f64>,
    bars: u64,
    exposed_bars: u64,
    // Welford's running mean and variance of the per-bar returns.
    returns: u64,
    mean: f64,
    m2: f64,
}

impl PerfTracker {
    pub fn new(initial_equity: f64, interval: Interval) -> Self {
        Self {
            initial_equity,
            bars_per_year: SECS_PER_YEAR / interval.secs().max(1) as f64,
            peak: initial_equity,
            max_drawdown: 0.0,
            last_equity: None,
            bars: 0,
            exposed_bars: 0,
            returns: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// One closed bar: the equity at its close and whether a position was held after it.
    pub fn on_bar(&mut self, equity: f64, exposed: bool) {
        self.bars += 1;
        self.exposed_bars += u64::from(exposed);
        if equity > self.peak {
            self.peak = equity;
        } else if self.peak > 0.0 {
            self.max_drawdown = self.max_drawdown.max((self.peak - equity) / self.peak);
        }
        let previous = self.last_equity.unwrap_or(self.initial_equity);
        if previous > 0.0 {
            let r = equity / previous - 1.0;
            self.returns += 1;
            let delta = r - self.mean;
            self.mean += delta / self.returns as f64;
            self.m2 += delta * (r - self.mean);
        }
        self.last_equity = Some(equity);
    }

    pub fn report(&self, account: &Account, trades: u64) -> Performance {
        let equity = account.equity().to_f64().unwrap_or(0.0);
        let trips = account.round_trips();
        let sharpe = (self.returns >= 2)
            .then(|| (self.m2 / (self.returns - 1) as f64).sqrt())
            .filter(|sd| *sd > 0.0)
            .map(|sd| self.mean / sd * self.bars_per_year.sqrt());
        Performance {
            return_pct: percent(equity - self.initial_equity, self.initial_equity),
            max_drawdown_pct: self.max_drawdown * 100.0,
            win_rate_pct: (trips > 0).then(|| percent(account.winning_round_trips() as f64, trips as f64)),
            trades,
            round_trips: trips,
            exposure_pct: percent(self.exposed_bars as f64, self.bars as f64),
            sharpe,
        }
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 { 0.0 } else { part / whole * 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawdown_exposure_and_sharpe_match_a_hand_computation() {
        let mut perf = PerfTracker::new(100.0, Interval::ONE_MINUTE);
        for (equity, exposed) in [(110.0, true), (99.0, true), (121.0, false), (121.0, false)] {
            perf.on_bar(equity, exposed);
        }
        let report = perf.report(&Account::new(rust_decimal::Decimal::ONE_HUNDRED), 0);
        assert!((report.max_drawdown_pct - 10.0).abs() < 1e-9, "{report:?}");
        assert!((report.exposure_pct - 50.0).abs() < 1e-9);
        let returns = [0.1, -0.1, 121.0 / 99.0 - 1.0, 0.0];
        let mean = returns.iter().sum::<f64>() / 4.0;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / 3.0;
        let expected = mean / var.sqrt() * (525_600.0f64).sqrt();
        assert!(
            (report.sharpe.unwrap() - expected).abs() < 1e-6,
            "{report:?} vs {expected}"
        );
        assert_eq!(report.win_rate_pct, None);
    }
}
