//! `session_watch`: when a session closes, writes `<root>/closed-<session as 16 hex digits>`
//! whose data lists the ephemerals under the root the close deleted, one path per line.

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind};

fn handle(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    if event.kind != EventKind::SessionClosed {
        return Ok(());
    }
    let path = ctx.path(&format!("closed-{:016x}", ctx.session()));
    ctx.create(
        &path,
        event.ephemerals.join("\n").as_bytes(),
        CreateMode::Persistent,
    )?;
    Ok(())
}

zkw_guest::recipe! { on_event: handle }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;
    use zkw_guest::Op;

    #[test]
    fn records_the_closed_sessions_ephemerals() {
        let mut tree = MockTree::new("sessions", "/s");
        tree.set_session(0x42);
        for name in ["/s/a", "/s/b"] {
            let op = Op::Create {
                path: name.into(),
                data: vec![],
                flags: CreateMode::Ephemeral as i32,
            };
            tree.write(&RECIPE, &op).unwrap();
        }
        tree.set_session(0x43);
        let run = tree.close_session(&RECIPE, 0x42);
        assert!(run.succeeded(), "{run:?}");
        assert!(tree.get("/s/a").is_none());
        assert_eq!(
            tree.text("/s/closed-0000000000000042").unwrap(),
            "/s/a\n/s/b"
        );
    }
}
