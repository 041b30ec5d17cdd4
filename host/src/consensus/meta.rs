//! `consensus::meta`: the small durable facts beside the Raft log, in one redb database: the
//! vote, the committed and last purged log ids, the membership and the newest snapshot's
//! metadata. Every write is one redb transaction committed with `Durability::Immediate`, so it
//! is on disk when the call returns. Values other than log ids are opaque bytes encoded by the
//! caller (the openraft adapter); this file fixes only keys, log id encoding and the version.
//! Layout and versions: `docs/format.md`.
//!
//! Entry points: [`Meta::open`], then the typed getters and `save_*` methods, or
//! [`Meta::write`] to change several keys atomically.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, TableDefinition};

use super::failpoint::Failpoints;
use super::log::LogId;
use crate::fatal::Step;

/// Version of the keys and value encodings below; stored under [`MetaKey::FormatVersion`].
pub const META_FORMAT_VERSION: u32 = 1;
/// The one table; its name carries the format version so a future layout gets a new table.
const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("meta_v1");
/// Size of an encoded [`LogId`]: term u64 LE then index u64 LE.
pub const LOG_ID_BYTES: usize = 16;

/// The keys of the meta table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    FormatVersion,
    /// The vote (opaque bytes).
    Vote,
    /// The last committed log id (16 bytes).
    Committed,
    /// The last purged log id (16 bytes); saved before segments are deleted.
    Purged,
    /// The last membership config (opaque bytes).
    Membership,
    /// Metadata of the newest snapshot (opaque bytes).
    SnapshotMeta,
}

impl MetaKey {
    pub fn as_str(self) -> &'static str {
        match self {
            MetaKey::FormatVersion => "format_version",
            MetaKey::Vote => "vote",
            MetaKey::Committed => "committed",
            MetaKey::Purged => "purged",
            MetaKey::Membership => "membership",
            MetaKey::SnapshotMeta => "snapshot_meta",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("meta database: {0}")]
    Db(#[from] redb::Error),
    #[error("meta database format version {found}, this build reads {META_FORMAT_VERSION}")]
    Version { found: u32 },
    #[error("meta key {key} holds {bytes} bytes, not a valid value")]
    Malformed { key: &'static str, bytes: usize },
}

impl MetaError {
    /// The io error underneath, if the database failed on I/O (redb does not chain it as a
    /// `source`).
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            MetaError::Db(redb::Error::Io(io)) => Some(io),
            _ => None,
        }
    }
}

impl From<MetaError> for std::io::Error {
    fn from(error: MetaError) -> Self {
        std::io::Error::other(error)
    }
}

pub fn encode_log_id(log_id: LogId) -> [u8; LOG_ID_BYTES] {
    let mut bytes = [0u8; LOG_ID_BYTES];
    bytes[..8].copy_from_slice(&log_id.term.to_le_bytes());
    bytes[8..].copy_from_slice(&log_id.index.to_le_bytes());
    bytes
}

fn decode_log_id(key: MetaKey, bytes: &[u8]) -> Result<LogId, MetaError> {
    let malformed = || MetaError::Malformed {
        key: key.as_str(),
        bytes: bytes.len(),
    };
    let term = bytes.get(..8).ok_or_else(malformed)?;
    let index = bytes.get(8..LOG_ID_BYTES).ok_or_else(malformed)?;
    if bytes.len() != LOG_ID_BYTES {
        return Err(malformed());
    }
    let word = |slice: &[u8]| {
        let mut word = [0u8; 8];
        word.copy_from_slice(slice);
        u64::from_le_bytes(word)
    };
    Ok(LogId {
        term: word(term),
        index: word(index),
    })
}

/// The meta database.
pub struct Meta {
    db: Database,
    failpoints: Failpoints,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta").finish_non_exhaustive()
    }
}

impl Meta {
    /// Opens (or creates) the database file at `path` and checks its format version.
    pub fn open(path: impl AsRef<Path>) -> Result<Meta, MetaError> {
        let db = Database::create(path).map_err(redb::Error::from)?;
        let meta = Meta {
            db,
            failpoints: Failpoints::default(),
        };
        match meta.get(MetaKey::FormatVersion)? {
            None => {
                let version = META_FORMAT_VERSION.to_le_bytes();
                meta.write(&[(MetaKey::FormatVersion, Some(&version[..]))])?;
            }
            Some(bytes) => {
                let word: [u8; 4] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| MetaError::Malformed {
                            key: MetaKey::FormatVersion.as_str(),
                            bytes: bytes.len(),
                        })?;
                let found = u32::from_le_bytes(word);
                if found != META_FORMAT_VERSION {
                    return Err(MetaError::Version { found });
                }
            }
        }
        Ok(meta)
    }

    /// The same database with `failpoints` armed (the `meta_commit` step).
    pub fn with_failpoints(self, failpoints: Failpoints) -> Meta {
        Meta { failpoints, ..self }
    }

    /// The bytes stored under `key`, if any.
    pub fn get(&self, key: MetaKey) -> Result<Option<Vec<u8>>, MetaError> {
        let read = self.db.begin_read().map_err(redb::Error::from)?;
        let table = match read.open_table(META_TABLE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(redb::Error::from(error).into()),
        };
        let value = table.get(key.as_str()).map_err(redb::Error::from)?;
        Ok(value.map(|guard| guard.value().to_vec()))
    }

    /// Sets (Some) or deletes (None) each key, all in one transaction, durable on return.
    pub fn write(&self, changes: &[(MetaKey, Option<&[u8]>)]) -> Result<(), MetaError> {
        let mut write = self.db.begin_write().map_err(redb::Error::from)?;
        write
            .set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        {
            let mut table = write.open_table(META_TABLE).map_err(redb::Error::from)?;
            for (key, value) in changes {
                match value {
                    Some(bytes) => table.insert(key.as_str(), *bytes),
                    None => table.remove(key.as_str()),
                }
                .map_err(redb::Error::from)?;
            }
        }
        // An armed failpoint fails the commit: the transaction is dropped, as after a failed
        // commit, and nothing of it is durable.
        self.failpoints
            .check(Step::MetaCommit)
            .map_err(redb::Error::Io)?;
        write.commit().map_err(redb::Error::from)?;
        Ok(())
    }

    fn get_log_id(&self, key: MetaKey) -> Result<Option<LogId>, MetaError> {
        self.get(key)?
            .map(|bytes| decode_log_id(key, &bytes))
            .transpose()
    }

    fn save_log_id(&self, key: MetaKey, log_id: Option<LogId>) -> Result<(), MetaError> {
        let bytes = log_id.map(encode_log_id);
        self.write(&[(key, bytes.as_ref().map(|bytes| &bytes[..]))])
    }

    pub fn vote(&self) -> Result<Option<Vec<u8>>, MetaError> {
        self.get(MetaKey::Vote)
    }

    pub fn save_vote(&self, vote: &[u8]) -> Result<(), MetaError> {
        self.write(&[(MetaKey::Vote, Some(vote))])
    }

    pub fn committed(&self) -> Result<Option<LogId>, MetaError> {
        self.get_log_id(MetaKey::Committed)
    }

    /// openraft's `save_committed(None)` deletes the key.
    pub fn save_committed(&self, committed: Option<LogId>) -> Result<(), MetaError> {
        self.save_log_id(MetaKey::Committed, committed)
    }

    pub fn purged(&self) -> Result<Option<LogId>, MetaError> {
        self.get_log_id(MetaKey::Purged)
    }

    /// Save BEFORE `SegmentLog::purge_upto`, and pass `purged()` to `SegmentLog::open`.
    pub fn save_purged(&self, purged: LogId) -> Result<(), MetaError> {
        self.save_log_id(MetaKey::Purged, Some(purged))
    }

    pub fn membership(&self) -> Result<Option<Vec<u8>>, MetaError> {
        self.get(MetaKey::Membership)
    }

    pub fn save_membership(&self, membership: &[u8]) -> Result<(), MetaError> {
        self.write(&[(MetaKey::Membership, Some(membership))])
    }

    pub fn snapshot_meta(&self) -> Result<Option<Vec<u8>>, MetaError> {
        self.get(MetaKey::SnapshotMeta)
    }

    pub fn save_snapshot_meta(&self, snapshot_meta: &[u8]) -> Result<(), MetaError> {
        self.write(&[(MetaKey::SnapshotMeta, Some(snapshot_meta))])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (COMMON.md).
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir =
                std::env::temp_dir().join(format!("zkw-meta-{tag}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn values_survive_reopen() {
        let dir = TempDir::new("reopen");
        let path = dir.0.join("meta.redb");
        {
            let meta = Meta::open(&path).unwrap();
            assert_eq!(meta.vote().unwrap(), None);
            assert_eq!(meta.committed().unwrap(), None);
            meta.save_vote(b"vote-1").unwrap();
            meta.save_committed(Some(LogId { term: 2, index: 7 }))
                .unwrap();
            meta.save_purged(LogId { term: 1, index: 3 }).unwrap();
            meta.save_membership(b"members").unwrap();
            meta.save_snapshot_meta(b"snap").unwrap();
        }
        let meta = Meta::open(&path).unwrap();
        assert_eq!(meta.vote().unwrap().as_deref(), Some(&b"vote-1"[..]));
        assert_eq!(meta.committed().unwrap(), Some(LogId { term: 2, index: 7 }));
        assert_eq!(meta.purged().unwrap(), Some(LogId { term: 1, index: 3 }));
        assert_eq!(meta.membership().unwrap().as_deref(), Some(&b"members"[..]));
        assert_eq!(meta.snapshot_meta().unwrap().as_deref(), Some(&b"snap"[..]));
        meta.save_committed(None).unwrap();
        assert_eq!(meta.committed().unwrap(), None);
    }

    #[test]
    fn several_keys_change_atomically() {
        let dir = TempDir::new("atomic");
        let meta = Meta::open(dir.0.join("meta.redb")).unwrap();
        let purged = encode_log_id(LogId { term: 4, index: 40 });
        meta.write(&[
            (MetaKey::SnapshotMeta, Some(b"s".as_slice())),
            (MetaKey::Purged, Some(&purged[..])),
        ])
        .unwrap();
        assert_eq!(meta.purged().unwrap(), Some(LogId { term: 4, index: 40 }));
        assert_eq!(meta.snapshot_meta().unwrap().as_deref(), Some(&b"s"[..]));
    }

    #[test]
    fn other_format_version_is_refused_and_bad_log_id_is_named() {
        let dir = TempDir::new("version");
        let path = dir.0.join("meta.redb");
        {
            let meta = Meta::open(&path).unwrap();
            meta.write(&[(MetaKey::Committed, Some(b"short".as_slice()))])
                .unwrap();
            assert!(matches!(
                meta.committed(),
                Err(MetaError::Malformed {
                    key: "committed",
                    bytes: 5
                })
            ));
            let future = (META_FORMAT_VERSION + 1).to_le_bytes();
            meta.write(&[(MetaKey::FormatVersion, Some(&future[..]))])
                .unwrap();
        }
        assert!(matches!(
            Meta::open(&path),
            Err(MetaError::Version { found: 2 })
        ));
    }
}
