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
