//! Turning module bytes into something runnable: compile (or load the compiled copy cached under
//! dataDir, keyed by the module's hash and the runtime fingerprint), then check it against
//! ABI v1: only our imports, the exports the ABI needs, and the right ABI version. A module
//! that fails any check is refused with the reason.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::{Engine, ExternType, InstancePre, Linker, Module, ValType};
use zkw_guest::abi;

use super::run::{self, RunCtx, RunState};
use super::WasmError;
use crate::tree::Tree;

/// Largest module accepted, in bytes.
pub const MODULE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Fuel the ABI version check may spend (a constant function).
const ABI_CHECK_FUEL: u64 = 100_000;

/// Which entry points a module exports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entries {
    pub on_event: bool,
    pub validate: bool,
    pub on_call: bool,
}

/// A checked, compiled module ready to instantiate.
#[derive(Clone)]
pub struct Loaded {
    pub pre: InstancePre<RunState>,
    pub entries: Entries,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Compiles and checks `bytes`; the compiled code is cached in `cache_dir` if given.
pub fn load(
    engine: &Engine,
    linker: &Linker<RunState>,
    cache_dir: Option<&Path>,
    bytes: &[u8],
) -> Result<Loaded, WasmError> {
    if bytes.len() > MODULE_BYTES_MAX {
        return Err(WasmError::Refused(format!(
            "module of {} bytes is above the limit of {MODULE_BYTES_MAX}",
            bytes.len()
        )));
    }
    if !bytes.starts_with(b"\0asm") {
        return Err(WasmError::Refused(
            "not a WebAssembly module (no \\0asm header)".into(),
        ));
    }
    let module = compile(engine, cache_dir, bytes)?;
    check_imports(&module)?;
    let entries = check_exports(&module)?;
    let pre = linker
        .instantiate_pre(&module)
        .map_err(|error| WasmError::Refused(format!("cannot link: {error}")))?;
    check_abi_version(engine, &pre)?;
    Ok(Loaded { pre, entries })
}

/// Compiles `bytes` into `cache_dir` unless a compiled copy is there already, so that the
/// `load` that installs it (inside apply, under the tree lock) only reads the copy. Errors are
/// left to that `load`, which refuses the module with its reason.
pub fn compile_ahead(engine: &Engine, cache_dir: &Path, bytes: &[u8]) {
    if bytes.len() > MODULE_BYTES_MAX || cache_path(cache_dir, bytes).exists() {
        return;
    }
    let started = crate::clock::Stopwatch::start();
    if compile(engine, Some(cache_dir), bytes).is_ok() {
        tracing::info!(
            ms = started.elapsed_us() / 1000,
            "recipe module compiled ahead of its install"
        );
    }
}

fn cache_path(cache_dir: &Path, bytes: &[u8]) -> PathBuf {
    let runtime = sha256_hex(super::engine::fingerprint().as_bytes());
    cache_dir.join(format!("{}-{}.cwasm", sha256_hex(bytes), &runtime[..16]))
}

fn compile(engine: &Engine, cache_dir: Option<&Path>, bytes: &[u8]) -> Result<Module, WasmError> {
    let Some(cache_dir) = cache_dir else {
        return from_binary(engine, bytes);
    };
    let path = cache_path(cache_dir, bytes);
    if path.exists() {
        #[allow(unsafe_code)]
        // SAFETY: the file is one this server wrote with `Module::serialize` for this exact
        // module hash and runtime fingerprint, under its own dataDir; wasmtime additionally
        // checks the engine compatibility header and refuses a mismatch.
        let cached = unsafe { Module::deserialize_file(engine, &path) };
        match cached {
            Ok(module) => return Ok(module),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "recompiling a bad cached module");
            }
        }
    }
    let module = from_binary(engine, bytes)?;
    if let Err(error) = write_cache(&module, cache_dir, &path) {
        tracing::warn!(path = %path.display(), %error, "cannot cache a compiled module");
    }
    Ok(module)
}

fn write_cache(module: &Module, cache_dir: &Path, path: &Path) -> std::io::Result<()> {
    let serialized = module
        .serialize()
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    std::fs::create_dir_all(cache_dir)?;
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serialized)?;
    std::fs::rename(partial, path)
}

fn from_binary(engine: &Engine, bytes: &[u8]) -> Result<Module, WasmError> {
    Module::from_binary(engine, bytes)
        .map_err(|error| WasmError::Refused(format!("not a valid module: {error}")))
}

const IMPORTS: [&str; 6] = [
    abi::import::GET,
    abi::import::CHILDREN,
    abi::import::READ_RESULT,
    abi::import::WRITE,
    abi::import::SET_RESULT,
    abi::import::LOG,
];

fn check_imports(module: &Module) -> Result<(), WasmError> {
    for import in module.imports() {
        if import.module() != abi::import::MODULE || !IMPORTS.contains(&import.name()) {
            return Err(WasmError::Refused(format!(
                "imports {}::{}, which zkw does not provide (ABI v1 offers only zkw::{{{}}}; no WASI)",
                import.module(),
                import.name(),
                IMPORTS.join(", ")
            )));
        }
    }
    Ok(())
}

fn check_exports(module: &Module) -> Result<Entries, WasmError> {
    let func = |name: &str, params: usize| match module.get_export(name) {
        Some(ExternType::Func(ty)) => {
            let all_i32 = ty.params().all(|p| matches!(p, ValType::I32))
                && ty.results().all(|r| matches!(r, ValType::I32));
            if all_i32 && ty.params().len() == params && ty.results().len() == 1 {
                Ok(true)
            } else {
                Err(WasmError::Refused(format!(
                    "export {name} has the wrong type (ABI v1: {params} i32 params, one i32 result)"
                )))
            }
        }
        Some(_) => Err(WasmError::Refused(format!(
            "export {name} is not a function"
        ))),
        None => Ok(false),
    };
    if !matches!(
        module.get_export(abi::export::MEMORY),
        Some(ExternType::Memory(_))
    ) {
        return Err(WasmError::Refused("exports no memory".into()));
    }
    for (name, params) in [(abi::export::ABI_VERSION, 0), (abi::export::ALLOC, 1)] {
        if !func(name, params)? {
            return Err(WasmError::Refused(format!("exports no {name}")));
        }
    }
    let entries = Entries {
        on_event: func(abi::export::ON_EVENT, 2)?,
        validate: func(abi::export::VALIDATE, 2)?,
        on_call: func(abi::export::ON_CALL, 2)?,
    };
    if entries == Entries::default() {
        return Err(WasmError::Refused(format!(
            "exports no entry point ({}, {} or {})",
            abi::export::ON_EVENT,
            abi::export::VALIDATE,
            abi::export::ON_CALL
        )));
    }
    Ok(entries)
}

fn check_abi_version(engine: &Engine, pre: &InstancePre<RunState>) -> Result<(), WasmError> {
    let ctx = RunCtx {
        zxid: 0,
        time_ms: 0,
        session_id: 0,
        recipe: String::new(),
        root: "/".into(),
    };
    let state = RunState::new(
        Tree::detached(),
        ctx,
        refuse_writes,
        super::engine::MEMORY_BYTES_LIMIT,
    );
    let version = run::call_version(engine, pre, state, ABI_CHECK_FUEL).map_err(|failure| {
        WasmError::Refused(format!("{}: {failure}", abi::export::ABI_VERSION))
    })?;
    if version != abi::ABI_VERSION {
        return Err(WasmError::Refused(format!(
            "speaks ABI version {version}; this server speaks {}",
            abi::ABI_VERSION
        )));
    }
    Ok(())
}

fn refuse_writes(
    _: &mut Tree,
    _: &RunCtx,
    _: &abi::Op,
    _: &mut Vec<crate::tree::watch::WatchTrigger>,
) -> Result<abi::OpResult, crate::proto::ErrorCode> {
    Err(crate::proto::ErrorCode::BadArguments)
}
