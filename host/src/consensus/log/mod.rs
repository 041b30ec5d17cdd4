//! `consensus::log`: the durable Raft log. Entries are opaque payloads with a (term, index)
//! [`LogId`]; this layer knows nothing of openraft or znodes. It owns the segment files and
//! nothing else: the vote, committed and purged log ids live in [`super::meta`].
//!
//! # On disk (full byte layout in `docs/format.md`)
//!
//! A directory of segment files, each named by the index of its first record,
//! zero-padded to 20 digits: `00000000000000000042.seg`. A segment holds at most
//! [`LOG_SEGMENT_BYTES`] (by default) and is:
//!
//! ```text
//! header (32 bytes): magic "ZKWRLOG\0" | format version u32 = 1 | reserved u32 = 0
//!                    | first index u64 | CRC32C of bytes 0..24 u32 | reserved u32 = 0
//! record*:           payload length u32 | CRC32C of (term, index, payload) u32
//!                    | term u64 | index u64 | payload
//! ```
//!
//! All integers are little-endian and fixed width. Indexes are consecutive across segments,
//! terms never decrease, and a segment is synced before the next one is created, so only the
//! newest segment can end in a torn record.
//!
//! # Durability
//!
//! - Group commit: [`SegmentLog::append`] writes every record of a batch, then syncs once
//!   (`fdatasync`; plus the directory when the batch opened a segment) and only then returns.
//!   [`SegmentLog::write_batch`] + [`SegmentLog::flush`] split the two steps, for openraft's
//!   "readable now, callback when durable" `append`.
//! - After any I/O error the log answers [`LogError::PreviousIo`] to every mutation until it is
//!   reopened: what reached the disk is then decided by recovery, not guessed.
//! - Suffix truncation ([`SegmentLog::truncate_after`]) removes later segments (newest first,
//!   then syncs the directory) and cuts the last one with `set_len`, then syncs it.
//! - Prefix purge ([`SegmentLog::purge_upto`]) only deletes whole segments. The caller must
//!   save the purged log id in `meta` BEFORE calling it and pass it back to
//!   [`SegmentLog::open`], which hides (and deletes) what lies at or below it.
//! - Recovery (`recover.rs`): a torn or CRC-bad record at the very tail of the newest segment is
//!   cut with a `tracing::warn`; anything else bad refuses to open with file and offset.
//!
//! # Memory
//!
//! Per entry 4 bytes (its offset in its segment) plus one (index, term) pair per term change,
//! so a read is one binary search over segments and one `read_at` per segment touched.
//!
//! # openraft (`RaftLogStorage` / `RaftLogReader`, 0.10.0-alpha.37), one call each
//!
//! With `leader_id_std` an openraft `LogId` is exactly (term, index) = [`LogId`]; the payload is
//! the encoded openraft entry.
//!
//! - `get_log_state` = ([`SegmentLog::last_purged_log_id`], [`SegmentLog::last_log_id`]);
//! - `append(entries, callback)` = [`SegmentLog::write_batch`] (readable on return), then
//!   [`SegmentLog::flush`] and `callback.io_completed(result)`;
//! - `truncate_after(last_log_id)` = [`SegmentLog::truncate_after`]`(last_log_id.map(index))`;
//! - `purge(log_id)` = `Meta::save_purged(log_id)`, then [`SegmentLog::purge_upto`];
//! - `try_get_log_entries(range)` = [`SegmentLog::read`] (`&self`: readers can share it);
//! - `save_vote` / `read_vote`, `save_committed` / `read_committed` = `Meta`;
//! - on start: `SegmentLog::open(disk, options, meta.purged()?)`.
//!
//! Entry points: [`SegmentLog::open`], [`FsDisk`], [`TestDisk`] for crash tests.

mod disk;
mod error;
mod record;
mod recover;
mod test_disk;
#[cfg(test)]
mod tests;

use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;

use crate::timing::StorageTimings;

pub use disk::{FsDisk, LogDisk, LogFile, LogMedium, ServerDisk, ServerFile};
pub use error::{LogError, OpenError};
pub use record::{RECORD_HEADER_BYTES, SEGMENT_FORMAT_VERSION, SEGMENT_HEADER_BYTES};
pub use recover::{parse_segment_name, segment_name};
pub use test_disk::{Fault, Image, TestDisk, TestFile};

/// Default largest size of a segment file in bytes.
pub const LOG_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Record offsets are kept as u32 in memory, so no segment may reach 4 GiB.
pub const LOG_SEGMENT_BYTES_MAX: u64 = u32::MAX as u64;
/// Smallest segment size accepted (tests use tiny segments to roll often).
pub const LOG_SEGMENT_BYTES_MIN: u64 = 128;
/// Default largest payload of one entry in bytes.
pub const LOG_RECORD_PAYLOAD_BYTES_MAX: u64 = 32 * 1024 * 1024;

const _: () = assert!(LOG_SEGMENT_BYTES <= LOG_SEGMENT_BYTES_MAX);
const _: () = assert!(
    SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES + LOG_RECORD_PAYLOAD_BYTES_MAX <= LOG_SEGMENT_BYTES
);

/// Where an entry sits in the log: its leader's term and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    pub term: u64,
    pub index: u64,
}

/// One log entry: a log id and an opaque payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub log_id: LogId,
    pub payload: Bytes,
}

/// Tunables, checked by [`SegmentLog::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A new segment is started when the next record would take the current one above this.
    pub segment_bytes: u64,
    /// Largest payload accepted by `append`.
    pub payload_bytes_max: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: LOG_SEGMENT_BYTES,
            payload_bytes_max: LOG_RECORD_PAYLOAD_BYTES_MAX,
        }
    }
}

impl LogOptions {
    fn check(&self) -> Result<(), OpenError> {
        let in_range =
            (LOG_SEGMENT_BYTES_MIN..=LOG_SEGMENT_BYTES_MAX).contains(&self.segment_bytes);
        let room = self
            .segment_bytes
            .saturating_sub(SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES);
        if !in_range || self.payload_bytes_max > room {
            return Err(OpenError::Options {
                reason: format!(
                    "segment_bytes {} must be in {LOG_SEGMENT_BYTES_MIN}..={LOG_SEGMENT_BYTES_MAX} \
                     and hold a header and a record of payload_bytes_max {}",
                    self.segment_bytes, self.payload_bytes_max
                ),
            });
        }
        Ok(())
    }
}

/// One segment file as held in memory.
#[derive(Debug)]
struct Segment<F> {
    name: String,
    file: F,
    first_index: u64,
    /// Byte offset of each record: entry `first_index + i` starts at `offsets[i]`.
    offsets: Vec<u32>,
    /// End of the last record: where the next one goes.
    end: u64,
}

impl<F> Segment<F> {
    fn next_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }

    /// Byte offset where entry `index` starts, or the end for the index after the last.
    fn offset_of(&self, index: u64) -> u64 {
        let slot = (index - self.first_index) as usize;
        self.offsets
            .get(slot)
            .map_or(self.end, |&offset| u64::from(offset))
    }
}

/// The terms of the log, one (first index, term) pair per run of equal terms.
#[derive(Debug, Default)]
struct TermRuns {
    runs: Vec<(u64, u64)>,
}

impl TermRuns {
    fn push(&mut self, log_id: LogId) {
        match self.runs.last() {
            Some(&(_, term)) if term == log_id.term => {}
            _ => self.runs.push((log_id.index, log_id.term)),
        }
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        let after = self.runs.partition_point(|&(first, _)| first <= index);
        after.checked_sub(1).map(|run| self.runs[run].1)
    }

    /// Forgets entries from `index` on.
    fn truncate_from(&mut self, index: u64) {
        let keep = self.runs.partition_point(|&(first, _)| first < index);
        self.runs.truncate(keep);
    }

    /// Forgets runs that end before `index`.
    fn purge_before(&mut self, index: u64) {
        let covering = self.runs.partition_point(|&(first, _)| first <= index);
        if covering > 1 {
            self.runs.drain(..covering - 1);
        }
    }
}

/// The segmented, group-committed Raft log over a [`LogDisk`].
pub struct SegmentLog<D: LogDisk> {
    disk: D,
    options: LogOptions,
    segments: Vec<Segment<D::File>>,
    terms: TermRuns,
    purged: Option<LogId>,
    /// The index the next appended entry must have.
    next_index: u64,
    /// The newest segment has writes not yet synced.
    file_unsynced: bool,
    /// A segment was created since the directory was last synced.
    dir_unsynced: bool,
    /// An I/O error happened: refuse mutations until reopened.
    poisoned: bool,
    /// Where each fdatasync is timed (the server's `fsynctime`); its own when none is given.
    timings: Arc<StorageTimings>,
}

impl<D: LogDisk> std::fmt::Debug for SegmentLog<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentLog")
            .field("segments", &self.segments.len())
            .field("purged", &self.purged)
            .field("next_index", &self.next_index)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

mod segment_log;
pub use segment_log::LOG_DIRECTORY_NAME;

/// `range` as a half-open `start..end` of u64 (an unbounded end is `u64::MAX`).
fn range_bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&start) => start,
        Bound::Excluded(&start) => start.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&end) => end.saturating_add(1),
        Bound::Excluded(&end) => end,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}
