//! The hash behind the tree digest: XXH3-64 (a published, platform-independent function; the
//! SIMD paths give the same value as the scalar one) with fixed seeds, so every replica and
//! every build computes the same value (never std's randomly seeded hasher). Each node
//! contributes three parts (meta, data, ACL), each keyed by its path, and the tree digest is
//! their wrapping sum, so one part can be swapped in O(1) when only it changes.
//!
//! Whole fields are hashed in one call each (FNV-1a, byte at a time, was ~20% of a snapshot
//! load): the path is hashed once into a key, and each part is the hash of its bytes seeded
//! with that key and the part's tag. Fixed-width fields are laid out little-endian.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::proto::{Acl, SessionId};

use super::{Meta, SessionRecord};

/// Seeds, one per use, so equal bytes in different parts never cancel out. Arbitrary odd
/// constants; changing any of them changes every digest (bump `SNAPSHOT_FORMAT_VERSION`).
const SEED_PATH: u64 = 0x9e37_79b9_7f4a_7c15;
const TAG_META: u64 = 0xc2b2_ae3d_27d4_eb4f;
const TAG_DATA: u64 = 0x1656_67b1_9e37_79f9;
/// Null data (kept apart from empty data, as ZooKeeper keeps it).
const TAG_NULL_DATA: u64 = 0x3c6e_f372_fe94_f82b;
const TAG_ACL: u64 = 0x27d4_eb2f_1656_67c5;
const SEED_SESSION: u64 = 0x85eb_ca77_c2b2_ae63;
/// Bytes of a meta record as hashed: six i64 and three i32.
const META_BYTES: usize = 6 * 8 + 3 * 4;
/// Bytes of a session record as hashed: id i64, timeout i32, 16-byte password.
const SESSION_BYTES: usize = 8 + 4 + 16;

/// The hash of a path, computed once per node and mixed into each of its parts.
#[derive(Clone, Copy)]
pub(super) struct PathKey(u64);

impl PathKey {
    pub fn of(path: &str) -> PathKey {
        PathKey(xxh3_64_with_seed(path.as_bytes(), SEED_PATH))
    }
}

pub(super) fn meta_hash(path: &str, meta: &Meta) -> u64 {
    meta_part(PathKey::of(path), meta)
}

pub(super) fn data_hash(path: &str, data: Option<&[u8]>) -> u64 {
    data_part(PathKey::of(path), data)
}

pub(super) fn acl_hash(path: &str, acl: &[Acl]) -> u64 {
    acl_part(PathKey::of(path), acl)
}

/// The sum of the three parts of one node.
pub(super) fn node_hash(path: &str, meta: &Meta, data: Option<&[u8]>, acl: &[Acl]) -> u64 {
    let key = PathKey::of(path);
    meta_part(key, meta)
        .wrapping_add(data_part(key, data))
        .wrapping_add(acl_part(key, acl))
}

fn meta_part(key: PathKey, meta: &Meta) -> u64 {
    let mut bytes = [0u8; META_BYTES];
    let longs = [
        meta.czxid, meta.mzxid, meta.pzxid, meta.ctime, meta.mtime, meta.owner,
    ];
    let (long_bytes, int_bytes) = bytes.split_at_mut(6 * 8);
    for (place, value) in long_bytes.chunks_exact_mut(8).zip(longs) {
        place.copy_from_slice(&value.to_le_bytes());
    }
    let ints = [meta.version, meta.cversion, meta.aversion];
    for (place, value) in int_bytes.chunks_exact_mut(4).zip(ints) {
        place.copy_from_slice(&value.to_le_bytes());
    }
    xxh3_64_with_seed(&bytes, key.0 ^ TAG_META)
}

/// Bytes hash as before null data existed, so digests of trees without null data (and of
/// snapshots written before) did not change.
fn data_part(key: PathKey, data: Option<&[u8]>) -> u64 {
    match data {
        Some(bytes) => xxh3_64_with_seed(bytes, key.0 ^ TAG_DATA),
        None => xxh3_64_with_seed(&[], key.0 ^ TAG_NULL_DATA),
    }
}

/// Chained: each field is hashed with the previous hash as its seed, so field boundaries and
/// order count without building one buffer.
fn acl_part(key: PathKey, acl: &[Acl]) -> u64 {
    let mut hash = key.0 ^ TAG_ACL;
    for entry in acl {
        hash = xxh3_64_with_seed(&entry.perms.to_le_bytes(), hash);
        hash = xxh3_64_with_seed(entry.id.scheme.as_bytes(), hash);
        hash = xxh3_64_with_seed(entry.id.id.as_bytes(), hash);
    }
    // The count ends the chain, so a list and its extension never share a value by accident.
    xxh3_64_with_seed(&(acl.len() as u64).to_le_bytes(), hash)
}

pub(super) fn session_hash(session_id: SessionId, record: &SessionRecord) -> u64 {
    let mut bytes = [0u8; SESSION_BYTES];
    bytes[..8].copy_from_slice(&session_id.to_le_bytes());
    bytes[8..12].copy_from_slice(&record.timeout_ms.to_le_bytes());
    bytes[12..].copy_from_slice(&record.password);
    xxh3_64_with_seed(&bytes, SEED_SESSION)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn xxh3_is_the_published_function() {
        // XXH3-64 of the empty input with seed 0, from the reference implementation.
        assert_eq!(xxh3_64_with_seed(b"", 0), 0x2d06_8005_38d3_94c2);
    }

    #[test]
    fn values_are_pinned() {
        // Replicas and snapshots compare these sums: a change here is a format change.
        let meta = Meta::created(7, 1_700_000_000_000, 0);
        let acl = Acl::open_unsafe();
        let record = SessionRecord {
            timeout_ms: 4000,
            password: [3; 16],
        };
        assert_eq!(
            [
                meta_hash("/a/b", &meta),
                data_hash("/a/b", Some(&b"payload"[..])),
                acl_hash("/a/b", &acl),
                session_hash(0x1234, &record),
            ],
            [PINNED_META, PINNED_DATA, PINNED_ACL, PINNED_SESSION]
        );
    }

    const PINNED_META: u64 = 0x36f1_6211_446b_cba2;
    const PINNED_DATA: u64 = 0xd5a1_5e4a_8113_86bd;
    const PINNED_ACL: u64 = 0xcf1a_b54f_b30d_bbd2;
    const PINNED_SESSION: u64 = 0x6bfb_42c7_4e9f_b9aa;

    #[test]
    fn null_data_is_not_empty_data() {
        assert_ne!(data_hash("/a", None), data_hash("/a", Some(&b""[..])));
        assert_ne!(data_hash("/a", None), data_hash("/b", None));
        assert_eq!(data_hash("/a/b", None), PINNED_NULL_DATA);
    }

    const PINNED_NULL_DATA: u64 = 0x089e_f7f6_974a_39fc;

    #[test]
    fn parts_depend_on_path_and_content() {
        assert_ne!(
            data_hash("/a", Some(&b"x"[..])),
            data_hash("/b", Some(&b"x"[..]))
        );
        assert_ne!(
            data_hash("/a", Some(&b"x"[..])),
            data_hash("/a", Some(&b"y"[..]))
        );
        assert_ne!(data_hash("/a", Some(&b""[..])), acl_hash("/a", &[]));
        let meta = Meta::default();
        let changed = Meta {
            aversion: 1,
            ..meta
        };
        assert_ne!(meta_hash("/a", &meta), meta_hash("/a", &changed));
        let acl = Acl::open_unsafe();
        assert_eq!(
            node_hash("/a", &meta, Some(&b"x"[..]), &acl),
            meta_hash("/a", &meta)
                .wrapping_add(data_hash("/a", Some(&b"x"[..])))
                .wrapping_add(acl_hash("/a", &acl))
        );
    }
}
