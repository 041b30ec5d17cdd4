//! check (op 13), a version assertion, normally inside a multi. Checks in ZooKeeper 3.8's
//! order: session; path -> BadArguments; node -> NoNode; READ on the node -> NoAuth; version
//! -> BadVersion (-1 passes). Changes nothing. (3.8.0 never answers a top-level check; zkw
//! answers it with the node's Stat.)

use crate::proto::{perms, CheckVersionRequest, Stat};
use crate::tree::{acl, validate_path, Tree, TreeError};
use crate::txn::Ctx;

use super::check_and_increment;

pub(crate) fn apply(
    tree: &Tree,
    ctx: &Ctx<'_>,
    request: &CheckVersionRequest,
) -> Result<Stat, TreeError> {
    ctx.require_session(tree)?;
    validate_path(&request.path, false)?;
    let node = tree
        .node(&request.path)
        .ok_or_else(|| TreeError::NoNode(request.path.clone()))?;
    acl::check(&node.acl, ctx.auth, perms::READ)?;
    check_and_increment(node.meta.version, request.version, &request.path)?;
    Ok(node.stat())
}
