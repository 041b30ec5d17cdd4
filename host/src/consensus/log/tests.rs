//! Tests of the segmented log: behaviour, recovery (torn tail cut, middle damage refused), and
//! crash images from [`TestDisk`] at every mutation of a workload, checked against a model:
//! what reopens is a prefix of the old or the new log, and never loses an acknowledged write.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

/// Tiny segments so that workloads roll, truncate and purge across many files.
fn small_options() -> LogOptions {
    LogOptions {
        segment_bytes: 256,
        payload_bytes_max: 256 - SEGMENT_HEADER_BYTES - RECORD_HEADER_BYTES,
    }
}

fn entry(term: u64, index: u64, payload_bytes: usize) -> Entry {
    let pattern = format!("t{term}i{index}.");
    let payload: Vec<u8> = pattern.bytes().cycle().take(payload_bytes).collect();
    Entry {
        log_id: LogId { term, index },
        payload: Bytes::from(payload),
    }
}

/// `count` entries following `next_index` in `term`, with varied payload sizes.
fn batch(term: u64, next_index: u64, count: u64) -> Vec<Entry> {
    (next_index..next_index + count)
        .map(|index| entry(term, index, (index as usize * 37) % 90 + 1))
        .collect()
}

fn open(disk: &TestDisk, purged: Option<LogId>) -> SegmentLog<TestDisk> {
    SegmentLog::open(disk.clone(), small_options(), purged).unwrap()
}

fn read_all<D: LogDisk>(log: &SegmentLog<D>) -> Vec<Entry> {
    log.read(..).unwrap()
}

fn segment_names(disk: &TestDisk) -> Vec<String> {
    disk.list().unwrap()
}

#[test]
fn appends_read_back_across_segments_and_reopen() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    assert_eq!(log.last_log_id(), None);
    let mut all = Vec::new();
    for round in 0..10 {
        let entries = batch(1 + round / 4, log.next_index(), 1 + round % 4);
        log.append(&entries).unwrap();
        all.extend(entries);
    }
    assert!(segment_names(&disk).len() > 3, "small segments roll");
    assert_eq!(read_all(&log), all);
    assert_eq!(log.read(5..9).unwrap(), all[5..9].to_vec());
    assert_eq!(log.read(3..=3).unwrap(), all[3..4].to_vec());
    assert_eq!(log.read(100..200).unwrap(), Vec::new());
    let last = all.last().unwrap().log_id;
    assert_eq!(log.last_log_id(), Some(last));
    drop(log);
    let log = open(&disk.power_cut_image(Image::Synced), None);
    assert_eq!(read_all(&log), all);
    assert_eq!(log.last_log_id(), Some(last));
    assert_eq!(log.log_id_at(4), Some(all[4].log_id));
}

#[test]
fn rejects_gaps_lower_terms_and_oversized_payloads() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    log.append(&batch(2, 0, 3)).unwrap();
    let gap = log.append(&[entry(2, 4, 1)]);
    assert!(matches!(gap, Err(LogError::NotContiguous { index: 4, .. })));
    let lower = log.append(&[entry(1, 3, 1)]);
    assert!(matches!(lower, Err(LogError::NotContiguous { term: 1, .. })));
    let big = log.append(&[entry(2, 3, 201)]);
    assert!(matches!(big, Err(LogError::PayloadTooLarge { bytes: 201, .. })));
    // Refused batches are checked before any byte is written: the log is still usable.
    assert!(!log.is_poisoned());
    log.append(&[entry(2, 3, 200)]).unwrap();
    assert_eq!(log.last_log_id(), Some(LogId { term: 2, index: 3 }));
}

#[test]
fn real_disk_round_trip() {
    let dir = std::env::temp_dir().join(format!(
        "zkw-log-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let disk = FsDisk::new(&dir).unwrap();
    let mut log = SegmentLog::open(disk.clone(), small_options(), None).unwrap();
    let entries = batch(1, 0, 30);
    log.append(&entries).unwrap();
    log.truncate_after(Some(20)).unwrap();
    log.purge_upto(LogId { term: 1, index: 9 }).unwrap();
    drop(log);
    let log = SegmentLog::open(disk, small_options(), Some(LogId { term: 1, index: 9 })).unwrap();
    assert_eq!(read_all(&log), entries[10..21].to_vec());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The newest segment's name and bytes.
fn newest_segment(disk: &TestDisk) -> (String, Vec<u8>) {
    let name = segment_names(disk).into_iter().max().unwrap();
    let bytes = disk.file_bytes(&name).unwrap();
    (name, bytes)
}

#[test]
fn torn_tail_record_is_cut_and_appends_continue() {
    for cut_bytes in [1, 10, RECORD_HEADER_BYTES as usize, RECORD_HEADER_BYTES as usize + 3] {
        let disk = TestDisk::new();
        let mut log = open(&disk, None);
        let entries = batch(1, 0, 4);
        for entry in &entries {
            log.append(std::slice::from_ref(entry)).unwrap();
        }
        drop(log);
        let (name, bytes) = newest_segment(&disk);
        // A torn write of a 5th record: only its first `cut_bytes` bytes landed.
        let mut torn = Vec::new();
        record::encode_record(&mut torn, LogId { term: 1, index: 4 }, b"0123456789abcdef");
        let mut damaged = bytes.clone();
        damaged.extend_from_slice(&torn[..cut_bytes]);
        disk.overwrite_file(&name, damaged);
        let mut log = open(&disk, None);
        assert_eq!(read_all(&log), entries, "cut_bytes {cut_bytes}");
        assert_eq!(disk.file_bytes(&name).unwrap(), bytes, "the torn bytes are cut");
        log.append(&batch(1, 4, 1)).unwrap();
        assert_eq!(log.last_log_id(), Some(LogId { term: 1, index: 4 }));
    }
}

#[test]
fn crc_bad_last_record_is_cut() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    let entries = batch(1, 0, 3);
    log.append(&entries).unwrap();
    drop(log);
    let (name, mut bytes) = newest_segment(&disk);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    disk.overwrite_file(&name, bytes);
    let log = open(&disk, None);
    assert_eq!(read_all(&log), entries[..2].to_vec());
}

#[test]
fn torn_header_of_newest_segment_is_removed() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    log.append(&batch(1, 0, 3)).unwrap();
    drop(log);
    let name = segment_name(3);
    disk.create(&name).unwrap();
    disk.overwrite_file(&name, record::encode_header(3)[..20].to_vec());
    let mut log = open(&disk, None);
    assert!(!segment_names(&disk).contains(&name));
    assert_eq!(log.next_index(), 3);
    log.append(&batch(1, 3, 1)).unwrap();
}

#[test]
fn middle_damage_in_newest_segment_refuses_to_open() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    let entries: Vec<Entry> = (0..4).map(|index| entry(1, index, 5)).collect();
    log.append(&entries).unwrap();
    drop(log);
    let (name, mut bytes) = newest_segment(&disk);
    // The second record's payload: a valid record follows it, so it is not a torn tail.
    let second = SEGMENT_HEADER_BYTES as usize + 29 + RECORD_HEADER_BYTES as usize + 2;
    bytes[second] ^= 0x80;
    disk.overwrite_file(&name, bytes);
    match SegmentLog::open(disk.clone(), small_options(), None) {
        Err(OpenError::Corrupt { file, offset, .. }) => {
            assert_eq!(file, name);
            assert_eq!(offset, SEGMENT_HEADER_BYTES + 29);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn damaged_length_in_newest_segment_refuses_to_open() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    log.append(&batch(1, 0, 3)).unwrap();
    drop(log);
    let (name, mut bytes) = newest_segment(&disk);
    // First record's length field claims more than the file holds: looks torn, but valid
    // records follow.
    bytes[SEGMENT_HEADER_BYTES as usize + 1] = 0x7f;
    disk.overwrite_file(&name, bytes);
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(matches!(error, OpenError::Corrupt { offset: 32, .. }), "{error}");
    assert!(error.to_string().contains(&name), "{error}");
}

#[test]
fn damage_in_an_older_segment_refuses_to_open() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    log.append(&batch(1, 0, 12)).unwrap();
    drop(log);
    let oldest = segment_names(&disk).into_iter().min().unwrap();
    let mut bytes = disk.file_bytes(&oldest).unwrap();
    // Even the very last byte of an older segment is data that was synced: refuse.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    disk.overwrite_file(&oldest, bytes.clone());
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(matches!(&error, OpenError::Corrupt { file, .. } if *file == oldest), "{error}");
    // So is a torn (short) older segment.
    bytes[last] ^= 0x01;
    bytes.truncate(last);
    disk.overwrite_file(&oldest, bytes);
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(matches!(&error, OpenError::Corrupt { file, .. } if *file == oldest), "{error}");
}

#[test]
fn a_missing_segment_is_a_gap() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    log.append(&batch(1, 0, 12)).unwrap();
    drop(log);
    let mut names = segment_names(&disk);
    names.sort();
    assert!(names.len() >= 3);
    disk.remove(&names[1]).unwrap();
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(matches!(error, OpenError::Gap { .. }), "{error}");
    disk.remove(&names[0]).unwrap();
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(matches!(error, OpenError::Gap { .. }), "nothing purged: {error}");
}

#[test]
fn a_failed_write_or_sync_poisons_until_reopen() {
    for fault_at in 0..6 {
        let disk = TestDisk::new();
        let mut log = open(&disk, None);
        let durable = batch(1, 0, 2);
        log.append(&durable).unwrap();
        disk.arm(Fault::Fail {
            nth: disk.mutations() + fault_at,
        });
        let mut result = Ok(());
        for round in 0..3 {
            if result.is_err() {
                break;
            }
            result = log.append(&batch(1, log.next_index(), 2 + round));
        }
        assert!(result.is_err(), "fault {fault_at} was hit");
        assert!(log.is_poisoned());
        let again = log.append(&batch(1, log.next_index(), 1));
        assert!(matches!(again, Err(LogError::PreviousIo)));
        assert!(matches!(log.truncate_after(Some(0)), Err(LogError::PreviousIo)));
        drop(log);
        let log = open(&disk, None);
        let recovered = read_all(&log);
        assert!(recovered.len() >= durable.len());
        assert_eq!(recovered[..2], durable[..]);
    }
}
