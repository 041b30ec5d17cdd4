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
    data: Vec<u8>,
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
    tree.insert_node(plan.path.clone(), meta, plan.data, plan.acl);
    let zxid = ctx.zxid;
    tree.update_meta(&plan.parent, |parent| {
        parent.cversion = parent.cversion.wrapping_add(1);
        parent.pzxid = zxid;
    });
    triggers.push(WatchTrigger {
        path: plan.path.clone(),
        event: EventType::NodeCreated,
    });
    triggers.push(WatchTrigger {
        path: plan.parent,
        event: EventType::NodeChildrenChanged,
    });
    let stat = tree.stat(&plan.path).unwrap_or_default();
    Created {
        op: plan.op,
        path: plan.path,
        stat,
    }
}
