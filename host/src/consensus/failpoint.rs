//! Failpoints: one per durability step ([`Step`]), so a real process can be made to fail a
//! write, an `fdatasync`, a segment create or rotate, a snapshot write or rename, or a redb
//! commit, and the crash tests can prove it stops and loses nothing acknowledged.
//!
//! Compiled only into debug builds or with the `failpoints` cargo feature: a release build
//! without the feature carries no check at all ([`COMPILED`] is false and every spec is
//! refused with a warning by the server). They are a value held by one server (no globals),
//! armed from the `ZKW_FAILPOINTS` environment variable of the `zkw` process, read by `cli`.
//!
//! Spec: `STEP=file:PATH[,STEP=file:PATH...]`, e.g. `log_fdatasync=file:/tmp/arm`. The step
//! fails with EIO ([`FAILPOINT_ERRNO`]) while PATH exists, so a test arms it at the moment it
//! chooses by creating the file, under load, and disarms it by removing it. One more point is
//! not an I/O step: [`APPLY_PANIC`] panics in the state machine's apply, to prove a panicking
//! task fails the server stop too.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::fatal::Step;

/// Whether failpoints are compiled into this build.
pub const COMPILED: bool = cfg!(any(debug_assertions, feature = "failpoints"));
/// The errno an armed failpoint fails with (EIO on Linux).
pub const FAILPOINT_ERRNO: i32 = 5;
/// The failpoint that panics in apply (see [`Failpoints::panic_if_armed`]).
pub const APPLY_PANIC: &str = "apply_panic";

#[derive(Debug, thiserror::Error)]
pub enum FailpointError {
    #[error("failpoint \"{entry}\": expected STEP=file:PATH")]
    Syntax { entry: String },
    #[error(
        "failpoint \"{name}\": no such step (steps: {}, {APPLY_PANIC})",
        step_names()
    )]
    UnknownStep { name: String },
    #[error("failpoints are not compiled into this build (debug builds or --features failpoints)")]
    NotCompiled,
}

fn step_names() -> String {
    Step::ALL.map(Step::name).join(", ")
}

/// The armed failpoints of one server; empty (the default) means none.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    /// Trigger file by failpoint name (a [`Step`]'s name, or [`APPLY_PANIC`]).
    armed: Arc<BTreeMap<&'static str, PathBuf>>,
}

impl Failpoints {
    /// Parses a spec (see the module doc); an empty spec arms nothing.
    pub fn parse(spec: &str) -> Result<Failpoints, FailpointError> {
        let mut armed = BTreeMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let syntax = || FailpointError::Syntax {
                entry: entry.to_owned(),
            };
            let (name, trigger) = entry.split_once('=').ok_or_else(syntax)?;
            let path = trigger.strip_prefix("file:").ok_or_else(syntax)?;
            if path.is_empty() {
                return Err(syntax());
            }
            let name = name.trim();
            let known = Step::from_name(name)
                .map(Step::name)
                .or((name == APPLY_PANIC).then_some(APPLY_PANIC));
            let known = known.ok_or_else(|| FailpointError::UnknownStep {
                name: name.to_owned(),
            })?;
            armed.insert(known, PathBuf::from(path));
        }
        if !armed.is_empty() && !COMPILED {
            return Err(FailpointError::NotCompiled);
        }
        Ok(Failpoints {
            armed: Arc::new(armed),
        })
    }

    /// Fails (EIO) when `step`'s failpoint is armed and its trigger file exists.
    pub fn check(&self, step: Step) -> io::Result<()> {
        if self.is_triggered(step.name()) {
            return Err(io::Error::from_raw_os_error(FAILPOINT_ERRNO));
        }
        Ok(())
    }

    /// Panics when `name`'s failpoint is armed and its trigger file exists.
    pub fn panic_if_armed(&self, name: &'static str) {
        if self.is_triggered(name) {
            panic!("failpoint {name} triggered");
        }
    }

    fn is_triggered(&self, name: &str) -> bool {
        COMPILED && self.armed.get(name).is_some_and(|trigger| trigger.exists())
    }

    pub fn is_empty(&self) -> bool {
        self.armed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn armed_steps_fail_while_their_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let trigger = dir.path().join("arm");
        let spec = format!("log_append=file:{}", trigger.display());
        let failpoints = Failpoints::parse(&spec).unwrap();
        assert!(failpoints.check(Step::LogAppend).is_ok(), "not yet armed");
        std::fs::write(&trigger, b"").unwrap();
        let error = failpoints.check(Step::LogAppend).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(FAILPOINT_ERRNO));
        assert!(
            failpoints.check(Step::LogFdatasync).is_ok(),
            "other steps run"
        );
        std::fs::remove_file(&trigger).unwrap();
        assert!(failpoints.check(Step::LogAppend).is_ok(), "disarmed");
    }

    #[test]
    fn bad_specs_are_refused() {
        assert!(Failpoints::parse("").unwrap().is_empty());
        assert!(matches!(
            Failpoints::parse("log_append"),
            Err(FailpointError::Syntax { .. })
        ));
        assert!(matches!(
            Failpoints::parse("log_append=always"),
            Err(FailpointError::Syntax { .. })
        ));
        assert!(matches!(
            Failpoints::parse("disk_melt=file:/x"),
            Err(FailpointError::UnknownStep { .. })
        ));
    }
}
