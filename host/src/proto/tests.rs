//! Protocol-level tests: byte-exact vectors for the handshake, a create, a failed multi and a
//! notification (checked by hand against zookeeper.jute), then property tests: every request
//! and response survives encode + decode, and no decoder panics on arbitrary bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

/// Parses a hex string, ignoring whitespace and `|` separators.
fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Cuts the single frame out of `out`, checking its length prefix on the way.
fn payload_of(out: &BytesMut) -> Bytes {
    let mut buf = out.clone();
    match take_frame(&mut buf, FRAME_BYTES_MAX_DEFAULT, false).unwrap() {
        Some(Frame::Payload(payload)) => {
            assert!(buf.is_empty(), "trailing bytes after the frame");
            payload
        }
        other => panic!("expected one payload frame, got {other:?}"),
    }
}

const CONNECT_REQUEST_45: &str = "0000002d | 00000000 | 0000000000000000 | 00007530 |
    0000000000000000 | 00000010 00000000000000000000000000000000 | 00";

#[test]
fn connect_request_with_and_without_read_only() {
    let mut request = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        password: vec![0; 16],
        read_only: Some(false),
    };
    let mut out = BytesMut::new();
    encode_connect_request(&request, &mut out);
    assert_eq!(&out[..], &hex(CONNECT_REQUEST_45)[..]);
    let payload = payload_of(&out);
    assert_eq!(payload.len(), CONNECT_REQUEST_BYTES_MIN + 1);
    assert_eq!(decode_connect_request(&payload).unwrap(), request);

    let old_client = &payload[..CONNECT_REQUEST_BYTES_MIN];
    request.read_only = None;
    assert_eq!(decode_connect_request(old_client).unwrap(), request);
    let error = decode_connect_request(&payload[..CONNECT_REQUEST_BYTES_MIN - 1]).unwrap_err();
    assert_eq!(error, DecodeError::Truncated { needed: 1 });
}

#[test]
fn connect_response_36_and_37_bytes() {
    let mut response = ConnectResponse {
        protocol_version: 0,
        timeout_ms: 30_000,
        session_id: 0x0100_0000_0000_0001,
        password: (1..=16).collect(),
        read_only: None,
    };
    let mut out = BytesMut::new();
    encode_connect_response(&response, &mut out);
    let expected = hex("00000024 | 00000000 | 00007530 | 0100000000000001 |
        00000010 0102030405060708090a0b0c0d0e0f10");
    assert_eq!(&out[..], &expected[..]);
    assert_eq!(payload_of(&out).len(), CONNECT_RESPONSE_BYTES_MIN);
    assert_eq!(
        decode_connect_response(&payload_of(&out)).unwrap(),
        response
    );

    response.read_only = Some(true);
    out.clear();
    encode_connect_response(&response, &mut out);
    assert_eq!(&out[..4], &[0, 0, 0, 37]);
    assert_eq!(out[out.len() - 1], 1);
    assert_eq!(
        decode_connect_response(&payload_of(&out)).unwrap(),
        response
    );
}

#[test]
fn create_request_and_reply_bytes() {
    let request = Request::Create {
        op: op::CREATE,
        request: CreateRequest {
            path: "/a".into(),
            data: Some(b"hi".to_vec()),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl_ms: None,
        },
    };
    let header = RequestHeader {
        xid: 1,
        op: request.op(),
    };
    let mut out = BytesMut::new();
    encode_request(&header, &request, &mut out);
    let expected = hex(
        "00000033 | 00000001 00000001 | 00000002 2f61 | 00000002 6869 |
        00000001 0000001f 00000005 776f726c64 00000006 616e796f6e65 | 00000000",
    );
    assert_eq!(&out[..], &expected[..]);
    assert_eq!(
        decode_request(&payload_of(&out)).unwrap(),
        (header, request)
    );

    let reply = ReplyHeader {
        xid: 1,
        zxid: 2,
        err: 0,
    };
    out.clear();
    encode_reply(
        &reply,
        &Response::Create { path: "/a".into() },
        FRAME_BYTES_WIRE_MAX,
        &mut out,
    )
    .unwrap();
    let expected = hex("00000016 | 00000001 0000000000000002 00000000 | 00000002 2f61");
    assert_eq!(&out[..], &expected[..]);
    let decoded = decode_reply(op::CREATE, &payload_of(&out)).unwrap();
    assert_eq!(decoded, (reply, Response::Create { path: "/a".into() }));
}

#[test]
fn failed_reply_has_no_body() {
    let reply = ReplyHeader {
        xid: 9,
        zxid: 4,
        err: ErrorCode::NoNode.code(),
    };
    let mut out = BytesMut::new();
    encode_reply(
        &reply,
        &Response::Stat(Stat::default()),
        FRAME_BYTES_WIRE_MAX,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        &out[..],
        &hex("00000010 00000009 0000000000000004 ffffff9b")[..]
    );
    assert_eq!(
        decode_reply(op::EXISTS, &payload_of(&out)).unwrap(),
        (reply, Response::Empty)
    );
}

#[test]
fn multi_with_a_failure_bytes() {
    let request = Request::Multi(vec![
        MultiOp::Create {
            op: op::CREATE,
            request: CreateRequest {
                path: "/a".into(),
                data: Some(Vec::new()),
                ..CreateRequest::default()
            },
        },
        MultiOp::Delete(DeleteRequest {
            path: "/b".into(),
            version: 3,
        }),
    ]);
    let header = RequestHeader {
        xid: 7,
        op: op::MULTI,
    };
    let mut out = BytesMut::new();
    encode_request(&header, &request, &mut out);
    let expected = hex("0000003f | 00000007 0000000e |
        00000001 00 ffffffff | 00000002 2f61 00000000 00000000 00000000 |
        00000002 00 ffffffff | 00000002 2f62 00000003 |
        ffffffff 01 ffffffff");
    assert_eq!(&out[..], &expected[..]);
    assert_eq!(
        decode_request(&payload_of(&out)).unwrap(),
        (header, request)
    );

    // The create succeeded on its own, the delete failed: nothing applies, header err is 0.
    let results = vec![
        MultiResult::Error(0),
        MultiResult::Error(ErrorCode::NoNode.code()),
    ];
    let reply = ReplyHeader {
        xid: 7,
        zxid: 12,
        err: 0,
    };
    out.clear();
    encode_reply(
        &reply,
        &Response::Multi(results.clone()),
        FRAME_BYTES_WIRE_MAX,
        &mut out,
    )
    .unwrap();
    let expected = hex("00000033 | 00000007 000000000000000c 00000000 |
        ffffffff 00 00000000 00000000 |
        ffffffff 00 ffffff9b ffffff9b |
        ffffffff 01 ffffffff");
    assert_eq!(&out[..], &expected[..]);
    let decoded = decode_reply(op::MULTI, &payload_of(&out)).unwrap();
    assert_eq!(decoded, (reply, Response::Multi(results)));
}

#[test]
fn multi_rejects_mixed_kinds_and_unknown_ops() {
    // A multi holding a getData sub-op.
    let payload = hex("00000001 0000000e | 00000004 00 ffffffff 00000001 2f 00 |
        ffffffff 01 ffffffff");
    assert!(matches!(
        decode_request(&payload),
        Err(DecodeError::Malformed(_))
    ));
    // A multiRead holding a delete.
    let payload = hex(
        "00000001 00000016 | 00000002 00 ffffffff 00000001 2f ffffffff |
        ffffffff 01 ffffffff",
    );
    assert!(matches!(
        decode_request(&payload),
        Err(DecodeError::Malformed(_))
    ));
    let payload = hex("00000005 000003e7");
    assert_eq!(
        decode_request(&payload),
        Err(DecodeError::UnknownOp { xid: 5, op: 999 })
    );
    let payload = hex("00000005 00000014 00000001 2f 00000000");
    assert_eq!(
        decode_request(&payload),
        Err(DecodeError::UnknownOp { xid: 5, op: 20 })
    );
}

#[test]
fn notification_bytes() {
    let event = WatcherEvent {
        event_type: EventType::NodeDataChanged as i32,
        state: keeper_state::SYNC_CONNECTED,
        path: "/a".into(),
    };
    let mut out = BytesMut::new();
    encode_notification(5, &event, &mut out);
    let expected = hex("0000001e | ffffffff 0000000000000005 00000000 |
        00000003 00000003 00000002 2f61");
    assert_eq!(&out[..], &expected[..]);
    let (header, decoded) = decode_notification(&payload_of(&out)).unwrap();
    assert_eq!(
        header,
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid: 5,
            err: 0
        }
    );
    assert_eq!(decoded, event);
    assert_eq!(decode_reply_header(&payload_of(&out)).unwrap(), header);
}

#[test]
fn ping_and_auth_frames() {
    let mut out = BytesMut::new();
    encode_request(
        &RequestHeader {
            xid: xid::PING,
            op: op::PING,
        },
        &Request::Ping,
        &mut out,
    );
    assert_eq!(&out[..], &hex("00000008 fffffffe 0000000b")[..]);
    out.clear();
    encode_reply(
        &ReplyHeader {
            xid: xid::PING,
            zxid: 3,
            err: 0,
        },
        &Response::Empty,
        FRAME_BYTES_WIRE_MAX,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        &out[..],
        &hex("00000010 fffffffe 0000000000000003 00000000")[..]
    );
    let (header, body) = decode_reply(op::PING, &payload_of(&out)).unwrap();
    assert_eq!((header.xid, body), (xid::PING, Response::Empty));
}

// ---------------------------------------------------------------- property tests

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,8}"
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..12)
}

/// Znode data: null (length -1) or bytes.
fn node_data() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(data())
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

fn stat() -> impl Strategy<Value = Stat> {
    (any::<[i64; 6]>(), any::<[i32; 5]>()).prop_map(|(l, i)| Stat {
        czxid: l[0],
        mzxid: l[1],
        ctime: l[2],
        mtime: l[3],
        version: i[0],
        cversion: i[1],
        aversion: i[2],
        ephemeral_owner: l[4],
        data_length: i[3],
        num_children: i[4],
        pzxid: l[5],
    })
}

fn acls() -> impl Strategy<Value = Vec<Acl>> {
    let acl = (any::<i32>(), text(), text()).prop_map(|(perms, scheme, id)| Acl {
        perms,
        id: Id { scheme, id },
    });
    prop::collection::vec(acl, 0..3)
}

/// A create op code with a request whose ttl is present exactly for createTTL.
fn create() -> impl Strategy<Value = (i32, CreateRequest)> {
    let code = prop_oneof![
        Just(op::CREATE),
        Just(op::CREATE2),
        Just(op::CREATE_CONTAINER),
        Just(op::CREATE_TTL)
    ];
    (
        code,
        text(),
        node_data(),
        acls(),
        any::<i32>(),
        any::<i64>(),
    )
        .prop_map(|(code, path, data, acl, flags, ttl)| {
            let ttl_ms = (code == op::CREATE_TTL).then_some(ttl);
            (
                code,
                CreateRequest {
                    path,
                    data,
                    acl,
                    flags,
                    ttl_ms,
                },
            )
        })
}

fn path_watch() -> impl Strategy<Value = PathWatchRequest> {
    (text(), any::<bool>()).prop_map(|(path, watch)| PathWatchRequest { path, watch })
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        create().prop_map(|(op, request)| MultiOp::Create { op, request }),
        (text(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (text(), node_data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (text(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn multi_read_op() -> impl Strategy<Value = MultiReadOp> {
    prop_oneof![
        text().prop_map(MultiReadOp::GetData),
        text().prop_map(MultiReadOp::GetChildren)
    ]
}

fn set_watches() -> impl Strategy<Value = SetWatches> {
    (any::<i64>(), texts(), texts(), texts(), texts(), texts()).prop_map(
        |(relative_zxid, data, exist, child, persistent, recursive)| SetWatches {
            relative_zxid,
            data_watches: data,
            exist_watches: exist,
            child_watches: child,
            persistent_watches: persistent,
            persistent_recursive_watches: recursive,
        },
    )
}

fn node_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create().prop_map(|(op, request)| Request::Create { op, request }),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        path_watch().prop_map(Request::Exists),
        path_watch().prop_map(Request::GetData),
        (text(), node_data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        text().prop_map(|path| Request::GetAcl { path }),
        (text(), acls(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        path_watch().prop_map(Request::GetChildren),
        path_watch().prop_map(Request::GetChildren2),
    ]
}

fn other_request() -> impl Strategy<Value = Request> {
    let option = || prop::option::of(text());
    prop_oneof![
        Just(Request::Ping),
        Just(Request::CloseSession),
        Just(Request::WhoAmI),
        text().prop_map(|path| Request::Sync { path }),
        (text(), any::<i32>())
            .prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
        prop::collection::vec(multi_op(), 0..4).prop_map(Request::Multi),
        prop::collection::vec(multi_read_op(), 0..4).prop_map(Request::MultiRead),
        (option(), option(), option(), any::<i64>()).prop_map(|(j, l, n, id)| {
            Request::Reconfig(ReconfigRequest {
                joining_servers: j,
                leaving_servers: l,
                new_members: n,
                cur_config_id: id,
            })
        }),
    ]
}

fn watch_or_session_request() -> impl Strategy<Value = Request> {
    let watches = || {
        (text(), any::<i32>())
            .prop_map(|(path, watcher_type)| WatchesRequest { path, watcher_type })
    };
    prop_oneof![
        watches().prop_map(Request::CheckWatches),
        watches().prop_map(Request::RemoveWatches),
        set_watches().prop_map(Request::SetWatches),
        (text(), any::<i32>())
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        (any::<i32>(), text(), data()).prop_map(|(auth_type, scheme, auth)| Request::Auth(
            AuthPacket {
                auth_type,
                scheme,
                auth
            }
        )),
        data().prop_map(|token| Request::Sasl { token }),
        text().prop_map(|prefix_path| Request::GetEphemerals { prefix_path }),
        text().prop_map(|path| Request::GetAllChildrenNumber { path }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![node_request(), other_request(), watch_or_session_request()]
}

fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        text().prop_map(|path| MultiResult::Create { path }),
        (text(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        stat().prop_map(|stat| MultiResult::SetData { stat }),
        Just(MultiResult::Check),
        (node_data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        texts().prop_map(|children| MultiResult::GetChildren { children }),
        any::<i32>().prop_map(MultiResult::Error),
    ]
}

/// A response with an op code whose reply carries exactly that shape.
fn response() -> impl Strategy<Value = (i32, Response)> {
    let infos = prop::collection::vec(
        (text(), text()).prop_map(|(auth_scheme, user)| ClientInfo { auth_scheme, user }),
        0..3,
    );
    let first = prop_oneof![
        Just((op::DELETE, Response::Empty)),
        text().prop_map(|path| (op::CREATE, Response::Create { path })),
        (text(), stat()).prop_map(|(path, stat)| (op::CREATE2, Response::Create2 { path, stat })),
        stat().prop_map(|stat| (op::EXISTS, Response::Stat(stat))),
        stat().prop_map(|stat| (op::CHECK, Response::Stat(stat))),
        (node_data(), stat())
            .prop_map(|(data, stat)| (op::GET_DATA, Response::GetData { data, stat })),
        (acls(), stat()).prop_map(|(acl, stat)| (op::GET_ACL, Response::GetAcl { acl, stat })),
        texts().prop_map(|children| (op::GET_CHILDREN, Response::GetChildren { children })),
    ];
    let second = prop_oneof![
        (texts(), stat()).prop_map(|(children, stat)| {
            (op::GET_CHILDREN2, Response::GetChildren2 { children, stat })
        }),
        text().prop_map(|path| (op::SYNC, Response::Sync { path })),
        prop::collection::vec(multi_result(), 0..4)
            .prop_map(|results| (op::MULTI, Response::Multi(results))),
        data().prop_map(|token| (op::SASL, Response::Sasl { token })),
        texts().prop_map(|paths| (op::GET_EPHEMERALS, Response::GetEphemerals { paths })),
        any::<i32>().prop_map(|total| {
            (
                op::GET_ALL_CHILDREN_NUMBER,
                Response::GetAllChildrenNumber { total },
            )
        }),
        infos.prop_map(|infos| (op::WHO_AM_I, Response::WhoAmI(infos))),
        any::<i32>().prop_map(|code| (op::ADD_WATCH, Response::ErrorResponse(code))),
    ];
    prop_oneof![first, second]
}

proptest! {
    #[test]
    fn every_request_round_trips(request in request(), xid in any::<i32>()) {
        let header = RequestHeader { xid, op: request.op() };
        let mut out = BytesMut::new();
        encode_request(&header, &request, &mut out);
        let payload = payload_of(&out);
        prop_assert_eq!(decode_request(&payload).unwrap(), (header, request));
        // Every strict prefix is an error, never a panic or a different request.
        for cut in 0..payload.len() {
            prop_assert!(decode_request(&payload[..cut]).is_err());
        }
    }

    #[test]
    fn every_response_round_trips(
        (op_code, response) in response(),
        xid in any::<i32>(),
        zxid in any::<i64>(),
    ) {
        let header = ReplyHeader { xid, zxid, err: 0 };
        let mut out = BytesMut::new();
        encode_reply(&header, &response, FRAME_BYTES_WIRE_MAX, &mut out).unwrap();
        let payload = payload_of(&out);
        // The size a read charges is the size written.
        prop_assert_eq!(payload.len(), REPLY_HEADER_BYTES + reply_body_bytes(&response));
        let decoded = decode_reply(op_code, &payload).unwrap();
        prop_assert_eq!(decoded, (header, response.clone()));
        // One byte less than needed: refused, nothing written.
        out.clear();
        let refused = encode_reply(&header, &response, payload.len() - 1, &mut out);
        prop_assert_eq!(
            refused,
            Err(EncodeError::TooLarge { bytes: payload.len(), max_bytes: payload.len() - 1 })
        );
        prop_assert!(out.is_empty());

        let failed = ReplyHeader { err: ErrorCode::NoAuth.code(), ..header };
        out.clear();
        encode_reply(&failed, &response, FRAME_BYTES_WIRE_MAX, &mut out).unwrap();
        let expected = match response {
            Response::Multi(_) => response,
            _ => Response::Empty,
        };
        prop_assert_eq!(decode_reply(op_code, &payload_of(&out)).unwrap(), (failed, expected));
    }

    #[test]
    fn handshake_round_trips(
        version in any::<i32>(),
        zxid in any::<i64>(),
        timeout_ms in any::<i32>(),
        session_id in any::<i64>(),
        password in data(),
        read_only in any::<Option<bool>>(),
    ) {
        let request = ConnectRequest {
            protocol_version: version,
            last_zxid_seen: zxid,
            timeout_ms,
            session_id,
            password: password.clone(),
            read_only,
        };
        let mut out = BytesMut::new();
        encode_connect_request(&request, &mut out);
        prop_assert_eq!(decode_connect_request(&payload_of(&out)).unwrap(), request);
        let response = ConnectResponse {
            protocol_version: version,
            timeout_ms,
            session_id,
            password,
            read_only,
        };
        out.clear();
        encode_connect_response(&response, &mut out);
        prop_assert_eq!(decode_connect_response(&payload_of(&out)).unwrap(), response);
    }

    #[test]
    fn notification_round_trips(
        zxid in any::<i64>(), event_type in any::<i32>(), state in any::<i32>(), path in text(),
    ) {
        let event = WatcherEvent { event_type, state, path };
        let mut out = BytesMut::new();
        encode_notification(zxid, &event, &mut out);
        let (header, decoded) = decode_notification(&payload_of(&out)).unwrap();
        prop_assert_eq!((header.zxid, header.err, decoded), (zxid, 0, event));
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), op_code in -12..110i32) {
        let _ = decode_request(&bytes);
        let _ = decode_connect_request(&bytes);
        let _ = decode_connect_response(&bytes);
        let _ = decode_reply(op_code, &bytes);
        let _ = decode_notification(&bytes);
    }

    /// Arbitrary bytes behind a valid header reach the body decoders of every op.
    #[test]
    fn request_bodies_never_panic(
        op_code in -12..110i32,
        body in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        let mut payload = RequestHeader { xid: 1, op: op_code }.xid.to_be_bytes().to_vec();
        payload.extend_from_slice(&op_code.to_be_bytes());
        payload.extend_from_slice(&body);
        let _ = decode_request(&payload);
        let mut reply = vec![0u8; REPLY_HEADER_BYTES];
        reply.extend_from_slice(&body);
        let _ = decode_reply(op_code, &reply);
    }

    #[test]
    fn take_frame_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..64),
        max_bytes in 0usize..80,
        first in any::<bool>(),
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        let before = buf.len();
        match take_frame(&mut buf, max_bytes, first) {
            Ok(Some(Frame::Payload(payload))) => {
                prop_assert!(payload.len() <= max_bytes);
                prop_assert_eq!(buf.len() + payload.len() + FRAME_LENGTH_BYTES, before);
            }
            Ok(Some(Frame::FourLetter(word))) => {
                prop_assert!(first);
                prop_assert_eq!(&bytes[..FOUR_LETTER_WORD_BYTES], word.name().as_bytes());
                prop_assert_eq!(buf.len() + FOUR_LETTER_WORD_BYTES, before);
            }
            Ok(None) | Err(_) => prop_assert_eq!(buf.len(), before),
        }
    }
}
