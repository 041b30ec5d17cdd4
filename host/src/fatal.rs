//! `fatal`: fail-stop. A server whose storage failed, whose Raft core stopped, whose tree lock
//! was poisoned or whose recipe runtime differs from its leader's must not stay half-alive
//! (serving stale reads, relaying session liveness so ephemerals and locks are never released,
//! while writes hang). Any layer raises a [`Fatal`] on the server's [`FatalSignal`]; the first
//! one wins. From that instant [`FatalSignal::is_raised`] is true, so connections stop answering
//! and liveness stops being relayed; `server::run` logs the one line (prefixed
//! [`FATAL_LOG_PREFIX`]), stops within [`FATAL_SHUTDOWN_MS_MAX`] and returns
//! `ServerError::Fatal`, and `cli` exits with [`Fatal::exit_status`].
//!
//! A leaf module (like `clock`): it knows no other module. The signal is a value owned by one
//! server (several servers can run in one test process), never a process-wide global.
//! Panics are the one exception handled per process: the binary installs a hook (`cli`) that
//! logs one line and aborts, since a panicking task may hold any lock.
//!
//! Entry points: [`FatalSignal::new`], [`FatalSignal::raise`], [`FatalSignal::raised`].

use std::error::Error;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Exit status after a storage failure (sysexits' EX_IOERR).
pub const EXIT_STORAGE: u8 = 74;
/// Exit status after an internal failure: Raft core stopped, a lock poisoned, a task panicked
/// in-process (sysexits' EX_SOFTWARE).
pub const EXIT_SOFTWARE: u8 = 70;
/// Exit status of a server that stopped because its recipe runtime differs from the leader's.
pub const EXIT_RUNTIME_MISMATCH: u8 = 3;
/// Bound on `server::run`'s shutdown after a fatal error (connections, tasks, Raft).
pub const FATAL_SHUTDOWN_MS_MAX: u64 = 3_000;
/// Bound on the runtime's shutdown after `server::run` returned (blocking tasks stuck in a
/// failing `fdatasync` are left behind: the process exits anyway).
pub const RUNTIME_SHUTDOWN_MS_MAX: u64 = 1_000;
/// From a fatal error to the process's exit, at most (plus scheduling noise).
pub const FATAL_EXIT_MS_MAX: u64 = FATAL_SHUTDOWN_MS_MAX + RUNTIME_SHUTDOWN_MS_MAX;
/// Every fail-stop log line starts with this, so operators (and tests) can grep for it.
pub const FATAL_LOG_PREFIX: &str = "fail-stop:";

/// A durability step of the log, the snapshot writer or the meta database: named in the fatal
/// log line, and the name of the failpoint at that step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Writing records to the newest segment (`pwrite`).
    LogAppend,
    /// Making appended records durable (`fdatasync` of the newest segment).
    LogFdatasync,
    /// Creating a new segment file and writing its header.
    LogSegmentCreate,
    /// Syncing a full segment before the next one is created.
    LogSegmentRotate,
    /// Syncing the log directory after segments were created or removed.
    LogDirSync,
    /// Cutting the log's tail (removing segments, `set_len`, sync).
    LogTruncate,
    /// Removing purged segments.
    LogPurge,
    /// Reading records back.
    LogRead,
    /// Writing the temporary snapshot file.
    SnapshotWrite,
    /// `fsync` of the temporary snapshot file.
    SnapshotFsync,
    /// Renaming the temporary snapshot into place (and syncing the directory).
    SnapshotRename,
    /// Committing a transaction of the redb meta database.
    MetaCommit,
}

impl Step {
    /// Every step, for parsing failpoint names.
    pub const ALL: [Step; 12] = [
        Step::LogAppend,
        Step::LogFdatasync,
        Step::LogSegmentCreate,
        Step::LogSegmentRotate,
        Step::LogDirSync,
        Step::LogTruncate,
        Step::LogPurge,
        Step::LogRead,
        Step::SnapshotWrite,
        Step::SnapshotFsync,
        Step::SnapshotRename,
        Step::MetaCommit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::LogAppend => "log_append",
            Step::LogFdatasync => "log_fdatasync",
            Step::LogSegmentCreate => "log_segment_create",
            Step::LogSegmentRotate => "log_segment_rotate",
            Step::LogDirSync => "log_dir_sync",
            Step::LogTruncate => "log_truncate",
            Step::LogPurge => "log_purge",
            Step::LogRead => "log_read",
            Step::SnapshotWrite => "snapshot_write",
            Step::SnapshotFsync => "snapshot_fsync",
            Step::SnapshotRename => "snapshot_rename",
            Step::MetaCommit => "meta_commit",
        }
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.name() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a server must stop. Cloneable text, so the first cause can be kept and reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    #[error(
        "{step} failed on {}: {detail} (errno {}, io error kind {kind})",
        path.display(),
        errno.map_or_else(|| "none".to_owned(), |errno| errno.to_string())
    )]
    Storage {
        step: Step,
        path: PathBuf,
        detail: String,
        kind: String,
        errno: Option<i32>,
    },
    #[error("the Raft core stopped: {reason}")]
    RaftStopped { reason: String },
    #[error("the {lock} lock is poisoned (a task panicked while holding it)")]
    LockPoisoned { lock: &'static str },
    #[error("task {task} panicked: {message}")]
    Panicked { task: String, message: String },
    #[error(
        "this server's recipe runtime differs from the leader's at zxid {zxid} (leader \
         {leader}, ours {ours}); refusing to join the ensemble (run the same zkw build on every \
         server)"
    )]
    RuntimeMismatch {
        zxid: i64,
        leader: String,
        ours: String,
    },
}

impl Fatal {
    /// A failed durability step; the io error kind and errno are taken from the first
    /// `io::Error` in `error`'s source chain (redb and our own errors wrap one).
    pub fn storage(step: Step, path: &Path, error: &(dyn Error + 'static)) -> Fatal {
        let io_error = io_cause(error);
        Fatal::Storage {
            step,
            path: path.to_path_buf(),
            detail: error.to_string(),
            kind: io_error.map_or_else(|| "unknown".to_owned(), |io| format!("{:?}", io.kind())),
            errno: io_error.and_then(io::Error::raw_os_error),
        }
    }

    /// The process's exit status for this cause.
    pub fn exit_status(&self) -> u8 {
        match self {
            Fatal::Storage { .. } => EXIT_STORAGE,
            Fatal::RuntimeMismatch { .. } => EXIT_RUNTIME_MISMATCH,
            Fatal::RaftStopped { .. } | Fatal::LockPoisoned { .. } | Fatal::Panicked { .. } => {
                EXIT_SOFTWARE
            }
        }
    }
}

/// The text a panic carried (`panic!` with a literal or a formatted message), for the one line.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The first `io::Error` in `error`'s chain (itself included).
fn io_cause<'a>(error: &'a (dyn Error + 'static)) -> Option<&'a io::Error> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(io_error) = error.downcast_ref::<io::Error>() {
            // An io::Error that only wraps another error (io::Error::other) carries no errno:
            // look inside it.
            if io_error.raw_os_error().is_some() {
                return Some(io_error);
            }
            if let Some(inner) = io_error.get_ref().and_then(|inner| io_cause(inner)) {
                return Some(inner);
            }
            return Some(io_error);
        }
        current = error.source();
    }
    None
}

/// One server's fatal-error channel: a single slot (the first cause wins) plus a flag read on
/// every request. Cheap to clone; every clone raises on the same server.
#[derive(Clone, Debug)]
pub struct FatalSignal {
    raised: Arc<AtomicBool>,
    slot: Arc<watch::Sender<Option<Arc<Fatal>>>>,
}

impl Default for FatalSignal {
    fn default() -> Self {
        FatalSignal::new()
    }
}

impl FatalSignal {
    pub fn new() -> FatalSignal {
        FatalSignal {
            raised: Arc::new(AtomicBool::new(false)),
            slot: Arc::new(watch::channel(None).0),
        }
    }

    /// Records `fatal` unless another cause was raised first; returns whether it was the first.
    /// Never blocks, so it can be called from apply, blocking I/O threads or a drop.
    pub fn raise(&self, fatal: Fatal) -> bool {
        self.raised.store(true, Ordering::SeqCst);
        let mut fatal = Some(fatal);
        self.slot.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = fatal.take().map(Arc::new);
            true
        })
    }

    /// Whether this server is failing: it must answer nothing and relay nothing from now on.
    pub fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// The cause, once raised.
    pub fn cause(&self) -> Option<Arc<Fatal>> {
        self.slot.borrow().clone()
    }

    /// Completes with the first cause once one is raised.
    pub async fn raised(&self) -> Arc<Fatal> {
        let mut receiver = self.slot.subscribe();
        loop {
            if let Some(fatal) = receiver.borrow_and_update().clone() {
                return fatal;
            }
            // The sender lives in `self`, so the channel cannot close while we wait.
            if receiver.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cause_wins_and_names_step_path_and_errno() {
        let signal = FatalSignal::new();
        assert!(!signal.is_raised());
        let error = io::Error::from_raw_os_error(28);
        let first = Fatal::storage(Step::LogAppend, Path::new("/data/log/0.seg"), &error);
        assert!(signal.raise(first.clone()));
        assert!(!signal.raise(Fatal::LockPoisoned { lock: "store" }));
        assert!(signal.is_raised());
        assert_eq!(signal.cause().as_deref(), Some(&first));
        let text = first.to_string();
        assert!(
            text.starts_with("log_append failed on /data/log/0.seg: "),
            "{text}"
        );
        assert!(
            text.contains("errno 28, io error kind StorageFull"),
            "{text}"
        );
        assert_eq!(first.exit_status(), EXIT_STORAGE);
    }

    #[test]
    fn errno_is_found_inside_wrapping_errors() {
        let wrapped = io::Error::other(io::Error::from_raw_os_error(5));
        let fatal = Fatal::storage(Step::MetaCommit, Path::new("meta.redb"), &wrapped);
        assert!(
            matches!(fatal, Fatal::Storage { errno: Some(5), .. }),
            "{fatal:?}"
        );
    }

    #[test]
    fn step_names_round_trip() {
        for step in Step::ALL {
            assert_eq!(Step::from_name(step.name()), Some(step));
        }
    }

    #[tokio::test]
    async fn raised_completes_for_late_and_early_waiters() {
        let signal = FatalSignal::new();
        let waiter = tokio::spawn({
            let signal = signal.clone();
            async move { signal.raised().await }
        });
        signal.raise(Fatal::RaftStopped {
            reason: "test".into(),
        });
        let fatal = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("bounded")
            .expect("joined");
        assert_eq!(fatal.exit_status(), EXIT_SOFTWARE);
        assert_eq!(signal.raised().await.exit_status(), EXIT_SOFTWARE);
    }
}
