//! The tree's mutators, used only by `txn::apply`. Each keeps every index (children sets,
//! ephemerals by session, reap candidates, ACL cache, counters) and the digest in step, and,
//! while a journal is open, records its inverse so a failed multi can be rolled back.

use std::sync::Arc;

use super::path::parent_of;
use super::{digest, node_hash, Meta, Node, NodeKind, SessionRecord, Tree, Undo};
use crate::proto::{Acl, SessionId, Stat, Zxid};

impl Tree {
    /// Records the zxid of the txn being applied. Zxids strictly increase.
    pub(crate) fn advance_zxid(&mut self, zxid: Zxid) {
        assert!(
            zxid > self.last_zxid,
            "zxid {zxid} not after {}",
            self.last_zxid
        );
        self.last_zxid = zxid;
    }

    /// Adds a leaf node. The parent must exist (checked by the caller).
    pub(crate) fn insert_node(
        &mut self,
        path: String,
        meta: Meta,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
    ) {
        let acl = self.intern_acl(acl);
        let node = Node::new(meta, data, acl);
        self.attach(&path, node);
        self.record(|| Undo::Inserted(path));
    }

    /// What create does to the tree: adds a leaf made by txn `meta.czxid` and counts the
    /// creation in its parent (cversion + 1, pzxid). The parent must exist and the path be
    /// free (checked by the caller). Returns the new node's Stat. One parent search serves
    /// both the child count and the meta change.
    pub(crate) fn create_node(
        &mut self,
        path: String,
        meta: Meta,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
    ) -> Stat {
        let acl = self.intern_acl(acl);
        let node = Node::new(meta, data, acl);
        let stat = node.stat();
        let parent = parent_of(&path).expect("create_node needs an absolute path");
        let parent_node = self
            .nodes
            .get_mut(parent)
            .expect("create_node under a missing parent");
        let before = parent_node.meta;
        parent_node.meta.cversion = before.cversion.wrapping_add(1);
        parent_node.meta.pzxid = meta.czxid;
        parent_node.children.increment();
        let after = parent_node.meta;
        self.digest = self
            .digest
            .wrapping_sub(digest::meta_hash(parent, &before))
            .wrapping_add(digest::meta_hash(parent, &after));
        self.store_leaf(&path, node);
        // Rolled back newest first: the node goes (uncounting it), then the parent's meta.
        self.record(|| Undo::Meta(parent.to_owned(), before));
        self.record(|| Undo::Inserted(path));
        stat
    }

    /// Removes a leaf node. It must exist and have no children (checked by the caller).
    pub(crate) fn remove_node(&mut self, path: &str) {
        let node = self.detach(path);
        if self.journal.is_some() {
            self.record(|| Undo::Removed(path.to_owned(), node));
        } else {
            self.release_acl(node.acl);
        }
    }

    /// Changes the stored meta of an existing node.
    pub(crate) fn update_meta(&mut self, path: &str, change: impl FnOnce(&mut Meta)) {
        let node = self
            .nodes
            .get_mut(path)
            .expect("update_meta on a missing node");
        let before = node.meta;
        change(&mut node.meta);
        let after = node.meta;
        self.digest = self
            .digest
            .wrapping_sub(digest::meta_hash(path, &before))
            .wrapping_add(digest::meta_hash(path, &after));
        self.record(|| Undo::Meta(path.to_owned(), before));
    }

    /// Replaces the data of an existing node (None: null data).
    pub(crate) fn replace_data(&mut self, path: &str, data: Option<Vec<u8>>) {
        self.swap_data(path, data.map(Vec::into_boxed_slice));
    }

    fn swap_data(&mut self, path: &str, data: Option<Box<[u8]>>) {
        let node = self
            .nodes
            .get_mut(path)
            .expect("replace_data on a missing node");
        let before_len = node.data_len() as u64;
        let before = std::mem::replace(&mut node.data, data);
        let after_hash = digest::data_hash(path, node.data.as_deref());
        self.data_bytes = self.data_bytes - before_len + node.data_len() as u64;
        self.digest = self
            .digest
            .wrapping_sub(digest::data_hash(path, before.as_deref()))
            .wrapping_add(after_hash);
        self.record(|| Undo::Data(path.to_owned(), before));
    }

    /// Replaces the ACL of an existing node.
    pub(crate) fn replace_acl(&mut self, path: &str, acl: Vec<Acl>) {
        let acl = self.intern_acl(acl);
        self.swap_acl(path, acl);
    }

    pub(crate) fn put_session(&mut self, session_id: SessionId, record: SessionRecord) {
        let hash = digest::session_hash(session_id, &record);
        let before = self.sessions.insert(session_id, record);
        if let Some(old) = &before {
            self.digest = self
                .digest
                .wrapping_sub(digest::session_hash(session_id, old));
        }
        self.digest = self.digest.wrapping_add(hash);
        self.record(|| Undo::SessionPut(session_id, before));
    }

    pub(crate) fn drop_session(&mut self, session_id: SessionId) {
        if let Some(record) = self.sessions.remove(&session_id) {
            self.digest = self
                .digest
                .wrapping_sub(digest::session_hash(session_id, &record));
            self.record(|| Undo::SessionDropped(session_id, record));
        }
    }

    /// Starts recording inverses (a multi, a recipe run). Journals nest: a recipe run inside a
    /// multi rolls back alone, and the multi can still roll back everything.
    pub(crate) fn begin_journal(&mut self) {
        let journal = self.journal.get_or_insert_with(Vec::new);
        self.journal_marks.push(journal.len());
    }

    /// Keeps every change since the matching `begin_journal` (the enclosing journal, if any,
    /// can still undo them).
    pub(crate) fn commit_journal(&mut self) {
        self.journal_marks.pop();
        if self.journal_marks.is_empty() {
            self.journal = None;
        }
    }

    /// Undoes every change since the matching `begin_journal`, newest first.
    pub(crate) fn rollback_journal(&mut self) {
        let mark = self.journal_marks.pop().unwrap_or(0);
        // Undoing must not journal itself: take the journal out while undoing.
        let mut journal = self.journal.take().unwrap_or_default();
        let undone = journal.split_off(mark.min(journal.len()));
        for undo in undone.into_iter().rev() {
            self.undo(undo);
        }
        if !self.journal_marks.is_empty() {
            self.journal = Some(journal);
        }
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Inserted(path) => {
                let node = self.detach(&path);
                self.release_acl(node.acl);
            }
            Undo::Removed(path, node) => self.attach(&path, node),
            Undo::Meta(path, meta) => self.update_meta(&path, |current| *current = meta),
            Undo::Data(path, data) => self.swap_data(&path, data),
            Undo::Acl(path, acl) => self.swap_acl(&path, acl),
            Undo::SessionPut(session_id, before) => match before {
                Some(record) => self.put_session(session_id, record),
                None => self.drop_session(session_id),
            },
            Undo::SessionDropped(session_id, record) => self.put_session(session_id, record),
        }
    }

    /// Journals an inverse; built only while a journal is open (no path copies otherwise).
    fn record(&mut self, undo: impl FnOnce() -> Undo) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push(undo());
        }
    }

    /// Adds a leaf under an existing parent (which counts it), keeping every index in step.
    fn attach(&mut self, path: &str, node: Node) {
        let parent = parent_of(path).expect("attach needs an absolute path");
        self.nodes
            .get_mut(parent)
            .expect("attach under a missing parent")
            .children
            .increment();
        self.store_leaf(path, node);
    }

    /// Stores a node whose parent already counts it; the path must be free.
    fn store_leaf(&mut self, path: &str, node: Node) {
        let hash = node_hash(path, &node);
        let (kind, data_len) = (node.kind(), node.data_len());
        let stored = self.nodes.insert(path, node);
        assert!(stored.is_ok(), "{path} already exists");
        self.count_attached(path, kind, data_len, hash);
    }

    /// Brings the digest, counters and side indexes in step with a node just stored.
    pub(super) fn count_attached(
        &mut self,
        path: &str,
        kind: NodeKind,
        data_len: usize,
        hash: u64,
    ) {
        self.digest = self.digest.wrapping_add(hash);
        self.data_bytes += (path.len() + data_len) as u64;
        match kind {
            NodeKind::Ephemeral(session_id) => {
                self.ephemerals
                    .entry(session_id)
                    .or_default()
                    .insert(path.to_owned());
                self.ephemeral_count += 1;
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.reap_candidates.insert(path.to_owned());
            }
            NodeKind::Persistent => {}
        }
    }

    fn detach(&mut self, path: &str) -> Node {
        let node = self.nodes.remove(path).expect("detach of a missing node");
        assert!(node.children.is_empty(), "detach of a node with children");
        let parent = parent_of(path).expect("detach needs an absolute path");
        if let Some(parent_node) = self.nodes.get_mut(parent) {
            parent_node.children.decrement();
        }
        self.digest = self.digest.wrapping_sub(node_hash(path, &node));
        self.data_bytes -= (path.len() + node.data_len()) as u64;
        match node.kind() {
            NodeKind::Ephemeral(session_id) => {
                if let Some(paths) = self.ephemerals.get_mut(&session_id) {
                    paths.remove(path);
                    if paths.is_empty() {
                        self.ephemerals.remove(&session_id);
                    }
                }
                self.ephemeral_count -= 1;
            }
            NodeKind::Container | NodeKind::Ttl { .. } => {
                self.reap_candidates.remove(path);
            }
            NodeKind::Persistent => {}
        }
        node
    }

    fn swap_acl(&mut self, path: &str, acl: Arc<[Acl]>) {
        let node = self
            .nodes
            .get_mut(path)
            .expect("replace_acl on a missing node");
        let before = std::mem::replace(&mut node.acl, acl);
        let after_hash = digest::acl_hash(path, &node.acl);
        self.digest = self
            .digest
            .wrapping_sub(digest::acl_hash(path, &before))
            .wrapping_add(after_hash);
        if self.journal.is_some() {
            self.record(|| Undo::Acl(path.to_owned(), before));
        } else {
            self.release_acl(before);
        }
    }

    pub(super) fn add_digest(&mut self, path: &str, node: &Node) {
        self.digest = self.digest.wrapping_add(node_hash(path, node));
    }

    /// The shared copy of an ACL list.
    pub(super) fn intern_acl(&mut self, acl: Vec<Acl>) -> Arc<[Acl]> {
        if let Some(shared) = self.acl_cache.get(&acl) {
            return Arc::clone(shared);
        }
        let shared: Arc<[Acl]> = Arc::from(acl.clone());
        self.acl_cache.insert(acl, Arc::clone(&shared));
        shared
    }

    /// Drops a node's reference; the cache forgets lists no node uses any more. Journal
    /// entries hold references too, so a list in a pending rollback is never forgotten.
    fn release_acl(&mut self, acl: Arc<[Acl]>) {
        // The cache's own reference plus the one passed in.
        if Arc::strong_count(&acl) == 2 {
            self.acl_cache.remove(&acl[..]);
        }
    }
}
