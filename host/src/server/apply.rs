//! The server's [`StateMachine`]: applies committed entries through `txn::apply`, fires the
//! watches they trigger, and routes each reply to the connection that asked, all under the
//! tree lock so that every client sees notifications before any reply that reflects a newer
//! state (ZooKeeper's ordering guarantee).

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{oneshot, watch};

use super::outbound::Outbound;
use super::stats::ConnectionStats;
use super::Shared;
use crate::consensus::{Committed, Preparation, StateMachine};
use crate::fatal::Fatal;
use crate::proto::{encode_notification, keeper_state, ErrorCode, Response, WatcherEvent};
use crate::tree::watch::Notification;
use crate::tree::Tree;
use crate::txn::{self, TxnEntry, TxnOp};

/// A replica whose recipe runtime (engine, or `zkw.recipe.txnFuelMax`) differs from the
/// leader's would run recipes or end recipe txns differently and silently diverge: it stops
/// instead, before applying anything of that leader's term, and says why (the fatal error,
/// exit status `fatal::EXIT_RUNTIME_MISMATCH`). Its log is intact; started with a matching
/// build and config it catches up.
fn refuse_foreign_runtime(
    shared: &Shared,
    ours: String,
    leader: &str,
    zxid: i64,
) -> std::io::Result<()> {
    if leader == ours {
        return Ok(());
    }
    shared.fatal.raise(Fatal::RuntimeMismatch {
        zxid,
        leader: leader.to_owned(),
        ours,
    });
    Err(std::io::Error::other(format!(
        "recipe runtime differs from the leader's at zxid {zxid}"
    )))
}

/// Where the outcome of a proposal goes.
#[derive(Debug)]
pub enum Route {
    /// A client request: encode the reply onto this connection.
    Reply(ReplyRoute),
    /// A session being created by a handshake: tell the waiting connection.
    Session(oneshot::Sender<Result<(), ErrorCode>>),
}

#[derive(Debug)]
pub struct ReplyRoute {
    pub outbound: Outbound,
    pub xid: i32,
    pub op_name: &'static str,
    /// The connection's write sequence number of this request, published through `done` once
    /// the reply is queued, so later reads of the same session wait for it (FIFO order).
    pub seq: u64,
    pub done: Arc<watch::Sender<u64>>,
    pub received_ms: u64,
    pub stats: Arc<ConnectionStats>,
}

/// Applies entries for the server that owns the connections.
pub struct Applier {
    pub shared: Arc<Shared>,
}

/// The txn a committed body holds, with the zxid and time the log gave it.
fn committed_txn(committed: &Committed) -> Result<TxnEntry, txn::codec::CodecError> {
    let mut entry = txn::codec::decode_entry(&committed.body)?;
    entry.zxid = committed.zxid;
    entry.time_ms = committed.time_ms;
    Ok(entry)
}

impl Applier {
    /// A committed body as a txn; one that does not decode is applied as the same no-op on
    /// every replica (they all hold the same bytes), with a loud line, and the proposing
    /// connection is closed.
    fn decode(&self, committed: Committed, route: Option<Route>) -> (TxnEntry, Option<Route>) {
        match committed_txn(&committed) {
            Ok(entry) => (entry, route),
            Err(error) => {
                tracing::error!(
                    zxid = committed.zxid,
                    bytes = committed.body.len(),
                    %error,
                    "committed entry does not decode; applying it as a no-op"
                );
                if let Some(route) = route {
                    self.abandon(route, "the write's log entry does not decode");
                }
                (TxnEntry::no_op(committed.zxid, committed.time_ms), None)
            }
        }
    }

    /// The compilation of the recipe modules `batch`'s creates and setData under
    /// `/zookeeper/recipes` complete, if any (a guess: a write that fails later only leaves a
    /// compiled copy unused).
    fn compile_recipes_ahead(&self, batch: &[(TxnEntry, Option<Route>)]) -> Option<Preparation> {
        let mut writes: Vec<(&str, &[u8])> = Vec::new();
        for (entry, _) in batch {
            entry.op.for_each_data_write(|path, data| {
                if path.starts_with(crate::wasm::RECIPES_PATH) {
                    writes.push((path, data.unwrap_or_default()));
                }
            });
        }
        if writes.is_empty() {
            return None;
        }
        let (modules, compiler) = {
            let store = self.shared.lock_store();
            (
                store.recipes.modules_completed_by(&store.tree, &writes),
                store.recipes.compiler()?,
            )
        };
        if modules.is_empty() {
            return None;
        }
        Some(Box::new(move || {
            for module in modules {
                compiler.compile_ahead(&module);
            }
        }))
    }

    /// Gives every session in the tree a fresh deadline (after a restore, or on becoming
    /// leader: ZooKeeper's new leader also renews every session it inherits).
    fn renew_sessions(&self, store: &super::Store) {
        let now_ms = self.shared.clock.monotonic_ms();
        let mut tracker = self.shared.lock_tracker();
        for (session_id, record) in store.tree.sessions() {
            tracker.add(
                session_id,
                u64::try_from(record.timeout_ms).unwrap_or(0),
                now_ms,
            );
        }
    }
}

impl StateMachine for Applier {
    type Route = Route;

    fn is_gone(&self, route: &Route) -> bool {
        match route {
            Route::Reply(reply) => reply.outbound.is_closed(),
            Route::Session(waiter) => waiter.is_closed(),
        }
    }

    fn abandon(&self, route: Route, reason: &'static str) {
        match route {
            Route::Reply(reply) => {
                // As ZooKeeper when its follower loses the leader, or with a request over
                // jute.maxbuffer: the connection goes, the session stays; the client reconnects
                // and reads what happened. Later reads need not wait for this write.
                reply.outbound.close(reason);
                reply.done.send_replace(reply.seq);
            }
            Route::Session(waiter) => {
                let _ = waiter.send(Err(crate::proto::ErrorCode::ConnectionLoss));
            }
        }
    }

    fn snapshot(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let store = self.shared.lock_store();
        store.tree.write_snapshot(out)?;
        Ok(())
    }

    fn restore(&self, snapshot: &mut dyn std::io::Read) -> std::io::Result<()> {
        let tree = Tree::read_snapshot(&mut { snapshot }).map_err(|error| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string())
        })?;
        let mut store = self.shared.lock_store();
        store.tree = tree;
        let store = &mut *store;
        if let Err(error) = store.recipes.sync(&store.tree) {
            // Only valid installs commit, so this means the module cache or the engine broke.
            tracing::error!(%error, "recipes in the restored snapshot cannot be loaded");
        }
        self.renew_sessions(store);
        Ok(())
    }

    /// A follower's relay: the sessions that showed life on it stay alive here.
    fn relayed(&self, body: &[u8]) {
        let Some(sessions) = crate::session::decode_relay(body) else {
            tracing::warn!(
                bytes = body.len(),
                "a session relay that names no whole ids"
            );
            return;
        };
        let now_ms = self.shared.clock.monotonic_ms();
        let mut tracker = self.shared.lock_tracker();
        for session_id in sessions {
            tracker.touch(session_id, now_ms);
        }
    }

    type Batch = Vec<(TxnEntry, Option<Route>)>;

    /// Decodes the batch, and hands back the compilation of the recipe modules it will install
    /// (compiling takes up to a second; loading the compiled copy inside apply, under the tree
    /// lock, milliseconds), so neither the tree lock nor this replica's runtime threads wait
    /// for the compiler.
    fn prepare(
        &self,
        batch: Vec<(Committed, Option<Route>)>,
    ) -> (Self::Batch, Option<Preparation>) {
        let batch: Self::Batch = batch
            .into_iter()
            .map(|(committed, route)| self.decode(committed, route))
            .collect();
        let compile = self.compile_recipes_ahead(&batch);
        (batch, compile)
    }

    fn leadership_changed(&self, is_leader: bool) {
        if is_leader {
            let store = self.shared.lock_store();
            self.renew_sessions(&store);
        }
    }

    type Refusal = txn::identity::ForwardRefusal;

    fn admit_forwarded(&self, body: &[u8]) -> Result<(), txn::identity::ForwardRefusal> {
        let entry = txn::codec::decode_entry(body)?;
        let config = &self.shared.config;
        let privileged = txn::identity::Privileged {
            super_digest: config.super_digest.as_deref(),
            recipe_admin_digest: config.recipe_admin_digest.as_deref(),
        };
        txn::identity::admit_forwarded(&entry, privileged)
    }

    fn apply_batch(&self, batch: Self::Batch) -> std::io::Result<()> {
        let shared = &self.shared;
        if shared.fatal.is_raised() {
            // Stopping: apply (and answer) nothing more.
            return Err(std::io::Error::other("the server is failing"));
        }
        let mut store = shared.lock_store();
        for (entry, route) in batch {
            let closing_session = matches!(entry.op, TxnOp::CloseSession);
            if closing_session {
                // The closing session's own watches die with it; others see its ephemerals go.
                store.watches.remove_session(entry.session_id);
            }
            if let TxnOp::RuntimeCheck { fingerprint } = &entry.op {
                refuse_foreign_runtime(
                    shared,
                    store.recipes.fingerprint(),
                    fingerprint,
                    entry.zxid,
                )?;
            }
            let store = &mut *store;
            let applied = txn::apply_with(&mut store.tree, &entry, Some(&mut store.recipes));
            let session_closed = closing_session && applied.reply.is_ok();
            let session_created =
                matches!(entry.op, TxnOp::CreateSession { .. }) && applied.reply.is_ok();
            if session_closed {
                tracing::info!(
                    session = format_args!("0x{:x}", entry.session_id),
                    zxid = applied.zxid,
                    "session closed"
                );
            }
            {
                let connections = shared.lock_connections();
                let notifications =
                    store
                        .watches
                        .trigger(applied.zxid, &applied.triggers, |session_id, acl| {
                            connections.may_read(session_id, acl)
                        });
                for notification in &notifications {
                    if let Some(outbound) = connections.outbound_of(notification.session_id) {
                        outbound.send(encode_event(notification));
                    }
                }
                match route {
                    Some(Route::Reply(reply)) => {
                        send_reply(shared, reply, applied.zxid, applied.reply)
                    }
                    Some(Route::Session(waiter)) => {
                        let _ = waiter.send(applied.reply.map(|_| ()));
                    }
                    None => {}
                }
                if session_closed {
                    if let Some(outbound) = connections.outbound_of(entry.session_id) {
                        outbound.close("session closed");
                    }
                }
            }
            if session_closed {
                shared.lock_tracker().remove(entry.session_id);
            }
            if let (TxnOp::CreateSession { timeout_ms, .. }, true) = (&entry.op, session_created) {
                tracing::info!(
                    session = format_args!("0x{:x}", entry.session_id),
                    zxid = applied.zxid,
                    timeout_ms,
                    "session opened"
                );
                let now_ms = shared.clock.monotonic_ms();
                let timeout_ms = u64::try_from(*timeout_ms).unwrap_or(0);
                shared
                    .lock_tracker()
                    .add(entry.session_id, timeout_ms, now_ms);
            }
        }
        Ok(())
    }
}

pub fn encode_event(notification: &Notification) -> bytes::Bytes {
    let event = WatcherEvent {
        event_type: notification.event as i32,
        state: keeper_state::SYNC_CONNECTED,
        path: notification.path.clone(),
    };
    let mut frame = BytesMut::new();
    encode_notification(notification.zxid, &event, &mut frame);
    frame.freeze()
}

fn send_reply(shared: &Shared, route: ReplyRoute, zxid: i64, reply: Result<Response, ErrorCode>) {
    route
        .outbound
        .send(super::connection::reply_frame(route.xid, zxid, reply));
    super::dispatch::record_reply(
        shared,
        &route.stats,
        (route.op_name, super::stats::RequestKind::Update),
        route.xid,
        zxid,
        route.received_ms,
    );
    route.done.send_replace(route.seq);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_committed_body_is_its_txn_at_its_zxid_and_garbage_is_refused() {
        let sent = TxnEntry {
            zxid: 0,
            time_ms: 0,
            session_id: 5,
            auth: Vec::new(),
            op: TxnOp::CloseSession,
        };
        let mut body = Vec::new();
        txn::codec::encode_entry(&sent, &mut body);
        let entry = committed_txn(&Committed {
            zxid: 2,
            time_ms: 7,
            body,
        })
        .unwrap();
        assert_eq!(
            (entry.zxid, entry.time_ms, entry.session_id, &entry.op),
            (2, 7, 5, &TxnOp::CloseSession)
        );
        let garbage = Committed {
            zxid: 1,
            time_ms: 0,
            body: vec![0xff; 13],
        };
        assert!(committed_txn(&garbage).is_err());
    }

    #[test]
    fn the_no_op_for_an_undecodable_entry_moves_the_zxid_and_nothing_else() {
        let mut tree = Tree::default();
        let digest = tree.digest();
        let outcome = txn::apply(&mut tree, &TxnEntry::no_op(1, 0));
        assert!(outcome.reply.is_ok() && outcome.triggers.is_empty());
        assert_eq!((tree.last_zxid(), tree.digest()), (1, digest));
    }
}
