//! What this server does, logged once per change: serving as leader, follower, observer or
//! standalone, or not serving (no quorum: an election runs). While it does not serve, a
//! summary every [`NOT_SERVING_SUMMARY_TICKS`] ticks (a minute at tickTime 2000) says for how
//! long, the term, and which peers it cannot reach. openraft's own per-round lines (election timeouts, vote errors) are filtered
//! out of the default log (see `cli::daemon`); this is what replaces them.

use std::sync::Arc;
use std::time::Duration;

use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ServerState;
use tokio::sync::watch;

use super::{Consensus, StateMachine};

/// How often a server that does not serve says so again, in ticks (like every timeout, it
/// scales with tickTime).
pub const NOT_SERVING_SUMMARY_TICKS: u64 = 30;

/// What a server does, as the log reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Standalone,
    Leading,
    Following {
        leader: u64,
    },
    Observing {
        leader: u64,
    },
    /// No quorum: an election runs (or this server is not yet a member).
    NotServing,
}

impl<M: StateMachine> Consensus<M> {
    /// Runs until `stop`: one line per [`Role`] change, a summary while not serving.
    pub(super) async fn report_role(
        self: Arc<Self>,
        tick_ms: u64,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut metrics = self.raft.metrics();
        let mut serving = self.serving();
        // A standalone server elects itself at once: its start is no election to report.
        let mut reported = self.standalone.then_some(Role::NotServing);
        let mut not_serving_since = tokio::time::Instant::now();
        let period = Duration::from_millis(tick_ms.max(1) * NOT_SERVING_SUMMARY_TICKS);
        let mut summary = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            // Shutting down (`stop` is set before Raft stops): the roles Raft passes through
            // on its way out are no news.
            if *stop.borrow() {
                return;
            }
            let role = self.role();
            if reported != Some(role) {
                if role == Role::NotServing {
                    not_serving_since = tokio::time::Instant::now();
                    summary.reset();
                }
                self.log_role(role);
                reported = Some(role);
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                changed = serving.changed() => if changed.is_err() { return },
                _ = summary.tick() => if role == Role::NotServing {
                    self.log_not_serving(Some(not_serving_since.elapsed()));
                },
                _ = stop.changed() => return,
            }
        }
    }

    fn role(&self) -> Role {
        if !self.is_serving() {
            return Role::NotServing;
        }
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        // The serving flag trails the metrics by a moment: a follower that knows no other
        // leader, or a candidate, is already electing.
        let leader = metrics
            .current_leader
            .filter(|&leader| leader != self.my_id);
        match (metrics.state, leader) {
            _ if self.standalone => Role::Standalone,
            (ServerState::Leader, _) => Role::Leading,
            (ServerState::Learner, Some(leader)) => Role::Observing { leader },
            (ServerState::Follower, Some(leader)) => Role::Following { leader },
            (ServerState::Learner | ServerState::Follower, None)
            | (ServerState::Candidate | ServerState::Shutdown, _) => Role::NotServing,
        }
    }

    /// One line per role change, with the term and the zxid applied here when it changed.
    fn log_role(&self, role: Role) {
        let (term, zxid) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow_watched();
            (
                metrics.current_term,
                metrics.last_applied.map_or(0, |id| id.index),
            )
        };
        match role {
            Role::Standalone => tracing::info!(mode = "standalone", zxid, "serving"),
            Role::Leading => tracing::info!(mode = "leader", term, zxid, "serving: leading"),
            Role::Following { leader } => {
                tracing::info!(
                    mode = "follower",
                    leader,
                    term,
                    zxid,
                    "serving: following server.{leader}"
                );
            }
            Role::Observing { leader } => {
                tracing::info!(
                    mode = "observer",
                    leader,
                    term,
                    zxid,
                    "serving: observing server.{leader}"
                );
            }
            Role::NotServing => self.log_not_serving(None),
        }
    }

    /// "Not serving", with the term and the peers out of reach; `for_how_long` in a summary.
    fn log_not_serving(&self, for_how_long: Option<Duration>) {
        let term = self.raft.metrics().borrow_watched().current_term;
        let unreachable: Vec<String> = self
            .peer_settings
            .reachability
            .unreachable()
            .iter()
            .map(|id| format!("server.{id}"))
            .collect();
        let unreachable = unreachable.join(", ");
        match for_how_long {
            // At start no peer has been tried yet: nothing to name.
            None if unreachable.is_empty() => {
                tracing::info!(term, "not serving: no quorum; electing a leader");
            }
            None => tracing::info!(
                term,
                unreachable = %unreachable,
                "not serving: no quorum; electing a leader"
            ),
            Some(elapsed) => tracing::warn!(
                term,
                unreachable = %unreachable,
                not_serving_s = elapsed.as_secs(),
                "still not serving: no quorum"
            ),
        }
    }
}
