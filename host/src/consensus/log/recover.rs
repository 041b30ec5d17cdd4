//! Recovery: what [`super::SegmentLog::open`] does with the files it finds. Every segment is
//! read and every record checked (CRC, index continuity, terms never decreasing). A fault at the
//! very tail of the last segment is what a crash during an unsynced append leaves: it is cut off
//! with a warning. Any other fault, or a gap between segments, refuses to open, naming the file
//! and byte offset: recovery never drops data it cannot explain.

use super::disk::{LogDisk, LogFile};
use super::error::OpenError;
use super::record::{self, RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES};
use super::{LogId, Segment, TermRuns};

/// File name suffix of a segment; the stem is the first index, zero-padded to 20 digits.
pub const SEGMENT_SUFFIX: &str = ".seg";
/// Digits in a segment file name's stem (`u64::MAX` has 20).
const SEGMENT_NAME_DIGITS: usize = 20;

pub fn segment_name(first_index: u64) -> String {
    format!(
        "{first_index:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    )
}

/// The first index a segment file name carries, or `None` if the name is not a segment's.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != SEGMENT_NAME_DIGITS || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The segment names in the directory, ordered by first index.
pub fn list_segments<D: LogDisk>(disk: &D) -> Result<Vec<(u64, String)>, OpenError> {
    let names = disk.list().map_err(|source| OpenError::Io {
        file: "<log directory>".to_string(),
        source,
    })?;
    let mut segments: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|first| (first, name)))
        .collect();
    segments.sort();
    Ok(segments)
}

fn io_error(file: &str) -> impl FnOnce(std::io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        file: file.to_string(),
        source,
    }
}

fn corrupt(file: &str, offset: u64, reason: impl Into<String>) -> OpenError {
    OpenError::Corrupt {
        file: file.to_string(),
        offset,
        reason: reason.into(),
    }
}

/// What scanning one segment found.
pub enum Scanned<F> {
    Segment(Segment<F>),
    /// The last segment held no complete header (a crash right after creating it); it was
    /// removed.
    Removed,
}

/// Reads and checks one segment. `previous` is the last entry before it, `last` says whether
/// it is the newest segment (the only one whose tail may be torn).
pub fn scan_segment<D: LogDisk>(
    disk: &D,
    name: &str,
    named_first_index: u64,
    last: bool,
    previous: Option<LogId>,
    payload_bytes_max: u64,
    terms: &mut TermRuns,
) -> Result<Scanned<D::File>, OpenError> {
    let file = disk.open(name).map_err(io_error(name))?;
    let file_bytes = file.size_bytes().map_err(io_error(name))?;
    if file_bytes > u64::from(u32::MAX) {
        return Err(corrupt(
            name,
            0,
            format!("segment is {file_bytes} bytes, above 4 GiB"),
        ));
    }
    let mut bytes = vec![0u8; file_bytes as usize];
    file.read_at(0, &mut bytes).map_err(io_error(name))?;

    let header = record::decode_header(&bytes);
    let first_index = match header {
        Ok(first_index) => first_index,
        Err(_) if last && file_bytes <= SEGMENT_HEADER_BYTES => {
            tracing::warn!(
                file = name,
                file_bytes,
                "removing a log segment with a torn header"
            );
            disk.remove(name).map_err(io_error(name))?;
            return Ok(Scanned::Removed);
        }
        Err(reason) => return Err(corrupt(name, 0, reason)),
    };
    if first_index != named_first_index {
        return Err(corrupt(
            name,
            16,
            format!("header says first index {first_index}"),
        ));
    }
    if let Some(previous) = previous {
        if first_index != previous.index + 1 {
            return Err(OpenError::Gap {
                reason: format!("{name} starts at {first_index}, previous entry {previous:?}"),
            });
        }
    }
    let mut segment = Segment {
        name: name.to_string(),
        file,
        first_index,
        offsets: Vec::new(),
        end: SEGMENT_HEADER_BYTES,
    };
    let mut last_term = previous.map_or(0, |log_id| log_id.term);
    let fault = scan_records(
        &bytes,
        &mut segment,
        &mut last_term,
        payload_bytes_max,
        terms,
    );
    if let Some(reason) = fault {
        if !last {
            return Err(corrupt(name, segment.end, reason));
        }
        cut_torn_tail(&segment, &bytes, last_term, payload_bytes_max, &reason)?;
    }
    Ok(Scanned::Segment(segment))
}

/// Cuts the newest segment at `segment.end`, where a bad record starts, unless a valid record
/// lies beyond it: then the damage is in the middle and opening is refused.
fn cut_torn_tail<F: LogFile>(
    segment: &Segment<F>,
    bytes: &[u8],
    last_term: u64,
    payload_bytes_max: u64,
    reason: &str,
) -> Result<(), OpenError> {
    let name = segment.name.as_str();
    let offset = segment.end;
    if let Some(found) = valid_record_after(bytes, segment, last_term, payload_bytes_max) {
        return Err(corrupt(
            name,
            offset,
            format!("{reason}; a valid record ({found:?}) follows, so this is not a torn tail"),
        ));
    }
    tracing::warn!(
        file = name,
        offset,
        dropped_bytes = bytes.len() as u64 - offset,
        %reason,
        "truncating the torn tail of the log"
    );
    segment.file.set_len(offset).map_err(io_error(name))?;
    segment.file.sync_data().map_err(io_error(name))?;
    Ok(())
}

/// Walks the records from the segment's `end`, extending it; returns why it stopped early.
fn scan_records<F>(
    bytes: &[u8],
    segment: &mut Segment<F>,
    last_term: &mut u64,
    payload_bytes_max: u64,
    terms: &mut TermRuns,
) -> Option<String> {
    while (segment.end as usize) < bytes.len() {
        let view = match record::decode_record(&bytes[segment.end as usize..], payload_bytes_max) {
            Ok(view) => view,
            Err(fault) => return Some(fault.to_string()),
        };
        let expected = segment.next_index();
        if view.log_id.index != expected {
            return Some(format!(
                "record has index {}, expected {expected}",
                view.log_id.index
            ));
        }
        if view.log_id.term < *last_term {
            return Some(format!("term {} after term {last_term}", view.log_id.term));
        }
        *last_term = view.log_id.term;
        terms.push(view.log_id);
        // Fits: the whole file is below 4 GiB, checked on open.
        segment.offsets.push(segment.end as u32);
        segment.end += view.disk_bytes();
    }
    None
}

/// Looks past a bad record for any valid one that could belong after it. Finding one means
/// the bad record is damage in the middle of the data, not a torn tail.
fn valid_record_after<F>(
    bytes: &[u8],
    segment: &Segment<F>,
    last_term: u64,
    payload_bytes_max: u64,
) -> Option<LogId> {
    let start = segment.end as usize + 1;
    let header_bytes = RECORD_HEADER_BYTES as usize;
    let expected = segment.next_index();
    let index_max = expected + (bytes.len() as u64 / RECORD_HEADER_BYTES);
    for at in start..bytes.len().saturating_sub(header_bytes - 1) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at + 8..at + 16]);
        let term = u64::from_le_bytes(word);
        word.copy_from_slice(&bytes[at + 16..at + 24]);
        let index = u64::from_le_bytes(word);
        // Cheap plausibility first; the CRC only for candidates.
        if term < last_term || index < expected || index > index_max {
            continue;
        }
        if let Ok(view) = record::decode_record(&bytes[at..], payload_bytes_max) {
            return Some(view.log_id);
        }
    }
    None
}
