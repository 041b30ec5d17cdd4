//! A zkw recipe: counts the nodes created under its path in `<path>/count`.
use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind};
fn on_event(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    let count_path = ctx.path("count");
    // Our own write to the counter fires an event too: skip it, or we would count ourselves.
    if event.kind != EventKind::Created || event.path == count_path {
        return Ok(());
    }
    let count = match ctx.get(&count_path)? {
        None => {
            ctx.create(&count_path, b"1", CreateMode::Persistent)?;
            1
        }
        Some(node) => {
            let count = String::from_utf8_lossy(&node.data).parse().unwrap_or(0u64) + 1;
            // The version we read makes a concurrent change a failed run, never a lost count.
            ctx.set(&count_path, count.to_string().as_bytes(), node.stat.version)?;
            count
        }
    };
    ctx.info(format_args!("{} is number {count}", event.path));
    Ok(())
}

zkw_guest::recipe! { on_event: on_event }

#[cfg(test)]
mod tests {
    use zkw_guest::testing::MockTree;

    #[test]
    fn counts() {
        let mut tree = MockTree::new("counter", "/counter");
        for name in ["/counter/a", "/counter/b", "/counter/c"] {
            let _ = tree.write(&super::RECIPE, &MockTree::create_op(name, b""));
        }
        assert_eq!(tree.text("/counter/count").as_deref(), Some("3"));
    }
}
