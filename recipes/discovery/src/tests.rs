//! Native tests of discovery against the SDK's mock host.

use super::*;
use serde_json::Value;
use zkw_guest::testing::MockTree;
use zkw_guest::Op;

const ROOT: &str = "/services";

fn tree() -> MockTree {
    let mut tree = MockTree::new("discovery", ROOT);
    for path in ["/services/web", "/services/web/instances"] {
        tree.write(&RECIPE, &MockTree::create_op(path, b""))
            .unwrap();
    }
    tree
}

fn join(tree: &mut MockTree, session: i64, id: &str, port: u16) {
    tree.set_session(session);
    let op = Op::Create {
        path: format!("/services/web/instances/{id}"),
        data: format!(r#"{{"address": "10.0.0.{port}", "port": {port}}}"#).into_bytes(),
        flags: CreateMode::Ephemeral as i32,
    };
    let runs = tree.write(&RECIPE, &op).unwrap();
    assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
}

fn ids(tree: &MockTree) -> Vec<String> {
    let data = tree.data("/services/web/endpoints").unwrap();
    let list: Vec<Value> = serde_json::from_slice(&data).unwrap();
    list.iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn paths_are_classified() {
    assert_eq!(
        classify("/s", "/s/web/instances/a"),
        Target::Instance("web", "a")
    );
    assert_eq!(classify("/s", "/s/web/instances"), Target::Instances("web"));
    assert_eq!(
        classify("/s/", "/s/web/endpoints"),
        Target::Endpoints("web")
    );
    assert_eq!(classify("/s", "/s/web"), Target::Other);
    assert_eq!(classify("/s", "/sx/web/endpoints"), Target::Other);
    assert_eq!(classify("/s", "/s/web/instances/a/b"), Target::Other);
}

#[test]
fn endpoints_follow_joins_changes_and_leaves_in_the_same_txn() {
    let mut tree = tree();
    join(&mut tree, 0x11, "b", 2);
    join(&mut tree, 0x12, "a", 1);
    assert_eq!(ids(&tree), vec!["a", "b"]);
    let endpoints = tree.get("/services/web/endpoints").unwrap();
    let instance = tree.get("/services/web/instances/a").unwrap();
    assert_eq!(endpoints.stat.mzxid, instance.stat.czxid);
    let text = tree.text("/services/web/endpoints").unwrap();
    assert!(
        text.contains(r#"{"id":"a","address":"10.0.0.1","port":1}"#),
        "{text}"
    );
    let change = Op::SetData {
        path: "/services/web/instances/a".into(),
        data: br#"{"address": "h", "port": 9, "metadata": {"v": 2}}"#.to_vec(),
        version: -1,
    };
    tree.write(&RECIPE, &change).unwrap();
    assert!(tree
        .text("/services/web/endpoints")
        .unwrap()
        .contains(r#""metadata":{"v":2}"#));
    let leave = Op::Delete {
        path: "/services/web/instances/b".into(),
        version: -1,
    };
    tree.write(&RECIPE, &leave).unwrap();
    assert_eq!(ids(&tree), vec!["a"]);
}

#[test]
fn a_session_close_updates_endpoints_with_the_deletion() {
    let mut tree = tree();
    join(&mut tree, 0x11, "a", 1);
    join(&mut tree, 0x12, "b", 2);
    let run = tree.close_session(&RECIPE, 0x11);
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(ids(&tree), vec!["b"]);
    let endpoints = tree.get("/services/web/endpoints").unwrap();
    let dir = tree.get("/services/web/instances").unwrap();
    assert_eq!(
        endpoints.stat.mzxid, dir.stat.pzxid,
        "same zxid as the deletion"
    );
}

#[test]
fn bad_payloads_and_forged_endpoints_are_refused() {
    let mut tree = tree();
    let bad = MockTree::create_op("/services/web/instances/x", br#"{"address": 1}"#);
    assert_eq!(tree.write(&RECIPE, &bad), Err(Error::BadArguments));
    let run = tree.validate(&RECIPE, &bad).unwrap();
    assert!(run.result_text().contains("needs a string \"address\""));
    let forged = MockTree::create_op("/services/web/endpoints", b"[]");
    assert_eq!(tree.write(&RECIPE, &forged), Err(Error::BadArguments));
}

#[test]
fn removing_the_instances_node_removes_endpoints() {
    let mut tree = tree();
    join(&mut tree, 0x11, "a", 1);
    tree.close_session(&RECIPE, 0x11);
    assert_eq!(ids(&tree), Vec::<String>::new());
    let rm = Op::Delete {
        path: "/services/web/instances".into(),
        version: -1,
    };
    tree.write(&RECIPE, &rm).unwrap();
    assert!(tree.get("/services/web/endpoints").is_none());
    let rm = Op::Delete {
        path: "/services/web".into(),
        version: -1,
    };
    tree.write(&RECIPE, &rm).unwrap();
}

#[test]
fn a_missing_or_foreign_document_is_rebuilt() {
    let mut tree = tree();
    // Instances from before the install: one valid, one not (no validator ran).
    let old = MockTree::create_op(
        "/services/web/instances/old",
        br#"{"address": "o", "port": 7}"#,
    );
    tree.apply(&old).unwrap();
    let bad = MockTree::create_op("/services/web/instances/bad", b"junk");
    tree.apply(&bad).unwrap();
    join(&mut tree, 0x11, "new", 1);
    assert_eq!(ids(&tree), vec!["new", "old"]);
    tree.apply(&Op::SetData {
        path: "/services/web/endpoints".into(),
        data: b"[]".to_vec(),
        version: -1,
    })
    .unwrap();
    let run = tree.on_event(
        &RECIPE,
        EventKind::ChildrenChanged,
        "/services/web/instances",
    );
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(ids(&tree), vec!["new", "old"]);
}

#[test]
fn a_join_reads_one_instance() {
    let mut tree = tree();
    for (n, id) in ["a", "b", "c"].iter().enumerate() {
        join(&mut tree, 0x20 + n as i64, id, n as u16);
    }
    // Corrupt b's payload behind the recipe's back: a splice of c must not notice.
    tree.apply(&Op::SetData {
        path: "/services/web/instances/b".into(),
        data: b"junk".to_vec(),
        version: -1,
    })
    .unwrap();
    let run = tree.on_event(&RECIPE, EventKind::DataChanged, "/services/web/instances/c");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(ids(&tree), vec!["a", "b", "c"]);
}
