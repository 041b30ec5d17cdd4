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

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use daemon::EXIT_ERROR_PREFIX;

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

/// Parses the command line and runs the command.
pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
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

fn print_version() -> anyhow::Result<ExitCode> {
    println!("zkw version {VERSION}");
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
