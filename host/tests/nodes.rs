//! Black-box tests of the special node kinds: containers (createContainer, reaped once their
//! last child goes, never-used ones kept) and TTL nodes (createTTL, reaped after the TTL),
//! whose internal ephemeralOwner markers ZooKeeper 3.8 does not show to clients (Stat says 0).
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::time::Duration;

use common::{bounded, mk, poll_until, Server};
use zookeeper_client as zk;

/// Reaper period for these tests (ZooKeeper's default is a minute).
const CHECK_INTERVAL_MS: &str = "100";
/// Bound on waiting for the reaper.
const REAP_SECS_MAX: u64 = 15;

#[tokio::test]
async fn container_is_reaped_after_its_last_child_goes() {
    let server = Server::start(&[("znode.container.checkIntervalMs", CHECK_INTERVAL_MS)]);
    let c = server.client().await;
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    let (stat, _) = bounded("createContainer", c.create("/box", b"", &container))
        .await
        .unwrap();
    let (_, got) = bounded("get", c.get_data("/box")).await.unwrap();
    assert_eq!(
        (stat.ephemeral_owner, got.ephemeral_owner),
        (0, 0),
        "the marker is not shown"
    );
    bounded("never used", c.create("/empty", b"", &container))
        .await
        .unwrap();
    mk(&c, "/box/item", b"").await;
    let (_, watch) = bounded("exists+watch", c.check_and_watch_stat("/box"))
        .await
        .unwrap();
    bounded("delete child", c.delete("/box/item", None))
        .await
        .unwrap();
    let ev = bounded("reaped", watch.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (zk::EventType::NodeDeleted, "/box")
    );
    assert!(bounded("never used kept", c.check_stat("/empty"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn ttl_node_expires_and_ttl_rules() {
    let server = Server::start(&[("znode.container.checkIntervalMs", CHECK_INTERVAL_MS)]);
    let c = server.client().await;
    let ttl = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_millis(500));
    let (stat, _) = bounded("createTTL", c.create("/ttl", b"t", &ttl))
        .await
        .unwrap();
    let (_, got) = bounded("get", c.get_data("/ttl")).await.unwrap();
    assert_eq!(
        (stat.ephemeral_owner, got.ephemeral_owner),
        (0, 0),
        "the marker is not shown"
    );
    let seq_ttl = zk::CreateMode::PersistentSequential
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_millis(500));
    let (_, n) = bounded("createTTL seq", c.create("/ttl-", b"", &seq_ttl))
        .await
        .unwrap();
    let seq_path = format!("/ttl-{n}");
    // A TTL node with a child is kept while the child lives.
    let long = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_millis(300));
    bounded("parent ttl", c.create("/keep", b"", &long))
        .await
        .unwrap();
    mk(&c, "/keep/kid", b"").await;

    poll_until("ttl nodes reaped", REAP_SECS_MAX, || {
        let c = c.clone();
        let seq_path = seq_path.clone();
        async move {
            let a = c.check_stat("/ttl").await.unwrap();
            let b = c.check_stat(&seq_path).await.unwrap();
            (a.is_none() && b.is_none()).then_some(())
        }
    })
    .await;
    assert!(bounded("kept", c.check_stat("/keep"))
        .await
        .unwrap()
        .is_some());
}
