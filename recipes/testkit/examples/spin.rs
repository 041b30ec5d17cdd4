//! `spin` (hostile): loops forever on any event. Only fuel stops it.

use std::hint::black_box;

use zkw_guest::{Ctx, Error, Event};

fn handle(_ctx: &mut Ctx, _event: &Event) -> Result<(), Error> {
    let mut turns: u64 = 0;
    loop {
        turns = black_box(turns.wrapping_add(1));
    }
}

zkw_guest::recipe! { on_event: handle }
