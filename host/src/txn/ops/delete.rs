//! delete (op 2). Checks in ZooKeeper 3.8's order: session; no '/', a NUL, or one of the
//! special paths ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config") ->
//! BadArguments (checked on 3.8.0; other nodes under /zookeeper can be deleted); parent ->
//! NoNode; DELETE on the parent -> NoAuth; node -> NoNode; version -> BadVersion; children ->
//! NotEmpty. The path itself is not validated further: a malformed one simply does not exist.

use crate::proto::{perms, DeleteRequest, EventType};
use crate::tree::path::parent_of;
use crate::tree::watch::WatchTrigger;
use crate::tree::{acl, Tree, TreeError, CONFIG_PATH, QUOTA_PATH, ROOT_PATH, ZOOKEEPER_PATH};
use crate::txn::Ctx;

use super::check_and_increment;

pub(crate) struct Plan {
    path: String,
}

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    request: &DeleteRequest,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<(), TreeError> {
    let plan = check(tree, ctx, request)?;
    execute(tree, ctx, plan, triggers);
    Ok(())
}

pub(crate) fn check(
    tree: &Tree,
    ctx: &Ctx<'_>,
    request: &DeleteRequest,
) -> Result<Plan, TreeError> {
    ctx.require_session(tree)?;
    let path = request.path.as_str();
    let bad = || TreeError::BadArguments(path.to_owned());
    if path.contains('\0') || [ROOT_PATH, ZOOKEEPER_PATH, QUOTA_PATH, CONFIG_PATH].contains(&path) {
        return Err(bad());
    }
    let parent = parent_of(path).ok_or_else(bad)?;
    let parent_node = tree
        .node(parent)
        .ok_or_else(|| TreeError::NoNode(parent.to_owned()))?;
    acl::check(&parent_node.acl, ctx.auth, perms::DELETE)?;
    let node = tree
        .node(path)
        .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
    check_and_increment(node.meta.version, request.version, path)?;
    if !node.children.is_empty() {
        return Err(TreeError::NotEmpty(path.to_owned()));
    }
    Ok(Plan {
        path: path.to_owned(),
    })
}

pub(crate) fn execute(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    plan: Plan,
    triggers: &mut Vec<WatchTrigger>,
) {
    remove_leaf(tree, ctx, plan.path, triggers);
}

/// Removes a checked leaf: the parent's pzxid moves (its cversion counts creations only, so
/// it stays), then NodeDeleted and the parent's NodeChildrenChanged fire. Shared with
/// closeSession and the reaper.
pub(crate) fn remove_leaf(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    path: String,
    triggers: &mut Vec<WatchTrigger>,
) {
    let parent = parent_of(&path).unwrap_or(ROOT_PATH).to_owned();
    let deleted = tree.watch_trigger(path, EventType::NodeDeleted);
    tree.remove_node(&deleted.path);
    let zxid = ctx.zxid;
    tree.update_meta(&parent, |meta| meta.pzxid = zxid);
    triggers.push(deleted);
    triggers.push(tree.watch_trigger(parent, EventType::NodeChildrenChanged));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{op, perms, Acl, ErrorCode, EventType, Id, Response};
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    #[test]
    fn delete_updates_parent_and_fires() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        h.op(create("/a/b", 0));
        let applied = h.op(delete("/a/b", 0));
        assert_eq!(applied.reply, Ok(Response::Empty));
        assert_eq!(
            triggered(&applied),
            vec![
                ("/a/b", EventType::NodeDeleted),
                ("/a", EventType::NodeChildrenChanged),
            ]
        );
        let parent = h.tree.stat("/a").unwrap();
        assert_eq!(
            (parent.pzxid, parent.num_children, parent.cversion),
            (applied.zxid, 0, 2)
        );
        assert_eq!(h.tree.stat("/a/b"), None);
        assert_eq!(h.tree.digest(), h.tree.digest_full());
    }

    #[test]
    fn triggers_carry_the_acl_of_the_node_they_name() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        let secret = vec![Acl {
            perms: perms::ALL,
            id: Id::new("digest", "u:x"),
        }];
        let request = create_request("/a/s", b"", 0, secret.clone());
        h.op(TxnOp::Create {
            op: op::CREATE,
            request,
        });
        let applied = h.op(delete("/a/s", -1));
        let acls: Vec<Vec<Acl>> = applied.triggers.iter().map(|t| t.acl.to_vec()).collect();
        assert_eq!(acls, vec![secret, h.tree.acl("/a").unwrap()]);
    }

    #[test]
    fn delete_errors() {
        let mut h = Harness::new();
        for special in [
            "/",
            "/zookeeper",
            "/zookeeper/quota",
            "/zookeeper/config",
            "abc",
        ] {
            assert_eq!(
                h.op(delete(special, -1)).reply,
                Err(ErrorCode::BadArguments),
                "{special}"
            );
        }
        h.op(create("/zookeeper/x", 0));
        assert_eq!(h.op(delete("/zookeeper/x", -1)).reply, Ok(Response::Empty));
        h.op(create("/a", 0));
        h.op(create("/a/b", 0));
        assert_eq!(h.op(delete("/a", 5)).reply, Err(ErrorCode::BadVersion));
        assert_eq!(h.op(delete("/a", 0)).reply, Err(ErrorCode::NotEmpty));
        assert_eq!(h.op(delete("/a/", -1)).reply, Err(ErrorCode::NoNode));
        assert_eq!(h.op(delete("/x/y", -1)).reply, Err(ErrorCode::NoNode));
        let acl = vec![Acl {
            perms: perms::ALL & !perms::DELETE,
            id: Id::anyone(),
        }];
        h.op(TxnOp::Create {
            op: op::CREATE,
            request: create_request("/p", b"", 0, acl),
        });
        h.op(create("/p/c", 0));
        assert_eq!(h.op(delete("/p/c", -1)).reply, Err(ErrorCode::NoAuth));
        assert_eq!(
            h.run(0x999, delete("/a/b", -1)).reply,
            Err(ErrorCode::SessionExpired)
        );
    }
}
