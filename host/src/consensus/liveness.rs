//! Session liveness: a follower notes which sessions showed life on it and relays them to
//! the leader, whose session tracker decides expiry.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::network::PeerRequest;
use super::{Consensus, StateMachine};
use crate::proto::SessionId;

impl<M: StateMachine> Consensus<M> {
    /// Notes that a session showed life here; followers relay these to the leader.
    pub fn touch(&self, session_id: SessionId) {
        if !self.standalone && !self.fatal.is_raised() {
            if let Ok(mut touched) = self.touched.lock() {
                touched.insert(session_id);
            }
        }
    }

    /// Followers tell the leader, every half tick, which sessions showed life here.
    pub(super) async fn relay_touches(
        self: Arc<Self>,
        tick_ms: u64,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut interval = tokio::time::interval(Duration::from_millis((tick_ms / 2).max(10)));
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop.changed() => return,
            }
            let sessions: Vec<SessionId> = match self.touched.lock() {
                Ok(mut touched) => touched.drain().collect(),
                Err(_) => return,
            };
            // On the leader the connections touched its tracker themselves: nothing to relay.
            // A failing server relays nothing: its clients' sessions must be able to expire.
            if sessions.is_empty() || self.is_leader() || self.fatal.is_raised() {
                continue;
            }
            if let Some((leader, address)) = self.leader() {
                let mut client = self.peer_client(leader, address);
                let timeout = Duration::from_millis(tick_ms.max(100));
                if let Err(error) = client.call(&PeerRequest::Touch(sessions), timeout).await {
                    tracing::debug!(%error, "could not relay session liveness to the leader");
                }
            }
        }
    }
}
