//! `txn`: the replicated log entry and the one deterministic `apply`. (skeleton)
use crate::proto::{
    CheckVersionRequest, CreateRequest, DeleteRequest, ErrorCode, Id, MultiOp, Response, SessionId,
    SetAclRequest, SetDataRequest, Zxid,
};
use crate::tree::{watch::WatchTrigger, Tree};

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

pub fn apply(tree: &mut Tree, entry: &TxnEntry) -> Applied {
    let _ = (tree, entry);
    todo!()
}
