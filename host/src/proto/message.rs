//! Typed requests (client -> server, after the handshake) and responses (server -> client).

use super::records::*;
use super::types::{Acl, Stat};

/// A decoded client request body, selected by the header's op code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Ping,
    CloseSession,
    /// op is CREATE, CREATE2, CREATE_CONTAINER or CREATE_TTL.
    Create {
        op: i32,
        request: CreateRequest,
    },
    Delete(DeleteRequest),
    Exists(PathWatchRequest),
    GetData(PathWatchRequest),
    SetData(SetDataRequest),
    GetAcl {
        path: String,
    },
    SetAcl(SetAclRequest),
    GetChildren(PathWatchRequest),
    GetChildren2(PathWatchRequest),
    Sync {
        path: String,
    },
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    MultiRead(Vec<MultiReadOp>),
    Reconfig(ReconfigRequest),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    /// SetWatches (101) and SetWatches2 (105); the op code tells which.
    SetWatches(SetWatches),
    AddWatch(AddWatchRequest),
    Auth(AuthPacket),
    Sasl {
        token: Vec<u8>,
    },
    GetEphemerals {
        prefix_path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
}

/// A response body; encoded after a ReplyHeader. `Empty` has no body (also used whenever the
/// header carries a non-zero error, except for multi).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Empty,
    /// create (op 1).
    Create {
        path: String,
    },
    /// create2 / createContainer / createTTL.
    Create2 {
        path: String,
        stat: Stat,
    },
    /// exists, setData, setACL, check: a Stat alone.
    Stat(Stat),
    GetData {
        data: Vec<u8>,
        stat: Stat,
    },
    GetAcl {
        acl: Vec<Acl>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    GetChildren2 {
        children: Vec<String>,
        stat: Stat,
    },
    Sync {
        path: String,
    },
    Multi(Vec<MultiResult>),
    Sasl {
        token: Vec<u8>,
    },
    GetEphemerals {
        paths: Vec<String>,
    },
    GetAllChildrenNumber {
        total: i32,
    },
    WhoAmI(Vec<ClientInfo>),
    /// addWatch answers an ErrorResponse record with err 0.
    ErrorResponse(i32),
}
