//! What a person reads: the end-of-run summary, fills as a table or CSV, the list of runs.
//! Tables and summaries are rounded for people (human_format); CSV exports are exact.

use std::io::{self, Write};
use std::time::Duration;

use rust_decimal::Decimal;

use nanotrader_format::plain;
pub use nanotrader_format::{FILLS_CSV_HEADER, write_fills_csv};

use crate::config::RunConfig;
use nanotrader_broker::{Account, Fill};
use nanotrader_engine::Outcome;
use nanotrader_format::PairFormat;
use nanotrader_market::{SourceInfo, Timestamp};
use nanotrader_store::{RunRecord, RunStore};

pub struct RunSummary<'a> {
    pub run: &'a RunRecord,
    pub outcome: Outcome,
    pub source: &'a SourceInfo,
    pub cfg: &'a RunConfig,
    pub fills: &'a [Fill],
    pub account: Account,
    pub last_close: Option<Decimal>,
    pub start_equity: Decimal,
    pub bars_this_session: u64,
    pub elapsed: Duration,
    /// Where the run is stored (a file, or a database without its password).
    pub store: String,
}

/// The one-screen summary at the end of a run, for people: money to the cent, amounts to 8
/// places, prices at the pair's tick (human_format). The exact cash and position close it, as
/// stored, so a run can be checked digit for digit against its exports.
pub fn write_summary(out: &mut impl Write, s: &RunSummary) -> io::Result<()> {
    let mut account = s.account.clone();
    if let Some(close) = s.last_close {
        account.mark(close);
    }
    let format = PairFormat::with_prices(
        &s.cfg.pair,
        s.last_close.into_iter().chain(s.fills.iter().map(|f| f.price)),
    );
    let equity = account.equity();
    let initial = s.run.initial_cash;
    let ret = if initial.is_zero() {
        Decimal::ZERO
    } else {
        (equity - initial) / initial * Decimal::ONE_HUNDRED
    };
    let (round_trips, won) = (account.round_trips(), account.winning_round_trips());
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        s.bars_this_session as f64 / secs
    } else {
        0.0
    };
    let status = match s.outcome {
        Outcome::Completed => "completed",
        Outcome::Interrupted => "interrupted (run the same command again to resume)",
    };
    let range = match (s.run.first_bar_ts, s.run.last_bar_ts) {
        (Some(a), Some(b)) => format!("{} .. {}", a, b),
        _ => "no bars".to_owned(),
    };
    writeln!(out)?;
    writeln!(out, "nanotrader run {} {status}", s.run.id)?;
    writeln!(
        out,
        "  source        {} {} ({} bars {})",
        s.source.kind, s.source.identity, s.cfg.pair, s.cfg.interval
    )?;
    writeln!(out, "  strategy      {}", s.cfg.strategy.describe())?;
    writeln!(out, "  bars          {} ({range})", s.run.bars_seen)?;
    writeln!(
        out,
        "  fills         {} ({round_trips} round trips, {won} won)",
        s.fills.len()
    )?;
    writeln!(out, "  start equity  {}", format.money_unit(initial))?;
    writeln!(
        out,
        "  end equity    {}  ({})",
        format.money_unit(equity),
        nanotrader_format::signed_percent_decimal(ret)
    )?;
    writeln!(
        out,
        "  holdings      {} and {} @ avg {}",
        format.money_unit(account.cash()),
        format.amount_unit(account.position()),
        account
            .avg_entry()
            .map_or(nanotrader_format::NONE.into(), |p| format.price(p))
    )?;
    writeln!(
        out,
        "  realized P&L  {}   unrealized {}",
        format.signed_money_unit(account.realized_pnl()),
        format.signed_money_unit(account.unrealized_pnl())
    )?;
    writeln!(
        out,
        "  fees paid     {}   (fee rate {}%, sizing {})",
        format.money_unit(account.fees_paid()),
        plain(s.cfg.broker.fee_rate * Decimal::ONE_HUNDRED),
        s.cfg.broker.sizing
    )?;
    if matches!(s.cfg.strategy, nanotrader_strategy::StrategyConfig::WithExits { .. }) {
        // The stop rule beside the figures it made (docs/strategies.md, "Stops and exits").
        writeln!(
            out,
            "  stops         checked from the bar after the entry; a stop or target fills at its price, \
             or at the open of a bar that opened through it (a bar touching both: the stop)"
        )?;
    }
    writeln!(
        out,
        "  this session  {} bars in {:.3} s ({} bars/s)",
        s.bars_this_session,
        secs,
        nanotrader_format::fixed_f64(rate, 0)
    )?;
    writeln!(out, "  store         {} (run {})", s.store, s.run.id)?;
    writeln!(
        out,
        "  exact, as stored (every fill: nanotrader fills --run {} --csv)",
        s.run.id
    )?;
    writeln!(out, "  cash          {}", plain(account.cash()))?;
    writeln!(out, "  position      {}", plain(account.position()))?;
    let _ = s.start_equity;
    Ok(())
}

/// The pair a stored run traded, from its configuration (BTC/USD when it does not say).
fn run_pair(run: &RunRecord) -> String {
    serde_json::from_str::<serde_json::Value>(&run.config)
        .ok()
        .and_then(|c| c["pair"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "BTC/USD".to_owned())
}

/// A run's fills for people (`--csv` gives them exactly).
pub fn write_fills_table(out: &mut impl Write, run: &RunRecord, fills: &[Fill]) -> io::Result<()> {
    let format = PairFormat::with_prices(&run_pair(run), fills.iter().map(|f| f.price));
    writeln!(out, "run {}: {} fills", run.id, fills.len())?;
    writeln!(
        out,
        "{:<24} {:<4} {:>12} {:>12} {:>10} {:>16} {:>12}",
        "time", "side", "qty", "price", "fee", "cash after", "position"
    )?;
    for f in fills {
        writeln!(
            out,
            "{:<24} {:<4} {:>12} {:>12} {:>10} {:>16} {:>12}",
            f.ts.to_rfc3339(),
            f.side,
            format.amount(f.qty),
            format.price(f.price),
            format.money(f.fee),
            format.money(f.cash_after),
            format.amount(f.position_after)
        )?;
    }
    Ok(())
}

pub fn write_bars_csv(out: &mut impl Write, store: &dyn RunStore, series_id: i64) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(["ts", "open", "high", "low", "close", "volume"])?;
    let mut result = Ok(());
    store
        .for_each_bar(series_id, Timestamp(i64::MIN), Timestamp(i64::MAX), &mut |b| {
            if result.is_ok() {
                result = csv.write_record([
                    b.ts.unix_secs_text(),
                    plain(b.open),
                    plain(b.high),
                    plain(b.low),
                    plain(b.close),
                    plain(b.volume),
                ]);
            }
        })
        .map_err(io::Error::other)?;
    result?;
    csv.flush()
}

pub fn write_bars_summary(out: &mut impl Write, store: &dyn RunStore, run: &RunRecord) -> io::Result<()> {
    let s = store.series_summary(run.series_id).map_err(io::Error::other)?;
    let when = |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
    writeln!(
        out,
        "run {}: series {} ({} bars of {}s)",
        run.id, s.identity, s.pair, s.interval_secs
    )?;
    writeln!(out, "  bars   {} stored, {} .. {}", s.bars, when(s.first), when(s.last))?;
    writeln!(
        out,
        "  gaps   {} ({} intervals with no trades, marked, not filled)",
        s.gaps, s.missing_intervals
    )?;
    writeln!(out, "  export with: nanotrader bars --run {} --csv", run.id)
}

pub fn write_runs(out: &mut impl Write, store: &dyn RunStore, runs: &[RunRecord]) -> io::Result<()> {
    writeln!(
        out,
        "{:>4}  {:<12} {:<24} {:>9}  config",
        "run", "status", "created", "bars"
    )?;
    for r in runs {
        let _ = store;
        writeln!(
            out,
            "{:>4}  {:<12} {:<24} {:>9}  {}",
            r.id,
            r.status.as_str(),
            Timestamp::to_rfc3339(r.created_at),
            r.bars_seen,
            r.config
        )?;
    }
    Ok(())
}

/// A live run's fills as the exchange made them (`fills --csv`): one row per trade, partial
/// fills apart, with the exchange's order and trade ids; the account after each row is the
/// account after its order (the exchange's balances), blank when the run never stored the order.
pub fn write_exchange_fills_csv(
    out: &mut impl Write,
    fills: &[Fill],
    trades: &[nanotrader_store::ExchangeFill],
) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = nanotrader_format::FILLS_CSV_COLUMNS.to_vec();
    header.extend(["order_id", "trade_id"]);
    csv.write_record(&header)?;
    for t in trades {
        let after = fills.iter().find(|f| f.order_id == t.order_id);
        csv.write_record([
            t.ts.unix_secs_text(),
            t.side.as_str().to_owned(),
            plain(t.qty),
            plain(t.price),
            plain(t.fee),
            after.map(|f| plain(f.cash_after)).unwrap_or_default(),
            after.map(|f| plain(f.position_after)).unwrap_or_default(),
            t.txid.clone(),
            t.trade_id.clone(),
        ])?;
    }
    csv.flush()
}
