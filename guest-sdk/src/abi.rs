//! ABI v1: the bytes that cross between a recipe module and the zkw host. This module is shared:
//! the guest side of the SDK and the host's `wasm` runtime both encode and decode through it, so
//! the two cannot drift. It is pure (no host calls) and compiles for any target.
//!
//! Encoding is big-endian, as ZooKeeper's jute: `int` = 4 bytes, `long` = 8 bytes, a string or
//! buffer = an `int` length then that many bytes (strings are UTF-8), a list = an `int` count
//! then the items. The full contract (exports, imports, return codes) is in
//! `docs/recipes.md` and `guest-sdk/wit/zkw.wit`.

use std::fmt;

/// The ABI this SDK speaks; a module exports it from [`export::ABI_VERSION`].
pub const ABI_VERSION: i32 = 1;

/// The longest string or buffer either side accepts in one field (ZooKeeper's default
/// jute.maxbuffer).
pub const FIELD_BYTES_MAX: usize = 1024 * 1024;

/// Names the module exports.
pub mod export {
    /// `() -> i32`: must return [`super::ABI_VERSION`].
    pub const ABI_VERSION: &str = "zkw_abi_version";
    /// `(len: i32) -> i32`: a buffer of `len` bytes the host may fill (the run's input).
    pub const ALLOC: &str = "zkw_alloc";
    /// `(ptr: i32, len: i32) -> i32`: an [`super::Event`]; 0 keeps the run's writes.
    pub const ON_EVENT: &str = "zkw_on_event";
    /// `(ptr: i32, len: i32) -> i32`: a [`super::Validate`]; 0 allows the write, a negative
    /// ZooKeeper error code rejects it.
    pub const VALIDATE: &str = "zkw_validate";
    /// `(ptr: i32, len: i32) -> i32`: a [`super::Call`]; 0 keeps the run's writes.
    pub const ON_CALL: &str = "zkw_on_call";
    /// The module's own linear memory.
    pub const MEMORY: &str = "memory";
}

/// Functions the host provides, all in module [`import::MODULE`].
pub mod import {
    pub const MODULE: &str = "zkw";
    /// `(path_ptr, path_len) -> i32`: length of a [`super::Node`] now in the result slot, or a
    /// negative ZooKeeper error code (-101 NoNode).
    pub const GET: &str = "get";
    /// `(path_ptr, path_len) -> i32`: length of a sorted list of child names in the result slot,
    /// or a negative error code.
    pub const CHILDREN: &str = "children";
    /// `(dst_ptr)`: copies the result slot (the length the last call returned) to `dst_ptr`.
    pub const READ_RESULT: &str = "read_result";
    /// `(op_ptr, op_len) -> i32`: applies an [`super::Op`] inside the run's transaction; the
    /// length of its [`super::OpResult`] in the result slot, or a negative error code. A write
    /// outside the recipe's path stops the run.
    pub const WRITE: &str = "write";
    /// `(ptr, len)`: the run's result (returned to a caller; a validator's reason).
    pub const SET_RESULT: &str = "set_result";
    /// `(level, ptr, len)`: a log line (level: 1 error, 2 warn, 3 info, 4 debug).
    pub const LOG: &str = "log";
}

/// Why bytes did not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AbiError {
    /// The input ended inside a field.
    Truncated,
    /// A length was negative or above [`FIELD_BYTES_MAX`].
    BadLength(i32),
    /// A kind tag this ABI version does not define.
    BadTag(i32),
    /// A string was not UTF-8.
    NotUtf8,
    /// Bytes were left after the last field.
    Trailing(usize),
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbiError::Truncated => write!(f, "input ends inside a field"),
            AbiError::BadLength(len) => write!(f, "bad field length {len}"),
            AbiError::BadTag(tag) => write!(f, "unknown tag {tag}"),
            AbiError::NotUtf8 => write!(f, "string is not UTF-8"),
            AbiError::Trailing(count) => write!(f, "{count} bytes after the last field"),
        }
    }
}

impl std::error::Error for AbiError {}

/// What every run is told about the txn that triggered it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The session whose write (or close) triggered the run; 0 for timers and internal txns.
    pub session: i64,
    /// The txn's zxid.
    pub zxid: i64,
    /// The leader's clock when it proposed the txn (ms since the epoch): the only time a
    /// recipe sees.
    pub time_ms: i64,
    /// The recipe's installed name.
    pub recipe: String,
    /// The path the recipe is bound to; its writes must stay under it.
    pub root: String,
}

/// What happened (the `kind` of an [`Event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Created = 1,
    Deleted = 2,
    DataChanged = 3,
    ChildrenChanged = 4,
    SessionClosed = 5,
    Timer = 6,
}

/// The input of `zkw_on_event`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub header: Header,
    pub kind: EventKind,
    /// The node (created, deleted, changed, or whose children changed); empty for timers and
    /// session closes.
    pub path: String,
    /// For [`EventKind::SessionClosed`]: the session's ephemerals under the recipe's path that
    /// the close deleted.
    pub ephemerals: Vec<String>,
}

/// The input of `zkw_on_call`: an explicit call with the caller's arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub header: Header,
    pub args: Vec<u8>,
}

/// The kind of write a validator is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    Create = 1,
    Delete = 2,
    SetData = 3,
}

/// The input of `zkw_validate`: a client write under the recipe's path, before it happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validate {
    pub header: Header,
    pub kind: WriteKind,
    pub path: String,
    /// The new data (create, setData); empty for delete.
    pub data: Vec<u8>,
    /// The create mode flags (ZooKeeper's CreateMode numbers); 0 otherwise.
    pub flags: i32,
}

/// ZooKeeper's Stat, field for field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// A node as `get` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub stat: Stat,
    pub data: Vec<u8>,
}

/// A write a recipe makes inside its run's transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `flags`: ZooKeeper's CreateMode numbers (0 persistent, 1 ephemeral, 2 sequential,
    /// 3 ephemeral sequential, 4 container). An ephemeral belongs to the triggering session.
    Create {
        path: String,
        data: Vec<u8>,
        flags: i32,
    },
    /// `version` -1 matches any.
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// What a successful [`Op`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// The created path (with its sequence suffix) and its Stat.
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    /// The node's Stat after the write.
    Set(Stat),
    Checked,
}

/// Appends values in ABI encoding.
#[derive(Debug, Default)]
pub struct Writer {
    pub bytes: Vec<u8>,
}

impl Writer {
    pub fn int(&mut self, value: i32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn long(&mut self, value: i64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn buffer(&mut self, value: &[u8]) {
        self.int(len_i32(value.len()));
        self.bytes.extend_from_slice(value);
    }

    pub fn string(&mut self, value: &str) {
        self.buffer(value.as_bytes());
    }

    pub fn strings(&mut self, values: &[String]) {
        self.int(len_i32(values.len()));
        for value in values {
            self.string(value);
        }
    }
}

/// Lengths are bounded by [`FIELD_BYTES_MAX`] long before `i32::MAX`; saturate rather than wrap
/// so an impossible length decodes as an error, never as a different value.
fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Reads values in ABI encoding.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], AbiError> {
        if self.bytes.len() < count {
            return Err(AbiError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    pub fn int(&mut self) -> Result<i32, AbiError> {
        let mut raw = [0; 4];
        raw.copy_from_slice(self.take(4)?);
        Ok(i32::from_be_bytes(raw))
    }

    pub fn long(&mut self) -> Result<i64, AbiError> {
        let mut raw = [0; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(raw))
    }

    fn len(&mut self) -> Result<usize, AbiError> {
        let len = self.int()?;
        match usize::try_from(len) {
            Ok(len) if len <= FIELD_BYTES_MAX => Ok(len),
            _ => Err(AbiError::BadLength(len)),
        }
    }

    pub fn buffer(&mut self) -> Result<Vec<u8>, AbiError> {
        let len = self.len()?;
        Ok(self.take(len)?.to_vec())
    }

    pub fn string(&mut self) -> Result<String, AbiError> {
        String::from_utf8(self.buffer()?).map_err(|_| AbiError::NotUtf8)
    }

    pub fn strings(&mut self) -> Result<Vec<String>, AbiError> {
        let count = self.len()?;
        // Each string needs at least its 4-byte length: bound the allocation by the input.
        let mut values = Vec::with_capacity(count.min(self.bytes.len() / 4));
        for _ in 0..count {
            values.push(self.string()?);
        }
        Ok(values)
    }

    /// Fails unless every byte was read.
    pub fn finish(self) -> Result<(), AbiError> {
        match self.bytes.len() {
            0 => Ok(()),
            count => Err(AbiError::Trailing(count)),
        }
    }
}

/// A value with an ABI encoding.
pub trait Codec: Sized {
    fn write(&self, out: &mut Writer);
    fn read(input: &mut Reader<'_>) -> Result<Self, AbiError>;

    fn encode(&self) -> Vec<u8> {
        let mut out = Writer::default();
        self.write(&mut out);
        out.bytes
    }

    /// Decodes a whole buffer: trailing bytes are an error.
    fn decode(bytes: &[u8]) -> Result<Self, AbiError> {
        let mut input = Reader::new(bytes);
        let value = Self::read(&mut input)?;
        input.finish()?;
        Ok(value)
    }
}

impl Codec for Header {
    fn write(&self, out: &mut Writer) {
        out.long(self.session);
        out.long(self.zxid);
        out.long(self.time_ms);
        out.string(&self.recipe);
        out.string(&self.root);
    }

    fn read(input: &mut Reader<'_>) -> Result<Header, AbiError> {
        Ok(Header {
            session: input.long()?,
            zxid: input.long()?,
            time_ms: input.long()?,
            recipe: input.string()?,
            root: input.string()?,
        })
    }
}

impl EventKind {
    pub fn from_tag(tag: i32) -> Result<EventKind, AbiError> {
        Ok(match tag {
            1 => EventKind::Created,
            2 => EventKind::Deleted,
            3 => EventKind::DataChanged,
            4 => EventKind::ChildrenChanged,
            5 => EventKind::SessionClosed,
            6 => EventKind::Timer,
            other => return Err(AbiError::BadTag(other)),
        })
    }
}

impl Codec for Event {
    fn write(&self, out: &mut Writer) {
        self.header.write(out);
        out.int(self.kind as i32);
        out.string(&self.path);
        out.strings(&self.ephemerals);
    }

    fn read(input: &mut Reader<'_>) -> Result<Event, AbiError> {
        Ok(Event {
            header: Header::read(input)?,
            kind: EventKind::from_tag(input.int()?)?,
            path: input.string()?,
            ephemerals: input.strings()?,
        })
    }
}

impl Codec for Call {
    fn write(&self, out: &mut Writer) {
        self.header.write(out);
        out.buffer(&self.args);
    }

    fn read(input: &mut Reader<'_>) -> Result<Call, AbiError> {
        Ok(Call {
            header: Header::read(input)?,
            args: input.buffer()?,
        })
    }
}

impl WriteKind {
    pub fn from_tag(tag: i32) -> Result<WriteKind, AbiError> {
        Ok(match tag {
            1 => WriteKind::Create,
            2 => WriteKind::Delete,
            3 => WriteKind::SetData,
            other => return Err(AbiError::BadTag(other)),
        })
    }
}

impl Codec for Validate {
    fn write(&self, out: &mut Writer) {
        self.header.write(out);
        out.int(self.kind as i32);
        out.string(&self.path);
        out.buffer(&self.data);
        out.int(self.flags);
    }

    fn read(input: &mut Reader<'_>) -> Result<Validate, AbiError> {
        Ok(Validate {
            header: Header::read(input)?,
            kind: WriteKind::from_tag(input.int()?)?,
            path: input.string()?,
            data: input.buffer()?,
            flags: input.int()?,
        })
    }
}

impl Codec for Stat {
    fn write(&self, out: &mut Writer) {
        out.long(self.czxid);
        out.long(self.mzxid);
        out.long(self.ctime);
        out.long(self.mtime);
        out.int(self.version);
        out.int(self.cversion);
        out.int(self.aversion);
        out.long(self.ephemeral_owner);
        out.int(self.data_length);
        out.int(self.num_children);
        out.long(self.pzxid);
    }

    fn read(input: &mut Reader<'_>) -> Result<Stat, AbiError> {
        Ok(Stat {
            czxid: input.long()?,
            mzxid: input.long()?,
            ctime: input.long()?,
            mtime: input.long()?,
            version: input.int()?,
            cversion: input.int()?,
            aversion: input.int()?,
            ephemeral_owner: input.long()?,
            data_length: input.int()?,
            num_children: input.int()?,
            pzxid: input.long()?,
        })
    }
}

impl Codec for Node {
    fn write(&self, out: &mut Writer) {
        self.stat.write(out);
        out.buffer(&self.data);
    }

    fn read(input: &mut Reader<'_>) -> Result<Node, AbiError> {
        Ok(Node {
            stat: Stat::read(input)?,
            data: input.buffer()?,
        })
    }
}

/// A sorted list of child names (the `children` import's result).
impl Codec for Vec<String> {
    fn write(&self, out: &mut Writer) {
        out.strings(self);
    }

    fn read(input: &mut Reader<'_>) -> Result<Vec<String>, AbiError> {
        input.strings()
    }
}

const OP_CREATE: i32 = 1;
const OP_DELETE: i32 = 2;
const OP_SET_DATA: i32 = 3;
const OP_CHECK: i32 = 4;

impl Codec for Op {
    fn write(&self, out: &mut Writer) {
        match self {
            Op::Create { path, data, flags } => {
                out.int(OP_CREATE);
                out.string(path);
                out.buffer(data);
                out.int(*flags);
            }
            Op::Delete { path, version } => {
                out.int(OP_DELETE);
                out.string(path);
                out.int(*version);
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                out.int(OP_SET_DATA);
                out.string(path);
                out.buffer(data);
                out.int(*version);
            }
            Op::Check { path, version } => {
                out.int(OP_CHECK);
                out.string(path);
                out.int(*version);
            }
        }
    }

    fn read(input: &mut Reader<'_>) -> Result<Op, AbiError> {
        Ok(match input.int()? {
            OP_CREATE => Op::Create {
                path: input.string()?,
                data: input.buffer()?,
                flags: input.int()?,
            },
            OP_DELETE => Op::Delete {
                path: input.string()?,
                version: input.int()?,
            },
            OP_SET_DATA => Op::SetData {
                path: input.string()?,
                data: input.buffer()?,
                version: input.int()?,
            },
            OP_CHECK => Op::Check {
                path: input.string()?,
                version: input.int()?,
            },
            other => return Err(AbiError::BadTag(other)),
        })
    }
}

impl Codec for OpResult {
    fn write(&self, out: &mut Writer) {
        match self {
            OpResult::Created { path, stat } => {
                out.int(OP_CREATE);
                out.string(path);
                stat.write(out);
            }
            OpResult::Deleted => out.int(OP_DELETE),
            OpResult::Set(stat) => {
                out.int(OP_SET_DATA);
                stat.write(out);
            }
            OpResult::Checked => out.int(OP_CHECK),
        }
    }

    fn read(input: &mut Reader<'_>) -> Result<OpResult, AbiError> {
        Ok(match input.int()? {
            OP_CREATE => OpResult::Created {
                path: input.string()?,
                stat: Stat::read(input)?,
            },
            OP_DELETE => OpResult::Deleted,
            OP_SET_DATA => OpResult::Set(Stat::read(input)?),
            OP_CHECK => OpResult::Checked,
            other => return Err(AbiError::BadTag(other)),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            session: 0x1234_5678_9abc,
            zxid: 42,
            time_ms: 1_700_000_000_000,
            recipe: "lock".into(),
            root: "/locks".into(),
        }
    }

    fn round_trip<T: Codec + PartialEq + fmt::Debug>(value: T) {
        let bytes = value.encode();
        assert_eq!(T::decode(&bytes).unwrap(), value);
        for cut in 0..bytes.len() {
            assert!(T::decode(&bytes[..cut]).is_err(), "prefix {cut} decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(T::decode(&longer), Err(AbiError::Trailing(1)));
    }

    #[test]
    fn every_record_round_trips_and_rejects_truncation() {
        round_trip(Event {
            header: header(),
            kind: EventKind::SessionClosed,
            path: String::new(),
            ephemerals: vec!["/locks/a".into(), "/locks/b".into()],
        });
        round_trip(Call {
            header: header(),
            args: b"acquire".to_vec(),
        });
        round_trip(Validate {
            header: header(),
            kind: WriteKind::SetData,
            path: "/locks/x".into(),
            data: vec![1, 2, 3],
            flags: 0,
        });
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        round_trip(Node {
            stat,
            data: b"v".to_vec(),
        });
        round_trip(vec!["a".to_string(), "b".to_string()]);
        for op in [
            Op::Create {
                path: "/locks/r-".into(),
                data: vec![],
                flags: 3,
            },
            Op::Delete {
                path: "/locks/r".into(),
                version: -1,
            },
            Op::SetData {
                path: "/locks".into(),
                data: b"x".to_vec(),
                version: 2,
            },
            Op::Check {
                path: "/locks".into(),
                version: 0,
            },
        ] {
            round_trip(op);
        }
        for result in [
            OpResult::Created {
                path: "/locks/r-0000000001".into(),
                stat,
            },
            OpResult::Deleted,
            OpResult::Set(stat),
            OpResult::Checked,
        ] {
            round_trip(result);
        }
    }

    #[test]
    fn stat_is_jute_sized() {
        assert_eq!(Stat::default().encode().len(), 68);
    }

    #[test]
    fn bad_tags_and_lengths_are_errors() {
        let mut out = Writer::default();
        out.int(9);
        assert_eq!(Op::decode(&out.bytes), Err(AbiError::BadTag(9)));
        let mut out = Writer::default();
        out.int(-5);
        assert_eq!(
            Vec::<String>::decode(&out.bytes),
            Err(AbiError::BadLength(-5))
        );
        let mut out = Writer::default();
        out.buffer(&[0xff, 0xfe]);
        assert_eq!(Reader::new(&out.bytes).string(), Err(AbiError::NotUtf8));
    }
}
