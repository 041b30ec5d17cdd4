//! zkw-guest: write zkw recipes in plain Rust.
//!
//! A recipe is a WebAssembly module that zkw runs inside its replicated state machine, on every
//! replica, atomically with the write that triggered it. This crate hides the module interface
//! (ABI v1, see [`abi`]) behind plain Rust.

pub mod abi;
