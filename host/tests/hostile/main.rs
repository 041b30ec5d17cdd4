//! Hostile clients, stray peers and careless recipes against a real three-member zkw ensemble
//! (issue #12). Each test performs an attack while another client keeps writing, and asserts that
//! (a) the attacker gets a clear error or loses its connection, with a logged reason; (b) the
//! writer is never interrupted and, for a client-side attack, the leader does not change (`srvr`
//! mode of every member before and after); (c) every acknowledged write is on every member and
//! the members' `mntr` zk_digest agree. This file is the shared frame; one module per area:
//! - `amplification`: request amplification (addauth identities, proposals above the log's
//!   record limit).
//!
//! zkw only (the limits are zkw's; ZooKeeper accepts most of these attacks).
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/ensemble.rs"]
mod ensemble;

mod amplification;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{bounded, poll_until};
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
/// ZooKeeper's opcodes and error codes the attacks use on raw connections.
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
