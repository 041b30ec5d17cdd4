//! Black-box tests of multi (atomic writes with check), multiRead, and the per-op results of a
//! failed multi on the raw protocol.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use common::{bounded, jute_string, mk, Server};
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

#[tokio::test]
async fn multi_success_returns_one_result_per_op() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let base = mk(&c, "/m", b"").await;
    mk(&c, "/m/old", b"").await;
    let mut w = c.new_multi_writer();
    w.add_check_version("/m", 0).unwrap();
    w.add_create("/m/new", b"n", &persistent()).unwrap();
    w.add_set_data("/m", b"data", Some(0)).unwrap();
    w.add_delete("/m/old", Some(0)).unwrap();
    let results = bounded("multi", w.commit()).await.unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], zk::MultiWriteResult::Check);
    let zk::MultiWriteResult::Create {
        path,
        stat: created,
    } = &results[1]
    else {
        panic!("expected create, got {:?}", results[1]);
    };
    assert_eq!(path, "/m/new");
    let zk::MultiWriteResult::SetData { stat: set } = &results[2] else {
        panic!("expected setData, got {:?}", results[2]);
    };
    assert_eq!(results[3], zk::MultiWriteResult::Delete);
    // ZooKeeper 3.8 answers a create inside multi without its Stat (ZOOKEEPER-4026), so read it.
    if !created.is_invalid() {
        assert_eq!(created.czxid, set.mzxid);
    }
    let (_, created) = bounded("get new", c.get_data("/m/new")).await.unwrap();
    // All ops of one multi share one zxid.
    assert_eq!(created.czxid, set.mzxid);
    assert_eq!(set.version, 1);
    let (_, stat) = bounded("get", c.get_data("/m")).await.unwrap();
    assert_eq!(stat.pzxid, created.czxid);
    assert_eq!(stat.cversion, base.cversion + 3);
    let mut kids = bounded("ls", c.list_children("/m")).await.unwrap();
    kids.sort();
    assert_eq!(kids, ["new"]);
}

#[tokio::test]
async fn multi_failure_applies_nothing() {
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/f", b"").await;
    let mut w = c.new_multi_writer();
    w.add_create("/f/a", b"", &persistent()).unwrap();
    w.add_check_version("/f", 7).unwrap();
    w.add_create("/f/b", b"", &persistent()).unwrap();
    let err = bounded("multi", w.commit()).await.unwrap_err();
    assert_eq!(
        err,
        zk::MultiWriteError::OperationFailed {
            index: 1,
            source: zk::Error::BadVersion
        }
    );
    assert!(bounded("ls", c.list_children("/f"))
        .await
        .unwrap()
        .is_empty());

    let mut w = c.new_multi_writer();
    w.add_set_data("/f", b"x", None).unwrap();
    w.add_delete("/nope", None).unwrap();
    let err = bounded("multi", w.commit()).await.unwrap_err();
    assert_eq!(
        err,
        zk::MultiWriteError::OperationFailed {
            index: 1,
            source: zk::Error::NoNode
        }
    );
    let (data, stat) = bounded("get", c.get_data("/f")).await.unwrap();
    assert!(data.is_empty());
    assert_eq!(stat.version, 0);

    // Ops see the effects of earlier ops in the same multi.
    let mut w = c.new_multi_writer();
    w.add_create("/f/x", b"", &persistent()).unwrap();
    w.add_create("/f/x/y", b"", &persistent()).unwrap();
    w.add_delete("/f/x/y", None).unwrap();
    w.add_check_version("/f/x", 0).unwrap();
    bounded("multi", w.commit()).await.unwrap();
    assert_eq!(bounded("ls", c.list_children("/f")).await.unwrap(), ["x"]);
}

#[tokio::test]
async fn check_writer_guards_writes() {
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/g", b"").await;
    let mut w = c.new_check_writer("/g", Some(0)).unwrap();
    w.add_set_data("/g", b"1", None).unwrap();
    bounded("check ok", w.commit()).await.unwrap();
    let mut w = c.new_check_writer("/g", Some(0)).unwrap();
    w.add_set_data("/g", b"2", None).unwrap();
    let err = bounded("check stale", w.commit()).await.unwrap_err();
    assert_eq!(
        err,
        zk::CheckWriteError::CheckFailed {
            source: zk::Error::BadVersion
        }
    );
    let mut w = c.new_check_writer("/absent", None).unwrap();
    w.add_set_data("/g", b"3", None).unwrap();
    let err = bounded("check missing", w.commit()).await.unwrap_err();
    assert_eq!(
        err,
        zk::CheckWriteError::CheckFailed {
            source: zk::Error::NoNode
        }
    );
    assert_eq!(bounded("get", c.get_data("/g")).await.unwrap().0, b"1");
}

#[tokio::test]
async fn multi_read_reports_per_op_errors() {
    let server = Server::start(&[]);
    let c = server.client().await;
    let s = mk(&c, "/r", b"rd").await;
    mk(&c, "/r/k", b"").await;
    let mut r = c.new_multi_reader();
    r.add_get_data("/r/k").unwrap();
    r.add_get_children("/r").unwrap();
    r.add_get_data("/missing").unwrap();
    r.add_get_children("/missing").unwrap();
    let results = bounded("multiRead", r.commit()).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(&results[0], zk::MultiReadResult::Data { data, .. } if data.is_empty()));
    assert!(
        matches!(&results[1], zk::MultiReadResult::Children { children } if children == &["k"])
    );
    assert!(matches!(
        &results[2],
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode
        }
    ));
    assert!(matches!(
        &results[3],
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode
        }
    ));
    let mut r = c.new_multi_reader();
    r.add_get_data("/r").unwrap();
    let results = bounded("multiRead", r.commit()).await.unwrap();
    let zk::MultiReadResult::Data { data, stat } = &results[0] else {
        panic!("{results:?}")
    };
    assert_eq!((data.as_slice(), stat.czxid), (&b"rd"[..], s.czxid));
}

/// A multi (op 14) whose second op fails: every op gets an error result: 0 for those before,
/// the failure's code, then RuntimeInconsistency (-2) for those after.
#[tokio::test]
async fn failed_multi_per_op_results_raw() {
    let server = Server::start(&[]);
    let c = server.client().await;
    mk(&c, "/q", b"").await;
    let mut body = Vec::new();
    let header = |b: &mut Vec<u8>, op: i32, done: bool| {
        b.extend_from_slice(&op.to_be_bytes());
        b.push(u8::from(done));
        b.extend_from_slice(&(-1i32).to_be_bytes());
    };
    let create = |b: &mut Vec<u8>, path: &str| {
        b.extend_from_slice(&jute_string(path));
        b.extend_from_slice(&0i32.to_be_bytes()); // empty data buffer
        b.extend_from_slice(&1i32.to_be_bytes()); // one ACL
        b.extend_from_slice(&31i32.to_be_bytes());
        b.extend_from_slice(&jute_string("world"));
        b.extend_from_slice(&jute_string("anyone"));
        b.extend_from_slice(&0i32.to_be_bytes()); // persistent
    };
    header(&mut body, 1, false);
    create(&mut body, "/q/a");
    header(&mut body, 2, false); // delete
    body.extend_from_slice(&jute_string("/q/none"));
    body.extend_from_slice(&(-1i32).to_be_bytes());
    header(&mut body, 1, false);
    create(&mut body, "/q/b");
    header(&mut body, -1, true);

    let mut raw = server.raw();
    let (_, err, reply) = raw.call(1, 14, &body);
    assert_eq!(err, 0, "the multi itself is answered");
    let mut codes = Vec::new();
    let mut at = 0;
    loop {
        let op = i32::from_be_bytes(reply[at..at + 4].try_into().unwrap());
        let done = reply[at + 4] != 0;
        at += 9;
        if done {
            break;
        }
        assert_eq!(op, -1, "every result of a failed multi is an error result");
        codes.push(i32::from_be_bytes(reply[at..at + 4].try_into().unwrap()));
        at += 4;
    }
    assert_eq!(codes, [0, -101, -2]);
    assert!(bounded("ls", c.list_children("/q"))
        .await
        .unwrap()
        .is_empty());
}
