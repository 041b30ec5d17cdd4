//! The jute records of the client protocol as plain Rust structs, named as in
//! `zookeeper.jute`. The structs are data only; each child file holds the encoding of one
//! opcode family (request and response records, their `Record` impls and tests):
//!
//! - `stat_acl`: Id, ACL, Stat, shared by everything below.
//! - `handshake`: ConnectRequest / ConnectResponse.
//! - `header`: RequestHeader, ReplyHeader, MultiHeader.
//! - `create`: create, create2, createContainer, createTTL.
//! - `node`: delete, exists, getData, setData, getChildren(2), getACL, setACL, check.
//! - `multi`: multi and multiRead requests and results.
//! - `watches`: setWatches(2), addWatch, checkWatches, removeWatches, WatcherEvent.
//! - `session`: auth, reconfig, whoAmI's ClientInfo.
//!
//! Response bodies that are a Stat, a string or a list are written directly by the codec.

mod create;
mod handshake;
mod header;
mod multi;
mod node;
mod session;
mod stat_acl;
mod watches;

pub use handshake::{CONNECT_REQUEST_BYTES_MIN, CONNECT_RESPONSE_BYTES_MIN};
pub use header::{MULTI_HEADER_BYTES, REPLY_HEADER_BYTES, REQUEST_HEADER_BYTES};
pub use stat_acl::STAT_BYTES;

pub(crate) use create::{put_create_request, read_create_request};
pub(crate) use multi::{
    put_multi_ops, put_multi_read_ops, put_multi_results, read_multi_ops, read_multi_read_ops,
    read_multi_results,
};
pub(crate) use stat_acl::{put_acl_vec, read_acl_vec};
pub(crate) use watches::{put_set_watches, read_set_watches};

use super::types::{Acl, Stat};

/// First frame from a client (no RequestHeader).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// `None` when the client did not send the trailing readOnly byte (old clients): then the
    /// response must not carry one either.
    pub read_only: Option<bool>,
}

/// First frame from the server (no ReplyHeader).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    /// Echoed only when the client sent the readOnly byte.
    pub read_only: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RequestHeader {
    pub xid: i32,
    pub op: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// create, create2, createContainer (flags = 4) and createTTL (ttl set).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CreateRequest {
    pub path: String,
    /// None: the client sent null (length -1); ZooKeeper keeps it as null data.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    /// Only createTTL carries it on the wire.
    pub ttl_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRequest {
    pub path: String,
    pub version: i32,
}

/// exists, getData, getChildren, getChildren2 all share this shape.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PathWatchRequest {
    pub path: String,
    pub watch: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetDataRequest {
    pub path: String,
    /// None: null data, as for create.
    pub data: Option<Vec<u8>>,
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Vec<Acl>,
    pub version: i32,
}

/// check (op 13): path + expected version.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CheckVersionRequest {
    pub path: String,
    pub version: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ReconfigRequest {
    pub joining_servers: Option<String>,
    pub leaving_servers: Option<String>,
    pub new_members: Option<String>,
    pub cur_config_id: i64,
}

/// checkWatches / removeWatches: path + WatcherType code.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WatchesRequest {
    pub path: String,
    pub watcher_type: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuthPacket {
    pub auth_type: i32,
    pub scheme: String,
    pub auth: Vec<u8>,
}

/// SetWatches (101) has the first four lists; SetWatches2 (105) all six.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data_watches: Vec<String>,
    pub exist_watches: Vec<String>,
    pub child_watches: Vec<String>,
    pub persistent_watches: Vec<String>,
    pub persistent_recursive_watches: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AddWatchRequest {
    pub path: String,
    pub mode: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
}

/// One write sub-op of a `multi`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiOp {
    /// op code 1, 15, 19 or 21 (kept so the result header type can follow ZooKeeper).
    Create {
        op: i32,
        request: CreateRequest,
    },
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
}

/// One read sub-op of a `multiRead`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiReadOp {
    GetChildren(String),
    GetData(String),
}

/// One result of a `multi` or `multiRead`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    /// Result type 1: path only.
    Create {
        path: String,
    },
    /// Result type 15 (create2, createContainer, createTTL): path and Stat.
    Create2 {
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        /// None: the node's data is null (answered as length -1).
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    Error(i32),
}
