//! What consensus needs from the configuration, and ZooKeeper's timing keys as Raft's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::SnapshotPolicy;

use super::log::LogMedium;
use super::{failpoint, handshake, network, ConsensusError, STANDALONE_ELECTION_MS_MAX};
use crate::fatal::FatalSignal;
use crate::net::Transport;
use crate::timing::StorageTimings;

/// One member of the ensemble, as `server.N` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    /// `host:quorumPort`.
    pub address: String,
    /// The ZooKeeper server spec (`host:quorumPort:electionPort[;clientAddress:clientPort]`),
    /// kept in the membership so every server can publish and reach it.
    pub spec: String,
    pub observer: bool,
}

/// What consensus needs from the configuration.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    pub my_id: u64,
    /// Empty for a standalone server.
    pub members: Vec<Member>,
    /// Where to listen for peers (the quorum port), for an ensemble.
    pub listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub tick_ms: u64,
    pub sync_limit_ticks: u64,
    /// How long new voters of a reconfig may take to catch up (ZooKeeper's initLimit).
    pub init_limit_ticks: u64,
    pub snap_count: u64,
    /// Entries kept in the log behind the newest snapshot (commitLogCount).
    pub log_kept_behind_snapshot: u64,
    pub snapshots_retained: usize,
    /// autopurge.purgeInterval in milliseconds; 0 = no timer.
    pub purge_interval_ms: u64,
    /// Armed failpoints (tests only; empty in production).
    pub failpoints: failpoint::Failpoints,
    /// Where storage failures and a stopped Raft core are raised (the server fails stop).
    pub fatal: FatalSignal,
    /// The `quorum.auth.*` keys with their secret.
    pub quorum_auth: handshake::QuorumAuth,
    /// Bytes of snapshot per peer message (`network::SNAPSHOT_CHUNK_BYTES`; smaller in tests).
    pub snapshot_chunk_bytes: usize,
    /// Where the log's fdatasyncs and the snapshot writes are timed (this server's `mntr`).
    pub storage_timings: Arc<StorageTimings>,
    /// Mutual TLS between peers (`sslQuorum=true`), or none.
    pub quorum_tls: Option<Arc<network::QuorumTls>>,
    /// How peers are dialled and listened for (TCP, or a simulation's network).
    pub transport: Arc<dyn Transport>,
    /// Where the Raft log lives (the log directory, or a simulation's in-memory disk).
    pub log_medium: LogMedium,
}

impl ConsensusConfig {
    /// ZooKeeper's timing keys as Raft's: the leader heartbeats every half tick; a follower
    /// that hears nothing for syncLimit/2..syncLimit ticks starts an election (ZooKeeper
    /// drops a follower that lags syncLimit ticks).
    pub(super) fn raft_config(&self) -> Result<openraft::Config, ConsensusError> {
        let (heartbeat_ms, election_max_ms) = if self.is_standalone() {
            // Nobody to hear from: a restarted standalone server elects itself at once.
            (STANDALONE_ELECTION_MS_MAX / 6, STANDALONE_ELECTION_MS_MAX)
        } else {
            let heartbeat_ms = (self.tick_ms / 2).max(10);
            (
                heartbeat_ms,
                (self.tick_ms * self.sync_limit_ticks).max(heartbeat_ms * 4),
            )
        };
        let election_min_ms = (election_max_ms / 2)
            .max(heartbeat_ms * 2)
            .min(election_max_ms - 1);
        openraft::Config {
            cluster_name: "zkw".to_owned(),
            heartbeat_interval: heartbeat_ms,
            election_timeout_min: election_min_ms,
            election_timeout_max: election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snap_count.max(1)),
            max_in_snapshot_log_to_keep: self.log_kept_behind_snapshot,
            enable_pre_vote: Some(true),
            // A follower whose dataDir was wiped comes back with an empty log; the leader
            // must bring it back (by log or snapshot) instead of treating that as a bug.
            allow_log_reversion: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|error| ConsensusError::Raft(error.to_string()))
    }

    pub(super) fn is_standalone(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tick_ms: u64, sync_limit_ticks: u64, members: usize) -> ConsensusConfig {
        ConsensusConfig {
            my_id: 1,
            members: (1..=members as u64)
                .map(|id| Member {
                    id,
                    address: format!("127.0.0.1:{}", 2887 + id),
                    spec: String::new(),
                    observer: false,
                })
                .collect(),
            listen: None,
            data_dir: PathBuf::from("unused"),
            log_dir: PathBuf::from("unused"),
            tick_ms,
            sync_limit_ticks,
            init_limit_ticks: 10,
            snap_count: 100_000,
            log_kept_behind_snapshot: crate::config::COMMIT_LOG_COUNT_DEFAULT,
            snapshots_retained: 3,
            purge_interval_ms: 0,
            failpoints: Default::default(),
            fatal: Default::default(),
            quorum_auth: Default::default(),
            snapshot_chunk_bytes: network::SNAPSHOT_CHUNK_BYTES,
            storage_timings: Arc::default(),
            quorum_tls: None,
            transport: Arc::new(crate::net::TcpTransport),
            log_medium: LogMedium::Directory,
        }
    }

    #[test]
    fn zookeeper_timing_maps_to_valid_raft_timing() {
        for (tick_ms, sync_limit_ticks) in [(2000, 5), (3000, 2), (200, 5), (50, 1), (1, 1)] {
            for members in [0, 3, 5] {
                let raft = config(tick_ms, sync_limit_ticks, members)
                    .raft_config()
                    .unwrap();
                assert!(
                    raft.heartbeat_interval < raft.election_timeout_min,
                    "{tick_ms} {members}"
                );
                assert!(raft.election_timeout_min < raft.election_timeout_max);
            }
        }
        let sample = config(2000, 5, 3).raft_config().unwrap();
        assert_eq!(
            (sample.heartbeat_interval, sample.election_timeout_max),
            (1000, 10_000)
        );
    }
}
