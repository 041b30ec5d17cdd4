//! createSession and closeSession txns. Sessions are replicated so every replica agrees on
//! which ephemerals exist. Closing deletes the session's ephemerals in sorted path order (each
//! firing NodeDeleted and the parent's NodeChildrenChanged, like a delete) and then forgets
//! the session. Closing an unknown session is a no-op (an expiry racing an explicit close).

use crate::proto::{ErrorCode, Response};
use crate::tree::watch::WatchTrigger;
use crate::tree::{SessionRecord, Tree};
use crate::txn::Ctx;

use super::delete::remove_leaf;

pub(crate) fn create(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    timeout_ms: i32,
    password: [u8; 16],
) -> Result<Response, ErrorCode> {
    tree.put_session(
        ctx.session_id,
        SessionRecord {
            timeout_ms,
            password,
        },
    );
    Ok(Response::Empty)
}

pub(crate) fn close(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Response, ErrorCode> {
    if tree.session(ctx.session_id).is_none() {
        return Ok(Response::Empty);
    }
    for path in tree.ephemerals(ctx.session_id, "/") {
        remove_leaf(tree, ctx, path, triggers);
    }
    tree.drop_session(ctx.session_id);
    Ok(Response::Empty)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::proto::{ErrorCode, EventType, Response};
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    #[test]
    fn close_deletes_ephemerals_in_order() {
        let mut h = Harness::new();
        h.op(create("/b", 0));
        h.op(create("/b/e", 1));
        h.op(create("/a", 1));
        h.op(create("/keep", 0));
        assert_eq!(h.tree.ephemerals(SESSION, "/b"), vec!["/b/e".to_owned()]);
        let applied = h.op(TxnOp::CloseSession);
        assert_eq!(applied.reply, Ok(Response::Empty));
        let fired: Vec<(&str, EventType)> = applied
            .triggers
            .iter()
            .map(|t| (t.path.as_str(), t.event))
            .collect();
        assert_eq!(
            fired,
            vec![
                ("/a", EventType::NodeDeleted),
                ("/", EventType::NodeChildrenChanged),
                ("/b/e", EventType::NodeDeleted),
                ("/b", EventType::NodeChildrenChanged),
            ]
        );
        assert_eq!(h.tree.session(SESSION), None);
        assert_eq!(
            (h.tree.ephemeral_count(), h.tree.stat("/keep").is_some()),
            (0, true)
        );
        assert_eq!(h.tree.digest(), h.tree.digest_full());
        assert_eq!(h.op(create("/x", 0)).reply, Err(ErrorCode::SessionExpired));
        assert_eq!(h.op(TxnOp::CloseSession).reply, Ok(Response::Empty));
    }

    #[test]
    fn sessions_are_listed_and_in_the_digest() {
        let mut h = Harness::new();
        let before = h.tree.digest();
        h.run(
            7,
            TxnOp::CreateSession {
                timeout_ms: 4000,
                password: [1; 16],
            },
        );
        assert_ne!(h.tree.digest(), before);
        let ids: Vec<i64> = h.tree.sessions().into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![7, SESSION]);
        assert_eq!(
            h.tree.session(7).map(|record| record.timeout_ms),
            Some(4000)
        );
        h.run(7, TxnOp::CloseSession);
        assert_eq!(h.tree.digest(), before);
    }
}
