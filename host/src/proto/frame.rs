//! Length-prefixed frames: cuts whole frames off a connection's read buffer.
//!
//! A frame is an int32 big-endian length followed by that many payload bytes. Before the
//! handshake the first four bytes may instead be a four-letter admin word (`ruok`, `srvr`…),
//! which ZooKeeper recognises by reading the would-be length as ASCII. The length is checked
//! against the limit as soon as its four bytes arrive, before any payload is buffered, so a
//! client cannot make the server hold more than `max_bytes` per frame.

use bytes::{Buf, Bytes, BytesMut};

/// ZooKeeper's default `jute.maxbuffer`: 0xfffff bytes.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 0xfffff;
/// Bytes of the int32 length in front of every frame (not counted in the length itself).
pub const FRAME_LENGTH_BYTES: usize = 4;
/// Bytes of a four-letter admin word.
pub const FOUR_LETTER_WORD_BYTES: usize = 4;

/// The four-letter words ZooKeeper 3.8 knows (`FourLetterCommands`). Telnet's close sequence
/// (0xfff4fffd), which ZooKeeper also lists, is left out: it reads as a negative length, and
/// closing the connection is exactly what ZooKeeper does with it.
pub const FOUR_LETTER_WORDS: [&[u8; FOUR_LETTER_WORD_BYTES]; 18] = [
    b"conf", b"cons", b"crst", b"dirs", b"dump", b"envi", b"gtmk", b"hash", b"isro", b"mntr",
    b"ruok", b"srst", b"srvr", b"stat", b"stmk", b"wchc", b"wchp", b"wchs",
];

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

/// True when `word` is one of [`FOUR_LETTER_WORDS`].
pub fn is_four_letter_word(word: &[u8; FOUR_LETTER_WORD_BYTES]) -> bool {
    FOUR_LETTER_WORDS.contains(&word)
}

/// Take one complete frame off the front of `buf`; `Ok(None)` means "need more bytes".
/// `first` is true before the handshake, when a 4lw may arrive instead of a length.
/// On `Ok(None)` the buffer may have grown its capacity to fit the announced frame.
pub fn take_frame(
    buf: &mut BytesMut,
    max_bytes: usize,
    first: bool,
) -> Result<Option<Frame>, FrameError> {
    let Some(prefix) = buf.first_chunk::<FRAME_LENGTH_BYTES>().copied() else {
        return Ok(None);
    };
    if first && is_four_letter_word(&prefix) {
        buf.advance(FOUR_LETTER_WORD_BYTES);
        return Ok(Some(Frame::FourLetter(prefix)));
    }
    let length_wire = i32::from_be_bytes(prefix);
    let length = usize::try_from(length_wire).map_err(|_| FrameError::Negative(length_wire))?;
    if length > max_bytes {
        return Err(FrameError::TooLarge {
            length: i64::from(length_wire),
            max: max_bytes,
        });
    }
    let frame_bytes = FRAME_LENGTH_BYTES + length;
    if buf.len() < frame_bytes {
        buf.reserve(frame_bytes - buf.len());
        return Ok(None);
    }
    buf.advance(FRAME_LENGTH_BYTES);
    Ok(Some(Frame::Payload(buf.split_to(length).freeze())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn whole_frame_in_pieces() {
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(take_frame(&mut buf, 16, true), Ok(None));
        buf.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(take_frame(&mut buf, 16, true), Ok(None));
        buf.extend_from_slice(&[b'c', 0, 0]);
        let frame = take_frame(&mut buf, 16, true).unwrap().unwrap();
        assert_eq!(frame, Frame::Payload(Bytes::from_static(b"abc")));
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn empty_payload_is_a_frame() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        let frame = take_frame(&mut buf, 16, false).unwrap().unwrap();
        assert_eq!(frame, Frame::Payload(Bytes::new()));
        assert!(buf.is_empty());
    }

    #[test]
    fn four_letter_words_only_first() {
        for word in FOUR_LETTER_WORDS {
            let mut buf = BytesMut::from(&word[..]);
            let frame = take_frame(&mut buf, FRAME_BYTES_MAX_DEFAULT, true).unwrap();
            assert_eq!(frame, Some(Frame::FourLetter(*word)));
            assert!(buf.is_empty());
        }
        let mut buf = BytesMut::from(&b"ruok"[..]);
        let error = take_frame(&mut buf, FRAME_BYTES_MAX_DEFAULT, false).unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                length: 0x7275_6f6b,
                max: 0xfffff
            }
        );
    }

    #[test]
    fn unknown_word_is_a_length() {
        let mut buf = BytesMut::from(&b"nope"[..]);
        let error = take_frame(&mut buf, FRAME_BYTES_MAX_DEFAULT, true).unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }));
    }

    #[test]
    fn limits_checked_before_payload() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 17][..]);
        let error = take_frame(&mut buf, 16, false).unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                length: 17,
                max: 16
            }
        );
        let mut buf = BytesMut::from(&[0xffu8, 0xf4, 0xff, 0xfd][..]);
        assert_eq!(
            take_frame(&mut buf, 16, true),
            Err(FrameError::Negative(-720_899))
        );
        let mut buf = BytesMut::from(&[0u8, 0, 0, 16][..]);
        assert_eq!(take_frame(&mut buf, 16, false), Ok(None));
    }
}
