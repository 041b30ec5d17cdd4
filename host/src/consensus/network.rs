//! The peer transport on the quorum port (`server.N=host:quorumPort:...`): length-prefixed
//! postcard messages over TCP, one request and one response at a time per connection.
//! Carries openraft's RPCs and zkw's own leader services (forwarded writes, session
//! liveness, read indexes).
//!
//! Only members speak: every connection opens with the handshake of `handshake.rs` (server id,
//! proof of the quorum secret when one is configured), checked by [`admit`] against the
//! members (the replicated membership, current and committed, and zoo.cfg's `server.N` lines)
//! and the connecting address, before any request is read. A server that is no member may only
//! ask the membership probe (a joiner's first question); anything else closes its connection.
//! Refusals are logged with the peer's address, its claimed id and the reason.
//!
//! Untrusted bytes cost what they carry: a frame's length is checked against the limit of the
//! connection's stage (tiny before admission) and its body is read as it arrives, never
//! reserved from the announced length; a connection silent for [`PEER_IDLE_TIMEOUT_MS`] while
//! a request is awaited is closed; connections are capped per member and, before admission,
//! per address. Snapshots travel in chunks of `PeerSettings::snapshot_chunk_bytes`, appended on
//! the receiving connection until the last one installs; AppendEntries batches are cut to
//! [`APPEND_ENTRIES_BYTES_MAX`] (openraft is told which prefix went).
//!
//! With `sslQuorum=true` every peer connection is mutual TLS: the dialling server presents
//! its ssl.quorum key store and checks the other's certificate (and host name) against the
//! ssl.quorum trust store; the accepting server requires and checks the dialler's certificate.
//! The setting is the server's ([`QuorumTls`] in its [`PeerSettings`]).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::EntryPayload;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsSettings;
use crate::tls::TlsError;

use super::handshake::{
    self, Challenge, Hello, QuorumAuth, Refusal, Side, Transcript, Welcome,
    HANDSHAKE_FRAME_BYTES_MAX, HANDSHAKE_TIMEOUT_MS, HANDSHAKE_VERSION,
};
use super::membership::{quorum_address, MembershipEdit, ReconfigError};
use super::types::{Command, Entry, SnapshotMeta, Vote, ZkwRaft};
use super::PROPOSAL_ENVELOPE_BYTES_MAX;
use crate::net::{Listener, Stream, Transport};

/// Largest peer message of an admitted member (a snapshot chunk, an AppendEntries batch and a
/// forwarded batch are each cut well below it). ZooKeeper's nearest bound: `jute.maxbuffer`
/// on a learner's packets.
pub const PEER_FRAME_BYTES_MAX: u32 = 256 * 1024 * 1024;
/// Bytes of snapshot per message: the `snapshotChunkBytes` key's default and most.
pub use crate::config::SNAPSHOT_CHUNK_BYTES;
/// Most bytes of entries in one AppendEntries (openraft may batch 300 entries, each up to the
/// log's record limit); a larger batch is sent in parts. Counted as body + envelope bound.
pub const APPEND_ENTRIES_BYTES_MAX: usize = 128 * 1024 * 1024;
/// How much of a frame's body is read (and so reserved) at a time.
pub const PEER_READ_CHUNK_BYTES: usize = 64 * 1024;
/// A connection awaiting a request that receives no byte for this long is closed (ZooKeeper:
/// the learner socket's read timeout, syncLimit ticks).
pub const PEER_IDLE_TIMEOUT_MS: u64 = 20_000;
/// A client connection unused for this long is reopened before use, so that it never meets
/// the other side's idle close mid-request.
pub const PEER_CLIENT_IDLE_MS_MAX: u64 = PEER_IDLE_TIMEOUT_MS / 2;
/// Admitted connections of one member at a time (ZooKeeper keeps one per pair of servers;
/// zkw opens one per concurrent leader call).
pub const PEER_CONNECTIONS_PER_MEMBER_MAX: usize = 128;
/// Connections of one address still in their handshake (ZooKeeper: `quorum.cnxn.threads.size`).
pub const PEER_HANDSHAKES_PER_IP_MAX: usize = 8;
/// Admitted connections of one address that are not members (joiners asking the probe).
pub const PEER_STRANGERS_PER_IP_MAX: usize = 4;
/// How long to wait for a TCP connection to a peer.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Fewest milliseconds between two warnings about the same peer's failed TLS or quorum
/// handshake (the connection is retried every heartbeat; later failures in the window are
/// debug lines).
pub const PEER_HANDSHAKE_WARN_INTERVAL_MS: u64 = 10_000;

const _: () = assert!(SNAPSHOT_CHUNK_BYTES * 2 <= PEER_FRAME_BYTES_MAX as usize);
const _: () = assert!(APPEND_ENTRIES_BYTES_MAX * 2 <= PEER_FRAME_BYTES_MAX as usize);
const _: () = assert!(
    super::log::LOG_RECORD_PAYLOAD_BYTES_MAX as usize + PROPOSAL_ENVELOPE_BYTES_MAX as usize
        <= APPEND_ENTRIES_BYTES_MAX
);
const _: () = assert!(HANDSHAKE_FRAME_BYTES_MAX < PEER_FRAME_BYTES_MAX);

/// Who this server is on the quorum port and how it talks there (shared by every connection).
#[derive(Debug)]
pub struct PeerSettings {
    pub my_id: u64,
    pub auth: QuorumAuth,
    /// Bytes of snapshot per message: [`SNAPSHOT_CHUNK_BYTES`] (tests make it small).
    pub snapshot_chunk_bytes: usize,
    /// The peers this server cannot connect to now.
    pub reachability: Reachability,
    /// Mutual TLS on every peer connection (`sslQuorum=true`), or plain TCP.
    pub tls: Option<Arc<QuorumTls>>,
    /// How peers are dialled (TCP, or a simulation's network).
    pub transport: Arc<dyn Transport>,
}

/// The peers whose last connection attempt failed, with the error. A peer that becomes
/// unreachable, or reachable again, is logged once per change: retries every heartbeat or
/// election round stay out of the log (openraft's own per-attempt warnings are filtered out).
#[derive(Debug, Default)]
pub struct Reachability(Mutex<BTreeMap<u64, String>>);

impl Reachability {
    /// A connection to `peer` was opened; true (and logged) when it was unreachable.
    fn reached(&self, peer: u64, address: &str) -> bool {
        let changed = self.lock().remove(&peer).is_some();
        if changed {
            tracing::info!(peer, address, "peer reachable again");
        }
        changed
    }

    /// A connection to `peer` failed with `error`; true (and logged) when it was reachable.
    fn failed(&self, peer: u64, address: &str, error: &io::Error) -> bool {
        let changed = self.lock().insert(peer, error.to_string()).is_none();
        if changed {
            tracing::info!(peer, address, %error, "cannot reach peer; retrying quietly");
        }
        changed
    }

    /// The peers not reachable now, by id.
    pub fn unreachable(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, String>> {
        // A panic while holding it only left a map of peer errors: keep using it.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The quorum addresses (`host:port`) a server id is configured at; empty: not a member.
pub type MemberAddresses = Arc<dyn Fn(u64) -> Vec<String> + Send + Sync>;

/// Both ends of quorum TLS (`sslQuorum=true`), built once from the ssl.quorum keys.
pub struct QuorumTls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl QuorumTls {
    pub fn new(settings: &TlsSettings) -> Result<QuorumTls, TlsError> {
        Ok(QuorumTls {
            connector: TlsConnector::from(crate::tls::client_config(settings)?),
            acceptor: TlsAcceptor::from(crate::tls::server_config(settings)?),
            handshake_timeout: Duration::from_millis(settings.handshake_timeout_ms),
        })
    }
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed), as the TLS server name.
fn server_name(address: &str) -> io::Result<ServerName<'static>> {
    let host = address
        .rsplit_once(':')
        .map_or(address, |(host, _port)| host);
    let host = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned())
        .map_err(|error| invalid(format!("peer address {address}: {error}")))
}

/// What one server asks another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<ZkwRaft>),
    Vote(VoteRequest<ZkwRaft>),
    PreVote(VoteRequest<ZkwRaft>),
    /// A snapshot to install; `data` is the whole of it once the connection's chunks before it
    /// are appended (see `Outbound::SnapshotChunk`).
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Writes proposed on a follower, in the order its clients sent them.
    Forward(Vec<Command>),
    /// A follower's state machine to its leader's, unread here (session liveness).
    Relay(#[serde(with = "serde_bytes")] Vec<u8>),
    /// A linearizable read index (the `sync` of a follower's client).
    ReadIndex,
    // Variants from here on came with reconfig: kept last so that the ones above keep their
    // wire numbers (postcard numbers variants in order).
    /// A membership change (a client's `reconfig`), for the leader to run.
    Reconfigure {
        edit: MembershipEdit,
        expected: Option<u64>,
    },
    /// Whether the receiver belongs to an initialized cluster, and whether its membership
    /// lists the asker (a fresh server asks this at first start).
    Membership {
        asker: u64,
    },
    /// A leader stepping down (a reconfig removed it) names its successor.
    TransferLeader(TransferLeaderRequest<ZkwRaft>),
    /// A follower holds this open on its leader of `term`; the leader answers (`NotLeader`)
    /// only when it stops leading that term, so the connection closing means its process is
    /// gone (see `failover`).
    HoldLeader {
        term: u64,
    },
    /// The leader's checks of a membership change that will not run (answered with
    /// `Reconfigured`: Ok is the current version); see `Consensus::check_reconfigure`.
    CheckReconfigure {
        edit: Option<MembershipEdit>,
        expected: Option<u64>,
    },
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(AppendEntriesResponse<ZkwRaft>),
    Vote(VoteResponse<ZkwRaft>),
    Snapshot(SnapshotResponse<ZkwRaft>),
    Forwarded,
    Relayed,
    ReadIndex(u64),
    /// The receiver is not the leader (it names the one it knows, if any).
    NotLeader(Option<u64>),
    Failed(String),
    // Added with reconfig, last (see PeerRequest).
    /// The new config version, or why the change did not happen.
    Reconfigured(Result<u64, ReconfigError>),
    /// None: not initialized; else whether the asker is a member, and the config version.
    Membership(Option<(bool, u64)>),
    TransferLeader(TransferLeaderResponse<ZkwRaft>),
    /// A snapshot chunk was appended; the transfer goes on.
    SnapshotChunkTaken,
}

/// What a dialler sends once admitted: a request, or a piece of a snapshot that the next
/// `PeerRequest::Snapshot` on the same connection completes.
#[derive(Debug, Serialize, Deserialize)]
enum Outbound<R> {
    Request(R),
    SnapshotChunk(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// Who an admitted connection speaks for.
#[derive(Clone, Copy, Debug)]
enum Admitted {
    Member(u64),
    /// A server id no membership lists (a joiner): it may ask the membership probe only.
    Stranger(u64),
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn refused(refusal: &Refusal) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, refusal.to_string())
}

async fn write_message<S, T>(stream: &mut S, message: &T) -> io::Result<()>
where
    S: AsyncWrite + Unpin + ?Sized,
    T: Serialize,
{
    let body = postcard::to_stdvec(message).map_err(|error| invalid(error.to_string()))?;
    let length = u32::try_from(body.len()).map_err(|_| invalid("peer message too large"))?;
    if length > PEER_FRAME_BYTES_MAX {
        return Err(invalid("peer message too large"));
    }
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await?;
    // TLS may keep the records buffered until flushed (a no-op on TCP).
    stream.flush().await
}

/// Awaits `io` for at most `idle` (None: as long as it takes; the caller bounds it).
async fn within<T>(
    idle: Option<Duration>,
    io: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let Some(idle) = idle else {
        return io.await;
    };
    tokio::time::timeout(idle, io).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no byte from the peer for {} ms", idle.as_millis()),
        ))
    })
}

/// Reads one message of at most `limit` bytes; `idle` bounds every wait for more bytes.
async fn read_message<S, T>(stream: &mut S, limit: u32, idle: Option<Duration>) -> io::Result<T>
where
    S: AsyncRead + Unpin + ?Sized,
    T: for<'de> Deserialize<'de>,
{
    let mut header = [0u8; 4];
    within(idle, stream.read_exact(&mut header)).await?;
    let length = u32::from_be_bytes(header);
    if length > limit {
        return Err(invalid(format!(
            "peer frame of {length} bytes is over the limit of {limit}"
        )));
    }
    let body = read_body(stream, length as usize, idle).await?;
    decode_message(&body)
}

/// Decodes one peer message body (the bytes after its length prefix): a [`PeerRequest`] or a
/// [`PeerResponse`]. Never panics, whatever the bytes (the `peer_message` fuzz target checks).
pub fn decode_message<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|error| invalid(error.to_string()))
}

/// A frame's body, grown as its bytes arrive: memory follows what the peer sent, never the
/// length it announced.
async fn read_body<S>(stream: &mut S, length: usize, idle: Option<Duration>) -> io::Result<Vec<u8>>
where
    S: AsyncRead + Unpin + ?Sized,
{
    let mut body = Vec::with_capacity(length.min(PEER_READ_CHUNK_BYTES));
    while body.len() < length {
        let start = body.len();
        body.resize(start + (length - start).min(PEER_READ_CHUNK_BYTES), 0);
        let read = within(idle, stream.read(&mut body[start..])).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed the connection mid-frame",
            ));
        }
        body.truncate(start + read);
    }
    Ok(body)
}

/// The dialler's half of the handshake (see `handshake.rs`).
async fn greet(stream: &mut Stream, settings: &PeerSettings, target: u64) -> io::Result<()> {
    let challenge: Challenge = read_message(stream, HANDSHAKE_FRAME_BYTES_MAX, None).await?;
    if challenge.version != HANDSHAKE_VERSION {
        return Err(refused(&Refusal::Version(challenge.version)));
    }
    let transcript = Transcript {
        challenge: challenge.nonce,
        hello: handshake::nonce(),
        dialler: settings.my_id,
        acceptor: target,
    };
    let hello = Hello {
        version: HANDSHAKE_VERSION,
        id: settings.my_id,
        nonce: transcript.hello,
        proof: settings.auth.prove(Side::Dialler, &transcript),
    };
    write_message(stream, &hello).await?;
    let welcome: Welcome = read_message(stream, HANDSHAKE_FRAME_BYTES_MAX, None)
        .await
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the peer closed the connection in the handshake: it refused this server \
                 (membership, address or quorum secret; see its log)",
            ),
            _ => error,
        })?;
    settings
        .auth
        .check(Side::Acceptor, &transcript, welcome.proof.as_ref())
        .map_err(|refusal| refused(&refusal))
}

/// A connection to one peer, opened on first use and reopened after any error (or when it
/// sat unused for [`PEER_CLIENT_IDLE_MS_MAX`]).
pub struct PeerClient {
    pub target: u64,
    address: String,
    settings: Arc<PeerSettings>,
    stream: Option<Stream>,
    /// When `stream` last carried a message.
    used_at: Instant,
    warned_at: Option<Instant>,
}

impl PeerClient {
    pub fn new(target: u64, address: String, settings: Arc<PeerSettings>) -> Self {
        PeerClient {
            target,
            address,
            settings,
            stream: None,
            used_at: Instant::now(),
            warned_at: None,
        }
    }

    /// A new connection: TCP, TLS with `sslQuorum=true`, then the quorum handshake.
    async fn connect(&mut self) -> io::Result<Stream> {
        let connect = self.settings.transport.dial(&self.address);
        let tcp = tokio::time::timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let mut stream: Stream = match &self.settings.tls {
            None => tcp,
            Some(tls) => {
                let handshake = tls.connector.connect(server_name(&self.address)?, tcp);
                let outcome = tokio::time::timeout(tls.handshake_timeout, handshake)
                    .await
                    .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
                match outcome {
                    Ok(stream) => Box::new(stream),
                    Err(error) => {
                        self.log_handshake_failure("quorum TLS handshake failed", &error);
                        return Err(error);
                    }
                }
            }
        };
        let greeting = greet(&mut stream, &self.settings, self.target);
        let greeted = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), greeting)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
        if let Err(error) = greeted {
            self.log_handshake_failure("quorum handshake failed", &error);
            return Err(error);
        }
        Ok(stream)
    }

    /// A warning per peer per [`PEER_HANDSHAKE_WARN_INTERVAL_MS`], debug lines in between.
    fn log_handshake_failure(&mut self, what: &str, error: &io::Error) {
        let now = Instant::now();
        let quiet = Duration::from_millis(PEER_HANDSHAKE_WARN_INTERVAL_MS);
        if self
            .warned_at
            .is_some_and(|warned| now.duration_since(warned) < quiet)
        {
            tracing::debug!(peer = self.target, address = %self.address, %error, "{what}");
            return;
        }
        self.warned_at = Some(now);
        tracing::warn!(peer = self.target, address = %self.address, %error, "{what}");
    }

    /// The open connection, or a new one when there is none or it sat unused too long.
    async fn stream(&mut self) -> io::Result<&mut Stream> {
        let stale = self.used_at.elapsed() > Duration::from_millis(PEER_CLIENT_IDLE_MS_MAX);
        if stale {
            self.stream = None;
        }
        let stream = match self.stream.take() {
            Some(stream) => stream,
            None => match self.connect().await {
                Ok(stream) => {
                    self.settings
                        .reachability
                        .reached(self.target, &self.address);
                    stream
                }
                Err(error) => {
                    self.settings
                        .reachability
                        .failed(self.target, &self.address, &error);
                    return Err(error);
                }
            },
        };
        self.used_at = Instant::now();
        Ok(self.stream.insert(stream))
    }

    /// One request, one response, within `timeout`.
    pub async fn call(
        &mut self,
        request: &PeerRequest,
        timeout: Duration,
    ) -> io::Result<PeerResponse> {
        let outcome = tokio::time::timeout(timeout, self.exchange(request)).await;
        self.settle(outcome)
    }

    /// Keeps the connection only after a success (a failed or timed-out exchange may have left
    /// bytes in flight).
    fn settle(
        &mut self,
        outcome: Result<io::Result<PeerResponse>, tokio::time::error::Elapsed>,
    ) -> io::Result<PeerResponse> {
        let result = outcome.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer did not answer in time",
            ))
        });
        match result {
            Ok(_) => self.used_at = Instant::now(),
            Err(_) => self.stream = None,
        }
        result
    }

    /// One request whose answer may take as long as it takes (the caller bounds it). Dropping
    /// the future mid-way drops the connection, so the next call starts on a fresh one.
    pub async fn hold(&mut self, request: &PeerRequest) -> io::Result<PeerResponse> {
        self.stream().await?;
        let mut stream = self.stream.take().ok_or_else(|| invalid("no connection"))?;
        write_message(&mut stream, &Outbound::Request(request)).await?;
        let response = read_message(&mut stream, PEER_FRAME_BYTES_MAX, None).await?;
        self.stream = Some(stream);
        self.used_at = Instant::now();
        Ok(response)
    }

    async fn exchange(&mut self, request: &PeerRequest) -> io::Result<PeerResponse> {
        let stream = self.stream().await?;
        write_message(stream, &Outbound::Request(request)).await?;
        read_message(stream, PEER_FRAME_BYTES_MAX, None).await
    }

    /// A snapshot in chunks of `snapshot_chunk_bytes`, all on one connection (the receiver
    /// appends them until the `Snapshot` request that carries the last one), within `timeout`.
    async fn send_snapshot(
        &mut self,
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
        timeout: Duration,
    ) -> io::Result<PeerResponse> {
        let chunk_bytes = self.settings.snapshot_chunk_bytes.max(1);
        let last_start = data.len().saturating_sub(1) / chunk_bytes * chunk_bytes;
        let target = self.target;
        let chunks = data.len().div_ceil(chunk_bytes);
        if chunks > 1 {
            tracing::info!(
                peer = target,
                bytes = data.len(),
                chunks,
                "sending a snapshot in chunks"
            );
        }
        let transfer = async {
            // Taken out: a failure or a timeout drops it, so no later request sees half a
            // snapshot on its connection.
            self.stream().await?;
            let mut stream = self.stream.take().ok_or_else(|| invalid("no connection"))?;
            for chunk in data[..last_start].chunks(chunk_bytes) {
                write_message(
                    &mut stream,
                    &Outbound::<&PeerRequest>::SnapshotChunk(chunk.to_vec()),
                )
                .await?;
                match read_message(&mut stream, PEER_FRAME_BYTES_MAX, None).await? {
                    PeerResponse::SnapshotChunkTaken => {}
                    other => {
                        return Err(invalid(format!(
                            "peer {target} answered {other:?} to a snapshot chunk"
                        )))
                    }
                }
            }
            let request = PeerRequest::Snapshot {
                vote,
                meta,
                data: data[last_start..].to_vec(),
            };
            write_message(&mut stream, &Outbound::Request(&request)).await?;
            let response = read_message(&mut stream, PEER_FRAME_BYTES_MAX, None).await?;
            self.stream = Some(stream);
            Ok(response)
        };
        let outcome = tokio::time::timeout(timeout, transfer).await;
        self.settle(outcome)
    }

    fn unexpected<E: std::error::Error>(&self, response: PeerResponse) -> RPCError<ZkwRaft, E> {
        RPCError::Unreachable(Unreachable::from_string(format!(
            "peer {} answered {response:?}",
            self.target
        )))
    }
}

fn unreachable<E: std::error::Error>(error: &io::Error) -> RPCError<ZkwRaft, E> {
    RPCError::Unreachable(Unreachable::new(error))
}

/// Bytes an entry may take in an AppendEntries: its body plus the envelope bound.
fn entry_bytes(entry: &Entry) -> usize {
    let envelope = PROPOSAL_ENVELOPE_BYTES_MAX as usize;
    match &entry.payload {
        EntryPayload::Normal(command) => command.body.len() + envelope,
        EntryPayload::Blank => envelope,
        EntryPayload::Membership(membership) => {
            postcard::to_stdvec(membership).map_or(envelope, |bytes| bytes.len() + envelope)
        }
    }
}

/// How many of `entries`, from the first, fit in `bytes_max` (at least one: an entry is within
/// the log's record limit, far below it).
fn entries_within(entries: &[Entry], bytes_max: usize) -> usize {
    let mut total = 0usize;
    for (count, entry) in entries.iter().enumerate() {
        total = total.saturating_add(entry_bytes(entry));
        if total > bytes_max {
            return count.max(1);
        }
    }
    entries.len()
}

impl RaftNetworkV2<ZkwRaft> for PeerClient {
    type SnapshotData = Vec<u8>;

    /// Sends at most [`APPEND_ENTRIES_BYTES_MAX`] of entries; when the batch was cut, a success
    /// tells openraft which prefix arrived (it sends the rest next).
    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<ZkwRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ZkwRaft>, RPCError<ZkwRaft>> {
        let fits = entries_within(&rpc.entries, APPEND_ENTRIES_BYTES_MAX);
        let mut cut_at = None;
        if fits < rpc.entries.len() {
            tracing::debug!(
                peer = self.target,
                sent = fits,
                batch = rpc.entries.len(),
                "AppendEntries cut to APPEND_ENTRIES_BYTES_MAX"
            );
            rpc.entries.truncate(fits);
            let last = rpc.entries.last().map(|entry| entry.log_id);
            rpc.leader_commit = rpc.leader_commit.min(last);
            cut_at = Some(last);
        }
        match self
            .call(&PeerRequest::AppendEntries(rpc), option.soft_ttl())
            .await
        {
            Ok(PeerResponse::AppendEntries(response)) => Ok(match (response, cut_at) {
                (AppendEntriesResponse::Success, Some(last)) => {
                    AppendEntriesResponse::PartialSuccess(last)
                }
                (response, _) => response,
            }),
            Ok(other) => Err(self.unexpected(other)),
            Err(error) => Err(unreachable(&error)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<ZkwRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ZkwRaft>, RPCError<ZkwRaft>> {
        match self.call(&PeerRequest::Vote(rpc), option.soft_ttl()).await {
            Ok(PeerResponse::Vote(response)) => Ok(response),
            Ok(other) => Err(self.unexpected(other)),
            Err(error) => Err(unreachable(&error)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<ZkwRaft>,
        option: RPCOption,
    ) -> Result<VoteResponse<ZkwRaft>, RPCError<ZkwRaft>> {
        match self
            .call(&PeerRequest::PreVote(rpc), option.soft_ttl())
            .await
        {
            Ok(PeerResponse::Vote(response)) => Ok(response),
            Ok(other) => Err(self.unexpected(other)),
            Err(error) => Err(unreachable(&error)),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<ZkwRaft>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<ZkwRaft>, RPCError<ZkwRaft>> {
        match self
            .call(&PeerRequest::TransferLeader(req), option.soft_ttl())
            .await
        {
            Ok(PeerResponse::TransferLeader(response)) => Ok(response),
            Ok(other) => Err(self.unexpected(other)),
            Err(error) => Err(unreachable(&error)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<ZkwRaft, Vec<u8>>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<ZkwRaft>, StreamingError<ZkwRaft>> {
        let sent = self
            .send_snapshot(vote, snapshot.meta, snapshot.snapshot, option.hard_ttl())
            .await;
        match sent {
            Ok(PeerResponse::Snapshot(response)) => Ok(response),
            Ok(other) => Err(StreamingError::Unreachable(Unreachable::from_string(
                format!("peer {} answered {other:?}", self.target),
            ))),
            Err(error) => Err(StreamingError::Unreachable(Unreachable::new(&error))),
        }
    }
}

/// Builds [`PeerClient`]s for openraft from the nodes' server specs (their quorum address).
#[derive(Clone)]
pub struct PeerNetwork {
    pub settings: Arc<PeerSettings>,
}

impl RaftNetworkFactory<ZkwRaft> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &openraft::impls::BasicNode) -> PeerClient {
        let address = quorum_address(&node.addr);
        PeerClient::new(target, address, Arc::clone(&self.settings))
    }
}

/// Handles one decoded request on the receiving side.
pub type PeerHandler =
    Arc<dyn Fn(PeerRequest) -> Pin<Box<dyn Future<Output = PeerResponse> + Send>> + Send + Sync>;

/// What a connection is counted under, for the per-peer caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Handshake(IpAddr),
    Stranger(IpAddr),
    Member(u64),
}

impl Slot {
    fn max(self) -> usize {
        match self {
            Slot::Handshake(_) => PEER_HANDSHAKES_PER_IP_MAX,
            Slot::Stranger(_) => PEER_STRANGERS_PER_IP_MAX,
            Slot::Member(_) => PEER_CONNECTIONS_PER_MEMBER_MAX,
        }
    }
}

/// Connections held per [`Slot`]; a [`Held`] gives its place back when dropped.
#[derive(Default)]
struct Slots(Mutex<HashMap<Slot, usize>>);

struct Held {
    slots: Arc<Slots>,
    slot: Slot,
}

impl Slots {
    /// A place under `slot`, unless it is full.
    fn take(self: &Arc<Self>, slot: Slot) -> Option<Held> {
        let mut counts = self.0.lock().ok()?;
        let count = counts.entry(slot).or_insert(0);
        if *count >= slot.max() {
            return None;
        }
        *count += 1;
        Some(Held {
            slots: Arc::clone(self),
            slot,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Ok(mut counts) = self.slots.0.lock() else {
            return;
        };
        if let Some(count) = counts.get_mut(&self.slot) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.slot);
            }
        }
    }
}

fn refuse(peer: SocketAddr, claimed: Option<u64>, refusal: &Refusal) {
    tracing::warn!(%peer, claimed = ?claimed, reason = %refusal, "refusing a peer on the quorum port");
}

/// What the quorum port needs besides the listener: how to answer, who this server is, who
/// the members are.
#[derive(Clone)]
pub struct PeerService {
    pub handler: PeerHandler,
    pub settings: Arc<PeerSettings>,
    pub members: MemberAddresses,
}

/// Accepts peers on the quorum port until `stop` flips; each admitted connection is served in
/// turn (see the module doc for who is admitted).
pub async fn serve(
    mut listener: Box<dyn Listener>,
    service: PeerService,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(Slots::default());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(pending) = slots.take(Slot::Handshake(peer.ip().to_canonical())) else {
                        refuse(peer, None, &Refusal::PendingHandshakes);
                        continue;
                    };
                    let (service, slots, stop) = (service.clone(), Arc::clone(&slots), stop.clone());
                    connections.spawn(async move {
                        let Some((stream, admitted, _held)) =
                            accept_peer(stream, peer, &service, &slots).await
                        else {
                            return;
                        };
                        drop(pending);
                        serve_admitted(stream, admitted, peer, service.handler, stop).await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "quorum port accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    connections.abort_all();
}

/// The accepted peer's stream (after TLS, with quorum TLS: a peer without a valid certificate
/// is logged and dropped), who it is and its place under the caps, once the handshake
/// admitted it.
async fn accept_peer(
    stream: Stream,
    peer: SocketAddr,
    service: &PeerService,
    slots: &Arc<Slots>,
) -> Option<(Stream, Admitted, Held)> {
    let mut stream: Stream = match &service.settings.tls {
        None => stream,
        Some(tls) => {
            match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Box::new(stream),
                Ok(Err(error)) => {
                    tracing::warn!(%peer, %error, "refusing a peer: quorum TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::warn!(%peer, "refusing a peer: quorum TLS handshake timed out");
                    return None;
                }
            }
        }
    };
    let admission = admit(&mut stream, peer, service, slots);
    let bound = Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
    match tokio::time::timeout(bound, admission).await {
        Ok(Ok(Ok((admitted, held)))) => Some((stream, admitted, held)),
        Ok(Ok(Err((claimed, refusal)))) => {
            refuse(peer, Some(claimed), &refusal);
            None
        }
        // A dialler that gave up before its hello (its call timed out while this server was
        // starting, say) is routine, not a refusal.
        Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%peer, %error, "a peer closed before its handshake");
            None
        }
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "refusing a peer on the quorum port: no valid handshake");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, "refusing a peer on the quorum port: no handshake in HANDSHAKE_TIMEOUT_MS");
            None
        }
    }
}

/// The acceptor's half of the handshake: the claimed id's proof of the secret, whether it is a
/// member connecting from that member's address (see the module doc), and a place under its
/// cap; only then the welcome.
async fn admit(
    stream: &mut Stream,
    peer: SocketAddr,
    service: &PeerService,
    slots: &Arc<Slots>,
) -> io::Result<Result<(Admitted, Held), (u64, Refusal)>> {
    let settings = &service.settings;
    let challenge = Challenge {
        version: HANDSHAKE_VERSION,
        nonce: handshake::nonce(),
    };
    write_message(stream, &challenge).await?;
    let hello: Hello = read_message(stream, HANDSHAKE_FRAME_BYTES_MAX, None).await?;
    let id = hello.id;
    if hello.version != HANDSHAKE_VERSION {
        return Ok(Err((id, Refusal::Version(hello.version))));
    }
    let transcript = Transcript {
        challenge: challenge.nonce,
        hello: hello.nonce,
        dialler: id,
        acceptor: settings.my_id,
    };
    if let Err(refusal) = settings
        .auth
        .check(Side::Dialler, &transcript, hello.proof.as_ref())
    {
        return Ok(Err((id, refusal)));
    }
    let configured = (service.members)(id);
    let ip = peer.ip().to_canonical();
    let (admitted, slot, full) = if configured.is_empty() {
        let full = Refusal::StrangerConnections;
        (Admitted::Stranger(id), Slot::Stranger(ip), full)
    } else if at_address(ip, &configured).await {
        let full = Refusal::MemberConnections(id);
        (Admitted::Member(id), Slot::Member(id), full)
    } else {
        let configured = configured.join(", ");
        return Ok(Err((id, Refusal::WrongAddress { id, configured })));
    };
    let Some(held) = slots.take(slot) else {
        return Ok(Err((id, full)));
    };
    let welcome = Welcome {
        proof: settings.auth.prove(Side::Acceptor, &transcript),
    };
    write_message(stream, &welcome).await?;
    Ok(Ok((admitted, held)))
}

/// Whether `ip` (canonical) is an address one of `configured` (`host:port`) resolves to.
async fn at_address(ip: IpAddr, configured: &[String]) -> bool {
    for address in configured {
        match tokio::net::lookup_host(address.as_str()).await {
            Ok(mut resolved) => {
                if resolved.any(|candidate| candidate.ip().to_canonical() == ip) {
                    return true;
                }
            }
            Err(error) => tracing::debug!(%address, %error, "cannot resolve a member's address"),
        }
    }
    false
}

/// Serves an admitted connection until it ends, logging why.
async fn serve_admitted(
    stream: Stream,
    admitted: Admitted,
    peer: SocketAddr,
    handler: PeerHandler,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let Err(error) = serve_connection(stream, admitted, peer, handler, stop).await else {
        return;
    };
    let (Admitted::Member(id) | Admitted::Stranger(id)) = admitted;
    match error.kind() {
        io::ErrorKind::TimedOut => {
            tracing::info!(%peer, id, %error, "closing an idle peer connection");
        }
        io::ErrorKind::InvalidData => {
            tracing::warn!(%peer, id, %error, "closing a peer connection: bad frame");
        }
        _ => tracing::debug!(%peer, id, %error, "peer connection ended"),
    }
}

async fn serve_connection(
    mut stream: Stream,
    admitted: Admitted,
    peer: SocketAddr,
    handler: PeerHandler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    let idle = Some(Duration::from_millis(PEER_IDLE_TIMEOUT_MS));
    let limit = match admitted {
        Admitted::Member(_) => PEER_FRAME_BYTES_MAX,
        Admitted::Stranger(_) => HANDSHAKE_FRAME_BYTES_MAX,
    };
    // The chunks of a snapshot whose last part (the Snapshot request) has not come yet.
    let mut snapshot: Vec<u8> = Vec::new();
    loop {
        let message: Outbound<PeerRequest> = tokio::select! {
            message = read_message(&mut stream, limit, idle) => message?,
            _ = stop.changed() => return Ok(()),
        };
        let request = match (admitted, message) {
            (Admitted::Member(_), Outbound::SnapshotChunk(chunk)) => {
                append(&mut snapshot, chunk);
                write_message(&mut stream, &PeerResponse::SnapshotChunkTaken).await?;
                continue;
            }
            (
                Admitted::Member(_),
                Outbound::Request(PeerRequest::Snapshot { vote, meta, data }),
            ) => {
                append(&mut snapshot, data);
                let data = std::mem::take(&mut snapshot);
                PeerRequest::Snapshot { vote, meta, data }
            }
            (Admitted::Member(_), Outbound::Request(request))
            | (
                Admitted::Stranger(_),
                Outbound::Request(request @ PeerRequest::Membership { .. }),
            ) => request,
            (Admitted::Stranger(id), _) => {
                refuse(peer, Some(id), &Refusal::NotMember(id));
                return Ok(());
            }
        };
        let response = handler(request).await;
        write_message(&mut stream, &response).await?;
    }
}

/// `piece` after what `buffer` holds (moved, not copied, into an empty one).
fn append(buffer: &mut Vec<u8>, piece: Vec<u8>) {
    if buffer.is_empty() {
        *buffer = piece;
    } else {
        buffer.extend_from_slice(&piece);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::types::LogId;
    use crate::net::TcpTransport;
    use tokio::net::TcpListener;

    type Seen = Arc<Mutex<Vec<PeerRequest>>>;

    fn settings(my_id: u64, secret: Option<&[u8]>, chunk_bytes: usize) -> Arc<PeerSettings> {
        Arc::new(PeerSettings {
            my_id,
            auth: QuorumAuth::new(secret, true, true),
            snapshot_chunk_bytes: chunk_bytes,
            reachability: Reachability::default(),
            tls: None,
            transport: Arc::new(TcpTransport),
        })
    }

    #[test]
    fn reachability_changes_once_per_change() {
        let reachability = Reachability::default();
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(reachability.failed(2, "a:1", &refused));
        assert!(
            !reachability.failed(2, "a:1", &refused),
            "a retry is no change"
        );
        assert!(reachability.failed(3, "b:1", &refused));
        assert_eq!(reachability.unreachable(), [2, 3]);
        assert!(reachability.reached(2, "a:1"));
        assert!(!reachability.reached(2, "a:1"));
        assert_eq!(reachability.unreachable(), [3]);
    }

    #[tokio::test]
    async fn a_peer_nobody_listens_for_is_unreachable() {
        // Bound then dropped: nothing listens there.
        let address = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let settings = settings(1, None, SNAPSHOT_CHUNK_BYTES);
        let mut client = PeerClient::new(2, address, Arc::clone(&settings));
        let timeout = Duration::from_millis(PEER_CONNECT_TIMEOUT_MS * 2);
        for _ in 0..2 {
            let request = PeerRequest::Relay(Vec::new());
            assert!(client.call(&request, timeout).await.is_err());
        }
        assert_eq!(settings.reachability.unreachable(), [2]);
    }

    /// Server 1's quorum port on loopback, members 1 and 2 at 127.0.0.1; every request it
    /// is handed is kept in `seen` and answered `Forwarded`.
    async fn listen(
        secret: Option<&[u8]>,
        seen: &Seen,
    ) -> (String, tokio::sync::watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let listener: Box<dyn Listener> = Box::new(listener);
        let kept = Arc::clone(seen);
        let member_address = address.clone();
        let service = PeerService {
            handler: Arc::new(move |request| {
                kept.lock().unwrap().push(request);
                Box::pin(async { PeerResponse::Forwarded })
            }),
            settings: settings(1, secret, SNAPSHOT_CHUNK_BYTES),
            members: Arc::new(move |id| match id {
                1 | 2 => vec![member_address.clone()],
                _ => Vec::new(),
            }),
        };
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(serve(listener, service, stop_rx));
        (address, stop)
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_snapshot_larger_than_a_chunk_arrives_whole() {
        let seen = Seen::default();
        let (address, _stop) = listen(None, &seen).await;
        let mut client = PeerClient::new(1, address, settings(2, None, 10));
        for bytes in [0usize, 7, 10, 95, 100] {
            let data: Vec<u8> = (0..bytes).map(|n| n as u8).collect();
            let vote = Vote::new_committed(1, 2);
            let meta = SnapshotMeta::default();
            let sent = client
                .send_snapshot(vote, meta, data.clone(), TIMEOUT)
                .await;
            assert!(matches!(sent, Ok(PeerResponse::Forwarded)), "{sent:?}");
            let last = seen.lock().unwrap().pop();
            match last {
                Some(PeerRequest::Snapshot { data: received, .. }) => assert_eq!(received, data),
                other => panic!("{bytes} bytes: {other:?}"),
            }
        }
        // The chunks reached nobody but the assembly: one request per snapshot.
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_stranger_may_only_ask_the_membership_probe() {
        let seen = Seen::default();
        let (address, _stop) = listen(None, &seen).await;
        let mut stranger = PeerClient::new(1, address, settings(9, None, 10));
        let probe = stranger
            .call(&PeerRequest::Membership { asker: 9 }, TIMEOUT)
            .await;
        assert!(matches!(probe, Ok(PeerResponse::Forwarded)), "{probe:?}");
        let touch = stranger.call(&PeerRequest::Relay(vec![1]), TIMEOUT).await;
        assert!(touch.is_err(), "a stranger's Relay was answered: {touch:?}");
        let seen = seen.lock().unwrap();
        assert!(
            matches!(seen[..], [PeerRequest::Membership { asker: 9 }]),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn only_the_right_secret_is_admitted() {
        let seen = Seen::default();
        let (address, _stop) = listen(Some(b"s3cret"), &seen).await;
        for (secret, admitted) in [
            (Some(&b"s3cret"[..]), true),
            (Some(b"wrong"), false),
            (None, false),
        ] {
            let mut client = PeerClient::new(1, address.clone(), settings(2, secret, 10));
            let touch = client.call(&PeerRequest::Relay(vec![1]), TIMEOUT).await;
            assert_eq!(touch.is_ok(), admitted, "{secret:?}: {touch:?}");
        }
        // The acceptor must prove the secret too (learnerRequireSasl): one without it is left.
        let (open, _stop) = listen(None, &seen).await;
        let mut client = PeerClient::new(1, open, settings(2, Some(b"s3cret"), 10));
        let touch = client.call(&PeerRequest::Relay(vec![1]), TIMEOUT).await;
        assert!(touch.is_err());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_its_body_is_read() {
        let (mut near, mut far) = tokio::io::duplex(64);
        near.write_all(&PEER_FRAME_BYTES_MAX.to_be_bytes())
            .await
            .unwrap();
        let read: io::Result<PeerRequest> =
            read_message(&mut far, HANDSHAKE_FRAME_BYTES_MAX, None).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::InvalidData);
        // Within the limit but never sent: the body waits for bytes, holding only what came.
        near.write_all(&1000u32.to_be_bytes()).await.unwrap();
        near.write_all(&[0; 10]).await.unwrap();
        let idle = Some(Duration::from_millis(50));
        let read: io::Result<PeerRequest> = read_message(&mut far, 1000, idle).await;
        assert_eq!(read.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    fn entry(index: u64, body_bytes: usize) -> Entry {
        let command = Command {
            origin: 1,
            boot: 1,
            seq: index,
            term: None,
            time_ms: 0,
            body: vec![0; body_bytes],
        };
        Entry {
            log_id: LogId::new_term_index(1, index),
            payload: EntryPayload::Normal(command),
        }
    }

    #[test]
    fn append_entries_are_cut_by_bytes_keeping_at_least_one() {
        let envelope = PROPOSAL_ENVELOPE_BYTES_MAX as usize;
        let entries: Vec<Entry> = (1..=4).map(|index| entry(index, 1000)).collect();
        assert_eq!(entries_within(&entries, 4 * (1000 + envelope)), 4);
        assert_eq!(entries_within(&entries, 3 * (1000 + envelope) + 1), 3);
        assert_eq!(entries_within(&entries, 10), 1);
        assert_eq!(entries_within(&[], 10), 0);
    }
}
