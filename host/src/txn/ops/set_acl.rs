//! setACL (op 7). Checks in ZooKeeper 3.8's order: session; path -> BadArguments; ACL ->
//! InvalidACL (before NoNode, checked on 3.8.0); node -> NoNode; ADMIN on the node -> NoAuth;
//! aversion -> BadVersion. Duplicate entries are dropped. Fires no watch.

use crate::proto::{perms, Acl, SetAclRequest, Stat};
use crate::tree::{acl, validate_path, Tree, TreeError};
use crate::txn::Ctx;

use super::check_and_increment;

pub(crate) struct Plan {
    path: String,
    acl: Vec<Acl>,
    aversion: i32,
}

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    request: &SetAclRequest,
) -> Result<Stat, TreeError> {
    let plan = check(tree, ctx, request)?;
    Ok(execute(tree, plan))
}

pub(crate) fn check(
    tree: &Tree,
    ctx: &Ctx<'_>,
    request: &SetAclRequest,
) -> Result<Plan, TreeError> {
    ctx.require_session(tree)?;
    validate_path(&request.path, false)?;
    let acl = acl::fixup(&request.acl, ctx.auth)?;
    let node = tree
        .node(&request.path)
        .ok_or_else(|| TreeError::NoNode(request.path.clone()))?;
    acl::check(&node.acl, ctx.auth, perms::ADMIN)?;
    let aversion = check_and_increment(node.meta.aversion, request.version, &request.path)?;
    Ok(Plan {
        path: request.path.clone(),
        acl,
        aversion,
    })
}

pub(crate) fn execute(tree: &mut Tree, plan: Plan) -> Stat {
    tree.replace_acl(&plan.path, plan.acl);
    let aversion = plan.aversion;
    tree.update_meta(&plan.path, |meta| meta.aversion = aversion);
    tree.stat(&plan.path).unwrap_or_default()
}
