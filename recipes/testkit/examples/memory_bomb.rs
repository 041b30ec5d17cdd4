//! `memory_bomb` (hostile): on any event keeps growing memory, 64 KiB (one Wasm page) at a time
//! and touching every chunk, until an allocation fails at the host's memory cap; then it
//! aborts (a trap). The chunks stay alive so nothing is reused.

use std::hint::black_box;

use zkw_guest::{Ctx, Error, Event};

/// One Wasm page (bytes).
const CHUNK_BYTES: usize = 64 * 1024;

fn handle(ctx: &mut Ctx, _event: &Event) -> Result<(), Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(CHUNK_BYTES).is_err() {
            ctx.error(format_args!("out of memory after {} chunks", hoard.len()));
            std::process::abort();
        }
        chunk.resize(CHUNK_BYTES, black_box(0xa5));
        hoard.push(black_box(chunk));
    }
}

zkw_guest::recipe! { on_event: handle }
