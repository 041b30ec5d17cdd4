//! `ticker`: on each Timer event, writes `<root>/ticks` = "<count> <time_ms>", where time_ms is
//! the txn's leader timestamp (the only clock a recipe has).

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, ANY_VERSION};

fn handle(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    if event.kind != EventKind::Timer {
        return Ok(());
    }
    let ticks = ctx.path("ticks");
    let count = match ctx.get_data(&ticks)? {
        Some(data) => {
            let text = String::from_utf8_lossy(&data).into_owned();
            let first = text.split(' ').next().unwrap_or("0").to_owned();
            first.parse::<u64>().map_err(|_| Error::BadArguments)? + 1
        }
        None => 1,
    };
    let value = format!("{count} {}", ctx.time_ms());
    if count == 1 {
        ctx.create(&ticks, value.as_bytes(), CreateMode::Persistent)?;
    } else {
        ctx.set(&ticks, value.as_bytes(), ANY_VERSION)?;
    }
    Ok(())
}

zkw_guest::recipe! { on_event: handle }
