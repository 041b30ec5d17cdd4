//! `balancer`: assigns a group's work items to its live members by weighted rendezvous hashing.
//! Members are (usually ephemeral) nodes `<root>/<group>/members/<id>` whose data is a weight
//! (empty = 1, 0 = take nothing); items are nodes `<root>/<group>/items/<item>`. After any
//! change to either, in the same txn, the recipe recomputes who owns what and writes
//! `<root>/<group>/assignments/<id>` (the item names, one per line, sorted) only for the
//! members whose set changed; a member watches only its own. Each item goes to the member with
//! the highest score `-weight / ln(u)`, `u` a fixed hash of (member, item) mapped into (0, 1),
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
    let Some(rest) = zkw_guest::relative(root, path) else {
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

/// 64-bit FNV-1a of a name.
fn fnv1a(name: &str) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes().fold(FNV_OFFSET, |h, byte| {
        (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// MurmurHash3's 64-bit finaliser: a bijection that spreads every input bit over the output.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The pair hash from the two names' own hashes (`member_key`, `item_key`), so a rebalance
/// hashes each name once and each (member, item) pair with a few multiplications.
fn combine(member_key: u64, item_key: u64) -> u64 {
    fmix64(member_key ^ item_key)
}

fn member_key(member: &str) -> u64 {
    fnv1a(member)
}

fn item_key(item: &str) -> u64 {
    fmix64(fnv1a(item))
}

/// The hash of (member, item): `fmix64(fnv1a(member) ^ fmix64(fnv1a(item)))`, with 64-bit
/// FNV-1a and MurmurHash3's fmix64. Fixed forever: changing it would move every item.
pub fn hash(member: &str, item: &str) -> u64 {
    combine(member_key(member), item_key(item))
}

/// `u` in (0, 1) from a pair hash: its top 53 bits, centred in their interval (exactly
/// representable, never 0 or 1).
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// The weighted rendezvous score of `member` for `item`: `-weight / ln(u)` with `u` in (0, 1).
pub fn score(member: &str, weight: f64, item: &str) -> f64 {
    -weight / unit(hash(member, item)).ln()
}

/// Who owns each item, as indices into `items`: every member (id → weight) gets an entry,
/// possibly empty, its indices ascending; an item goes to the highest score (ties to the
/// lowest id), and nowhere when every weight is 0. Indices, not names: a rebalance runs on
/// fuel, and copying and ordering thousands of strings costs more than hashing them.
pub fn assign_indices(
    members: &BTreeMap<String, f64>,
    items: &[String],
) -> BTreeMap<String, Vec<usize>> {
    let live: Vec<(&String, f64, u64)> = members
        .iter()
        .filter(|(_, weight)| **weight > 0.0)
        .map(|(id, weight)| (id, *weight, member_key(id)))
        .collect();
    let mut owned: Vec<Vec<usize>> = vec![Vec::new(); live.len()];
    // With equal weights the score grows with the hash's top 53 bits alone: compare those
    // and skip the logarithms (most groups).
    let uniform = live.windows(2).all(|pair| pair[0].1 == pair[1].1);
    if !live.is_empty() {
        for (index, item) in items.iter().enumerate() {
            let key = item_key(item);
            let mut best = 0;
            if uniform {
                let mut top = combine(live[0].2, key) >> 11;
                for (at, (_, _, member)) in live.iter().enumerate().skip(1) {
                    let h = combine(*member, key) >> 11;
                    if h > top {
                        (best, top) = (at, h);
                    }
                }
            } else {
                let score = |(_, weight, member): &(&String, f64, u64)| {
                    -weight / unit(combine(*member, key)).ln()
                };
                let mut top = score(&live[0]);
                for (at, candidate) in live.iter().enumerate().skip(1) {
                    let s = score(candidate);
                    if s > top {
                        (best, top) = (at, s);
                    }
                }
            }
            owned[best].push(index);
        }
    }
    let mut result: BTreeMap<String, Vec<usize>> =
        members.keys().map(|id| (id.clone(), Vec::new())).collect();
    for ((id, _, _), indices) in live.iter().zip(owned) {
        result.insert((*id).clone(), indices);
    }
    result
}

/// [`assign_indices`] with the item names.
pub fn assign(
    members: &BTreeMap<String, f64>,
    items: &[String],
) -> BTreeMap<String, BTreeSet<String>> {
    assign_indices(members, items)
        .into_iter()
        .map(|(id, indices)| {
            let names = indices.into_iter().map(|i| items[i].clone()).collect();
            (id, names)
        })
        .collect()
}

/// An assignment node's data: the names of `indices` into `items`, one per line, in the
/// order given (the children order: sorted).
pub fn assignment_data(items: &[String], indices: &[usize]) -> Vec<u8> {
    let mut data = Vec::new();
    for (n, index) in indices.iter().enumerate() {
        if n > 0 {
            data.push(b'\n');
        }
        data.extend_from_slice(items[*index].as_bytes());
    }
    data
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
        // Joins, leaves and item changes; a deleted members or items node. (A deleted item
        // also changes its parent's children: one run is enough.)
        EventKind::ChildrenChanged | EventKind::Deleted => {
            let is_dir = event.kind == EventKind::ChildrenChanged
                || [MEMBERS_NODE, ITEMS_NODE]
                    .iter()
                    .any(|dir| event.path.ends_with(&format!("/{dir}")));
            if let (Target::Input(group, false), true) = (classify(&root, &event.path), is_dir) {
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

/// Recomputes `group`'s assignments and writes the ones that changed, once per txn: a multi
/// that adds many items fires as many events, but all of them see the txn's final tree, so
/// the `assignments` node's data records the zxid of the last rebalance and later runs in the
/// same txn stop there. (It would miss a change that another recipe made under this root later
/// in the same txn; recipes are not expected to share a root.)
fn rebalance(ctx: &mut Ctx, group: &str) -> Result<(), Error> {
    let base = ctx.path(group);
    let dir = format!("{base}/{ASSIGNMENTS_NODE}");
    let stamp = ctx.zxid().to_string();
    let dir_node = ctx.get(&dir)?;
    if dir_node
        .as_ref()
        .is_some_and(|node| node.data == stamp.as_bytes())
    {
        return Ok(());
    }
    let members = read_members(ctx, &base)?;
    if members.is_empty() && dir_node.is_none() {
        return Ok(()); // nobody to assign to and nothing assigned: skip reading the items
    }
    let items = children_or_none(ctx, &format!("{base}/{ITEMS_NODE}"))?;
    let owned = assign_indices(&members, &items);
    let existing = children_or_none(ctx, &dir)?;
    for stale in existing.iter().filter(|id| !members.contains_key(*id)) {
        ctx.delete(&format!("{dir}/{stale}"), zkw_guest::ANY_VERSION)?;
    }
    match dir_node {
        Some(node) => {
            ctx.set(&dir, stamp.as_bytes(), node.stat.version)?;
        }
        None if owned.is_empty() => return Ok(()),
        None => {
            ctx.create(&dir, stamp.as_bytes(), CreateMode::Persistent)?;
        }
    }
    for (id, indices) in &owned {
        let path = format!("{dir}/{id}");
        let data = assignment_data(&items, indices);
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

/// The group's members and their weights.
fn read_members(ctx: &mut Ctx, base: &str) -> Result<BTreeMap<String, f64>, Error> {
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
    Ok(members)
}

zkw_guest::recipe! { on_event: on_event, validate: validate }

#[cfg(test)]
mod tests;
