//! [`Ctx`]: what a handler holds during one run. It carries the triggering txn's [`Header`] and
//! turns reads, writes, logging and the run's result into host calls (through `sys`), encoding
//! and decoding with [`crate::abi`]. Writes apply inside the run's transaction at once, so later
//! reads in the same run see them; a failed run discards them all.

use std::fmt;

use crate::abi::{Codec, Header, Node, Op, OpResult, Stat};
use crate::error::Error;
use crate::sys;

/// The version that matches any version in [`Ctx::set`], [`Ctx::delete`] and [`Ctx::check`].
pub const ANY_VERSION: i32 = -1;

/// How [`Ctx::create`] creates a node (ZooKeeper's `CreateMode`; TTL modes are not offered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    Persistent = 0,
    /// Belongs to the session of the triggering txn; an error for timer runs.
    Ephemeral = 1,
    /// The path gets a 10-digit sequence suffix from its parent's counter.
    PersistentSequential = 2,
    EphemeralSequential = 3,
    /// Deleted by the server once its last child is gone.
    Container = 4,
}

/// Log levels, numbered as the `log` import takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// One run's view of the tree: the tree as the triggering txn left it plus this run's writes.
#[derive(Debug)]
pub struct Ctx {
    header: Header,
}

impl Ctx {
    /// A context for a run of the txn `header` describes (the entry points build it).
    pub fn new(header: Header) -> Ctx {
        Ctx { header }
    }

    /// Everything the run knows about its trigger.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The session whose write or close triggered the run; 0 for timers.
    pub fn session(&self) -> i64 {
        self.header.session
    }

    /// The triggering txn's zxid.
    pub fn zxid(&self) -> i64 {
        self.header.zxid
    }

    /// The leader's clock when it proposed the txn (ms since the epoch): the same on every
    /// replica, and the only clock a recipe has.
    pub fn time_ms(&self) -> i64 {
        self.header.time_ms
    }

    /// The name the recipe was installed under.
    pub fn recipe(&self) -> &str {
        &self.header.recipe
    }

    /// The path the recipe is bound to; it may write only at or under it.
    pub fn root(&self) -> &str {
        &self.header.root
    }

    /// `name` under the recipe's root: `path("count")` is `/counter/count` for root `/counter`.
    pub fn path(&self, name: &str) -> String {
        let root = self.header.root.trim_end_matches('/');
        let name = name.trim_start_matches('/');
        format!("{root}/{name}")
    }

    /// The node directly under the root that `path` lies in (`<root>/<name>`: a lock, an
    /// election, an app...) and the rest of `path` below it (empty for that node itself).
    pub fn split_under_root<'a>(&self, path: &'a str) -> Option<(String, &'a str)> {
        let rest = relative(self.root(), path)?;
        let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
        (!name.is_empty()).then(|| (self.path(name), tail))
    }

    /// True when `path` is the root or lies under it (where this recipe may write).
    pub fn is_under_root(&self, path: &str) -> bool {
        let root = self.header.root.trim_end_matches('/');
        root.is_empty()
            || path == root
            || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
    }

    /// The node's data and Stat, or `None` when it does not exist.
    pub fn get(&mut self, path: &str) -> Result<Option<Node>, Error> {
        match sys::get(path) {
            Ok(bytes) => Ok(Some(Node::decode(&bytes)?)),
            Err(code) if code == Error::NoNode.code() => Ok(None),
            Err(code) => Err(Error::from_code(code)),
        }
    }

    /// The node's data, or `None` when it does not exist.
    pub fn get_data(&mut self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.get(path)?.map(|node| node.data))
    }

    /// The node's Stat, or `None` when it does not exist.
    pub fn exists(&mut self, path: &str) -> Result<Option<Stat>, Error> {
        Ok(self.get(path)?.map(|node| node.stat))
    }

    /// The names (not paths) of the node's children, sorted; [`Error::NoNode`] if it is absent.
    pub fn children(&mut self, path: &str) -> Result<Vec<String>, Error> {
        let bytes = sys::children(path).map_err(Error::from_code)?;
        Ok(Vec::<String>::decode(&bytes)?)
    }

    /// Applies `op` inside the run's transaction. The typed helpers below are usually nicer.
    pub fn write(&mut self, op: &Op) -> Result<OpResult, Error> {
        let bytes = sys::write(&op.encode()).map_err(Error::from_code)?;
        Ok(OpResult::decode(&bytes)?)
    }

    /// Creates a node; returns its path (with the sequence suffix for sequential modes).
    pub fn create(&mut self, path: &str, data: &[u8], mode: CreateMode) -> Result<String, Error> {
        let op = Op::Create {
            path: path.to_owned(),
            data: data.to_vec(),
            flags: mode as i32,
        };
        match self.write(&op)? {
            OpResult::Created { path, .. } => Ok(path),
            _ => Err(Error::MarshallingError),
        }
    }

    /// Replaces the node's data if its version is `version` (or [`ANY_VERSION`]); the new Stat.
    pub fn set(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
        let op = Op::SetData {
            path: path.to_owned(),
            data: data.to_vec(),
            version,
        };
        match self.write(&op)? {
            OpResult::Set(stat) => Ok(stat),
            _ => Err(Error::MarshallingError),
        }
    }

    /// Deletes a childless node if its version is `version` (or [`ANY_VERSION`]).
    pub fn delete(&mut self, path: &str, version: i32) -> Result<(), Error> {
        let op = Op::Delete {
            path: path.to_owned(),
            version,
        };
        self.write(&op).map(|_| ())
    }

    /// Fails the way a multi's check does unless the node exists at `version` (or any).
    pub fn check(&mut self, path: &str, version: i32) -> Result<(), Error> {
        let op = Op::Check {
            path: path.to_owned(),
            version,
        };
        self.write(&op).map(|_| ())
    }

    /// Sets the run's result: returned to an explicit caller, or a validator's reason. The last
    /// call wins; `on_call` handlers return their result instead of calling this.
    pub fn set_result(&mut self, bytes: &[u8]) {
        sys::set_result(bytes);
    }

    /// Writes a log line at `level` (visible in `zkw recipe logs NAME`).
    pub fn log(&mut self, level: Level, message: impl fmt::Display) {
        sys::log(level as i32, &message.to_string());
    }

    pub fn error(&mut self, message: impl fmt::Display) {
        self.log(Level::Error, message);
    }

    pub fn warn(&mut self, message: impl fmt::Display) {
        self.log(Level::Warn, message);
    }

    pub fn info(&mut self, message: impl fmt::Display) {
        self.log(Level::Info, message);
    }

    pub fn debug(&mut self, message: impl fmt::Display) {
        self.log(Level::Debug, message);
    }
}

/// The part of `path` below `root`, without the `/` between them; None unless `path` lies
/// strictly under `root`.
pub fn relative<'a>(root: &str, path: &'a str) -> Option<&'a str> {
    let root = root.trim_end_matches('/');
    path.strip_prefix(root)?.strip_prefix('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(root: &str) -> Ctx {
        Ctx::new(Header {
            root: root.into(),
            ..Header::default()
        })
    }

    #[test]
    fn paths_join_under_the_root() {
        assert_eq!(ctx("/counter").path("count"), "/counter/count");
        assert_eq!(ctx("/counter/").path("/count"), "/counter/count");
        assert_eq!(ctx("/").path("count"), "/count");
    }

    #[test]
    fn under_root_needs_a_path_boundary() {
        let ctx = ctx("/a");
        assert!(ctx.is_under_root("/a"));
        assert!(ctx.is_under_root("/a/b"));
        assert!(!ctx.is_under_root("/ab"));
        assert!(!ctx.is_under_root("/"));
        assert!(super::tests::ctx("/").is_under_root("/anything"));
    }
}
