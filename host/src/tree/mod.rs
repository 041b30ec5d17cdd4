//! `tree`: the replicated znode tree and what lives beside it: sessions (with the index of their
//! ephemeral nodes), ACL rules (`acl`), path rules (`path`), the incremental digest (`digest`)
//! and, not replicated, the watch registry (`watch`). Pure: no I/O, no clock, no randomness,
//! and only sorted maps where order can be observed. It must not know about sockets or
//! consensus. Entry points: the read methods of [`Tree`] (used by the server for reads) and the
//! crate-internal mutators used by `txn::apply`, the only writer.
//!
//! Layout (`store`): nodes in a slab, found through one sorted index keyed by (depth, path).
//! A lookup is one index search; the children of a node are one contiguous index range, so
//! listings come out sorted (replies are deterministic) and no node stores its children's
//! names, only their count. Sequential names need no scan (the parent's cversion numbers
//! them). Data is a `Box<[u8]>` and ACL lists are interned (`Arc<[Acl]>`), since nearly every
//! node shares one of a few lists. Measured: ~270 B per znode of 100 B at 1M znodes (the
//! earlier `BTreeMap<String, Node>` with a children set per node took ~460 B).
//!
//! Stat as ZooKeeper 3.8 shows it (checked against a live 3.8.0): the node keeps a count of
//! child creations (`cversion`, which also numbers sequential children) and the client sees
//! `2 * creations - numChildren`; container and TTL nodes show ephemeralOwner 0 although they
//! keep their marker owner inside. The initial tree is "/", "/zookeeper",
//! "/zookeeper/quota" and "/zookeeper/config" (READ for anyone, aversion -1), all zxid 0.
//!
//! Multi support: mutators can record their inverse in a journal; `txn` rolls a failed multi
//! back through it, so a multi is all-or-nothing while each sub-op sees the previous ones.

pub mod acl;
mod digest;
mod mutate;
pub mod path;
mod snapshot;
mod store;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use crate::proto::{perms, Acl, ErrorCode, EventType, Id, SessionId, Stat, Zxid};

pub use path::validate_path;
pub use snapshot::{SnapshotError, SnapshotSummary, SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC};

use store::NodeStore;
use watch::WatchTrigger;

/// ephemeralOwner marker of a container node (ZooKeeper's `CONTAINER_EPHEMERAL_OWNER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// Top byte of an ephemeralOwner that marks an extended type (TTL).
const EXTENDED_OWNER_TAG: u64 = 0xff;
/// Largest TTL a node can carry: the low 40 bits of its ephemeralOwner.
pub const TTL_MS_MAX: i64 = (1 << 40) - 1;

pub const ROOT_PATH: &str = "/";
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

/// Every failure a tree operation can have; `code` maps each to ZooKeeper's error code.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TreeError {
    #[error("no node {0}")]
    NoNode(String),
    #[error("node exists {0}")]
    NodeExists(String),
    #[error("not authorized")]
    NoAuth,
    #[error("bad version for {0}")]
    BadVersion(String),
    #[error("node {0} has children")]
    NotEmpty(String),
    #[error("ephemeral nodes may not have children: {0}")]
    NoChildrenForEphemerals(String),
    #[error("bad arguments: {0}")]
    BadArguments(String),
    #[error("invalid ACL")]
    InvalidAcl,
    #[error("session expired")]
    SessionExpired,
    #[error("unimplemented (TTL nodes need extended types enabled)")]
    Unimplemented,
    /// A validator recipe refused the write, with this code.
    #[error("refused by a recipe ({0:?})")]
    Recipe(ErrorCode),
}

impl TreeError {
    /// The KeeperException code a client sees for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            TreeError::NoNode(_) => ErrorCode::NoNode,
            TreeError::NodeExists(_) => ErrorCode::NodeExists,
            TreeError::NoAuth => ErrorCode::NoAuth,
            TreeError::BadVersion(_) => ErrorCode::BadVersion,
            TreeError::NotEmpty(_) => ErrorCode::NotEmpty,
            TreeError::NoChildrenForEphemerals(_) => ErrorCode::NoChildrenForEphemerals,
            TreeError::BadArguments(_) => ErrorCode::BadArguments,
            TreeError::InvalidAcl => ErrorCode::InvalidAcl,
            TreeError::SessionExpired => ErrorCode::SessionExpired,
            TreeError::Unimplemented => ErrorCode::Unimplemented,
            TreeError::Recipe(code) => *code,
        }
    }
}

/// What the tree remembers of a session (replicated state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub timeout_ms: i32,
    pub password: [u8; 16],
}

/// The kind of a node, decoded from its stored ephemeralOwner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Persistent,
    Ephemeral(SessionId),
    Container,
    Ttl { ttl_ms: i64 },
}

impl NodeKind {
    /// Decodes a stored owner the way ZooKeeper's `EphemeralType.get` does with extended
    /// types on (owner ids with top byte 0xff are TTL markers, never sessions).
    pub fn from_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if (owner as u64) >> 56 == EXTENDED_OWNER_TAG {
            NodeKind::Ttl {
                ttl_ms: owner & TTL_MS_MAX,
            }
        } else {
            NodeKind::Ephemeral(owner)
        }
    }

    /// The stored owner: `0xff << 56 | ttl_ms` for TTL nodes.
    pub fn owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(session_id) => session_id,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl { ttl_ms } => ((EXTENDED_OWNER_TAG << 56) as i64) | (ttl_ms & TTL_MS_MAX),
        }
    }
}

/// The fixed-size part of a node's Stat, as stored (cversion = child creations, owner raw).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Meta {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub owner: i64,
}

impl Meta {
    /// Meta of a node created by txn `zxid` at `time_ms`.
    pub fn created(zxid: Zxid, time_ms: i64, owner: i64) -> Meta {
        Meta {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            owner,
            ..Meta::default()
        }
    }
}

/// How many children a node has (their names live in the store's index, not in the node).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChildCount(u32);

impl ChildCount {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> usize {
        self.0 as usize
    }
    fn increment(&mut self) {
        self.0 = self.0.saturating_add(1);
    }
    fn decrement(&mut self) {
        self.0 = self.0.saturating_sub(1);
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub meta: Meta,
    /// None: null data (a client created or set it as null, jute length -1). ZooKeeper keeps
    /// it apart from empty data: getData answers -1 for it. Its Stat counts it as 0 bytes.
    pub data: Option<Box<[u8]>>,
    pub acl: Arc<[Acl]>,
    pub children: ChildCount,
}

impl Node {
    /// A node with no children yet.
    pub fn new(meta: Meta, data: Option<Vec<u8>>, acl: Arc<[Acl]>) -> Node {
        Node {
            meta,
            data: data.map(Vec::into_boxed_slice),
            acl,
            children: ChildCount::default(),
        }
    }

    /// The data as bytes, null read as empty: for the server's own readers (recipe manifests,
    /// the recipe ABI), which have no null.
    pub fn data_bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or_default()
    }

    /// Bytes of data (0 for null, as ZooKeeper's Stat.dataLength).
    pub fn data_len(&self) -> usize {
        self.data.as_deref().map_or(0, <[u8]>::len)
    }

    pub fn kind(&self) -> NodeKind {
        NodeKind::from_owner(self.meta.owner)
    }

    /// The Stat a client sees.
    pub fn stat(&self) -> Stat {
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        let ephemeral_owner = match self.kind() {
            NodeKind::Ephemeral(session_id) => session_id,
            _ => 0,
        };
        Stat {
            czxid: self.meta.czxid,
            mzxid: self.meta.mzxid,
            ctime: self.meta.ctime,
            mtime: self.meta.mtime,
            version: self.meta.version,
            cversion: self
                .meta
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(num_children),
            aversion: self.meta.aversion,
            ephemeral_owner,
            data_length: i32::try_from(self.data_len()).unwrap_or(i32::MAX),
            num_children,
            pzxid: self.meta.pzxid,
        }
    }
}

/// One inverse mutation, recorded while a multi runs.
#[derive(Debug)]
enum Undo {
    Inserted(String),
    Removed(String, Node),
    Meta(String, Meta),
    Data(String, Option<Box<[u8]>>),
    Acl(String, Arc<[Acl]>),
    SessionPut(SessionId, Option<SessionRecord>),
    SessionDropped(SessionId, SessionRecord),
}

#[derive(Debug)]
pub struct Tree {
    nodes: NodeStore,
    sessions: BTreeMap<SessionId, SessionRecord>,
    /// Ephemeral paths by owner session.
    ephemerals: BTreeMap<SessionId, BTreeSet<String>>,
    /// Paths of container and TTL nodes, so `reapable` scans only them.
    reap_candidates: BTreeSet<String>,
    acl_cache: BTreeMap<Vec<Acl>, Arc<[Acl]>>,
    last_zxid: Zxid,
    digest: u64,
    data_bytes: u64,
    ephemeral_count: usize,
    extended_types_enabled: bool,
    journal: Option<Vec<Undo>>,
    /// Where each open (nested) journal starts in `journal`.
    journal_marks: Vec<usize>,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree::new()
    }
}

impl Tree {
    /// The tree of a fresh ZooKeeper 3.8 standalone server.
    pub fn new() -> Tree {
        let mut tree = Tree::empty();
        let root = Node::new(
            Meta::default(),
            Some(Vec::new()),
            tree.intern_acl(Acl::open_unsafe()),
        );
        tree.add_digest(ROOT_PATH, &root);
        let _ = tree.nodes.insert(ROOT_PATH, root);
        tree.insert_node(
            ZOOKEEPER_PATH.to_owned(),
            Meta::default(),
            Some(Vec::new()),
            Acl::open_unsafe(),
        );
        tree.insert_node(
            QUOTA_PATH.to_owned(),
            Meta::default(),
            Some(Vec::new()),
            Acl::open_unsafe(),
        );
        let config = Meta {
            aversion: -1,
            ..Meta::default()
        };
        tree.insert_node(
            CONFIG_PATH.to_owned(),
            config,
            Some(Vec::new()),
            Acl::read_unsafe(),
        );
        tree
    }

    /// A tree with nothing in it, not even a root: costs no allocation. It holds a place while
    /// the real tree is lent to a recipe run.
    pub(crate) fn detached() -> Tree {
        Tree::empty()
    }

    /// A tree without even a root (snapshot loading fills it).
    fn empty() -> Tree {
        Tree {
            nodes: NodeStore::default(),
            sessions: BTreeMap::new(),
            ephemerals: BTreeMap::new(),
            reap_candidates: BTreeSet::new(),
            acl_cache: BTreeMap::new(),
            last_zxid: 0,
            digest: 0,
            data_bytes: 0,
            ephemeral_count: 0,
            extended_types_enabled: false,
            journal: None,
            journal_marks: Vec::new(),
        }
    }

    /// TTL nodes need ZooKeeper's `extendedTypesEnabled` (off by default: createTTL then
    /// answers Unimplemented). Must be set alike on every replica.
    pub fn set_extended_types_enabled(&mut self, enabled: bool) {
        self.extended_types_enabled = enabled;
    }

    pub fn extended_types_enabled(&self) -> bool {
        self.extended_types_enabled
    }

    pub fn last_zxid(&self) -> Zxid {
        self.last_zxid
    }

    /// The data (None when null) and Stat of a node.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Option<Vec<u8>>, Stat), TreeError> {
        let (data, stat) = self.data_ref(path, auth)?;
        Ok((data.map(<[u8]>::to_vec), stat))
    }

    /// As `get_data`, borrowed: a reader can size the reply before copying the data.
    pub fn data_ref(&self, path: &str, auth: &[Id]) -> Result<(Option<&[u8]>, Stat), TreeError> {
        let node = self.readable(path, auth, perms::READ)?;
        Ok((node.data.as_deref(), node.stat()))
    }

    /// ZooKeeper 3.8 answers exists without an ACL check (3.9 added a READ check).
    pub fn exists(&self, path: &str, auth: &[Id]) -> Result<Stat, TreeError> {
        let _ = auth;
        self.stat(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))
    }

    /// Children names, sorted (ZooKeeper's order is unspecified).
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<String>, Stat), TreeError> {
        let (children, stat) = self.list_children(path, auth)?;
        Ok((children.map(str::to_owned).collect(), stat))
    }

    /// As `get_children`, lazily: a reader can stop once the reply would be too large.
    pub fn list_children<'a>(
        &'a self,
        path: &'a str,
        auth: &[Id],
    ) -> Result<(impl Iterator<Item = &'a str> + 'a, Stat), TreeError> {
        let node = self.readable(path, auth, perms::READ)?;
        Ok((self.nodes.children(path), node.stat()))
    }

    /// READ or ADMIN is enough; without ADMIN digest ids come back masked as `user:x`.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), TreeError> {
        let node = self
            .node(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
        let acl = if acl::get_acl_view(&node.acl, auth)? {
            node.acl.to_vec()
        } else {
            acl::mask_digests(&node.acl)
        };
        Ok((acl, node.stat()))
    }

    /// All descendants of `path` (not the node itself), as getAllChildrenNumber.
    pub fn all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, TreeError> {
        self.readable(path, auth, perms::READ)?;
        let count = if path == ROOT_PATH {
            self.nodes.len() - 1
        } else {
            self.nodes.descendant_count(path)
        };
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.node(path).map(Node::stat)
    }

    /// The node's ACL without any check.
    pub fn acl(&self, path: &str) -> Option<Vec<Acl>> {
        self.node(path).map(|node| node.acl.to_vec())
    }

    /// Whether `auth` may hear of the node at `path`: READ on it, or no node there (what
    /// addWatch and setWatches check; a missing node has no ACL to keep anything from).
    pub fn may_read(&self, path: &str, auth: &[Id]) -> bool {
        self.node(path)
            .is_none_or(|node| acl::check(&node.acl, auth, perms::READ).is_ok())
    }

    /// The watch trigger for `event` on the node at `path`, carrying that node's ACL: the
    /// server filters the notifications with it (a watcher needs READ on the node). Built
    /// while the node exists: after a creation, before a removal (a missing node, which the
    /// ops never name, would give an empty ACL: open, as ZooKeeper reads one).
    pub(crate) fn watch_trigger(&self, path: String, event: EventType) -> WatchTrigger {
        let acl = self
            .node(&path)
            .map_or_else(|| Arc::from([]), |node| Arc::clone(&node.acl));
        WatchTrigger { path, event, acl }
    }

    /// The kind of the node at `path`.
    pub fn kind(&self, path: &str) -> Option<NodeKind> {
        self.node(path).map(Node::kind)
    }

    /// Sorted ephemeral paths of `session_id` that start with `prefix` ("/" = all), as
    /// getEphemerals (a plain string prefix, so "/a" also matches "/ab").
    pub fn ephemerals(&self, session_id: SessionId, prefix: &str) -> Vec<String> {
        self.ephemeral_paths(session_id, prefix)
            .map(str::to_owned)
            .collect()
    }

    /// As `ephemerals`, lazily: only the paths from `prefix` on are visited (sorted order puts
    /// every path starting with it in one run).
    pub fn ephemeral_paths<'a>(
        &'a self,
        session_id: SessionId,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.ephemerals
            .get(&session_id)
            .into_iter()
            .flat_map(move |paths| {
                paths.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            })
            .map(String::as_str)
            .take_while(move |path| path.starts_with(prefix))
    }

    /// Every session that owns ephemerals, with its sorted paths (the `dump` 4lw).
    pub fn ephemerals_by_session(&self) -> Vec<(SessionId, Vec<String>)> {
        self.ephemerals
            .iter()
            .map(|(id, paths)| (*id, paths.iter().cloned().collect()))
            .collect()
    }

    pub fn session(&self, session_id: SessionId) -> Option<&SessionRecord> {
        self.sessions.get(&session_id)
    }

    pub fn sessions(&self) -> Vec<(SessionId, SessionRecord)> {
        self.sessions
            .iter()
            .map(|(id, record)| (*id, record.clone()))
            .collect()
    }

    /// Sorted paths the reaper should delete at `now_ms`: containers that once had a child
    /// and now have none, and childless TTL nodes unmodified for longer than their TTL.
    /// Containers that never had a child are left alone (ZooKeeper 3.8 default).
    pub fn reapable(&self, now_ms: i64) -> Vec<String> {
        self.reap_candidates
            .iter()
            .filter(|path| {
                self.node(path)
                    .is_some_and(|node| is_reapable(node, now_ms))
            })
            .cloned()
            .collect()
    }

    /// Whether the node at `path` qualifies for reaping at `now_ms` (see `reapable`).
    pub fn reapable_path(&self, path: &str, now_ms: i64) -> bool {
        self.node(path)
            .is_some_and(|node| is_reapable(node, now_ms))
    }

    /// Number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sum of paths and data lengths (ZooKeeper's approximate data size).
    pub fn data_size_bytes(&self) -> u64 {
        self.data_bytes
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemeral_count
    }

    /// Digest of nodes (path, data, stat, ACL) and sessions; equal on replicas with equal
    /// content, O(1) to read.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Recomputes the digest from scratch (tests and snapshot checks pair it with `digest`).
    pub fn digest_full(&self) -> u64 {
        let nodes = self.nodes.iter().fold(0u64, |sum, (path, node)| {
            sum.wrapping_add(node_hash(path, node))
        });
        self.sessions.iter().fold(nodes, |sum, (id, record)| {
            sum.wrapping_add(digest::session_hash(*id, record))
        })
    }

    fn readable(&self, path: &str, auth: &[Id], perm: i32) -> Result<&Node, TreeError> {
        let node = self
            .node(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
        acl::check(&node.acl, auth, perm)?;
        Ok(node)
    }

    pub(crate) fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Every node with its path, parents before children (snapshot order).
    pub(super) fn nodes_in_order(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.nodes.iter()
    }
}

fn is_reapable(node: &Node, now_ms: i64) -> bool {
    if !node.children.is_empty() {
        return false;
    }
    match node.kind() {
        NodeKind::Container => node.meta.cversion > 0,
        NodeKind::Ttl { ttl_ms } => now_ms.saturating_sub(node.meta.mtime) > ttl_ms,
        _ => false,
    }
}

fn node_hash(path: &str, node: &Node) -> u64 {
    digest::node_hash(path, &node.meta, node.data.as_deref(), &node.acl)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn initial_tree_matches_zookeeper_3_8() {
        let tree = Tree::new();
        let root = tree.stat("/").unwrap();
        assert_eq!(
            (root.cversion, root.num_children, root.czxid, root.pzxid),
            (-1, 1, 0, 0)
        );
        let zookeeper = tree.stat("/zookeeper").unwrap();
        assert_eq!((zookeeper.cversion, zookeeper.num_children), (-2, 2));
        let quota = tree.stat("/zookeeper/quota").unwrap();
        assert_eq!(
            (quota.cversion, quota.aversion, quota.num_children),
            (0, 0, 0)
        );
        let config = tree.stat("/zookeeper/config").unwrap();
        assert_eq!(
            (config.aversion, config.data_length, config.version),
            (-1, 0, 0)
        );
        assert_eq!(tree.acl("/zookeeper/config"), Some(Acl::read_unsafe()));
        assert_eq!(tree.acl("/"), Some(Acl::open_unsafe()));
        assert_eq!(
            tree.get_children("/zookeeper", &[]).unwrap().0,
            vec!["config", "quota"]
        );
        assert_eq!(
            (tree.node_count(), tree.last_zxid(), tree.ephemeral_count()),
            (4, 0, 0)
        );
        assert_eq!(tree.all_children_number("/", &[]), Ok(3));
        assert_eq!(tree.all_children_number("/zookeeper", &[]), Ok(2));
        assert_eq!(tree.digest(), tree.digest_full());
        assert_eq!(Tree::new().digest(), tree.digest());
    }

    #[test]
    fn error_codes() {
        let cases = [
            (TreeError::NoNode("/a".into()), ErrorCode::NoNode),
            (TreeError::NodeExists("/a".into()), ErrorCode::NodeExists),
            (TreeError::NoAuth, ErrorCode::NoAuth),
            (TreeError::BadVersion("/a".into()), ErrorCode::BadVersion),
            (TreeError::NotEmpty("/a".into()), ErrorCode::NotEmpty),
            (
                TreeError::NoChildrenForEphemerals("/a".into()),
                ErrorCode::NoChildrenForEphemerals,
            ),
            (
                TreeError::BadArguments("/a".into()),
                ErrorCode::BadArguments,
            ),
            (TreeError::InvalidAcl, ErrorCode::InvalidAcl),
            (TreeError::SessionExpired, ErrorCode::SessionExpired),
            (TreeError::Unimplemented, ErrorCode::Unimplemented),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
        assert_eq!(TreeError::NoNode("/a".into()).code().code(), -101);
    }

    #[test]
    fn reads_check_acls_like_3_8() {
        let mut tree = Tree::new();
        let bob = Id::new("digest", &acl::digest_id("bob:pw"));
        let read_only = vec![Acl {
            perms: perms::READ,
            id: bob.clone(),
        }];
        tree.advance_zxid(1);
        tree.insert_node(
            "/r".into(),
            Meta::created(1, 0, 0),
            Some(b"d".to_vec()),
            read_only,
        );
        let write_only = vec![Acl {
            perms: perms::WRITE,
            id: Id::anyone(),
        }];
        tree.insert_node("/w".into(), Meta::created(1, 0, 0), None, write_only);
        assert_eq!(tree.get_data("/r", &[]), Err(TreeError::NoAuth));
        assert_eq!(
            tree.get_data("/r", std::slice::from_ref(&bob)).unwrap().0,
            Some(b"d".to_vec())
        );
        assert_eq!(tree.get_children("/w", &[]), Err(TreeError::NoAuth));
        assert!(
            tree.exists("/w", &[]).is_ok(),
            "3.8 exists has no ACL check"
        );
        assert_eq!(tree.get_acl("/w", &[]), Err(TreeError::NoAuth));
        let masked = tree.get_acl("/r", std::slice::from_ref(&bob)).unwrap().0;
        assert_eq!(masked[0].id, Id::new("digest", "bob:x"));
        assert_eq!(
            tree.get_data("/none", &[]),
            Err(TreeError::NoNode("/none".into()))
        );
        assert_eq!(
            tree.all_children_number("/r", std::slice::from_ref(&bob)),
            Ok(0)
        );
    }

    #[test]
    fn ephemeral_paths_are_one_run_of_a_string_prefix() {
        let mut tree = Tree::new();
        tree.advance_zxid(1);
        for path in ["/a", "/ab", "/b"] {
            let meta = Meta::created(1, 0, 7);
            tree.insert_node(path.into(), meta, None, Acl::open_unsafe());
        }
        assert_eq!(tree.ephemerals(7, "/a"), ["/a", "/ab"]);
        assert_eq!(tree.ephemerals(7, "/"), ["/a", "/ab", "/b"]);
        assert!(tree.ephemerals(7, "/c").is_empty());
        assert!(tree.ephemerals(8, "/").is_empty());
        let (children, stat) = tree.list_children("/", &[]).unwrap();
        assert_eq!(children.collect::<Vec<_>>(), ["a", "ab", "b", "zookeeper"]);
        assert_eq!(stat, tree.stat("/").unwrap());
        let (data, _) = tree.data_ref("/a", &[]).unwrap();
        assert_eq!(data, None);
    }

    #[test]
    fn acl_cache_shares_and_forgets() {
        let mut tree = Tree::new();
        tree.advance_zxid(1);
        let acl = vec![Acl {
            perms: 3,
            id: Id::new("digest", "u:h"),
        }];
        tree.insert_node("/a".into(), Meta::created(1, 0, 0), None, acl.clone());
        tree.insert_node("/b".into(), Meta::created(1, 0, 0), None, acl.clone());
        assert_eq!(tree.acl_cache.len(), 3);
        tree.remove_node("/a");
        assert_eq!(tree.acl_cache.len(), 3);
        tree.replace_acl("/b", Acl::open_unsafe());
        assert_eq!(tree.acl_cache.len(), 2);
        assert_eq!(tree.digest(), tree.digest_full());
    }

    #[test]
    fn journal_rollback_restores_everything() {
        let mut tree = Tree::new();
        tree.advance_zxid(1);
        tree.insert_node(
            "/a".into(),
            Meta::created(1, 0, 0),
            Some(b"x".to_vec()),
            Acl::open_unsafe(),
        );
        let digest = tree.digest();
        let bytes = tree.data_size_bytes();
        tree.begin_journal();
        tree.insert_node(
            "/a/e".into(),
            Meta::created(2, 0, 9),
            None,
            Acl::read_unsafe(),
        );
        tree.replace_data("/a", Some(b"yyy".to_vec()));
        tree.replace_data("/a/e", Some(Vec::new()));
        tree.update_meta("/a", |meta| meta.version = 4);
        tree.put_session(
            9,
            SessionRecord {
                timeout_ms: 1,
                password: [0; 16],
            },
        );
        tree.remove_node("/a/e");
        tree.replace_acl("/a", vec![]);
        tree.rollback_journal();
        assert_eq!((tree.digest(), tree.data_size_bytes()), (digest, bytes));
        assert_eq!(tree.get_data("/a", &[]).unwrap().0, Some(b"x".to_vec()));
        assert_eq!((tree.ephemeral_count(), tree.sessions().len()), (0, 0));
        assert_eq!(tree.digest(), tree.digest_full());
    }

    #[test]
    fn nested_journals_roll_back_alone_or_together() {
        let mut tree = Tree::new();
        tree.advance_zxid(1);
        let node = |tree: &mut Tree, path: &str| {
            tree.insert_node(
                path.into(),
                Meta::created(1, 0, 0),
                None,
                Acl::open_unsafe(),
            );
        };
        let empty = tree.digest();
        tree.begin_journal();
        node(&mut tree, "/outer");
        let with_outer = tree.digest();
        tree.begin_journal();
        node(&mut tree, "/inner");
        tree.rollback_journal();
        assert_eq!(tree.digest(), with_outer);
        tree.begin_journal();
        node(&mut tree, "/kept");
        tree.commit_journal();
        assert!(tree.stat("/kept").is_some());
        // The outer journal still undoes what the committed inner one did.
        tree.rollback_journal();
        assert_eq!(tree.digest(), empty);
        assert!(tree.stat("/kept").is_none() && tree.stat("/outer").is_none());
        assert_eq!(tree.digest(), tree.digest_full());
    }
}
