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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{ErrorCode, Response};
    use crate::txn::testing::*;

    #[test]
    fn check_versions() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        let stat = h.tree.stat("/a").unwrap();
        assert_eq!(h.op(check("/a", 0)).reply, Ok(Response::Stat(stat)));
        assert_eq!(h.op(check("/a", -1)).reply, Ok(Response::Stat(stat)));
        assert_eq!(h.op(check("/a", 1)).reply, Err(ErrorCode::BadVersion));
        assert_eq!(h.op(check("/b", 0)).reply, Err(ErrorCode::NoNode));
        assert_eq!(h.tree.stat("/a"), Some(stat));
    }
}
