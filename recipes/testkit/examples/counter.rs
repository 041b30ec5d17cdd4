//! `counter`: on every Created event under its root, increments `<root>/count` (creating it at
//! "1"). Its own writes fire events too, so events on `<root>/count` are ignored; otherwise the
//! recipe would chase its own tail until the host's depth limit.

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind};

fn handle(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    let counter = ctx.path("count");
    if event.kind != EventKind::Created || event.path == counter {
        return Ok(());
    }
    match ctx.get(&counter)? {
        None => {
            ctx.create(&counter, b"1", CreateMode::Persistent)?;
        }
        Some(node) => {
            let count: u64 = std::str::from_utf8(&node.data)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(Error::BadArguments)?;
            ctx.set(
                &counter,
                (count + 1).to_string().as_bytes(),
                node.stat.version,
            )?;
        }
    }
    Ok(())
}

zkw_guest::recipe! { on_event: handle }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;
    use zkw_guest::Op;

    #[test]
    fn counts_creates_and_ignores_its_own_counter() {
        let mut tree = MockTree::new("counter", "/counter");
        for name in ["a", "b", "c"] {
            let path = format!("/counter/{name}");
            let runs = tree
                .write(&RECIPE, &MockTree::create_op(&path, b""))
                .unwrap();
            assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
        }
        assert_eq!(tree.text("/counter/count").unwrap(), "3");
        assert_eq!(tree.get("/counter/count").unwrap().stat.version, 2);
    }

    #[test]
    fn other_events_and_paths_outside_do_nothing() {
        let mut tree = MockTree::new("counter", "/counter");
        tree.apply(&MockTree::create_op("/counter/a", b"")).unwrap();
        let op = Op::SetData {
            path: "/counter/a".into(),
            data: b"x".to_vec(),
            version: -1,
        };
        tree.write(&RECIPE, &op).unwrap();
        tree.write(&RECIPE, &MockTree::create_op("/other", b""))
            .unwrap();
        assert!(tree.get("/counter/count").is_none());
    }

    #[test]
    fn a_corrupt_counter_fails_the_run_and_keeps_the_tree() {
        let mut tree = MockTree::new("counter", "/counter");
        tree.apply(&MockTree::create_op("/counter/count", b"many"))
            .unwrap();
        let run = tree.on_event(&RECIPE, EventKind::Created, "/counter/a");
        assert!(!run.succeeded());
        assert_eq!(run.code, Error::BadArguments.code());
        assert_eq!(tree.text("/counter/count").unwrap(), "many");
    }
}
