//! Gap notices in bursts: holes arriving close together (a replay of patchy data finds
//! thousands in seconds) are told in one line, and lines come at a bounded rate. Each gap is
//! still stored one by one; this is only what a person reads.

use std::time::Duration;

use tokio::time::Instant;

use nanotrader_market::Timestamp;

/// A burst ends once no gap came for this long...
const QUIET: Duration = Duration::from_secs(1);
/// ...but its line waits until this long after the previous line...
const LINE_EVERY: Duration = Duration::from_secs(5);
/// ...and a burst that goes on is told at least this often.
const BURST_MAX: Duration = Duration::from_secs(10);

/// The gaps seen and not told yet.
#[derive(Debug, Default)]
pub(super) struct GapNotices {
    burst: Option<Burst>,
    last_line: Option<Instant>,
    /// The log fell behind since the last line: some gaps may not have been seen.
    unseen: bool,
}

#[derive(Debug)]
struct Burst {
    holes: u64,
    missing: u64,
    from: Timestamp,
    to: Timestamp,
    /// The bar length, from the first hole (`to - from` over `missing`).
    interval_secs: i64,
    opened: Instant,
    last: Instant,
}

impl GapNotices {
    /// A hole of `missing` bars from `from` to `to` (the next bar's time), seen at `now`.
    pub(super) fn add(&mut self, from: Timestamp, to: Timestamp, missing: u64, now: Instant) {
        let burst = self.burst.get_or_insert_with(|| Burst {
            holes: 0,
            missing: 0,
            from,
            to,
            interval_secs: ((to.nanos() - from.nanos()) / 1_000_000_000 / missing.max(1) as i64).max(1),
            opened: now,
            last: now,
        });
        burst.holes += 1;
        burst.missing += missing;
        burst.from = burst.from.min(from);
        burst.to = burst.to.max(to);
        burst.last = now;
    }

    /// The log observer fell behind the bus and skipped events, gaps among them perhaps.
    pub(super) fn fell_behind(&mut self) {
        self.unseen = true;
    }

    /// When the open burst's line is due.
    pub(super) fn due(&self) -> Option<Instant> {
        let burst = self.burst.as_ref()?;
        let settled = burst.last + QUIET;
        let spaced = self.last_line.map_or(settled, |line| settled.max(line + LINE_EVERY));
        Some(spaced.min(burst.opened + BURST_MAX))
    }

    /// The open burst's line, closing it.
    pub(super) fn take_line(&mut self, now: Instant) -> Option<String> {
        let burst = self.burst.take()?;
        self.last_line = Some(now);
        let unseen = std::mem::take(&mut self.unseen);
        Some(line(&burst, unseen))
    }
}

fn line(burst: &Burst, unseen: bool) -> String {
    let plural = if burst.missing == 1 { "" } else { "s" };
    let what = match burst.interval_secs {
        60 => format!("minute{plural}"),
        secs => format!(
            "{} bar{plural}",
            nanotrader_market::Interval::from_secs(secs).map_or_else(|| format!("{secs}s"), |i| i.to_string())
        ),
    };
    let mut text = if burst.holes == 1 {
        format!(
            "gap: {} missing {what} from {} to {}",
            burst.missing, burst.from, burst.to
        )
    } else {
        format!(
            "gaps: {} holes, {} missing {what} between {} and {}",
            burst.holes, burst.missing, burst.from, burst.to
        )
    };
    text.push_str(" (no trades; marked, not filled)");
    if unseen {
        text.push_str("; the log fell behind, so there may be more");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60;

    fn at(minute: i64) -> Timestamp {
        Timestamp::from_secs(1_504_400_400 + minute * MIN)
    }

    #[tokio::test(start_paused = true)]
    async fn holes_close_together_are_one_line() {
        let mut notices = GapNotices::default();
        let start = Instant::now();
        assert_eq!(notices.due(), None);
        notices.add(at(0), at(3), 3, start);
        assert_eq!(notices.due(), Some(start + QUIET), "a lone gap is told a second later");
        for i in 1..=36 {
            notices.add(
                at(10 * i),
                at(10 * i + 11),
                11,
                start + Duration::from_millis(10 * i as u64),
            );
        }
        let line = notices.take_line(start + Duration::from_secs(2)).unwrap();
        assert_eq!(
            line,
            format!(
                "gaps: 37 holes, 399 missing minutes between {} and {} (no trades; marked, not filled)",
                at(0),
                at(371)
            )
        );
        assert_eq!(notices.take_line(start), None, "told once");
    }

    #[tokio::test(start_paused = true)]
    async fn lines_are_spaced_and_long_bursts_told_in_parts() {
        let mut notices = GapNotices::default();
        let start = Instant::now();
        notices.add(at(0), at(1), 1, start);
        assert_eq!(
            notices.take_line(start + QUIET).unwrap(),
            format!(
                "gap: 1 missing minute from {} to {} (no trades; marked, not filled)",
                at(0),
                at(1)
            )
        );
        // The next burst waits for the spacing after the last line, however quiet it is.
        let next = start + QUIET + Duration::from_millis(100);
        notices.add(at(5), at(6), 1, next);
        assert_eq!(notices.due(), Some(start + QUIET + LINE_EVERY));
        notices.take_line(start + QUIET + LINE_EVERY);
        // Gaps that never stop are told every BURST_MAX.
        let opened = start + QUIET + LINE_EVERY + Duration::from_secs(1);
        for i in 0..1_000 {
            notices.add(
                at(10 + 2 * i),
                at(11 + 2 * i),
                1,
                opened + Duration::from_millis(20 * i as u64),
            );
        }
        assert_eq!(notices.due(), Some(opened + BURST_MAX));
    }

    #[tokio::test(start_paused = true)]
    async fn other_intervals_and_skipped_events_are_said() {
        let mut notices = GapNotices::default();
        notices.fell_behind();
        notices.add(at(0), at(15), 3, Instant::now());
        let line = notices.take_line(Instant::now()).unwrap();
        assert!(line.starts_with("gap: 3 missing 5m bars from "), "{line}");
        assert!(line.ends_with("the log fell behind, so there may be more"), "{line}");
    }
}
