//! Durations summarised for `mntr`, the admin `monitor` command and the Prometheus summaries:
//! count, sum, min, max and quantiles, in milliseconds. Also the process-wide timings the
//! storage layer records (log fdatasync, snapshot writes), which have no server handle.
//! A leaf like `clock`: consensus and server record here, `server::facts` and `admin` read,
//! so storage never depends on the HTTP side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use hdrhistogram::Histogram;

use crate::clock::{Clock, Stopwatch, SystemClock};

/// Significant decimal digits the histograms keep (1% precision is plenty for latencies).
const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 2;
/// The quantiles ZooKeeper's Prometheus summaries export.
pub const SUMMARY_QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];
/// The percentiles ZooKeeper's `mntr` prints for its latency summaries, with their key prefix.
pub const MONITOR_PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)];

/// Time of each log fdatasync (ZooKeeper's `fsynctime`), in milliseconds.
pub static FSYNC_MS: LazyLock<Timing> = LazyLock::new(Timing::default);
/// Time of each snapshot write (ZooKeeper's `snapshottime`), in milliseconds.
pub static SNAPSHOT_MS: LazyLock<Timing> = LazyLock::new(Timing::default);

/// The newest snapshot this process wrote (for the admin `last_snapshot`).
pub static LAST_SNAPSHOT: Mutex<Option<LastSnapshot>> = Mutex::new(None);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastSnapshot {
    /// The zxid (log index) the snapshot covers.
    pub zxid: u64,
    pub unix_secs: u64,
}

/// Called by the snapshot builder after each write: its duration and what it covered.
pub fn snapshot_written(zxid: u64, started: &Stopwatch) {
    SNAPSHOT_MS.record_since(started);
    let unix_secs = u64::try_from(SystemClock::new().wall_ms() / 1000).unwrap_or(0);
    if let Ok(mut last) = LAST_SNAPSHOT.lock() {
        *last = Some(LastSnapshot { zxid, unix_secs });
    }
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
