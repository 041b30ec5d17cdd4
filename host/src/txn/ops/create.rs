//! create, create2, createContainer, createTTL (op codes 1, 15, 19, 21).
//!
//! Checks in ZooKeeper 3.8's order (PrepRequestProcessor.pRequest2TxnCreate, confirmed on a
//! live 3.8.0 where observable): flags -> BadArguments; TTL mode without extended types ->
//! Unimplemented; TTL range -> BadArguments; session; no '/' or a NUL -> BadArguments; ACL
//! -> InvalidACL (so a bad ACL wins over a missing parent); parent -> NoNode; CREATE on the
//! parent -> NoAuth; sequential suffix; full path -> BadArguments (so "/missing/" is NoNode
//! but "/existing/" is BadArguments); NodeExists; ephemeral parent -> NoChildrenForEphemerals.
//!
//! TTL flags (5, 6) through create/create2 fail with BadArguments (their TTL is missing), as
//! in 3.8. createContainer must carry flags 4 and createTTL a TTL mode (zkw refuses the rest
//! with BadArguments; 3.8.0 accepts them and, for createTTL with a negative TTL, crashes).

use crate::proto::{op, perms, CreateMode, CreateRequest, Stat};
use crate::proto::{Acl, EventType};
use crate::tree::path::parent_of;
use crate::tree::watch::WatchTrigger;
use crate::tree::{acl, validate_path, Meta, NodeKind, Tree, TreeError, TTL_MS_MAX};
use crate::txn::Ctx;

/// A create that passed every check.
pub(crate) struct Plan {
    op: i32,
    path: String,
    parent: String,
    /// None: null data.
    data: Option<Vec<u8>>,
    acl: Vec<Acl>,
    kind: NodeKind,
}

/// What a create produced; `op` picks the reply shape.
pub(crate) struct Created {
    pub op: i32,
    pub path: String,
    pub stat: Stat,
}

pub(crate) fn apply(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    op: i32,
    request: &CreateRequest,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Created, TreeError> {
    let plan = check(tree, ctx, op, request)?;
    Ok(execute(tree, ctx, plan, triggers))
}

pub(crate) fn check(
    tree: &Tree,
    ctx: &Ctx<'_>,
    op: i32,
    request: &CreateRequest,
) -> Result<Plan, TreeError> {
    let bad = || TreeError::BadArguments(request.path.clone());
    let mode = CreateMode::from_flags(request.flags).ok_or_else(bad)?;
    let kind = node_kind(tree, ctx, op, mode, request)?;
    ctx.require_session(tree)?;
    if request.path.contains('\0') {
        return Err(bad());
    }
    let parent = parent_of(&request.path).ok_or_else(bad)?;
    let acl = acl::fixup(&request.acl, ctx.auth)?;
    let parent_node = tree
        .node(parent)
        .ok_or_else(|| TreeError::NoNode(parent.to_owned()))?;
    acl::check(&parent_node.acl, ctx.auth, perms::CREATE)?;
    let path = if mode.is_sequential() {
        format!("{}{:010}", request.path, parent_node.meta.cversion)
    } else {
        request.path.clone()
    };
    validate_path(&path, false)?;
    if tree.node(&path).is_some() {
        return Err(TreeError::NodeExists(path));
    }
    if matches!(parent_node.kind(), NodeKind::Ephemeral(_)) {
        return Err(TreeError::NoChildrenForEphemerals(path));
    }
    Ok(Plan {
        op,
        path,
        parent: parent.to_owned(),
        data: request.data.clone(),
        acl,
        kind,
    })
}

/// The node kind the op and mode ask for, with ZooKeeper's TTL rules.
fn node_kind(
    tree: &Tree,
    ctx: &Ctx<'_>,
    op: i32,
    mode: CreateMode,
    request: &CreateRequest,
) -> Result<NodeKind, TreeError> {
    let bad = || TreeError::BadArguments(request.path.clone());
    if op == op::CREATE_CONTAINER && !mode.is_container() {
        return Err(bad());
    }
    if op == op::CREATE_TTL && !mode.is_ttl() {
        return Err(bad());
    }
    if mode.is_ttl() && !tree.extended_types_enabled() {
        return Err(TreeError::Unimplemented);
    }
    // Only createTTL carries a TTL; for the other ops ZooKeeper uses -1.
    let ttl_ms = if op == op::CREATE_TTL {
        request.ttl_ms.unwrap_or(-1)
    } else {
        -1
    };
    if mode.is_ttl() {
        if ttl_ms <= 0 || ttl_ms > TTL_MS_MAX {
            return Err(bad());
        }
        return Ok(NodeKind::Ttl { ttl_ms });
    }
    if mode.is_container() {
        return Ok(NodeKind::Container);
    }
    if mode.is_ephemeral() {
        // An ephemeral needs a real session to own it.
        if ctx.session_id == 0 {
            return Err(TreeError::SessionExpired);
        }
        return Ok(NodeKind::Ephemeral(ctx.session_id));
    }
    Ok(NodeKind::Persistent)
}

pub(crate) fn execute(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    plan: Plan,
    triggers: &mut Vec<WatchTrigger>,
) -> Created {
    let meta = Meta::created(ctx.zxid, ctx.time_ms, plan.kind.owner());
    let stat = tree.create_node(plan.path.clone(), meta, plan.data, plan.acl);
    triggers.push(tree.watch_trigger(plan.path.clone(), EventType::NodeCreated));
    triggers.push(tree.watch_trigger(plan.parent, EventType::NodeChildrenChanged));
    Created {
        op: plan.op,
        path: plan.path,
        stat,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{op, perms, Acl, ErrorCode, EventType, Id, Response};
    use crate::tree::NodeKind;
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    fn err(code: ErrorCode) -> Result<Response, ErrorCode> {
        Err(code)
    }

    #[test]
    fn create_sets_stat_and_parent_and_triggers() {
        let mut h = Harness::new();
        let applied = h.op(create_op(op::CREATE, "/a", b"hi", 0));
        assert_eq!(applied.reply, Ok(Response::Create { path: "/a".into() }));
        assert_eq!(
            triggered(&applied),
            vec![
                ("/a", EventType::NodeCreated),
                ("/", EventType::NodeChildrenChanged),
            ]
        );
        let stat = h.tree.stat("/a").unwrap();
        assert_eq!((stat.czxid, stat.mzxid, stat.pzxid), (2, 2, 2));
        assert_eq!(
            (stat.ctime, stat.mtime, stat.data_length),
            (TIME_MS, TIME_MS, 2)
        );
        let root = h.tree.stat("/").unwrap();
        assert_eq!((root.pzxid, root.num_children, root.cversion), (2, 2, 0));
        let applied = h.op(create_op(op::CREATE2, "/b", b"", 0));
        let stat = h.tree.stat("/b").unwrap();
        assert_eq!(
            applied.reply,
            Ok(Response::Create2 {
                path: "/b".into(),
                stat
            })
        );
        assert_eq!(h.tree.digest(), h.tree.digest_full());
    }

    #[test]
    fn sequential_suffix_counts_creations() {
        let mut h = Harness::new();
        h.op(create("/q", 0));
        let first = h.op(create("/q/item-", 2)).reply;
        assert_eq!(
            first,
            Ok(Response::Create {
                path: "/q/item-0000000000".into()
            })
        );
        h.op(delete("/q/item-0000000000", -1));
        let second = h.op(create("/q/", 2)).reply;
        assert_eq!(
            second,
            Ok(Response::Create {
                path: "/q/0000000001".into()
            })
        );
        // Client cversion = 2 * creations - children = 2 * 2 - 1.
        assert_eq!(h.tree.stat("/q").unwrap().cversion, 3);
    }

    #[test]
    fn errors_in_zookeeper_order() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        assert_eq!(h.op(create("/a", 0)).reply, err(ErrorCode::NodeExists));
        let empty_acl = TxnOp::Create {
            op: op::CREATE,
            request: create_request("/missing/x", b"", 0, vec![]),
        };
        assert_eq!(h.op(empty_acl).reply, err(ErrorCode::InvalidAcl));
        assert_eq!(h.op(create("/missing/x", 0)).reply, err(ErrorCode::NoNode));
        assert_eq!(h.op(create("/missing/", 0)).reply, err(ErrorCode::NoNode));
        assert_eq!(h.op(create("/a//x", 0)).reply, err(ErrorCode::NoNode));
        assert_eq!(h.op(create("/a/", 0)).reply, err(ErrorCode::BadArguments));
        assert_eq!(h.op(create("abc", 0)).reply, err(ErrorCode::BadArguments));
        assert_eq!(h.op(create("/a\0", 0)).reply, err(ErrorCode::BadArguments));
        assert_eq!(h.op(create("/b", 7)).reply, err(ErrorCode::BadArguments));
        let before = h.tree.digest();
        let last = h.tree.last_zxid();
        assert_eq!(h.op(create("/a", 0)).reply, err(ErrorCode::NodeExists));
        assert_eq!((h.tree.digest(), h.tree.last_zxid()), (before, last + 1));
    }

    #[test]
    fn ttl_rules() {
        let mut h = Harness::new();
        let ttl = |flags, ttl_ms| TxnOp::Create {
            op: op::CREATE_TTL,
            request: crate::proto::CreateRequest {
                ttl_ms: Some(ttl_ms),
                ..create_request("/t", b"", flags, Acl::open_unsafe())
            },
        };
        assert_eq!(h.op(ttl(5, 1000)).reply, err(ErrorCode::Unimplemented));
        assert_eq!(h.op(create("/t", 5)).reply, err(ErrorCode::Unimplemented));
        h.tree.set_extended_types_enabled(true);
        assert_eq!(h.op(create("/t", 5)).reply, err(ErrorCode::BadArguments));
        assert_eq!(
            h.op(create_op(op::CREATE2, "/t", b"", 6)).reply,
            err(ErrorCode::BadArguments)
        );
        assert_eq!(h.op(ttl(5, 0)).reply, err(ErrorCode::BadArguments));
        assert_eq!(h.op(ttl(5, 1 << 40)).reply, err(ErrorCode::BadArguments));
        assert_eq!(h.op(ttl(0, 1000)).reply, err(ErrorCode::BadArguments));
        let applied = h.op(ttl(5, (1 << 40) - 1));
        let stat = h.tree.stat("/t").unwrap();
        assert_eq!(
            applied.reply,
            Ok(Response::Create2 {
                path: "/t".into(),
                stat
            })
        );
        assert_eq!(stat.ephemeral_owner, 0, "ZooKeeper hides the TTL marker");
        assert_eq!(
            h.tree.kind("/t"),
            Some(NodeKind::Ttl {
                ttl_ms: (1 << 40) - 1
            })
        );
        assert_eq!(
            NodeKind::Ttl { ttl_ms: 5 }.owner(),
            (0xffu64 << 56) as i64 | 5
        );
    }

    #[test]
    fn containers_and_ephemerals() {
        let mut h = Harness::new();
        assert_eq!(
            h.op(create_op(op::CREATE_CONTAINER, "/c", b"", 0)).reply,
            err(ErrorCode::BadArguments)
        );
        assert!(h
            .op(create_op(op::CREATE_CONTAINER, "/c", b"", 4))
            .reply
            .is_ok());
        assert_eq!(h.tree.kind("/c"), Some(NodeKind::Container));
        assert_eq!(h.tree.stat("/c").unwrap().ephemeral_owner, 0);
        assert!(h.op(create("/c/e", 1)).reply.is_ok());
        assert_eq!(h.tree.stat("/c/e").unwrap().ephemeral_owner, SESSION);
        assert_eq!(
            h.op(create("/c/e/x", 0)).reply,
            err(ErrorCode::NoChildrenForEphemerals)
        );
        assert_eq!(h.tree.ephemerals(SESSION, "/"), vec!["/c/e".to_owned()]);
        assert_eq!(h.tree.ephemeral_count(), 1);
        assert_eq!(
            h.run(0x999, create("/x", 0)).reply,
            err(ErrorCode::SessionExpired)
        );
        assert_eq!(
            h.run(0, create("/x", 1)).reply,
            err(ErrorCode::SessionExpired)
        );
        assert!(h.run(0, create("/x", 0)).reply.is_ok());
    }

    #[test]
    fn create_needs_create_permission_on_parent() {
        let mut h = Harness::new();
        let acl = vec![Acl {
            perms: perms::ALL & !perms::CREATE,
            id: Id::anyone(),
        }];
        h.op(TxnOp::Create {
            op: op::CREATE,
            request: create_request("/p", b"", 0, acl),
        });
        assert_eq!(h.op(create("/p/x", 0)).reply, err(ErrorCode::NoAuth));
        h.auth = vec![Id::new("super", "super")];
        assert!(h.op(create("/p/x", 0)).reply.is_ok());
    }
}
