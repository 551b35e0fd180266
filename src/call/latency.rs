//! Call latency: a histogram since start (for Prometheus) and one over the last minute (for
//! p50/p99 and calls per second in status), both lock-free.
//!
//! Buckets are fixed: ten per decade (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10ⁿ) from 1 µs to
//! 80 s, plus one for slower calls, so a quantile is known within 25 %. Recording a call is
//! two relaxed atomic adds (three when a window slot turns over).
//!
//! The window is [`SLOTS`] slots of [`SLOT`] each, keyed by the slot's epoch; a recorder that
//! finds a stale slot claims it and clears it. A call recorded by another thread during
//! that clear may be lost from the window (never from the histogram since start).

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

const MANTISSAS: [u64; 10] = [100, 125, 150, 200, 250, 300, 400, 500, 600, 800];
const DECADES: usize = 8;
/// Finite buckets.
const BOUNDS: usize = MANTISSAS.len() * DECADES;

/// Upper bounds of the finite buckets, in nanoseconds (1 µs … 80 s).
static UPPER_NS: LazyLock<[u64; BOUNDS]> = LazyLock::new(|| {
    let mut bounds = [0u64; BOUNDS];
    let mut scale = 10u64; // 100 × 10 ns = 1 µs
    for decade in 0..DECADES {
        for (i, m) in MANTISSAS.iter().enumerate() {
            bounds[decade * MANTISSAS.len() + i] = m * scale;
        }
        scale *= 10;
    }
    bounds
});

/// Width of one window slot.
pub(crate) const SLOT: Duration = Duration::from_secs(10);
/// Slots in the window: the current one and five full ones before it.
pub(crate) const SLOTS: usize = 6;

fn bucket(elapsed: Duration) -> usize {
    let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
    UPPER_NS.partition_point(|&upper| upper < ns)
}

#[derive(Debug)]
struct Counts([AtomicU64; BOUNDS + 1]);

impl Default for Counts {
    fn default() -> Self {
        Counts(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

#[derive(Debug, Default)]
struct Slot {
    /// Which slot-length period since [`EPOCH`] the counts are for (+1; 0: never used).
    epoch: AtomicU64,
    counts: Counts,
}

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn epoch_now() -> u64 {
    EPOCH.elapsed().as_secs() / SLOT.as_secs() + 1
}

/// A plugin's call latencies.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    total: Counts,
    sum_ns: AtomicU64,
    window: [Slot; SLOTS],
}

impl Latency {
    pub(crate) fn record(&self, elapsed: Duration) {
        self.record_at(elapsed, epoch_now());
    }

    fn record_at(&self, elapsed: Duration, epoch: u64) {
        let b = bucket(elapsed);
        self.total.0[b].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Relaxed,
        );
        let slot = &self.window[(epoch % SLOTS as u64) as usize];
        let seen = slot.epoch.load(Relaxed);
        if seen < epoch
            && slot
                .epoch
                .compare_exchange(seen, epoch, Relaxed, Relaxed)
                .is_ok()
        {
            for c in &slot.counts.0 {
                c.store(0, Relaxed);
            }
        }
        if slot.epoch.load(Relaxed) == epoch {
            slot.counts.0[b].fetch_add(1, Relaxed);
        }
    }

    /// Every call since start, cumulative per bucket (Prometheus' form).
    pub(crate) fn histogram(&self) -> LatencyHistogram {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(BOUNDS);
        for (i, upper) in UPPER_NS.iter().enumerate() {
            cumulative += self.total.0[i].load(Relaxed);
            buckets.push((Duration::from_nanos(*upper), cumulative));
        }
        LatencyHistogram {
            buckets,
            count: cumulative + self.total.0[BOUNDS].load(Relaxed),
            sum: Duration::from_nanos(self.sum_ns.load(Relaxed)),
        }
    }

    /// The calls of the last minute.
    pub(crate) fn recent(&self) -> LatencySummary {
        self.recent_at(epoch_now(), EPOCH.elapsed())
    }

    fn recent_at(&self, epoch: u64, since_epoch: Duration) -> LatencySummary {
        let mut counts = [0u64; BOUNDS + 1];
        let oldest = epoch.saturating_sub(SLOTS as u64 - 1).max(1);
        for slot in &self.window {
            let e = slot.epoch.load(Relaxed);
            if (oldest..=epoch).contains(&e) {
                for (sum, c) in counts.iter_mut().zip(&slot.counts.0) {
                    *sum += c.load(Relaxed);
                }
            }
        }
        let calls: u64 = counts.iter().sum();
        // The window spans the full slots before this one plus the part of this one gone by
        // (less at start).
        let current = since_epoch.saturating_sub(SLOT * (epoch - 1) as u32);
        let window = SLOT * (epoch - oldest) as u32 + current;
        let quantile = |q: f64| -> Option<Duration> {
            if calls == 0 {
                return None;
            }
            let rank = ((calls as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return Some(Duration::from_nanos(
                        UPPER_NS.get(i).copied().unwrap_or(u64::MAX),
                    ));
                }
            }
            None
        };
        LatencySummary {
            window,
            calls,
            per_second: if window.is_zero() {
                0.0
            } else {
                calls as f64 / window.as_secs_f64()
            },
            p50: quantile(0.5),
            p99: quantile(0.99),
        }
    }
}

/// Every call's latency since the plugin was configured, as cumulative buckets: what a
/// Prometheus histogram exports.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyHistogram {
    /// `(upper bound, calls at most this long)`, ascending; calls slower than the last
    /// bound count only in `count`.
    pub buckets: Vec<(Duration, u64)>,
    /// Every call.
    pub count: u64,
    /// Their total latency.
    pub sum: Duration,
}

/// Calls of the last minute (or since start, when that is shorter).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LatencySummary {
    /// What the figures cover.
    pub window: Duration,
    /// Calls finished in it.
    pub calls: u64,
    /// `calls` over `window`.
    pub per_second: f64,
    /// Median latency: the upper bound of its bucket (within 25 %); `None` without calls.
    pub p50: Option<Duration>,
    /// 99th percentile, likewise.
    pub p99: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn buckets_cover_a_microsecond_to_eighty_seconds_and_beyond() {
        assert_eq!(bucket(Duration::ZERO), 0);
        assert_eq!(bucket(Duration::from_micros(1)), 0);
        assert_eq!(bucket(Duration::from_nanos(1001)), 1);
        assert_eq!(UPPER_NS[BOUNDS - 1], 80_000_000_000);
        assert_eq!(bucket(Duration::from_secs(81)), BOUNDS);
        assert_eq!(bucket(Duration::MAX), BOUNDS);
    }

    proptest! {
        #[test]
        fn a_latency_lands_in_the_first_bucket_that_holds_it(ns in 0u64..100_000_000_000) {
            let b = bucket(Duration::from_nanos(ns));
            if b < BOUNDS {
                prop_assert!(ns <= UPPER_NS[b]);
            }
            if b > 0 {
                prop_assert!(ns > UPPER_NS[b - 1]);
            }
        }
    }

    #[test]
    fn quantiles_and_rate_come_from_the_window() {
        let l = Latency::default();
        for _ in 0..98 {
            l.record_at(MS, 1);
        }
        l.record_at(3 * MS, 1);
        l.record_at(70 * MS, 1);
        let r = l.recent_at(1, Duration::from_secs(5));
        assert_eq!(r.calls, 100);
        assert_eq!(r.p50, Some(MS));
        assert_eq!(r.p99, Some(3 * MS));
        assert_eq!(r.window, Duration::from_secs(5));
        assert!((r.per_second - 20.0).abs() < 1e-9);
        let h = l.histogram();
        assert_eq!(h.count, 100);
        assert_eq!(h.sum, 98 * MS + 3 * MS + 70 * MS);
        let at = |d: Duration| h.buckets.iter().find(|(b, _)| *b == d).unwrap().1;
        assert_eq!(at(MS), 98);
        assert_eq!(at(3 * MS), 99);
        assert_eq!(at(80 * MS), 100);
    }

    #[test]
    fn old_slots_leave_the_window_but_not_the_histogram() {
        let l = Latency::default();
        l.record_at(MS, 1);
        l.record_at(2 * MS, 3);
        // Epoch 7: slots 2..=7 are in the window; epoch 1 is not.
        let r = l.recent_at(7, SLOT * 6 + Duration::from_secs(1));
        assert_eq!(r.calls, 1);
        assert_eq!(r.p50, Some(2 * MS));
        assert_eq!(r.window, SLOT * 5 + Duration::from_secs(1));
        // Epoch 7 reuses epoch 1's slot: cleared before counting.
        l.record_at(5 * MS, 7);
        let r = l.recent_at(7, SLOT * 6 + Duration::from_secs(1));
        assert_eq!(r.calls, 2);
        assert_eq!(l.histogram().count, 3);
        let empty = Latency::default().recent_at(3, SLOT * 2);
        assert_eq!((empty.calls, empty.p50, empty.p99), (0, None, None));
    }
}
