//! One `match` from a decoded request to its handling: reads are answered from the local tree,
//! writes become txns proposed to the log, session-level requests (ping, auth, watches) are
//! answered here. Per-session FIFO order: nothing is answered here before every earlier write
//! of the same connection has been applied and answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use super::apply::{ReplyRoute, Route};
use super::connection::reply_frame;
use super::outbound::Outbound;
use super::stats::{ConnectionStats, LastRequest, RequestKind};
use super::TxnProposal;
use super::{Context, Shared, Store};
use crate::proto::{
    acl_bytes, buffer_bytes, multi_result_bytes, op, xid, Acl, AddWatchMode, AddWatchRequest,
    AuthPacket, ClientInfo, CreateMode, EncodeError, ErrorCode, EventType, Id, MultiOp,
    MultiReadOp, MultiResult, PathWatchRequest, ReconfigRequest, ReplyBudget, Request,
    RequestHeader, Response, SessionId, SetWatches, Stat, WatcherType, WatchesRequest,
    MULTI_HEADER_BYTES, STAT_BYTES,
};
use crate::tree::acl::{self, digest_id, RECIPE_ADMIN_SCHEME};
use crate::tree::validate_path;
use crate::tree::watch::{Notification, WatchError, WatchKind};
use crate::txn::identity::admit_identity;
use crate::txn::TxnOp;

/// What the connection does after a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
}

/// Per-connection request state.
pub struct ConnectionState {
    pub id: u64,
    pub peer: SocketAddr,
    pub outbound: Outbound,
    pub stats: Arc<ConnectionStats>,
    pub session_id: Option<SessionId>,
    pub timeout_ms: i32,
    /// The caller's identities for ACL checks: `ip:<addr>` plus whatever addauth added.
    pub auth: Vec<Id>,
    writes_submitted: u64,
    writes_done: Arc<watch::Sender<u64>>,
    writes_done_seen: watch::Receiver<u64>,
}

impl ConnectionState {
    pub fn new(id: u64, peer: SocketAddr, outbound: Outbound, stats: Arc<ConnectionStats>) -> Self {
        let (writes_done, writes_done_seen) = watch::channel(0);
        ConnectionState {
            id,
            peer,
            outbound,
            stats,
            session_id: None,
            timeout_ms: 0,
            auth: Vec::new(),
            writes_submitted: 0,
            writes_done: Arc::new(writes_done),
            writes_done_seen,
        }
    }

    pub fn session_label(&self) -> String {
        self.session_id
            .map_or_else(|| "none".to_owned(), |id| format!("0x{id:x}"))
    }

    /// Waits until every write this connection proposed has been answered.
    async fn wait_for_writes(&mut self) {
        let submitted = self.writes_submitted;
        if *self.writes_done_seen.borrow() >= submitted {
            return;
        }
        let _ = self
            .writes_done_seen
            .wait_for(|done| *done >= submitted)
            .await;
    }
}

/// A request answered from the local tree (after the session's earlier writes): reads and
/// watch bookkeeping.
enum TreeRead {
    Exists(PathWatchRequest),
    GetData(PathWatchRequest),
    /// getChildren, or getChildren2 (`with_stat`: the same plus the node's Stat).
    GetChildren {
        request: PathWatchRequest,
        with_stat: bool,
    },
    GetAcl {
        path: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    GetEphemerals {
        prefix_path: String,
    },
    MultiRead(Vec<MultiReadOp>),
    AddWatch(AddWatchRequest),
    /// checkWatches, or removeWatches (`remove`: the match is removed too).
    CheckWatches {
        request: WatchesRequest,
        remove: bool,
    },
    SetWatches(SetWatches),
}

impl TreeRead {
    /// The request's name in `cons` and the AdminServer (ZooKeeper's `Request.op2String`).
    fn name(&self) -> &'static str {
        match self {
            TreeRead::Exists(_) => "EXIS",
            TreeRead::GetData(_) => "GETD",
            TreeRead::GetAcl { .. } => "GETA",
            TreeRead::GetChildren { .. } => "GETC",
            TreeRead::MultiRead(_) => "MLTR",
            TreeRead::CheckWatches { remove: false, .. } => "CHKW",
            TreeRead::CheckWatches { remove: true, .. } => "REMW",
            TreeRead::SetWatches(_) => "SETW",
            TreeRead::AddWatch(_) => "ADDW",
            TreeRead::GetEphemerals { .. } => "GETE",
            TreeRead::GetAllChildrenNumber { .. } => "GETACN",
        }
    }
}

/// A session-level request answered here, neither a txn nor a read of the tree.
enum Local {
    Ping,
    Auth(AuthPacket),
    Sasl,
    Sync { path: String },
    Reconfig(ReconfigRequest),
    WhoAmI,
}

/// How a request is handled.
enum Handling {
    /// Proposed as a txn; answered once applied.
    Write(TxnOp),
    Read(TreeRead),
    Local(Local),
}

/// The one match over every request kind: a new kind does not compile until it is routed.
fn route(request: Request) -> Handling {
    match request {
        Request::Create { op, request } => Handling::Write(TxnOp::Create { op, request }),
        Request::Delete(request) => Handling::Write(TxnOp::Delete(request)),
        Request::SetData(request) => Handling::Write(TxnOp::SetData(request)),
        Request::SetAcl(request) => Handling::Write(TxnOp::SetAcl(request)),
        Request::Check(request) => Handling::Write(TxnOp::Check(request)),
        Request::Multi(ops) => Handling::Write(TxnOp::Multi(ops)),
        Request::CloseSession => Handling::Write(TxnOp::CloseSession),
        Request::Exists(request) => Handling::Read(TreeRead::Exists(request)),
        Request::GetData(request) => Handling::Read(TreeRead::GetData(request)),
        Request::GetChildren(request) => Handling::Read(TreeRead::GetChildren {
            request,
            with_stat: false,
        }),
        Request::GetChildren2(request) => Handling::Read(TreeRead::GetChildren {
            request,
            with_stat: true,
        }),
        Request::GetAcl { path } => Handling::Read(TreeRead::GetAcl { path }),
        Request::GetAllChildrenNumber { path } => {
            Handling::Read(TreeRead::GetAllChildrenNumber { path })
        }
        Request::GetEphemerals { prefix_path } => {
            Handling::Read(TreeRead::GetEphemerals { prefix_path })
        }
        Request::MultiRead(ops) => Handling::Read(TreeRead::MultiRead(ops)),
        Request::AddWatch(request) => Handling::Read(TreeRead::AddWatch(request)),
        Request::CheckWatches(request) => Handling::Read(TreeRead::CheckWatches {
            request,
            remove: false,
        }),
        Request::RemoveWatches(request) => Handling::Read(TreeRead::CheckWatches {
            request,
            remove: true,
        }),
        Request::SetWatches(watches) => Handling::Read(TreeRead::SetWatches(watches)),
        Request::Ping => Handling::Local(Local::Ping),
        Request::Auth(packet) => Handling::Local(Local::Auth(packet)),
        Request::Sasl { .. } => Handling::Local(Local::Sasl),
        Request::Sync { path } => Handling::Local(Local::Sync { path }),
        Request::Reconfig(request) => Handling::Local(Local::Reconfig(request)),
        Request::WhoAmI => Handling::Local(Local::WhoAmI),
    }
}

/// Handles one request: writes become txns proposed to the log, reads are answered from the
/// local tree, session-level requests here.
pub async fn handle(
    context: &Context,
    state: &mut ConnectionState,
    header: RequestHeader,
    request: Request,
    received_ms: u64,
) -> Flow {
    let xid = header.xid;
    let mut write = match route(request) {
        Handling::Write(write) => write,
        Handling::Read(read) => return answer_read(context, state, xid, read).await,
        Handling::Local(local) => return answer_locally(context, state, xid, local).await,
    };
    if let Some(refused) = refuse_write(&context.shared, state, &mut write) {
        reply_now(context, state, xid, Err(refused)).await;
        return Flow::Continue;
    }
    if let (TxnOp::CloseSession, Some(session_id)) = (&write, state.session_id) {
        context.shared.lock_tracker().set_closing(session_id);
    }
    propose(context, state, xid, op_name(&write), write, received_ms).await
}

/// Refusals decided before a write is proposed: TTL nodes without extendedTypesEnabled, ACL
/// lists past their cap (de-duplicated in place otherwise).
fn refuse_write(shared: &Shared, state: &ConnectionState, write: &mut TxnOp) -> Option<ErrorCode> {
    match write {
        TxnOp::Create { op, request } => {
            refuse_create(shared, *op, request.flags).or_else(|| bound_acl(state, &mut request.acl))
        }
        TxnOp::SetAcl(request) => bound_acl(state, &mut request.acl),
        TxnOp::Multi(ops) => ops.iter_mut().find_map(|sub| match sub {
            MultiOp::Create { op, request } => refuse_create(shared, *op, request.flags)
                .or_else(|| bound_acl(state, &mut request.acl)),
            MultiOp::Delete(_) | MultiOp::SetData(_) | MultiOp::Check(_) => None,
        }),
        TxnOp::Delete(_)
        | TxnOp::SetData(_)
        | TxnOp::Check(_)
        | TxnOp::CloseSession
        | TxnOp::CreateSession { .. }
        | TxnOp::Reap { .. }
        | TxnOp::RecipeTimer { .. }
        | TxnOp::RuntimeCheck { .. } => None,
    }
}

/// TTL nodes only exist with extendedTypesEnabled; ZooKeeper answers Unimplemented otherwise.
fn refuse_create(shared: &Shared, op: i32, flags: i32) -> Option<ErrorCode> {
    let ttl = op == op::CREATE_TTL || CreateMode::from_flags(flags).is_some_and(CreateMode::is_ttl);
    (ttl && !shared.config.extended_types_enabled).then_some(ErrorCode::Unimplemented)
}

/// An ACL is de-duplicated before it is proposed, as ZooKeeper's leader does before writing
/// its txn (apply drops duplicates first too, so the stored list is the same), and refused with
/// InvalidACL past `ACL_ENTRIES_MAX`: a 1 MB list never reaches the log or any apply.
fn bound_acl(state: &ConnectionState, acl: &mut Vec<Acl>) -> Option<ErrorCode> {
    match acl::bounded_unique(acl) {
        Ok(unique) => {
            *acl = unique;
            None
        }
        Err(error) => {
            tracing::warn!(
                session = state.session_label(),
                entries = acl.len(),
                max = acl::ACL_ENTRIES_MAX,
                "ACL above ACL_ENTRIES_MAX refused (InvalidACL)"
            );
            Some(error.code())
        }
    }
}

async fn propose(
    context: &Context,
    state: &mut ConnectionState,
    xid: i32,
    op_name: &'static str,
    op: TxnOp,
    received_ms: u64,
) -> Flow {
    let Some(session_id) = state.session_id else {
        return Flow::Close;
    };
    state.writes_submitted += 1;
    let route = ReplyRoute {
        outbound: state.outbound.clone(),
        xid,
        op_name,
        seq: state.writes_submitted,
        done: Arc::clone(&state.writes_done),
        received_ms,
        stats: Arc::clone(&state.stats),
    };
    let proposal = TxnProposal {
        session_id,
        auth: state.auth.clone(),
        op,
        route: Some(Route::Reply(route)),
        leader_only: false,
    };
    if proposal.propose(&context.proposer).await.is_err() {
        return Flow::Close;
    }
    Flow::Continue
}

fn op_name(op: &TxnOp) -> &'static str {
    match op {
        TxnOp::CreateSession { .. } => "CREA",
        TxnOp::CloseSession => "CLOS",
        TxnOp::Create { .. } => "CREA",
        TxnOp::Delete(_) => "DELE",
        TxnOp::SetData(_) => "SETD",
        TxnOp::SetAcl(_) => "SETA",
        TxnOp::Check(_) => "CHEC",
        TxnOp::Multi(_) => "MULT",
        TxnOp::Reap { .. } => "DELE",
        TxnOp::RecipeTimer { .. } | TxnOp::RuntimeCheck { .. } => "NOOP",
    }
}

/// Waits for the connection's earlier writes (per-session FIFO order); false when the server
/// failed meanwhile: then nothing is answered and the connection closes.
async fn settle(context: &Context, state: &mut ConnectionState) -> bool {
    state.wait_for_writes().await;
    if context.shared.fatal.is_raised() {
        state.outbound.close("the server is failing");
        return false;
    }
    true
}

/// A read (or watch bookkeeping) answered from the local tree after the session's earlier
/// writes; the reply is encoded under the store lock, bounded by jute.maxbuffer.
async fn answer_read(
    context: &Context,
    state: &mut ConnectionState,
    xid: i32,
    read: TreeRead,
) -> Flow {
    if !settle(context, state).await {
        return Flow::Close;
    }
    let shared = &context.shared;
    let name = read.name();
    let mut budget = ReplyBudget::new(shared.config.jute_max_buffer_bytes);
    let mut store = shared.lock_store();
    let result = read_op(&mut store, state, read, &mut budget);
    let zxid = store.tree.last_zxid();
    send(state, xid, zxid, result);
    drop(store);
    record_reply(
        shared,
        &state.stats,
        (name, RequestKind::Read),
        xid,
        zxid,
        shared.clock.monotonic_ms(),
    );
    Flow::Continue
}

/// Session-level requests (no txn, no read of the tree), after the session's earlier writes.
async fn answer_locally(
    context: &Context,
    state: &mut ConnectionState,
    xid: i32,
    request: Local,
) -> Flow {
    if !settle(context, state).await {
        return Flow::Close;
    }
    let shared = &context.shared;
    let kind = if matches!(request, Local::Reconfig(_)) {
        RequestKind::Update
    } else {
        RequestKind::Read
    };
    // ZooKeeper answers an auth packet outside its request pipeline: zxid 0 in the header.
    let outside_pipeline = matches!(request, Local::Auth(_));
    let (result, name, flow) = match request {
        Local::Ping => (Ok(Response::Empty), "PING", Flow::Continue),
        Local::Auth(packet) => {
            let outcome = authenticate(shared, state, &packet.scheme, &packet.auth);
            let flow = if outcome.is_ok() {
                Flow::Continue
            } else {
                Flow::Close
            };
            if outcome.is_err() {
                shared
                    .stats
                    .auth_failed_count
                    .fetch_add(1, Ordering::Relaxed);
            }
            (outcome.map(|()| Response::Empty), "AUTH", flow)
        }
        // No SASL provider is configured: as ZooKeeper without JAAS, authentication fails.
        Local::Sasl => (Err(ErrorCode::AuthFailed), "SASL", Flow::Close),
        Local::Sync { path } => match context.consensus.sync().await {
            Ok(()) => (Ok(Response::Sync { path }), "SYNC", Flow::Continue),
            Err(error) => {
                tracing::warn!(session = state.session_label(), %error, "sync failed; closing");
                return Flow::Close;
            }
        },
        Local::Reconfig(request) => (
            super::reconfig::handle(context, &state.auth, request).await,
            "RECO",
            Flow::Continue,
        ),
        Local::WhoAmI => {
            // As ZooKeeper: each provider names its user (digest: the part before ':');
            // `super` has no provider of its own and is not listed.
            let infos = state
                .auth
                .iter()
                .filter(|id| id.scheme != "super")
                .map(|id| ClientInfo {
                    auth_scheme: id.scheme.clone(),
                    user: match id.scheme.as_str() {
                        "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
                        _ => id.id.clone(),
                    },
                })
                .collect();
            (Ok(Response::WhoAmI(infos)), "WHOA", Flow::Continue)
        }
    };
    let zxid = if outside_pipeline {
        0
    } else {
        shared.lock_store().tree.last_zxid()
    };
    send(state, xid, zxid, result);
    record_reply(
        shared,
        &state.stats,
        (name, kind),
        xid,
        zxid,
        shared.clock.monotonic_ms(),
    );
    flow
}

fn send(state: &ConnectionState, xid: i32, zxid: i64, result: Result<Response, ErrorCode>) {
    state.outbound.send(reply_frame(xid, zxid, result));
}

/// Answers at once (after earlier writes), for refusals decided before any txn.
pub async fn reply_now(
    context: &Context,
    state: &mut ConnectionState,
    xid: i32,
    result: Result<Response, ErrorCode>,
) {
    state.wait_for_writes().await;
    let zxid = context.shared.lock_store().tree.last_zxid();
    send(state, xid, zxid, result);
}

/// Updates the server and connection counters after a reply was queued.
pub fn record_reply(
    shared: &Shared,
    stats: &ConnectionStats,
    (op_name, kind): (&'static str, RequestKind),
    cxid: i32,
    zxid: i64,
    received_ms: u64,
) {
    let latency_ms = shared.clock.monotonic_ms().saturating_sub(received_ms);
    if cxid != xid::PING {
        shared.stats.record_request(kind, latency_ms);
        stats.latency.record(latency_ms);
    }
    if let Ok(mut last) = stats.last.lock() {
        *last = LastRequest {
            op: op_name,
            cxid,
            zxid,
            response_wall_ms: shared.clock.wall_ms(),
            latency_ms,
        };
    }
}

/// A read (or watch bookkeeping) against the local tree, under the store lock. Reads whose
/// reply grows with the tree (children, ephemerals, ACLs, multiRead) charge `budget` before
/// copying anything out of it, so a reply past jute.maxbuffer costs at most that much work.
fn read_op(
    store: &mut Store,
    state: &ConnectionState,
    request: TreeRead,
    budget: &mut ReplyBudget,
) -> Result<Response, ErrorCode> {
    let name = request.name();
    let too_large = |error| reply_too_large(state, name, &error);
    let session_id = state.session_id.unwrap_or(0);
    let auth = &state.auth;
    match request {
        TreeRead::Exists(PathWatchRequest { path, watch }) => {
            match store.tree.exists(&path, auth) {
                Ok(stat) => {
                    if watch {
                        add_watch(store, state, &path, WatchKind::Data)?;
                    }
                    Ok(Response::Stat(stat))
                }
                Err(error) => {
                    let code = error.code();
                    if watch && code == ErrorCode::NoNode {
                        add_watch(store, state, &path, WatchKind::Exist)?;
                    }
                    Err(code)
                }
            }
        }
        TreeRead::GetData(PathWatchRequest { path, watch }) => {
            let (data, stat) = store
                .tree
                .get_data(&path, auth)
                .map_err(|error| error.code())?;
            if watch {
                add_watch(store, state, &path, WatchKind::Data)?;
            }
            Ok(Response::GetData { data, stat })
        }
        TreeRead::GetChildren {
            request: PathWatchRequest { path, watch },
            with_stat,
        } => {
            let (names, stat) = store
                .tree
                .list_children(&path, auth)
                .map_err(|error| error.code())?;
            let children = budget.strings(names).map_err(too_large)?;
            if with_stat {
                budget.charge(STAT_BYTES).map_err(too_large)?;
            }
            if watch {
                add_watch(store, state, &path, WatchKind::Child)?;
            }
            // getChildren2 is getChildren plus the node's Stat.
            Ok(if with_stat {
                Response::GetChildren2 { children, stat }
            } else {
                Response::GetChildren { children }
            })
        }
        TreeRead::GetAcl { path } => {
            let (acl, stat) = store
                .tree
                .get_acl(&path, auth)
                .map_err(|error| error.code())?;
            budget
                .charge(acl_bytes(&acl) + STAT_BYTES)
                .map_err(too_large)?;
            Ok(Response::GetAcl { acl, stat })
        }
        TreeRead::GetAllChildrenNumber { path } => {
            let total = store
                .tree
                .all_children_number(&path, auth)
                .map_err(|error| error.code())?;
            Ok(Response::GetAllChildrenNumber { total })
        }
        TreeRead::GetEphemerals { prefix_path } => Ok(Response::GetEphemerals {
            paths: budget
                .strings(store.tree.ephemeral_paths(session_id, &prefix_path))
                .map_err(too_large)?,
        }),
        TreeRead::MultiRead(ops) => Ok(Response::Multi(
            multi_read(store, auth, &ops, budget).map_err(too_large)?,
        )),
        TreeRead::AddWatch(request) => {
            let kind = match AddWatchMode::from_code(request.mode) {
                Some(AddWatchMode::Persistent) => WatchKind::Persistent,
                Some(AddWatchMode::PersistentRecursive) => WatchKind::PersistentRecursive,
                None => return Err(ErrorCode::BadArguments),
            };
            validate_path(&request.path, false).map_err(|error| error.code())?;
            // Stricter than ZooKeeper (no check at addWatch, the events are filtered later):
            // a persistent watch needs READ on an existing node, as getData(watch) does.
            if !store.tree.may_read(&request.path, auth) {
                return Err(ErrorCode::NoAuth);
            }
            add_watch(store, state, &request.path, kind)?;
            Ok(Response::ErrorResponse(0))
        }
        TreeRead::CheckWatches { request, remove } => {
            let watcher_type =
                WatcherType::from_code(request.watcher_type).ok_or(ErrorCode::BadArguments)?;
            let found = if remove {
                store
                    .watches
                    .remove(session_id, &request.path, watcher_type)
            } else {
                store
                    .watches
                    .contains(session_id, &request.path, watcher_type)
            };
            if found {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        TreeRead::SetWatches(watches) => {
            set_watches(store, state, watches).map(|()| Response::Empty)
        }
    }
}

/// The results of a multiRead, each charged to `budget` before its data or names are copied.
fn multi_read(
    store: &Store,
    auth: &[Id],
    ops: &[MultiReadOp],
    budget: &mut ReplyBudget,
) -> Result<Vec<MultiResult>, EncodeError> {
    // The MultiHeader that ends the results.
    budget.charge(MULTI_HEADER_BYTES)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let result = match op {
            MultiReadOp::GetChildren(path) => match store.tree.list_children(path, auth) {
                Ok((names, _)) => {
                    budget.charge(MULTI_HEADER_BYTES)?;
                    MultiResult::GetChildren {
                        children: budget.strings(names)?,
                    }
                }
                Err(error) => MultiResult::Error(error.code().code()),
            },
            MultiReadOp::GetData(path) => match store.tree.data_ref(path, auth) {
                Ok((data, stat)) => {
                    budget.charge(MULTI_HEADER_BYTES + buffer_bytes(data) + STAT_BYTES)?;
                    MultiResult::GetData {
                        data: data.map(<[u8]>::to_vec),
                        stat,
                    }
                }
                Err(error) => MultiResult::Error(error.code().code()),
            },
        };
        if let MultiResult::Error(_) = result {
            budget.charge(multi_result_bytes(&result))?;
        }
        results.push(result);
    }
    Ok(results)
}

/// A reply past jute.maxbuffer is refused with MarshallingError: a ZooKeeper client could not
/// read it (the Java client drops a connection whose frame passes its jute.maxbuffer, then
/// retries the read for ever), while MarshallingError is an answer no client retries.
fn reply_too_large(
    state: &ConnectionState,
    request: &'static str,
    error: &EncodeError,
) -> ErrorCode {
    tracing::warn!(
        session = state.session_label(),
        request,
        %error,
        "reply above jute.maxbuffer refused (MarshallingError)"
    );
    ErrorCode::MarshallingError
}

/// Registers a watch of the connection's session on a valid path (BadArguments otherwise, as
/// ZooKeeper answers an invalid path); one past the session's cap is answered QuotaExceeded.
fn add_watch(
    store: &mut Store,
    state: &ConnectionState,
    path: &str,
    kind: WatchKind,
) -> Result<(), ErrorCode> {
    validate_path(path, false).map_err(|error| error.code())?;
    let session_id = state.session_id.unwrap_or(0);
    store.watches.add(session_id, path, kind).map_err(|error| {
        tracing::warn!(
            session = state.session_label(),
            %error,
            "watch refused (QuotaExceeded)"
        );
        error.code()
    })
}

/// Re-registers watches after a reconnect; fires at once what the client missed, as
/// ZooKeeper's DataTree.setWatches does, but only what the session may READ (a live event
/// would be filtered the same way). Any invalid path refuses the whole request
/// (BadArguments, nothing registered). Past the session's cap, the rest is dropped and the
/// answer is QuotaExceeded: the watches registered up to the cap stay (the Java client ignores
/// the answer to setWatches, so the log line is what tells). No READ check on registration, as
/// in ZooKeeper: the client replays what this or another server accepted, and nothing reaches
/// it from a node it may not read.
fn set_watches(
    store: &mut Store,
    state: &ConnectionState,
    watches: SetWatches,
) -> Result<(), ErrorCode> {
    let session_id = state.session_id.unwrap_or(0);
    let relative_zxid = watches.relative_zxid;
    let zxid = store.tree.last_zxid();
    let lists = [
        (WatchKind::Data, watches.data_watches),
        (WatchKind::Exist, watches.exist_watches),
        (WatchKind::Child, watches.child_watches),
        (WatchKind::Persistent, watches.persistent_watches),
        (
            WatchKind::PersistentRecursive,
            watches.persistent_recursive_watches,
        ),
    ];
    let mut all_paths = lists.iter().flat_map(|(_, paths)| paths);
    if all_paths.any(|path| validate_path(path, false).is_err()) {
        tracing::warn!(
            session = state.session_label(),
            "setWatches refused (BadArguments): an invalid path"
        );
        return Err(ErrorCode::BadArguments);
    }
    let mut missed = Vec::new();
    let mut refused: Option<WatchError> = None;
    let mut dropped = 0usize;
    for (kind, paths) in lists {
        for path in paths {
            match missed_event(kind, store.tree.stat(&path), relative_zxid) {
                Some(event) => {
                    if store.tree.may_read(&path, &state.auth) {
                        missed.push((path, event));
                    }
                }
                None => {
                    if let Err(error) = store.watches.add(session_id, &path, kind) {
                        refused.get_or_insert(error);
                        dropped += 1;
                    }
                }
            }
        }
    }
    for (path, event) in missed {
        let notification = Notification {
            session_id,
            zxid,
            path,
            event,
        };
        state
            .outbound
            .send(super::apply::encode_event(&notification));
    }
    match refused {
        None => Ok(()),
        Some(error) => {
            tracing::warn!(
                session = state.session_label(),
                dropped,
                %error,
                "setWatches: watches past the cap dropped (QuotaExceeded)"
            );
            Err(error.code())
        }
    }
}

/// The event a one-shot watch missed while its client was away (then it fires at once
/// instead of being re-registered); persistent watches are always simply re-registered.
fn missed_event(kind: WatchKind, stat: Option<Stat>, relative_zxid: i64) -> Option<EventType> {
    match (kind, stat) {
        (WatchKind::Exist, Some(_)) => Some(EventType::NodeCreated),
        (WatchKind::Data | WatchKind::Child, None) => Some(EventType::NodeDeleted),
        (WatchKind::Data, Some(stat)) if stat.mzxid > relative_zxid => {
            Some(EventType::NodeDataChanged)
        }
        (WatchKind::Child, Some(stat)) if stat.pzxid > relative_zxid => {
            Some(EventType::NodeChildrenChanged)
        }
        _ => None,
    }
}

/// The identities `scheme` and `auth` prove for a caller at `peer`, by addauth's rules (the
/// AdminServer's `Authorization` header uses them too); `None` when they prove none.
pub fn identities(shared: &Shared, scheme: &str, auth: &[u8], peer: IpAddr) -> Option<Vec<Id>> {
    match scheme {
        "digest" => {
            let user_password = std::str::from_utf8(auth).ok()?;
            if !user_password.contains(':') {
                return None;
            }
            let digest = digest_id(user_password);
            // As ZooKeeper's DigestAuthenticationProvider: `super` first, then the digest.
            let is_super = shared.config.super_digest.as_deref() == Some(digest.as_str());
            let is_recipe_admin =
                shared.config.recipe_admin_digest.as_deref() == Some(digest.as_str());
            let mut ids = Vec::with_capacity(3);
            if is_super {
                ids.push(Id::new("super", ""));
            }
            if is_recipe_admin {
                ids.push(Id::new(RECIPE_ADMIN_SCHEME, ""));
            }
            ids.push(Id::new("digest", &digest));
            Some(ids)
        }
        "ip" => Some(vec![Id::new("ip", &peer.to_string())]),
        _ => None,
    }
}

/// addauth: `digest` adds `digest:user:hash` (and `super` when it matches superDigest, the
/// recipe admin id when it matches `zkw.recipe.adminIdentity`); `ip` adds the peer address; anything else fails with AuthFailed and closes the connection, as
/// does an identity past the per-connection caps of `txn::identity` (ZooKeeper's answer to a failed auth: the
/// reply carries AuthFailed, then the connection closes).
fn authenticate(
    shared: &Shared,
    state: &mut ConnectionState,
    scheme: &str,
    auth: &[u8],
) -> Result<(), ErrorCode> {
    let ids = identities(shared, scheme, auth, state.peer.ip()).ok_or(ErrorCode::AuthFailed)?;
    let mut held = state.auth.clone();
    for id in &ids {
        if let Err(reason) = admit_identity(&held, id) {
            tracing::warn!(
                session = state.session_label(),
                peer = %state.peer,
                scheme,
                %reason,
                "addauth refused (AuthFailed); closing the connection"
            );
            return Err(ErrorCode::AuthFailed);
        }
        push_unique(&mut held, id.clone());
    }
    tracing::info!(session = state.session_label(), scheme, "authenticated");
    shared.lock_connections().set_auth(state.id, held.clone());
    state.auth = held;
    Ok(())
}

fn push_unique(ids: &mut Vec<Id>, id: Id) {
    if !ids.contains(&id) {
        ids.push(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_watch() -> PathWatchRequest {
        PathWatchRequest {
            path: "/a".into(),
            watch: true,
        }
    }

    fn watches() -> WatchesRequest {
        WatchesRequest {
            path: "/a".into(),
            watcher_type: 1,
        }
    }

    #[test]
    fn requests_route_by_kind() {
        let names = |request| match route(request) {
            Handling::Write(op) => format!("write {}", op_name(&op)),
            Handling::Read(read) => format!("read {}", read.name()),
            Handling::Local(_) => "local".to_owned(),
        };
        assert_eq!(names(Request::CloseSession), "write CLOS");
        assert_eq!(names(Request::Exists(path_watch())), "read EXIS");
        assert_eq!(names(Request::GetChildren2(path_watch())), "read GETC");
        assert_eq!(names(Request::CheckWatches(watches())), "read CHKW");
        assert_eq!(names(Request::RemoveWatches(watches())), "read REMW");
        assert_eq!(names(Request::Ping), "local");
        assert_eq!(names(Request::Sync { path: "/".into() }), "local");
        assert!(matches!(
            route(Request::GetChildren2(path_watch())),
            Handling::Read(TreeRead::GetChildren {
                with_stat: true,
                ..
            })
        ));
        assert!(matches!(
            route(Request::GetChildren(path_watch())),
            Handling::Read(TreeRead::GetChildren {
                with_stat: false,
                ..
            })
        ));
    }
}
