//! Where txns meet recipes (the `wasm` runtime): validators before a client write, the runs a
//! txn's events cause after it, explicit calls, installs (writes under `/zookeeper/recipes`,
//! for super or the recipe admin only), and [`recipe_op`], the one way a recipe writes.
//! Everything here runs inside `apply`, so it is as deterministic as the rest of it.

use zkw_guest::abi::{self, WriteKind};

use super::ops::{check, create, delete, set_acl, set_data};
use super::Ctx;
use crate::proto::{op, CheckVersionRequest, CreateMode, CreateRequest, DeleteRequest};
use crate::proto::{ErrorCode, Id, MultiOp, SetAclRequest, SetDataRequest, Stat};
use crate::tree::path::parent_of;
use crate::tree::watch::WatchTrigger;
use crate::tree::{acl, Tree, TreeError};
use crate::wasm::registry::TxnInfo;
use crate::wasm::run::{abi_stat, RunCtx};
use crate::wasm::Runtime;

/// Znode data as the recipe ABI carries it: bytes, with null read as empty (the ABI has no
/// null; a recipe cannot tell a null write from an empty one, and its own writes are never
/// null).
pub(crate) fn request_data(data: &Option<Vec<u8>>) -> &[u8] {
    data.as_deref().unwrap_or_default()
}

/// A client write as validators see it.
pub(crate) struct ClientWrite<'a> {
    pub kind: WriteKind,
    pub path: &'a str,
    pub data: &'a [u8],
    pub flags: i32,
}

impl<'a> ClientWrite<'a> {
    /// The write a multi sub-op makes (None for check).
    pub fn of_sub_op(sub_op: &'a MultiOp) -> Option<ClientWrite<'a>> {
        match sub_op {
            MultiOp::Create { request, .. } => Some(Self::create(request)),
            MultiOp::Delete(request) => Some(Self::delete(request)),
            MultiOp::SetData(request) => Some(Self::set_data(request)),
            MultiOp::Check(_) => None,
        }
    }

    pub fn create(request: &'a CreateRequest) -> ClientWrite<'a> {
        ClientWrite {
            kind: WriteKind::Create,
            path: &request.path,
            data: request_data(&request.data),
            flags: request.flags,
        }
    }

    pub fn delete(request: &'a DeleteRequest) -> ClientWrite<'a> {
        ClientWrite {
            kind: WriteKind::Delete,
            path: &request.path,
            data: &[],
            flags: 0,
        }
    }

    pub fn set_data(request: &'a SetDataRequest) -> ClientWrite<'a> {
        ClientWrite {
            kind: WriteKind::SetData,
            path: &request.path,
            data: request_data(&request.data),
            flags: 0,
        }
    }
}

/// What a txn carries to its writes: the runtime (None where recipes are off, as in unit
/// tests) and whether it changed an installed recipe.
pub(crate) struct Hooks<'r> {
    pub recipes: Option<&'r mut Runtime>,
    pub install_touched: bool,
}

impl Hooks<'_> {
    pub fn info(ctx: &Ctx<'_>) -> TxnInfo {
        TxnInfo {
            zxid: ctx.zxid,
            time_ms: ctx.time_ms,
            session_id: ctx.session_id,
        }
    }

    /// A client create (alone or in a multi): see [`Hooks::write`].
    pub fn create(
        &mut self,
        tree: &mut Tree,
        ctx: &Ctx<'_>,
        op: i32,
        request: &CreateRequest,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<create::Created, TreeError> {
        self.write(
            tree,
            ctx,
            &ClientWrite::create(request),
            |tree, ctx| create::check(tree, ctx, op, request),
            |tree, plan| create::execute(tree, ctx, plan, triggers),
        )
    }

    /// A client delete (alone or in a multi): see [`Hooks::write`].
    pub fn delete(
        &mut self,
        tree: &mut Tree,
        ctx: &Ctx<'_>,
        request: &DeleteRequest,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<(), TreeError> {
        self.write(
            tree,
            ctx,
            &ClientWrite::delete(request),
            |tree, ctx| delete::check(tree, ctx, request),
            |tree, plan| delete::execute(tree, ctx, plan, triggers),
        )
    }

    /// A client setData (alone or in a multi): see [`Hooks::write`].
    pub fn set_data(
        &mut self,
        tree: &mut Tree,
        ctx: &Ctx<'_>,
        request: &SetDataRequest,
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Stat, TreeError> {
        self.write(
            tree,
            ctx,
            &ClientWrite::set_data(request),
            |tree, ctx| set_data::check(tree, ctx, request),
            |tree, plan| set_data::execute(tree, ctx, plan, triggers),
        )
    }

    /// A client setACL: the recipe admin gate, then ZooKeeper's checks.
    pub fn set_acl(
        &mut self,
        tree: &mut Tree,
        ctx: &Ctx<'_>,
        request: &SetAclRequest,
    ) -> Result<Stat, TreeError> {
        let plan = self.checked(tree, ctx, &request.path, |tree, ctx| {
            set_acl::check(tree, ctx, request)
        })?;
        Ok(set_acl::execute(tree, plan))
    }

    /// Every client create, delete and setData (alone or inside a multi): the recipe admin
    /// gate, then ZooKeeper's checks (`check`: ACL included), then the validators bound over
    /// the path, then the mutation (`execute`). A write the caller may not make runs no
    /// validator and spends no fuel.
    fn write<P, R>(
        &mut self,
        tree: &mut Tree,
        ctx: &Ctx<'_>,
        write: &ClientWrite<'_>,
        check: impl FnOnce(&Tree, &Ctx<'_>) -> Result<P, TreeError>,
        execute: impl FnOnce(&mut Tree, P) -> R,
    ) -> Result<R, TreeError> {
        let plan = self.checked(tree, ctx, write.path, check)?;
        if let Some(recipes) = self.recipes.as_deref_mut().filter(|r| !r.is_empty()) {
            recipes
                .validate(
                    tree,
                    Self::info(ctx),
                    write.kind,
                    write.path,
                    write.data,
                    write.flags,
                )
                .map_err(TreeError::Recipe)?;
        }
        Ok(execute(tree, plan))
    }

    /// `check` of a client write (setACL included) to `path`. Under `/zookeeper/recipes`
    /// (but for call nodes) only the recipe admin may write, and for it, as for super, the
    /// nodes' ACLs do not apply there: whoever installed a recipe, any admin may replace it.
    fn checked<P>(
        &mut self,
        tree: &Tree,
        ctx: &Ctx<'_>,
        path: &str,
        check: impl FnOnce(&Tree, &Ctx<'_>) -> Result<P, TreeError>,
    ) -> Result<P, TreeError> {
        if !Runtime::is_admin_path(path) {
            return check(tree, ctx);
        }
        if !acl::is_recipe_admin(ctx.auth) {
            tracing::info!(
                session = format_args!("0x{:x}", ctx.session_id),
                zxid = ctx.zxid,
                path,
                "write under the recipes refused (NoAuth): not super or the recipe admin"
            );
            return Err(TreeError::NoAuth);
        }
        if Runtime::is_install_path(path) {
            self.install_touched = true;
        }
        let auth: Vec<Id> = ctx.auth.iter().cloned().chain([acl::server_id()]).collect();
        check(
            tree,
            &Ctx {
                auth: &auth,
                ..*ctx
            },
        )
    }
}

/// A recipe's write, with ZooKeeper's checks, as the server (no ACL stops it; `wasm` has
/// already kept it under the recipe's path). A node it creates takes its parent's ACL.
pub(crate) fn recipe_op(
    tree: &mut Tree,
    run: &RunCtx,
    write: &abi::Op,
    triggers: &mut Vec<WatchTrigger>,
) -> Result<abi::OpResult, ErrorCode> {
    let server = [acl::server_id()];
    // The recipe writes as the server (session 0: its writes do not die with the triggering
    // session, which may be the one closing); only an ephemeral belongs to that session.
    let ephemeral = matches!(write, abi::Op::Create { flags, .. }
        if CreateMode::from_flags(*flags).is_some_and(CreateMode::is_ephemeral));
    let ctx = Ctx {
        zxid: run.zxid,
        time_ms: run.time_ms,
        session_id: if ephemeral { run.session_id } else { 0 },
        auth: &server,
    };
    let code = |error: TreeError| error.code();
    Ok(match write {
        abi::Op::Create { path, data, flags } => {
            if ephemeral && run.session_id == 0 {
                // No session triggered this run (a timer): nobody could own the node.
                return Err(ErrorCode::BadArguments);
            }
            let acl = parent_of(path)
                .and_then(|parent| tree.acl(parent))
                .unwrap_or_default();
            let request = CreateRequest {
                path: path.clone(),
                data: Some(data.clone()),
                acl,
                flags: *flags,
                ttl_ms: None,
            };
            let created =
                create::apply(tree, &ctx, op::CREATE2, &request, triggers).map_err(code)?;
            abi::OpResult::Created {
                path: created.path,
                stat: abi_stat(created.stat),
            }
        }
        abi::Op::Delete { path, version } => {
            let request = DeleteRequest {
                path: path.clone(),
                version: *version,
            };
            delete::apply(tree, &ctx, &request, triggers).map_err(code)?;
            abi::OpResult::Deleted
        }
        abi::Op::SetData {
            path,
            data,
            version,
        } => {
            let request = SetDataRequest {
                path: path.clone(),
                data: Some(data.clone()),
                version: *version,
            };
            abi::OpResult::Set(abi_stat(
                set_data::apply(tree, &ctx, &request, triggers).map_err(code)?,
            ))
        }
        abi::Op::Check { path, version } => {
            let request = CheckVersionRequest {
                path: path.clone(),
                version: *version,
            };
            check::apply(tree, &ctx, &request).map_err(code)?;
            abi::OpResult::Checked
        }
    })
}
