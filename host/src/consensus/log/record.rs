//! Bytes of a segment: the 32-byte segment header and the records after it (layout in
//! `log/mod.rs` and `docs/format.md`). Pure functions, no I/O: encoding, and decoding that says
//! precisely why a run of bytes is not a valid record.

use super::LogId;

/// First bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"ZKWRLOG\0";
/// Bumped whenever the segment or record layout changes; older versions need a migration.
pub const SEGMENT_FORMAT_VERSION: u32 = 1;
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_BYTES: u64 = 32;
/// Size of a record's fixed part (length, CRC, term, index) in bytes.
pub const RECORD_HEADER_BYTES: u64 = 24;

/// The CRC32C the header stores covers its first `HEADER_CRC_COVERED_BYTES` bytes.
const HEADER_CRC_COVERED_BYTES: usize = 24;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The header of a segment whose first record has index `first_index`.
pub fn encode_header(first_index: u64) -> [u8; SEGMENT_HEADER_BYTES as usize] {
    let mut header = [0u8; SEGMENT_HEADER_BYTES as usize];
    header[0..8].copy_from_slice(&SEGMENT_MAGIC);
    header[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
    // 12..16 reserved, zero.
    header[16..24].copy_from_slice(&first_index.to_le_bytes());
    let crc = crc32c::crc32c(&header[..HEADER_CRC_COVERED_BYTES]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    // 28..32 reserved, zero.
    header
}

/// The first index a segment header names, or why the header is not valid.
pub fn decode_header(header: &[u8]) -> Result<u64, String> {
    if header.len() < SEGMENT_HEADER_BYTES as usize {
        return Err(format!("header is {} bytes, short", header.len()));
    }
    if header[0..8] != SEGMENT_MAGIC {
        return Err("bad magic: not a zkw log segment".to_string());
    }
    let crc_stored = u32_at(header, 24);
    if crc_stored != crc32c::crc32c(&header[..HEADER_CRC_COVERED_BYTES]) {
        return Err("header CRC mismatch".to_string());
    }
    let version = u32_at(header, 8);
    if version != SEGMENT_FORMAT_VERSION {
        return Err(format!(
            "segment format version {version}, this build reads {SEGMENT_FORMAT_VERSION}"
        ));
    }
    Ok(u64_at(header, 16))
}

fn record_crc(term: u64, index: u64, payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&term.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &index.to_le_bytes());
    crc32c::crc32c_append(crc, payload)
}

/// Appends one record to `out`. The caller has checked the payload against the size limit.
pub fn encode_record(out: &mut Vec<u8>, log_id: LogId, payload: &[u8]) {
    let payload_bytes =
        u32::try_from(payload.len()).expect("payload checked against LOG_RECORD_PAYLOAD_BYTES_MAX");
    out.extend_from_slice(&payload_bytes.to_le_bytes());
    let crc = record_crc(log_id.term, log_id.index, payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&log_id.term.to_le_bytes());
    out.extend_from_slice(&log_id.index.to_le_bytes());
    out.extend_from_slice(payload);
}

/// The size in bytes a record with `payload_bytes` of payload takes on disk.
pub fn record_bytes(payload_bytes: u64) -> u64 {
    RECORD_HEADER_BYTES + payload_bytes
}

/// One decoded record, borrowing its payload.
#[derive(Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub log_id: LogId,
    pub payload: &'a [u8],
}

impl RecordView<'_> {
    pub fn disk_bytes(&self) -> u64 {
        record_bytes(self.payload.len() as u64)
    }
}

/// Why bytes at some offset are not a record.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordFault {
    /// The bytes end before the record does: what a torn write leaves.
    Short,
    /// The length field is above the limit.
    TooLong(u64),
    /// The checksum does not match.
    Crc,
}

impl std::fmt::Display for RecordFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFault::Short => write!(f, "record runs past the end of the file"),
            RecordFault::TooLong(bytes) => write!(f, "record length {bytes} is above the limit"),
            RecordFault::Crc => write!(f, "record CRC mismatch"),
        }
    }
}

/// Decodes the record at the start of `bytes`.
pub fn decode_record(bytes: &[u8], payload_bytes_max: u64) -> Result<RecordView<'_>, RecordFault> {
    if (bytes.len() as u64) < RECORD_HEADER_BYTES {
        return Err(RecordFault::Short);
    }
    let payload_bytes = u64::from(u32_at(bytes, 0));
    if payload_bytes > payload_bytes_max {
        return Err(RecordFault::TooLong(payload_bytes));
    }
    let end = RECORD_HEADER_BYTES + payload_bytes;
    if (bytes.len() as u64) < end {
        return Err(RecordFault::Short);
    }
    let crc_stored = u32_at(bytes, 4);
    let term = u64_at(bytes, 8);
    let index = u64_at(bytes, 16);
    let payload = &bytes[RECORD_HEADER_BYTES as usize..end as usize];
    if crc_stored != record_crc(term, index, payload) {
        return Err(RecordFault::Crc);
    }
    Ok(RecordView {
        log_id: LogId { term, index },
        payload,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may unwrap (COMMON.md).
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = encode_header(42);
        assert_eq!(decode_header(&header), Ok(42));
        let mut bad = header;
        bad[17] ^= 1;
        assert!(decode_header(&bad).is_err());
        assert!(decode_header(&header[..31]).is_err());
    }

    #[test]
    fn record_round_trips() {
        let mut out = Vec::new();
        let log_id = LogId { term: 3, index: 9 };
        encode_record(&mut out, log_id, b"hello");
        assert_eq!(out.len() as u64, record_bytes(5));
        let view = decode_record(&out, 1024).unwrap();
        assert_eq!(view.log_id, log_id);
        assert_eq!(view.payload, b"hello");
    }

    #[test]
    fn record_faults_are_named() {
        let mut out = Vec::new();
        encode_record(&mut out, LogId { term: 1, index: 1 }, b"abcdef");
        assert_eq!(
            decode_record(&out[..out.len() - 1], 1024),
            Err(RecordFault::Short)
        );
        assert_eq!(decode_record(&out[..10], 1024), Err(RecordFault::Short));
        assert_eq!(decode_record(&out, 3), Err(RecordFault::TooLong(6)));
        let mut bad = out.clone();
        bad[27] ^= 0x40;
        assert_eq!(decode_record(&bad, 1024), Err(RecordFault::Crc));
        assert_eq!(decode_record(&[0u8; 64], 1024), Err(RecordFault::Crc));
    }
}
