//! Hostile clients against a real three-member zkw ensemble (issue #12). Each test performs an
//! attack while another client keeps writing, and asserts that (a) the attacker gets a clear
//! error or loses its connection, with a logged reason; (b) the writer is never interrupted and
//! the leader does not change (`srvr` mode of every member before and after); (c) every
//! acknowledged write is on every member and the members' `mntr` zk_digest agree.
//! - request amplification through addauth: an absurd identity, and too many identities, are
//!   refused with AuthFailed and the connection closes (so no write carries them into the log);
//! - a request whose txn would pass the log's record limit (possible once jute.maxbuffer is
//!   raised above it) is refused before Raft: its connection closes, no member suffers.
//!
//! zkw only (the limits are zkw's; ZooKeeper accepts both attacks).
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bounded, poll_until, target_is_zookeeper, RawConn};
use ensemble::{four_letter, Ensemble};
use zookeeper_client as zk;

/// Members of every test ensemble.
const MEMBERS: usize = 3;
/// Bound on one write of the background writer.
const WRITE_SECS_MAX: u64 = 10;
/// Bound on the background writer's whole run.
const WRITER_SECS_MAX: u64 = 120;
/// Acknowledged writes the writer must make while an attack runs (proof it kept serving).
const WRITES_DURING_ATTACK_MIN: usize = 5;
/// Bound on the members' digests converging once the writer stopped.
const CONVERGE_SECS_MAX: u64 = 20;
/// The attack: a digest user of 900 KB (within the default jute.maxbuffer)...
const HUGE_USER_BYTES: usize = 900 * 1024;
/// ...added this many times.
const HUGE_AUTH_COUNT: usize = 40;
/// Distinct small digest users the count attack tries to add.
const SMALL_AUTH_COUNT: usize = 40;
/// zkw's per-connection identity cap (server::dispatch::AUTH_IDENTITIES_MAX), `ip:` included.
const AUTH_IDENTITIES_MAX: usize = 16;
/// jute.maxbuffer of the oversized-proposal ensemble: above the log's record limit (32 MiB).
const BIG_JUTE_MAXBUFFER_BYTES: usize = 40 * 1024 * 1024;
/// Data of the oversized create: more than zkw's PROPOSAL_BYTES_MAX (32 MiB - 64 KiB).
const OVERSIZED_DATA_BYTES: usize = 33 * 1024 * 1024;
/// ZooKeeper's opcodes and error codes used on raw connections.
const OP_CREATE: i32 = 1;
const OP_AUTH: i32 = 100;
const XID_AUTH: i32 = -4;
const ERR_AUTH_FAILED: i32 = -115;
/// Permission bits of `world:anyone` all.
const PERMS_ALL: i32 = 31;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// A client creating `/w/<n>` one after another until stopped; returns the acknowledged paths
/// and how many writes failed.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<usize>,
}

impl Writer {
    async fn start(hosts: &str) -> Writer {
        let client = Ensemble::client(hosts).await;
        bounded("create /w", client.create("/w", b"", &persistent()))
            .await
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop_seen, acked_kept) = (Arc::clone(&stop), Arc::clone(&acked));
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut failures = 0;
            let mut n = 0u64;
            while !stop_seen.load(Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(WRITER_SECS_MAX)
            {
                let path = format!("/w/{n:08}");
                n += 1;
                let create = client.create(&path, b"v", &persistent());
                match tokio::time::timeout(Duration::from_secs(WRITE_SECS_MAX), create).await {
                    Ok(Ok(_)) => acked_kept.lock().unwrap().push(path),
                    other => {
                        eprintln!("writer: {path} failed: {other:?}");
                        failures += 1;
                    }
                }
            }
            failures
        });
        Writer { stop, acked, task }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits (bounded) until the writer acknowledged `count` more writes than `since`.
    async fn wait_progress(&self, since: usize, count: usize) {
        poll_until("writer progress", WRITE_SECS_MAX * 2, || async {
            (self.acked_count() >= since + count).then_some(())
        })
        .await;
    }

    /// Stops the writer; its acknowledged paths (it must not have failed once).
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        let failures = bounded("writer stop", self.task).await.unwrap();
        assert_eq!(
            failures, 0,
            "the other client's writes failed during the attack"
        );
        let acked = self.acked.lock().unwrap().clone();
        assert!(!acked.is_empty());
        acked
    }
}

/// `srvr` mode of every member.
fn modes(ens: &Ensemble) -> Vec<Option<String>> {
    ens.members.iter().map(ensemble::Member::mode).collect()
}

/// `mntr`'s zk_digest of a member.
fn digest(ens: &Ensemble, idx: usize) -> Option<String> {
    four_letter(ens.member(idx).client_port, "mntr")
        .lines()
        .find_map(|line| line.strip_prefix("zk_digest").map(|d| d.trim().to_owned()))
}

/// (c): every acknowledged write is on every member, and the digests agree.
async fn check_no_loss(ens: &Ensemble, acked: &[String]) {
    for idx in 0..MEMBERS {
        let client = Ensemble::client(&ens.hosts(&[idx])).await;
        bounded("sync", client.sync("/")).await.unwrap();
        let children = bounded("list /w", client.list_children("/w"))
            .await
            .unwrap();
        for path in acked {
            let name = path.trim_start_matches("/w/");
            assert!(
                children.iter().any(|child| child == name),
                "member {} lost acknowledged {path}",
                idx + 1
            );
        }
    }
    let digests = poll_until("equal digests", CONVERGE_SECS_MAX, || async {
        let digests: Vec<Option<String>> = (0..MEMBERS).map(|i| digest(ens, i)).collect();
        let equal = digests[0].is_some() && digests.iter().all(|d| *d == digests[0]);
        equal.then_some(digests)
    })
    .await;
    eprintln!("digests after the attack: {digests:?}");
}

/// The body of an addauth packet: type 0, scheme, auth bytes.
fn auth_body(scheme: &str, auth: &[u8]) -> Vec<u8> {
    let mut body = 0i32.to_be_bytes().to_vec();
    body.extend_from_slice(&common::jute_string(scheme));
    body.extend_from_slice(&(auth.len() as i32).to_be_bytes());
    body.extend_from_slice(auth);
    body
}

/// The body of a persistent create of `path` with `data`, open to anyone.
fn create_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut body = common::jute_string(path);
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(&1i32.to_be_bytes()); // one ACL
    body.extend_from_slice(&PERMS_ALL.to_be_bytes());
    body.extend_from_slice(&common::jute_string("world"));
    body.extend_from_slice(&common::jute_string("anyone"));
    body.extend_from_slice(&0i32.to_be_bytes()); // persistent
    body
}

/// Raw session on `port`: adds `count` distinct small digest users; returns how many were
/// accepted before the server answered AuthFailed, after which it must have closed.
fn add_small_identities(port: u16, count: usize) -> usize {
    let mut raw = RawConn::connect(port);
    for n in 0..count {
        let user = format!("user{n}:password");
        let (_, err, _) = raw.call(XID_AUTH, OP_AUTH, &auth_body("digest", user.as_bytes()));
        if err != 0 {
            assert_eq!(err, ERR_AUTH_FAILED, "identity {n}");
            assert!(
                raw.expect_closed().is_empty(),
                "the server closes after AuthFailed"
            );
            return n;
        }
    }
    panic!("{count} identities were all accepted");
}

/// Raw session on `port`: sends the attack (40 addauths of a 900 KB user, then a
/// create) in one go; returns the reply error codes seen before the server closed.
fn send_huge_identities(port: u16) -> Vec<i32> {
    use std::io::Write;
    let mut raw = RawConn::connect(port);
    let user = format!("{}:p", "u".repeat(HUGE_USER_BYTES));
    let mut request = XID_AUTH.to_be_bytes().to_vec();
    request.extend_from_slice(&OP_AUTH.to_be_bytes());
    request.extend_from_slice(&auth_body("digest", user.as_bytes()));
    for _ in 0..HUGE_AUTH_COUNT {
        // The server may close after the first: later writes may fail, which is the point.
        if raw.stream.write_all(&common::frame(&request)).is_err() {
            break;
        }
    }
    raw.expect_closed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addauth_amplification_is_refused_and_the_ensemble_keeps_its_leader() {
    if target_is_zookeeper() {
        return;
    }
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let follower = (leader + 1) % MEMBERS;
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();

    // The crate: one absurd identity answers AuthFailed; the session is then unusable.
    for target in [leader, follower] {
        let attacker = Ensemble::client(&ens.hosts(&[target])).await;
        let user = format!("{}:p", "u".repeat(HUGE_USER_BYTES));
        let auth = bounded("huge addauth", attacker.auth("digest", user.as_bytes())).await;
        assert!(
            matches!(auth, Err(zk::Error::AuthFailed)),
            "addauth: {auth:?}"
        );
        let create = attacker.create("/attacker", b"", &persistent());
        let created = bounded("attacker create", create).await;
        assert!(created.is_err(), "the attacker still writes: {created:?}");
    }
    // Raw frames: the 40 x 900 KB pipelined, then many small identities.
    for target in [leader, follower] {
        let port = ens.member(target).client_port;
        let errs = tokio::task::spawn_blocking(move || send_huge_identities(port))
            .await
            .unwrap();
        assert_eq!(errs, [ERR_AUTH_FAILED], "one AuthFailed, then the close");
        let accepted =
            tokio::task::spawn_blocking(move || add_small_identities(port, SMALL_AUTH_COUNT))
                .await
                .unwrap();
        assert_eq!(accepted, AUTH_IDENTITIES_MAX - 1, "ip: holds one slot");
    }
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    let refused = ens
        .members
        .iter()
        .filter(|m| m.log_text().contains("addauth refused (AuthFailed)"))
        .count();
    assert!(refused >= 2, "leader and follower log why they refused");
    let probe = Ensemble::client(&ens.live_hosts()).await;
    let attacker_node = bounded("exists", probe.check_stat("/attacker")).await;
    assert_eq!(attacker_node.unwrap(), None);
    check_no_loss(&ens, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_above_the_log_record_limit_never_reaches_raft() {
    if target_is_zookeeper() {
        return;
    }
    let mut ens = Ensemble::spawn_with(MEMBERS, |_| {
        vec![(
            "jute.maxbuffer".to_owned(),
            BIG_JUTE_MAXBUFFER_BYTES.to_string(),
        )]
    });
    let leader = ens.wait_quorum().await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();
    for target in [leader, (leader + 1) % MEMBERS] {
        let port = ens.member(target).client_port;
        let errs = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut raw = RawConn::connect(port);
            let data = vec![b'x'; OVERSIZED_DATA_BYTES];
            let mut request = 1i32.to_be_bytes().to_vec();
            request.extend_from_slice(&OP_CREATE.to_be_bytes());
            request.extend_from_slice(&create_body("/oversized", &data));
            raw.stream.write_all(&common::frame(&request)).unwrap();
            raw.expect_closed()
        })
        .await
        .unwrap();
        assert!(errs.is_empty(), "no reply, the connection closes: {errs:?}");
    }
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    let logged = ens
        .members
        .iter()
        .filter(|m| m.log_text().contains("above PROPOSAL_BYTES_MAX"))
        .count();
    assert_eq!(logged, 2, "each refusing member logs why");
    let probe = Ensemble::client(&ens.live_hosts()).await;
    let oversized = bounded("exists", probe.check_stat("/oversized")).await;
    assert_eq!(oversized.unwrap(), None);
    check_no_loss(&ens, &acked).await;
}
