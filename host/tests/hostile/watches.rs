//! Watches (issue #12 items 5 and 6).
//!
//! - A session watches at most `zkw.maxWatchesPerSession` paths: past it, a one-shot watch
//!   (exists/getData/getChildren), an addWatch and a setWatches re-registration are answered
//!   QuotaExceeded (setWatches keeps what fit under the cap and drops the rest); the session
//!   keeps serving and so does the ensemble. Watch paths are validated: an invalid one is
//!   answered BadArguments. zkw only: ZooKeeper 3.8 has no cap and registers any string as a
//!   watch path (its server validates no read path), so these attacks succeed there.
//! - A watcher hears only of nodes it may READ: neither a persistent-recursive watch on `/` nor
//!   a one-shot exist watch reports the creation, change or deletion of a node it cannot read.
//!   Upstream ZooKeeper 3.8.0–3.8.3 delivers those events (CVE-2024-23944; ZOOKEEPER-4799 in
//!   3.7.3, 3.8.4 and 3.9.2 filters every notification by READ). The ZooKeeper installed here,
//!   Debian's 3.8.0-11+deb12u2, carries that fix, so this test runs against both and both
//!   filter. addWatch on a node the watcher cannot read is refused with NoAuth by zkw only:
//!   every ZooKeeper version registers it (and, fixed, keeps it silent). The events setWatches
//!   fires at once for what a returning client missed are filtered by zkw too; ZooKeeper fires
//!   them unfiltered (exists() shows any node to anyone there anyway).

use futures_util::FutureExt;

use crate::common::{self, bounded, next_event, target_is_zookeeper, RawConn};
use crate::ensemble::Ensemble;
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, WRITES_DURING_ATTACK_MIN};
use zookeeper_client as zk;

/// `zkw.maxWatchesPerSession` of the cap test's ensemble.
const WATCH_CAP: usize = 50;
/// Paths one attack tries to watch: well past the cap.
const ATTACK_PATHS: usize = 3 * WATCH_CAP;
const OP_EXISTS: i32 = 3;
const OP_PING: i32 = 11;
const OP_SET_WATCHES2: i32 = 105;
const OP_ADD_WATCH: i32 = 106;
/// addWatch's mode for a persistent-recursive watch.
const MODE_PERSISTENT_RECURSIVE: i32 = 1;
/// The xid of a watch notification.
const XID_NOTIFICATION: i32 = -1;
const ERR_BAD_ARGUMENTS: i32 = -8;
const ERR_NO_NODE: i32 = -101;
const ERR_QUOTA_EXCEEDED: i32 = -125;

/// A jute vector of strings.
fn jute_strings(items: &[String]) -> Vec<u8> {
    let mut body = (items.len() as i32).to_be_bytes().to_vec();
    for item in items {
        body.extend_from_slice(&common::jute_string(item));
    }
    body
}

/// setWatches2 (relativeZxid 0) with `exist` as exist watches and `recursive` as
/// persistent-recursive ones.
fn set_watches2_body(exist: &[String], recursive: &[String]) -> Vec<u8> {
    let mut body = 0i64.to_be_bytes().to_vec();
    body.extend_from_slice(&jute_strings(&[])); // data
    body.extend_from_slice(&jute_strings(exist));
    body.extend_from_slice(&jute_strings(&[])); // child
    body.extend_from_slice(&jute_strings(&[])); // persistent
    body.extend_from_slice(&jute_strings(recursive));
    body
}

fn add_watch_body(path: &str) -> Vec<u8> {
    let mut body = common::jute_string(path);
    body.extend_from_slice(&MODE_PERSISTENT_RECURSIVE.to_be_bytes());
    body
}

fn exists_watch_body(path: &str) -> Vec<u8> {
    let mut body = common::jute_string(path);
    body.push(1);
    body
}

fn paths(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("/{prefix}/{n}")).collect()
}

/// Raw frames on `port`: invalid watch paths, then setWatches2 and addWatch past the cap. The
/// session must answer each with its error and keep serving (a ping after each).
fn raw_watch_attacks(port: u16) {
    let mut raw = RawConn::connect(port);
    let (_, err, _) = raw.call(1, OP_ADD_WATCH, &add_watch_body("no-slash"));
    assert_eq!(err, ERR_BAD_ARGUMENTS, "addWatch of an invalid path");
    let (_, err, _) = raw.call(2, OP_EXISTS, &exists_watch_body("/a//b"));
    assert_eq!(err, ERR_BAD_ARGUMENTS, "exists-watch of an invalid path");
    let invalid = ["/ok".to_owned(), "/bad/".to_owned()];
    let (_, err, _) = raw.call(3, OP_SET_WATCHES2, &set_watches2_body(&invalid, &[]));
    assert_eq!(err, ERR_BAD_ARGUMENTS, "setWatches with an invalid path");
    raw.ping();
    // setWatches2: exist watches on missing nodes (registered, none fires) past the cap.
    let exist = paths("raw-exist", ATTACK_PATHS);
    let (_, err, _) = raw.call(4, OP_SET_WATCHES2, &set_watches2_body(&exist, &[]));
    assert_eq!(err, ERR_QUOTA_EXCEEDED, "setWatches past the cap");
    let (_, err, _) = raw.call(5, OP_ADD_WATCH, &add_watch_body("/raw-one-more"));
    assert_eq!(err, ERR_QUOTA_EXCEEDED, "addWatch once the cap is full");
    let (_, err, _) = raw.call(6, OP_EXISTS, &exists_watch_body(&exist[0]));
    assert_eq!(err, ERR_NO_NODE, "a path already watched costs nothing");
    let (_, err, _) = raw.call(7, OP_PING, &[]);
    assert_eq!(err, 0, "the session still serves");
    raw.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn watches_past_the_per_session_cap_are_refused_and_the_ensemble_serves_on() {
    let mut ens = Ensemble::spawn_with(MEMBERS, |_| {
        vec![("zkw.maxWatchesPerSession".to_owned(), WATCH_CAP.to_string())]
    });
    let leader = ens.wait_quorum().await;
    let before = modes(&ens);
    let follower = (leader + 1) % MEMBERS;
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();

    for target in [leader, follower] {
        // The crate: one-shot exist watches until refused, then addWatch. The watchers are
        // kept: the crate removes a watch from the server when its watcher is dropped.
        let attacker = Ensemble::client(&ens.hosts(&[target])).await;
        let mut held = Vec::new();
        for path in paths("exist", ATTACK_PATHS) {
            match bounded("exists watch", attacker.check_and_watch_stat(&path)).await {
                Ok((_, watcher)) => held.push(watcher),
                Err(error) => {
                    assert_eq!(error, zk::Error::QuotaExceeded, "{path}");
                    break;
                }
            }
        }
        assert_eq!(held.len(), WATCH_CAP, "one-shot watches accepted");
        let added = bounded(
            "addWatch",
            attacker.watch("/", zk::AddWatchMode::PersistentRecursive),
        );
        assert_eq!(added.await.err(), Some(zk::Error::QuotaExceeded));
        bounded("attacker still reads", attacker.check_stat("/"))
            .await
            .unwrap();
        // Raw frames: invalid paths, setWatches2 and addWatch past the cap.
        let port = ens.member(target).client_port;
        tokio::task::spawn_blocking(move || raw_watch_attacks(port))
            .await
            .unwrap();
    }
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    for target in [leader, follower] {
        let log = ens.member(target).log_text();
        assert!(log.contains("watch refused (QuotaExceeded)"), "{target}");
        assert!(log.contains("watches past the cap dropped"), "{target}");
        assert!(
            log.contains("setWatches refused (BadArguments)"),
            "{target}"
        );
    }
    check_no_loss(&ens, &acked).await;
}

/// Raw session on `port` (no identity): setWatches2 with exist watches on `paths`, which all
/// exist, so each fires NodeCreated at once; returns the paths notified before the reply.
fn missed_events_heard(port: u16, paths: &[String]) -> Vec<String> {
    use std::io::Write;
    let mut raw = RawConn::connect(port);
    let mut request = 1i32.to_be_bytes().to_vec();
    request.extend_from_slice(&OP_SET_WATCHES2.to_be_bytes());
    request.extend_from_slice(&set_watches2_body(paths, &[]));
    raw.stream.write_all(&common::frame(&request)).unwrap();
    let mut heard = Vec::new();
    loop {
        let frame = common::read_frame(&mut raw.stream).expect("a frame");
        let xid = i32::from_be_bytes(frame[0..4].try_into().unwrap());
        if xid != XID_NOTIFICATION {
            let err = i32::from_be_bytes(frame[12..16].try_into().unwrap());
            assert_eq!((xid, err), (1, 0), "the setWatches reply");
            break;
        }
        // Reply header (16 bytes), then WatcherEvent: type, state, path.
        let length = i32::from_be_bytes(frame[24..28].try_into().unwrap()) as usize;
        heard.push(String::from_utf8(frame[28..28 + length].to_vec()).unwrap());
    }
    raw.close();
    heard
}

/// The node events a persistent watcher sees outside the writer's `/w`, until (and with) the
/// first event on `last`.
async fn events_until(
    watcher: &mut zk::PersistentWatcher,
    last: &str,
) -> Vec<(String, zk::EventType)> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(watcher).await;
        if event.path == "/w" || event.path.starts_with("/w/") {
            continue;
        }
        let done = event.path == last;
        seen.push((event.path, event.event_type));
        if done {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_hear_nothing_of_nodes_they_cannot_read() {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let follower = (leader + 1) % MEMBERS;
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();

    // The owner writes on the leader; the watcher (no identity) listens on a follower.
    let owner = Ensemble::client(&ens.hosts(&[leader])).await;
    bounded("auth", owner.auth("digest", b"owner:secret"))
        .await
        .unwrap();
    let private = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    bounded("create /t", owner.create("/t", b"", &persistent()))
        .await
        .unwrap();
    let watcher = Ensemble::client(&ens.hosts(&[follower])).await;
    let mut recursive = bounded(
        "addWatch /",
        watcher.watch("/", zk::AddWatchMode::PersistentRecursive),
    )
    .await
    .unwrap();
    // A one-shot exist watch needs no permission; its event is filtered all the same.
    let (absent, oneshot) = bounded("exists watch", watcher.check_and_watch_stat("/t/secret"))
        .await
        .unwrap();
    assert!(absent.is_none());

    bounded("create secret", owner.create("/t/secret", b"s1", &private))
        .await
        .unwrap();
    bounded("set secret", owner.set_data("/t/secret", b"s2", None))
        .await
        .unwrap();
    let secret_watch = watcher.watch("/t/secret", zk::AddWatchMode::Persistent);
    let secret_watch = bounded("addWatch secret", secret_watch).await;
    if target_is_zookeeper() {
        assert!(secret_watch.is_ok(), "ZooKeeper checks nothing at addWatch");
    } else {
        assert_eq!(secret_watch.err(), Some(zk::Error::NoAuth));
    }
    bounded("create open", owner.create("/t/open", b"o1", &persistent()))
        .await
        .unwrap();
    bounded("set open", owner.set_data("/t/open", b"o2", None))
        .await
        .unwrap();
    bounded("delete secret", owner.delete("/t/secret", None))
        .await
        .unwrap();
    bounded("create last", owner.create("/t/last", b"", &persistent()))
        .await
        .unwrap();

    // Events reach a session in order: once /t/last arrived, any event on /t/secret would have.
    let seen = events_until(&mut recursive, "/t/last").await;
    use zk::EventType::{NodeCreated, NodeDataChanged};
    let expected: Vec<(String, zk::EventType)> = vec![
        ("/t/open".into(), NodeCreated),
        ("/t/open".into(), NodeDataChanged),
        ("/t/last".into(), NodeCreated),
    ];
    assert_eq!(seen, expected, "the watcher heard of /t/secret");
    assert!(
        oneshot.changed().now_or_never().is_none(),
        "the exist watch reported the unreadable /t/secret"
    );

    // setWatches fires at once what a returning client missed: only what it may read (zkw;
    // ZooKeeper fires these unfiltered, but its exists() shows any node to anyone anyway).
    bounded("create hidden", owner.create("/t/hidden", b"", &private))
        .await
        .unwrap();
    let missed = ["/t/hidden".to_owned(), "/t/last".to_owned()];
    let port = ens.member(follower).client_port;
    let heard = tokio::task::spawn_blocking(move || missed_events_heard(port, &missed))
        .await
        .unwrap();
    let expected: &[&str] = if target_is_zookeeper() {
        &["/t/hidden", "/t/last"]
    } else {
        &["/t/last"]
    };
    assert_eq!(heard, expected, "missed events of setWatches");

    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    check_no_loss(&ens, &acked).await;
}
