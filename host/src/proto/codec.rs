//! Encode and decode of every record. (skeleton: to be implemented)
use bytes::BytesMut;

use super::message::{Request, Response};
use super::records::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("malformed record: {0}")]
    Malformed(String),
    #[error("unknown op code {op} (xid {xid})")]
    UnknownOp { xid: i32, op: i32 },
}

pub fn decode_connect_request(payload: &[u8]) -> Result<ConnectRequest, DecodeError> {
    let _ = payload;
    todo!()
}
pub fn decode_request(payload: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let _ = payload;
    todo!()
}
/// Writes the 4-byte length prefix and the record.
pub fn encode_connect_response(response: &ConnectResponse, out: &mut BytesMut) {
    let _ = (response, out);
    todo!()
}
/// Writes the 4-byte length prefix, the header and (unless `Response::Empty`) the body.
pub fn encode_reply(header: &ReplyHeader, body: &Response, out: &mut BytesMut) {
    let _ = (header, body, out);
    todo!()
}
/// A watch notification: ReplyHeader{xid -1, zxid, err 0} + WatcherEvent, with length prefix.
pub fn encode_notification(zxid: i64, event: &WatcherEvent, out: &mut BytesMut) {
    let _ = (zxid, event, out);
    todo!()
}
