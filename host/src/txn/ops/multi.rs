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
use crate::txn::{create_result, Ctx};

use super::{check, create, delete, set_data};

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    sub_ops: &[MultiOp],
    triggers: &mut Vec<WatchTrigger>,
) -> Response {
    tree.begin_journal();
    let mut sub_triggers = Vec::new();
    let mut results = Vec::with_capacity(sub_ops.len());
    for (index, sub_op) in sub_ops.iter().enumerate() {
        match run(tree, ctx, sub_op, &mut sub_triggers) {
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
    triggers: &mut Vec<WatchTrigger>,
) -> Result<MultiResult, TreeError> {
    Ok(match sub_op {
        MultiOp::Create { op, request } => {
            create_result(create::apply(tree, ctx, *op, request, triggers)?)
        }
        MultiOp::Delete(request) => {
            delete::apply(tree, ctx, request, triggers)?;
            MultiResult::Delete
        }
        MultiOp::SetData(request) => MultiResult::SetData {
            stat: set_data::apply(tree, ctx, request, triggers)?,
        },
        MultiOp::Check(request) => {
            check::apply(tree, ctx, request)?;
            MultiResult::Check
        }
    })
}

fn failed_results(count: usize, failed_index: usize, code: ErrorCode) -> Vec<MultiResult> {
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
