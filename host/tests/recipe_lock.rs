//! The `lock` recipe (recipes/lock) on a three-member zkw ensemble through the
//! `zookeeper-client` crate: sessions on every member increment one counter under the lock
//! with a read-modify-write gap; no update is lost, fencing tokens strictly increase in counter
//! order, and each waiter is woken by its own node's data watch. The same test as
//! tests/ensemble/test_recipe_lock.py, from another client library. zkw only.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::time::Duration;

use common::{bounded, mk};
use ensemble::Ensemble;
use zookeeper_client as zk;

/// Sessions contending, spread over the members.
const CLIENTS: usize = 4;
/// Increments per session.
const CYCLES: usize = 8;
/// The deliberate gap between reading and writing the counter.
const GAP_MS: u64 = 10;
/// Bound on one acquire (a fair wait behind every other session's cycle).
const ACQUIRE_SECS_MAX: u64 = 30;

fn grant_token(data: &[u8]) -> Option<i64> {
    let rest = data.strip_prefix(b"granted ")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// Queues a write request and waits for its grant; (request path, token).
async fn acquire(client: &zk::Client) -> (String, i64) {
    let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, seq) = bounded("create", client.create("/locks/l/write-", b"", &options))
        .await
        .unwrap();
    let path = format!("/locks/l/write-{seq}");
    let wait = async {
        loop {
            let (data, _, watcher) = client.get_and_watch_data(&path).await.unwrap();
            if let Some(token) = grant_token(&data) {
                return token;
            }
            let event = watcher.changed().await;
            assert_eq!(event.event_type, zk::EventType::NodeDataChanged);
        }
    };
    let token = tokio::time::timeout(Duration::from_secs(ACQUIRE_SECS_MAX), wait)
        .await
        .expect("not granted in time");
    (path, token)
}

/// One session's cycles; (value read, token) per cycle.
async fn contend(hosts: String) -> Vec<(u64, i64)> {
    let client = Ensemble::client(&hosts).await;
    let mut seen = Vec::new();
    for _ in 0..CYCLES {
        let (path, token) = acquire(&client).await;
        let (data, stat) = bounded("get", client.get_data("/counter")).await.unwrap();
        let value: u64 = String::from_utf8(data).unwrap().parse().unwrap();
        tokio::time::sleep(Duration::from_millis(GAP_MS)).await;
        let next = (value + 1).to_string();
        let set = client.set_data("/counter", next.as_bytes(), Some(stat.version));
        bounded("set", set)
            .await
            .expect("lost update under the lock");
        bounded("delete", client.delete(&path, None)).await.unwrap();
        seen.push((value, token));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_serialises_read_modify_writes_across_members() {
    if std::env::var("ZKW_TARGET").is_ok_and(|target| target == "zookeeper") {
        return;
    }
    let ens = Ensemble::start(3).await;
    let admin = Ensemble::client(&ens.live_hosts()).await;
    // The lock recipe built into zkw, by name.
    common::install_recipe(&ens.live_hosts(), "lock", "/locks", &[]);
    mk(&admin, "/locks", b"").await;
    mk(&admin, "/locks/l", b"").await;
    mk(&admin, "/counter", b"0").await;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(contend(ens.member(i % ens.members.len()).addr())))
        .collect();
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap());
    }
    let total = CLIENTS * CYCLES;
    admin.sync("/counter").await.unwrap();
    let (data, _) = bounded("get", admin.get_data("/counter")).await.unwrap();
    assert_eq!(String::from_utf8(data).unwrap(), total.to_string());
    seen.sort();
    let reads: Vec<u64> = seen.iter().map(|(value, _)| *value).collect();
    assert_eq!(reads, (0..total as u64).collect::<Vec<_>>());
    assert!(
        seen.windows(2).all(|pair| pair[0].1 < pair[1].1),
        "tokens must grow with the counter: {seen:?}"
    );
}
