//! Membership changes: ZooKeeper's dynamic reconfig mapped onto Raft.
//!
//! Each member is a Raft node whose `BasicNode::addr` holds its ZooKeeper server spec
//! (`host:quorumPort:electionPort[;clientAddress:clientPort]`, no role): participants are
//! voters, observers learners. The config version ZooKeeper calls `version=` is the log index
//! of the membership entry in effect (0 for the initial one every voter writes at index 0),
//! so every server derives the same version from the same log.
//!
//! A change runs on the leader, one at a time: new or re-addressed members join as learners;
//! a quorum of the new voters must hold the log within initLimit ticks (else NoQuorum and the
//! learners just added are dropped again); then one joint-consensus change moves the voters
//! and drops the leaving members. Servers that are not leading forward the request.
//! zoo.cfg only seeds the first membership: afterwards the replicated one (in the log and in
//! snapshots) is authoritative, as ZooKeeper's dynamic config file is.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::impls::BasicNode;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::{ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};

use super::network::{PeerClient, PeerRequest, PeerResponse};
use super::{Consensus, StateMachine};

/// Extra time a follower gives the leader, beyond the sync wait, to answer a forwarded change.
pub const RECONFIG_FORWARD_MARGIN_MS: u64 = 5_000;
/// How often the leader looks at replication progress while new voters catch up.
pub const RECONFIG_POLL_MS: u64 = 20;

/// The membership in effect on this server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// ZooKeeper's config version: the log index of the membership entry.
    pub version: u64,
    /// Voter id -> server spec.
    pub voters: BTreeMap<u64, String>,
    /// Learner (observer) id -> server spec.
    pub learners: BTreeMap<u64, String>,
    /// Committed and not a joint configuration: another change may start.
    pub settled: bool,
    /// A reconfig made this membership (its specs carry roles; see [`with_role`]): zoo.cfg no
    /// longer describes the ensemble.
    pub reconfigured: bool,
}

impl MembershipView {
    pub fn contains(&self, id: u64) -> bool {
        self.voters.contains_key(&id) || self.learners.contains_key(&id)
    }

    fn nodes(&self) -> BTreeMap<u64, String> {
        let mut nodes = self.voters.clone();
        nodes.extend(self.learners.clone());
        nodes
    }
}

/// One server a reconfig adds (or re-addresses).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joiner {
    pub id: u64,
    pub spec: String,
    pub observer: bool,
}

/// A `reconfig` request, parsed: incremental (joining + leaving) or the whole new membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipEdit {
    /// `newMembers` was given: `joining` is the whole membership and `leaving` is ignored.
    pub replace_all: bool,
    pub joining: Vec<Joiner>,
    pub leaving: Vec<u64>,
}

/// Why a membership change did not happen (ZooKeeper's error for each is noted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReconfigError {
    /// ReconfigInProgress.
    #[error("another membership change is in progress")]
    InProgress,
    /// BadVersion.
    #[error("config version {expected:x} is not the current {current:x}")]
    BadVersion { expected: u64, current: u64 },
    /// NewConfigNoQuorum.
    #[error("no quorum of the new configuration is connected and synced")]
    NoQuorum,
    /// BadArguments.
    #[error("{0}")]
    BadArguments(String),
    /// The leader went away or Raft refused: the client's request fails (ConnectionLoss).
    #[error("membership change failed: {0}")]
    Failed(String),
}

/// The `host:quorumPort` part of a server spec (older logs hold only that).
pub fn quorum_address(spec: &str) -> String {
    let server = spec.split(';').next().unwrap_or(spec);
    let port_start = if server.starts_with('[') {
        server.find("]:").map(|at| at + 2)
    } else {
        server.find(':').map(|at| at + 1)
    };
    let Some(start) = port_start else {
        return server.to_owned();
    };
    let end = server[start..]
        .find(':')
        .map_or(server.len(), |at| start + at);
    server[..end].to_owned()
}

/// `spec` with its role after the election port, as a reconfig stores it: the mark that
/// tells every later leader a reconfig happened (zoo.cfg's members are stored without one).
pub fn with_role(spec: &str, observer: bool) -> String {
    let role = if observer { "observer" } else { "participant" };
    match split_role(spec) {
        (server, Some(client)) => format!("{server}:{role};{client}"),
        (server, None) => format!("{server}:{role}"),
    }
}

/// `spec` without the role [`with_role`] adds.
fn without_role(spec: &str) -> String {
    match split_role(spec) {
        (server, Some(client)) => format!("{server};{client}"),
        (server, None) => server.to_owned(),
    }
}

/// The server part of `spec` without any role, and its client part (after `;`).
fn split_role(spec: &str) -> (&str, Option<&str>) {
    let (server, client) = match spec.split_once(';') {
        Some((server, client)) => (server, Some(client)),
        None => (spec, None),
    };
    let server = server
        .strip_suffix(":participant")
        .or_else(|| server.strip_suffix(":observer"))
        .unwrap_or(server);
    (server, client)
}

fn has_role(spec: &str) -> bool {
    let server = spec.split(';').next().unwrap_or(spec);
    server.ends_with(":participant") || server.ends_with(":observer")
}

/// The membership `edit` asks for, from `view`: (every member with its spec, the voters).
pub fn target(
    view: &MembershipView,
    edit: &MembershipEdit,
) -> Result<(BTreeMap<u64, String>, BTreeSet<u64>), ReconfigError> {
    let mut observers: BTreeSet<u64> = view.learners.keys().copied().collect();
    let mut nodes = if edit.replace_all {
        observers.clear();
        BTreeMap::new()
    } else {
        let mut nodes = view.nodes();
        for id in &edit.leaving {
            nodes.remove(id);
            observers.remove(id);
        }
        nodes
    };
    for joiner in &edit.joining {
        nodes.insert(joiner.id, joiner.spec.clone());
        if joiner.observer {
            observers.insert(joiner.id);
        } else {
            observers.remove(&joiner.id);
        }
    }
    let voters: BTreeSet<u64> = nodes
        .keys()
        .filter(|id| !observers.contains(id))
        .copied()
        .collect();
    for (id, spec) in nodes.iter_mut() {
        *spec = with_role(spec, observers.contains(id));
    }
    if voters.is_empty() {
        return Err(ReconfigError::BadArguments(
            "Reconfig failed - new configuration must include at least 1 follower".into(),
        ));
    }
    Ok((nodes, voters))
}

/// Sends a reconfig request (or its checks) to the leader; its answer, or why there is none.
async fn ask_leader(
    mut client: PeerClient,
    request: &PeerRequest,
    timeout: Duration,
) -> Result<u64, ReconfigError> {
    match client.call(request, timeout).await {
        Ok(PeerResponse::Reconfigured(result)) => result,
        Ok(other) => Err(failed(format!("the leader answered {other:?}"))),
        Err(error) => Err(failed(error)),
    }
}

fn failed(error: impl std::fmt::Display) -> ReconfigError {
    ReconfigError::Failed(error.to_string())
}

fn basic(nodes: BTreeMap<u64, String>) -> BTreeMap<u64, BasicNode> {
    nodes
        .into_iter()
        .map(|(id, addr)| (id, BasicNode { addr }))
        .collect()
}

impl<M: StateMachine> Consensus<M> {
    /// The membership in effect here (possibly not yet committed).
    pub fn membership(&self) -> MembershipView {
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        let stored = &metrics.membership_config;
        let membership = stored.membership();
        let spec = |id: u64| {
            membership
                .get_node(&id)
                .map(|node| node.addr.clone())
                .unwrap_or_default()
        };
        let settled = membership.get_joint_config().len() == 1
            && stored.log_id() == metrics.committed_membership_config.log_id();
        let reconfigured = membership.nodes().any(|(_, node)| has_role(&node.addr));
        MembershipView {
            reconfigured,
            version: stored.log_id().as_ref().map_or(0, |id| id.index),
            voters: membership.voter_ids().map(|id| (id, spec(id))).collect(),
            learners: membership.learner_ids().map(|id| (id, spec(id))).collect(),
            settled,
        }
    }

    /// Applies `edit` (on the leader, forwarding when another server leads); `expected` is the
    /// client's curConfigId (None = any). Returns the new config version.
    pub async fn reconfigure(
        &self,
        edit: MembershipEdit,
        expected: Option<u64>,
    ) -> Result<u64, ReconfigError> {
        let (leader, address) = self.wait_for_leader().await.map_err(failed)?;
        if leader == self.my_id {
            return self.reconfigure_as_leader(edit, expected).await;
        }
        // Up to four bounded steps (learners, catch-up, voters, demoted leavers) run there.
        let timeout = Duration::from_millis(self.reconfig_sync_ms * 4 + RECONFIG_FORWARD_MARGIN_MS);
        let request = PeerRequest::Reconfigure { edit, expected };
        ask_leader(self.peer_client(leader, address), &request, timeout).await
    }

    /// The leader's checks of a change it will not run, in ZooKeeper's order: another change
    /// running (InProgress), `expected` (BadVersion), then, when `edit` parsed, the new voters
    /// (BadArguments). Ok is the current version. A requester that refuses the change itself
    /// (malformed, or a caller without WRITE on the config node) asks this first, since
    /// ZooKeeper answers these errors before its own.
    pub async fn check_reconfigure(
        &self,
        edit: Option<MembershipEdit>,
        expected: Option<u64>,
    ) -> Result<u64, ReconfigError> {
        let (leader, address) = self.wait_for_leader().await.map_err(failed)?;
        if leader == self.my_id {
            return self.check_reconfigure_as_leader(edit.as_ref(), expected);
        }
        let timeout = Duration::from_millis(RECONFIG_FORWARD_MARGIN_MS);
        let request = PeerRequest::CheckReconfigure { edit, expected };
        ask_leader(self.peer_client(leader, address), &request, timeout).await
    }

    /// [`Consensus::check_reconfigure`] on the leader.
    pub(super) fn check_reconfigure_as_leader(
        &self,
        edit: Option<&MembershipEdit>,
        expected: Option<u64>,
    ) -> Result<u64, ReconfigError> {
        let (_running, view) = self.begin_change(expected)?;
        if let Some(edit) = edit {
            target(&view, edit)?;
        }
        Ok(view.version)
    }

    /// Holds `reconfiguring` (another change running is InProgress) and checks the view.
    fn begin_change(
        &self,
        expected: Option<u64>,
    ) -> Result<(tokio::sync::MutexGuard<'_, ()>, MembershipView), ReconfigError> {
        let running = self
            .reconfiguring
            .try_lock()
            .map_err(|_| ReconfigError::InProgress)?;
        Ok((running, self.checked_view(expected)?))
    }

    /// The membership in effect, once this server leads, no change is running and `expected`
    /// (the client's curConfigId; None = any) names it. Call with `reconfiguring` held.
    fn checked_view(&self, expected: Option<u64>) -> Result<MembershipView, ReconfigError> {
        if self.raft.metrics().borrow_watched().state != ServerState::Leader {
            return Err(failed("this server no longer leads"));
        }
        let view = self.membership();
        if !view.settled {
            return Err(ReconfigError::InProgress);
        }
        if let Some(expected) = expected.filter(|expected| *expected != view.version) {
            return Err(ReconfigError::BadVersion {
                expected,
                current: view.version,
            });
        }
        Ok(view)
    }

    /// The change itself, on the leader (see the module notes for the steps).
    pub(super) async fn reconfigure_as_leader(
        &self,
        edit: MembershipEdit,
        expected: Option<u64>,
    ) -> Result<u64, ReconfigError> {
        let (_running, view) = self.begin_change(expected)?;
        let (nodes, voters) = target(&view, &edit)?;
        let current = view.nodes();
        // Unmarked: a change that fails at the next step leaves no reconfig mark behind.
        let added: BTreeMap<u64, String> = nodes
            .iter()
            .map(|(id, spec)| (*id, without_role(spec)))
            .filter(|(id, spec)| {
                current.get(id).map(|old| without_role(old)).as_ref() != Some(spec)
            })
            .collect();
        if !added.is_empty() {
            self.change(ChangeMembers::SetNodes(basic(added.clone())), true)
                .await?;
        }
        if !self.wait_quorum_synced(&voters).await {
            let fresh: BTreeSet<u64> = added
                .keys()
                .filter(|id| !current.contains_key(id))
                .copied()
                .collect();
            if !fresh.is_empty() {
                if let Err(error) = self.change(ChangeMembers::RemoveNodes(fresh), true).await {
                    tracing::warn!(%error, "could not drop the learners of a failed reconfig");
                }
            }
            return Err(ReconfigError::NoQuorum);
        }
        self.move_voters(&view, &nodes, voters).await
    }

    /// The joint-consensus step: voters become `voters`, members not in `nodes` leave.
    async fn move_voters(
        &self,
        view: &MembershipView,
        nodes: &BTreeMap<u64, String>,
        voters: BTreeSet<u64>,
    ) -> Result<u64, ReconfigError> {
        let leaving_learners: BTreeSet<u64> = view
            .learners
            .keys()
            .filter(|id| !nodes.contains_key(id))
            .copied()
            .collect();
        let leaving_voters: BTreeSet<u64> = view
            .voters
            .keys()
            .filter(|id| !nodes.contains_key(id))
            .copied()
            .collect();
        // A participant that becomes an observer must stay a learner: retain old voters, then
        // drop the ones that leave in a second (learner-only) change.
        let demoted = view
            .voters
            .keys()
            .any(|id| nodes.contains_key(id) && !voters.contains(id));
        // Every member's spec is re-stored with its role in the same change: the mark that a
        // reconfig happened (see `with_role`) commits with the new voters.
        let change = ChangeMembers::Batch(vec![
            ChangeMembers::SetNodes(basic(nodes.clone())),
            ChangeMembers::RemoveNodes(leaving_learners),
            ChangeMembers::ReplaceAllVoters(voters),
        ]);
        let mut version = self.change(change, demoted).await?;
        if demoted && !leaving_voters.is_empty() {
            version = self
                .change(ChangeMembers::RemoveNodes(leaving_voters), true)
                .await?;
        }
        tracing::info!(version, "membership changed");
        Ok(version)
    }

    /// Whether a majority of `voters` (the leader counts) holds the log as of now, waiting up
    /// to initLimit ticks for new members to catch up.
    async fn wait_quorum_synced(&self, voters: &BTreeSet<u64>) -> bool {
        let goal = self.raft.metrics().borrow_watched().last_log_index;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.reconfig_sync_ms);
        loop {
            let synced = {
                let receiver = self.raft.metrics();
                let metrics = receiver.borrow_watched();
                let matched = |id: &u64| {
                    *id == self.my_id
                        || metrics.replication.as_ref().is_some_and(|replication| {
                            replication
                                .get(id)
                                .is_some_and(|matched| matched.as_ref().map(|m| m.index) >= goal)
                        })
                };
                voters.iter().filter(|id| matched(id)).count()
            };
            if synced * 2 > voters.len() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(RECONFIG_POLL_MS)).await;
        }
    }

    /// Whether this server is running a membership change now.
    pub fn reconfig_running(&self) -> bool {
        self.reconfiguring.try_lock().is_err()
    }

    /// Adds zoo.cfg observers as learners (one change), while the initial config stands.
    pub async fn add_learners(&self, learners: BTreeMap<u64, String>) -> Result<(), ReconfigError> {
        let _running = self
            .reconfiguring
            .try_lock()
            .map_err(|_| ReconfigError::InProgress)?;
        let view = self.membership();
        if !view.settled || view.reconfigured {
            // After a reconfig the replicated membership alone decides who is an observer.
            return Err(ReconfigError::InProgress);
        }
        self.change(ChangeMembers::AddNodes(basic(learners)), true)
            .await
            .map(|_| ())
    }

    /// One membership change, bounded by initLimit ticks (a leader that lost its quorum would
    /// wait for the commit forever); returns the index of the entry it committed.
    async fn change(
        &self,
        change: ChangeMembers<u64, BasicNode>,
        retain: bool,
    ) -> Result<u64, ReconfigError> {
        let bound = Duration::from_millis(self.reconfig_sync_ms);
        match tokio::time::timeout(bound, self.raft.change_membership(change, retain)).await {
            Ok(Ok(response)) => Ok(response.log_id.index),
            Ok(Err(error)) => Err(failed(error)),
            Err(_) => Err(failed("the membership change did not commit in time")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> MembershipView {
        MembershipView {
            version: 7,
            voters: (1..=3).map(|id| (id, format!("h:{id}:9;{id}"))).collect(),
            learners: [(9, "h:9:9;9".to_owned())].into(),
            settled: true,
            reconfigured: false,
        }
    }

    fn joiner(id: u64, observer: bool) -> Joiner {
        Joiner {
            id,
            spec: format!("n:{id}:1;2"),
            observer,
        }
    }

    #[test]
    fn roles_mark_reconfigured_specs() {
        assert_eq!(with_role("h:1:2;3", true), "h:1:2:observer;3");
        assert_eq!(with_role("h:1:2:observer;3", false), "h:1:2:participant;3");
        assert_eq!(with_role("h:1:2", false), "h:1:2:participant");
        assert!(has_role("[::1]:1:2:participant;[::1]:3"));
        assert!(!has_role("h:1:2;h:3") && !has_role("h:1"));
        assert_eq!(without_role("h:1:2:observer;3"), "h:1:2;3");
        assert_eq!(without_role("h:1:2"), "h:1:2");
    }

    #[test]
    fn quorum_address_is_host_and_first_port() {
        assert_eq!(quorum_address("h:1:2;0.0.0.0:3"), "h:1");
        assert_eq!(quorum_address("h:1"), "h:1");
        assert_eq!(quorum_address("[::1]:1:2;[::1]:3"), "[::1]:1");
        assert_eq!(quorum_address("h:1:2:participant"), "h:1");
    }

    #[test]
    fn incremental_edits_add_remove_and_change_roles() {
        let edit = MembershipEdit {
            replace_all: false,
            joining: vec![joiner(4, false), joiner(5, true), joiner(3, true)],
            leaving: vec![2, 9],
        };
        let (nodes, voters) = target(&view(), &edit).unwrap();
        assert_eq!(nodes.keys().copied().collect::<Vec<_>>(), vec![1, 3, 4, 5]);
        assert_eq!(voters, [1, 4].into());
        assert_eq!(nodes[&4], "n:4:1:participant;2");
        assert_eq!(nodes[&3], "n:3:1:observer;2");
        assert_eq!(nodes[&1], "h:1:9:participant;1");
        assert_eq!(nodes[&5], "n:5:1:observer;2");
    }

    #[test]
    fn new_members_replace_everything() {
        let edit = MembershipEdit {
            replace_all: true,
            joining: vec![joiner(1, false), joiner(2, true)],
            leaving: vec![1],
        };
        let (nodes, voters) = target(&view(), &edit).unwrap();
        assert_eq!(nodes.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(voters, [1].into());
    }

    #[test]
    fn a_config_without_voters_is_refused() {
        let edit = MembershipEdit {
            replace_all: false,
            joining: vec![],
            leaving: vec![1, 2, 3],
        };
        assert!(matches!(
            target(&view(), &edit),
            Err(ReconfigError::BadArguments(_))
        ));
    }
}
