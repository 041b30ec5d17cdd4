//! Byte compatibility with the real Java client and server (ZooKeeper 3.8.0): replays frames
//! captured on loopback (`fixtures/zk-3.8.0-java-client.frames`, provenance in its header).
//! Every client frame must decode; every server frame must decode and re-encode to the very
//! same bytes, since those are the bytes our server has to produce.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};

use super::*;

const FRAMES: &str = include_str!("fixtures/zk-3.8.0-java-client.frames");

struct Captured {
    connection: u32,
    from_client: bool,
    frame: Vec<u8>,
}

fn captured() -> Vec<Captured> {
    FRAMES
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.split_whitespace();
            let connection = fields.next().unwrap().parse().unwrap();
            let from_client = fields.next().unwrap() == "C>S";
            let text = fields.next().unwrap();
            let frame = (0..text.len())
                .step_by(2)
                .map(|at| u8::from_str_radix(&text[at..at + 2], 16).unwrap())
                .collect();
            Captured {
                connection,
                from_client,
                frame,
            }
        })
        .collect()
}

fn frame_payload(frame: &[u8]) -> Bytes {
    let mut buf = BytesMut::from(frame);
    match take_frame(&mut buf, FRAME_BYTES_MAX_DEFAULT, false).unwrap() {
        Some(Frame::Payload(payload)) if buf.is_empty() => payload,
        other => panic!("not exactly one frame: {other:?}"),
    }
}

/// Per connection: the handshake first, then requests (remembering xid -> op) and replies.
#[derive(Default)]
struct Connection {
    handshaken_client: bool,
    handshaken_server: bool,
    pending: HashMap<i32, i32>,
}

fn check_client_frame(state: &mut Connection, frame: &[u8]) -> Option<Request> {
    let payload = frame_payload(frame);
    if !state.handshaken_client {
        state.handshaken_client = true;
        let request = decode_connect_request(&payload).unwrap();
        assert_eq!(
            request.read_only,
            Some(false),
            "3.8 clients send the readOnly byte"
        );
        let mut out = BytesMut::new();
        encode_connect_request(&request, &mut out);
        assert_eq!(&out[..], frame);
        return None;
    }
    let (header, request) = decode_request(&payload).unwrap();
    assert_eq!(
        header.op,
        request.op(),
        "Request::op agrees with the Java client"
    );
    state.pending.insert(header.xid, header.op);
    // Re-encoding can differ only where the client sent a null buffer (we send empty).
    let mut out = BytesMut::new();
    encode_request(&header, &request, &mut out);
    assert_eq!(
        decode_request(&frame_payload(&out)).unwrap(),
        (header, request.clone())
    );
    Some(request)
}

fn check_server_frame(state: &mut Connection, frame: &[u8]) -> Response {
    let payload = frame_payload(frame);
    let mut out = BytesMut::new();
    if !state.handshaken_server {
        state.handshaken_server = true;
        let response = decode_connect_response(&payload).unwrap();
        assert_eq!(response.read_only, Some(false));
        encode_connect_response(&response, &mut out);
        assert_eq!(&out[..], frame);
        return Response::Empty;
    }
    let header = decode_reply_header(&payload).unwrap();
    if header.xid == xid::NOTIFICATION {
        let (header, event) = decode_notification(&payload).unwrap();
        encode_notification(header.zxid, &event, &mut out);
        assert_eq!(&out[..], frame);
        return Response::Empty;
    }
    let op_code = state
        .pending
        .remove(&header.xid)
        .expect("reply to a pending request");
    let (header, response) = decode_reply(op_code, &payload).unwrap();
    encode_reply(&header, &response, FRAME_BYTES_WIRE_MAX, &mut out).unwrap();
    assert_eq!(&out[..], frame, "re-encoded reply to op {op_code} differs");
    response
}

#[test]
fn java_client_frames_decode_and_replies_reencode_exactly() {
    let mut connections: HashMap<u32, Connection> = HashMap::new();
    let mut requests = Vec::new();
    let mut responses = Vec::new();
    for captured in captured() {
        let state = connections.entry(captured.connection).or_default();
        if captured.from_client {
            requests.extend(check_client_frame(state, &captured.frame));
        } else {
            responses.push(check_server_frame(state, &captured.frame));
        }
    }
    assert!(connections.values().all(|state| state.pending.is_empty()));
    // Spot checks that the interesting shapes were really exercised.
    assert!(requests
        .iter()
        .any(|r| matches!(r, Request::MultiRead(ops) if ops.len() == 3)));
    assert!(requests.iter().any(|r| matches!(r, Request::AddWatch(_))));
    let failed_multi = [
        MultiResult::Error(0),
        MultiResult::Error(ErrorCode::NoNode.code()),
    ];
    assert!(responses.contains(&Response::Multi(failed_multi.to_vec())));
    assert!(responses.contains(&Response::ErrorResponse(0)));
    assert!(responses
        .iter()
        .any(|r| matches!(r, Response::WhoAmI(infos) if infos.len() == 1)));
}

#[test]
fn java_multi_with_null_data_stays_null() {
    let multi = captured()
        .into_iter()
        .filter(|c| c.from_client && c.connection == 1)
        .find_map(|c| match decode_request(&frame_payload(&c.frame)) {
            Ok((_, Request::Multi(ops))) if ops.len() == 3 => Some(ops),
            _ => None,
        })
        .unwrap();
    let MultiOp::Create { op, request } = &multi[0] else {
        panic!("first op is a create")
    };
    assert_eq!(
        (*op, request.path.as_str(), request.flags),
        (op::CREATE, "/m/y", 2)
    );
    assert_eq!(request.data, None);
    assert_eq!(
        multi[2],
        MultiOp::Check(CheckVersionRequest {
            path: "/m".into(),
            version: 1
        })
    );
}
