//! Slow and idle connections, and the AdminServer (issue #12 items 3 and 13): a client that
//! sends requests, or watches a busy node, but never reads its socket is closed whole (write
//! deadline = its session timeout; a byte bound on what waits for it), its slot freed; the
//! admin port closes connections past its limit and idle ones (`admin.idleTimeout`); it binds
//! `admin.serverAddress`; no secret appears in `conf`, the admin output or the log; with
//! `admin.authRequired` the commands that list sessions, connections and watches answer
//! 401/403 to a caller that does not prove ALL on `/`; half-open TLS handshakes from one
//! address are bounded and do not keep a good TLS client out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{self, bounded, poll_until, RawConn, SOCKET_IO_SECS_MAX};
use crate::ensemble::{four_letter, Ensemble, Member};
use crate::{check_no_loss, modes, persistent, Writer, MEMBERS, WRITES_DURING_ATTACK_MIN};
use zookeeper_client as zk;

/// getData's opcode.
const OP_GET_DATA: i32 = 4;
/// Data of the node the non-reading clients ask for, within the default jute.maxbuffer.
const BIG_DATA_BYTES: usize = 64 * 1024;
/// Session timeout the stalling client asks for (and gets: within the test servers' bounds);
/// it is that connection's write deadline.
const STALL_SESSION_MS: i32 = 4_000;
/// Session timeout of the client that creates the big node (the test servers' maximum).
const SETUP_SESSION_MS: u64 = 12_000;
/// getData requests of the stalling client: far more than socket buffers hold, less than the
/// outbound byte bound (64 MiB), so the write deadline is what closes it.
const STALL_REQUESTS: usize = 400;
/// getData requests of the flooding client: past the outbound byte bound.
const FLOOD_REQUESTS: usize = 1_600;
/// Bound on the server noticing either attacker.
const CLOSE_SECS_MAX: u64 = 60;
/// Name length of the node whose changes flood the watcher that never reads: every
/// notification carries its path, so a few hundred fill the socket buffers.
const FLOOD_NAME_BYTES: usize = 60 * 1024;
/// setData calls in flight at once while flooding the watcher.
const FLOOD_WRITES_IN_FLIGHT: usize = 8;
/// A ping's xid and opcode.
const PING_XID: i32 = -2;
const OP_PING: i32 = 11;
/// addWatch's opcode and its persistent-recursive mode.
const OP_ADD_WATCH: i32 = 106;
const MODE_PERSISTENT_RECURSIVE: i32 = 1;
/// zkw's connection limit of an HTTP port (admin::listener::HTTP_CONNECTIONS_MAX).
const HTTP_CONNECTIONS_MAX: usize = 64;
/// Connections the flood opens past that limit.
const HTTP_EXTRA_CONNECTIONS: usize = 16;
/// admin.idleTimeout of the admin test (ZooKeeper's default is 30000).
const ADMIN_IDLE_MS: u64 = 1_500;
/// An address on the loopback other than 127.0.0.1, for admin.serverAddress.
const ADMIN_ADDRESS: &str = "127.0.0.2";
/// Secrets the admin test's zoo.cfg carries; none may be shown or logged.
const KEY_STORE_PASSWORD: &str = "hunter2-keystore";
const TRUST_STORE_PASSWORD: &str = "hunter2-truststore";

/// Half-open TLS connections the handshake attack opens (zkw lets 16 per address in).
const HALF_OPEN_CONNECTIONS: usize = 32;
/// ssl.handshakeDetectionTimeoutMillis of the TLS test.
const HANDSHAKE_TIMEOUT_MS: u64 = 3_000;
/// The attacker's source address in the TLS test (good clients come from 127.0.0.1).
const ATTACKER_ADDRESS: [u8; 4] = [127, 0, 0, 3];

/// A getData request of `path` (no watch) with `xid`, framed.
fn get_data_frame(xid: i32, path: &str) -> Vec<u8> {
    let mut request = xid.to_be_bytes().to_vec();
    request.extend_from_slice(&OP_GET_DATA.to_be_bytes());
    request.extend_from_slice(&common::jute_string(path));
    request.push(0);
    common::frame(&request)
}

/// A ping request, framed.
fn ping_frame() -> Vec<u8> {
    let mut request = PING_XID.to_be_bytes().to_vec();
    request.extend_from_slice(&OP_PING.to_be_bytes());
    common::frame(&request)
}

/// Opens a session on `port` and sends `count` getData of `path` without reading a reply.
fn request_without_reading(port: u16, path: &str, count: usize, timeout_ms: i32) -> RawConn {
    let (mut raw, negotiated) = RawConn::connect_with_timeout(port, timeout_ms);
    assert_eq!(negotiated, timeout_ms);
    for xid in 1..=count {
        // The server may close mid-way (the point of the attack): later writes may fail.
        let xid = i32::try_from(xid).unwrap();
        if raw.stream.write_all(&get_data_frame(xid, path)).is_err() {
            break;
        }
    }
    raw
}

/// Reads whatever the server had sent until it closes; panics if it stays open.
fn drain_until_closed(raw: &mut RawConn) {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match raw.stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the server kept the non-reading connection open")
            }
            Err(_) => return,
        }
    }
}

/// A client of member `idx` with a long session: large writes are slow on a loaded debug
/// build.
async fn long_session(ens: &Ensemble, idx: usize) -> zk::Client {
    bounded(
        "long session connect",
        Ensemble::connector()
            .with_session_timeout(Duration::from_millis(SETUP_SESSION_MS))
            .connect(&ens.hosts(&[idx])),
    )
    .await
    .unwrap()
}

/// Lines of `member`'s log giving a reason for closing a client that does not read.
fn not_reading_closes(member: &Member) -> usize {
    member
        .log_text()
        .lines()
        .filter(|line| {
            line.contains("client did not read") || line.contains("client is not reading")
        })
        .count()
}

/// A watcher of `member` sets a persistent-recursive watch and never reads again while
/// `changer` keeps changing a node with a long name: every change queues a notification of the
/// whole path for it, the socket buffers fill, its writes stall, and the write deadline (its
/// session timeout) must close it, with a reason logged. The watcher keeps pinging (without
/// reading the replies), so its session stays alive: only the stalled writes may close it, not
/// an expiry that would race the flood (a closed session's connection flushes what it can and
/// closes without a reason when the buffers were not full yet).
async fn flood_a_watcher_that_never_reads(member: &Member, changer: &zk::Client) {
    let node = format!("/flood/{}", "n".repeat(FLOOD_NAME_BYTES));
    for path in ["/flood", node.as_str()] {
        bounded("create", changer.create(path, b"", &persistent()))
            .await
            .unwrap();
    }
    let closes_before = not_reading_closes(member);
    let (mut watcher, negotiated) =
        RawConn::connect_with_timeout(member.client_port, STALL_SESSION_MS);
    assert_eq!(negotiated, STALL_SESSION_MS);
    let mut add_watch = common::jute_string("/flood");
    add_watch.extend_from_slice(&MODE_PERSISTENT_RECURSIVE.to_be_bytes());
    let (_, err, _) = watcher.call(1, OP_ADD_WATCH, &add_watch);
    assert_eq!(err, 0, "addWatch");
    let deadline = Instant::now() + Duration::from_secs(CLOSE_SECS_MAX);
    let mut changes = 0;
    while member.holds_session(watcher.session_id) {
        assert!(
            Instant::now() < deadline,
            "the watcher that never reads was kept for {CLOSE_SECS_MAX} s ({changes} changes)"
        );
        let sets = (0..FLOOD_WRITES_IN_FLIGHT).map(|_| changer.set_data(&node, b"x", None));
        for set in bounded("flooding sets", futures_util::future::join_all(sets)).await {
            set.unwrap();
        }
        changes += FLOOD_WRITES_IN_FLIGHT;
        // The server may have closed it already (the point of the attack).
        let _ = watcher.stream.write_all(&ping_frame());
    }
    assert!(
        not_reading_closes(member) > closes_before,
        "no reason logged for closing the watcher"
    );
    drain_until_closed(&mut watcher);
    let (data, _) = bounded("get the flooded node", changer.get_data(&node))
        .await
        .unwrap();
    assert_eq!(data, b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn clients_that_do_not_read_replies_or_notifications_are_closed_whole_and_others_are_served()
{
    let mut ens = Ensemble::start(MEMBERS).await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let target = (leader + 1) % MEMBERS;
    let port = ens.member(target).client_port;
    let writer = Writer::start(&ens.hosts(&[leader])).await;
    let setup = long_session(&ens, target).await;
    let big = vec![b'x'; BIG_DATA_BYTES];
    bounded("create /big", setup.create("/big", &big, &persistent()))
        .await
        .unwrap();

    // The stalling client: its replies fill the socket buffers, then no write progresses.
    let mut stalling = request_without_reading(port, "/big", STALL_REQUESTS, STALL_SESSION_MS);
    // The flooding client: its replies pass the outbound byte bound at once.
    let mut flooding = request_without_reading(port, "/big", FLOOD_REQUESTS, STALL_SESSION_MS);
    let acked = writer.acked_count();
    writer.wait_progress(acked, WRITES_DURING_ATTACK_MIN).await;
    let member = ens.member(target);
    poll_until("both attackers closed", CLOSE_SECS_MAX, || {
        // They keep their sessions alive (pings, never a read): only their stalled writes
        // may close them, not an expiry racing the write deadline on a loaded machine.
        for attacker in [&mut stalling, &mut flooding] {
            let _ = attacker.stream.write_all(&ping_frame());
        }
        let gone = !member.holds_session(stalling.session_id)
            && !member.holds_session(flooding.session_id);
        async move { gone.then_some(()) }
    })
    .await;
    let log = member.log_text();
    assert!(
        log.contains(&format!("client did not read for {STALL_SESSION_MS} ms")),
        "no write-deadline reason logged"
    );
    assert!(
        log.contains("client is not reading"),
        "no byte-bound reason logged"
    );
    drain_until_closed(&mut stalling);
    drain_until_closed(&mut flooding);
    flood_a_watcher_that_never_reads(member, &setup).await;

    // Others are served by that member, a fresh connection included.
    let mut fresh = RawConn::connect(port);
    fresh.ping();
    let data = bounded("get /big", setup.get_data("/big")).await.unwrap();
    assert_eq!(data.0.len(), BIG_DATA_BYTES);
    let acked = writer.acked_count();
    writer.wait_progress(acked, WRITES_DURING_ATTACK_MIN).await;
    let acked = writer.finish().await;
    assert_eq!(
        modes(&ens),
        before,
        "a client-side attack changed the leader"
    );
    check_no_loss(&ens, &acked).await;
}

/// A bounded HTTP/1.0 GET on `address`: (status, body).
fn http_get(address: (&str, u16), path: &str, authorization: Option<&str>) -> (u16, String) {
    let bound = Some(Duration::from_secs(SOCKET_IO_SECS_MAX));
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(bound).unwrap();
    stream.set_write_timeout(bound).unwrap();
    let auth = authorization.map_or(String::new(), |value| format!("Authorization: {value}\r\n"));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Asserts no secret of the admin test's zoo.cfg is in `text`.
fn assert_no_secret(what: &str, text: &str) {
    for secret in [
        KEY_STORE_PASSWORD,
        TRUST_STORE_PASSWORD,
        common::SUPER_DIGEST,
    ] {
        assert!(!text.contains(secret), "{what} shows a secret");
    }
    // The digest without its user part, in case a renderer splits it.
    let (_, hash) = common::SUPER_DIGEST.split_once(':').unwrap();
    assert!(!text.contains(hash), "{what} shows the super digest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn admin_port_binds_its_address_hides_secrets_guards_listings_and_sheds_idle_floods() {
    let admin_port = common::free_port();
    let mut ens = Ensemble::spawn_with(MEMBERS, |id| {
        if id != 1 {
            return Vec::new();
        }
        [
            ("admin.enableServer", "true".to_owned()),
            ("admin.serverAddress", ADMIN_ADDRESS.to_owned()),
            ("admin.serverPort", admin_port.to_string()),
            ("admin.idleTimeout", ADMIN_IDLE_MS.to_string()),
            ("admin.authRequired", "true".to_owned()),
            ("ssl.keyStore.password", KEY_STORE_PASSWORD.to_owned()),
            ("ssl.trustStore.password", TRUST_STORE_PASSWORD.to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    });
    ens.wait_quorum().await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[leader])).await;
    let admin = (ADMIN_ADDRESS, admin_port);

    // admin.serverAddress is honoured: the port is not open on 127.0.0.1.
    assert!(TcpStream::connect(("127.0.0.1", admin_port)).is_err());
    let (status, _) = http_get(admin, "/commands/ruok", None);
    assert_eq!(status, 200);

    // Secrets: not in the admin output, conf, envi, nor the log.
    for command in ["configuration", "initial_configuration", "environment"] {
        let (status, body) = http_get(admin, &format!("/commands/{command}"), None);
        assert_eq!(status, 200, "{command}: {body}");
        assert_no_secret(command, &body);
    }
    let (_, shown) = http_get(admin, "/commands/initial_configuration", None);
    assert!(shown.contains("ssl.keyStore.password=********"), "{shown}");
    for word in ["conf", "envi"] {
        assert_no_secret(word, &four_letter(ens.member(0).client_port, word));
    }

    // Guarded listings: root gives world READ only, so only super holds ALL on it.
    let super_client = bounded(
        "super connect",
        Ensemble::connector()
            .with_auth("digest", b"admin:secret")
            .connect(&ens.hosts(&[leader])),
    )
    .await
    .unwrap();
    let root_acl = [
        zk::Acl::new(
            zk::Permission::ALL,
            zk::AuthId::new("digest", common::SUPER_DIGEST),
        ),
        zk::Acl::new(zk::Permission::READ, zk::AuthId::new("world", "anyone")),
    ];
    bounded(
        "set root acl",
        super_client.set_acl("/", &zk::Acls::new(&root_acl), None),
    )
    .await
    .unwrap();
    for command in ["cons", "dump", "wchc", "wchp"] {
        let path = format!("/commands/{command}");
        let cases = [
            (None, 401),
            (Some("bogus x"), 401),
            (Some("digest nocolon"), 401),
            (Some("digest nobody:nothing"), 403),
            (Some("ip"), 403),
            (Some("digest admin:secret"), 200),
        ];
        for (authorization, want) in cases {
            // The root ACL reaches member 1 through the log: wait (bounded) for it.
            let status = poll_until("admin answer", CLOSE_SECS_MAX, || async {
                let (status, _) = http_get(admin, &path, authorization);
                (status == want).then_some(status)
            })
            .await;
            assert_eq!(status, want, "{command} with {authorization:?}");
        }
    }
    // Unguarded commands still answer without credentials.
    assert_eq!(http_get(admin, "/commands/mntr", None).0, 200);

    // Flood: past the limit, connections close at once; idle ones close after idleTimeout.
    let mut flood: Vec<TcpStream> = (0..HTTP_CONNECTIONS_MAX + HTTP_EXTRA_CONNECTIONS)
        .map(|_| TcpStream::connect(admin).unwrap())
        .collect();
    let acked = writer.acked_count();
    writer.wait_progress(acked, WRITES_DURING_ATTACK_MIN).await;
    for stream in &mut flood {
        stream
            .set_read_timeout(Some(Duration::from_secs(SOCKET_IO_SECS_MAX)))
            .unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Ok(_) => panic!("the admin port sent bytes to a silent client"),
            Err(error) => assert!(
                !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "an idle admin connection stayed open"
            ),
        }
    }
    let log = ens.member(0).log_text();
    assert!(log.contains("too many connections; closing new ones"));
    assert!(log.contains("HTTP connection idle; closing it"));
    assert!(log.contains("admin command refused"));
    assert_no_secret("the log", &log);
    let (status, _) = http_get(admin, "/commands/ruok", None);
    assert_eq!(status, 200, "the admin port serves again after the flood");

    let acked = writer.finish().await;
    assert_eq!(
        modes(&ens),
        before,
        "a client-side attack changed the leader"
    );
    check_no_loss(&ens, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn half_open_tls_handshakes_are_bounded_and_do_not_keep_good_clients_out() {
    use tokio::io::AsyncReadExt;
    let certs = tempfile::tempdir().unwrap();
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let key_store = certs.path().join("server-keystore.pem");
    let pem = format!(
        "{}{}",
        certified.signing_key.serialize_pem(),
        certified.cert.pem()
    );
    std::fs::write(&key_store, pem).unwrap();
    let secure_port = common::free_port();
    let mut ens = Ensemble::spawn_with(MEMBERS, |id| {
        if id != 1 {
            return Vec::new();
        }
        [
            ("secureClientPort", secure_port.to_string()),
            ("secureClientPortAddress", "127.0.0.1".to_owned()),
            ("ssl.keyStore.location", key_store.display().to_string()),
            (
                "ssl.handshakeDetectionTimeoutMillis",
                HANDSHAKE_TIMEOUT_MS.to_string(),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    });
    ens.wait_quorum().await;
    let leader = ens.leader().await;
    let before = modes(&ens);
    let writer = Writer::start(&ens.hosts(&[leader])).await;

    // Sockets on the TLS port that never send a ClientHello.
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], secure_port));
    let mut half_open = Vec::new();
    for _ in 0..HALF_OPEN_CONNECTIONS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((ATTACKER_ADDRESS, 0).into()).unwrap();
        half_open.push(
            bounded("half-open connect", socket.connect(target))
                .await
                .unwrap(),
        );
    }
    // Meanwhile a good TLS client connects and writes.
    let options = zk::TlsOptions::new()
        .with_pem_ca(&certified.cert.pem())
        .unwrap();
    let good = bounded(
        "TLS connect",
        Ensemble::connector()
            .with_tls(options)
            .connect(&format!("tcp+tls://127.0.0.1:{secure_port}")),
    )
    .await
    .unwrap();
    bounded("TLS create", good.create("/tls-good", b"", &persistent()))
        .await
        .unwrap();
    let acked = writer.acked_count();
    writer.wait_progress(acked, WRITES_DURING_ATTACK_MIN).await;
    // Every half-open connection ends: refused at once past the bound, else at the timeout.
    for stream in &mut half_open {
        let mut byte = [0u8; 1];
        let read = bounded("half-open closed", stream.read(&mut byte)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let log = ens.member(0).log_text();
    assert!(log.contains("TLS handshakes in progress from this address"));
    assert!(log.contains("TLS handshake timed out"));
    drop(good);

    let acked = writer.finish().await;
    assert_eq!(
        modes(&ens),
        before,
        "a client-side attack changed the leader"
    );
    check_no_loss(&ens, &acked).await;
}
