//! `balancer`: assigns a group's work items to its live members by weighted rendezvous hashing.
//! Members are (usually ephemeral) nodes `<root>/<group>/members/<id>` whose data is a weight
//! (empty = 1, 0 = take nothing); items are nodes `<root>/<group>/items/<item>`. After any
//! change to either, in the same txn, the recipe recomputes who owns what and writes
//! `<root>/<group>/assignments/<id>` (the item names, one per line, sorted) only for the
//! members whose set changed; a member watches only its own. Each item goes to the member with
//! the highest score `-weight / ln(u)`, `u` a deterministic hash of (member, item) in (0, 1),
//! so a join takes about weight/total of the items and a leave moves only the leaver's.
//! README.md has the whole protocol.

use std::collections::{BTreeMap, BTreeSet};

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, Reject, Validate, WriteKind};

/// The children of a group node with a meaning to this recipe.
pub const MEMBERS_NODE: &str = "members";
pub const ITEMS_NODE: &str = "items";
pub const ASSIGNMENTS_NODE: &str = "assignments";
/// The weight of a member whose data is empty.
pub const WEIGHT_DEFAULT: f64 = 1.0;

/// What a path under the root is to this recipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `members`, `members/<id>`, `items` or `items/<item>` of a group: (group, is a member).
    Input(&'a str, bool),
    /// `<root>/<group>/assignments` or under it.
    Assignments(&'a str),
    Other,
}

/// Classifies `path` relative to `root`.
pub fn classify<'a>(root: &str, path: &'a str) -> Target<'a> {
    let root = root.trim_end_matches('/');
    let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) else {
        return Target::Other;
    };
    let parts: Vec<&'a str> = rest.split('/').collect();
    match parts.as_slice() {
        [group, MEMBERS_NODE, id] => Target::Input(group, !id.is_empty()),
        [group, MEMBERS_NODE] | [group, ITEMS_NODE] | [group, ITEMS_NODE, _] => {
            Target::Input(group, false)
        }
        [group, ASSIGNMENTS_NODE, ..] => Target::Assignments(group),
        _ => Target::Other,
    }
}

/// A member's weight from its data: empty is [`WEIGHT_DEFAULT`], else a finite number >= 0.
pub fn parse_weight(data: &[u8]) -> Result<f64, String> {
    let text = std::str::from_utf8(data).map_err(|_| "weight is not UTF-8".to_owned())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(WEIGHT_DEFAULT);
    }
    match text.parse::<f64>() {
        Ok(weight) if weight.is_finite() && weight >= 0.0 => Ok(weight),
        _ => Err(format!("weight {text:?} is not a finite number >= 0")),
    }
}

/// 64-bit FNV-1a of `member`, a 0xff separator (never in a znode name's UTF-8) and `item`,
/// finished with MurmurHash3's fmix64 so close names spread over all bits.
pub fn hash(member: &str, item: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    let bytes = member.bytes().chain([0xff]).chain(item.bytes());
    for byte in bytes {
        h ^= u64::from(byte);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The weighted rendezvous score of `member` for `item`: `-weight / ln(u)` with `u` in (0, 1).
pub fn score(member: &str, weight: f64, item: &str) -> f64 {
    // The top 53 bits, centred in their interval, are exactly representable and never 0 or 1.
    let u = ((hash(member, item) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -weight / u.ln()
}

/// Who owns each item: every member (id → weight) gets an entry, possibly empty; an item goes
/// to the highest score (ties to the lowest id), and nowhere when every weight is 0.
pub fn assign(
    members: &BTreeMap<String, f64>,
    items: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    let mut owned: BTreeMap<String, BTreeSet<String>> = members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    for item in items {
        let mut best: Option<(&String, f64)> = None;
        for (id, weight) in members.iter().filter(|(_, w)| **w > 0.0) {
            let s = score(id, *weight, item);
            if best.is_none_or(|(_, top)| s > top) {
                best = Some((id, s));
            }
        }
        if let Some((id, _)) = best {
            owned.entry(id.clone()).or_default().insert(item.clone());
        }
    }
    owned
}

/// An assignment node's data: the item names, one per line, sorted.
pub fn assignment_data(items: &BTreeSet<String>) -> Vec<u8> {
    let names: Vec<&str> = items.iter().map(String::as_str).collect();
    names.join("\n").into_bytes()
}

fn validate(ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    if write.kind == WriteKind::Delete {
        return Ok(());
    }
    let root = ctx.root().to_owned();
    let outcome = match classify(&root, &write.path) {
        Target::Input(_, true) => parse_weight(&write.data).map(drop),
        Target::Assignments(_) => Err("written by the balancer recipe only".to_owned()),
        Target::Input(_, false) | Target::Other => Ok(()),
    };
    outcome.map_err(Reject::bad_arguments)
}

fn on_event(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    let root = ctx.root().to_owned();
    let mut groups = BTreeSet::new();
    match event.kind {
        EventKind::SessionClosed => {
            for path in &event.ephemerals {
                if let Target::Input(group, _) = classify(&root, path) {
                    groups.insert(group.to_owned());
                }
            }
        }
        // A member's weight changed. (Joins and leaves also change the members' children.)
        EventKind::DataChanged => {
            if let Target::Input(group, true) = classify(&root, &event.path) {
                groups.insert(group.to_owned());
            }
        }
        EventKind::ChildrenChanged | EventKind::Deleted => {
            if let Target::Input(group, false) = classify(&root, &event.path) {
                groups.insert(group.to_owned());
            }
        }
        EventKind::Created | EventKind::Timer => {}
    }
    for group in groups {
        rebalance(ctx, &group)?;
    }
    Ok(())
}

/// The children of `path`, or none when it does not exist.
fn children_or_none(ctx: &mut Ctx, path: &str) -> Result<Vec<String>, Error> {
    match ctx.children(path) {
        Err(Error::NoNode) => Ok(Vec::new()),
        other => other,
    }
}

/// Recomputes `group`'s assignments and writes the ones that changed.
fn rebalance(ctx: &mut Ctx, group: &str) -> Result<(), Error> {
    let base = ctx.path(group);
    let members_dir = format!("{base}/{MEMBERS_NODE}");
    let mut members = BTreeMap::new();
    for id in children_or_none(ctx, &members_dir)? {
        let data = ctx.get_data(&format!("{members_dir}/{id}"))?;
        // A weight written before the recipe was installed may be bad: count it as 1.
        let weight = data.map_or(WEIGHT_DEFAULT, |d| {
            parse_weight(&d).unwrap_or(WEIGHT_DEFAULT)
        });
        members.insert(id, weight);
    }
    let items = children_or_none(ctx, &format!("{base}/{ITEMS_NODE}"))?;
    let owned = assign(&members, &items);
    let dir = format!("{base}/{ASSIGNMENTS_NODE}");
    let existing = children_or_none(ctx, &dir)?;
    for stale in existing.iter().filter(|id| !members.contains_key(*id)) {
        ctx.delete(&format!("{dir}/{stale}"), zkw_guest::ANY_VERSION)?;
    }
    if owned.is_empty() {
        return Ok(());
    }
    if ctx.exists(&dir)?.is_none() {
        ctx.create(&dir, b"", CreateMode::Persistent)?;
    }
    for (id, items) in &owned {
        let path = format!("{dir}/{id}");
        let data = assignment_data(items);
        match ctx.get(&path)? {
            Some(node) if node.data == data => {}
            Some(node) => {
                ctx.set(&path, &data, node.stat.version)?;
            }
            None => {
                ctx.create(&path, &data, CreateMode::Persistent)?;
            }
        }
    }
    Ok(())
}

zkw_guest::recipe! { on_event: on_event, validate: validate }

#[cfg(test)]
mod tests;
