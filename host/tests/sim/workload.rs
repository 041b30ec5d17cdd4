//! The simulated clients: each runs random ZooKeeper operations from its own seeded generator
//! through the `zookeeper-client` crate, on sessions it opens, loses and closes, and records
//! what it was told:
//! - register ops on `/r/<k>` (sync-then-getData, setData, setData with a version, and a multi
//!   of check + setData + create) into the [`History`] for the linearizability check;
//! - acknowledged creates (persistent sequential `/s/…`, the multi's `/m/…`) that must exist
//!   at the end, and multis that definitely failed whose `/m/…` must not;
//! - ephemerals `/e/…` per session: present while the session lives, gone when it is;
//!   some sessions are abandoned (the client goes silent without closing them, through zkw's
//!   own client) so that they expire;
//! - lock cycles through the built-in `lock` recipe (request, wait for the grant, release):
//!   every grant's fencing token is unique, no lower than its request's zxid, and grants come
//!   in request order (FIFO);
//! - one-shot data watches (set by getData) that must fire for a live session when an
//!   acknowledged write follows, and a persistent recursive watch on `/r` per session whose
//!   events must come in zxid order (never going back) on each connection;
//! - kept sessions ([`keep`]): zkw's own client on the simulated network, one long session
//!   each through every fault, resuming on another member when its connection breaks, with
//!   an ephemeral `/e/kept-<k>` it keeps writing a counter to: while the session lives its
//!   ephemeral is there, owned by it, holding an acknowledged count or a later one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use zookeeper_client as zk;

use crate::checker::{History, Kind};

/// Register znodes under /r.
pub const KEYS: usize = 3;
/// Bound on one operation, and on opening a session, ms.
const OP_MS_MAX: u64 = 4_000;
/// The lock the clients contend for (the `lock` recipe is bound to its parent).
pub const LOCK: &str = "/locks/sim";
/// How long a client waits for its grant before it gives up its request, ms.
const GRANT_WAIT_MS_MAX: u64 = 2_000;
/// Pause after a failed connect or an error that keeps the session, ms.
const BACKOFF_MS: u64 = 50;
/// The odds that a client, after an operation, also abandons a session with an ephemeral.
const ABANDON_ODDS: f64 = 0.02;
/// Distinguishes the abandoned sessions' stream from the clients' main one.
const ABANDON_STREAM: u64 = 0xab4d_0e5e;

/// Everything acknowledged to the clients, to check against the tree at the end.
#[derive(Default)]
pub struct Acked {
    /// Creates acknowledged: they must exist at the end.
    pub nodes: Vec<String>,
    /// Multis that definitely failed: their create must not exist.
    pub absent: Vec<String>,
    /// Register writes acknowledged: (key, mzxid).
    pub writes: Vec<(usize, i64)>,
    pub sessions: Vec<Arc<SessionRecord>>,
    pub grants: Vec<Grant>,
    /// Ephemerals of sessions abandoned (they must go when those sessions expire).
    pub abandoned: Vec<String>,
    /// Broken guarantees seen while running.
    pub violations: Vec<String>,
}

/// A lock grant a client saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// The fencing token (first: grants sort by it).
    pub token: i64,
    /// The request node's sequence number.
    pub sequence: i64,
    /// The zxid that created the request.
    pub czxid: i64,
}

/// A one-shot data watch a read set.
#[derive(Clone)]
pub struct DataWatch {
    pub key: usize,
    /// The node's mzxid the read saw.
    pub seen: i64,
    /// The event, once it fired.
    pub fired: Arc<Mutex<Option<zk::WatchedEvent>>>,
}

/// One session a client opened.
pub struct SessionRecord {
    pub id: i64,
    /// Ephemerals acknowledged and not deleted (nor in doubt).
    pub ephemerals: Mutex<Vec<String>>,
    pub watches: Mutex<Vec<DataWatch>>,
    /// The client, while the session is in use; taken at the end to check and close it.
    pub client: Mutex<Option<zk::Client>>,
}

pub struct Shared {
    pub history: History,
    pub acked: Mutex<Acked>,
    pub hosts: String,
    /// The simulated network, and every member's client address on it (one list per
    /// starting member).
    pub network: zkw::net::MemoryNetwork,
    pub memory_hosts: Vec<String>,
}

impl Shared {
    fn violation(&self, text: String) {
        eprintln!("VIOLATION: {text}");
        self.acked.lock().unwrap().violations.push(text);
    }
}

fn bound() -> Duration {
    Duration::from_millis(OP_MS_MAX)
}

/// `fut`, bounded by [`OP_MS_MAX`] (a timeout is `Error::Timeout`).
pub async fn timed<T>(
    fut: impl std::future::Future<Output = Result<T, zk::Error>>,
) -> Result<T, zk::Error> {
    match tokio::time::timeout(bound(), fut).await {
        Ok(result) => result,
        Err(_) => Err(zk::Error::Timeout),
    }
}

/// `fut` of zkw's own client, bounded by [`OP_MS_MAX`].
pub async fn timed_ours<T>(
    fut: impl std::future::Future<Output = Result<T, zkw::client::ClientError>>,
) -> Result<T, zkw::client::ClientError> {
    match tokio::time::timeout(bound(), fut).await {
        Ok(result) => result,
        Err(_) => Err(zkw::client::ClientError::Timeout(
            bound(),
            "a kept session's request",
        )),
    }
}

/// Whether an error ends the session (a new one is opened).
fn ends_session(error: &zk::Error) -> bool {
    matches!(error, zk::Error::SessionExpired | zk::Error::ClientClosed)
}

fn key_path(key: usize) -> String {
    format!("/r/{key}")
}

/// Opens a session, with its persistent watch on /r.
async fn open(shared: &Arc<Shared>) -> Option<Arc<SessionRecord>> {
    let connector = crate::ensemble::Ensemble::connector();
    let client = match tokio::time::timeout(bound(), connector.connect(&shared.hosts)).await {
        Ok(Ok(client)) => client,
        _ => return None,
    };
    let mut events = timed(client.watch("/r", zk::AddWatchMode::PersistentRecursive))
        .await
        .ok()?;
    let record = Arc::new(SessionRecord {
        id: client.session_id().0,
        ephemerals: Mutex::new(Vec::new()),
        watches: Mutex::new(Vec::new()),
        client: Mutex::new(Some(client)),
    });
    let ordering = Arc::clone(shared);
    let session = record.id;
    tokio::spawn(async move {
        let mut last = 0i64;
        loop {
            let event = events.changed().await;
            if event.event_type == zk::EventType::Session {
                if event.session_state.is_terminated() {
                    return;
                }
                // Reconnected: a server a little behind the last one may deliver again what
                // the client saw (as ZooKeeper's may); the order holds per connection.
                last = 0;
                continue;
            }
            // One txn can raise several events (a multi; the missed events setWatches sends
            // on a reconnect all carry the server's zxid, and the client hands each to this
            // watcher too), so equal zxids are fine; going back is not.
            if event.zxid < last {
                ordering.violation(format!(
                    "session {session:#x}: persistent watch event {event:?} after zxid {last:#x} \
                     on the same connection"
                ));
            }
            last = event.zxid;
        }
    });
    shared
        .acked
        .lock()
        .unwrap()
        .sessions
        .push(Arc::clone(&record));
    Some(record)
}

/// Runs one client until `stop`.
pub async fn client(
    shared: Arc<Shared>,
    process: usize,
    seed: u64,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(process as u64));
    // Its own stream, so the main one draws the same operations it did before this existed.
    let mut abandon_rng = StdRng::seed_from_u64(
        (seed ^ ABANDON_STREAM)
            .wrapping_mul(1_000_003)
            .wrapping_add(process as u64),
    );
    let mut session: Option<Arc<SessionRecord>> = None;
    let mut versions = [0i32; KEYS];
    let mut n = 0u64;
    while !*stop.borrow() {
        let record = match session.take() {
            Some(record) => record,
            None => match open(&shared).await {
                Some(record) => record,
                None => {
                    tokio::time::sleep(Duration::from_millis(BACKOFF_MS)).await;
                    continue;
                }
            },
        };
        let Some(client) = record.client.lock().unwrap().clone() else {
            continue;
        };
        n += 1;
        let key = rng.random_range(0..KEYS);
        let value = format!("p{process}-{n}").into_bytes();
        let outcome = match rng.random_range(0..100) {
            0..25 => {
                read(
                    &shared,
                    &client,
                    &record,
                    process,
                    key,
                    &mut versions,
                    false,
                )
                .await
            }
            25..30 => read(&shared, &client, &record, process, key, &mut versions, true).await,
            30..45 => write(&shared, &client, process, key, &value, None, &mut versions).await,
            45..60 => {
                let expected = versions[key];
                write(
                    &shared,
                    &client,
                    process,
                    key,
                    &value,
                    Some(expected),
                    &mut versions,
                )
                .await
            }
            60..70 => multi(&shared, &client, process, key, &value, &mut versions, n).await,
            70..80 => create_sequential(&shared, &client, process).await,
            80..87 => create_ephemeral(&client, &record, process, n).await,
            87..92 => lock_cycle(&shared, &client).await,
            92..98 => delete_ephemeral(&shared, &client, &record, &mut rng).await,
            _ => {
                // Close the session: drop the client (it sends closeSession).
                record.client.lock().unwrap().take();
                Err(zk::Error::ClientClosed)
            }
        };
        if abandon_rng.random_bool(ABANDON_ODDS) {
            abandon(&shared, process, n).await;
        }
        match outcome {
            Err(error) if ends_session(&error) => {
                record.client.lock().unwrap().take();
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(BACKOFF_MS)).await;
                session = Some(record);
            }
            Ok(()) => session = Some(record),
        }
    }
}

/// Sync, then getData (with a one-shot watch when `watch`): a linearizable read.
async fn read(
    shared: &Shared,
    client: &zk::Client,
    record: &SessionRecord,
    process: usize,
    key: usize,
    versions: &mut [i32; KEYS],
    watch: bool,
) -> Result<(), zk::Error> {
    let path = key_path(key);
    let op = shared.history.invoke(process, key, Kind::Read, b"");
    let result = async {
        timed(client.sync(&path)).await?;
        if watch {
            let (data, stat, watcher) = timed(client.get_and_watch_data(&path)).await?;
            let fired = Arc::new(Mutex::new(None));
            record.watches.lock().unwrap().push(DataWatch {
                key,
                seen: stat.mzxid,
                fired: Arc::clone(&fired),
            });
            tokio::spawn(async move {
                let event = watcher.changed().await;
                *fired.lock().unwrap() = Some(event);
            });
            Ok((data, stat))
        } else {
            timed(client.get_data(&path)).await
        }
    }
    .await;
    match result {
        Ok((data, stat)) => {
            acknowledged(shared, versions, key, op, data, &stat, false);
            Ok(())
        }
        Err(error) => unknown(shared, op, error),
    }
}

/// Records a register op's answer: the version this client now knows and, for a write, the
/// zxid it made.
fn acknowledged(
    shared: &Shared,
    versions: &mut [i32; KEYS],
    key: usize,
    op: usize,
    data: Vec<u8>,
    stat: &zk::Stat,
    wrote: bool,
) {
    versions[key] = stat.version;
    shared.history.ok(op, data, stat.version);
    if wrote {
        shared.acked.lock().unwrap().writes.push((key, stat.mzxid));
    }
}

/// Records that a register op's outcome is unknown, and hands its error on.
fn unknown(shared: &Shared, op: usize, error: zk::Error) -> Result<(), zk::Error> {
    shared.history.unknown(op);
    Err(error)
}

/// setData, plain or with an expected version (a CAS).
async fn write(
    shared: &Shared,
    client: &zk::Client,
    process: usize,
    key: usize,
    value: &[u8],
    expected: Option<i32>,
    versions: &mut [i32; KEYS],
) -> Result<(), zk::Error> {
    let kind = match expected {
        Some(expected) => Kind::Cas { expected },
        None => Kind::Write,
    };
    let op = shared.history.invoke(process, key, kind, value);
    match timed(client.set_data(&key_path(key), value, expected)).await {
        Ok(stat) => {
            acknowledged(shared, versions, key, op, Vec::new(), &stat, true);
            Ok(())
        }
        Err(zk::Error::BadVersion) if expected.is_some() => {
            shared.history.fail(op);
            Ok(())
        }
        Err(error) => unknown(shared, op, error),
    }
}

/// A multi of check(version) + setData + create /m/…: a CAS whose create lands with it.
async fn multi(
    shared: &Shared,
    client: &zk::Client,
    process: usize,
    key: usize,
    value: &[u8],
    versions: &mut [i32; KEYS],
    n: u64,
) -> Result<(), zk::Error> {
    let path = key_path(key);
    let expected = versions[key];
    let created = format!("/m/p{process}-{n}");
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let mut writer = client.new_multi_writer();
    writer.add_check_version(&path, expected)?;
    writer.add_set_data(&path, value, None)?;
    writer.add_create(&created, b"", &options)?;
    let op = shared
        .history
        .invoke(process, key, Kind::Cas { expected }, value);
    let result = match tokio::time::timeout(bound(), writer.commit()).await {
        Ok(result) => result,
        Err(_) => Err(zk::MultiWriteError::RequestFailed {
            source: zk::Error::Timeout,
        }),
    };
    match result {
        Ok(results) => {
            let stat = results.iter().find_map(|result| match result {
                zk::MultiWriteResult::SetData { stat } => Some(*stat),
                _ => None,
            });
            let Some(stat) = stat else {
                shared.history.unknown(op);
                return Err(zk::Error::UnexpectedError(
                    "a multi without its setData".into(),
                ));
            };
            versions[key] = stat.version;
            shared.history.ok(op, Vec::new(), stat.version);
            let mut acked = shared.acked.lock().unwrap();
            acked.writes.push((key, stat.mzxid));
            acked.nodes.push(created);
            Ok(())
        }
        Err(zk::MultiWriteError::OperationFailed {
            index: 0,
            source: zk::Error::BadVersion,
        }) => {
            shared.history.fail(op);
            shared.acked.lock().unwrap().absent.push(created);
            Ok(())
        }
        Err(zk::MultiWriteError::OperationFailed { source, .. })
        | Err(zk::MultiWriteError::RequestFailed { source }) => unknown(shared, op, source),
    }
}

/// Opens a session with zkw's own client, creates an ephemeral in it and goes silent without
/// closing it: the session expires after its timeout (the leader's tracker), and takes the
/// ephemeral with it.
async fn abandon(shared: &Shared, process: usize, n: u64) {
    let timeout = Duration::from_millis(crate::ensemble::SESSION_TIMEOUT_MS);
    let transport = shared
        .network
        .transport(client_ip(ABANDONING_CLIENTS_NET, process));
    let hosts = &shared.memory_hosts[process % shared.memory_hosts.len()];
    let Ok(Ok(client)) = tokio::time::timeout(
        bound(),
        zkw::client::Client::connect_via(transport, hosts, timeout),
    )
    .await
    else {
        return;
    };
    let path = format!("/e/abandoned-p{process}-{n}");
    let acl = zkw::proto::Acl::open_unsafe();
    let created = client.create(&path, b"", &acl, zkw::proto::CreateMode::Ephemeral);
    if let Ok(Ok(path)) = tokio::time::timeout(bound(), created).await {
        shared.acked.lock().unwrap().abandoned.push(path);
    }
    // Dropped, not closed: its connection ends without a closeSession.
    drop(client);
}

/// The simulated network's address of client `n` of a class (`net`: its second byte).
fn client_ip(net: u8, n: usize) -> std::net::IpAddr {
    let host = u8::try_from(n % usize::from(u8::MAX - 1) + 1).unwrap_or(1);
    std::net::IpAddr::from([127, net, 0, host])
}

/// Kept session `k`'s address on the simulated network.
pub fn kept_client_ip(k: usize) -> std::net::IpAddr {
    client_ip(KEPT_SESSIONS_NET, k)
}

/// Second address bytes of the abandoning clients and of the kept sessions.
const ABANDONING_CLIENTS_NET: u8 = 1;
const KEPT_SESSIONS_NET: u8 = 2;
/// How often a kept session writes its counter, ms.
const KEPT_WRITE_MS: u64 = 100;

/// A kept session at the end of the run.
pub struct Kept {
    pub path: String,
    pub session_id: i64,
    pub client: zkw::client::Client,
    /// The highest count acknowledged, and the highest sent.
    pub acked: u64,
    pub sent: u64,
    /// How many times it resumed on another connection.
    pub resumed: usize,
    /// Whether the servers ended it (expired).
    pub expired: bool,
}

/// Runs kept session `k` until `stopped`: opens it (on the simulated network, starting with
/// member `k` of its list), creates `/e/kept-<k>` and writes a growing count to it every
/// [`KEPT_WRITE_MS`], riding out lost connections. `None` if it never got its ephemeral.
pub async fn keep(
    shared: Arc<Shared>,
    k: usize,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> Option<Kept> {
    use zkw::client::{Client, ClientError};
    use zkw::proto::{keeper_state, Acl, CreateMode, ErrorCode, EventType};
    let timeout = Duration::from_millis(crate::ensemble::SESSION_TIMEOUT_MS);
    let transport = shared.network.transport(kept_client_ip(k));
    let hosts = &shared.memory_hosts[k % shared.memory_hosts.len()];
    let mut client = loop {
        if *stopped.borrow() {
            return None;
        }
        let connect = Client::connect_via(Arc::clone(&transport), hosts, timeout);
        if let Ok(Ok(client)) = tokio::time::timeout(bound(), connect).await {
            break client;
        }
        tokio::time::sleep(Duration::from_millis(BACKOFF_MS)).await;
    };
    let mut events = client.take_events()?;
    let path = format!("/e/kept-{k}");
    let acl = Acl::open_unsafe();
    loop {
        let created = client.create(&path, b"0", &acl, CreateMode::Ephemeral);
        match tokio::time::timeout(bound(), created).await {
            // NodeExists: an earlier try whose answer was lost made it (the name is ours).
            Ok(Ok(_)) | Ok(Err(ClientError::Server(ErrorCode::NodeExists))) => break,
            Ok(Err(ClientError::SessionExpired | ClientError::Closed)) => return None,
            _ if *stopped.borrow() => return None,
            _ => tokio::time::sleep(Duration::from_millis(BACKOFF_MS)).await,
        }
    }
    let mut kept = Kept {
        path,
        session_id: client.session_id(),
        client,
        acked: 0,
        sent: 0,
        resumed: 0,
        expired: false,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(KEPT_WRITE_MS));
    loop {
        tokio::select! {
            _ = stopped.changed() => return Some(kept),
            event = events.recv() => match event {
                Some(event) if event.event_type == EventType::None as i32 => {
                    match event.state {
                        keeper_state::SYNC_CONNECTED => kept.resumed += 1,
                        keeper_state::EXPIRED => kept.expired = true,
                        _ => {}
                    }
                }
                Some(_) => {}
                None => {
                    kept.expired = true;
                    let _ = stopped.changed().await;
                    return Some(kept);
                }
            },
            _ = tick.tick(), if !kept.expired => {
                let count = kept.sent + 1;
                kept.sent = count;
                let data = count.to_string();
                let set = kept.client.set_data(&kept.path, data.as_bytes(), -1);
                if let Ok(Ok(_)) = tokio::time::timeout(bound(), set).await {
                    kept.acked = count;
                }
            }
        }
    }
}

async fn create_sequential(
    shared: &Shared,
    client: &zk::Client,
    process: usize,
) -> Result<(), zk::Error> {
    let options = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, sequence) = timed(client.create(&format!("/s/p{process}-"), b"", &options)).await?;
    shared
        .acked
        .lock()
        .unwrap()
        .nodes
        .push(format!("/s/p{process}-{sequence}"));
    Ok(())
}

async fn create_ephemeral(
    client: &zk::Client,
    record: &SessionRecord,
    process: usize,
    n: u64,
) -> Result<(), zk::Error> {
    let path = format!("/e/p{process}-{n}");
    let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    timed(client.create(&path, b"", &options)).await?;
    record.ephemerals.lock().unwrap().push(path);
    Ok(())
}

/// Requests the lock, waits for its grant (bounded), records the grant and releases it.
async fn lock_cycle(shared: &Shared, client: &zk::Client) -> Result<(), zk::Error> {
    let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (stat, sequence) = timed(client.create(&format!("{LOCK}/write-"), b"", &options)).await?;
    let request = format!("{LOCK}/write-{sequence}");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(GRANT_WAIT_MS_MAX);
    loop {
        let (data, _, watcher) = timed(client.get_and_watch_data(&request)).await?;
        if let Some(granted) = data.strip_prefix(b"granted ") {
            let token = std::str::from_utf8(granted)
                .ok()
                .and_then(|text| text.split('\n').next()?.parse::<i64>().ok());
            match token {
                Some(token) => shared.acked.lock().unwrap().grants.push(Grant {
                    token,
                    sequence: sequence.into_i64(),
                    czxid: stat.czxid,
                }),
                None => shared.violation(format!("{request}: a grant without a token: {data:?}")),
            }
            break;
        }
        match tokio::time::timeout_at(deadline, watcher.changed()).await {
            Ok(event) if event.event_type == zk::EventType::NodeDataChanged => {}
            // Waited long enough (or the request went with its session): give it up.
            _ => break,
        }
    }
    timed(client.delete(&request, None)).await
}

async fn delete_ephemeral(
    shared: &Shared,
    client: &zk::Client,
    record: &SessionRecord,
    rng: &mut StdRng,
) -> Result<(), zk::Error> {
    let path = {
        let mut ephemerals = record.ephemerals.lock().unwrap();
        if ephemerals.is_empty() {
            return Ok(());
        }
        let at = rng.random_range(0..ephemerals.len());
        // Out of the list before the delete: in doubt afterwards unless it succeeds.
        ephemerals.swap_remove(at)
    };
    match timed(client.delete(&path, None)).await {
        Ok(()) => Ok(()),
        Err(zk::Error::NoNode) => {
            shared.violation(format!(
                "session {:#x}: its acknowledged ephemeral {path} vanished while it lived",
                record.id
            ));
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The data and children of the tree under the checked roots, read through `client`.
pub async fn snapshot(client: &zk::Client) -> BTreeMap<String, Vec<String>> {
    let mut tree = BTreeMap::new();
    for root in ["/s", "/m", "/e"] {
        timed(client.sync(root)).await.unwrap();
        let children = timed(client.list_children(root)).await.unwrap();
        tree.insert(root.to_string(), children);
    }
    tree
}
