//! `server`: the client-facing half of zkw. Listeners, one task per client connection,
//! per-session request order, four-letter words, and the apply-side routing of replies and
//! watch notifications. It must not know how a txn is applied (that is `txn`) nor how the log
//! is replicated (that is `consensus`).
//!
//! Entry points: [`serve`] binds the configured client port; [`run`] takes an already bound
//! listener (tests use port 0), and binds `secureClientPort` itself when one is configured:
//! there TLS is terminated (see `crate::tls`) and the decrypted stream goes to the same
//! connection code. With `sslQuorum=true`, [`run`] also turns on TLS for the peer transport.
//!
//! Fail-stop: a fatal error raised by any layer on the server's [`FatalSignal`] (see
//! `crate::fatal`) stops every connection from answering at once; [`run`] then logs one line,
//! stops within `FATAL_SHUTDOWN_MS_MAX` and returns [`ServerError::Fatal`].
//!
//! Shared state and its lock order (never take them in another order):
//! `store` (tree + watches) → `connections` → `tracker`. All are std mutexes held briefly and
//! never across an `.await`.

mod apply;
mod connection;
mod dispatch;
pub use dispatch::identities;
pub mod facts;
pub(crate) mod four_letter;
mod handshakes;
mod outbound;
mod reconfig;
pub mod stats;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::config::{PeerRole, QuorumAuthConfig};
use crate::consensus::failpoint::{FailpointError, Failpoints};
use crate::consensus::handshake::QuorumAuth;
use crate::consensus::log::LogMedium;
use crate::consensus::network::QuorumTls;
use crate::consensus::{Consensus, ConsensusConfig, ConsensusError, Member, Proposal, Proposer};
use crate::fatal::{Fatal, FatalSignal, FATAL_LOG_PREFIX, FATAL_SHUTDOWN_MS_MAX};
use crate::net::{Listener, TcpTransport, Transport};
use crate::proto::{perms, Acl, Id, SessionId};
use crate::session::SessionTracker;
use crate::timing::StorageTimings;
use crate::tree::watch::WatchRegistry;
use crate::tree::{acl, Tree};
use crate::txn::codec::encode_entry;
use crate::txn::{TxnEntry, TxnOp};
use crate::wasm::Runtime;
use apply::{Applier, Route};
use outbound::Outbound;
use stats::{ConnectionStats, ServerStats};

/// Ceiling on simultaneous client connections, whatever maxClientCnxns says per IP.
pub const CONNECTIONS_MAX: usize = 60_000;
/// How long shutdown waits for connection tasks to finish.
pub const SHUTDOWN_GRACE_MS: u64 = 2_000;
/// How long a standalone server waits to serve (to elect itself, one election timeout)
/// before it accepts clients anyway (then 4lw report "not currently serving").
pub const STANDALONE_SERVING_WAIT_MS_MAX: u64 = 10_000;
/// The version reported by srvr/stat/envi: the ZooKeeper protocol level zkw speaks, then zkw's.
pub const VERSION_STRING: &str = concat!("3.9.3-zkw-", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A client port is taken (another server?). The io error is shown, not chained, so it
    /// is printed once.
    #[error("cannot listen on {address} ({key}): {error}")]
    Bind {
        key: &'static str,
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot read the listener's address: {0}")]
    LocalAddress(std::io::Error),
    #[error("consensus: {0}")]
    Consensus(#[from] ConsensusError),
    #[error("{0}")]
    Recipes(#[from] crate::wasm::WasmError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("server.{id} address {address}: {reason}")]
    PeerAddress {
        id: u64,
        address: String,
        reason: String,
    },
    #[error("quorum.auth.secretFile {path}: {reason}")]
    QuorumSecret { path: PathBuf, reason: String },
    /// This server's quorum port is taken: most often another server with the same myid.
    #[error(
        "cannot listen on quorum port {port} of server.{id} ({address}; {id} is this server's \
         myid): {error}{hint}"
    )]
    QuorumPort {
        id: u64,
        port: u16,
        address: SocketAddr,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("ZKW_FAILPOINTS: {0}")]
    Failpoints(#[from] FailpointError),
    /// Not chained either: the io error is printed once.
    #[error("cannot write the pid file {path}: {error}")]
    PidFile {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The server failed stop (already logged, once, by [`run`]).
    #[error("{FATAL_LOG_PREFIX} {0}")]
    Fatal(Arc<Fatal>),
}

/// Where compiled recipe modules are cached, under `<dataDir>/version-2`.
pub const RECIPE_CACHE_DIR: &str = "recipe-cache";

/// The replicated tree, this server's (unreplicated) watch registry, and the recipe runtime
/// (its installed set derives from the tree).
#[derive(Debug)]
pub struct Store {
    pub tree: Tree,
    pub watches: WatchRegistry,
    pub recipes: Runtime,
}

/// One live client connection, for routing and for `cons`.
#[derive(Debug)]
pub struct ConnectionEntry {
    pub peer: SocketAddr,
    pub outbound: Outbound,
    pub session_id: Option<SessionId>,
    pub timeout_ms: i32,
    pub established_wall_ms: i64,
    pub stats: Arc<ConnectionStats>,
    /// Accepted on the secure client port (listed under `secure_connections`).
    pub secure: bool,
    /// The identities of the session on this connection (its `ConnectionState::auth`): watch
    /// notifications are filtered by READ with them.
    auth: Vec<Id>,
    /// Counted against maxClientCnxns: until the connection starts closing (see
    /// [`Connections::release`]), not until its task ends.
    counted: bool,
}

/// Every connection by id, the session attached to each, and counts per client address
/// ([`counted_address`]).
#[derive(Debug, Default)]
pub struct Connections {
    entries: BTreeMap<u64, ConnectionEntry>,
    by_session: HashMap<SessionId, u64>,
    per_ip: HashMap<IpAddr, u32>,
}

/// Bits of an IPv6 address that name one client for maxClientCnxns: its /64, the block one
/// host or site usually holds (it can pick any address inside). ZooKeeper counts exact
/// addresses.
pub const IPV6_COUNTED_PREFIX_BITS: u32 = 64;

/// The key maxClientCnxns counts `ip` under: an IPv4 address (an IPv4-mapped IPv6 one too) as
/// is, an IPv6 one by its /64.
pub fn counted_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_COUNTED_PREFIX_BITS);
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

impl Connections {
    pub fn outbound_of(&self, session_id: SessionId) -> Option<&Outbound> {
        self.entry_of(session_id).map(|entry| &entry.outbound)
    }

    fn entry_of(&self, session_id: SessionId) -> Option<&ConnectionEntry> {
        let id = self.by_session.get(&session_id)?;
        self.entries.get(id)
    }

    /// Whether the session, with the identities of its connection here, may READ a node with
    /// `acl`: who hears of a watch event (as ZooKeeper 3.9.2+, after CVE-2024-23944).
    pub fn may_read(&self, session_id: SessionId, acl: &[Acl]) -> bool {
        self.entry_of(session_id)
            .is_some_and(|entry| acl::check(acl, &entry.auth, perms::READ).is_ok())
    }

    /// Binds a session to a connection, with the identities it starts with; returns the
    /// connection it was bound to before.
    fn attach(
        &mut self,
        connection_id: u64,
        session_id: SessionId,
        timeout_ms: i32,
        auth: Vec<Id>,
    ) -> Option<u64> {
        if let Some(entry) = self.entries.get_mut(&connection_id) {
            entry.session_id = Some(session_id);
            entry.timeout_ms = timeout_ms;
            entry.auth = auth;
        }
        self.by_session
            .insert(session_id, connection_id)
            .filter(|old| *old != connection_id)
    }

    /// The connection's identities after an addauth.
    fn set_auth(&mut self, connection_id: u64, auth: Vec<Id>) {
        if let Some(entry) = self.entries.get_mut(&connection_id) {
            entry.auth = auth;
        }
    }

    fn remove(&mut self, connection_id: u64) -> Option<ConnectionEntry> {
        self.release(connection_id);
        let entry = self.entries.remove(&connection_id)?;
        if let Some(session_id) = entry.session_id {
            if self.by_session.get(&session_id) == Some(&connection_id) {
                self.by_session.remove(&session_id);
            }
        }
        Some(entry)
    }

    /// Stops counting a connection against maxClientCnxns once it is closing: the server
    /// decided to close it (its last frames, such as the closeSession reply, are being
    /// written) or the peer closed it. A client that got its closeSession reply and connects
    /// again at once must find its slot free, though this connection's task may still be
    /// flushing or unregistering. Idempotent.
    fn release(&mut self, connection_id: u64) {
        let Some(entry) = self.entries.get_mut(&connection_id) else {
            return;
        };
        if !std::mem::replace(&mut entry.counted, false) {
            return;
        }
        let ip = counted_address(entry.peer.ip());
        if let Some(count) = self.per_ip.get_mut(&ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Connections from `ip` (its [`counted_address`]) counted against maxClientCnxns.
    fn counted_from(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&counted_address(ip)).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConnectionEntry> {
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// State shared by all connection tasks and the applier.
pub struct Shared {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub local_address: SocketAddr,
    store: Mutex<Store>,
    connections: Mutex<Connections>,
    tracker: Mutex<SessionTracker>,
    pub stats: ServerStats,
    next_session_id: AtomicI64,
    next_connection_id: AtomicU64,
    pub started_monotonic_ms: u64,
    /// Raised once this server must stop: from then on it answers and relays nothing.
    pub fatal: FatalSignal,
    /// Its log's fdatasync and snapshot timings (recorded by consensus, read by `mntr`).
    pub storage_timings: Arc<StorageTimings>,
    /// Sessions that showed life here since the last relay to the leader (ensembles only).
    alive: Mutex<HashSet<SessionId>>,
}

impl Shared {
    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        // A poisoned lock means a panic mid-apply: the tree may be half-changed, so stop.
        self.store.lock().unwrap_or_else(|_| self.poisoned("store"))
    }

    pub fn lock_connections(&self) -> MutexGuard<'_, Connections> {
        self.connections
            .lock()
            .unwrap_or_else(|_| self.poisoned("connections"))
    }

    /// See [`Connections::release`].
    pub fn release_connection_slot(&self, connection_id: u64) {
        self.lock_connections().release(connection_id);
    }

    /// Notes that a session showed life on this server: a follower relays it to its leader,
    /// whose tracker decides expiry (a failing server relays nothing, so its clients' sessions
    /// can expire).
    pub fn note_alive(&self, session_id: SessionId) {
        if self.config.is_distributed() && !self.fatal.is_raised() {
            if let Ok(mut alive) = self.alive.lock() {
                alive.insert(session_id);
            }
        }
    }

    pub fn lock_tracker(&self) -> MutexGuard<'_, SessionTracker> {
        self.tracker
            .lock()
            .unwrap_or_else(|_| self.poisoned("tracker"))
    }

    /// A lock poisoned by a panic is never used again: the server fails stop (raised, so
    /// [`run`] returns the error) and the caller's task ends here. In the binary the panic hook
    /// has already aborted the process at the first panic.
    fn poisoned(&self, lock: &'static str) -> ! {
        self.fatal.raise(Fatal::LockPoisoned { lock });
        panic!("the {lock} lock is poisoned: failing stop");
    }

    /// ZooKeeper's session id layout: server id in the top byte, then the start time, then a
    /// counter; never Long.MIN_VALUE (the container marker).
    fn initial_session_id(server_id: u64, wall_ms: i64) -> i64 {
        let time_part = ((wall_ms << 24) as u64 >> 8) as i64;
        let id = time_part | ((server_id as i64) << 56);
        if id == i64::MIN {
            id + 1
        } else {
            id
        }
    }

    pub fn new_session_id(&self) -> SessionId {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A txn this server proposes: encoded here, so consensus orders bytes it does not read.
pub(crate) struct TxnProposal {
    pub session_id: SessionId,
    pub auth: Vec<Id>,
    pub op: TxnOp,
    pub route: Option<Route>,
    /// See [`Proposal::leader_only`].
    pub leader_only: bool,
}

impl TxnProposal {
    /// Hands the encoded txn to the log (an error: consensus is shut down).
    pub(crate) async fn propose(self, proposer: &Proposer<Route>) -> Result<(), ConsensusError> {
        let entry = TxnEntry {
            zxid: 0,
            time_ms: 0,
            session_id: self.session_id,
            auth: self.auth,
            op: self.op,
        };
        let mut body = Vec::new();
        encode_entry(&entry, &mut body);
        let proposal = Proposal {
            body,
            route: self.route,
            leader_only: self.leader_only,
        };
        proposer.propose(proposal).await
    }
}

/// Everything a connection task needs.
#[derive(Clone)]
pub struct Context {
    pub shared: Arc<Shared>,
    pub proposer: Proposer<Route>,
    pub consensus: Arc<Consensus<Applier>>,
}

/// Binds the configured client address and serves until `shutdown` completes.
pub async fn serve(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let ip = config
        .client_port_address
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let address = SocketAddr::new(ip, config.client_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| ServerError::Bind {
            key: "clientPort",
            address,
            error,
        })?;
    run(config, listener, shutdown, Seams::real()).await
}

/// What a server takes from its surroundings rather than from the process: its clock, its
/// quorum-port network and the medium of its Raft log. A test runs several servers in one
/// process on one simulated network, each log on an in-memory disk it can power-cut.
#[derive(Clone)]
pub struct Seams {
    pub clock: Arc<dyn Clock>,
    pub peers: Arc<dyn Transport>,
    pub log: LogMedium,
    /// A client port on another network besides the TCP one (the simulator's): clients that
    /// dial this address on this transport are served as on the client port.
    pub clients: Option<(Arc<dyn Transport>, SocketAddr)>,
}

impl Seams {
    /// The system clock, TCP and the log directory.
    pub fn real() -> Seams {
        Seams {
            clock: Arc::new(SystemClock::new()),
            peers: Arc::new(TcpTransport),
            log: LogMedium::Directory,
            clients: None,
        }
    }
}

/// Serves clients on `listener` until `shutdown` completes.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    seams: Seams,
) -> Result<(), ServerError> {
    let Seams {
        clock,
        peers,
        log,
        clients,
    } = seams;
    let local_address = listener.local_addr().map_err(ServerError::LocalAddress)?;
    let secure = bind_secure(&config).await?;
    let mut other_port =
        match clients {
            Some((transport, address)) => Some(transport.listen(address).await.map_err(
                |error| ServerError::Bind {
                    key: "clientPort",
                    address,
                    error,
                },
            )?),
            None => None,
        };
    let fatal = FatalSignal::new();
    let server_id = config.my_id.unwrap_or(0);
    let mut tree = Tree::new();
    tree.set_extended_types_enabled(config.extended_types_enabled);
    let cache_dir = config.data_dir.join("version-2").join(RECIPE_CACHE_DIR);
    let store = Store {
        tree,
        watches: WatchRegistry::new(
            usize::try_from(config.max_watches_per_session).unwrap_or(usize::MAX),
        ),
        recipes: Runtime::new(
            Some(cache_dir),
            crate::txn::recipe_op,
            config.recipe_txn_fuel_max,
        )?,
    };
    let shared = Arc::new(Shared {
        tracker: Mutex::new(SessionTracker::new(u64::from(config.tick_time_ms))),
        next_session_id: AtomicI64::new(Shared::initial_session_id(server_id, clock.wall_ms())),
        next_connection_id: AtomicU64::new(1),
        started_monotonic_ms: clock.monotonic_ms(),
        store: Mutex::new(store),
        connections: Mutex::new(Connections::default()),
        stats: ServerStats::default(),
        local_address,
        clock: Arc::clone(&clock),
        config,
        fatal: fatal.clone(),
        storage_timings: Arc::default(),
        alive: Mutex::default(),
    });
    let consensus_config = consensus_config(&shared, &fatal, peers, log).await?;
    let applier = Arc::new(Applier {
        shared: Arc::clone(&shared),
    });
    let started = Consensus::start(consensus_config, applier, clock).await;
    if let Some(cause) = fatal.cause() {
        // The log failed while starting (its first append, say): the cause, not its echo.
        return Err(failed_stop(cause));
    }
    let (consensus, proposer) = started.map_err(|error| consensus_error(&shared.config, error))?;
    let context = Context {
        shared: Arc::clone(&shared),
        proposer,
        consensus: Arc::clone(&consensus),
    };
    tracing::info!(address = %local_address, "zkw serving clients");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut background = tokio::task::JoinSet::new();
    for task in [
        tokio::spawn(propose_while_leading(
            context.clone(),
            expiry_period(&shared.config),
            stop_rx.clone(),
            expired_sessions,
        )),
        tokio::spawn(propose_while_leading(
            context.clone(),
            Duration::from_millis(shared.config.container_check_interval_ms.max(1)),
            stop_rx.clone(),
            reapable_nodes,
        )),
        tokio::spawn(drop_clients_without_quorum(
            context.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(reconfig::publish_ensemble_config(
            context.clone(),
            stop_rx.clone(),
        )),
        tokio::spawn(propose_recipe_duties(context.clone(), stop_rx.clone())),
        tokio::spawn(relay_liveness(context.clone(), stop_rx.clone())),
    ] {
        background.spawn(async move { task.await.map_err(|error| ("background", error)) });
    }
    let side_doors = crate::admin::spawn(&context, &stop_rx);
    let mut connection_tasks = tokio::task::JoinSet::new();
    let raised = fatal.raised();
    tokio::pin!(shutdown, raised);
    let mut failed = None;
    // A standalone server takes clients once it serves: its first `imok` means a create works.
    let open = tokio::select! {
        () = &mut shutdown => false,
        cause = &mut raised => {
            failed = Some(cause);
            false
        }
        () = wait_standalone_serving(&context) => true,
    };
    // Taking clients now: the pid file tells `zkw server start` so.
    let pid_written = match (&shared.config.pid_file, open) {
        (Some(path), true) => write_pid_file(path).await,
        (None, _) | (_, false) => Ok(()),
    };
    let open = open && pid_written.is_ok();
    if open {
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                cause = &mut raised => {
                    failed = Some(cause);
                    break;
                }
                Some(joined) = background.join_next(), if !background.is_empty() => {
                    if let Ok(Err((task, error))) = joined {
                        raise_if_panicked(&fatal, task, error);
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if let Some(admitted) = admit(&shared, peer, false) {
                            connection_tasks.spawn(connection::run(context.clone(), stream, admitted));
                        }
                    }
                    Err(error) => back_off_after("clientPort", error).await,
                },
                accepted = accept_other(other_port.as_mut()) => match accepted {
                    Ok((stream, peer)) => {
                        if let Some(admitted) = admit(&shared, peer, false) {
                            connection_tasks.spawn(connection::run_stream(context.clone(), stream, admitted));
                        }
                    }
                    Err(error) => back_off_after("clientPort (other network)", error).await,
                },
                accepted = accept_secure(secure.as_ref()) => match accepted {
                    Ok((stream, peer)) => if let Some(secure) = &secure {
                        match secure.handshakes.begin(peer.ip()) {
                            Ok(slot) => {
                                let (acceptor, timeout) = (secure.acceptor.clone(), secure.handshake_timeout);
                                connection_tasks.spawn(serve_secure(context.clone(), (acceptor, timeout, slot), stream, peer));
                            }
                            Err((refusal, first)) => {
                                if first {
                                    tracing::warn!(%peer, %refusal, "closing new TLS connections until a handshake ends");
                                }
                                drop(stream);
                            }
                        }
                    },
                    Err(error) => back_off_after("secureClientPort", error).await,
                },
                Some(joined) = connection_tasks.join_next(), if !connection_tasks.is_empty() => {
                    if let Err(error) = joined {
                        raise_if_panicked(&fatal, "connection", error);
                    }
                }
            }
        }
    }
    let stopping = Stopping {
        stop_tx,
        connection_tasks,
        background,
        side_doors,
    };
    let Some(cause) = failed else {
        tracing::info!("shutting down: closing client connections");
        stopping.run(&shared, context, &consensus).await;
        pid_written?;
        // A failure during the shutdown itself still exits non-zero.
        return fatal
            .cause()
            .map_or(Ok(()), |cause| Err(failed_stop(cause)));
    };
    let error = failed_stop(cause);
    // Already answering nothing (the flag is up); now stop, within a bound: a disk that hangs
    // in fdatasync must not keep a failed server alive.
    let bound = Duration::from_millis(FATAL_SHUTDOWN_MS_MAX);
    if tokio::time::timeout(bound, stopping.run(&shared, context, &consensus))
        .await
        .is_err()
    {
        tracing::warn!(
            bound_ms = FATAL_SHUTDOWN_MS_MAX,
            "shutdown after a fatal error timed out"
        );
    }
    Err(error)
}

/// A consensus start-up error; a taken quorum port names the port, key and server id.
fn consensus_error(config: &Config, error: ConsensusError) -> ServerError {
    match error {
        ConsensusError::QuorumPort { address, error } => ServerError::QuorumPort {
            id: config.my_id.unwrap_or(0),
            port: address.port(),
            address,
            hint: if error.kind() == std::io::ErrorKind::AddrInUse {
                "; is another server running with the same myid?"
            } else {
                ""
            },
            error,
        },
        other @ (ConsensusError::Shutdown
        | ConsensusError::NoLeader
        | ConsensusError::Leader(_)
        | ConsensusError::Storage(_)
        | ConsensusError::Raft(_)) => ServerError::Consensus(other),
    }
}

/// Writes this process's id into `path`.
async fn write_pid_file(path: &Path) -> Result<(), ServerError> {
    tokio::fs::write(path, std::process::id().to_string())
        .await
        .map_err(|error| ServerError::PidFile {
            path: path.to_path_buf(),
            error,
        })
}

/// Logs the one fail-stop line and makes the error `run` returns.
fn failed_stop(cause: Arc<Fatal>) -> ServerError {
    tracing::error!(
        exit_status = cause.exit_status(),
        "{FATAL_LOG_PREFIX} {cause}; stopping"
    );
    ServerError::Fatal(cause)
}

/// A task of this server that panicked (caught by tokio when unwinding; the binary aborts
/// first) leaves the server in an unknown state: fail stop.
fn raise_if_panicked(fatal: &FatalSignal, task: &str, error: tokio::task::JoinError) {
    if error.is_panic() {
        let payload = error.into_panic();
        fatal.raise(Fatal::Panicked {
            task: task.to_owned(),
            message: crate::fatal::panic_message(&*payload).to_owned(),
        });
    }
}

/// What `run` stops on its way out.
struct Stopping {
    stop_tx: tokio::sync::watch::Sender<bool>,
    connection_tasks: tokio::task::JoinSet<()>,
    background: tokio::task::JoinSet<Result<(), (&'static str, tokio::task::JoinError)>>,
    side_doors: Vec<tokio::task::JoinHandle<()>>,
}

impl Stopping {
    /// Closes every connection, stops the background tasks, then Raft.
    async fn run(mut self, shared: &Shared, context: Context, consensus: &Consensus<Applier>) {
        let _ = self.stop_tx.send(true);
        for entry in shared.lock_connections().iter() {
            entry.outbound.close("server shutting down");
        }
        let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
        let _ = tokio::time::timeout(grace, async {
            while self.connection_tasks.join_next().await.is_some() {}
        })
        .await;
        self.connection_tasks.abort_all();
        while self.background.join_next().await.is_some() {}
        // The admin and metrics servers may hold idle keep-alive connections: do not wait.
        for task in self.side_doors {
            task.abort();
        }
        drop(context);
        consensus.shutdown().await;
    }
}

/// A standalone server accepts clients only once it serves: until it has elected itself a
/// ConnectRequest would be refused, and a client that just got `imok` from `ruok` (the
/// readiness probe of scripts and test suites) must get a session at once. Connections made
/// meanwhile wait in the listen backlog. An ensemble accepts at once: its members answer
/// four-letter words (srvr: "not currently serving") while no quorum is formed.
async fn wait_standalone_serving(context: &Context) {
    if context.shared.config.is_distributed() {
        return;
    }
    let mut serving = context.consensus.serving();
    let bound = Duration::from_millis(STANDALONE_SERVING_WAIT_MS_MAX);
    let served = tokio::time::timeout(bound, serving.wait_for(|serving| *serving))
        .await
        .is_ok_and(|waited| waited.is_ok());
    if !served {
        tracing::warn!(
            wait_ms = STANDALONE_SERVING_WAIT_MS_MAX,
            "not serving yet; accepting clients anyway"
        );
    }
}

/// The secure client port: its listener and the TLS acceptor built from `ssl.*`.
struct SecureListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    handshakes: Arc<handshakes::Handshakes>,
}

/// Binds `secureClientPort` when configured (its TLS setup is checked before binding).
async fn bind_secure(config: &Config) -> Result<Option<SecureListener>, ServerError> {
    let Some(port) = config.secure_client_port else {
        return Ok(None);
    };
    let acceptor = TlsAcceptor::from(crate::tls::server_config(&config.tls.client)?);
    let ip = config
        .secure_client_port_address
        .or(config.client_port_address)
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let address = SocketAddr::new(ip, port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|error| ServerError::Bind {
            key: "secureClientPort",
            address,
            error,
        })?;
    tracing::info!(%address, "zkw serving TLS clients");
    Ok(Some(SecureListener {
        listener,
        acceptor,
        handshake_timeout: Duration::from_millis(config.tls.client.handshake_timeout_ms),
        handshakes: Arc::default(),
    }))
}

/// Pause after a failed accept (out of file descriptors, most likely), in milliseconds.
const ACCEPT_BACKOFF_MS: u64 = 50;

async fn back_off_after(port: &'static str, error: std::io::Error) {
    tracing::warn!(port, %error, "accept failed; backing off");
    tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
}

/// Accepts on the client port of another network (`Seams::clients`); never completes when
/// there is none.
async fn accept_other(
    listener: Option<&mut Box<dyn Listener>>,
) -> std::io::Result<(crate::net::Stream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts on the secure port; never completes when there is none.
async fn accept_secure(
    secure: Option<&SecureListener>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match secure {
        Some(secure) => secure.listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Completes the TLS handshake (bounded in time; `slot` counts it among those in progress,
/// see `handshakes`), then runs the connection as on the plain port. A
/// client that does not speak TLS, or lacks a certificate the port needs, is logged and closed.
async fn serve_secure(
    context: Context,
    (acceptor, timeout, slot): (TlsAcceptor, Duration, handshakes::HandshakeSlot),
    stream: TcpStream,
    peer: SocketAddr,
) {
    let _ = stream.set_nodelay(true);
    let handshake = tokio::time::timeout(timeout, acceptor.accept(stream)).await;
    drop(slot);
    let stream = match handshake {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "TLS handshake failed on the secure client port; closing");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, ?timeout, "TLS handshake timed out on the secure client port; closing");
            return;
        }
    };
    if let Some(admitted) = admit(&context.shared, peer, true) {
        connection::run_stream(context, stream, admitted).await;
    }
}

/// Applies maxClientCnxns and the global ceiling; registers the connection when admitted.
fn admit(shared: &Shared, peer: SocketAddr, secure: bool) -> Option<connection::Admitted> {
    let per_ip_max = shared.config.max_client_connections;
    let mut connections = shared.lock_connections();
    let count = connections.counted_from(peer.ip());
    if (per_ip_max > 0 && count >= per_ip_max) || connections.len() >= CONNECTIONS_MAX {
        shared
            .stats
            .connections_rejected
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            peer = %peer.ip(),
            max = per_ip_max,
            "too many connections from this address; closing the new one"
        );
        return None;
    }
    let connection_id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
    *connections
        .per_ip
        .entry(counted_address(peer.ip()))
        .or_insert(0) += 1;
    let (outbound, receiver) = outbound::channel(connection::SESSIONLESS_CONNECTION_MS_MAX);
    let stats = Arc::new(ConnectionStats::default());
    connections.entries.insert(
        connection_id,
        ConnectionEntry {
            peer,
            outbound: outbound.clone(),
            session_id: None,
            timeout_ms: 0,
            established_wall_ms: shared.clock.wall_ms(),
            stats: Arc::clone(&stats),
            secure,
            auth: Vec::new(),
            counted: true,
        },
    );
    Some(connection::Admitted {
        id: connection_id,
        peer,
        outbound,
        receiver,
        stats,
    })
}

/// Every half tick, a follower tells its leader which sessions showed life here (ZooKeeper's
/// followers report theirs with each ping to the leader). On the leader the connections
/// touched its tracker themselves: nothing to relay.
async fn relay_liveness(context: Context, mut stop: tokio::sync::watch::Receiver<bool>) {
    let tick_ms = u64::from(context.shared.config.tick_time_ms);
    let mut interval = tokio::time::interval(Duration::from_millis((tick_ms / 2).max(10)));
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        let sessions: Vec<SessionId> = match context.shared.alive.lock() {
            Ok(mut alive) => alive.drain().collect(),
            Err(_) => return,
        };
        if sessions.is_empty() || context.consensus.is_leader() || context.shared.fatal.is_raised()
        {
            continue;
        }
        let body = crate::session::encode_relay(&sessions);
        let timeout = Duration::from_millis(tick_ms.max(100));
        if let Err(error) = context.consensus.relay_to_leader(body, timeout).await {
            tracing::debug!(%error, "could not relay session liveness to the leader");
        }
    }
}

/// Every `period`, while this server leads, proposes the txns `due` finds (leader-only
/// decisions: they count only if they commit in this leader's term).
async fn propose_while_leading(
    context: Context,
    period: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    due: fn(&Shared) -> Vec<(SessionId, TxnOp)>,
) {
    let mut interval = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return,
        }
        if !context.consensus.is_leader() {
            continue;
        }
        for (session_id, op) in due(&context.shared) {
            let proposal = TxnProposal {
                session_id,
                auth: Vec::new(),
                op,
                route: None,
                leader_only: true,
            };
            if proposal.propose(&context.proposer).await.is_err() {
                return;
            }
        }
    }
}

/// How often the leader looks for due recipe timers, in milliseconds (the shortest timer a
/// recipe may ask for is `wasm::manifest::TIMER_MS_MIN`).
const RECIPE_TIMER_POLL_MS: u64 = 50;

/// While leading: once per term, the runtime fingerprint (engine and per-txn fuel cap: a
/// replica that would run recipes or end recipe txns differently stops), then the recipe
/// timers as they fall due.
async fn propose_recipe_duties(context: Context, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(RECIPE_TIMER_POLL_MS));
    let mut checked_in = None;
    // A new term's check goes as soon as this server serves, ahead of its clients' first
    // writes, rather than up to a poll later in the middle of them.
    let mut serving = context.consensus.serving();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = serving.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
        let Some(term) = context.consensus.leader_term() else {
            continue;
        };
        let mut ops = Vec::new();
        if checked_in != Some(term) {
            checked_in = Some(term);
            ops.push(TxnOp::RuntimeCheck {
                fingerprint: context.shared.lock_store().recipes.fingerprint(),
            });
        }
        let now_ms = context.shared.clock.wall_ms();
        let names = context.shared.lock_store().recipes.timers_due(now_ms);
        if !names.is_empty() {
            ops.push(TxnOp::RecipeTimer { names });
        }
        for op in ops {
            let proposal = TxnProposal {
                session_id: 0,
                auth: Vec::new(),
                op,
                route: None,
                leader_only: true,
            };
            if proposal.propose(&context.proposer).await.is_err() {
                return;
            }
        }
    }
}

/// Sessions are checked a few times per tick (their deadlines are tick-aligned buckets).
fn expiry_period(config: &Config) -> Duration {
    Duration::from_millis((u64::from(config.tick_time_ms) / 4).clamp(10, 500))
}

/// CloseSession for every session whose deadline passed (the leader decides expiry;
/// followers relay liveness to it).
fn expired_sessions(shared: &Shared) -> Vec<(SessionId, TxnOp)> {
    let now_ms = shared.clock.monotonic_ms();
    let expired = shared.lock_tracker().expired(now_ms);
    expired
        .into_iter()
        .map(|session_id| {
            tracing::info!(
                session = format_args!("0x{session_id:x}"),
                "expiring session"
            );
            (session_id, TxnOp::CloseSession)
        })
        .collect()
}

/// Containers left empty and TTL nodes past their time, every
/// `znode.container.checkIntervalMs`, as ZooKeeper's ContainerManager does; apply re-checks.
fn reapable_nodes(shared: &Shared) -> Vec<(SessionId, TxnOp)> {
    let now_ms = shared.clock.wall_ms();
    let paths = shared.lock_store().tree.reapable(now_ms);
    paths
        .into_iter()
        .map(|path| (0, TxnOp::Reap { path }))
        .collect()
}

/// When this server stops serving (no leader, or a leader without its quorum), every client
/// connection is closed so the clients move to a server that does serve, as ZooKeeper's
/// servers drop their clients when they leave the quorum.
async fn drop_clients_without_quorum(
    context: Context,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut serving = context.consensus.serving();
    loop {
        tokio::select! {
            changed = serving.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
        if *serving.borrow_and_update() {
            continue;
        }
        let connections = context.shared.lock_connections();
        tracing::warn!(
            clients = connections.len(),
            "lost the quorum: closing client connections"
        );
        for entry in connections.iter() {
            entry.outbound.close("server lost its quorum");
        }
    }
}

/// The consensus view of the configuration: a standalone server is a one-voter cluster; an
/// ensemble takes its members from the `server.N` lines (observers become learners) and
/// listens for peers on this server's quorum port. Storage failures are raised on `fatal`.
async fn consensus_config(
    shared: &Shared,
    fatal: &FatalSignal,
    transport: Arc<dyn Transport>,
    log_medium: LogMedium,
) -> Result<ConsensusConfig, ServerError> {
    let config = &shared.config;
    let my_id = config.my_id.unwrap_or(0);
    let members: Vec<Member> = if config.is_distributed() {
        config
            .servers
            .iter()
            .map(|server| Member {
                id: server.id,
                address: format!("{}:{}", server.host, server.quorum_port),
                spec: server.spec(),
                observer: server.role == PeerRole::Observer,
            })
            .collect()
    } else {
        Vec::new()
    };
    let listen = match members.iter().find(|member| member.id == my_id) {
        Some(me) => Some(resolve(me.id, &me.address).await?),
        None => None,
    };
    Ok(ConsensusConfig {
        my_id,
        members,
        listen,
        data_dir: config.data_dir.clone(),
        log_dir: config.log_dir().to_path_buf(),
        tick_ms: u64::from(config.tick_time_ms),
        sync_limit_ticks: u64::from(config.sync_limit_ticks),
        init_limit_ticks: u64::from(config.init_limit_ticks),
        snap_count: config.snap_count,
        log_kept_behind_snapshot: config.commit_log_count,
        snapshots_retained: usize::try_from(config.autopurge_snap_retain_count).unwrap_or(3),
        purge_interval_ms: u64::from(config.autopurge_purge_interval_hours)
            * crate::consensus::purge::PURGE_INTERVAL_MS_PER_HOUR,
        failpoints: failpoints(&config.failpoints)?,
        fatal: fatal.clone(),
        quorum_auth: quorum_auth(&config.quorum_auth)?,
        snapshot_chunk_bytes: config.snapshot_chunk_bytes,
        storage_timings: Arc::clone(&shared.storage_timings),
        quorum_tls: quorum_tls(config)?,
        transport,
        log_medium,
    })
}

/// Mutual TLS between peers with `sslQuorum=true`, from the ssl.quorum keys.
fn quorum_tls(config: &Config) -> Result<Option<Arc<QuorumTls>>, ServerError> {
    if !config.tls.quorum_enabled {
        return Ok(None);
    }
    let tls = QuorumTls::new(&config.tls.quorum)?;
    tracing::info!("quorum TLS on: peers authenticate each other with certificates");
    Ok(Some(Arc::new(tls)))
}

/// The `quorum.auth.*` keys with the secret read from its file (surrounding whitespace, such
/// as the file's final newline, is not part of it). The secret is never logged.
fn quorum_auth(config: &QuorumAuthConfig) -> Result<QuorumAuth, ServerError> {
    let secret = match (&config.secret_file, config.enable_sasl) {
        (Some(path), true) => {
            let failed = |reason: String| ServerError::QuorumSecret {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
            let secret = text.trim().to_owned();
            if secret.is_empty() {
                return Err(failed("the file holds no secret".to_owned()));
            }
            Some(secret)
        }
        _ => None,
    };
    let secret = secret.as_deref().map(str::as_bytes);
    Ok(QuorumAuth::new(
        secret,
        config.learner_require_sasl,
        config.server_require_sasl,
    ))
}

async fn resolve(id: u64, address: &str) -> Result<SocketAddr, ServerError> {
    let failed = |reason: String| ServerError::PeerAddress {
        id,
        address: address.to_owned(),
        reason,
    };
    let mut addresses = tokio::net::lookup_host(address)
        .await
        .map_err(|error| failed(error.to_string()))?;
    addresses
        .next()
        .ok_or_else(|| failed("resolves to no address".to_owned()))
}

/// The failpoints `ZKW_FAILPOINTS` arms. In a build without them the spec is ignored, with a
/// warning: a production binary never fails on purpose.
fn failpoints(spec: &str) -> Result<Failpoints, ServerError> {
    match Failpoints::parse(spec) {
        Ok(failpoints) => {
            if !failpoints.is_empty() {
                tracing::warn!(spec, "failpoints armed (a test build)");
            }
            Ok(failpoints)
        }
        Err(FailpointError::NotCompiled) => {
            tracing::warn!(
                spec,
                "failpoints are not compiled into this build; ignoring them"
            );
            Ok(Failpoints::default())
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64_and_ipv4_as_is() {
        let parse = |text: &str| text.parse::<IpAddr>().unwrap();
        let one = counted_address(parse("2001:db8:1:2:aaaa::1"));
        assert_eq!(one, counted_address(parse("2001:db8:1:2:ffff:1:2:3")));
        assert_eq!(one, parse("2001:db8:1:2::"));
        assert_ne!(one, counted_address(parse("2001:db8:1:3::1")));
        assert_eq!(counted_address(parse("10.1.2.3")), parse("10.1.2.3"));
        assert_eq!(counted_address(parse("::ffff:10.1.2.3")), parse("10.1.2.3"));
    }
}
