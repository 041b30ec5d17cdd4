//! The Raft core's health, watched: openraft stops its core on a storage error (ours, raised
//! already with the step and file by `store.rs` / `state_machine.rs`) or a panic, and reports it
//! in the metrics' `running_state`. A core that stopped without our asking is raised as
//! [`Fatal::RaftStopped`] so the server never stays up without a working log (the first cause
//! raised wins, so a storage failure keeps its own, more precise, line).

use std::sync::Arc;

use openraft::error::Fatal as RaftFatal;
use openraft::type_config::async_runtime::watch::WatchReceiver;
use tokio::sync::watch;

use super::{Consensus, StateMachine};
use crate::fatal::Fatal;

impl<M: StateMachine> Consensus<M> {
    /// Runs until `stop` (our own shutdown) or until the core stops by itself (raised).
    pub(super) async fn watch_core(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut metrics = self.raft.metrics();
        loop {
            let stopped = match &metrics.borrow_and_update().running_state {
                Ok(()) => None,
                // Only `Raft::shutdown` stops the core this way: that is our own shutdown.
                Err(RaftFatal::Stopped) => return,
                Err(error) => Some(error.to_string()),
            };
            if let Some(reason) = stopped {
                self.fatal.raise(Fatal::RaftStopped { reason });
                return;
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() {
                    // The core is gone. If we did not ask for it, that is fatal.
                    if !*stop.borrow() {
                        self.fatal.raise(Fatal::RaftStopped {
                            reason: "the core task exited".to_owned(),
                        });
                    }
                    return;
                },
                _ = stop.changed() => return,
            }
        }
    }
}
