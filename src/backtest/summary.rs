//! What a backtest prints: a summary for people, or the same figures as JSON for machines.

use std::io::{self, Write};

use rust_decimal::Decimal;
use serde::Serialize;

use super::columns::BarColumns;
use super::simulate::{self, Outcome};
use super::sweep::{ComboResult, Metric};
use crate::broker::BrokerConfig;
use crate::config::Trading;
use crate::market::Timestamp;
use crate::report::plain;
use crate::strategy::StrategyConfig;

/// Where the bars came from and what they span.
#[derive(Clone, Debug, Serialize)]
pub struct DataInfo {
    pub source: String,
    /// Binary cache, CSV, SQLite store...
    pub loaded_from: &'static str,
    pub bars: usize,
    pub interval: String,
    pub first_bar: Option<String>,
    pub last_bar: Option<String>,
    /// The CSV's last line, when it was read.
    #[serde(skip)]
    pub last_line: Option<u64>,
}

impl DataInfo {
    pub fn new(source: String, loaded_from: &'static str) -> Self {
        Self {
            source,
            loaded_from,
            bars: 0,
            interval: String::new(),
            first_bar: None,
            last_bar: None,
            last_line: None,
        }
    }

    pub fn fill_from(&mut self, bars: &BarColumns) {
        self.bars = bars.len();
        self.interval = bars.interval.to_string();
        self.first_bar = bars.ts.first().map(|&t| Timestamp::from_millis(t).to_string());
        self.last_bar = bars.ts.last().map(|&t| Timestamp::from_millis(t).to_string());
    }

    /// Where the data ends, for messages: the CSV's last line when it was read.
    pub fn end_note(&self) -> String {
        match self.last_line {
            Some(line) => format!(" (the data ends at line {line})"),
            None => String::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Timings {
    pub load_secs: f64,
    pub compute_secs: f64,
    pub total_secs: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Assumptions {
    pub broker: BrokerConfig,
    pub decide_from_bar: u64,
    pub fills: &'static str,
    pub annualisation: String,
    pub buy_and_hold: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct SingleSummary {
    pub mode: &'static str,
    pub data: DataInfo,
    pub strategy: StrategyConfig,
    pub strategy_name: String,
    pub assumptions: Assumptions,
    pub bars: usize,
    pub fills: u64,
    #[serde(with = "rust_decimal::serde::str")]
    pub start_equity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub end_equity: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub cash: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub position: Decimal,
    pub return_pct: f64,
    pub buy_and_hold_return_pct: Option<f64>,
    pub max_drawdown_pct: f64,
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    pub round_trips: u64,
    pub win_rate_pct: Option<f64>,
    /// Realized P&L per closed round trip, after fees.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub avg_trade_pnl: Option<Decimal>,
    pub exposure_pct: f64,
    #[serde(with = "rust_decimal::serde::str")]
    pub fees_paid: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub realized_pnl: Decimal,
    pub timings: Timings,
}

pub fn single(
    info: &DataInfo,
    strategy: &StrategyConfig,
    trading: &Trading,
    outcome: &Outcome,
    bars: &BarColumns,
    timings: &Timings,
) -> SingleSummary {
    let account = &outcome.account;
    let perf = &outcome.performance;
    let trips = account.round_trips();
    SingleSummary {
        mode: "backtest",
        data: info.clone(),
        strategy: strategy.clone(),
        strategy_name: strategy.describe(),
        assumptions: Assumptions {
            broker: trading.broker.clone(),
            decide_from_bar: trading.decide_from_bar,
            fills: "at the close of the bar whose signal changed, in full, no slippage",
            annualisation: format!(
                "per-bar returns x sqrt({:.0} bars a year): a market open 24/7, 365 days",
                crate::perf::bars_per_year(bars.interval)
            ),
            buy_and_hold: "all cash in at the first close, one fee, marked at the last close",
        },
        bars: bars.len(),
        fills: outcome.fill_count,
        start_equity: account.initial_cash(),
        end_equity: account.equity(),
        cash: account.cash(),
        position: account.position(),
        return_pct: perf.return_pct,
        buy_and_hold_return_pct: simulate::buy_and_hold_pct(bars, trading.broker.fee_rate),
        max_drawdown_pct: perf.max_drawdown_pct,
        sharpe: perf.sharpe,
        sortino: perf.sortino,
        round_trips: trips,
        win_rate_pct: perf.win_rate_pct,
        avg_trade_pnl: (trips > 0).then(|| account.realized_pnl() / Decimal::from(trips)),
        exposure_pct: perf.exposure_pct,
        fees_paid: account.fees_paid(),
        realized_pnl: account.realized_pnl(),
        timings: timings.clone(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepSummary {
    pub mode: &'static str,
    pub combinations: usize,
    pub metric: Metric,
    pub shorts: Vec<usize>,
    pub longs: Vec<usize>,
    pub top: Vec<ComboResult>,
    /// The best combination's full backtest.
    pub best: SingleSummary,
    pub timings: Timings,
}

pub fn sweep(
    results: &[ComboResult],
    shorts: &[usize],
    longs: &[usize],
    metric: Metric,
    top: usize,
    best: SingleSummary,
    timings: &Timings,
) -> SweepSummary {
    SweepSummary {
        mode: "sweep",
        combinations: results.len(),
        metric,
        shorts: shorts.to_vec(),
        longs: longs.to_vec(),
        top: results.iter().take(top).cloned().collect(),
        best,
        timings: timings.clone(),
    }
}

pub fn print_json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}

fn pct(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.2}%"))
}

fn ratio(value: Option<f64>) -> String {
    value.map_or("-".to_owned(), |v| format!("{v:.2}"))
}

fn rate(bars: usize, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".to_owned();
    }
    let per_sec = bars as f64 / secs;
    if per_sec >= 1e6 {
        format!("{:.1}M bars/s", per_sec / 1e6)
    } else {
        format!("{per_sec:.0} bars/s")
    }
}

pub fn print_single(out: &mut impl Write, s: &SingleSummary) -> io::Result<()> {
    writeln!(out, "nanotrader backtest: {} on {}", s.strategy_name, s.data.source)?;
    write_body(out, s)?;
    writeln!(
        out,
        "  time          load {:.3} s ({}), backtest {:.4} s ({})",
        s.timings.load_secs,
        s.data.loaded_from,
        s.timings.compute_secs,
        rate(s.bars, s.timings.compute_secs)
    )
}

fn write_body(out: &mut impl Write, s: &SingleSummary) -> io::Result<()> {
    let range = match (&s.data.first_bar, &s.data.last_bar) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "no bars".to_owned(),
    };
    let broker = &s.assumptions.broker;
    writeln!(out, "  data          {} bars of {} ({range})", s.bars, s.data.interval)?;
    writeln!(out, "  start equity  {}", plain(s.start_equity))?;
    writeln!(
        out,
        "  end equity    {}  ({:+.4}%)",
        plain(s.end_equity.round_dp(8)),
        s.return_pct
    )?;
    writeln!(
        out,
        "  buy and hold  {}  ({})",
        s.buy_and_hold_return_pct
            .map_or("-".to_owned(), |v| format!("{v:+.4}%")),
        s.assumptions.buy_and_hold
    )?;
    writeln!(out, "  max drawdown  {:.4}%", s.max_drawdown_pct)?;
    writeln!(
        out,
        "  Sharpe        {}   Sortino {}   ({})",
        ratio(s.sharpe),
        ratio(s.sortino),
        s.assumptions.annualisation
    )?;
    writeln!(
        out,
        "  trades        {} fills, {} round trips, win rate {}",
        s.fills,
        s.round_trips,
        pct(s.win_rate_pct)
    )?;
    writeln!(
        out,
        "  average trade {} USD   (realized P&L per round trip, after fees)",
        s.avg_trade_pnl.map_or("-".to_owned(), |d| plain(d.round_dp(4)))
    )?;
    writeln!(out, "  exposure      {:.2}% of bars holding a position", s.exposure_pct)?;
    writeln!(
        out,
        "  fees paid     {}   (fee rate {}%, sizing {}, {} starting cash)",
        plain(s.fees_paid.round_dp(2)),
        plain(broker.fee_rate * Decimal::ONE_HUNDRED),
        broker.sizing,
        plain(broker.initial_cash)
    )?;
    writeln!(
        out,
        "  fills         {}; decisions from bar {}",
        s.assumptions.fills, s.assumptions.decide_from_bar
    )
}

pub fn print_sweep(out: &mut impl Write, s: &SweepSummary) -> io::Result<()> {
    writeln!(
        out,
        "nanotrader sweep: {} SMA combinations on {} ({} bars of {}), ranked by {}",
        s.combinations,
        s.best.data.source,
        s.best.bars,
        s.best.data.interval,
        s.metric.label()
    )?;
    writeln!(
        out,
        "  {:>4}  {:>5}  {:>5}  {:>10}  {:>9}  {:>8}  {:>8}  {:>8}  {:>7}  {:>8}",
        "rank", "short", "long", "return %", "max DD %", "Sharpe", "Sortino", "win %", "fills", "fees"
    )?;
    for (i, r) in s.top.iter().enumerate() {
        let p = &r.performance;
        writeln!(
            out,
            "  {:>4}  {:>5}  {:>5}  {:>10.4}  {:>9.4}  {:>8}  {:>8}  {:>8}  {:>7}  {:>8}",
            i + 1,
            r.short,
            r.long,
            p.return_pct,
            p.max_drawdown_pct,
            ratio(p.sharpe),
            ratio(p.sortino),
            p.win_rate_pct.map_or("-".to_owned(), |v| format!("{v:.1}")),
            p.trades,
            plain(r.fees_paid.round_dp(2)),
        )?;
    }
    writeln!(out, "best: {}", s.best.strategy_name)?;
    write_body(out, &s.best)?;
    writeln!(
        out,
        "  time          load {:.3} s ({}), sweep {:.3} s ({} bar-steps/s on {} threads)",
        s.timings.load_secs,
        s.best.data.loaded_from,
        s.timings.compute_secs,
        rate(s.combinations * s.best.bars, s.timings.compute_secs).replace(" bars/s", ""),
        rayon::current_num_threads()
    )
}
