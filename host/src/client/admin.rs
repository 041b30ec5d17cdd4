//! The rest of the client API beyond the basic CRUD helpers in `mod.rs`: ACLs, create with
//! any mode / TTL / stat, getChildren2, persistent watches, watch removal, ephemerals, child
//! counts, whoami, the config znode and reconfig. `zkw cli` (the zkCli-compatible shell) is
//! the main user; each helper waits for one reply through [`Client::submit`].

use super::{unexpected, Client, ClientError};
use crate::proto::{
    op, Acl, AddWatchRequest, ClientInfo, CreateRequest, ReconfigRequest, Request, Response,
    SetAclRequest, Stat, WatchesRequest,
};

/// The znode holding the cluster's dynamic configuration (ZooDefs.CONFIG_NODE).
pub const CONFIG_NODE: &str = "/zookeeper/config";

/// What a create asks for beyond path and data: the raw CreateMode flags, an optional TTL
/// (only with the TTL modes) and the ACL.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub flags: i32,
    pub ttl_ms: Option<i64>,
    pub acl: Vec<Acl>,
}

impl Client {
    /// create2 (op 15), or createTTL (op 21) when `options.ttl_ms` is set, or createContainer
    /// (op 19) for the container flag: returns the created path and its Stat. `data` None is
    /// null data (zkCli's `create` without data).
    pub async fn create_with(
        &self,
        path: &str,
        data: Option<&[u8]>,
        options: &CreateOptions,
    ) -> Result<(String, Stat), ClientError> {
        // ZooKeeper's Java client picks the op by mode the same way.
        let code = if options.ttl_ms.is_some() {
            op::CREATE_TTL
        } else if options.flags == crate::proto::CreateMode::Container as i32 {
            op::CREATE_CONTAINER
        } else {
            op::CREATE2
        };
        let request = Request::Create {
            op: code,
            request: CreateRequest {
                path: path.to_owned(),
                data: data.map(<[u8]>::to_vec),
                acl: options.acl.clone(),
                flags: options.flags,
                ttl_ms: options.ttl_ms,
            },
        };
        match self.submit(request).await? {
            Response::Create2 { path, stat } => Ok((path, stat)),
            other => Err(unexpected(code, &other)),
        }
    }

    /// getACL (op 6): the ACL and the node's Stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), ClientError> {
        let request = Request::GetAcl {
            path: path.to_owned(),
        };
        match self.submit(request).await? {
            Response::GetAcl { acl, stat } => Ok((acl, stat)),
            other => Err(unexpected(op::GET_ACL, &other)),
        }
    }

    /// setACL (op 7) with an expected ACL `version` (-1: any); returns the new Stat.
    pub async fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Stat, ClientError> {
        let request = Request::SetAcl(SetAclRequest {
            path: path.to_owned(),
            acl: acl.to_vec(),
            version,
        });
        match self.submit(request).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected(op::SET_ACL, &other)),
        }
    }

    /// getChildren2 (op 12): the child names (unsorted) and the parent's Stat.
    pub async fn get_children2(
        &self,
        path: &str,
        watch: bool,
    ) -> Result<(Vec<String>, Stat), ClientError> {
        let request = Request::GetChildren2(crate::proto::PathWatchRequest {
            path: path.to_owned(),
            watch,
        });
        match self.submit(request).await? {
            Response::GetChildren2 { children, stat } => Ok((children, stat)),
            other => Err(unexpected(op::GET_CHILDREN2, &other)),
        }
    }

    /// addWatch (op 106): `mode` is an [`crate::proto::AddWatchMode`] code.
    pub async fn add_watch(&self, path: &str, mode: i32) -> Result<(), ClientError> {
        let request = Request::AddWatch(AddWatchRequest {
            path: path.to_owned(),
            mode,
        });
        match self.submit(request).await? {
            Response::ErrorResponse(0) | Response::Empty => Ok(()),
            Response::ErrorResponse(code) => Err(ClientError::from_code(code)),
            other => Err(unexpected(op::ADD_WATCH, &other)),
        }
    }

    /// removeWatches (op 18): removes this session's watches of `watcher_type` (a
    /// [`crate::proto::WatcherType`] code) on `path`; NoWatcher when there is none.
    pub async fn remove_watches(&self, path: &str, watcher_type: i32) -> Result<(), ClientError> {
        let request = Request::RemoveWatches(WatchesRequest {
            path: path.to_owned(),
            watcher_type,
        });
        self.submit(request).await.map(drop)
    }

    /// checkWatches (op 17): Ok when this session has a watch of that type on `path`.
    pub async fn check_watches(&self, path: &str, watcher_type: i32) -> Result<(), ClientError> {
        let request = Request::CheckWatches(WatchesRequest {
            path: path.to_owned(),
            watcher_type,
        });
        self.submit(request).await.map(drop)
    }

    /// getEphemerals (op 103): this session's ephemeral nodes under `prefix_path`.
    pub async fn get_ephemerals(&self, prefix_path: &str) -> Result<Vec<String>, ClientError> {
        let request = Request::GetEphemerals {
            prefix_path: prefix_path.to_owned(),
        };
        match self.submit(request).await? {
            Response::GetEphemerals { paths } => Ok(paths),
            other => Err(unexpected(op::GET_EPHEMERALS, &other)),
        }
    }

    /// getAllChildrenNumber (op 104): how many nodes lie under `path` (all depths).
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32, ClientError> {
        let request = Request::GetAllChildrenNumber {
            path: path.to_owned(),
        };
        match self.submit(request).await? {
            Response::GetAllChildrenNumber { total } => Ok(total),
            other => Err(unexpected(op::GET_ALL_CHILDREN_NUMBER, &other)),
        }
    }

    /// whoAmI (op 107): the identities this session is authenticated as.
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>, ClientError> {
        match self.submit(Request::WhoAmI).await? {
            Response::WhoAmI(infos) => Ok(infos),
            other => Err(unexpected(op::WHO_AM_I, &other)),
        }
    }

    /// getConfig: the data and Stat of [`CONFIG_NODE`], as ZooKeeper's client reads it.
    pub async fn get_config(&self, watch: bool) -> Result<(Vec<u8>, Stat), ClientError> {
        self.get_data(CONFIG_NODE, watch).await
    }

    /// reconfig (op 16): incremental (`joining` / `leaving`) or whole (`new_members`);
    /// `from_config` is the expected config version (-1: any). Returns the new config.
    pub async fn reconfig(&self, request: ReconfigRequest) -> Result<(Vec<u8>, Stat), ClientError> {
        match self.submit(Request::Reconfig(request)).await? {
            Response::GetData { data, stat } => Ok((data.unwrap_or_default(), stat)),
            other => Err(unexpected(op::RECONFIG, &other)),
        }
    }
}
