//! `zkw balance GROUP [--show]`: prints a balancer group (recipes/balancer/README.md) as the
//! recipe left it. Without `--show`, a summary: each live member with its weight and how many
//! items it holds, then the totals; `--show` adds each member's items and lists the items no
//! member holds (none unless every weight is 0). A group that does not exist, or a root no
//! recipe is bound to, is an error (exit 1).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use super::bench::ServerOpts;
use crate::client::{Client, ClientError};
use crate::proto::ErrorCode;

/// Where `zkw balance` expects the balancer recipe bound, unless `--root` says otherwise.
const ROOT_DEFAULT: &str = "/balancer";

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// The group to show.
    group: String,
    /// Also print each member's items and the unassigned items (without it: the members'
    /// weights and item counts, and the totals).
    #[arg(long)]
    show: bool,
    /// The path the balancer recipe is bound to.
    #[arg(long, default_value = ROOT_DEFAULT)]
    root: String,
    #[command(flatten)]
    server: ServerOpts,
    /// Credentials sent first, e.g. `digest:user:password`.
    #[arg(long, value_name = "SCHEME:AUTH")]
    auth: Option<String>,
}

pub fn run(args: BalanceArgs) -> anyhow::Result<ExitCode> {
    if args.group.is_empty() || args.group.contains('/') {
        bail!("group name {:?}: must be one path component", args.group);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let client = super::config::connect(&args.server.server, args.auth.as_deref()).await?;
        let root = args.root.trim_end_matches('/');
        super::recipe::require_bound(&client, root, "balancer", &args.server.server).await?;
        let base = format!("{root}/{}", args.group);
        if client.exists(&base, false).await?.is_none() {
            return Err(super::recipe::not_found("group", &args.group, root));
        }
        show(&client, &base, args.show).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Sorted children of `path`; none when it is absent.
async fn children(client: &Client, path: &str) -> anyhow::Result<Vec<String>> {
    match client.get_children(path, false).await {
        Ok(mut names) => {
            names.sort();
            Ok(names)
        }
        Err(ClientError::Server(ErrorCode::NoNode)) => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

/// The data of `path` as text, or `None` when it is absent.
async fn text(client: &Client, path: &str) -> anyhow::Result<Option<String>> {
    match client.get_data(path, false).await {
        Ok((data, _)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
        Err(ClientError::Server(ErrorCode::NoNode)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Prints the group at `base`: with `items_listed`, each member's items and the unassigned ones too.
async fn show(client: &Client, base: &str, items_listed: bool) -> anyhow::Result<()> {
    let members = children(client, &format!("{base}/members")).await?;
    let items = children(client, &format!("{base}/items")).await?;
    let mut held = BTreeSet::new();
    if items_listed {
        println!("MEMBER\tWEIGHT\tCOUNT\tITEMS");
    } else {
        println!("MEMBER\tWEIGHT\tCOUNT");
    }
    for member in &members {
        let weight = text(client, &format!("{base}/members/{member}"))
            .await?
            .unwrap_or_default();
        let weight = if weight.trim().is_empty() {
            "1".to_owned()
        } else {
            weight.trim().to_owned()
        };
        let assigned = text(client, &format!("{base}/assignments/{member}"))
            .await?
            .unwrap_or_default();
        let assigned: Vec<&str> = assigned.lines().filter(|l| !l.is_empty()).collect();
        held.extend(assigned.iter().map(|item| (*item).to_owned()));
        if items_listed {
            println!(
                "{member}\t{weight}\t{}\t{}",
                assigned.len(),
                assigned.join(",")
            );
        } else {
            println!("{member}\t{weight}\t{}", assigned.len());
        }
    }
    let unassigned: Vec<&String> = items.iter().filter(|item| !held.contains(*item)).collect();
    println!(
        "items: {}, members: {}, unassigned: {}",
        items.len(),
        members.len(),
        unassigned.len()
    );
    if items_listed {
        for item in unassigned {
            println!("unassigned\t{item}");
        }
    }
    Ok(())
}
