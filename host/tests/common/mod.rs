//! Black-box test harness: starts one server process per test (zkw by default, Apache
//! ZooKeeper 3.8 when `ZKW_TARGET=zookeeper`), hands out `zookeeper-client` sessions and raw
//! TCP connections to it, and kills the process on drop. Shared by every file in `tests/`.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

/// How long a server may take to answer `ruok` after spawn (a cold JVM is slow).
pub const SERVER_START_SECS_MAX: u64 = 30;
/// Bound on any single await in a test that could hang.
pub const AWAIT_SECS_MAX: u64 = 15;
/// Bound on a raw socket read or write.
pub const SOCKET_IO_SECS_MAX: u64 = 10;
/// The tick every test server runs with; ZooKeeper's default session bounds are 2 and 20 ticks.
pub const TICK_MS: u64 = 200;
/// Bound on building the test recipes for wasm32 (a cold build on a loaded machine), seconds.
const RECIPE_BUILD_SECS_MAX: u64 = 900;
/// Bound on one `zkw` command-line run, seconds.
pub const CLI_SECS_MAX: u64 = 60;
/// How often a bounded wait on a child process looks, ms.
const POLL_MS: u64 = 50;
/// jute.maxbuffer every test server runs with unless a test overrides it.
pub const JUTE_MAXBUFFER_BYTES: usize = 1024 * 1024;

/// The super user every test server knows (`admin:secret`), for recipe installs.
pub const SUPER_DIGEST_KEY: &str = "DigestAuthenticationProvider.superDigest";
pub const SUPER_DIGEST: &str = "admin:fvr2cB/fjGeAiX8g1aGhUm3ZICk=";
pub const SUPER_AUTH: &str = "digest:admin:secret";

/// A module of the recipe test kit (recipes/testkit/examples/NAME.rs), built for wasm32 once
/// per test binary.
pub fn test_recipe(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let mut build = Command::new(env!("CARGO"));
        build
            .current_dir(&workspace)
            .args(["build", "--quiet", "--target", "wasm32-unknown-unknown"])
            .args([
                "--profile",
                "recipe",
                "-p",
                "zkw-test-recipes",
                "--examples",
            ]);
        let status = run_bounded(&mut build, RECIPE_BUILD_SECS_MAX);
        assert!(status.success(), "building the test recipes failed");
        target.join("wasm32-unknown-unknown/recipe/examples")
    });
    dir.join(format!("{name}.wasm"))
}

/// Runs `command` to its end, killing it after `secs` (then the test fails).
pub fn run_bounded(command: &mut Command, secs: u64) -> std::process::ExitStatus {
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(POLL_MS));
    }
}

/// `zkw recipe ARGS --server SERVERS --auth <the super user>`, bounded by
/// [`CLI_SECS_MAX`].
pub fn zkw_recipe(servers: &str, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let status = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_zkw"))
            .arg("recipe")
            .args(args)
            .args(["--server", servers, "--auth", SUPER_AUTH])
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap()),
        CLI_SECS_MAX,
    );
    std::process::Output {
        status,
        stdout: std::fs::read(&stdout).unwrap(),
        stderr: std::fs::read(&stderr).unwrap(),
    }
}

/// Installs `module` (a .wasm path or a built-in recipe's name) bound to `path`.
pub fn install_recipe(servers: &str, module: &str, path: &str, extra: &[&str]) {
    let mut args = vec!["install", module, "--path", path];
    args.extend_from_slice(extra);
    let out = zkw_recipe(servers, &args);
    assert!(
        out.status.success(),
        "install {module}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Awaits `fut` for at most [`AWAIT_SECS_MAX`]; panics (failing the test) on timeout.
pub async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(AWAIT_SECS_MAX), fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {AWAIT_SECS_MAX}s waiting for {what}"),
    }
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn poll_until<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when the suite runs against Apache ZooKeeper (`ZKW_TARGET=zookeeper`). Tests of what
/// only zkw has are marked `#[cfg_attr(zookeeper_target, ignore = "zkw only")]` (build.rs sets
/// the cfg from the same variable), so such a run counts them as ignored, not passed.
pub fn target_is_zookeeper() -> bool {
    std::env::var("ZKW_TARGET")
        .map(|v| v == "zookeeper")
        .unwrap_or(false)
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A running server process, killed on drop. Its stderr is printed if the test panicked.
pub struct Server {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// Starts a server with the common settings plus `extra_cfg` (which override them).
    pub fn start(extra_cfg: &[(&str, &str)]) -> Server {
        Server::start_with_args(extra_cfg, &[])
    }

    /// As [`Server::start`], with extra arguments after `zkw server start-foreground`.
    pub fn start_with_args(extra_cfg: &[(&str, &str)], args: &[&str]) -> Server {
        Server::start_without(&[], extra_cfg, args)
    }

    /// As [`Server::start_with_args`], without the common settings named in `dropped` (e.g.
    /// [`SUPER_DIGEST_KEY`]: a server with no super user).
    pub fn start_without(dropped: &[&str], extra_cfg: &[(&str, &str)], args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut cfg: Vec<(String, String)> = vec![
            ("tickTime".into(), TICK_MS.to_string()),
            ("dataDir".into(), data.display().to_string()),
            ("clientPort".into(), port.to_string()),
            ("clientPortAddress".into(), "127.0.0.1".into()),
            ("4lw.commands.whitelist".into(), "*".into()),
            ("extendedTypesEnabled".into(), "true".into()),
            ("admin.enableServer".into(), "false".into()),
            ("jute.maxbuffer".into(), JUTE_MAXBUFFER_BYTES.to_string()),
            (SUPER_DIGEST_KEY.into(), SUPER_DIGEST.into()),
        ];
        cfg.retain(|(key, _)| !dropped.contains(&key.as_str()));
        for (k, v) in extra_cfg {
            cfg.retain(|(key, _)| key != k);
            cfg.push((k.to_string(), v.to_string()));
        }
        let cfg_path = dir.path().join("zoo.cfg");
        let text: String = cfg.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&cfg_path, text).unwrap();
        let log = dir.path().join("server.log");
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let child = spawn_process(&cfg_path, &cfg, &log, &args);
        let mut server = Server {
            child,
            port,
            dir,
            log,
            args,
        };
        server.wait_ready();
        server
    }

    /// kill -9, then start again on the same data directory and port.
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let cfg_path = self.dir.path().join("zoo.cfg");
        let cfg: Vec<(String, String)> = std::fs::read_to_string(&cfg_path)
            .unwrap()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        self.child = spawn_process(&cfg_path, &cfg, &self.log, &self.args);
        self.wait_ready();
    }

    /// `host:port` connect string.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Blocks until `ruok` answers `imok`, bounded by [`SERVER_START_SECS_MAX`]; fails at once
    /// if the process exits. The log is printed by `Drop` as the panic unwinds.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(SERVER_START_SECS_MAX);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited before serving: {status}");
            }
            if self.four_letter("ruok").is_ok_and(|a| a == "imok") && self.serving() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not answer ruok within {SERVER_START_SECS_MAX}s");
    }

    /// Both servers answer `ruok` before they serve sessions (zkw elects its one-voter
    /// leader first); `srvr` shows a Mode line once they do.
    fn serving(&self) -> bool {
        self.four_letter("srvr").is_ok_and(|a| a.contains("Mode:"))
    }

    /// Sends a four-letter word and returns the whole answer.
    pub fn four_letter(&self, word: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(SOCKET_IO_SECS_MAX)))?;
        s.write_all(word.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    /// A connected client with the given requested session timeout.
    pub async fn client_with_timeout(&self, timeout: Duration) -> zk::Client {
        let addr = self.addr();
        // The connect attempt itself is bounded by the connection timeout, which defaults to a
        // fraction of the requested session timeout: keep it workable for tiny requests.
        let connector = zk::Client::connector()
            .with_session_timeout(timeout)
            .with_connection_timeout(Duration::from_millis(2 * TICK_MS));
        bounded("client connect", connector.connect(&addr))
            .await
            .unwrap()
    }

    /// A connected client with a 4 s session timeout (within ZooKeeper's 2..20 tick bounds).
    pub async fn client(&self) -> zk::Client {
        self.client_with_timeout(Duration::from_millis(20 * TICK_MS))
            .await
    }

    /// A connector preset with this server's session timeout, for tests needing options.
    pub fn connector(&self) -> zk::Connector {
        zk::Client::connector().with_session_timeout(Duration::from_millis(20 * TICK_MS))
    }

    /// A raw connection that completed the connect handshake.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
    }

    /// The server's output so far (stdout and stderr).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn dump_log(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(200).collect();
        eprintln!("----- server log tail ({}) -----", self.log.display());
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        eprintln!("----- end of server log -----");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.dump_log();
        }
    }
}

fn spawn_process(
    cfg_path: &std::path::Path,
    cfg: &[(String, String)],
    log: &PathBuf,
    args: &[String],
) -> Child {
    let out = File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = if target_is_zookeeper() {
        zookeeper_command(cfg_path, cfg)
    } else {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zkw"));
        c.arg("server")
            .arg("start-foreground")
            .arg("--config")
            .arg(cfg_path)
            .args(args);
        c
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    cmd.spawn().unwrap()
}

/// Apache ZooKeeper reads some knobs only from system properties; pass every cfg key as one too.
fn zookeeper_command(cfg_path: &std::path::Path, cfg: &[(String, String)]) -> Command {
    let mut c = Command::new("java");
    c.arg("-Xmx256m")
        .arg("-XX:+UseSerialGC")
        .arg("-XX:TieredStopAtLevel=1");
    c.arg("-cp")
        .arg("/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar");
    c.arg("-Dzookeeper.admin.enableServer=false");
    c.arg("-Dzookeeper.extendedTypesEnabled=true");
    for (k, v) in cfg {
        match k.as_str() {
            "znode.container.checkIntervalMs" | "jute.maxbuffer" => {
                c.arg(format!("-D{k}={v}"));
            }
            "DigestAuthenticationProvider.superDigest" => {
                c.arg(format!("-Dzookeeper.{k}={v}"));
            }
            _ => {}
        }
    }
    c.arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(cfg_path);
    c
}

/// Creates `path` as a persistent, world-writable node with `data`.
pub async fn mk(client: &zk::Client, path: &str, data: &[u8]) -> zk::Stat {
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    bounded(path, client.create(path, data, &opts))
        .await
        .unwrap()
        .0
}

/// Waits for a one-shot watch event, bounded.
pub async fn event(w: zk::OneshotWatcher) -> zk::WatchedEvent {
    bounded("watch event", w.changed()).await
}

/// Waits for the next node event of a persistent watch, bounded, skipping the session state
/// events (Disconnected, SyncConnected) the client library also delivers there.
pub async fn next_event(w: &mut zk::PersistentWatcher) -> zk::WatchedEvent {
    loop {
        let ev = bounded("persistent watch event", w.changed()).await;
        if ev.event_type != zk::EventType::Session {
            return ev;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw protocol, written by hand (big-endian jute), for the limits tests.

/// Size of a ConnectRequest body: version, lastZxidSeen, timeout, sessionId, passwd (len + 16).
pub const CONNECT_REQUEST_BYTES: usize = 44;

/// A raw TCP connection speaking the client protocol by hand.
pub struct RawConn {
    pub stream: TcpStream,
    pub session_id: i64,
}

/// The 44-byte ConnectRequest body for a new session with `timeout_ms`.
pub fn connect_body(timeout_ms: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(CONNECT_REQUEST_BYTES);
    b.extend_from_slice(&0i32.to_be_bytes()); // protocolVersion
    b.extend_from_slice(&0i64.to_be_bytes()); // lastZxidSeen
    b.extend_from_slice(&timeout_ms.to_be_bytes());
    b.extend_from_slice(&0i64.to_be_bytes()); // sessionId
    b.extend_from_slice(&16i32.to_be_bytes());
    b.extend_from_slice(&[0u8; 16]);
    assert_eq!(b.len(), CONNECT_REQUEST_BYTES);
    b
}

/// `body` with its i32 length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// A jute string: i32 length then bytes.
pub fn jute_string(s: &str) -> Vec<u8> {
    let mut b = (s.len() as i32).to_be_bytes().to_vec();
    b.extend_from_slice(s.as_bytes());
    b
}

impl RawConn {
    /// Opens a TCP connection without any handshake.
    pub fn open(port: u16) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let io = Some(Duration::from_secs(SOCKET_IO_SECS_MAX));
        s.set_read_timeout(io).unwrap();
        s.set_write_timeout(io).unwrap();
        s
    }

    /// Opens a connection and completes the connect handshake (4 s session).
    pub fn connect(port: u16) -> RawConn {
        Self::connect_with_timeout(port, 4000).0
    }

    /// Opens a connection asking for `timeout_ms`; returns it and the negotiated timeout.
    pub fn connect_with_timeout(port: u16, timeout_ms: i32) -> (RawConn, i32) {
        let mut stream = Self::open(port);
        stream.write_all(&frame(&connect_body(timeout_ms))).unwrap();
        let resp = read_frame(&mut stream).expect("connect response");
        assert!(
            resp.len() >= 36,
            "short connect response: {} bytes",
            resp.len()
        );
        let negotiated = i32::from_be_bytes(resp[4..8].try_into().unwrap());
        let session_id = i64::from_be_bytes(resp[8..16].try_into().unwrap());
        assert_ne!(session_id, 0, "server refused the session");
        (RawConn { stream, session_id }, negotiated)
    }

    /// Sends one request (xid, op, body) and returns the reply frame of that xid, skipping
    /// notifications (xid -1).
    pub fn call(&mut self, xid: i32, op: i32, body: &[u8]) -> (i64, i32, Vec<u8>) {
        let mut req = xid.to_be_bytes().to_vec();
        req.extend_from_slice(&op.to_be_bytes());
        req.extend_from_slice(body);
        self.stream.write_all(&frame(&req)).unwrap();
        loop {
            let r = read_frame(&mut self.stream).expect("reply");
            let rxid = i32::from_be_bytes(r[0..4].try_into().unwrap());
            if rxid == -1 {
                continue;
            }
            assert_eq!(rxid, xid, "reply out of order");
            let zxid = i64::from_be_bytes(r[4..12].try_into().unwrap());
            let err = i32::from_be_bytes(r[12..16].try_into().unwrap());
            return (zxid, err, r[16..].to_vec());
        }
    }

    /// Sends a ping (xid -2, op 11) and checks the reply: proves the connection serves.
    pub fn ping(&mut self) {
        let (_, err, _) = self.call(-2, 11, &[]);
        assert_eq!(err, 0);
    }

    /// True if the server closes (EOF or reset) within [`SOCKET_IO_SECS_MAX`], ignoring any
    /// frames it sends first; returns those frames' error codes (reply header err) too.
    pub fn expect_closed(&mut self) -> Vec<i32> {
        expect_closed(&mut self.stream)
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Reads one length-prefixed frame; `None` on EOF/reset.
pub fn read_frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            panic!("read timed out after {SOCKET_IO_SECS_MAX}s")
        }
        Err(_) => return None,
    }
    let n = i32::from_be_bytes(len);
    assert!(
        n >= 0 && (n as usize) <= 16 * JUTE_MAXBUFFER_BYTES,
        "bad frame length {n}"
    );
    let mut body = vec![0u8; n as usize];
    match s.read_exact(&mut body) {
        Ok(()) => Some(body),
        Err(_) => None,
    }
}

/// Asserts the peer closes the stream within the socket timeout; returns the reply error codes
/// of any frames received before the close.
pub fn expect_closed(s: &mut TcpStream) -> Vec<i32> {
    let mut errs = Vec::new();
    while let Some(f) = read_frame(s) {
        if f.len() >= 16 {
            errs.push(i32::from_be_bytes(f[12..16].try_into().unwrap()));
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// A loopback TCP proxy the tests can cut, to force a client to reconnect (and resend its
// watches with SetWatches) without touching the server.

/// Proxy in front of a server port. `cut` drops every open connection; `pause` refuses new
/// ones (accept then close) until `resume`.
pub struct Proxy {
    pub port: u16,
    generation: tokio::sync::watch::Sender<u64>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let paused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (gen_tx, paused2) = (generation.clone(), paused.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if paused2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropping `inbound` closes it
                }
                tokio::spawn(pipe(inbound, target_port, gen_tx.subscribe()));
            }
        });
        Proxy {
            port,
            generation,
            paused,
            task,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn pause(&self) {
        self.paused.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.paused
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pipe(
    mut inbound: tokio::net::TcpStream,
    port: u16,
    mut cut: tokio::sync::watch::Receiver<u64>,
) {
    let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        _ = cut.changed() => {}
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
