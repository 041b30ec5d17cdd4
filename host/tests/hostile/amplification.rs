//! Request amplification (issue #12 item 1): an absurd identity, and too many identities, are
//! refused with AuthFailed and the connection closes (so no write carries them into the log); a
//! request whose txn would pass the log's record limit (possible once jute.maxbuffer is raised
//! above it) is refused before Raft: its connection closes, no member suffers.

use crate::common::{self, bounded, RawConn};
use crate::ensemble::Ensemble;
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, WRITES_DURING_ATTACK_MIN};
use crate::{ERR_AUTH_FAILED, OP_AUTH, OP_CREATE, PERMS_ALL, XID_AUTH};
use zookeeper_client as zk;

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
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn addauth_amplification_is_refused_and_the_ensemble_keeps_its_leader() {
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
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn a_request_above_the_log_record_limit_never_reaches_raft() {
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
