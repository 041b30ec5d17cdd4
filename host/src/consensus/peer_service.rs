//! What this server answers on the quorum port: Raft's RPCs, forwarded writes, session
//! liveness, membership questions and changes, read indexes.

use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ReadPolicy;

use super::network::{PeerRequest, PeerResponse};
use super::{Consensus, StateMachine};

impl<M: StateMachine> Consensus<M> {
    pub(super) async fn handle_peer(&self, request: PeerRequest) -> PeerResponse {
        let failed = |error: &dyn std::fmt::Display| PeerResponse::Failed(error.to_string());
        match request {
            PeerRequest::AppendEntries(rpc) => {
                if rpc.vote.committed {
                    self.heard_from(rpc.vote.leader_id.voted_for);
                }
                self.raft
                    .append_entries(rpc)
                    .await
                    .map_or_else(|e| failed(&e), PeerResponse::AppendEntries)
            }
            PeerRequest::Vote(rpc) => self
                .raft
                .vote(rpc)
                .await
                .map_or_else(|e| failed(&e), PeerResponse::Vote),
            PeerRequest::PreVote(rpc) => self
                .raft
                .pre_vote(rpc)
                .await
                .map_or_else(|e| failed(&e), PeerResponse::Vote),
            PeerRequest::Snapshot { vote, meta, data } => {
                // A leader sending a snapshot is alive, however long the transfer took.
                if vote.committed {
                    self.heard_from(vote.leader_id.voted_for);
                }
                let snapshot = openraft::Snapshot {
                    meta,
                    snapshot: data,
                };
                self.raft
                    .install_full_snapshot(vote, snapshot)
                    .await
                    .map_or_else(|e| failed(&e), PeerResponse::Snapshot)
            }
            PeerRequest::TransferLeader(rpc) => self
                .raft
                .handle_transfer_leader(rpc)
                .await
                .map_or_else(|e| failed(&e), PeerResponse::TransferLeader),
            PeerRequest::Forward(mut commands) => {
                if !self.is_leader() {
                    return PeerResponse::NotLeader(
                        self.raft.metrics().borrow_watched().current_leader,
                    );
                }
                commands.retain(|command| match self.admit_forwarded(command) {
                    Ok(()) => true,
                    Err(reason) => {
                        tracing::error!(
                            origin = command.origin,
                            seq = command.seq,
                            %reason,
                            "dropping a forwarded command"
                        );
                        false
                    }
                });
                match self.append_as_leader(commands).await {
                    Ok(()) => PeerResponse::Forwarded,
                    Err(error) => failed(&error),
                }
            }
            PeerRequest::Relay(body) => {
                self.machine.relayed(&body);
                PeerResponse::Relayed
            }
            PeerRequest::Reconfigure { edit, expected } => {
                PeerResponse::Reconfigured(self.reconfigure_as_leader(edit, expected).await)
            }
            PeerRequest::CheckReconfigure { edit, expected } => PeerResponse::Reconfigured(
                self.check_reconfigure_as_leader(edit.as_ref(), expected),
            ),
            PeerRequest::Membership { asker } => {
                let initialized = self.raft.is_initialized().await.unwrap_or(false);
                let view = self.membership();
                PeerResponse::Membership(initialized.then(|| (view.contains(asker), view.version)))
            }
            PeerRequest::HoldLeader { term } => self.hold_as_leader(term).await,
            PeerRequest::ReadIndex => {
                if !self.is_leader() {
                    return PeerResponse::NotLeader(
                        self.raft.metrics().borrow_watched().current_leader,
                    );
                }
                match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                    Ok(read) => PeerResponse::ReadIndex(read.index()),
                    Err(error) => failed(&error),
                }
            }
        }
    }
}
