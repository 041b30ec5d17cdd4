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
    /// None: null data.
    data: Option<Vec<u8>>,
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
    triggers.push(tree.watch_trigger(plan.path, EventType::NodeDataChanged));
    stat
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{op, perms, Acl, ErrorCode, EventType, Id, Response};
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    #[test]
    fn set_data_bumps_version_and_fires() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        h.time_ms += 5;
        let applied = h.op(set_data("/a", b"xyz", 0));
        let stat = h.tree.stat("/a").unwrap();
        assert_eq!(applied.reply, Ok(Response::Stat(stat)));
        assert_eq!(
            (stat.version, stat.mzxid, stat.mtime, stat.data_length),
            (1, applied.zxid, TIME_MS + 5, 3)
        );
        assert_eq!(
            triggered(&applied),
            vec![("/a", EventType::NodeDataChanged)]
        );
        assert_eq!(h.tree.get_data("/a", &[]).unwrap().0, Some(b"xyz".to_vec()));
        // Paths plus data of every node but the root: 10 + 16 + 17 + 2 + 3.
        assert_eq!(h.tree.data_size_bytes(), 48);
        assert_eq!(h.tree.digest(), h.tree.digest_full());
    }

    #[test]
    fn null_data_is_kept_apart_from_empty() {
        let mut h = Harness::new();
        h.op(create_null_op(op::CREATE2, "/n", 0));
        assert_eq!(h.tree.get_data("/n", &[]).unwrap().0, None);
        let bytes = h.tree.data_size_bytes();
        let with_null = h.tree.digest();
        h.op(set_data("/n", b"", -1));
        let (data, stat) = h.tree.get_data("/n", &[]).unwrap();
        assert_eq!((data, stat.data_length), (Some(Vec::new()), 0));
        assert_eq!(h.tree.data_size_bytes(), bytes, "null counts as 0 bytes");
        assert_ne!(
            h.tree.digest(),
            with_null,
            "the digest tells null from empty"
        );
        h.op(set_null_data("/n", -1));
        let (data, stat) = h.tree.get_data("/n", &[]).unwrap();
        assert_eq!((data, stat.data_length, stat.version), (None, 0, 2));
        assert_eq!(h.tree.digest(), h.tree.digest_full());
    }

    #[test]
    fn version_skips_minus_one() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        h.tree.update_meta("/a", |meta| meta.version = -2);
        h.op(set_data("/a", b"", -2));
        assert_eq!(h.tree.stat("/a").unwrap().version, 0);
    }

    #[test]
    fn set_data_errors() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        assert_eq!(
            h.op(set_data("/a", b"", 3)).reply,
            Err(ErrorCode::BadVersion)
        );
        assert_eq!(h.op(set_data("/b", b"", -1)).reply, Err(ErrorCode::NoNode));
        assert_eq!(
            h.op(set_data("/a/", b"", -1)).reply,
            Err(ErrorCode::BadArguments)
        );
        assert_eq!(
            h.op(set_data("/zookeeper/config", b"", -1)).reply,
            Err(ErrorCode::NoAuth)
        );
        let acl = vec![Acl {
            perms: perms::READ,
            id: Id::anyone(),
        }];
        h.op(TxnOp::Create {
            op: op::CREATE,
            request: create_request("/r", b"", 0, acl),
        });
        assert_eq!(h.op(set_data("/r", b"", -1)).reply, Err(ErrorCode::NoAuth));
        assert!(h.op(set_data("/zookeeper", b"x", -1)).reply.is_ok());
    }
}
