//! Tests of the segmented log: behaviour, recovery (torn tail cut, middle damage refused), and
//! crash images from [`TestDisk`] at every mutation of a workload, checked against a model:
//! what reopens is a prefix of the old or the new log, and never loses an acknowledged write.

#![allow(clippy::unwrap_used)] // Tests may unwrap (COMMON.md).

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
    assert!(matches!(
        lower,
        Err(LogError::NotContiguous { term: 1, .. })
    ));
    let big = log.append(&[entry(2, 3, 201)]);
    assert!(matches!(
        big,
        Err(LogError::PayloadTooLarge { bytes: 201, .. })
    ));
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
    for cut_bytes in [
        1,
        10,
        RECORD_HEADER_BYTES as usize,
        RECORD_HEADER_BYTES as usize + 3,
    ] {
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
        assert_eq!(
            disk.file_bytes(&name).unwrap(),
            bytes,
            "the torn bytes are cut"
        );
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
    assert!(
        matches!(error, OpenError::Corrupt { offset: 32, .. }),
        "{error}"
    );
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
    assert!(
        matches!(&error, OpenError::Corrupt { file, .. } if *file == oldest),
        "{error}"
    );
    // So is a torn (short) older segment.
    bytes[last] ^= 0x01;
    bytes.truncate(last);
    disk.overwrite_file(&oldest, bytes);
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(
        matches!(&error, OpenError::Corrupt { file, .. } if *file == oldest),
        "{error}"
    );
}

/// Fuzz regression (log_segment): a purge mark at the last index left no index after it, and
/// open overflowed computing one.
#[test]
fn a_purge_mark_at_the_last_index_refuses_to_open() {
    for disk in [TestDisk::new(), {
        let disk = TestDisk::new();
        open(&disk, None).append(&batch(1, 0, 3)).unwrap();
        disk
    }] {
        let purged = Some(LogId {
            term: 1,
            index: u64::MAX,
        });
        let error = SegmentLog::open(disk, small_options(), purged).unwrap_err();
        assert!(matches!(error, OpenError::Gap { .. }), "{error}");
    }
}

/// Fuzz regression (log_segment): an older segment cut to its header held no record, so the
/// segment after it was never checked against it; open accepted the hole and the first read
/// of it looped forever (or reached `unreachable!`).
#[test]
fn an_emptied_older_segment_is_a_gap() {
    let disk = TestDisk::new();
    open(&disk, None).append(&batch(1, 0, 12)).unwrap();
    let oldest = segment_names(&disk).into_iter().min().unwrap();
    let mut bytes = disk.file_bytes(&oldest).unwrap();
    bytes.truncate(SEGMENT_HEADER_BYTES as usize);
    disk.overwrite_file(&oldest, bytes);
    let error = SegmentLog::open(disk.clone(), small_options(), None).unwrap_err();
    assert!(matches!(error, OpenError::Gap { .. }), "{error}");
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
    assert!(
        matches!(error, OpenError::Gap { .. }),
        "nothing purged: {error}"
    );
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
        assert!(matches!(
            log.truncate_after(Some(0)),
            Err(LogError::PreviousIo)
        ));
        drop(log);
        let log = open(&disk, None);
        let recovered = read_all(&log);
        assert!(recovered.len() >= durable.len());
        assert_eq!(recovered[..2], durable[..]);
    }
}

/// A step of a crash-test workload.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Entry>),
    Truncate(Option<u64>),
    /// `meta.save_purged` then `purge_upto`, as the openraft adapter does.
    Purge(LogId),
}

/// What the log should hold: every entry by index (purged ones too) and the purge mark.
#[derive(Debug, Clone, Default)]
struct Model {
    entries: Vec<Entry>,
    purged: Option<LogId>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(entries) => self.entries.extend(entries.iter().cloned()),
            Op::Truncate(last_kept) => self
                .entries
                .truncate(last_kept.map_or(0, |i| i + 1) as usize),
            Op::Purge(log_id) => self.purged = Some(*log_id),
        }
    }
}

/// Outcome of a workload run on a disk that may crash.
struct Run {
    /// The model after the last operation that returned Ok.
    acknowledged: Model,
    /// The model had the failed operation succeeded.
    attempted: Option<Model>,
    /// What `meta` would hold: the purge mark is saved before `purge_upto` runs.
    meta_purged: Option<LogId>,
}

fn run_workload(disk: &TestDisk, ops: &[Op]) -> Run {
    let mut log = open(disk, None);
    let mut run = Run {
        acknowledged: Model::default(),
        attempted: None,
        meta_purged: None,
    };
    for op in ops {
        let mut next = run.acknowledged.clone();
        next.apply(op);
        let result = match op {
            Op::Append(entries) => log.append(entries),
            Op::Truncate(last_kept) => log.truncate_after(*last_kept),
            Op::Purge(log_id) => {
                run.meta_purged = Some(*log_id);
                log.purge_upto(*log_id)
            }
        };
        if result.is_err() {
            run.attempted = Some(next);
            return run;
        }
        run.acknowledged = next;
    }
    run
}

/// Reopens a crash image and checks it holds a prefix of the acknowledged or the attempted
/// log that keeps everything both agree on (so every acknowledged write that was not being
/// truncated), and that it takes new appends.
fn check_recovered(image: &TestDisk, run: &Run, context: &str) {
    let mut log = SegmentLog::open(image.clone(), small_options(), run.meta_purged)
        .unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    let got = read_all(&log);
    let first = run.meta_purged.map_or(0, |purged| purged.index + 1) as usize;
    let acknowledged = &run.acknowledged.entries;
    let candidates: Vec<&Vec<Entry>> = std::iter::once(acknowledged)
        .chain(run.attempted.as_ref().map(|model| &model.entries))
        .collect();
    let agreed = candidates.iter().fold(acknowledged.len(), |agreed, model| {
        let common = acknowledged
            .iter()
            .zip(model.iter())
            .take_while(|(a, b)| a == b);
        agreed.min(common.count())
    });
    let end = first + got.len();
    let fits = candidates.iter().any(|model| {
        end <= model.len() && got[..] == model[first..end] && end >= agreed.max(first)
    });
    assert!(
        fits,
        "{context}: recovered indexes {first}..{end}, acknowledged {}, agreed {agreed}",
        acknowledged.len()
    );
    let term = got.last().map_or(1, |entry| entry.log_id.term).max(3);
    log.append(&[entry(term, log.next_index(), 9)])
        .unwrap_or_else(|error| panic!("{context}: append after reopen: {error}"));
}

/// Runs `ops` once to count the disk mutations, then again crashing at each one (whole or
/// torn), checking both the synced-only and the everything-written image.
fn crash_at_every_mutation(ops: &[Op]) {
    let dry_run = TestDisk::new();
    let run = run_workload(&dry_run, ops);
    assert!(
        run.attempted.is_none(),
        "the workload runs clean without faults"
    );
    let mutations = dry_run.mutations();
    for nth in 0..mutations {
        for torn_bytes in [None, Some(7), Some(40)] {
            let disk = TestDisk::new();
            disk.arm(Fault::Crash { nth, torn_bytes });
            let run = run_workload(&disk, ops);
            for image in [Image::Synced, Image::Written] {
                let context =
                    format!("crash at mutation {nth}/{mutations} {torn_bytes:?} {image:?}");
                check_recovered(&disk.power_cut_image(image), &run, &context);
            }
        }
    }
}

#[test]
fn crash_at_every_point_of_appends_keeps_every_acknowledged_batch() {
    let mut ops = Vec::new();
    let mut next_index = 0;
    for round in 0..12u64 {
        let count = [1, 3, 1, 5, 2, 4][round as usize % 6];
        ops.push(Op::Append(batch(1 + round / 5, next_index, count)));
        next_index += count;
    }
    crash_at_every_mutation(&ops);
}

#[test]
fn crash_at_every_point_of_truncate_and_purge() {
    let model_id = |ops: &[Op], index: u64| {
        let mut model = Model::default();
        ops.iter().for_each(|op| model.apply(op));
        model.entries[index as usize].log_id
    };
    let mut ops = vec![
        Op::Append(batch(1, 0, 6)),
        Op::Append(batch(1, 6, 8)),
        Op::Truncate(Some(8)),
        Op::Append(batch(2, 9, 7)),
    ];
    ops.push(Op::Purge(model_id(&ops, 5)));
    ops.push(Op::Append(batch(2, 16, 3)));
    ops.push(Op::Truncate(Some(11)));
    ops.push(Op::Append(batch(3, 12, 4)));
    ops.push(Op::Purge(model_id(&ops, 13)));
    ops.push(Op::Truncate(Some(14)));
    ops.push(Op::Append(batch(4, 15, 2)));
    crash_at_every_mutation(&ops);
}

#[test]
fn purge_past_the_end_then_append_and_reopen() {
    let disk = TestDisk::new();
    let mut log = open(&disk, None);
    log.append(&batch(1, 0, 5)).unwrap();
    let snapshot = LogId { term: 3, index: 20 };
    log.purge_upto(snapshot).unwrap();
    assert!(segment_names(&disk).is_empty());
    assert_eq!(log.last_log_id(), Some(snapshot));
    assert_eq!(log.next_index(), 21);
    assert_eq!(read_all(&log), Vec::new());
    drop(log);
    let mut log = open(&disk.power_cut_image(Image::Synced), Some(snapshot));
    assert_eq!(log.last_log_id(), Some(snapshot));
    log.append(&batch(3, 21, 2)).unwrap();
    assert_eq!(read_all(&log), batch(3, 21, 2));
    assert!(matches!(
        log.truncate_after(Some(19)),
        Err(LogError::TruncateBelowPurged { purged: 20, .. })
    ));
}

/// A step of the property test; sizes are fractions so every step is valid on any log.
#[derive(Debug, Clone)]
enum Step {
    Append {
        count: u64,
        payload_bytes: usize,
        new_term: bool,
    },
    /// Keep this fraction (per mille) of the entries above the purge mark.
    Truncate { keep_per_mille: u64 },
    /// Purge this fraction (per mille) of the entries; above 1000 purges past the end.
    Purge { upto_per_mille: u64 },
    /// Power cut after the step before (every step syncs, so nothing may be lost).
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1..6u64, 0..120usize, any::<bool>()).prop_map(|(count, payload_bytes, new_term)| {
            Step::Append { count, payload_bytes, new_term }
        }),
        1 => (0..1000u64).prop_map(|keep_per_mille| Step::Truncate { keep_per_mille }),
        1 => (0..1300u64).prop_map(|upto_per_mille| Step::Purge { upto_per_mille }),
        1 => Just(Step::Reopen),
    ]
}

/// The property test's model: the readable entries and the purge mark.
#[derive(Debug, Default)]
struct VecModel {
    purged: Option<LogId>,
    entries: Vec<Entry>,
    term: u64,
}

impl VecModel {
    fn first_index(&self) -> u64 {
        self.purged.map_or(0, |purged| purged.index + 1)
    }

    fn next_index(&self) -> u64 {
        self.first_index() + self.entries.len() as u64
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .last()
            .map(|entry| entry.log_id)
            .or(self.purged)
    }
}

fn run_step(
    disk: &mut TestDisk,
    log: &mut SegmentLog<TestDisk>,
    model: &mut VecModel,
    step: &Step,
) {
    match *step {
        Step::Append {
            count,
            payload_bytes,
            new_term,
        } => {
            model.term = model.term.max(1) + u64::from(new_term);
            let entries: Vec<Entry> = (model.next_index()..model.next_index() + count)
                .map(|index| entry(model.term, index, payload_bytes))
                .collect();
            log.append(&entries).unwrap();
            model.entries.extend(entries);
        }
        Step::Truncate { keep_per_mille } => {
            let keep = model.entries.len() as u64 * keep_per_mille / 1000;
            let last_kept = (model.first_index() + keep).checked_sub(1);
            log.truncate_after(last_kept).unwrap();
            model.entries.truncate(keep as usize);
        }
        Step::Purge { upto_per_mille } => {
            // Up to 1000 per mille: within the log; above: that many fiftieths past its end.
            let count = model.entries.len() as u64 * upto_per_mille.min(1000) / 1000
                + upto_per_mille.saturating_sub(1000) / 50;
            if count == 0 {
                return;
            }
            let log_id = match model.entries.get(count as usize - 1) {
                Some(entry) => entry.log_id,
                None => {
                    model.term = model.term.max(1);
                    LogId {
                        term: model.term,
                        index: model.first_index() + count - 1,
                    }
                }
            };
            log.purge_upto(log_id).unwrap();
            model
                .entries
                .drain(..(count as usize).min(model.entries.len()));
            model.purged = Some(log_id);
        }
        Step::Reopen => {
            *disk = disk.power_cut_image(Image::Synced);
            *log = open(disk, model.purged);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_steps_match_a_vec_model(steps in proptest::collection::vec(step(), 1..40)) {
        let mut disk = TestDisk::new();
        let mut log = open(&disk, None);
        let mut model = VecModel::default();
        for step in &steps {
            run_step(&mut disk, &mut log, &mut model, step);
            prop_assert_eq!(read_all(&log), model.entries.clone());
            prop_assert_eq!(log.last_log_id(), model.last_log_id());
            prop_assert_eq!(log.first_index(), model.first_index());
            prop_assert_eq!(log.next_index(), model.next_index());
        }
        disk = disk.power_cut_image(Image::Synced);
        let log = open(&disk, model.purged);
        prop_assert_eq!(read_all(&log), model.entries);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Damage anywhere (flipped bytes, a cut, garbage appended) never panics and is never
    /// misread: open either refuses, or returns entries equal to what was written.
    #[test]
    fn damaged_segments_are_refused_or_read_correctly(
        segment_pick in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 0..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        garbage in proptest::collection::vec(any::<u8>(), 0..60),
    ) {
        let disk = TestDisk::new();
        let mut log = open(&disk, None);
        let written = batch(1, 0, 20);
        log.append(&written).unwrap();
        drop(log);
        let names = segment_names(&disk);
        let name = &names[segment_pick.index(names.len())];
        let mut bytes = disk.file_bytes(name).unwrap();
        for (at, mask) in &flips {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(&garbage);
        disk.overwrite_file(name, bytes);
        if let Ok(log) = SegmentLog::open(disk.clone(), small_options(), None) {
            let read = log.read(..);
            if let Ok(entries) = read {
                prop_assert_eq!(&entries[..], &written[..entries.len()]);
            }
        }
    }
}
