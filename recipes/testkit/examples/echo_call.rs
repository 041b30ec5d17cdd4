//! `echo_call`: an explicit call returns its arguments reversed and creates a sequential
//! `<root>/called-` node holding them.

use zkw_guest::{CreateMode, Ctx, Error};

fn call(ctx: &mut Ctx, args: &[u8]) -> Result<Vec<u8>, Error> {
    ctx.create(&ctx.path("called-"), args, CreateMode::PersistentSequential)?;
    Ok(args.iter().rev().copied().collect())
}

zkw_guest::recipe! { on_call: call }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;

    #[test]
    fn returns_args_reversed_and_records_each_call() {
        let mut tree = MockTree::new("echo", "/echo");
        let run = tree.call(&RECIPE, b"abc");
        assert!(run.succeeded());
        assert_eq!(run.result, b"cba");
        let run = tree.call(&RECIPE, b"");
        assert!(run.succeeded());
        assert_eq!(
            tree.children("/echo").unwrap(),
            ["called-0000000000", "called-0000000001"]
        );
        assert_eq!(tree.data("/echo/called-0000000000").unwrap(), b"abc");
    }
}
