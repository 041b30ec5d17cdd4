//! One client connection: the socket, its read buffer, the handshake and the request loop.
//! A reader (this task) decodes frames and hands requests to `dispatch`; a writer task drains
//! the connection's outbound queue. Bad input closes this connection only, with a logged reason.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

use super::apply::Route;
use super::dispatch::{self, ConnectionState, Flow};
use super::outbound::{Out, Outbound, OutboundReceiver};
use super::stats::ConnectionStats;
use super::TxnProposal;
use super::{four_letter, Context};
use crate::proto::{
    decode_connect_request, decode_request, encode_connect_response, encode_reply, take_frame,
    ConnectRequest, ConnectResponse, DecodeError, ErrorCode, Frame, FrameError, Id, ReplyHeader,
    Response, FRAME_BYTES_WIRE_MAX,
};
use crate::txn::TxnOp;

/// Initial read buffer; it grows up to one frame (jute.maxbuffer) as needed.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Frames handed to the socket in one write.
pub const WRITE_BATCH_FRAMES_MAX: usize = 256;
/// How long a closing connection may take to flush what is queued.
pub const CLOSE_FLUSH_MS: u64 = 1_000;
/// Length of a session password.
pub const SESSION_PASSWORD_BYTES: usize = 16;
/// A connection that sends no ConnectRequest (nor a four-letter word) within this time is
/// closed, as ZooKeeper's `zookeeper.nio.sessionlessCnxnTimeout` (10 s) closes it: else a
/// silent socket would hold a maxClientCnxns slot for ever. It is also the write deadline of a
/// connection without a session (see [`write_loop`]).
pub const SESSIONLESS_CONNECTION_MS_MAX: u64 = 10_000;

/// A connection the listener accepted and registered.
pub struct Admitted {
    pub id: u64,
    pub peer: SocketAddr,
    pub outbound: Outbound,
    pub receiver: OutboundReceiver,
    pub stats: Arc<ConnectionStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("bad record: {0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Refused(String),
}

/// Runs a plain TCP connection to its end and unregisters it.
pub async fn run(context: Context, stream: TcpStream, admitted: Admitted) {
    let _ = stream.set_nodelay(true);
    // TcpStream splits without a lock, so the plain path keeps its owned halves.
    let (reader, writer) = stream.into_split();
    run_split(context, reader, writer, admitted).await;
}

/// Runs a connection over any byte stream (the TLS one of the secure client port).
pub async fn run_stream<S>(context: Context, stream: S, admitted: Admitted)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    run_split(context, reader, writer, admitted).await;
}

/// How the writer task stands, as the reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum WriterState {
    Running,
    /// Flushed and closed (the connection was closing anyway).
    Closed,
    /// Aborted: the client did not read (byte limit, write deadline) or the socket failed.
    Failed(String),
}

async fn run_split<R, W>(context: Context, reader: R, writer: W, admitted: Admitted)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (closed_tx, closed_rx) = watch::channel(WriterState::Running);
    let mut writer_task = tokio::spawn(write_loop(
        writer,
        admitted.receiver,
        (admitted.id, Arc::clone(&admitted.stats)),
        Arc::clone(&context.shared),
        closed_tx,
    ));
    let mut state = ConnectionState::new(
        admitted.id,
        admitted.peer,
        admitted.outbound,
        admitted.stats,
    );
    let ended = read_loop(&context, reader, &mut state, closed_rx).await;
    // Closing from here on: the slot is free before the flush and the unregistering below.
    context.shared.release_connection_slot(state.id);
    match ended {
        Ok(()) => tracing::debug!(peer = %state.peer, "connection closed"),
        Err(ConnectionError::Io(error)) => {
            tracing::debug!(peer = %state.peer, session = state.session_label(), %error, "connection dropped")
        }
        Err(error) => tracing::warn!(
            peer = %state.peer,
            session = state.session_label(),
            %error,
            "closing connection"
        ),
    }
    state.outbound.close("connection ending");
    let flush = Duration::from_millis(CLOSE_FLUSH_MS);
    if tokio::time::timeout(flush, &mut writer_task).await.is_err() {
        // A client that does not read keeps the write pending: the socket goes without it.
        writer_task.abort();
    }
    detach(&context, &state);
}

/// Unregisters the connection; if its session is still bound to it, the session's watches go
/// (ZooKeeper keeps watches per connection; the client re-sends them with setWatches).
fn detach(context: &Context, state: &ConnectionState) {
    let shared = &context.shared;
    let mut store = shared.lock_store();
    let mut connections = shared.lock_connections();
    let still_bound = state
        .session_id
        .is_some_and(|session_id| connections.by_session.get(&session_id) == Some(&state.id));
    if let (true, Some(session_id)) = (still_bound, state.session_id) {
        store.watches.remove_session(session_id);
    }
    connections.remove(state.id);
}

async fn read_loop<R: AsyncRead + Unpin>(
    context: &Context,
    mut reader: R,
    state: &mut ConnectionState,
    mut closed: watch::Receiver<WriterState>,
) -> Result<(), ConnectionError> {
    let max_bytes = context.shared.config.jute_max_buffer_bytes;
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let first = tokio::time::timeout(
        Duration::from_millis(SESSIONLESS_CONNECTION_MS_MAX),
        next_frame(&mut reader, &mut buffer, max_bytes, true, &mut closed),
    )
    .await
    .map_err(|_| {
        ConnectionError::Refused(format!(
            "no ConnectRequest within {SESSIONLESS_CONNECTION_MS_MAX} ms"
        ))
    })?;
    let Some(first) = first? else {
        return Ok(());
    };
    refuse_if_failing(context)?;
    let payload = match first {
        Frame::FourLetter(word) => {
            let text = four_letter::answer(context, word);
            state.outbound.send(Bytes::from(text));
            state.outbound.close("four-letter word answered");
            return Ok(());
        }
        Frame::Payload(payload) => payload,
    };
    let request = decode_connect_request(&payload)?;
    if !handshake(context, state, &request).await? {
        return Ok(());
    }
    while let Some(frame) =
        next_frame(&mut reader, &mut buffer, max_bytes, false, &mut closed).await?
    {
        let Frame::Payload(payload) = frame else {
            return Err(ConnectionError::Refused(
                "four-letter word after the handshake".into(),
            ));
        };
        // A failing server answers nothing, not even a ping: no read of a state that may be
        // stale, and no sign of life that would keep the session (its ephemerals, its locks).
        refuse_if_failing(context)?;
        let received_ms = context.shared.clock.monotonic_ms();
        state.stats.packets_received.fetch_add(1, Ordering::Relaxed);
        context
            .shared
            .stats
            .packets_received
            .fetch_add(1, Ordering::Relaxed);
        let (header, request) = match decode_request(&payload) {
            Ok(decoded) => decoded,
            Err(DecodeError::UnknownOp { xid, op }) => {
                // As ZooKeeper: answer Unimplemented, then close the connection.
                dispatch::reply_now(context, state, xid, Err(ErrorCode::Unimplemented)).await;
                return Err(ConnectionError::Refused(format!("unknown op code {op}")));
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(session_id) = state.session_id {
            if !context.shared.lock_tracker().touch(session_id, received_ms) {
                return Err(ConnectionError::Refused(
                    "session expired or closing".into(),
                ));
            }
            context.shared.note_alive(session_id);
        }
        if dispatch::handle(context, state, header, request, received_ms).await == Flow::Close {
            return Ok(());
        }
    }
    Ok(())
}

/// Closes the connection once the server is failing (see `crate::fatal`).
fn refuse_if_failing(context: &Context) -> Result<(), ConnectionError> {
    if context.shared.fatal.is_raised() {
        return Err(ConnectionError::Refused("the server is failing".into()));
    }
    Ok(())
}

/// Reads until one whole frame is buffered; `None` when the peer closed cleanly or the
/// connection is being closed from our side.
async fn next_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    buffer: &mut BytesMut,
    max_bytes: usize,
    first: bool,
    closed: &mut watch::Receiver<WriterState>,
) -> Result<Option<Frame>, ConnectionError> {
    loop {
        if let Some(frame) = take_frame(buffer, max_bytes, first)? {
            return Ok(Some(frame));
        }
        match &*closed.borrow_and_update() {
            WriterState::Running => {}
            WriterState::Closed => return Ok(None),
            WriterState::Failed(reason) => return Err(ConnectionError::Refused(reason.clone())),
        }
        tokio::select! {
            read = reader.read_buf(buffer) => {
                if read? == 0 {
                    if buffer.is_empty() {
                        return Ok(None);
                    }
                    return Err(ConnectionError::Refused(format!(
                        "peer closed mid-frame with {} bytes pending",
                        buffer.len()
                    )));
                }
            }
            // The state is read at the top of the loop; a dropped sender means the writer ended.
            changed = closed.changed() => if changed.is_err() { return Ok(None) },
        }
    }
}

/// Creates or resumes the session; returns false when the connection must close.
async fn handshake(
    context: &Context,
    state: &mut ConnectionState,
    request: &ConnectRequest,
) -> Result<bool, ConnectionError> {
    let shared = &context.shared;
    let config = &shared.config;
    if !context.consensus.is_serving() {
        return Err(ConnectionError::Refused(
            "no quorum: not currently serving".into(),
        ));
    }
    let last_zxid = shared.lock_store().tree.last_zxid();
    if request.last_zxid_seen > last_zxid {
        return Err(ConnectionError::Refused(format!(
            "client has seen zxid 0x{:x}, this server only 0x{last_zxid:x}",
            request.last_zxid_seen
        )));
    }
    let timeout_ms = request.timeout_ms.clamp(
        i32::try_from(config.min_session_timeout_ms).unwrap_or(i32::MAX),
        i32::try_from(config.max_session_timeout_ms).unwrap_or(i32::MAX),
    );
    let (session_id, password) = if request.session_id == 0 {
        match create_session(context, timeout_ms).await {
            Some(created) => created,
            None => return Ok(false),
        }
    } else {
        match resume_session(context, request) {
            Some(password) => (request.session_id, password),
            None => {
                tracing::info!(
                    peer = %state.peer,
                    session = format_args!("0x{:x}", request.session_id),
                    "invalid session: expired or wrong password"
                );
                send_connect_response(state, 0, 0, vec![0; SESSION_PASSWORD_BYTES], request);
                state.outbound.close("session expired");
                return Ok(false);
            }
        }
    };
    attach(context, state, session_id, timeout_ms);
    send_connect_response(state, timeout_ms, session_id, password.to_vec(), request);
    tracing::info!(
        peer = %state.peer,
        session = format_args!("0x{session_id:x}"),
        timeout_ms,
        resumed = request.session_id != 0,
        "session established"
    );
    Ok(true)
}

async fn create_session(context: &Context, timeout_ms: i32) -> Option<(i64, [u8; 16])> {
    let session_id = context.shared.new_session_id();
    let mut password = [0u8; SESSION_PASSWORD_BYTES];
    rand::rng().fill_bytes(&mut password);
    let (waiter, outcome) = oneshot::channel();
    let proposal = TxnProposal {
        session_id,
        auth: Vec::new(),
        op: TxnOp::CreateSession {
            timeout_ms,
            password,
        },
        route: Some(Route::Session(waiter)),
        leader_only: false,
    };
    proposal.propose(&context.proposer).await.ok()?;
    match outcome.await {
        Ok(Ok(())) => Some((session_id, password)),
        Ok(Err(code)) => {
            tracing::warn!(?code, "session creation failed");
            None
        }
        Err(_) => None,
    }
}

/// The session's password when the session exists, is not closing and the password matches.
fn resume_session(context: &Context, request: &ConnectRequest) -> Option<[u8; 16]> {
    let shared = &context.shared;
    let password = {
        let store = shared.lock_store();
        store
            .tree
            .session(request.session_id)
            .map(|record| record.password)?
    };
    if password.as_slice() != request.password.as_slice() {
        return None;
    }
    shared
        .lock_tracker()
        .is_active(request.session_id)
        .then_some(password)
}

/// Binds the session to this connection: an older connection of the same session is closed
/// and its watches dropped; the client re-sends the watches it wants with setWatches.
fn attach(context: &Context, state: &mut ConnectionState, session_id: i64, timeout_ms: i32) {
    let shared = &context.shared;
    let now_ms = shared.clock.monotonic_ms();
    let mut store = shared.lock_store();
    let mut connections = shared.lock_connections();
    let auth = vec![Id::new("ip", &state.peer.ip().to_string())];
    if let Some(previous) = connections.attach(state.id, session_id, timeout_ms, auth.clone()) {
        store.watches.remove_session(session_id);
        if let Some(entry) = connections.entries.get(&previous) {
            entry.outbound.close("session moved to another connection");
        }
    }
    shared
        .lock_tracker()
        .add(session_id, u64::try_from(timeout_ms).unwrap_or(0), now_ms);
    context.shared.note_alive(session_id);
    drop(connections);
    drop(store);
    state.session_id = Some(session_id);
    state.timeout_ms = timeout_ms;
    state
        .outbound
        .set_write_deadline_ms(u64::try_from(timeout_ms).unwrap_or(SESSIONLESS_CONNECTION_MS_MAX));
    state.auth = auth;
}

fn send_connect_response(
    state: &ConnectionState,
    timeout_ms: i32,
    session_id: i64,
    password: Vec<u8>,
    request: &ConnectRequest,
) {
    let response = ConnectResponse {
        protocol_version: 0,
        timeout_ms,
        session_id,
        password,
        read_only: request.read_only.map(|_| false),
    };
    let mut frame = BytesMut::new();
    encode_connect_response(&response, &mut frame);
    state.outbound.send(frame.freeze());
}

/// Drains the outbound queue into the socket, a batch per write. The connection is aborted
/// (see [`super::outbound`]) when the client lets replies pile up or a write makes no progress
/// for the write deadline: the session timeout once a session is attached (a client that has
/// not read for that long would itself have given the connection up; ZooKeeper's clients do at
/// two thirds of it), else [`SESSIONLESS_CONNECTION_MS_MAX`]. ZooKeeper's server has no write
/// deadline: a client that stops reading keeps its connection until its session expires.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    receiver: OutboundReceiver,
    (connection_id, stats): (u64, Arc<ConnectionStats>),
    shared: Arc<super::Shared>,
    closed: watch::Sender<WriterState>,
) {
    let OutboundReceiver {
        mut queue,
        progress,
    } = receiver;
    let mut batch = Vec::with_capacity(WRITE_BATCH_FRAMES_MAX);
    let mut bytes = Vec::with_capacity(READ_BUFFER_BYTES);
    let ended = loop {
        let received = tokio::select! {
            received = queue.recv_many(&mut batch, WRITE_BATCH_FRAMES_MAX) => received,
            reason = progress.aborted() => break WriterState::Failed(reason),
        };
        if received == 0 {
            break WriterState::Closed;
        }
        let mut closing = false;
        let mut frames = 0u64;
        for out in batch.drain(..) {
            match out {
                Out::Frame(frame) => {
                    bytes.extend_from_slice(&frame);
                    frames += 1;
                }
                Out::Close(reason) => {
                    tracing::debug!(reason, "closing the connection after flushing");
                    // Before the last frames reach the client (see Connections::release).
                    shared.release_connection_slot(connection_id);
                    closing = true;
                    break;
                }
            }
        }
        stats.packets_sent.fetch_add(frames, Ordering::Relaxed);
        shared
            .stats
            .packets_sent
            .fetch_add(frames, Ordering::Relaxed);
        let deadline_ms = progress.write_deadline_ms();
        let written = tokio::select! {
            written = write_within(&mut writer, &bytes, deadline_ms) => written,
            reason = progress.aborted() => break WriterState::Failed(reason),
        };
        match written {
            Ok(()) => {}
            Err(WriteError::Stalled) => {
                let reason = format!("client did not read for {deadline_ms} ms (write deadline)");
                break WriterState::Failed(reason);
            }
            // The reader meets the same end of the socket and reports it.
            Err(WriteError::Socket) => break WriterState::Closed,
        }
        progress.written(bytes.len());
        bytes.clear();
        if closing {
            break WriterState::Closed;
        }
    };
    if ended == WriterState::Closed {
        let _ = writer.shutdown().await;
    }
    let _ = closed.send(ended);
}

/// Why a write did not complete.
enum WriteError {
    /// No progress within the write deadline.
    Stalled,
    /// The socket failed or closed.
    Socket,
}

/// Writes and flushes `bytes`; fails when one step makes no progress for `deadline_ms` (the
/// deadline restarts with every byte the client takes) or the socket fails.
async fn write_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    deadline_ms: u64,
) -> Result<(), WriteError> {
    let deadline = Duration::from_millis(deadline_ms);
    let mut rest = bytes;
    while !rest.is_empty() {
        match tokio::time::timeout(deadline, writer.write(rest)).await {
            Err(_) => return Err(WriteError::Stalled),
            Ok(Err(_) | Ok(0)) => return Err(WriteError::Socket),
            Ok(Ok(count)) => rest = rest.get(count..).unwrap_or_default(),
        }
    }
    // flush: a TLS stream may hold records back until asked (a no-op on TCP).
    match tokio::time::timeout(deadline, writer.flush()).await {
        Err(_) => Err(WriteError::Stalled),
        Ok(Err(_)) => Err(WriteError::Socket),
        Ok(Ok(())) => Ok(()),
    }
}

/// Encodes the reply to request `xid`: the body on success, the error code in the header
/// (and no body) on failure. Every reply the server sends goes through here.
pub fn reply_frame(xid: i32, zxid: i64, result: Result<Response, ErrorCode>) -> Bytes {
    let (err, body) = match result {
        Ok(body) => (ErrorCode::Ok, body),
        Err(code) => (code, Response::Empty),
    };
    let header = ReplyHeader {
        xid,
        zxid,
        err: err.code(),
    };
    let mut frame = BytesMut::new();
    if let Err(error) = encode_reply(&header, &body, FRAME_BYTES_WIRE_MAX, &mut frame) {
        // Reads are bounded by jute.maxbuffer before this (dispatch::read_op) and a write's
        // reply by its request, so this is a bug: answer it, never panic or send garbage.
        tracing::error!(xid, zxid, %error, "reply cannot be encoded; answering MarshallingError");
        let refused = ReplyHeader {
            err: ErrorCode::MarshallingError.code(),
            ..header
        };
        // A header alone always fits.
        let _ = encode_reply(&refused, &Response::Empty, FRAME_BYTES_WIRE_MAX, &mut frame);
    }
    frame.freeze()
}
