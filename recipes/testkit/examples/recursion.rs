//! `recursion` (hostile): recurses without bound on any event, each frame holding a buffer, so
//! the host's fixed Wasm stack overflows (a trap).

use std::hint::black_box;

use zkw_guest::{Ctx, Error, Event};

/// Never returns in practice: the depth check only keeps the compiler from calling the
/// recursion unconditional, and `black_box` stops it from becoming a loop.
fn descend(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    if depth == u64::MAX {
        return frame[0];
    }
    descend(black_box(depth + 1)).wrapping_add(frame[7])
}

fn handle(_ctx: &mut Ctx, _event: &Event) -> Result<(), Error> {
    black_box(descend(0));
    Ok(())
}

zkw_guest::recipe! { on_event: handle }
