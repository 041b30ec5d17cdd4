//! openraft's log storage on top of our own pieces: entries in the segmented log
//! ([`super::log::SegmentLog`]), vote / committed / purged ids in redb ([`super::meta::Meta`]).
//! Each openraft entry is stored whole (postcard) as the record payload; the record's own
//! (term, index) is the entry's log id, so the two never disagree.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::vote::leader_id_std::CommittedLeaderId;

use super::log::{self, FsDisk, LogOptions, SegmentLog};
use super::meta::Meta;
use super::types::{Entry, LogId, Vote, ZkwRaft};

fn to_raft(id: log::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(id.term), id.index)
}

fn to_disk(id: &LogId) -> log::LogId {
    log::LogId {
        term: id.leader_id.term,
        index: id.index,
    }
}

fn codec_error(error: postcard::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

struct Inner {
    log: Mutex<SegmentLog<FsDisk>>,
    meta: Meta,
}

/// The durable Raft log of one server: cheap to clone (openraft wants a reader handle).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    /// Opens (or creates) the log under `log_dir` and its meta database at `meta_path`.
    pub fn open(log_dir: &Path, meta_path: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(log_dir)?;
        let meta = Meta::open(meta_path)?;
        let purged = meta.purged()?;
        let log = SegmentLog::open(FsDisk::new(log_dir)?, LogOptions::default(), purged)?;
        Ok(LogStore {
            inner: Arc::new(Inner {
                log: Mutex::new(log),
                meta,
            }),
        })
    }

    fn log(&self) -> io::Result<MutexGuard<'_, SegmentLog<FsDisk>>> {
        self.inner
            .log
            .lock()
            .map_err(|_| io::Error::other("log lock poisoned by an earlier panic"))
    }

    fn read(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry>> {
        let records = self.log()?.read(range)?;
        records
            .iter()
            .map(|record| postcard::from_bytes(&record.payload).map_err(codec_error))
            .collect()
    }
}

impl RaftLogReader<ZkwRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let store = self.clone();
        let bounds = (range.start_bound().cloned(), range.end_bound().cloned());
        tokio::task::spawn_blocking(move || store.read(bounds))
            .await
            .map_err(io::Error::other)?
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match self.inner.meta.vote()? {
            Some(bytes) => Ok(Some(postcard::from_bytes(&bytes).map_err(codec_error)?)),
            None => Ok(None),
        }
    }
}

impl RaftLogStorage<ZkwRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<ZkwRaft>, io::Error> {
        let last_purged_log_id = self.inner.meta.purged()?.map(to_raft);
        let last_log_id = self
            .log()?
            .last_log_id()
            .map(to_raft)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = postcard::to_stdvec(vote).map_err(codec_error)?;
        Ok(self.inner.meta.save_vote(&bytes)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        Ok(self
            .inner
            .meta
            .save_committed(committed.as_ref().map(to_disk))?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.inner.meta.committed()?.map(to_raft))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<ZkwRaft>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut records = Vec::new();
        for entry in entries {
            let payload = postcard::to_stdvec(&entry).map_err(codec_error)?;
            records.push(log::Entry {
                log_id: to_disk(&entry.log_id),
                payload: payload.into(),
            });
        }
        let store = self.clone();
        // One write of the whole batch and one fdatasync: group commit.
        let result = tokio::task::spawn_blocking(move || -> io::Result<()> {
            Ok(store.log()?.append(&records)?)
        })
        .await
        .map_err(io::Error::other)?;
        let failed = result
            .as_ref()
            .err()
            .map(|error| io::Error::new(error.kind(), error.to_string()));
        callback.io_completed(result);
        failed.map_or(Ok(()), Err)
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let store = self.clone();
        let last_kept = last_log_id.map(|id| id.index);
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            Ok(store.log()?.truncate_after(last_kept)?)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            // The purge mark is durable before any segment goes (see log/mod.rs).
            store.inner.meta.save_purged(to_disk(&log_id))?;
            Ok(store.log()?.purge_upto(to_disk(&log_id))?)
        })
        .await
        .map_err(io::Error::other)?
    }
}
