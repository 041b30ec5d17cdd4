//! Session failover across a three-member ensemble, with the `zookeeper-client` crate (issue
//! #3, "How it is proven"): a client whose server (leader or follower) is killed -9 moves to
//! another member on the same session, keeping its ephemeral and its watches (the crate
//! re-sends SetWatches; a proxy per member holds it away while the watched nodes change);
//! every acknowledged write survives a kill -9 of the leader under load, on every survivor;
//! and a session whose client has gone silent still expires once the leader is killed.
//! Runs against zkw, or Apache ZooKeeper 3.8 with `ZKW_TARGET=zookeeper`.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bounded, event, mk, poll_until, Proxy, RawConn};
use ensemble::{Ensemble, SESSION_TIMEOUT_MS};
use zk::EventType as E;
use zkw::client as ours;
use zkw::proto;
use zookeeper_client as zk;

/// Members of every test ensemble.
const MEMBERS: usize = 3;
/// Bound on a client's move to another member after its server died (election included).
const RECONNECT_SECS_MAX: u64 = 30;
/// Session timeout of the client kept away through a failover (the members grant up to
/// `ensemble::MAX_SESSION_TIMEOUT_MS`).
const GAP_SESSION_TIMEOUT: Duration = Duration::from_secs(8);
/// How many connects `client_on` may try to land a client on a chosen member of three: a
/// random host each time, so missing 60 times in a row has odds of (2/3)^60, about 3e-11.
const PLACE_TRIES_MAX: usize = 60;
/// How long the writers run before the leader is killed.
const WRITES_BEFORE_KILL_MS: u64 = 1_000;
/// Acknowledged writes each writer must make after the kill before the load stops.
const WRITES_AFTER_KILL_MIN: usize = 20;
/// Bound on one write: an unacknowledged write just counts as unknown.
const WRITE_SECS_MAX: u64 = 10;
/// Bound on the whole write loop of one writer.
const WRITER_SECS_MAX: u64 = 30;
/// How long after the silent client's last packet its ephemeral must surely still exist.
const EARLY_CHECK_MS: u64 = 1_000;
/// Bound on expiry after the leader kill: election, session timeout, slack for a loaded box.
const EXPIRY_SECS_MAX: u64 = 30;
/// ZooKeeper opcode for create, and its flag for an ephemeral node.
const OP_CREATE: i32 = 1;
const CREATE_FLAG_EPHEMERAL: i32 = 1;
/// Permission bits of `world:anyone` all.
const PERMS_ALL: i32 = 31;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Waits (bounded) until `client` is connected again and some live member's `cons` lists its
/// session `sid`; returns that member.
async fn wait_reconnected(ens: &Ensemble, client: &zk::Client, sid: i64) -> usize {
    poll_until("client reconnect", RECONNECT_SECS_MAX, || async {
        if client.state() != zk::SessionState::SyncConnected {
            return None;
        }
        ens.holder_of(sid)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_kill_of_its_follower() {
    session_ephemeral_and_watches_survive_server_kill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_survives_kill_of_its_leader() {
    session_ephemeral_and_watches_survive_server_kill(true).await;
}

/// A fresh ensemble, its leader, and the member a test's client goes to: the leader, or the
/// member after it.
async fn start_with_target(on_leader: bool) -> (Ensemble, usize, usize) {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let target = if on_leader {
        leader
    } else {
        (leader + 1) % MEMBERS
    };
    (ens, leader, target)
}

/// Places a client (through one proxy per member) on the leader or a follower, gives it an
/// ephemeral and data, child and exists watches, kills its member -9 while every proxy refuses
/// new connections, changes the watched nodes during that gap, lets the client back in, and
/// checks that the session, the ephemeral and every watch came through: the gap events must
/// come from SetWatches, as the client was away when they happened.
async fn session_ephemeral_and_watches_survive_server_kill(on_leader: bool) {
    let (mut ens, _, target) = start_with_target(on_leader).await;
    let admin = Ensemble::client(&ens.live_hosts()).await;
    for p in ["/data", "/gap", "/kids"] {
        mk(&admin, p, b"v0").await;
    }
    drop(admin);
    let mut proxies = Vec::new();
    for m in &ens.members {
        proxies.push(Proxy::start(m.client_port).await);
    }
    let via: Vec<String> = proxies.iter().map(Proxy::addr).collect();
    let connector = Ensemble::connector().with_session_timeout(GAP_SESSION_TIMEOUT);
    let client = ens
        .client_via(target, &via.join(","), connector, PLACE_TRIES_MAX)
        .await
        .expect("could not place the client on its member");
    let sid = client.session_id().0;
    let watches = Watches::set(&client).await;
    proxies.iter().for_each(Proxy::pause);
    ens.kill(target);
    poll_until("client disconnect", RECONNECT_SECS_MAX, || async {
        (client.state() == zk::SessionState::Disconnected).then_some(())
    })
    .await;
    ens.leader().await;
    let admin = Ensemble::client(&ens.live_hosts()).await;
    change_in_the_gap(&admin).await;
    proxies.iter().for_each(Proxy::resume);
    let now_on = wait_reconnected(&ens, &client, sid).await;
    assert_ne!(now_on, target);
    assert_eq!(client.session_id().0, sid, "session id changed");
    let stat = bounded("eph owner", admin.check_stat("/eph"))
        .await
        .unwrap()
        .expect("ephemeral lost after failover");
    assert_eq!(stat.ephemeral_owner, sid);
    watches.check(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_resumes_its_session_with_credentials_and_watches_after_its_leader_dies() {
    our_client_resumes_its_session(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_resumes_its_session_with_credentials_and_watches_after_its_follower_dies() {
    our_client_resumes_its_session(false).await;
}

/// The next state event (type None) on `events`, skipping node events; bounded.
async fn next_state(events: &mut tokio::sync::mpsc::UnboundedReceiver<ours::WatchedEvent>) -> i32 {
    loop {
        let event = bounded("a state event", events.recv())
            .await
            .expect("the event channel closed");
        if event.event_type == proto::EventType::None as i32 {
            return event.state;
        }
    }
}

/// zkw's own client (what `zkw lock`, `zkw elect` and `zkw cli` use) through the same gap as
/// [`session_ephemeral_and_watches_survive_server_kill`]: placed on the leader or a follower
/// (first in its list, through one proxy per member), with credentials (a node only its
/// digest identity may read), an ephemeral and data, child and exists watches; its member is
/// killed -9 while every proxy refuses new connections and the watched nodes change. It must
/// tell Disconnected, resume the same session on another member (SyncConnected), re-send its
/// credentials before anything else and its watches with the last zxid it saw, so the gap
/// changes fire. The `zookeeper-client` crate is the independent witness of the ephemeral's
/// owner.
async fn our_client_resumes_its_session(on_leader: bool) {
    let (mut ens, _, target) = start_with_target(on_leader).await;
    let admin = Ensemble::client(&ens.live_hosts()).await;
    for p in ["/data", "/gap", "/kids"] {
        mk(&admin, p, b"v0").await;
    }
    let mut proxies = Vec::new();
    for m in &ens.members {
        proxies.push(Proxy::start(m.client_port).await);
    }
    // Ours tries its list in order: the target's proxy first.
    let mut via = vec![proxies[target].addr()];
    via.extend(
        (0..MEMBERS)
            .filter(|&i| i != target)
            .map(|i| proxies[i].addr()),
    );
    let mut client = bounded(
        "connect ours",
        ours::Client::connect(&via.join(","), GAP_SESSION_TIMEOUT),
    )
    .await
    .unwrap();
    assert!(ens.member(target).holds_session(client.session_id()));
    let mut events = client.take_events().unwrap();
    let sid = client.session_id();
    bounded("addauth", client.add_auth("digest", b"owner:secret"))
        .await
        .unwrap();
    let only_owner = vec![proto::Acl {
        perms: proto::perms::ALL,
        id: proto::Id::new("auth", ""),
    }];
    let node = |path: &'static str, acl: Vec<proto::Acl>, mode| {
        let client = &client;
        async move {
            bounded("create", client.create(path, b"mine", &acl, mode))
                .await
                .unwrap();
        }
    };
    node("/secret", only_owner, proto::CreateMode::Persistent).await;
    node(
        "/eph",
        proto::Acl::open_unsafe(),
        proto::CreateMode::Ephemeral,
    )
    .await;
    bounded("watch /data", client.get_data("/data", true))
        .await
        .unwrap();
    bounded("watch /gap", client.get_data("/gap", true))
        .await
        .unwrap();
    bounded("watch /kids", client.get_children("/kids", true))
        .await
        .unwrap();
    assert_eq!(
        bounded("watch /absent", client.exists("/absent", true))
            .await
            .unwrap(),
        None
    );

    proxies.iter().for_each(Proxy::pause);
    ens.kill(target);
    assert_eq!(
        next_state(&mut events).await,
        proto::keeper_state::DISCONNECTED
    );
    assert!(client.closed_reason().is_some());
    ens.leader().await;
    change_in_the_gap(&admin).await;
    proxies.iter().for_each(Proxy::resume);
    assert_eq!(
        next_state(&mut events).await,
        proto::keeper_state::SYNC_CONNECTED
    );
    assert_eq!(client.session_id(), sid, "session id changed");
    assert!(client.closed_reason().is_none());

    // Credentials first: the owner-only node reads on the new connection.
    let (data, _) = bounded("read /secret", client.get_data("/secret", false))
        .await
        .unwrap();
    assert_eq!(data, b"mine");
    let stat = bounded("eph owner", admin.check_stat("/eph"))
        .await
        .unwrap()
        .expect("ephemeral lost after failover");
    assert_eq!(stat.ephemeral_owner, sid);
    // The gap changes fire from SetWatches; /data, changed now, fires as usual.
    bounded("set /data", admin.set_data("/data", b"v1", None))
        .await
        .unwrap();
    let mut fired = BTreeSet::new();
    while fired.len() < 4 {
        let event = bounded("a node event", events.recv()).await.unwrap();
        if event.event_type != proto::EventType::None as i32 {
            fired.insert((event.path, event.event_type));
        }
    }
    let expected: BTreeSet<(String, i32)> = [
        ("/gap", proto::EventType::NodeDataChanged),
        ("/kids", proto::EventType::NodeChildrenChanged),
        ("/absent", proto::EventType::NodeCreated),
        ("/data", proto::EventType::NodeDataChanged),
    ]
    .into_iter()
    .map(|(path, kind)| (path.to_owned(), kind as i32))
    .collect();
    assert_eq!(fired, expected);
    bounded("close ours", client.close()).await.unwrap();
}

/// While the client is kept away: the watched `/gap` changes, `/kids` gets a child and
/// `/absent` appears.
async fn change_in_the_gap(admin: &zk::Client) {
    bounded("set /gap", admin.set_data("/gap", b"v1", None))
        .await
        .unwrap();
    mk(admin, "/kids/gap", b"").await;
    mk(admin, "/absent", b"").await;
}

/// The watches one client sets before its server dies.
struct Watches {
    data: zk::OneshotWatcher,
    gap: zk::OneshotWatcher,
    kids: zk::OneshotWatcher,
    absent: zk::OneshotWatcher,
}

impl Watches {
    /// Creates the client's ephemeral `/eph` and sets the watches.
    async fn set(client: &zk::Client) -> Watches {
        bounded("create eph", client.create("/eph", b"", &ephemeral()))
            .await
            .unwrap();
        let (_, _, data) = bounded("watch", client.get_and_watch_data("/data"))
            .await
            .unwrap();
        let (_, _, gap) = bounded("watch", client.get_and_watch_data("/gap"))
            .await
            .unwrap();
        let (_, _, kids) = bounded("watch", client.get_and_watch_children("/kids"))
            .await
            .unwrap();
        let (stat, absent) = bounded("watch", client.check_and_watch_stat("/absent"))
            .await
            .unwrap();
        assert!(stat.is_none());
        Watches {
            data,
            gap,
            kids,
            absent,
        }
    }

    /// The gap changes fire on reconnect; `/data`, changed now, fires as usual.
    async fn check(self, admin: &zk::Client) {
        assert_eq!(event(self.gap).await.event_type, E::NodeDataChanged);
        assert_eq!(event(self.kids).await.event_type, E::NodeChildrenChanged);
        assert_eq!(event(self.absent).await.event_type, E::NodeCreated);
        bounded("set /data", admin.set_data("/data", b"v1", None))
            .await
            .unwrap();
        assert_eq!(event(self.data).await.event_type, E::NodeDataChanged);
    }
}

/// What one writer saw: the paths it created with an acknowledgement, and the count of
/// writes whose outcome it never learned.
struct Writes {
    acked: Vec<String>,
    acked_after_kill: usize,
    unknown: usize,
}

/// Creates `/w/<name>-<n>` in a loop until it has [`WRITES_AFTER_KILL_MIN`] acknowledged
/// writes after `killed` went up, bounded by [`WRITER_SECS_MAX`].
async fn write_loop(client: zk::Client, name: &'static str, killed: Arc<AtomicBool>) -> Writes {
    let deadline = Instant::now() + Duration::from_secs(WRITER_SECS_MAX);
    let mut out = Writes {
        acked: Vec::new(),
        acked_after_kill: 0,
        unknown: 0,
    };
    for n in 0u64.. {
        assert!(
            Instant::now() < deadline,
            "{name}: only {} acknowledged writes after the kill in {WRITER_SECS_MAX}s",
            out.acked_after_kill
        );
        let path = format!("/w/{name}-{n:06}");
        let after_kill = killed.load(Ordering::SeqCst);
        let write = client.create(&path, b"", &persistent());
        match tokio::time::timeout(Duration::from_secs(WRITE_SECS_MAX), write).await {
            Ok(Ok(_)) => {
                out.acked.push(path);
                if after_kill {
                    out.acked_after_kill += 1;
                    if out.acked_after_kill >= WRITES_AFTER_KILL_MIN {
                        return out;
                    }
                }
            }
            Ok(Err(zk::Error::SessionExpired)) => panic!("{name}: session expired in failover"),
            Ok(Err(_)) | Err(_) => {
                out.unknown += 1;
                // A disconnected client fails requests at once: do not spin.
                tokio::time::sleep(Duration::from_millis(ensemble::POLL_MS)).await;
            }
        }
    }
    unreachable!("the write loop returns or panics")
}

/// A writer client on member `want`, its connect string naming every member so it can fail
/// over (the crate shuffles the hosts: it takes a few connects to land on `want`).
async fn writer_on(ens: &Ensemble, want: usize) -> zk::Client {
    let placed = ens.client_on(want, PLACE_TRIES_MAX).await;
    placed.unwrap_or_else(|| {
        panic!(
            "no writer landed on member {} in {PLACE_TRIES_MAX} connects",
            ens.member(want).id
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kill() {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let follower = (leader + 1) % MEMBERS;
    let admin = Ensemble::client(&ens.live_hosts()).await;
    mk(&admin, "/w", b"").await;
    drop(admin);
    let killed = Arc::new(AtomicBool::new(false));
    let on_leader = writer_on(&ens, leader).await;
    let on_follower = writer_on(&ens, follower).await;
    let a = tokio::spawn(write_loop(on_leader, "a", killed.clone()));
    let b = tokio::spawn(write_loop(on_follower, "b", killed.clone()));
    tokio::time::sleep(Duration::from_millis(WRITES_BEFORE_KILL_MS)).await;
    ens.kill(leader);
    killed.store(true, Ordering::SeqCst);
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let new_leader = ens.leader().await;
    assert_ne!(new_leader, leader);
    eprintln!(
        "acked {} + {} writes, unknown {} + {}",
        a.acked.len(),
        b.acked.len(),
        a.unknown,
        b.unknown
    );
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    for idx in ens.live() {
        let client = Ensemble::client(&ens.member(idx).addr()).await;
        bounded("sync", client.sync("/w")).await.unwrap();
        let children = bounded("list", client.list_children("/w")).await.unwrap();
        let here: BTreeSet<String> = children.into_iter().map(|c| format!("/w/{c}")).collect();
        for path in a.acked.iter().chain(&b.acked) {
            assert!(
                here.contains(path),
                "acknowledged {path} missing on member {}",
                ens.member(idx).id
            );
        }
        seen.push(here);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "survivors disagree on /w"
    );
}

/// Create request body for an ephemeral `world:anyone` node with empty data.
fn create_ephemeral_body(path: &str) -> Vec<u8> {
    let mut b = common::jute_string(path);
    b.extend_from_slice(&0i32.to_be_bytes()); // data: empty buffer
    b.extend_from_slice(&1i32.to_be_bytes()); // one ACL
    b.extend_from_slice(&PERMS_ALL.to_be_bytes());
    b.extend_from_slice(&common::jute_string("world"));
    b.extend_from_slice(&common::jute_string("anyone"));
    b.extend_from_slice(&CREATE_FLAG_EPHEMERAL.to_be_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_on_follower_expires_after_leader_kill() {
    silent_session_expires_on_new_leader(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_on_killed_leader_expires_on_new_leader() {
    silent_session_expires_on_new_leader(true).await;
}

/// A raw session on a follower (TCP kept open) or on the leader creates an ephemeral and
/// goes silent; the leader is killed -9; the new leader must still expire the session.
async fn silent_session_expires_on_new_leader(on_leader: bool) {
    let (mut ens, leader, target) = start_with_target(on_leader).await;
    let port = ens.member(target).client_port;
    let timeout_ms = SESSION_TIMEOUT_MS as i32;
    let (mut raw, negotiated) =
        tokio::task::spawn_blocking(move || RawConn::connect_with_timeout(port, timeout_ms))
            .await
            .unwrap();
    assert_eq!(negotiated, timeout_ms);
    let (_, err, _) = raw.call(1, OP_CREATE, &create_ephemeral_body("/silent"));
    assert_eq!(err, 0, "raw create failed");
    // From here on the raw session sends nothing: no pings, TCP left open.
    let silent_since = Instant::now();
    let survivors: Vec<usize> = (0..MEMBERS).filter(|&i| i != leader).collect();
    let observer = Ensemble::client(&ens.hosts(&survivors)).await;
    tokio::time::sleep(Duration::from_millis(EARLY_CHECK_MS)).await;
    let early = bounded("early check", observer.check_stat("/silent"))
        .await
        .unwrap();
    assert_eq!(early.map(|s| s.ephemeral_owner), Some(raw.session_id));
    ens.kill(leader);
    let killed_at = Instant::now();
    ens.leader().await;
    // A new leader gives every session a full timeout from its start.
    let kept = bounded("check after election", observer.check_stat("/silent")).await;
    assert!(
        kept.unwrap().is_some(),
        "session expired at once by the new leader"
    );
    poll_until("silent session expiry", EXPIRY_SECS_MAX, || async {
        let probe = observer.check_stat("/silent");
        match tokio::time::timeout(Duration::from_secs(WRITE_SECS_MAX), probe).await {
            Ok(Ok(None)) => Some(()),
            _ => None,
        }
    })
    .await;
    eprintln!(
        "ephemeral gone {:?} after the kill, {:?} after the last packet",
        killed_at.elapsed(),
        silent_since.elapsed()
    );
    // The member still holding the dead session's connection closes it (or it died).
    tokio::task::spawn_blocking(move || raw.expect_closed())
        .await
        .unwrap();
}
