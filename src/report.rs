//! What a person reads: the end-of-run summary, fills as a table or CSV, the list of runs.
//! Tables and summaries are rounded for people (human_format); CSV exports are exact.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use rust_decimal::Decimal;

use crate::broker::{Account, Fill};
use crate::config::RunConfig;
use crate::engine::Outcome;
use crate::human_format::{self, PairFormat};
use crate::market::{SourceInfo, Timestamp};
use crate::store::{RunRecord, Store};

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
    pub store_path: &'a Path,
}

/// Exact decimals without trailing zeros, as in the reference files (`0.021`, `99901.32751`, `0`).
pub fn plain(d: Decimal) -> String {
    let mut text = Vec::with_capacity(24);
    let _ = write_plain(&mut text, d);
    String::from_utf8(text).unwrap_or_default()
}

/// `plain`, written straight out: the mantissa's digits (itoa) with the point put in and the
/// trailing zeros left off. A backtest's trades file writes five of these per fill, and going
/// through `normalize` and a `String` each cost about 1,000 instructions a number (callgrind),
/// a third of the whole 2M-bar CSV -> trades run.
pub fn write_plain(out: &mut impl Write, d: Decimal) -> io::Result<()> {
    let mut buffer = itoa::Buffer::new();
    let mantissa = d.mantissa().unsigned_abs();
    // 64-bit digits are several times quicker to make than 128-bit ones.
    let digits = match u64::try_from(mantissa) {
        Ok(small) => buffer.format(small).as_bytes(),
        Err(_) => buffer.format(mantissa).as_bytes(),
    };
    let scale = d.scale() as usize;
    // Trailing zeros after the point go; "0" stays "0".
    let zeros = digits.iter().rev().take(scale).take_while(|&&b| b == b'0').count();
    let (digits, scale) = (&digits[..digits.len() - zeros], scale - zeros);
    if digits.is_empty() || digits == b"0" {
        return out.write_all(b"0");
    }
    if d.is_sign_negative() {
        out.write_all(b"-")?;
    }
    if scale == 0 {
        return out.write_all(digits);
    }
    if digits.len() > scale {
        let (whole, frac) = digits.split_at(digits.len() - scale);
        out.write_all(whole)?;
        out.write_all(b".")?;
        return out.write_all(frac);
    }
    out.write_all(b"0.")?;
    for _ in digits.len()..scale {
        out.write_all(b"0")?;
    }
    out.write_all(digits)
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
        human_format::signed_percent_decimal(ret)
    )?;
    writeln!(
        out,
        "  holdings      {} and {} @ avg {}",
        format.money_unit(account.cash()),
        format.amount_unit(account.position()),
        account
            .avg_entry()
            .map_or(human_format::NONE.into(), |p| format.price(p))
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
    writeln!(
        out,
        "  this session  {} bars in {:.3} s ({} bars/s)",
        s.bars_this_session,
        secs,
        human_format::fixed_f64(rate, 0)
    )?;
    writeln!(out, "  store         {} (run {})", s.store_path.display(), s.run.id)?;
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

/// The trades CSV's first line.
pub const FILLS_CSV_HEADER: &[u8] = b"ts,side,qty,price,fee,cash_after,position_after\n";

/// The trades CSV's rows for `fills` (what `write_fills_csv` writes after its header), added to
/// `out`: for a backtest that formats its fills as they are made.
pub fn push_fill_rows(out: &mut Vec<u8>, fills: &[Fill]) {
    for f in fills {
        write_fill_row(out, f).expect("writing to memory does not fail");
    }
}

pub fn write_fills_csv(out: &mut impl Write, fills: &[Fill]) -> io::Result<()> {
    use rayon::prelude::*;
    out.write_all(FILLS_CSV_HEADER)?;
    // Formatted in blocks on all cores (a backtest's 100,000 fills are 8 MB of text), written
    // in order.
    let blocks: Vec<io::Result<Vec<u8>>> = fills
        .par_chunks(8192)
        .map(|block| {
            let mut text = Vec::with_capacity(block.len() * 80);
            for f in block {
                write_fill_row(&mut text, f)?;
            }
            Ok(text)
        })
        .collect();
    for block in blocks {
        out.write_all(&block?)?;
    }
    Ok(())
}

fn write_fill_row(out: &mut impl Write, f: &Fill) -> io::Result<()> {
    if f.ts.nanos() % 1_000_000_000 == 0 {
        out.write_all(itoa::Buffer::new().format(f.ts.secs()).as_bytes())?;
    } else {
        out.write_all(f.ts.unix_secs_text().as_bytes())?;
    }
    out.write_all(b",")?;
    out.write_all(f.side.as_str().as_bytes())?;
    for value in [f.qty, f.price, f.fee, f.cash_after, f.position_after] {
        out.write_all(b",")?;
        write_plain(out, value)?;
    }
    out.write_all(b"\n")
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

pub fn write_bars_csv(out: &mut impl Write, store: &Store, series_id: i64) -> io::Result<()> {
    writeln!(out, "ts,open,high,low,close,volume")?;
    let mut result = Ok(());
    store
        .for_each_bar(series_id, Timestamp(i64::MIN), Timestamp(i64::MAX), |b| {
            if result.is_ok() {
                result = writeln!(
                    out,
                    "{},{},{},{},{},{}",
                    b.ts.unix_secs_text(),
                    plain(b.open),
                    plain(b.high),
                    plain(b.low),
                    plain(b.close),
                    plain(b.volume)
                );
            }
        })
        .map_err(io::Error::other)?;
    result
}

pub fn write_bars_summary(out: &mut impl Write, store: &Store, run: &RunRecord) -> io::Result<()> {
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

pub fn write_runs(out: &mut impl Write, store: &Store, runs: &[RunRecord]) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The quick writer against rust_decimal's own normalised text, on every kind of value.
    #[test]
    fn plain_decimals_match_the_normalised_text() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut cases: Vec<Decimal> = [
            "0",
            "-0",
            "0.000",
            "1",
            "10",
            "100.00",
            "-1.50",
            "0.021",
            "0.00000001",
            "99901.32751",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        cases.extend([Decimal::MAX, Decimal::MIN, Decimal::new(1, 28), Decimal::new(-5, 28)]);
        for _ in 0..20_000 {
            let mantissa = rng.random_range(-10i64.pow(15)..10i64.pow(15)) * [1, 10, 1000][rng.random_range(0..3)];
            cases.push(Decimal::new(mantissa, rng.random_range(0..=20)));
        }
        for d in cases {
            let want = if d.is_zero() {
                "0".to_owned()
            } else {
                d.normalize().to_string()
            };
            assert_eq!(plain(d), want, "{d:?}");
        }
    }
}
