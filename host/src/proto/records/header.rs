//! The headers in front of every post-handshake frame (RequestHeader, ReplyHeader) and in
//! front of every sub-op and result of a multi (MultiHeader).

use bytes::{BufMut, BytesMut};

use super::{ReplyHeader, RequestHeader};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_bool, Reader, Record};

/// RequestHeader: xid + type.
pub const REQUEST_HEADER_BYTES: usize = 8;
/// ReplyHeader: xid + zxid + err.
pub const REPLY_HEADER_BYTES: usize = 16;
/// MultiHeader: type + done + err.
pub const MULTI_HEADER_BYTES: usize = 9;

impl Record for RequestHeader {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.xid);
        out.put_i32(self.op);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RequestHeader {
            xid: reader.read_i32()?,
            op: reader.read_i32()?,
        })
    }
}

impl Record for ReplyHeader {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.xid);
        out.put_i64(self.zxid);
        out.put_i32(self.err);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: reader.read_i32()?,
            zxid: reader.read_i64()?,
            err: reader.read_i32()?,
        })
    }
}

/// Precedes each sub-op of a multi request and each result of a multi response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MultiHeader {
    /// The sub-op's op code; -1 for an error result and for the terminator.
    pub op: i32,
    /// True only on the terminator.
    pub done: bool,
    /// -1 on requests and the terminator; the result's error code on responses.
    pub err: i32,
}

impl MultiHeader {
    /// The record that ends every multi request and response.
    pub(crate) const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };

    pub(crate) fn op(op: i32) -> Self {
        MultiHeader {
            op,
            done: false,
            err: -1,
        }
    }
}

impl Record for MultiHeader {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.op);
        put_bool(out, self.done);
        out.put_i32(self.err);
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MultiHeader {
            op: reader.read_i32()?,
            done: reader.read_bool()?,
            err: reader.read_i32()?,
        })
    }
}
