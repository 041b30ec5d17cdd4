//! Forwarded commands (issue #12 item 8): a peer that passes for a follower (a member's id,
//! from its address, no quorum secret configured) sends the leader a
//! forwarded batch of what only a leader decides or no client session could ask for. Before,
//! the leader proposed all of it: a foreign runtime fingerprint stopped every member (exit 3),
//! a leader-only CloseSession ended another server's client session, a reap deleted a node
//! and a `super` identity without its digest wrote past an ACL. Now each command is dropped
//! with a logged reason, the batch's other commands go on, and nothing changes. The same peer
//! also forwards a body no txn decodes and relays session liveness that names no whole ids:
//! both are dropped with a logged reason.

use std::time::Duration;

use zkw::consensus::network::{PeerClient, PeerRequest, PeerResponse};
use zkw::consensus::types::Command;
use zkw::proto::{Id, SetDataRequest};
use zkw::txn::codec::encode_entry;
use zkw::txn::{TxnEntry, TxnOp};
use zookeeper_client as zk;

use crate::common::bounded;
use crate::ensemble::Ensemble;
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, WRITES_DURING_ATTACK_MIN};

/// Bound on the leader's answer to the forged batch.
const FORWARD_SECS_MAX: u64 = 10;
/// Terms the forged session expiry is tried in (a fresh ensemble's term is one of them).
const LEADER_TERMS_TRIED: u64 = 8;
/// The digest identity that alone may write the guarded node.
const OWNER: (&str, &str) = ("owner", "owner-password");

fn command(origin: u64, seq: u64, term: Option<u64>, entry: &TxnEntry) -> Command {
    let mut body = Vec::new();
    encode_entry(entry, &mut body);
    Command {
        origin,
        boot: u64::MAX,
        seq,
        term,
        time_ms: 0,
        body,
    }
}

fn entry(session_id: i64, auth: Vec<Id>, op: TxnOp) -> TxnEntry {
    TxnEntry {
        zxid: 0,
        time_ms: 0,
        session_id,
        auth,
        op,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn a_forged_forward_of_leader_decisions_changes_nothing() {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let follower = (leader + 1) % MEMBERS;
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;

    // A victim session on a follower, a node only OWNER may write, and a container to reap.
    let victim = Ensemble::client(&ens.hosts(&[follower])).await;
    bounded(
        "owner auth",
        victim.auth("digest", format!("{}:{}", OWNER.0, OWNER.1).as_bytes()),
    )
    .await
    .unwrap();
    let guarded = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    bounded(
        "create /guarded",
        victim.create("/guarded", b"kept", &guarded),
    )
    .await
    .unwrap();
    bounded("create /kept", victim.create("/kept", b"", &persistent()))
        .await
        .unwrap();
    let during = writer.acked_count();

    let session = victim.session_id().0;
    let impostor = ens.member(follower).id as u64;
    let mut forged = vec![
        command(
            impostor,
            0,
            None,
            &entry(
                0,
                vec![],
                TxnOp::RuntimeCheck {
                    fingerprint: "a foreign runtime".to_owned(),
                },
            ),
        ),
        command(
            impostor,
            1,
            None,
            &entry(
                session,
                vec![],
                TxnOp::Reap {
                    path: "/kept".to_owned(),
                },
            ),
        ),
        command(
            impostor,
            2,
            None,
            &entry(
                session,
                vec![Id::new("super", "")],
                TxnOp::SetData(SetDataRequest {
                    path: "/guarded".to_owned(),
                    data: Some(b"overwritten".to_vec()),
                    version: -1,
                }),
            ),
        ),
    ];
    // A leader-only expiry of the victim's session, in every term a fresh ensemble may be in.
    for term in 1..=LEADER_TERMS_TRIED {
        let close = entry(session, vec![], TxnOp::CloseSession);
        forged.push(command(impostor, 3 + term, Some(term), &close));
    }
    // A body no txn decodes (the leader's state machine decodes forwarded bodies to check them).
    let mut garbage = command(
        impostor,
        4 + LEADER_TERMS_TRIED,
        None,
        &entry(session, vec![], TxnOp::CloseSession),
    );
    garbage.body = vec![0xff; 13];
    forged.push(garbage);
    let forged_count = forged.len();
    let leader_id = ens.member(leader).id as u64;
    let mut peer = PeerClient::new(
        leader_id,
        ens.member(leader).quorum_addr(),
        crate::quorum::stray(impostor),
    );
    let answer = bounded(
        "forged forward",
        peer.call(
            &PeerRequest::Forward(forged),
            Duration::from_secs(FORWARD_SECS_MAX),
        ),
    )
    .await;
    assert!(
        matches!(answer, Ok(PeerResponse::Forwarded)),
        "the leader takes the batch (and drops its commands): {answer:?}"
    );
    // Session liveness that names no whole session id: answered, ignored, logged.
    let relayed = bounded(
        "malformed relay",
        peer.call(
            &PeerRequest::Relay(vec![1, 2, 3]),
            Duration::from_secs(FORWARD_SECS_MAX),
        ),
    )
    .await;
    assert!(matches!(relayed, Ok(PeerResponse::Relayed)), "{relayed:?}");

    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(
        modes(&ens),
        before,
        "a member stopped or the leader changed"
    );
    let dropped = ens
        .member(leader)
        .log_text()
        .matches("dropping a forwarded command")
        .count();
    assert_eq!(
        dropped, forged_count,
        "the leader logs each dropped command"
    );
    assert!(ens
        .member(leader)
        .log_text()
        .contains("a session relay that names no whole ids"));
    // The victim's session lives on and writes; the reaped and guarded nodes are untouched.
    bounded(
        "victim writes",
        victim.set_data("/kept", b"still here", None),
    )
    .await
    .unwrap();
    let (data, _) = bounded("get /guarded", victim.get_data("/guarded"))
        .await
        .unwrap();
    assert_eq!(data, b"kept");
    check_no_loss(&ens, &acked).await;
}
