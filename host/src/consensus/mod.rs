//! `consensus`: orders proposed txns into the replicated log and hands committed entries to the
//! state machine. It knows nothing of znode semantics: a txn is opaque apart from its envelope.
//!
//! One code path for every deployment: a standalone server is a one-voter Raft cluster; an
//! ensemble is N voters from the `server.N` lines (observers are learners). Consensus is
//! openraft (pinned exactly), and only this module imports it. The pieces:
//! - `mod.rs`: the node ([`Consensus`]): start-up (probing for an existing cluster), the
//!   leader as seen here, the task that follows leadership, shutdown;
//! - `config.rs`: what consensus needs from zoo.cfg, ZooKeeper's timing keys as Raft's;
//! - `proposals.rs`: numbering, ordering and forwarding proposals, the leader's check of a
//!   forwarded batch;
//! - `serving.rs`: whether this server serves (leader lease, follower's silence limit);
//! - `read_index.rs`: `sync` as a read-index round;
//! - `peer_service.rs`: what this server answers on the quorum port;
//! - `relay.rs`: a message from a follower's state machine to its leader's, carried unread
//!   (the server's session liveness);
//! - `types.rs`: the one openraft type declaration;
//! - `log/` + `meta.rs` + `store.rs`: the durable log (segments, group commit) and its redb meta;
//! - `state_machine.rs`: the adapter that decodes entries and calls the server's
//!   [`StateMachine`], and keeps snapshots in dataDir;
//! - `network.rs`: the quorum-port transport (Raft RPCs plus forwarded writes, session
//!   liveness, read indexes and membership changes), admitting only members;
//! - `handshake.rs`: the quorum-port handshake's messages and the quorum secret's proofs;
//! - `membership.rs`: dynamic reconfig as Raft membership changes;
//! - `failover.rs`: followers elect at once when their leader's process goes (or it falls
//!   silent for syncLimit ticks), pre-vote kept;
//! - `purge.rs`: the autopurge.purgeInterval timer;
//! - `failpoint.rs` + `fail_stop.rs`: failpoints at every durability step, and the watch that
//!   turns a stopped Raft core into a [`crate::fatal::Fatal`] (the server fails stop).
//!
//! Request path: a proposal gets a per-server sequence number and its reply route stays here
//! ([`state_machine::Pending`]); on the leader it is stamped with the leader's clock and
//! appended; on a follower it is forwarded, in order, to the leader. Whichever server applies
//! an entry whose origin is itself hands the route to the state machine with the txn. If the
//! leader changes while proposals wait, their routes are abandoned (the server closes those
//! connections, as ZooKeeper does when a follower loses its leader).
//!
//! Entry points: [`Consensus::start`], [`Proposer::propose`], [`Consensus::sync`].

mod config;
mod fail_stop;
mod failover;
pub mod failpoint;
pub mod handshake;
pub mod log;
pub mod membership;
pub mod meta;
pub mod network;
mod peer_service;
mod proposals;
pub mod purge;
mod read_index;
mod relay;
mod report;
mod serving;
pub mod state_machine;
pub mod store;
pub mod types;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::impls::BasicNode;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::ServerState;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::fatal::FatalSignal;
pub use config::{ConsensusConfig, Member};
use network::{PeerClient, PeerNetwork, PeerRequest, PeerResponse, PeerSettings};
pub use proposals::{
    Proposal, Proposer, Unforwardable, FORWARD_BYTES_MAX, FORWARD_RETRY_MS, PROPOSALS_QUEUED_MAX,
    PROPOSAL_BATCH_MAX, PROPOSAL_BYTES_MAX, PROPOSAL_ENVELOPE_BYTES_MAX,
};
use state_machine::{Adapter, Pending};
use store::LogStore;
use types::Raft;

/// How long a proposal may wait for a leader to exist before it is abandoned.
pub const LEADER_WAIT_MS_MAX: u64 = 10_000;
/// Bound on one forwarded batch or read-index round trip to the leader.
pub const LEADER_RPC_TIMEOUT_MS: u64 = 5_000;
/// Bound on asking one peer, at first start, whether a cluster already exists.
pub const PEER_PROBE_TIMEOUT_MS: u64 = 500;
/// A standalone server's election timeout ceiling (it only votes for itself).
pub const STANDALONE_ELECTION_MS_MAX: u64 = 300;
/// Bound on waiting for this server to apply up to a read index.
pub const READ_INDEX_WAIT_MS_MAX: u64 = 10_000;

/// Applies committed entries, in log order, and owns what a snapshot holds. Implemented by the
/// server. `Route` is the proposer's token saying where a reply goes.
pub trait StateMachine: Send + Sync + 'static {
    type Route: Send + 'static;
    /// An error stops this replica (openraft's core stops; the server has raised a fatal
    /// error): nothing after the failing entry is applied.
    fn apply_batch(&self, batch: Self::Batch) -> io::Result<()>;
    /// A committed batch as the machine reads it, before it applies.
    type Batch: Send;
    /// Reads a committed batch (once), and names the slow work it needs before it applies
    /// (compiling a recipe module it installs): that runs on a blocking thread and is awaited
    /// before [`StateMachine::apply_batch`], so the runtime threads keep answering peers
    /// meanwhile (a blocked thread misses heartbeats).
    fn prepare(
        &self,
        batch: Vec<(Committed, Option<Self::Route>)>,
    ) -> (Self::Batch, Option<Preparation>);
    /// A proposal whose fate this server will not learn (its leader went away), or that was
    /// refused before it reached the log; `reason` says which to the client's log line.
    fn abandon(&self, route: Self::Route, reason: &'static str);
    /// Whether whoever waits on `route` is gone (its connection closing): its write, not yet
    /// in the log as far as this server knows, is not re-sent. The client was told its
    /// connection was lost, so it may read and write again elsewhere; a copy re-sent now could
    /// land after those, out of its session's order.
    fn is_gone(&self, route: &Self::Route) -> bool;
    /// Appends the replicated state, as bytes, to `out`.
    fn snapshot(&self, out: &mut Vec<u8>) -> io::Result<()>;
    /// Replaces the replicated state with a snapshot's.
    fn restore(&self, snapshot: &mut dyn io::Read) -> io::Result<()>;
    /// A follower's [`Consensus::relay_to_leader`] message (called on the leader).
    fn relayed(&self, body: &[u8]);
    /// This server became leader (true) or stopped being one (false).
    fn leadership_changed(&self, is_leader: bool);
    /// Why a forwarded body is refused.
    type Refusal: std::error::Error;
    /// Whether the leader may propose `body` (a proposal's encoded txn), forwarded by a
    /// follower for one of its clients.
    fn admit_forwarded(&self, body: &[u8]) -> Result<(), Self::Refusal>;
}

/// What [`StateMachine::prepare`] asks to run off the runtime threads.
pub type Preparation = Box<dyn FnOnce() + Send>;

/// A committed proposal as the state machine gets it: its body, opaque here, with the zxid
/// (the log index) and the leader's clock when it was appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    pub zxid: i64,
    pub time_ms: i64,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("the log is shut down")]
    Shutdown,
    #[error("no leader is known")]
    NoLeader,
    #[error("the leader did not answer: {0}")]
    Leader(String),
    #[error("cannot open the log or snapshots: {0}")]
    Storage(#[from] io::Error),
    #[error("raft: {0}")]
    Raft(String),
    /// This server's quorum port cannot be bound (taken by another server, most often).
    #[error("cannot listen on the quorum port {address}: {error}")]
    QuorumPort {
        address: SocketAddr,
        error: io::Error,
    },
}

/// A running consensus node.
pub struct Consensus<M: StateMachine> {
    raft: Raft<Adapter<M>>,
    my_id: u64,
    standalone: bool,
    machine: Arc<M>,
    pending: Arc<Pending<M::Route>>,
    applied_index: watch::Receiver<u64>,
    clock: Arc<dyn Clock>,
    next_seq: AtomicU64,
    my_boot: u64,
    /// (leader, term) as last seen: the ordering task re-sends what is unacknowledged when it
    /// changes.
    leader_moved: watch::Sender<Option<(u64, u64)>>,
    /// Raised when a batch this server appended as leader did not commit under it: the ordering
    /// task then re-sends what is unacknowledged, as after a change of leader.
    uncommitted: Arc<tokio::sync::Notify>,
    /// Whether this server can serve clients: it knows a leader and, if it leads, a quorum
    /// acknowledged it within the lease (ZooKeeper's leader likewise stops serving, and drops
    /// its clients, when it loses its quorum).
    serving: watch::Sender<bool>,
    heartbeat_ms: u64,
    /// Held while a membership change runs (a second one is ReconfigInProgress).
    reconfiguring: tokio::sync::Mutex<()>,
    /// initLimit ticks: how long a reconfig waits for its new voters to catch up.
    reconfig_sync_ms: u64,
    stop: watch::Sender<bool>,
    /// The leader this server last had an AppendEntries from, and when (monotonic ms).
    heard_from_leader: Mutex<Option<(u64, u64)>>,
    /// How far this follower has synced with its leader (`serving::SyncGate`).
    sync_gate: Mutex<serving::SyncGate>,
    /// syncLimit × tickTime: a follower that has not heard from its leader for this long stops
    /// serving (ZooKeeper's follower drops to LOOKING after the same silence).
    silence_limit_ms: u64,
    /// When `refresh_serving` last ran (monotonic ms), to tell a starved check.
    serving_checked_ms: AtomicU64,
    /// Raised: this server serves nothing and relays nothing any more.
    fatal: FatalSignal,
    /// Who this server is on the quorum port (every peer connection opens with it).
    peer_settings: Arc<PeerSettings>,
    /// zoo.cfg's members: id -> quorum address (`host:port`).
    seeds: BTreeMap<u64, String>,
    /// The connection `relay_to_leader` uses, kept across relays.
    relay_client: tokio::sync::Mutex<Option<PeerClient>>,
}

impl<M: StateMachine> Consensus<M> {
    /// Opens the log and snapshots, starts Raft and the peer listener, and returns the node
    /// and the handle connections propose through.
    pub async fn start(
        config: ConsensusConfig,
        machine: Arc<M>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Self>, Proposer<M::Route>), ConsensusError> {
        let snapshot_dir = config.data_dir.join("version-2");
        let purge_dir = snapshot_dir.clone();
        let log_dir = config.log_dir.join("version-2").join("log");
        let store = LogStore::open(
            &config.log_medium,
            &log_dir,
            &config.data_dir.join("version-2").join("meta.redb"),
            config.failpoints.clone(),
            config.fatal.clone(),
            Arc::clone(&config.storage_timings),
        )?;
        let pending = Arc::new(Pending::default());
        let (applied_tx, applied_index) = watch::channel(0);
        // Sequence numbers restart with each boot; the boot id (this start's wall clock)
        // tells the state machine which numbering a command belongs to.
        let my_boot = u64::try_from(clock.wall_ms()).unwrap_or(0);
        let mut adapter = Adapter {
            machine: Arc::clone(&machine),
            pending: Arc::clone(&pending),
            my_id: config.my_id,
            applied: None,
            membership: Default::default(),
            snapshot_dir,
            snapshots_retained: config.snapshots_retained,
            applied_index: Arc::new(applied_tx),
            applied_seqs: Default::default(),
            my_boot,
            failpoints: config.failpoints.clone(),
            fatal: config.fatal.clone(),
            storage_timings: Arc::clone(&config.storage_timings),
            clock: Arc::clone(&clock),
        };
        adapter.recover()?;
        // Bound before Raft starts, so a taken port stops the server before any election.
        let listener = match config.listen {
            Some(address) => Some(
                config
                    .transport
                    .listen(address)
                    .await
                    .map_err(|error| ConsensusError::QuorumPort { address, error })?,
            ),
            None => None,
        };
        let raft_config = Arc::new(config.raft_config()?);
        let raft_heartbeat_ms = raft_config.heartbeat_interval;
        let peer_settings = Arc::new(PeerSettings {
            my_id: config.my_id,
            auth: config.quorum_auth.clone(),
            snapshot_chunk_bytes: config.snapshot_chunk_bytes,
            reachability: Default::default(),
            tls: config.quorum_tls.clone(),
            transport: Arc::clone(&config.transport),
        });
        let network = PeerNetwork {
            settings: Arc::clone(&peer_settings),
        };
        let raft = Raft::new(config.my_id, raft_config, network, store, adapter)
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))?;
        let (stop, stop_rx) = watch::channel(false);
        let node = Arc::new(Consensus {
            raft,
            my_id: config.my_id,
            standalone: config.is_standalone(),
            machine,
            pending,
            applied_index,
            clock,
            next_seq: AtomicU64::new(1),
            my_boot,
            leader_moved: watch::channel(None).0,
            uncommitted: Arc::new(tokio::sync::Notify::new()),
            serving: watch::channel(false).0,
            heartbeat_ms: raft_heartbeat_ms,
            reconfiguring: tokio::sync::Mutex::new(()),
            reconfig_sync_ms: (config.tick_ms * config.init_limit_ticks).max(raft_heartbeat_ms * 4),
            stop,
            heard_from_leader: Mutex::new(None),
            sync_gate: Mutex::new(serving::SyncGate::default()),
            silence_limit_ms: config.tick_ms * config.sync_limit_ticks,
            serving_checked_ms: AtomicU64::new(0),
            fatal: config.fatal.clone(),
            peer_settings,
            relay_client: tokio::sync::Mutex::new(None),
            seeds: config
                .members
                .iter()
                .map(|member| (member.id, member.address.clone()))
                .collect(),
        });
        node.initialize(&config).await?;
        if let (Some(listen), Some(listener)) = (config.listen, listener) {
            tracing::info!(address = %listen, "listening for peers on the quorum port");
            let (handler_node, members_node) = (Arc::clone(&node), Arc::clone(&node));
            let service = network::PeerService {
                handler: Arc::new(move |request| {
                    let node = Arc::clone(&handler_node);
                    Box::pin(async move { node.handle_peer(request).await })
                }),
                settings: Arc::clone(&node.peer_settings),
                members: Arc::new(move |id| members_node.member_addresses(id)),
            };
            tokio::spawn(network::serve(listener, service, stop_rx.clone()));
        }
        let (queue, incoming) = mpsc::channel(PROPOSALS_QUEUED_MAX);
        tokio::spawn(Arc::clone(&node).order_proposals(incoming));
        tokio::spawn(Arc::clone(&node).watch_leadership(stop_rx.clone()));
        tokio::spawn(Arc::clone(&node).watch_quorum(stop_rx.clone()));
        tokio::spawn(Arc::clone(&node).watch_core(stop_rx.clone()));
        tokio::spawn(Arc::clone(&node).report_role(config.tick_ms, stop_rx.clone()));
        if config.purge_interval_ms > 0 {
            tokio::spawn(Arc::clone(&node).purge_periodically(
                Duration::from_millis(config.purge_interval_ms),
                config.snapshots_retained,
                purge_dir,
                stop_rx.clone(),
            ));
        }
        if !node.standalone {
            let silence_limit_ms = node.silence_limit_ms;
            tokio::spawn(Arc::clone(&node).watch_leader(silence_limit_ms, stop_rx.clone()));
        }
        Ok((node, Proposer { queue }))
    }

    /// Every member initializes with the same membership (log index 0, identical everywhere),
    /// so it does not matter which server starts first. A restarted server is already
    /// initialized and keeps its log's membership.
    async fn initialize(&self, config: &ConsensusConfig) -> Result<(), ConsensusError> {
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| ConsensusError::Raft(e.to_string()))?;
        let observer = config
            .members
            .iter()
            .any(|member| member.id == config.my_id && member.observer);
        if initialized || observer {
            // An observer waits, empty, for the leader to add it as a learner.
            return Ok(());
        }
        if !config.is_standalone() && self.cluster_exists(config).await {
            // A server joining a running ensemble (reconfig) waits to be added: its zoo.cfg
            // is not the ensemble's membership.
            tracing::info!("the ensemble runs without this server; waiting to be added to it");
            return Ok(());
        }
        // Observers join as learners once a leader exists (see `watch_leadership`).
        let voters: BTreeMap<u64, BasicNode> = if config.is_standalone() {
            [(
                config.my_id,
                BasicNode {
                    addr: String::new(),
                },
            )]
            .into()
        } else {
            config
                .members
                .iter()
                .filter(|member| !member.observer)
                .map(|member| {
                    let addr = if member.spec.is_empty() {
                        member.address.clone()
                    } else {
                        member.spec.clone()
                    };
                    (member.id, BasicNode { addr })
                })
                .collect()
        };
        match self.raft.initialize(voters).await {
            Ok(()) => Ok(()),
            // Another member's initial entry arrived first: same membership, nothing to do.
            Err(openraft::error::RaftError::APIError(
                openraft::error::InitializeError::NotAllowed(_),
            )) => Ok(()),
            Err(error) => Err(ConsensusError::Raft(error.to_string())),
        }
    }

    /// Whether another zoo.cfg member already runs a cluster that has moved past its initial
    /// membership or does not list this server: then this server (a joiner, or a wiped member)
    /// waits for the leader to bring it in. Servers booting together all initialize.
    async fn cluster_exists(&self, config: &ConsensusConfig) -> bool {
        let probes = config
            .members
            .iter()
            .filter(|member| member.id != config.my_id)
            .map(|member| async move {
                let mut client = self.peer_client(member.id, member.address.clone());
                let timeout = Duration::from_millis(PEER_PROBE_TIMEOUT_MS);
                let request = PeerRequest::Membership {
                    asker: config.my_id,
                };
                let answer = client.call(&request, timeout).await;
                tracing::debug!(peer = member.id, ?answer, "asked whether a cluster exists");
                matches!(
                    answer,
                    Ok(PeerResponse::Membership(Some((listed, version)))) if !listed || version > 0
                )
            });
        futures_util::future::join_all(probes)
            .await
            .into_iter()
            .any(|initialized| initialized)
    }

    /// `leader`, `follower`, `observer` or `standalone`, as `srvr` prints it.
    pub fn mode(&self) -> &'static str {
        let state = self.raft.metrics().borrow_watched().state;
        match state {
            _ if self.standalone => "standalone",
            ServerState::Leader => "leader",
            ServerState::Learner => "observer",
            _ => "follower",
        }
    }

    /// The current term when this server leads and holds its lease.
    pub fn leader_term(&self) -> Option<u64> {
        let term = self.raft.metrics().borrow_watched().current_term;
        self.is_leader().then_some(term)
    }

    /// Leads and holds its lease (see [`Consensus::is_serving`]).
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader && self.is_serving()
    }

    /// The leader this server knows: its id and quorum address (for the admin `leader`).
    pub fn leader(&self) -> Option<(u64, String)> {
        self.leadership()
            .map(|(leader, _, address)| (leader, address))
    }

    /// For `mntr` on a leader: (followers, synced followers) — followers whose replication has
    /// reached the commit index count as synced.
    pub fn follower_counts(&self) -> (usize, usize) {
        let metrics = self.raft.metrics().borrow_watched().clone();
        let Some(replication) = metrics.replication else {
            return (0, 0);
        };
        let committed = metrics.cluster_committed.map(|id| id.index);
        let followers: Vec<_> = replication
            .iter()
            .filter(|(id, _)| **id != self.my_id)
            .collect();
        let synced = followers
            .iter()
            .filter(|(_, matched)| matched.map(|id| id.index) >= committed)
            .count();
        (followers.len(), synced)
    }

    /// A connection (opened on first use) to peer `target` at `address`, as this server.
    fn peer_client(&self, target: u64, address: String) -> PeerClient {
        PeerClient::new(target, address, Arc::clone(&self.peer_settings))
    }

    /// The quorum addresses server `id` is configured at: in the membership in effect, in the
    /// last committed one (a leader a reconfig removed still hands over) and in zoo.cfg (a
    /// joiner's, before it holds a log). Empty: `id` is not a member.
    fn member_addresses(&self, id: u64) -> Vec<String> {
        let mut addresses: Vec<String> = {
            let receiver = self.raft.metrics();
            let metrics = receiver.borrow_watched();
            [
                &metrics.membership_config,
                &metrics.committed_membership_config,
            ]
            .into_iter()
            .filter_map(|stored| stored.membership().get_node(&id))
            .map(|node| membership::quorum_address(&node.addr))
            .collect()
        };
        addresses.extend(self.seeds.get(&id).cloned());
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// The leader, the term and the leader's quorum address, as this server sees them.
    fn leadership(&self) -> Option<(u64, u64, String)> {
        // Called for every batch of writes: read the metrics in place, never clone them.
        let receiver = self.raft.metrics();
        let metrics = receiver.borrow_watched();
        let leader = metrics.current_leader?;
        let address = metrics
            .membership_config
            .membership()
            .nodes()
            .find(|(id, _)| **id == leader)
            .map(|(_, node)| membership::quorum_address(&node.addr))?;
        Some((leader, metrics.current_term, address))
    }

    /// Tells the machine when leadership moves, and the ordering task when to re-send.
    async fn watch_leadership(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut metrics = self.raft.metrics();
        let mut leader = None;
        let mut is_leader = false;
        loop {
            let (now_leader, now_is_leader, term, zxid) = {
                let current = metrics.borrow_and_update();
                (
                    current.current_leader,
                    current.state == ServerState::Leader,
                    current.current_term,
                    current.last_applied.map_or(0, |id| id.index),
                )
            };
            if now_leader != leader {
                // The election's outcome; `report_role` logs it for the operator.
                tracing::debug!(leader = ?now_leader, term, zxid, me = self.my_id, "leader changed");
                leader = now_leader;
            }
            self.refresh_serving().await;
            // Writes waiting here are re-sent to whoever leads now (see order_proposals).
            self.leader_moved.send_if_modified(|moved| {
                let now = now_leader.map(|id| (id, term));
                let changed = *moved != now;
                *moved = now;
                changed
            });
            if now_is_leader != is_leader {
                is_leader = now_is_leader;
                self.machine.leadership_changed(is_leader);
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
        }
    }

    /// Stops Raft and the peer listener.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft did not shut down cleanly");
        }
    }
}
