//! Black-box tests of watches: one-shot data, exists and child watches, persistent and
//! persistent-recursive watches (addWatch), their exact event types, paths and order, and
//! checkWatches/removeWatches over the raw protocol.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use common::{bounded, event, jute_string, mk, next_event, Server};
use futures_util::FutureExt;
use zk::EventType as E;
use zookeeper_client as zk;

#[tokio::test]
async fn data_watch_fires_on_set_then_is_gone() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let w = server.client().await;
    mk(&c, "/d", b"a").await;
    let (_, _, watch) = bounded("watch", w.get_and_watch_data("/d")).await.unwrap();
    bounded("set", c.set_data("/d", b"b", None)).await.unwrap();
    let ev = event(watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeDataChanged, "/d")
    );
    assert_eq!(ev.session_state, zk::SessionState::SyncConnected);

    let (_, _, watch) = bounded("watch", w.get_and_watch_data("/d")).await.unwrap();
    bounded("delete", c.delete("/d", None)).await.unwrap();
    let ev = event(watch).await;
    assert_eq!((ev.event_type, ev.path.as_str()), (E::NodeDeleted, "/d"));
}

#[tokio::test]
async fn exists_watch_on_missing_node_sees_create() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let w = server.client().await;
    let (stat, watch) = bounded("watch", w.check_and_watch_stat("/later"))
        .await
        .unwrap();
    assert_eq!(stat, None);
    mk(&c, "/later", b"").await;
    let ev = event(watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeCreated, "/later")
    );
    // An exists watch on an existing node behaves as a data watch.
    let (stat, watch) = bounded("watch", w.check_and_watch_stat("/later"))
        .await
        .unwrap();
    assert!(stat.is_some());
    bounded("set", c.set_data("/later", b"x", None))
        .await
        .unwrap();
    let ev = event(watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeDataChanged, "/later")
    );
}

#[tokio::test]
async fn child_watch_fires_on_create_delete_and_parent_delete() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let w = server.client().await;
    mk(&c, "/p", b"").await;
    let (kids, watch) = bounded("watch", w.list_and_watch_children("/p"))
        .await
        .unwrap();
    assert!(kids.is_empty());
    mk(&c, "/p/a", b"").await;
    let ev = event(watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeChildrenChanged, "/p")
    );

    let (_, _, watch) = bounded("watch2", w.get_and_watch_children("/p"))
        .await
        .unwrap();
    let mut fired = Box::pin(watch.changed());
    // Setting a child's data is not a children change: nothing has fired by the time the
    // watcher's sync returns (an event precedes the replies after it); the delete is.
    bounded("set child", c.set_data("/p/a", b"x", None))
        .await
        .unwrap();
    bounded("set parent", c.set_data("/p", b"x", None))
        .await
        .unwrap();
    bounded("sync", w.sync("/")).await.unwrap();
    assert!(
        (&mut fired).now_or_never().is_none(),
        "a data change fired a child watch"
    );
    bounded("delete child", c.delete("/p/a", None))
        .await
        .unwrap();
    let ev = bounded("watch event", fired).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeChildrenChanged, "/p")
    );

    let (_, watch) = bounded("watch3", w.list_and_watch_children("/p"))
        .await
        .unwrap();
    bounded("delete parent", c.delete("/p", None))
        .await
        .unwrap();
    let ev = event(watch).await;
    assert_eq!((ev.event_type, ev.path.as_str()), (E::NodeDeleted, "/p"));
}

#[tokio::test]
async fn watches_of_several_clients_all_fire() {
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/m", b"").await;
    let mut watches = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let w = server.client().await;
        let (_, _, watch) = bounded("watch", w.get_and_watch_data("/m")).await.unwrap();
        watches.push(watch);
        clients.push(w);
    }
    bounded("set", c.set_data("/m", b"x", None)).await.unwrap();
    for watch in watches {
        assert_eq!(event(watch).await.event_type, E::NodeDataChanged);
    }
}

#[tokio::test]
async fn persistent_watch_reports_every_change_in_order() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let w = server.client().await;
    let mut watch = bounded("addWatch", w.watch("/p", zk::AddWatchMode::Persistent))
        .await
        .unwrap();
    mk(&c, "/p", b"").await;
    mk(&c, "/p/c", b"").await;
    bounded("set", c.set_data("/p", b"1", None)).await.unwrap();
    bounded("set child", c.set_data("/p/c", b"1", None))
        .await
        .unwrap();
    bounded("del child", c.delete("/p/c", None)).await.unwrap();
    bounded("del", c.delete("/p", None)).await.unwrap();
    mk(&c, "/p", b"").await;
    let expected = [
        E::NodeCreated,
        E::NodeChildrenChanged,
        E::NodeDataChanged,
        E::NodeChildrenChanged,
        E::NodeDeleted,
        E::NodeCreated,
    ];
    for want in expected {
        let ev = next_event(&mut watch).await;
        assert_eq!((ev.event_type, ev.path.as_str()), (want, "/p"));
    }
}

#[tokio::test]
async fn recursive_watch_reports_descendants_without_child_events() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let w = server.client().await;
    mk(&c, "/r", b"").await;
    let mode = zk::AddWatchMode::PersistentRecursive;
    let mut watch = bounded("addWatch", w.watch("/r", mode)).await.unwrap();
    mk(&c, "/r/a", b"").await;
    mk(&c, "/r/a/b", b"").await;
    bounded("set", c.set_data("/r/a/b", b"1", None))
        .await
        .unwrap();
    mk(&c, "/rx", b"").await; // a sibling with a common prefix is not a descendant
    bounded("del", c.delete("/r/a/b", None)).await.unwrap();
    bounded("set root", c.set_data("/r", b"1", None))
        .await
        .unwrap();
    let expected = [
        (E::NodeCreated, "/r/a"),
        (E::NodeCreated, "/r/a/b"),
        (E::NodeDataChanged, "/r/a/b"),
        (E::NodeDeleted, "/r/a/b"),
        (E::NodeDataChanged, "/r"),
    ];
    for (want, path) in expected {
        let ev = next_event(&mut watch).await;
        assert_eq!((ev.event_type, ev.path.as_str()), (want, path));
    }
}

/// checkWatches (17) and removeWatches (18) over the raw protocol: body is path + watcher type
/// (1 children, 2 data, 3 any); with no such watch the answer is NoWatcher (-121).
#[tokio::test]
async fn check_and_remove_watches_raw() {
    const NO_WATCHER: i32 = -121;
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/w", b"").await;
    let mut raw = server.raw();
    let mut body = jute_string("/w");
    body.extend_from_slice(&2i32.to_be_bytes());
    assert_eq!(raw.call(1, 17, &body).1, NO_WATCHER);
    assert_eq!(raw.call(2, 18, &body).1, NO_WATCHER);
    // getData (4) with watch=true registers a data watch.
    let mut get = jute_string("/w");
    get.push(1);
    assert_eq!(raw.call(3, 4, &get).1, 0);
    let mut child_body = jute_string("/w");
    child_body.extend_from_slice(&1i32.to_be_bytes());
    assert_eq!(raw.call(4, 17, &child_body).1, NO_WATCHER, "no child watch");
    assert_eq!(raw.call(5, 17, &body).1, 0);
    assert_eq!(raw.call(6, 18, &body).1, 0);
    assert_eq!(raw.call(7, 17, &body).1, NO_WATCHER, "removed");
    raw.ping();
}
