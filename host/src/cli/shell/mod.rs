//! `zkw cli`: a shell compatible with ZooKeeper 3.8's zkCli.sh, for zkw (or any ZooKeeper).
//!
//! `zkw cli -server host:port[,host:port] [-timeout ms] [-r] [cmd args...]` parses its own
//! arguments like ZooKeeperMain (one-dash options, the first other word starts a command;
//! `--server` and `--timeout` are read too, `-h`/`--help` prints the usage, and `$ZKW_SERVER`
//! replaces the default localhost:2181). With a command it runs it once and exits with zkCli's code (0, 1 on a failed command, 127
//! for an unknown one); without, it is interactive: rustyline line editing, history kept in
//! `~/.zkw_cli_history`, tab completion of commands and znode paths, the prompt
//! `[zk: host:port(CONNECTED) N] `, and watch events printed as they arrive, above the prompt.
//! A pasted block runs line by line, in order (bracketed paste is off, and a paste that arrives
//! marked anyway is split into its lines when it is accepted).
//! This file owns the session (connect, close, history, redo, printwatches, quit) and the two
//! loops; `commands` runs the tree commands, `parse` and `render` are zkCli's text rules, pure.

mod commands;
mod completion;
mod parse;
mod render;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Editor, ExternalPrinter};

use self::completion::{SharedClient, ShellHelper};
use self::parse::{tokenize, CliError, EXIT_COMMAND_NOT_FOUND};
use crate::client::Client;
use crate::proto::keeper_state;

/// zkCli's default server and session timeout.
const SERVER_DEFAULT: &str = "localhost:2181";
const SESSION_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Lines of line-editor history kept in the history file.
const HISTORY_LINES_MAX: usize = 1000;
/// The `history` command shows this many earlier commands (zkCli's 10) and itself.
const HISTORY_SHOWN_MAX: usize = 10;
/// The history file, under $HOME.
const HISTORY_FILE: &str = ".zkw_cli_history";
/// Worker threads for the client's socket tasks (the shell itself is one thread).
const RUNTIME_WORKERS: usize = 2;
/// The event type code of a session (not znode) event.
const EVENT_NONE: i32 = -1;

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct ShellArgs {
    /// -server host:port[,host:port] -timeout ms -r, then an optional command and its words
    /// (zkCli.sh's syntax, one dash).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<String>,
}

/// The command line, as ZooKeeperMain.MyCommandOptions reads it.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    server: String,
    timeout_ms: u64,
    read_only: bool,
    /// `-h`, `-help` or `--help`: print the usage and connect nowhere.
    help: bool,
    command: Vec<String>,
}

/// zkCli's options read with one dash or, as every other zkw verb spells them, two.
fn one_dash(arg: &str) -> &str {
    match arg.strip_prefix("--") {
        Some(name) if !name.is_empty() => &arg[1..],
        _ => arg,
    }
}

/// The usage `zkw cli -h` prints: the options, then every command.
fn help() -> String {
    format!(
        "Usage: zkw cli [-server host:port[,host:port...]] [-timeout ms] [-r] [cmd args...]\n\
         Options take one dash (zkCli.sh) or two; the server defaults to ${} when set, else \
         {SERVER_DEFAULT}.\n\n{}",
        super::bench::SERVER_ENV,
        commands::usage()
    )
}

/// Parses the words after `zkw cli`; `server_default` is `$ZKW_SERVER` or zkCli's default.
fn parse_args(args: &[String], server_default: &str) -> Result<Options, String> {
    let mut options = Options {
        server: server_default.to_owned(),
        timeout_ms: SESSION_TIMEOUT_MS_DEFAULT,
        read_only: false,
        help: false,
        command: Vec::new(),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| format!("Error: no argument found for option {arg}"))
        };
        match one_dash(arg) {
            "-h" | "-help" => options.help = true,
            "-server" => options.server = value()?,
            "-timeout" => {
                let text = value()?;
                options.timeout_ms = text
                    .parse()
                    .map_err(|_| format!("Error: -timeout takes milliseconds, not {text:?}"))?;
            }
            "-r" => options.read_only = true,
            // zkCli's TLS properties file and its connect latch: nothing to do here.
            "-client-configuration" => drop(value()?),
            _ if arg.starts_with('-') => {}
            _ => {
                options.command.push(arg.clone());
                options.command.extend(rest.by_ref().cloned());
            }
        }
    }
    Ok(options)
}

/// Runs `zkw cli`.
pub fn run(args: ShellArgs) -> anyhow::Result<ExitCode> {
    let server_default =
        std::env::var(super::bench::SERVER_ENV).unwrap_or_else(|_| SERVER_DEFAULT.to_owned());
    let options = match parse_args(&args.args, &server_default) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(parse::EXIT_FAILED));
        }
    };
    if options.help {
        print!("{}", help());
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .enable_all()
        .build()?;
    let mut shell = Shell::new(runtime, Duration::from_millis(options.timeout_ms));
    println!("Connecting to {}", options.server);
    let code = if options.command.is_empty() {
        interactive(&mut shell, &options.server)
    } else {
        one_shot(&mut shell, &options.server, options.command)
    };
    shell.close_quietly();
    Ok(ExitCode::from(code))
}

fn one_shot(shell: &mut Shell, server: &str, command: Vec<String>) -> u8 {
    if let Err(message) = shell.connect(server) {
        eprintln!("{message}");
        return parse::EXIT_FAILED;
    }
    shell.process(command);
    shell.exit_code
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(HISTORY_FILE))
}

fn interactive(shell: &mut Shell, server: &str) -> u8 {
    println!("Welcome to zkw!");
    // Bracketed paste off: a terminal then sends a pasted block as typed keys, so each line
    // runs at its own Enter, as in zkCli.sh (with it on, the block would wait in the line for
    // one more Enter). Markers that arrive anyway are split into lines below.
    let editor = Config::builder()
        .max_history_size(HISTORY_LINES_MAX)
        .map(|builder| {
            builder
                .auto_add_history(false)
                .bracketed_paste(false)
                .build()
        })
        .and_then(Editor::<ShellHelper, DefaultHistory>::with_config);
    let mut editor = match editor {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("cannot start the line editor: {error}");
            return parse::EXIT_FAILED;
        }
    };
    editor.set_helper(Some(ShellHelper {
        client: Arc::clone(&shell.client),
        runtime: shell.runtime.handle().clone(),
    }));
    if let Ok(printer) = editor.create_external_printer() {
        *lock(&shell.printer) = Some(Box::new(printer));
    }
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is the normal first run.
        let _ = editor.load_history(path);
    }
    if let Err(message) = shell.connect(server) {
        eprintln!("{message}");
    }
    loop {
        match editor.readline(&shell.prompt()) {
            // A bracketed paste comes back as one text with its line breaks: each line is a
            // command of its own, run in order, as zkCli.sh runs a pasted block.
            Ok(text) => {
                let mut flow = Flow::Continue;
                for line in text.lines() {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line);
                        if let Some(path) = &history {
                            let _ = editor.save_history(path);
                        }
                    }
                    flow = shell.execute_line(line);
                    if flow == Flow::Quit {
                        break;
                    }
                }
                if flow == Flow::Quit {
                    break;
                }
            }
            // Ctrl-C drops the line being typed, like a shell.
            Err(ReadlineError::Interrupted) => {}
            Err(ReadlineError::Eof) => break,
            Err(error) => {
                eprintln!("{error}");
                break;
            }
        }
    }
    *lock(&shell.printer) = None;
    shell.exit_code
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

type Printer = Arc<Mutex<Option<Box<dyn ExternalPrinter + Send>>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Prints an event line: above the prompt while the line editor runs, else plainly.
fn print_event(printer: &Printer, text: String) {
    let mut guard = lock(printer);
    match guard.as_mut() {
        Some(printer) => {
            if printer.print(text.clone()).is_err() {
                println!("{text}");
            }
        }
        None => println!("{text}"),
    }
}

struct Shell {
    runtime: tokio::runtime::Runtime,
    client: SharedClient,
    events: Option<tokio::task::JoinHandle<()>>,
    host: String,
    timeout: Duration,
    print_watches: Arc<AtomicBool>,
    printer: Printer,
    history: HashMap<usize, String>,
    command_count: usize,
    exit_code: u8,
    /// Set by `close`, so the prompt says CLOSED rather than NOT_CONNECTED.
    closed: bool,
}

impl Shell {
    fn new(runtime: tokio::runtime::Runtime, timeout: Duration) -> Shell {
        Shell {
            runtime,
            client: Arc::new(Mutex::new(None)),
            events: None,
            host: String::new(),
            timeout,
            print_watches: Arc::new(AtomicBool::new(true)),
            printer: Arc::new(Mutex::new(None)),
            history: HashMap::new(),
            command_count: 0,
            exit_code: 0,
            closed: false,
        }
    }

    fn current(&self) -> Option<Arc<Client>> {
        lock(&self.client).clone()
    }

    /// Whether there is a live session (connected, or resuming on another server: zkCli's
    /// `isAlive`).
    fn connected(&self) -> bool {
        self.current().is_some_and(|client| !client.session_over())
    }

    fn state(&self) -> &'static str {
        match self.current() {
            Some(client) if client.closed_reason().is_none() => "CONNECTED",
            // Between connections: the session resumes on another server (as zkCli shows it).
            Some(client) if !client.session_over() => "CONNECTING",
            Some(_) => "CLOSED",
            None if self.closed => "CLOSED",
            None => "NOT_CONNECTED",
        }
    }

    fn prompt(&self) -> String {
        format!(
            "[zk: {}({}) {}] ",
            self.host,
            self.state(),
            self.command_count
        )
    }

    fn print_watcher(&self, state: i32) {
        if self.print_watches.load(Ordering::Relaxed) {
            println!("{}", render::watcher_message(EVENT_NONE, state, ""));
        }
    }

    /// Opens a session to `host` (closing the current one first) and starts printing its
    /// watch events.
    fn connect(&mut self, host: &str) -> Result<(), String> {
        self.close_quietly();
        host.clone_into(&mut self.host);
        let mut client = self
            .runtime
            .block_on(Client::connect(host, self.timeout))
            .map_err(|error| error.to_string())?;
        self.closed = false;
        if let Some(mut events) = client.take_events() {
            let printer = Arc::clone(&self.printer);
            let print_watches = Arc::clone(&self.print_watches);
            self.events = Some(self.runtime.spawn(async move {
                while let Some(event) = events.recv().await {
                    if print_watches.load(Ordering::Relaxed) {
                        let text =
                            render::watcher_message(event.event_type, event.state, &event.path);
                        print_event(&printer, text);
                    }
                }
                // The connection is gone without a close: say so, as zkCli's watcher does.
                if print_watches.load(Ordering::Relaxed) {
                    let text = render::watcher_message(EVENT_NONE, keeper_state::DISCONNECTED, "");
                    print_event(&printer, text);
                }
            }));
        }
        *lock(&self.client) = Some(Arc::new(client));
        self.print_watcher(keeper_state::SYNC_CONNECTED);
        Ok(())
    }

    /// Ends the session (if any) without printing anything.
    fn close_quietly(&mut self) -> bool {
        if let Some(task) = self.events.take() {
            task.abort();
        }
        let Some(client) = lock(&self.client).take() else {
            return false;
        };
        let alive = !client.session_over();
        if alive {
            // The completer may still hold a clone: close the session, not just this handle.
            let _ = self.runtime.block_on(client.close());
        }
        alive
    }

    fn execute_line(&mut self, line: &str) -> Flow {
        let tokens = tokenize(line);
        if tokens.is_empty() {
            return Flow::Continue;
        }
        self.history.insert(self.command_count, line.to_owned());
        let flow = self.process(tokens);
        self.command_count += 1;
        flow
    }

    /// Runs one command; a failure is printed to stderr and sets the exit code.
    fn process(&mut self, tokens: Vec<String>) -> Flow {
        match self.process_command(tokens) {
            Ok(flow) => {
                if flow == Flow::Continue {
                    self.exit_code = 0;
                }
                flow
            }
            Err(error) => {
                eprintln!("{}", error.message);
                self.exit_code = error.exit_code;
                Flow::Continue
            }
        }
    }

    fn process_command(&mut self, tokens: Vec<String>) -> Result<Flow, CliError> {
        let name = tokens.first().cloned().unwrap_or_default();
        if name == "help" {
            eprint!("{}", commands::usage());
            return Ok(Flow::Continue);
        }
        if !commands::is_command(&name) {
            eprint!("{}", commands::usage());
            return Err(CliError {
                message: format!("Command not found: Command not found {name}"),
                exit_code: EXIT_COMMAND_NOT_FOUND,
            });
        }
        match name.as_str() {
            "quit" => {
                self.close_quietly();
                return Ok(Flow::Quit);
            }
            "redo" if tokens.len() >= 2 => return self.redo(&tokens[1]),
            "history" => self.print_history(),
            "printwatches" => match tokens.get(1) {
                None => println!(
                    "printwatches is {}",
                    if self.print_watches.load(Ordering::Relaxed) {
                        "on"
                    } else {
                        "off"
                    }
                ),
                Some(value) => self.print_watches.store(value == "on", Ordering::Relaxed),
            },
            "connect" => {
                let host = tokens.get(1).cloned().unwrap_or_else(|| self.host.clone());
                self.connect(&host).map_err(CliError::new)?;
            }
            _ => {}
        }
        // As in zkCli, everything below needs a live session (even after history & co.).
        if !self.connected() {
            println!("Not connected");
            return Ok(Flow::Continue);
        }
        if name == "close" {
            if self.close_quietly() {
                self.closed = true;
                self.print_watcher(keeper_state::CLOSED);
            }
            return Ok(Flow::Continue);
        }
        if let Some(client) = self.current() {
            self.runtime.block_on(commands::run(&client, &tokens))?;
        }
        Ok(Flow::Continue)
    }

    fn redo(&mut self, index: &str) -> Result<Flow, CliError> {
        let index: usize = index
            .parse()
            .map_err(|_| CliError::new("Command index out of range"))?;
        if index >= self.command_count {
            return Err(CliError::new("Command index out of range"));
        }
        let line = self.history.get(&index).cloned().unwrap_or_default();
        let tokens = tokenize(&line);
        if tokens.first().map(String::as_str) == Some("redo") {
            return Err(CliError::new("No redoing redos"));
        }
        self.history.insert(self.command_count, line);
        self.process_command(tokens)
    }

    fn print_history(&self) {
        let first = self.command_count.saturating_sub(HISTORY_SHOWN_MAX);
        for index in first..=self.command_count {
            let line = self.history.get(&index).map_or("null", String::as_str);
            println!("{index} - {line}");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_parse_like_zookeeper_main() {
        let options = parse_args(
            &args(&["-server", "h:1", "-timeout", "5000", "ls", "-R", "/"]),
            SERVER_DEFAULT,
        )
        .unwrap();
        assert_eq!(
            options,
            Options {
                server: "h:1".into(),
                timeout_ms: 5000,
                read_only: false,
                help: false,
                command: args(&["ls", "-R", "/"]),
            }
        );
        let options = parse_args(&args(&["-r", "-waitforconnection"]), "env:2").unwrap();
        assert!(options.read_only);
        assert_eq!(options.server, "env:2");
        assert!(options.command.is_empty());
        assert_eq!(
            parse_args(&args(&["-server"]), SERVER_DEFAULT).unwrap_err(),
            "Error: no argument found for option -server"
        );
        // Two dashes read as one; a command's own words are left alone.
        let options = parse_args(&args(&["--server", "h:3", "ls", "--server"]), "x").unwrap();
        assert_eq!(options.server, "h:3");
        assert_eq!(options.command, args(&["ls", "--server"]));
        for word in ["-h", "--help", "-help"] {
            assert!(parse_args(&args(&[word]), SERVER_DEFAULT).unwrap().help);
        }
    }
}
