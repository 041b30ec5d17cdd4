//! zkw-guest: write zkw recipes in plain Rust.
//!
//! A recipe is a WebAssembly module that zkw runs inside its replicated state machine, on every
//! replica, atomically with the write that triggered it. This crate hides the module interface
//! (ABI v1, see [`abi`], `docs/recipes.md` and `guest-sdk/wit/zkw.wit`) behind plain Rust: you
//! write handlers that take a [`Ctx`] and register them with [`recipe!`]. No `unsafe`, no
//! pointers, no encoding.
//!
//! # Entry points
//!
//! | entry | signature | when it runs |
//! | --- | --- | --- |
//! | `on_event` | `fn(&mut Ctx, &Event) -> Result<(), Error>` | a node under the recipe's path was created, deleted, changed or had its children change; a session closed (with its ephemerals); a timer tick |
//! | `validate` | `fn(&mut Ctx, &Validate) -> Result<(), Reject>` | before a client's create, delete or setData under the path: `Err` rejects it with the [`Reject`]'s ZooKeeper code |
//! | `on_call` | `fn(&mut Ctx, &[u8]) -> Result<Vec<u8>, Error>` | `zkw recipe call NAME ARGS`: the bytes returned go back to the caller |
//!
//! A handler reads with [`Ctx::get`], [`Ctx::exists`], [`Ctx::children`] and writes with
//! [`Ctx::create`], [`Ctx::set`], [`Ctx::delete`], [`Ctx::check`]. Writes apply at once inside
//! the triggering txn (later reads in the run see them) and only at or under the recipe's path
//! ([`Ctx::root`]). Returning an error (or panicking, or running out of fuel or memory) fails
//! the run: all its writes are discarded, the trigger itself still commits, and the failure is
//! logged. The only clock is [`Ctx::time_ms`] (the leader's, the same on every replica), and
//! nothing survives between runs: keep state in znodes.
//!
//! Recipe events fire for the recipe's own writes too (up to a fixed depth), so a recipe that
//! writes under its path on every event must ignore the events of its own nodes.
//!
//! # Example: count the nodes created under a path
//!
//! ```
//! use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, ANY_VERSION};
//!
//! fn handle(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
//!     let counter = ctx.path("count");
//!     if event.kind != EventKind::Created || event.path == counter {
//!         return Ok(()); // our own write fires an event too: ignore it
//!     }
//!     match ctx.get(&counter)? {
//!         None => {
//!             ctx.create(&counter, b"1", CreateMode::Persistent)?;
//!         }
//!         Some(node) => {
//!             let count: u64 = String::from_utf8_lossy(&node.data).parse().unwrap_or(0);
//!             ctx.set(&counter, (count + 1).to_string().as_bytes(), node.stat.version)?;
//!         }
//!     }
//!     ctx.info(format_args!("{} created", event.path));
//!     Ok(())
//! }
//!
//! zkw_guest::recipe! { on_event: handle }
//!
//! // The same recipe, tested natively against the mock host:
//! use zkw_guest::testing::MockTree;
//! let mut tree = MockTree::new("counter", "/counter");
//! for name in ["a", "b", "c"] {
//!     tree.write(&RECIPE, &MockTree::create_op(&format!("/counter/{name}"), b"")).unwrap();
//! }
//! assert_eq!(tree.text("/counter/count").unwrap(), "3");
//! # let _ = ANY_VERSION;
//! ```
//!
//! Build it as a `cdylib` for `wasm32-unknown-unknown` (with the workspace's `recipe` profile:
//! small, `panic = "abort"`) and install it:
//!
//! ```text
//! cargo build --target wasm32-unknown-unknown --profile recipe -p my-recipe
//! zkw recipe install target/wasm32-unknown-unknown/recipe/my_recipe.wasm --name counter --path /counter
//! ```
//!
//! # Testing
//!
//! On targets other than `wasm32` the host calls go to [`testing::MockTree`], an in-memory tree
//! that runs validators, applies writes, rolls back failed runs and re-delivers the events a
//! recipe's writes fire, so `cargo test` checks a recipe without a server.

pub mod abi;
mod ctx;
mod error;
#[doc(hidden)]
pub mod rt;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use abi::{Event, EventKind, Header, Node, Op, OpResult, Stat, Validate, WriteKind};
pub use ctx::{relative, CreateMode, Ctx, Level, ANY_VERSION};
pub use error::{Error, Reject};
pub use rt::{CallFn, EventFn, Recipe, ValidateFn};

/// Declares a recipe's entry points and, on `wasm32`, exports them with `zkw_abi_version` and
/// `zkw_alloc`. Give at least one of `on_event`, `validate`, `on_call`, each a handler with the
/// signature in the [crate docs](crate); only the given entries are exported:
///
/// ```
/// # use zkw_guest::{Ctx, Error, Event, Reject, Validate};
/// # fn handle(_: &mut Ctx, _: &Event) -> Result<(), Error> { Ok(()) }
/// # fn check(_: &mut Ctx, _: &Validate) -> Result<(), Reject> { Ok(()) }
/// zkw_guest::recipe! { on_event: handle, validate: check }
/// ```
///
/// It also defines `pub const RECIPE: zkw_guest::Recipe` in the calling module, the value
/// native tests hand to [`testing::MockTree`]. Invoke it once per crate, at its root.
#[macro_export]
macro_rules! recipe {
    ($($entry:ident : $handler:expr),+ $(,)?) => {
        /// This recipe's entry points (what the module exports; what native tests run).
        // `..NONE` fills the entries not given; with all three given it is redundant.
        #[allow(dead_code, clippy::needless_update)]
        pub const RECIPE: $crate::Recipe = $crate::Recipe {
            $($entry: ::core::option::Option::Some($handler),)+
            ..$crate::Recipe::NONE
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[unsafe(no_mangle)]
            pub extern "C" fn zkw_abi_version() -> i32 {
                $crate::abi::ABI_VERSION
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn zkw_alloc(len: i32) -> i32 {
                $crate::rt::alloc(len)
            }

            $($crate::__recipe_export!($entry);)+
        };
    };
}

/// One exported entry point of [`recipe!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __recipe_export {
    (on_event) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn zkw_on_event(ptr: i32, len: i32) -> i32 {
            $crate::rt::on_event(&RECIPE, ptr, len)
        }
    };
    (validate) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn zkw_validate(ptr: i32, len: i32) -> i32 {
            $crate::rt::validate(&RECIPE, ptr, len)
        }
    };
    (on_call) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn zkw_on_call(ptr: i32, len: i32) -> i32 {
            $crate::rt::on_call(&RECIPE, ptr, len)
        }
    };
}
