//! Kraken's own candles (the WS `ohlc` channel) checked against the bars built from the trades we
//! forward: a mismatch means the tape missed or doubled a trade. It only counts and warns; the
//! bars the engine stores always come from the trades.

use std::collections::VecDeque;

use nanotrader_market::{Bar, Interval, Trade};

/// Closed bars kept on each side while waiting for the other side's bar of the same time.
const PENDING: usize = 16;
/// Mismatches logged one by one before the rest are only counted.
const LOGGED: u64 = 3;

#[derive(Debug)]
pub struct OhlcCheck {
    interval: Interval,
    ours: Option<Bar>,
    ours_closed: VecDeque<Bar>,
    theirs: Option<Bar>,
    theirs_closed: VecDeque<Bar>,
    pub checked: u64,
    pub mismatched: u64,
}

impl OhlcCheck {
    pub fn new(interval: Interval) -> Self {
        Self {
            interval,
            ours: None,
            ours_closed: VecDeque::new(),
            theirs: None,
            theirs_closed: VecDeque::new(),
            checked: 0,
            mismatched: 0,
        }
    }

    /// A trade we forwarded to the engine.
    pub fn on_trade(&mut self, trade: &Trade) {
        let bucket = trade.ts.floor_to(self.interval);
        match &mut self.ours {
            Some(bar) if bar.ts == bucket => bar.add_trade(trade),
            Some(bar) if bar.ts > bucket => {} // older than the open bar: the engine drops it too
            slot => {
                if let Some(done) = slot.replace(Bar::from_trade(bucket, trade)) {
                    push(&mut self.ours_closed, done);
                }
            }
        }
        self.reconcile();
    }

    /// A candle from Kraken: updates repeat the running candle; a later one makes it final; an
    /// older one (a snapshot after reconnecting) is final already.
    pub fn on_candle(&mut self, candle: &Bar) {
        match &mut self.theirs {
            Some(running) if candle.ts == running.ts => *running = *candle,
            Some(running) if candle.ts < running.ts => {
                self.theirs_closed.retain(|b| b.ts != candle.ts);
                push(&mut self.theirs_closed, *candle);
            }
            slot => {
                if let Some(done) = slot.replace(*candle) {
                    push(&mut self.theirs_closed, done);
                }
            }
        }
        self.reconcile();
    }

    fn reconcile(&mut self) {
        while let Some(ours) = self.ours_closed.front().copied() {
            let Some(pos) = self.theirs_closed.iter().position(|b| b.ts == ours.ts) else {
                // Kraken's candle for it may still come, unless Kraken is already past it.
                let passed = self.theirs.is_some_and(|t| t.ts > ours.ts)
                    && self.theirs_closed.back().is_none_or(|b| b.ts > ours.ts);
                if passed {
                    self.ours_closed.pop_front();
                    continue;
                }
                break;
            };
            let theirs = self.theirs_closed.remove(pos).unwrap_or(ours);
            self.ours_closed.pop_front();
            self.checked += 1;
            if self.checked.is_power_of_two() {
                tracing::debug!(
                    "cross-checked {} bars against Kraken's candles, {} differed",
                    self.checked,
                    self.mismatched
                );
            }
            let same = (ours.open, ours.high, ours.low, ours.close, ours.volume)
                == (theirs.open, theirs.high, theirs.low, theirs.close, theirs.volume);
            if !same {
                self.mismatched += 1;
                if self.mismatched <= LOGGED {
                    tracing::warn!(
                        "our bar at {} differs from Kraken's candle: ours o {} h {} l {} c {} v {}, Kraken's o {} h {} l {} c {} v {}",
                        ours.ts,
                        ours.open,
                        ours.high,
                        ours.low,
                        ours.close,
                        ours.volume,
                        theirs.open,
                        theirs.high,
                        theirs.low,
                        theirs.close,
                        theirs.volume
                    );
                }
            }
        }
    }
}

fn push(queue: &mut VecDeque<Bar>, bar: Bar) {
    if queue.len() == PENDING {
        queue.pop_front();
    }
    queue.push_back(bar);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanotrader_market::Timestamp;
    use rust_decimal::Decimal;

    fn trade(secs: i64, price: i64) -> Trade {
        Trade {
            ts: Timestamp::from_secs(secs),
            price: Decimal::from(price),
            size: Decimal::ONE,
            side: None,
        }
    }

    fn candle(ts: i64, o: i64, h: i64, l: i64, c: i64, v: i64) -> Bar {
        let d = Decimal::from;
        Bar {
            ts: Timestamp::from_secs(ts),
            open: d(o),
            high: d(h),
            low: d(l),
            close: d(c),
            volume: d(v),
            trades: 0,
        }
    }

    #[test]
    fn equal_bars_pass_and_a_missed_trade_is_caught() {
        let mut check = OhlcCheck::new(Interval::ONE_MINUTE);
        for (s, p) in [(60, 10), (70, 12), (80, 11), (120, 11)] {
            check.on_trade(&trade(s, p));
        }
        check.on_candle(&candle(60, 10, 12, 10, 11, 3));
        check.on_candle(&candle(120, 11, 11, 11, 11, 1));
        assert_eq!((check.checked, check.mismatched), (1, 0));

        // Kraken saw a trade at 125 that we did not forward.
        check.on_trade(&trade(190, 13));
        check.on_candle(&candle(120, 11, 14, 11, 14, 2));
        check.on_candle(&candle(180, 13, 13, 13, 13, 1));
        assert_eq!((check.checked, check.mismatched), (2, 1));
    }
}
