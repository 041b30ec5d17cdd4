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

/// The four-letter words ZooKeeper 3.8 knows (`FourLetterCommands`): the one table of their
/// names (the frame decoder, the whitelist and the answers all use it). Telnet's close sequence
/// (0xfff4fffd), which ZooKeeper also lists, is left out: it reads as a negative length, and
/// closing the connection is exactly what ZooKeeper does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FourLetterWord {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Hash,
    Isro,
    Mntr,
    Ruok,
    Srst,
    Srvr,
    Stat,
    Stmk,
    Wchc,
    Wchp,
    Wchs,
}

impl FourLetterWord {
    /// Every word, in ZooKeeper's alphabetical order.
    pub const ALL: [FourLetterWord; 18] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Hash,
        FourLetterWord::Isro,
        FourLetterWord::Mntr,
        FourLetterWord::Ruok,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Stmk,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
    ];

    /// The word as sent on the wire (and written in `4lw.commands.whitelist`).
    pub fn name(self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Hash => "hash",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
        }
    }

    /// The word named `name`, if ZooKeeper knows it.
    pub fn from_name(name: &str) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|word| word.name() == name)
    }

    /// The word these four bytes spell, if any.
    pub fn from_bytes(bytes: &[u8; FOUR_LETTER_WORD_BYTES]) -> Option<FourLetterWord> {
        FourLetterWord::ALL
            .into_iter()
            .find(|word| word.name().as_bytes() == bytes)
    }
}

impl std::fmt::Display for FourLetterWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    FourLetter(FourLetterWord),
    Payload(Bytes),
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
    if first {
        if let Some(word) = FourLetterWord::from_bytes(&prefix) {
            buf.advance(FOUR_LETTER_WORD_BYTES);
            return Ok(Some(Frame::FourLetter(word)));
        }
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
        for word in FourLetterWord::ALL {
            let mut buf = BytesMut::from(word.name().as_bytes());
            let frame = take_frame(&mut buf, FRAME_BYTES_MAX_DEFAULT, true).unwrap();
            assert_eq!(frame, Some(Frame::FourLetter(word)));
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
    fn every_word_is_named_once_and_read_back() {
        let names: std::collections::BTreeSet<&str> =
            FourLetterWord::ALL.iter().map(|word| word.name()).collect();
        assert_eq!(names.len(), FourLetterWord::ALL.len());
        for word in FourLetterWord::ALL {
            assert_eq!(word.name().len(), FOUR_LETTER_WORD_BYTES);
            assert_eq!(FourLetterWord::from_name(word.name()), Some(word));
        }
        assert_eq!(FourLetterWord::from_name("nope"), None);
        assert!(FourLetterWord::ALL.windows(2).all(|pair| pair[0] < pair[1]));
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
