//! The session handshake: ConnectRequest (client's first frame) and ConnectResponse (server's
//! first frame). Neither has a header. Both end in an optional readOnly byte (ZOOKEEPER-4492):
//! old clients omit it, and must then get a response without it.

use bytes::{BufMut, BytesMut};

use super::{ConnectRequest, ConnectResponse};
use crate::proto::codec::DecodeError;
use crate::proto::jute::{put_bool, put_buffer, Reader, Record};

/// ConnectRequest payload without the readOnly byte, with the usual 16-byte password:
/// int + long + int + long + (int + 16).
pub const CONNECT_REQUEST_BYTES_MIN: usize = 44;
/// ConnectResponse payload without the readOnly byte, with a 16-byte password.
pub const CONNECT_RESPONSE_BYTES_MIN: usize = 36;

/// Reads the trailing readOnly byte when the frame carries one. Extra bytes after it are
/// ignored, as ZooKeeper does.
fn read_trailing_bool(reader: &mut Reader<'_>) -> Result<Option<bool>, DecodeError> {
    if reader.is_empty() {
        Ok(None)
    } else {
        reader.read_bool().map(Some)
    }
}

impl Record for ConnectRequest {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.protocol_version);
        out.put_i64(self.last_zxid_seen);
        out.put_i32(self.timeout_ms);
        out.put_i64(self.session_id);
        put_buffer(out, &self.password);
        if let Some(read_only) = self.read_only {
            put_bool(out, read_only);
        }
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: reader.read_i32()?,
            last_zxid_seen: reader.read_i64()?,
            timeout_ms: reader.read_i32()?,
            session_id: reader.read_i64()?,
            password: reader.read_buffer()?,
            read_only: read_trailing_bool(reader)?,
        })
    }
}

impl Record for ConnectResponse {
    fn write(&self, out: &mut BytesMut) {
        out.put_i32(self.protocol_version);
        out.put_i32(self.timeout_ms);
        out.put_i64(self.session_id);
        put_buffer(out, &self.password);
        if let Some(read_only) = self.read_only {
            put_bool(out, read_only);
        }
    }
    fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: reader.read_i32()?,
            timeout_ms: reader.read_i32()?,
            session_id: reader.read_i64()?,
            password: reader.read_buffer()?,
            read_only: read_trailing_bool(reader)?,
        })
    }
}
