//! Node storage, laid out for memory (issue #3: 1M znodes of 100 bytes in well under
//! ZooKeeper's ~775 MB). Nodes live in a slab (`Vec<Option<Node>>`, reused through a free
//! list) and a sorted index maps each node's key to its slot. The key is the path prefixed
//! with its depth, so the index orders nodes by (depth, path): the children of a node are then
//! one contiguous range of the next depth, which makes a per-node children set unnecessary
//! (each name was stored twice before), and parents always come before their children.
//!
//! The index holds only a small key and a u32 per node, so the B-tree's half-empty leaves
//! (ascending inserts leave them ~55% full) cost little; the large node records sit densely in
//! the slab.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ops::Bound;

use super::Node;

/// Base-128 digits of the depth prefix; each digit is one ASCII byte, so keys stay `str`.
const DEPTH_DIGITS: usize = 4;
/// Deepest path the prefix can order; a frame cannot carry a path a quarter as deep.
const DEPTH_MAX: usize = (1 << (7 * DEPTH_DIGITS)) - 1;
/// Keys up to this many bytes are built on the stack for lookups.
const KEY_STACK_BYTES: usize = 128;

#[derive(Debug, Default)]
pub(super) struct NodeStore {
    index: BTreeMap<Box<str>, u32>,
    slots: Vec<Option<Node>>,
    free: Vec<u32>,
}

/// Depth of a path: "/" is 0, "/a" is 1, "/a/b" is 2.
fn depth_of(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|byte| *byte == b'/').count()
    }
}

fn depth_prefix(depth: usize) -> [u8; DEPTH_DIGITS] {
    let depth = depth.min(DEPTH_MAX);
    let mut digits = [0u8; DEPTH_DIGITS];
    for (place, digit) in digits.iter_mut().rev().enumerate() {
        *digit = ((depth >> (7 * place)) & 0x7f) as u8;
    }
    digits
}

/// The index key of `path` at `depth` (depth passed in so child ranges can be built).
fn key_at(depth: usize, path: &str) -> String {
    let mut key = String::with_capacity(DEPTH_DIGITS + path.len());
    for digit in depth_prefix(depth) {
        key.push(char::from(digit));
    }
    key.push_str(path);
    key
}

/// Runs `with` on the key of `path`, built on the stack when it is short.
fn with_key<T>(path: &str, with: impl FnOnce(&str) -> T) -> T {
    let length = DEPTH_DIGITS + path.len();
    if length <= KEY_STACK_BYTES {
        let mut buf = [0u8; KEY_STACK_BYTES];
        buf[..DEPTH_DIGITS].copy_from_slice(&depth_prefix(depth_of(path)));
        buf[DEPTH_DIGITS..length].copy_from_slice(path.as_bytes());
        // Always valid (ASCII digits, then a str); the fallback only keeps this panic-free.
        if let Ok(key) = std::str::from_utf8(&buf[..length]) {
            return with(key);
        }
    }
    with(&key_at(depth_of(path), path))
}

/// Bounds of the keys of the children of `path`: paths "<path>/..." one level deeper.
fn child_range(path: &str, depth: usize) -> (String, String, usize) {
    let prefix = if path == "/" {
        String::from("/")
    } else {
        format!("{path}/")
    };
    let low = key_at(depth, &prefix);
    // '0' is the byte after '/', so this excludes exactly the keys starting with the prefix.
    let high = format!("{}0", &low[..low.len() - 1]);
    (low, high, prefix.len())
}

impl NodeStore {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        let slot = with_key(path, |key| self.index.get(key).copied())?;
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        let slot = with_key(path, |key| self.index.get(key).copied())?;
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    pub fn contains(&self, path: &str) -> bool {
        with_key(path, |key| self.index.contains_key(key))
    }

    /// Adds a node; gives it back if the path is taken (or the slab is full).
    pub fn insert(&mut self, path: &str, node: Node) -> Result<(), Node> {
        let key = key_at(depth_of(path), path).into_boxed_str();
        let Entry::Vacant(entry) = self.index.entry(key) else {
            return Err(node);
        };
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => match u32::try_from(self.slots.len()) {
                Ok(slot) => {
                    self.slots.push(None);
                    slot
                }
                Err(_) => return Err(node),
            },
        };
        match self.slots.get_mut(slot as usize) {
            Some(place) => *place = Some(node),
            None => return Err(node),
        }
        entry.insert(slot);
        Ok(())
    }

    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let slot = with_key(path, |key| self.index.remove(key))?;
        let node = self.slots.get_mut(slot as usize).and_then(Option::take);
        self.free.push(slot);
        node
    }

    /// Every node with its path, ordered by (depth, path): parents before children.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.index.iter().filter_map(|(key, slot)| {
            let node = self.slots.get(*slot as usize).and_then(Option::as_ref)?;
            Some((key.get(DEPTH_DIGITS..)?, node))
        })
    }

    /// Names of the children of `path`, sorted.
    pub fn children<'a>(&'a self, path: &str) -> impl Iterator<Item = &'a str> + 'a {
        let (low, high, prefix_len) = child_range(path, depth_of(path) + 1);
        self.index
            .range::<str, _>((
                Bound::Included(low.as_str()),
                Bound::Excluded(high.as_str()),
            ))
            .filter_map(move |(key, _)| key.get(DEPTH_DIGITS + prefix_len..))
    }

    /// Number of nodes below `path` (the node itself not counted).
    pub fn descendant_count(&self, path: &str) -> usize {
        let mut total = 0;
        // Every node's parent exists, so the first empty level ends the descent.
        for depth in depth_of(path) + 1..=DEPTH_MAX {
            let (low, high, _) = child_range(path, depth);
            let level = self
                .index
                .range::<str, _>((
                    Bound::Included(low.as_str()),
                    Bound::Excluded(high.as_str()),
                ))
                .count();
            if level == 0 {
                break;
            }
            total += level;
        }
        total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_depth_then_path() {
        assert!(key_at(1, "/z") < key_at(2, "/a/b"));
        assert!(key_at(2, "/a/b") < key_at(2, "/a0/b"));
        assert!(key_at(127, "/") < key_at(128, "/"));
        assert_eq!((depth_of("/"), depth_of("/a"), depth_of("/a/b")), (0, 1, 2));
        let (low, high, _) = child_range("/a", 2);
        assert!(low.as_str() <= key_at(2, "/a/x").as_str());
        assert!(key_at(2, "/a/x").as_str() < high.as_str());
        assert!(key_at(2, "/a0/x").as_str() >= high.as_str());
        assert!(key_at(2, "/a-/x").as_str() < low.as_str());
    }
}
