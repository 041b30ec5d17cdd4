//! Ensemble harness for the failover tests: N server processes on loopback (zkw by default,
//! Apache ZooKeeper 3.8's QuorumPeerMain when `ZKW_TARGET=zookeeper`), each started the way
//! operators do (`zoo.cfg` with `server.N` lines plus `<dataDir>/myid`), the kill -9 fault,
//! four-letter-word probes (`srvr` mode, `cons` session ids), bounded async waits for a quorum,
//! and `zookeeper-client` sessions on chosen members. Every process is killed on drop.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

use crate::common::{bounded, TICK_MS};

/// Ticks a follower may take to connect and sync to a new leader (a cold JVM is slow).
pub const INIT_LIMIT_TICKS: u64 = 20;
/// Ticks a follower may lag before the leader drops it: sets how fast a dead leader is noticed.
pub const SYNC_LIMIT_TICKS: u64 = 5;
/// Bound on the first quorum after spawn, and on any later election.
pub const QUORUM_SECS_MAX: u64 = 40;
/// Bound on a four-letter-word round trip.
pub const FOUR_LETTER_SECS_MAX: u64 = 2;
/// The session timeout every failover client asks for: ZooKeeper's default maximum, 20 ticks.
pub const SESSION_TIMEOUT_MS: u64 = 20 * TICK_MS;
/// The longest session timeout a member grants: room for clients kept away on purpose.
pub const MAX_SESSION_TIMEOUT_MS: u64 = 60 * TICK_MS;
/// Interval of every poll in this harness.
pub const POLL_MS: u64 = 100;
/// Lowest member port; member ports come from below the kernel's ephemeral range so that no
/// outgoing connection can take one as its source port before the member binds it.
const MEMBER_PORT_LOW: u16 = 12_000;
/// Attempts at drawing a free member port before giving up.
const PORT_PICK_TRIES_MAX: usize = 1_000;
/// ZooKeeper's election connect timeout (default 5 s); zkw ignores the key.
const ZK_CNX_TIMEOUT_MS: u64 = 1_500;
/// Log lines of each member printed when a test fails.
const LOG_TAIL_LINES: usize = 60;
/// The log line of a failed recipe run, left out of a dumped tail.
const RECIPE_FAILURE_LINE: &str = "recipe run failed";

fn target_is_zookeeper() -> bool {
    std::env::var("ZKW_TARGET").is_ok_and(|v| v == "zookeeper")
}

fn ephemeral_port_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|w| w.parse().ok()))
        .unwrap_or(32_768)
}

/// A free port below the ephemeral range, never handed out twice by this process.
fn member_port() -> u16 {
    use std::sync::Mutex;
    static PICKED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let high = ephemeral_port_low();
    for _ in 0..PORT_PICK_TRIES_MAX {
        let port = rand::random_range(MEMBER_PORT_LOW..high);
        let mut picked = PICKED.lock().unwrap();
        if picked.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        picked.push(port);
        return port;
    }
    panic!("no free member port below {high}");
}

/// Sends a four-letter word to `port`; the whole answer, or "" when the port is dead.
pub fn four_letter(port: u16, word: &str) -> String {
    let io = Some(Duration::from_secs(FOUR_LETTER_SECS_MAX));
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(io);
    let _ = s.set_write_timeout(io);
    if s.write_all(word.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// One server of the ensemble (id 1..=N).
pub struct Member {
    pub id: usize,
    pub client_port: u16,
    quorum_port: u16,
    election_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// Keys added to this member's zoo.cfg (they override the common ones).
    extra: Vec<(String, String)>,
}

impl Member {
    /// `127.0.0.1:<clientPort>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// `leader`, `follower`, ... or `None` when the member does not serve.
    pub fn mode(&self) -> Option<String> {
        self.child.as_ref()?;
        four_letter(self.client_port, "srvr")
            .lines()
            .find_map(|l| l.strip_prefix("Mode:").map(|m| m.trim().to_owned()))
    }

    /// True if `cons` lists a connection of `session_id`.
    pub fn holds_session(&self, session_id: i64) -> bool {
        let needle = format!("sid=0x{session_id:x},");
        self.child.is_some() && four_letter(self.client_port, "cons").contains(&needle)
    }

    /// Starts the member again on its existing data (after `kill`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "member {} is running", self.id);
        self.spawn();
    }

    /// kill -9: no shutdown path runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The member's dataDir (snapshots, log, myid).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `127.0.0.1:<quorumPort>` (the peer transport's port).
    pub fn quorum_addr(&self) -> String {
        format!("127.0.0.1:{}", self.quorum_port)
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Everything this member has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn write_config(&self, peers: &str) {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), format!("{}\n", self.id)).unwrap();
        let cfg = [
            ("tickTime", TICK_MS.to_string()),
            ("initLimit", INIT_LIMIT_TICKS.to_string()),
            ("syncLimit", SYNC_LIMIT_TICKS.to_string()),
            ("dataDir", data.display().to_string()),
            ("clientPort", self.client_port.to_string()),
            ("clientPortAddress", "127.0.0.1".into()),
            ("maxClientCnxns", "0".into()),
            ("maxSessionTimeout", MAX_SESSION_TIMEOUT_MS.to_string()),
            ("4lw.commands.whitelist", "*".into()),
            ("admin.enableServer", "false".into()),
            ("standaloneEnabled", "false".into()),
            ("reconfigEnabled", "false".into()),
            (
                crate::common::SUPER_DIGEST_KEY,
                crate::common::SUPER_DIGEST.into(),
            ),
        ];
        let mut text: String = cfg
            .iter()
            .filter(|(k, _)| !self.extra.iter().any(|(key, _)| key == k))
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        for (k, v) in &self.extra {
            text.push_str(&format!("{k}={v}\n"));
        }
        text.push_str(peers);
        std::fs::write(self.dir.join("zoo.cfg"), text).unwrap();
    }

    fn spawn(&mut self) {
        let out = File::create(self.log_path()).unwrap();
        let err = out.try_clone().unwrap();
        let cfg = self.dir.join("zoo.cfg");
        let mut cmd = if target_is_zookeeper() {
            zookeeper_command(&cfg)
        } else {
            let mut c = Command::new(env!("CARGO_BIN_EXE_zkw"));
            c.args(["server", "start-foreground", "--config"]).arg(&cfg);
            c
        };
        cmd.current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        self.child = Some(cmd.spawn().unwrap());
    }

    /// Prints the end of the member's log, leaving out failed recipe runs (a test that makes
    /// them on purpose would fill the tail with them) but saying how many there were.
    fn dump_log(&self) {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let (recipe_failures, lines): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|line| line.contains(RECIPE_FAILURE_LINE));
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        eprintln!(
            "----- member {} log tail ({} '{RECIPE_FAILURE_LINE}' lines left out) -----",
            self.id,
            recipe_failures.len()
        );
        for line in tail {
            eprintln!("{line}");
        }
    }
}

/// QuorumPeerMain on the same zoo.cfg (it reads the 4lw whitelist from a system property).
fn zookeeper_command(cfg: &Path) -> Command {
    let mut c = Command::new("java");
    c.args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
        .arg("-cp")
        .arg("/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar")
        .arg("-Dzookeeper.admin.enableServer=false")
        .arg("-Dzookeeper.4lw.commands.whitelist=*")
        .arg(format!("-Dzookeeper.cnxTimeout={ZK_CNX_TIMEOUT_MS}"))
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(cfg);
    c
}

/// A running ensemble; every member is killed on drop (logs printed if the test panicked).
pub struct Ensemble {
    pub members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Ensemble {
    /// Starts `size` members and waits until they all serve under one leader.
    pub async fn start(size: usize) -> Ensemble {
        let mut ens = Self::spawn_with(size, |_| Vec::new());
        ens.wait_quorum().await;
        ens
    }

    /// Starts `size` members, member `id` (1-based) with the extra zoo.cfg keys `extra(id)`,
    /// and returns at once (no wait for a quorum: some members may be meant not to join).
    pub fn spawn_with(size: usize, extra: impl Fn(usize) -> Vec<(String, String)>) -> Ensemble {
        let dir = tempfile::tempdir().unwrap();
        let members: Vec<Member> = (1..=size)
            .map(|id| Member {
                id,
                client_port: member_port(),
                quorum_port: member_port(),
                election_port: member_port(),
                dir: dir.path().join(format!("m{id}")),
                child: None,
                extra: extra(id),
            })
            .collect();
        let peers: String = members
            .iter()
            .map(|m| {
                let (id, q, e) = (m.id, m.quorum_port, m.election_port);
                format!("server.{id}=127.0.0.1:{q}:{e}\n")
            })
            .collect();
        let mut ens = Ensemble { members, _dir: dir };
        for m in &mut ens.members {
            m.write_config(&peers);
            m.spawn();
        }
        ens
    }

    /// The member at 0-based index `idx` (its `id` is `idx + 1`).
    pub fn member(&self, idx: usize) -> &Member {
        &self.members[idx]
    }

    /// Connect string over the members at `idxs`.
    pub fn hosts(&self, idxs: &[usize]) -> String {
        let addrs: Vec<String> = idxs.iter().map(|&i| self.members[i].addr()).collect();
        addrs.join(",")
    }

    /// Connect string over every member still running.
    pub fn live_hosts(&self) -> String {
        self.hosts(&self.live())
    }

    /// Indexes of the members not killed.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| self.members[i].child.is_some())
            .collect()
    }

    /// Waits until every live member serves and exactly one of them leads; returns its index.
    pub async fn wait_quorum(&mut self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(QUORUM_SECS_MAX);
        loop {
            for m in &mut self.members {
                if m.child.is_some() && !m.running() {
                    panic!("member {} exited", m.id);
                }
            }
            let modes: Vec<(usize, Option<String>)> = self
                .live()
                .into_iter()
                .map(|i| (i, self.members[i].mode()))
                .collect();
            let serving = modes
                .iter()
                .all(|(_, m)| matches!(m.as_deref(), Some("leader" | "follower")));
            let leaders: Vec<usize> = modes
                .iter()
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(i, _)| *i)
                .collect();
            if serving && leaders.len() == 1 {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no quorum within {QUORUM_SECS_MAX}s: modes {modes:?}"
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Index of the current leader (waits for a quorum of the live members).
    pub async fn leader(&mut self) -> usize {
        self.wait_quorum().await
    }

    /// kill -9 of the member at `idx`.
    pub fn kill(&mut self, idx: usize) {
        self.members[idx].kill();
    }

    /// Index of the live member whose `cons` lists `session_id`, if any.
    pub fn holder_of(&self, session_id: i64) -> Option<usize> {
        self.live()
            .into_iter()
            .find(|&i| self.members[i].holds_session(session_id))
    }

    /// Connector with [`SESSION_TIMEOUT_MS`].
    pub fn connector() -> zk::Connector {
        zk::Client::connector().with_session_timeout(Duration::from_millis(SESSION_TIMEOUT_MS))
    }

    /// A client on the given connect string, bounded.
    pub async fn client(hosts: &str) -> zk::Client {
        bounded("client connect", Self::connector().connect(hosts))
            .await
            .unwrap()
    }

    /// A client with every live member in its connect string that the crate placed on member
    /// `want` (it shuffles its hosts, so this reconnects up to `tries` times; `None` if it
    /// never landed there).
    pub async fn client_on(&self, want: usize, tries: usize) -> Option<zk::Client> {
        let connector = Self::connector();
        self.client_via(want, &self.live_hosts(), connector, tries)
            .await
    }

    /// Like [`Self::client_on`], on any connect string that reaches the members (proxies).
    pub async fn client_via(
        &self,
        want: usize,
        hosts: &str,
        connector: zk::Connector,
        tries: usize,
    ) -> Option<zk::Client> {
        for _ in 0..tries {
            let connect = connector.clone().connect(hosts);
            let client = bounded("client connect", connect).await.unwrap();
            if self.members[want].holds_session(client.session_id().0) {
                return Some(client);
            }
        }
        None
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for m in &mut self.members {
            m.kill();
            if panicking {
                m.dump_log();
            }
        }
    }
}
