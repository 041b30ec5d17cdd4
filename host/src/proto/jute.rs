//! Jute binary-archive primitives, the only code that touches raw bytes of a record.
//!
//! [`Reader`] is a bounds-checked cursor over a complete frame payload: every length or count
//! is checked against the bytes that remain *before* anything is allocated, so a hostile
//! length prefix can never make us reserve memory the frame does not carry. The `put_*`
//! functions write the same encodings onto a `BytesMut`. Both follow ZooKeeper's
//! `BinaryInputArchive`/`BinaryOutputArchive`: big-endian integers, booleans as one byte,
//! `ustring`/`buffer` as an int32 length (-1 = null) plus bytes, `vector` as an int32 count
//! (-1 = null) plus elements.

use bytes::{BufMut, BytesMut};

use super::codec::DecodeError;

/// Bytes of the int32 length prefix in front of a `ustring`, `buffer` or `vector`.
pub(crate) const LENGTH_PREFIX_BYTES: usize = 4;
/// The length value ZooKeeper writes for a null `ustring`, `buffer` or `vector`.
const NULL_LENGTH: i32 = -1;

/// A record that has one fixed jute layout.
pub(crate) trait Record: Sized {
    fn write(&self, out: &mut BytesMut);
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A cursor over a complete payload. Reads never panic; running short is `Truncated`.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn truncated(&self, wanted: usize) -> DecodeError {
        DecodeError::Truncated {
            needed: wanted.saturating_sub(self.rest.len()),
        }
    }

    fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(*head)
            }
            None => Err(self.truncated(N)),
        }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if count > self.rest.len() {
            return Err(self.truncated(count));
        }
        let (head, tail) = self.rest.split_at(count);
        self.rest = tail;
        Ok(head)
    }

    pub(crate) fn read_byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>()?[0])
    }

    /// Java's `DataInput.readBoolean`: any non-zero byte is true.
    pub(crate) fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read_byte()? != 0)
    }

    pub(crate) fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.read_array()?))
    }

    pub(crate) fn read_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.read_array()?))
    }

    /// A length or count prefix: `None` for null (-1); any other negative value is malformed.
    fn read_length(&mut self, what: &str) -> Result<Option<usize>, DecodeError> {
        let length = self.read_i32()?;
        if length == NULL_LENGTH {
            return Ok(None);
        }
        usize::try_from(length)
            .map(Some)
            .map_err(|_| DecodeError::Malformed(format!("negative {what} length {length}")))
    }

    /// A `buffer` that may be null.
    pub(crate) fn read_buffer_opt(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.read_length("buffer")? {
            None => Ok(None),
            Some(length) => Ok(Some(self.take(length)?.to_vec())),
        }
    }

    /// A `buffer` where null means empty (passwords, tokens; never znode data).
    pub(crate) fn read_buffer(&mut self) -> Result<Vec<u8>, DecodeError> {
        Ok(self.read_buffer_opt()?.unwrap_or_default())
    }

    /// A `ustring` that may be null; invalid UTF-8 is malformed.
    pub(crate) fn read_ustring_opt(&mut self) -> Result<Option<String>, DecodeError> {
        let Some(length) = self.read_length("ustring")? else {
            return Ok(None);
        };
        let bytes = self.take(length)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(text.to_owned())),
            Err(error) => Err(DecodeError::Malformed(format!(
                "ustring is not UTF-8: {error}"
            ))),
        }
    }

    /// A `ustring` where null means empty. Paths use this: an empty path then fails the
    /// tree's path validation with BadArguments, as a null path does in ZooKeeper.
    pub(crate) fn read_ustring(&mut self) -> Result<String, DecodeError> {
        Ok(self.read_ustring_opt()?.unwrap_or_default())
    }

    /// A `vector` where null means empty. `element_bytes_min` is the smallest encoding of one
    /// element; the count is checked against it before the vector is allocated.
    pub(crate) fn read_vec<T>(
        &mut self,
        element_bytes_min: usize,
        mut read_element: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let Some(count) = self.read_length("vector")? else {
            return Ok(Vec::new());
        };
        let bytes_min = count.saturating_mul(element_bytes_min.max(1));
        if bytes_min > self.rest.len() {
            return Err(self.truncated(bytes_min));
        }
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(read_element(self)?);
        }
        Ok(items)
    }

    pub(crate) fn read_ustring_vec(&mut self) -> Result<Vec<String>, DecodeError> {
        self.read_vec(LENGTH_PREFIX_BYTES, Self::read_ustring)
    }

    pub(crate) fn read_record<T: Record>(&mut self) -> Result<T, DecodeError> {
        T::read(self)
    }
}

/// A length for the wire; never panics. A length past `i32::MAX` can only sit inside a frame
/// past it: `encode_reply` refuses such a reply before writing (`proto::size`), every other
/// frame we encode carries what arrived in frames of at most jute.maxbuffer (256 MiB at most),
/// and a txn entry that large is far above `PROPOSAL_BYTES_MAX`, refused before the log. So the
/// saturated value is never sent or stored.
fn length_i32(length: usize) -> i32 {
    i32::try_from(length).unwrap_or(i32::MAX)
}

pub(crate) fn put_bool(out: &mut BytesMut, value: bool) {
    out.put_u8(u8::from(value));
}

pub(crate) fn put_ustring(out: &mut BytesMut, value: &str) {
    put_buffer(out, value.as_bytes());
}

pub(crate) fn put_ustring_opt(out: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(text) => put_ustring(out, text),
        None => out.put_i32(NULL_LENGTH),
    }
}

/// A `buffer` that may be null (znode data: ZooKeeper keeps a null apart from an empty one).
pub(crate) fn put_buffer_opt(out: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        Some(bytes) => put_buffer(out, bytes),
        None => out.put_i32(NULL_LENGTH),
    }
}

pub(crate) fn put_buffer(out: &mut BytesMut, value: &[u8]) {
    out.put_i32(length_i32(value.len()));
    out.put_slice(value);
}

pub(crate) fn put_vec<T>(out: &mut BytesMut, items: &[T], mut put: impl FnMut(&T, &mut BytesMut)) {
    out.put_i32(length_i32(items.len()));
    for item in items {
        put(item, out);
    }
}

pub(crate) fn put_ustring_vec(out: &mut BytesMut, items: &[String]) {
    put_vec(out, items, |item, out| put_ustring(out, item));
}

/// Writes a frame: a 4-byte big-endian length, then whatever `body` writes.
pub(crate) fn put_framed(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_i32(0);
    body(out);
    let length = length_i32(out.len() - start - LENGTH_PREFIX_BYTES);
    out[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_strings() {
        let mut out = BytesMut::new();
        put_ustring_opt(&mut out, None);
        put_ustring(&mut out, "");
        put_ustring(&mut out, "/a");
        assert_eq!(
            &out[..],
            &[255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 2, b'/', b'a']
        );
        let mut reader = Reader::new(&out);
        assert_eq!(reader.read_ustring_opt().unwrap(), None);
        assert_eq!(reader.read_ustring_opt().unwrap(), Some(String::new()));
        assert_eq!(reader.read_ustring().unwrap(), "/a");
        assert!(reader.is_empty());
    }

    #[test]
    fn null_buffer_and_vector_read_as_empty() {
        let bytes = [255, 255, 255, 255, 255, 255, 255, 255];
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.read_buffer().unwrap(), Vec::<u8>::new());
        assert_eq!(reader.read_ustring_vec().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        // A 2 GiB buffer length in a 6-byte payload.
        let bytes = [0x7f, 0xff, 0xff, 0xff, 1, 2];
        let error = Reader::new(&bytes).read_buffer().unwrap_err();
        assert_eq!(
            error,
            DecodeError::Truncated {
                needed: 0x7fff_ffff - 2
            }
        );
        // A huge vector count of 4-byte elements.
        let error = Reader::new(&bytes).read_ustring_vec().unwrap_err();
        assert!(matches!(error, DecodeError::Truncated { .. }));
        let negative = [0xff, 0xff, 0xff, 0xfe];
        let error = Reader::new(&negative).read_buffer().unwrap_err();
        assert!(matches!(error, DecodeError::Malformed(_)));
    }

    #[test]
    fn invalid_utf8_is_malformed() {
        let bytes = [0, 0, 0, 2, 0xc3, 0x28];
        let error = Reader::new(&bytes).read_ustring().unwrap_err();
        assert!(matches!(error, DecodeError::Malformed(_)));
    }

    #[test]
    fn framed_writes_the_length() {
        let mut out = BytesMut::from(&b"xx"[..]);
        put_framed(&mut out, |out| out.put_slice(b"abc"));
        assert_eq!(&out[..], b"xx\0\0\0\x03abc");
    }
}
