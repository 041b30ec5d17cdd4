//! Our own async client (`zkw::client`) against a real server process: zkw by default, Apache
//! ZooKeeper 3.8 with `ZKW_TARGET=zookeeper` (parity). Every typed helper, pipelining, pings
//! keeping an idle session alive, notifications, server lists and connection loss.

#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::time::Duration;

use common::{bounded, Server, TICK_MS};
use zkw::client::{create_request, get_data_request, set_data_request, Client, ClientError};
use zkw::proto::{
    keeper_state, Acl, CheckVersionRequest, CreateMode, CreateRequest, DeleteRequest, ErrorCode,
    EventType, MultiOp, MultiResult, Response, SetDataRequest,
};

/// Within ZooKeeper's 2..20 tick bounds for the harness's tick.
fn session_timeout() -> Duration {
    Duration::from_millis(20 * TICK_MS)
}

async fn connect(server: &Server) -> Client {
    bounded(
        "connect",
        Client::connect(&server.addr(), session_timeout()),
    )
    .await
    .unwrap()
}

fn open() -> Vec<Acl> {
    Acl::open_unsafe()
}

#[tokio::test]
async fn crud_helpers() {
    let server = Server::start(&[]);
    let client = connect(&server).await;
    assert!(client.session_id() != 0);
    assert_eq!(client.session_timeout(), session_timeout());

    let path = client
        .create("/a", b"one", &open(), CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(path, "/a");
    let err = client
        .create("/a", b"", &open(), CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NodeExists));
    let seq = client
        .create("/a/s-", b"", &open(), CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert_eq!(seq, "/a/s-0000000000");

    let (data, stat) = client.get_data("/a", false).await.unwrap();
    assert_eq!(data, b"one");
    assert_eq!(stat.version, 0);
    assert_eq!(stat.num_children, 1);

    let stat = client.set_data("/a", b"two", 0).await.unwrap();
    assert_eq!(stat.version, 1);
    let err = client.set_data("/a", b"x", 0).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::BadVersion));
    assert_eq!(client.get_data("/a", false).await.unwrap().0, b"two");

    assert_eq!(
        client.exists("/a", false).await.unwrap().unwrap().version,
        1
    );
    assert_eq!(client.exists("/nope", false).await.unwrap(), None);
    let err = client.get_data("/nope", false).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NoNode));

    assert_eq!(
        client.get_children("/a", false).await.unwrap(),
        vec!["s-0000000000".to_owned()]
    );
    let err = client.delete("/a", -1).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NotEmpty));
    client.delete("/a/s-0000000000", -1).await.unwrap();
    client.delete("/a", 1).await.unwrap();
    assert_eq!(client.exists("/a", false).await.unwrap(), None);

    assert_eq!(client.sync("/").await.unwrap(), "/");
    bounded("close", client.close()).await.unwrap();
}

#[tokio::test]
async fn multi_commits_all_or_reports_the_failure() {
    let server = Server::start(&[]);
    let client = connect(&server).await;
    let create = |path: &str| MultiOp::Create {
        op: zkw::proto::op::CREATE,
        request: CreateRequest {
            path: path.to_owned(),
            data: Some(b"m".to_vec()),
            acl: open(),
            flags: CreateMode::Persistent as i32,
            ttl_ms: None,
        },
    };
    let results = client
        .multi(vec![
            create("/m"),
            MultiOp::SetData(SetDataRequest {
                path: "/m".into(),
                data: Some(b"n".to_vec()),
                version: 0,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/m".into(),
                version: 1,
            }),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0], MultiResult::Create { path: "/m".into() });
    assert!(matches!(results[1], MultiResult::SetData { stat } if stat.version == 1));
    assert_eq!(results[2], MultiResult::Check);

    let failing = vec![
        create("/m2"),
        MultiOp::Delete(DeleteRequest {
            path: "/nope".into(),
            version: -1,
        }),
    ];
    let err = client.multi(failing.clone()).await.unwrap_err();
    assert_eq!(err.server_code(), Some(ErrorCode::NoNode));
    let (code, results) = client.multi_results(failing).await.unwrap();
    assert_eq!(code, ErrorCode::NoNode.code());
    assert_eq!(results.len(), 2);
    assert_eq!(client.exists("/m2", false).await.unwrap(), None);
    assert_eq!(client.get_data("/m", false).await.unwrap().0, b"n");
}

/// Many requests submitted back to back are answered in order, and a read submitted after a
/// write of the same session sees it (ZooKeeper's FIFO client order).
#[tokio::test]
async fn pipelined_requests_keep_session_order() {
    let server = Server::start(&[]);
    let client = connect(&server).await;
    client
        .create("/p", b"", &open(), CreateMode::Persistent)
        .await
        .unwrap();
    let count = 500;
    let mut replies = Vec::new();
    for i in 0..count {
        let path = format!("/p/n{i}");
        replies.push(client.submit(create_request(&path, b"0")));
        replies.push(client.submit(set_data_request(&path, format!("{i}").as_bytes(), 0)));
        replies.push(client.submit(get_data_request(&path, false)));
    }
    let results = bounded("pipelined replies", futures_join(replies)).await;
    for (i, chunk) in results.chunks(3).enumerate() {
        assert_eq!(
            chunk[0].as_ref().unwrap(),
            &Response::Create {
                path: format!("/p/n{i}")
            }
        );
        let Response::GetData { data, stat } = chunk[2].as_ref().unwrap() else {
            panic!("not a GetData: {:?}", chunk[2]);
        };
        assert_eq!(data.as_deref(), Some(format!("{i}").as_bytes()));
        assert_eq!(stat.version, 1);
    }
    assert_eq!(client.get_children("/p", false).await.unwrap().len(), count);
}

async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::with_capacity(futures.len());
    for future in futures {
        out.push(future.await);
    }
    out
}

/// Pings an idle client sends within two session timeouts (it pings every third of one).
const IDLE_PINGS: u64 = 6;
/// Bound on those pings arriving, in seconds: far more than two session timeouts.
const IDLE_PINGS_SECS_MAX: u64 = 60;

/// The requests the server has received on the connection of `session_id` (`cons`'s recved).
fn received(server: &Server, session_id: i64) -> Option<u64> {
    let needle = format!("sid=0x{session_id:x},");
    let cons = server.four_letter("cons").ok()?;
    let line = cons.lines().find(|line| line.contains(&needle))?;
    let (_, rest) = line.split_once("recved=")?;
    rest.split(',').next()?.parse().ok()
}

/// Idle for twice the session timeout, counted in the pings the server received (not slept, so
/// a loaded machine cannot cut it short): they keep the session and its ephemeral alive.
#[tokio::test]
async fn pings_keep_an_idle_session_alive() {
    let server = Server::start(&[]);
    let client = connect(&server).await;
    client
        .create("/e", b"", &open(), CreateMode::Ephemeral)
        .await
        .unwrap();
    let before = received(&server, client.session_id()).expect("the client's connection");
    common::poll_until("the idle client's pings", IDLE_PINGS_SECS_MAX, || async {
        let now = received(&server, client.session_id())?;
        (now >= before + IDLE_PINGS).then_some(())
    })
    .await;
    let other = connect(&server).await;
    let stat = other.exists("/e", false).await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, client.session_id());
    assert!(client.closed_reason().is_none());
    client.get_data("/e", false).await.unwrap();
}

#[tokio::test]
async fn notifications_reach_the_event_channel() {
    let server = Server::start(&[]);
    let mut client = connect(&server).await;
    let mut events = client.take_events().unwrap();
    assert!(client.take_events().is_none());
    assert_eq!(client.exists("/w", true).await.unwrap(), None);
    client
        .create("/w", b"", &open(), CreateMode::Persistent)
        .await
        .unwrap();
    client.get_data("/w", true).await.unwrap();
    client.set_data("/w", b"x", -1).await.unwrap();
    let first = bounded("created event", events.recv()).await.unwrap();
    assert_eq!(first.event_type, EventType::NodeCreated as i32);
    assert_eq!(first.state, keeper_state::SYNC_CONNECTED);
    assert_eq!(first.path, "/w");
    let second = bounded("changed event", events.recv()).await.unwrap();
    assert_eq!(second.event_type, EventType::NodeDataChanged as i32);
}

#[tokio::test]
async fn server_list_skips_a_dead_entry() {
    let server = Server::start(&[]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let list = format!("{dead_addr},{}", server.addr());
    let client = bounded("connect", Client::connect(&list, session_timeout()))
        .await
        .unwrap();
    assert_eq!(client.server(), server.addr());
    client.sync("/").await.unwrap();
    let err = Client::connect(&dead_addr.to_string(), session_timeout())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

/// Killing the server fails the pending and later requests with ConnectionLoss, in bounded time.
#[tokio::test]
async fn a_dead_server_fails_requests_with_connection_loss() {
    let server = Server::start(&[]);
    let client = connect(&server).await;
    client.sync("/").await.unwrap();
    drop(server);
    let err = bounded("request after kill", client.get_data("/", false))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::ConnectionLoss(_)), "{err}");
    assert!(client.closed_reason().is_some());
    let err = bounded("second request", client.sync("/"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionLoss(_) | ClientError::Closed),
        "{err}"
    );
}
