//! Turns a source's trades or finer bars into bars of one interval: the forming bar after each
//! update, each bar once closed, and a `Gap` for every hole in the series. Allocation-free, as
//! the engine calls it on every event.
//!
//! Bars read at their own interval pass through with the time their source gave them (a file's
//! bars stamped at 20 s past the minute, or at their close, stay so); trades, and bars merged
//! into a coarser interval, are bucketed on that interval's boundaries.

use super::types::{Bar, Interval, MarketEvent, Timestamp, Trade};

#[derive(Copy, Clone, Debug, PartialEq)]
pub enum BarEvent {
    /// The open bar after an update; it may still change.
    Forming(Bar),
    /// A final bar.
    Closed(Bar),
    /// `missing` empty intervals in `[from, to)`, reported just before the bar at `to`.
    Gap {
        from: Timestamp,
        to: Timestamp,
        missing: u64,
    },
}

#[derive(Clone, Debug)]
pub struct BarAggregator {
    interval: Interval,
    /// What one source bar covers, `[ts, ts + source_interval)`.
    source_interval: Interval,
    forming: Option<Bar>,
    last_closed: Option<Timestamp>,
    late: u64,
}

impl BarAggregator {
    /// `source_bar_interval` is the interval of the bars the source yields (`None` for trade
    /// sources); it must not be coarser than `interval` (the caller checks).
    pub fn new(interval: Interval, source_bar_interval: Option<Interval>) -> Self {
        Self {
            interval,
            source_interval: source_bar_interval.unwrap_or(interval),
            forming: None,
            last_closed: None,
            late: 0,
        }
    }

    /// Continues after a stored bar, so a hole across a restart is reported and older data is
    /// dropped as late.
    pub fn with_last_closed(mut self, ts: Timestamp) -> Self {
        self.last_closed = Some(self.bucket(ts));
        self
    }

    /// Source bars at this very interval keep their own time; anything else is bucketed.
    fn passes_bars_through(&self) -> bool {
        self.source_interval == self.interval
    }

    fn bucket(&self, ts: Timestamp) -> Timestamp {
        if self.passes_bars_through() {
            ts
        } else {
            ts.floor_to(self.interval)
        }
    }

    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// The open bar, if any.
    pub fn forming(&self) -> Option<&Bar> {
        self.forming.as_ref()
    }

    /// Trades (and source bars) dropped because their bucket had already passed.
    pub fn late_trades(&self) -> u64 {
        self.late
    }

    pub fn on_event(&mut self, ev: &MarketEvent, emit: &mut impl FnMut(BarEvent)) {
        match ev {
            MarketEvent::Trade(t) => self.on_trade(t, emit),
            MarketEvent::Bar(b) => self.on_bar(b, emit),
            // Any later market time (a clock, a quote) proves the open bar is over.
            other => {
                if let Some(ts) = other.ts() {
                    self.close_if_over(ts, emit);
                }
            }
        }
    }

    /// Closes the open bar: the source has ended, nothing more can come for it.
    pub fn finish(&mut self, emit: &mut impl FnMut(BarEvent)) {
        self.close(emit);
    }

    fn on_trade(&mut self, trade: &Trade, emit: &mut impl FnMut(BarEvent)) {
        self.close_if_over(trade.ts, emit);
        let bucket = trade.ts.floor_to(self.interval);
        if self.is_late(bucket) {
            self.late += 1;
            return;
        }
        let bar = match &mut self.forming {
            Some(bar) => {
                bar.add_trade(trade);
                *bar
            }
            None => *self.forming.insert(Bar::from_trade(bucket, trade)),
        };
        emit(BarEvent::Forming(bar));
    }

    fn on_bar(&mut self, source: &Bar, emit: &mut impl FnMut(BarEvent)) {
        self.close_if_over(source.ts, emit);
        let bucket = self.bucket(source.ts);
        if self.is_late(bucket) {
            self.late += 1;
            return;
        }
        let bar = match &mut self.forming {
            Some(bar) => {
                bar.merge(source);
                *bar
            }
            None => *self.forming.insert(Bar { ts: bucket, ..*source }),
        };
        // A source bar reaching the bucket's end completes it: no need to wait for the next.
        if source.ts.plus(self.source_interval) >= bucket.plus(self.interval) {
            self.close(emit);
        } else {
            emit(BarEvent::Forming(bar));
        }
    }

    /// Data for a bucket before the open bar, or not after the last closed one, comes too late.
    fn is_late(&self, bucket: Timestamp) -> bool {
        self.forming.is_some_and(|bar| bucket < bar.ts) || self.last_closed.is_some_and(|closed| bucket <= closed)
    }

    fn close_if_over(&mut self, now: Timestamp, emit: &mut impl FnMut(BarEvent)) {
        if self.forming.is_some_and(|bar| now >= bar.ts.plus(self.interval)) {
            self.close(emit);
        }
    }

    fn close(&mut self, emit: &mut impl FnMut(BarEvent)) {
        let Some(bar) = self.forming.take() else {
            return;
        };
        if let Some(prev) = self.last_closed {
            // Whole intervals between the two bars; bars that keep their own time may come a
            // little late (61 s after a 1-minute bar) without a bar missing between them.
            let step = self.interval.secs().saturating_mul(1_000_000_000);
            let missing = (bar.ts.0.saturating_sub(prev.0) / step).saturating_sub(1);
            if missing > 0 {
                emit(BarEvent::Gap {
                    from: prev.plus(self.interval),
                    to: bar.ts,
                    missing: missing as u64,
                });
            }
        }
        self.last_closed = Some(bar.ts);
        emit(BarEvent::Closed(bar));
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::csv::CsvReader;
    use crate::types::Side;

    const M: Interval = Interval::ONE_MINUTE;

    fn trade(secs: i64, price: i64, size: i64) -> MarketEvent {
        MarketEvent::Trade(Trade {
            ts: Timestamp::from_secs(secs),
            price: Decimal::from(price),
            size: Decimal::from(size),
            side: Some(Side::Buy),
        })
    }

    fn bar(secs: i64, o: i64, h: i64, l: i64, c: i64, v: i64, n: u32) -> Bar {
        let d = Decimal::from;
        Bar {
            ts: Timestamp::from_secs(secs),
            open: d(o),
            high: d(h),
            low: d(l),
            close: d(c),
            volume: d(v),
            trades: n,
        }
    }

    fn gap(from: i64, to: i64, missing: u64) -> BarEvent {
        BarEvent::Gap {
            from: Timestamp::from_secs(from),
            to: Timestamp::from_secs(to),
            missing,
        }
    }

    fn run(agg: &mut BarAggregator, events: &[MarketEvent], finish: bool) -> Vec<BarEvent> {
        let mut out = Vec::new();
        for ev in events {
            agg.on_event(ev, &mut |b| out.push(b));
        }
        if finish {
            agg.finish(&mut |b| out.push(b));
        }
        out
    }

    fn closed(events: &[BarEvent]) -> Vec<Bar> {
        events
            .iter()
            .filter_map(|e| match e {
                BarEvent::Closed(b) => Some(*b),
                _ => None,
            })
            .collect()
    }

    fn read(text: &str) -> Vec<MarketEvent> {
        let mut r = CsvReader::from_reader("test", std::io::Cursor::new(text.as_bytes().to_vec()), false).unwrap();
        std::iter::from_fn(|| r.read_event().unwrap()).collect()
    }

    #[test]
    fn trades_make_one_minute_bars() {
        use BarEvent::{Closed, Forming};
        let cases: Vec<(&str, Vec<MarketEvent>, bool, Vec<BarEvent>)> = vec![
            (
                "one trade stays forming",
                vec![trade(61, 10, 1)],
                false,
                vec![Forming(bar(60, 10, 10, 10, 10, 1, 1))],
            ),
            (
                "ohlcv within a minute, closed by the next minute's trade",
                vec![
                    trade(60, 10, 1),
                    trade(70, 12, 2),
                    trade(80, 9, 1),
                    trade(119, 11, 1),
                    trade(120, 11, 1),
                ],
                false,
                vec![
                    Forming(bar(60, 10, 10, 10, 10, 1, 1)),
                    Forming(bar(60, 10, 12, 10, 12, 3, 2)),
                    Forming(bar(60, 10, 12, 9, 9, 4, 3)),
                    Forming(bar(60, 10, 12, 9, 11, 5, 4)),
                    Closed(bar(60, 10, 12, 9, 11, 5, 4)),
                    Forming(bar(120, 11, 11, 11, 11, 1, 1)),
                ],
            ),
            (
                "a clock closes a quiet minute",
                vec![
                    trade(60, 10, 1),
                    MarketEvent::Clock(Timestamp::from_secs(119)),
                    MarketEvent::Clock(Timestamp::from_secs(120)),
                ],
                false,
                vec![
                    Forming(bar(60, 10, 10, 10, 10, 1, 1)),
                    Closed(bar(60, 10, 10, 10, 10, 1, 1)),
                ],
            ),
            (
                "empty minutes are a gap, never a bar",
                vec![trade(60, 10, 1), trade(250, 12, 1)],
                true,
                vec![
                    Forming(bar(60, 10, 10, 10, 10, 1, 1)),
                    Closed(bar(60, 10, 10, 10, 10, 1, 1)),
                    Forming(bar(240, 12, 12, 12, 12, 1, 1)),
                    gap(120, 240, 2),
                    Closed(bar(240, 12, 12, 12, 12, 1, 1)),
                ],
            ),
            (
                "a late trade is dropped",
                vec![trade(60, 10, 1), trade(120, 11, 1), trade(119, 99, 1)],
                false,
                vec![
                    Forming(bar(60, 10, 10, 10, 10, 1, 1)),
                    Closed(bar(60, 10, 10, 10, 10, 1, 1)),
                    Forming(bar(120, 11, 11, 11, 11, 1, 1)),
                ],
            ),
        ];
        for (what, events, finish, expected) in cases {
            let mut agg = BarAggregator::new(M, None);
            assert_eq!(run(&mut agg, &events, finish), expected, "{what}");
        }
        let mut agg = BarAggregator::new(M, None);
        run(
            &mut agg,
            &[trade(60, 10, 1), trade(120, 11, 1), trade(119, 99, 1)],
            false,
        );
        assert_eq!(agg.late_trades(), 1);
    }

    #[test]
    fn kraken_trades_reproduce_kraken_bars() {
        let trades = read(include_str!(
            "../../../tests/data/xbtusdt_trades_kraken_rest_20251110.csv"
        ));
        let kraken = read(include_str!(
            "../../../tests/data/xbtusdt_1m_kraken_rest_20251110_20251111.csv"
        ));
        let mut agg = BarAggregator::new(M, None);
        let ours = closed(&run(&mut agg, &trades, true));
        assert_eq!(ours.len(), 274);
        let mut matched = 0;
        for bar in ours.iter().filter(|b| b.ts != Timestamp::from_secs(1_762_795_380)) {
            let theirs = kraken.iter().find(|e| e.ts() == Some(bar.ts)).unwrap();
            assert_eq!(&MarketEvent::Bar(*bar), theirs);
            matched += 1;
        }
        assert_eq!(matched, 273);
    }

    #[test]
    fn one_minute_bars_merge_into_five() {
        let minutes = read(include_str!("../../../assets/btcusd_1m_20170903_20170904.csv"));
        let mut agg = BarAggregator::new(Interval::from_secs(300).unwrap(), Some(M));
        let mut out = Vec::new();
        for (i, ev) in minutes.iter().enumerate() {
            agg.on_event(ev, &mut |b| out.push(b));
            // Each 5m bar closes as soon as its fifth minute arrives.
            assert_eq!(
                matches!(out.last(), Some(BarEvent::Closed(_))),
                i % 5 == 4,
                "minute {i}"
            );
        }
        let fives = closed(&out);
        assert_eq!(fives.len(), 576);
        let MarketEvent::Bar(mut expected) = minutes[0] else {
            unreachable!()
        };
        for ev in &minutes[1..5] {
            let MarketEvent::Bar(b) = ev else { unreachable!() };
            expected.merge(b);
        }
        assert_eq!(fives[0], expected);
        let volume: Decimal = minutes
            .iter()
            .map(|e| match e {
                MarketEvent::Bar(b) => b.volume,
                _ => Decimal::ZERO,
            })
            .sum();
        assert_eq!(fives.iter().map(|b| b.volume).sum::<Decimal>(), volume);
    }

    #[test]
    fn same_interval_bars_close_on_arrival_and_gaps_are_found() {
        let minutes = read(include_str!("../../../tests/data/btcusd_1m_20180404_20180406.csv"));
        let mut agg = BarAggregator::new(M, Some(M));
        let out = run(&mut agg, &minutes, false);
        assert!(!out.iter().any(|e| matches!(e, BarEvent::Forming(_))));
        assert_eq!(closed(&out).len(), minutes.len());
        let gaps: Vec<&BarEvent> = out.iter().filter(|e| matches!(e, BarEvent::Gap { .. })).collect();
        // 2018-04-04 16:46 alone, then 16:48 .. 23:59.
        assert_eq!(
            gaps,
            [
                &gap(1_522_860_360, 1_522_860_420, 1),
                &gap(1_522_860_480, 1_522_886_400, 432)
            ]
        );
        let pos = out.iter().position(|e| e == gaps[1]).unwrap();
        assert!(matches!(out[pos + 1], BarEvent::Closed(b) if b.ts == Timestamp::from_secs(1_522_886_400)));
    }

    #[test]
    fn bars_at_their_own_interval_keep_their_time() {
        // Stamped 20 s past the minute, one minute missing, one bar a second late.
        let events: Vec<MarketEvent> = [80, 140, 260, 321]
            .iter()
            .map(|&s| MarketEvent::Bar(bar(s, 1, 1, 1, 1, 1, 1)))
            .collect();
        let mut agg = BarAggregator::new(M, Some(M));
        assert_eq!(
            run(&mut agg, &events, false),
            [
                BarEvent::Closed(bar(80, 1, 1, 1, 1, 1, 1)),
                BarEvent::Closed(bar(140, 1, 1, 1, 1, 1, 1)),
                gap(200, 260, 1),
                BarEvent::Closed(bar(260, 1, 1, 1, 1, 1, 1)),
                BarEvent::Closed(bar(321, 1, 1, 1, 1, 1, 1)),
            ]
        );
        // Resumed after the bar at :20, the same bar is late and the next one follows.
        let mut agg = BarAggregator::new(M, Some(M)).with_last_closed(Timestamp::from_secs(140));
        let out = run(&mut agg, &events[1..], false);
        assert_eq!(
            out[..2],
            [gap(200, 260, 1), BarEvent::Closed(bar(260, 1, 1, 1, 1, 1, 1))]
        );
        assert_eq!(agg.late_trades(), 1);
        // Into five minutes: on the five-minute boundaries, as ever.
        let mut agg = BarAggregator::new(Interval::from_secs(300).unwrap(), Some(M));
        let fives = closed(&run(&mut agg, &events, true));
        assert_eq!(fives.iter().map(|b| b.ts.secs()).collect::<Vec<_>>(), [0, 300]);
        assert_eq!(fives[0].volume, Decimal::from(3));
    }

    #[test]
    fn a_resumed_run_knows_its_last_bar() {
        let mut agg = BarAggregator::new(M, Some(M)).with_last_closed(Timestamp::from_secs(120));
        let events: Vec<MarketEvent> = [60, 120, 300]
            .iter()
            .map(|&s| MarketEvent::Bar(bar(s, 1, 1, 1, 1, 1, 1)))
            .collect();
        let out = run(&mut agg, &events, false);
        assert_eq!(out, [gap(180, 300, 2), BarEvent::Closed(bar(300, 1, 1, 1, 1, 1, 1))]);
        assert_eq!(agg.late_trades(), 2);
    }

    #[test]
    fn forming_is_never_reported_closed() {
        let mut agg = BarAggregator::new(Interval::from_secs(300).unwrap(), Some(M));
        let events: Vec<MarketEvent> = [0, 60, 120]
            .iter()
            .map(|&s| MarketEvent::Bar(bar(s, 1, 2, 1, 2, 1, 1)))
            .collect();
        let out = run(&mut agg, &events, false);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|e| matches!(e, BarEvent::Forming(_))));
        assert_eq!(agg.forming().map(|b| b.volume), Some(Decimal::from(3)));
        let mut tail = Vec::new();
        agg.finish(&mut |b| tail.push(b));
        assert_eq!(tail, [BarEvent::Closed(bar(0, 1, 2, 1, 2, 3, 3))]);
        assert!(agg.forming().is_none());
    }
}
