//! Whether this server serves clients: it knows a leader and has applied an entry of its
//! term; a leader holds its lease; a follower has caught up with its leader once and hears
//! from it within syncLimit ticks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::{ReadPolicy, ServerState};
use tokio::sync::watch;

use super::{failover, types, Consensus, StateMachine};

/// Whether this server has applied an entry of `term` (every new leader's first entry is one):
/// then everything the leaders before it committed is applied here too.
pub(super) fn applied_this_term(last_applied: Option<&types::LogId>, term: u64) -> bool {
    last_applied.is_some_and(|applied| applied.leader_id.term >= term)
}

/// Whether this server has applied everything the leader reported committed.
pub(super) fn applied_cluster_commit(
    last_applied: Option<&types::LogId>,
    cluster_committed: Option<&types::LogId>,
) -> bool {
    match (last_applied, cluster_committed) {
        (Some(applied), Some(committed)) => applied.index >= committed.index,
        _ => false,
    }
}

impl<M: StateMachine> Consensus<M> {
    /// Whether this server can serve clients now.
    pub fn is_serving(&self) -> bool {
        *self.serving.borrow() && !self.fatal.is_raised()
    }

    /// Follows [`Consensus::is_serving`] as it changes.
    pub fn serving(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    /// Recomputes `serving` from the leader this server knows and, when it leads, whether its
    /// lease (a quorum's acknowledgement within election_timeout_max) still holds.
    pub(super) async fn refresh_serving(&self) {
        let starved = self.serving_check_was_late();
        let (leader, state, member, caught_up, term, at_cluster_commit) = {
            let receiver = self.raft.metrics();
            let metrics = receiver.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                metrics.current_leader,
                metrics.state,
                membership.get_node(&self.my_id).is_some(),
                applied_this_term(metrics.last_applied.as_ref(), metrics.current_term),
                metrics.current_term,
                applied_cluster_commit(
                    metrics.last_applied.as_ref(),
                    metrics.cluster_committed.as_ref(),
                ),
            )
        };
        let serving = match (leader, state) {
            (None, _) => false,
            // Not (or no longer) a member: a joiner not yet added, or a server a reconfig
            // removed, serves no clients.
            _ if !member && !self.standalone => false,
            // Entries of an earlier term that the new leader's first entry commits (a write
            // the old leader took but never answered) must be in the tree before anyone reads
            // it or resumes a session here: else a client that lost its connection with the
            // old leader reads the old value, retries, and its first write lands after all.
            // ZooKeeper's followers likewise serve only once synced with the new leader.
            _ if !caught_up => false,
            (Some(_), ServerState::Leader) if !self.standalone => self
                .raft
                .get_read_linearizer(ReadPolicy::LeaseRead)
                .await
                .is_ok(),
            (Some(_), ServerState::Leader) => true,
            // A follower (or observer) that restarted, or follows a new leader, serves once it
            // has applied what that leader had committed: ZooKeeper's follower likewise syncs
            // with its leader before it takes clients. Otherwise it would serve a state older
            // than its peers' (a session moving to it could see a watch event again).
            (Some(leader), _) if !self.synced_with(leader, term, at_cluster_commit) => false,
            // A follower (or observer) serves while it hears from its leader: cut off for
            // syncLimit × tickTime, its reads would go stale and its sessions could not be
            // kept, so it stops, as ZooKeeper's does. Not heard from since start: not yet.
            (Some(leader), _) => match self.silence_ms(leader) {
                Some(ms) if ms < self.silence_limit_ms => true,
                // A check that ran late (this process was starved of CPU) decides nothing:
                // the leader's heartbeats may be waiting unread in this server's socket.
                Some(_) if starved => *self.serving.borrow(),
                _ => false,
            },
        };
        self.serving.send_if_modified(|current| {
            let changed = *current != serving;
            *current = serving;
            changed
        });
    }

    /// Whether this follower has caught up with `leader` in `term`: it has, from the first
    /// check that finds it at the leader's reported commit, until the leader or term changes
    /// (later lag behind a busy leader does not stop it serving, as in ZooKeeper).
    fn synced_with(&self, leader: u64, term: u64, at_cluster_commit: bool) -> bool {
        let Ok(mut synced) = self.synced_with.lock() else {
            return false;
        };
        if *synced == Some((leader, term)) {
            return true;
        }
        if at_cluster_commit {
            *synced = Some((leader, term));
        }
        at_cluster_commit
    }

    /// Whether this check comes much later than the heartbeat the checks run at (this
    /// process was starved of CPU); notes when it ran.
    pub(super) fn serving_check_was_late(&self) -> bool {
        let now = self.clock.monotonic_ms();
        let previous = self.serving_checked_ms.swap(now, Ordering::Relaxed);
        now.saturating_sub(previous) > self.heartbeat_ms * failover::SILENCE_CHECK_LATE_FACTOR
    }

    /// Re-checks the leader's lease every heartbeat: metrics do not change when acks stop.
    pub(super) async fn watch_quorum(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(Duration::from_millis(self.heartbeat_ms.max(10)));
        loop {
            tokio::select! {
                _ = interval.tick() => self.refresh_serving().await,
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_only_after_applying_an_entry_of_the_current_term() {
        let applied = |term, index| types::LogId::new_term_index(term, index);
        assert!(!applied_this_term(None, 1));
        // The old term's entries are applied, the new leader's first entry is not yet.
        assert!(!applied_this_term(Some(&applied(3, 40)), 4));
        assert!(applied_this_term(Some(&applied(4, 41)), 4));
        assert!(applied_this_term(Some(&applied(4, 41)), 3));
    }

    #[test]
    fn a_follower_is_caught_up_once_it_applied_the_leaders_commit() {
        let id = |term, index| types::LogId::new_term_index(term, index);
        assert!(!applied_cluster_commit(None, None));
        assert!(!applied_cluster_commit(Some(&id(2, 9)), None));
        assert!(!applied_cluster_commit(None, Some(&id(2, 9))));
        assert!(!applied_cluster_commit(Some(&id(2, 8)), Some(&id(2, 9))));
        assert!(applied_cluster_commit(Some(&id(2, 9)), Some(&id(2, 9))));
        assert!(applied_cluster_commit(Some(&id(2, 10)), Some(&id(2, 9))));
    }
}
