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
    /// As bytes (one copy) rather than a sequence of u8 (a call per byte): the same postcard
    /// encoding, on disk and on the wire.
    #[serde(with = "serde_bytes")]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The command of earlier binaries, whose body was a sequence of u8.
    #[derive(Serialize)]
    struct SequenceBodyCommand {
        origin: u64,
        boot: u64,
        seq: u64,
        term: Option<u64>,
        time_ms: i64,
        body: Vec<u8>,
    }

    #[test]
    fn a_body_as_bytes_keeps_the_encoding_of_logs_and_peer_messages() {
        let body: Vec<u8> = (0..=u8::MAX).cycle().take(1000).collect();
        let command = Command {
            origin: 3,
            boot: 7,
            seq: 300,
            term: Some(2),
            time_ms: -1,
            body: body.clone(),
        };
        let earlier = SequenceBodyCommand {
            origin: 3,
            boot: 7,
            seq: 300,
            term: Some(2),
            time_ms: -1,
            body,
        };
        let encoded = postcard::to_stdvec(&earlier).unwrap();
        assert_eq!(postcard::to_stdvec(&command).unwrap(), encoded);
        assert_eq!(postcard::from_bytes::<Command>(&encoded).unwrap(), command);
    }
}
