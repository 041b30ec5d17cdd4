//! `zkw discover SERVICE [--watch]`: prints a service's endpoints, the JSON array the discovery
//! recipe keeps in `<root>/<service>/endpoints` (recipes/discovery/README.md), as compact JSON
//! on one line; with `--watch`, prints it again each time it changes, until interrupted. A
//! root no recipe is bound to fails (exit 1, with the install command); so does a service that
//! does not exist, except with `--watch`, which says so and waits for it.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;

use super::bench::ServerOpts;
use crate::client::{Client, ClientError};
use crate::proto::ErrorCode;

/// Where `zkw discover` expects the discovery recipe bound, unless `--root` says otherwise.
const ROOT_DEFAULT: &str = "/services";

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The service whose endpoints to print.
    service: String,
    /// Keep printing the endpoints each time they change.
    #[arg(long)]
    watch: bool,
    /// The path the discovery recipe is bound to.
    #[arg(long, default_value = ROOT_DEFAULT)]
    root: String,
    #[command(flatten)]
    server: ServerOpts,
    /// Credentials sent first, e.g. `digest:user:password`.
    #[arg(long, value_name = "SCHEME:AUTH")]
    auth: Option<String>,
}

pub fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    if args.service.is_empty() || args.service.contains('/') {
        bail!(
            "service name {:?}: must be one path component",
            args.service
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let mut client = super::config::connect(&args.server.server, args.auth.as_deref()).await?;
        let root = args.root.trim_end_matches('/');
        super::recipe::require_bound(&client, root, "discovery", &args.server.server).await?;
        let service = format!("{root}/{}", args.service);
        if client.exists(&service, false).await?.is_none() {
            if !args.watch {
                return Err(super::recipe::not_found("service", &args.service, root));
            }
            // Watching may start before the first instance registers; say so, then wait.
            eprintln!(
                "zkw discover: service {} not found under {root} yet; waiting for it",
                args.service
            );
        }
        let path = format!("{service}/endpoints");
        if !args.watch {
            println!("{}", read(&client, &path, false).await?);
            return Ok(ExitCode::SUCCESS);
        }
        let mut events = client
            .take_events()
            .context("the client's watch events are already taken")?;
        let mut last = None;
        loop {
            // Re-arm the watch with every read; print only what changed.
            let current = read(&client, &path, true).await?;
            if last.as_ref() != Some(&current) {
                println!("{current}");
                last = Some(current);
            }
            tokio::select! {
                event = events.recv() => {
                    if event.is_none() {
                        bail!("connection lost: {}", client.closed_reason().unwrap_or_default());
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

/// The node keeps one endpoint per line; print each document on one line (compact JSON).
fn one_line(data: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(value) => value.to_string(),
        Err(_) => String::from_utf8_lossy(data).replace('\n', " "),
    }
}

/// The endpoints document, `[]` when the node is absent (the service has no instance yet);
/// `watch` leaves a data or exists watch.
async fn read(client: &Client, path: &str, watch: bool) -> anyhow::Result<String> {
    match client.get_data(path, watch).await {
        Ok((data, _)) => Ok(one_line(&data)),
        Err(ClientError::Server(ErrorCode::NoNode)) => {
            if client.exists(path, watch).await?.is_some() {
                // Created between the two reads: read it properly next time round.
                return Box::pin(read(client, path, watch)).await;
            }
            Ok("[]".to_owned())
        }
        Err(error) => Err(error.into()),
    }
}
