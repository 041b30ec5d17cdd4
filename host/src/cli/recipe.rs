//! `zkw recipe install | list | remove | logs | call`: manage recipes through the plain-znode
//! protocol of docs/recipes.md, so everything here a classic client could do too. `install`
//! checks the module locally first (the same checks the servers make) to print the reason for a
//! refusal; the servers check again.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};

use super::bench::ServerOpts;
use crate::client::{Client, ClientError};
use crate::proto::MultiOp;
use crate::proto::{op, perms, Acl, CreateMode, CreateRequest, DeleteRequest, ErrorCode, Id};
use crate::wasm::manifest::{self, Manifest, FUEL_DEFAULT, MEMORY_BYTES_DEFAULT};
use crate::wasm::registry::LOG_NODE;
use crate::wasm::{embedded, module, run, CALL_PREFIX, CHUNK_PREFIX, RECIPES_PATH};

/// Session timeout of the CLI's session, in milliseconds.
const SESSION_TIMEOUT_MS: u64 = 10_000;
/// Module bytes per chunk node, below jute.maxbuffer with room for the request around it.
const CHUNK_BYTES: usize = 512 * 1024;
/// How often `logs --follow` re-reads the log node when no watch fires, in milliseconds.
const FOLLOW_POLL_MS: u64 = 1_000;

#[derive(Debug, Args)]
pub struct RecipeArgs {
    #[command(subcommand)]
    action: RecipeAction,
    #[command(flatten)]
    server: ServerOpts,
    /// Credentials sent first, e.g. `digest:admin:secret` (installing needs the super user).
    #[arg(long, global = true, value_name = "SCHEME:AUTH")]
    auth: Option<String>,
}

#[derive(Debug, Subcommand)]
enum RecipeAction {
    /// Install (or replace) a module, bound to a path: a `.wasm` file, or the name of a recipe
    /// built into zkw (see `zkw recipe builtin`).
    Install {
        file: PathBuf,
        /// Recipe name (default: the file name without `.wasm`).
        #[arg(long)]
        name: Option<String>,
        /// The path it watches and may write under (default: /<name>).
        #[arg(long)]
        path: Option<String>,
        /// Fuel per run (default: what a built-in recipe asks for, else 10,000,000).
        #[arg(long)]
        fuel: Option<u64>,
        /// Linear memory cap per run, in bytes.
        #[arg(long, default_value_t = MEMORY_BYTES_DEFAULT)]
        memory: u64,
        /// Send it a Timer event every this many milliseconds (0: never).
        #[arg(long, default_value_t = 0)]
        timer_ms: u64,
        /// Permissions (zkCli letters, e.g. `cw`) a caller needs on the recipe's node
        /// (`/zookeeper/recipes/NAME`, readable, callable and deletable-into by anyone unless
        /// its ACL is changed with setAcl) to call it.
        #[arg(long, default_value = "c")]
        call_perms: String,
    },
    /// List installed recipes with this server's run counters.
    List,
    /// List the recipes built into this zkw binary.
    Builtin,
    /// Remove a recipe.
    Remove { name: String },
    /// Print a recipe's recent log lines.
    Logs {
        name: String,
        /// Keep printing new lines.
        #[arg(long)]
        follow: bool,
    },
    /// Call a recipe's `on_call` with ARGS and print its result.
    Call { name: String, args: String },
}

pub fn run(args: RecipeArgs) -> anyhow::Result<std::process::ExitCode> {
    if matches!(args.action, RecipeAction::Builtin) {
        for name in embedded::names() {
            println!("{name}");
        }
        if let Some(missing) = embedded::missing() {
            eprintln!("{missing}");
            return Ok(std::process::ExitCode::FAILURE);
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(async move {
        let client = connect(&args).await?;
        match args.action {
            RecipeAction::Install {
                file,
                name,
                path,
                fuel,
                memory,
                timer_ms,
                call_perms,
            } => {
                let builtin_fuel = file.to_str().and_then(embedded::fuel);
                let limits = Limits {
                    fuel: fuel.or(builtin_fuel).unwrap_or(FUEL_DEFAULT),
                    memory_bytes: memory,
                    timer_ms,
                    call_perms: manifest::perm_bits(&call_perms).with_context(|| {
                        format!("--call-perms {call_perms:?}: give one or more of cdrwa")
                    })?,
                };
                let auth = args.auth.as_deref();
                install(&client, &file, name, path, limits, auth).await?
            }
            RecipeAction::List => list(&client, &args.server.server).await?,
            RecipeAction::Builtin => {}
            RecipeAction::Remove { name } => {
                remove(&client, &name, args.auth.as_deref()).await?;
                println!("removed {name}");
            }
            RecipeAction::Logs { name, follow } => logs(&client, &name, follow).await?,
            RecipeAction::Call { name, args } => call(&client, &name, args.as_bytes()).await?,
        }
        Ok(std::process::ExitCode::SUCCESS)
    })
}

async fn connect(args: &RecipeArgs) -> anyhow::Result<Client> {
    let timeout = Duration::from_millis(SESSION_TIMEOUT_MS);
    let client = Client::connect(&args.server.server, timeout).await?;
    authenticate(&client, args.auth.as_deref()).await?;
    Ok(client)
}

/// Sends `--auth SCHEME:AUTH`, if given.
pub(super) async fn authenticate(client: &Client, auth: Option<&str>) -> anyhow::Result<()> {
    if let Some(auth) = auth {
        let (scheme, credentials) = auth
            .split_once(':')
            .context("--auth must be SCHEME:AUTH, e.g. digest:user:password")?;
        client
            .add_auth(scheme, credentials.as_bytes())
            .await
            .context("authentication refused")?;
    }
    Ok(())
}

/// What `install` writes into the manifest besides the module.
pub(super) struct Limits {
    pub fuel: u64,
    pub memory_bytes: u64,
    pub timer_ms: u64,
    pub call_perms: i32,
}

fn recipe_path(name: &str) -> String {
    format!("{RECIPES_PATH}/{name}")
}

async fn install(
    client: &Client,
    file: &PathBuf,
    name: Option<String>,
    path: Option<String>,
    limits: Limits,
    auth: Option<&str>,
) -> anyhow::Result<()> {
    let bytes = module_bytes(file)?;
    let name = match name {
        Some(name) => name,
        None => file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .context("name the recipe with --name")?
            .to_owned(),
    };
    let path = path.unwrap_or_else(|| format!("/{name}"));
    let manifest = install_bytes(client, &name, &bytes, path, limits, auth).await?;
    println!(
        "installed {name} at {} ({} bytes, sha256 {})",
        manifest.path, manifest.size, manifest.sha256
    );
    Ok(())
}

/// The module `install` names: the file, else the built-in recipe of that name; neither is an
/// error that lists the built-ins (a typo of `lock` is not a missing file).
fn module_bytes(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let builtin = file.to_str().and_then(embedded::module);
    match (std::fs::read(file), builtin) {
        (Ok(bytes), _) => Ok(bytes),
        (Err(error), Some(bytes)) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(bytes.to_vec())
        }
        (Err(error), None) if error.kind() == std::io::ErrorKind::NotFound => {
            let text = file.display();
            if let Some(missing) = embedded::missing() {
                if file.to_str().is_some_and(embedded::is_missing) {
                    bail!("{text} is a built-in recipe, but {missing}");
                }
                bail!("no such file or built-in recipe '{text}'; built-ins: none: {missing}");
            }
            let builtins = embedded::names().join(", ");
            bail!("no such file or built-in recipe '{text}'; built-ins: {builtins}")
        }
        (Err(error), _) => Err(error).with_context(|| format!("reading {}", file.display())),
    }
}

/// Why the servers answered NoAuth to `action` (a write under the recipes' nodes), and what
/// to do: pass `--auth`, or, when it was passed, configure its user as the super user or the
/// recipe admin (the digest lines to add are made from it), or fix the password.
fn admin_refused(action: &str, auth: Option<&str>) -> anyhow::Error {
    const WHO: &str = "the super user (DigestAuthenticationProvider.superDigest in zoo.cfg) or \
                       the recipe admin (zkw.recipe.adminIdentity)";
    let Some(auth) = auth else {
        return anyhow::anyhow!(
            "{action} needs {WHO}: pass --auth digest:USER:PASSWORD with that user"
        );
    };
    match auth.split_once(':') {
        Some(("digest", user_password)) if user_password.contains(':') => {
            let digest = crate::tree::acl::digest_id(user_password);
            let user = user_password.split(':').next().unwrap_or_default();
            anyhow::anyhow!(
                "{action} refused (NoAuth): digest user {user} is neither the super user nor the \
                 recipe admin of these servers. Either the servers have no super user \
                 configured: add `DigestAuthenticationProvider.superDigest={digest}` (or, for \
                 recipes only, `zkw.recipe.adminIdentity=digest:{digest}`) to every server's \
                 zoo.cfg and restart them; or the password is wrong"
            )
        }
        _ => anyhow::anyhow!(
            "{action} refused (NoAuth): only a digest user can be {WHO}; pass --auth \
             digest:USER:PASSWORD"
        ),
    }
}

/// `error` of a write under the recipes' nodes for `action`: NoAuth explained by
/// [`admin_refused`], anything else as it is.
fn admin_error(error: ClientError, action: &str, auth: Option<&str>) -> anyhow::Error {
    match error {
        ClientError::Server(ErrorCode::NoAuth) => admin_refused(action, auth),
        other => other.into(),
    }
}

/// Checks `bytes` locally, then installs them as `name` bound to `path` (replacing a recipe
/// of that name); `auth` is what `--auth` sent, for a refusal's message. Also used by
/// `zkw bench --workload trigger`.
pub(super) async fn install_bytes(
    client: &Client,
    name: &str,
    bytes: &[u8],
    path: String,
    limits: Limits,
    auth: Option<&str>,
) -> anyhow::Result<Manifest> {
    if name.is_empty() || name.contains('/') {
        bail!("recipe name {name:?}: must be one path component");
    }
    let manifest = Manifest {
        path,
        size: u64::try_from(bytes.len())?,
        sha256: module::sha256_hex(bytes),
        fuel: limits.fuel,
        memory_bytes: limits.memory_bytes,
        timer_ms: limits.timer_ms,
        call_perms: limits.call_perms,
    };
    // The same checks the servers make, here, so the refusal comes with its reason.
    Manifest::parse(manifest.format().as_bytes()).context("refused")?;
    check_locally(bytes).context("refused")?;
    let action = format!("installing recipe {name}");
    // Only when missing: the servers check who writes there before whether the node exists.
    if client.exists(RECIPES_PATH, false).await?.is_none() {
        ensure_node(client, RECIPES_PATH)
            .await
            .map_err(|error| admin_error(error, &action, auth))?;
    }
    // The servers refuse a path that overlaps another recipe's; say which one here.
    let others = client.get_children(RECIPES_PATH, false).await?;
    for other in others.iter().filter(|other| *other != name) {
        let (data, _) = client.get_data(&recipe_path(other), false).await?;
        if let Ok(theirs) = Manifest::parse(&data) {
            manifest.check_apart(other, &theirs).context("refused")?;
        }
    }
    if client.exists(&recipe_path(name), false).await?.is_some() {
        let replacing = format!("replacing recipe {name}");
        remove_nodes(client, name)
            .await
            .map_err(|error| admin_error(error, &replacing, auth))?;
    }
    upload(client, name, &manifest, bytes)
        .await
        .map_err(|error| match error {
            ClientError::Server(ErrorCode::BadArguments) => {
                anyhow::anyhow!("the servers refused the module (see their log)")
            }
            other => admin_error(other, &action, auth),
        })?;
    Ok(manifest)
}

/// The name of the installed recipe bound exactly to `root`, if any.
async fn bound_recipe(client: &Client, root: &str) -> Result<Option<String>, ClientError> {
    let names = match client.get_children(RECIPES_PATH, false).await {
        Ok(names) => names,
        Err(ClientError::Server(ErrorCode::NoNode)) => return Ok(None),
        Err(error) => return Err(error),
    };
    for name in names {
        let data = match client.get_data(&recipe_path(&name), false).await {
            Ok((data, _)) => data,
            // Removed between the listing and the read.
            Err(ClientError::Server(ErrorCode::NoNode)) => continue,
            Err(error) => return Err(error),
        };
        if Manifest::parse(&data).is_ok_and(|manifest| manifest.path == root) {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// What a recipe verb (`zkw lock`, `elect`, `config`, `discover`, `balance`) checks first: the
/// name of the recipe bound to `root`, or an error that gives the command installing
/// `builtin` (the built-in recipe the verb speaks to) there. Without it a lock would never be
/// granted and a read would print an empty success.
pub(super) async fn require_bound(
    client: &Client,
    root: &str,
    builtin: &str,
    servers: &str,
) -> anyhow::Result<String> {
    match bound_recipe(client, root).await? {
        Some(name) => Ok(name),
        None => bail!(
            "no recipe is bound to {root}; install the {builtin} recipe there first: \
             zkw recipe install {builtin} --path {root} --server {servers} \
             --auth digest:USER:PASSWORD (the super user or the recipe admin)"
        ),
    }
}

/// The error of a verb whose `what` (service, group, app) named `name` is not under `root`.
pub(super) fn not_found(what: &str, name: &str, root: &str) -> anyhow::Error {
    anyhow::anyhow!("{what} {name} not found under {root}")
}

fn check_locally(bytes: &[u8]) -> anyhow::Result<()> {
    let engine = crate::wasm::engine::engine()?;
    let linker = run::link(&engine)?;
    module::load(&engine, &linker, None, bytes)?;
    Ok(())
}

/// `world:anyone` with `perms` only: what a client without the recipe admin may do with the
/// recipes' nodes (the servers refuse its other writes there whatever the ACL says; super and
/// the recipe admin pass).
fn anyone(perms: i32) -> Vec<Acl> {
    vec![Acl {
        perms,
        id: Id::new("world", "anyone"),
    }]
}

/// The recipe's node: anyone reads the manifest, creates call nodes and deletes its own.
fn recipe_node_acl() -> Vec<Acl> {
    anyone(perms::READ | perms::CREATE | perms::DELETE)
}

fn create_op(path: String, data: Vec<u8>, acl: Vec<Acl>) -> MultiOp {
    MultiOp::Create {
        op: op::CREATE,
        request: CreateRequest {
            path,
            data: Some(data),
            acl,
            flags: CreateMode::Persistent as i32,
            ttl_ms: None,
        },
    }
}

/// The manifest and every chunk in one multi when they fit, else the manifest first and the
/// chunks one by one (the last one completes the install).
async fn upload(
    client: &Client,
    name: &str,
    manifest: &Manifest,
    bytes: &[u8],
) -> Result<(), ClientError> {
    let base = recipe_path(name);
    let mut ops = vec![create_op(
        base.clone(),
        manifest.format().into_bytes(),
        recipe_node_acl(),
    )];
    ops.extend(bytes.chunks(CHUNK_BYTES).enumerate().map(|(index, chunk)| {
        let path = format!("{base}/{CHUNK_PREFIX}{index:04}");
        create_op(path, chunk.to_vec(), anyone(perms::READ))
    }));
    if bytes.len() <= CHUNK_BYTES {
        let results = client.multi(ops).await?;
        return match results.iter().find_map(|result| match result {
            crate::proto::MultiResult::Error(code) if *code != 0 => Some(*code),
            _ => None,
        }) {
            Some(code) => Err(ClientError::from_code(code)),
            None => Ok(()),
        };
    }
    for one in ops {
        client.multi(vec![one]).await?;
    }
    Ok(())
}

async fn ensure_node(client: &Client, path: &str) -> Result<(), ClientError> {
    match client
        .create(path, b"", &anyone(perms::READ), CreateMode::Persistent)
        .await
    {
        Ok(_) | Err(ClientError::Server(ErrorCode::NodeExists)) => Ok(()),
        Err(error) => Err(error),
    }
}

async fn list(client: &Client, servers: &str) -> anyhow::Result<()> {
    let names = match client.get_children(RECIPES_PATH, false).await {
        Ok(names) => names,
        Err(ClientError::Server(ErrorCode::NoNode)) => Vec::new(),
        Err(error) => return Err(error.into()),
    };
    let counters = mntr(servers);
    println!("NAME\tPATH\tSHA256\tSIZE\tRUNS\tFAILURES\tFUEL_USED");
    for name in names {
        let (data, _) = client.get_data(&recipe_path(&name), false).await?;
        let manifest = Manifest::parse(&data)?;
        let counter = |key: &str| {
            counters
                .iter()
                .find(|(k, _)| *k == format!("zk_recipe_{key}{{name=\"{name}\"}}"))
                .map_or("-".to_owned(), |(_, value)| value.clone())
        };
        println!(
            "{name}\t{}\t{}\t{}\t{}\t{}\t{}",
            manifest.path,
            manifest.sha256.get(..12).unwrap_or(&manifest.sha256),
            manifest.size,
            counter("runs"),
            counter("failures"),
            counter("fuel_used"),
        );
    }
    Ok(())
}

/// This server's counters from `mntr` (empty when the word is not allowed).
fn mntr(servers: &str) -> Vec<(String, String)> {
    let first = servers.split(',').next().unwrap_or_default();
    let (host, port) = first.rsplit_once(':').unwrap_or((first, "2181"));
    let port = port.parse().unwrap_or(2181);
    super::four_letter::send(host, port, "mntr")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// Removes the recipe `name`; `auth` is what `--auth` sent, for a refusal's message.
pub(super) async fn remove(client: &Client, name: &str, auth: Option<&str>) -> anyhow::Result<()> {
    require_installed(client, name).await?;
    remove_nodes(client, name)
        .await
        .map_err(|error| match error {
            ClientError::Server(ErrorCode::NoNode) => not_installed(name),
            other => admin_error(other, &format!("removing recipe {name}"), auth),
        })
}

fn not_installed(name: &str) -> anyhow::Error {
    anyhow::anyhow!("recipe {name} is not installed (see `zkw recipe list`)")
}

/// The manifest of the installed recipe `name`; "not installed" when there is none.
async fn require_installed(client: &Client, name: &str) -> anyhow::Result<Vec<u8>> {
    match client.get_data(&recipe_path(name), false).await {
        Ok((data, _)) => Ok(data),
        Err(ClientError::Server(ErrorCode::NoNode)) => Err(not_installed(name)),
        Err(error) => Err(error.into()),
    }
}

/// Deletes the recipe's node and its children in one multi.
async fn remove_nodes(client: &Client, name: &str) -> Result<(), ClientError> {
    let base = recipe_path(name);
    let children = client.get_children(&base, false).await?;
    let mut ops: Vec<MultiOp> = children
        .iter()
        .map(|child| {
            MultiOp::Delete(DeleteRequest {
                path: format!("{base}/{child}"),
                version: -1,
            })
        })
        .collect();
    ops.push(MultiOp::Delete(DeleteRequest {
        path: base,
        version: -1,
    }));
    client.multi(ops).await?;
    Ok(())
}

async fn logs(client: &Client, name: &str, follow: bool) -> anyhow::Result<()> {
    require_installed(client, name).await?;
    let path = format!("{}/{LOG_NODE}", recipe_path(name));
    let mut printed = 0;
    loop {
        let data = match client.get_data(&path, false).await {
            Ok((data, _)) => data,
            Err(ClientError::Server(ErrorCode::NoNode)) => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let text = String::from_utf8_lossy(&data);
        let lines: Vec<&str> = text.lines().collect();
        // The node keeps a window of recent lines: print what is new since the last read.
        let start = if printed > lines.len() { 0 } else { printed };
        for line in &lines[start..] {
            println!("{line}");
        }
        printed = lines.len();
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(FOLLOW_POLL_MS)).await;
    }
}

async fn call(client: &Client, name: &str, args: &[u8]) -> anyhow::Result<()> {
    let created = match client
        .create(
            &format!("{}/{CALL_PREFIX}", recipe_path(name)),
            args,
            &Acl::open_unsafe(),
            CreateMode::EphemeralSequential,
        )
        .await
    {
        Ok(created) => created,
        // The servers answer NoNode both for a recipe that is not there and for one whose
        // module has no call entry point: tell which.
        Err(ClientError::Server(ErrorCode::NoNode)) => {
            require_installed(client, name).await?;
            bail!(
                "recipe {name} has no call entry point (its module exports no {})",
                zkw_guest::abi::export::ON_CALL
            )
        }
        Err(error) => return Err(error).with_context(|| format!("calling {name}")),
    };
    let (result, _) = client.get_data(&created, false).await?;
    client.delete(&created, -1).await?;
    println!("{}", String::from_utf8_lossy(&result));
    Ok(())
}
