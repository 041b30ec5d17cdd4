//! The entry points behind [`crate::recipe!`]: decode a run's input, build a [`Ctx`], call the
//! author's handler and turn its outcome into the return code docs/recipes.md defines (0 keeps
//! the writes / allows the write; anything else fails the run / rejects the write). The mock
//! host in [`crate::testing`] calls the same `run_*` functions, so native tests exercise the
//! exact decode-dispatch-encode path a module runs.

use crate::abi::{Call, Codec, Event, Validate};
use crate::ctx::{Ctx, Level};
use crate::error::{Error, Reject};
use crate::sys;

/// An `on_event` handler: returning an error fails the run (its writes are discarded).
pub type EventFn = fn(&mut Ctx, &Event) -> Result<(), Error>;
/// A `validate` handler: `Err` rejects the client's write with the [`Reject`]'s code.
pub type ValidateFn = fn(&mut Ctx, &Validate) -> Result<(), Reject>;
/// An `on_call` handler: the `Ok` bytes are returned to the caller.
pub type CallFn = fn(&mut Ctx, &[u8]) -> Result<Vec<u8>, Error>;

/// A recipe's entry points; [`crate::recipe!`] builds one named `RECIPE` and exports exactly the
/// entries it holds.
#[derive(Clone, Copy, Debug)]
pub struct Recipe {
    pub on_event: Option<EventFn>,
    pub validate: Option<ValidateFn>,
    pub on_call: Option<CallFn>,
}

impl Recipe {
    /// No entry points: the base `recipe!` fills in.
    pub const NONE: Recipe = Recipe {
        on_event: None,
        validate: None,
        on_call: None,
    };
}

/// Decodes `input`, or logs why not and returns the code that fails the run.
fn decode<T: Codec>(input: &[u8], what: &str) -> Result<T, i32> {
    T::decode(input).map_err(|err| {
        sys::log(Level::Error as i32, &format!("bad {what} input: {err}"));
        Error::MarshallingError.code()
    })
}

/// Logs a handler's error and returns its (non-zero) code.
fn failed(entry: &str, error: Error) -> i32 {
    sys::log(Level::Error as i32, &format!("{entry} failed: {error}"));
    error.code()
}

/// `zkw_on_event` on decoded bytes.
pub fn run_event(recipe: &Recipe, input: &[u8]) -> i32 {
    let Some(handler) = recipe.on_event else {
        return Error::Unimplemented.code();
    };
    let event: Event = match decode(input, "event") {
        Ok(event) => event,
        Err(code) => return code,
    };
    let mut ctx = Ctx::new(event.header.clone());
    match handler(&mut ctx, &event) {
        Ok(()) => 0,
        Err(error) => failed("on_event", error),
    }
}

/// `zkw_validate` on decoded bytes: 0 allows the write, a negative code rejects it and the
/// reason becomes the run's result.
pub fn run_validate(recipe: &Recipe, input: &[u8]) -> i32 {
    let Some(handler) = recipe.validate else {
        return Error::Unimplemented.code();
    };
    let write: Validate = match decode(input, "validate") {
        Ok(write) => write,
        Err(code) => return code,
    };
    let mut ctx = Ctx::new(write.header.clone());
    match handler(&mut ctx, &write) {
        Ok(()) => 0,
        Err(reject) => {
            ctx.set_result(reject.reason.as_bytes());
            reject.error.code()
        }
    }
}

/// `zkw_on_call` on decoded bytes: the handler's bytes become the run's result.
pub fn run_call(recipe: &Recipe, input: &[u8]) -> i32 {
    let Some(handler) = recipe.on_call else {
        return Error::Unimplemented.code();
    };
    let call: Call = match decode(input, "call") {
        Ok(call) => call,
        Err(code) => return code,
    };
    let mut ctx = Ctx::new(call.header.clone());
    match handler(&mut ctx, &call.args) {
        Ok(result) => {
            ctx.set_result(&result);
            0
        }
        Err(error) => failed("on_call", error),
    }
}

/// The exported functions' bodies: take the input buffer back from `zkw_alloc` and run.
#[cfg(target_arch = "wasm32")]
mod export {
    use super::*;

    /// A panic aborts (a trap: the run fails); say why in the recipe's log first.
    fn enter() {
        std::panic::set_hook(Box::new(|info| {
            sys::log(Level::Error as i32, &format!("panic: {info}"));
        }));
    }

    fn with_input(ptr: i32, len: i32, run: impl FnOnce(&[u8]) -> i32) -> i32 {
        enter();
        match sys::take_input(ptr, len) {
            Some(input) => run(&input),
            None => {
                sys::log(Level::Error as i32, "input is not the zkw_alloc buffer");
                Error::MarshallingError.code()
            }
        }
    }

    pub fn alloc(len: i32) -> i32 {
        sys::alloc(len)
    }

    pub fn on_event(recipe: &Recipe, ptr: i32, len: i32) -> i32 {
        with_input(ptr, len, |input| run_event(recipe, input))
    }

    pub fn validate(recipe: &Recipe, ptr: i32, len: i32) -> i32 {
        with_input(ptr, len, |input| run_validate(recipe, input))
    }

    pub fn on_call(recipe: &Recipe, ptr: i32, len: i32) -> i32 {
        with_input(ptr, len, |input| run_call(recipe, input))
    }
}

#[cfg(target_arch = "wasm32")]
pub use export::{alloc, on_call, on_event, validate};
