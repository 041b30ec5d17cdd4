//! The one wasmtime configuration every replica must share. Determinism comes first: fuel is
//! the only interruption (never epochs or wall time), NaNs are canonicalized, relaxed SIMD and
//! threads are off, the wasm stack is a fixed size, there is no WASI. The [`fingerprint`]
//! names all of it, so servers that would disagree can refuse to mix.

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::WasmError;

/// The exact wasmtime this build links (pinned in host/Cargo.toml).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Wasm stack a run may use before it traps (stack overflow), in bytes.
pub const STACK_BYTES_MAX: usize = 512 * 1024;

/// Largest linear memory any recipe may have, in bytes (a recipe's own cap is at most this).
pub const MEMORY_BYTES_LIMIT: usize = 256 * 1024 * 1024;

/// Instances alive at once: runs are sequential inside apply, plus install checks.
const POOLED_INSTANCES: u32 = 16;

/// Bytes of each pooled memory and table that are zeroed in place when an instance ends
/// rather than handed back to the kernel: a run touches a few pages of stack and heap, and a
/// memset of those is cheaper than the madvise round trip.
const KEEP_RESIDENT_BYTES: usize = 128 * 1024;

/// Guard region after each linear memory, in bytes. With the reservation equal to the
/// memory cap, wasmtime bounds-checks accesses explicitly, so the guard is only a backstop; a
/// small one keeps the pool's address space near 16 x 256 MiB instead of 16 x 4 GiB.
const MEMORY_GUARD_BYTES: u64 = 64 * 1024;

/// Table slots per module (Rust modules use one small table for indirect calls).
pub(super) const TABLE_ELEMENTS_MAX: usize = 64 * 1024;

/// Builds the engine. Fails only if the platform cannot host the pooling allocator.
pub fn engine() -> Result<Engine, WasmError> {
    Engine::new(&config()).map_err(|error| WasmError::Engine(error.to_string()))
}

fn config() -> Config {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(POOLED_INSTANCES)
        .total_memories(POOLED_INSTANCES)
        .total_tables(POOLED_INSTANCES)
        .max_memories_per_module(1)
        .max_tables_per_module(1)
        .table_elements(TABLE_ELEMENTS_MAX)
        .max_memory_size(MEMORY_BYTES_LIMIT)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(false)
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .max_wasm_stack(STACK_BYTES_MAX)
        .memory_reservation(MEMORY_BYTES_LIMIT as u64)
        .memory_guard_size(MEMORY_GUARD_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// What must be equal on every replica for recipes to run identically: the wasmtime version,
/// the settings above, and the machine architecture (compiled code differs by ISA).
pub fn fingerprint() -> String {
    format!(
        "wasmtime-{WASMTIME_VERSION};fuel;nan-canonical;no-relaxed-simd;no-threads;stack-{STACK_BYTES_MAX};{}",
        std::env::consts::ARCH
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn engine_builds_and_fingerprint_names_the_version() {
        engine().unwrap();
        assert!(fingerprint().starts_with("wasmtime-48.0.8;"));
    }
}
