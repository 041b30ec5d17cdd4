//! The AdminServer's commands: `GET <commandURL>/<name>` (or an alias, e.g. `mntr`) answers
//! ZooKeeper 3.8's JSON shape for that command, with `"command"` and `"error"` keys;
//! `<commandURL>` alone lists the commands as ZooKeeper's HTML page does; an unknown name is
//! a 404 whose JSON lists the commands. zkw adds `recipes` and `digest`.
//!
//! With `admin.authRequired`, the commands that list sessions, connections and watched paths
//! ([`AUTH_GUARDED`]) check the caller as ZooKeeper 3.9 checks its guarded commands: the
//! `Authorization: <scheme> <auth>` header (`digest user:password`, or `ip`) must prove ALL
//! permissions on `/` (or super); else 401 (no or bad credentials) or 403 (not allowed).

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use super::listener::Peer;
use crate::config::PeerRole;
use crate::proto::perms;
use crate::server::{facts, four_letter, identities, Context};
use crate::tree::acl;

/// The commands that list sessions, connections or watched paths: with `admin.authRequired`
/// they answer only an authorized caller.
pub const AUTH_GUARDED: [&str; 4] = ["connections", "dump", "watches", "watches_by_path"];

/// One admin command: its name, its short names, and whether it needs a serving server.
pub struct Command {
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    needs_serving: bool,
    run: Run,
}

/// The body of every answer: the command's facts, then `command` and `error`.
#[derive(Serialize)]
struct Answer<'a, T: Serialize> {
    #[serde(flatten)]
    body: T,
    command: &'a str,
    error: Option<&'a str>,
}

/// An empty body (commands that only act, like `ruok` or `stat_reset`).
#[derive(Serialize)]
struct Nothing {}

fn json<T: Serialize>(body: T) -> Result<serde_json::Value, String> {
    serde_json::to_value(body).map_err(|error| error.to_string())
}

type Run = fn(&Context) -> Result<serde_json::Value, String>;

macro_rules! facts_of {
    ($body:expr) => {
        (|context: &Context| -> Result<serde_json::Value, String> {
            #[allow(clippy::redundant_closure_call)]
            let body = ($body)(context);
            json(body)
        }) as Run
    };
}

fn mode(context: &Context) -> &'static str {
    context.consensus.mode()
}

/// Every command, in ZooKeeper's alphabetical listing order.
pub fn all() -> Vec<Command> {
    let command = |name, aliases, needs_serving, run| Command {
        name,
        aliases,
        needs_serving,
        run,
    };
    vec![
        command(
            "configuration",
            &["conf", "config"],
            false,
            facts_of!(|c: &Context| facts::conf(&c.shared)),
        ),
        command(
            "connection_stat_reset",
            &["crst"],
            true,
            facts_of!(|c: &Context| {
                four_letter::reset_connection_stats(&c.shared);
                Nothing {}
            }),
        ),
        command(
            "connections",
            &["cons"],
            true,
            facts_of!(|c: &Context| facts::connections(&c.shared)),
        ),
        command(
            "digest",
            &[],
            true,
            facts_of!(|c: &Context| facts::digest(&c.shared)),
        ),
        command(
            "dirs",
            &[],
            true,
            facts_of!(|c: &Context| facts::dirs(&c.shared)),
        ),
        command(
            "dump",
            &[],
            true,
            facts_of!(|c: &Context| facts::dump(&c.shared)),
        ),
        command(
            "environment",
            &["env", "envi"],
            false,
            facts_of!(|c: &Context| facts::environment(&c.shared)),
        ),
        command(
            "get_trace_mask",
            &["gtmk"],
            true,
            facts_of!(|_: &Context| BTreeMap::from([("tracemask", 0)])),
        ),
        command("hash", &[], true, hash),
        command(
            "initial_configuration",
            &["icfg"],
            false,
            initial_configuration,
        ),
        command(
            "is_read_only",
            &["isro"],
            false,
            facts_of!(|_: &Context| BTreeMap::from([("read_only", false)])),
        ),
        command("last_snapshot", &["lsnp"], true, last_snapshot),
        command("leader", &["lead"], true, leader),
        command(
            "monitor",
            &["mntr"],
            true,
            facts_of!(|c: &Context| facts::monitor(c, mode(c))),
        ),
        command(
            "recipes",
            &[],
            true,
            facts_of!(|c: &Context| BTreeMap::from([("recipes", facts::recipes(&c.shared))])),
        ),
        command("ruok", &[], false, facts_of!(|_: &Context| Nothing {})),
        command(
            "server_stats",
            &["srvr"],
            true,
            facts_of!(|c: &Context| facts::server_stats(&c.shared, mode(c))),
        ),
        command(
            "stat_reset",
            &["srst"],
            true,
            facts_of!(|c: &Context| {
                c.shared.stats.reset();
                Nothing {}
            }),
        ),
        command(
            "stats",
            &["stat"],
            true,
            facts_of!(|c: &Context| facts::stat(&c.shared, mode(c))),
        ),
        command("voting_view", &["vote"], true, voting_view),
        command(
            "watch_summary",
            &["wchs"],
            true,
            facts_of!(|c: &Context| facts::watch_summary(&c.shared)),
        ),
        command(
            "watches",
            &["wchc"],
            true,
            facts_of!(|c: &Context| facts::watches(&c.shared)),
        ),
        command(
            "watches_by_path",
            &["wchp"],
            true,
            facts_of!(|c: &Context| facts::watches_by_path(&c.shared)),
        ),
        command("zabstate", &[], false, zabstate),
    ]
}

/// ZooKeeper's `hash`: the digests it keeps, here the current one.
fn hash(context: &Context) -> Result<serde_json::Value, String> {
    let digest = facts::digest(&context.shared);
    let body = serde_json::json!({
        "digests": [{ "zxid": digest.zxid, "digest": digest.hash }],
    });
    Ok(body)
}

/// The configuration file as it was read at start (re-read: zkw keeps no copy), its secrets
/// redacted.
fn initial_configuration(context: &Context) -> Result<serde_json::Value, String> {
    let text = match &context.shared.config.source {
        Some(path) => crate::config::redacted_text(path).map_err(|error| error.to_string())?,
        None => String::new(),
    };
    Ok(serde_json::json!({ "initial_configuration": text }))
}

fn last_snapshot(context: &Context) -> Result<serde_json::Value, String> {
    let last = context.shared.storage_timings.last_snapshot();
    let (zxid, timestamp) = last.map_or((0, 0), |last| (last.zxid, last.unix_secs));
    Ok(serde_json::json!({ "zxid": format!("{zxid:x}"), "timestamp": timestamp }))
}

/// ZooKeeper answers `leader` only on an ensemble member.
fn leader(context: &Context) -> Result<serde_json::Value, String> {
    if !context.shared.config.is_distributed() {
        return Err("server is not initialized".to_owned());
    }
    let leader = context.consensus.leader();
    let body = serde_json::json!({
        "is_leader": context.consensus.is_leader(),
        "leader_id": leader.as_ref().map_or(-1, |(id, _)| i64::try_from(*id).unwrap_or(-1)),
        "leader_ip": leader.map(|(_, address)| address),
    });
    Ok(body)
}

/// The voting members of the configuration this server started with.
fn voting_view(context: &Context) -> Result<serde_json::Value, String> {
    let config = &context.shared.config;
    let mut view = serde_json::Map::new();
    for server in config.servers.iter() {
        let client = match (&server.client_address, server.client_port) {
            (Some(host), Some(port)) => Some(format!("{host}:{port}")),
            (None, Some(port)) => Some(format!("0.0.0.0:{port}")),
            _ => None,
        };
        let learner_type = match server.role {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        };
        let quorum = format!("{}:{}", server.host, server.quorum_port);
        let election = format!("{}:{}", server.host, server.election_port);
        view.insert(
            server.id.to_string(),
            serde_json::json!({
                "server_addresses": [quorum.clone()],
                "quorum_address": quorum,
                "election_address": election,
                "learner_type": learner_type,
                "client_address": client,
            }),
        );
    }
    Ok(serde_json::json!({ "current_config": view }))
}

/// ZooKeeper's Zab phase: zkw's Raft has no discovery/synchronization phases, so a serving
/// ensemble member is in "broadcast" and any other in "election".
fn zabstate(context: &Context) -> Result<serde_json::Value, String> {
    let config = &context.shared.config;
    if !config.is_distributed() {
        return Ok(serde_json::json!({ "voting": false, "zabstate": "" }));
    }
    let voting = config
        .servers
        .iter()
        .any(|server| Some(server.id) == config.my_id && server.role == PeerRole::Participant);
    let state = if context.consensus.is_serving() {
        "broadcast"
    } else {
        "election"
    };
    Ok(serde_json::json!({ "voting": voting, "zabstate": state }))
}

/// Finds a command by name or alias.
pub fn find(name: &str) -> Option<Command> {
    all()
        .into_iter()
        .find(|command| command.name == name || command.aliases.contains(&name))
}

pub fn router(context: Context, command_url: &str) -> Router {
    let base = command_url.trim_end_matches('/').to_owned();
    let mut router = Router::new()
        .route(&format!("{base}/"), get(list))
        .route(&format!("{base}/{{name}}"), get(run));
    if !base.is_empty() {
        router = router.route(&base, get(list));
    }
    let listing_base = base.clone();
    router
        .fallback(move || {
            let base = listing_base.clone();
            async move { (StatusCode::NOT_FOUND, html_list(&base)).into_response() }
        })
        .with_state((context, base))
}

type AdminState = (Context, String);

async fn list(State((_, base)): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html_list(&base),
    )
        .into_response()
}

/// ZooKeeper's command listing: one link per command.
fn html_list(base: &str) -> String {
    let mut names: Vec<&str> = all().iter().map(|command| command.name).collect();
    names.sort_unstable();
    names
        .into_iter()
        .map(|name| format!("<a href=\"{base}/{name}\">{name}</a>\n<br/>\n"))
        .collect()
}

async fn run(
    State((context, _)): State<AdminState>,
    Path(name): Path<String>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Response {
    let Some(command) = find(&name) else {
        let names: Vec<&str> = all().iter().map(|command| command.name).collect();
        let body = serde_json::json!({
            "command": name,
            "error": format!("Unknown command: {name}"),
            "commands": names,
        });
        return json_response(StatusCode::NOT_FOUND, body.to_string());
    };
    if command.needs_serving && !context.consensus.is_serving() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            command.name,
            facts::NOT_SERVING,
        );
    }
    if context.shared.config.admin.auth_required && AUTH_GUARDED.contains(&command.name) {
        if let Err((status, error)) = authorize(&context, &headers, peer.ip()) {
            tracing::warn!(%peer, command = command.name, error, "admin command refused");
            return error_response(status, command.name, error);
        }
    }
    match (command.run)(&context).and_then(|body| with_command(body, command.name)) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, command.name, &error),
    }
}

/// ZooKeeper 3.9's check of a guarded command: the `Authorization` header's identities must
/// hold every permission bit of ALL on `/`; its answers when they do not.
fn authorize(
    context: &Context,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<(), (StatusCode, &'static str)> {
    let not_authenticated = (StatusCode::UNAUTHORIZED, "Not authenticated");
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err((
            StatusCode::UNAUTHORIZED,
            "Auth info is missing for the command",
        ));
    };
    let value = value.to_str().map_err(|_| not_authenticated)?;
    let (scheme, auth) = value.split_once(' ').unwrap_or((value, ""));
    let ids =
        identities(&context.shared, scheme, auth.as_bytes(), peer).ok_or(not_authenticated)?;
    let root_acl = context
        .shared
        .lock_store()
        .tree
        .acl("/")
        .unwrap_or_default();
    let bits = [
        perms::READ,
        perms::WRITE,
        perms::CREATE,
        perms::DELETE,
        perms::ADMIN,
    ];
    bits.into_iter()
        .try_for_each(|bit| acl::check(&root_acl, &ids, bit))
        .map_err(|_| (StatusCode::FORBIDDEN, "Not authorized"))
}

/// Adds `command` and `error: null` after the command's own keys.
fn with_command(value: serde_json::Value, name: &str) -> Result<String, String> {
    let serde_json::Value::Object(map) = value else {
        return Err(format!("{name} answered something other than an object"));
    };
    let answer = Answer {
        body: map,
        command: name,
        error: None,
    };
    serde_json::to_string_pretty(&answer).map_err(|error| error.to_string())
}

fn error_response(status: StatusCode, name: &str, error: &str) -> Response {
    let body = Answer {
        body: Nothing {},
        command: name,
        error: Some(error),
    };
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    json_response(status, text)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for command in all() {
            assert!(seen.insert(command.name), "{}", command.name);
            for alias in command.aliases {
                assert!(seen.insert(alias), "{alias}");
            }
        }
    }

    #[test]
    fn aliases_find_their_command() {
        assert_eq!(find("mntr").map(|c| c.name), Some("monitor"));
        assert_eq!(find("wchp").map(|c| c.name), Some("watches_by_path"));
        assert!(find("nosuch").is_none());
    }

    #[test]
    fn guarded_commands_exist() {
        for name in AUTH_GUARDED {
            assert_eq!(find(name).map(|c| c.name), Some(name));
        }
    }

    #[test]
    fn answers_carry_command_and_null_error() {
        let body = with_command(serde_json::json!({"read_only": false}), "is_read_only").unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["command"], "is_read_only");
        assert!(value["error"].is_null());
        assert_eq!(value["read_only"], false);
    }
}
