//! `lock`: a fair FIFO mutex and read/write lock, granted by the server inside the txn that
//! changes the queue. The znode protocol (README.md beside this crate) in short: a lock is
//! `<root>/<name>`; a request is an ephemeral sequential child `write-` or `read-`; on every
//! change of a lock's children (a request, a release, a session loss) this recipe walks the
//! queue in sequence order and writes `granted <token>` onto the data of each request that now
//! holds the lock (the first writer alone, or the leading run of readers), so only the winners'
//! data watches fire. The token is the zxid of the granting txn: strictly increasing per lock.
//! Releasing is deleting the request (or losing the session). An optional lease (`lease_ms=N`
//! as the lock node's data) bounds how long a grant lasts: an expired holder's request is
//! deleted on the next change of that lock or on a timer tick. A validator keeps clients from
//! forging grants (no client setData on requests) and from queueing malformed requests.

use zkw_guest::{Ctx, Error, Event, EventKind, Reject, Validate, WriteKind, ANY_VERSION};

/// Name prefix of an exclusive (write) request.
pub const WRITE_PREFIX: &str = "write-";
/// Name prefix of a shared (read) request.
pub const READ_PREFIX: &str = "read-";
/// What a granted request's data starts with; the fencing token follows in decimal.
pub const GRANTED_PREFIX: &str = "granted ";
/// The lock node's data that sets a lease: `lease_ms=<milliseconds>`.
pub const LEASE_KEY: &str = "lease_ms=";
/// Digits of the sequence suffix ZooKeeper appends to sequential nodes (at least).
const SEQUENCE_DIGITS_MIN: usize = 10;
/// CreateMode numbers of the two sequential modes (persistent, ephemeral).
const SEQUENTIAL_FLAGS: [i32; 2] = [2, 3];

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Read,
    Write,
}

/// A request node's name as `(mode, sequence)`; `None` for any other child.
pub fn parse_request(name: &str) -> Option<(Mode, u64)> {
    let (mode, digits) = if let Some(digits) = name.strip_prefix(WRITE_PREFIX) {
        (Mode::Write, digits)
    } else {
        (Mode::Read, name.strip_prefix(READ_PREFIX)?)
    };
    if digits.len() < SEQUENCE_DIGITS_MIN || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((mode, digits.parse().ok()?))
}

/// The fencing token of a granted request's data (`granted <token>[\n<client data>]`).
pub fn parse_grant(data: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(data.strip_prefix(GRANTED_PREFIX.as_bytes())?).ok()?;
    text.split('\n').next()?.trim().parse().ok()
}

/// The lease of a lock node's data: `Ok(None)` when empty, an error when malformed.
pub fn parse_lease(data: &[u8]) -> Result<Option<i64>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "lock data is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value = text
        .strip_prefix(LEASE_KEY)
        .ok_or_else(|| format!("lock data must be empty or {LEASE_KEY}<ms>, not {text:?}"))?;
    match value.parse::<i64>() {
        Ok(ms) if ms > 0 => Ok(Some(ms)),
        _ => Err(format!(
            "{LEASE_KEY} needs a positive integer, not {value:?}"
        )),
    }
}

fn on_event(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    match event.kind {
        // A request came or went (release, expiry), or the lease setting changed: only the
        // lock node's own events, so each change settles the queue once, not twice.
        EventKind::ChildrenChanged | EventKind::DataChanged => {
            match ctx.split_under_root(&event.path) {
                Some((lock, "")) => settle(ctx, &lock),
                _ => Ok(()),
            }
        }
        EventKind::SessionClosed => {
            let mut locks: Vec<String> = (event.ephemerals.iter())
                .filter_map(|path| ctx.split_under_root(path))
                .filter(|(_, tail)| !tail.is_empty())
                .map(|(lock, _)| lock)
                .collect();
            locks.sort();
            locks.dedup();
            locks.iter().try_for_each(|lock| settle(ctx, lock))
        }
        EventKind::Timer => {
            let root = ctx.root().trim_end_matches('/').to_owned();
            let names = match ctx.children(if root.is_empty() { "/" } else { &root }) {
                Ok(names) => names,
                Err(Error::NoNode) => return Ok(()),
                Err(error) => return Err(error),
            };
            // Without a lease nothing changes with time: only leased locks need a look.
            for name in names {
                let lock = format!("{root}/{name}");
                let leased = (ctx.get_data(&lock)?)
                    .is_some_and(|data| parse_lease(&data).ok().flatten().is_some());
                if leased {
                    settle(ctx, &lock)?;
                }
            }
            Ok(())
        }
        EventKind::Created | EventKind::Deleted => Ok(()),
    }
}

/// Brings one lock's queue to its rule: expire holders past the lease, then grant the first
/// writer alone or the leading run of readers. Idempotent: a settled queue is left as is.
fn settle(ctx: &mut Ctx, lock: &str) -> Result<(), Error> {
    let Some(node) = ctx.get(lock)? else {
        return Ok(());
    };
    // A malformed lease cannot pass the validator; treat one written before it as none.
    let lease = parse_lease(&node.data).ok().flatten();
    let mut queue: Vec<(u64, Mode, String)> = (ctx.children(lock)?.into_iter())
        .filter_map(|name| parse_request(&name).map(|(mode, seq)| (seq, mode, name)))
        .collect();
    queue.sort();
    let mut holders_ahead = false;
    for (_, mode, name) in queue {
        let path = format!("{lock}/{name}");
        let Some(request) = ctx.get(&path)? else {
            continue;
        };
        if parse_grant(&request.data).is_some() {
            // The grant is the request's only data change, so mtime is the grant time.
            if lease.is_some_and(|ms| ctx.time_ms() - request.stat.mtime >= ms) {
                ctx.delete(&path, ANY_VERSION)?;
                ctx.info(format_args!("{path}: lease expired, released"));
                continue;
            }
        } else if mode == Mode::Read || !holders_ahead {
            grant(ctx, &path, &request.data, request.stat.version)?;
        }
        holders_ahead = true;
        if mode == Mode::Write {
            break;
        }
    }
    Ok(())
}

/// Writes `granted <token>` (then the client's own data, kept for humans) onto the request.
fn grant(ctx: &mut Ctx, path: &str, data: &[u8], version: i32) -> Result<(), Error> {
    let mut granted = format!("{GRANTED_PREFIX}{}", ctx.zxid()).into_bytes();
    if !data.is_empty() {
        granted.push(b'\n');
        granted.extend_from_slice(data);
    }
    ctx.set(path, &granted, version)?;
    Ok(())
}

/// Refuses client writes that would break the protocol: forged grants, malformed requests
/// and leases. Deletes (releases) always pass.
fn validate(ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    let Some((_, tail)) = ctx.split_under_root(&write.path) else {
        return Ok(());
    };
    match (write.kind, tail) {
        (WriteKind::Delete, _) => Ok(()),
        (WriteKind::Create | WriteKind::SetData, "") => parse_lease(&write.data)
            .map(drop)
            .map_err(Reject::bad_arguments),
        (WriteKind::SetData, tail) if parse_request(tail).is_some() => Err(Reject::bad_arguments(
            "a lock request's data is the server's (grants): delete it to release",
        )),
        (WriteKind::Create, tail)
            if tail.starts_with(WRITE_PREFIX) || tail.starts_with(READ_PREFIX) =>
        {
            if tail != WRITE_PREFIX && tail != READ_PREFIX {
                return Err(Reject::bad_arguments(format!(
                    "a lock request is named exactly {WRITE_PREFIX} or {READ_PREFIX} (sequential)"
                )));
            }
            if !SEQUENTIAL_FLAGS.contains(&write.flags) {
                return Err(Reject::bad_arguments(
                    "a lock request must be sequential (ephemeral sequential is best)",
                ));
            }
            if write.data.starts_with(GRANTED_PREFIX.as_bytes()) {
                return Err(Reject::bad_arguments("a new request cannot claim a grant"));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

zkw_guest::recipe! { on_event: on_event, validate: validate }

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;
    use zkw_guest::testing::MockTree;
    use zkw_guest::{CreateMode, Op};

    const LOCK: &str = "/locks/db";

    fn tree() -> MockTree {
        let mut tree = MockTree::new("lock", "/locks");
        tree.write(&RECIPE, &MockTree::create_op(LOCK, b""))
            .unwrap();
        tree
    }

    /// A client's request as `session`; returns the created path.
    fn request(tree: &mut MockTree, session: i64, prefix: &str) -> String {
        let data = format!("s{session}");
        tree.join(&RECIPE, session, LOCK, prefix, data.as_bytes())
    }

    fn release(tree: &mut MockTree, path: &str) {
        let op = Op::Delete {
            path: path.into(),
            version: -1,
        };
        let runs = tree.write(&RECIPE, &op).unwrap();
        assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
    }

    fn token(tree: &MockTree, path: &str) -> Option<i64> {
        parse_grant(&tree.data(path).unwrap())
    }

    #[test]
    fn names_grants_and_leases_parse() {
        assert_eq!(parse_request("write-0000000007"), Some((Mode::Write, 7)));
        assert_eq!(parse_request("read-0000000012"), Some((Mode::Read, 12)));
        assert_eq!(parse_request("read-12"), None);
        assert_eq!(parse_request("leader"), None);
        assert_eq!(parse_grant(b"granted 42\nme"), Some(42));
        assert_eq!(parse_grant(b"me"), None);
        assert_eq!(parse_lease(b""), Ok(None));
        assert_eq!(parse_lease(b"lease_ms=500\n"), Ok(Some(500)));
        assert!(parse_lease(b"lease_ms=0").is_err());
        assert!(parse_lease(b"hello").is_err());
    }

    #[test]
    fn writers_are_granted_one_at_a_time_in_order() {
        let mut tree = tree();
        let a = request(&mut tree, 1, WRITE_PREFIX);
        let b = request(&mut tree, 2, WRITE_PREFIX);
        let c = request(&mut tree, 3, WRITE_PREFIX);
        let first = token(&tree, &a).unwrap();
        assert_eq!(
            first,
            tree.get(&a).unwrap().stat.czxid,
            "granted in its own create"
        );
        assert_eq!((token(&tree, &b), token(&tree, &c)), (None, None));
        assert_eq!(tree.text(&a).unwrap(), format!("granted {first}\ns1"));
        release(&mut tree, &a);
        let second = token(&tree, &b).unwrap();
        assert!(second > first);
        assert_eq!(token(&tree, &c), None);
        // Releasing a waiter out of order changes nothing for the holder.
        release(&mut tree, &c);
        assert_eq!(token(&tree, &b), Some(second));
        let d = request(&mut tree, 4, WRITE_PREFIX);
        release(&mut tree, &b);
        assert!(token(&tree, &d).unwrap() > second);
    }

    #[test]
    fn readers_share_and_a_queued_writer_blocks_later_readers() {
        let mut tree = tree();
        let r1 = request(&mut tree, 1, READ_PREFIX);
        let r2 = request(&mut tree, 2, READ_PREFIX);
        let w = request(&mut tree, 3, WRITE_PREFIX);
        let r3 = request(&mut tree, 4, READ_PREFIX);
        assert!(token(&tree, &r1).is_some() && token(&tree, &r2).is_some());
        assert_eq!((token(&tree, &w), token(&tree, &r3)), (None, None));
        release(&mut tree, &r1);
        assert_eq!(token(&tree, &w), None, "a reader still holds");
        release(&mut tree, &r2);
        let write_token = token(&tree, &w).unwrap();
        assert_eq!(token(&tree, &r3), None);
        release(&mut tree, &w);
        assert!(token(&tree, &r3).unwrap() > write_token);
    }

    #[test]
    fn a_holders_session_loss_passes_the_lock_on() {
        let mut tree = tree();
        let a = request(&mut tree, 1, WRITE_PREFIX);
        let b = request(&mut tree, 2, WRITE_PREFIX);
        let run = tree.close_session(&RECIPE, 1);
        assert!(run.succeeded(), "{run:?}");
        assert!(tree.get(&a).is_none());
        assert!(token(&tree, &b).is_some());
    }

    #[test]
    fn an_expired_lease_is_released_by_the_timer() {
        let mut tree = tree();
        tree.set_session(0);
        let set = Op::SetData {
            path: LOCK.into(),
            data: b"lease_ms=1000".to_vec(),
            version: -1,
        };
        tree.write(&RECIPE, &set).unwrap();
        let start = zkw_guest::testing::TIME_MS_DEFAULT;
        let a = request(&mut tree, 1, WRITE_PREFIX);
        let b = request(&mut tree, 2, WRITE_PREFIX);
        tree.set_session(0);
        tree.set_time_ms(start + 999);
        assert!(tree.on_event(&RECIPE, EventKind::Timer, "").succeeded());
        assert!(tree.get(&a).is_some(), "not expired yet");
        tree.set_time_ms(start + 1000);
        let run = tree.on_event(&RECIPE, EventKind::Timer, "");
        assert!(run.succeeded(), "{run:?}");
        assert!(tree.get(&a).is_none());
        assert!(token(&tree, &b).is_some());
        assert_eq!(tree.get(&b).unwrap().stat.mtime, start + 1000);
    }

    #[test]
    fn the_validator_refuses_forgery_and_malformed_requests() {
        let mut tree = tree();
        let a = request(&mut tree, 1, WRITE_PREFIX);
        let forge = Op::SetData {
            path: a.clone(),
            data: b"granted 999999".to_vec(),
            version: -1,
        };
        assert_eq!(tree.write(&RECIPE, &forge), Err(Error::BadArguments));
        let create = |path: &str, data: &[u8], mode: CreateMode| Op::Create {
            path: path.into(),
            data: data.to_vec(),
            flags: mode as i32,
        };
        let plain = create("/locks/db/write-", b"", CreateMode::Ephemeral);
        assert_eq!(tree.write(&RECIPE, &plain), Err(Error::BadArguments));
        let named = create("/locks/db/write-x", b"", CreateMode::EphemeralSequential);
        assert_eq!(tree.write(&RECIPE, &named), Err(Error::BadArguments));
        let claim = create(
            "/locks/db/read-",
            b"granted 1",
            CreateMode::EphemeralSequential,
        );
        assert_eq!(tree.write(&RECIPE, &claim), Err(Error::BadArguments));
        let lease = create("/locks/other", b"lease=5", CreateMode::Persistent);
        assert_eq!(tree.write(&RECIPE, &lease), Err(Error::BadArguments));
        let other = create("/locks/db/notes", b"anything", CreateMode::Persistent);
        assert!(tree.write(&RECIPE, &other).is_ok());
        release(&mut tree, &a);
    }
}
