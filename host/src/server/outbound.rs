//! The outbound half of a connection: a queue of encoded frames drained by the connection's
//! writer task. Replies and watch notifications share it, so whatever enqueues under the tree
//! lock is seen by the client in zxid order.
//!
//! A client that does not read cannot make the server hold its replies for ever: the bytes not
//! yet written to the socket are bounded ([`OUTBOUND_BYTES_QUEUED_MAX`]) and a write that makes
//! no progress for the connection's write deadline (its session timeout) fails. Either way the
//! connection is aborted whole: the writer stops at once, the reader and the slot go with it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify};

/// A client that lets this many bytes of replies and notifications pile up unwritten (queued or
/// stuck in a write) is disconnected at once, nothing flushed. ZooKeeper has no byte bound: its
/// NIO/Netty connections queue replies without limit (only `globalOutstandingLimit` throttles
/// how many requests are read); zkw adds one so that a non-reading client costs bounded memory.
pub const OUTBOUND_BYTES_QUEUED_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub enum Out {
    Frame(Bytes),
    /// Flush what is queued, then close the socket.
    Close(&'static str),
}

/// State both halves see.
#[derive(Debug)]
struct Control {
    /// Bytes queued or taken by the writer and not yet written to the socket.
    queued_bytes: AtomicUsize,
    closed: AtomicBool,
    /// Why the connection was aborted, once it is.
    aborted: OnceLock<String>,
    abort: Notify,
    /// How long one write may make no progress before the connection is aborted.
    write_deadline_ms: AtomicU64,
}

/// Cloneable sender side of a connection's outbound queue.
#[derive(Clone, Debug)]
pub struct Outbound {
    queue: mpsc::UnboundedSender<Out>,
    control: Arc<Control>,
}

/// Receiver side, owned by the writer task.
#[derive(Debug)]
pub struct OutboundReceiver {
    pub queue: mpsc::UnboundedReceiver<Out>,
    pub progress: Progress,
}

/// The writer's view of the connection's state (apart from the queue, so both can be awaited
/// at once).
#[derive(Debug)]
pub struct Progress {
    control: Arc<Control>,
}

/// A new queue whose writes may stall `write_deadline_ms` (until a session sets its own).
pub fn channel(write_deadline_ms: u64) -> (Outbound, OutboundReceiver) {
    let (queue, receiver) = mpsc::unbounded_channel();
    let control = Arc::new(Control {
        queued_bytes: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        aborted: OnceLock::new(),
        abort: Notify::new(),
        write_deadline_ms: AtomicU64::new(write_deadline_ms),
    });
    let outbound = Outbound {
        queue,
        control: Arc::clone(&control),
    };
    (
        outbound,
        OutboundReceiver {
            queue: receiver,
            progress: Progress { control },
        },
    )
}

impl Outbound {
    /// Queues one frame; over the byte limit the connection is aborted instead.
    pub fn send(&self, frame: Bytes) {
        if self.control.closed.load(Ordering::Relaxed) {
            return;
        }
        let queued = self
            .control
            .queued_bytes
            .fetch_add(frame.len(), Ordering::Relaxed)
            + frame.len();
        if queued > OUTBOUND_BYTES_QUEUED_MAX {
            self.abort(format!(
                "client is not reading: {queued} bytes of replies unwritten \
                 (limit {OUTBOUND_BYTES_QUEUED_MAX})"
            ));
            return;
        }
        let _ = self.queue.send(Out::Frame(frame));
    }

    /// Asks the writer to flush and close. Later frames are dropped.
    pub fn close(&self, reason: &'static str) {
        if !self.control.closed.swap(true, Ordering::Relaxed) {
            let _ = self.queue.send(Out::Close(reason));
        }
    }

    /// Whether the connection is closing (or aborted): nothing more goes out on it.
    pub fn is_closed(&self) -> bool {
        self.control.closed.load(Ordering::Relaxed)
    }

    /// Stops the writer at once, nothing flushed; the connection ends with `reason`.
    pub fn abort(&self, reason: String) {
        self.control.closed.store(true, Ordering::Relaxed);
        if self.control.aborted.set(reason).is_ok() {
            self.control.abort.notify_one();
        }
    }

    /// The write deadline of this connection from now on (its session timeout).
    pub fn set_write_deadline_ms(&self, deadline_ms: u64) {
        self.control
            .write_deadline_ms
            .store(deadline_ms, Ordering::Relaxed);
    }
}

impl Progress {
    /// Resolves once the connection is aborted, with the reason.
    pub async fn aborted(&self) -> String {
        loop {
            let notified = self.control.abort.notified();
            if let Some(reason) = self.control.aborted.get() {
                return reason.clone();
            }
            notified.await;
        }
    }

    /// `bytes` reached the socket: they no longer count against the limit.
    pub fn written(&self, bytes: usize) {
        self.control
            .queued_bytes
            .fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn write_deadline_ms(&self) -> u64 {
        self.control.write_deadline_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_the_byte_limit_the_connection_aborts_and_drops_later_frames() {
        let (outbound, mut receiver) = channel(1_000);
        outbound.send(Bytes::from(vec![0; OUTBOUND_BYTES_QUEUED_MAX]));
        outbound.send(Bytes::from_static(b"one byte too many"));
        let reason = receiver.progress.aborted().await;
        assert!(reason.contains("not reading"), "{reason}");
        outbound.send(Bytes::from_static(b"later"));
        assert!(
            matches!(receiver.queue.try_recv(), Ok(Out::Frame(f)) if f.len() == OUTBOUND_BYTES_QUEUED_MAX)
        );
        assert!(
            receiver.queue.try_recv().is_err(),
            "nothing after the abort"
        );
    }

    #[tokio::test]
    async fn written_bytes_free_room() {
        let (outbound, receiver) = channel(1_000);
        outbound.send(Bytes::from(vec![0; OUTBOUND_BYTES_QUEUED_MAX]));
        receiver.progress.written(OUTBOUND_BYTES_QUEUED_MAX);
        outbound.send(Bytes::from_static(b"fits again"));
        assert!(receiver.progress.control.aborted.get().is_none());
        outbound.set_write_deadline_ms(4_000);
        assert_eq!(receiver.progress.write_deadline_ms(), 4_000);
    }
}
