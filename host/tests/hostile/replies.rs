//! Reply amplification and ACL work (issue #12 items 2 and 4). A read whose reply grows with
//! the tree (a huge parent's children, a session's ephemerals, a multiRead naming big nodes)
//! is answered MarshallingError past jute.maxbuffer instead of being built under the tree
//! lock; the session goes on. An ACL list is de-duplicated before it is proposed (so a list of
//! copies is cheap and stores what ZooKeeper stores) and refused with InvalidACL past
//! `ACL_ENTRIES_MAX`, on a missing path, an existing one, a create and a multi alike.

use std::time::Instant;

use crate::common::{self, bounded, RawConn};
use crate::ensemble::Ensemble;
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, PERMS_ALL};
use crate::{OP_CREATE, WRITES_DURING_ATTACK_MIN};
use zookeeper_client as zk;

/// jute.maxbuffer of the reply ensemble: small, so a few hundred nodes pass it.
const SMALL_JUTE_MAXBUFFER_BYTES: usize = 64 * 1024;
/// Children of the huge parent, each with a long name: 400 x 204 bytes > 64 KiB.
const HUGE_PARENT_CHILDREN: usize = 400;
const LONG_NAME_BYTES: usize = 200;
/// Creates per multi while filling (a multi must fit in jute.maxbuffer too).
const CREATES_PER_MULTI: usize = 100;
/// A node of 40 KiB read this many times in one multiRead: 400 KiB > 64 KiB.
const BLOB_BYTES: usize = 40 * 1024;
const BLOB_READS: usize = 10;
/// zkw's ACL cap (tree::acl::ACL_ENTRIES_MAX).
const ACL_ENTRIES_MAX: usize = 1024;
/// Entries of the 1 MB setACL: distinct `ip` entries of about 25 bytes each.
const HUGE_ACL_ENTRIES: usize = 41_500;
/// ZooKeeper's default jute.maxbuffer, which the attack's frame must fit.
const JUTE_MAXBUFFER_BYTES: usize = 0xfffff;
/// ZooKeeper's codes the attacks expect on raw connections.
const ERR_NO_NODE: i32 = -101;
const ERR_INVALID_ACL: i32 = -114;
const OP_SET_ACL: i32 = 7;
const OP_MULTI: i32 = 14;
const OP_GET_ACL: i32 = 6;

/// `count` children of `parent`, `<n>` padded to `LONG_NAME_BYTES`, created in multis.
async fn fill(client: &zk::Client, parent: &str, count: usize, options: &zk::CreateOptions<'_>) {
    for start in (0..count).step_by(CREATES_PER_MULTI) {
        let mut multi = client.new_multi_writer();
        for n in start..(start + CREATES_PER_MULTI).min(count) {
            let name = format!("{n:0width$}", width = LONG_NAME_BYTES);
            multi
                .add_create(&format!("{parent}/{name}"), b"", options)
                .unwrap();
        }
        bounded("fill", multi.commit()).await.unwrap();
    }
}

/// The reads past jute.maxbuffer, on one member: each answers MarshallingError and the session
/// still serves afterwards.
async fn refused_reads(ens: &Ensemble, target: usize) {
    let client = Ensemble::client(&ens.hosts(&[target])).await;
    let children = bounded("getChildren", client.list_children("/huge")).await;
    assert_eq!(children.unwrap_err(), zk::Error::MarshallingError);
    let children2 = bounded("getChildren2", client.get_children("/huge")).await;
    assert_eq!(children2.unwrap_err(), zk::Error::MarshallingError);
    let mut reader = client.new_multi_reader();
    for _ in 0..BLOB_READS {
        reader.add_get_data("/blob").unwrap();
    }
    let multi = bounded("multiRead", reader.commit()).await;
    assert_eq!(multi.unwrap_err(), zk::Error::MarshallingError);
    let mut reader = client.new_multi_reader();
    reader.add_get_children("/huge").unwrap();
    let multi = bounded("multiRead children", reader.commit()).await;
    assert_eq!(multi.unwrap_err(), zk::Error::MarshallingError);
    // This session's own ephemerals past the limit.
    client.create("/eph", b"", &persistent()).await.ok();
    let parent = format!("/eph/{target}");
    bounded("eph parent", client.create(&parent, b"", &persistent()))
        .await
        .unwrap();
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    fill(&client, &parent, HUGE_PARENT_CHILDREN, &ephemeral).await;
    let ephemerals = bounded("getEphemerals", client.list_ephemerals("/")).await;
    assert_eq!(ephemerals.unwrap_err(), zk::Error::MarshallingError);
    // What fits is answered: the count of a huge parent is one int32, one blob fits.
    let count = bounded(
        "getAllChildrenNumber",
        client.count_descendants_number("/huge"),
    )
    .await;
    assert_eq!(count.unwrap(), HUGE_PARENT_CHILDREN);
    let (data, _) = bounded("getData", client.get_data("/blob")).await.unwrap();
    assert_eq!(data.len(), BLOB_BYTES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn replies_past_jute_maxbuffer_are_refused_and_the_ensemble_keeps_its_leader() {
    let mut ens = Ensemble::spawn_with(MEMBERS, |_| {
        vec![(
            "jute.maxbuffer".to_owned(),
            SMALL_JUTE_MAXBUFFER_BYTES.to_string(),
        )]
    });
    let leader = ens.wait_quorum().await;
    let before = modes(&ens);
    let setup = Ensemble::client(&ens.live_hosts()).await;
    bounded("huge", setup.create("/huge", b"", &persistent()))
        .await
        .unwrap();
    fill(&setup, "/huge", HUGE_PARENT_CHILDREN, &persistent()).await;
    let blob = vec![b'b'; BLOB_BYTES];
    bounded("blob", setup.create("/blob", &blob, &persistent()))
        .await
        .unwrap();
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();
    for target in [leader, (leader + 1) % MEMBERS] {
        refused_reads(&ens, target).await;
    }
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    let logged = ens
        .members
        .iter()
        .filter(|m| m.log_text().contains("reply above jute.maxbuffer refused"))
        .count();
    assert_eq!(logged, 2, "each refusing member logs why");
    check_no_loss(&ens, &acked).await;
}

/// A jute ACL entry.
fn acl_entry(perms: i32, scheme: &str, id: &str) -> Vec<u8> {
    let mut entry = perms.to_be_bytes().to_vec();
    entry.extend_from_slice(&common::jute_string(scheme));
    entry.extend_from_slice(&common::jute_string(id));
    entry
}

/// A jute ACL vector of `count` distinct `ip` entries.
fn distinct_acl(count: usize) -> Vec<u8> {
    let mut acl = (count as i32).to_be_bytes().to_vec();
    for n in 0..count {
        let id = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
        acl.extend_from_slice(&acl_entry(PERMS_ALL, "ip", &id));
    }
    acl
}

/// A jute ACL vector: `world:anyone` then `copies` copies of `ip:10.0.0.1`.
fn duplicated_acl(copies: usize) -> Vec<u8> {
    let mut acl = ((copies + 1) as i32).to_be_bytes().to_vec();
    acl.extend_from_slice(&acl_entry(PERMS_ALL, "world", "anyone"));
    for _ in 0..copies {
        acl.extend_from_slice(&acl_entry(PERMS_ALL, "ip", "10.0.0.1"));
    }
    acl
}

fn set_acl_body(path: &str, acl: &[u8]) -> Vec<u8> {
    let mut body = common::jute_string(path);
    body.extend_from_slice(acl);
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body
}

fn create_body(path: &str, acl: &[u8]) -> Vec<u8> {
    let mut body = common::jute_string(path);
    body.extend_from_slice(&0i32.to_be_bytes()); // empty data
    body.extend_from_slice(acl);
    body.extend_from_slice(&0i32.to_be_bytes()); // persistent
    body
}

/// A multi holding one create with `acl`.
fn multi_body(path: &str, acl: &[u8]) -> Vec<u8> {
    let mut body = OP_CREATE.to_be_bytes().to_vec();
    body.extend_from_slice(&[0]); // not done
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&create_body(path, acl));
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&[1]); // done
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body
}

/// One request on a raw session of member `port`: its error code and how long it took.
fn timed_call(port: u16, op: i32, body: Vec<u8>) -> (i32, u128) {
    let mut raw = RawConn::connect(port);
    let started = Instant::now();
    let (_, err, _) = raw.call(1, op, &body);
    let elapsed_ms = started.elapsed().as_millis();
    raw.close();
    (err, elapsed_ms)
}

/// The number of entries getACL reports for `path` (super-free: /acl is world-readable).
fn acl_count(port: u16, path: &str) -> i32 {
    let mut raw = RawConn::connect(port);
    let (_, err, body) = raw.call(1, OP_GET_ACL, &common::jute_string(path));
    assert_eq!(err, 0);
    raw.close();
    i32::from_be_bytes(body[0..4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn huge_acl_lists_are_refused_or_collapsed_before_the_log() {
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let setup = Ensemble::client(&ens.live_hosts()).await;
    bounded("acl", setup.create("/acl", b"", &persistent()))
        .await
        .unwrap();
    let writer = Writer::start(&ens.hosts(&[(leader + 2) % MEMBERS])).await;
    writer.wait_progress(0, 1).await;
    let during = writer.acked_count();
    let huge = distinct_acl(HUGE_ACL_ENTRIES);
    assert!(
        (1000 * 1000..JUTE_MAXBUFFER_BYTES - 64).contains(&huge.len()),
        "the issue's 1 MB list: {} bytes",
        huge.len()
    );
    let one_past = distinct_acl(ACL_ENTRIES_MAX + 1);
    for target in [leader, (leader + 1) % MEMBERS] {
        let port = ens.member(target).client_port;
        let attacks = [
            (
                "setACL missing",
                OP_SET_ACL,
                set_acl_body("/missing", &huge),
            ),
            ("setACL existing", OP_SET_ACL, set_acl_body("/acl", &huge)),
            (
                "setACL one past",
                OP_SET_ACL,
                set_acl_body("/acl", &one_past),
            ),
            ("create", OP_CREATE, create_body("/attacker", &huge)),
            ("multi create", OP_MULTI, multi_body("/attacker", &one_past)),
        ];
        for (what, op, body) in attacks {
            let (err, elapsed_ms) = tokio::task::spawn_blocking(move || timed_call(port, op, body))
                .await
                .unwrap();
            eprintln!(
                "{what} on member {}: err {err} in {elapsed_ms} ms",
                target + 1
            );
            assert_eq!(err, ERR_INVALID_ACL, "{what}");
        }
        // 41,500 copies collapse to ZooKeeper's stored list: the distinct entries, in order.
        let copies = duplicated_acl(HUGE_ACL_ENTRIES);
        let missing = set_acl_body("/missing", &copies);
        let (err, elapsed_ms) =
            tokio::task::spawn_blocking(move || timed_call(port, OP_SET_ACL, missing))
                .await
                .unwrap();
        eprintln!("setACL of copies on a missing path: err {err} in {elapsed_ms} ms");
        assert_eq!(err, ERR_NO_NODE);
        let existing = set_acl_body("/acl", &copies);
        let (err, _) = tokio::task::spawn_blocking(move || timed_call(port, OP_SET_ACL, existing))
            .await
            .unwrap();
        assert_eq!(err, 0);
        let count = tokio::task::spawn_blocking(move || acl_count(port, "/acl"))
            .await
            .unwrap();
        assert_eq!(count, 2, "world:anyone and one ip:10.0.0.1");
    }
    writer.wait_progress(during, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(modes(&ens), before, "the leader changed");
    let logged = ens
        .members
        .iter()
        .filter(|m| m.log_text().contains("ACL above ACL_ENTRIES_MAX refused"))
        .count();
    assert_eq!(logged, 2, "each refusing member logs why");
    let probe = Ensemble::client(&ens.live_hosts()).await;
    let attacker = bounded("exists", probe.check_stat("/attacker")).await;
    assert_eq!(attacker.unwrap(), None);
    check_no_loss(&ens, &acked).await;
}
