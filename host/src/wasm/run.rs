//! One run of a recipe: a fresh instance (from the pooling allocator), its fuel and memory cap,
//! the host functions of ABI v1, and how it ended. A run keeps nothing: the store and instance
//! die with it. The tree is moved into the store for the run (wasmtime stores own their data)
//! and handed back with the outcome.

use wasmtime::{Caller, Engine, Extern, InstancePre, Linker, Memory, ResourceLimiter, Store, Trap};
use zkw_guest::abi::{self, Codec, Node, Op, OpResult};

use crate::proto::{ErrorCode, Stat};
use crate::tree::watch::WatchTrigger;
use crate::tree::Tree;

use super::WasmError;

/// Largest result a run may hand back with `set_result`, in bytes.
pub const RESULT_BYTES_MAX: usize = 1024 * 1024;
/// Log lines one run may write; later ones are dropped.
pub const LOG_LINES_PER_RUN_MAX: usize = 64;
/// Longest log line kept, in bytes.
pub const LOG_LINE_BYTES_MAX: usize = 1024;
/// Fuel every host call costs on top of its bytes (so a loop of host calls also runs out).
const HOST_CALL_FUEL: u64 = 1_000;
/// Bytes moved per unit of fuel by host calls.
const HOST_BYTES_PER_FUEL: u64 = 8;

/// The txn a run belongs to.
#[derive(Clone, Debug)]
pub struct RunCtx {
    pub zxid: i64,
    pub time_ms: i64,
    pub session_id: i64,
    pub recipe: String,
    pub root: String,
}

impl RunCtx {
    /// True when `path` is the recipe's root or under it.
    pub fn owns(&self, path: &str) -> bool {
        is_under(&self.root, path)
    }

    pub fn header(&self) -> abi::Header {
        abi::Header {
            session: self.session_id,
            zxid: self.zxid,
            time_ms: self.time_ms,
            recipe: self.recipe.clone(),
            root: self.root.clone(),
        }
    }
}

/// True when `path` is `root` or below it.
pub fn is_under(root: &str, path: &str) -> bool {
    root == "/"
        || path == root
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// Applies one recipe write to the tree with ZooKeeper's checks (supplied by `txn`, so this
/// module does not know how a txn is applied).
pub type ApplyOp =
    fn(&mut Tree, &RunCtx, &Op, &mut Vec<WatchTrigger>) -> Result<OpResult, ErrorCode>;

/// Why a run's output was discarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("out of fuel")]
    OutOfFuel,
    #[error("out of memory (cap {0} bytes)")]
    OutOfMemory(usize),
    #[error("stack overflow")]
    StackOverflow,
    #[error("write outside its path: {0}")]
    OutsidePath(String),
    #[error("trap: {0}")]
    Trap(String),
    #[error("returned {0}")]
    Returned(i32),
}

/// The store's data for one run.
pub struct RunState {
    pub tree: Tree,
    pub ctx: RunCtx,
    pub apply_op: ApplyOp,
    /// Triggers of the run's own writes (watches fire for them like any other write).
    pub triggers: Vec<WatchTrigger>,
    pub result: Vec<u8>,
    pub logs: Vec<(i32, String)>,
    memory_cap: usize,
    memory_denied: bool,
    slot: Vec<u8>,
    outside: Option<String>,
}

impl RunState {
    pub fn new(tree: Tree, ctx: RunCtx, apply_op: ApplyOp, memory_cap: usize) -> RunState {
        RunState {
            tree,
            ctx,
            apply_op,
            triggers: Vec::new(),
            result: Vec::new(),
            logs: Vec::new(),
            memory_cap,
            memory_denied: false,
            slot: Vec::new(),
            outside: None,
        }
    }
}

impl ResourceLimiter for RunState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_denied = true;
            // An error (not `false`) traps at the grow, so the run stops where it overreached
            // instead of limping on in a guest allocator that may spin or abort differently.
            return Err(wasmtime::format_err!(
                "memory cap {} bytes",
                self.memory_cap
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= super::engine::TABLE_ELEMENTS_MAX)
    }
}

/// What a finished run hands back.
pub struct Finished {
    pub state: RunState,
    pub fuel_used: u64,
    pub outcome: Result<i32, Failure>,
}

/// Runs `entry` with `input` on a fresh instance.
pub fn run(
    engine: &Engine,
    pre: &InstancePre<RunState>,
    state: RunState,
    fuel: u64,
    entry: &str,
    input: &[u8],
) -> Finished {
    let mut store = Store::new(engine, state);
    store.limiter(|state| state);
    // Fuel is enabled on the engine; set_fuel only fails when it is not.
    let _ = store.set_fuel(fuel);
    let outcome = call(&mut store, pre, entry, input);
    let fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let state = store.into_data();
    let outcome = outcome.map_err(|error| classify(&state, error));
    Finished {
        state,
        fuel_used,
        outcome,
    }
}

fn call(
    store: &mut Store<RunState>,
    pre: &InstancePre<RunState>,
    entry: &str,
    input: &[u8],
) -> wasmtime::Result<i32> {
    let instance = pre.instantiate(&mut *store)?;
    let alloc = instance.get_typed_func::<i32, i32>(&mut *store, abi::export::ALLOC)?;
    let len = i32::try_from(input.len())?;
    let ptr = alloc.call(&mut *store, len)?;
    let memory = instance
        .get_memory(&mut *store, abi::export::MEMORY)
        .ok_or_else(|| wasmtime::format_err!("no memory export"))?;
    memory.write(&mut *store, usize::try_from(ptr)?, input)?;
    let func = instance.get_typed_func::<(i32, i32), i32>(&mut *store, entry)?;
    func.call(&mut *store, (ptr, len))
}

fn classify(state: &RunState, error: wasmtime::Error) -> Failure {
    if let Some(path) = &state.outside {
        return Failure::OutsidePath(path.clone());
    }
    if state.memory_denied {
        return Failure::OutOfMemory(state.memory_cap);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel,
        Some(Trap::StackOverflow) => Failure::StackOverflow,
        Some(trap) => Failure::Trap(trap.to_string()),
        None => Failure::Trap(first_line(&error)),
    }
}

fn first_line(error: &wasmtime::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Registers ABI v1's host functions.
pub fn link(engine: &Engine) -> Result<Linker<RunState>, WasmError> {
    let mut linker = Linker::new(engine);
    let module = abi::import::MODULE;
    let wire = |error: wasmtime::Error| WasmError::Engine(error.to_string());
    linker
        .func_wrap(module, abi::import::GET, get)
        .map_err(wire)?;
    linker
        .func_wrap(module, abi::import::CHILDREN, children)
        .map_err(wire)?;
    linker
        .func_wrap(module, abi::import::READ_RESULT, read_result)
        .map_err(wire)?;
    linker
        .func_wrap(module, abi::import::WRITE, write)
        .map_err(wire)?;
    linker
        .func_wrap(module, abi::import::SET_RESULT, set_result)
        .map_err(wire)?;
    linker
        .func_wrap(module, abi::import::LOG, log)
        .map_err(wire)?;
    Ok(linker)
}

fn memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<Memory> {
    match caller.get_export(abi::export::MEMORY) {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(wasmtime::format_err!("module exports no memory")),
    }
}

/// Copies `len` bytes at `ptr` out of the guest, charging fuel for them.
fn read_bytes(caller: &mut Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let len = usize::try_from(len)?;
    if len > abi::FIELD_BYTES_MAX {
        return Err(wasmtime::format_err!("guest buffer of {len} bytes"));
    }
    charge(caller, len)?;
    let memory = memory(caller)?;
    let mut bytes = vec![0; len];
    memory.read(&*caller, usize::try_from(ptr)?, &mut bytes)?;
    Ok(bytes)
}

fn read_path(caller: &mut Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    Ok(String::from_utf8(read_bytes(caller, ptr, len)?)?)
}

fn charge(caller: &mut Caller<'_, RunState>, bytes: usize) -> wasmtime::Result<()> {
    let cost = HOST_CALL_FUEL + u64::try_from(bytes)? / HOST_BYTES_PER_FUEL;
    let fuel = caller.get_fuel()?;
    if fuel < cost {
        caller.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    caller.set_fuel(fuel - cost)?;
    Ok(())
}

/// Puts a result in the slot and returns its length (what `read_result` copies next).
fn fill_slot(caller: &mut Caller<'_, RunState>, bytes: Vec<u8>) -> wasmtime::Result<i32> {
    charge(caller, bytes.len())?;
    let len = i32::try_from(bytes.len())?;
    caller.data_mut().slot = bytes;
    Ok(len)
}

pub fn abi_stat(stat: Stat) -> abi::Stat {
    abi::Stat {
        czxid: stat.czxid,
        mzxid: stat.mzxid,
        ctime: stat.ctime,
        mtime: stat.mtime,
        version: stat.version,
        cversion: stat.cversion,
        aversion: stat.aversion,
        ephemeral_owner: stat.ephemeral_owner,
        data_length: stat.data_length,
        num_children: stat.num_children,
        pzxid: stat.pzxid,
    }
}

fn get(mut caller: Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let path = read_path(&mut caller, ptr, len)?;
    let node = caller.data().tree.node(&path).map(|node| Node {
        stat: abi_stat(node.stat()),
        // The ABI has bytes only: null data reads as empty.
        data: node.data_bytes().to_vec(),
    });
    match node {
        Some(node) => fill_slot(&mut caller, node.encode()),
        None => Ok(ErrorCode::NoNode.code()),
    }
}

fn children(mut caller: Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let path = read_path(&mut caller, ptr, len)?;
    let listed = caller
        .data()
        .tree
        .get_children(&path, &[crate::tree::acl::server_id()]);
    match listed {
        Ok((names, _)) => fill_slot(&mut caller, names.encode()),
        Err(error) => Ok(error.code().code()),
    }
}

fn read_result(mut caller: Caller<'_, RunState>, dst: i32) -> wasmtime::Result<()> {
    let slot = std::mem::take(&mut caller.data_mut().slot);
    let memory = memory(&mut caller)?;
    memory.write(&mut caller, usize::try_from(dst)?, &slot)?;
    Ok(())
}

fn write(mut caller: Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<i32> {
    let bytes = read_bytes(&mut caller, ptr, len)?;
    let op = Op::decode(&bytes)?;
    let path = match &op {
        Op::Create { path, .. }
        | Op::Delete { path, .. }
        | Op::SetData { path, .. }
        | Op::Check { path, .. } => path,
    };
    let state = caller.data_mut();
    if !state.ctx.owns(path) {
        state.outside = Some(path.clone());
        return Err(wasmtime::format_err!(
            "write outside the recipe's path: {path}"
        ));
    }
    let outcome = (state.apply_op)(&mut state.tree, &state.ctx, &op, &mut state.triggers);
    match outcome {
        Ok(result) => fill_slot(&mut caller, result.encode()),
        Err(code) => Ok(code.code()),
    }
}

fn set_result(mut caller: Caller<'_, RunState>, ptr: i32, len: i32) -> wasmtime::Result<()> {
    if usize::try_from(len)? > RESULT_BYTES_MAX {
        return Err(wasmtime::format_err!("result of {len} bytes"));
    }
    let bytes = read_bytes(&mut caller, ptr, len)?;
    caller.data_mut().result = bytes;
    Ok(())
}

fn log(mut caller: Caller<'_, RunState>, level: i32, ptr: i32, len: i32) -> wasmtime::Result<()> {
    let len = len.min(i32::try_from(LOG_LINE_BYTES_MAX)?);
    let bytes = read_bytes(&mut caller, ptr, len)?;
    let logs = &mut caller.data_mut().logs;
    if logs.len() < LOG_LINES_PER_RUN_MAX {
        logs.push((level, String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(())
}

/// Instantiates and calls `zkw_abi_version` (the install check).
pub fn call_version(
    engine: &Engine,
    pre: &InstancePre<RunState>,
    state: RunState,
    fuel: u64,
) -> Result<i32, Failure> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| state);
    let _ = store.set_fuel(fuel);
    let outcome = pre.instantiate(&mut store).and_then(|instance| {
        instance
            .get_typed_func::<(), i32>(&mut store, abi::export::ABI_VERSION)?
            .call(&mut store, ())
    });
    outcome.map_err(|error| classify(store.data(), error))
}
