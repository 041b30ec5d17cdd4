//! A session across connections, as the Java client keeps one: when its connection breaks,
//! every request in flight fails with `ConnectionLoss` (its outcome is unknown), requests made
//! while disconnected fail at once, and the client reconnects to the servers of its list in
//! turn, resuming the session (its id, password and the last zxid it saw). On the new
//! connection it first re-sends its credentials (addAuth) and its watches (SetWatches, with
//! the last zxid it saw, so the server fires those whose node changed meanwhile). The event
//! channel hears `Disconnected` and `SyncConnected` as the Java client's default watcher does;
//! only a server that answers "expired" ends the session (`Expired`, then the channel closes),
//! or closing it. What state the session is in is [`SessionState`], shared with the
//! connection's tasks, which record the watches and credentials the server accepted.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use super::conn::{self, Outgoing, WatchedEvent};
use super::error::ClientError;
use crate::net::Transport;
use crate::proto::{
    keeper_state, AddWatchMode, AuthPacket, EventType, Request, SetWatches, WatcherType,
};

/// Pause after a pass over the server list in which no server took the session back.
pub const RECONNECT_PAUSE_MS: u64 = 100;

/// Where the session stands.
#[derive(Clone, Debug)]
enum Status {
    Connected { server: String },
    Disconnected { server: String, reason: String },
    Ended { server: String, reason: String },
}

/// The watches the server holds for this session, by kind (what SetWatches re-sends).
#[derive(Default, Debug)]
struct Watches {
    data: BTreeSet<String>,
    exist: BTreeSet<String>,
    child: BTreeSet<String>,
    persistent: BTreeSet<String>,
    recursive: BTreeSet<String>,
}

/// What a request leaves on the server when it succeeds: a watch, a watch removed, or
/// credentials.
#[derive(Debug)]
pub enum Registration {
    /// getData with a watch.
    Data(String),
    /// exists with a watch: a data watch when the node is there, an exist watch when not.
    Exists(String),
    /// getChildren with a watch.
    Child(String),
    /// addWatch with its mode.
    AddWatch { path: String, mode: i32 },
    /// removeWatches of a watcher type.
    Remove { path: String, watcher_type: i32 },
    /// addAuth.
    Auth(AuthPacket),
}

impl Registration {
    /// What `request` registers when it succeeds, if anything.
    pub fn of(request: &Request) -> Option<Registration> {
        match request {
            Request::GetData(watched) if watched.watch => {
                Some(Registration::Data(watched.path.clone()))
            }
            Request::Exists(watched) if watched.watch => {
                Some(Registration::Exists(watched.path.clone()))
            }
            Request::GetChildren(watched) | Request::GetChildren2(watched) if watched.watch => {
                Some(Registration::Child(watched.path.clone()))
            }
            Request::AddWatch(add) => Some(Registration::AddWatch {
                path: add.path.clone(),
                mode: add.mode,
            }),
            Request::RemoveWatches(remove) => Some(Registration::Remove {
                path: remove.path.clone(),
                watcher_type: remove.watcher_type,
            }),
            Request::Auth(auth) => Some(Registration::Auth(auth.clone())),
            _ => None,
        }
    }
}

/// The session's state, shared by the client handle, the supervisor and the connection tasks.
#[derive(Debug)]
pub struct SessionState {
    pub session_id: i64,
    pub password: Vec<u8>,
    /// The negotiated session timeout: asked for again on resuming, and the bound of each
    /// attempt.
    pub timeout: Duration,
    /// The highest zxid a reply carried: a server that has not seen it refuses to resume.
    last_zxid: AtomicI64,
    watches: Mutex<Watches>,
    auths: Mutex<Vec<AuthPacket>>,
    status: Mutex<Status>,
    /// Set by `Client::close`: the connection ending then is not a reason to reconnect.
    closing: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a task panicked mid-update of plain sets: keep going.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionState {
    pub fn new(
        session_id: i64,
        password: Vec<u8>,
        timeout: Duration,
        server: &str,
    ) -> SessionState {
        SessionState {
            session_id,
            password,
            timeout,
            last_zxid: AtomicI64::new(0),
            watches: Mutex::default(),
            auths: Mutex::default(),
            status: Mutex::new(Status::Connected {
                server: server.to_owned(),
            }),
            closing: AtomicBool::new(false),
        }
    }

    /// A reply (or notification) header's zxid.
    pub fn saw_zxid(&self, zxid: i64) {
        self.last_zxid.fetch_max(zxid, Ordering::Relaxed);
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid.load(Ordering::Relaxed)
    }

    /// The server answered a request that registers something with `err`.
    pub fn registered(&self, registration: Registration, err: i32) {
        let no_node = err == crate::proto::ErrorCode::NoNode.code();
        if let Registration::Auth(auth) = registration {
            if err == 0 {
                let mut auths = lock(&self.auths);
                if !auths.contains(&auth) {
                    auths.push(auth);
                }
            }
            return;
        }
        let mut watches = lock(&self.watches);
        match registration {
            Registration::Data(path) if err == 0 => {
                watches.data.insert(path);
            }
            Registration::Exists(path) if err == 0 => {
                watches.data.insert(path);
            }
            Registration::Exists(path) if no_node => {
                watches.exist.insert(path);
            }
            Registration::Child(path) if err == 0 => {
                watches.child.insert(path);
            }
            Registration::AddWatch { path, mode } if err == 0 => {
                match AddWatchMode::from_code(mode) {
                    Some(AddWatchMode::Persistent) => watches.persistent.insert(path),
                    Some(AddWatchMode::PersistentRecursive) => watches.recursive.insert(path),
                    None => false,
                };
            }
            Registration::Remove { path, watcher_type } if err == 0 => {
                let kind = WatcherType::from_code(watcher_type);
                let any = kind == Some(WatcherType::Any);
                if any || kind == Some(WatcherType::Children) {
                    watches.child.remove(&path);
                }
                if any || kind == Some(WatcherType::Data) {
                    watches.data.remove(&path);
                    watches.exist.remove(&path);
                }
                if any || kind == Some(WatcherType::Persistent) {
                    watches.persistent.remove(&path);
                }
                if any || kind == Some(WatcherType::PersistentRecursive) {
                    watches.recursive.remove(&path);
                }
            }
            // Refused: nothing was registered.
            Registration::Data(_)
            | Registration::Exists(_)
            | Registration::Child(_)
            | Registration::AddWatch { .. }
            | Registration::Remove { .. }
            | Registration::Auth(_) => {}
        }
    }

    /// A notification fired: the one-shot watches it consumed are gone (persistent ones stay).
    pub fn notified(&self, event_type: i32, path: &str) {
        let mut watches = lock(&self.watches);
        let data = [
            EventType::NodeCreated,
            EventType::NodeDeleted,
            EventType::NodeDataChanged,
        ]
        .iter()
        .any(|kind| *kind as i32 == event_type);
        let child = [EventType::NodeDeleted, EventType::NodeChildrenChanged]
            .iter()
            .any(|kind| *kind as i32 == event_type);
        if data {
            watches.data.remove(path);
            watches.exist.remove(path);
        }
        if child {
            watches.child.remove(path);
        }
    }

    /// What a new connection sends before anything else: the credentials, then the watches.
    fn preamble(&self) -> Vec<Request> {
        let mut requests: Vec<Request> = lock(&self.auths)
            .iter()
            .cloned()
            .map(Request::Auth)
            .collect();
        let watches = lock(&self.watches);
        let list = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>();
        let set = SetWatches {
            relative_zxid: self.last_zxid(),
            data_watches: list(&watches.data),
            exist_watches: list(&watches.exist),
            child_watches: list(&watches.child),
            persistent_watches: list(&watches.persistent),
            persistent_recursive_watches: list(&watches.recursive),
        };
        let any = !(set.data_watches.is_empty()
            && set.exist_watches.is_empty()
            && set.child_watches.is_empty()
            && set.persistent_watches.is_empty()
            && set.persistent_recursive_watches.is_empty());
        if any {
            requests.push(Request::SetWatches(set));
        }
        requests
    }

    /// `None` while connected; otherwise why not.
    pub fn closed_reason(&self) -> Option<String> {
        match &*lock(&self.status) {
            Status::Connected { .. } => None,
            Status::Disconnected { reason, .. } | Status::Ended { reason, .. } => {
                Some(reason.clone())
            }
        }
    }

    /// Whether the session is over (expired, or closed), not just between connections.
    pub fn is_over(&self) -> bool {
        matches!(&*lock(&self.status), Status::Ended { .. })
    }

    /// The server this session is (or was last) connected to.
    pub fn server(&self) -> String {
        match &*lock(&self.status) {
            Status::Connected { server }
            | Status::Disconnected { server, .. }
            | Status::Ended { server, .. } => server.clone(),
        }
    }

    pub fn start_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    fn set(&self, status: Status) {
        *lock(&self.status) = status;
    }
}

/// Reads `events` until the session is connected again (`SyncConnected`); node events read
/// meanwhile are dropped (the caller re-reads what it watches). `SessionExpired` when the
/// session ends instead.
pub async fn until_reconnected(
    events: &mut mpsc::UnboundedReceiver<WatchedEvent>,
) -> Result<(), ClientError> {
    while let Some(event) = events.recv().await {
        if event.event_type != EventType::None as i32 {
            continue;
        }
        match event.state {
            keeper_state::SYNC_CONNECTED => return Ok(()),
            keeper_state::EXPIRED => return Err(ClientError::SessionExpired),
            _ => {}
        }
    }
    Err(ClientError::SessionExpired)
}

/// A state change as the event channel carries it (type None, no path).
fn state_event(state: i32) -> WatchedEvent {
    WatchedEvent {
        event_type: EventType::None as i32,
        state,
        path: String::new(),
        zxid: -1,
    }
}

/// Runs the session: serves its connection, and when that breaks, reconnects and resumes
/// until the server says the session expired or the client closes it. Ends when the client
/// handle is dropped (which also aborts it).
pub async fn supervise(
    first: conn::Handshake,
    transport: Arc<dyn Transport>,
    servers: Vec<String>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    events: mpsc::UnboundedSender<WatchedEvent>,
    state: Arc<SessionState>,
) {
    let mut handshake = first;
    let mut preamble = Vec::new();
    loop {
        let server = state.server();
        let served = conn::serve(
            handshake,
            &mut outgoing,
            &events,
            Arc::clone(&state),
            preamble,
        )
        .await;
        let reason = match served {
            conn::Served::ClientGone => return,
            conn::Served::Lost(reason) => reason,
        };
        if state.closing.load(Ordering::Relaxed) {
            state.set(Status::Ended { server, reason });
            return;
        }
        tracing::debug!(session = format_args!("0x{:x}", state.session_id), %server, %reason, "connection lost; reconnecting");
        state.set(Status::Disconnected {
            server: server.clone(),
            reason: reason.clone(),
        });
        let _ = events.send(state_event(keeper_state::DISCONNECTED));
        let found = reconnect(
            &*transport,
            &servers,
            &server,
            &mut outgoing,
            &state,
            &reason,
        );
        match found.await {
            Some((next, resumed)) => {
                state.set(Status::Connected { server: next });
                let _ = events.send(state_event(keeper_state::SYNC_CONNECTED));
                preamble = state.preamble();
                handshake = resumed;
            }
            None => {
                state.set(Status::Ended {
                    server,
                    reason: "session expired".into(),
                });
                let _ = events.send(state_event(keeper_state::EXPIRED));
                // Dropping `outgoing` and `events` closes them: later requests fail Closed.
                return;
            }
        }
    }
}

/// Tries the servers in turn, starting after `last`, until one takes the session back
/// (`Some`) or one answers that it expired (`None`). Requests made meanwhile fail at once.
async fn reconnect(
    transport: &dyn Transport,
    servers: &[String],
    last: &str,
    outgoing: &mut mpsc::UnboundedReceiver<Outgoing>,
    state: &SessionState,
    reason: &str,
) -> Option<(String, conn::Handshake)> {
    let start = servers
        .iter()
        .position(|server| server == last)
        .map_or(0, |at| at + 1);
    let order: Vec<&String> = servers
        .iter()
        .cycle()
        .skip(start)
        .take(servers.len())
        .collect();
    loop {
        for server in &order {
            fail_waiting(outgoing, reason);
            if state.closing.load(Ordering::Relaxed) {
                return None;
            }
            let resume = conn::Resume {
                session_id: state.session_id,
                password: state.password.clone(),
                last_zxid: state.last_zxid(),
            };
            let attempt = conn::handshake(transport, server, state.timeout, state.timeout, &resume);
            match attempt.await {
                Ok(handshake) => return Some(((*server).clone(), handshake)),
                Err(ClientError::SessionExpired) => return None,
                Err(error) => {
                    tracing::debug!(%server, %error, "could not resume the session here")
                }
            }
        }
        fail_waiting(outgoing, reason);
        tokio::time::sleep(Duration::from_millis(RECONNECT_PAUSE_MS)).await;
    }
}

/// Fails every request queued while disconnected, as the Java client does.
fn fail_waiting(outgoing: &mut mpsc::UnboundedReceiver<Outgoing>, reason: &str) {
    while let Ok(waiting) = outgoing.try_recv() {
        let _ = waiting.reply.send(Err(ClientError::ConnectionLoss(format!(
            "disconnected ({reason})"
        ))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{AddWatchRequest, ErrorCode, PathWatchRequest, WatchesRequest};

    fn watched(path: &str) -> PathWatchRequest {
        PathWatchRequest {
            path: path.into(),
            watch: true,
        }
    }

    fn register(state: &SessionState, request: Request, err: i32) {
        let registration = Registration::of(&request).expect("a registering request");
        state.registered(registration, err);
    }

    fn set_watches(state: &SessionState) -> Option<SetWatches> {
        state
            .preamble()
            .into_iter()
            .find_map(|request| match request {
                Request::SetWatches(set) => Some(set),
                _ => None,
            })
    }

    #[test]
    fn accepted_watches_are_resent_and_fired_ones_are_not() {
        let state = SessionState::new(1, vec![0; 16], Duration::from_secs(1), "a:1");
        let no_node = ErrorCode::NoNode.code();
        register(&state, Request::GetData(watched("/d")), 0);
        register(&state, Request::Exists(watched("/e")), no_node);
        register(&state, Request::Exists(watched("/x")), 0);
        register(&state, Request::GetChildren2(watched("/c")), 0);
        register(&state, Request::GetData(watched("/refused")), no_node);
        let add = |path: &str, mode| {
            Request::AddWatch(AddWatchRequest {
                path: path.into(),
                mode,
            })
        };
        register(&state, add("/p", AddWatchMode::Persistent as i32), 0);
        register(
            &state,
            add("/r", AddWatchMode::PersistentRecursive as i32),
            0,
        );
        assert!(Registration::of(&Request::GetData(PathWatchRequest {
            path: "/d".into(),
            watch: false
        }))
        .is_none());
        state.saw_zxid(41);
        state.saw_zxid(7);
        let set = set_watches(&state).expect("watches to re-send");
        assert_eq!(set.relative_zxid, 41);
        assert_eq!(set.data_watches, ["/d", "/x"]);
        assert_eq!(set.exist_watches, ["/e"]);
        assert_eq!(set.child_watches, ["/c"]);
        assert_eq!(set.persistent_watches, ["/p"]);
        assert_eq!(set.persistent_recursive_watches, ["/r"]);

        // One-shot watches go when they fire; persistent ones stay.
        state.notified(EventType::NodeDataChanged as i32, "/d");
        state.notified(EventType::NodeCreated as i32, "/e");
        state.notified(EventType::NodeDeleted as i32, "/c");
        state.notified(EventType::NodeDataChanged as i32, "/p");
        let remove = |path: &str, watcher_type| {
            Request::RemoveWatches(WatchesRequest {
                path: path.into(),
                watcher_type,
            })
        };
        register(&state, remove("/x", WatcherType::Children as i32), 0);
        let set = set_watches(&state).expect("watches to re-send");
        assert_eq!(
            set.data_watches,
            ["/x"],
            "a children removal keeps data watches"
        );
        assert!(set.exist_watches.is_empty() && set.child_watches.is_empty());
        assert_eq!(set.persistent_watches, ["/p"]);
        register(&state, remove("/x", WatcherType::Data as i32), 0);
        register(&state, remove("/p", WatcherType::Persistent as i32), 0);
        register(&state, remove("/r", WatcherType::Any as i32), 0);
        assert!(set_watches(&state).is_none(), "nothing left to re-send");
    }

    #[test]
    fn accepted_credentials_are_resent_first_once_each() {
        let state = SessionState::new(1, vec![0; 16], Duration::from_secs(1), "a:1");
        let auth = |user: &str| {
            Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: user.as_bytes().to_vec(),
            })
        };
        register(&state, auth("u:p"), 0);
        register(&state, auth("u:p"), 0);
        register(&state, auth("bad:x"), ErrorCode::AuthFailed.code());
        register(&state, Request::GetData(watched("/d")), 0);
        let preamble = state.preamble();
        assert_eq!(preamble.len(), 2);
        assert!(matches!(&preamble[0], Request::Auth(packet) if packet.auth == b"u:p"));
        assert!(matches!(&preamble[1], Request::SetWatches(_)));
    }

    #[test]
    fn status_says_why_not_connected() {
        let state = SessionState::new(1, vec![0; 16], Duration::from_secs(1), "a:1");
        assert_eq!(state.closed_reason(), None);
        state.set(Status::Disconnected {
            server: "a:1".into(),
            reason: "reset".into(),
        });
        assert_eq!(state.closed_reason().as_deref(), Some("reset"));
        state.set(Status::Connected {
            server: "b:2".into(),
        });
        assert_eq!(
            (state.closed_reason(), state.server()),
            (None, "b:2".into())
        );
    }
}
