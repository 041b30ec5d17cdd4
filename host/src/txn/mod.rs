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
pub mod identity;
mod ops;
mod recipes;

pub(crate) use recipes::recipe_op;

use crate::proto::perms;
use crate::proto::{
    op, CheckVersionRequest, CreateRequest, DeleteRequest, Id, MultiOp, Response, SessionId,
};
use crate::proto::{ErrorCode, MultiResult, SetAclRequest, SetDataRequest, Zxid};
use crate::tree::{acl, watch::WatchTrigger, Tree, TreeError};
use crate::wasm::{Runtime, RECIPES_PATH};
use recipes::{request_data, ClientWrite, Hooks};

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
    CreateSession {
        timeout_ms: i32,
        password: [u8; 16],
    },
    CloseSession,
    Create {
        op: i32,
        request: CreateRequest,
    },
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    SetAcl(SetAclRequest),
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    Reap {
        path: String,
    },
    /// Timer ticks for these recipes (the leader found them due; the entry's time is the
    /// only clock they see).
    RecipeTimer {
        names: Vec<String>,
    },
    /// A new leader's recipe runtime fingerprint: a replica whose own differs must not apply
    /// recipe txns (the server refuses to go on; `txn` itself does nothing with it).
    RuntimeCheck {
        fingerprint: String,
    },
}

impl TxnEntry {
    /// What every replica applies in place of a committed entry whose bytes do not decode: a
    /// recipe timer naming no recipe, which changes nothing but takes the entry's zxid alike
    /// everywhere (never a stop, which would replay the entry forever).
    pub fn no_op(zxid: Zxid, time_ms: i64) -> TxnEntry {
        TxnEntry {
            zxid,
            time_ms,
            session_id: 0,
            auth: Vec::new(),
            op: TxnOp::RecipeTimer { names: Vec::new() },
        }
    }
}

impl TxnOp {
    /// Calls `visit` with the path and data (None: null) of every create and setData this op
    /// asks for, sub-ops of a multi included, whether or not they will succeed (no allocation:
    /// apply looks at every batch this way).
    pub fn for_each_data_write<'a>(&'a self, mut visit: impl FnMut(&'a str, Option<&'a [u8]>)) {
        match self {
            TxnOp::Create { request, .. } => visit(&request.path, request.data.as_deref()),
            TxnOp::SetData(request) => visit(&request.path, request.data.as_deref()),
            TxnOp::Multi(ops) => {
                for op in ops {
                    match op {
                        MultiOp::Create { request, .. } => {
                            visit(&request.path, request.data.as_deref());
                        }
                        MultiOp::SetData(request) => visit(&request.path, request.data.as_deref()),
                        MultiOp::Delete(_) | MultiOp::Check(_) => {}
                    }
                }
            }
            TxnOp::CreateSession { .. }
            | TxnOp::CloseSession
            | TxnOp::Delete(_)
            | TxnOp::SetAcl(_)
            | TxnOp::Check(_)
            | TxnOp::Reap { .. }
            | TxnOp::RecipeTimer { .. }
            | TxnOp::RuntimeCheck { .. } => {}
        }
    }
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
    apply_with(tree, entry, None)
}

/// [`apply`] with the recipe runtime: validators, triggered runs, calls and installs. Every
/// replica must pass a runtime (or none) alike.
pub fn apply_with(tree: &mut Tree, entry: &TxnEntry, recipes: Option<&mut Runtime>) -> Applied {
    tree.advance_zxid(entry.zxid);
    let ctx = Ctx {
        zxid: entry.zxid,
        time_ms: entry.time_ms,
        session_id: entry.session_id,
        auth: &entry.auth,
    };
    // A client write's recipe runs (validators, a call, the events it causes) share one fuel
    // budget; past it the whole txn is undone and refused. Other txns (a session close, a
    // timer) cannot be refused: their runs just stop at the cap.
    let budgeted = recipes
        .as_deref()
        .is_some_and(|recipes| !recipes.is_empty())
        && is_client_write(&entry.op);
    let mut hooks = Hooks {
        recipes,
        install_touched: false,
    };
    if let Some(recipes) = hooks.recipes.as_deref_mut() {
        recipes.begin_txn();
    }
    if budgeted {
        tree.begin_journal();
    }
    // Installs are checked only after the write: keep a way back.
    let installing = touches_install(&entry.op);
    if installing {
        tree.begin_journal();
    }
    let mut triggers = Vec::new();
    let mut reply = run_op(tree, &ctx, &entry.op, &mut hooks, &mut triggers);
    if installing {
        reply = finish_install(tree, &mut hooks, reply, &mut triggers);
    }
    let mut recipes = hooks.recipes;
    if let Some(recipes) = recipes.as_deref_mut().filter(|recipes| !recipes.is_empty()) {
        let closed: Vec<String> = match entry.op {
            TxnOp::CloseSession => triggers
                .iter()
                .filter(|trigger| trigger.event == crate::proto::EventType::NodeDeleted)
                .map(|trigger| trigger.path.clone())
                .collect(),
            _ => Vec::new(),
        };
        let closed = (!closed.is_empty()).then_some((entry.session_id, closed.as_slice()));
        recipes.react(tree, Hooks::info(&ctx), &mut triggers, closed);
    }
    if budgeted {
        match recipes
            .as_deref_mut()
            .filter(|recipes| recipes.txn_fuel_exceeded())
        {
            Some(recipes) => {
                tracing::warn!(
                    session = format_args!("0x{:x}", entry.session_id),
                    zxid = entry.zxid,
                    txn_fuel_max = recipes.txn_fuel_max(),
                    "txn refused (QuotaExceeded): its recipe runs need more fuel than zkw.recipe.txnFuelMax"
                );
                recipes.log_to_ran(&format!(
                    "txn refused: its recipe runs need more than zkw.recipe.txnFuelMax = {} fuel",
                    recipes.txn_fuel_max()
                ));
                tree.rollback_journal();
                triggers.clear();
                reply = refused(reply, ErrorCode::QuotaExceeded);
            }
            None => tree.commit_journal(),
        }
    }
    if let Some(recipes) = recipes.filter(|recipes| !recipes.is_empty()) {
        recipes.flush_logs(tree, Hooks::info(&ctx), &mut triggers);
    }
    Applied {
        zxid: entry.zxid,
        reply,
        triggers,
    }
}

fn run_op(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    txn_op: &TxnOp,
    hooks: &mut Hooks<'_>,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Response, ErrorCode> {
    match txn_op {
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => ops::session::create(tree, ctx, *timeout_ms, *password),
        TxnOp::CloseSession => ops::session::close(tree, ctx, triggers),
        TxnOp::Reap { path } => ops::reap::apply(tree, ctx, path, triggers),
        TxnOp::RecipeTimer { names } => {
            if let Some(recipes) = hooks.recipes.as_deref_mut() {
                recipes.timer(tree, Hooks::info(ctx), names, triggers);
            }
            Ok(Response::Empty)
        }
        TxnOp::RuntimeCheck { .. } => Ok(Response::Empty),
        TxnOp::Multi(sub_ops) => Ok(ops::multi::apply(tree, ctx, sub_ops, hooks, triggers)),
        TxnOp::Create { op, request } => {
            if let Some(name) = Runtime::call_target(&request.path) {
                return call(tree, ctx, *op, request, name, hooks, triggers);
            }
            single(
                hooks
                    .create(tree, ctx, *op, request, triggers)
                    .map(create_response),
            )
        }
        TxnOp::Delete(request) => single(
            hooks
                .delete(tree, ctx, request, triggers)
                .map(|()| Response::Empty),
        ),
        TxnOp::SetData(request) => single(
            hooks
                .set_data(tree, ctx, request, triggers)
                .map(Response::Stat),
        ),
        TxnOp::SetAcl(request) => single(hooks.set_acl(tree, ctx, request).map(Response::Stat)),
        TxnOp::Check(request) => single(ops::check::apply(tree, ctx, request).map(Response::Stat)),
    }
}

/// True when the op writes a recipe's manifest or module (see `Runtime::is_install_path`).
fn touches_install(txn_op: &TxnOp) -> bool {
    let install = |write: ClientWrite<'_>| Runtime::is_install_path(write.path);
    match txn_op {
        TxnOp::Create { request, .. } => install(ClientWrite::create(request)),
        TxnOp::Delete(request) => install(ClientWrite::delete(request)),
        TxnOp::SetData(request) => install(ClientWrite::set_data(request)),
        TxnOp::Multi(sub_ops) => sub_ops
            .iter()
            .filter_map(ClientWrite::of_sub_op)
            .any(install),
        _ => false,
    }
}

/// After a write to `/zookeeper/recipes`: the installed set follows the tree, or, if the write
/// completed a bad module, the write is undone and refused with BadArguments.
fn finish_install(
    tree: &mut Tree,
    hooks: &mut Hooks<'_>,
    reply: Result<Response, ErrorCode>,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Response, ErrorCode> {
    let succeeded = match &reply {
        Ok(Response::Multi(results)) => !results.iter().any(|r| matches!(r, MultiResult::Error(_))),
        Ok(_) => true,
        Err(_) => false,
    };
    let synced = match hooks.recipes.as_deref_mut() {
        Some(recipes) if succeeded && hooks.install_touched => recipes.sync(tree),
        _ => Ok(()),
    };
    match synced {
        Ok(()) => {
            tree.commit_journal();
            reply
        }
        Err(error) => {
            tracing::warn!(zxid = tree.last_zxid(), %error, "recipe install refused");
            tree.rollback_journal();
            triggers.clear();
            refused(reply, ErrorCode::BadArguments)
        }
    }
}

/// The reply of a write undone after it was applied: `code` (for a multi, on its last
/// sub-op, the earlier ones rolled back).
fn refused(reply: Result<Response, ErrorCode>, code: ErrorCode) -> Result<Response, ErrorCode> {
    match reply {
        Ok(Response::Multi(results)) => Ok(Response::Multi(ops::multi::failed_results(
            results.len(),
            results.len().saturating_sub(1),
            code,
        ))),
        _ => Err(code),
    }
}

/// True for the txns a client's write makes (the ones that can be refused).
fn is_client_write(txn_op: &TxnOp) -> bool {
    match txn_op {
        TxnOp::Create { .. } | TxnOp::Delete(_) | TxnOp::SetData(_) | TxnOp::Multi(_) => true,
        TxnOp::CreateSession { .. }
        | TxnOp::CloseSession
        | TxnOp::SetAcl(_)
        | TxnOp::Check(_)
        | TxnOp::Reap { .. }
        | TxnOp::RecipeTimer { .. }
        | TxnOp::RuntimeCheck { .. } => false,
    }
}

/// A create of `<recipes>/<name>/call-...`: runs the recipe's call with the node's data as
/// arguments; the node is created holding the result. A failed call changes nothing.
fn call(
    tree: &mut Tree,
    ctx: &Ctx<'_>,
    op: i32,
    request: &CreateRequest,
    name: &str,
    hooks: &mut Hooks<'_>,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<Response, ErrorCode> {
    let Some(recipes) = hooks.recipes.as_deref_mut() else {
        return Err(ErrorCode::NoNode);
    };
    // The caller's rights first, so a call it may not make runs nothing: every check of the
    // create (CREATE on the recipe's node among them), then each permission the recipe
    // declares (`call_perms`) on that node.
    ops::create::check(tree, ctx, op, request).map_err(|error| error.code())?;
    let declared = recipes.call_perms(name).ok_or(ErrorCode::NoNode)?;
    let recipe_node = tree
        .node(&format!("{RECIPES_PATH}/{name}"))
        .ok_or(ErrorCode::NoNode)?;
    let allowed = perms::LETTERS
        .iter()
        .filter(|(_, bit)| declared & bit != 0)
        .all(|(_, bit)| acl::check(&recipe_node.acl, ctx.auth, *bit).is_ok());
    if !allowed {
        tracing::info!(
            recipe = name,
            session = format_args!("0x{:x}", ctx.session_id),
            zxid = ctx.zxid,
            "recipe call refused (NoAuth): the caller lacks the permissions the recipe declares"
        );
        return Err(ErrorCode::NoAuth);
    }
    let kept = triggers.len();
    tree.begin_journal();
    let outcome = recipes
        .call(
            tree,
            Hooks::info(ctx),
            name,
            request_data(&request.data),
            triggers,
        )
        .and_then(|result| {
            let request = CreateRequest {
                data: Some(result),
                ..request.clone()
            };
            ops::create::apply(tree, ctx, op, &request, triggers).map_err(|error| error.code())
        });
    match outcome {
        Ok(created) => {
            tree.commit_journal();
            Ok(create_response(created))
        }
        Err(code) => {
            tree.rollback_journal();
            triggers.truncate(kept);
            Err(code)
        }
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
