//! The peer transport on the quorum port (`server.N=host:quorumPort:...`): length-prefixed
//! postcard messages over TCP, one request and one response at a time per connection.
//! Carries openraft's RPCs and zkw's own leader services (forwarded writes, session
//! liveness, read indexes). Frame length is checked before the payload is read.
//!
//! With `sslQuorum=true` every peer connection is mutual TLS: the dialling server presents
//! its ssl.quorum key store and checks the other's certificate (and host name) against the
//! ssl.quorum trust store; the accepting server requires and checks the dialler's certificate.
//! The setting is process-wide ([`enable_tls`], once at startup): a zkw process is one server.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsSettings;
use crate::tls::TlsError;

use super::membership::{quorum_address, MembershipEdit, ReconfigError};
use super::types::{Command, SnapshotMeta, Vote, ZkwRaft};

/// Largest peer message: a whole snapshot travels in one frame.
pub const PEER_FRAME_BYTES_MAX: u32 = 1024 * 1024 * 1024;
/// How long to wait for a TCP connection to a peer.
pub const PEER_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// Fewest milliseconds between two warnings about the same peer's failed TLS handshake (the
/// connection is retried every heartbeat; later failures in the window are debug lines).
pub const PEER_TLS_WARN_INTERVAL_MS: u64 = 10_000;

/// A peer connection's byte stream: plain TCP, or TLS over it.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> PeerIo for T {}
type PeerStream = Box<dyn PeerIo>;

/// Both ends of quorum TLS, built once from the ssl.quorum keys.
struct QuorumTls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

static QUORUM_TLS: OnceLock<QuorumTls> = OnceLock::new();

/// Turns on mutual TLS for every later peer connection of this process (`sslQuorum=true`).
/// A second call keeps the first setting: a process serves one configuration.
pub fn enable_tls(settings: &TlsSettings) -> Result<(), TlsError> {
    let tls = QuorumTls {
        connector: TlsConnector::from(crate::tls::client_config(settings)?),
        acceptor: TlsAcceptor::from(crate::tls::server_config(settings)?),
        handshake_timeout: Duration::from_millis(settings.handshake_timeout_ms),
    };
    if QUORUM_TLS.set(tls).is_err() {
        tracing::debug!("quorum TLS was already set up in this process; keeping it");
    } else {
        tracing::info!("quorum TLS on: peers authenticate each other with certificates");
    }
    Ok(())
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
    Snapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    /// Writes proposed on a follower, in the order its clients sent them.
    Forward(Vec<Command>),
    /// Sessions that had traffic on a follower since its last report.
    Touch(Vec<i64>),
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
    Touched,
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
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
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

async fn read_message<S, T>(stream: &mut S) -> io::Result<T>
where
    S: AsyncRead + Unpin + ?Sized,
    T: for<'de> Deserialize<'de>,
{
    let length = stream.read_u32().await?;
    if length > PEER_FRAME_BYTES_MAX {
        return Err(invalid(format!(
            "peer frame of {length} bytes is over the limit"
        )));
    }
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body).await?;
    decode_message(&body)
}

/// Decodes one peer message body (the bytes after its length prefix): a [`PeerRequest`] or a
/// [`PeerResponse`]. Never panics, whatever the bytes (the `peer_message` fuzz target checks).
pub fn decode_message<T: for<'de> Deserialize<'de>>(body: &[u8]) -> io::Result<T> {
    postcard::from_bytes(body).map_err(|error| invalid(error.to_string()))
}

/// A connection to one peer, opened on first use and reopened after any error.
pub struct PeerClient {
    pub target: u64,
    address: String,
    stream: Option<PeerStream>,
    tls_warned_at: Option<std::time::Instant>,
}

impl PeerClient {
    pub fn new(target: u64, address: String) -> Self {
        PeerClient {
            target,
            address,
            stream: None,
            tls_warned_at: None,
        }
    }

    async fn connect(&mut self) -> io::Result<()> {
        let connect = TcpStream::connect(&self.address);
        let stream = tokio::time::timeout(Duration::from_millis(PEER_CONNECT_TIMEOUT_MS), connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        let _ = stream.set_nodelay(true);
        let Some(tls) = QUORUM_TLS.get() else {
            self.stream = Some(Box::new(stream));
            return Ok(());
        };
        let handshake = tls.connector.connect(server_name(&self.address)?, stream);
        let outcome = tokio::time::timeout(tls.handshake_timeout, handshake)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
        match outcome {
            Ok(stream) => {
                self.stream = Some(Box::new(stream));
                Ok(())
            }
            Err(error) => {
                self.log_tls_failure(&error);
                Err(error)
            }
        }
    }

    /// A warning per peer per [`PEER_TLS_WARN_INTERVAL_MS`], debug lines in between.
    fn log_tls_failure(&mut self, error: &io::Error) {
        let now = std::time::Instant::now();
        let quiet = Duration::from_millis(PEER_TLS_WARN_INTERVAL_MS);
        if self
            .tls_warned_at
            .is_some_and(|warned| now.duration_since(warned) < quiet)
        {
            tracing::debug!(peer = self.target, address = %self.address, %error, "quorum TLS handshake failed");
            return;
        }
        self.tls_warned_at = Some(now);
        tracing::warn!(peer = self.target, address = %self.address, %error, "quorum TLS handshake failed");
    }

    /// One request, one response, within `timeout`.
    pub async fn call(
        &mut self,
        request: &PeerRequest,
        timeout: Duration,
    ) -> io::Result<PeerResponse> {
        let outcome = tokio::time::timeout(timeout, self.call_unbounded(request)).await;
        let result = outcome.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer did not answer in time",
            ))
        });
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    /// One request whose answer may take as long as it takes (the caller bounds it). Dropping
    /// the future mid-way drops the connection, so the next call starts on a fresh one.
    pub async fn hold(&mut self, request: &PeerRequest) -> io::Result<PeerResponse> {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                self.connect().await?;
                self.stream.take().ok_or_else(|| invalid("no connection"))?
            }
        };
        write_message(&mut stream, request).await?;
        let response = read_message(&mut stream).await?;
        self.stream = Some(stream);
        Ok(response)
    }

    async fn call_unbounded(&mut self, request: &PeerRequest) -> io::Result<PeerResponse> {
        if self.stream.is_none() {
            self.connect().await?;
        }
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| invalid("no connection"))?;
        write_message(stream, request).await?;
        read_message(stream).await
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

impl RaftNetworkV2<ZkwRaft> for PeerClient {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ZkwRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ZkwRaft>, RPCError<ZkwRaft>> {
        match self
            .call(&PeerRequest::AppendEntries(rpc), option.soft_ttl())
            .await
        {
            Ok(PeerResponse::AppendEntries(response)) => Ok(response),
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
        let request = PeerRequest::Snapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        match self.call(&request, option.hard_ttl()).await {
            Ok(PeerResponse::Snapshot(response)) => Ok(response),
            Ok(other) => Err(StreamingError::Unreachable(Unreachable::from_string(
                format!("peer {} answered {other:?}", self.target),
            ))),
            Err(error) => Err(StreamingError::Unreachable(Unreachable::new(&error))),
        }
    }
}

/// Builds [`PeerClient`]s for openraft from the nodes' server specs (their quorum address).
#[derive(Clone, Default)]
pub struct PeerNetwork;

impl RaftNetworkFactory<ZkwRaft> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &openraft::impls::BasicNode) -> PeerClient {
        PeerClient::new(target, quorum_address(&node.addr))
    }
}

/// Handles one decoded request on the receiving side.
pub type PeerHandler =
    Arc<dyn Fn(PeerRequest) -> Pin<Box<dyn Future<Output = PeerResponse> + Send>> + Send + Sync>;

/// Accepts peers on the quorum port until `stop` flips; each connection is served in turn.
pub async fn serve(
    listener: TcpListener,
    handler: PeerHandler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let handler = Arc::clone(&handler);
                    let stop = stop.clone();
                    connections.spawn(async move {
                        let Some(stream) = accept_peer(stream, peer).await else {
                            return;
                        };
                        if let Err(error) = serve_connection(stream, handler, stop).await {
                            tracing::debug!(%peer, %error, "peer connection ended");
                        }
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

/// The accepted peer's stream; with quorum TLS, after a handshake that verified its
/// certificate (a peer without a valid one is logged and dropped).
async fn accept_peer(stream: TcpStream, peer: std::net::SocketAddr) -> Option<PeerStream> {
    let Some(tls) = QUORUM_TLS.get() else {
        return Some(Box::new(stream));
    };
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(Box::new(stream)),
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "refusing a peer: quorum TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::warn!(%peer, "refusing a peer: quorum TLS handshake timed out");
            None
        }
    }
}

async fn serve_connection(
    mut stream: PeerStream,
    handler: PeerHandler,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<()> {
    loop {
        let request: PeerRequest = tokio::select! {
            request = read_message(&mut stream) => request?,
            _ = stop.changed() => return Ok(()),
        };
        let response = handler(request).await;
        write_message(&mut stream, &response).await?;
    }
}
