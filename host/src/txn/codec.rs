//! `txn::codec`: the binary form of a [`TxnEntry`] in the replicated log. Deterministic (same
//! entry, same bytes, on every build) and versioned: the first byte is the format version, so
//! a later layout can be read beside this one. The request records inside an op reuse
//! proto's jute encoding (big-endian fixed-width integers, int32-prefixed strings, buffers and
//! vectors); around them zkw adds one-byte tags. Nothing is ever `usize` on the wire.
//!
//! Layout (version 2): version u8; zxid i64; time_ms i64; session_id i64; auth as a jute
//! vector of Id; op tag u8; the op body. A create carries its op code, the CreateRequest
//! without a TTL, then a presence byte and the TTL, so `ttl_ms` round-trips exactly for every
//! op code (the client wire only has a TTL for createTTL). A multi is a jute vector of
//! (tag, body) sub-ops. Decoding consumes the whole input: trailing bytes are an error, since
//! a log entry is always one complete record.
//!
//! Version 1 has the same bytes, but znode data of length -1 (null) reads as empty: version 2
//! keeps null data. An entry without null data is still written as version 1, so a server of
//! the previous release (which refuses version 2) can apply it; both are read.

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::{op, put_ustring, put_vec, read_create_request, Reader, Record};
use crate::proto::{put_create_request, CreateRequest, DecodeError, Id, MultiOp};

use super::{TxnEntry, TxnOp};

/// The newest format version this build writes and reads: znode data may be null.
pub const ENTRY_FORMAT_VERSION: u8 = 2;
/// The version before null data, still written for entries without null data, and read.
pub const ENTRY_FORMAT_VERSION_NO_NULL_DATA: u8 = 1;
/// Smallest encoding of one Id (two empty strings) and of one multi sub-op (a tag byte).
const ID_BYTES_MIN: usize = 8;
const SUB_OP_BYTES_MIN: usize = 1;
/// Bytes of a session password.
const PASSWORD_BYTES: usize = 16;

const TAG_CREATE_SESSION: u8 = 1;
const TAG_CLOSE_SESSION: u8 = 2;
const TAG_CREATE: u8 = 3;
const TAG_DELETE: u8 = 4;
const TAG_SET_DATA: u8 = 5;
const TAG_SET_ACL: u8 = 6;
const TAG_CHECK: u8 = 7;
const TAG_MULTI: u8 = 8;
const TAG_REAP: u8 = 9;
const TAG_RECIPE_TIMER: u8 = 10;
const TAG_RUNTIME_CHECK: u8 = 11;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("empty log entry")]
    Empty,
    #[error(
        "log entry format version {0} (this build reads {ENTRY_FORMAT_VERSION_NO_NULL_DATA} \
         and {ENTRY_FORMAT_VERSION})"
    )]
    UnknownVersion(u8),
    #[error("unknown op tag {0} in log entry")]
    UnknownOp(u8),
    #[error("bad presence byte {0} in log entry")]
    BadFlag(u8),
    #[error("{0} trailing bytes after log entry")]
    TrailingBytes(usize),
    #[error("log entry record: {0}")]
    Record(#[from] DecodeError),
}

/// Appends the encoding of `entry` to `out`.
pub fn encode_entry(entry: &TxnEntry, out: &mut Vec<u8>) {
    // BytesMut <-> Vec conversions reuse the allocation; jute's writers want a BytesMut.
    let mut buf = BytesMut::from(Bytes::from(std::mem::take(out)));
    buf.put_u8(if has_null_data(&entry.op) {
        ENTRY_FORMAT_VERSION
    } else {
        ENTRY_FORMAT_VERSION_NO_NULL_DATA
    });
    buf.put_i64(entry.zxid);
    buf.put_i64(entry.time_ms);
    buf.put_i64(entry.session_id);
    put_vec(&mut buf, &entry.auth, Id::write);
    put_op(&mut buf, &entry.op);
    *out = Vec::from(buf);
}

/// Decodes one whole entry. Never panics, whatever the bytes.
pub fn decode_entry(bytes: &[u8]) -> Result<TxnEntry, CodecError> {
    let (&version, rest) = bytes.split_first().ok_or(CodecError::Empty)?;
    let null_data_kept = match version {
        ENTRY_FORMAT_VERSION => true,
        ENTRY_FORMAT_VERSION_NO_NULL_DATA => false,
        other => return Err(CodecError::UnknownVersion(other)),
    };
    let mut reader = Reader::new(rest);
    let zxid = reader.read_i64()?;
    let time_ms = reader.read_i64()?;
    let session_id = reader.read_i64()?;
    let auth = reader.read_vec(ID_BYTES_MIN, Reader::read_record::<Id>)?;
    let mut op = read_op(&mut reader)?;
    if !null_data_kept {
        null_data_to_empty(&mut op);
    }
    let trailing = reader.remaining();
    if trailing != 0 {
        return Err(CodecError::TrailingBytes(trailing));
    }
    Ok(TxnEntry {
        zxid,
        time_ms,
        session_id,
        auth,
        op,
    })
}

/// Whether any znode data in `txn_op` is null (only version 2 can say so).
fn has_null_data(txn_op: &TxnOp) -> bool {
    let mut null = false;
    txn_op.for_each_data_write(|_, data| null |= data.is_none());
    null
}

/// Version 1's reading of a null buffer in znode data: empty data.
fn null_data_to_empty(txn_op: &mut TxnOp) {
    let fill = |data: &mut Option<Vec<u8>>| {
        data.get_or_insert_with(Vec::new);
    };
    match txn_op {
        TxnOp::Create { request, .. } => fill(&mut request.data),
        TxnOp::SetData(request) => fill(&mut request.data),
        TxnOp::Multi(sub_ops) => {
            for sub_op in sub_ops {
                match sub_op {
                    MultiOp::Create { request, .. } => fill(&mut request.data),
                    MultiOp::SetData(request) => fill(&mut request.data),
                    MultiOp::Delete(_) | MultiOp::Check(_) => {}
                }
            }
        }
        TxnOp::CreateSession { .. }
        | TxnOp::CloseSession
        | TxnOp::Delete(_)
        | TxnOp::SetAcl(_)
        | TxnOp::Check(_)
        | TxnOp::Reap { .. }
        | TxnOp::RecipeTimer { .. }
        | TxnOp::RuntimeCheck { .. } => {}
    }
}

fn put_op(out: &mut BytesMut, txn_op: &TxnOp) {
    match txn_op {
        TxnOp::CreateSession {
            timeout_ms,
            password,
        } => {
            out.put_u8(TAG_CREATE_SESSION);
            out.put_i32(*timeout_ms);
            out.put_slice(password);
        }
        TxnOp::CloseSession => out.put_u8(TAG_CLOSE_SESSION),
        TxnOp::Create { op, request } => put_create(out, *op, request),
        TxnOp::Delete(request) => put_tagged(out, TAG_DELETE, request),
        TxnOp::SetData(request) => put_tagged(out, TAG_SET_DATA, request),
        TxnOp::SetAcl(request) => put_tagged(out, TAG_SET_ACL, request),
        TxnOp::Check(request) => put_tagged(out, TAG_CHECK, request),
        TxnOp::Multi(sub_ops) => {
            out.put_u8(TAG_MULTI);
            put_vec(out, sub_ops, put_sub_op);
        }
        TxnOp::Reap { path } => {
            out.put_u8(TAG_REAP);
            put_ustring(out, path);
        }
        TxnOp::RecipeTimer { names } => {
            out.put_u8(TAG_RECIPE_TIMER);
            out.put_i32(i32::try_from(names.len()).unwrap_or(i32::MAX));
            for name in names {
                put_ustring(out, name);
            }
        }
        TxnOp::RuntimeCheck { fingerprint } => {
            out.put_u8(TAG_RUNTIME_CHECK);
            put_ustring(out, fingerprint);
        }
    }
}

fn put_sub_op(sub_op: &MultiOp, out: &mut BytesMut) {
    match sub_op {
        MultiOp::Create { op, request } => put_create(out, *op, request),
        MultiOp::Delete(request) => put_tagged(out, TAG_DELETE, request),
        MultiOp::SetData(request) => put_tagged(out, TAG_SET_DATA, request),
        MultiOp::Check(request) => put_tagged(out, TAG_CHECK, request),
    }
}

fn put_tagged(out: &mut BytesMut, tag: u8, record: &impl Record) {
    out.put_u8(tag);
    record.write(out);
}

fn put_create(out: &mut BytesMut, code: i32, request: &CreateRequest) {
    out.put_u8(TAG_CREATE);
    out.put_i32(code);
    // Written as a plain create (no TTL field); the TTL follows with a presence byte.
    put_create_request(out, request, op::CREATE);
    match request.ttl_ms {
        Some(ttl_ms) => {
            out.put_u8(1);
            out.put_i64(ttl_ms);
        }
        None => out.put_u8(0),
    }
}

fn read_op(reader: &mut Reader<'_>) -> Result<TxnOp, CodecError> {
    let tag = reader.read_byte()?;
    Ok(match tag {
        TAG_CREATE_SESSION => {
            let timeout_ms = reader.read_i32()?;
            let mut password = [0u8; PASSWORD_BYTES];
            for byte in &mut password {
                *byte = reader.read_byte()?;
            }
            TxnOp::CreateSession {
                timeout_ms,
                password,
            }
        }
        TAG_CLOSE_SESSION => TxnOp::CloseSession,
        TAG_SET_ACL => TxnOp::SetAcl(reader.read_record()?),
        TAG_MULTI => {
            // The vector reader wants DecodeError; keep the codec's own error on the side.
            let mut failure = None;
            let sub_ops = reader.read_vec(SUB_OP_BYTES_MIN, |reader| {
                read_sub_op(reader).map_err(|error| {
                    let shown = DecodeError::Malformed(error.to_string());
                    failure = Some(error);
                    shown
                })
            });
            match (sub_ops, failure) {
                (_, Some(error)) => return Err(error),
                (sub_ops, None) => TxnOp::Multi(sub_ops?),
            }
        }
        TAG_REAP => TxnOp::Reap {
            path: reader.read_ustring()?,
        },
        TAG_RECIPE_TIMER => {
            let count = reader.read_i32()?;
            let count = usize::try_from(count)
                .map_err(|_| DecodeError::Malformed(format!("{count} timer names")))?;
            let mut names = Vec::new();
            for _ in 0..count {
                names.push(reader.read_ustring()?);
            }
            TxnOp::RecipeTimer { names }
        }
        TAG_RUNTIME_CHECK => TxnOp::RuntimeCheck {
            fingerprint: reader.read_ustring()?,
        },
        _ => match read_sub_op_body(reader, tag)? {
            MultiOp::Create { op, request } => TxnOp::Create { op, request },
            MultiOp::Delete(request) => TxnOp::Delete(request),
            MultiOp::SetData(request) => TxnOp::SetData(request),
            MultiOp::Check(request) => TxnOp::Check(request),
        },
    })
}

fn read_sub_op(reader: &mut Reader<'_>) -> Result<MultiOp, CodecError> {
    let tag = reader.read_byte()?;
    read_sub_op_body(reader, tag)
}

fn read_sub_op_body(reader: &mut Reader<'_>, tag: u8) -> Result<MultiOp, CodecError> {
    Ok(match tag {
        TAG_CREATE => {
            let code = reader.read_i32()?;
            let mut request = read_create_request(reader, op::CREATE)?;
            request.ttl_ms = match reader.read_byte()? {
                0 => None,
                1 => Some(reader.read_i64()?),
                other => return Err(CodecError::BadFlag(other)),
            };
            MultiOp::Create { op: code, request }
        }
        TAG_DELETE => MultiOp::Delete(reader.read_record()?),
        TAG_SET_DATA => MultiOp::SetData(reader.read_record()?),
        TAG_CHECK => MultiOp::Check(reader.read_record()?),
        other => return Err(CodecError::UnknownOp(other)),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proto::{Acl, CheckVersionRequest, DeleteRequest, SetAclRequest, SetDataRequest};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[/a-z\u{e9}0-9]{0,12}"
    }

    fn acl() -> impl Strategy<Value = Vec<Acl>> {
        proptest::collection::vec(
            (any::<i32>(), text(), text()).prop_map(|(perms, scheme, id)| Acl {
                perms,
                id: Id { scheme, id },
            }),
            0..3,
        )
    }

    fn create() -> impl Strategy<Value = MultiOp> {
        let codes = prop_oneof![
            Just(op::CREATE),
            Just(op::CREATE2),
            Just(op::CREATE_CONTAINER),
            Just(op::CREATE_TTL),
            any::<i32>(),
        ];
        let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16));
        let ttl = proptest::option::of(any::<i64>());
        (codes, text(), data, acl(), any::<i32>(), ttl).prop_map(
            |(code, path, data, acl, flags, ttl_ms)| MultiOp::Create {
                op: code,
                request: CreateRequest {
                    path,
                    data,
                    acl,
                    flags,
                    ttl_ms,
                },
            },
        )
    }

    fn sub_op() -> impl Strategy<Value = MultiOp> {
        let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16));
        prop_oneof![
            create(),
            (text(), any::<i32>())
                .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
            (text(), data, any::<i32>()).prop_map(|(path, data, version)| {
                MultiOp::SetData(SetDataRequest {
                    path,
                    data,
                    version,
                })
            }),
            (text(), any::<i32>()).prop_map(|(path, version)| {
                MultiOp::Check(CheckVersionRequest { path, version })
            }),
        ]
    }

    fn txn_op() -> impl Strategy<Value = TxnOp> {
        prop_oneof![
            (any::<i32>(), any::<[u8; 16]>()).prop_map(|(timeout_ms, password)| {
                TxnOp::CreateSession {
                    timeout_ms,
                    password,
                }
            }),
            Just(TxnOp::CloseSession),
            sub_op().prop_map(|sub_op| match sub_op {
                MultiOp::Create { op, request } => TxnOp::Create { op, request },
                MultiOp::Delete(request) => TxnOp::Delete(request),
                MultiOp::SetData(request) => TxnOp::SetData(request),
                MultiOp::Check(request) => TxnOp::Check(request),
            }),
            (text(), acl(), any::<i32>()).prop_map(|(path, acl, version)| TxnOp::SetAcl(
                SetAclRequest { path, acl, version }
            )),
            proptest::collection::vec(sub_op(), 0..5).prop_map(TxnOp::Multi),
            text().prop_map(|path| TxnOp::Reap { path }),
            prop::collection::vec(text(), 0..3).prop_map(|names| TxnOp::RecipeTimer { names }),
            text().prop_map(|fingerprint| TxnOp::RuntimeCheck { fingerprint }),
        ]
    }

    fn entry() -> impl Strategy<Value = TxnEntry> {
        let auth = proptest::collection::vec(
            (text(), text()).prop_map(|(scheme, id)| Id { scheme, id }),
            0..3,
        );
        (any::<i64>(), any::<i64>(), any::<i64>(), auth, txn_op()).prop_map(
            |(zxid, time_ms, session_id, auth, op)| TxnEntry {
                zxid,
                time_ms,
                session_id,
                auth,
                op,
            },
        )
    }

    proptest! {
        #[test]
        fn every_entry_round_trips(entry in entry()) {
            let mut bytes = b"prefix".to_vec();
            encode_entry(&entry, &mut bytes);
            prop_assert_eq!(&bytes[..6], b"prefix");
            let version = if has_null_data(&entry.op) {
                ENTRY_FORMAT_VERSION
            } else {
                ENTRY_FORMAT_VERSION_NO_NULL_DATA
            };
            prop_assert_eq!(bytes[6], version);
            prop_assert_eq!(decode_entry(&bytes[6..]), Ok(entry.clone()));
            // Deterministic: a second encoding is byte-identical.
            let mut again = Vec::new();
            encode_entry(&entry, &mut again);
            prop_assert_eq!(&again[..], &bytes[6..]);
            // Every strict prefix is an error, never a panic or a different entry.
            for cut in 0..again.len() {
                prop_assert!(decode_entry(&again[..cut]).is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_entry(&bytes);
            for version in [ENTRY_FORMAT_VERSION_NO_NULL_DATA, ENTRY_FORMAT_VERSION] {
                let mut versioned = vec![version];
                versioned.extend_from_slice(&bytes);
                let _ = decode_entry(&versioned);
            }
        }

        #[test]
        fn flipped_bytes_never_panic(entry in entry(), at in any::<usize>(), xor in 1u8..) {
            let mut bytes = Vec::new();
            encode_entry(&entry, &mut bytes);
            let at = at % bytes.len();
            bytes[at] ^= xor;
            let _ = decode_entry(&bytes);
        }
    }

    #[test]
    fn fixed_layout_of_a_close_session() {
        let entry = TxnEntry {
            zxid: 0x0102,
            time_ms: 3,
            session_id: -1,
            auth: vec![Id::new("ip", "1")],
            op: TxnOp::CloseSession,
        };
        let mut bytes = Vec::new();
        encode_entry(&entry, &mut bytes);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 3];
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(b"\0\0\0\x01\0\0\0\x02ip\0\0\0\x011");
        expected.push(TAG_CLOSE_SESSION);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn null_data_needs_version_2_and_version_1_reads_it_as_empty() {
        let entry = |data: Option<Vec<u8>>| TxnEntry {
            zxid: 5,
            time_ms: 6,
            session_id: 7,
            auth: Vec::new(),
            op: TxnOp::Multi(vec![MultiOp::SetData(SetDataRequest {
                path: "/n".into(),
                data,
                version: -1,
            })]),
        };
        let mut null = Vec::new();
        encode_entry(&entry(None), &mut null);
        let mut empty = Vec::new();
        encode_entry(&entry(Some(Vec::new())), &mut empty);
        assert_eq!((null[0], empty[0]), (2, 1));
        // Same layout; only the version and the length (-1 against 0) differ.
        assert_eq!(null.len(), empty.len());
        assert_eq!(decode_entry(&null), Ok(entry(None)));
        assert_eq!(decode_entry(&empty), Ok(entry(Some(Vec::new()))));
        // A version 1 entry holding -1 (no build wrote one) keeps version 1's meaning.
        null[0] = ENTRY_FORMAT_VERSION_NO_NULL_DATA;
        assert_eq!(decode_entry(&null), Ok(entry(Some(Vec::new()))));
    }

    /// An entry as the previous release wrote it (version 1), byte for byte.
    #[test]
    fn version_1_create_still_reads() {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&9i64.to_be_bytes());
        bytes.extend_from_slice(&10i64.to_be_bytes());
        bytes.extend_from_slice(&11i64.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes()); // no auth
        bytes.push(TAG_CREATE);
        bytes.extend_from_slice(&op::CREATE2.to_be_bytes());
        bytes.extend_from_slice(b"\0\0\0\x02/c\0\0\0\x01v");
        bytes.extend_from_slice(b"\0\0\0\x01\0\0\0\x1f\0\0\0\x05world\0\0\0\x06anyone");
        bytes.extend_from_slice(&0i32.to_be_bytes()); // flags
        bytes.push(0); // no TTL
        let request = CreateRequest {
            path: "/c".into(),
            data: Some(b"v".to_vec()),
            acl: vec![Acl {
                perms: 31,
                id: Id::new("world", "anyone"),
            }],
            flags: 0,
            ttl_ms: None,
        };
        let entry = TxnEntry {
            zxid: 9,
            time_ms: 10,
            session_id: 11,
            auth: Vec::new(),
            op: TxnOp::Create {
                op: op::CREATE2,
                request,
            },
        };
        assert_eq!(decode_entry(&bytes), Ok(entry.clone()));
        let mut again = Vec::new();
        encode_entry(&entry, &mut again);
        assert_eq!(
            again, bytes,
            "without null data the entry is still written as version 1"
        );
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(decode_entry(&[]), Err(CodecError::Empty));
        assert_eq!(decode_entry(&[9]), Err(CodecError::UnknownVersion(9)));
        let entry = TxnEntry {
            zxid: 1,
            time_ms: 0,
            session_id: 0,
            auth: Vec::new(),
            op: TxnOp::Reap { path: "/a".into() },
        };
        let mut bytes = Vec::new();
        encode_entry(&entry, &mut bytes);
        let tag_at = 1 + 8 * 3 + 4;
        let mut unknown = bytes.clone();
        unknown[tag_at] = 0xee;
        assert_eq!(decode_entry(&unknown), Err(CodecError::UnknownOp(0xee)));
        bytes.push(0);
        assert_eq!(decode_entry(&bytes), Err(CodecError::TrailingBytes(1)));
    }
}
