//! `cli`: the clap command tree of the `zkw` binary; the only module that imports clap.
//!
//! Owns argument parsing and the operator-facing commands: `zkw server start | start-foreground |
//! stop | restart | status | version` (mirroring ZooKeeper's zkServer.sh, messages included,
//! with "zookeeper" spelled "zkw"), `zkw version`, `zkw bench` (the load generator, in
//! `bench`) and `zkw cli` (the zkCli.sh-compatible shell, in `shell`). It must not know how the server works inside: it loads a
//! [`crate::config::Config`], and `start-foreground` hands it to [`crate::server::serve`] with
//! a shutdown future tied to SIGTERM / SIGINT. Entry point: [`main`]. `anyhow` is allowed
//! here (house rule 6); everything below returns typed errors.

mod balance;
mod bench;
mod config;
mod daemon;
mod discover;
mod elect;
mod four_letter;
mod lock;
mod recipe;
mod shell;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use daemon::{EXIT_ERROR_PREFIX, LOG_FILTER_DEFAULT};

/// The version printed by `zkw version` and `zkw server version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Parser)]
#[command(name = "zkw", version = VERSION, about = "zkw: a ZooKeeper-compatible coordination service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run and manage a zkw server, like ZooKeeper's zkServer.sh.
    Server {
        #[command(subcommand)]
        action: ServerAction,
        /// Config file: zoo.cfg syntax, or zkw.toml when it ends in `.toml`. Without it the
        /// embedded default is used: standalone, dataDir ./data, clientPort 2181, tickTime 2000
        /// (./conf/zoo.cfg is NOT read implicitly).
        #[arg(long, global = true, value_name = "PATH")]
        config: Option<PathBuf>,
        /// Log format of the server: `human` (one line per event, the default) or `json` (one
        /// JSON object per line, fields included, for log shippers).
        #[arg(long, global = true, value_enum, env = daemon::LOG_FORMAT_ENV, default_value_t)]
        log_format: daemon::LogFormat,
    },
    /// Print the zkw version.
    Version,
    /// Load-generate against ZooKeeper-protocol servers; one JSON line of results on stdout.
    Bench(bench::BenchArgs),
    /// Install, list, remove, call and follow WebAssembly recipes.
    Recipe(recipe::RecipeArgs),
    /// Push, read, list and roll back configs kept by the config-push recipe.
    Config(config::ConfigArgs),
    /// Print a service's endpoints, kept by the discovery recipe.
    Discover(discover::DiscoverArgs),
    /// Show a group's members and the items the balancer recipe assigned them.
    Balance(balance::BalanceArgs),
    /// Run a command while holding a lock of the `lock` recipe.
    Lock(lock::LockArgs),
    /// Campaign in (or follow) an election of the `election` recipe.
    Elect(elect::ElectArgs),
    /// A zkCli.sh-compatible shell: `zkw cli -server host:port [cmd args...]`.
    Cli(shell::ShellArgs),
}

#[derive(Debug, Clone, Copy, Subcommand)]
enum ServerAction {
    /// Start the server in the background; its output goes to <dataDir>/zkw.out
    /// ($ZOO_LOG_DIR/zkw.out when set) and its pid to <dataDir>/zkw_server.pid.
    Start,
    /// Run the server in this process until SIGTERM or SIGINT; logs to stderr (filter: $ZKW_LOG,
    /// default info).
    StartForeground,
    /// Stop the background server named in the pid file (SIGTERM, then SIGKILL).
    Stop,
    /// Stop, then start.
    Restart,
    /// Ask the running server for its mode with the `srvr` four-letter word.
    Status,
    /// Print the zkw version.
    Version,
}

/// zkCli's one-dash spelling of the server option, accepted by every verb beside `--server`.
const SERVER_FLAG_ONE_DASH: &str = "-server";
/// The verb that reads its own words, zkCli's way (both spellings included).
const SHELL_VERB: &str = "cli";

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse_from(server_flag_long(std::env::args_os().collect()));
    match cli.command {
        Command::Version => print_version(),
        Command::Server {
            action,
            config,
            log_format,
        } => run_server_action(action, config, log_format),
        Command::Bench(args) => bench::run(args),
        Command::Recipe(args) => recipe::run(args),
        Command::Config(args) => config::run(args),
        Command::Discover(args) => discover::run(args),
        Command::Balance(args) => balance::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Elect(args) => elect::run(args),
        Command::Cli(args) => shell::run(args),
    }
}

/// `-server` (zkCli's habit) rewritten as `--server` before clap reads the line, for every
/// verb but `zkw cli` (which reads its own words); words after a `--` belong to a command
/// (`zkw lock NAME -- CMD ...`) and stay as they are.
fn server_flag_long(args: Vec<OsString>) -> Vec<OsString> {
    if args.get(1).is_some_and(|verb| verb == SHELL_VERB) {
        return args;
    }
    let mut command_words = false;
    args.into_iter()
        .map(|arg| {
            command_words |= arg == "--";
            if !command_words && arg == SERVER_FLAG_ONE_DASH {
                OsString::from("--server")
            } else {
                arg
            }
        })
        .collect()
}

/// An error and its causes on one line, `context: cause: root cause`, as anyhow's `{:#}` prints
/// them, except that a cause is not printed again when its parent's text already ends with it
/// (a typed error whose message embeds its own `#[source]`, e.g. `ConfigError::Read`).
pub fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    let mut parent = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if parent.is_empty() || !parent.ends_with(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        parent = text;
    }
    message
}

/// The version, and the built-in recipes (a binary built without them says so).
fn print_version() -> anyhow::Result<ExitCode> {
    println!("zkw version {VERSION}");
    match crate::wasm::embedded::missing() {
        Some(missing) => println!("built-in recipes: none: {missing}"),
        None => println!(
            "built-in recipes: {}",
            crate::wasm::embedded::names().join(", ")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_server_action(
    action: ServerAction,
    config: Option<PathBuf>,
    log_format: daemon::LogFormat,
) -> anyhow::Result<ExitCode> {
    match action {
        ServerAction::Version => print_version(),
        ServerAction::StartForeground => daemon::start_foreground(config.as_deref(), log_format),
        ServerAction::Start => daemon::start(config.as_deref(), log_format),
        ServerAction::Stop => daemon::stop(config.as_deref()),
        ServerAction::Restart => {
            let stopped = daemon::stop(config.as_deref())?;
            if stopped != ExitCode::SUCCESS {
                return Ok(stopped);
            }
            daemon::start(config.as_deref(), log_format)
        }
        ServerAction::Status => daemon::status(config.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn one_dash_server_is_read_as_the_long_option_outside_the_shell_and_commands() {
        assert_eq!(
            server_flag_long(words(&["zkw", "discover", "s", "-server", "h:1"])),
            words(&["zkw", "discover", "s", "--server", "h:1"])
        );
        let lock = words(&["zkw", "lock", "l", "-server", "h:1", "--", "cmd", "-server"]);
        assert_eq!(
            server_flag_long(lock),
            words(&["zkw", "lock", "l", "--server", "h:1", "--", "cmd", "-server"])
        );
        let shell = words(&["zkw", "cli", "-server", "h:1"]);
        assert_eq!(server_flag_long(shell.clone()), shell);
    }

    #[test]
    fn a_cause_its_parent_already_prints_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let typed = crate::config::ConfigError::Read {
            file: "zoo.cfg".to_owned(),
            source: io,
        };
        let error = anyhow::Error::new(typed).context("loading");
        assert_eq!(error_message(&error), "loading: zoo.cfg: cannot read: gone");
        let plain = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(error_message(&plain), "top: middle: root");
    }
}
