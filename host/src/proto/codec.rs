//! Whole-frame encode and decode of the client protocol, both directions.
//!
//! Server side: [`decode_connect_request`], [`decode_request`] (RequestHeader, then the body
//! chosen by the op code), [`encode_connect_response`], [`encode_reply`],
//! [`encode_notification`]. Client side, the mirror used by our own client, the bench and the
//! round-trip tests: [`encode_connect_request`], [`encode_request`],
//! [`decode_connect_response`], [`decode_reply_header`], [`decode_reply`],
//! [`decode_notification`]. Decoders take a frame payload (the length prefix already cut off
//! by `take_frame`); encoders append a whole frame, length prefix included. Bytes after a
//! complete record are ignored, as ZooKeeper ignores them.

use bytes::{BufMut, BytesMut};

use super::jute::{
    put_buffer, put_buffer_opt, put_framed, put_ustring, put_ustring_vec, put_vec, Reader, Record,
};
use super::message::{Request, Response};
use super::records::*;
use super::size::{reply_body_bytes, EncodeError, ReplyBudget};
use super::types::{op, xid, Stat};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("unknown op code {op} (xid {xid})")]
    UnknownOp { xid: i32, op: i32 },
}

/// The client's first frame. A 44-byte payload is an old client (`read_only: None`); a
/// 45-byte one carries the readOnly flag.
pub fn decode_connect_request(payload: &[u8]) -> Result<ConnectRequest, DecodeError> {
    Reader::new(payload).read_record()
}

/// A post-handshake client frame. An op code outside `Request` is `UnknownOp`, which the
/// server answers with Unimplemented (-6) rather than closing the connection.
pub fn decode_request(payload: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut reader = Reader::new(payload);
    let header: RequestHeader = reader.read_record()?;
    let request = read_request_body(&mut reader, header)?;
    Ok((header, request))
}

fn read_request_body(
    reader: &mut Reader<'_>,
    header: RequestHeader,
) -> Result<Request, DecodeError> {
    Ok(match header.op {
        op::PING => Request::Ping,
        op::CLOSE_SESSION => Request::CloseSession,
        op::WHO_AM_I => Request::WhoAmI,
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Request::Create {
            op: header.op,
            request: read_create_request(reader, header.op)?,
        },
        op::DELETE => Request::Delete(reader.read_record()?),
        op::EXISTS => Request::Exists(reader.read_record()?),
        op::GET_DATA => Request::GetData(reader.read_record()?),
        op::SET_DATA => Request::SetData(reader.read_record()?),
        op::GET_ACL => Request::GetAcl {
            path: reader.read_ustring()?,
        },
        op::SET_ACL => Request::SetAcl(reader.read_record()?),
        op::GET_CHILDREN => Request::GetChildren(reader.read_record()?),
        op::GET_CHILDREN2 => Request::GetChildren2(reader.read_record()?),
        op::SYNC => Request::Sync {
            path: reader.read_ustring()?,
        },
        op::CHECK => Request::Check(reader.read_record()?),
        op::MULTI => Request::Multi(read_multi_ops(reader)?),
        op::MULTI_READ => Request::MultiRead(read_multi_read_ops(reader)?),
        op::RECONFIG => Request::Reconfig(reader.read_record()?),
        op::CHECK_WATCHES => Request::CheckWatches(reader.read_record()?),
        op::REMOVE_WATCHES => Request::RemoveWatches(reader.read_record()?),
        op::SET_WATCHES => Request::SetWatches(read_set_watches(reader, false)?),
        op::SET_WATCHES2 => Request::SetWatches(read_set_watches(reader, true)?),
        op::ADD_WATCH => Request::AddWatch(reader.read_record()?),
        op::AUTH => Request::Auth(reader.read_record()?),
        op::SASL => Request::Sasl {
            token: reader.read_buffer()?,
        },
        op::GET_EPHEMERALS => Request::GetEphemerals {
            prefix_path: reader.read_ustring()?,
        },
        op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
            path: reader.read_ustring()?,
        },
        other => {
            return Err(DecodeError::UnknownOp {
                xid: header.xid,
                op: other,
            })
        }
    })
}

/// Writes the 4-byte length prefix and the record; the readOnly byte only when
/// `response.read_only` is `Some` (the client sent one).
pub fn encode_connect_response(response: &ConnectResponse, out: &mut BytesMut) {
    put_framed(out, |out| response.write(out));
}

/// Writes the 4-byte length prefix, the header and (unless `Response::Empty`) the body.
/// When `header.err` is non-zero only a `Response::Multi` body is written: ZooKeeper clients
/// never read the body of a failed reply, so none is sent. A payload above `max_bytes` (or
/// above what jute's int32 length can announce) is refused before anything is written.
pub fn encode_reply(
    header: &ReplyHeader,
    body: &Response,
    max_bytes: usize,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let with_body = header.err == 0 || matches!(body, Response::Multi(_));
    let body_bytes = if with_body { reply_body_bytes(body) } else { 0 };
    ReplyBudget::new(max_bytes).charge(body_bytes)?;
    put_framed(out, |out| {
        header.write(out);
        if with_body {
            put_response_body(out, body);
        }
    });
    Ok(())
}

fn put_response_body(out: &mut BytesMut, body: &Response) {
    match body {
        Response::Empty => {}
        Response::Create { path } | Response::Sync { path } => put_ustring(out, path),
        Response::Create2 { path, stat } => {
            put_ustring(out, path);
            stat.write(out);
        }
        Response::Stat(stat) => stat.write(out),
        Response::GetData { data, stat } => {
            put_buffer_opt(out, data.as_deref());
            stat.write(out);
        }
        Response::GetAcl { acl, stat } => {
            put_acl_vec(out, acl);
            stat.write(out);
        }
        Response::GetChildren { children } => put_ustring_vec(out, children),
        Response::GetChildren2 { children, stat } => {
            put_ustring_vec(out, children);
            stat.write(out);
        }
        Response::Multi(results) => put_multi_results(out, results),
        Response::Sasl { token } => put_buffer(out, token),
        Response::GetEphemerals { paths } => put_ustring_vec(out, paths),
        Response::GetAllChildrenNumber { total } => out.put_i32(*total),
        Response::WhoAmI(infos) => put_vec(out, infos, Record::write),
        Response::ErrorResponse(code) => out.put_i32(*code),
    }
}

/// A watch notification: ReplyHeader{xid -1, zxid, err 0} + WatcherEvent, with length prefix.
pub fn encode_notification(zxid: i64, event: &WatcherEvent, out: &mut BytesMut) {
    put_framed(out, |out| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid,
            err: 0,
        }
        .write(out);
        event.write(out);
    });
}

/// Client side: writes the 4-byte length prefix and the ConnectRequest (readOnly byte only
/// when `Some`).
pub fn encode_connect_request(request: &ConnectRequest, out: &mut BytesMut) {
    put_framed(out, |out| request.write(out));
}

/// Client side: writes the length prefix, `header` and the body of `request`. The header's op
/// should be `request.op()` (or SET_WATCHES2 to force the six-list form): it selects the
/// SetWatches layout, while a create's ttl follows the op inside `Request::Create`.
pub fn encode_request(header: &RequestHeader, request: &Request, out: &mut BytesMut) {
    put_framed(out, |out| {
        header.write(out);
        put_request_body(out, header.op, request);
    });
}

fn put_request_body(out: &mut BytesMut, header_op: i32, request: &Request) {
    match request {
        Request::Ping | Request::CloseSession | Request::WhoAmI => {}
        Request::Create { op, request } => put_create_request(out, request, *op),
        Request::Delete(record) => record.write(out),
        Request::Exists(record)
        | Request::GetData(record)
        | Request::GetChildren(record)
        | Request::GetChildren2(record) => record.write(out),
        Request::SetData(record) => record.write(out),
        Request::GetAcl { path }
        | Request::Sync { path }
        | Request::GetEphemerals { prefix_path: path }
        | Request::GetAllChildrenNumber { path } => put_ustring(out, path),
        Request::SetAcl(record) => record.write(out),
        Request::Check(record) => record.write(out),
        Request::Multi(ops) => put_multi_ops(out, ops),
        Request::MultiRead(ops) => put_multi_read_ops(out, ops),
        Request::Reconfig(record) => record.write(out),
        Request::CheckWatches(record) | Request::RemoveWatches(record) => record.write(out),
        Request::SetWatches(watches) => {
            put_set_watches(out, watches, header_op == op::SET_WATCHES2);
        }
        Request::AddWatch(record) => record.write(out),
        Request::Auth(record) => record.write(out),
        Request::Sasl { token } => put_buffer(out, token),
    }
}

/// Client side: the server's first frame.
pub fn decode_connect_response(payload: &[u8]) -> Result<ConnectResponse, DecodeError> {
    Reader::new(payload).read_record()
}

/// Client side: only the ReplyHeader, so a client can route by xid (-1 notification, -2 ping,
/// else its pending request) before decoding the body.
pub fn decode_reply_header(payload: &[u8]) -> Result<ReplyHeader, DecodeError> {
    Reader::new(payload).read_record()
}

/// Client side: a reply to a request with op code `op` (the caller keeps xid -> op). When the
/// header carries an error the body is `Empty`, except for a multi that has a body.
pub fn decode_reply(op: i32, payload: &[u8]) -> Result<(ReplyHeader, Response), DecodeError> {
    let mut reader = Reader::new(payload);
    let header: ReplyHeader = reader.read_record()?;
    let has_multi_body = (op == op::MULTI || op == op::MULTI_READ) && !reader.is_empty();
    if header.err != 0 && !has_multi_body {
        return Ok((header, Response::Empty));
    }
    match read_response_body(&mut reader, op) {
        Ok(body) => Ok((header, body)),
        Err(DecodeError::UnknownOp { op, .. }) => Err(DecodeError::UnknownOp {
            xid: header.xid,
            op,
        }),
        Err(error) => Err(error),
    }
}

fn read_response_body(reader: &mut Reader<'_>, op_code: i32) -> Result<Response, DecodeError> {
    Ok(match op_code {
        op::DELETE
        | op::PING
        | op::AUTH
        | op::SET_WATCHES
        | op::SET_WATCHES2
        | op::CHECK_WATCHES
        | op::REMOVE_WATCHES
        | op::CLOSE_SESSION => Response::Empty,
        // A standalone check gets a Stat from ZooKeeper, which clients ignore; accept both.
        op::CHECK if reader.is_empty() => Response::Empty,
        op::EXISTS | op::SET_DATA | op::SET_ACL | op::CHECK => {
            Response::Stat(reader.read_record()?)
        }
        op::CREATE => Response::Create {
            path: reader.read_ustring()?,
        },
        op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Response::Create2 {
            path: reader.read_ustring()?,
            stat: reader.read_record()?,
        },
        // reconfig answers with the new config as a GetDataResponse.
        op::GET_DATA | op::RECONFIG => Response::GetData {
            data: reader.read_buffer_opt()?,
            stat: reader.read_record()?,
        },
        op::GET_ACL => Response::GetAcl {
            acl: read_acl_vec(reader)?,
            stat: reader.read_record()?,
        },
        op::GET_CHILDREN => Response::GetChildren {
            children: reader.read_ustring_vec()?,
        },
        op::GET_CHILDREN2 => Response::GetChildren2 {
            children: reader.read_ustring_vec()?,
            stat: reader.read_record::<Stat>()?,
        },
        op::SYNC => Response::Sync {
            path: reader.read_ustring()?,
        },
        op::MULTI | op::MULTI_READ => Response::Multi(read_multi_results(reader)?),
        op::SASL => Response::Sasl {
            token: reader.read_buffer()?,
        },
        op::GET_EPHEMERALS => Response::GetEphemerals {
            paths: reader.read_ustring_vec()?,
        },
        op::GET_ALL_CHILDREN_NUMBER => Response::GetAllChildrenNumber {
            total: reader.read_i32()?,
        },
        op::ADD_WATCH => Response::ErrorResponse(reader.read_i32()?),
        op::WHO_AM_I => {
            Response::WhoAmI(reader.read_vec(CLIENT_INFO_BYTES_MIN, Reader::read_record)?)
        }
        other => return Err(DecodeError::UnknownOp { xid: 0, op: other }),
    })
}

/// ClientInfo is two ustrings, each at least its length prefix.
const CLIENT_INFO_BYTES_MIN: usize = 8;

/// Client side: a notification frame (xid -1). Returns the header (its zxid is the
/// triggering txn's) and the event; any other xid is malformed.
pub fn decode_notification(payload: &[u8]) -> Result<(ReplyHeader, WatcherEvent), DecodeError> {
    let mut reader = Reader::new(payload);
    let header: ReplyHeader = reader.read_record()?;
    if header.xid != xid::NOTIFICATION {
        return Err(DecodeError::Malformed(format!(
            "notification with xid {}",
            header.xid
        )));
    }
    Ok((header, reader.read_record()?))
}
