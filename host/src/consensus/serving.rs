//! Whether this server serves clients: it knows a leader and has applied an entry of its
//! term; a leader holds its lease; a follower has synced with its leader ([`SyncGate`]) and
//! hears from it within syncLimit ticks.

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

/// A follower's sync with its leader, as ZooKeeper's follower syncs before it serves: on first
/// hearing of a (leader, term) it takes what that leader reports committed as its target, and
/// is synced once it has applied that far. The target does not move, so a follower that keeps
/// a little behind a busy leader still gets there; a new leader or term starts over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum SyncGate {
    #[default]
    Unsynced,
    Catching {
        leader: u64,
        term: u64,
        index: u64,
    },
    Synced {
        leader: u64,
        term: u64,
    },
}

impl SyncGate {
    /// Whether this follower is synced with `leader` in `term`, given the index it has applied
    /// and the one the leader reports committed.
    pub(super) fn observe(
        &mut self,
        leader: u64,
        term: u64,
        applied: Option<u64>,
        committed: Option<u64>,
    ) -> bool {
        let target = match *self {
            SyncGate::Synced { leader: l, term: t } if (l, t) == (leader, term) => return true,
            SyncGate::Catching {
                leader: l,
                term: t,
                index,
            } if (l, t) == (leader, term) => index,
            _ => match committed {
                Some(index) => index,
                None => {
                    *self = SyncGate::Unsynced;
                    return false;
                }
            },
        };
        let synced = applied.is_some_and(|applied| applied >= target);
        *self = if synced {
            SyncGate::Synced { leader, term }
        } else {
            SyncGate::Catching {
                leader,
                term,
                index: target,
            }
        };
        synced
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
        let (leader, state, member, caught_up, term, applied, committed) = {
            let receiver = self.raft.metrics();
            let metrics = receiver.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                metrics.current_leader,
                metrics.state,
                membership.get_node(&self.my_id).is_some(),
                applied_this_term(metrics.last_applied.as_ref(), metrics.current_term),
                metrics.current_term,
                metrics.last_applied.as_ref().map(|id| id.index),
                metrics.cluster_committed.as_ref().map(|id| id.index),
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
            (Some(leader), _) if !self.synced_with(leader, term, applied, committed) => false,
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

    /// Whether this follower has synced with `leader` in `term` ([`SyncGate`]).
    fn synced_with(
        &self,
        leader: u64,
        term: u64,
        applied: Option<u64>,
        committed: Option<u64>,
    ) -> bool {
        match self.sync_gate.lock() {
            Ok(mut gate) => gate.observe(leader, term, applied, committed),
            Err(_) => false,
        }
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
    fn a_follower_syncs_to_what_its_leader_had_committed_when_first_heard() {
        let mut gate = SyncGate::default();
        // No commit reported yet: not synced.
        assert!(!gate.observe(1, 5, Some(3), None));
        // Leader 1 in term 5 reports 10 committed: the target is 10, however far it moves.
        assert!(!gate.observe(1, 5, Some(3), Some(10)));
        assert!(!gate.observe(1, 5, Some(9), Some(40)));
        assert!(gate.observe(1, 5, Some(10), Some(80)));
        // Synced stays synced behind a busy leader.
        assert!(gate.observe(1, 5, Some(11), Some(120)));
        // A new term (or leader) starts over from its commit.
        assert!(!gate.observe(2, 6, Some(120), Some(130)));
        assert!(gate.observe(2, 6, Some(130), Some(150)));
        assert!(!gate.observe(3, 6, Some(150), Some(151)));
        assert!(gate.observe(3, 6, Some(151), Some(151)));
    }
}
