//! Fail-stop (issue #11, part 2): a server whose storage fails at any durability step exits
//! non-zero within a bound, after exactly one `fail-stop:` log line naming the step and the
//! file, and restarted on the same dataDir with the fault gone it has every acknowledged write.
//!
//! Each test runs the real `zkw` binary (a debug build, so its failpoints are compiled in),
//! arms one failpoint through `ZKW_FAILPOINTS=<step>=file:<trigger>` and creates the trigger
//! file while real clients (the `zookeeper-client` crate) write. Standalone for every step
//! (append, fdatasync, segment create, segment rotate, snapshot write, snapshot rename, redb
//! commit), a 3-member ensemble for a failing leader and a failing follower (digests compared
//! through `mntr`), and a real full disk: dataDir on an 8 MiB tmpfs (root only; skipped with
//! the reason when mounting is not permitted).
#![allow(clippy::unwrap_used)] // tests may unwrap (style.md)

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zookeeper_client as zk;

// These tests are zkw's own (failpoints, exit statuses): each returns early when the suite
// runs against Apache ZooKeeper (`ZKW_TARGET=zookeeper`).
mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use common::{bounded, free_port};
use ensemble::four_letter;

/// Exit status of a storage failure (`zkw::fatal::EXIT_STORAGE`).
const EXIT_STORAGE: i32 = zkw::fatal::EXIT_STORAGE as i32;
/// The prefix of the one fail-stop line.
const FATAL_LOG_PREFIX: &str = zkw::fatal::FATAL_LOG_PREFIX;
/// From the fail-stop line to the process's exit: the server's own bound plus slack for a
/// loaded 2-core machine (process teardown, log flushing).
const EXIT_AFTER_LINE_MS_MAX: u64 = zkw::fatal::FATAL_EXIT_MS_MAX + 3_000;
/// Bound on the load that must reach the armed step (a snapshot needs `SNAP_COUNT` entries,
/// a rotation 64 MiB of log).
const LOAD_SECS_MAX: u64 = 120;
/// Bound on a server's start (ruok + a Mode line), and on an ensemble's quorum.
const START_SECS_MAX: u64 = 40;
/// Bound on one client call; a call to a dying server simply counts as unknown.
const CALL_SECS_MAX: u64 = 10;
/// Poll interval of every wait here.
const POLL_MS: u64 = 50;
/// Acknowledged writes before the fault is armed.
const WRITES_BEFORE_ARM: usize = 20;
/// Concurrent writers (so the log sees group commits, not one entry per sync).
const WRITERS: usize = 3;
/// tickTime of every test server.
const TICK_MS: u64 = 200;
/// Session timeout of the test clients.
const SESSION_TIMEOUT_MS: u64 = 20 * TICK_MS;
/// snapCount for the snapshot tests: a snapshot every this many entries.
const SNAP_COUNT: u64 = 50;
/// Payload that fills a 64 MiB segment in about seventy writes (below jute.maxbuffer).
const BIG_PAYLOAD_BYTES: usize = 1_000_000;
/// jute.maxbuffer of every test server.
const JUTE_MAXBUFFER_BYTES: usize = 2 * 1024 * 1024;
/// Size of the tmpfs that runs out of space, and of the one it is remounted as.
const TMPFS_SMALL: &str = "size=8m";
const TMPFS_LARGE: &str = "size=256m";
/// Payload of the full-disk test's writes.
const DISK_FILL_PAYLOAD_BYTES: usize = 100_000;
/// Lines of a server log printed when a test fails.
const LOG_TAIL_LINES: usize = 80;

/// One zkw process (standalone, or one member of an ensemble), killed on drop.
struct Node {
    id: u64,
    client_port: u16,
    dir: PathBuf,
    cfg: PathBuf,
    /// The failpoint spec passed to every run of this node (its trigger file decides).
    failpoints: Option<String>,
    child: Option<Child>,
    runs: u32,
}

impl Node {
    fn new(id: u64, dir: PathBuf, failpoints: Option<String>) -> Node {
        std::fs::create_dir_all(&dir).unwrap();
        Node {
            id,
            client_port: free_port(),
            cfg: dir.join("zoo.cfg"),
            dir,
            failpoints,
            child: None,
            runs: 0,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The trigger file of this node's failpoint.
    fn trigger(&self) -> PathBuf {
        self.dir.join("arm")
    }

    fn write_config(&self, data_dir: &Path, extra: &[(&str, String)]) {
        let mut text = format!(
            "tickTime={TICK_MS}\ninitLimit=20\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
             clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
             jute.maxbuffer={JUTE_MAXBUFFER_BYTES}\nmaxClientCnxns=0\n",
            data_dir.display(),
            self.client_port
        );
        for (key, value) in extra {
            text.push_str(&format!("{key}={value}\n"));
        }
        std::fs::write(&self.cfg, text).unwrap();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(format!("server-{}.log", self.runs))
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "node {} is running", self.id);
        self.runs += 1;
        let out = File::create(self.log_path()).unwrap();
        let err = out.try_clone().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_zkw"));
        command
            .args(["server", "start-foreground", "--config"])
            .arg(&self.cfg)
            .env_remove("ZKW_FAILPOINTS")
            .env_remove("ZKW_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        if let Some(spec) = &self.failpoints {
            command.env("ZKW_FAILPOINTS", spec);
        }
        self.child = Some(command.spawn().unwrap());
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    fn mode(&self) -> Option<String> {
        four_letter(self.client_port, "srvr")
            .lines()
            .find_map(|line| {
                line.strip_prefix("Mode:")
                    .map(|mode| mode.trim().to_owned())
            })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The `fail-stop:` lines of the current run.
    fn fatal_lines(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|line| line.contains(FATAL_LOG_PREFIX))
            .map(str::to_owned)
            .collect()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn dump_log(&self) {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("----- node {} run {} log tail -----", self.id, self.runs);
        for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
            eprintln!("{line}");
        }
    }

    /// Waits (bounded) for the process to exit after its fail-stop line, and checks the line
    /// (step, file, errno) and the status. Returns the line.
    async fn expect_fail_stop(&mut self, step: &str, file_part: &str, errno: i32) -> String {
        let (status, line) = self.wait_fail_stop(step).await;
        assert!(line.contains(&format!("{step} failed on ")), "{line}");
        assert!(line.contains(file_part), "{file_part} not named: {line}");
        assert!(line.contains(&format!("errno {errno}")), "{line}");
        assert_eq!(status.code(), Some(EXIT_STORAGE), "{status}: {line}");
        line
    }

    /// Waits (bounded) for exactly one fail-stop line, then for the process's exit within
    /// [`EXIT_AFTER_LINE_MS_MAX`]; returns the status and the line.
    async fn wait_fail_stop(&mut self, step: &str) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(LOAD_SECS_MAX);
        let line_seen = loop {
            if !self.fatal_lines().is_empty() {
                break Instant::now();
            }
            if let Some(status) = self.exited() {
                self.dump_log();
                panic!(
                    "node {} exited ({status}) without a fail-stop line",
                    self.id
                );
            }
            assert!(
                Instant::now() < deadline,
                "node {} hit no {step} failure within {LOAD_SECS_MAX}s of load",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        };
        let bound = Duration::from_millis(EXIT_AFTER_LINE_MS_MAX);
        let status = loop {
            if let Some(status) = self.exited() {
                break status;
            }
            assert!(
                line_seen.elapsed() < bound,
                "node {} still running {bound:?} after its fail-stop line",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        };
        self.child = None;
        let lines = self.fatal_lines();
        assert_eq!(lines.len(), 1, "exactly one fail-stop line: {lines:#?}");
        let line = lines[0].clone();
        eprintln!("node {}: {status} after: {line}", self.id);
        (status, line)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            self.dump_log();
        }
    }
}

/// Waits (bounded) until a standalone node serves.
async fn wait_serving(node: &mut Node) {
    let deadline = Instant::now() + Duration::from_secs(START_SECS_MAX);
    loop {
        if let Some(status) = node.exited() {
            panic!("node {} exited before serving: {status}", node.id);
        }
        if node.mode().is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {} did not serve within {START_SECS_MAX}s",
            node.id
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

async fn client(hosts: &str) -> zk::Client {
    let connector =
        zk::Client::connector().with_session_timeout(Duration::from_millis(SESSION_TIMEOUT_MS));
    bounded("client connect", connector.connect(hosts))
        .await
        .unwrap()
}

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Acknowledged creates (path, payload length), shared by the writers.
type Acked = Arc<Mutex<Vec<(String, usize)>>>;

/// Writers creating `/load/<writer>-<n>` with `payload_bytes` of data until `stop` (or their
/// server goes away for good), recording what was acknowledged.
struct Load {
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(hosts: &str, payload_bytes: usize) -> Load {
        let admin = client(hosts).await;
        match bounded("create /load", admin.create("/load", b"", &persistent())).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => panic!("create /load: {error}"),
        }
        let acked: Acked = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let client = client(hosts).await;
            let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
            tasks.push(tokio::spawn(write_loop(
                client,
                writer,
                payload_bytes,
                acked,
                stop,
            )));
        }
        Load { acked, stop, tasks }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_acked(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(LOAD_SECS_MAX);
        while self.acked_count() < count {
            assert!(
                Instant::now() < deadline,
                "only {} acknowledged writes",
                self.acked_count()
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    async fn stop(self) -> Vec<(String, usize)> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.tasks {
            // Each call is bounded, so the loop notices `stop` in bounded time.
            tokio::time::timeout(Duration::from_secs(2 * CALL_SECS_MAX), task)
                .await
                .expect("writer stops")
                .unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

async fn write_loop(
    client: zk::Client,
    writer: usize,
    payload_bytes: usize,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let payload = vec![b'x'; payload_bytes];
    for n in 0u64.. {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let path = format!("/load/{writer}-{n:06}");
        let create = client.create(&path, &payload, &persistent());
        match tokio::time::timeout(Duration::from_secs(CALL_SECS_MAX), create).await {
            Ok(Ok(_)) => acked.lock().unwrap().push((path, payload_bytes)),
            // Unknown outcome (the server died, or moved): keep going on the next path.
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(POLL_MS)).await,
        }
    }
}

/// Every acknowledged create is on the server at `hosts`, with its payload.
async fn check_acked(hosts: &str, acked: &[(String, usize)]) {
    let client = client(hosts).await;
    bounded("sync", client.sync("/load")).await.unwrap();
    for (path, bytes) in acked {
        let (data, _) = bounded("get", client.get_data(path))
            .await
            .unwrap_or_else(|error| panic!("acknowledged {path} lost: {error}"));
        assert_eq!(data.len(), *bytes, "{path}");
    }
}

/// One standalone server, a failpoint at `step` armed after some acknowledged writes: the
/// server fails stop naming `file_part`, and a restart has every acknowledged write.
async fn standalone_fails_stop_at(
    step: &str,
    file_part: &str,
    extra: &[(&str, String)],
    payload_bytes: usize,
) {
    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("node").join("arm");
    let spec = format!("{step}=file:{}", trigger.display());
    let mut node = Node::new(0, dir.path().join("node"), Some(spec));
    node.write_config(&dir.path().join("node").join("data"), extra);
    node.spawn();
    wait_serving(&mut node).await;
    let load = Load::start(&node.addr(), payload_bytes).await;
    load.wait_acked(WRITES_BEFORE_ARM).await;
    File::create(node.trigger()).unwrap();
    node.expect_fail_stop(step, file_part, zkw::consensus::failpoint::FAILPOINT_ERRNO)
        .await;
    let acked = load.stop().await;
    assert!(acked.len() >= WRITES_BEFORE_ARM);
    std::fs::remove_file(node.trigger()).unwrap();
    node.failpoints = None;
    node.spawn();
    wait_serving(&mut node).await;
    check_acked(&node.addr(), &acked).await;
    eprintln!("{step}: {} acknowledged writes all present", acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn log_append_failure_fails_stop() {
    standalone_fails_stop_at("log_append", ".seg", &[], 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn log_fdatasync_failure_fails_stop() {
    standalone_fails_stop_at("log_fdatasync", ".seg", &[], 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn log_segment_create_failure_fails_stop() {
    standalone_fails_stop_at("log_segment_create", ".seg", &[], BIG_PAYLOAD_BYTES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn log_segment_rotate_failure_fails_stop() {
    standalone_fails_stop_at("log_segment_rotate", ".seg", &[], BIG_PAYLOAD_BYTES).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn snapshot_write_failure_fails_stop() {
    let extra = [("snapCount", SNAP_COUNT.to_string())];
    standalone_fails_stop_at("snapshot_write", ".tmp", &extra, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn snapshot_rename_failure_fails_stop() {
    let extra = [("snapCount", SNAP_COUNT.to_string())];
    standalone_fails_stop_at("snapshot_rename", "version-2/snapshot.", &extra, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn meta_commit_failure_fails_stop() {
    standalone_fails_stop_at("meta_commit", "meta.redb", &[], 100).await;
}

/// A task that panics (a failpoint in apply) in the binary: the panic hook logs one fail-stop
/// line and aborts; restarted, the server has every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn panic_in_apply_aborts_with_one_line() {
    use std::os::unix::process::ExitStatusExt;
    const SIGABRT: i32 = 6;
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("node");
    let spec = format!("apply_panic=file:{}", node_dir.join("arm").display());
    let mut node = Node::new(0, node_dir.clone(), Some(spec));
    node.write_config(&node_dir.join("data"), &[]);
    node.spawn();
    wait_serving(&mut node).await;
    let load = Load::start(&node.addr(), 100).await;
    load.wait_acked(WRITES_BEFORE_ARM).await;
    File::create(node.trigger()).unwrap();
    let (status, line) = node.wait_fail_stop("apply_panic").await;
    assert!(line.contains("a task panicked at "), "{line}");
    assert!(line.contains("failpoint apply_panic triggered"), "{line}");
    assert_eq!(status.signal(), Some(SIGABRT), "{status}");
    let acked = load.stop().await;
    std::fs::remove_file(node.trigger()).unwrap();
    node.failpoints = None;
    node.spawn();
    wait_serving(&mut node).await;
    check_acked(&node.addr(), &acked).await;
}

/// Three members, each with its own trigger for `step`; the one at `pick` (the leader or a
/// follower) is armed under load through all members. It fails stop; the others carry on;
/// restarted, it catches up, every acknowledged write is everywhere and digests agree.
async fn ensemble_member_fails_stop(step: &str, fail_leader: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<Node> = (1..=3u64)
        .map(|id| {
            let node_dir = dir.path().join(format!("m{id}"));
            let spec = format!("{step}=file:{}", node_dir.join("arm").display());
            Node::new(id, node_dir, Some(spec))
        })
        .collect();
    let peers: Vec<(String, String)> = nodes
        .iter()
        .map(|node| {
            let (quorum, election) = (free_port(), free_port());
            (
                format!("server.{}", node.id),
                format!("127.0.0.1:{quorum}:{election}"),
            )
        })
        .collect();
    for node in &mut nodes {
        let data = node.dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("myid"), format!("{}\n", node.id)).unwrap();
        let mut extra: Vec<(&str, String)> = vec![("standaloneEnabled", "false".into())];
        extra.extend(
            peers
                .iter()
                .map(|(key, value)| (key.as_str(), value.clone())),
        );
        node.write_config(&data, &extra);
        node.spawn();
    }
    let leader = wait_quorum(&mut nodes).await;
    let target = if fail_leader {
        leader
    } else {
        (leader + 1) % 3
    };
    let hosts: Vec<String> = nodes.iter().map(Node::addr).collect();
    let load = Load::start(&hosts.join(","), 100).await;
    load.wait_acked(WRITES_BEFORE_ARM).await;
    File::create(nodes[target].trigger()).unwrap();
    let errno = zkw::consensus::failpoint::FAILPOINT_ERRNO;
    nodes[target].expect_fail_stop(step, ".seg", errno).await;
    // The survivors keep serving writes.
    let before = load.acked_count();
    load.wait_acked(before + WRITES_BEFORE_ARM).await;
    let acked = load.stop().await;
    std::fs::remove_file(nodes[target].trigger()).unwrap();
    nodes[target].failpoints = None;
    nodes[target].spawn();
    wait_quorum(&mut nodes).await;
    let states = wait_converged(&nodes).await;
    assert!(
        states.windows(2).all(|pair| pair[0] == pair[1]),
        "digests differ at one zxid: {states:?}"
    );
    for node in &nodes {
        check_acked(&node.addr(), &acked).await;
    }
    eprintln!(
        "{step} on member {}: {} acknowledged writes everywhere, (zxid, digest) {:?}",
        nodes[target].id,
        acked.len(),
        states[0]
    );
}

/// Waits (bounded) until every running node serves and one leads; returns the leader's index.
async fn wait_quorum(nodes: &mut [Node]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(START_SECS_MAX);
    loop {
        for node in nodes.iter_mut() {
            if node.child.is_some() {
                if let Some(status) = node.exited() {
                    panic!("node {} exited: {status}", node.id);
                }
            }
        }
        let modes: Vec<Option<String>> = nodes.iter().map(Node::mode).collect();
        let leaders: Vec<usize> = (0..modes.len())
            .filter(|&i| modes[i].as_deref() == Some("leader"))
            .collect();
        let serving = modes
            .iter()
            .all(|mode| matches!(mode.as_deref(), Some("leader" | "follower")));
        if serving && leaders.len() == 1 {
            return leaders[0];
        }
        assert!(
            Instant::now() < deadline,
            "no quorum within {START_SECS_MAX}s: {modes:?}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Waits (bounded) until every node reports the same last processed zxid, each read with its
/// digest from one `mntr` answer (so both describe the same state); returns the pairs.
async fn wait_converged(nodes: &[Node]) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(START_SECS_MAX);
    loop {
        let states: Vec<Option<(String, String)>> = nodes
            .iter()
            .map(|node| {
                let answer = four_letter(node.client_port, "mntr");
                let value = |key: &str| {
                    answer.lines().find_map(|line| {
                        let (k, v) = line.split_once('\t')?;
                        (k == key).then(|| v.trim().to_owned())
                    })
                };
                Some((value("zk_last_processed_zxid")?, value("zk_digest")?))
            })
            .collect();
        let converged = states.iter().all(|state| {
            state.as_ref().map(|(zxid, _)| zxid) == states[0].as_ref().map(|(zxid, _)| zxid)
        });
        if converged && states[0].is_some() {
            return states.into_iter().flatten().collect();
        }
        assert!(
            Instant::now() < deadline,
            "members did not converge within {START_SECS_MAX}s: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn ensemble_leader_fdatasync_failure_fails_stop() {
    ensemble_member_fails_stop("log_fdatasync", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn ensemble_follower_append_failure_fails_stop() {
    ensemble_member_fails_stop("log_append", false).await;
}

/// A tmpfs mounted for one test; unmounted (after its server is killed) on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `dir`; Err(reason) when mounting is not permitted.
    fn mount(dir: &Path, options: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|error| format!("cannot run mount: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.dir).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            // Still busy (a process we could not reap?): detach it lazily.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// A real full disk: dataDir on an 8 MiB tmpfs under write load. The server fails stop with
/// ENOSPC naming the file; with the space back (remounted larger) it restarts on the same
/// dataDir with every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn full_disk_fails_stop_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mount_dir = dir.path().join("disk");
    let tmpfs = match Tmpfs::mount(&mount_dir, TMPFS_SMALL) {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            eprintln!("SKIPPED full_disk_fails_stop_and_recovers: {reason}");
            return;
        }
    };
    // Declared after the mount so the server dies before the unmount.
    let mut node = Node::new(0, dir.path().join("node"), None);
    node.write_config(&mount_dir.join("data"), &[]);
    node.spawn();
    wait_serving(&mut node).await;
    let load = Load::start(&node.addr(), DISK_FILL_PAYLOAD_BYTES).await;
    const ENOSPC: i32 = 28;
    let line = node.expect_fail_stop("", "/disk/data/", ENOSPC).await;
    assert!(line.contains("No space left on device"), "{line}");
    let acked = load.stop().await;
    assert!(
        !acked.is_empty(),
        "some writes were acknowledged before the disk filled"
    );
    tmpfs.remount(TMPFS_LARGE);
    node.spawn();
    wait_serving(&mut node).await;
    check_acked(&node.addr(), &acked).await;
    eprintln!("full disk: {} acknowledged writes all present", acked.len());
    node.kill();
    drop(tmpfs);
}

/// Two servers in one process (the library, no binary): failpoints and the fatal signal
/// belong to a server, not to the process. Arming one server's failpoint makes its `run`
/// return `ServerError::Fatal` naming the step, within the bound, while the other keeps
/// serving and then shuts down cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn fatal_errors_and_failpoints_are_per_server() {
    use zkw::fatal::{Fatal, Step};
    use zkw::server::ServerError;

    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("arm");
    let mut running = Vec::new();
    for (name, spec) in [
        ("failing", format!("log_append=file:{}", trigger.display())),
        (
            "healthy",
            format!("log_append=file:{}", dir.path().join("never").display()),
        ),
    ] {
        let mut config = zkw::config::Config {
            data_dir: dir.path().join(name),
            tick_time_ms: TICK_MS as u32,
            failpoints: spec,
            ..Default::default()
        };
        config.admin.enable_server = false;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stop_rx.await;
        };
        let clock = Arc::new(zkw::clock::SystemClock::new());
        let seams = zkw::server::Seams {
            clock,
            ..zkw::server::Seams::real()
        };
        let server = tokio::spawn(zkw::server::run(config, listener, shutdown, seams));
        running.push((addr, stop_tx, server));
    }
    let (healthy_addr, healthy_stop, healthy) = running.pop().unwrap();
    let (failing_addr, _failing_stop, failing) = running.pop().unwrap();
    let on_failing = client(&failing_addr).await;
    let on_healthy = client(&healthy_addr).await;
    bounded("create", on_failing.create("/a", b"", &persistent()))
        .await
        .unwrap();
    File::create(&trigger).unwrap();
    // The write that meets the failpoint is never acknowledged; its outcome is unknown.
    let _ = tokio::time::timeout(
        Duration::from_secs(CALL_SECS_MAX),
        on_failing.create("/b", b"", &persistent()),
    )
    .await;
    let bound = Duration::from_millis(zkw::fatal::FATAL_EXIT_MS_MAX);
    let result = tokio::time::timeout(bound, failing)
        .await
        .expect("run returns within the fatal bound")
        .unwrap();
    match result {
        Err(ServerError::Fatal(cause)) => {
            assert!(
                matches!(
                    &*cause,
                    Fatal::Storage {
                        step: Step::LogAppend,
                        errno: Some(5),
                        ..
                    }
                ),
                "{cause:?}"
            );
            assert_eq!(cause.exit_status(), zkw::fatal::EXIT_STORAGE);
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
    // The other server, same process, same failpoint step: untouched.
    for n in 0..WRITES_BEFORE_ARM {
        let path = format!("/h{n}");
        bounded("create", on_healthy.create(&path, b"", &persistent()))
            .await
            .unwrap();
    }
    healthy_stop.send(()).unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(CALL_SECS_MAX), healthy)
        .await
        .expect("healthy server stops")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
}

/// In-process (no panic hook, tokio catches the unwind): a panic in apply stops openraft's
/// core, which the server notices and fails stop on; `run` returns the fatal error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(zookeeper_target, ignore = "zkw only")]
async fn panic_in_apply_in_process_fails_stop() {
    use zkw::server::ServerError;
    let dir = tempfile::tempdir().unwrap();
    let trigger = dir.path().join("arm");
    let mut config = zkw::config::Config {
        data_dir: dir.path().join("data"),
        tick_time_ms: TICK_MS as u32,
        failpoints: format!("apply_panic=file:{}", trigger.display()),
        ..Default::default()
    };
    config.admin.enable_server = false;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let clock = Arc::new(zkw::clock::SystemClock::new());
    let seams = zkw::server::Seams {
        clock,
        ..zkw::server::Seams::real()
    };
    let server = tokio::spawn(zkw::server::run(
        config,
        listener,
        std::future::pending(),
        seams,
    ));
    let client = client(&addr).await;
    bounded("create", client.create("/a", b"", &persistent()))
        .await
        .unwrap();
    File::create(&trigger).unwrap();
    let _ = tokio::time::timeout(
        Duration::from_secs(CALL_SECS_MAX),
        client.create("/b", b"", &persistent()),
    )
    .await;
    let bound = Duration::from_millis(zkw::fatal::FATAL_EXIT_MS_MAX);
    let result = tokio::time::timeout(bound, server)
        .await
        .expect("run returns within the fatal bound")
        .unwrap();
    match result {
        Err(ServerError::Fatal(cause)) => {
            assert_eq!(cause.exit_status(), zkw::fatal::EXIT_SOFTWARE, "{cause}");
            eprintln!("in-process panic: {cause}");
        }
        other => panic!("expected a fatal error, got {other:?}"),
    }
}
