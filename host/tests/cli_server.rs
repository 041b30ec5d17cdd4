//! Black-box test of `zkw server start | status | stop` and of config errors, running the real
//! binary the way an operator (or zkServer.sh muscle memory) would. Each test uses its own temp
//! dataDir and a free loopback port; every command runs under a deadline, and any server left
//! behind is killed by the pid in its pid file when the test ends, pass or fail.
#![allow(clippy::unwrap_used)] // tests may unwrap (house rule)

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Longest any single `zkw` command may run in these tests.
const COMMAND_WAIT_MS_MAX: u64 = 60_000;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `zkw args...` with a deadline; kills it (by pid) if the deadline passes.
fn zkw(args: &[&str], dir: &Path) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zkw"))
        .args(args)
        .current_dir(dir)
        .env_remove("ZOO_LOG_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(COMMAND_WAIT_MS_MAX);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("zkw {args:?} did not finish within {COMMAND_WAIT_MS_MAX} ms");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// A temp dir that, on drop, kills any server whose pid is in its pid file, then is removed.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        let dir = std::env::temp_dir().join(format!("zkw-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir }
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("data").join("zkw_server.pid")
    }

    fn write_config(&self, name: &str, text: &str) -> String {
        std::fs::write(self.dir.join(name), text).unwrap();
        name.to_owned()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Ok(text) = std::fs::read_to_string(self.pid_file()) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn start_status_stop_cycle() {
    let sandbox = Sandbox::new("cycle");
    let port = free_port();
    let config = sandbox.write_config(
        "zoo.cfg",
        &format!("tickTime=2000\ndataDir=./data\nclientPort={port}\nclientPortAddress=127.0.0.1\n"),
    );
    let args = |action: &'static str| ["server", action, "--config", config.as_str()];
    let dir = sandbox.dir.as_path();

    let started = zkw(&args("start"), dir);
    assert_eq!(
        started.code,
        Some(0),
        "{} / {}",
        started.stdout,
        started.stderr
    );
    assert_eq!(started.stdout.trim(), "Starting zkw ... STARTED");
    let pid = std::fs::read_to_string(sandbox.pid_file())
        .unwrap()
        .trim()
        .to_owned();

    let status = zkw(&args("status"), dir);
    assert_eq!(status.code, Some(0), "{}", status.stdout);
    let expected = format!(
        "Client port found: {port}. Client address: 127.0.0.1. Client SSL: false.\nMode: standalone\n"
    );
    assert_eq!(status.stdout, expected);

    let again = zkw(&args("start"), dir);
    assert_eq!(again.code, Some(1));
    assert_eq!(
        again.stdout.trim(),
        format!("Starting zkw ... already running as process {pid}.")
    );

    let stopped = zkw(&args("stop"), dir);
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    assert_eq!(stopped.stdout.trim(), "Stopping zkw ... STOPPED");
    assert!(!sandbox.pid_file().exists());

    // A normal start logs a few readable lines: no dump of openraft's state, no leader
    // coming and going, no warning.
    let log = std::fs::read_to_string(sandbox.dir.join("data").join("zkw.out")).unwrap();
    for wanted in [
        "starting zkw",
        "ports and directories",
        &format!("client 127.0.0.1:{port}"),
        "serving alone",
        "serving mode=\"standalone\"",
    ] {
        assert!(log.contains(wanted), "{wanted:?} missing from:\n{log}");
    }
    for unwanted in [
        "RaftState",
        "becomes leader",
        "steps down",
        "WARN",
        "ERROR",
        "not serving",
    ] {
        assert!(!log.contains(unwanted), "{unwanted:?} in:\n{log}");
    }

    let down = zkw(&args("status"), dir);
    assert_eq!(down.code, Some(1));
    assert!(down
        .stdout
        .ends_with("Error contacting service. It is probably not running.\n"));

    let nothing = zkw(&args("stop"), dir);
    assert_eq!(nothing.code, Some(0));
    let pid_file = Path::new("./data").join("zkw_server.pid");
    assert_eq!(
        nothing.stdout.trim(),
        format!(
            "Stopping zkw ... no zkw server to stop (could not find file {})",
            pid_file.display()
        )
    );
}

#[test]
fn bad_config_value_refuses_to_start() {
    let sandbox = Sandbox::new("bad");
    let config = sandbox.write_config("bad.cfg", "dataDir=./data\n# comment\ntickTime=abc\n");
    for action in ["start-foreground", "start"] {
        let outcome = zkw(&["server", action, "--config", &config], &sandbox.dir);
        assert_ne!(outcome.code, Some(0), "{action}");
        assert!(
            outcome
                .stderr
                .contains("bad.cfg:3: tickTime: \"abc\" is not a whole number"),
            "{action}: {}",
            outcome.stderr
        );
    }
    assert!(!sandbox.pid_file().exists());
}

/// Sends a four-letter word to `127.0.0.1:port` and reads the reply to its end.
fn four_letter(port: u16, word: &str) -> String {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let timeout = Some(Duration::from_millis(COMMAND_WAIT_MS_MAX));
    stream.set_read_timeout(timeout).unwrap();
    stream.write_all(word.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// zoo.cfg of member 1 of a three-member ensemble on free loopback ports, with `myid`;
/// returns the config's name and the client and quorum ports of member 1.
fn ensemble_member_config(sandbox: &Sandbox, tick_ms: u32) -> (String, u16, u16) {
    let data = sandbox.dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("myid"), "1\n").unwrap();
    let client_port = free_port();
    let quorum_port = free_port();
    let mut text = format!(
        "tickTime={tick_ms}\ninitLimit=10\nsyncLimit=5\ndataDir=./data\nclientPort={client_port}\n\
         clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n\
         server.1=127.0.0.1:{quorum_port}:{}\n",
        free_port()
    );
    for id in 2..=3 {
        text.push_str(&format!(
            "server.{id}=127.0.0.1:{}:{}\n",
            free_port(),
            free_port()
        ));
    }
    (
        sandbox.write_config("zoo.cfg", &text),
        client_port,
        quorum_port,
    )
}

/// The first member of a new ensemble, started alone (as over ssh, node by node), is STARTED
/// at once; without its quorum it does not serve, and says so as ZooKeeper 3.8 does: in
/// `status` (exit 1) and in the four-letter words. Its log says so once, not every round.
#[test]
fn ensemble_member_starts_alone_and_says_it_is_not_serving() {
    let sandbox = Sandbox::new("alone");
    let (config, client_port, _) = ensemble_member_config(&sandbox, 2000);
    let args = |action: &'static str| ["server", action, "--config", config.as_str()];
    let dir = sandbox.dir.as_path();

    let started = zkw(&args("start"), dir);
    assert_eq!(
        started.code,
        Some(0),
        "{} / {}",
        started.stdout,
        started.stderr
    );
    assert_eq!(started.stdout.trim(), "Starting zkw ... STARTED");

    let status = zkw(&args("status"), dir);
    assert_eq!(status.code, Some(1), "{}", status.stdout);
    assert_eq!(
        status.stdout,
        format!(
            "Client port found: {client_port}. Client address: 127.0.0.1. Client SSL: false.\n\
             This ZooKeeper instance is not currently serving requests\n"
        )
    );
    let not_serving = "This ZooKeeper instance is not currently serving requests\n";
    for word in [
        "srvr", "stat", "mntr", "conf", "cons", "dump", "wchs", "dirs",
    ] {
        assert_eq!(four_letter(client_port, word), not_serving, "{word}");
    }
    assert_eq!(four_letter(client_port, "ruok"), "imok");
    assert_eq!(four_letter(client_port, "isro"), "null");
    assert!(four_letter(client_port, "envi").starts_with("Environment:\n"));

    let stopped = zkw(&args("stop"), dir);
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let log = std::fs::read_to_string(sandbox.dir.join("data").join("zkw.out")).unwrap();
    assert_eq!(
        log.matches("not serving: no quorum; electing").count(),
        1,
        "{log}"
    );
    assert!(log.contains("member of an ensemble of 3 my_id=1"), "{log}");
    for unwanted in ["election timeout expired", "while requesting", "RaftState"] {
        assert!(!log.contains(unwanted), "{unwanted:?} in:\n{log}");
    }
}

/// While its peers stay down, a member says it is not serving once, then a summary every 30
/// ticks naming the peers it cannot reach; never a line per election round.
#[test]
fn a_member_without_quorum_logs_a_summary_not_every_round() {
    let sandbox = Sandbox::new("summary");
    let (config, _, _) = ensemble_member_config(&sandbox, 100);
    let args = |action: &'static str| ["server", action, "--config", config.as_str()];
    let started = zkw(&args("start"), &sandbox.dir);
    assert_eq!(
        started.code,
        Some(0),
        "{} / {}",
        started.stdout,
        started.stderr
    );
    let out = sandbox.dir.join("data").join("zkw.out");
    let deadline = Instant::now() + Duration::from_millis(COMMAND_WAIT_MS_MAX);
    let mut log = String::new();
    while Instant::now() < deadline && !log.contains("still not serving") {
        std::thread::sleep(Duration::from_millis(100));
        log = std::fs::read_to_string(&out).unwrap();
    }
    let stopped = zkw(&args("stop"), &sandbox.dir);
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
    let summary = log
        .lines()
        .find(|line| line.contains("still not serving: no quorum"))
        .unwrap_or_else(|| panic!("no summary in:\n{log}"));
    assert!(
        summary.contains("unreachable=server.2, server.3"),
        "{summary}"
    );
    assert_eq!(
        log.matches("not serving: no quorum; electing").count(),
        1,
        "{log}"
    );
    assert_eq!(log.matches("cannot reach peer").count(), 2, "{log}");
    assert!(!log.contains("election timeout expired"), "{log}");
}

/// A server whose client port is taken dies; `start` sees it, prints why and exits 1, and
/// `status` does not report whatever holds the port.
#[test]
fn start_reports_its_server_dying_on_a_taken_client_port() {
    let sandbox = Sandbox::new("taken");
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let config = sandbox.write_config(
        "zoo.cfg",
        &format!("dataDir=./data\nclientPort={port}\nclientPortAddress=127.0.0.1\n"),
    );
    let args = |action: &'static str| ["server", action, "--config", config.as_str()];
    let dir = sandbox.dir.as_path();

    let started = zkw(&args("start"), dir);
    assert_eq!(
        started.code,
        Some(1),
        "{} / {}",
        started.stdout,
        started.stderr
    );
    assert_eq!(started.stdout.trim(), "Starting zkw ... FAILED TO START");
    let why = format!("zkw: cannot listen on 127.0.0.1:{port} (clientPort): ");
    assert!(started.stderr.starts_with(&why), "{}", started.stderr);
    assert_eq!(started.stderr.matches("Address already in use").count(), 1);
    assert!(
        started.stderr.contains("see ./data/zkw.out"),
        "{}",
        started.stderr
    );
    assert!(!sandbox.pid_file().exists());

    let status = zkw(&args("status"), dir);
    assert_eq!(status.code, Some(1));
    assert!(status
        .stdout
        .ends_with("Error contacting service. It is probably not running.\n"));
    drop(holder);
}

/// A second server with the same myid (its quorum port taken) fails with one line naming
/// the port, the `server.N` key and the id, before any election.
#[test]
fn a_taken_quorum_port_names_port_key_and_id() {
    let sandbox = Sandbox::new("myid");
    let (config, _, quorum_port) = ensemble_member_config(&sandbox, 2000);
    let holder = TcpListener::bind(("127.0.0.1", quorum_port)).unwrap();
    let started = zkw(&["server", "start", "--config", &config], &sandbox.dir);
    assert_eq!(
        started.code,
        Some(1),
        "{} / {}",
        started.stdout,
        started.stderr
    );
    assert_eq!(started.stdout.trim(), "Starting zkw ... FAILED TO START");
    let why = format!(
        "zkw: cannot listen on quorum port {quorum_port} of server.1 (127.0.0.1:{quorum_port}; \
         1 is this server's myid): Address already in use"
    );
    assert!(started.stderr.starts_with(&why), "{}", started.stderr);
    assert_eq!(started.stderr.matches("Address already in use").count(), 1);
    assert!(started
        .stderr
        .contains("another server running with the same myid"));
    let log = std::fs::read_to_string(sandbox.dir.join("data").join("zkw.out")).unwrap();
    assert_eq!(log.matches("Address already in use").count(), 1, "{log}");
    assert!(!log.contains("cannot open the log"), "{log}");
    drop(holder);
}

/// A config file must set dataDir, as ZooKeeper requires; an unknown key only warns, and
/// `start` shows the warning on the terminal.
#[test]
fn data_dir_is_required_and_start_shows_warnings() {
    let sandbox = Sandbox::new("nodatadir");
    let port = free_port();
    let bare = sandbox.write_config("bare.cfg", &format!("tickTime=2000\nclientPort={port}\n"));
    for action in ["start-foreground", "start", "status"] {
        let outcome = zkw(&["server", action, "--config", &bare], &sandbox.dir);
        assert_eq!(outcome.code, Some(1), "{action}: {}", outcome.stdout);
        assert_eq!(
            outcome.stderr, "zkw: bare.cfg: dataDir is not set\n",
            "{action}"
        );
    }
    assert!(!sandbox.dir.join("data").exists());

    let typo = sandbox.write_config(
        "typo.cfg",
        &format!(
            "dataDir=./data\nclientPort={port}\nclientPortAddress=127.0.0.1\nclientport=2182\n\
             admin.enableServer=false\n"
        ),
    );
    let args = |action: &'static str| ["server", action, "--config", typo.as_str()];
    let started = zkw(&args("start"), &sandbox.dir);
    assert_eq!(
        started.code,
        Some(0),
        "{} / {}",
        started.stdout,
        started.stderr
    );
    assert_eq!(started.stdout.trim(), "Starting zkw ... STARTED");
    assert_eq!(
        started.stderr,
        "zkw: warning: typo.cfg:4: clientport: unknown key; ignored\n"
    );
    let stopped = zkw(&args("stop"), &sandbox.dir);
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);
}

#[test]
fn version_is_printed() {
    let sandbox = Sandbox::new("version");
    for args in [&["version"][..], &["server", "version"][..]] {
        let outcome = zkw(args, &sandbox.dir);
        assert_eq!(outcome.code, Some(0));
        let lines: Vec<&str> = outcome.stdout.lines().collect();
        assert_eq!(
            lines,
            [
                format!("zkw version {}", env!("CARGO_PKG_VERSION")).as_str(),
                // The test build has the wasm32 target (scripts/test.sh adds it).
                "built-in recipes: balancer, config-push, discovery, election, lock",
            ]
        );
    }
}
