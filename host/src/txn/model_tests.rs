//! Property tests for `apply`: random op sequences against a plain `BTreeMap` model (paths and
//! data, plus the per-parent creation counter behind sequential names), and determinism (the
//! same entries on two trees give equal replies, triggers and digests).

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::proto::{
    Acl, CreateRequest, DeleteRequest, ErrorCode, MultiOp, Response, SetDataRequest,
};
use crate::tree::path::parent_of;
use crate::tree::Tree;

use super::testing::*;
use super::{apply, TxnEntry, TxnOp};

const PATHS: [&str; 7] = ["/a", "/b", "/a/a", "/a/b", "/b/a", "/a/a/a", "/a/b/"];

#[derive(Clone, Debug)]
enum ModelOp {
    Create {
        path: usize,
        data: Option<Vec<u8>>,
        sequential: bool,
    },
    Delete {
        path: usize,
    },
    SetData {
        path: usize,
        data: Option<Vec<u8>>,
    },
    Multi {
        first: usize,
        second: usize,
    },
}

fn model_op() -> impl Strategy<Value = ModelOp> {
    let path = 0..PATHS.len();
    // Null data (None) is kept apart from empty data, as ZooKeeper keeps it.
    let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4));
    prop_oneof![
        (path.clone(), data.clone(), any::<bool>()).prop_map(|(path, data, sequential)| {
            ModelOp::Create {
                path,
                data,
                sequential,
            }
        }),
        path.clone().prop_map(|path| ModelOp::Delete { path }),
        (path.clone(), data).prop_map(|(path, data)| ModelOp::SetData { path, data }),
        (path.clone(), path).prop_map(|(first, second)| ModelOp::Multi { first, second }),
    ]
}

#[derive(Default)]
struct Model {
    data: BTreeMap<String, Option<Vec<u8>>>,
    creations: BTreeMap<String, i32>,
}

impl Model {
    fn new() -> Model {
        let mut model = Model::default();
        for path in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
            model.data.insert(path.to_owned(), Some(Vec::new()));
        }
        model
    }

    fn has_children(&self, path: &str) -> bool {
        self.data
            .keys()
            .any(|key| parent_of(key) == Some(path) && key != "/")
    }

    fn create(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        sequential: bool,
    ) -> Result<String, ErrorCode> {
        let parent = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        if !self.data.contains_key(parent) {
            return Err(ErrorCode::NoNode);
        }
        let counter = self.creations.get(parent).copied().unwrap_or(0);
        let full = if sequential {
            format!("{path}{counter:010}")
        } else {
            path.to_owned()
        };
        if crate::tree::validate_path(&full, false).is_err() {
            return Err(ErrorCode::BadArguments);
        }
        if self.data.contains_key(&full) {
            return Err(ErrorCode::NodeExists);
        }
        self.data.insert(full.clone(), data.map(<[u8]>::to_vec));
        self.creations.insert(parent.to_owned(), counter + 1);
        Ok(full)
    }

    fn delete(&mut self, path: &str) -> Result<(), ErrorCode> {
        let parent = parent_of(path).ok_or(ErrorCode::BadArguments)?;
        if !self.data.contains_key(parent) || !self.data.contains_key(path) {
            return Err(ErrorCode::NoNode);
        }
        if self.has_children(path) {
            return Err(ErrorCode::NotEmpty);
        }
        self.data.remove(path);
        // A node created again later starts its sequence numbering afresh.
        self.creations.remove(path);
        Ok(())
    }

    fn set_data(&mut self, path: &str, data: Option<&[u8]>) -> Result<(), ErrorCode> {
        if crate::tree::validate_path(path, false).is_err() {
            return Err(ErrorCode::BadArguments);
        }
        let slot = self.data.get_mut(path).ok_or(ErrorCode::NoNode)?;
        *slot = data.map(<[u8]>::to_vec);
        Ok(())
    }
}

fn tree_contents(tree: &Tree) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut contents = BTreeMap::new();
    let mut pending = vec!["/".to_owned()];
    while let Some(path) = pending.pop() {
        let (data, _) = tree.get_data(&path, &[]).expect("listed node exists");
        let (children, _) = tree.get_children(&path, &[]).expect("listed node exists");
        pending.extend(
            children
                .iter()
                .map(|name| crate::tree::path::join(&path, name)),
        );
        contents.insert(path, data);
    }
    contents
}

fn step(h: &mut Harness, model: &mut Model, op: &ModelOp) {
    match op {
        ModelOp::Create {
            path,
            data,
            sequential,
        } => {
            let flags = if *sequential { 2 } else { 0 };
            let request = CreateRequest {
                data: data.clone(),
                ..create_request(PATHS[*path], b"", flags, Acl::open_unsafe())
            };
            let create = TxnOp::Create {
                op: crate::proto::op::CREATE,
                request,
            };
            let reply = h.op(create).reply;
            let expected = model
                .create(PATHS[*path], data.as_deref(), *sequential)
                .map(|path| Response::Create { path });
            assert_eq!(reply, expected, "{op:?}");
        }
        ModelOp::Delete { path } => {
            let reply = h.op(delete(PATHS[*path], -1)).reply;
            assert_eq!(reply.map(|_| ()), model.delete(PATHS[*path]), "{op:?}");
        }
        ModelOp::SetData { path, data } => {
            let set = TxnOp::SetData(SetDataRequest {
                path: PATHS[*path].into(),
                data: data.clone(),
                version: -1,
            });
            let reply = h.op(set).reply;
            assert_eq!(
                reply.map(|_| ()),
                model.set_data(PATHS[*path], data.as_deref()),
                "{op:?}"
            );
        }
        ModelOp::Multi { first, second } => {
            let ops = vec![
                multi_create(PATHS[*first]),
                MultiOp::SetData(SetDataRequest {
                    path: PATHS[*second].into(),
                    data: Some(vec![1]),
                    version: -1,
                }),
                MultiOp::Delete(DeleteRequest {
                    path: PATHS[*first].into(),
                    version: -1,
                }),
            ];
            let reply = h.op(TxnOp::Multi(ops)).reply;
            let Ok(Response::Multi(results)) = reply else {
                panic!("multi reply {reply:?}")
            };
            let failed = results
                .iter()
                .any(|result| matches!(result, crate::proto::MultiResult::Error(_)));
            // Model: all three or nothing; a create immediately deleted leaves only setData.
            let mut trial = Model {
                data: model.data.clone(),
                creations: model.creations.clone(),
            };
            let ok = trial.create(PATHS[*first], Some(&[]), false).is_ok()
                && trial.set_data(PATHS[*second], Some(&[1])).is_ok()
                && trial.delete(PATHS[*first]).is_ok();
            assert_eq!(!failed, ok, "{op:?}");
            if ok {
                *model = trial;
            }
        }
    }
}

proptest! {
    #[test]
    fn apply_matches_the_model(ops in proptest::collection::vec(model_op(), 1..40)) {
        let mut h = Harness::new();
        let mut model = Model::new();
        for op in &ops {
            step(&mut h, &mut model, op);
            prop_assert_eq!(tree_contents(&h.tree), model.data.clone());
            prop_assert_eq!(h.tree.digest(), h.tree.digest_full());
        }
    }

    #[test]
    fn apply_is_deterministic(ops in proptest::collection::vec(model_op(), 1..30)) {
        let mut h = Harness::new();
        let mut model = Model::new();
        for op in &ops {
            step(&mut h, &mut model, op);
        }
        let (mut left, mut right) = (Tree::new(), Tree::new());
        for entry in &h.entries {
            prop_assert_eq!(apply(&mut left, entry), apply(&mut right, entry));
        }
        prop_assert_eq!(left.digest(), right.digest());
        prop_assert_eq!(left.digest(), h.tree.digest());
    }
}

#[test]
fn same_entries_give_same_applied() {
    let entries: Vec<TxnEntry> = [
        TxnOp::CreateSession {
            timeout_ms: 1000,
            password: [3; 16],
        },
        create("/a", 0),
        create("/a/s", 3),
        create("/a/s", 2),
        set_data("/a", b"x", -1),
        delete("/a/s0000000001", -1),
        TxnOp::CloseSession,
    ]
    .into_iter()
    .enumerate()
    .map(|(index, op)| TxnEntry {
        zxid: index as i64 + 1,
        time_ms: 77,
        session_id: 5,
        auth: vec![],
        op,
    })
    .collect();
    let (mut left, mut right) = (Tree::new(), Tree::new());
    for entry in &entries {
        assert_eq!(apply(&mut left, entry), apply(&mut right, entry));
    }
    assert_eq!(left.digest(), right.digest());
    assert_eq!(left.digest(), left.digest_full());
    assert_eq!(left.stat("/a"), right.stat("/a"));
}

#[test]
#[should_panic(expected = "not after")]
fn zxid_must_increase() {
    let mut tree = Tree::new();
    let entry = TxnEntry {
        zxid: 1,
        time_ms: 0,
        session_id: 0,
        auth: vec![],
        op: create("/a", 0),
    };
    apply(&mut tree, &entry);
    apply(&mut tree, &entry);
}
