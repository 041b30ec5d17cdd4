//! Typed requests (client -> server, after the handshake) and responses (server -> client).

use super::records::*;
use super::types::{op, Acl, Stat};

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
        /// None: the node's data is null (answered as length -1).
        data: Option<Vec<u8>>,
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

impl Request {
    /// The op code a client puts in the RequestHeader for this request. SetWatches is sent
    /// as SetWatches2 (105) exactly when it carries persistent watches, as the Java client
    /// does, so servers that predate op 105 still get op 101.
    pub fn op(&self) -> i32 {
        match self {
            Request::Ping => op::PING,
            Request::CloseSession => op::CLOSE_SESSION,
            Request::Create { op, .. } => *op,
            Request::Delete(_) => op::DELETE,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl { .. } => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Sync { .. } => op::SYNC,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::SetWatches(watches) => {
                let persistent = !watches.persistent_watches.is_empty()
                    || !watches.persistent_recursive_watches.is_empty();
                if persistent {
                    op::SET_WATCHES2
                } else {
                    op::SET_WATCHES
                }
            }
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::Auth(_) => op::AUTH,
            Request::Sasl { .. } => op::SASL,
            Request::GetEphemerals { .. } => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => op::GET_ALL_CHILDREN_NUMBER,
            Request::WhoAmI => op::WHO_AM_I,
        }
    }
}
