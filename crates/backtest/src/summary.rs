//! What a backtest prints: a summary for people, or the same figures as JSON for machines.

use std::io::{self, Write};

use rust_decimal::Decimal;
use serde::Serialize;

use super::columns::BarColumns;
use super::simulate::{self, BacktestResult};
use super::sweep::{ComboResult, RankBy};
use nanotrader_broker::BrokerConfig;
use nanotrader_engine::Trading;
use nanotrader_format::plain;
use nanotrader_format::{self as human_format, PairFormat};
use nanotrader_market::Timestamp;
use nanotrader_strategy::StrategyConfig;

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
    /// Days of bars behind the figures (bars times the interval).
    pub span_days: f64,
    /// Whether the span carries Sharpe and Sortino (30 days of bars or 30 round trips); the
    /// numbers are given either way, people see them only when true.
    pub ratios_meaningful: bool,
    /// Why not, when not.
    pub ratios_reason: Option<String>,
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
    /// What the protections (`--max-drawdown`, `--max-daily-loss-usd`) did: each halt and the
    /// entries they refused; absent without protections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protections: Option<nanotrader_broker::ProtectionReport>,
    /// How figures are shown to people: the pair's codes and tick.
    #[serde(skip)]
    pub display: PairFormat,
}

impl SingleSummary {
    /// The performance figures, for the helpers that decide what people see.
    pub fn performance(&self) -> nanotrader_perf::Performance {
        nanotrader_perf::Performance {
            return_pct: self.return_pct,
            max_drawdown_pct: self.max_drawdown_pct,
            win_rate_pct: self.win_rate_pct,
            trades: self.fills,
            round_trips: self.round_trips,
            exposure_pct: self.exposure_pct,
            sharpe: self.sharpe,
            sortino: self.sortino,
            span_days: self.span_days,
            ratios_meaningful: self.ratios_meaningful,
            ratios_reason: self.ratios_reason.clone(),
        }
    }
}

/// How `pair`'s figures are shown; for a pair without a known tick, at the decimals its closes
/// use (one pass in integer arithmetic over the fixed-point column).
pub fn pair_format(pair: &str, bars: &BarColumns) -> PairFormat {
    let mut format = PairFormat::new(pair);
    if !format.tick_known() {
        let mut used = 0u32;
        for &close in bars.close.iter() {
            let mut decimals = super::columns::SCALE;
            let mut units = close;
            while decimals > used && units % 10 == 0 {
                units /= 10;
                decimals -= 1;
            }
            used = used.max(decimals);
            if used == super::columns::SCALE {
                break;
            }
        }
        format.observe_decimals(used);
    }
    format
}

#[allow(clippy::too_many_arguments)]
pub fn single(
    info: &DataInfo,
    strategy: &StrategyConfig,
    trading: &Trading,
    outcome: &BacktestResult,
    bars: &BarColumns,
    timings: &Timings,
    pair: &str,
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
            fills: if matches!(strategy, StrategyConfig::WithExits { .. }) {
                "at the close of the bar whose signal changed, in full, no slippage; a stop or target touched \
                 from the bar after the entry fills at its price, or at the open when the bar opened through it \
                 (a bar touching both is taken as a stop)"
            } else {
                "at the close of the bar whose signal changed, in full, no slippage"
            },
            annualisation: format!(
                "per-bar returns x sqrt({:.0} bars a year): a market open 24/7, 365 days",
                nanotrader_perf::bars_per_year(bars.interval)
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
        span_days: perf.span_days,
        ratios_meaningful: perf.ratios_meaningful,
        ratios_reason: perf.ratios_reason.clone(),
        round_trips: trips,
        win_rate_pct: perf.win_rate_pct,
        avg_trade_pnl: (trips > 0).then(|| account.realized_pnl() / Decimal::from(trips)),
        exposure_pct: perf.exposure_pct,
        fees_paid: account.fees_paid(),
        realized_pnl: account.realized_pnl(),
        timings: timings.clone(),
        protections: outcome.protections.clone(),
        display: pair_format(pair, bars),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct SweepSummary {
    pub mode: &'static str,
    pub combinations: usize,
    pub metric: RankBy,
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
    metric: RankBy,
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

pub(crate) fn rate(bars: usize, secs: f64) -> String {
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

pub(crate) fn write_body(out: &mut impl Write, s: &SingleSummary) -> io::Result<()> {
    let range = match (&s.data.first_bar, &s.data.last_bar) {
        (Some(a), Some(b)) => format!("{a} .. {b}"),
        _ => "no bars".to_owned(),
    };
    let broker = &s.assumptions.broker;
    let money = &s.display;
    let perf = s.performance();
    writeln!(out, "  data          {} bars of {} ({range})", s.bars, s.data.interval)?;
    writeln!(out, "  start equity  {}", money.money_unit(s.start_equity))?;
    writeln!(
        out,
        "  end equity    {}  ({})",
        money.money_unit(s.end_equity),
        human_format::signed_percent(s.return_pct)
    )?;
    writeln!(
        out,
        "  buy and hold  {}  ({})",
        human_format::signed_percent(s.buy_and_hold_return_pct),
        s.assumptions.buy_and_hold
    )?;
    writeln!(out, "  max drawdown  {}", human_format::percent(s.max_drawdown_pct))?;
    match &s.ratios_reason {
        Some(why) => writeln!(
            out,
            "  Sharpe        {none}   Sortino {none}   ({why})",
            none = human_format::NONE
        )?,
        None => writeln!(
            out,
            "  Sharpe        {}   Sortino {}   ({})",
            perf.ratio_text(s.sharpe),
            perf.ratio_text(s.sortino),
            s.assumptions.annualisation
        )?,
    }
    writeln!(
        out,
        "  trades        {} fills, {} round trips, win rate {}",
        s.fills,
        s.round_trips,
        human_format::percent(s.win_rate_pct)
    )?;
    writeln!(
        out,
        "  average trade {}   (realized P&L per round trip, after fees)",
        s.avg_trade_pnl
            .map_or(human_format::NONE.to_owned(), |d| money.signed_money_unit(d))
    )?;
    writeln!(
        out,
        "  exposure      {} of bars holding a position",
        human_format::percent(s.exposure_pct)
    )?;
    writeln!(
        out,
        "  fees paid     {}   (fee rate {}%, sizing {}, {} starting cash)",
        money.money_unit(s.fees_paid),
        plain(broker.fee_rate * Decimal::ONE_HUNDRED),
        broker.sizing,
        money.money_unit(broker.initial_cash)
    )?;
    writeln!(
        out,
        "  fills         {}; decisions from bar {}",
        s.assumptions.fills, s.assumptions.decide_from_bar
    )?;
    if let Some(report) = &s.protections {
        write_protections(out, report)?;
    }
    Ok(())
}

/// What the rails did, beside the figures they shaped.
fn write_protections(out: &mut impl Write, report: &nanotrader_broker::ProtectionReport) -> io::Result<()> {
    let rules = report.rules.describe().unwrap_or_default();
    let halts = report.halts.len();
    writeln!(
        out,
        "  protections   {rules}: {} halt{}, {} entr{} refused{} (a halt stops new entries at a bar's close; exits go on)",
        halts,
        if halts == 1 { "" } else { "s" },
        report.refused_entries,
        if report.refused_entries == 1 { "y" } else { "ies" },
        if report.halted_at_end {
            ", halted at the end"
        } else {
            ""
        }
    )?;
    // The first few halts, each in one line; the JSON has them all.
    const SHOWN: usize = 5;
    for halt in report.halts.iter().take(SHOWN) {
        writeln!(out, "                {}  {halt}", halt.ts)?;
    }
    if halts > SHOWN {
        writeln!(out, "                ... {} more in --json", halts - SHOWN)?;
    }
    Ok(())
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
            "  {:>4}  {:>5}  {:>5}  {:>10}  {:>9}  {:>8}  {:>8}  {:>8}  {:>7}  {:>8}",
            i + 1,
            r.short,
            r.long,
            human_format::fixed_f64(p.return_pct, 2),
            human_format::fixed_f64(p.max_drawdown_pct, 2),
            p.ratio_text(p.sharpe),
            p.ratio_text(p.sortino),
            p.win_rate_pct
                .map_or(human_format::NONE.to_owned(), |v| human_format::fixed_f64(v, 2)),
            p.trades,
            s.best.display.money(r.fees_paid),
        )?;
    }
    if s.top.iter().any(|r| !r.performance.ratios_meaningful) {
        writeln!(
            out,
            "  Sharpe and Sortino are {} for a combination with under {} round trips in these {} days of bars \
             (they need {:.0} days of bars or {} round trips)",
            human_format::NONE,
            nanotrader_perf::RATIO_MIN_ROUND_TRIPS,
            human_format::fixed_f64(s.best.span_days, 1),
            nanotrader_perf::RATIO_MIN_DAYS,
            nanotrader_perf::RATIO_MIN_ROUND_TRIPS,
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

#[cfg(test)]
mod tests {
    use super::*;
    use nanotrader_market::Interval;

    fn closes(units: &[i64]) -> BarColumns {
        BarColumns {
            interval: Interval::ONE_MINUTE,
            ts: (1..=units.len() as i64).map(|i| i * 60).collect::<Vec<_>>().into(),
            close: units.to_vec().into(),
            detail: None,
        }
    }

    #[test]
    fn a_pair_without_a_known_tick_is_shown_at_the_decimals_its_closes_use() {
        // 1.2345, 2, 0.5 (fixed point, 8 places).
        let bars = closes(&[123_450_000, 200_000_000, 50_000_000]);
        assert_eq!(pair_format("ETH/EUR", &bars).price_decimals(), 4);
        assert_eq!(pair_format("BTC/USD", &bars).price_decimals(), 1, "Kraken's tick");
        assert_eq!(pair_format("ETH/EUR", &closes(&[1, 100_000_000])).price_decimals(), 8);
        assert_eq!(pair_format("ETH/EUR", &closes(&[])).price_decimals(), 0);
    }
}
