//! setACL (op 7). Checks in ZooKeeper 3.8's order: session; path -> BadArguments; ACL ->
//! InvalidACL (before NoNode, checked on 3.8.0); node -> NoNode; ADMIN on the node -> NoAuth;
//! aversion -> BadVersion. Duplicate entries are dropped; more than `acl::ACL_ENTRIES_MAX` is
//! InvalidACL (the server refuses such a list before proposing it). Fires no watch.

use crate::proto::{perms, Acl, SetAclRequest, Stat};
use crate::tree::{acl, validate_path, Tree, TreeError};
use crate::txn::Ctx;

use super::check_and_increment;

pub(crate) struct Plan {
    path: String,
    acl: Vec<Acl>,
    aversion: i32,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{perms, Acl, ErrorCode, Id, Response};
    use crate::tree::acl::digest_id;
    use crate::txn::testing::*;

    #[test]
    fn set_acl_bumps_aversion_and_expands_auth() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        let bob = Id::new("digest", &digest_id("bob:pw"));
        h.auth = vec![Id::new("ip", "127.0.0.1"), bob.clone()];
        let given = vec![
            Acl {
                perms: perms::ALL,
                id: Id::new("auth", ""),
            },
            Acl {
                perms: perms::READ,
                id: Id::anyone(),
            },
        ];
        let applied = h.op(set_acl("/a", given, 0));
        let stat = h.tree.stat("/a").unwrap();
        assert_eq!(applied.reply, Ok(Response::Stat(stat)));
        assert_eq!(stat.aversion, 1);
        assert!(applied.triggers.is_empty());
        let expected = vec![
            Acl {
                perms: perms::ALL,
                id: bob,
            },
            Acl {
                perms: perms::READ,
                id: Id::anyone(),
            },
        ];
        assert_eq!(h.tree.get_acl("/a", &h.auth).unwrap().0, expected);
        assert_eq!(h.tree.digest(), h.tree.digest_full());
        h.auth.clear();
        assert_eq!(
            h.op(set_acl("/a", Acl::open_unsafe(), -1)).reply,
            Err(ErrorCode::NoAuth)
        );
    }

    #[test]
    fn set_acl_errors_in_order() {
        let mut h = Harness::new();
        h.op(create("/a", 0));
        assert_eq!(
            h.op(set_acl("/missing", vec![], -1)).reply,
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            h.op(set_acl("/missing", Acl::open_unsafe(), -1)).reply,
            Err(ErrorCode::NoNode)
        );
        assert_eq!(
            h.op(set_acl("/a", Acl::open_unsafe(), 4)).reply,
            Err(ErrorCode::BadVersion)
        );
        assert_eq!(
            h.op(set_acl("/a/", Acl::open_unsafe(), -1)).reply,
            Err(ErrorCode::BadArguments)
        );
        let zero = vec![Acl {
            perms: 0,
            id: Id::anyone(),
        }];
        assert!(h.op(set_acl("/a", zero, -1)).reply.is_ok());
        assert_eq!(
            h.tree.get_data("/a", &[]),
            Err(crate::tree::TreeError::NoAuth)
        );
    }
}
