//! `election`: one leader per election among live participants, chosen by the server inside the
//! txn that changes the field. The znode protocol (README.md beside this crate) in short: an
//! election is `<root>/<name>`; a participant is an ephemeral sequential child `p-` whose data
//! is its proposal (prefixed `yield:` when it asks not to lead while anyone else can); on every
//! change of an election's participants (join, resign, session loss, a proposal or yield change)
//! this recipe picks the lowest sequence among those not yielding (or among all, if everyone
//! yields) and, when the pick or its proposal changed, rewrites `<root>/<name>/leader` with the
//! winner, the new epoch (the zxid of the change: strictly increasing) and the proposal. Anyone
//! watches that one node. A validator keeps clients from writing the leader node and from
//! joining with malformed names.

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, Reject, Validate, WriteKind};

/// Name prefix of a participant (sequential).
pub const PARTICIPANT_PREFIX: &str = "p-";
/// The node under an election that names its leader.
pub const LEADER_NODE: &str = "leader";
/// A participant's data prefix that asks not to lead while a non-yielding one is alive.
pub const YIELD_PREFIX: &str = "yield:";
/// Digits of the sequence suffix ZooKeeper appends to sequential nodes (at least).
const SEQUENCE_DIGITS_MIN: usize = 10;
/// CreateMode numbers of the two sequential modes (persistent, ephemeral).
const SEQUENTIAL_FLAGS: [i32; 2] = [2, 3];

/// What the leader node says, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leader {
    /// The winner's node name (`p-0000000003`), empty when nobody participates.
    pub name: String,
    pub epoch: i64,
    pub proposal: Vec<u8>,
}

impl Leader {
    /// `leader=<name>\nepoch=<epoch>\nproposal=<bytes to the end>`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("leader={}\nepoch={}\nproposal=", self.name, self.epoch).into_bytes();
        out.extend_from_slice(&self.proposal);
        out
    }

    pub fn decode(data: &[u8]) -> Option<Leader> {
        let (name, rest) = split_line(data.strip_prefix(b"leader=")?)?;
        let (epoch, rest) = split_line(rest.strip_prefix(b"epoch=")?)?;
        Some(Leader {
            name: String::from_utf8(name.to_vec()).ok()?,
            epoch: std::str::from_utf8(epoch).ok()?.parse().ok()?,
            proposal: rest.strip_prefix(b"proposal=")?.to_vec(),
        })
    }
}

fn split_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = data.iter().position(|&b| b == b'\n')?;
    Some((&data[..end], &data[end + 1..]))
}

/// A participant's sequence number; `None` for any other child.
pub fn parse_participant(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PARTICIPANT_PREFIX)?;
    if digits.len() < SEQUENCE_DIGITS_MIN || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A participant's data as (yields, proposal).
pub fn parse_campaign(data: &[u8]) -> (bool, &[u8]) {
    match data.strip_prefix(YIELD_PREFIX.as_bytes()) {
        Some(proposal) => (true, proposal),
        None => (false, data),
    }
}

fn on_event(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    match event.kind {
        EventKind::ChildrenChanged => match ctx.split_under_root(&event.path) {
            Some((election, "")) => settle(ctx, &election),
            _ => Ok(()),
        },
        // A participant changed its proposal or its yield (our own leader writes are skipped).
        EventKind::DataChanged => match ctx.split_under_root(&event.path) {
            Some((election, tail)) if parse_participant(tail).is_some() => settle(ctx, &election),
            _ => Ok(()),
        },
        EventKind::SessionClosed => {
            let mut elections: Vec<String> = (event.ephemerals.iter())
                .filter_map(|path| ctx.split_under_root(path))
                .filter(|(_, tail)| parse_participant(tail).is_some())
                .map(|(election, _)| election)
                .collect();
            elections.sort();
            elections.dedup();
            elections.iter().try_for_each(|e| settle(ctx, e))
        }
        EventKind::Created | EventKind::Deleted | EventKind::Timer => Ok(()),
    }
}

/// Picks the leader of one election and rewrites the leader node when the pick changed.
fn settle(ctx: &mut Ctx, election: &str) -> Result<(), Error> {
    if ctx.exists(election)?.is_none() {
        return Ok(());
    }
    let mut field: Vec<(u64, String)> = (ctx.children(election)?.into_iter())
        .filter_map(|name| parse_participant(&name).map(|seq| (seq, name)))
        .collect();
    field.sort();
    let mut first: Option<(String, Vec<u8>)> = None;
    let mut pick: Option<(String, Vec<u8>)> = None;
    for (_, name) in field {
        let Some(data) = ctx.get_data(&format!("{election}/{name}"))? else {
            continue;
        };
        let (yields, proposal) = parse_campaign(&data);
        if first.is_none() {
            first = Some((name.clone(), proposal.to_vec()));
        }
        if !yields {
            pick = Some((name, proposal.to_vec()));
            break;
        }
    }
    let (name, proposal) = pick.or(first).unwrap_or_default();
    let leader_path = format!("{election}/{LEADER_NODE}");
    let current = ctx.get_data(&leader_path)?;
    if let Some(data) = &current {
        let now = Leader::decode(data).unwrap_or_default();
        if now.name == name && now.proposal == proposal {
            return Ok(());
        }
    } else if name.is_empty() {
        return Ok(()); // nobody ever led: nothing to announce
    }
    let leader = Leader {
        name,
        epoch: ctx.zxid(),
        proposal,
    };
    match current {
        Some(_) => drop(ctx.set(&leader_path, &leader.encode(), zkw_guest::ANY_VERSION)?),
        None => drop(ctx.create(&leader_path, &leader.encode(), CreateMode::Persistent)?),
    }
    ctx.info(format_args!(
        "{election}: leader {:?} epoch {}",
        leader.name, leader.epoch
    ));
    Ok(())
}

/// Refuses client writes of the leader node (only the server names leaders; deleting it is
/// allowed so an empty election can be removed) and malformed participants.
fn validate(ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    let Some((_, tail)) = ctx.split_under_root(&write.path) else {
        return Ok(());
    };
    match (write.kind, tail) {
        (WriteKind::Create | WriteKind::SetData, LEADER_NODE) => Err(Reject::bad_arguments(
            "the leader node is written by the election recipe only",
        )),
        (WriteKind::Create, tail) if tail.starts_with(PARTICIPANT_PREFIX) => {
            if tail != PARTICIPANT_PREFIX || !SEQUENTIAL_FLAGS.contains(&write.flags) {
                return Err(Reject::bad_arguments(format!(
                    "a participant is created as {PARTICIPANT_PREFIX} with a sequential mode"
                )));
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
    use zkw_guest::Op;

    const ELECTION: &str = "/elect/svc";
    const LEADER: &str = "/elect/svc/leader";

    fn tree() -> MockTree {
        let mut tree = MockTree::new("election", "/elect");
        tree.write(&RECIPE, &MockTree::create_op(ELECTION, b""))
            .unwrap();
        tree
    }

    fn join(tree: &mut MockTree, session: i64, data: &str) -> String {
        tree.join(
            &RECIPE,
            session,
            ELECTION,
            PARTICIPANT_PREFIX,
            data.as_bytes(),
        )
    }

    fn leader(tree: &MockTree) -> Leader {
        Leader::decode(&tree.data(LEADER).unwrap()).unwrap()
    }

    fn name(path: &str) -> &str {
        path.rsplit('/').next().unwrap()
    }

    fn write(tree: &mut MockTree, op: Op) {
        let runs = tree.write(&RECIPE, &op).unwrap();
        assert!(runs.iter().all(|run| run.succeeded()), "{runs:?}");
    }

    #[test]
    fn leader_records_round_trip() {
        let leader = Leader {
            name: "p-0000000001".into(),
            epoch: 77,
            proposal: b"host:1\nmore".to_vec(),
        };
        assert_eq!(Leader::decode(&leader.encode()), Some(leader));
        assert_eq!(Leader::decode(b"junk"), None);
        assert_eq!(parse_campaign(b"yield:x"), (true, &b"x"[..]));
        assert_eq!(parse_participant("p-0000000004"), Some(4));
        assert_eq!(parse_participant(LEADER_NODE), None);
    }

    #[test]
    fn the_lowest_sequence_leads_and_the_epoch_grows_on_each_change() {
        let mut tree = tree();
        let a = join(&mut tree, 1, "a:1");
        let first = leader(&tree);
        assert_eq!(
            (first.name.as_str(), &first.proposal[..]),
            (name(&a), &b"a:1"[..])
        );
        let b = join(&mut tree, 2, "b:2");
        assert_eq!(leader(&tree), first, "a later joiner changes nothing");
        write(
            &mut tree,
            Op::Delete {
                path: a,
                version: -1,
            },
        );
        let second = leader(&tree);
        assert_eq!(second.name, name(&b));
        assert!(second.epoch > first.epoch);
        let run = tree.close_session(&RECIPE, 2);
        assert!(run.succeeded(), "{run:?}");
        let third = leader(&tree);
        assert_eq!(third.name, "");
        assert!(third.epoch > second.epoch);
    }

    #[test]
    fn a_yielding_participant_leads_only_when_alone() {
        let mut tree = tree();
        let a = join(&mut tree, 1, "yield:a");
        assert_eq!(leader(&tree).name, name(&a), "alone, it leads anyway");
        let b = join(&mut tree, 2, "b");
        assert_eq!(leader(&tree).name, name(&b));
        // b yields too: the lowest sequence again; a stops yielding: a keeps it.
        let set = |path: &str, data: &[u8]| Op::SetData {
            path: path.into(),
            data: data.to_vec(),
            version: -1,
        };
        write(&mut tree, set(&b, b"yield:b"));
        assert_eq!(leader(&tree).name, name(&a));
        write(&mut tree, set(&a, b"a2"));
        let now = leader(&tree);
        assert_eq!(
            (now.name.as_str(), &now.proposal[..]),
            (name(&a), &b"a2"[..])
        );
    }

    #[test]
    fn clients_cannot_name_the_leader() {
        let mut tree = tree();
        join(&mut tree, 1, "a");
        let forge = Op::SetData {
            path: LEADER.into(),
            data: b"leader=me\nepoch=1\nproposal=".to_vec(),
            version: -1,
        };
        assert_eq!(tree.write(&RECIPE, &forge), Err(Error::BadArguments));
        let plain = Op::Create {
            path: format!("{ELECTION}/p-1"),
            data: vec![],
            flags: CreateMode::Ephemeral as i32,
        };
        assert_eq!(tree.write(&RECIPE, &plain), Err(Error::BadArguments));
    }
}
