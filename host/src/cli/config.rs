//! `zkw config push | get | history | rollback`: the config-push recipe's znode protocol
//! (recipes/config-push/README.md) from a shell. Pushing is one create or setData of
//! `<root>/<app>`; the recipe validates, versions and publishes it in that txn, and a refusal's
//! reason is read back from the recipe's log node. Rollback is one write of `<root>/<app>/rollback`.
//! Also home of the small helpers the other recipe subcommands share (`connect`, `ensure_path`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use super::bench::ServerOpts;
use crate::client::{Client, ClientError};
use crate::proto::{Acl, CreateMode, ErrorCode};
use crate::wasm::registry::LOG_NODE;
use crate::wasm::RECIPES_PATH;

/// Session timeout of the CLI's session, in milliseconds.
const SESSION_TIMEOUT_MS: u64 = 10_000;
/// Where `zkw config` expects the config-push recipe bound, unless `--root` says otherwise.
const ROOT_DEFAULT: &str = "/config";
/// The recipe's name, whose log holds a refusal's reason, unless `--recipe` says otherwise.
const RECIPE_DEFAULT: &str = "config-push";

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: ConfigAction,
    #[command(flatten)]
    server: ServerOpts,
    /// Credentials sent first, e.g. `digest:user:password`.
    #[arg(long, global = true, value_name = "SCHEME:AUTH")]
    auth: Option<String>,
    /// The path the config-push recipe is bound to.
    #[arg(long, global = true, default_value = ROOT_DEFAULT)]
    root: String,
    /// The name the config-push recipe was installed under (to read a refusal's reason).
    #[arg(long, global = true, default_value = RECIPE_DEFAULT)]
    recipe: String,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate FILE (JSON if it starts with `{`, else TOML) and publish it as APP's live config.
    Push { app: String, file: PathBuf },
    /// Print APP's live config.
    Get { app: String },
    /// List APP's kept versions, oldest first; the newest is the live one.
    History { app: String },
    /// Publish a kept version again (VERSION: `7`, `v7` or `v-0000000007`).
    Rollback { app: String, version: String },
}

pub fn run(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let client = connect(&args.server.server, args.auth.as_deref()).await?;
        let root = args.root.trim_end_matches('/');
        super::recipe::require_bound(&client, root, RECIPE_DEFAULT, &args.server.server).await?;
        match &args.action {
            ConfigAction::Push { app, file } => push(&client, &args, root, app, file).await,
            ConfigAction::Get { app } => get(&client, root, app).await,
            ConfigAction::History { app } => history(&client, root, app).await,
            ConfigAction::Rollback { app, version } => {
                rollback(&client, &args, root, app, version).await
            }
        }
    })
}

/// A session on `servers`, authenticated with `auth` (`SCHEME:AUTH`) when given.
pub(super) async fn connect(servers: &str, auth: Option<&str>) -> anyhow::Result<Client> {
    let timeout = Duration::from_millis(SESSION_TIMEOUT_MS);
    let client = Client::connect(servers, timeout).await?;
    super::recipe::authenticate(&client, auth).await?;
    Ok(client)
}

/// Creates `path` and its missing parents (empty, persistent, open ACL).
pub(super) async fn ensure_path(client: &Client, path: &str) -> anyhow::Result<()> {
    let mut prefix = String::new();
    for part in path.split('/').filter(|part| !part.is_empty()) {
        prefix = format!("{prefix}/{part}");
        match client
            .create(&prefix, b"", &Acl::open_unsafe(), CreateMode::Persistent)
            .await
        {
            Ok(_) | Err(ClientError::Server(ErrorCode::NodeExists)) => {}
            Err(error) => return Err(error).with_context(|| format!("creating {prefix}")),
        }
    }
    Ok(())
}

fn check_app(app: &str) -> anyhow::Result<()> {
    if app.is_empty() || app.contains('/') {
        bail!("app name {app:?}: must be one path component");
    }
    Ok(())
}

async fn push(
    client: &Client,
    args: &ConfigArgs,
    root: &str,
    app: &str,
    file: &PathBuf,
) -> anyhow::Result<ExitCode> {
    check_app(app)?;
    let data = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    ensure_path(client, root).await?;
    let path = format!("{root}/{app}");
    let written = match client.set_data(&path, &data, -1).await {
        Err(ClientError::Server(ErrorCode::NoNode)) => client
            .create(&path, &data, &Acl::open_unsafe(), CreateMode::Persistent)
            .await
            .map(drop),
        other => other.map(drop),
    };
    match written {
        Ok(()) => {
            let versions = versions(client, root, app).await?;
            match versions.last() {
                Some((number, _)) => {
                    println!("pushed {app}: live is version {number}");
                    Ok(ExitCode::SUCCESS)
                }
                None => bail!(
                    "pushed {app}, but the recipe bound to {root} recorded no version (see \
                     `zkw recipe logs {}`)",
                    args.recipe
                ),
            }
        }
        Err(ClientError::Server(ErrorCode::BadArguments)) => {
            refused(client, &args.recipe, &path).await;
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error.into()),
    }
}

/// Prints why the recipe refused a write of `path`, from the newest matching log line.
async fn refused(client: &Client, recipe: &str, path: &str) {
    let log = format!("{RECIPES_PATH}/{recipe}/{LOG_NODE}");
    let text = match client.get_data(&log, false).await {
        Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
        Err(_) => String::new(),
    };
    let marker = format!("rejected {path}: ");
    let reason = text.lines().rev().find_map(|line| {
        line.split_once(&marker)
            .map(|(_, reason)| reason.to_owned())
    });
    match reason {
        Some(reason) => eprintln!("refused: {reason}"),
        None => eprintln!("refused (BadArguments); see `zkw recipe logs {recipe}`"),
    }
}

/// Fails "not found" when `app` has never been pushed.
async fn require_app(client: &Client, root: &str, app: &str) -> anyhow::Result<()> {
    check_app(app)?;
    match client.exists(&format!("{root}/{app}"), false).await? {
        Some(_) => Ok(()),
        None => Err(super::recipe::not_found("app", app, root)),
    }
}

async fn get(client: &Client, root: &str, app: &str) -> anyhow::Result<ExitCode> {
    require_app(client, root, app).await?;
    match client.get_data(&format!("{root}/{app}/live"), false).await {
        Ok((data, _)) => {
            use std::io::Write as _;
            std::io::stdout().write_all(&data)?;
            if !data.ends_with(b"\n") {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Server(ErrorCode::NoNode)) => {
            eprintln!("{app}: no live config");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error.into()),
    }
}

/// `(number, node name)` of each kept version, oldest first.
async fn versions(client: &Client, root: &str, app: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let names = match client
        .get_children(&format!("{root}/{app}/versions"), false)
        .await
    {
        Ok(names) => names,
        Err(ClientError::Server(ErrorCode::NoNode)) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let mut numbered: Vec<(u64, String)> = names
        .into_iter()
        .filter_map(|name| Some((name.strip_prefix("v-")?.parse().ok()?, name)))
        .collect();
    numbered.sort();
    Ok(numbered)
}

async fn history(client: &Client, root: &str, app: &str) -> anyhow::Result<ExitCode> {
    require_app(client, root, app).await?;
    let versions = versions(client, root, app).await?;
    println!("VERSION\tZXID\tMTIME_MS\tBYTES\tFIRST_LINE");
    let newest = versions.last().map(|(number, _)| *number);
    for (number, name) in &versions {
        let path = format!("{root}/{app}/versions/{name}");
        let (data, stat) = match client.get_data(&path, false).await {
            Ok(found) => found,
            // Pruned between the listing and the read.
            Err(ClientError::Server(ErrorCode::NoNode)) => continue,
            Err(error) => return Err(error.into()),
        };
        let text = String::from_utf8_lossy(&data);
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let live = if Some(*number) == newest {
            " (live)"
        } else {
            ""
        };
        println!(
            "{number}{live}\t{:#x}\t{}\t{}\t{first}",
            stat.czxid,
            stat.mtime,
            data.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollback(
    client: &Client,
    args: &ConfigArgs,
    root: &str,
    app: &str,
    version: &str,
) -> anyhow::Result<ExitCode> {
    require_app(client, root, app).await?;
    let path = format!("{root}/{app}/rollback");
    let written = match client.set_data(&path, version.as_bytes(), -1).await {
        Err(ClientError::Server(ErrorCode::NoNode)) => client
            .create(
                &path,
                version.as_bytes(),
                &Acl::open_unsafe(),
                CreateMode::Persistent,
            )
            .await
            .map(drop),
        other => other.map(drop),
    };
    match written {
        Ok(()) => {
            let newest = versions(client, root, app).await?;
            let number = newest.last().map_or(0, |(number, _)| *number);
            println!("rolled {app} back to version {version}: live is version {number}");
            Ok(ExitCode::SUCCESS)
        }
        Err(ClientError::Server(ErrorCode::BadArguments)) => {
            refused(client, &args.recipe, &path).await;
            Ok(ExitCode::FAILURE)
        }
        Err(error) => Err(error.into()),
    }
}
