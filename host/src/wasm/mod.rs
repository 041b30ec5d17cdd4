//! `wasm`: the recipe runtime. Recipes are WebAssembly modules stored in the tree (so every
//! replica has them) and run inside `apply` on every replica, with fuel and a memory cap, so
//! all replicas stop at the same instruction and reach the same tree. It must not know about
//! sockets; how a txn applies a write is handed in as [`run::ApplyOp`].
//!
//! - `engine`: the deterministic wasmtime configuration and its fingerprint;
//! - `module`: compile (cached under dataDir), check imports/exports/ABI version;
//! - `run`: one run on a fresh instance, with ABI v1's host functions;
//! - `manifest`: the `key=value` manifest a recipe node holds;
//! - `registry`: which recipes are installed (derived from the tree), their triggers, stats.

pub mod embedded;
pub mod engine;
pub mod manifest;
pub mod module;
pub mod registry;
pub mod run;

pub use registry::{RecipeStats, Runtime};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// Where installed recipes live in the tree: `<RECIPES_PATH>/<name>` holds the manifest, its
/// `module-NNNN` children the module's bytes in order.
pub const RECIPES_PATH: &str = "/zookeeper/recipes";
/// Prefix of the children that hold a module's bytes.
pub const CHUNK_PREFIX: &str = "module-";
/// Prefix of the nodes a classic client creates to call a recipe (`<name>/call-`, sequential).
pub const CALL_PREFIX: &str = "call-";

#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The platform cannot host the runtime (the pooling allocator's reservation failed).
    #[error("recipe runtime: {0}")]
    Engine(String),
    /// A module or manifest was refused; the text says why.
    #[error("{0}")]
    Refused(String),
}
