//! The simulated ensemble: N zkw servers in this process, each on its own single-threaded
//! tokio runtime (its own thread), all on one [`MemoryNetwork`] for the quorum port and each
//! with its Raft log on an in-memory [`TestDisk`]. Clients reach them on real loopback TCP
//! (the `zookeeper-client` crate), or on the same network at the member's address and
//! [`MEMORY_CLIENT_PORT`] (zkw's own client), where a member's crash, pause or reset reaches
//! them too.
//!
//! A crash drops the member's runtime mid-flight (every task of the server stops at its next
//! await, nothing flushes) and replaces its log with what a power cut leaves: only synced
//! bytes, or everything written. The snapshot files and the redb meta stay on the real disk
//! (both are synced before they count). A restart runs the member again on the same ports.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use zkw::clock::{Clock, SystemClock};
use zkw::consensus::log::{Image, LogMedium, TestDisk};
use zkw::net::MemoryNetwork;
use zkw::server::Seams;

use crate::common::{poll_until, SUPER_DIGEST, SUPER_DIGEST_KEY, TICK_MS};
use crate::ensemble::{four_letter, INIT_LIMIT_TICKS, SYNC_LIMIT_TICKS};

/// The quorum port every member listens on (each member is its own address on the network).
const QUORUM_PORT: u16 = 2888;
/// The client port every member listens on in the simulated network.
const MEMORY_CLIENT_PORT: u16 = 2181;
/// Bound on an election, a catch-up or the digests converging, seconds.
pub const CONVERGE_SECS_MAX: u64 = 60;
/// Bound on a server returning after its shutdown, or its runtime's blocking work after a
/// crash, seconds.
const STOP_SECS_MAX: u64 = 30;
/// Lines of each member's log a failing run prints.
const LOG_TAIL_LINES: usize = 40;
/// Bound on binding a restarted member's client port again, seconds.
const REBIND_SECS_MAX: u64 = 10;

pub fn member_ip(id: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, id])
}

/// The wall clock, shifted: members' clocks disagree by seconds, as real servers' do
/// (ZooKeeper assumes nothing of wall clocks beyond ctime/mtime).
#[derive(Debug)]
struct SkewedClock {
    real: SystemClock,
    skew_ms: i64,
}

impl Clock for SkewedClock {
    fn wall_ms(&self) -> i64 {
        self.real.wall_ms() + self.skew_ms
    }

    fn monotonic_ms(&self) -> u64 {
        self.real.monotonic_ms()
    }
}

/// What a member's thread returns: how its server ended (None: crashed).
type Outcome = Option<Result<(), zkw::server::ServerError>>;

thread_local! {
    /// A member's log, made the default on each blocking thread of its runtime while it runs.
    static BLOCKING_LOG: std::cell::Cell<Option<tracing::dispatcher::DefaultGuard>> =
        const { std::cell::Cell::new(None) };
}

struct Running {
    stop: oneshot::Sender<()>,
    crash: oneshot::Sender<()>,
    /// The member's runtime, to freeze it.
    runtime: tokio::runtime::Handle,
    thread: std::thread::JoinHandle<Outcome>,
}

/// One member: its ports and disk, and its thread while it runs.
pub struct Member {
    pub id: u8,
    pub client_port: u16,
    config: PathBuf,
    /// The member's own log (its thread's tracing output), kept across restarts.
    log: PathBuf,
    disk: TestDisk,
    skew_ms: i64,
    running: Option<Running>,
}

impl Member {
    fn launch(&mut self, network: &MemoryNetwork) {
        let (config, _warnings) = zkw::config::Config::load(&self.config).unwrap();
        let seams = Seams {
            clock: Arc::new(SkewedClock {
                real: SystemClock::new(),
                skew_ms: self.skew_ms,
            }),
            peers: network.transport(member_ip(self.id)),
            log: LogMedium::Memory(self.disk.clone()),
            clients: Some((
                network.transport(member_ip(self.id)),
                std::net::SocketAddr::new(member_ip(self.id), MEMORY_CLIENT_PORT),
            )),
        };
        let port = self.client_port;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (crash, crashed) = oneshot::channel::<()>();
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("member-{}", self.id))
            .spawn(move || {
                // The member's runtime runs on this thread, its blocking work (log and snapshot
                // I/O) on its runtime's blocking threads: all their log lines go to its file.
                let dispatch = tracing::Dispatch::new(
                    tracing_subscriber::fmt()
                        .with_env_filter(tracing_subscriber::EnvFilter::new(
                            zkw::cli::LOG_FILTER_DEFAULT,
                        ))
                        .with_writer(std::sync::Mutex::new(log))
                        .with_ansi(false)
                        .finish(),
                );
                let _log = tracing::dispatcher::set_default(&dispatch);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .on_thread_start(move || {
                        BLOCKING_LOG.set(Some(tracing::dispatcher::set_default(&dispatch)));
                    })
                    .on_thread_stop(|| BLOCKING_LOG.set(None))
                    .build()
                    .unwrap();
                handle_tx.send(runtime.handle().clone()).unwrap();
                let outcome = runtime.block_on(async move {
                    let listener = bind(port).await;
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    tokio::select! {
                        result = zkw::server::run(config, listener, shutdown, seams) => Some(result),
                        Ok(()) = crashed => None,
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(STOP_SECS_MAX));
                outcome
            })
            .unwrap();
        let runtime = handle_rx.recv().unwrap();
        self.running = Some(Running {
            stop,
            crash,
            runtime,
            thread,
        });
    }

    pub fn is_running(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|running| !running.thread.is_finished())
    }
}

/// Binds the client port again after a crash (the old socket may take a moment to go).
async fn bind(port: u16) -> tokio::net::TcpListener {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(REBIND_SECS_MAX);
    loop {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        let bound = socket
            .bind(([127, 0, 0, 1], port).into())
            .and_then(|()| socket.listen(1024));
        match bound {
            Ok(listener) => return listener,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "rebinding client port {port}: {error}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The whole ensemble.
pub struct Cluster {
    pub network: MemoryNetwork,
    pub members: Vec<Member>,
    /// The members' data directories (kept when a run fails).
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts `size` members; `skews_ms[i]` shifts member i+1's wall clock.
    /// `extra` is more of zoo.cfg, `key=value` lines.
    pub fn start(size: u8, skews_ms: &[i64], extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let network = MemoryNetwork::new();
        let peers: String = (1..=size)
            .map(|id| {
                format!(
                    "server.{id}={}:{QUORUM_PORT}:{}\n",
                    member_ip(id),
                    QUORUM_PORT + 1000
                )
            })
            .collect();
        let mut members = Vec::new();
        for id in 1..=size {
            let client_port = crate::common::free_port();
            let config = write_config(dir.path(), id, client_port, &format!("{extra}{peers}"));
            let mut member = Member {
                id,
                client_port,
                log: config.with_file_name("zkw.log"),
                config,
                disk: TestDisk::new(),
                skew_ms: skews_ms.get(usize::from(id - 1)).copied().unwrap_or(0),
                running: None,
            };
            member.launch(&network);
            members.push(member);
        }
        Cluster {
            network,
            members,
            dir: Some(dir),
        }
    }

    pub fn member(&self, id: u8) -> &Member {
        &self.members[usize::from(id - 1)]
    }

    fn member_mut(&mut self, id: u8) -> &mut Member {
        &mut self.members[usize::from(id - 1)]
    }

    /// `127.0.0.1:<port>` of every member, comma-separated.
    pub fn hosts(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every member's client address on the simulated network, comma-separated, starting at
    /// the one after `first` members (so that clients spread over the members).
    pub fn memory_hosts(&self, first: usize) -> String {
        let ids: Vec<u8> = self.members.iter().map(|m| m.id).collect();
        let at = first % ids.len();
        ids[at..]
            .iter()
            .chain(&ids[..at])
            .map(|id| format!("{}:{MEMORY_CLIENT_PORT}", member_ip(*id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops member `id` dead and leaves its log as a power cut would (`image`).
    pub async fn crash(&mut self, id: u8, image: Image) {
        let member = self.member_mut(id);
        let Some(running) = member.running.take() else {
            return;
        };
        let _ = running.crash.send(());
        join(running.thread).await;
        member.disk = member.disk.power_cut_image(image);
    }

    /// Runs a crashed (or failed-stop) member again.
    pub async fn restart(&mut self, id: u8) {
        let network = self.network.clone();
        let member = self.member_mut(id);
        if let Some(running) = member.running.take() {
            // It stopped by itself (a failed disk write): collect its thread first.
            let _ = running.crash.send(());
            join(running.thread).await;
        }
        member.launch(&network);
    }

    /// Freezes member `id` for `ms` (as SIGSTOP would): its one runtime thread sleeps, so no
    /// task of it runs, no timer fires and no socket is read until it wakes.
    pub fn pause(&self, id: u8, ms: u64) {
        if let Some(running) = &self.member(id).running {
            running.runtime.spawn(async move {
                std::thread::sleep(Duration::from_millis(ms));
            });
        }
    }

    /// Arms a failed write on member `id`'s log disk `after` mutations from now: the server
    /// fails stop on it (the disk works again afterwards).
    pub fn fail_disk(&self, id: u8, after: u64) {
        let disk = &self.member(id).disk;
        let nth = disk.mutations() + after;
        disk.arm(zkw::consensus::log::Fault::Fail { nth });
    }

    /// Removes every armed disk fault; returns the members whose fault struck (each is
    /// failing stop, or has stopped).
    pub fn disarm_disks(&self) -> Vec<u8> {
        self.members
            .iter()
            .filter(|member| member.disk.disarm())
            .map(|member| member.id)
            .collect()
    }

    /// Stops every running member and checks that each returned cleanly.
    pub async fn stop_all(mut self) {
        for member in &mut self.members {
            if let Some(running) = member.running.take() {
                let _ = running.stop.send(());
                let outcome = join(running.thread).await;
                if let Some(result) = outcome {
                    assert!(result.is_ok(), "member {}: {result:?}", member.id);
                }
            }
        }
    }

    /// The member that says it leads, among `candidates`.
    pub async fn leader_among(&self, candidates: &[u8]) -> u8 {
        poll_until("a leader", CONVERGE_SECS_MAX, || async {
            for member in self.members.iter().filter(|m| candidates.contains(&m.id)) {
                if ask(member.client_port, "srvr")
                    .await
                    .contains("Mode: leader")
                {
                    return Some(member.id);
                }
            }
            None
        })
        .await
    }

    /// Each member's (last zxid, digest, state) as `mntr` says them (None: no answer).
    pub async fn digest_states(&self) -> Vec<DigestState> {
        let mut states = Vec::new();
        for member in &self.members {
            let answer = ask(member.client_port, "mntr").await;
            states.push((
                mntr_value(&answer, "zk_last_processed_zxid"),
                mntr_value(&answer, "zk_digest"),
                mntr_value(&answer, "zk_server_state"),
            ));
        }
        states
    }

    /// Waits until every member has applied the same zxid and holds the same digest; names
    /// what each member last said when they do not within the bound.
    pub async fn digests_agree(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(CONVERGE_SECS_MAX);
        loop {
            let states = self.digest_states().await;
            if agreed(&states) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no equal digests within {CONVERGE_SECS_MAX}s: (zxid, digest, state) per member \
                 {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A member's (last zxid, digest, state), as `mntr` says them.
pub type DigestState = (Option<String>, Option<String>, Option<String>);

/// Whether every member answered with the same zxid and digest.
pub fn agreed(states: &[DigestState]) -> bool {
    states
        .windows(2)
        .all(|pair| pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1)
        && states.first().is_some_and(|state| state.1.is_some())
}

/// `rest` ends the file: the `server.N` lines and any other keys.
fn write_config(dir: &Path, id: u8, client_port: u16, rest: &str) -> PathBuf {
    let data = dir.join(format!("m{id}"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
    let text = format!(
        "tickTime={TICK_MS}\ninitLimit={INIT_LIMIT_TICKS}\nsyncLimit={SYNC_LIMIT_TICKS}\n\
         dataDir={}\nclientPort={client_port}\n4lw.commands.whitelist=*\n\
         admin.enableServer=false\n{SUPER_DIGEST_KEY}={SUPER_DIGEST}\nreconfigEnabled=true\n\
         {rest}",
        data.display()
    );
    let config = data.join("zoo.cfg");
    std::fs::write(&config, text).unwrap();
    config
}

impl Cluster {
    /// Member `id` as a reconfig names a joining server.
    pub fn server_spec(&self, id: u8) -> String {
        format!(
            "server.{id}={}:{QUORUM_PORT}:{}:participant;127.0.0.1:{}",
            member_ip(id),
            QUORUM_PORT + 1000,
            self.member(id).client_port
        )
    }
}

impl Drop for Cluster {
    /// A failing run prints the end of every member's log and keeps their directories.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Some(dir) = self.dir.take() {
            eprintln!("members' data and logs kept in {}", dir.keep().display());
        }
        for member in &self.members {
            let text = std::fs::read_to_string(&member.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- member {} log tail -----", member.id);
            for line in &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Joins a member's thread off the async runtime, within the bound.
async fn join(thread: std::thread::JoinHandle<Outcome>) -> Outcome {
    let joined = tokio::task::spawn_blocking(move || thread.join());
    match tokio::time::timeout(Duration::from_secs(STOP_SECS_MAX * 2), joined).await {
        Ok(Ok(Ok(outcome))) => outcome,
        Ok(Ok(Err(_))) => panic!("a member's thread panicked"),
        Ok(Err(error)) => panic!("joining a member: {error}"),
        Err(_) => panic!("a member did not stop within {}s", STOP_SECS_MAX * 2),
    }
}

/// A four-letter word's answer, off the runtime's threads.
pub async fn ask(port: u16, word: &'static str) -> String {
    tokio::task::spawn_blocking(move || four_letter(port, word))
        .await
        .unwrap()
}

pub fn mntr_value(answer: &str, key: &str) -> Option<String> {
    answer
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('\t'))
        .map(str::to_owned)
}
