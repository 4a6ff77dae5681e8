//! The replayed trade tape: trades loaded once from a CSV file and placed on the market clock,
//! and the views of them Kraken serves (what is public now, 1-minute candles, window totals).

use std::io;
use std::path::Path;

use rust_decimal::Decimal;

use nanotrader_market::{
    Bar, BarAggregator, BarEvent, CsvKind, CsvReader, Interval, MarketEvent, Side, Timestamp, Trade,
};

pub(super) const MINUTE: Interval = Interval::ONE_MINUTE;
const DAY_NANOS: i64 = 86_400 * 1_000_000_000;

/// Every trade of the data, oldest first, with market times and a taker side. A trade's index
/// plus one is its Kraken `trade_id`.
pub(super) struct Tape {
    trades: Vec<Trade>,
}

/// A 1-minute candle and the volume-weighted price Kraken reports beside it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Candle {
    pub(super) bar: Bar,
    pub(super) vwap: Decimal,
}

/// Totals over a window of trades (the ticker's "today" and "last 24 hours").
#[derive(Clone, Copy, Debug)]
pub(super) struct Stats {
    pub(super) open: Decimal,
    pub(super) low: Decimal,
    pub(super) high: Decimal,
    pub(super) volume: Decimal,
    pub(super) vwap: Decimal,
    pub(super) count: usize,
}

impl Stats {
    /// A window without trades, at the last known price.
    pub(super) fn flat(price: Decimal) -> Self {
        Self {
            open: price,
            low: price,
            high: price,
            volume: Decimal::ZERO,
            vwap: price,
            count: 0,
        }
    }
}

impl Tape {
    /// Reads the whole file; `market_start` relabels it (see `MockConfig::market_start`).
    pub(super) fn load(path: &Path, market_start: Option<Timestamp>) -> io::Result<Self> {
        let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
        let mut reader = CsvReader::open(path, false).map_err(|e| invalid(e.to_string()))?;
        if reader.kind() != CsvKind::Trades {
            return Err(invalid(format!(
                "{}: the mock replays trades (ts_ns,price,volume,side), not bars",
                path.display()
            )));
        }
        let mut trades = Vec::new();
        while let Some(event) = reader.read_event().map_err(|e| invalid(e.to_string()))? {
            if let MarketEvent::Trade(trade) = event {
                trades.push(trade);
            }
        }
        let first = trades
            .first()
            .ok_or_else(|| invalid(format!("{}: no trades", path.display())))?
            .ts;
        // Kraken always names the taker; data without sides gets the tick rule's guess.
        let mut prev = None;
        for trade in &mut trades {
            let down = prev.is_some_and(|p| trade.price < p);
            trade.side.get_or_insert(if down { Side::Sell } else { Side::Buy });
            prev = Some(trade.price);
        }
        if let Some(start) = market_start {
            let shift = start.floor_to(MINUTE).nanos() - first.floor_to(MINUTE).nanos();
            for trade in &mut trades {
                trade.ts = Timestamp::from_nanos(trade.ts.nanos().saturating_add(shift));
            }
        }
        Ok(Self { trades })
    }

    /// Market time of the first trade (the tape is never empty).
    pub(super) fn first_ts(&self) -> Timestamp {
        self.trades.first().map_or_else(Timestamp::default, |t| t.ts)
    }

    /// Trades whose market time has come, oldest first.
    pub(super) fn public(&self, now: Timestamp) -> &[Trade] {
        &self.trades[..self.trades.partition_point(|t| t.ts <= now)]
    }

    pub(super) fn get(&self, index: usize) -> Option<&Trade> {
        self.trades.get(index)
    }

    /// Closed 1-minute bars up to `until`, rebuilt by the engine's own aggregator: minutes
    /// without trades are absent.
    pub(super) fn expected_bars(&self, until: Timestamp) -> Vec<Bar> {
        let mut aggregator = BarAggregator::new(MINUTE, None);
        let mut bars = Vec::new();
        let mut keep = |event| {
            if let BarEvent::Closed(bar) = event {
                bars.push(bar);
            }
        };
        for trade in self.public(until) {
            aggregator.on_event(&MarketEvent::Trade(*trade), &mut keep);
        }
        aggregator.on_event(&MarketEvent::Clock(until), &mut keep);
        bars
    }
}

/// The trades at or after `from`.
pub(super) fn since(trades: &[Trade], from: Timestamp) -> &[Trade] {
    &trades[trades.partition_point(|t| t.ts < from)..]
}

/// The trades of the rolling 24 hours ending at `now`.
pub(super) fn last_day(trades: &[Trade], now: Timestamp) -> &[Trade] {
    since(trades, Timestamp::from_nanos(now.nanos().saturating_sub(DAY_NANOS - 1)))
}

/// The trades since 00:00 UTC of `now`'s day (Kraken's "today").
pub(super) fn today(trades: &[Trade], now: Timestamp) -> &[Trade] {
    since(
        trades,
        Timestamp::from_nanos(now.nanos().div_euclid(DAY_NANOS) * DAY_NANOS),
    )
}

/// The start of each minute the trades fall in, oldest first, once each.
pub(super) fn minutes(trades: &[Trade]) -> Vec<Timestamp> {
    let mut minutes: Vec<Timestamp> = trades.iter().map(|t| t.ts.floor_to(MINUTE)).collect();
    minutes.dedup();
    minutes
}

/// The candle of the minute starting at `start`, `None` when nothing traded in it.
pub(super) fn candle(trades: &[Trade], start: Timestamp) -> Option<Candle> {
    let later = since(trades, start);
    let minute = &later[..later.partition_point(|t| t.ts < start.plus(MINUTE))];
    let (first, rest) = minute.split_first()?;
    let mut bar = Bar::from_trade(start, first);
    rest.iter().for_each(|t| bar.add_trade(t));
    Some(Candle {
        bar,
        vwap: vwap(minute, bar.close),
    })
}

/// Totals of a window, `None` when it is empty.
pub(super) fn stats(trades: &[Trade]) -> Option<Stats> {
    let first = trades.first()?;
    let mut stats = Stats {
        open: first.price,
        low: first.price,
        high: first.price,
        volume: Decimal::ZERO,
        vwap: vwap(trades, first.price),
        count: trades.len(),
    };
    for trade in trades {
        stats.low = stats.low.min(trade.price);
        stats.high = stats.high.max(trade.price);
        stats.volume += trade.size;
    }
    Some(stats)
}

/// Volume-weighted price; `fallback` when the trades have no volume.
fn vwap(trades: &[Trade], fallback: Decimal) -> Decimal {
    let volume: Decimal = trades.iter().map(|t| t.size).sum();
    let notional: Decimal = trades.iter().map(|t| t.price * t.size).sum();
    notional.checked_div(volume).unwrap_or(fallback)
}
