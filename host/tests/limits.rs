//! Black-box tests of connection-level limits on the raw protocol: a frame over jute.maxbuffer,
//! a negative length, a garbage or truncated record and an unknown op code each close THAT
//! connection while an already-open session keeps working; maxClientCnxns caps connections
//! per client IP.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;

use std::io::Write;

use common::{expect_closed, frame, jute_string, RawConn, Server};

/// A small jute.maxbuffer so the oversized frame is cheap to describe.
const TEST_MAXBUFFER_BYTES: i32 = 4096;

fn limited_server() -> Server {
    Server::start(&[("jute.maxbuffer", &TEST_MAXBUFFER_BYTES.to_string())])
}

/// Sends `bytes` on a fresh handshaken connection and asserts the server closes it, while
/// `bystander` still answers a ping before and after.
fn closes_only_that_connection(server: &Server, bytes: &[u8]) -> Vec<i32> {
    let mut bystander = server.raw();
    bystander.ping();
    let mut victim = server.raw();
    victim.stream.write_all(bytes).unwrap();
    let errs = victim.expect_closed();
    bystander.ping();
    errs
}

#[test]
fn frame_over_maxbuffer_closes_the_connection() {
    let server = limited_server();
    let mut huge = (TEST_MAXBUFFER_BYTES * 4).to_be_bytes().to_vec();
    huge.extend_from_slice(&[0u8; 64]);
    closes_only_that_connection(&server, &huge);
}

#[test]
fn negative_length_closes_the_connection() {
    let server = limited_server();
    closes_only_that_connection(&server, &(-5i32).to_be_bytes());
}

#[test]
fn truncated_record_closes_the_connection() {
    let server = limited_server();
    // A frame too short to hold even the request header (xid + type).
    closes_only_that_connection(&server, &frame(&[0, 0, 0, 1, 0]));
}

#[test]
fn garbage_instead_of_connect_request_closes_the_connection() {
    let server = limited_server();
    let mut bystander = server.raw();
    // 20 bytes of noise: too short for a ConnectRequest.
    let mut s = RawConn::open(server.port);
    s.write_all(&frame(&[0xA5; 20])).unwrap();
    expect_closed(&mut s);
    // Noise whose "length" is absurd.
    let mut s = RawConn::open(server.port);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    expect_closed(&mut s);
    bystander.ping();
}

#[test]
fn unknown_op_code_closes_the_connection() {
    let server = limited_server();
    let mut req = 7i32.to_be_bytes().to_vec();
    req.extend_from_slice(&9999i32.to_be_bytes());
    req.extend_from_slice(&jute_string("/"));
    let errs = closes_only_that_connection(&server, &frame(&req));
    // ZooKeeper first answers Unimplemented (-6); a bare close is tolerated.
    assert!(errs.iter().all(|&e| e == -6), "unexpected replies {errs:?}");
}

#[test]
fn max_client_cnxns_refuses_the_fourth_connection() {
    let server = Server::start(&[("maxClientCnxns", "3")]);
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(server.raw());
    }
    let mut fourth = RawConn::open(server.port);
    // The server may close before or after reading the request; both count as refused.
    let _ = fourth.write_all(&frame(&common::connect_body(4000)));
    expect_closed(&mut fourth);
    for c in &mut conns {
        c.ping();
    }
    // Freeing a slot lets a new connection in.
    let first = conns.remove(0);
    first.close();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut s = RawConn::open(server.port);
        if s.write_all(&frame(&common::connect_body(4000))).is_ok() {
            if let Some(resp) = common::read_frame(&mut s) {
                assert!(resp.len() >= 36);
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
