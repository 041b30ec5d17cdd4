//! setData (op 5). Checks in ZooKeeper 3.8's order: session; path -> BadArguments; node ->
//! NoNode; WRITE on the node -> NoAuth; version -> BadVersion. The new version skips -1
//! (ZOOKEEPER-4743). Fires NodeDataChanged.

use crate::proto::{perms, EventType, SetDataRequest, Stat};
use crate::tree::watch::WatchTrigger;
use crate::tree::{acl, validate_path, Tree, TreeError};
use crate::txn::Ctx;

use super::check_and_increment;

pub(crate) struct Plan {
    path: String,
    data: Vec<u8>,
    version: i32,
}

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    request: &SetDataRequest,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Stat, TreeError> {
    let plan = check(tree, ctx, request)?;
    Ok(execute(tree, ctx, plan, triggers))
}

pub(crate) fn check(
    tree: &Tree,
    ctx: &Ctx<'_>,
    request: &SetDataRequest,
) -> Result<Plan, TreeError> {
    ctx.require_session(tree)?;
    validate_path(&request.path, false)?;
    let node = tree
        .node(&request.path)
        .ok_or_else(|| TreeError::NoNode(request.path.clone()))?;
    acl::check(&node.acl, ctx.auth, perms::WRITE)?;
    let version = check_and_increment(node.meta.version, request.version, &request.path)?;
    Ok(Plan {
        path: request.path.clone(),
        data: request.data.clone(),
        version,
    })
}

pub(crate) fn execute(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    plan: Plan,
    triggers: &mut Vec<WatchTrigger>,
) -> Stat {
    tree.replace_data(&plan.path, plan.data);
    let (zxid, time_ms, version) = (ctx.zxid, ctx.time_ms, plan.version);
    tree.update_meta(&plan.path, |meta| {
        meta.version = version;
        meta.mzxid = zxid;
        meta.mtime = time_ms;
    });
    let stat = tree.stat(&plan.path).unwrap_or_default();
    triggers.push(WatchTrigger {
        path: plan.path,
        event: EventType::NodeDataChanged,
    });
    stat
}
