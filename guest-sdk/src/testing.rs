//! [`MockTree`]: an in-memory stand-in for the zkw host, so recipes unit-test natively with
//! `cargo test` (this module does not exist on `wasm32`). On native targets the SDK's host calls
//! land here; a run goes through the same decode-dispatch-encode path as in a module.
//!
//! It models what a recipe can observe: znodes with ZooKeeper's Stat bookkeeping (versions,
//! cversion, sequence suffixes from the parent's cversion, ephemerals and their owner), the
//! recipe's bound path (a write outside it fails the run, as the host stops it), a failed run's
//! writes being discarded, validators vetoing client writes, and the events a write fires
//! re-triggering the recipe up to [`CASCADE_DEPTH_MAX`]. It does not model ACLs, watches, fuel
//! or memory caps.
//!
//! ```
//! use zkw_guest::testing::MockTree;
//! use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind};
//!
//! fn handle(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
//!     if event.kind == EventKind::Created && event.path != ctx.path("seen") {
//!         ctx.create(&ctx.path("seen"), event.path.as_bytes(), CreateMode::Persistent)?;
//!     }
//!     Ok(())
//! }
//! zkw_guest::recipe! { on_event: handle }
//!
//! let mut tree = MockTree::new("demo", "/demo");
//! tree.write(&RECIPE, &MockTree::create_op("/demo/a", b"")).unwrap();
//! assert_eq!(tree.data("/demo/seen").unwrap(), b"/demo/a");
//! ```

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};

use crate::abi::{
    Call, Codec, Event, EventKind, Header, Node, Op, OpResult, Stat, Validate, WriteKind,
};
use crate::ctx::{CreateMode, Level};
use crate::error::Error;
use crate::rt::{self, Recipe};

/// How many rounds of recipe-fired events [`MockTree::write`] delivers after the client's own
/// (the mock's choice; the host has its own fixed depth). Deeper events are dropped.
pub const CASCADE_DEPTH_MAX: usize = 4;

/// The session [`MockTree`] writes and triggers as until [`MockTree::set_session`].
pub const SESSION_DEFAULT: i64 = 0x100_0000_0001;

/// The clock [`MockTree`] stamps txns with until [`MockTree::set_time_ms`] (ms since the epoch).
pub const TIME_MS_DEFAULT: i64 = 1_700_000_000_000;

/// A line a recipe logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// What one run of a recipe did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// The entry point's return code (0 = success / allow).
    pub code: i32,
    /// What the run passed to `set_result` last (a call's result, a validator's reason).
    pub result: Vec<u8>,
    pub logs: Vec<LogLine>,
    /// The first path the run tried to write outside its root; the host stops such a run.
    pub escaped: Option<String>,
    /// The events the run's kept writes fire (kind, path), in order.
    pub fired: Vec<(EventKind, String)>,
}

impl Run {
    /// True when the host keeps this run's writes (or, for a validator, allows the write).
    pub fn succeeded(&self) -> bool {
        self.code == 0 && self.escaped.is_none()
    }

    /// The result as text (lossy), for assertions.
    pub fn result_text(&self) -> String {
        String::from_utf8_lossy(&self.result).into_owned()
    }
}

#[derive(Clone, Debug)]
struct MockNode {
    data: Vec<u8>,
    stat: Stat,
}

/// The tree and the current txn; moved into [`ACTIVE`] while a run executes.
#[derive(Clone, Debug)]
struct State {
    nodes: BTreeMap<String, MockNode>,
    zxid: i64,
    time_ms: i64,
    session: i64,
    recipe: String,
    root: String,
    run: Run,
}

thread_local! {
    /// The tree the running recipe's host calls reach (tests run one per thread).
    static ACTIVE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// An in-memory zkw for one recipe bound to one root.
#[derive(Clone, Debug)]
pub struct MockTree {
    state: State,
}

impl MockTree {
    /// A tree holding `/` and `root` (with its parents), for the recipe `recipe` bound at `root`.
    pub fn new(recipe: &str, root: &str) -> MockTree {
        let mut state = State {
            nodes: BTreeMap::new(),
            zxid: 0,
            time_ms: TIME_MS_DEFAULT,
            session: SESSION_DEFAULT,
            recipe: recipe.to_owned(),
            root: root.to_owned(),
            run: Run::default(),
        };
        state
            .nodes
            .insert("/".into(), state.new_node(Vec::new(), 0));
        let mut prefix = String::new();
        for part in root.split('/').filter(|part| !part.is_empty()) {
            prefix = format!("{prefix}/{part}");
            if !state.nodes.contains_key(&prefix) {
                state.zxid += 1;
                // The parents exist (built in order), so this cannot fail.
                let _ = state.create(&prefix, b"", CreateMode::Persistent as i32);
            }
        }
        MockTree { state }
    }

    /// The session that later writes and runs belong to (0 plays a timer's txn).
    pub fn set_session(&mut self, session: i64) {
        self.state.session = session;
    }

    /// The leader clock later txns carry.
    pub fn set_time_ms(&mut self, time_ms: i64) {
        self.state.time_ms = time_ms;
    }

    /// The header a run of the current txn sees.
    pub fn header(&self) -> Header {
        self.state.header()
    }

    /// The node at `path`, as the `get` import would return it.
    pub fn get(&self, path: &str) -> Option<Node> {
        self.state.get(path).ok()
    }

    /// The data at `path`.
    pub fn data(&self, path: &str) -> Option<Vec<u8>> {
        self.get(path).map(|node| node.data)
    }

    /// The data at `path` as text (lossy).
    pub fn text(&self, path: &str) -> Option<String> {
        self.data(path)
            .map(|data| String::from_utf8_lossy(&data).into_owned())
    }

    /// The sorted child names of `path`.
    pub fn children(&self, path: &str) -> Result<Vec<String>, Error> {
        self.state.children(path)
    }

    /// Every path in the tree, sorted.
    pub fn paths(&self) -> Vec<String> {
        self.state.nodes.keys().cloned().collect()
    }

    /// A create op for [`MockTree::write`] (persistent).
    pub fn create_op(path: &str, data: &[u8]) -> Op {
        Op::Create {
            path: path.to_owned(),
            data: data.to_vec(),
            flags: CreateMode::Persistent as i32,
        }
    }

    /// A client of `session` creates an ephemeral sequential `<parent>/<prefix>NNNNNNNNNN` with
    /// `data` (a lock request, an election participant...); every run it causes must succeed.
    /// Returns the created path.
    pub fn join(
        &mut self,
        recipe: &Recipe,
        session: i64,
        parent: &str,
        prefix: &str,
        data: &[u8],
    ) -> String {
        self.set_session(session);
        let op = Op::Create {
            path: format!("{parent}/{prefix}"),
            data: data.to_vec(),
            flags: CreateMode::EphemeralSequential as i32,
        };
        let before = self.children(parent).unwrap_or_default();
        let runs = self
            .write(recipe, &op)
            .unwrap_or_else(|error| panic!("join: {error}"));
        assert!(runs.iter().all(Run::succeeded), "{runs:?}");
        let created = self
            .children(parent)
            .unwrap_or_default()
            .into_iter()
            .find(|name| name.starts_with(prefix) && !before.contains(name));
        format!(
            "{parent}/{}",
            created.unwrap_or_else(|| panic!("join: nothing created under {parent}"))
        )
    }

    /// A client's write as the host handles it, in its own txn: `recipe`'s validator (if any)
    /// may reject it (its code is the client's error); then it applies, and the events it fires
    /// under the root run `recipe`'s `on_event` (if any), whose kept writes fire more events,
    /// up to [`CASCADE_DEPTH_MAX`] rounds. Returns every event run, in order.
    pub fn write(&mut self, recipe: &Recipe, op: &Op) -> Result<Vec<Run>, Error> {
        self.state.zxid += 1;
        if recipe.validate.is_some() {
            if let Some(write) = self.validate_input(op) {
                let input = write.encode();
                let run = self.run(|| rt::run_validate(recipe, &input));
                if !run.succeeded() {
                    return Err(Error::from_code(run.code));
                }
            }
        }
        let fired = self.state.apply(op).map(|(_, fired)| fired)?;
        Ok(self.cascade(recipe, fired))
    }

    /// A client's write that triggers nothing (setting up a test's tree).
    pub fn apply(&mut self, op: &Op) -> Result<OpResult, Error> {
        self.state.zxid += 1;
        self.state.apply(op).map(|(result, _)| result)
    }

    /// Runs `on_event` once for an event of `kind` at `path`, in a new txn.
    pub fn on_event(&mut self, recipe: &Recipe, kind: EventKind, path: &str) -> Run {
        self.state.zxid += 1;
        self.event_run(recipe, kind, path, Vec::new())
    }

    /// Closes `session` as the host does: deletes its ephemerals, then runs `on_event` with a
    /// SessionClosed event listing those under the root.
    pub fn close_session(&mut self, recipe: &Recipe, session: i64) -> Run {
        self.state.zxid += 1;
        let owned: Vec<String> = (self.state.nodes.iter())
            .filter(|(_, node)| node.stat.ephemeral_owner == session)
            .map(|(path, _)| path.clone())
            .collect();
        for path in &owned {
            let _ = self.state.delete(path, -1);
        }
        let saved = self.state.session;
        self.state.session = session;
        let ephemerals = owned
            .into_iter()
            .filter(|path| under(&self.state.root, path))
            .collect();
        let run = self.event_run(recipe, EventKind::SessionClosed, "", ephemerals);
        self.state.session = saved;
        run
    }

    /// Runs `on_call` with `args`, in a new txn.
    pub fn call(&mut self, recipe: &Recipe, args: &[u8]) -> Run {
        self.state.zxid += 1;
        let call = Call {
            header: self.state.header(),
            args: args.to_vec(),
        };
        let input = call.encode();
        self.run(|| rt::run_call(recipe, &input))
    }

    /// Runs `validate` for a client write without applying the write (`None`: the host would
    /// not ask, as for a check or a path outside the root).
    pub fn validate(&mut self, recipe: &Recipe, op: &Op) -> Option<Run> {
        self.state.zxid += 1;
        let input = self.validate_input(op)?.encode();
        Some(self.run(|| rt::run_validate(recipe, &input)))
    }

    fn validate_input(&self, op: &Op) -> Option<Validate> {
        let header = self.state.header();
        let (kind, path, data, flags) = match op {
            Op::Create { path, data, flags } => (WriteKind::Create, path, data.clone(), *flags),
            Op::Delete { path, .. } => (WriteKind::Delete, path, Vec::new(), 0),
            Op::SetData { path, data, .. } => (WriteKind::SetData, path, data.clone(), 0),
            Op::Check { .. } => return None,
        };
        under(&self.state.root, path).then(|| Validate {
            header,
            kind,
            path: path.clone(),
            data,
            flags,
        })
    }

    fn cascade(&mut self, recipe: &Recipe, fired: Vec<(EventKind, String)>) -> Vec<Run> {
        let mut runs = Vec::new();
        if recipe.on_event.is_none() {
            return runs;
        }
        let mut queue: VecDeque<(usize, EventKind, String)> = fired
            .into_iter()
            .map(|(kind, path)| (0, kind, path))
            .collect();
        while let Some((depth, kind, path)) = queue.pop_front() {
            if !under(&self.state.root, &path) {
                continue;
            }
            let run = self.event_run(recipe, kind, &path, Vec::new());
            if depth < CASCADE_DEPTH_MAX {
                queue.extend(run.fired.iter().map(|(k, p)| (depth + 1, *k, p.clone())));
            }
            runs.push(run);
        }
        runs
    }

    fn event_run(
        &mut self,
        recipe: &Recipe,
        kind: EventKind,
        path: &str,
        ephemerals: Vec<String>,
    ) -> Run {
        let event = Event {
            header: self.state.header(),
            kind,
            path: path.to_owned(),
            ephemerals,
        };
        let input = event.encode();
        self.run(|| rt::run_event(recipe, &input))
    }

    /// Makes the tree the active host for `body`; a failed run's writes are rolled back.
    fn run(&mut self, entry: impl FnOnce() -> i32) -> Run {
        let before = self.state.nodes.clone();
        let mut state = self.state.clone();
        state.run = Run::default();
        ACTIVE.with(|active| *active.borrow_mut() = Some(state));
        let code = entry();
        let taken = ACTIVE.with(|active| active.borrow_mut().take());
        let Some(mut state) = taken else {
            return Run {
                code: Error::SystemError.code(),
                ..Run::default()
            };
        };
        state.run.code = code;
        let run = std::mem::take(&mut state.run);
        self.state = state;
        if !run.succeeded() {
            self.state.nodes = before;
            return Run {
                fired: Vec::new(),
                ..run
            };
        }
        run
    }
}

/// True when `path` is `root` or under it.
fn under(root: &str, path: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty()
        || path == root
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// `/a/b` -> `/a`; `/a` -> `/`.
fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

fn check_path(path: &str) -> Result<(), Error> {
    let bad = !path.starts_with('/')
        || (path.len() > 1 && path.ends_with('/'))
        || path.contains('\0')
        || (path.len() > 1
            && path[1..]
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == ".."));
    if bad {
        return Err(Error::BadArguments);
    }
    Ok(())
}

impl State {
    fn header(&self) -> Header {
        Header {
            session: self.session,
            zxid: self.zxid,
            time_ms: self.time_ms,
            recipe: self.recipe.clone(),
            root: self.root.clone(),
        }
    }

    fn new_node(&self, data: Vec<u8>, owner: i64) -> MockNode {
        let stat = Stat {
            czxid: self.zxid,
            mzxid: self.zxid,
            ctime: self.time_ms,
            mtime: self.time_ms,
            ephemeral_owner: owner,
            pzxid: self.zxid,
            ..Stat::default()
        };
        MockNode { data, stat }
    }

    fn get(&self, path: &str) -> Result<Node, Error> {
        check_path(path)?;
        let node = self.nodes.get(path).ok_or(Error::NoNode)?;
        let mut stat = node.stat;
        stat.data_length = i32::try_from(node.data.len()).unwrap_or(i32::MAX);
        stat.num_children = i32::try_from(self.children(path)?.len()).unwrap_or(i32::MAX);
        Ok(Node {
            stat,
            data: node.data.clone(),
        })
    }

    fn children(&self, path: &str) -> Result<Vec<String>, Error> {
        check_path(path)?;
        if !self.nodes.contains_key(path) {
            return Err(Error::NoNode);
        }
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        Ok((self.nodes.range(prefix.clone()..))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(&prefix))
            .filter_map(|key| key.get(prefix.len()..))
            .filter(|name| !name.is_empty() && !name.contains('/'))
            .map(str::to_owned)
            .collect())
    }

    /// Applies `op` in the current txn; the result and the events it fires.
    fn apply(&mut self, op: &Op) -> Result<(OpResult, Vec<(EventKind, String)>), Error> {
        match op {
            Op::Create { path, data, flags } => {
                let (created, stat) = self.create(path, data, *flags)?;
                let fired = vec![
                    (EventKind::Created, created.clone()),
                    (EventKind::ChildrenChanged, parent(&created).to_owned()),
                ];
                Ok((
                    OpResult::Created {
                        path: created,
                        stat,
                    },
                    fired,
                ))
            }
            Op::Delete { path, version } => {
                self.delete(path, *version)?;
                let fired = vec![
                    (EventKind::Deleted, path.clone()),
                    (EventKind::ChildrenChanged, parent(path).to_owned()),
                ];
                Ok((OpResult::Deleted, fired))
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                let stat = self.set(path, data, *version)?;
                Ok((
                    OpResult::Set(stat),
                    vec![(EventKind::DataChanged, path.clone())],
                ))
            }
            Op::Check { path, version } => {
                self.version_matches(path, *version)?;
                Ok((OpResult::Checked, Vec::new()))
            }
        }
    }

    fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Result<(String, Stat), Error> {
        check_path(path)?;
        if path == "/" || !(0..=4).contains(&flags) {
            return Err(Error::BadArguments);
        }
        let ephemeral = flags == CreateMode::Ephemeral as i32
            || flags == CreateMode::EphemeralSequential as i32;
        let sequential = flags == CreateMode::PersistentSequential as i32
            || flags == CreateMode::EphemeralSequential as i32;
        if ephemeral && self.session == 0 {
            return Err(Error::EphemeralOnLocalSession);
        }
        let parent_path = parent(path).to_owned();
        let parent_node = self.nodes.get(&parent_path).ok_or(Error::NoNode)?;
        if parent_node.stat.ephemeral_owner != 0 {
            return Err(Error::NoChildrenForEphemerals);
        }
        let created = if sequential {
            format!("{path}{:010}", parent_node.stat.cversion)
        } else {
            path.to_owned()
        };
        if self.nodes.contains_key(&created) {
            return Err(Error::NodeExists);
        }
        let owner = if ephemeral { self.session } else { 0 };
        let node = self.new_node(data.to_vec(), owner);
        self.nodes.insert(created.clone(), node);
        self.touch_parent(&parent_path);
        let stat = self.get(&created)?.stat;
        Ok((created, stat))
    }

    fn touch_parent(&mut self, parent_path: &str) {
        let zxid = self.zxid;
        if let Some(parent_node) = self.nodes.get_mut(parent_path) {
            parent_node.stat.cversion += 1;
            parent_node.stat.pzxid = zxid;
        }
    }

    fn version_matches(&self, path: &str, version: i32) -> Result<Node, Error> {
        let node = self.get(path)?;
        if version != -1 && version != node.stat.version {
            return Err(Error::BadVersion);
        }
        Ok(node)
    }

    fn delete(&mut self, path: &str, version: i32) -> Result<(), Error> {
        if path == "/" {
            return Err(Error::BadArguments);
        }
        let node = self.version_matches(path, version)?;
        if node.stat.num_children > 0 {
            return Err(Error::NotEmpty);
        }
        self.nodes.remove(path);
        self.touch_parent(parent(path));
        Ok(())
    }

    fn set(&mut self, path: &str, data: &[u8], version: i32) -> Result<Stat, Error> {
        self.version_matches(path, version)?;
        let (zxid, time_ms) = (self.zxid, self.time_ms);
        if let Some(node) = self.nodes.get_mut(path) {
            node.data = data.to_vec();
            node.stat.version += 1;
            node.stat.mzxid = zxid;
            node.stat.mtime = time_ms;
        }
        Ok(self.get(path)?.stat)
    }

    /// A recipe's write: only at or under the root (otherwise the run stops), then applied.
    fn recipe_write(&mut self, op: &Op) -> Result<OpResult, Error> {
        let path = match op {
            Op::Create { path, .. }
            | Op::Delete { path, .. }
            | Op::SetData { path, .. }
            | Op::Check { path, .. } => path,
        };
        if self.run.escaped.is_some() {
            return Err(Error::SystemError);
        }
        if !under(&self.root, path) {
            self.run.escaped = Some(path.clone());
            self.log(Level::Error, format!("write outside {}: {path}", self.root));
            return Err(Error::SystemError);
        }
        let (result, fired) = self.apply(op)?;
        self.run.fired.extend(fired);
        Ok(result)
    }

    fn log(&mut self, level: Level, message: String) {
        self.run.logs.push(LogLine { level, message });
    }
}

/// The host side of the imports, reached from `sys` on native targets.
pub(crate) mod host {
    use super::*;

    /// Runs `body` on the active tree; `SystemError` when no run is active (a `Ctx` used
    /// outside [`MockTree`]).
    fn with<T>(body: impl FnOnce(&mut State) -> Result<T, i32>) -> Result<T, i32> {
        ACTIVE.with(|active| match active.borrow_mut().as_mut() {
            Some(state) => body(state),
            None => Err(Error::SystemError.code()),
        })
    }

    pub(crate) fn get(path: &str) -> Result<Vec<u8>, i32> {
        with(|state| {
            state
                .get(path)
                .map(|node| node.encode())
                .map_err(Error::code)
        })
    }

    pub(crate) fn children(path: &str) -> Result<Vec<u8>, i32> {
        with(|state| {
            state
                .children(path)
                .map(|names| names.encode())
                .map_err(Error::code)
        })
    }

    pub(crate) fn write(op: &[u8]) -> Result<Vec<u8>, i32> {
        let op = Op::decode(op).map_err(|_| Error::MarshallingError.code())?;
        with(|state| {
            state
                .recipe_write(&op)
                .map(|r| r.encode())
                .map_err(Error::code)
        })
    }

    pub(crate) fn set_result(bytes: &[u8]) {
        let _ = with(|state| {
            state.run.result = bytes.to_vec();
            Ok(())
        });
    }

    pub(crate) fn log(level: i32, message: &str) {
        let level = match level {
            1 => Level::Error,
            2 => Level::Warn,
            3 => Level::Info,
            _ => Level::Debug,
        };
        let _ = with(|state| {
            state.log(level, message.to_owned());
            Ok(())
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ctx::Ctx;

    fn create(path: &str, mode: CreateMode) -> Op {
        Op::Create {
            path: path.into(),
            data: b"d".to_vec(),
            flags: mode as i32,
        }
    }

    #[test]
    fn stat_bookkeeping_follows_zookeeper() {
        let mut tree = MockTree::new("r", "/r");
        let first = tree.apply(&create("/r/q-", CreateMode::PersistentSequential));
        let second = tree.apply(&create("/r/q-", CreateMode::PersistentSequential));
        let names: Vec<String> = [first, second]
            .into_iter()
            .map(|result| match result.unwrap() {
                OpResult::Created { path, .. } => path,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["/r/q-0000000000", "/r/q-0000000001"]);
        let root = tree.get("/r").unwrap().stat;
        assert_eq!((root.num_children, root.cversion), (2, 2));
        let set = Op::SetData {
            path: "/r/q-0000000000".into(),
            data: b"longer".to_vec(),
            version: 0,
        };
        let OpResult::Set(stat) = tree.apply(&set).unwrap() else {
            panic!("not a set")
        };
        assert_eq!((stat.version, stat.data_length), (1, 6));
        assert_eq!(tree.apply(&set), Err(Error::BadVersion));
        let delete_root = Op::Delete {
            path: "/r".into(),
            version: -1,
        };
        assert_eq!(tree.apply(&delete_root), Err(Error::NotEmpty));
        assert_eq!(
            tree.apply(&create("/r/q-0000000000", CreateMode::Persistent)),
            Err(Error::NodeExists)
        );
        assert_eq!(
            tree.apply(&create("/r/a/b", CreateMode::Persistent)),
            Err(Error::NoNode)
        );
        assert_eq!(
            tree.apply(&create("/r/bad/", CreateMode::Persistent)),
            Err(Error::BadArguments)
        );
    }

    #[test]
    fn ephemerals_belong_to_the_session() {
        let mut tree = MockTree::new("r", "/r");
        tree.apply(&create("/r/e", CreateMode::Ephemeral)).unwrap();
        assert_eq!(
            tree.get("/r/e").unwrap().stat.ephemeral_owner,
            SESSION_DEFAULT
        );
        assert_eq!(
            tree.apply(&create("/r/e/child", CreateMode::Persistent)),
            Err(Error::NoChildrenForEphemerals)
        );
        tree.set_session(0);
        assert_eq!(
            tree.apply(&create("/r/f", CreateMode::Ephemeral)),
            Err(Error::EphemeralOnLocalSession)
        );
    }

    fn write_then_fail(ctx: &mut Ctx, _event: &Event) -> Result<(), Error> {
        ctx.create(&ctx.path("kept"), b"", CreateMode::Persistent)?;
        ctx.info("about to fail");
        Err(Error::BadVersion)
    }

    #[test]
    fn a_failed_run_keeps_nothing_but_its_logs() {
        let recipe = Recipe {
            on_event: Some(write_then_fail),
            ..Recipe::NONE
        };
        let mut tree = MockTree::new("r", "/r");
        let run = tree.on_event(&recipe, EventKind::Timer, "");
        assert_eq!(run.code, Error::BadVersion.code());
        assert!(tree.get("/r/kept").is_none());
        assert!(run.fired.is_empty());
        let messages: Vec<&str> = run.logs.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["about to fail", "on_event failed: bad version"]);
    }

    fn grow(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
        if event.kind == EventKind::Created {
            ctx.create(&format!("{}/x", event.path), b"", CreateMode::Persistent)?;
        }
        Ok(())
    }

    #[test]
    fn cascades_stop_at_the_depth_limit() {
        let recipe = Recipe {
            on_event: Some(grow),
            ..Recipe::NONE
        };
        let mut tree = MockTree::new("r", "/r");
        tree.write(&recipe, &create("/r/a", CreateMode::Persistent))
            .unwrap();
        let depth = tree.paths().iter().filter(|p| p.ends_with("/x")).count();
        assert_eq!(depth, CASCADE_DEPTH_MAX + 1);
    }

    #[test]
    fn bad_input_and_missing_entries_fail_the_run() {
        let recipe = Recipe {
            on_event: Some(grow),
            ..Recipe::NONE
        };
        let mut tree = MockTree::new("r", "/r");
        let run = tree.run(|| rt::run_event(&recipe, &[0, 1, 2]));
        assert_eq!(run.code, Error::MarshallingError.code());
        assert!(run.logs[0].message.starts_with("bad event input"));
        assert_eq!(tree.call(&recipe, b"").code, Error::Unimplemented.code());
    }

    #[test]
    fn a_ctx_outside_a_run_reports_a_system_error() {
        let mut ctx = Ctx::new(Header::default());
        assert_eq!(ctx.get("/"), Err(Error::SystemError));
        assert_eq!(ctx.children("/"), Err(Error::SystemError));
    }
}
