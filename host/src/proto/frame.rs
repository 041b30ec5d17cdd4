//! Length-prefixed frames. (skeleton: to be implemented)
use bytes::{Bytes, BytesMut};

/// ZooKeeper's default `jute.maxbuffer`: 0xfffff bytes.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 0xfffff;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame length {length} is over the limit of {max} bytes")]
    TooLarge { length: i64, max: usize },
    #[error("negative frame length {0}")]
    Negative(i32),
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A four-letter admin word (only recognised as the first frame of a connection).
    FourLetter([u8; 4]),
    Payload(Bytes),
}

/// Take one complete frame off the front of `buf`; `Ok(None)` means "need more bytes".
/// `first` is true before the handshake, when a 4lw may arrive instead of a length.
pub fn take_frame(
    buf: &mut BytesMut,
    max_bytes: usize,
    first: bool,
) -> Result<Option<Frame>, FrameError> {
    let _ = (buf, max_bytes, first);
    todo!()
}
