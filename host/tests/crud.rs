//! Black-box tests of the plain node requests (create/create2, delete, exists, getData,
//! setData, getChildren/getChildren2, sync, getAllChildrenNumber, getEphemerals, whoAmI) and
//! of the Stat fields each of them must report, as Apache ZooKeeper 3.8 does.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use common::{bounded, mk, Server};
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test]
async fn create_reports_fresh_stat_and_updates_parent() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let parent0 = mk(&c, "/p", b"").await;
    let (stat, seq) = bounded("create", c.create("/p/a", b"hello", &persistent()))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert!(stat.czxid > parent0.czxid);
    assert_eq!(stat.mzxid, stat.czxid);
    assert_eq!(stat.pzxid, stat.czxid);
    assert_eq!(stat.ctime, stat.mtime);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!(stat.ephemeral_owner, 0);
    assert_eq!(stat.data_length, 5);
    assert_eq!(stat.num_children, 0);

    let (data, got) = bounded("get", c.get_data("/p/a")).await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(got, stat);

    let (_, parent) = bounded("get parent", c.get_data("/p")).await.unwrap();
    assert_eq!(parent.cversion, parent0.cversion + 1);
    assert_eq!(parent.num_children, 1);
    assert_eq!(parent.pzxid, stat.czxid);
    // Children changes do not touch the parent's data version or mzxid.
    assert_eq!(parent.version, 0);
    assert_eq!(parent.mzxid, parent0.mzxid);
}

#[tokio::test]
async fn create_errors() {
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/x", b"").await;
    let r = bounded("dup", c.create("/x", b"", &persistent())).await;
    assert_eq!(r.unwrap_err(), zk::Error::NodeExists);
    let r = bounded("orphan", c.create("/nope/child", b"", &persistent())).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
    // Creating under the reserved /zookeeper subtree is refused only for quotas; reading it works.
    let kids = bounded("ls /zookeeper", c.list_children("/zookeeper"))
        .await
        .unwrap();
    assert!(kids.contains(&"quota".to_string()), "got {kids:?}");
}

#[tokio::test]
async fn set_data_bumps_version_and_mzxid() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let s0 = mk(&c, "/d", b"one").await;
    let s1 = bounded("set", c.set_data("/d", b"second", Some(0)))
        .await
        .unwrap();
    assert_eq!(s1.version, 1);
    assert_eq!(s1.czxid, s0.czxid);
    assert!(s1.mzxid > s0.mzxid);
    assert_eq!(s1.pzxid, s0.pzxid);
    assert_eq!(s1.data_length, 6);
    assert!(s1.mtime >= s0.mtime);
    assert_eq!(s1.ctime, s0.ctime);
    assert_eq!((s1.cversion, s1.aversion), (0, 0));

    let r = bounded("bad version", c.set_data("/d", b"x", Some(0))).await;
    assert_eq!(r.unwrap_err(), zk::Error::BadVersion);
    let s2 = bounded("any version", c.set_data("/d", b"", None))
        .await
        .unwrap();
    assert_eq!(s2.version, 2);
    assert_eq!(s2.data_length, 0);
    let r = bounded("missing", c.set_data("/missing", b"x", None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
    let (data, stat) = bounded("get", c.get_data("/d")).await.unwrap();
    assert!(data.is_empty());
    assert_eq!(stat, s2);
}

#[tokio::test]
async fn delete_rules_and_parent_stat() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let p0 = mk(&c, "/p", b"data").await;
    let child = mk(&c, "/p/c", b"").await;
    let r = bounded("not empty", c.delete("/p", None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NotEmpty);
    let r = bounded("bad version", c.delete("/p/c", Some(3))).await;
    assert_eq!(r.unwrap_err(), zk::Error::BadVersion);
    let r = bounded("missing", c.delete("/p/zz", None)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
    bounded("delete", c.delete("/p/c", Some(0))).await.unwrap();
    assert_eq!(bounded("exists", c.check_stat("/p/c")).await.unwrap(), None);

    let (_, p) = bounded("get parent", c.get_data("/p")).await.unwrap();
    assert_eq!(p.cversion, p0.cversion + 2, "one create and one delete");
    assert_eq!(p.num_children, 0);
    assert!(p.pzxid > child.czxid, "pzxid moves to the delete's zxid");
    assert_eq!(p.mzxid, p0.mzxid);
    assert_eq!(p.version, 0);
    bounded("delete parent", c.delete("/p", None))
        .await
        .unwrap();
}

#[tokio::test]
async fn exists_and_children() {
    let server = Server::start(&[]);
    let c = server.client().await;
    assert_eq!(bounded("exists", c.check_stat("/k")).await.unwrap(), None);
    let s = mk(&c, "/k", b"").await;
    assert_eq!(
        bounded("exists", c.check_stat("/k")).await.unwrap(),
        Some(s)
    );
    for name in ["b", "a", "c"] {
        mk(&c, &format!("/k/{name}"), b"").await;
    }
    let mut kids = bounded("ls", c.list_children("/k")).await.unwrap();
    kids.sort();
    assert_eq!(kids, ["a", "b", "c"]);
    let (mut kids2, stat) = bounded("ls2", c.get_children("/k")).await.unwrap();
    kids2.sort();
    assert_eq!(kids2, kids);
    assert_eq!(stat.num_children, 3);
    assert_eq!(stat.cversion, 3);
    let r = bounded("ls missing", c.list_children("/none")).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
    let r = bounded("get missing", c.get_data("/none")).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
    let mut root = bounded("ls /", c.list_children("/")).await.unwrap();
    root.sort();
    assert_eq!(root, ["k", "zookeeper"]);
}

/// ZooKeeper numbers a sequential child by the count of creates ever made under the parent (its
/// internal cversion); the cversion clients see is creates + deletes, i.e.
/// `2 * creates - numChildren`. So the next sequence is `(cversion + numChildren) / 2`.
#[tokio::test]
async fn sequential_numbers_count_creates_under_parent() {
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/s", b"").await;
    let seq_opts = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, n0) = bounded("seq", c.create("/s/n-", b"", &seq_opts))
        .await
        .unwrap();
    assert_eq!(n0.into_i64(), 0);
    mk(&c, "/s/plain", b"").await;
    let (_, n2) = bounded("seq", c.create("/s/n-", b"", &seq_opts))
        .await
        .unwrap();
    assert_eq!(n2.into_i64(), 2);
    bounded("del", c.delete("/s/plain", None)).await.unwrap();
    let (_, st) = bounded("get", c.get_data("/s")).await.unwrap();
    assert_eq!(
        (st.cversion, st.num_children),
        (4, 2),
        "3 creates + 1 delete"
    );
    let (_, n3) = bounded("seq", c.create("/s/n-", b"", &seq_opts))
        .await
        .unwrap();
    assert_eq!(n3.into_i64(), 3, "a delete does not advance the sequence");
    mk(&c, "/s/p2", b"").await;
    bounded("del", c.delete("/s/p2", None)).await.unwrap();
    bounded("del", c.delete("/s/n-0000000000", None))
        .await
        .unwrap();
    let (_, st) = bounded("get", c.get_data("/s")).await.unwrap();
    assert_eq!(
        (st.cversion, st.num_children),
        (8, 2),
        "5 creates + 3 deletes"
    );
    let (_, n5) = bounded("seq", c.create("/s/n-", b"", &seq_opts))
        .await
        .unwrap();
    assert_eq!(
        n5.into_i64(),
        i64::from((st.cversion + st.num_children) / 2)
    );
    let mut kids = bounded("ls", c.list_children("/s")).await.unwrap();
    kids.sort();
    assert_eq!(kids, ["n-0000000002", "n-0000000003", "n-0000000005"]);
    // A sequential name may be just the parent path plus '/': the child is a bare number.
    let (_, n6) = bounded("bare", c.create("/s/", b"", &seq_opts))
        .await
        .unwrap();
    assert_eq!(n6.into_i64(), 6);
    assert!(bounded("exists", c.check_stat("/s/0000000006"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn ephemeral_nodes_owner_children_and_listing() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let other = server.client().await;
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let eseq = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    mk(&c, "/e", b"").await;
    let (s, _) = bounded("eph", c.create("/e/one", b"x", &eph))
        .await
        .unwrap();
    assert_eq!(s.ephemeral_owner, c.session_id().0);
    let (_, n) = bounded("eseq", c.create("/e/q-", b"", &eseq))
        .await
        .unwrap();
    assert_eq!(n.into_i64(), 1);
    bounded("other eph", other.create("/o", b"", &eph))
        .await
        .unwrap();

    let r = bounded("child of eph", c.create("/e/one/kid", b"", &persistent())).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoChildrenForEphemerals);
    let r = bounded("eph child of eph", c.create("/e/one/kid", b"", &eph)).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoChildrenForEphemerals);

    let mut mine = bounded("getEphemerals", c.list_ephemerals("/"))
        .await
        .unwrap();
    mine.sort();
    assert_eq!(mine, ["/e/one", "/e/q-0000000001"]);
    let under = bounded("getEphemerals /e/q", c.list_ephemerals("/e/q"))
        .await
        .unwrap();
    assert_eq!(
        under,
        ["/e/q-0000000001"],
        "prefix match, not only whole path segments"
    );
    let theirs = bounded("getEphemerals other", other.list_ephemerals("/"))
        .await
        .unwrap();
    assert_eq!(theirs, ["/o"]);

    // Closing the session removes its ephemerals at once.
    drop(c);
    common::poll_until("ephemerals gone after close", 10, || {
        let other = other.clone();
        async move {
            let n = other.check_stat("/e/one").await.unwrap();
            let q = other.check_stat("/e/q-0000000001").await.unwrap();
            (n.is_none() && q.is_none()).then_some(())
        }
    })
    .await;
    assert!(bounded("own eph", other.check_stat("/o"))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn sync_and_descendant_count() {
    let server = Server::start(&[]);
    let c = server.client().await;
    bounded("sync /", c.sync("/")).await.unwrap();
    mk(&c, "/t", b"").await;
    mk(&c, "/t/a", b"").await;
    mk(&c, "/t/a/b", b"").await;
    mk(&c, "/t/c", b"").await;
    bounded("sync /t", c.sync("/t")).await.unwrap();
    assert_eq!(
        bounded("count", c.count_descendants_number("/t"))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        bounded("count leaf", c.count_descendants_number("/t/c"))
            .await
            .unwrap(),
        0
    );
    let r = bounded("count missing", c.count_descendants_number("/none")).await;
    assert_eq!(r.unwrap_err(), zk::Error::NoNode);
}

#[tokio::test]
async fn who_am_i_lists_ip_then_digest() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let users = bounded("whoami", c.list_auth_users()).await.unwrap();
    assert_eq!(users, [zk::AuthUser::new("ip", "127.0.0.1")]);
    bounded("auth", c.auth("digest", b"alice:secret"))
        .await
        .unwrap();
    let mut users = bounded("whoami", c.list_auth_users()).await.unwrap();
    users.sort_by(|a, b| a.scheme().cmp(b.scheme()));
    assert_eq!(
        users,
        [
            zk::AuthUser::new("digest", "alice"),
            zk::AuthUser::new("ip", "127.0.0.1")
        ]
    );
}
