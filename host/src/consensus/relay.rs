//! A message from this server to its leader that consensus carries without reading it (the
//! server relays session liveness this way: a follower's clients' sessions are kept alive by
//! the leader's tracker). The leader hands it to its state machine
//! ([`super::StateMachine::relayed`]).

use std::time::Duration;

use super::network::{PeerRequest, PeerResponse};
use super::{Consensus, ConsensusError, StateMachine};

impl<M: StateMachine> Consensus<M> {
    /// Sends `body` to the leader this server knows, within `timeout`.
    pub async fn relay_to_leader(
        &self,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(), ConsensusError> {
        let (leader, address) = self.leader().ok_or(ConsensusError::NoLeader)?;
        // One connection to the leader, kept across relays (reopened when the leader moves;
        // `PeerClient` itself reopens it after an error or a long idle).
        let mut held = self.relay_client.lock().await;
        if held.as_ref().map(|client| client.target) != Some(leader) {
            *held = Some(self.peer_client(leader, address));
        }
        let Some(client) = held.as_mut() else {
            return Err(ConsensusError::NoLeader);
        };
        match client.call(&PeerRequest::Relay(body), timeout).await {
            Ok(PeerResponse::Relayed) => Ok(()),
            Ok(other) => Err(ConsensusError::Leader(format!("{other:?}"))),
            Err(error) => Err(ConsensusError::Leader(error.to_string())),
        }
    }
}
