//! Test helpers: a tree with a session, and entries with increasing zxids.

use crate::proto::{op, Acl, CheckVersionRequest, CreateRequest, DeleteRequest, Id, MultiOp};
use crate::proto::{SetAclRequest, SetDataRequest};
use crate::tree::Tree;

use super::{apply, Applied, TxnEntry, TxnOp};

pub(crate) const SESSION: i64 = 0x100;
pub(crate) const TIME_MS: i64 = 1_000_000;

/// A tree plus the next zxid to use.
pub(crate) struct Harness {
    pub tree: Tree,
    pub zxid: i64,
    pub time_ms: i64,
    pub auth: Vec<Id>,
    /// Every entry applied so far, for replays.
    pub entries: Vec<TxnEntry>,
}

impl Harness {
    /// A fresh tree with session `SESSION` registered (zxid 1).
    pub fn new() -> Harness {
        let mut harness = Harness {
            tree: Tree::new(),
            zxid: 0,
            time_ms: TIME_MS,
            auth: Vec::new(),
            entries: Vec::new(),
        };
        harness.run(
            SESSION,
            TxnOp::CreateSession {
                timeout_ms: 30_000,
                password: [7; 16],
            },
        );
        harness
    }

    pub fn run(&mut self, session_id: i64, op: TxnOp) -> Applied {
        self.zxid += 1;
        let entry = TxnEntry {
            zxid: self.zxid,
            time_ms: self.time_ms,
            session_id,
            auth: self.auth.clone(),
            op,
        };
        self.entries.push(entry.clone());
        apply(&mut self.tree, &entry)
    }

    pub fn op(&mut self, op: TxnOp) -> Applied {
        self.run(SESSION, op)
    }
}

pub(crate) fn create_op(code: i32, path: &str, data: &[u8], flags: i32) -> TxnOp {
    TxnOp::Create {
        op: code,
        request: create_request(path, data, flags, Acl::open_unsafe()),
    }
}

pub(crate) fn create(path: &str, flags: i32) -> TxnOp {
    create_op(op::CREATE, path, b"", flags)
}

pub(crate) fn create_request(path: &str, data: &[u8], flags: i32, acl: Vec<Acl>) -> CreateRequest {
    CreateRequest {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        acl,
        flags,
        ttl_ms: None,
    }
}

pub(crate) fn multi_create(path: &str) -> MultiOp {
    MultiOp::Create {
        op: op::CREATE,
        request: create_request(path, b"", 0, Acl::open_unsafe()),
    }
}

pub(crate) fn delete(path: &str, version: i32) -> TxnOp {
    TxnOp::Delete(DeleteRequest {
        path: path.to_owned(),
        version,
    })
}

pub(crate) fn set_data(path: &str, data: &[u8], version: i32) -> TxnOp {
    TxnOp::SetData(SetDataRequest {
        path: path.to_owned(),
        data: Some(data.to_vec()),
        version,
    })
}

/// A setData of null data (jute length -1).
pub(crate) fn set_null_data(path: &str, version: i32) -> TxnOp {
    TxnOp::SetData(SetDataRequest {
        path: path.to_owned(),
        data: None,
        version,
    })
}

/// A create of null data.
pub(crate) fn create_null_op(code: i32, path: &str, flags: i32) -> TxnOp {
    TxnOp::Create {
        op: code,
        request: CreateRequest {
            data: None,
            ..create_request(path, b"", flags, Acl::open_unsafe())
        },
    }
}

pub(crate) fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> TxnOp {
    TxnOp::SetAcl(SetAclRequest {
        path: path.to_owned(),
        acl,
        version,
    })
}

pub(crate) fn check(path: &str, version: i32) -> TxnOp {
    TxnOp::Check(CheckVersionRequest {
        path: path.to_owned(),
        version,
    })
}

/// The (path, event) pairs of what an entry triggered, in order.
pub(crate) fn triggered(applied: &Applied) -> Vec<(&str, crate::proto::EventType)> {
    applied
        .triggers
        .iter()
        .map(|trigger| (trigger.path.as_str(), trigger.event))
        .collect()
}
