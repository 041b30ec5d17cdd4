//! zkw-test-recipes: recipes for the zkw host's tests, one `[[example]]` (one `.wasm`) each, in
//! `examples/`, plus WAT fixtures in `wat/` for modules Rust cannot produce (a WASI import, a
//! wrong ABI version, no entry point). The well-behaved recipes (`counter`, `validator`,
//! `echo_call`, `fuel_burner`, `session_watch`) carry native unit tests against
//! `zkw_guest::testing::MockTree`; the hostile ones (`spin`, `memory_bomb`, `trap`,
//! `recursion`, `escape`) exist to be stopped by the host.
//!
//! Build: `cargo build --target wasm32-unknown-unknown --profile recipe -p zkw-test-recipes
//! --examples`; the modules land in `target/wasm32-unknown-unknown/recipe/examples/NAME.wasm`.
//! [`WAT_FIXTURES`] names the text fixtures, relative to this crate's directory.

/// The WAT fixtures in `wat/`: (file, what the host must do with it).
pub const WAT_FIXTURES: &[(&str, &str)] = &[
    (
        "wat/wasi.wat",
        "refuse at install: imports wasi_snapshot_preview1.fd_write",
    ),
    (
        "wat/wrong_abi.wat",
        "refuse at install: zkw_abi_version returns 2",
    ),
    (
        "wat/no_entry.wat",
        "refuse at install: no zkw_on_event, zkw_validate or zkw_on_call",
    ),
];
