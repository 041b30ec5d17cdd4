//! TLS, black-box (issue #6, part 4): a CA and certificates minted with rcgen in a tempdir, the
//! real binary started with `secureClientPort` and the `ssl.*` keys, and the
//! `zookeeper-client` crate connecting with `tcp+tls://`: create/get/watch over TLS, a client
//! certificate required when `ssl.clientAuth=need`, plain text refused on the TLS port (both
//! a plain session and a raw `ruok`), and a three-member ensemble with `sslQuorum=true` that
//! replicates writes while a member holding a certificate from another CA cannot join.
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{bounded, event, poll_until, Server, TICK_MS};
use ensemble::Ensemble;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use zookeeper_client as zk;

/// Bound on a connect attempt that must fail (the TLS port refusing plain text).
const REFUSED_SECS_MAX: u64 = 10;
/// Bound on the ensemble forming, or a write showing on every member.
const QUORUM_SECS_MAX: u64 = 40;
/// How long the member with a foreign certificate is watched not joining.
const OUTSIDER_WATCH_SECS: u64 = 3;

/// A test CA that signs leaf certificates (for servers and clients alike).
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf: its certificate PEM and its private key PEM.
struct Leaf {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for loopback (`localhost` and `127.0.0.1`), usable by servers and clients.
    fn leaf(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &*self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Writes `<name>-keystore.pem` (key then chain) and returns its path.
fn write_key_store(dir: &Path, name: &str, leaf: &Leaf) -> PathBuf {
    let path = dir.join(format!("{name}-keystore.pem"));
    std::fs::write(&path, format!("{}{}", leaf.key, leaf.cert)).unwrap();
    path
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A server with a secure client port; `client_auth` None leaves ssl.clientAuth unset.
struct SecureServer {
    server: Server,
    secure_port: u16,
    ca: Ca,
    _certs: tempfile::TempDir,
}

impl SecureServer {
    fn start(client_auth: Option<&str>) -> SecureServer {
        let certs = tempfile::tempdir().unwrap();
        let ca = Ca::new("zkw test CA");
        let key_store = write_key_store(certs.path(), "server", &ca.leaf("server"));
        let trust_store = write_file(certs.path(), "ca.pem", &ca.pem());
        let secure_port = common::free_port();
        let port = secure_port.to_string();
        let key_store = key_store.display().to_string();
        let trust_store = trust_store.display().to_string();
        let mut keys = vec![
            ("secureClientPort", port.as_str()),
            ("secureClientPortAddress", "127.0.0.1"),
            ("ssl.keyStore.location", key_store.as_str()),
            ("ssl.keyStore.type", "PEM"),
            ("zookeeper.ssl.trustStore.location", trust_store.as_str()),
        ];
        if let Some(mode) = client_auth {
            keys.push(("ssl.clientAuth", mode));
        }
        let server = Server::start(&keys);
        SecureServer {
            server,
            secure_port,
            ca,
            _certs: certs,
        }
    }

    fn tls_hosts(&self) -> String {
        format!("tcp+tls://127.0.0.1:{}", self.secure_port)
    }

    fn connector(&self, identity: Option<&Leaf>) -> zk::Connector {
        let mut options = zk::TlsOptions::new().with_pem_ca(&self.ca.pem()).unwrap();
        if let Some(leaf) = identity {
            options = options.with_pem_identity(&leaf.cert, &leaf.key).unwrap();
        }
        zk::Client::connector()
            .with_session_timeout(Duration::from_millis(20 * TICK_MS))
            .with_tls(options)
    }
}

/// Sends `word` in plain text to `port`; what came back (empty when the server just closed).
fn raw_four_letter(port: u16, word: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let io = Some(Duration::from_secs(common::SOCKET_IO_SECS_MAX));
    stream.set_read_timeout(io).unwrap();
    stream.write_all(word.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

async fn exercise(client: &zk::Client) {
    let create = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/tls", b"over tls", &create).await.unwrap();
    let (data, _stat) = client.get_data("/tls").await.unwrap();
    assert_eq!(data, b"over tls");
    let (_, _, watcher) = client.get_and_watch_data("/tls").await.unwrap();
    client.set_data("/tls", b"changed", None).await.unwrap();
    let fired = event(watcher).await;
    assert_eq!(fired.event_type, zk::EventType::NodeDataChanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_watch_over_tls_without_client_auth() {
    let secure = SecureServer::start(Some("none"));
    let hosts = secure.tls_hosts();
    let connect = secure.connector(None).connect(&hosts);
    let client = bounded("TLS connect", connect).await.unwrap();
    exercise(&client).await;
    // The plain port still works and sees the same tree.
    let plain = secure.server.client().await;
    let (data, _) = plain.get_data("/tls").await.unwrap();
    assert_eq!(data, b"changed");
    // `cons` lists both sessions, the TLS one included.
    let cons = secure.server.four_letter("cons").unwrap();
    for session in [client.session_id().0, plain.session_id().0] {
        assert!(cons.contains(&format!("sid=0x{session:x}")), "{cons}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_required_by_default_with_a_trust_store() {
    // ssl.clientAuth unset with a trust store: ZooKeeper's default, need.
    let secure = SecureServer::start(None);
    let hosts = secure.tls_hosts();
    let leaf = secure.ca.leaf("client");
    let connect = secure.connector(Some(&leaf)).connect(&hosts);
    let client = bounded("TLS connect with a client cert", connect)
        .await
        .unwrap();
    exercise(&client).await;

    let anonymous = secure.connector(None).with_fail_eagerly().connect(&hosts);
    let outcome = tokio::time::timeout(Duration::from_secs(REFUSED_SECS_MAX), anonymous).await;
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "a client without a certificate got a session"
    );

    let stranger = Ca::new("another CA").leaf("stranger");
    let foreign = secure
        .connector(Some(&stranger))
        .with_fail_eagerly()
        .connect(&hosts);
    let outcome = tokio::time::timeout(Duration::from_secs(REFUSED_SECS_MAX), foreign).await;
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "a client with a certificate from another CA got a session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_is_refused_on_the_tls_port() {
    let secure = SecureServer::start(Some("none"));
    let hosts = format!("127.0.0.1:{}", secure.secure_port);
    let plain = zk::Client::connector()
        .with_session_timeout(Duration::from_millis(20 * TICK_MS))
        .with_fail_eagerly()
        .connect(&hosts);
    let outcome = tokio::time::timeout(Duration::from_secs(REFUSED_SECS_MAX), plain).await;
    assert!(
        !matches!(outcome, Ok(Ok(_))),
        "a plain-text client got a session on the TLS port"
    );
    let answer = raw_four_letter(secure.secure_port, "ruok");
    assert!(!answer.contains("imok"), "plain ruok answered: {answer:?}");
    // The plain port answers as usual, and the server is still up.
    assert_eq!(secure.server.four_letter("ruok").unwrap(), "imok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words_over_tls() {
    let secure = SecureServer::start(Some("none"));
    let answer = tls_four_letter(&secure, "ruok").await;
    assert_eq!(answer, "imok");
    let srvr = tls_four_letter(&secure, "srvr").await;
    assert!(srvr.contains("Mode:"), "srvr over TLS: {srvr}");
}

/// A four-letter word over TLS, with a rustls client trusting the test CA.
async fn tls_four_letter(secure: &SecureServer, word: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(secure.ca.issuer.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", secure.secure_port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = bounded("TLS handshake", connector.connect(name, tcp))
        .await
        .unwrap();
    stream.write_all(word.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    let mut out = Vec::new();
    // The server closes after answering; a missing close_notify is not an error here.
    let _ = bounded("4lw answer", stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Quorum keys for one member: its key store, signed by `ca`, and the trust store `trust`.
fn quorum_keys(dir: &Path, id: usize, ca: &Ca, trust: &Path) -> Vec<(String, String)> {
    let key_store = write_key_store(dir, &format!("member{id}"), &ca.leaf(&format!("m{id}")));
    vec![
        ("sslQuorum".into(), "true".into()),
        (
            "ssl.quorum.keyStore.location".into(),
            key_store.display().to_string(),
        ),
        (
            "ssl.quorum.trustStore.location".into(),
            trust.display().to_string(),
        ),
        ("ssl.quorum.hostnameVerification".into(), "true".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_over_tls_replicates_and_refuses_a_foreign_member() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("quorum CA");
    let other = Ca::new("foreign CA");
    let trust = write_file(certs.path(), "quorum-ca.pem", &ca.pem());
    let other_trust = write_file(certs.path(), "foreign-ca.pem", &other.pem());
    let ens = Ensemble::spawn_with(3, |id| {
        if id == 3 {
            quorum_keys(certs.path(), id, &other, &other_trust)
        } else {
            quorum_keys(certs.path(), id, &ca, &trust)
        }
    });
    let deadline = Instant::now() + Duration::from_secs(QUORUM_SECS_MAX);
    loop {
        let modes: Vec<Option<String>> = ens.members.iter().map(|m| m.mode()).collect();
        let joined = modes[..2]
            .iter()
            .all(|m| matches!(m.as_deref(), Some("leader" | "follower")));
        if joined {
            break;
        }
        assert!(Instant::now() < deadline, "no TLS quorum: modes {modes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = Ensemble::client(&ens.hosts(&[0])).await;
    let create = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/replicated", b"x", &create).await.unwrap();
    let follower = Ensemble::client(&ens.hosts(&[1])).await;
    poll_until("the write on the other member", QUORUM_SECS_MAX, || async {
        follower.sync("/replicated").await.ok()?;
        follower.get_data("/replicated").await.ok()
    })
    .await;
    // The outsider never joins (it would serve, and answer srvr with a Mode, if it had).
    let watch_until = Instant::now() + Duration::from_secs(OUTSIDER_WATCH_SECS);
    while Instant::now() < watch_until {
        let mode = ens.members[2].mode();
        assert!(
            !matches!(mode.as_deref(), Some("leader" | "follower")),
            "the member with a foreign certificate joined as {mode:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the others keep serving.
    let (data, _) = client.get_data("/replicated").await.unwrap();
    assert_eq!(data, b"x");
}
