//! `fuel_burner`: on a Created event under its root, reads the created node's data as a decimal
//! `n`, does `n` rounds of arithmetic, then writes the outcome to `<root>/burned`. With a large
//! `n` the host's fuel runs out part way, at a point that depends on `n`: the determinism test
//! checks every replica stops at the same instruction. Events on `<root>/burned` are ignored.

use std::hint::black_box;

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, ANY_VERSION};

/// A step of a 64-bit mixing function; `black_box` keeps the loop from being folded away.
fn burn(rounds: u64) -> u64 {
    let mut acc: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..rounds {
        acc = black_box(acc ^ round).wrapping_mul(0xff51_afd7_ed55_8ccd);
        acc ^= acc >> 33;
    }
    acc
}

fn handle(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    let burned = ctx.path("burned");
    if event.kind != EventKind::Created || event.path == burned {
        return Ok(());
    }
    let data = ctx.get_data(&event.path)?.unwrap_or_default();
    let rounds: u64 = std::str::from_utf8(&data)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0);
    let outcome = format!("{} {rounds} {:016x}", event.path, burn(rounds));
    if ctx.exists(&burned)?.is_some() {
        ctx.set(&burned, outcome.as_bytes(), ANY_VERSION)?;
    } else {
        ctx.create(&burned, outcome.as_bytes(), CreateMode::Persistent)?;
    }
    Ok(())
}

zkw_guest::recipe! { on_event: handle }

#[cfg(test)]
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;

    #[test]
    fn burns_n_rounds_then_writes_the_outcome() {
        let mut tree = MockTree::new("burner", "/burn");
        tree.write(&RECIPE, &MockTree::create_op("/burn/a", b"1000"))
            .unwrap();
        let first = tree.text("/burn/burned").unwrap();
        assert!(first.starts_with("/burn/a 1000 "), "{first}");
        tree.write(&RECIPE, &MockTree::create_op("/burn/b", b"junk"))
            .unwrap();
        assert!(tree.text("/burn/burned").unwrap().starts_with("/burn/b 0 "));
        assert_eq!(burn(1000), burn(1000));
        assert_ne!(burn(1000), burn(1001));
    }
}
