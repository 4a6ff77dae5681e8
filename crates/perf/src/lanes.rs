//! `N` performance trackers stepped together, one per lane, for a sweep that runs several
//! combinations over the same bars at once. Each lane does exactly the floating-point
//! operations of `PerfTracker::on_bar`, in the same order, so its figures are the same to the
//! bit; laid out lane by lane, the compiler keeps the lanes in vector registers (the per-bar
//! return's division, the costliest step, then divides `N` lanes at once).

// Lane `k` of several arrays at once reads clearest by index.
#![allow(clippy::needless_range_loop)]

use nanotrader_market::Interval;

use super::PerfTracker;

#[derive(Clone, Debug)]
pub struct PerfLanes<const N: usize> {
    /// The settings every lane shares, and its starting figures.
    template: PerfTracker,
    bars: u64,
    peak: [f64; N],
    max_drawdown: [f64; N],
    drawdown_floor: [f64; N],
    last_equity: [f64; N],
    exposed_bars: [u64; N],
    returns: [u64; N],
    sum: [f64; N],
    sum_squares: [f64; N],
    downside_squares: [f64; N],
}

impl<const N: usize> PerfLanes<N> {
    pub fn new(initial_equity: f64, interval: Interval) -> Self {
        let t = PerfTracker::new(initial_equity, interval);
        Self {
            bars: t.bars,
            peak: [t.peak; N],
            max_drawdown: [t.max_drawdown; N],
            drawdown_floor: [t.drawdown_floor; N],
            last_equity: [t.last_equity; N],
            exposed_bars: [t.exposed_bars; N],
            returns: [t.returns; N],
            sum: [t.sum; N],
            sum_squares: [t.sum_squares; N],
            downside_squares: [t.downside_squares; N],
            template: t,
        }
    }

    /// One closed bar per close in `closes`, lane `k` holding `cash[k]` and `position[k]`
    /// throughout: its equity is `cash[k] + position[k] * close`, and it is exposed when the
    /// position is not zero. The same as `on_bar` on each lane's own tracker, bar by bar.
    #[inline(always)]
    pub fn on_bars(&mut self, closes: &[f64], cash: &[f64; N], position: &[f64; N]) {
        let len = closes.len() as u64;
        self.bars += len;
        for k in 0..N {
            self.exposed_bars[k] += if position[k] != 0.0 { len } else { 0 };
        }
        // Local copies stay in registers through the loop.
        let (mut peak, mut max_drawdown, mut floor, mut last) =
            (self.peak, self.max_drawdown, self.drawdown_floor, self.last_equity);
        let (mut returns, mut sum, mut squares, mut downside) =
            (self.returns, self.sum, self.sum_squares, self.downside_squares);
        for &close in closes {
            let mut equity = [0.0; N];
            let mut deeper = [false; N];
            for k in 0..N {
                let e = cash[k] + position[k] * close;
                equity[k] = e;
                let up = e > peak[k];
                deeper[k] = !up & (e < floor[k]) & (peak[k] > 0.0);
                floor[k] = if up { e * (1.0 - max_drawdown[k]) } else { floor[k] };
                peak[k] = if up { e } else { peak[k] };
                let previous = last[k];
                let counted = previous > 0.0;
                let r = e / previous - 1.0;
                // `r.min(0.0)`: the same for every r here (r is never NaN nor -0.0).
                let loss = if r < 0.0 { r } else { 0.0 };
                returns[k] += u64::from(counted);
                sum[k] = if counted { sum[k] + r } else { sum[k] };
                squares[k] = if counted { squares[k] + r * r } else { squares[k] };
                downside[k] = if counted {
                    downside[k] + loss * loss
                } else {
                    downside[k]
                };
                last[k] = e;
            }
            // A new maximum drawdown is rare: its division only then.
            if deeper.iter().any(|&d| d) {
                for k in 0..N {
                    if deeper[k] {
                        max_drawdown[k] = (peak[k] - equity[k]) / peak[k];
                        floor[k] = equity[k];
                    }
                }
            }
        }
        (self.peak, self.max_drawdown, self.drawdown_floor, self.last_equity) = (peak, max_drawdown, floor, last);
        (self.returns, self.sum, self.sum_squares, self.downside_squares) = (returns, sum, squares, downside);
    }

    /// `bars` closed bars in which every lane is flat, lane `k` with its equity at `cash[k]`:
    /// `PerfTracker::on_flat_bars` on each lane, in O(N).
    pub fn on_flat_bars(&mut self, bars: u64, cash: &[f64; N]) {
        for (k, &equity) in cash.iter().enumerate() {
            let mut lane = self.lane(k);
            lane.on_flat_bars(bars, equity);
            self.set_lane(k, &lane);
        }
        self.bars += bars;
    }

    /// Lane `k`'s figures from `tracker`, all but the bar count the lanes share.
    fn set_lane(&mut self, k: usize, tracker: &PerfTracker) {
        self.peak[k] = tracker.peak;
        self.max_drawdown[k] = tracker.max_drawdown;
        self.drawdown_floor[k] = tracker.drawdown_floor;
        self.last_equity[k] = tracker.last_equity;
        self.exposed_bars[k] = tracker.exposed_bars;
        self.returns[k] = tracker.returns;
        self.sum[k] = tracker.sum;
        self.sum_squares[k] = tracker.sum_squares;
        self.downside_squares[k] = tracker.downside_squares;
    }

    /// `on_bars`, four lanes to an AVX register: the same operations on each lane, so the same
    /// figures to the bit (a test holds them equal). The compiler leaves `on_bars`' lanes
    /// scalar (one division after another, about 60 instructions for four lanes a bar,
    /// callgrind); this divides four at once.
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    pub unsafe fn on_bars_avx(&mut self, closes: &[f64], cash: &[f64; N], position: &[f64; N]) {
        use std::arch::x86_64::*;
        if N != 4 {
            return self.on_bars(closes, cash, position);
        }
        let len = closes.len() as u64;
        self.bars += len;
        for k in 0..N {
            self.exposed_bars[k] += if position[k] != 0.0 { len } else { 0 };
        }
        // SAFETY (the loads and stores): every array here holds four f64 (N == 4).
        let load = |a: &[f64; N]| unsafe { _mm256_loadu_pd(a.as_ptr()) };
        let (cash_v, position_v) = (load(cash), load(position));
        let (mut peak, mut max_drawdown, mut floor, mut last) = (
            load(&self.peak),
            load(&self.max_drawdown),
            load(&self.drawdown_floor),
            load(&self.last_equity),
        );
        let (mut sum, mut squares, mut downside) =
            (load(&self.sum), load(&self.sum_squares), load(&self.downside_squares));
        // Bars whose return is not counted (the equity before was not positive): rare.
        let mut uncounted = [0u64; 4];
        let (zero, one) = (_mm256_setzero_pd(), _mm256_set1_pd(1.0));
        for &close in closes {
            let e = _mm256_add_pd(cash_v, _mm256_mul_pd(position_v, _mm256_set1_pd(close)));
            let up = _mm256_cmp_pd::<_CMP_GT_OQ>(e, peak);
            let deeper = _mm256_andnot_pd(
                up,
                _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_LT_OQ>(e, floor),
                    _mm256_cmp_pd::<_CMP_GT_OQ>(peak, zero),
                ),
            );
            floor = _mm256_blendv_pd(floor, _mm256_mul_pd(e, _mm256_sub_pd(one, max_drawdown)), up);
            peak = _mm256_blendv_pd(peak, e, up);
            let counted = _mm256_cmp_pd::<_CMP_GT_OQ>(last, zero);
            let r = _mm256_sub_pd(_mm256_div_pd(e, last), one);
            // `r.min(0.0)` (r is never NaN nor -0.0 where counted); an uncounted lane adds +0.0,
            // which leaves its sums as they are (they are never -0.0).
            let loss = _mm256_and_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(r, zero), r);
            let r = _mm256_and_pd(counted, r);
            let loss = _mm256_and_pd(counted, loss);
            sum = _mm256_add_pd(sum, r);
            squares = _mm256_add_pd(squares, _mm256_mul_pd(r, r));
            downside = _mm256_add_pd(downside, _mm256_mul_pd(loss, loss));
            let counted_bits = _mm256_movemask_pd(counted);
            if counted_bits != 0b1111 {
                for (k, tally) in uncounted.iter_mut().enumerate() {
                    *tally += u64::from(counted_bits >> k & 1 == 0);
                }
            }
            last = e;
            // A new maximum drawdown is rare: its division only then, lane by lane.
            let deeper_bits = _mm256_movemask_pd(deeper);
            if deeper_bits != 0 {
                let (mut lanes_e, mut lanes_peak, mut lanes_dd, mut lanes_floor) =
                    ([0.0; 4], [0.0; 4], [0.0; 4], [0.0; 4]);
                // SAFETY: four f64 each.
                unsafe {
                    _mm256_storeu_pd(lanes_e.as_mut_ptr(), e);
                    _mm256_storeu_pd(lanes_peak.as_mut_ptr(), peak);
                    _mm256_storeu_pd(lanes_dd.as_mut_ptr(), max_drawdown);
                    _mm256_storeu_pd(lanes_floor.as_mut_ptr(), floor);
                }
                for k in 0..4 {
                    if deeper_bits >> k & 1 == 1 {
                        lanes_dd[k] = (lanes_peak[k] - lanes_e[k]) / lanes_peak[k];
                        lanes_floor[k] = lanes_e[k];
                    }
                }
                // SAFETY: four f64 each.
                unsafe {
                    max_drawdown = _mm256_loadu_pd(lanes_dd.as_ptr());
                    floor = _mm256_loadu_pd(lanes_floor.as_ptr());
                }
            }
        }
        // SAFETY: every array here holds four f64.
        let store = |v: __m256d, a: &mut [f64; N]| unsafe { _mm256_storeu_pd(a.as_mut_ptr(), v) };
        store(peak, &mut self.peak);
        store(max_drawdown, &mut self.max_drawdown);
        store(floor, &mut self.drawdown_floor);
        store(last, &mut self.last_equity);
        store(sum, &mut self.sum);
        store(squares, &mut self.sum_squares);
        store(downside, &mut self.downside_squares);
        for k in 0..N {
            self.returns[k] += len - uncounted[k];
        }
    }

    /// Lane `k` as a tracker of its own.
    pub fn lane(&self, k: usize) -> PerfTracker {
        PerfTracker {
            bars: self.bars,
            peak: self.peak[k],
            max_drawdown: self.max_drawdown[k],
            drawdown_floor: self.drawdown_floor[k],
            last_equity: self.last_equity[k],
            exposed_bars: self.exposed_bars[k],
            returns: self.returns[k],
            sum: self.sum[k],
            sum_squares: self.sum_squares[k],
            downside_squares: self.downside_squares[k],
            ..self.template.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator: the test needs varied numbers, not good ones.
    struct Xorshift(u64);
    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Each lane equals a tracker of its own fed the same holdings the way the backtest's
    /// tracker feeds it (flat stretches in one step, held ones bar by bar), to the bit.
    #[test]
    fn every_lane_equals_its_own_tracker() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        let closes: Vec<f64> = (0..20_000)
            .scan(40_000.0, |price, _| {
                *price = (*price + rng.below(2_001) as f64 - 1_000.0).max(1.0);
                Some(*price + rng.below(100) as f64 / 100.0)
            })
            .collect();
        let mut lanes = PerfLanes::<4>::new(100_000.0, Interval::ONE_MINUTE);
        let mut avx = lanes.clone();
        let mut alone: Vec<PerfTracker> = (0..4)
            .map(|_| PerfTracker::new(100_000.0, Interval::ONE_MINUTE))
            .collect();
        let (mut cash, mut position) = ([100_000.0; 4], [0.0; 4]);
        let mut start = 0;
        while start < closes.len() {
            let end = (start + 1 + rng.below(200) as usize).min(closes.len());
            // Holdings change between stretches: some lanes flat, some all in, some between.
            for k in 0..4 {
                match rng.below(4) {
                    0 => (cash[k], position[k]) = (cash[k] + position[k] * closes[start], 0.0),
                    1 => (cash[k], position[k]) = (0.0, 2.0 + rng.below(1_000) as f64 / 1_000.0),
                    2 => (cash[k], position[k]) = (1_000.0 + rng.below(9_000) as f64, 1.5),
                    _ => {}
                }
            }
            let stretch = &closes[start..end];
            if position.iter().all(|&p| p == 0.0) && rng.below(2) == 0 {
                lanes.on_flat_bars(stretch.len() as u64, &cash);
                avx.on_flat_bars(stretch.len() as u64, &cash);
            } else {
                lanes.on_bars(stretch, &cash, &position);
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx") {
                    // SAFETY: the CPU has AVX, checked just above.
                    unsafe { avx.on_bars_avx(stretch, &cash, &position) };
                } else {
                    avx.on_bars(stretch, &cash, &position);
                }
                #[cfg(not(target_arch = "x86_64"))]
                avx.on_bars(stretch, &cash, &position);
            }
            for k in 0..4 {
                if position[k] == 0.0 {
                    alone[k].on_flat_bars(stretch.len() as u64, cash[k]);
                } else {
                    for &close in stretch {
                        alone[k].on_bar(cash[k] + position[k] * close, true);
                    }
                }
            }
            start = end;
        }
        for (k, tracker) in alone.iter().enumerate() {
            assert!(tracker.max_drawdown > 0.0 && tracker.exposed_bars > 0, "{tracker:?}");
            assert_eq!(format!("{:?}", lanes.lane(k)), format!("{tracker:?}"), "lane {k}");
            assert_eq!(format!("{:?}", avx.lane(k)), format!("{tracker:?}"), "AVX lane {k}");
        }
    }
}
