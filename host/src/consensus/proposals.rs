//! Proposals: numbered, kept with their routes until applied here, and ordered: appended when
//! this server leads, forwarded in order (and re-sent after a change of leader) otherwise; the
//! leader's check of a follower's forwarded batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::type_config::async_runtime::watch::WatchReceiver;
use tokio::sync::mpsc;

use super::network::{PeerClient, PeerRequest, PeerResponse};
use super::types::Command;
use super::{log, network, Consensus, ConsensusError, StateMachine};
use super::{LEADER_RPC_TIMEOUT_MS, LEADER_WAIT_MS_MAX};

/// How many proposals may wait for the log before proposers are made to wait (backpressure).
pub const PROPOSALS_QUEUED_MAX: usize = 16 * 1024;

/// The most proposals sent to the log (or forwarded) in one batch.
pub const PROPOSAL_BATCH_MAX: usize = 1024;

/// Pause before re-sending writes that did not reach a leader.
pub const FORWARD_RETRY_MS: u64 = 20;

/// Room in a log record for what wraps a proposal's body: the entry's log id and the
/// command's origin, boot, seq, term and clock (postcard varints: well under 100 bytes).
pub const PROPOSAL_ENVELOPE_BYTES_MAX: u64 = 64 * 1024;

/// Largest encoded txn (a command's body) ever proposed, in bytes. A larger one is refused
/// before it gets a sequence number, so it never reaches Raft, where every replica's log would
/// refuse it (LOG_RECORD_PAYLOAD_BYTES_MAX) and leave the ensemble unable to commit. The
/// request arrived within jute.maxbuffer, so its client is dropped as ZooKeeper drops one that
/// sends more than jute.maxbuffer: the connection closes with a logged reason, the session
/// stays. ZooKeeper's nearest bound is a follower's jute.maxbuffer + jute.maxbuffer.extrasize.
pub const PROPOSAL_BYTES_MAX: usize =
    (log::LOG_RECORD_PAYLOAD_BYTES_MAX - PROPOSAL_ENVELOPE_BYTES_MAX) as usize;

/// Most bytes of commands forwarded to the leader in one message: a batch of large writes is
/// split so that no message nears the peer frame limit.
pub const FORWARD_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(PROPOSAL_ENVELOPE_BYTES_MAX < log::LOG_RECORD_PAYLOAD_BYTES_MAX);
const _: () = assert!(PROPOSAL_BYTES_MAX <= FORWARD_BYTES_MAX);
const _: () = assert!(FORWARD_BYTES_MAX * 2 <= network::PEER_FRAME_BYTES_MAX as usize);

/// Why the leader drops a command of a follower's forwarded batch. Every origin refuses
/// these itself, so one arriving means a broken or impersonated peer: it is logged and
/// dropped, never proposed (the rest of the batch goes on).
#[derive(Debug, thiserror::Error)]
pub enum Unforwardable {
    #[error("{bytes} bytes, above PROPOSAL_BYTES_MAX {PROPOSAL_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("a leader-only decision of term {term}: such commands are never forwarded")]
    LeaderOnly { term: u64 },
    /// The state machine refused it (`StateMachine::admit_forwarded`: a body that does not
    /// decode, a decision only a leader makes, an identity its origin could not hold).
    #[error("{0}")]
    Refused(String),
}

/// A write waiting to be ordered: its encoded txn, opaque to consensus (the state machine
/// decodes it when it applies).
#[derive(Debug)]
pub struct Proposal<R> {
    pub body: Vec<u8>,
    pub route: Option<R>,
    /// A decision only this server's current leadership may make (session expiry): it takes
    /// effect only if it commits in the term it was proposed in, never re-sent to a successor.
    pub leader_only: bool,
}

/// The handle every connection uses to propose writes.
pub struct Proposer<R> {
    pub(super) queue: mpsc::Sender<Proposal<R>>,
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

impl<M: StateMachine> Consensus<M> {
    /// Orders this server's proposals: a batch at a time, to the local log when leading,
    /// forwarded in order otherwise. After a failed submit, a change of leader (or term), or a
    /// batch appended here that did not commit, every command not yet applied here goes
    /// again, oldest first, before anything newer, except those whose client connection has
    /// closed (the client was told its connection was lost and may already have read and
    /// written again through another server: ZooKeeper's followers resend nothing):
    /// the state machine skips the copies it already applied, so each write happens once and
    /// a session's writes keep their order. Only when no leader takes them for
    /// LEADER_WAIT_MS_MAX are they abandoned.
    pub(super) async fn order_proposals(
        self: Arc<Self>,
        mut incoming: mpsc::Receiver<Proposal<M::Route>>,
    ) {
        let mut proposals = Vec::with_capacity(PROPOSAL_BATCH_MAX);
        let mut leader_moved = self.leader_moved.subscribe();
        // One connection to the leader, kept across batches (reopened when the leader moves).
        let mut forward: Option<PeerClient> = None;
        // The (leader, term) that holds every command sent so far, if the last submit worked.
        let mut delivered_to: Option<(u64, u64)> = None;
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let retry = tokio::time::sleep(Duration::from_millis(FORWARD_RETRY_MS));
            let fresh = tokio::select! {
                count = incoming.recv_many(&mut proposals, PROPOSAL_BATCH_MAX) => {
                    if count == 0 {
                        return;
                    }
                    self.commands(&mut proposals)
                }
                changed = leader_moved.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    Vec::new()
                }
                () = retry, if failing_since.is_some() => Vec::new(),
                () = self.uncommitted.notified() => {
                    // As a failed submit: everything pending goes again after FORWARD_RETRY_MS.
                    delivered_to = None;
                    failing_since.get_or_insert_with(tokio::time::Instant::now);
                    continue;
                }
            };
            let current = *leader_moved.borrow_and_update();
            let batch = if delivered_to.is_some() && delivered_to == current {
                fresh
            } else {
                let (resend, gone) = self.pending.resendable(|route| self.machine.is_gone(route));
                for route in gone {
                    self.machine
                        .abandon(route, "connection closed before the write was ordered");
                }
                resend
            };
            if batch.is_empty() {
                continue;
            }
            // A leader that stops answering (paused, cut off) is given up as soon as another
            // is known: the batch goes again to that one (copies are skipped at apply).
            let mut moved = leader_moved.clone();
            let submitted = tokio::select! {
                submitted = self.submit(&batch, &mut forward) => submitted,
                _ = moved.changed() => {
                    forward = None;
                    Err(ConsensusError::Leader("the leader changed during the hand-over".into()))
                }
            };
            match submitted {
                Ok(target) => {
                    delivered_to = Some(target);
                    failing_since = None;
                }
                Err(error) => {
                    delivered_to = None;
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= Duration::from_millis(LEADER_WAIT_MS_MAX) {
                        tracing::warn!(%error, "no leader took the pending writes; abandoning them");
                        for route in self.pending.drain() {
                            self.machine
                                .abandon(route, "leader changed while a write was pending");
                        }
                        failing_since = None;
                    } else {
                        tracing::debug!(%error, "writes not delivered yet; will re-send");
                    }
                }
            }
        }
    }

    /// Numbers new proposals and keeps them (with their routes) until applied here.
    pub(super) fn commands(&self, proposals: &mut Vec<Proposal<M::Route>>) -> Vec<Command> {
        let mut commands = Vec::with_capacity(proposals.len());
        for proposal in proposals.drain(..) {
            let body = proposal.body;
            if body.len() > PROPOSAL_BYTES_MAX {
                // The state machine's abandon closes the connection and names its session.
                tracing::warn!(
                    bytes = body.len(),
                    limit = PROPOSAL_BYTES_MAX,
                    "refusing a proposal above PROPOSAL_BYTES_MAX; closing its connection"
                );
                if let Some(route) = proposal.route {
                    self.machine.abandon(route, "request too large for the log");
                }
                continue;
            }
            let term = proposal
                .leader_only
                .then(|| self.raft.metrics().borrow_watched().current_term);
            let command = Command {
                origin: self.my_id,
                boot: self.my_boot,
                seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
                term,
                time_ms: 0,
                body,
            };
            self.pending.insert(&command, proposal.route);
            commands.push(command);
        }
        commands
    }

    /// One attempt to hand a batch to the leader (the local log when leading); returns the
    /// (leader, term) that took it.
    pub(super) async fn submit(
        &self,
        commands: &[Command],
        forward: &mut Option<PeerClient>,
    ) -> Result<(u64, u64), ConsensusError> {
        let (leader, term, address) = self.leadership().ok_or(ConsensusError::NoLeader)?;
        if leader == self.my_id {
            self.append_as_leader(commands.to_vec()).await?;
            return Ok((leader, term));
        }
        // A leader-only decision never goes to another server (it would refuse it): the
        // leadership it was made under is over, so it is dropped here.
        let (commands, leader_only) = forwardable(commands);
        for seq in leader_only {
            tracing::debug!(seq, "dropping a leader-only decision: no longer leading");
            self.pending.take(seq);
        }
        let commands = commands.as_slice();
        if forward.as_ref().map(|client| client.target) != Some(leader) {
            *forward = Some(self.peer_client(leader, address));
        }
        let Some(client) = forward.as_mut() else {
            return Err(ConsensusError::NoLeader);
        };
        for part in forward_parts(commands) {
            let request = PeerRequest::Forward(part.to_vec());
            match client
                .call(&request, Duration::from_millis(LEADER_RPC_TIMEOUT_MS))
                .await
            {
                Ok(PeerResponse::Forwarded) => {}
                Ok(other) => return Err(ConsensusError::Leader(format!("{other:?}"))),
                Err(error) => return Err(ConsensusError::Leader(error.to_string())),
            }
        }
        Ok((leader, term))
    }

    /// Stamps the leader's clock and appends, in order. Returns once the batch is queued in
    /// Raft; the replies come from apply.
    pub(super) async fn append_as_leader(
        &self,
        mut commands: Vec<Command>,
    ) -> Result<(), ConsensusError> {
        let time_ms = self.clock.wall_ms();
        for command in &mut commands {
            command.time_ms = time_ms;
        }
        let results = self
            .raft
            .client_write_many(commands)
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))?;
        let uncommitted = Arc::clone(&self.uncommitted);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut results = results;
            while let Some(result) = results.next().await {
                if let Ok(Err(error)) | Err(error) = result
                    .map_err(|e| e.to_string())
                    .map(|r| r.map_err(|e| e.to_string()))
                {
                    // Re-sent: the copies that did commit are skipped at apply.
                    tracing::info!(%error, "a proposal did not commit under this leader; re-sending what is pending");
                    uncommitted.notify_one();
                    return;
                }
            }
        });
        Ok(())
    }

    /// Whether a command of a follower's forwarded batch may be proposed (see [`Unforwardable`]).
    pub(super) fn admit_forwarded(&self, command: &Command) -> Result<(), Unforwardable> {
        if command.body.len() > PROPOSAL_BYTES_MAX {
            return Err(Unforwardable::TooLarge {
                bytes: command.body.len(),
            });
        }
        if let Some(term) = command.term {
            return Err(Unforwardable::LeaderOnly { term });
        }
        self.machine
            .admit_forwarded(&command.body)
            .map_err(|refusal| Unforwardable::Refused(refusal.to_string()))
    }
}

/// The commands of a batch that may be forwarded to another leader, in order, and the
/// sequence numbers of the leader-only decisions left out.
fn forwardable(commands: &[Command]) -> (Vec<Command>, Vec<u64>) {
    let (leader_only, forwardable): (Vec<&Command>, Vec<&Command>) =
        commands.iter().partition(|command| command.term.is_some());
    (
        forwardable.into_iter().cloned().collect(),
        leader_only.iter().map(|command| command.seq).collect(),
    )
}

/// Splits a batch, in order, into runs of at most FORWARD_BYTES_MAX body bytes (a run holds at
/// least one command; each is at most PROPOSAL_BYTES_MAX).
pub(super) fn forward_parts(commands: &[Command]) -> Vec<&[Command]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (at, command) in commands.iter().enumerate() {
        if at > start && bytes + command.body.len() > FORWARD_BYTES_MAX {
            parts.push(&commands[start..at]);
            start = at;
            bytes = 0;
        }
        bytes += command.body.len();
    }
    if start < commands.len() {
        parts.push(&commands[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_batches_are_split_by_bytes_in_order() {
        let command = |seq: u64, bytes: usize| Command {
            origin: 1,
            boot: 1,
            seq,
            term: None,
            time_ms: 0,
            body: vec![0; bytes],
        };
        let half = FORWARD_BYTES_MAX / 2;
        let commands = [
            command(1, half),
            command(2, half),
            command(3, 1),
            command(4, PROPOSAL_BYTES_MAX),
        ];
        let seqs: Vec<Vec<u64>> = forward_parts(&commands)
            .iter()
            .map(|part| part.iter().map(|c| c.seq).collect())
            .collect();
        assert_eq!(seqs, [vec![1, 2], vec![3, 4]]);
        assert!(forward_parts(&[]).is_empty());
    }

    #[test]
    fn leader_only_decisions_are_never_forwarded() {
        let command = |seq: u64, term: Option<u64>| Command {
            origin: 1,
            boot: 1,
            seq,
            term,
            time_ms: 0,
            body: vec![1],
        };
        let commands = [
            command(1, None),
            command(2, Some(3)),
            command(3, None),
            command(4, Some(3)),
        ];
        let (kept, dropped) = forwardable(&commands);
        let kept: Vec<u64> = kept.iter().map(|c| c.seq).collect();
        assert_eq!(kept, [1, 3], "the rest go in order");
        assert_eq!(dropped, [2, 4]);
    }
}
