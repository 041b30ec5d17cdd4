//! Durations summarised for `mntr`, the admin `monitor` command and the Prometheus summaries:
//! count, sum, min, max and quantiles, in milliseconds. Also one server's storage timings
//! (log fdatasync, snapshot writes), which its consensus records and its `server::facts` and
//! `admin` read. A leaf like `clock`, so storage never depends on the HTTP side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

use crate::clock::{Clock, Stopwatch};

/// Significant decimal digits the histograms keep (1% precision is plenty for latencies).
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 2;
/// The quantiles ZooKeeper's Prometheus summaries export.
pub const SUMMARY_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// The percentiles ZooKeeper's `mntr` prints for its latency summaries, with their key prefix.
pub const MONITOR_PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)];

/// What one server's storage records about itself: each a value of that server, so several
/// servers in one process keep their own.
#[derive(Debug, Default)]
pub struct StorageTimings {
    /// Time of each log fdatasync (ZooKeeper's `fsynctime`), in milliseconds.
    pub fsync_ms: Timing,
    /// Time of each snapshot write (ZooKeeper's `snapshottime`), in milliseconds.
    pub snapshot_ms: Timing,
    /// The newest snapshot this server wrote (for the admin `last_snapshot`).
    last_snapshot: Mutex<Option<LastSnapshot>>,
}

impl StorageTimings {
    /// Called by the snapshot builder after each write: its duration and what it covered.
    pub fn snapshot_written(&self, zxid: u64, started: &Stopwatch, clock: &dyn Clock) {
        self.snapshot_ms.record_since(started);
        let unix_secs = u64::try_from(clock.wall_ms() / 1000).unwrap_or(0);
        if let Ok(mut last) = self.last_snapshot.lock() {
            *last = Some(LastSnapshot { zxid, unix_secs });
        }
    }

    /// The newest snapshot this server wrote, if any.
    pub fn last_snapshot(&self) -> Option<LastSnapshot> {
        self.last_snapshot.lock().ok().and_then(|last| *last)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastSnapshot {
    /// The zxid (log index) the snapshot covers.
    pub zxid: u64,
    pub unix_secs: u64,
}

/// A summary of durations in milliseconds.
#[derive(Debug)]
pub struct Timing {
    histogram: Mutex<Histogram<u64>>,
    sum_ms: AtomicU64,
}

impl Default for Timing {
    fn default() -> Self {
        // `new` auto-resizes, so no value is ever out of range.
        let histogram = Histogram::new(HISTOGRAM_SIGNIFICANT_DIGITS)
            .unwrap_or_else(|_| unreachable!("2 significant digits is a valid precision"));
        Timing {
            histogram: Mutex::new(histogram),
            sum_ms: AtomicU64::new(0),
        }
    }
}

/// One reading of a [`Timing`].
#[derive(Clone, Debug, Default)]
pub struct TimingSnapshot {
    pub count: u64,
    pub sum_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
    pub avg_ms: f64,
    histogram: Option<Histogram<u64>>,
}

impl TimingSnapshot {
    /// The value at quantile `q` (0..=1), in milliseconds; 0 when nothing was recorded.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        self.histogram
            .as_ref()
            .map_or(0, |histogram| histogram.value_at_quantile(q))
    }
}

impl Timing {
    pub fn record_ms(&self, ms: u64) {
        if let Ok(mut histogram) = self.histogram.lock() {
            // Auto-resizing makes recording infallible in practice; a lost sample is harmless.
            let _ = histogram.record(ms);
        }
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Records the time `started` has run.
    pub fn record_since(&self, started: &Stopwatch) {
        self.record_ms(started.elapsed_us() / 1000);
    }

    pub fn snapshot(&self) -> TimingSnapshot {
        let Ok(histogram) = self.histogram.lock() else {
            return TimingSnapshot::default();
        };
        let count = histogram.len();
        if count == 0 {
            return TimingSnapshot::default();
        }
        TimingSnapshot {
            count,
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
            min_ms: histogram.min(),
            max_ms: histogram.max(),
            avg_ms: histogram.mean(),
            histogram: Some(histogram.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_timing_reads_zero() {
        let snapshot = Timing::default().snapshot();
        assert_eq!((snapshot.count, snapshot.max_ms), (0, 0));
        assert_eq!(snapshot.quantile_ms(0.99), 0);
    }

    #[test]
    fn quantiles_follow_the_samples() {
        let timing = Timing::default();
        for ms in 1..=100 {
            timing.record_ms(ms);
        }
        let snapshot = timing.snapshot();
        assert_eq!((snapshot.count, snapshot.sum_ms), (100, 5050));
        assert_eq!((snapshot.min_ms, snapshot.max_ms), (1, 100));
        assert_eq!(snapshot.quantile_ms(0.5), 50);
        assert_eq!(snapshot.quantile_ms(0.99), 99);
    }
}
