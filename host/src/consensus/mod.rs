//! `consensus`: orders proposed txns into the replicated log and hands committed entries to the
//! state machine. It knows nothing of znode semantics: a txn is opaque apart from its envelope.
//!
//! One code path for every deployment: a standalone server is a one-voter Raft cluster; an
//! ensemble is N voters from the `server.N` lines (observers are learners). Consensus is
//! openraft (pinned exactly), and only this module imports it. The pieces:
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

mod fail_stop;
mod failover;
pub mod failpoint;
pub mod handshake;
pub mod log;
pub mod membership;
pub mod meta;
pub mod network;
pub mod purge;
mod report;
pub mod state_machine;
pub mod store;
pub mod types;

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::impls::BasicNode;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use openraft::{ReadPolicy, ServerState, SnapshotPolicy};
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::fatal::FatalSignal;
use crate::proto::{Id, SessionId};
use crate::timing::StorageTimings;
use crate::txn::codec::{decode_entry, encode_entry, CodecError};
use crate::txn::identity::ForwardRefusal;
use crate::txn::{TxnEntry, TxnOp};
use network::{PeerClient, PeerNetwork, PeerRequest, PeerResponse, PeerSettings};
use state_machine::{Adapter, Pending};
use store::LogStore;
use types::{Command, Raft};

/// How many proposals may wait for the log before proposers are made to wait (backpressure).
pub const PROPOSALS_QUEUED_MAX: usize = 16 * 1024;
/// The most proposals sent to the log (or forwarded) in one batch.
pub const PROPOSAL_BATCH_MAX: usize = 1024;
/// How long a proposal may wait for a leader to exist before it is abandoned.
pub const LEADER_WAIT_MS_MAX: u64 = 10_000;
/// Pause before re-sending writes that did not reach a leader.
pub const FORWARD_RETRY_MS: u64 = 20;
/// Bound on one forwarded batch or read-index round trip to the leader.
pub const LEADER_RPC_TIMEOUT_MS: u64 = 5_000;
/// Bound on asking one peer, at first start, whether a cluster already exists.
pub const PEER_PROBE_TIMEOUT_MS: u64 = 500;
/// A standalone server's election timeout ceiling (it only votes for itself).
pub const STANDALONE_ELECTION_MS_MAX: u64 = 300;
/// Bound on waiting for this server to apply up to a read index.
pub const READ_INDEX_WAIT_MS_MAX: u64 = 10_000;
/// Room in a log record for what wraps a proposal's body: the entry's log id and the
/// command's origin, boot, seq, term and clock (postcard varints: well under 100 bytes).
pub const PROPOSAL_ENVELOPE_BYTES_MAX: u64 = 64 * 1024;
/// Largest encoded txn (a command's body) ever proposed, in bytes. A larger one is refused
/// before it gets a sequence number, so it never reaches Raft, where every replica's log would
/// refuse it (LOG_RECORD_PAYLOAD_BYTES_MAX) and leave the ensemble unable to commit. The
/// request arrived within jute.maxbuffer, so its client is dropped as ZooKeeper drops one that
/// sends more than jute.maxbuffer: the connection closes with a logged reason, the session
/// stays. ZooKeeper's nearest bound is a follower's jute.maxbuffer + jute.maxbuffer.extrasize.
pub const PROPOSAL_BYTES_MAX: usize =
    (log::LOG_RECORD_PAYLOAD_BYTES_MAX - PROPOSAL_ENVELOPE_BYTES_MAX) as usize;
/// Most bytes of commands forwarded to the leader in one message: a batch of large writes is
/// split so that no message nears the peer frame limit.
pub const FORWARD_BYTES_MAX: usize = 64 * 1024 * 1024;

const _: () = assert!(PROPOSAL_ENVELOPE_BYTES_MAX < log::LOG_RECORD_PAYLOAD_BYTES_MAX);
const _: () = assert!(PROPOSAL_BYTES_MAX <= FORWARD_BYTES_MAX);
const _: () = assert!(FORWARD_BYTES_MAX * 2 <= network::PEER_FRAME_BYTES_MAX as usize);

/// Applies committed entries, in log order, and owns what a snapshot holds. Implemented by the
/// server. `Route` is the proposer's token saying where a reply goes.
pub trait StateMachine: Send + Sync + 'static {
    type Route: Send + 'static;
    /// An error stops this replica (openraft's core stops; the server has raised a fatal
    /// error): nothing after the failing entry is applied.
    fn apply_batch(&self, batch: Vec<(TxnEntry, Option<Self::Route>)>) -> io::Result<()>;
    /// A proposal whose fate this server will not learn (its leader went away), or that was
    /// refused before it reached the log; `reason` says which to the client's log line.
    fn abandon(&self, route: Self::Route, reason: &'static str);
    /// Appends the replicated state, as bytes, to `out`.
    fn snapshot(&self, out: &mut Vec<u8>) -> io::Result<()>;
    /// Replaces the replicated state with a snapshot's.
    fn restore(&self, snapshot: &mut dyn io::Read) -> io::Result<()>;
    /// Sessions that showed life on another server (called on the leader).
    fn touch_sessions(&self, sessions: &[SessionId]);
    /// This server became leader (true) or stopped being one (false).
    fn leadership_changed(&self, is_leader: bool);
    /// Whether the leader may propose `entry`, forwarded by a follower for one of its clients
    /// (`txn::identity::admit_forwarded` with this server's configuration).
    fn admit_forwarded(&self, entry: &TxnEntry) -> Result<(), ForwardRefusal>;
}

/// Why the leader drops a command of a follower's forwarded batch. Every origin refuses
/// these itself, so one arriving means a broken or impersonated peer: it is logged and
/// dropped, never proposed (the rest of the batch goes on).
#[derive(Debug, thiserror::Error)]
pub enum Unforwardable {
    #[error("{bytes} bytes, above PROPOSAL_BYTES_MAX {PROPOSAL_BYTES_MAX}")]
    TooLarge { bytes: usize },
    #[error("a leader-only decision of term {term}: such commands are never forwarded")]
    LeaderOnly { term: u64 },
    #[error("its txn does not decode: {0}")]
    Undecodable(#[from] CodecError),
    #[error(transparent)]
    Refused(#[from] ForwardRefusal),
}

/// A write waiting to be ordered.
#[derive(Debug)]
pub struct Proposal<R> {
    pub session_id: SessionId,
    pub auth: Vec<Id>,
    pub op: TxnOp,
    pub route: Option<R>,
    /// A decision only this server's current leadership may make (session expiry): it takes
    /// effect only if it commits in the term it was proposed in, never re-sent to a successor.
    pub leader_only: bool,
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

/// The handle every connection uses to propose writes.
pub struct Proposer<R> {
    queue: mpsc::Sender<Proposal<R>>,
}

impl<R> Clone for Proposer<R> {
    fn clone(&self) -> Self {
        Proposer {
            queue: self.queue.clone(),
        }
    }
}

impl<R: Send + 'static> Proposer<R> {
    pub async fn propose(&self, proposal: Proposal<R>) -> Result<(), ConsensusError> {
        self.queue
            .send(proposal)
            .await
            .map_err(|_| ConsensusError::Shutdown)
    }
}

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
}

impl ConsensusConfig {
    /// ZooKeeper's timing keys as Raft's: the leader heartbeats every half tick; a follower
    /// that hears nothing for syncLimit/2..syncLimit ticks starts an election (ZooKeeper
    /// drops a follower that lags syncLimit ticks).
    fn raft_config(&self) -> Result<openraft::Config, ConsensusError> {
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
            max_in_snapshot_log_to_keep: 1000,
            enable_pre_vote: Some(true),
            // A follower whose dataDir was wiped comes back with an empty log; the leader
            // must bring it back (by log or snapshot) instead of treating that as a bug.
            allow_log_reversion: Some(true),
            ..Default::default()
        }
        .validate()
        .map_err(|error| ConsensusError::Raft(error.to_string()))
    }

    fn is_standalone(&self) -> bool {
        self.members.is_empty()
    }
}

/// Whether this server has applied an entry of `term` (every new leader's first entry is one):
/// then everything the leaders before it committed is applied here too.
fn applied_this_term(last_applied: Option<&types::LogId>, term: u64) -> bool {
    last_applied.is_some_and(|applied| applied.leader_id.term >= term)
}

/// A running consensus node.
pub struct Consensus<M: StateMachine> {
    raft: Raft<Adapter<M>>,
    my_id: u64,
    standalone: bool,
    machine: Arc<M>,
    pending: Arc<Pending<M::Route>>,
    applied_index: watch::Receiver<u64>,
    touched: Mutex<HashSet<SessionId>>,
    clock: Arc<dyn Clock>,
    next_seq: AtomicU64,
    my_boot: u64,
    /// (leader, term) as last seen: the ordering task re-sends what is unacknowledged when it
    /// changes.
    leader_moved: watch::Sender<Option<(u64, u64)>>,
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
                tokio::net::TcpListener::bind(address)
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
            touched: Mutex::new(HashSet::new()),
            clock,
            next_seq: AtomicU64::new(1),
            my_boot,
            leader_moved: watch::channel(None).0,
            serving: watch::channel(false).0,
            heartbeat_ms: raft_heartbeat_ms,
            reconfiguring: tokio::sync::Mutex::new(()),
            reconfig_sync_ms: (config.tick_ms * config.init_limit_ticks).max(raft_heartbeat_ms * 4),
            stop,
            heard_from_leader: Mutex::new(None),
            silence_limit_ms: config.tick_ms * config.sync_limit_ticks,
            serving_checked_ms: AtomicU64::new(0),
            fatal: config.fatal.clone(),
            peer_settings,
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
            tokio::spawn(Arc::clone(&node).relay_touches(config.tick_ms, stop_rx));
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
    async fn refresh_serving(&self) {
        let starved = self.serving_check_was_late();
        let (leader, state, member, caught_up) = {
            let receiver = self.raft.metrics();
            let metrics = receiver.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                metrics.current_leader,
                metrics.state,
                membership.get_node(&self.my_id).is_some(),
                applied_this_term(metrics.last_applied.as_ref(), metrics.current_term),
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

    /// Whether this check comes much later than the heartbeat the checks run at (this
    /// process was starved of CPU); notes when it ran.
    fn serving_check_was_late(&self) -> bool {
        let now = self.clock.monotonic_ms();
        let previous = self.serving_checked_ms.swap(now, Ordering::Relaxed);
        now.saturating_sub(previous) > self.heartbeat_ms * failover::SILENCE_CHECK_LATE_FACTOR
    }

    /// Re-checks the leader's lease every heartbeat: metrics do not change when acks stop.
    async fn watch_quorum(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(Duration::from_millis(self.heartbeat_ms.max(10)));
        loop {
            tokio::select! {
                _ = interval.tick() => self.refresh_serving().await,
                _ = stop.changed() => return,
            }
        }
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

    /// Notes that a session showed life here; followers relay these to the leader.
    pub fn touch(&self, session_id: SessionId) {
        if !self.standalone && !self.fatal.is_raised() {
            if let Ok(mut touched) = self.touched.lock() {
                touched.insert(session_id);
            }
        }
    }

    /// Makes this server's tree at least as new as the leader's commit point when `sync` was
    /// asked (a read-index round), so sync-then-read is linearizable.
    pub async fn sync(&self) -> Result<(), ConsensusError> {
        let index = if self.is_leader() {
            self.raft
                .ensure_linearizable(ReadPolicy::ReadIndex)
                .await
                .map_err(|error| ConsensusError::Raft(error.to_string()))?
                .index()
        } else {
            match self.call_leader(&PeerRequest::ReadIndex).await? {
                PeerResponse::ReadIndex(index) => index,
                other => return Err(ConsensusError::Leader(format!("{other:?}"))),
            }
        };
        let mut applied = self.applied_index.clone();
        let caught_up = tokio::time::timeout(
            Duration::from_millis(READ_INDEX_WAIT_MS_MAX),
            applied.wait_for(|applied| *applied >= index),
        )
        .await
        .map(|waited| waited.is_ok());
        match caught_up {
            Ok(true) => Ok(()),
            Ok(false) => Err(ConsensusError::Shutdown),
            Err(_) => Err(ConsensusError::Leader(
                "did not catch up with the read index".into(),
            )),
        }
    }

    async fn call_leader(&self, request: &PeerRequest) -> Result<PeerResponse, ConsensusError> {
        let (leader, address) = self.wait_for_leader().await?;
        let mut client = self.peer_client(leader, address);
        client
            .call(request, Duration::from_millis(LEADER_RPC_TIMEOUT_MS))
            .await
            .map_err(|error| ConsensusError::Leader(error.to_string()))
    }

    async fn wait_for_leader(&self) -> Result<(u64, String), ConsensusError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(LEADER_WAIT_MS_MAX);
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if tokio::time::timeout_at(deadline, metrics.changed())
                .await
                .is_err()
            {
                return Err(ConsensusError::NoLeader);
            }
        }
    }

    /// Orders this server's proposals: a batch at a time, to the local log when leading,
    /// forwarded in order otherwise. After a failed submit or a change of leader (or term),
    /// every command not yet applied here goes again, oldest first, before anything newer:
    /// the state machine skips the copies it already applied, so each write happens once and
    /// a session's writes keep their order. Only when no leader takes them for
    /// LEADER_WAIT_MS_MAX are they abandoned.
    async fn order_proposals(self: Arc<Self>, mut incoming: mpsc::Receiver<Proposal<M::Route>>) {
        let mut proposals = Vec::with_capacity(PROPOSAL_BATCH_MAX);
        let mut leader_moved = self.leader_moved.subscribe();
        // One connection to the leader, kept across batches (reopened when the leader moves).
        let mut forward: Option<PeerClient> = None;
        // The (leader, term) that holds every command sent so far, if the last submit worked.
        let mut delivered_to: Option<(u64, u64)> = None;
        let mut failing_since: Option<tokio::time::Instant> = None;
        loop {
            let retry = tokio::time::sleep(Duration::from_millis(FORWARD_RETRY_MS));
            let fresh = tokio::select! {
                count = incoming.recv_many(&mut proposals, PROPOSAL_BATCH_MAX) => {
                    if count == 0 {
                        return;
                    }
                    self.commands(&mut proposals)
                }
                changed = leader_moved.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    Vec::new()
                }
                () = retry, if failing_since.is_some() => Vec::new(),
            };
            let current = *leader_moved.borrow_and_update();
            let batch = if delivered_to.is_some() && delivered_to == current {
                fresh
            } else {
                self.pending.unacked()
            };
            if batch.is_empty() {
                continue;
            }
            // A leader that stops answering (paused, cut off) is given up as soon as another
            // is known: the batch goes again to that one (copies are skipped at apply).
            let mut moved = leader_moved.clone();
            let submitted = tokio::select! {
                submitted = self.submit(&batch, &mut forward) => submitted,
                _ = moved.changed() => {
                    forward = None;
                    Err(ConsensusError::Leader("the leader changed during the hand-over".into()))
                }
            };
            match submitted {
                Ok(target) => {
                    delivered_to = Some(target);
                    failing_since = None;
                }
                Err(error) => {
                    delivered_to = None;
                    let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= Duration::from_millis(LEADER_WAIT_MS_MAX) {
                        tracing::warn!(%error, "no leader took the pending writes; abandoning them");
                        for route in self.pending.drain() {
                            self.machine
                                .abandon(route, "leader changed while a write was pending");
                        }
                        failing_since = None;
                    } else {
                        tracing::debug!(%error, "writes not delivered yet; will re-send");
                    }
                }
            }
        }
    }

    /// Numbers new proposals and keeps them (with their routes) until applied here.
    fn commands(&self, proposals: &mut Vec<Proposal<M::Route>>) -> Vec<Command> {
        let mut commands = Vec::with_capacity(proposals.len());
        for proposal in proposals.drain(..) {
            let entry = TxnEntry {
                zxid: 0,
                time_ms: 0,
                session_id: proposal.session_id,
                auth: proposal.auth,
                op: proposal.op,
            };
            let mut body = Vec::new();
            encode_entry(&entry, &mut body);
            if body.len() > PROPOSAL_BYTES_MAX {
                tracing::warn!(
                    session = format_args!("0x{:x}", entry.session_id),
                    bytes = body.len(),
                    limit = PROPOSAL_BYTES_MAX,
                    "refusing a proposal above PROPOSAL_BYTES_MAX; closing its connection"
                );
                if let Some(route) = proposal.route {
                    self.machine.abandon(route, "request too large for the log");
                }
                continue;
            }
            let term = proposal
                .leader_only
                .then(|| self.raft.metrics().borrow_watched().current_term);
            let command = Command {
                origin: self.my_id,
                boot: self.my_boot,
                seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
                term,
                time_ms: 0,
                body,
            };
            self.pending.insert(&command, proposal.route);
            commands.push(command);
        }
        commands
    }

    /// One attempt to hand a batch to the leader (the local log when leading); returns the
    /// (leader, term) that took it.
    async fn submit(
        &self,
        commands: &[Command],
        forward: &mut Option<PeerClient>,
    ) -> Result<(u64, u64), ConsensusError> {
        let (leader, term, address) = self.leadership().ok_or(ConsensusError::NoLeader)?;
        if leader == self.my_id {
            self.append_as_leader(commands.to_vec()).await?;
            return Ok((leader, term));
        }
        if forward.as_ref().map(|client| client.target) != Some(leader) {
            *forward = Some(self.peer_client(leader, address));
        }
        let Some(client) = forward.as_mut() else {
            return Err(ConsensusError::NoLeader);
        };
        for part in forward_parts(commands) {
            let request = PeerRequest::Forward(part.to_vec());
            match client
                .call(&request, Duration::from_millis(LEADER_RPC_TIMEOUT_MS))
                .await
            {
                Ok(PeerResponse::Forwarded) => {}
                Ok(other) => return Err(ConsensusError::Leader(format!("{other:?}"))),
                Err(error) => return Err(ConsensusError::Leader(error.to_string())),
            }
        }
        Ok((leader, term))
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

    /// Stamps the leader's clock and appends, in order. Returns once the batch is queued in
    /// Raft; the replies come from apply.
    async fn append_as_leader(&self, mut commands: Vec<Command>) -> Result<(), ConsensusError> {
        let time_ms = self.clock.wall_ms();
        for command in &mut commands {
            command.time_ms = time_ms;
        }
        let results = self
            .raft
            .client_write_many(commands)
            .await
            .map_err(|error| ConsensusError::Raft(error.to_string()))?;
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut results = results;
            while let Some(result) = results.next().await {
                if let Ok(Err(error)) | Err(error) = result
                    .map_err(|e| e.to_string())
                    .map(|r| r.map_err(|e| e.to_string()))
                {
                    tracing::debug!(%error, "a proposal did not commit under this leader");
                }
            }
        });
        Ok(())
    }

    /// Whether a command of a follower's forwarded batch may be proposed (see [`Unforwardable`]).
    fn admit_forwarded(&self, command: &Command) -> Result<(), Unforwardable> {
        if command.body.len() > PROPOSAL_BYTES_MAX {
            return Err(Unforwardable::TooLarge {
                bytes: command.body.len(),
            });
        }
        if let Some(term) = command.term {
            return Err(Unforwardable::LeaderOnly { term });
        }
        let entry = decode_entry(&command.body)?;
        self.machine.admit_forwarded(&entry)?;
        Ok(())
    }

    async fn handle_peer(&self, request: PeerRequest) -> PeerResponse {
        let failed = |error: &dyn std::fmt::Display| PeerResponse::Failed(error.to_string());
        match request {
            PeerRequest::AppendEntries(rpc) => {
                if rpc.vote.committed {
                    self.heard_from(rpc.vote.leader_id.voted_for);
                }
                self.raft
                    .append_entries(rpc)
                    .await
                    .map_or_else(|e| failed(&e), PeerResponse::AppendEntries)
            }
            PeerRequest::Vote(rpc) => self
                .raft
                .vote(rpc)
                .await
                .map_or_else(|e| failed(&e), PeerResponse::Vote),
            PeerRequest::PreVote(rpc) => self
                .raft
                .pre_vote(rpc)
                .await
                .map_or_else(|e| failed(&e), PeerResponse::Vote),
            PeerRequest::Snapshot { vote, meta, data } => {
                // A leader sending a snapshot is alive, however long the transfer took.
                if vote.committed {
                    self.heard_from(vote.leader_id.voted_for);
                }
                let snapshot = openraft::Snapshot {
                    meta,
                    snapshot: data,
                };
                self.raft
                    .install_full_snapshot(vote, snapshot)
                    .await
                    .map_or_else(|e| failed(&e), PeerResponse::Snapshot)
            }
            PeerRequest::TransferLeader(rpc) => self
                .raft
                .handle_transfer_leader(rpc)
                .await
                .map_or_else(|e| failed(&e), PeerResponse::TransferLeader),
            PeerRequest::Forward(mut commands) => {
                if !self.is_leader() {
                    return PeerResponse::NotLeader(
                        self.raft.metrics().borrow_watched().current_leader,
                    );
                }
                commands.retain(|command| match self.admit_forwarded(command) {
                    Ok(()) => true,
                    Err(reason) => {
                        tracing::error!(
                            origin = command.origin,
                            seq = command.seq,
                            %reason,
                            "dropping a forwarded command"
                        );
                        false
                    }
                });
                match self.append_as_leader(commands).await {
                    Ok(()) => PeerResponse::Forwarded,
                    Err(error) => failed(&error),
                }
            }
            PeerRequest::Touch(sessions) => {
                self.machine.touch_sessions(&sessions);
                PeerResponse::Touched
            }
            PeerRequest::Reconfigure { edit, expected } => {
                PeerResponse::Reconfigured(self.reconfigure_as_leader(edit, expected).await)
            }
            PeerRequest::CheckReconfigure { edit, expected } => PeerResponse::Reconfigured(
                self.check_reconfigure_as_leader(edit.as_ref(), expected),
            ),
            PeerRequest::Membership { asker } => {
                let initialized = self.raft.is_initialized().await.unwrap_or(false);
                let view = self.membership();
                PeerResponse::Membership(initialized.then(|| (view.contains(asker), view.version)))
            }
            PeerRequest::HoldLeader { term } => self.hold_as_leader(term).await,
            PeerRequest::ReadIndex => {
                if !self.is_leader() {
                    return PeerResponse::NotLeader(
                        self.raft.metrics().borrow_watched().current_leader,
                    );
                }
                match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
                    Ok(read) => PeerResponse::ReadIndex(read.index()),
                    Err(error) => failed(&error),
                }
            }
        }
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

    /// Followers tell the leader, every half tick, which sessions showed life here.
    async fn relay_touches(self: Arc<Self>, tick_ms: u64, mut stop: watch::Receiver<bool>) {
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

    /// Stops Raft and the peer listener.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.raft.shutdown().await {
            tracing::warn!(%error, "raft did not shut down cleanly");
        }
    }
}

/// Splits a batch, in order, into runs of at most FORWARD_BYTES_MAX body bytes (a run holds at
/// least one command; each is at most PROPOSAL_BYTES_MAX).
fn forward_parts(commands: &[Command]) -> Vec<&[Command]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (at, command) in commands.iter().enumerate() {
        if at > start && bytes + command.body.len() > FORWARD_BYTES_MAX {
            parts.push(&commands[start..at]);
            start = at;
            bytes = 0;
        }
        bytes += command.body.len();
    }
    if start < commands.len() {
        parts.push(&commands[start..]);
    }
    parts
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
            snapshots_retained: 3,
            purge_interval_ms: 0,
            failpoints: Default::default(),
            fatal: Default::default(),
            quorum_auth: Default::default(),
            snapshot_chunk_bytes: network::SNAPSHOT_CHUNK_BYTES,
            storage_timings: Arc::default(),
            quorum_tls: None,
        }
    }

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

    #[test]
    fn forwarded_batches_are_split_by_bytes_in_order() {
        let command = |seq: u64, bytes: usize| Command {
            origin: 1,
            boot: 1,
            seq,
            term: None,
            time_ms: 0,
            body: vec![0; bytes],
        };
        let half = FORWARD_BYTES_MAX / 2;
        let commands = [
            command(1, half),
            command(2, half),
            command(3, 1),
            command(4, PROPOSAL_BYTES_MAX),
        ];
        let seqs: Vec<Vec<u64>> = forward_parts(&commands)
            .iter()
            .map(|part| part.iter().map(|c| c.seq).collect())
            .collect();
        assert_eq!(seqs, [vec![1, 2], vec![3, 4]]);
        assert!(forward_parts(&[]).is_empty());
    }
}
