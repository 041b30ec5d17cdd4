//! Errors of the segmented Raft log: one enum for opening (recovery) and one for operations on an
//! open log. Both convert into `std::io::Error`, the error type openraft's storage traits use.

use std::io;

use crate::fatal::Step;

/// Why the log could not be opened. Recovery never drops data silently: anything it cannot
/// explain as a torn tail is reported here with the file and byte offset.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("log I/O on {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    #[error("corrupt log segment {file} at byte offset {offset}: {reason}; refusing to open")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("log segments are not contiguous: {reason}; refusing to open")]
    Gap { reason: String },
    #[error("invalid log options: {reason}")]
    Options { reason: String },
}

/// Why an operation on an open log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log I/O ({step}) on {file}: {source}")]
    Io {
        /// The durability step that failed (named in the server's fail-stop line).
        step: Step,
        file: String,
        #[source]
        source: io::Error,
    },
    /// An earlier write or sync failed, so what is on disk is unknown: the log must be reopened
    /// (recovery decides what survived) before it takes another mutation.
    #[error("an earlier I/O error left the log in an unknown state; reopen it")]
    PreviousIo,
    #[error("corrupt record in log segment {file} at byte offset {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
    #[error("entry {index} (term {term}) cannot follow the log's last entry {last}")]
    NotContiguous { index: u64, term: u64, last: String },
    #[error("entry {index} has a {bytes}-byte payload, above LOG_RECORD_PAYLOAD_BYTES_MAX")]
    PayloadTooLarge { index: u64, bytes: u64 },
    #[error("cannot truncate after {last_kept:?}: entries up to {purged} were purged")]
    TruncateBelowPurged { last_kept: Option<u64>, purged: u64 },
}

impl From<OpenError> for io::Error {
    fn from(error: OpenError) -> Self {
        match error {
            OpenError::Io { source, .. } => source,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

impl From<LogError> for io::Error {
    fn from(error: LogError) -> Self {
        let kind = match &error {
            LogError::Io { source, .. } => source.kind(),
            LogError::Corrupt { .. } => io::ErrorKind::InvalidData,
            LogError::PreviousIo => io::ErrorKind::Other,
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, error)
    }
}
