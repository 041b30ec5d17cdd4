//! openraft's log storage on top of our own pieces: entries in the segmented log
//! ([`super::log::SegmentLog`]), vote / committed / purged ids in redb ([`super::meta::Meta`]).
//! Each openraft entry is stored whole (postcard) as the record payload; the record's own
//! (term, index) is the entry's log id, so the two never disagree.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::vote::leader_id_std::CommittedLeaderId;

use super::failpoint::Failpoints;
use super::log::{
    self, LogError, LogMedium, LogOptions, SegmentLog, ServerDisk, LOG_DIRECTORY_NAME,
};
use super::meta::{Meta, MetaError};
use super::types::{Entry, LogId, Vote, ZkwRaft};
use crate::fatal::{Fatal, FatalSignal, Step};
use crate::timing::StorageTimings;

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
    log: Mutex<SegmentLog<ServerDisk>>,
    meta: Meta,
    log_dir: PathBuf,
    meta_path: PathBuf,
    /// Every failed write, sync or commit is raised here (the server fails stop) before the
    /// error goes back to openraft.
    fatal: FatalSignal,
}

/// The durable Raft log of one server: cheap to clone (openraft wants a reader handle).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl LogStore {
    /// Opens (or creates) the log on `medium` (under `log_dir` for a directory) and its meta
    /// database at `meta_path`, with `failpoints` armed; storage failures from then on are
    /// raised on `fatal`.
    pub fn open(
        medium: &LogMedium,
        log_dir: &Path,
        meta_path: &Path,
        failpoints: Failpoints,
        fatal: FatalSignal,
        timings: Arc<StorageTimings>,
    ) -> io::Result<LogStore> {
        std::fs::create_dir_all(log_dir)?;
        let meta = Meta::open(meta_path)?.with_failpoints(failpoints.clone());
        let purged = meta.purged()?;
        let disk = ServerDisk::open(medium, log_dir, failpoints)?;
        let log = SegmentLog::open(disk, LogOptions::default(), purged)?.with_fsync_timing(timings);
        Ok(LogStore {
            inner: Arc::new(Inner {
                log: Mutex::new(log),
                meta,
                log_dir: log_dir.to_path_buf(),
                meta_path: meta_path.to_path_buf(),
                fatal,
            }),
        })
    }

    fn log(&self) -> io::Result<MutexGuard<'_, SegmentLog<ServerDisk>>> {
        self.inner.log.lock().map_err(|_| {
            self.inner.fatal.raise(Fatal::LockPoisoned { lock: "log" });
            io::Error::other("log lock poisoned by an earlier panic")
        })
    }

    /// Raises a failed log operation (`step` when the error names none) and hands the error
    /// on to openraft.
    fn log_failed(&self, step: Step, error: LogError) -> io::Error {
        let fatal = match &error {
            LogError::Io { step, file, source } => {
                let path = if file == LOG_DIRECTORY_NAME {
                    self.inner.log_dir.clone()
                } else {
                    self.inner.log_dir.join(file)
                };
                Fatal::storage(*step, &path, source)
            }
            LogError::Corrupt { file, .. } => {
                Fatal::storage(step, &self.inner.log_dir.join(file), &error)
            }
            _ => Fatal::storage(step, &self.inner.log_dir, &error),
        };
        self.inner.fatal.raise(fatal);
        io::Error::from(error)
    }

    /// Raises a failed meta write and hands the error on to openraft.
    fn meta_failed(&self, error: MetaError) -> io::Error {
        let path = &self.inner.meta_path;
        let fatal = match error.io() {
            Some(io) => Fatal::storage(Step::MetaCommit, path, io),
            None => Fatal::storage(Step::MetaCommit, path, &error),
        };
        self.inner.fatal.raise(fatal);
        io::Error::from(error)
    }

    fn read(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry>> {
        let records = self
            .log()?
            .read(range)
            .map_err(|error| self.log_failed(Step::LogRead, error))?;
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
        self.inner
            .meta
            .save_vote(&bytes)
            .map_err(|error| self.meta_failed(error))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.inner
            .meta
            .save_committed(committed.as_ref().map(to_disk))
            .map_err(|error| self.meta_failed(error))
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
            let appended = store.log()?.append(&records);
            appended.map_err(|error| store.log_failed(Step::LogAppend, error))
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
            let truncated = store.log()?.truncate_after(last_kept);
            truncated.map_err(|error| store.log_failed(Step::LogTruncate, error))
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            // The purge mark is durable before any segment goes (see log/mod.rs).
            store
                .inner
                .meta
                .save_purged(to_disk(&log_id))
                .map_err(|error| store.meta_failed(error))?;
            let purged = store.log()?.purge_upto(to_disk(&log_id));
            purged.map_err(|error| store.log_failed(Step::LogPurge, error))?;
            tracing::info!(index = log_id.index, "log purged up to a snapshot");
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}
