//! `client`: a small async ZooKeeper client over tokio, used by our own tools (`zkw bench`,
//! `zkw cli`) and tests. It speaks only through `crate::proto`'s client-side mirror.
//!
//! [`Client::connect`] takes a server list (`host:port,host:port`, tried in order, again and
//! again within the session timeout as the Java client does, so a server still starting or
//! an ensemble still electing is waited for), negotiates
//! the session timeout and starts two tasks on the connection (see `conn`): a writer that
//! pipelines any number of requests and pings every third of the timeout when idle, and a
//! reader that matches replies to requests in order. [`Client::submit`] queues a request at
//! once and returns a future for its reply, so one task can keep many requests in flight; the
//! typed helpers (create, get_data, set_data, delete, exists, get_children, multi, sync, close;
//! ACLs, watches, ephemerals, whoami, config and reconfig in `admin`) wait for one reply each. A non-zero reply code is `ClientError::Server(code)`. Every wait
//! is bounded by the negotiated session timeout.
//!
//! The session outlives its connection (see `session`): a broken connection fails the
//! requests in flight with `ConnectionLoss`, and the client resumes the session on the next
//! server of its list, re-sending its credentials and watches; the event channel hears
//! `Disconnected`, `SyncConnected` and, when the session is gone, `Expired`. Limits, on purpose
//! for now: no chroot, no read-only mode. Watch notifications go to [`Client::take_events`].

mod admin;
mod conn;
mod error;
mod session;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use admin::{CreateOptions, CONFIG_NODE};
pub use conn::{WatchedEvent, REPLY_FRAME_BYTES_MAX, WRITE_BATCH_REQUESTS_MAX};
pub use error::ClientError;
pub use session::until_reconnected;

use crate::net::{TcpTransport, Transport};
use crate::proto::{
    op, Acl, CreateMode, CreateRequest, DeleteRequest, MultiOp, MultiResult, PathWatchRequest,
    Request, Response, SetDataRequest, Stat,
};

/// The port a server list entry without one gets.
pub const DEFAULT_PORT: u16 = 2181;
/// Pause after a pass over the server list in which no server took the session (the Java
/// client pauses up to 1 s); the passes go on until the session timeout is spent.
pub const CONNECT_RETRY_PAUSE_MS: u64 = 100;

/// A session. Dropping it stops its task and closes the socket without closing the session
/// (the server expires it); call [`Client::close`] to end it cleanly.
pub struct Client {
    outgoing: mpsc::UnboundedSender<conn::Outgoing>,
    state: Arc<session::SessionState>,
    events: Option<mpsc::UnboundedReceiver<WatchedEvent>>,
    task: JoinHandle<()>,
    timeout: Duration,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Splits `host:port,host:port` into connectable addresses; a missing port is 2181.
pub fn parse_servers(servers: &str) -> Result<Vec<String>, ClientError> {
    let mut out = Vec::new();
    for entry in servers.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(ClientError::BadAddress(servers.to_owned()));
        }
        // `[v6]:port` or `[v6]`; otherwise at most one colon (`host` or `host:port`).
        let port = if let Some(rest) = entry.strip_prefix('[') {
            let (_, after) = rest
                .split_once(']')
                .ok_or_else(|| ClientError::BadAddress(entry.to_owned()))?;
            after.strip_prefix(':')
        } else if entry.matches(':').count() > 1 {
            return Err(ClientError::BadAddress(entry.to_owned()));
        } else {
            entry.split_once(':').map(|(_, port)| port)
        };
        match port {
            Some(port) => {
                port.parse::<u16>()
                    .map_err(|_| ClientError::BadAddress(entry.to_owned()))?;
                out.push(entry.to_owned());
            }
            None => out.push(format!("{entry}:{DEFAULT_PORT}")),
        }
    }
    Ok(out)
}

impl Client {
    /// Connects to the first server of `servers` that completes a handshake, asking for
    /// `session_timeout`. A server that refuses (not listening, or closing the connection
    /// because it does not serve yet) is tried again after the others, as the Java client
    /// does; all attempts together are bounded by `session_timeout`.
    pub async fn connect(servers: &str, session_timeout: Duration) -> Result<Client, ClientError> {
        Client::connect_via(Arc::new(TcpTransport), servers, session_timeout).await
    }

    /// [`Client::connect`] over `transport` (the simulator's in-memory network), which the
    /// session also reconnects over.
    pub async fn connect_via(
        transport: Arc<dyn Transport>,
        servers: &str,
        session_timeout: Duration,
    ) -> Result<Client, ClientError> {
        let addrs = parse_servers(servers)?;
        let deadline = tokio::time::Instant::now() + session_timeout;
        let pause = Duration::from_millis(CONNECT_RETRY_PAUSE_MS);
        let mut last = String::from("no server tried");
        loop {
            for addr in &addrs {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if left.is_zero() {
                    break;
                }
                let fresh = conn::Resume::new_session();
                let attempt = conn::handshake(&*transport, addr, session_timeout, left, &fresh);
                match attempt.await {
                    Ok(handshake) => return Ok(Client::start(transport, addr, &addrs, handshake)),
                    Err(ClientError::SessionExpired) => return Err(ClientError::SessionExpired),
                    Err(error) => last = format!("{addr}: {error}"),
                }
            }
            if tokio::time::Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        Err(ClientError::Connect {
            servers: servers.to_owned(),
            last,
        })
    }

    fn start(
        transport: Arc<dyn Transport>,
        addr: &str,
        servers: &[String],
        handshake: conn::Handshake,
    ) -> Client {
        let response = &handshake.response;
        // timeout_ms > 0 was checked by the handshake.
        let timeout = Duration::from_millis(u64::try_from(response.timeout_ms).unwrap_or(1));
        let state = Arc::new(session::SessionState::new(
            response.session_id,
            response.password.clone(),
            timeout,
            addr,
        ));
        let (outgoing_tx, outgoing_rx) = mpsc::unbounded_channel();
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(session::supervise(
            handshake,
            transport,
            servers.to_vec(),
            outgoing_rx,
            events_tx,
            Arc::clone(&state),
        ));
        Client {
            outgoing: outgoing_tx,
            state,
            events: Some(events_rx),
            task,
            timeout,
        }
    }

    pub fn session_id(&self) -> i64 {
        self.state.session_id
    }

    pub fn session_password(&self) -> &[u8] {
        &self.state.password
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.timeout
    }

    /// The `host:port` this client is (or was last) connected to.
    pub fn server(&self) -> String {
        self.state.server()
    }

    /// Why the client is not connected now (reconnecting, or the session is over); `None`
    /// while it is.
    pub fn closed_reason(&self) -> Option<String> {
        self.state.closed_reason()
    }

    /// Whether the session is over (expired or closed); while it is only between connections
    /// (see [`Client::closed_reason`]), it is not.
    pub fn session_over(&self) -> bool {
        self.state.is_over()
    }

    /// The watch notifications of this session; `None` after the first call.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<WatchedEvent>> {
        self.events.take()
    }

    /// Queues `request` now (so requests submitted one after another are sent, and answered,
    /// in that order) and returns a future for its reply body, bounded by the session
    /// timeout. A non-zero reply code is `ClientError::Server`, except for a failed multi,
    /// whose per-op results are returned as `Response::Multi` by [`Client::multi_results`].
    pub fn submit(
        &self,
        request: Request,
    ) -> impl Future<Output = Result<Response, ClientError>> + Send + 'static {
        let reply = self.submit_raw(request);
        async move {
            let (header, body) = reply.await?;
            if header.err != 0 {
                return Err(ClientError::from_code(header.err));
            }
            Ok(body)
        }
    }

    /// Like `submit`, but hands back the reply header too, whatever its error code.
    pub fn submit_raw(
        &self,
        request: Request,
    ) -> impl Future<Output = conn::Reply> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let sent = self.outgoing.send(conn::Outgoing { request, reply: tx });
        let timeout = self.timeout;
        let state = Arc::clone(&self.state);
        async move {
            if sent.is_err() {
                return Err(ClientError::Closed);
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(reply)) => reply,
                // The session task dropped the waiter: the session is over.
                Ok(Err(_)) => Err(ClientError::ConnectionLoss(
                    state
                        .closed_reason()
                        .unwrap_or_else(|| "session task ended".into()),
                )),
                Err(_) => Err(ClientError::Timeout(timeout, "a reply")),
            }
        }
    }

    /// create (op 1) with `acl` and `mode`; returns the created path (which differs from
    /// `path` for sequential nodes).
    pub async fn create(
        &self,
        path: &str,
        data: &[u8],
        acl: &[Acl],
        mode: CreateMode,
    ) -> Result<String, ClientError> {
        let request = Request::Create {
            op: op::CREATE,
            request: CreateRequest {
                path: path.to_owned(),
                data: Some(data.to_vec()),
                acl: acl.to_vec(),
                flags: mode as i32,
                ttl_ms: None,
            },
        };
        match self.submit(request).await? {
            Response::Create { path } => Ok(path),
            other => Err(unexpected(op::CREATE, &other)),
        }
    }

    /// addAuth (op 100), e.g. `("digest", b"user:password")`. A refused auth closes the
    /// session, as ZooKeeper does.
    pub async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), ClientError> {
        let request = Request::Auth(crate::proto::AuthPacket {
            auth_type: 0,
            scheme: scheme.to_owned(),
            auth: auth.to_vec(),
        });
        self.submit(request).await.map(|_| ())
    }

    /// getData: the data (null read as empty) and Stat; `watch` leaves a data watch.
    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Vec<u8>, Stat), ClientError> {
        let (data, stat) = self.get_data_or_null(path, watch).await?;
        Ok((data.unwrap_or_default(), stat))
    }

    /// getData keeping null data (`None`) apart from empty data, as the Java client does.
    pub async fn get_data_or_null(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Option<Vec<u8>>, Stat), ClientError> {
        match self.submit(get_data_request(path, watch)).await? {
            Response::GetData { data, stat } => Ok((data, stat)),
            other => Err(unexpected(op::GET_DATA, &other)),
        }
    }

    /// setData with an expected `version` (-1: any); returns the new Stat.
    pub async fn set_data(
        &self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> Result<Stat, ClientError> {
        match self.submit(set_data_request(path, data, version)).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected(op::SET_DATA, &other)),
        }
    }

    /// delete with an expected `version` (-1: any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<(), ClientError> {
        let request = Request::Delete(DeleteRequest {
            path: path.to_owned(),
            version,
        });
        self.submit(request).await.map(drop)
    }

    /// exists: `None` when the node is absent (NoNode is not an error here); `watch` leaves
    /// an exists watch either way.
    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>, ClientError> {
        let request = Request::Exists(PathWatchRequest {
            path: path.to_owned(),
            watch,
        });
        match self.submit(request).await {
            Ok(Response::Stat(stat)) => Ok(Some(stat)),
            Ok(other) => Err(unexpected(op::EXISTS, &other)),
            Err(ClientError::Server(crate::proto::ErrorCode::NoNode)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// getChildren (op 8): the child names, unsorted as the server sends them.
    pub async fn get_children(&self, path: &str, watch: bool) -> Result<Vec<String>, ClientError> {
        let request = Request::GetChildren(PathWatchRequest {
            path: path.to_owned(),
            watch,
        });
        match self.submit(request).await? {
            Response::GetChildren { children } => Ok(children),
            other => Err(unexpected(op::GET_CHILDREN, &other)),
        }
    }

    /// multi: all or nothing. On success the per-op results; on failure
    /// `ClientError::Server` with the first failing op's code (use `multi_results` for all).
    pub async fn multi(&self, ops: Vec<MultiOp>) -> Result<Vec<MultiResult>, ClientError> {
        let (code, results) = self.multi_results(ops).await?;
        if code != 0 {
            return Err(ClientError::from_code(code));
        }
        Ok(results)
    }

    /// multi returning the failure code (0 on success) and the per-op results (error results
    /// included).
    pub async fn multi_results(
        &self,
        ops: Vec<MultiOp>,
    ) -> Result<(i32, Vec<MultiResult>), ClientError> {
        let (header, body) = self.submit_raw(Request::Multi(ops)).await?;
        match body {
            Response::Multi(results) => {
                // ZooKeeper answers a failed multi with err 0 in the header and the reason in
                // the results: the first non-zero Error entry (earlier ops show Error(0)).
                let first_failure = results.iter().find_map(|result| match result {
                    MultiResult::Error(code) if *code != 0 => Some(*code),
                    _ => None,
                });
                let code = if header.err != 0 {
                    header.err
                } else {
                    first_failure.unwrap_or(0)
                };
                Ok((code, results))
            }
            Response::Empty if header.err != 0 => Err(ClientError::from_code(header.err)),
            other => Err(unexpected(op::MULTI, &other)),
        }
    }

    /// sync: returns the path the server echoes.
    pub async fn sync(&self, path: &str) -> Result<String, ClientError> {
        let request = Request::Sync {
            path: path.to_owned(),
        };
        match self.submit(request).await? {
            Response::Sync { path } => Ok(path),
            other => Err(unexpected(op::SYNC, &other)),
        }
    }

    /// Ends the session (closeSession, waiting for its answer within the session timeout)
    /// and then the connection.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.state.start_closing();
        self.submit(Request::CloseSession).await.map(drop)
    }
}

/// A getData request, for callers that pipeline with [`Client::submit`].
pub fn get_data_request(path: &str, watch: bool) -> Request {
    Request::GetData(PathWatchRequest {
        path: path.to_owned(),
        watch,
    })
}

/// A setData request, for callers that pipeline with [`Client::submit`].
pub fn set_data_request(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        version,
    })
}

/// A persistent, world-open create (op 1), for callers that pipeline with [`Client::submit`].
pub fn create_request(path: &str, data: &[u8]) -> Request {
    Request::Create {
        op: op::CREATE,
        request: CreateRequest {
            path: path.to_owned(),
            data: Some(data.to_vec()),
            acl: Acl::open_unsafe(),
            flags: CreateMode::Persistent as i32,
            ttl_ms: None,
        },
    }
}

fn unexpected(op: i32, body: &Response) -> ClientError {
    ClientError::UnexpectedReply {
        op,
        body: format!("{body:?}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn server_lists_parse_with_default_port() {
        assert_eq!(
            parse_servers("127.0.0.1:2181, localhost").unwrap(),
            vec!["127.0.0.1:2181".to_owned(), "localhost:2181".to_owned()]
        );
        assert_eq!(
            parse_servers("[::1]:2182").unwrap(),
            vec!["[::1]:2182".to_owned()]
        );
        assert!(parse_servers("").is_err());
        assert!(parse_servers("a:1,,b:2").is_err());
        assert!(parse_servers("host:notaport").is_err());
    }
}
