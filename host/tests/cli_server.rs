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
