//! `trap` (hostile): every entry point panics, which with `panic = "abort"` is a Wasm trap
//! (`unreachable`). The SDK logs the panic message first.

use zkw_guest::{Ctx, Error, Event, Reject, Validate};

fn handle(_ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    panic!(
        "trap recipe: deliberate panic on {:?} {}",
        event.kind, event.path
    );
}

fn check(_ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    panic!("trap recipe: deliberate panic validating {}", write.path);
}

fn call(_ctx: &mut Ctx, _args: &[u8]) -> Result<Vec<u8>, Error> {
    panic!("trap recipe: deliberate panic on call");
}

zkw_guest::recipe! { on_event: handle, validate: check, on_call: call }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;
    use zkw_guest::EventKind;

    #[test]
    #[should_panic(expected = "deliberate panic")]
    fn panics_on_events() {
        MockTree::new("trap", "/trap").on_event(&RECIPE, EventKind::Created, "/trap/a");
    }
}
