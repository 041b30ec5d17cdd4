//! `zkw lock NAME -- CMD ARGS...`: runs a command while holding a lock of the `lock` recipe
//! (recipes/lock/README.md), like `etcdctl lock`. It queues an ephemeral sequential request
//! under `<path>/<NAME>`, waits for the server to write the grant onto it (a data watch on its
//! own node: no herd), runs CMD with the fencing token in `ZKW_FENCING_TOKEN` (and the request
//! path in `ZKW_LOCK_NODE`), exits with CMD's status, and releases by deleting the request when
//! CMD ends or when SIGINT/SIGTERM arrives (forwarded to CMD first). The request is ephemeral,
//! so a crash of this process releases the lock when its session expires. A lost connection
//! (its server died) does not: the session resumes on another server of `--server` and the
//! lock stays held; it is said on stderr, as is an expiry that ends the hold.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc::UnboundedReceiver;

use super::bench::ServerOpts;
use crate::client::{until_reconnected, Client, ClientError, WatchedEvent};
use crate::proto::{keeper_state, Acl, CreateMode, ErrorCode, EventType};

/// Session timeout `zkw lock` asks for by default, in milliseconds: how long the lock outlives
/// this process if it dies without releasing.
const SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// What a granted request's data starts with (the `lock` recipe's protocol).
pub const GRANTED_PREFIX: &str = "granted ";
/// The exit status after an interrupt before the lock was granted (128 + SIGINT).
const INTERRUPTED_EXIT: u8 = 130;
/// ZooKeeper's NodeDeleted watch event type.
pub const EVENT_NODE_DELETED: i32 = 2;

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock's name: one path component under --path.
    pub name: String,
    #[command(flatten)]
    pub server: ServerOpts,
    /// The path the `lock` recipe is bound to.
    #[arg(long, default_value = "/locks")]
    pub path: String,
    /// Credentials sent first, e.g. `digest:user:password`.
    #[arg(long, value_name = "SCHEME:AUTH")]
    pub auth: Option<String>,
    /// Take the lock shared (a reader) instead of exclusive.
    #[arg(long)]
    pub read: bool,
    /// Give up (exit 1) when not granted within this many seconds.
    #[arg(long, value_name = "SECS")]
    pub wait: Option<f64>,
    /// Session timeout to ask for, in milliseconds.
    #[arg(long, default_value_t = SESSION_TIMEOUT_MS_DEFAULT)]
    pub session_timeout_ms: u64,
    /// The command to run while holding the lock, and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The fencing token in a granted request's data (`granted <token>[\n...]`).
pub fn grant_token(data: &[u8]) -> Option<i64> {
    let rest = data.strip_prefix(GRANTED_PREFIX.as_bytes())?;
    let line = rest.split(|&b| b == b'\n').next()?;
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

pub fn run(args: LockArgs) -> anyhow::Result<ExitCode> {
    if args.name.is_empty() || args.name.contains('/') {
        bail!("lock name {:?}: must be one path component", args.name);
    }
    if let Some(secs) = args.wait {
        anyhow::ensure!(secs > 0.0 && secs.is_finite(), "--wait must be positive");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(hold(args))
}

/// SIGINT and SIGTERM as one stream.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> nix::sys::signal::Signal {
        tokio::select! {
            _ = self.interrupt.recv() => nix::sys::signal::Signal::SIGINT,
            _ = self.terminate.recv() => nix::sys::signal::Signal::SIGTERM,
        }
    }
}

async fn hold(args: LockArgs) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::new()?;
    let timeout = Duration::from_millis(args.session_timeout_ms);
    let mut client = Client::connect(&args.server.server, timeout).await?;
    super::recipe::authenticate(&client, args.auth.as_deref()).await?;
    let mut events = client.take_events().context("watch events already taken")?;
    let root = args.path.trim_end_matches('/');
    let lock = format!("{root}/{}", args.name);
    super::recipe::require_bound(&client, root, "lock", &args.server.server).await?;
    ensure_node(&client, &lock, root).await?;
    let prefix = if args.read { "read-" } else { "write-" };
    let owner = format!("zkw lock pid {}", std::process::id());
    let request = client
        .create(
            &format!("{lock}/{prefix}"),
            owner.as_bytes(),
            &Acl::open_unsafe(),
            CreateMode::EphemeralSequential,
        )
        .await
        .with_context(|| format!("queueing on {lock}"))?;
    let wait = async {
        match args.wait {
            Some(secs) => tokio::time::timeout(
                Duration::from_secs_f64(secs),
                wait_grant(&client, &mut events, &request),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("not granted within {secs}s"))),
            None => wait_grant(&client, &mut events, &request).await,
        }
    };
    let token = tokio::select! {
        token = wait => token,
        _ = signals.recv() => {
            release(client, &request).await;
            return Ok(ExitCode::from(INTERRUPTED_EXIT));
        }
    };
    let token = match token {
        Ok(token) => token,
        Err(error) => {
            release(client, &request).await;
            return Err(error);
        }
    };
    let held = Held {
        client: &client,
        token,
        request: &request,
    };
    let status = run_command(&args.command, held, &mut signals, &mut events).await;
    release(client, &request).await;
    status
}

/// Waits until `request` carries a grant; its fencing token. A lost connection is waited
/// out: the session resumes on another server (the request, ephemeral, lives as long as the
/// session), and the request is read again.
async fn wait_grant(
    client: &Client,
    events: &mut UnboundedReceiver<WatchedEvent>,
    request: &str,
) -> anyhow::Result<i64> {
    const ENDED: &str = "the session ended while waiting for the lock";
    loop {
        // The watch is set by the same read that finds no grant, so the grant cannot slip by.
        let (data, _) = match client.get_data(request, true).await {
            Ok(found) => found,
            Err(ClientError::Server(ErrorCode::NoNode)) => {
                bail!("{request} was deleted before it was granted")
            }
            Err(ClientError::ConnectionLoss(_)) => {
                until_reconnected(events).await.context(ENDED)?;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        if let Some(token) = grant_token(&data) {
            return Ok(token);
        }
        loop {
            let event = events.recv().await.context(ENDED)?;
            if event.path == request {
                break;
            }
            if is_state(&event, keeper_state::DISCONNECTED) {
                until_reconnected(events).await.context(ENDED)?;
                break;
            }
            if is_state(&event, keeper_state::EXPIRED) {
                bail!(ENDED);
            }
        }
    }
}

/// Whether `event` is the session state change to `state`.
pub fn is_state(event: &WatchedEvent, state: i32) -> bool {
    event.event_type == EventType::None as i32 && event.state == state
}

/// A granted lock: the session holding it, its fencing token and request node.
struct Held<'a> {
    client: &'a Client,
    token: i64,
    request: &'a str,
}

/// Runs the command with the token; its exit status (128 + signal when it was killed).
async fn run_command(
    command: &[String],
    held: Held<'_>,
    signals: &mut Signals,
    events: &mut UnboundedReceiver<WatchedEvent>,
) -> anyhow::Result<ExitCode> {
    let Held {
        client,
        token,
        request,
    } = held;
    let (program, rest) = command.split_first().context("no command given")?;
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .env("ZKW_FENCING_TOKEN", token.to_string())
        .env("ZKW_LOCK_NODE", request)
        .spawn()
        .with_context(|| format!("running {program}"))?;
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(nix::unistd::Pid::from_raw);
    let mut watching = true;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.context("waiting for the command")?,
            sig = signals.recv() => {
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(pid, sig);
                }
            }
            event = events.recv(), if watching => match event {
                Some(event) if event.path == request && event.event_type == EVENT_NODE_DELETED => {
                    eprintln!("zkw lock: {request} was deleted (lease expired?): the lock is no longer held");
                }
                Some(event) if is_state(&event, keeper_state::DISCONNECTED) => {
                    eprintln!("zkw lock: connection lost; resuming the session (the lock stays held while it lives)");
                }
                Some(event) if is_state(&event, keeper_state::SYNC_CONNECTED) => {
                    eprintln!("zkw lock: session resumed on {}", client.server());
                }
                Some(event) if is_state(&event, keeper_state::EXPIRED) => {
                    eprintln!("zkw lock: the session expired: the lock is no longer held");
                }
                Some(_) => {}
                None => watching = false,
            },
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Deletes the request and ends the session (best effort: the request is ephemeral anyway).
async fn release(client: Client, request: &str) {
    match client.delete(request, -1).await {
        Ok(()) | Err(ClientError::Server(ErrorCode::NoNode)) => {}
        Err(error) => eprintln!("zkw lock: releasing {request}: {error}"),
    }
    let _ = client.close().await;
}

/// Creates `path` (a child of `root`) if missing, and `root` first when it is missing too.
pub async fn ensure_node(client: &Client, path: &str, root: &str) -> anyhow::Result<()> {
    match client
        .create(path, b"", &Acl::open_unsafe(), CreateMode::Persistent)
        .await
    {
        Ok(_) | Err(ClientError::Server(ErrorCode::NodeExists)) => Ok(()),
        // The first user of a fresh root creates it (the recipe may be bound before).
        Err(ClientError::Server(ErrorCode::NoNode)) if root.len() > 1 => {
            Box::pin(ensure_node(client, root, "/")).await?;
            Box::pin(ensure_node(client, path, root)).await
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_parse() {
        assert_eq!(grant_token(b"granted 4294967301"), Some(4_294_967_301));
        assert_eq!(grant_token(b"granted 7\nzkw lock pid 1"), Some(7));
        assert_eq!(grant_token(b"zkw lock pid 1"), None);
        assert_eq!(grant_token(b"granted x"), None);
    }
}
