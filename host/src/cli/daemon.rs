//! `zkw server ...`: start in the background, run in the foreground, stop, status.
//!
//! Follows zkServer.sh: the pid file is `<dataDir>/zkw_server.pid`, `start` refuses when that
//! process is alive, `stop` with no pid file says so and succeeds, `status` prints where it looks
//! and then the `Mode:` line of `srvr`. The server itself writes the pid file once it takes
//! clients (so `start-foreground` under a supervisor has one too) and removes it when it ends.
//! Unlike zkServer.sh, `start` waits (bounded) for that pid file before it says STARTED, and
//! sees its process die instead (a port in use, say): it then prints the process's last error
//! line and exits non-zero. A member of an ensemble is STARTED once it listens, quorum or not
//! (`status` says whether it serves); a standalone server once it serves. `status` asks the
//! client port only when the pid file names a live process, so it never reports another
//! server that holds the port. `stop` waits (bounded) for the process to exit, escalating
//! SIGTERM to SIGKILL, so a following `start` finds the port free.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::four_letter;
use crate::config::Config;
use crate::fatal;
use crate::server::ServerError;

/// The pid file's name inside dataDir.
pub(crate) const PID_FILE_NAME: &str = "zkw_server.pid";
/// The background server's stdout/stderr file, in dataDir or $ZOO_LOG_DIR.
pub(crate) const OUT_FILE_NAME: &str = "zkw.out";
/// How long `start` waits for the new server to write its pid file (and, standalone, to answer
/// `srvr`).
const START_WAIT_MS_MAX: u64 = 30_000;
/// How much of zkw.out `start` reads back to find why its server exited, in bytes.
const OUT_TAIL_BYTES_MAX: u64 = 1024 * 1024;
/// How long `stop` waits after SIGTERM before it sends SIGKILL.
const STOP_TERM_WAIT_MS_MAX: u64 = 15_000;
/// How long `stop` waits after SIGKILL.
const STOP_KILL_WAIT_MS_MAX: u64 = 5_000;
/// Pause between two looks at the server while waiting.
const POLL_INTERVAL_MS: u64 = 100;

/// The environment variable that also sets `--log-format` (and carries it to `start`'s child).
pub(crate) const LOG_FORMAT_ENV: &str = "ZKW_LOG_FORMAT";

/// How the server writes its log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// tracing's human format: time, level, target, message, then the fields.
    #[default]
    Human,
    /// One JSON object per line with the fields at the top level.
    Json,
}

impl LogFormat {
    fn name(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

/// What the server's process prints on stderr before it exits on an error (see `main.rs`):
/// `start` shows that line when its server dies.
pub const EXIT_ERROR_PREFIX: &str = "zkw: ";

/// The config named on the command line, or the embedded default.
fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, Vec<crate::config::ConfigWarning>)> {
    match path {
        Some(path) => Ok(Config::load(path)?),
        None => Ok((Config::default(), Vec::new())),
    }
}

fn pid_file(config: &Config) -> PathBuf {
    config.data_dir.join(PID_FILE_NAME)
}

/// Removes the pid file when it still names this process (a later server may own it now).
fn remove_own_pid_file(path: &Path) {
    let mine = Pid::from_raw(i32::try_from(std::process::id()).unwrap_or(0));
    if read_pid(path).ok().flatten() == Some(mine) {
        if let Err(error) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), %error, "cannot remove the pid file");
        }
    }
}

/// `zkw server start-foreground`: serve in this process until SIGTERM or SIGINT.
pub(crate) fn start_foreground(
    config_path: Option<&Path>,
    log_format: LogFormat,
) -> anyhow::Result<ExitCode> {
    init_tracing(log_format);
    install_panic_hook();
    let (mut config, warnings) = load_config(config_path)?;
    if let Ok(spec) = std::env::var(FAILPOINTS_ENV) {
        config.failpoints = spec;
    }
    for warning in &warnings {
        tracing::warn!(%warning, "config");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create dataDir {}", config.data_dir.display()))?;
    let pid_path = pid_file(&config);
    config.pid_file = Some(pid_path.clone());
    log_start(&config, config_path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the tokio runtime")?;
    let served = runtime.block_on(async move {
        let shutdown = shutdown_signal()?;
        anyhow::Ok(crate::server::serve(config, shutdown).await)
    });
    // Blocking tasks stuck on a failing disk must not hold the process: bounded.
    runtime.shutdown_timeout(Duration::from_millis(fatal::RUNTIME_SHUTDOWN_MS_MAX));
    remove_own_pid_file(&pid_path);
    match served? {
        Ok(()) => {
            tracing::info!("zkw stopped");
            Ok(ExitCode::SUCCESS)
        }
        // Fail-stop: `server::run` logged the one line; the supervisor restarts us.
        Err(ServerError::Fatal(cause)) => Ok(ExitCode::from(cause.exit_status())),
        Err(error) => Err(error.into()),
    }
}

/// The environment variable that arms failpoints (test builds only; see
/// `consensus::failpoint`).
pub const FAILPOINTS_ENV: &str = "ZKW_FAILPOINTS";

/// A panic anywhere in the server leaves it in an unknown state (a task gone, a lock
/// poisoned), so the process logs one fail-stop line and aborts, in every build. Release builds
/// also compile with `panic = "abort"`; in-process tests (no hook) still unwind, and the
/// server's own fatal signal handles what they catch.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = fatal::panic_message(info.payload());
        let location = info
            .location()
            .map_or_else(|| "an unknown place".to_owned(), ToString::to_string);
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            "{} a task panicked at {location}: {message}; aborting",
            fatal::FATAL_LOG_PREFIX
        );
        std::process::abort();
    }));
}

/// The log filter unless `ZKW_LOG` (or else `RUST_LOG`) sets one: zkw's INFO lines, openraft's
/// warnings, but none of openraft's per-attempt lines while a peer is down (each election
/// timeout, vote request, heartbeat and replication attempt, each stale message ignored):
/// `consensus::report` and `consensus::network` log each change of role and reachability.
pub const LOG_FILTER_DEFAULT: &str = "info,openraft=warn,openraft::core::raft_core=error,\
    openraft::core::heartbeat=error,openraft::replication=error,\
    openraft::engine::handler::replication_handler=error";

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZKW_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(LOG_FILTER_DEFAULT));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (never in the binary) would fail harmlessly; ignore it.
    let _ = match format {
        // Colour codes only for a terminal, never into zkw.out.
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

/// A future that completes on the first SIGTERM or SIGINT. The handlers are installed before
/// it is returned, so a signal sent right after startup is not lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    })
}

/// The few lines a normal start logs: the config, ports, directories, and the ensemble.
fn log_start(config: &Config, config_path: Option<&Path>) {
    let source = config_path.map_or_else(
        || "(embedded default)".to_owned(),
        |path| path.display().to_string(),
    );
    tracing::info!(config = %source, "starting zkw {}", super::VERSION);
    let client_address = config
        .client_port_address
        .map_or_else(|| "0.0.0.0".to_owned(), |address| address.to_string());
    let mut ports = vec![format!("client {client_address}:{}", config.client_port)];
    if let Some(port) = config.secure_client_port {
        ports.push(format!("secure client {port}"));
    }
    if config.admin.enable_server {
        ports.push(format!("admin {}", config.admin.server_port));
    }
    tracing::info!(
        ports = %ports.join(", "),
        data_dir = %config.data_dir.display(),
        data_log_dir = %config.log_dir().display(),
        "ports and directories"
    );
    let members: Vec<String> = config
        .servers
        .iter()
        .map(|server| format!("server.{}={}", server.id, server.spec()))
        .collect();
    match (config.is_distributed(), config.my_id) {
        (true, Some(my_id)) => tracing::info!(
            my_id,
            members = %members.join(" "),
            "member of an ensemble of {}", members.len()
        ),
        (true, None) | (false, _) => tracing::info!(mode = "standalone", "serving alone"),
    }
}

/// `zkw server start`: re-run this executable with `start-foreground`, detached.
pub(crate) fn start(config_path: Option<&Path>, log_format: LogFormat) -> anyhow::Result<ExitCode> {
    let (config, warnings) = load_config(config_path)?;
    // The server logs them too, but into zkw.out: the operator at the terminal sees them here.
    for warning in &warnings {
        eprintln!("{EXIT_ERROR_PREFIX}warning: {warning}");
    }
    print_now("Starting zkw ... ");
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create dataDir {}", config.data_dir.display()))?;
    let pid_path = pid_file(&config);
    // Like zkServer.sh, an unreadable or stale pid file does not block a start.
    if let Some(pid) = read_pid(&pid_path).ok().flatten() {
        if is_running(pid) {
            println!("already running as process {pid}.");
            return Ok(ExitCode::FAILURE);
        }
    }
    // The new server writes its own pid file once it takes clients: that is the sign to wait
    // for, so a stale one must go first.
    match std::fs::remove_file(&pid_path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", pid_path.display()))
        }
    }
    let out_path = out_file(&config);
    // Only what this start's server writes is searched for its last error line.
    let out_offset = std::fs::metadata(&out_path).map_or(0, |metadata| metadata.len());
    let mut child = spawn_background(&out_path, config_path, log_format)?;
    let outcome = wait_until_started(&config, &pid_path, &mut child)?;
    match outcome {
        StartOutcome::Started => {
            println!("STARTED");
            return Ok(ExitCode::SUCCESS);
        }
        StartOutcome::Exited(status) => {
            println!("FAILED TO START");
            let reason = last_error_line(&out_path, out_offset)
                .unwrap_or_else(|| format!("the server exited ({status})"));
            eprintln!("{reason}");
        }
        StartOutcome::TimedOut => {
            // Never leave a half-started server behind.
            let _ = child.kill();
            let _ = child.wait();
            println!("FAILED TO START");
            eprintln!(
                "the server did not take clients within {} s; stopped it",
                START_WAIT_MS_MAX / 1_000
            );
        }
    }
    let _ = std::fs::remove_file(&pid_path);
    eprintln!("see {}", out_path.display());
    Ok(ExitCode::FAILURE)
}

/// How a `start` ended.
enum StartOutcome {
    /// The server runs and takes clients.
    Started,
    /// The server's process ended first, with this status.
    Exited(std::process::ExitStatus),
    /// Neither within [`START_WAIT_MS_MAX`].
    TimedOut,
}

/// The last line the server's process wrote to `out_path` past `offset` before it exited on
/// an error (its [`EXIT_ERROR_PREFIX`] line), else the last line it wrote at all.
fn last_error_line(out_path: &Path, offset: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(out_path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut bytes = Vec::new();
    file.take(OUT_TAIL_BYTES_MAX).read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|line| line.starts_with(EXIT_ERROR_PREFIX))
        .or(lines.last())
        .map(|line| (*line).to_owned())
}

fn out_file(config: &Config) -> PathBuf {
    match std::env::var_os("ZOO_LOG_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(OUT_FILE_NAME),
        _ => config.data_dir.join(OUT_FILE_NAME),
    }
}

fn spawn_background(
    out_path: &Path,
    config_path: Option<&Path>,
    log_format: LogFormat,
) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    if let Some(parent) = out_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(out_path)
        .with_context(|| format!("cannot open {}", out_path.display()))?;
    let err = out
        .try_clone()
        .context("cannot duplicate the output file")?;
    let exe = std::env::current_exe().context("cannot find the zkw executable")?;
    let mut command = Command::new(exe);
    command
        .args(["server", "start-foreground"])
        .env(LOG_FORMAT_ENV, log_format.name());
    if let Some(path) = config_path {
        command.arg("--config").arg(path);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // Own process group: a Ctrl-C in the terminal that ran `start` does not reach it.
        .process_group(0);
    command.spawn().context("SERVER DID NOT START")
}

/// Waits until `child` wrote its pid into `pid_path` (it listens) and, for a standalone
/// server, answers `srvr` with a Mode line; or until it exits, or the wait runs out. A member
/// of an ensemble does not wait for its quorum: its peers may be started after it.
fn wait_until_started(
    config: &Config,
    pid_path: &Path,
    child: &mut Child,
) -> anyhow::Result<StartOutcome> {
    let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS_MAX);
    let host = probe_host(config);
    let child_pid = Pid::from_raw(i32::try_from(child.id()).context("process id out of range")?);
    while Instant::now() < deadline {
        if let Some(status) = child
            .try_wait()
            .context("cannot watch the server process")?
        {
            return Ok(StartOutcome::Exited(status));
        }
        let listening = read_pid(pid_path).ok().flatten() == Some(child_pid);
        let started = listening
            && (config.is_distributed()
                || four_letter::send(&host, config.client_port, "srvr")
                    .is_ok_and(|reply| four_letter::mode_line(&reply).is_some()));
        if started {
            return Ok(StartOutcome::Started);
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    Ok(StartOutcome::TimedOut)
}

/// The address to reach the client port at: clientPortAddress unless it is a wildcard.
fn probe_host(config: &Config) -> String {
    match config.client_port_address {
        Some(address) if !address.is_unspecified() => address.to_string(),
        _ => "localhost".to_owned(),
    }
}

/// `zkw server stop`: SIGTERM the pid from the pid file, wait, SIGKILL if it lingers.
pub(crate) fn stop(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, _warnings) = load_config(config_path)?;
    print_now("Stopping zkw ... ");
    let pid_path = pid_file(&config);
    let Some(pid) = read_pid(&pid_path)? else {
        println!(
            "no zkw server to stop (could not find file {})",
            pid_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    };
    if is_running(pid) {
        let _ = kill(pid, Signal::SIGTERM);
        if !wait_for_exit(pid, STOP_TERM_WAIT_MS_MAX) {
            let _ = kill(pid, Signal::SIGKILL);
            if !wait_for_exit(pid, STOP_KILL_WAIT_MS_MAX) {
                println!("FAILED TO STOP process {pid}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    // The server removes its own pid file as it exits; one killed left it behind.
    match std::fs::remove_file(&pid_path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", pid_path.display()))
        }
    }
    println!("STOPPED");
    Ok(ExitCode::SUCCESS)
}

fn wait_for_exit(pid: Pid, wait_ms_max: u64) -> bool {
    let deadline = Instant::now() + Duration::from_millis(wait_ms_max);
    while Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
    !is_running(pid)
}

/// `zkw server status`: where the client port is, then the server's `Mode:` line. Asks only
/// when the pid file names a live process (another server on the port is not ours), and
/// exits non-zero when the server does not serve (no quorum), with ZooKeeper's words for it.
pub(crate) fn status(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (config, _warnings) = load_config(config_path)?;
    let shown_address = match config.client_port_address {
        Some(address) => address.to_string(),
        None => "localhost".to_owned(),
    };
    println!(
        "Client port found: {}. Client address: {shown_address}. Client SSL: false.",
        config.client_port
    );
    let pid_path = pid_file(&config);
    let running = read_pid(&pid_path).ok().flatten().is_some_and(is_running);
    let reply = running
        .then(|| four_letter::send(&probe_host(&config), config.client_port, "srvr").ok())
        .flatten();
    let Some(reply) = reply.filter(|reply| !reply.trim().is_empty()) else {
        println!("Error contacting service. It is probably not running.");
        return Ok(ExitCode::FAILURE);
    };
    match four_letter::mode_line(&reply) {
        Some(mode) => {
            println!("{mode}");
            Ok(ExitCode::SUCCESS)
        }
        // "This ZooKeeper instance is not currently serving requests": no quorum yet.
        None => {
            println!("{}", reply.trim());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The pid in `path`, or None when there is no such file.
fn read_pid(path: &Path) -> anyhow::Result<Option<Pid>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|&pid| pid > 0)
        .with_context(|| {
            format!(
                "{}: \"{}\" is not a process id",
                path.display(),
                text.trim()
            )
        })?;
    Ok(Some(Pid::from_raw(pid)))
}

/// Whether `pid` is a live process. A zombie (exited, not yet reaped: possible when no init
/// reaps orphans, as in some containers) counts as gone.
fn is_running(pid: Pid) -> bool {
    match kill(pid, None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

fn is_zombie(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name, which may itself contain spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state == "Z")
}

fn print_now(text: &str) {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
