//! `consensus`: orders proposed txns into the replicated log and hands committed entries to the
//! state machine. It knows nothing of znode semantics: an entry is opaque apart from its
//! envelope (zxid, time, session, auth).
//!
//! Today there is one implementation, [`Standalone`]: a single task that assigns each proposal
//! the next zxid and the leader's wall-clock time, then passes whole batches to the
//! [`StateMachine`] (many proposals, one apply pass: the shape that group commit will keep when
//! the Raft log and its fsync arrive). The next step puts openraft behind the same
//! [`Proposer`] handle; the server does not change.
//!
//! Entry points: [`Standalone::start`], [`Proposer::propose`].

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::proto::{Id, SessionId, Zxid};
use crate::txn::{TxnEntry, TxnOp};

/// How many proposals may wait for the log before proposers are made to wait (backpressure).
pub const PROPOSALS_QUEUED_MAX: usize = 16 * 1024;
/// The most entries handed to the state machine in one batch.
pub const APPLY_BATCH_ENTRIES_MAX: usize = 1024;

/// Applies committed entries, in log order. `Route` is the proposer's opaque token saying
/// where the reply goes (only the server that received the request has one).
pub trait StateMachine: Send + Sync + 'static {
    type Route: Send + 'static;
    fn apply_batch(&self, batch: Vec<(TxnEntry, Option<Self::Route>)>);
}

/// A write waiting to be ordered.
#[derive(Debug)]
pub struct Proposal<R> {
    pub session_id: SessionId,
    pub auth: Vec<Id>,
    pub op: TxnOp,
    pub route: Option<R>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConsensusError {
    #[error("the log is shut down")]
    Shutdown,
}

/// The handle every connection uses to propose writes.
pub struct Proposer<R> {
    queue: mpsc::Sender<Proposal<R>>,
}

impl<R> Clone for Proposer<R> {
    fn clone(&self) -> Self {
        Proposer {
            queue: self.queue.clone(),
        }
    }
}

impl<R: Send + 'static> Proposer<R> {
    pub async fn propose(&self, proposal: Proposal<R>) -> Result<(), ConsensusError> {
        self.queue
            .send(proposal)
            .await
            .map_err(|_| ConsensusError::Shutdown)
    }
}

/// A one-voter log: the standalone server.
pub struct Standalone;

impl Standalone {
    /// Spawns the ordering task. It ends when every [`Proposer`] is dropped.
    pub fn start<M: StateMachine>(
        machine: Arc<M>,
        last_zxid: Zxid,
        clock: Arc<dyn Clock>,
    ) -> (Proposer<M::Route>, tokio::task::JoinHandle<()>) {
        let (queue, mut incoming) = mpsc::channel::<Proposal<M::Route>>(PROPOSALS_QUEUED_MAX);
        let task = tokio::spawn(async move {
            let mut next_zxid = last_zxid + 1;
            let mut proposals = Vec::with_capacity(APPLY_BATCH_ENTRIES_MAX);
            while incoming
                .recv_many(&mut proposals, APPLY_BATCH_ENTRIES_MAX)
                .await
                > 0
            {
                let time_ms = clock.wall_ms();
                let batch = proposals
                    .drain(..)
                    .map(|proposal| {
                        let entry = TxnEntry {
                            zxid: next_zxid,
                            time_ms,
                            session_id: proposal.session_id,
                            auth: proposal.auth,
                            op: proposal.op,
                        };
                        next_zxid += 1;
                        (entry, proposal.route)
                    })
                    .collect();
                // Apply is in-memory and short: std locks, no await inside.
                machine.apply_batch(batch);
            }
        });
        (Proposer { queue }, task)
    }
}
