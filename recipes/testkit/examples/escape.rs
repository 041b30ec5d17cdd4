//! `escape` (hostile): on any event writes `/elsewhere`, outside its root. The host stops the
//! run and discards its writes (including the legal one it makes first).

use zkw_guest::{CreateMode, Ctx, Error, Event};

fn handle(ctx: &mut Ctx, _event: &Event) -> Result<(), Error> {
    ctx.create(&ctx.path("before-escape"), b"", CreateMode::Persistent)?;
    ctx.create("/elsewhere", b"escaped", CreateMode::Persistent)?;
    Ok(())
}

zkw_guest::recipe! { on_event: handle }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;
    use zkw_guest::EventKind;

    #[test]
    fn the_run_fails_and_nothing_is_written() {
        let mut tree = MockTree::new("escape", "/jail");
        let run = tree.on_event(&RECIPE, EventKind::Created, "/jail/a");
        assert!(!run.succeeded());
        assert_eq!(run.escaped.as_deref(), Some("/elsewhere"));
        assert!(tree.get("/elsewhere").is_none());
        assert!(tree.get("/jail/before-escape").is_none());
    }
}
