//! Tree snapshots: [`Tree::write_snapshot`] streams the replicated state (nodes, ACL table,
//! sessions, flags) to any `Write`, and [`Tree::read_snapshot`] rebuilds a tree from any
//! `Read`, refusing anything it cannot prove intact. Watches are not replicated and are not
//! in a snapshot. Both directions stream through one fixed-size buffer, so a 1M-znode
//! snapshot never sits in memory as one `Vec`.
//!
//! Layout (version 3; big-endian fixed-width integers; "bytes" = u32 length + bytes): header:
//! magic `ZKWSNAP\0`, version u32, last_zxid i64, node count u64, digest u64,
//! extended-types flag u8. ACL table: u32 list count; per list a u32 entry count and per
//! entry perms i32, scheme bytes, id bytes. Nodes in the store's index order (by depth, then
//! path, so parents come before children; a reader refuses any other order): path bytes,
//! czxid, mzxid, pzxid, ctime, mtime (i64), version, cversion (child creations), aversion
//! (i32), the raw ephemeralOwner i64 (session id, container or TTL marker), ACL ref u32 (index
//! in the table), data bytes, where the length `u32::MAX` marks null data (no bytes follow).
//! Sessions: u64 count; per session id i64, timeout i32, password 16 bytes, ascending ids.
//! Trailer: CRC-32 (IEEE) of every byte before it.
//!
//! Version 2 is the same layout without null data (its reader refuses the marker): a tree
//! without null data is still written as version 2, so a server of the previous release can
//! load it; both are read. Version 1 (an FNV-1a digest) is refused.
//!
//! Loading checks twice, as house rule 7 asks at every persistence boundary: the CRC catches
//! damaged bytes, and the digest recomputed from the loaded content must equal the header's
//! (it catches a writer that lost or altered state). Indexes that follow from the content
//! (ephemerals by session, reap candidates, child counts, data size) are rebuilt, not stored.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::store::{key_in_place, path_of, StoreBuilder, KEY_PREFIX_BYTES};
use super::{node_hash, validate_path, Meta, Node, SessionRecord, Tree, ROOT_PATH};
use crate::proto::{Acl, Id};

/// First bytes of every zkw snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"ZKWSNAP\0";
/// The newest layout this build writes and reads: data may be null.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 3;
/// The layout before null data, still written when no node's data is null, and read.
pub const SNAPSHOT_FORMAT_VERSION_NO_NULL_DATA: u32 = 2;
/// The data length that marks null data (from version 3); above `FIELD_BYTES_MAX`.
const NULL_DATA_LENGTH: u32 = u32::MAX;
/// Size of the streaming buffer, in bytes.
const BUFFER_BYTES: usize = 256 * 1024;
/// Longest path, data or ACL string a snapshot may hold, in bytes; far above any frame.
const FIELD_BYTES_MAX: u32 = 256 * 1024 * 1024;
/// Most nodes whose room is reserved up front from the header's (unchecked) count.
const PREALLOCATED_NODES_MAX: u64 = 1 << 22;
/// Bytes of a session password.
const PASSWORD_BYTES: usize = 16;
const _: () = assert!(NULL_DATA_LENGTH > FIELD_BYTES_MAX);

/// What a written snapshot holds; `digest` is the tree digest the header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub last_zxid: i64,
    pub node_count: u64,
    pub session_count: u64,
    pub digest: u64,
    pub crc32: u32,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot read failed: {0}")]
    Io(#[from] io::Error),
    #[error("snapshot truncated")]
    Truncated,
    #[error("not a zkw snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot format version {0} (this build reads {SNAPSHOT_FORMAT_VERSION})")]
    UnknownVersion(u32),
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("snapshot digest mismatch: header {stored:#018x}, content {computed:#018x}")]
    DigestMismatch { stored: u64, computed: u64 },
}

fn corrupt(what: impl Into<String>) -> SnapshotError {
    SnapshotError::Corrupt(what.into())
}

impl Tree {
    /// Streams a snapshot of the replicated state to `out` (not flushed: the caller owns the
    /// file and its fsync).
    pub fn write_snapshot(&self, out: &mut impl Write) -> io::Result<SnapshotSummary> {
        let mut output = Output::new(out);
        output.put(&SNAPSHOT_MAGIC)?;
        let has_null_data = self.nodes_in_order().any(|(_, node)| node.data.is_none());
        output.u32(if has_null_data {
            SNAPSHOT_FORMAT_VERSION
        } else {
            SNAPSHOT_FORMAT_VERSION_NO_NULL_DATA
        })?;
        output.i64(self.last_zxid)?;
        output.u64(self.node_count() as u64)?;
        output.u64(self.digest)?;
        output.u8(u8::from(self.extended_types_enabled))?;
        let acl_refs = self.write_acl_table(&mut output)?;
        for (path, node) in self.nodes_in_order() {
            let acl_ref = acl_refs
                .get(&acl_key(&node.acl))
                .copied()
                .ok_or_else(|| io::Error::other(format!("ACL of {path} is not interned")))?;
            write_node(&mut output, path, node, acl_ref)?;
        }
        output.u64(self.sessions.len() as u64)?;
        for (id, record) in &self.sessions {
            output.i64(*id)?;
            output.i32(record.timeout_ms)?;
            output.put(&record.password)?;
        }
        let (crc32, bytes) = output.finish()?;
        Ok(SnapshotSummary {
            last_zxid: self.last_zxid,
            node_count: self.node_count() as u64,
            session_count: self.sessions.len() as u64,
            digest: self.digest,
            crc32,
            bytes,
        })
    }

    /// Writes the interned ACL lists (sorted, so the bytes are deterministic) and returns
    /// each list's index, keyed by its shared allocation.
    fn write_acl_table<W: Write>(&self, output: &mut Output<'_, W>) -> io::Result<AclRefs> {
        output.u32(len_u32(self.acl_cache.len())?)?;
        let mut refs = AclRefs::with_capacity(self.acl_cache.len());
        for (index, shared) in self.acl_cache.values().enumerate() {
            refs.insert(acl_key(shared), len_u32(index)?);
            output.u32(len_u32(shared.len())?)?;
            for entry in shared.iter() {
                output.i32(entry.perms)?;
                output.bytes(entry.id.scheme.as_bytes())?;
                output.bytes(entry.id.id.as_bytes())?;
            }
        }
        Ok(refs)
    }

    /// Rebuilds a tree from a snapshot, checking its CRC and its digest.
    pub fn read_snapshot(input: &mut impl Read) -> Result<Tree, SnapshotError> {
        let mut input = Input::new(input);
        if input.array::<8>()? != SNAPSHOT_MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = input.u32()?;
        let null_data_allowed = match version {
            SNAPSHOT_FORMAT_VERSION => true,
            SNAPSHOT_FORMAT_VERSION_NO_NULL_DATA => false,
            other => return Err(SnapshotError::UnknownVersion(other)),
        };
        let last_zxid = input.i64()?;
        let node_count = input.u64()?;
        let digest = input.u64()?;
        let mut tree = Tree::empty();
        tree.last_zxid = last_zxid;
        tree.extended_types_enabled = match input.u8()? {
            0 => false,
            1 => true,
            other => return Err(corrupt(format!("extended-types flag {other}"))),
        };
        let acls = read_acl_table(&mut input, &mut tree)?;
        let capacity = usize::try_from(node_count.min(PREALLOCATED_NODES_MAX)).unwrap_or(0);
        let mut builder = StoreBuilder::with_capacity(capacity);
        for _ in 0..node_count {
            let (key, node) = read_node(&mut input, &acls, null_data_allowed)?;
            tree.load_node(&mut builder, key, node)?;
        }
        tree.nodes = builder.finish();
        read_sessions(&mut input, &mut tree)?;
        let computed = input.crc();
        let stored = u32::from_be_bytes(input.array::<4>()?);
        if stored != computed {
            return Err(SnapshotError::ChecksumMismatch { stored, computed });
        }
        if tree.digest != digest {
            return Err(SnapshotError::DigestMismatch {
                stored: digest,
                computed: tree.digest,
            });
        }
        if !input.at_end()? {
            return Err(corrupt("bytes after the checksum"));
        }
        Ok(tree)
    }
}

impl Tree {
    /// Adds one node read from a snapshot: nodes come in index order (the root first, every
    /// node after its parent), so the store is built without searching its index.
    fn load_node(
        &mut self,
        builder: &mut StoreBuilder,
        key: Box<str>,
        node: Node,
    ) -> Result<(), SnapshotError> {
        let path = path_of(&key);
        let hash = node_hash(path, &node);
        if path == ROOT_PATH {
            // As in `Tree::new`: the root counts in the digest but not in the data size.
            self.digest = self.digest.wrapping_add(hash);
        } else {
            validate_path(path, false).map_err(|error| corrupt(error.to_string()))?;
            self.count_attached(path, node.kind(), node.data_len(), hash);
        }
        builder
            .push_key(key, node)
            .map_err(|error| corrupt(error.to_string()))
    }
}

/// ACL table index by the address of the shared list (every node's list is interned).
type AclRefs = HashMap<usize, u32>;

fn acl_key(acl: &Arc<[Acl]>) -> usize {
    Arc::as_ptr(acl).cast::<Acl>() as usize
}

fn len_u32(length: usize) -> io::Result<u32> {
    u32::try_from(length).map_err(|_| io::Error::other(format!("{length} does not fit a u32")))
}

fn write_node<W: Write>(
    output: &mut Output<'_, W>,
    path: &str,
    node: &Node,
    acl_ref: u32,
) -> io::Result<()> {
    let meta = &node.meta;
    output.bytes(path.as_bytes())?;
    for value in [meta.czxid, meta.mzxid, meta.pzxid, meta.ctime, meta.mtime] {
        output.i64(value)?;
    }
    for value in [meta.version, meta.cversion, meta.aversion] {
        output.i32(value)?;
    }
    output.i64(meta.owner)?;
    output.u32(acl_ref)?;
    match node.data.as_deref() {
        Some(data) => output.bytes(data),
        None => output.u32(NULL_DATA_LENGTH),
    }
}

fn read_acl_table<R: Read>(
    input: &mut Input<'_, R>,
    tree: &mut Tree,
) -> Result<Vec<Arc<[Acl]>>, SnapshotError> {
    let count = input.u32()?;
    let mut lists = Vec::new();
    for _ in 0..count {
        let entries = input.u32()?;
        let mut list = Vec::new();
        for _ in 0..entries {
            let perms = input.i32()?;
            let scheme = input.string()?;
            let id = input.string()?;
            list.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        if tree.acl_cache.contains_key(&list) {
            return Err(corrupt("ACL list repeated in the table"));
        }
        lists.push(tree.intern_acl(list));
    }
    Ok(lists)
}

fn read_node<R: Read>(
    input: &mut Input<'_, R>,
    acls: &[Arc<[Acl]>],
    null_data_allowed: bool,
) -> Result<(Box<str>, Node), SnapshotError> {
    let key = input.field_after(KEY_PREFIX_BYTES)?;
    let key = key_in_place(key).ok_or_else(|| corrupt("path is not UTF-8"))?;
    let mut longs = [0i64; 5];
    for value in &mut longs {
        *value = input.i64()?;
    }
    let [czxid, mzxid, pzxid, ctime, mtime] = longs;
    let (version, cversion, aversion) = (input.i32()?, input.i32()?, input.i32()?);
    let owner = input.i64()?;
    let acl_ref = input.u32()?;
    let acl = usize::try_from(acl_ref)
        .ok()
        .and_then(|index| acls.get(index))
        .ok_or_else(|| {
            let path = path_of(&key);
            corrupt(format!("ACL ref {acl_ref} of {path} is not in the table"))
        })?;
    let data = match input.u32()? {
        NULL_DATA_LENGTH if null_data_allowed => None,
        length => Some(input.field_of(0, length)?),
    };
    let meta = Meta {
        czxid,
        mzxid,
        pzxid,
        ctime,
        mtime,
        version,
        cversion,
        aversion,
        owner,
    };
    Ok((key, Node::new(meta, data, Arc::clone(acl))))
}

fn read_sessions<R: Read>(input: &mut Input<'_, R>, tree: &mut Tree) -> Result<(), SnapshotError> {
    let count = input.u64()?;
    let mut previous = None;
    for _ in 0..count {
        let id = input.i64()?;
        let timeout_ms = input.i32()?;
        let password = input.array::<PASSWORD_BYTES>()?;
        if previous.is_some_and(|previous| previous >= id) {
            return Err(corrupt(format!("session {id:#x} out of order")));
        }
        previous = Some(id);
        tree.put_session(
            id,
            SessionRecord {
                timeout_ms,
                password,
            },
        );
    }
    Ok(())
}

/// The writing half: a fixed buffer in front of `out`, hashing every byte it passes on.
struct Output<'a, W: Write> {
    out: &'a mut W,
    buf: Vec<u8>,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<'a, W: Write> Output<'a, W> {
    fn new(out: &'a mut W) -> Self {
        Output {
            out,
            buf: Vec::with_capacity(BUFFER_BYTES),
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > BUFFER_BYTES {
            self.drain()?;
        }
        if bytes.len() > BUFFER_BYTES {
            self.crc.update(bytes);
            self.bytes += bytes.len() as u64;
            return self.out.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.bytes += self.buf.len() as u64;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn u8(&mut self, value: u8) -> io::Result<()> {
        self.put(&[value])
    }
    fn u32(&mut self, value: u32) -> io::Result<()> {
        self.put(&value.to_be_bytes())
    }
    fn i32(&mut self, value: i32) -> io::Result<()> {
        self.put(&value.to_be_bytes())
    }
    fn u64(&mut self, value: u64) -> io::Result<()> {
        self.put(&value.to_be_bytes())
    }
    fn i64(&mut self, value: i64) -> io::Result<()> {
        self.put(&value.to_be_bytes())
    }

    fn bytes(&mut self, value: &[u8]) -> io::Result<()> {
        let length = len_u32(value.len())?;
        if length > FIELD_BYTES_MAX {
            return Err(io::Error::other(format!("field of {length} bytes")));
        }
        self.u32(length)?;
        self.put(value)
    }

    /// Writes the trailer; returns the CRC and the total bytes written.
    fn finish(mut self) -> io::Result<(u32, u64)> {
        self.drain()?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        Ok((crc, self.bytes + 4))
    }
}

/// The reading half: a fixed buffer behind `input`; bytes are hashed as they are consumed.
struct Input<'a, R: Read> {
    input: &'a mut R,
    buf: Box<[u8]>,
    /// Consumed up to `start`, hashed up to `hashed`, filled up to `end`.
    start: usize,
    hashed: usize,
    end: usize,
    crc: crc32fast::Hasher,
}

impl<'a, R: Read> Input<'a, R> {
    fn new(input: &'a mut R) -> Self {
        Input {
            input,
            buf: vec![0; BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            hashed: 0,
            end: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// Makes `wanted` (at most the buffer size) bytes available; false at end of input.
    fn fill(&mut self, wanted: usize) -> Result<bool, SnapshotError> {
        while self.end - self.start < wanted {
            if self.end == self.buf.len() {
                self.crc.update(&self.buf[self.hashed..self.start]);
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                self.hashed = 0;
            }
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(read) => self.end += read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(true)
    }

    fn take(&mut self, count: usize) -> Result<&[u8], SnapshotError> {
        if !self.fill(count)? {
            return Err(SnapshotError::Truncated);
        }
        let start = self.start;
        self.start += count;
        Ok(&self.buf[start..self.start])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A length-prefixed field, copied a buffer at a time so a corrupt length allocates no
    /// more than the bytes actually present.
    fn field(&mut self) -> Result<Vec<u8>, SnapshotError> {
        self.field_after(0)
    }

    /// A field read after `room` zero bytes (space its owner fills in).
    fn field_after(&mut self, room: usize) -> Result<Vec<u8>, SnapshotError> {
        let length = self.u32()?;
        self.field_of(room, length)
    }

    /// The bytes of a field whose `length` prefix was just read, after `room` zero bytes.
    fn field_of(&mut self, room: usize, length: u32) -> Result<Vec<u8>, SnapshotError> {
        if length > FIELD_BYTES_MAX {
            return Err(corrupt(format!("field of {length} bytes")));
        }
        let mut left = length as usize;
        let mut value = Vec::with_capacity(room + left.min(BUFFER_BYTES));
        value.resize(room, 0);
        while left > 0 {
            let piece = left.min(BUFFER_BYTES);
            value.extend_from_slice(self.take(piece)?);
            left -= piece;
        }
        Ok(value)
    }

    fn string(&mut self) -> Result<String, SnapshotError> {
        String::from_utf8(self.field()?).map_err(|_| corrupt("string is not UTF-8"))
    }

    /// The CRC of every byte consumed so far.
    fn crc(&mut self) -> u32 {
        self.crc.update(&self.buf[self.hashed..self.start]);
        self.hashed = self.start;
        self.crc.clone().finalize()
    }

    fn at_end(&mut self) -> Result<bool, SnapshotError> {
        Ok(!self.fill(1)?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::{op, perms, CreateRequest};
    use crate::txn::testing::*;
    use crate::txn::TxnOp;

    const PATHS: [&str; 8] = ["/a", "/b", "/a/a", "/a/b", "/b/a", "/a/a/a", "/c", "/c/x"];
    const SESSIONS: [i64; 3] = [SESSION, 0x200, 0x300];

    fn ops() -> impl Strategy<Value = Vec<(usize, TxnOp)>> {
        let path = (0..PATHS.len()).prop_map(|index| PATHS[index]);
        let data = proptest::collection::vec(any::<u8>(), 0..6);
        let one = prop_oneof![
            (path.clone(), data.clone(), 0..4i32, 0..3usize).prop_map(
                |(path, data, flags, who)| { (who, create_op(op::CREATE2, path, &data, flags)) }
            ),
            (path.clone(), 0..3usize)
                .prop_map(|(path, who)| (who, create_op(op::CREATE_CONTAINER, path, b"c", 4))),
            (path.clone(), 1..100_000i64).prop_map(|(path, ttl_ms)| {
                let request = CreateRequest {
                    ttl_ms: Some(ttl_ms),
                    ..create_request(path, b"t", 5, Acl::open_unsafe())
                };
                (
                    0,
                    TxnOp::Create {
                        op: op::CREATE_TTL,
                        request,
                    },
                )
            }),
            path.clone().prop_map(|path| (0, delete(path, -1))),
            (path.clone(), data).prop_map(|(path, data)| (0, set_data(path, &data, -1))),
            path.clone()
                .prop_map(|path| (0, create_null_op(op::CREATE, path, 0))),
            path.clone().prop_map(|path| (0, set_null_data(path, -1))),
            (path, 0..3i32).prop_map(|(path, which)| {
                let acl = match which {
                    0 => Acl::read_unsafe(),
                    1 => vec![Acl {
                        perms: perms::ALL,
                        id: Id::new("digest", "u:hash"),
                    }],
                    _ => Acl::open_unsafe(),
                };
                (0, set_acl(path, acl, -1))
            }),
            (1..3usize, any::<bool>()).prop_map(|(who, open)| {
                let op = if open {
                    TxnOp::CreateSession {
                        timeout_ms: 4000,
                        password: [who as u8; 16],
                    }
                } else {
                    TxnOp::CloseSession
                };
                (who, op)
            }),
        ];
        proptest::collection::vec(one, 1..60)
    }

    fn built(ops: Vec<(usize, TxnOp)>) -> Harness {
        let mut h = Harness::new();
        h.tree.set_extended_types_enabled(true);
        for (who, op) in ops {
            h.run(SESSIONS[who], op);
        }
        h
    }

    fn snapshot(tree: &Tree) -> Vec<u8> {
        let mut bytes = Vec::new();
        let summary = tree.write_snapshot(&mut bytes).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(summary.digest, tree.digest());
        bytes
    }

    /// Everything a client or the server can observe of the replicated state.
    fn assert_same(left: &Tree, right: &Tree) {
        assert_eq!(left.digest(), right.digest());
        assert_eq!(right.digest(), right.digest_full());
        assert_eq!(left.last_zxid(), right.last_zxid());
        assert_eq!(left.node_count(), right.node_count());
        assert_eq!(left.data_size_bytes(), right.data_size_bytes());
        assert_eq!(left.ephemeral_count(), right.ephemeral_count());
        assert_eq!(left.ephemerals_by_session(), right.ephemerals_by_session());
        assert_eq!(left.sessions(), right.sessions());
        assert_eq!(left.reapable(i64::MAX), right.reapable(i64::MAX));
        assert_eq!(
            left.extended_types_enabled(),
            right.extended_types_enabled()
        );
        let super_user = [Id::new("super", "x")];
        for (path, _) in left.nodes_in_order() {
            assert_eq!(
                left.get_data(path, &super_user),
                right.get_data(path, &super_user)
            );
            assert_eq!(
                left.get_children(path, &super_user),
                right.get_children(path, &super_user)
            );
            assert_eq!(left.acl(path), right.acl(path));
            assert_eq!(left.kind(path), right.kind(path));
        }
    }

    proptest! {
        #[test]
        fn random_trees_round_trip(ops in ops(), more in ops()) {
            let mut h = built(ops);
            let bytes = snapshot(&h.tree);
            let mut loaded = Tree::read_snapshot(&mut &bytes[..]).unwrap();
            assert_same(&h.tree, &loaded);
            prop_assert_eq!(snapshot(&loaded), bytes, "a loaded tree writes the same bytes");
            // The loaded tree keeps working like the original.
            let next = h.zxid;
            for (who, op) in more {
                let applied = h.run(SESSIONS[who], op);
                let entry = h.entries.last().unwrap();
                prop_assert_eq!(crate::txn::apply(&mut loaded, entry), applied);
            }
            prop_assert!(h.zxid >= next);
            assert_same(&h.tree, &loaded);
        }
    }

    fn sample() -> Vec<u8> {
        let mut h = Harness::new();
        h.op(create_op(op::CREATE, "/a", b"data", 0));
        h.op(create_op(op::CREATE, "/a/e", b"", 1));
        h.op(set_acl("/a", Acl::read_unsafe(), -1));
        snapshot(&h.tree)
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(
                Tree::read_snapshot(&mut &bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            Tree::read_snapshot(&mut &longer[..]),
            Err(SnapshotError::Corrupt(_))
        ));
    }

    #[test]
    fn every_flipped_byte_is_an_error() {
        let bytes = sample();
        for at in 0..bytes.len() {
            for xor in [1u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[at] ^= xor;
                assert!(Tree::read_snapshot(&mut &damaged[..]).is_err(), "byte {at}");
            }
        }
    }

    #[test]
    fn a_wrong_digest_is_refused_even_with_a_good_checksum() {
        let mut bytes = sample();
        let digest_at = SNAPSHOT_MAGIC.len() + 4 + 8 + 8;
        bytes[digest_at] ^= 1;
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            Tree::read_snapshot(&mut &bytes[..]),
            Err(SnapshotError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn header_errors_are_typed() {
        let bytes = sample();
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(
            Tree::read_snapshot(&mut &magic[..]),
            Err(SnapshotError::BadMagic)
        ));
        let mut version = bytes.clone();
        version[SNAPSHOT_MAGIC.len() + 3] = 9;
        assert!(matches!(
            Tree::read_snapshot(&mut &version[..]),
            Err(SnapshotError::UnknownVersion(9))
        ));
        assert!(matches!(
            Tree::read_snapshot(&mut &bytes[..10]),
            Err(SnapshotError::Truncated)
        ));
    }

    fn version_of(bytes: &[u8]) -> u32 {
        let at = SNAPSHOT_MAGIC.len();
        u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn null_data_needs_version_3_and_survives() {
        assert_eq!(version_of(&sample()), SNAPSHOT_FORMAT_VERSION_NO_NULL_DATA);
        let mut h = Harness::new();
        h.op(create_null_op(op::CREATE2, "/n", 0));
        h.op(create_op(op::CREATE, "/e", b"", 0));
        let bytes = snapshot(&h.tree);
        assert_eq!(version_of(&bytes), SNAPSHOT_FORMAT_VERSION);
        let loaded = Tree::read_snapshot(&mut &bytes[..]).unwrap();
        assert_same(&h.tree, &loaded);
        assert_eq!(loaded.get_data("/n", &[]).unwrap().0, None);
        assert_eq!(loaded.get_data("/e", &[]).unwrap().0, Some(Vec::new()));
        // Version 2 has no null data: the marker there is corruption, not null.
        let mut as_version_2 = bytes.clone();
        let at = SNAPSHOT_MAGIC.len();
        as_version_2[at..at + 4]
            .copy_from_slice(&SNAPSHOT_FORMAT_VERSION_NO_NULL_DATA.to_be_bytes());
        let body = as_version_2.len() - 4;
        let crc = crc32fast::hash(&as_version_2[..body]);
        as_version_2[body..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            Tree::read_snapshot(&mut &as_version_2[..]),
            Err(SnapshotError::Corrupt(_))
        ));
        // Setting data again makes the tree a version 2 one.
        h.op(set_data("/n", b"", -1));
        assert_eq!(
            version_of(&snapshot(&h.tree)),
            SNAPSHOT_FORMAT_VERSION_NO_NULL_DATA
        );
    }

    /// A reader that hands out one byte at a time, to exercise buffer refills.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = *first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn large_fields_and_small_reads_stream() {
        let mut h = Harness::new();
        let big = vec![7u8; BUFFER_BYTES * 2 + 3];
        h.op(create_op(op::CREATE, "/big", &big, 0));
        for index in 0..300 {
            h.op(create_op(op::CREATE, &format!("/n{index}"), &[1; 900], 0));
        }
        let bytes = snapshot(&h.tree);
        let loaded = Tree::read_snapshot(&mut Trickle(&bytes)).unwrap();
        assert_same(&h.tree, &loaded);
    }
}
