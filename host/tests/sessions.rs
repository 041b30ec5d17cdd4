//! Black-box tests of sessions: timeout negotiation, expiry (ephemerals removed, watchers
//! notified), resumption of a live session, refusal of an expired one, and watch re-registration
//! (SetWatches) after a reconnect, including events that happened while disconnected.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::time::Duration;

use common::{bounded, event, mk, Proxy, Server, TICK_MS};
use zk::EventType as E;
use zookeeper_client as zk;

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

#[tokio::test]
async fn session_timeout_is_clamped_to_tick_bounds() {
    let server = Server::start(&[]);
    // Too short for the client library's own connect deadline: ask by hand.
    let (short, negotiated) = common::RawConn::connect_with_timeout(server.port, 10);
    assert_eq!(negotiated as u64, 2 * TICK_MS);
    let long = server.client_with_timeout(Duration::from_secs(600)).await;
    assert_eq!(long.session_timeout(), Duration::from_millis(20 * TICK_MS));
    let mid = server
        .client_with_timeout(Duration::from_millis(1000))
        .await;
    assert_eq!(mid.session_timeout(), Duration::from_millis(1000));
    assert_ne!(short.session_id, long.session_id().0);

    let custom = Server::start(&[("minSessionTimeout", "1000"), ("maxSessionTimeout", "3000")]);
    let (_, negotiated) = common::RawConn::connect_with_timeout(custom.port, 500);
    assert_eq!(negotiated, 1000);
    let c = custom
        .client_with_timeout(Duration::from_millis(9000))
        .await;
    assert_eq!(c.session_timeout(), Duration::from_millis(3000));
}

#[tokio::test]
async fn expired_session_loses_ephemerals_and_watchers_see_it() {
    let server = Server::start(&[]);
    let addr = server.addr();
    let doomed = bounded(
        "connect",
        server
            .connector()
            .with_session_timeout(Duration::from_millis(1000))
            .with_detached()
            .connect(&addr),
    )
    .await
    .unwrap();
    let observer = server.client().await;
    mk(&observer, "/dir", b"").await;
    bounded("eph", doomed.create("/dir/eph", b"", &ephemeral()))
        .await
        .unwrap();
    let (stat, watch) = bounded("exists+watch", observer.check_and_watch_stat("/dir/eph"))
        .await
        .unwrap();
    assert_eq!(stat.unwrap().ephemeral_owner, doomed.session_id().0);
    let (_, child_watch) = bounded("ls+watch", observer.list_and_watch_children("/dir"))
        .await
        .unwrap();
    let session = doomed.session().clone();
    drop(doomed); // detached: the connection goes away without closing the session

    let ev = event(watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeDeleted, "/dir/eph")
    );
    let ev = event(child_watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeChildrenChanged, "/dir")
    );
    assert!(bounded("ls", observer.list_children("/dir"))
        .await
        .unwrap()
        .is_empty());

    let resumed = server.connector().with_session(session).connect(&addr);
    let r = bounded("resume expired", resumed).await;
    assert_eq!(r.unwrap_err(), zk::Error::SessionExpired);
}

#[tokio::test]
async fn live_session_can_be_resumed_on_a_new_connection() {
    let server = Server::start(&[]);
    let addr = server.addr();
    let first = bounded("connect", server.connector().with_detached().connect(&addr))
        .await
        .unwrap();
    bounded("eph", first.create("/mine", b"", &ephemeral()))
        .await
        .unwrap();
    let session = first.session().clone();
    let id = first.session_id();
    drop(first);

    let second = bounded(
        "resume",
        server.connector().with_session(session).connect(&addr),
    )
    .await
    .unwrap();
    assert_eq!(second.session_id(), id);
    let stat = bounded("exists", second.check_stat("/mine"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stat.ephemeral_owner, id.0);
    let eph = bounded("getEphemerals", second.list_ephemerals("/"))
        .await
        .unwrap();
    assert_eq!(eph, ["/mine"]);
    // Closing the resumed session removes the ephemeral at once.
    drop(second);
    let observer = server.client().await;
    common::poll_until("ephemeral gone", 10, || {
        let observer = observer.clone();
        async move {
            observer
                .check_stat("/mine")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn watches_survive_reconnect_and_report_missed_changes() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(server.port).await;
    let direct = server.client().await;
    mk(&direct, "/w", b"").await;
    mk(&direct, "/p", b"").await;
    let via = bounded(
        "connect via proxy",
        server.connector().connect(&proxy.addr()),
    )
    .await
    .unwrap();
    let id = via.session_id();
    let mut states = via.state_watcher();
    let (_, _, data_watch) = bounded("get+watch", via.get_and_watch_data("/w"))
        .await
        .unwrap();
    let (_, child_watch) = bounded("ls+watch", via.list_and_watch_children("/p"))
        .await
        .unwrap();
    let (_, exist_watch) = bounded("exists+watch", via.check_and_watch_stat("/later"))
        .await
        .unwrap();
    let (_, _, quiet_watch) = bounded("get+watch", via.get_and_watch_data("/p"))
        .await
        .unwrap();

    proxy.pause();
    proxy.cut();
    assert_eq!(
        bounded("disconnect", states.changed()).await,
        zk::SessionState::Disconnected
    );
    bounded("set", direct.set_data("/w", b"new", None))
        .await
        .unwrap();
    mk(&direct, "/p/kid", b"").await;
    mk(&direct, "/later", b"").await;
    proxy.resume();
    assert_eq!(
        bounded("reconnect", states.changed()).await,
        zk::SessionState::SyncConnected
    );
    assert_eq!(via.session_id(), id);

    let ev = event(data_watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeDataChanged, "/w")
    );
    let ev = event(child_watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeChildrenChanged, "/p")
    );
    let ev = event(exist_watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeCreated, "/later")
    );
    // The unchanged node's watch was re-registered, not fired: it fires on the next change.
    bounded("set p", direct.set_data("/p", b"x", None))
        .await
        .unwrap();
    let ev = event(quiet_watch).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (E::NodeDataChanged, "/p")
    );
}
