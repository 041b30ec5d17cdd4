//! The operations of [`SegmentLog`]: open (recovery), append (group commit), read, truncate
//! and purge. The format and the durability rules are described in `log/mod.rs`.

use std::io;
use std::sync::Arc;

use bytes::Bytes;

use crate::fatal::Step;
use crate::timing::StorageTimings;

use super::recover::{self, Scanned};
use super::{
    range_bounds, record, Entry, LogDisk, LogError, LogFile, LogId, LogOptions, OpenError, Segment,
    SegmentLog, TermRuns,
};

fn io_error(step: Step, file: &str) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        step,
        file: file.to_string(),
        source,
    }
}

/// The name used for the log directory itself in errors (its syncs).
pub const LOG_DIRECTORY_NAME: &str = "<log directory>";

impl<D: LogDisk> SegmentLog<D> {
    /// Opens the log in `disk`, recovering what a crash left. `purged` is the last purged log
    /// id saved in `meta` (None if nothing was ever purged): entries at or below it are hidden
    /// and segments holding only such entries are deleted.
    pub fn open(disk: D, options: LogOptions, purged: Option<LogId>) -> Result<Self, OpenError> {
        options.check()?;
        if let Some(purged) = purged.filter(|purged| purged.index == u64::MAX) {
            // Found by the log_segment fuzz target: every index after it overflowed.
            return Err(OpenError::Gap {
                reason: format!("purged log id {purged:?} leaves no index for another entry"),
            });
        }
        let names = recover::list_segments(&disk)?;
        let mut segments: Vec<Segment<D::File>> = Vec::with_capacity(names.len());
        let mut terms = TermRuns::default();
        let mut previous: Option<LogId> = None;
        let mut removed = false;
        for (position, (first_index, name)) in names.iter().enumerate() {
            let last = position + 1 == names.len();
            let scanned = recover::scan_segment(
                &disk,
                name,
                *first_index,
                last,
                previous,
                options.payload_bytes_max,
                &mut terms,
            )?;
            match scanned {
                Scanned::Segment(segment) => {
                    // Found by the log_segment fuzz target: a segment without records is no
                    // `previous`, so the one after it went unchecked, and reads of the hole
                    // between them looped or hit `unreachable!`.
                    if let Some(before) = segments.last() {
                        if segment.first_index != before.next_index() {
                            return Err(OpenError::Gap {
                                reason: format!(
                                    "{} starts at {}, but {} ends before {}",
                                    segment.name,
                                    segment.first_index,
                                    before.name,
                                    before.next_index()
                                ),
                            });
                        }
                    }
                    if segment.next_index() > segment.first_index {
                        let index = segment.next_index() - 1;
                        // scan_segment recorded the term of every entry it accepted.
                        let term = terms.term_of(index).unwrap_or(0);
                        previous = Some(LogId { term, index });
                    }
                    segments.push(segment);
                }
                Scanned::Removed => removed = true,
            }
        }
        let mut log = SegmentLog {
            disk,
            options,
            next_index: segments.last().map_or(0, |segment| segment.next_index()),
            segments,
            terms,
            purged: None,
            file_unsynced: false,
            dir_unsynced: removed,
            poisoned: false,
            timings: Arc::default(),
        };
        log.apply_purged_on_open(purged)?;
        if log.dir_unsynced {
            log.disk.sync_dir().map_err(|source| OpenError::Io {
                file: "<log directory>".to_string(),
                source,
            })?;
            log.dir_unsynced = false;
        }
        Ok(log)
    }

    /// Checks the segments against the purge mark from `meta` and finishes a purge that a
    /// crash interrupted.
    fn apply_purged_on_open(&mut self, purged: Option<LogId>) -> Result<(), OpenError> {
        let Some(purged) = purged else {
            return match self.segments.first() {
                Some(first) if first.first_index != 0 => Err(OpenError::Gap {
                    reason: format!(
                        "the log starts at index {} but nothing was purged",
                        first.first_index
                    ),
                }),
                _ => Ok(()),
            };
        };
        if let Some(first) = self.segments.first() {
            if first.first_index > purged.index + 1 {
                return Err(OpenError::Gap {
                    reason: format!(
                        "the log starts at index {} but only up to {purged:?} was purged",
                        first.first_index
                    ),
                });
            }
        }
        if purged.index < self.next_index {
            let term = self.terms.term_of(purged.index);
            if term.is_some_and(|term| term != purged.term) {
                return Err(OpenError::Gap {
                    reason: format!("purged log id {purged:?} but the log has term {term:?}"),
                });
            }
        }
        self.purge_segments(purged).map_err(|error| match error {
            LogError::Io { file, source, .. } => OpenError::Io { file, source },
            other => OpenError::Gap {
                reason: other.to_string(),
            },
        })
    }

    /// Times each fdatasync in `timings` (the server's `fsynctime`) from now on.
    pub fn with_fsync_timing(mut self, timings: Arc<StorageTimings>) -> Self {
        self.timings = timings;
        self
    }

    /// The log id of the newest entry, or the purged log id when no entry is left.
    pub fn last_log_id(&self) -> Option<LogId> {
        let last_index = self.next_index.checked_sub(1)?;
        match self.purged {
            Some(purged) if purged.index >= last_index => Some(purged),
            _ => self.terms.term_of(last_index).map(|term| LogId {
                term,
                index: last_index,
            }),
        }
    }

    /// The newest purged log id (as given to `open` or `purge_upto`).
    pub fn last_purged_log_id(&self) -> Option<LogId> {
        self.purged
    }

    /// The index of the oldest readable entry (the next index if the log is empty).
    pub fn first_index(&self) -> u64 {
        self.purged.map_or(0, |purged| purged.index + 1)
    }

    /// The index the next appended entry must have.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The log id of the entry at `index`, from memory, if the log holds it.
    pub fn log_id_at(&self, index: u64) -> Option<LogId> {
        if index < self.first_index() || index >= self.next_index {
            return None;
        }
        self.terms.term_of(index).map(|term| LogId { term, index })
    }

    /// True after an I/O error: mutations answer [`LogError::PreviousIo`] until reopened.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    fn check_usable(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::PreviousIo);
        }
        Ok(())
    }

    /// Marks the log poisoned if `result` is an I/O error.
    fn poison_on_io<T>(&mut self, result: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(LogError::Io { step, file, source }) = &result {
            // Not an error line: the caller reports it (the server fails stop, one line).
            tracing::debug!(%step, file, %source, "log I/O failed; refusing writes until reopened");
            self.poisoned = true;
        }
        result
    }

    /// Group commit: writes all of `entries`, then makes them durable with one sync. When this
    /// returns Ok, every entry is on disk.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.write_batch(entries)?;
        self.flush()
    }

    /// Writes `entries` (consecutive, starting at [`Self::next_index`], terms not decreasing)
    /// without syncing: they are readable at once, durable after [`Self::flush`].
    pub fn write_batch(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        self.check_usable()?;
        self.check_batch(entries)?;
        let result = self.write_batch_unchecked(entries);
        self.poison_on_io(result)
    }

    fn check_batch(&self, entries: &[Entry]) -> Result<(), LogError> {
        let mut last = self.last_log_id();
        for entry in entries {
            let expected_index = last.map_or(0, |last| last.index + 1);
            let term_min = last.map_or(0, |last| last.term);
            if entry.log_id.index != expected_index || entry.log_id.term < term_min {
                return Err(LogError::NotContiguous {
                    index: entry.log_id.index,
                    term: entry.log_id.term,
                    last: format!("{last:?}"),
                });
            }
            let payload_bytes = entry.payload.len() as u64;
            if payload_bytes > self.options.payload_bytes_max {
                return Err(LogError::PayloadTooLarge {
                    index: entry.log_id.index,
                    bytes: payload_bytes,
                });
            }
            last = Some(entry.log_id);
        }
        Ok(())
    }

    fn write_batch_unchecked(&mut self, entries: &[Entry]) -> Result<(), LogError> {
        let mut rest = entries;
        let mut buffer = Vec::new();
        while let Some(first) = rest.first() {
            let room = self.ensure_room(record::record_bytes(first.payload.len() as u64))?;
            let mut count = 0;
            let mut bytes = 0;
            while let Some(entry) = rest.get(count) {
                let entry_bytes = record::record_bytes(entry.payload.len() as u64);
                if bytes + entry_bytes > room {
                    break;
                }
                bytes += entry_bytes;
                count += 1;
            }
            // ensure_room guarantees the first record fits.
            assert!(count >= 1, "a record must fit in a fresh segment");
            buffer.clear();
            self.write_chunk(&rest[..count], &mut buffer)?;
            rest = &rest[count..];
        }
        Ok(())
    }

    /// Makes sure the newest segment can take a record of `record_bytes`, starting a new one
    /// if needed; returns the bytes the newest segment has room for.
    fn ensure_room(&mut self, record_bytes: u64) -> Result<u64, LogError> {
        let segment_bytes = self.options.segment_bytes;
        let roll = match self.segments.last() {
            None => true,
            Some(segment) => {
                segment.next_index() != self.next_index
                    || (!segment.offsets.is_empty() && segment.end + record_bytes > segment_bytes)
            }
        };
        if roll {
            self.start_segment()?;
        }
        let end = self.segments.last().map_or(0, |segment| segment.end);
        Ok(segment_bytes.saturating_sub(end))
    }

    /// Syncs the newest segment (so that only the newest can ever have a torn tail), then
    /// creates the next one, named by the next index.
    fn start_segment(&mut self) -> Result<(), LogError> {
        let rotate = Step::LogSegmentRotate;
        if let Some(segment) = self.segments.last() {
            // Every rotation passes the failpoint, whether or not the segment still needs its
            // sync (group commit usually synced it already).
            self.disk
                .failpoint(rotate)
                .map_err(io_error(rotate, &segment.name))?;
            if self.file_unsynced {
                segment
                    .file
                    .sync_data()
                    .map_err(io_error(rotate, &segment.name))?;
            }
        }
        self.file_unsynced = false;
        let name = recover::segment_name(self.next_index);
        let create = Step::LogSegmentCreate;
        self.disk
            .failpoint(create)
            .map_err(io_error(create, &name))?;
        let file = self.disk.create(&name).map_err(io_error(create, &name))?;
        self.dir_unsynced = true;
        let header = record::encode_header(self.next_index);
        file.write_at(0, &header).map_err(io_error(create, &name))?;
        self.file_unsynced = true;
        self.segments.push(Segment {
            name,
            file,
            first_index: self.next_index,
            offsets: Vec::new(),
            end: record::SEGMENT_HEADER_BYTES,
        });
        Ok(())
    }

    /// Writes `entries`, which fit, to the newest segment in one `write_at`.
    fn write_chunk(&mut self, entries: &[Entry], buffer: &mut Vec<u8>) -> Result<(), LogError> {
        let Some(segment) = self.segments.last_mut() else {
            unreachable!("ensure_room created a segment");
        };
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in entries {
            offsets.push(segment.end + buffer.len() as u64);
            record::encode_record(buffer, entry.log_id, &entry.payload);
        }
        self.file_unsynced = true;
        let append = Step::LogAppend;
        self.disk
            .failpoint(append)
            .map_err(io_error(append, &segment.name))?;
        segment
            .file
            .write_at(segment.end, buffer)
            .map_err(io_error(append, &segment.name))?;
        for (entry, offset) in entries.iter().zip(offsets) {
            // Below segment_bytes, which is at most LOG_SEGMENT_BYTES_MAX (u32).
            segment.offsets.push(offset as u32);
            self.terms.push(entry.log_id);
        }
        segment.end += buffer.len() as u64;
        self.next_index += entries.len() as u64;
        debug_assert_eq!(segment.next_index(), self.next_index);
        Ok(())
    }

    /// Makes everything written so far durable: one `fdatasync` of the newest segment, plus
    /// the directory if a segment was created since the last flush.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.check_usable()?;
        let result = self.flush_unchecked();
        self.poison_on_io(result)
    }

    fn flush_unchecked(&mut self) -> Result<(), LogError> {
        if self.file_unsynced {
            if let Some(segment) = self.segments.last() {
                let started = crate::clock::Stopwatch::start();
                let sync = Step::LogFdatasync;
                self.disk
                    .failpoint(sync)
                    .map_err(io_error(sync, &segment.name))?;
                segment
                    .file
                    .sync_data()
                    .map_err(io_error(sync, &segment.name))?;
                self.timings.fsync_ms.record_since(&started);
            }
            self.file_unsynced = false;
        }
        if self.dir_unsynced {
            let sync = Step::LogDirSync;
            self.disk
                .sync_dir()
                .map_err(io_error(sync, LOG_DIRECTORY_NAME))?;
            self.dir_unsynced = false;
        }
        Ok(())
    }
}

impl<D: LogDisk> SegmentLog<D> {
    /// The entries with indexes in `range` that the log holds (purged ones and ones past the
    /// end are left out), each checked against its CRC as it is read.
    pub fn read(&self, range: impl std::ops::RangeBounds<u64>) -> Result<Vec<Entry>, LogError> {
        let (start, end) = range_bounds(&range);
        let start = start.max(self.first_index());
        let end = end.min(self.next_index);
        let mut entries = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut index = start;
        while index < end {
            let slot = self
                .segments
                .partition_point(|segment| segment.first_index <= index);
            let Some(segment) = slot.checked_sub(1).map(|slot| &self.segments[slot]) else {
                unreachable!("indexes from first_index to next_index are in segments");
            };
            let chunk_end = end.min(segment.next_index());
            self.read_chunk(segment, index, chunk_end, &mut entries)?;
            index = chunk_end;
        }
        Ok(entries)
    }

    /// Reads entries `start..end` of one segment with a single `read_at`.
    fn read_chunk(
        &self,
        segment: &Segment<D::File>,
        start: u64,
        end: u64,
        entries: &mut Vec<Entry>,
    ) -> Result<(), LogError> {
        let from = segment.offset_of(start);
        let to = segment.offset_of(end);
        let mut buffer = vec![0u8; (to - from) as usize];
        segment
            .file
            .read_at(from, &mut buffer)
            .map_err(io_error(Step::LogRead, &segment.name))?;
        let buffer = Bytes::from(buffer);
        let mut at = 0usize;
        for index in start..end {
            let corrupt = |reason: String| LogError::Corrupt {
                file: segment.name.clone(),
                offset: from + at as u64,
                reason,
            };
            let view = record::decode_record(&buffer[at..], self.options.payload_bytes_max)
                .map_err(|fault| corrupt(fault.to_string()))?;
            if view.log_id.index != index {
                return Err(corrupt(format!(
                    "index {} where {index} belongs",
                    view.log_id.index
                )));
            }
            let payload_at = at + record::RECORD_HEADER_BYTES as usize;
            let payload_end = payload_at + view.payload.len();
            entries.push(Entry {
                log_id: view.log_id,
                payload: buffer.slice(payload_at..payload_end),
            });
            at = payload_end;
        }
        Ok(())
    }
}

impl<D: LogDisk> SegmentLog<D> {
    /// Removes every entry after `last_kept` (all of them for None): later segments are
    /// deleted newest first and the directory synced, then the segment holding `last_kept` is
    /// cut and synced. A crash part way leaves a prefix of the old log, never a hole.
    pub fn truncate_after(&mut self, last_kept: Option<u64>) -> Result<(), LogError> {
        self.check_usable()?;
        let keep_next = last_kept.map_or(0, |index| index + 1);
        if let Some(purged) = self.purged {
            if keep_next <= purged.index {
                return Err(LogError::TruncateBelowPurged {
                    last_kept,
                    purged: purged.index,
                });
            }
        }
        if keep_next >= self.next_index {
            return Ok(());
        }
        let result = self.truncate_unchecked(keep_next);
        self.poison_on_io(result)
    }

    fn truncate_unchecked(&mut self, keep_next: u64) -> Result<(), LogError> {
        let mut removed = false;
        while let Some(segment) = self.segments.last() {
            if segment.first_index < keep_next {
                break;
            }
            self.disk
                .remove(&segment.name)
                .map_err(io_error(Step::LogTruncate, &segment.name))?;
            self.segments.pop();
            removed = true;
            // The removed segment's unsynced writes no longer matter.
            self.file_unsynced = false;
        }
        if removed || self.dir_unsynced {
            self.disk
                .sync_dir()
                .map_err(io_error(Step::LogTruncate, LOG_DIRECTORY_NAME))?;
            self.dir_unsynced = false;
        }
        if let Some(segment) = self.segments.last_mut() {
            if segment.next_index() > keep_next {
                let new_end = segment.offset_of(keep_next);
                segment
                    .file
                    .set_len(new_end)
                    .map_err(io_error(Step::LogTruncate, &segment.name))?;
                segment
                    .file
                    .sync_data()
                    .map_err(io_error(Step::LogTruncate, &segment.name))?;
                segment
                    .offsets
                    .truncate((keep_next - segment.first_index) as usize);
                segment.end = new_end;
                self.file_unsynced = false;
            }
        }
        self.terms.truncate_from(keep_next);
        self.next_index = keep_next;
        Ok(())
    }

    /// Forgets every entry up to and including `log_id`. Whole segments are deleted once all
    /// their entries are purged; a partly purged segment stays and its old entries are hidden.
    /// The caller saves `log_id` in `meta` first (see `log/mod.rs`). Purging past the last
    /// entry (after a snapshot install) empties the log; the next entry then follows `log_id`.
    pub fn purge_upto(&mut self, log_id: LogId) -> Result<(), LogError> {
        self.check_usable()?;
        if self
            .purged
            .is_some_and(|purged| purged.index >= log_id.index)
        {
            return Ok(());
        }
        if let Some(known) = self.log_id_at(log_id.index) {
            assert_eq!(
                known, log_id,
                "purge_upto: log id differs from the log's entry"
            );
        }
        let result = self.purge_segments(log_id);
        self.poison_on_io(result)
    }

    fn purge_segments(&mut self, log_id: LogId) -> Result<(), LogError> {
        self.purged = Some(log_id);
        let mut removed = 0;
        for segment in &self.segments {
            if segment.next_index() > log_id.index + 1 {
                break;
            }
            self.disk
                .remove(&segment.name)
                .map_err(io_error(Step::LogPurge, &segment.name))?;
            removed += 1;
        }
        if removed == self.segments.len() {
            // The newest segment went too: its unsynced writes no longer matter.
            self.file_unsynced = false;
        }
        self.segments.drain(..removed);
        if removed > 0 {
            self.disk
                .sync_dir()
                .map_err(io_error(Step::LogPurge, LOG_DIRECTORY_NAME))?;
            self.dir_unsynced = false;
        }
        if log_id.index >= self.next_index {
            self.next_index = log_id.index + 1;
            self.terms = TermRuns::default();
        } else {
            self.terms.purge_before(log_id.index + 1);
        }
        Ok(())
    }
}
