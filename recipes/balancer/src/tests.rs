//! Native tests of the balancer: the assignment function, then the recipe on the mock host.

use super::*;
use zkw_guest::testing::MockTree;
use zkw_guest::Op;

const ROOT: &str = "/balancer";
const ITEMS: usize = 200;

fn item_names() -> Vec<String> {
    (0..ITEMS).map(|i| format!("shard-{i:03}")).collect()
}

fn members(ids: &[&str]) -> BTreeMap<String, f64> {
    ids.iter().map(|id| (id.to_string(), 1.0)).collect()
}

/// item → owner.
fn owners(owned: &BTreeMap<String, BTreeSet<String>>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (id, items) in owned {
        for item in items {
            assert!(
                map.insert(item.clone(), id.clone()).is_none(),
                "{item} twice"
            );
        }
    }
    map
}

#[test]
fn the_hash_is_fixed() {
    // Changing the hash would move every item on upgrade: pin it.
    assert_eq!(hash("a", "b"), hash("a", "b"));
    assert_ne!(hash("a", "b"), hash("b", "a"));
    assert_ne!(hash("ab", ""), hash("a", "b"));
    assert_eq!(hash("member-1", "shard-001"), 0x7ad8_368d_f653_2e2a);
}

#[test]
fn every_item_has_exactly_one_owner() {
    let owned = assign(&members(&["a", "b", "c"]), &item_names());
    assert_eq!(owners(&owned).len(), ITEMS);
    for items in owned.values() {
        // Roughly a third each.
        assert!((40..=95).contains(&items.len()), "{}", items.len());
    }
    assert!(assign(&BTreeMap::new(), &item_names()).is_empty());
}

#[test]
fn a_join_moves_about_one_nth_and_only_to_the_newcomer() {
    let before = owners(&assign(&members(&["a", "b", "c"]), &item_names()));
    let after = owners(&assign(&members(&["a", "b", "c", "d"]), &item_names()));
    let moved: Vec<&String> = before
        .keys()
        .filter(|item| before[*item] != after[*item])
        .collect();
    assert!(moved.iter().all(|item| after[*item] == "d"));
    // Expect ITEMS / 4 = 50; allow slack.
    assert!((30..=70).contains(&moved.len()), "{}", moved.len());
    // A leave moves only the leaver's items.
    let left = owners(&assign(&members(&["a", "c", "d"]), &item_names()));
    for (item, owner) in &after {
        if owner != "b" {
            assert_eq!(&left[item], owner);
        }
    }
}

#[test]
fn weights_are_honoured() {
    let mut weighted = members(&["a", "b"]);
    weighted.insert("a".into(), 3.0);
    weighted.insert("z".into(), 0.0);
    let owned = assign(&weighted, &item_names());
    let a = owned["a"].len();
    assert!((130..=170).contains(&a), "{a}");
    assert!(owned["z"].is_empty(), "weight 0 drains");
    assert_eq!(parse_weight(b"").unwrap(), WEIGHT_DEFAULT);
    assert_eq!(parse_weight(b" 2.5\n").unwrap(), 2.5);
    assert!(parse_weight(b"-1").is_err());
    assert!(parse_weight(b"inf").is_err());
    assert!(parse_weight(b"heavy").is_err());
}

#[test]
fn equal_weights_take_the_fast_path_to_the_same_answer() {
    let ids = ["a", "b", "c", "d", "e"];
    for weight in [1.0, 2.5] {
        let weighted: BTreeMap<String, f64> =
            ids.iter().map(|id| (id.to_string(), weight)).collect();
        let fast = owners(&assign(&weighted, &item_names()));
        for item in item_names() {
            let best = ids
                .iter()
                .max_by(|x, y| score(x, weight, &item).total_cmp(&score(y, weight, &item)))
                .unwrap();
            assert_eq!(&fast[&item], best, "{item}");
        }
    }
}

#[test]
fn one_rebalance_per_txn() {
    let mut tree = setup();
    join(&mut tree, 0x11, "m1");
    let stamp = tree.text("/balancer/g/assignments").unwrap();
    assert_eq!(stamp, tree.header().zxid.to_string());
    // Fake "already rebalanced in this txn": stamp the zxid the next event run will carry.
    tree.apply(&MockTree::create_op("/balancer/g/items/x", b""))
        .unwrap();
    let next = tree.header().zxid + 2;
    let stamp = Op::SetData {
        path: "/balancer/g/assignments".into(),
        data: next.to_string().into_bytes(),
        version: -1,
    };
    tree.apply(&stamp).unwrap();
    let run = tree.on_event(&RECIPE, EventKind::ChildrenChanged, "/balancer/g/items");
    assert!(run.succeeded() && run.fired.is_empty(), "{run:?}");
    assert_eq!(assignment(&tree, "m1").unwrap().len(), 30);
    let run = tree.on_event(&RECIPE, EventKind::ChildrenChanged, "/balancer/g/items");
    assert!(run.succeeded(), "{run:?}");
    assert_eq!(assignment(&tree, "m1").unwrap().len(), 31);
}

#[test]
fn paths_are_classified() {
    assert_eq!(classify("/b", "/b/g/members/m"), Target::Input("g", true));
    assert_eq!(classify("/b", "/b/g/members"), Target::Input("g", false));
    assert_eq!(classify("/b", "/b/g/items/i"), Target::Input("g", false));
    assert_eq!(classify("/b", "/b/g/items"), Target::Input("g", false));
    assert_eq!(
        classify("/b", "/b/g/assignments/m"),
        Target::Assignments("g")
    );
    assert_eq!(classify("/b", "/b/g"), Target::Other);
    assert_eq!(classify("/b", "/bb/g/items"), Target::Other);
}

fn setup() -> MockTree {
    let mut tree = MockTree::new("balancer", ROOT);
    for path in ["/balancer/g", "/balancer/g/members", "/balancer/g/items"] {
        tree.write(&RECIPE, &MockTree::create_op(path, b""))
            .unwrap();
    }
    for item in item_names().iter().take(30) {
        let op = MockTree::create_op(&format!("/balancer/g/items/{item}"), b"");
        tree.write(&RECIPE, &op).unwrap();
    }
    tree
}

fn join(tree: &mut MockTree, session: i64, id: &str) {
    tree.set_session(session);
    let op = Op::Create {
        path: format!("/balancer/g/members/{id}"),
        data: Vec::new(),
        flags: CreateMode::Ephemeral as i32,
    };
    let runs = tree.write(&RECIPE, &op).unwrap();
    assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
}

fn assignment(tree: &MockTree, id: &str) -> Option<Vec<String>> {
    let text = tree.text(&format!("/balancer/g/assignments/{id}"))?;
    Some(text.lines().map(str::to_owned).collect())
}

#[test]
fn the_recipe_writes_assignments_and_reassigns_on_session_loss() {
    let mut tree = setup();
    join(&mut tree, 0x11, "m1");
    assert_eq!(assignment(&tree, "m1").unwrap().len(), 30);
    join(&mut tree, 0x12, "m2");
    join(&mut tree, 0x13, "m3");
    let total: usize = ["m1", "m2", "m3"]
        .iter()
        .map(|id| assignment(&tree, id).unwrap().len())
        .sum();
    assert_eq!(total, 30);
    let run = tree.close_session(&RECIPE, 0x12);
    assert!(run.succeeded(), "{run:?}");
    assert!(assignment(&tree, "m2").is_none(), "the leaver's node goes");
    let total: usize = ["m1", "m3"]
        .iter()
        .map(|id| assignment(&tree, id).unwrap().len())
        .sum();
    assert_eq!(total, 30);
    // A new item rewrites its owner's node only.
    let version = |tree: &MockTree, id: &str| {
        tree.get(&format!("/balancer/g/assignments/{id}"))
            .unwrap()
            .stat
            .version
    };
    let before = [version(&tree, "m1"), version(&tree, "m3")];
    let op = MockTree::create_op("/balancer/g/items/new", b"");
    tree.write(&RECIPE, &op).unwrap();
    let after = [version(&tree, "m1"), version(&tree, "m3")];
    let changed: Vec<bool> = before.iter().zip(&after).map(|(b, a)| a != b).collect();
    assert_eq!(
        changed.iter().filter(|c| **c).count(),
        1,
        "{before:?} {after:?}"
    );
    let owner = if changed[0] { "m1" } else { "m3" };
    assert!(assignment(&tree, owner)
        .unwrap()
        .contains(&"new".to_owned()));
}

#[test]
fn weights_and_forged_assignments_are_validated() {
    let mut tree = setup();
    let bad = MockTree::create_op("/balancer/g/members/x", b"lots");
    assert_eq!(tree.write(&RECIPE, &bad), Err(Error::BadArguments));
    let forged = MockTree::create_op("/balancer/g/assignments/x", b"shard-000");
    assert_eq!(tree.write(&RECIPE, &forged), Err(Error::BadArguments));
    join(&mut tree, 0x11, "m1");
    let drain = Op::SetData {
        path: "/balancer/g/members/m1".into(),
        data: b"0".to_vec(),
        version: -1,
    };
    tree.write(&RECIPE, &drain).unwrap();
    assert_eq!(assignment(&tree, "m1").unwrap(), Vec::<String>::new());
}
