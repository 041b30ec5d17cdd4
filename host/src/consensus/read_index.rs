//! `sync`: a read-index round with the leader, then waiting to apply up to it, so that
//! sync-then-read is linearizable.

use std::time::Duration;

use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ReadPolicy;

use super::network::{PeerRequest, PeerResponse};
use super::{Consensus, ConsensusError, StateMachine};
use super::{LEADER_RPC_TIMEOUT_MS, LEADER_WAIT_MS_MAX, READ_INDEX_WAIT_MS_MAX};

impl<M: StateMachine> Consensus<M> {
    /// Makes this server's tree at least as new as the leader's commit point when `sync` was
    /// asked (a read-index round), so sync-then-read is linearizable.
    pub async fn sync(&self) -> Result<(), ConsensusError> {
        let index = if self.is_leader() {
            self.raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map_err(|error| ConsensusError::Raft(error.to_string()))?
                .index()
        } else {
            match self.call_leader(&PeerRequest::ReadIndex).await? {
                PeerResponse::ReadIndex(index) => index,
                other => return Err(ConsensusError::Leader(format!("{other:?}"))),
            }
        };
        let mut applied = self.applied_index.clone();
        let caught_up = tokio::time::timeout(
            Duration::from_millis(READ_INDEX_WAIT_MS_MAX),
            applied.wait_for(|applied| *applied >= index),
        )
        .await
        .map(|waited| waited.is_ok());
        match caught_up {
            Ok(true) => Ok(()),
            Ok(false) => Err(ConsensusError::Shutdown),
            Err(_) => Err(ConsensusError::Leader(
                "did not catch up with the read index".into(),
            )),
        }
    }

    pub(super) async fn call_leader(
        &self,
        request: &PeerRequest,
    ) -> Result<PeerResponse, ConsensusError> {
        let (leader, address) = self.wait_for_leader().await?;
        let mut client = self.peer_client(leader, address);
        client
            .call(request, Duration::from_millis(LEADER_RPC_TIMEOUT_MS))
            .await
            .map_err(|error| ConsensusError::Leader(error.to_string()))
    }

    pub(super) async fn wait_for_leader(&self) -> Result<(u64, String), ConsensusError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(LEADER_WAIT_MS_MAX);
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
            {
                return Err(ConsensusError::NoLeader);
            }
        }
    }
}
