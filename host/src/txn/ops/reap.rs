//! Reap (ZooKeeper's deleteContainer, op 20): the server's reaper proposes it for a path that
//! `Tree::reapable` listed. By the time it applies the node may have changed, so it deletes
//! only if the node still qualifies and is otherwise a no-op; either way the reply is Empty.
//! No ACL check: the server itself asks.

use crate::proto::ErrorCode;
use crate::proto::Response;
use crate::tree::watch::WatchTrigger;
use crate::tree::Tree;
use crate::txn::Ctx;

use super::delete::remove_leaf;

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    path: &str,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Response, ErrorCode> {
    if tree.reapable_path(path, ctx.time_ms) {
        remove_leaf(tree, ctx, path.to_owned(), triggers);
    }
    Ok(Response::Empty)
}
