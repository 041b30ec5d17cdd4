//! `recursion` (hostile): recurses without bound on any event, so the host's fixed Wasm stack
//! (`max_wasm_stack`) overflows: a trap. The frames keep everything in Wasm locals (nothing
//! whose address is taken), so it is the engine's stack that runs out, not the shadow stack
//! Rust keeps in linear memory.

use std::hint::black_box;

use zkw_guest::{Ctx, Error, Event};

/// Never returns in practice: `limit` is unreachable, and the two calls per frame keep the
/// compiler from turning the recursion into a loop.
#[inline(never)]
fn descend(depth: u64, limit: u64) -> u64 {
    if depth >= limit {
        return depth;
    }
    let left = descend(depth + 1, limit);
    left.rotate_left(5) ^ descend(depth + 2, limit)
}

fn handle(_ctx: &mut Ctx, _event: &Event) -> Result<(), Error> {
    black_box(descend(0, black_box(u64::MAX)));
    Ok(())
}

zkw_guest::recipe! { on_event: handle }
