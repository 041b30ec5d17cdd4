//! The quorum port (issue #12 items 7 and 10): only members speak, and untrusted bytes cost
//! what they carry. A stray process dials a member's quorum port with a non-member id, a
//! member's id from another address, a frame announcing 1 GiB before its handshake, a member's
//! frame announcing 200 MiB then silence, more handshakes and connections than the caps allow,
//! and no or a wrong quorum secret; each is refused or closed with a logged reason while the
//! ensemble keeps its leader and loses nothing. An ensemble with the secret forms and serves;
//! a member with a wrong secret cannot join until its secret is fixed. A follower that fell
//! behind the log catches up by a snapshot sent in many chunks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use zkw::consensus::handshake::{Challenge, Hello, QuorumAuth, HANDSHAKE_VERSION, NONCE_BYTES};
use zkw::consensus::network::{
    PeerClient, PeerRequest, PeerResponse, PeerSettings, PEER_CONNECTIONS_PER_MEMBER_MAX,
    PEER_HANDSHAKES_PER_IP_MAX, PEER_IDLE_TIMEOUT_MS, SNAPSHOT_CHUNK_BYTES,
};

use crate::common::{bounded, poll_until};
use crate::ensemble::{Ensemble, QUORUM_SECS_MAX};
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, WRITES_DURING_ATTACK_MIN};

/// The id a stray process claims: no member has it.
const STRAY_ID: u64 = 99;
/// Where members are configured (every test member listens on loopback).
const MEMBER_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Another loopback address: "a member's id from the wrong address".
const WRONG_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The address the handshake flood comes from (kept apart from the members' own).
const FLOOD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
/// A frame header announcing 1 GiB (the old PEER_FRAME_BYTES_MAX, reserved on read).
const GIB_BYTES: u32 = 1024 * 1024 * 1024;
/// An admitted member's frame announcing 200 MiB (under PEER_FRAME_BYTES_MAX)...
const ANNOUNCED_BYTES: u32 = 200 * 1024 * 1024;
/// ...of which this much is sent before silence...
const SENT_BYTES: usize = 64 * 1024;
/// ...on this many connections at once.
const SILENT_CONNECTIONS: usize = 8;
/// Growth of the member's VmRSS the silent frames may cause, generously (the writer runs too).
const RSS_GROWTH_KIB_MAX: u64 = 64 * 1024;
/// Bound on one peer request of the stray.
const RPC_SECS_MAX: u64 = 5;
/// Bound on seeing the member close a connection it refuses.
const CLOSE_SECS_MAX: u64 = 10;
/// Bound on an idle connection being closed: the idle timeout plus slack for a loaded host.
const IDLE_CLOSE_SECS_MAX: u64 = PEER_IDLE_TIMEOUT_MS / 1000 + 20;
/// The shared secret of the authenticated ensemble, and the wrong one.
const SECRET: &str = "quorum-s3cret";
const WRONG_SECRET: &str = "not-the-secret";

/// A stray's peer settings: it claims `id` and knows no secret.
pub(crate) fn stray(id: u64) -> Arc<PeerSettings> {
    Arc::new(PeerSettings {
        my_id: id,
        auth: QuorumAuth::default(),
        snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES,
        reachability: Default::default(),
        tls: None,
        transport: Arc::new(zkw::net::TcpTransport),
    })
}

/// A raw connection to `to` from the loopback address `from`.
async fn dial(from: IpAddr, to: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    bounded("dial", socket.connect(to.parse().unwrap()))
        .await
        .unwrap()
}

/// One length-prefixed frame's body; None when the peer closed first.
async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let length = stream.read_u32().await.ok()?;
        let mut body = vec![0; length as usize];
        stream.read_exact(&mut body).await.ok()?;
        Some(body)
    };
    bounded("a frame", read).await
}

/// The dialler's handshake as server `id`, without a secret: whether it was welcomed.
async fn greet(stream: &mut TcpStream, id: u64) -> bool {
    let challenge = read_frame(stream).await.expect("the member's challenge");
    let challenge: Challenge = postcard::from_bytes(&challenge).unwrap();
    assert_eq!(challenge.version, HANDSHAKE_VERSION);
    let hello = Hello {
        version: HANDSHAKE_VERSION,
        id,
        nonce: [7; NONCE_BYTES],
        proof: None,
    };
    let body = postcard::to_stdvec(&hello).unwrap();
    let length = u32::try_from(body.len()).unwrap();
    stream.write_all(&length.to_be_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    read_frame(stream).await.is_some()
}

/// Whether the member closes `stream` within `secs` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, secs: u64) -> bool {
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(secs), stream.read(&mut byte)).await;
    matches!(read, Ok(Ok(0) | Err(_)))
}

/// VmRSS of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// How many members' logs hold `text`.
fn logged(ens: &Ensemble, text: &str) -> usize {
    ens.members
        .iter()
        .filter(|member| member.log_text().contains(text))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn stray_peers_are_refused_and_the_ensemble_keeps_its_leader() {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();
    let rpc = Duration::from_secs(RPC_SECS_MAX);
    for target in [leader, (leader + 1) % MEMBERS] {
        let address = ens.member(target).quorum_addr();
        let target_id = ens.member(target).id as u64;
        // A non-member id: the membership probe (a joiner's question) is answered, the rest
        // closes the connection.
        let mut client = PeerClient::new(target_id, address.clone(), stray(STRAY_ID));
        let probe = PeerRequest::Membership { asker: STRAY_ID };
        let answer = client.call(&probe, rpc).await;
        assert!(
            matches!(answer, Ok(PeerResponse::Membership(Some((false, _))))),
            "{answer:?}"
        );
        let touch = client.call(&PeerRequest::Relay(vec![1]), rpc).await;
        assert!(touch.is_err(), "a stranger's Relay was answered: {touch:?}");
        // A member's id from an address that is not that member's.
        let other_id = ens.member((target + 1) % MEMBERS).id as u64;
        let mut raw = dial(WRONG_IP, &address).await;
        assert!(!greet(&mut raw, other_id).await, "welcomed from {WRONG_IP}");
        // A frame announcing 1 GiB before any handshake: refused on its header.
        let mut raw = dial(MEMBER_IP, &address).await;
        read_frame(&mut raw).await.expect("the member's challenge");
        raw.write_all(&GIB_BYTES.to_be_bytes()).await.unwrap();
        assert!(closed_within(&mut raw, CLOSE_SECS_MAX).await);
    }
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    for reason in [
        "server 99 is not a member",
        "not at this address",
        "over the limit of 1024",
    ] {
        assert_eq!(logged(&ens, reason), 2, "leader and follower log: {reason}");
    }
    check_no_loss(&ens, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn silent_frames_cost_nothing_and_peer_connections_are_capped() {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let (follower, other) = ((leader + 1) % MEMBERS, (leader + 2) % MEMBERS);
    let writer = Writer::start(&ens.hosts(&[leader])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();
    let address = ens.member(follower).quorum_addr();
    let pid = ens.member(follower).pid().unwrap();
    // The other follower's id, from its (loopback) address: admitted as that member.
    let claimed = ens.member(other).id as u64;

    // Frames announcing 200 MiB, 64 KiB of each sent, then silence: memory follows the bytes.
    let rss_before = rss_kib(pid);
    let mut silent = Vec::new();
    for _ in 0..SILENT_CONNECTIONS {
        let mut raw = dial(MEMBER_IP, &address).await;
        assert!(greet(&mut raw, claimed).await, "a member's id was refused");
        raw.write_all(&ANNOUNCED_BYTES.to_be_bytes()).await.unwrap();
        raw.write_all(&[0; SENT_BYTES]).await.unwrap();
        silent.push(raw);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kib(pid);
    eprintln!("follower VmRSS: {rss_before} KiB before, {rss_after} KiB with the silent frames");
    assert!(
        rss_after < rss_before + RSS_GROWTH_KIB_MAX,
        "VmRSS grew from {rss_before} to {rss_after} KiB"
    );
    // ...and each is closed after the idle timeout.
    for raw in &mut silent {
        assert!(closed_within(raw, IDLE_CLOSE_SECS_MAX).await, "still open");
    }

    // Handshakes in progress from one address: past the cap, closed before any challenge.
    let mut pending = Vec::new();
    for _ in 0..PEER_HANDSHAKES_PER_IP_MAX {
        let mut raw = dial(FLOOD_IP, &address).await;
        read_frame(&mut raw)
            .await
            .expect("a challenge within the cap");
        pending.push(raw);
    }
    let mut extra = dial(FLOOD_IP, &address).await;
    assert!(
        read_frame(&mut extra).await.is_none(),
        "a challenge past the cap"
    );
    // The silent handshakes end at the handshake timeout.
    for raw in &mut pending {
        assert!(
            closed_within(raw, CLOSE_SECS_MAX).await,
            "a silent handshake lives on"
        );
    }

    // Admitted connections of one member: past the cap, refused.
    let mut held = Vec::new();
    for _ in 0..PEER_CONNECTIONS_PER_MEMBER_MAX {
        let mut raw = dial(MEMBER_IP, &address).await;
        assert!(greet(&mut raw, claimed).await, "refused within the cap");
        held.push(raw);
    }
    let mut extra = dial(MEMBER_IP, &address).await;
    assert!(!greet(&mut extra, claimed).await, "welcomed past the cap");
    drop(held);

    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    let log = ens.member(follower).log_text();
    for reason in [
        "closing an idle peer connection",
        "too many connections from this address are in their handshake",
        "no handshake in HANDSHAKE_TIMEOUT_MS",
        "already has PEER_CONNECTIONS_PER_MEMBER_MAX connections",
    ] {
        assert!(log.contains(reason), "the follower did not log: {reason}");
    }
    check_no_loss(&ens, &acked).await;
}

/// The `quorum.auth.*` keys of a member whose secret is in `secret_file`.
fn auth_keys(secret_file: &Path) -> Vec<(String, String)> {
    [
        ("quorum.auth.enableSasl", "true".to_owned()),
        ("quorum.auth.learnerRequireSasl", "true".to_owned()),
        ("quorum.auth.serverRequireSasl", "true".to_owned()),
        ("quorum.auth.secretFile", secret_file.display().to_string()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn with_a_shared_secret_only_its_holders_join() {
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = |id: usize| secrets.path().join(format!("secret.{id}"));
    for id in 1..=MEMBERS {
        let secret = if id == MEMBERS { WRONG_SECRET } else { SECRET };
        std::fs::write(secret_file(id), format!("{secret}\n")).unwrap();
    }
    let mut ens = Ensemble::spawn_with(MEMBERS, |id| auth_keys(&secret_file(id)));
    let last = MEMBERS - 1;
    // The two members with the secret form a quorum and serve; the third cannot join.
    let pair_modes = || {
        let mut modes: Vec<String> = (0..last).filter_map(|i| ens.member(i).mode()).collect();
        modes.sort();
        modes
    };
    poll_until("a leader and a follower", QUORUM_SECS_MAX, || async {
        (pair_modes() == ["follower", "leader"]).then_some(())
    })
    .await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[0, 1])).await;
    writer.wait_progress(0, WRITES_DURING_ATTACK_MIN).await;
    poll_until("the refusals logged", QUORUM_SECS_MAX, || async {
        let refused = logged(&ens, "wrong proof of the quorum secret") >= last;
        let failed = ens
            .member(last)
            .log_text()
            .contains("quorum handshake failed");
        (refused && failed).then_some(())
    })
    .await;
    assert_eq!(
        ens.member(last).mode(),
        None,
        "the wrong secret's member serves"
    );
    // A stray without the secret, claiming a member's id, is refused too.
    let mut client = PeerClient::new(1, ens.member(0).quorum_addr(), stray(2));
    let touch = client
        .call(
            &PeerRequest::Relay(vec![1]),
            Duration::from_secs(RPC_SECS_MAX),
        )
        .await;
    assert!(touch.is_err(), "answered without the secret: {touch:?}");
    assert!(ens
        .member(0)
        .log_text()
        .contains("no proof of the quorum secret"));

    // With the secret fixed, the third member joins and catches up.
    let during = writer.acked_count();
    ens.kill(last);
    std::fs::write(secret_file(MEMBERS), SECRET).unwrap();
    ens.members[last].restart();
    poll_until("the third member follows", QUORUM_SECS_MAX, || async {
        (ens.member(last).mode().as_deref() == Some("follower")).then_some(())
    })
    .await;
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    let after = modes(&ens);
    assert_eq!(after[..last], before[..last], "the leader changed");
    check_no_loss(&ens, &acked).await;
}

/// snapCount of the catch-up ensemble: snapshots (and log purges) come often.
const CATCH_UP_SNAP_COUNT: u64 = 100;
/// snapshotChunkBytes of the catch-up ensemble: its snapshot is many chunks.
const CATCH_UP_CHUNK_BYTES: usize = 4096;
/// commitLogCount of the catch-up ensemble: entries kept in the log behind a snapshot.
const CATCH_UP_LOG_KEPT: u64 = 200;
/// Writes made while the follower is down: past the entries kept behind a snapshot (and a
/// snapshot interval more), so the follower can only catch up by snapshot.
const CATCH_UP_WRITES: usize = 600;
/// Creates in flight at once while the follower is down.
const CATCH_UP_WRITES_IN_FLIGHT: usize = 100;

/// The highest index a member's log says it purged up to (`log purged up to a snapshot
/// index=N`), 0 if none.
fn purged_index(log: &str) -> u64 {
    log.lines()
        .filter(|line| line.contains("log purged up to a snapshot"))
        .filter_map(|line| line.split("index=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|index| index.parse().ok())
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn a_follower_catches_up_by_a_snapshot_larger_than_a_chunk() {
    let mut ens = Ensemble::spawn_with(MEMBERS, |_| {
        vec![
            ("snapCount".to_owned(), CATCH_UP_SNAP_COUNT.to_string()),
            (
                "snapshotChunkBytes".to_owned(),
                CATCH_UP_CHUNK_BYTES.to_string(),
            ),
            ("commitLogCount".to_owned(), CATCH_UP_LOG_KEPT.to_string()),
        ]
    });
    let leader = ens.wait_quorum().await;
    let before = modes(&ens);
    let follower = (leader + 1) % MEMBERS;
    let writer = Writer::start(&ens.hosts(&[leader])).await;
    writer.wait_progress(0, 1).await;
    ens.kill(follower);
    let client = Ensemble::client(&ens.hosts(&[leader])).await;
    // Made after the kill, so its zxid (= log index) is past the follower's last entry.
    let (bulk, _) = bounded("create /bulk", client.create("/bulk", b"", &persistent()))
        .await
        .unwrap();
    let follower_last_index = u64::try_from(bulk.czxid).unwrap();
    for batch in 0..CATCH_UP_WRITES / CATCH_UP_WRITES_IN_FLIGHT {
        let creates = (0..CATCH_UP_WRITES_IN_FLIGHT).map(|n| {
            let path = format!("/bulk/{batch:04}-{n:04}");
            let client = &client;
            async move { client.create(&path, b"bulk", &persistent()).await }
        });
        for created in bounded("bulk creates", futures_util::future::join_all(creates)).await {
            created.unwrap();
        }
    }
    // Only a leader whose log no longer holds the follower's next entry must send a snapshot.
    // openraft purges behind a snapshot, keeping commitLogCount entries, and postpones a purge
    // while a replication to the dead follower is in flight: wait for the purge itself, so the
    // test never passes by a catch-up from the log.
    poll_until(
        "the leader's log purged past the follower's",
        QUORUM_SECS_MAX,
        || async {
            (purged_index(&ens.member(leader).log_text()) > follower_last_index).then_some(())
        },
    )
    .await;
    let during = writer.acked_count();
    ens.members[follower].restart();
    poll_until("the follower is back", QUORUM_SECS_MAX, || async {
        (ens.member(follower).mode().as_deref() == Some("follower")).then_some(())
    })
    .await;
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    let chunked = ens.member(leader).log_text();
    assert!(
        chunked.contains("sending a snapshot in chunks"),
        "no chunked snapshot was sent"
    );
    check_no_loss(&ens, &acked).await;
}
