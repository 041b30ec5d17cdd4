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

/// Bytes before the path in a key.
pub(super) const KEY_PREFIX_BYTES: usize = DEPTH_DIGITS;

/// Turns `bytes`, `KEY_PREFIX_BYTES` of room then a path, into that path's index key in place
/// (a snapshot reads paths this way, so each is copied once). `None` if the path is not UTF-8.
pub(super) fn key_in_place(mut bytes: Vec<u8>) -> Option<Box<str>> {
    let path = std::str::from_utf8(bytes.get(KEY_PREFIX_BYTES..)?).ok()?;
    let prefix = depth_prefix(depth_of(path));
    bytes.get_mut(..KEY_PREFIX_BYTES)?.copy_from_slice(&prefix);
    // The prefix is ASCII, so the whole is still valid; checked again rather than assumed.
    String::from_utf8(bytes).ok().map(String::into_boxed_str)
}

/// The path inside an index key.
pub(super) fn path_of(key: &str) -> &str {
    key.get(DEPTH_DIGITS..).unwrap_or_default()
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

/// Builds a store from nodes given in index order (the order `iter` yields and a snapshot
/// holds) with no index search per node: keys are appended to a sorted `Vec` and the B-tree
/// is bulk-built from it at the end (also with full leaves, ~45% smaller than by inserts).
/// Parents are found through the last parent (most nodes share it) or a binary search.
#[derive(Debug, Default)]
pub(super) struct StoreBuilder {
    keys: Vec<(Box<str>, u32)>,
    slots: Vec<Option<Node>>,
    /// Position in `keys` of the parent found last.
    parent: Option<usize>,
}

/// Why a node cannot be added to a [`StoreBuilder`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(super) enum BuildError {
    #[error("{0} is out of order or repeated")]
    OutOfOrder(String),
    #[error("{0} has no parent node")]
    NoParent(String),
    #[error("too many nodes")]
    Full,
}

impl StoreBuilder {
    /// A builder with room for `nodes` nodes (a hint; it grows past it).
    pub fn with_capacity(nodes: usize) -> StoreBuilder {
        StoreBuilder {
            keys: Vec::with_capacity(nodes),
            slots: Vec::with_capacity(nodes),
            parent: None,
        }
    }

    /// Appends a node; its key must sort after every key so far and (unless it is the root)
    /// its parent must be in already. The parent's child count is bumped.
    #[cfg(test)]
    pub fn push(&mut self, path: &str, node: Node) -> Result<(), BuildError> {
        self.push_key(key_at(depth_of(path), path).into_boxed_str(), node)
    }

    /// `push` for a key made by `key_in_place`.
    pub fn push_key(&mut self, key: Box<str>, node: Node) -> Result<(), BuildError> {
        let path = path_of(&key);
        if self.keys.last().is_some_and(|(last, _)| **last >= *key) {
            return Err(BuildError::OutOfOrder(path.to_owned()));
        }
        if path != "/" {
            let parent = self.parent_position(path)?;
            let slot = self.keys.get(parent).map_or(u32::MAX, |(_, slot)| *slot);
            let parent_node = self.slots.get_mut(slot as usize).and_then(Option::as_mut);
            let parent_node = parent_node.ok_or_else(|| BuildError::NoParent(path.to_owned()))?;
            parent_node.children.increment();
        }
        let slot = u32::try_from(self.slots.len()).map_err(|_| BuildError::Full)?;
        self.slots.push(Some(node));
        self.keys.push((key, slot));
        Ok(())
    }

    fn parent_position(&mut self, path: &str) -> Result<usize, BuildError> {
        let no_parent = || BuildError::NoParent(path.to_owned());
        let parent = super::path::parent_of(path).ok_or_else(no_parent)?;
        let cached = self.parent.filter(|position| {
            self.keys
                .get(*position)
                .and_then(|(key, _)| key.get(DEPTH_DIGITS..))
                == Some(parent)
        });
        if let Some(position) = cached {
            return Ok(position);
        }
        let found = with_key(parent, |key| {
            self.keys.binary_search_by(|(probe, _)| (**probe).cmp(key))
        });
        let position = found.map_err(|_| no_parent())?;
        self.parent = Some(position);
        Ok(position)
    }

    pub fn finish(self) -> NodeStore {
        NodeStore {
            // Already sorted and distinct, so this is a linear bulk build.
            index: self.keys.into_iter().collect(),
            slots: self.slots,
            free: Vec::new(),
        }
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

    fn leaf() -> Node {
        Node::new(Default::default(), None, std::sync::Arc::from(Vec::new()))
    }

    #[test]
    fn builder_matches_inserts_and_refuses_bad_order() {
        let mut inserted = NodeStore::default();
        let paths = ["/", "/a", "/a-", "/b", "/a/x", "/a-/y", "/a/x/z"];
        for path in paths {
            inserted.insert(path, leaf()).unwrap();
        }
        let mut builder = StoreBuilder::with_capacity(1);
        for (path, _) in inserted.iter() {
            builder.push(path, leaf()).unwrap();
        }
        let built = builder.finish();
        let order = |store: &NodeStore| store.iter().map(|(p, _)| p.to_owned()).collect::<Vec<_>>();
        assert_eq!(order(&built), order(&inserted));
        for path in paths {
            let count = |store: &NodeStore| store.get(path).unwrap().children.len();
            assert_eq!(count(&built), inserted.children(path).count(), "{path}");
        }
        let mut builder = StoreBuilder::default();
        builder.push("/", leaf()).unwrap();
        builder.push("/b", leaf()).unwrap();
        let error = builder.push("/a", leaf());
        assert_eq!(error, Err(BuildError::OutOfOrder("/a".into())));
        assert!(builder.push("/b", leaf()).is_err());
        let error = builder.push("/c/d", leaf());
        assert_eq!(error, Err(BuildError::NoParent("/c/d".into())));
        let mut rootless = StoreBuilder::default();
        assert!(rootless.push("/a", leaf()).is_err());
    }
}
