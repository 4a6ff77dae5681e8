//! Performance figures of a run, kept up to date in O(1) per closed bar: return, drawdown,
//! exposure and Sharpe from the equity at each bar's close, trade counts from the account.
//! Statistics are f64 (they are ratios for people, not money).
//!
//! It owns the figures and when they mean something (enough round trips and days for the
//! ratios). It knows the account (broker), the market's intervals and the number formats; it
//! must not know whether a run is live or a backtest, nor where the figures are shown.

mod lanes;

use rust_decimal::prelude::ToPrimitive;
use serde::Serialize;

use nanotrader_broker::Account;
use nanotrader_market::Interval;

pub use lanes::PerfLanes;

const SECS_PER_YEAR: f64 = 365.0 * 24.0 * 3600.0;
const SECS_PER_DAY: f64 = 86_400.0;

/// Sharpe and Sortino are shown to people only over a span that can carry them: at least this
/// many days of bars...
pub const RATIO_MIN_DAYS: f64 = 30.0;
/// ...or at least this many round trips. Below both, a ratio annualised from a few days or a
/// handful of trades is mostly noise (and a large one at that): people see "—" and why, machines
/// (JSON) still get the number with `ratios_meaningful: false` and the reason.
pub const RATIO_MIN_ROUND_TRIPS: u64 = 30;

/// Why Sharpe and Sortino are not shown for this span, or `None` when they are.
pub fn ratios_reason(span_days: f64, round_trips: u64) -> Option<String> {
    (span_days < RATIO_MIN_DAYS && round_trips < RATIO_MIN_ROUND_TRIPS).then(|| {
        format!(
            "needs {RATIO_MIN_DAYS:.0} days of bars or {RATIO_MIN_ROUND_TRIPS} round trips; this run has {} days and {round_trips}",
            nanotrader_format::fixed_f64(span_days, 1)
        )
    })
}

/// Bars in a year of a market open around the clock: what per-bar ratios are annualised by.
pub fn bars_per_year(interval: Interval) -> f64 {
    SECS_PER_YEAR / interval.secs().max(1) as f64
}

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
    /// Mean over downside deviation (root mean square of the negative returns, target 0),
    /// annualised the same way; `None` until there is a negative return.
    pub sortino: Option<f64>,
    /// Days of bars behind these figures: closed bars times the bar interval.
    pub span_days: f64,
    /// Whether the span carries Sharpe and Sortino (`RATIO_MIN_DAYS` days of bars or
    /// `RATIO_MIN_ROUND_TRIPS` round trips). The numbers above are kept either way.
    pub ratios_meaningful: bool,
    /// Why not, when not: "needs 30 days of bars or 30 round trips; this run has 2.0 days and 4".
    pub ratios_reason: Option<String>,
}

impl Performance {
    /// Sharpe as people see it: `None` unless the span carries it.
    pub fn shown_sharpe(&self) -> Option<f64> {
        self.sharpe.filter(|_| self.ratios_meaningful)
    }

    /// Sortino as people see it: `None` unless the span carries it.
    pub fn shown_sortino(&self) -> Option<f64> {
        self.sortino.filter(|_| self.ratios_meaningful)
    }

    /// A ratio for people: `1.23`, or `—` (alone when the ratio is undefined).
    pub fn ratio_text(&self, value: Option<f64>) -> String {
        nanotrader_format::ratio(value.filter(|_| self.ratios_meaningful))
    }

    /// `—`, and why, when the span does not carry Sharpe and Sortino.
    pub fn ratios_note(&self) -> Option<String> {
        self.ratios_reason
            .as_ref()
            .map(|why| format!("{} ({why})", nanotrader_format::NONE))
    }
}

#[derive(Clone, Debug)]
pub struct PerfTracker {
    initial_equity: f64,
    bars_per_year: f64,
    interval_secs: f64,
    peak: f64,
    max_drawdown: f64,
    /// The equity below which the drawdown is a new maximum, `peak * (1 - max_drawdown)`: most
    /// bars are then a comparison, with no division.
    drawdown_floor: f64,
    last_equity: f64,
    bars: u64,
    exposed_bars: u64,
    // Sums of the per-bar returns and of their squares (per-bar returns are small and centred
    // near 0, so the textbook variance formula loses nothing that shows in a ratio).
    returns: u64,
    sum: f64,
    sum_squares: f64,
    downside_squares: f64,
}

impl PerfTracker {
    pub fn new(initial_equity: f64, interval: Interval) -> Self {
        Self {
            initial_equity,
            bars_per_year: bars_per_year(interval),
            interval_secs: interval.secs().max(1) as f64,
            peak: initial_equity,
            max_drawdown: 0.0,
            drawdown_floor: initial_equity,
            last_equity: initial_equity,
            bars: 0,
            exposed_bars: 0,
            returns: 0,
            sum: 0.0,
            sum_squares: 0.0,
            downside_squares: 0.0,
        }
    }

    /// One closed bar: the equity at its close and whether a position was held after it.
    #[inline]
    pub fn on_bar(&mut self, equity: f64, exposed: bool) {
        self.bars += 1;
        self.exposed_bars += u64::from(exposed);
        if equity > self.peak {
            self.peak = equity;
            self.drawdown_floor = equity * (1.0 - self.max_drawdown);
        } else if equity < self.drawdown_floor && self.peak > 0.0 {
            self.max_drawdown = (self.peak - equity) / self.peak;
            self.drawdown_floor = equity;
        }
        let previous = self.last_equity;
        if previous > 0.0 {
            let r = equity / previous - 1.0;
            self.returns += 1;
            self.sum += r;
            self.sum_squares += r * r;
            // Branch-free: the sign of a return is a coin toss the branch predictor loses.
            let loss = r.min(0.0);
            self.downside_squares += loss * loss;
        }
        self.last_equity = equity;
    }

    /// `bars` closed bars without a position and with the equity unchanged at `equity`: the same
    /// as that many `on_bar(equity, false)` calls, in O(1) (a backtest is flat much of the time).
    pub fn on_flat_bars(&mut self, bars: u64, equity: f64) {
        if bars == 0 {
            return;
        }
        let mut zeros = bars;
        if equity != self.last_equity || self.last_equity <= 0.0 {
            self.on_bar(equity, false);
            zeros -= 1;
        }
        self.bars += zeros;
        if equity > 0.0 {
            // Returns of exactly 0 add to the count only.
            self.returns += zeros;
        }
    }

    pub fn report(&self, account: &Account, trades: u64) -> Performance {
        let equity = account.equity().to_f64().unwrap_or(0.0);
        let trips = account.round_trips();
        let n = self.returns as f64;
        let mean = if self.returns > 0 { self.sum / n } else { 0.0 };
        let sharpe = (self.returns >= 2)
            .then(|| ((self.sum_squares - self.sum * mean) / (n - 1.0)).max(0.0).sqrt())
            .filter(|sd| *sd > 0.0)
            .map(|sd| mean / sd * self.bars_per_year.sqrt());
        let sortino = (self.returns >= 2 && self.downside_squares > 0.0)
            .then(|| mean / (self.downside_squares / n).sqrt() * self.bars_per_year.sqrt());
        let span_days = self.bars as f64 * self.interval_secs / SECS_PER_DAY;
        let ratios_reason = ratios_reason(span_days, trips);
        Performance {
            return_pct: percent(equity - self.initial_equity, self.initial_equity),
            max_drawdown_pct: self.max_drawdown * 100.0,
            win_rate_pct: (trips > 0).then(|| percent(account.winning_round_trips() as f64, trips as f64)),
            trades,
            round_trips: trips,
            exposure_pct: percent(self.exposed_bars as f64, self.bars as f64),
            sharpe,
            sortino,
            span_days,
            ratios_meaningful: ratios_reason.is_none(),
            ratios_reason,
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
        let downside = (0.01f64 / 4.0).sqrt();
        let sortino = mean / downside * (525_600.0f64).sqrt();
        assert!(
            (report.sortino.unwrap() - sortino).abs() < 1e-6,
            "{report:?} vs {sortino}"
        );
    }

    #[test]
    fn ratios_are_meaningful_from_30_days_or_30_round_trips() {
        assert_eq!(
            ratios_reason(2.0, 4).as_deref(),
            Some("needs 30 days of bars or 30 round trips; this run has 2.0 days and 4")
        );
        assert!(ratios_reason(29.99, 29).is_some());
        assert_eq!(ratios_reason(30.0, 0), None);
        assert_eq!(ratios_reason(0.5, 30), None);

        // 2 days of 1-minute bars, no trades: the numbers exist but are not shown.
        let mut perf = PerfTracker::new(100.0, Interval::ONE_MINUTE);
        for i in 0..2 * 1440 {
            perf.on_bar(100.0 + (i % 7) as f64 - 3.0, true);
        }
        let report = perf.report(&Account::new(rust_decimal::Decimal::ONE_HUNDRED), 0);
        assert!((report.span_days - 2.0).abs() < 1e-12, "{report:?}");
        assert!(report.sharpe.is_some() && report.sortino.is_some());
        assert!(!report.ratios_meaningful);
        assert_eq!((report.shown_sharpe(), report.shown_sortino()), (None, None));
        assert_eq!(report.ratio_text(report.sharpe), "—");
        assert_eq!(
            report.ratios_note().as_deref(),
            Some("— (needs 30 days of bars or 30 round trips; this run has 2.0 days and 0)")
        );

        // 30 days of hourly bars carry them.
        let mut perf = PerfTracker::new(100.0, Interval::from_secs(3600).unwrap());
        for i in 0..30 * 24 {
            perf.on_bar(100.0 + (i % 5) as f64 - 2.0, true);
        }
        let report = perf.report(&Account::new(rust_decimal::Decimal::ONE_HUNDRED), 0);
        assert!(report.ratios_meaningful, "{report:?}");
        assert_eq!(report.ratios_reason, None);
        assert_eq!(report.shown_sharpe(), report.sharpe);
        assert_eq!(report.ratio_text(Some(1.234)), "1.23");
    }

    #[test]
    fn flat_stretches_in_one_step_equal_bar_by_bar() {
        let path = [(100.0, false), (101.0, true), (99.5, true), (99.5, false)];
        let mut one_by_one = PerfTracker::new(100.0, Interval::ONE_MINUTE);
        let mut batched = one_by_one.clone();
        for (equity, exposed) in path {
            one_by_one.on_bar(equity, exposed);
            batched.on_bar(equity, exposed);
        }
        for _ in 0..1000 {
            one_by_one.on_bar(99.5, false);
        }
        one_by_one.on_bar(98.0, false);
        batched.on_flat_bars(1000, 99.5);
        batched.on_flat_bars(1, 98.0);
        let account = Account::new(rust_decimal::Decimal::ONE_HUNDRED);
        let (a, b) = (one_by_one.report(&account, 0), batched.report(&account, 0));
        assert_eq!(
            (a.exposure_pct, a.max_drawdown_pct),
            (b.exposure_pct, b.max_drawdown_pct)
        );
        assert!((a.sharpe.unwrap() - b.sharpe.unwrap()).abs() < 1e-9, "{a:?} {b:?}");
        assert!((a.sortino.unwrap() - b.sortino.unwrap()).abs() < 1e-9, "{a:?} {b:?}");
    }
}
