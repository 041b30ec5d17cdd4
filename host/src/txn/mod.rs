//! `txn`: the replicated log entry and the one deterministic `apply`. Pure: the entry carries
//! everything (zxid, leader time, session, the caller's ids); no clock, no I/O, no randomness.
//! It must not know about sockets or consensus. Entry point: [`apply`].
//!
//! Each write op has its file under `ops/` with a `check` (every ZooKeeper check, in the
//! order ZooKeeper 3.8's PrepRequestProcessor makes them, touching nothing) and an `execute`
//! (the mutation, which cannot fail). A multi runs check+execute per sub-op inside a tree
//! journal, so later sub-ops see earlier ones, and rolls everything back on the first failure.
//!
//! Every entry, even a failed one, advances the tree's last zxid: ZooKeeper 3.8 also spends a
//! zxid on a failed write and puts that new zxid in the reply header (checked: a create that
//! fails with NodeExists answers with zxid = previous + 1; so do failed and empty multis).

pub mod codec;
mod ops;

use crate::proto::{
    op, CheckVersionRequest, CreateRequest, DeleteRequest, Id, MultiOp, Response, SessionId,
};
use crate::proto::{ErrorCode, MultiResult, SetAclRequest, SetDataRequest, Zxid};
use crate::tree::{watch::WatchTrigger, Tree, TreeError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnEntry {
    pub zxid: Zxid,
    pub time_ms: i64,
    pub session_id: SessionId,
    pub auth: Vec<Id>,
    pub op: TxnOp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    CreateSession { timeout_ms: i32, password: [u8; 16] },
    CloseSession,
    Create { op: i32, request: CreateRequest },
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    SetAcl(SetAclRequest),
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    Reap { path: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub zxid: Zxid,
    pub reply: Result<Response, ErrorCode>,
    pub triggers: Vec<WatchTrigger>,
}

/// What an op sees of its entry.
pub(crate) struct Ctx<'a> {
    pub zxid: Zxid,
    pub time_ms: i64,
    pub session_id: SessionId,
    pub auth: &'a [Id],
}

impl Ctx<'_> {
    /// Writes need a live session; session 0 is the server's own (reaper and other internal
    /// txns).
    pub fn require_session(&self, tree: &Tree) -> Result<(), TreeError> {
        if self.session_id == 0 || tree.session(self.session_id).is_some() {
            Ok(())
        } else {
            Err(TreeError::SessionExpired)
        }
    }
}

/// Applies one committed entry. Same tree + same entry = same result on every replica.
pub fn apply(tree: &mut Tree, entry: &TxnEntry) -> Applied {
    tree.advance_zxid(entry.zxid);
    let ctx = Ctx {
        zxid: entry.zxid,
        time_ms: entry.time_ms,
        session_id: entry.session_id,
        auth: &entry.auth,
    };
    let mut triggers = Vec::new();
    let reply = match &entry.op {
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => ops::session::create(tree, &ctx, *timeout_ms, *password),
        TxnOp::CloseSession => ops::session::close(tree, &ctx, &mut triggers),
        TxnOp::Reap { path } => ops::reap::apply(tree, &ctx, path, &mut triggers),
        TxnOp::Multi(sub_ops) => Ok(ops::multi::apply(tree, &ctx, sub_ops, &mut triggers)),
        TxnOp::Create { op, request } => {
            single(ops::create::apply(tree, &ctx, *op, request, &mut triggers).map(create_response))
        }
        TxnOp::Delete(request) => {
            single(ops::delete::apply(tree, &ctx, request, &mut triggers).map(|()| Response::Empty))
        }
        TxnOp::SetData(request) => {
            single(ops::set_data::apply(tree, &ctx, request, &mut triggers).map(Response::Stat))
        }
        TxnOp::SetAcl(request) => {
            single(ops::set_acl::apply(tree, &ctx, request).map(Response::Stat))
        }
        TxnOp::Check(request) => single(ops::check::apply(tree, &ctx, request).map(Response::Stat)),
    };
    Applied {
        zxid: entry.zxid,
        reply,
        triggers,
    }
}

fn single(result: Result<Response, TreeError>) -> Result<Response, ErrorCode> {
    result.map_err(|error| error.code())
}

fn create_response(created: ops::create::Created) -> Response {
    if created.op == op::CREATE {
        Response::Create { path: created.path }
    } else {
        Response::Create2 {
            path: created.path,
            stat: created.stat,
        }
    }
}

/// The multi result of a successful create sub-op.
fn create_result(created: ops::create::Created) -> MultiResult {
    if created.op == op::CREATE {
        MultiResult::Create { path: created.path }
    } else {
        MultiResult::Create2 {
            path: created.path,
            stat: created.stat,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod model_tests;
