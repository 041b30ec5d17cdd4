//! `zkw elect NAME PROPOSAL` and `zkw elect NAME --observe`: campaign in, or follow, an
//! election of the `election` recipe (recipes/election/README.md), like `etcdctl elect`.
//! Campaigning joins with an ephemeral sequential participant `<path>/<NAME>/p-` holding the
//! proposal (`yield:` first with `--yield`); both modes then watch `<path>/<NAME>/leader` and
//! print one line per leader change: `leader=<participant> epoch=<epoch> proposal=<proposal>
//! self=<true|false>`. SIGINT/SIGTERM resigns (deletes the participant) and exits 0. A lost
//! connection is waited out while the session resumes on another server; an expired session
//! (its candidacy gone with it) exits 1.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use tokio::sync::mpsc::UnboundedReceiver;

use super::bench::ServerOpts;
use super::lock::{ensure_node, is_state};
use crate::client::{until_reconnected, Client, ClientError, WatchedEvent};
use crate::proto::{keeper_state, Acl, CreateMode, ErrorCode};

/// Session timeout `zkw elect` asks for by default, in milliseconds: how long a candidacy
/// outlives this process if it dies without resigning.
const SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// The leader node under an election (the `election` recipe's protocol).
pub const LEADER_NODE: &str = "leader";
/// A participant's data prefix asking not to lead while anyone else can.
pub const YIELD_PREFIX: &str = "yield:";

#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election's name: one path component under --path.
    pub name: String,
    /// What this participant proposes (e.g. its address); required unless --observe.
    #[arg(required_unless_present = "observe")]
    pub proposal: Option<String>,
    /// Follow the leader without campaigning.
    #[arg(long, conflicts_with_all = ["proposal", "yield_"])]
    pub observe: bool,
    /// Campaign, but lead only when no non-yielding participant is alive.
    #[arg(long = "yield")]
    pub yield_: bool,
    #[command(flatten)]
    pub server: ServerOpts,
    /// The path the `election` recipe is bound to.
    #[arg(long, default_value = "/elections")]
    pub path: String,
    /// Credentials sent first, e.g. `digest:user:password`.
    #[arg(long, value_name = "SCHEME:AUTH")]
    pub auth: Option<String>,
    /// Session timeout to ask for, in milliseconds.
    #[arg(long, default_value_t = SESSION_TIMEOUT_MS_DEFAULT)]
    pub session_timeout_ms: u64,
}

/// The leader node's fields: `leader=<name>\nepoch=<n>\nproposal=<bytes to the end>`.
pub fn parse_leader(data: &[u8]) -> Option<(String, i64, String)> {
    let text = String::from_utf8_lossy(data);
    let (name, rest) = text.strip_prefix("leader=")?.split_once('\n')?;
    let (epoch, rest) = rest.strip_prefix("epoch=")?.split_once('\n')?;
    let proposal = rest.strip_prefix("proposal=")?;
    Some((name.to_owned(), epoch.parse().ok()?, proposal.to_owned()))
}

pub fn run(args: ElectArgs) -> anyhow::Result<ExitCode> {
    if args.name.is_empty() || args.name.contains('/') {
        bail!("election name {:?}: must be one path component", args.name);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(elect(args))
}

async fn elect(args: ElectArgs) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let timeout = Duration::from_millis(args.session_timeout_ms);
    let mut client = Client::connect(&args.server.server, timeout).await?;
    super::recipe::authenticate(&client, args.auth.as_deref()).await?;
    let mut events = client.take_events().context("watch events already taken")?;
    let root = args.path.trim_end_matches('/');
    let election = format!("{root}/{}", args.name);
    super::recipe::require_bound(&client, root, "election", &args.server.server).await?;
    ensure_node(&client, &election, root).await?;
    let me = match &args.proposal {
        Some(proposal) if !args.observe => {
            let mut data = Vec::new();
            if args.yield_ {
                data.extend_from_slice(YIELD_PREFIX.as_bytes());
            }
            data.extend_from_slice(proposal.as_bytes());
            let path = client
                .create(
                    &format!("{election}/p-"),
                    &data,
                    &Acl::open_unsafe(),
                    CreateMode::EphemeralSequential,
                )
                .await
                .with_context(|| format!("joining {election}"))?;
            eprintln!("zkw elect: campaigning as {path}");
            Some(path)
        }
        _ => None,
    };
    let leader = format!("{election}/{LEADER_NODE}");
    let followed = tokio::select! {
        result = follow(&client, &mut events, &leader, me.as_deref()) => result,
        _ = interrupt.recv() => Ok(()),
        _ = terminate.recv() => Ok(()),
    };
    if let Some(me) = &me {
        match client.delete(me, -1).await {
            Ok(()) | Err(ClientError::Server(ErrorCode::NoNode)) => {}
            Err(error) => eprintln!("zkw elect: resigning {me}: {error}"),
        }
    }
    let _ = client.close().await;
    followed.map(|()| ExitCode::SUCCESS)
}

/// Why following stops on its own: the session is over.
const ENDED: &str = "the session ended (expired, or closed by the servers)";

/// Prints each new content of the leader node until the session ends.
async fn follow(
    client: &Client,
    events: &mut UnboundedReceiver<WatchedEvent>,
    leader: &str,
    me: Option<&str>,
) -> anyhow::Result<()> {
    let my_name = me.and_then(|path| path.rsplit('/').next());
    let mut last: Option<Vec<u8>> = None;
    loop {
        match client.get_data(leader, true).await {
            Ok((data, _)) => {
                if last.as_ref() != Some(&data) {
                    print_leader(&data, my_name);
                    last = Some(data);
                }
            }
            Err(ClientError::Server(ErrorCode::NoNode)) => {
                // Not announced yet: wait for its creation, unless it appeared meanwhile.
                match client.exists(leader, true).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(ClientError::ConnectionLoss(_)) => {
                        until_reconnected(events).await.context(ENDED)?;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            // The session resumes on another server (a campaign, ephemeral, lives as long as
            // it does): read again once it has.
            Err(ClientError::ConnectionLoss(_)) => {
                until_reconnected(events).await.context(ENDED)?;
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        loop {
            let event = events.recv().await.context(ENDED)?;
            if event.path == leader {
                break;
            }
            if is_state(&event, keeper_state::DISCONNECTED) {
                eprintln!("zkw elect: connection lost; resuming the session");
                until_reconnected(events).await.context(ENDED)?;
                break;
            }
            if is_state(&event, keeper_state::EXPIRED) {
                bail!(ENDED);
            }
        }
    }
}

fn print_leader(data: &[u8], my_name: Option<&str>) {
    match parse_leader(data) {
        Some((name, epoch, proposal)) => {
            let is_me = my_name.is_some_and(|me| me == name);
            println!("leader={name} epoch={epoch} proposal={proposal} self={is_me}");
        }
        None => eprintln!(
            "zkw elect: unreadable leader node: {:?}",
            String::from_utf8_lossy(data)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_nodes_parse() {
        assert_eq!(
            parse_leader(b"leader=p-0000000001\nepoch=42\nproposal=host:1"),
            Some(("p-0000000001".into(), 42, "host:1".into()))
        );
        assert_eq!(
            parse_leader(b"leader=\nepoch=43\nproposal="),
            Some((String::new(), 43, String::new()))
        );
        assert_eq!(parse_leader(b"garbage"), None);
    }
}
