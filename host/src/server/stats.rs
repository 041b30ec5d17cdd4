//! Counters behind the four-letter words (srvr, stat, cons, mntr, crst, srst): server-wide and
//! per connection. Lock-free atomics; read racily, as ZooKeeper's are. Read and write latency
//! summaries (ZooKeeper's `readlatency`, `updatelatency`) feed `mntr` and Prometheus.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::timing::Timing;

/// Request latency in milliseconds: min / total / count / max.
#[derive(Debug)]
pub struct Latency {
    min_ms: AtomicU64,
    max_ms: AtomicU64,
    total_ms: AtomicU64,
    count: AtomicU64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            min_ms: AtomicU64::new(u64::MAX),
            max_ms: AtomicU64::new(0),
            total_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub fn record(&self, latency_ms: u64) {
        self.min_ms.fetch_min(latency_ms, Ordering::Relaxed);
        self.max_ms.fetch_max(latency_ms, Ordering::Relaxed);
        self.total_ms.fetch_add(latency_ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.min_ms.store(u64::MAX, Ordering::Relaxed);
        self.max_ms.store(0, Ordering::Relaxed);
        self.total_ms.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    pub fn min_ms(&self) -> u64 {
        match self.min_ms.load(Ordering::Relaxed) {
            u64::MAX => 0,
            min_ms => min_ms,
        }
    }

    pub fn max_ms(&self) -> u64 {
        self.max_ms.load(Ordering::Relaxed)
    }

    pub fn avg_ms(&self) -> f64 {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return 0.0;
        }
        self.total_ms.load(Ordering::Relaxed) as f64 / count as f64
    }
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub latency: Latency,
    pub outstanding_requests: AtomicI64,
    pub auth_failed_count: AtomicU64,
    pub connections_rejected: AtomicU64,
    /// Latency of read requests (ZooKeeper's `readlatency`).
    pub read_latency: Timing,
    /// Latency of writes, from receipt to reply (ZooKeeper's `updatelatency`).
    pub update_latency: Timing,
}

/// Which latency summary a request counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Answered from the local tree (and sync, auth, setWatches ...): `readlatency`.
    Read,
    /// A change of the replicated state (a txn, or a reconfig): `updatelatency`.
    Update,
}

impl ServerStats {
    /// Records one answered request (pings excluded) into the latency counters.
    pub fn record_request(&self, kind: RequestKind, latency_ms: u64) {
        self.latency.record(latency_ms);
        match kind {
            RequestKind::Read => self.read_latency.record_ms(latency_ms),
            RequestKind::Update => self.update_latency.record_ms(latency_ms),
        }
    }

    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.latency.reset();
    }
}

/// What the last request of a connection was, for `cons`.
#[derive(Debug, Default, Clone)]
pub struct LastRequest {
    pub op: &'static str,
    pub cxid: i32,
    pub zxid: i64,
    pub response_wall_ms: i64,
    pub latency_ms: u64,
}

/// Per-connection counters.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub latency: Latency,
    pub last: Mutex<LastRequest>,
}

impl ConnectionStats {
    pub fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.latency.reset();
        if let Ok(mut last) = self.last.lock() {
            *last = LastRequest::default();
        }
    }
}
