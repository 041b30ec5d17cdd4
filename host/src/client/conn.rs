//! One client connection: the handshake (a new session, or one resumed), then a writer and a
//! reader sharing the queue of pending requests ([`serve`]).
//!
//! ZooKeeper answers a session's requests in the order it received them, so the pending queue
//! is a FIFO: the writer pushes (xid, op, waiter) before the bytes leave, the reader pops the
//! front for every reply that is neither a notification (xid -1, sent to the event channel)
//! nor a ping answer (xid -2, dropped). A reply whose xid is not the front's is a protocol
//! error. Any failure closes the queue and fails every waiter with `ConnectionLoss`; the
//! session (`session`) then reconnects. Replies and notifications also tell the session
//! which zxid it has seen and which watches and credentials the server holds.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::session::{Registration, SessionState};
use crate::net::{Stream, Transport};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::error::ClientError;
use crate::proto::{
    decode_connect_response, decode_notification, decode_reply, decode_reply_header,
    encode_connect_request, encode_request, op, take_frame, xid, ConnectRequest, ConnectResponse,
    Frame, ReplyHeader, Request, RequestHeader, Response, WatcherEvent,
};

/// The largest reply frame we accept. Larger than ZooKeeper's default jute.maxbuffer
/// (0xfffff) because a server configured with a bigger one may legitimately send more.
pub const REPLY_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Requests the writer encodes into one socket write at most, so one busy caller cannot
/// delay the others' bytes indefinitely.
pub const WRITE_BATCH_REQUESTS_MAX: usize = 256;
/// Bytes of the (all-zero) password a new session sends.
const PASSWORD_BYTES: usize = 16;
/// Bytes the reader asks the socket for at a time (at least).
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Pings go out after this fraction of the negotiated timeout without a request.
const PING_DIVISOR: u32 = 3;

/// What a waiter gets: the reply header and its decoded body, or why there is none.
pub type Reply = Result<(ReplyHeader, Response), ClientError>;

/// A request on its way to the writer task.
pub struct Outgoing {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// A watch notification as the server sent it (type and state are the wire codes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
    pub zxid: i64,
}

struct PendingEntry {
    xid: i32,
    op: i32,
    reply: oneshot::Sender<Reply>,
    /// What the request leaves on the server if it succeeds (a watch, credentials).
    registration: Option<Registration>,
}

#[derive(Default)]
struct PendingState {
    queue: VecDeque<PendingEntry>,
    /// Set once by the first failure; after it nothing is queued.
    closed: Option<String>,
}

/// The queue the writer and the reader share.
#[derive(Default)]
struct Pending {
    state: Mutex<PendingState>,
}

impl Pending {
    fn lock(&self) -> MutexGuard<'_, PendingState> {
        // A poisoned lock only means another task panicked mid-update; the queue is still a
        // valid VecDeque, so keep going.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Fails every waiter and refuses new ones. Only the first reason is kept.
    fn close(&self, reason: &str) {
        let drained: Vec<PendingEntry> = {
            let mut state = self.lock();
            if state.closed.is_none() {
                state.closed = Some(reason.to_owned());
            }
            state.queue.drain(..).collect()
        };
        for entry in drained {
            let _ = entry
                .reply
                .send(Err(ClientError::ConnectionLoss(reason.to_owned())));
        }
    }
}

/// The result of a handshake: the socket halves and what the server granted.
pub struct Handshake {
    pub stream: Stream,
    pub response: ConnectResponse,
    /// Bytes read past the ConnectResponse (a server may pipeline nothing yet, but be safe).
    pub leftover: BytesMut,
}

/// The session a handshake asks for: a new one (id 0) or one to resume.
pub struct Resume {
    pub session_id: i64,
    pub password: Vec<u8>,
    pub last_zxid: i64,
}

impl Resume {
    pub fn new_session() -> Resume {
        Resume {
            session_id: 0,
            password: vec![0; PASSWORD_BYTES],
            last_zxid: 0,
        }
    }
}

/// Opens a connection to `addr` on `transport` and runs the connect handshake, all within
/// `bound`. A server that answers with no timeout refused the session: `SessionExpired`.
pub async fn handshake(
    transport: &dyn Transport,
    addr: &str,
    timeout: Duration,
    bound: Duration,
    resume: &Resume,
) -> Result<Handshake, ClientError> {
    let attempt = async {
        let mut stream = transport
            .dial(addr)
            .await
            .map_err(|e| ClientError::ConnectionLoss(format!("connect {addr}: {e}")))?;
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: resume.last_zxid,
            timeout_ms,
            session_id: resume.session_id,
            password: resume.password.clone(),
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        encode_connect_request(&request, &mut out);
        stream.write_all(&out).await.map_err(io_loss)?;
        let mut buf = BytesMut::with_capacity(READ_CHUNK_BYTES);
        let payload = read_frame(&mut stream, &mut buf).await?;
        let response = decode_connect_response(&payload)?;
        if response.timeout_ms <= 0 {
            return Err(ClientError::SessionExpired);
        }
        Ok(Handshake {
            stream,
            response,
            leftover: buf,
        })
    };
    match tokio::time::timeout(bound, attempt).await {
        Ok(result) => result,
        Err(_) => Err(ClientError::Timeout(bound, "the connect handshake")),
    }
}

fn io_loss(error: std::io::Error) -> ClientError {
    ClientError::ConnectionLoss(error.to_string())
}

/// Reads until one whole frame is in `buf` and returns its payload.
async fn read_frame(stream: &mut Stream, buf: &mut BytesMut) -> Result<bytes::Bytes, ClientError> {
    loop {
        // `first` is false: a server never answers with a four-letter word.
        if let Some(Frame::Payload(payload)) = take_frame(buf, REPLY_FRAME_BYTES_MAX, false)? {
            return Ok(payload);
        }
        buf.reserve(READ_CHUNK_BYTES);
        let read = stream.read_buf(buf).await.map_err(io_loss)?;
        if read == 0 {
            return Err(ClientError::ConnectionLoss(
                "server closed the connection during the handshake".into(),
            ));
        }
    }
}

/// How a connection ended.
pub enum Served {
    /// Every handle of the client is gone: nothing more to send.
    ClientGone,
    /// The connection broke, or the server closed it; why.
    Lost(String),
}

/// Runs one connection until it ends: `preamble` (credentials and watches of a resumed
/// session) goes first, then the requests of `outgoing`; replies reach their waiters, and
/// notifications `events`. When it ends, every request still waiting fails with
/// `ConnectionLoss`.
pub async fn serve(
    handshake: Handshake,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    events: &mpsc::UnboundedSender<WatchedEvent>,
    state: Arc<SessionState>,
    preamble: Vec<Request>,
) -> Served {
    let Handshake {
        stream,
        response,
        leftover,
    } = handshake;
    // timeout_ms > 0 was checked by the handshake.
    let timeout = Duration::from_millis(u64::try_from(response.timeout_ms).unwrap_or(1));
    let (read, write) = tokio::io::split(stream);
    let pending = Pending::default();
    let preamble = preamble
        .into_iter()
        .map(|request| Outgoing {
            request,
            // Nobody waits for these replies; the session records what they registered.
            reply: oneshot::channel().0,
        })
        .collect();
    let writer = run_writer(write, outgoing, &pending, timeout / PING_DIVISOR, preamble);
    // As the Java client's read timeout: a silent server is left with a third of the session
    // timeout still to go, time to resume on another before the session expires.
    let silence_max = timeout * 2 / 3;
    let reader = run_reader(read, leftover, &pending, events, silence_max, &state);
    let served = tokio::select! {
        reason = reader => Served::Lost(reason),
        served = writer => served,
    };
    if let Served::Lost(reason) = &served {
        pending.close(reason);
    }
    served
}

/// Writer: assigns xids, queues waiters, batches requests into socket writes, and pings
/// after `ping_every` without a request. Ends when every sender is dropped or a write fails.
async fn run_writer(
    mut write: WriteHalf<Stream>,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    pending: &Pending,
    ping_every: Duration,
    preamble: Vec<Outgoing>,
) -> Served {
    let mut next_xid: i32 = 1;
    let mut out = BytesMut::new();
    if !preamble.is_empty() {
        queue_batch(preamble, pending, &mut next_xid, &mut out);
        if let Err(error) = flush(&mut write, &mut out).await {
            return Served::Lost(error);
        }
    }
    loop {
        let first = match tokio::time::timeout(ping_every, outgoing.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) => break,
            Err(_) => {
                let header = RequestHeader {
                    xid: xid::PING,
                    op: op::PING,
                };
                encode_request(&header, &Request::Ping, &mut out);
                if let Err(error) = flush(&mut write, &mut out).await {
                    return Served::Lost(error);
                }
                continue;
            }
        };
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH_REQUESTS_MAX {
            match outgoing.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        queue_batch(batch, pending, &mut next_xid, &mut out);
        if let Err(error) = flush(&mut write, &mut out).await {
            return Served::Lost(error);
        }
    }
    let _ = write.shutdown().await;
    Served::ClientGone
}

/// Encodes `batch` into `out`, queuing each waiter in the same order. If the connection
/// already closed, the waiters fail at once instead.
fn queue_batch(batch: Vec<Outgoing>, pending: &Pending, next_xid: &mut i32, out: &mut BytesMut) {
    let mut state = pending.lock();
    if let Some(reason) = state.closed.clone() {
        drop(state);
        for item in batch {
            let _ = item
                .reply
                .send(Err(ClientError::ConnectionLoss(reason.clone())));
        }
        return;
    }
    for item in batch {
        // Auth packets travel with ZooKeeper's reserved xid, and the server answers with it.
        let auth = matches!(item.request, Request::Auth(_));
        let header = RequestHeader {
            xid: if auth { xid::AUTH } else { *next_xid },
            op: item.request.op(),
        };
        // Positive xids only: the negative ones are reserved (notification, ping, auth...).
        *next_xid = if *next_xid == i32::MAX {
            1
        } else {
            *next_xid + 1
        };
        encode_request(&header, &item.request, out);
        state.queue.push_back(PendingEntry {
            xid: header.xid,
            op: header.op,
            reply: item.reply,
            registration: Registration::of(&item.request),
        });
    }
}

async fn flush(write: &mut WriteHalf<Stream>, out: &mut BytesMut) -> Result<(), String> {
    let result = write.write_all(out).await;
    out.clear();
    result.map_err(|e| format!("write failed: {e}"))
}

/// Reader: routes every reply frame until the first error, and returns why the connection
/// ended. A silence of `silence_max` (two thirds of the session timeout; pings make the
/// server talk every third of it) counts as a lost connection.
async fn run_reader(
    mut read: ReadHalf<Stream>,
    mut buf: BytesMut,
    pending: &Pending,
    events: &mpsc::UnboundedSender<WatchedEvent>,
    silence_max: Duration,
    session: &SessionState,
) -> String {
    loop {
        match drain_frames(&mut buf, pending, events, session) {
            Ok(()) => {}
            Err(error) => return error.to_string(),
        }
        buf.reserve(READ_CHUNK_BYTES);
        match tokio::time::timeout(silence_max, read.read_buf(&mut buf)).await {
            Ok(Ok(0)) => return "server closed the connection".to_owned(),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return format!("read failed: {error}"),
            Err(_) => return format!("no bytes from the server for {silence_max:?}"),
        }
    }
}

fn drain_frames(
    buf: &mut BytesMut,
    pending: &Pending,
    events: &mpsc::UnboundedSender<WatchedEvent>,
    session: &SessionState,
) -> Result<(), ClientError> {
    while let Some(frame) = take_frame(buf, REPLY_FRAME_BYTES_MAX, false)? {
        let Frame::Payload(payload) = frame else {
            return Err(ClientError::Protocol(
                "four-letter word from a server".into(),
            ));
        };
        route(&payload, pending, events, session)?;
    }
    Ok(())
}

fn route(
    payload: &[u8],
    pending: &Pending,
    events: &mpsc::UnboundedSender<WatchedEvent>,
    session: &SessionState,
) -> Result<(), ClientError> {
    let header = decode_reply_header(payload)?;
    session.saw_zxid(header.zxid);
    match header.xid {
        xid::NOTIFICATION => {
            let (header, event) = decode_notification(payload)?;
            let WatcherEvent {
                event_type,
                state,
                path,
            } = event;
            session.notified(event_type, &path);
            // Nobody listening is fine: the caller did not ask for events.
            let _ = events.send(WatchedEvent {
                event_type,
                state,
                path,
                zxid: header.zxid,
            });
            Ok(())
        }
        xid::PING => Ok(()),
        reply_xid => {
            let entry = pending.lock().queue.pop_front().ok_or_else(|| {
                ClientError::Protocol(format!("reply xid {reply_xid} with nothing pending"))
            })?;
            if entry.xid != reply_xid {
                let expected = entry.xid;
                let _ = entry.reply.send(Err(ClientError::Protocol(format!(
                    "reply xid {reply_xid}, expected {expected}"
                ))));
                return Err(ClientError::Protocol(format!(
                    "reply xid {reply_xid} out of order (expected {expected})"
                )));
            }
            if let Some(registration) = entry.registration {
                session.registered(registration, header.err);
            }
            let decoded = decode_reply(entry.op, payload).map_err(ClientError::from);
            let _ = entry.reply.send(decoded);
            Ok(())
        }
    }
}
