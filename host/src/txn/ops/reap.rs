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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{op, Acl, CreateRequest, EventType, Response};
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    #[test]
    fn containers_are_reaped_once_used_and_empty() {
        let mut h = Harness::new();
        h.op(create_op(op::CREATE_CONTAINER, "/c", b"", 4));
        h.op(create_op(op::CREATE_CONTAINER, "/never", b"", 4));
        assert!(h.tree.reapable(TIME_MS).is_empty());
        h.op(create("/c/x", 0));
        assert!(h.tree.reapable(TIME_MS).is_empty());
        h.op(delete("/c/x", -1));
        assert_eq!(h.tree.reapable(TIME_MS), vec!["/c".to_owned()]);
        let applied = h.run(0, TxnOp::Reap { path: "/c".into() });
        assert_eq!(applied.reply, Ok(Response::Empty));
        assert_eq!(applied.triggers[0].event, EventType::NodeDeleted);
        assert_eq!(h.tree.stat("/c"), None);
        // No longer qualifies: a no-op.
        let applied = h.run(
            0,
            TxnOp::Reap {
                path: "/never".into(),
            },
        );
        assert_eq!(
            (applied.reply, applied.triggers.len()),
            (Ok(Response::Empty), 0)
        );
        assert!(h.tree.stat("/never").is_some());
    }

    #[test]
    fn ttl_nodes_expire_after_mtime_plus_ttl() {
        let mut h = Harness::new();
        h.tree.set_extended_types_enabled(true);
        let request = CreateRequest {
            ttl_ms: Some(100),
            ..create_request("/t", b"", 5, Acl::open_unsafe())
        };
        h.op(TxnOp::Create {
            op: op::CREATE_TTL,
            request,
        });
        assert!(h.tree.reapable(TIME_MS + 100).is_empty());
        assert_eq!(h.tree.reapable(TIME_MS + 101), vec!["/t".to_owned()]);
        h.time_ms = TIME_MS + 50;
        h.op(set_data("/t", b"x", -1));
        assert!(h.tree.reapable(TIME_MS + 101).is_empty());
        h.time_ms = TIME_MS + 100;
        assert!(h
            .run(0, TxnOp::Reap { path: "/t".into() })
            .triggers
            .is_empty());
        h.time_ms = TIME_MS + 151;
        h.run(0, TxnOp::Reap { path: "/t".into() });
        assert_eq!(h.tree.stat("/t"), None);
    }
}
