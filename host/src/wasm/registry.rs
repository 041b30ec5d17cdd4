//! The installed recipes and how a txn's events reach them. The set of recipes is derived from
//! the tree (`/zookeeper/recipes`), so every replica, and every restart, agrees on it; only the
//! compiled code and the counters are per server. Runs happen one at a time, inside apply,
//! each in its own tree journal: a failed run rolls back alone.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use wasmtime::{Engine, Linker};
use zkw_guest::abi::{self, Codec, EventKind, WriteKind};

use super::manifest::Manifest;
use super::module::{self, Loaded};
use super::run::{self, ApplyOp, Failure, RunCtx, RunState};
use super::{WasmError, CALL_PREFIX, CHUNK_PREFIX, RECIPES_PATH};
use crate::clock::Stopwatch;
use crate::proto::{ErrorCode, EventType, SessionId, Zxid};
use crate::tree::watch::WatchTrigger;
use crate::tree::{acl, Tree};

/// How many generations of recipe writes may trigger recipes again (a write by a run at this
/// depth fires watches but no further recipe).
pub const TRIGGER_DEPTH_MAX: u32 = 4;
/// Runs one txn may cause in all, so a cascade stays bounded whatever the recipes do.
pub const RUNS_PER_TXN_MAX: u32 = 256;
/// Bytes of recent log lines kept in a recipe's log node (`zkw recipe logs`); older lines go.
pub const LOG_NODE_BYTES_MAX: usize = 16 * 1024;
/// The child of a recipe's node that holds its recent log lines.
pub const LOG_NODE: &str = "log";

/// Compiles recipe modules into the server's cache outside the tree lock, so installing one
/// (which happens inside apply, under the lock, on every replica) only loads the compiled copy.
#[derive(Clone)]
pub struct Compiler {
    engine: Engine,
    cache_dir: PathBuf,
}

impl Compiler {
    pub fn compile_ahead(&self, bytes: &[u8]) {
        module::compile_ahead(&self.engine, &self.cache_dir, bytes);
    }
}

/// Per-recipe counters on this server (runs are identical on every replica; these count them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecipeStats {
    pub runs: u64,
    pub failures: u64,
    pub fuel_used: u64,
    pub time_us: u64,
}

/// What a recipe run knows of its txn.
#[derive(Clone, Copy, Debug)]
pub struct TxnInfo {
    pub zxid: Zxid,
    pub time_ms: i64,
    pub session_id: SessionId,
}

#[derive(Clone)]
struct Installed {
    manifest: Manifest,
    loaded: Loaded,
    stats: RecipeStats,
}

/// One installed recipe as `zkw recipe list` shows it.
#[derive(Clone, Debug)]
pub struct RecipeInfo {
    pub name: String,
    pub manifest: Manifest,
    pub stats: RecipeStats,
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache_dir: Option<PathBuf>,
    apply_op: ApplyOp,
    recipes: BTreeMap<String, Installed>,
    /// Log lines of the current txn, written to the log nodes when it ends.
    pending_logs: BTreeMap<String, Vec<String>>,
    /// When this server, leading, last proposed each recipe's timer (leader clock, ms).
    timers_fired: BTreeMap<String, i64>,
    /// `zkw.recipe.txnFuelMax`: fuel all runs of one txn may use together.
    txn_fuel_max: u64,
    /// Fuel the current txn's runs may still use.
    txn_fuel_left: u64,
    /// The current txn's runs needed more than `txn_fuel_max`: it must be refused.
    txn_fuel_exceeded: bool,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("recipes", &self.recipes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// An event waiting for its runs.
struct Pending {
    depth: u32,
    /// A session-closed event goes to one recipe, with that recipe's ephemerals.
    only: Option<String>,
    kind: EventKind,
    path: String,
    ephemerals: Vec<String>,
}

/// What one run left behind.
struct Ran {
    outcome: Result<i32, Failure>,
    triggers: Vec<WatchTrigger>,
    result: Vec<u8>,
}

impl Runtime {
    /// `cache_dir`: where compiled modules are kept (None: compile every time, for tests);
    /// `txn_fuel_max`: fuel all runs of one txn may use together (`zkw.recipe.txnFuelMax`).
    pub fn new(
        cache_dir: Option<PathBuf>,
        apply_op: ApplyOp,
        txn_fuel_max: u64,
    ) -> Result<Runtime, WasmError> {
        let engine = super::engine::engine()?;
        let linker = run::link(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            apply_op,
            recipes: BTreeMap::new(),
            pending_logs: BTreeMap::new(),
            timers_fired: BTreeMap::new(),
            txn_fuel_max,
            txn_fuel_left: txn_fuel_max,
            txn_fuel_exceeded: false,
        })
    }

    /// What must be equal on every replica for recipe txns to end alike: the engine's
    /// fingerprint and the per-txn fuel cap (a txn past it is refused, so a replica with
    /// another cap would refuse other txns). The leader proposes it once per term.
    pub fn fingerprint(&self) -> String {
        format!(
            "{};txn-fuel-{}",
            super::engine::fingerprint(),
            self.txn_fuel_max
        )
    }

    /// Starts a txn's fuel budget (`zkw.recipe.txnFuelMax`).
    pub fn begin_txn(&mut self) {
        self.txn_fuel_left = self.txn_fuel_max;
        self.txn_fuel_exceeded = false;
    }

    /// True when the current txn's runs needed more fuel than `zkw.recipe.txnFuelMax`
    /// allows: the run that hit the cap failed out of fuel, later ones did not run. The same
    /// on every replica (fuel is deterministic), so every replica refuses the txn alike.
    pub fn txn_fuel_exceeded(&self) -> bool {
        self.txn_fuel_exceeded
    }

    /// The fuel cap per txn (`zkw.recipe.txnFuelMax`).
    pub fn txn_fuel_max(&self) -> u64 {
        self.txn_fuel_max
    }

    /// The permission bits a caller needs on `name`'s node to call it (None: no such recipe).
    pub fn call_perms(&self, name: &str) -> Option<i32> {
        self.recipes
            .get(name)
            .map(|recipe| recipe.manifest.call_perms)
    }

    pub fn is_empty(&self) -> bool {
        self.recipes.is_empty()
    }

    pub fn list(&self) -> Vec<RecipeInfo> {
        self.recipes
            .iter()
            .map(|(name, installed)| RecipeInfo {
                name: name.clone(),
                manifest: installed.manifest.clone(),
                stats: installed.stats,
            })
            .collect()
    }

    /// True for a path whose change can install, change or remove a recipe (a manifest or a
    /// module chunk), and so needs [`Runtime::sync`] and an admin.
    pub fn is_install_path(path: &str) -> bool {
        let Some(rest) = path.strip_prefix(RECIPES_PATH) else {
            return false;
        };
        let mut parts = rest.split('/').skip(1);
        match (parts.next(), parts.next(), parts.next()) {
            (Some(name), None, None) => !name.is_empty(),
            (Some(_), Some(child), None) => child.starts_with(CHUNK_PREFIX),
            _ => false,
        }
    }

    /// True for a path only super or the recipe admin may write (create, delete, setData,
    /// setACL): `/zookeeper/recipes`, a recipe's node and everything under it (its module,
    /// its log) except the call nodes, which callers create and delete.
    pub fn is_admin_path(path: &str) -> bool {
        run::is_under(RECIPES_PATH, path) && Self::call_target(path).is_none()
    }

    /// What compiles modules ahead of apply ([`Compiler::compile_ahead`]); None without a
    /// cache directory (the compiled code would have nowhere to wait for its install).
    pub fn compiler(&self) -> Option<Compiler> {
        Some(Compiler {
            engine: self.engine.clone(),
            cache_dir: self.cache_dir.clone()?,
        })
    }

    /// The modules that `writes` (path and data of each create or setData of a batch about to
    /// apply) complete, as their install will read them: the manifest and chunks in `tree`,
    /// overlaid with the written ones, whole and matching the manifest's sha256, and not
    /// installed with these bytes already. A pure guess for [`Compiler::compile_ahead`]: a
    /// write that fails later only leaves a compiled copy unused.
    pub fn modules_completed_by(&self, tree: &Tree, writes: &[(&str, &[u8])]) -> Vec<Vec<u8>> {
        let server = [acl::server_id()];
        let mut touched: BTreeMap<&str, BTreeMap<&str, &[u8]>> = BTreeMap::new();
        for (path, data) in writes {
            let Some(rest) = path
                .strip_prefix(RECIPES_PATH)
                .and_then(|rest| rest.strip_prefix('/'))
            else {
                continue;
            };
            let (name, child) = rest.split_once('/').unwrap_or((rest, ""));
            touched.entry(name).or_default().insert(child, data);
        }
        let mut modules = Vec::new();
        for (name, written) in touched {
            let path = format!("{RECIPES_PATH}/{name}");
            let manifest_bytes = match written.get("") {
                Some(data) => data.to_vec(),
                None => match tree.node(&path) {
                    Some(node) => node.data_bytes().to_vec(),
                    None => continue,
                },
            };
            let Ok(manifest) = Manifest::parse(&manifest_bytes) else {
                continue;
            };
            if self
                .recipes
                .get(name)
                .is_some_and(|installed| installed.manifest.sha256 == manifest.sha256)
            {
                continue;
            }
            let mut chunks: BTreeMap<String, Vec<u8>> = tree
                .get_children(&path, &server)
                .map(|(children, _)| children)
                .unwrap_or_default()
                .into_iter()
                .filter(|child| child.starts_with(CHUNK_PREFIX))
                .filter_map(|child| {
                    let data = tree.node(&format!("{path}/{child}"))?.data_bytes().to_vec();
                    Some((child, data))
                })
                .collect();
            for (child, data) in written {
                if child.starts_with(CHUNK_PREFIX) && !child.contains('/') {
                    chunks.insert(child.to_owned(), data.to_vec());
                }
            }
            let bytes: Vec<u8> = chunks.into_values().flatten().collect();
            let whole = u64::try_from(bytes.len()).is_ok_and(|size| size == manifest.size);
            if whole && module::sha256_hex(&bytes) == manifest.sha256 {
                modules.push(bytes);
            }
        }
        modules
    }

    /// The recipe a create of `path` calls, if `path` is `<RECIPES_PATH>/<name>/call-...`.
    pub fn call_target(path: &str) -> Option<&str> {
        let rest = path.strip_prefix(RECIPES_PATH)?.strip_prefix('/')?;
        let (name, child) = rest.split_once('/')?;
        (child.starts_with(CALL_PREFIX) && !child.contains('/')).then_some(name)
    }

    /// Brings the installed set in line with the tree. A recipe whose module is complete but
    /// bad (hash, format, imports, ABI) is an error, and the txn that completed it is refused;
    /// nothing changes then.
    pub fn sync(&mut self, tree: &Tree) -> Result<(), WasmError> {
        let server = [acl::server_id()];
        let names = tree
            .get_children(RECIPES_PATH, &server)
            .map(|(names, _)| names)
            .unwrap_or_default();
        let mut next = BTreeMap::new();
        // Every manifest, complete module or not: a path is taken from its first write on.
        let mut bound: Vec<(String, Manifest)> = Vec::new();
        for name in names {
            let refused = |error: WasmError| WasmError::Refused(format!("recipe {name}: {error}"));
            let path = format!("{RECIPES_PATH}/{name}");
            let Some(node) = tree.node(&path) else {
                continue;
            };
            let manifest = Manifest::parse(node.data_bytes()).map_err(refused)?;
            for (other, theirs) in &bound {
                manifest.check_apart(other, theirs).map_err(refused)?;
            }
            bound.push((name.clone(), manifest.clone()));
            let Some(bytes) = module_bytes(tree, &path, manifest.size).map_err(refused)? else {
                continue;
            };
            let hash = module::sha256_hex(&bytes);
            if hash != manifest.sha256 {
                return Err(refused(WasmError::Refused(format!(
                    "the module's sha256 is {hash}, the manifest says {}",
                    manifest.sha256
                ))));
            }
            let installed = match self.recipes.get(&name) {
                Some(old) if old.manifest.sha256 == hash => Installed {
                    manifest,
                    ..old.clone()
                },
                _ => Installed {
                    loaded: module::load(
                        &self.engine,
                        &self.linker,
                        self.cache_dir.as_deref(),
                        &bytes,
                    )
                    .map_err(refused)?,
                    manifest,
                    stats: RecipeStats::default(),
                },
            };
            next.insert(name, installed);
        }
        for name in next.keys().filter(|name| !self.recipes.contains_key(*name)) {
            tracing::info!(recipe = %name, "recipe installed");
        }
        self.recipes = next;
        Ok(())
    }

    /// Asks every validator bound over `path` about a client write, before it happens.
    /// Validators only read: whatever they write is discarded.
    pub fn validate(
        &mut self,
        tree: &mut Tree,
        info: TxnInfo,
        kind: WriteKind,
        path: &str,
        data: &[u8],
        flags: i32,
    ) -> Result<(), ErrorCode> {
        let names: Vec<String> = self
            .recipes
            .iter()
            .filter(|(_, recipe)| recipe.loaded.entries.validate && owns(&recipe.manifest, path))
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            let input = |header| {
                abi::Validate {
                    header,
                    kind,
                    path: path.to_owned(),
                    data: data.to_vec(),
                    flags,
                }
                .encode()
            };
            let ran = self.run_one(tree, &name, info, abi::export::VALIDATE, input, false);
            let reason = String::from_utf8_lossy(&ran.result).into_owned();
            let code = match ran.outcome {
                Ok(0) => continue,
                Ok(code) => ErrorCode::from_code(code)
                    .filter(|code| *code != ErrorCode::Ok)
                    .unwrap_or(ErrorCode::BadArguments),
                // A validator that cannot decide refuses: the data it guards stays valid.
                Err(_) => ErrorCode::SystemError,
            };
            tracing::info!(recipe = %name, zxid = info.zxid, path, code = code.code(), %reason, "validator rejected a write");
            self.log(&name, format!("rejected {path}: {reason}"));
            return Err(code);
        }
        Ok(())
    }

    /// Runs the recipes the txn's events (and, for a closed session, its ephemerals) trigger,
    /// then those their writes trigger, up to [`TRIGGER_DEPTH_MAX`]. Kept writes add their
    /// triggers to `triggers`, so watches fire for them.
    pub fn react(
        &mut self,
        tree: &mut Tree,
        info: TxnInfo,
        triggers: &mut Vec<WatchTrigger>,
        closed: Option<(SessionId, &[String])>,
    ) {
        if self.recipes.is_empty() {
            return;
        }
        let mut queue: VecDeque<Pending> = events(triggers, 0).collect();
        if let Some((_, ephemerals)) = closed {
            queue.extend(self.session_closed(ephemerals));
        }
        self.run_queue(tree, info, triggers, queue);
    }

    /// Timer events for `names` (the leader found them due), and what their writes trigger.
    pub fn timer(
        &mut self,
        tree: &mut Tree,
        info: TxnInfo,
        names: &[String],
        triggers: &mut Vec<WatchTrigger>,
    ) {
        let queue = names
            .iter()
            .filter(|name| {
                self.recipes
                    .get(*name)
                    .is_some_and(|r| r.manifest.timer_ms > 0)
            })
            .map(|name| Pending {
                depth: 0,
                only: Some(name.clone()),
                kind: EventKind::Timer,
                path: String::new(),
                ephemerals: Vec::new(),
            })
            .collect();
        self.run_queue(tree, info, triggers, queue);
    }

    /// The recipes whose timer is due at `now_ms` (leader only; not replicated: a new leader
    /// fires every timer at once, then keeps the periods).
    pub fn timers_due(&mut self, now_ms: i64) -> Vec<String> {
        let mut due = Vec::new();
        for (name, recipe) in &self.recipes {
            let period = i64::try_from(recipe.manifest.timer_ms).unwrap_or(i64::MAX);
            if period == 0 {
                continue;
            }
            let last = self.timers_fired.get(name).copied().unwrap_or(i64::MIN);
            if now_ms.saturating_sub(last) >= period {
                due.push(name.clone());
            }
        }
        for name in &due {
            self.timers_fired.insert(name.clone(), now_ms);
        }
        due
    }

    fn run_queue(
        &mut self,
        tree: &mut Tree,
        info: TxnInfo,
        triggers: &mut Vec<WatchTrigger>,
        mut queue: VecDeque<Pending>,
    ) {
        let mut runs_left = RUNS_PER_TXN_MAX;
        while let Some(pending) = queue.pop_front() {
            let names: Vec<String> = self
                .recipes
                .iter()
                .filter(|(name, recipe)| {
                    recipe.loaded.entries.on_event
                        && pending.only.as_ref().is_none_or(|only| only == *name)
                        && (pending.only.is_some() || owns(&recipe.manifest, &pending.path))
                })
                .map(|(name, _)| name.clone())
                .collect();
            for name in names {
                if self.txn_fuel_exceeded {
                    // A client's txn is refused; a session close or a timer keeps its change.
                    tracing::warn!(
                        zxid = info.zxid,
                        "recipe runs for this txn hit zkw.recipe.txnFuelMax; later events run no recipe"
                    );
                    return;
                }
                if runs_left == 0 {
                    tracing::warn!(zxid = info.zxid, "recipe runs for this txn hit {RUNS_PER_TXN_MAX}; later events run no recipe");
                    return;
                }
                runs_left -= 1;
                let input = |header| {
                    abi::Event {
                        header,
                        kind: pending.kind,
                        path: pending.path.clone(),
                        ephemerals: pending.ephemerals.clone(),
                    }
                    .encode()
                };
                let ran = self.run_one(tree, &name, info, abi::export::ON_EVENT, input, true);
                if ran.outcome == Ok(0) {
                    if pending.depth + 1 < TRIGGER_DEPTH_MAX {
                        queue.extend(events(&ran.triggers, pending.depth + 1));
                    }
                    triggers.extend(ran.triggers);
                }
            }
        }
    }

    /// An explicit call: runs `name`'s `zkw_on_call` with `args`; its writes are kept when it
    /// returns 0, and its result comes back.
    pub fn call(
        &mut self,
        tree: &mut Tree,
        info: TxnInfo,
        name: &str,
        args: &[u8],
        triggers: &mut Vec<WatchTrigger>,
    ) -> Result<Vec<u8>, ErrorCode> {
        if !self
            .recipes
            .get(name)
            .is_some_and(|recipe| recipe.loaded.entries.on_call)
        {
            return Err(ErrorCode::NoNode);
        }
        let input = |header| {
            abi::Call {
                header,
                args: args.to_vec(),
            }
            .encode()
        };
        let ran = self.run_one(tree, name, info, abi::export::ON_CALL, input, true);
        match ran.outcome {
            Ok(0) => {
                triggers.extend(ran.triggers);
                Ok(ran.result)
            }
            Ok(code) => Err(ErrorCode::from_code(code)
                .filter(|code| *code != ErrorCode::Ok)
                .unwrap_or(ErrorCode::SystemError)),
            Err(_) => Err(ErrorCode::SystemError),
        }
    }

    fn session_closed(&self, ephemerals: &[String]) -> Vec<Pending> {
        self.recipes
            .iter()
            .filter(|(_, recipe)| recipe.loaded.entries.on_event)
            .filter_map(|(name, recipe)| {
                let owned: Vec<String> = ephemerals
                    .iter()
                    .filter(|path| owns(&recipe.manifest, path))
                    .cloned()
                    .collect();
                (!owned.is_empty()).then(|| Pending {
                    depth: 0,
                    only: Some(name.clone()),
                    kind: EventKind::SessionClosed,
                    path: String::new(),
                    ephemerals: owned,
                })
            })
            .collect()
    }

    /// One run in its own journal: kept if `keep` and it returned 0, rolled back otherwise.
    fn run_one(
        &mut self,
        tree: &mut Tree,
        name: &str,
        info: TxnInfo,
        entry: &str,
        input: impl FnOnce(abi::Header) -> Vec<u8>,
        keep: bool,
    ) -> Ran {
        let Some(recipe) = self.recipes.get_mut(name) else {
            return Ran {
                outcome: Err(Failure::Trap("not installed".into())),
                triggers: Vec::new(),
                result: Vec::new(),
            };
        };
        let ctx = RunCtx {
            zxid: info.zxid,
            time_ms: info.time_ms,
            session_id: info.session_id,
            recipe: name.to_owned(),
            root: recipe.manifest.path.clone(),
        };
        if self.txn_fuel_exceeded || self.txn_fuel_left == 0 {
            self.txn_fuel_exceeded = true;
            return Ran {
                outcome: Err(Failure::OutOfFuel),
                triggers: Vec::new(),
                result: Vec::new(),
            };
        }
        let input = input(ctx.header());
        let memory_cap = usize::try_from(recipe.manifest.memory_bytes).unwrap_or(usize::MAX);
        tree.begin_journal();
        let lent = std::mem::replace(tree, Tree::detached());
        let state = RunState::new(lent, ctx, self.apply_op, memory_cap);
        let stopwatch = Stopwatch::start();
        // The run's own fuel, or what is left of the txn's if that is less.
        let fuel = recipe.manifest.fuel.min(self.txn_fuel_left);
        let finished = run::run(&self.engine, &recipe.loaded.pre, state, fuel, entry, &input);
        self.txn_fuel_left = self.txn_fuel_left.saturating_sub(finished.fuel_used);
        if fuel < recipe.manifest.fuel && matches!(finished.outcome, Err(Failure::OutOfFuel)) {
            self.txn_fuel_exceeded = true;
        }
        *tree = finished.state.tree;
        recipe.stats.runs += 1;
        recipe.stats.fuel_used += finished.fuel_used;
        recipe.stats.time_us += stopwatch.elapsed_us();
        // A validator's non-zero answer is a verdict, not a failure; its trap is a failure.
        let failed = match finished.outcome {
            Ok(0) => false,
            Ok(_) => entry != abi::export::VALIDATE,
            Err(_) => true,
        };
        if failed {
            recipe.stats.failures += 1;
        }
        if keep && finished.outcome == Ok(0) {
            tree.commit_journal();
        } else {
            tree.rollback_journal();
        }
        for (level, line) in finished.state.logs {
            tracing::debug!(recipe = %name, zxid = info.zxid, level, "{line}");
            self.log(name, line);
        }
        if failed {
            let what = match &finished.outcome {
                Ok(code) => format!("{entry} returned {code}"),
                Err(failure) => format!("{entry}: {failure}"),
            };
            tracing::warn!(
                recipe = %name,
                zxid = info.zxid,
                session = format_args!("0x{:x}", info.session_id),
                fuel_used = finished.fuel_used,
                "recipe run failed, its writes are discarded: {what}"
            );
            self.log(name, format!("failed: {what}"));
        }
        Ran {
            outcome: finished.outcome,
            triggers: finished.state.triggers,
            result: finished.state.result,
        }
    }

    /// Adds `line` to the log of every recipe that logged in the current txn (the ones that
    /// ran: a failed run always logs).
    pub fn log_to_ran(&mut self, line: &str) {
        for lines in self.pending_logs.values_mut() {
            lines.push(line.to_owned());
        }
    }

    fn log(&mut self, name: &str, line: String) {
        self.pending_logs
            .entry(name.to_owned())
            .or_default()
            .push(line);
    }

    /// Appends the txn's log lines to each recipe's log node (`<recipe>/log`, created on first
    /// use, trimmed to [`LOG_NODE_BYTES_MAX`]). The lines are the same on every replica, so the
    /// node is replicated state like any other; watching it follows the log.
    pub fn flush_logs(&mut self, tree: &mut Tree, info: TxnInfo, triggers: &mut Vec<WatchTrigger>) {
        for (name, lines) in std::mem::take(&mut self.pending_logs) {
            let path = format!("{RECIPES_PATH}/{name}/{LOG_NODE}");
            let mut text = tree
                .node(&path)
                .map(|node| node.data_bytes().to_vec())
                .unwrap_or_default();
            for line in lines {
                text.extend_from_slice(format!("zxid {:#x} {line}\n", info.zxid).as_bytes());
            }
            if text.len() > LOG_NODE_BYTES_MAX {
                let cut = text.len() - LOG_NODE_BYTES_MAX;
                let start = text[cut..]
                    .iter()
                    .position(|byte| *byte == b'\n')
                    .map_or(text.len(), |at| cut + at + 1);
                text.drain(..start);
            }
            let ctx = RunCtx {
                zxid: info.zxid,
                time_ms: info.time_ms,
                session_id: 0,
                recipe: name.clone(),
                root: path.clone(),
            };
            let op = if tree.node(&path).is_some() {
                abi::Op::SetData {
                    path,
                    data: text,
                    version: -1,
                }
            } else {
                abi::Op::Create {
                    path,
                    data: text,
                    flags: 0,
                }
            };
            if let Err(code) = (self.apply_op)(tree, &ctx, &op, triggers) {
                // Only a removed recipe node could refuse; its log goes with it.
                tracing::debug!(recipe = %name, code = code.code(), "recipe log not written");
            }
        }
    }
}

fn owns(manifest: &Manifest, path: &str) -> bool {
    run::is_under(&manifest.path, path)
}

/// The recipe events of watch triggers (system paths never trigger recipes).
fn events(triggers: &[WatchTrigger], depth: u32) -> impl Iterator<Item = Pending> + '_ {
    triggers.iter().filter_map(move |trigger| {
        if trigger.path == "/zookeeper" || trigger.path.starts_with("/zookeeper/") {
            return None;
        }
        let kind = match trigger.event {
            EventType::NodeCreated => EventKind::Created,
            EventType::NodeDeleted => EventKind::Deleted,
            EventType::NodeDataChanged => EventKind::DataChanged,
            EventType::NodeChildrenChanged => EventKind::ChildrenChanged,
            _ => return None,
        };
        Some(Pending {
            depth,
            only: None,
            kind,
            path: trigger.path.clone(),
            ephemerals: Vec::new(),
        })
    })
}

/// The module bytes of a recipe node, if all of them are there: None while chunks are still
/// arriving, an error if there are more bytes than the manifest says.
fn module_bytes(tree: &Tree, path: &str, size: u64) -> Result<Option<Vec<u8>>, WasmError> {
    let server = [acl::server_id()];
    let (children, _) = tree
        .get_children(path, &server)
        .map_err(|error| WasmError::Refused(error.to_string()))?;
    let mut bytes = Vec::new();
    for child in children
        .iter()
        .filter(|child| child.starts_with(CHUNK_PREFIX))
    {
        if let Some(node) = tree.node(&format!("{path}/{child}")) {
            bytes.extend_from_slice(node.data_bytes());
        }
    }
    let have = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    match have.cmp(&size) {
        std::cmp::Ordering::Less => Ok(None),
        std::cmp::Ordering::Equal => Ok(Some(bytes)),
        std::cmp::Ordering::Greater => Err(WasmError::Refused(format!(
            "its chunks hold {have} bytes, the manifest says {size}"
        ))),
    }
}
