//! Raft log recovery (`consensus::log::SegmentLog::open`) over a directory whose segment files
//! hold arbitrary bytes, on the in-memory `TestDisk`. The input is the purge mark `meta` would
//! pass and the directory:
//!
//! ```text
//! purged:  u8 tag (0: none; else term u64 LE, index u64 LE)
//! files:   repeated: first index u64 LE (names the file), length u32 LE, that many bytes
//!          (the last file takes whatever is left)
//! ```
//!
//! Open may refuse, but never panic. A log that opens must read back every entry it claims,
//! accept the next entry, and after a reopen hold exactly what it held plus that entry.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zkw::consensus::log::TestDisk;
use zkw::consensus::log::{segment_name, Entry, LogDisk, LogFile, LogId, LogOptions, SegmentLog};

/// Cuts `N` bytes off the front of `data`.
fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fn read_purged(data: &mut &[u8]) -> Option<LogId> {
    if take::<1>(data)?[0] == 0 {
        return None;
    }
    let term = u64::from_le_bytes(take::<8>(data)?);
    let index = u64::from_le_bytes(take::<8>(data)?);
    Some(LogId { term, index })
}

/// Writes the files the input describes; a name given twice keeps its first bytes.
fn write_files(disk: &TestDisk, mut data: &[u8]) {
    while let (Some(first_index), Some(length)) = (take::<8>(&mut data), take::<4>(&mut data)) {
        let length = (u32::from_le_bytes(length) as usize).min(data.len());
        let (bytes, rest) = data.split_at(length);
        data = rest;
        let Ok(file) = disk.create(&segment_name(u64::from_le_bytes(first_index))) else {
            continue;
        };
        file.write_at(0, bytes).expect("TestDisk writes");
    }
}

/// Every entry the log holds, checked against what it says about itself.
fn entries(log: &SegmentLog<TestDisk>) -> Vec<Entry> {
    let entries = log.read(..).expect("a recovered log reads back");
    let expected = log.next_index() - log.first_index();
    assert_eq!(
        entries.len() as u64,
        expected,
        "entries from first to next index"
    );
    for (entry, index) in entries.iter().zip(log.first_index()..) {
        assert_eq!(entry.log_id.index, index, "entries are consecutive");
        assert_eq!(log.log_id_at(index), Some(entry.log_id), "log_id_at agrees");
    }
    if let Some(last) = entries.last() {
        assert_eq!(log.last_log_id(), Some(last.log_id), "last_log_id agrees");
    }
    entries
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let purged = read_purged(&mut data);
    let disk = TestDisk::new();
    write_files(&disk, data);
    let Ok(mut log) = SegmentLog::open(disk.clone(), LogOptions::default(), purged) else {
        return;
    };
    let mut held = entries(&log);
    let index = log.next_index();
    if index == u64::MAX {
        // No index is left after this one: nothing can be appended.
        return;
    }
    let term = log.last_log_id().map_or(1, |last| last.term);
    let next = Entry {
        log_id: LogId { term, index },
        payload: Bytes::from_static(b"appended after recovery"),
    };
    log.append(std::slice::from_ref(&next))
        .expect("a recovered log takes the next entry");
    held.push(next);
    drop(log);
    let log = SegmentLog::open(disk, LogOptions::default(), purged).expect("reopens");
    assert_eq!(entries(&log), held, "reopened log holds what was written");
});
