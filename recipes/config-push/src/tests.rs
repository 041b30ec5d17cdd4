//! Native tests of config-push against the SDK's mock host.

use super::*;
use zkw_guest::testing::MockTree;
use zkw_guest::Op;

const ROOT: &str = "/config";

fn tree() -> MockTree {
    MockTree::new("config-push", ROOT)
}

fn set(path: &str, data: &[u8]) -> Op {
    Op::SetData {
        path: path.into(),
        data: data.to_vec(),
        version: -1,
    }
}

fn push(tree: &mut MockTree, app: &str, data: &[u8]) -> Result<(), Error> {
    let path = format!("{ROOT}/{app}");
    let op = if tree.get(&path).is_some() {
        set(&path, data)
    } else {
        MockTree::create_op(&path, data)
    };
    tree.write(&RECIPE, &op).map(|runs| {
        assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
    })
}

fn versions_of(tree: &MockTree, app: &str) -> Vec<String> {
    tree.children(&format!("{ROOT}/{app}/versions"))
        .unwrap_or_default()
}

#[test]
fn paths_are_classified() {
    assert_eq!(classify("/config", "/config/web"), Target::App("web"));
    assert_eq!(classify("/config/", "/config/web"), Target::App("web"));
    assert_eq!(
        classify("/config", "/config/web/schema"),
        Target::Schema("web")
    );
    assert_eq!(
        classify("/config", "/config/web/rollback"),
        Target::Rollback("web")
    );
    assert_eq!(
        classify("/config", "/config/web/live"),
        Target::Published("web")
    );
    assert_eq!(
        classify("/config", "/config/web/versions/v-0000000001"),
        Target::Published("web")
    );
    assert_eq!(classify("/config", "/config"), Target::Other);
    assert_eq!(classify("/config", "/configs/web"), Target::Other);
    assert_eq!(classify("/config", "/config/web/other"), Target::Other);
    assert_eq!(parse_version("v-0000000007"), Some(7));
    assert_eq!(parse_version(" v7\n"), Some(7));
    assert_eq!(parse_version("7"), Some(7));
    assert_eq!(parse_version("seven"), None);
}

#[test]
fn an_accepted_config_is_versioned_and_live_in_the_same_txn() {
    let mut tree = tree();
    push(&mut tree, "web", b"{\"port\": 80}").unwrap();
    assert_eq!(tree.data("/config/web/live").unwrap(), b"{\"port\": 80}");
    assert_eq!(versions_of(&tree, "web"), vec!["v-0000000001"]);
    let live = tree.get("/config/web/live").unwrap();
    let app = tree.get("/config/web").unwrap();
    assert_eq!(
        live.stat.mzxid, app.stat.mzxid,
        "published in the write's txn"
    );
    push(&mut tree, "web", b"port = 81\n").unwrap();
    assert_eq!(tree.text("/config/web/live").unwrap(), "port = 81\n");
    assert_eq!(
        versions_of(&tree, "web"),
        vec!["v-0000000001", "v-0000000002"]
    );
    // The same bytes again publish nothing new.
    push(&mut tree, "web", b"port = 81\n").unwrap();
    assert_eq!(versions_of(&tree, "web").len(), 2);
}

#[test]
fn an_invalid_config_is_rejected_and_live_stays() {
    let mut tree = tree();
    push(&mut tree, "web", b"{\"port\": 80}").unwrap();
    assert_eq!(
        push(&mut tree, "web", b"{\"port\": "),
        Err(Error::BadArguments)
    );
    assert_eq!(
        push(&mut tree, "web", b"port = = 1"),
        Err(Error::BadArguments)
    );
    assert_eq!(push(&mut tree, "web", b""), Err(Error::BadArguments));
    let run = tree
        .validate(&RECIPE, &set("/config/web", b"{oops"))
        .unwrap();
    assert!(run.result_text().starts_with("invalid JSON"), "{run:?}");
    assert_eq!(tree.data("/config/web/live").unwrap(), b"{\"port\": 80}");
    assert_eq!(versions_of(&tree, "web").len(), 1);
}

#[test]
fn the_schema_is_enforced() {
    let mut tree = tree();
    tree.write(&RECIPE, &MockTree::create_op("/config/db", b""))
        .unwrap();
    assert!(
        tree.get("/config/db/live").is_none(),
        "empty: not published"
    );
    let bad_schema = MockTree::create_op("/config/db/schema", b"{\"required\": 1}");
    assert_eq!(tree.write(&RECIPE, &bad_schema), Err(Error::BadArguments));
    let schema = br#"{"required": {"host": "string", "pool.size": "integer"}}"#;
    tree.write(&RECIPE, &MockTree::create_op("/config/db/schema", schema))
        .unwrap();
    let run = tree
        .validate(&RECIPE, &set("/config/db", b"host = \"a\"\n"))
        .unwrap();
    assert_eq!(run.code, Error::BadArguments.code());
    assert!(run
        .result_text()
        .contains("missing required key \"pool.size\""));
    push(&mut tree, "db", b"host = \"a\"\n[pool]\nsize = 4\n").unwrap();
    assert!(tree.get("/config/db/live").is_some());
}

#[test]
fn clients_cannot_write_the_published_nodes() {
    let mut tree = tree();
    push(&mut tree, "web", b"a = 1").unwrap();
    assert_eq!(
        tree.write(&RECIPE, &set("/config/web/live", b"a = 2")),
        Err(Error::BadArguments)
    );
    let forged = MockTree::create_op("/config/web/versions/v-0000000009", b"a = 2");
    assert_eq!(tree.write(&RECIPE, &forged), Err(Error::BadArguments));
}

#[test]
fn only_the_last_versions_are_kept() {
    let mut tree = tree();
    let total = VERSIONS_KEPT_MAX + 3;
    for n in 1..=total {
        push(&mut tree, "web", format!("n = {n}").as_bytes()).unwrap();
    }
    let kept = versions_of(&tree, "web");
    assert_eq!(kept.len(), VERSIONS_KEPT_MAX);
    assert_eq!(kept.first().unwrap(), &version_name(4));
    assert_eq!(kept.last().unwrap(), &version_name(total as u64));
}

#[test]
fn rollback_is_one_write_and_restores_the_bytes() {
    let mut tree = tree();
    push(&mut tree, "web", b"a = 1").unwrap();
    push(&mut tree, "web", b"a = 2").unwrap();
    let runs = tree
        .write(&RECIPE, &MockTree::create_op("/config/web/rollback", b"1"))
        .unwrap();
    assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
    assert_eq!(tree.text("/config/web/live").unwrap(), "a = 1");
    assert_eq!(tree.text("/config/web").unwrap(), "a = 1");
    // History only grows: the rollback is version 3, with version 1's bytes.
    assert_eq!(versions_of(&tree, "web").len(), 3);
    assert_eq!(
        tree.text(&format!("/config/web/versions/{}", version_name(3)))
            .unwrap(),
        "a = 1"
    );
    let missing = set("/config/web/rollback", b"42");
    assert_eq!(tree.write(&RECIPE, &missing), Err(Error::BadArguments));
    let run = tree.validate(&RECIPE, &missing).unwrap();
    assert!(run.result_text().contains("no version 42 (kept: 1..=3)"));
    tree.write(&RECIPE, &set("/config/web/rollback", b"v-0000000002"))
        .unwrap();
    assert_eq!(tree.text("/config/web/live").unwrap(), "a = 2");
}

#[test]
fn a_rollback_must_fit_the_current_schema() {
    let mut tree = tree();
    push(&mut tree, "web", b"a = 1").unwrap();
    push(&mut tree, "web", b"a = 1\nb = 2").unwrap();
    let schema = br#"{"required": {"b": "integer"}}"#;
    tree.write(&RECIPE, &MockTree::create_op("/config/web/schema", schema))
        .unwrap();
    let back = MockTree::create_op("/config/web/rollback", b"1");
    assert_eq!(tree.write(&RECIPE, &back), Err(Error::BadArguments));
    assert_eq!(tree.text("/config/web/live").unwrap(), "a = 1\nb = 2");
}
