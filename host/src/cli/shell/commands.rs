//! The shell's command table and the ZooKeeper commands themselves (ls, get, set, create,
//! delete, deleteall, stat, getAcl, setAcl, addauth, sync, addWatch, removewatches, config,
//! reconfig, whoami, getEphemerals, getAllChildrenNumber, version), each parsed, run against
//! a [`Client`] and printed the way ZooKeeper 3.8's zkCli does: results on stdout, `Created
//! ...`, warnings and errors on stderr. The session commands (connect, close, history, redo,
//! printwatches, quit) live in `mod.rs` because they change the shell, not the tree.

use std::collections::VecDeque;

use super::parse::{
    flag, parse_acl, parse_options, validate_path, valued, CliError, OptSpec, Parsed,
};
use super::render;
use crate::client::{Client, ClientError, CreateOptions};
use crate::proto::{
    Acl, AddWatchMode, CreateMode, DeleteRequest, MultiOp, ReconfigRequest, WatcherType,
};

/// Every command with its option summary, in zkCli's usage order (Java's String sort).
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default \
         is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("connect", "host:port"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("history", ""),
    ("ls", "[-s] [-w] [-R] path"),
    ("printwatches", "on|off"),
    ("quit", ""),
    (
        "reconfig",
        "[-s] [-v version] [[-file path] | [-members serverID=host:port1:port2;port3[,...]*]] | \
         [-add serverId=host:port1:port2;port3[,...]]* [-remove serverId[,...]*]",
    ),
    ("redo", "cmdno"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

/// deleteall's default multi size (ZooKeeper's).
const DELETE_BATCH_OPS_DEFAULT: usize = 1000;

/// The whole usage text zkCli prints to stderr for an unknown command.
pub fn usage() -> String {
    let mut text = String::from("zkw cli -server host:port -timeout ms [-r] cmd args\n");
    for (name, options) in COMMANDS {
        text.push_str(&format!("\t{name} {options}\n"));
    }
    text
}

/// `name options`, the usage line a command's parse error prints.
fn usage_of(name: &str) -> String {
    let options = COMMANDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, options)| *options);
    format!("{name} {options}")
}

pub fn is_command(name: &str) -> bool {
    COMMANDS.iter().any(|(n, _)| *n == name)
}

fn parse_usage_error(name: &str) -> CliError {
    CliError::new(usage_of(name))
}

fn path_arg(parsed: &Parsed, sequential: bool) -> Result<String, CliError> {
    let path = parsed.args.get(1).cloned().unwrap_or_default();
    validate_path(&path, sequential).map_err(CliError::new)?;
    Ok(path)
}

fn int_option(parsed: &Parsed, name: &str) -> Result<Option<i32>, CliError> {
    parsed
        .value(name)
        .map(|text| {
            text.parse::<i32>().map_err(|_| {
                CliError::new(format!(
                    "java.lang.NumberFormatException: For input string: \"{text}\""
                ))
            })
        })
        .transpose()
}

fn failed(path: &str) -> impl Fn(ClientError) -> CliError + '_ {
    move |error| CliError::new(render::client_error(&error, path))
}

/// Parses, then re-parses with the third word turned into `-w` when an old-style
/// `cmd path watch` was typed (zkCli's retainCompatibility), warning on stderr.
fn parse_with_compat(
    specs: &[OptSpec],
    tokens: &[String],
    warning: Option<&str>,
) -> Result<Parsed, CliError> {
    let parsed = parse_options(specs, tokens)?;
    if parsed.args.len() <= 2 {
        return Ok(parsed);
    }
    let Some(warning) = warning else {
        return Ok(parsed);
    };
    eprintln!("{warning}");
    let mut tokens = tokens.to_vec();
    if let Some(third) = tokens.get_mut(2) {
        "-w".clone_into(third);
    }
    parse_options(specs, &tokens)
}

/// Runs one tree command (the name is `tokens[0]` and is in [`COMMANDS`]).
pub async fn run(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let name = tokens.first().map_or("", String::as_str);
    match name {
        "ls" => ls(client, tokens).await,
        "get" => get(client, tokens).await,
        "set" => set(client, tokens).await,
        "create" => create(client, tokens).await,
        "delete" => delete(client, tokens).await,
        "deleteall" => delete_all(client, tokens).await,
        "stat" => stat(client, tokens).await,
        "getAcl" => get_acl(client, tokens).await,
        "setAcl" => set_acl(client, tokens).await,
        "addauth" => add_auth(client, tokens).await,
        "sync" => sync(client, tokens).await,
        "addWatch" => add_watch(client, tokens).await,
        "removewatches" => remove_watches(client, tokens).await,
        "config" => config(client, tokens).await,
        "reconfig" => reconfig(client, tokens).await,
        "whoami" => whoami(client).await,
        "getEphemerals" => get_ephemerals(client, tokens).await,
        "getAllChildrenNumber" => all_children_number(client, tokens).await,
        "version" => {
            println!("zkw CLI version: {}", crate::cli::VERSION);
            Ok(())
        }
        // close and the session commands are handled by the shell.
        _ => Ok(()),
    }
}

async fn ls(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let specs = [flag("?"), flag("s"), flag("w"), flag("R")];
    let parsed = parse_with_compat(
        &specs,
        tokens,
        Some("'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead."),
    )?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("ls"));
    }
    let path = path_arg(&parsed, false)?;
    let watch = parsed.has("w");
    if parsed.has("R") {
        client.get_data(&path, watch).await.map_err(failed(&path))?;
        println!("{path}");
        return visit_subtree(client, &path, watch).await;
    }
    if parsed.has("s") {
        let (names, stat) = client
            .get_children2(&path, watch)
            .await
            .map_err(failed(&path))?;
        println!("{}", render::children(names));
        print!("{}", render::stat(&stat));
    } else {
        let names = client
            .get_children(&path, watch)
            .await
            .map_err(failed(&path))?;
        println!("{}", render::children(names));
    }
    Ok(())
}

fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// ZKUtil.visitSubTreeDFS below `root` (already printed): every descendant, children
/// sorted, depth first, each printed before its own children are listed. A node deleted
/// meanwhile is skipped, as ZooKeeper does.
async fn visit_subtree(client: &Client, root: &str, watch: bool) -> Result<(), CliError> {
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        if path != root {
            println!("{path}");
        }
        let mut names = match client.get_children(&path, watch).await {
            Ok(names) => names,
            Err(ClientError::Server(crate::proto::ErrorCode::NoNode)) => continue,
            Err(error) => return Err(failed(&path)(error)),
        };
        names.sort();
        // Reversed, so the smallest name is popped (and printed) first.
        stack.extend(names.iter().rev().map(|name| child_path(&path, name)));
    }
    Ok(())
}

async fn get(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let specs = [flag("s"), flag("w")];
    let parsed = parse_options(&specs, tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("get"));
    }
    let parsed = parse_with_compat(
        &specs,
        tokens,
        Some("'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead."),
    )?;
    let path = path_arg(&parsed, false)?;
    let (data, stat) = client
        .get_data_or_null(&path, parsed.has("w"))
        .await
        .map_err(failed(&path))?;
    // zkCli prints null data as "null".
    match data {
        Some(data) => println!("{}", String::from_utf8_lossy(&data)),
        None => println!("null"),
    }
    if parsed.has("s") {
        print!("{}", render::stat(&stat));
    }
    Ok(())
}

async fn set(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[flag("s"), valued("v")], tokens)?;
    if parsed.args.len() < 3 {
        return Err(parse_usage_error("set"));
    }
    let path = path_arg(&parsed, false)?;
    let version = int_option(&parsed, "v")?.unwrap_or(-1);
    let data = parsed.args[2].as_bytes();
    let stat = client
        .set_data(&path, data, version)
        .await
        .map_err(failed(&path))?;
    if parsed.has("s") {
        print!("{}", render::stat(&stat));
    }
    Ok(())
}

/// The CreateMode and TTL for create's flags, with zkCli's refusals.
fn create_mode(parsed: &Parsed) -> Result<(CreateMode, Option<i64>), CliError> {
    let (e, s, c, t) = (
        parsed.has("e"),
        parsed.has("s"),
        parsed.has("c"),
        parsed.has("t"),
    );
    if c && (e || s) {
        return Err(CliError::new(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        ));
    }
    let ttl = match parsed.value("t") {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| CliError::new("-t argument must be a long value"))?,
        ),
        None => None,
    };
    if t && e {
        return Err(CliError::new("TTLs cannot be used with Ephemeral znodes"));
    }
    if t && c {
        return Err(CliError::new("TTLs cannot be used with Container znodes"));
    }
    let mode = match (e, s, c, t) {
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (true, false, _, _) => CreateMode::Ephemeral,
        (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
        (false, true, _, false) => CreateMode::PersistentSequential,
        (false, false, true, _) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, false, false, false) => CreateMode::Persistent,
    };
    // EphemeralType.TTL's bounds: 1 ms up to 2^40 - 1 ms.
    const TTL_MS_MAX: i64 = (1 << 40) - 1;
    if let Some(ms) = ttl {
        if ms <= 0 || ms > TTL_MS_MAX {
            return Err(CliError::new(format!(
                "ttl must be positive and cannot be larger than: {TTL_MS_MAX}"
            )));
        }
    }
    Ok((mode, ttl))
}

async fn create(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let specs = [flag("e"), flag("s"), flag("c"), valued("t")];
    let parsed = parse_options(&specs, tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("create"));
    }
    let (mode, ttl_ms) = create_mode(&parsed)?;
    let path = path_arg(&parsed, mode.is_sequential())?;
    // Without a data argument zkCli creates the node with null data.
    let data = parsed.args.get(2).map(String::as_bytes);
    let acl = match parsed.args.get(3) {
        Some(text) => acl_arg(text),
        None => Acl::open_unsafe(),
    };
    let options = CreateOptions {
        flags: mode as i32,
        ttl_ms,
        acl,
    };
    match client.create_with(&path, data, &options).await {
        Ok((created, _)) => {
            eprintln!("Created {created}");
            Ok(())
        }
        Err(ClientError::Server(code @ crate::proto::ErrorCode::InvalidAcl)) => {
            eprintln!("{}", render::keeper_message(code, Some(&path)));
            Err(failed(&path)(ClientError::Server(code)))
        }
        Err(error) => Err(failed(&path)(error)),
    }
}

/// An ACL argument; AclParser's warnings go to stderr.
fn acl_arg(text: &str) -> Vec<Acl> {
    let (acl, warnings) = parse_acl(text);
    for warning in warnings {
        eprintln!("{warning}");
    }
    acl
}

async fn delete(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[valued("v")], tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("delete"));
    }
    if parsed.args.len() > 2 {
        eprintln!(
            "'delete path [version]' has been deprecated. Please use 'delete [-v version] path' \
             instead."
        );
    }
    let path = path_arg(&parsed, false)?;
    let version = int_option(&parsed, "v")?.unwrap_or(-1);
    client.delete(&path, version).await.map_err(failed(&path))
}

/// ZKUtil.listSubTreeBFS: `root` and everything below it, parents before children.
async fn list_subtree(client: &Client, root: &str) -> Result<Vec<String>, CliError> {
    let mut queue = VecDeque::from([root.to_owned()]);
    let mut tree = vec![root.to_owned()];
    while let Some(path) = queue.pop_front() {
        let names = client
            .get_children(&path, false)
            .await
            .map_err(failed(&path))?;
        for name in names {
            let child = child_path(&path, &name);
            queue.push_back(child.clone());
            tree.push(child);
        }
    }
    Ok(tree)
}

async fn delete_all(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[valued("b")], tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("deleteall"));
    }
    let batch = match parsed.value("b") {
        Some(text) => text
            .parse::<i32>()
            .map_err(|_| CliError::new("-b argument must be an int value"))?,
        None => i32::try_from(DELETE_BATCH_OPS_DEFAULT).unwrap_or(i32::MAX),
    };
    let path = path_arg(&parsed, false)?;
    let tree = list_subtree(client, &path).await?;
    if batch <= 0 {
        for node in tree.iter().rev() {
            client.delete(node, -1).await.map_err(failed(node))?;
        }
        return Ok(());
    }
    let batch = usize::try_from(batch).unwrap_or(DELETE_BATCH_OPS_DEFAULT);
    let leaves_first: Vec<&String> = tree.iter().rev().collect();
    for chunk in leaves_first.chunks(batch) {
        let ops = chunk
            .iter()
            .map(|node| {
                MultiOp::Delete(DeleteRequest {
                    path: (*node).clone(),
                    version: -1,
                })
            })
            .collect();
        let failed_batch = !matches!(client.multi_results(ops).await, Ok((0, _)));
        if failed_batch {
            eprintln!("Failed to delete some node(s) in the subtree!");
            return Ok(());
        }
    }
    Ok(())
}

async fn stat(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let specs = [flag("w")];
    let parsed = parse_options(&specs, tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("stat"));
    }
    let parsed = parse_with_compat(
        &specs,
        tokens,
        Some("'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead."),
    )?;
    let path = path_arg(&parsed, false)?;
    match client.exists(&path, parsed.has("w")).await {
        Ok(Some(stat)) => {
            print!("{}", render::stat(&stat));
            Ok(())
        }
        Ok(None) => Err(CliError::new(format!("Node does not exist: {path}"))),
        Err(error) => Err(failed(&path)(error)),
    }
}

async fn get_acl(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[flag("s")], tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("getAcl"));
    }
    let path = path_arg(&parsed, false)?;
    let (acl, stat) = client.get_acl(&path).await.map_err(failed(&path))?;
    print!("{}", render::acl(&acl));
    if parsed.has("s") {
        print!("{}", render::stat(&stat));
    }
    Ok(())
}

async fn set_acl(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[flag("s"), valued("v"), flag("R")], tokens)?;
    if parsed.args.len() < 3 {
        return Err(parse_usage_error("setAcl"));
    }
    let path = path_arg(&parsed, false)?;
    let acl = acl_arg(&parsed.args[2]);
    let version = int_option(&parsed, "v")?.unwrap_or(-1);
    if parsed.has("R") {
        client.get_data(&path, false).await.map_err(failed(&path))?;
        let tree = list_subtree(client, &path).await?;
        for node in tree {
            // zkCli prints a failed node's message and goes on.
            if let Err(error) = client.set_acl(&node, &acl, version).await {
                print!("{}", render::client_error(&error, &node));
            }
        }
        return Ok(());
    }
    let stat = client
        .set_acl(&path, &acl, version)
        .await
        .map_err(failed(&path))?;
    if parsed.has("s") {
        print!("{}", render::stat(&stat));
    }
    Ok(())
}

async fn add_auth(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[], tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("addauth"));
    }
    let auth = parsed.args.get(2).map(String::as_bytes).unwrap_or_default();
    match client.add_auth(&parsed.args[1], auth).await {
        Ok(()) => Ok(()),
        // ZooKeeper reports a refused auth to the watcher, then the session ends.
        Err(ClientError::Server(crate::proto::ErrorCode::AuthFailed)) => {
            println!(
                "{}",
                render::watcher_message(-1, crate::proto::keeper_state::AUTH_FAILED, "")
            );
            Ok(())
        }
        Err(error) => Err(CliError::new(render::client_error(&error, ""))),
    }
}

async fn sync(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[], tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("sync"));
    }
    let path = path_arg(&parsed, false)?;
    match client.sync(&path).await {
        Ok(_) => println!("Sync is OK"),
        Err(ClientError::Server(code)) => println!("Sync has failed. rc={}", code.code()),
        Err(error) => return Err(CliError::new(error.to_string())),
    }
    Ok(())
}

async fn add_watch(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[valued("m")], tokens)?;
    if parsed.args.len() != 2 {
        return Err(parse_usage_error("addWatch"));
    }
    let mode = match parsed.value("m").map(str::to_uppercase).as_deref() {
        None | Some("PERSISTENT_RECURSIVE") => AddWatchMode::PersistentRecursive,
        Some("PERSISTENT") => AddWatchMode::Persistent,
        Some(_) => return Err(parse_usage_error("addWatch")),
    };
    let path = parsed.args[1].clone();
    client
        .add_watch(&path, mode as i32)
        .await
        .map_err(failed(&path))
}

async fn remove_watches(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let specs = [flag("c"), flag("d"), flag("a"), flag("l")];
    let parsed = parse_options(&specs, tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("removewatches"));
    }
    let path = path_arg(&parsed, false)?;
    let kind = if parsed.has("c") {
        WatcherType::Children
    } else if parsed.has("d") {
        WatcherType::Data
    } else {
        WatcherType::Any
    };
    client
        .remove_watches(&path, kind as i32)
        .await
        .map_err(failed(&path))
}

/// ConfigUtils.getClientConfigStr: `version host:port,...` from the config's server lines.
pub fn client_config_string(config: &str) -> String {
    let mut version = "";
    let mut addresses = Vec::new();
    for line in config.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "version" {
            version = value;
        }
        if !key.starts_with("server.") {
            continue;
        }
        if let Some((_, client)) = value.split_once(';') {
            let client = client.trim();
            if client.contains(':') {
                addresses.push(client.to_owned());
            } else {
                addresses.push(format!("0.0.0.0:{client}"));
            }
        }
    }
    format!("{version} {}", addresses.join(","))
}

async fn config(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[flag("s"), flag("w"), flag("c")], tokens)?;
    let (data, stat) = client
        .get_config(parsed.has("w"))
        .await
        .map_err(|error| CliError::new(render::client_error(&error, crate::client::CONFIG_NODE)))?;
    let text = String::from_utf8_lossy(&data);
    if parsed.has("c") {
        println!("{}", client_config_string(&text));
    } else {
        println!("{text}");
    }
    if parsed.has("s") {
        print!("{}", render::stat(&stat));
    }
    Ok(())
}

/// reconfig's arguments, checked the way ReconfigCommand.parse checks them.
fn reconfig_request(parsed: &Parsed) -> Result<ReconfigRequest, CliError> {
    let has = |name: &str| parsed.has(name);
    if !(has("file") || has("members") || has("add") || has("remove")) {
        return Err(parse_usage_error("reconfig"));
    }
    let cur_config_id = match parsed.value("v") {
        Some(text) => i64::from_str_radix(text, 16)
            .map_err(|_| CliError::new("-v must be followed by a long (configuration version)"))?,
        None => -1,
    };
    if (has("file") || has("members")) && (has("add") || has("remove")) {
        return Err(CliError::new(
            "Can't use -file or -members together with -add or -remove (mixing incremental and \
             non-incremental modes is not allowed)",
        ));
    }
    if has("file") && has("members") {
        return Err(CliError::new(
            "Can't use -file and -members together (conflicting non-incremental modes)",
        ));
    }
    let mut new_members = parsed.value("members").map(str::to_lowercase);
    if let Some(file) = parsed.value("file") {
        let text = std::fs::read_to_string(file)
            .map_err(|error| CliError::new(format!("Error processing {file}{error}")))?;
        // The dynamic config file's server lines, comma-joined, as members.
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| line.starts_with("server."))
            .collect();
        new_members = Some(lines.join(","));
    }
    Ok(ReconfigRequest {
        joining_servers: parsed.value("add").map(str::to_lowercase),
        leaving_servers: parsed.value("remove").map(str::to_lowercase),
        new_members,
        cur_config_id,
    })
}

async fn reconfig(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let specs = [
        flag("s"),
        valued("v"),
        valued("file"),
        valued("members"),
        valued("add"),
        valued("remove"),
    ];
    let parsed = parse_options(&specs, tokens)?;
    let request = reconfig_request(&parsed)?;
    let (data, stat) = client
        .reconfig(request)
        .await
        .map_err(|error| CliError::new(render::client_error(&error, "")))?;
    println!(
        "Committed new configuration:\n{}",
        String::from_utf8_lossy(&data)
    );
    if parsed.has("s") {
        print!("{}", render::stat(&stat));
    }
    Ok(())
}

async fn whoami(client: &Client) -> Result<(), CliError> {
    let infos = client
        .who_am_i()
        .await
        .map_err(|error| CliError::new(error.to_string()))?;
    println!("Auth scheme: User");
    for info in infos {
        println!("{}: {}", info.auth_scheme, info.user);
    }
    Ok(())
}

async fn get_ephemerals(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[], tokens)?;
    let path = match parsed.args.get(1) {
        Some(_) => path_arg(&parsed, false)?,
        None => "/".to_owned(),
    };
    let paths = client.get_ephemerals(&path).await.map_err(failed(&path))?;
    println!("{}", render::java_list(&paths));
    Ok(())
}

async fn all_children_number(client: &Client, tokens: &[String]) -> Result<(), CliError> {
    let parsed = parse_options(&[], tokens)?;
    if parsed.args.len() < 2 {
        return Err(parse_usage_error("getAllChildrenNumber"));
    }
    let path = path_arg(&parsed, false)?;
    let total = client
        .get_all_children_number(&path)
        .await
        .map_err(failed(&path))?;
    println!("{total}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (style.md)
mod tests {
    use super::*;

    fn toks(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn usage_lines_follow_zkcli() {
        assert_eq!(usage_of("ls"), "ls [-s] [-w] [-R] path");
        assert!(usage().contains("\tset [-s] [-v version] path data\n"));
        assert!(is_command("getAllChildrenNumber"));
        assert!(!is_command("bogus"));
    }

    #[test]
    fn create_modes_and_refusals() {
        let specs = [flag("e"), flag("s"), flag("c"), valued("t")];
        let mode = |list: &[&str]| create_mode(&parse_options(&specs, &toks(list)).unwrap());
        assert_eq!(mode(&["create", "/a"]).unwrap().0, CreateMode::Persistent);
        assert_eq!(
            mode(&["create", "-e", "-s", "/a"]).unwrap().0,
            CreateMode::EphemeralSequential
        );
        assert_eq!(
            mode(&["create", "-s", "-t", "100", "/a"]).unwrap(),
            (CreateMode::PersistentSequentialWithTtl, Some(100))
        );
        assert_eq!(
            mode(&["create", "-c", "-e", "/a"]).unwrap_err().message,
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential."
        );
        assert_eq!(
            mode(&["create", "-t", "x", "/a"]).unwrap_err().message,
            "-t argument must be a long value"
        );
        assert_eq!(
            mode(&["create", "-e", "-t", "5", "/a"])
                .unwrap_err()
                .message,
            "TTLs cannot be used with Ephemeral znodes"
        );
    }

    #[test]
    fn client_config_string_lists_client_addresses() {
        let config = "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\n\
                      server.2=h2:2888:3888;2182\nversion=100000000\n";
        assert_eq!(
            client_config_string(config),
            "100000000 127.0.0.1:2181,0.0.0.0:2182"
        );
    }

    #[test]
    fn reconfig_arguments_are_checked() {
        let specs = [
            valued("v"),
            valued("members"),
            valued("add"),
            valued("remove"),
        ];
        let parse = |list: &[&str]| reconfig_request(&parse_options(&specs, &toks(list)).unwrap());
        assert!(parse(&["reconfig"]).is_err());
        let request = parse(&["reconfig", "-remove", "3", "-v", "1a"]).unwrap();
        assert_eq!(request.leaving_servers.as_deref(), Some("3"));
        assert_eq!(request.cur_config_id, 0x1a);
        assert!(parse(&["reconfig", "-members", "x", "-add", "y"]).is_err());
    }
}
