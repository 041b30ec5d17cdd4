//! The outbound half of a connection: a queue of encoded frames drained by the connection's
//! writer task. Replies and watch notifications share it, so whatever enqueues under the tree
//! lock is seen by the client in zxid order.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

/// A client that lets this many bytes pile up unread is disconnected (backpressure: a slow
/// reader cannot make the server buffer without bound).
pub const OUTBOUND_BYTES_QUEUED_MAX: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub enum Out {
    Frame(Bytes),
    /// Flush what is queued, then close the socket.
    Close(&'static str),
}

/// Cloneable sender side of a connection's outbound queue.
#[derive(Clone, Debug)]
pub struct Outbound {
    queue: mpsc::UnboundedSender<Out>,
    queued_bytes: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

/// Receiver side, owned by the writer task.
#[derive(Debug)]
pub struct OutboundReceiver {
    pub queue: mpsc::UnboundedReceiver<Out>,
    pub queued_bytes: Arc<AtomicUsize>,
}

pub fn channel() -> (Outbound, OutboundReceiver) {
    let (queue, receiver) = mpsc::unbounded_channel();
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let outbound = Outbound {
        queue,
        queued_bytes: Arc::clone(&queued_bytes),
        closed: Arc::new(AtomicBool::new(false)),
    };
    (
        outbound,
        OutboundReceiver {
            queue: receiver,
            queued_bytes,
        },
    )
}

impl Outbound {
    /// Queues one frame; over the byte limit the connection is closed instead.
    pub fn send(&self, frame: Bytes) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let queued = self.queued_bytes.fetch_add(frame.len(), Ordering::Relaxed) + frame.len();
        if queued > OUTBOUND_BYTES_QUEUED_MAX {
            tracing::warn!(
                queued,
                "client is not reading its replies; closing the connection"
            );
            self.close("outbound queue over its byte limit");
            return;
        }
        let _ = self.queue.send(Out::Frame(frame));
    }

    /// Asks the writer to flush and close. Later frames are dropped.
    pub fn close(&self, reason: &'static str) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            let _ = self.queue.send(Out::Close(reason));
        }
    }
}
