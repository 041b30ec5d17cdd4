//! The only openraft type declaration: what a log entry carries and how nodes are addressed.
//! Nothing outside `consensus` names these types.

use serde::{Deserialize, Serialize};

/// One proposed write as it travels in the log. `body` is the encoded txn (session, auth,
/// op: see `txn::codec`); the zxid is the entry's log index and `time_ms` the leader's clock
/// when it accepted the proposal. `origin`/`boot`/`seq` name the server and the proposal
/// there, so only that server routes the reply, and a re-sent copy is recognised and skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub origin: u64,
    /// The origin's boot id: sequence numbers restart with each boot.
    pub boot: u64,
    pub seq: u64,
    /// Set on leader-only decisions: the term they were decided in; committed in another
    /// term, the command is skipped.
    pub term: Option<u64>,
    pub time_ms: i64,
    pub body: Vec<u8>,
}

impl std::fmt::Display for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "command({}#{}, {} bytes)",
            self.origin,
            self.seq,
            self.body.len()
        )
    }
}

openraft::declare_raft_types!(
    /// zkw's Raft: commands in, nothing out (replies are routed by the origin server).
    pub ZkwRaft:
        D = Command,
        R = (),
        NodeId = u64,
        Node = openraft::impls::BasicNode,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

pub type Raft<SM> = openraft::Raft<ZkwRaft, SM>;
pub type LogId = openraft::alias::LogIdOf<ZkwRaft>;
pub type Vote = openraft::alias::VoteOf<ZkwRaft>;
pub type Entry = openraft::alias::EntryOf<ZkwRaft>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<ZkwRaft>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<ZkwRaft>;
