//! Raft log recovery (`consensus::log::SegmentLog::open`) on the in-memory `TestDisk`, two
//! ways, chosen by the input's first byte (even: raw, odd: damaged).
//!
//! Raw: the segment files hold arbitrary bytes. The rest of the input is the purge mark `meta`
//! would pass and the directory:
//!
//! ```text
//! purged:  u8 tag (0: none; else term u64 LE, index u64 LE)
//! files:   repeated: first index u64 LE (names the file), length u32 LE, that many bytes
//!          (the last file takes whatever is left)
//! ```
//!
//! Damaged: the log itself writes entries (so every CRC is right and recovery gets past the
//! checksums), may purge a prefix, and then the input damages the files: flips a byte, cuts a
//! file, removes one, or appends junk. Every entry recovered must be one that was written, at
//! its index: recovery never invents data or leaves a hole.
//!
//! In both: open may refuse, but never panic. A log that opens must read back every entry it
//! claims, accept the next entry, and after a reopen hold exactly what it held plus that entry.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use zkw::consensus::log::{
    segment_name, Entry, LogDisk, LogFile, LogId, LogOptions, SegmentLog, TestDisk,
    LOG_SEGMENT_BYTES_MIN, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES,
};

/// Most entries the damaged mode writes.
const ENTRIES_MAX: u8 = 48;
/// Most damages the damaged mode applies.
const DAMAGES_MAX: usize = 8;

/// Cuts `N` bytes off the front of `data`.
fn take<const N: usize>(data: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = data.split_first_chunk::<N>()?;
    *data = rest;
    Some(*head)
}

fn byte(data: &mut &[u8]) -> u8 {
    take::<1>(data).map_or(0, |[value]| value)
}

fn read_purged(data: &mut &[u8]) -> Option<LogId> {
    if take::<1>(data)?[0] == 0 {
        return None;
    }
    let term = u64::from_le_bytes(take::<8>(data)?);
    let index = u64::from_le_bytes(take::<8>(data)?);
    Some(LogId { term, index })
}

/// Writes the files the raw input describes; a name given twice keeps its first bytes.
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

/// Opens the log; if it opens, checks it, appends the next entry and checks a reopen.
fn recover(disk: TestDisk, options: LogOptions, purged: Option<LogId>) -> Option<Vec<Entry>> {
    let mut log = SegmentLog::open(disk.clone(), options, purged).ok()?;
    let held = entries(&log);
    let index = log.next_index();
    if index == u64::MAX {
        // No index is left after this one: nothing can be appended.
        return Some(held);
    }
    let term = log.last_log_id().map_or(1, |last| last.term);
    let next = Entry {
        log_id: LogId { term, index },
        payload: Bytes::from_static(b"appended after recovery"),
    };
    log.append(std::slice::from_ref(&next))
        .expect("a recovered log takes the next entry");
    drop(log);
    let log = SegmentLog::open(disk, options, purged).expect("reopens");
    let mut expected = held.clone();
    expected.push(next);
    assert_eq!(
        entries(&log),
        expected,
        "reopened log holds what was written"
    );
    Some(held)
}

fn raw(mut data: &[u8]) {
    let purged = read_purged(&mut data);
    let disk = TestDisk::new();
    write_files(&disk, data);
    recover(disk, LogOptions::default(), purged);
}

/// Small segments (so entries span several files) and the largest payload they allow.
fn small_options(selector: u8) -> LogOptions {
    let segment_bytes = LOG_SEGMENT_BYTES_MIN + u64::from(selector) * 8;
    LogOptions {
        segment_bytes,
        payload_bytes_max: segment_bytes - SEGMENT_HEADER_BYTES - RECORD_HEADER_BYTES,
    }
}

/// What the damaged mode writes: entry `i` has index `i`, terms rise by the input's steps.
fn written_entries(data: &mut &[u8], options: LogOptions) -> Vec<Entry> {
    let count = byte(data) % (ENTRIES_MAX + 1);
    let mut term = 1;
    (0..u64::from(count))
        .map(|index| {
            term += u64::from(byte(data) % 3);
            let length = (u64::from(byte(data)) % (options.payload_bytes_max + 1)) as usize;
            let fill = (index as u8).wrapping_mul(31);
            Entry {
                log_id: LogId { term, index },
                payload: Bytes::from(vec![fill; length]),
            }
        })
        .collect()
}

/// One damage to one file of the log, as a crash, bit rot or an operator might leave it.
fn damage(disk: &TestDisk, data: &mut &[u8]) {
    let Some([kind, file, offset_low, offset_high, value]) = take::<5>(data) else {
        return;
    };
    let names = disk.list().expect("TestDisk lists");
    if names.is_empty() {
        return;
    }
    let name = &names[usize::from(file) % names.len()];
    let Some(mut bytes) = disk.file_bytes(name) else {
        return;
    };
    let offset = usize::from(u16::from_le_bytes([offset_low, offset_high]));
    match kind % 4 {
        0 => {
            if let Some(at) = offset.checked_rem(bytes.len()) {
                bytes[at] ^= value.max(1);
            }
        }
        1 => bytes.truncate(offset % (bytes.len() + 1)),
        2 => {
            disk.remove(name).expect("TestDisk removes");
            return;
        }
        _ => bytes.extend(std::iter::repeat_n(value, offset % 64 + 1)),
    }
    disk.overwrite_file(name, bytes);
}

fn damaged(mut data: &[u8]) {
    let options = small_options(byte(&mut data));
    let written = written_entries(&mut data, options);
    let disk = TestDisk::new();
    let mut log = SegmentLog::open(disk.clone(), options, None).expect("an empty log opens");
    log.append(&written)
        .expect("the log takes consecutive entries");
    let purge_at = usize::from(byte(&mut data));
    let purged = written.get(purge_at).map(|entry| entry.log_id);
    if let Some(purged) = purged {
        log.purge_upto(purged).expect("the log purges a prefix");
    }
    drop(log);
    for _ in 0..DAMAGES_MAX {
        damage(&disk, &mut data);
    }
    let Some(recovered) = recover(disk, options, purged) else {
        return;
    };
    for entry in &recovered {
        let original = usize::try_from(entry.log_id.index)
            .ok()
            .and_then(|index| written.get(index));
        assert_eq!(
            Some(entry),
            original,
            "recovered entries were written, at their index"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => damaged(rest),
        Some((_, rest)) => raw(rest),
        None => {}
    }
});
