//! multi (op 14): write sub-ops applied atomically with one zxid. Each sub-op is checked
//! against the tree as the earlier sub-ops left it (as ZooKeeper's outstanding change records
//! do), and executed at once inside the tree journal. On the first failure the journal rolls
//! everything back, the triggers are dropped, and the results are: Error(0) for the sub-ops
//! before, the failing code, Error(-2) (RuntimeInconsistency) after. The reply is still
//! Ok(Multi): the header error of a failed multi is 0 (checked on ZooKeeper 3.8.0, which also
//! spends a zxid on failed and empty multis).

use crate::proto::{ErrorCode, MultiOp, MultiResult, Response};
use crate::tree::watch::WatchTrigger;
use crate::tree::{Tree, TreeError};
use crate::txn::recipes::Hooks;
use crate::txn::{create_result, Ctx};

use super::check;

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    sub_ops: &[MultiOp],
    hooks: &mut Hooks<'_>,
    triggers: &mut Vec<WatchTrigger>,
) -> Response {
    tree.begin_journal();
    let mut sub_triggers = Vec::new();
    let mut results = Vec::with_capacity(sub_ops.len());
    for (index, sub_op) in sub_ops.iter().enumerate() {
        match run(tree, ctx, sub_op, hooks, &mut sub_triggers) {
            Ok(result) => results.push(result),
            Err(error) => {
                tree.rollback_journal();
                return Response::Multi(failed_results(sub_ops.len(), index, error.code()));
            }
        }
    }
    tree.commit_journal();
    triggers.append(&mut sub_triggers);
    Response::Multi(results)
}

fn run(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    sub_op: &MultiOp,
    hooks: &mut Hooks<'_>,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<MultiResult, TreeError> {
    Ok(match sub_op {
        MultiOp::Create { op, request } => {
            create_result(hooks.create(tree, ctx, *op, request, triggers)?)
        }
        MultiOp::Delete(request) => {
            hooks.delete(tree, ctx, request, triggers)?;
            MultiResult::Delete
        }
        MultiOp::SetData(request) => MultiResult::SetData {
            stat: hooks.set_data(tree, ctx, request, triggers)?,
        },
        MultiOp::Check(request) => {
            check::apply(tree, ctx, request)?;
            MultiResult::Check
        }
    })
}

pub(crate) fn failed_results(
    count: usize,
    failed_index: usize,
    code: ErrorCode,
) -> Vec<MultiResult> {
    (0..count)
        .map(|index| {
            let code = match index.cmp(&failed_index) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => code,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            };
            MultiResult::Error(code.code())
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{
        op, Acl, CheckVersionRequest, DeleteRequest, MultiOp, MultiResult, Response,
    };
    use crate::proto::{EventType, SetDataRequest};
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    #[test]
    fn failed_multi_changes_nothing() {
        let mut h = Harness::new();
        let digest = h.tree.digest();
        let ops = vec![
            multi_create("/m1"),
            MultiOp::Delete(DeleteRequest {
                path: "/nonexist".into(),
                version: -1,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/m1".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            }),
        ];
        let applied = h.op(TxnOp::Multi(ops));
        let expected = vec![
            MultiResult::Error(0),
            MultiResult::Error(-101),
            MultiResult::Error(-2),
        ];
        assert_eq!(applied.reply, Ok(Response::Multi(expected)));
        assert!(applied.triggers.is_empty());
        assert_eq!(h.tree.stat("/m1"), None);
        assert_eq!(h.tree.digest(), digest);
        assert_eq!(h.tree.digest(), h.tree.digest_full());
        assert_eq!(h.tree.last_zxid(), applied.zxid);
    }

    #[test]
    fn later_sub_ops_see_earlier_ones() {
        let mut h = Harness::new();
        let seq = crate::txn::testing::create_request("/m/s", b"", 2, Acl::open_unsafe());
        let ops = vec![
            multi_create("/m"),
            MultiOp::Create {
                op: op::CREATE2,
                request: seq,
            },
            MultiOp::SetData(SetDataRequest {
                path: "/m".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/m".into(),
                version: 1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/m/s0000000000".into(),
                version: -1,
            }),
        ];
        let applied = h.op(TxnOp::Multi(ops));
        let Ok(Response::Multi(results)) = &applied.reply else {
            panic!("{:?}", applied.reply)
        };
        assert_eq!(results[0], MultiResult::Create { path: "/m".into() });
        assert!(
            matches!(&results[1], MultiResult::Create2 { path, .. } if path == "/m/s0000000000")
        );
        assert!(matches!(results[2], MultiResult::SetData { stat } if stat.version == 1));
        assert_eq!(results[3..], [MultiResult::Check, MultiResult::Delete]);
        let events: Vec<EventType> = applied.triggers.iter().map(|t| t.event).collect();
        assert_eq!(events.len(), 7);
        assert_eq!(events[4], EventType::NodeDataChanged);
        let stat = h.tree.stat("/m").unwrap();
        assert_eq!(
            (stat.version, stat.num_children, stat.cversion, stat.pzxid),
            (1, 0, 2, applied.zxid)
        );
    }

    #[test]
    fn failed_multi_rolls_back_sequence_and_acl_changes() {
        let mut h = Harness::new();
        h.op(create("/q", 0));
        h.op(create("/q/x", 0));
        let before = h.tree.digest();
        let seq = crate::txn::testing::create_request("/q/s", b"", 2, Acl::open_unsafe());
        let ops = vec![
            MultiOp::Create {
                op: op::CREATE,
                request: seq,
            },
            MultiOp::Delete(DeleteRequest {
                path: "/q/x".into(),
                version: -1,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/q".into(),
                version: 9,
            }),
        ];
        let applied = h.op(TxnOp::Multi(ops));
        let expected = vec![
            MultiResult::Error(0),
            MultiResult::Error(0),
            MultiResult::Error(-103),
        ];
        assert_eq!(applied.reply, Ok(Response::Multi(expected)));
        assert_eq!(h.tree.digest(), before);
        assert!(h.tree.stat("/q/x").is_some());
        let again = h.op(create("/q/s", 2)).reply;
        assert_eq!(
            again,
            Ok(Response::Create {
                path: "/q/s0000000001".into()
            })
        );
    }

    #[test]
    fn empty_multi() {
        let mut h = Harness::new();
        assert_eq!(
            h.op(TxnOp::Multi(vec![])).reply,
            Ok(Response::Multi(vec![]))
        );
    }
}
