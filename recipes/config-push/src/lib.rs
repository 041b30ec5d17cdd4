//! `config-push`: validated, versioned configuration with atomic publication and one-write
//! rollback. A client writes an app's config as the data of `<root>/<app>`; the validator
//! refuses it (BadArguments, with the reason in the recipe's log) unless it is JSON or TOML
//! and fits the app's optional schema; in the same txn as an accepted write the recipe keeps
//! it as `<root>/<app>/versions/v-NNNNNNNNNN` (the last [`VERSIONS_KEPT_MAX`]) and copies it
//! to `<root>/<app>/live`, the node services watch. Writing a version number to
//! `<root>/<app>/rollback` republishes that version. README.md has the whole protocol.

mod schema;

pub use schema::{check, parse_config, parse_schema, Doc, Kind, Schema};

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, Reject, Validate, WriteKind};
use zkw_guest::{Node, ANY_VERSION};

/// How many accepted versions an app keeps (older ones are deleted as new ones arrive).
pub const VERSIONS_KEPT_MAX: usize = 10;
/// The children of an app node with a meaning to this recipe.
pub const LIVE_NODE: &str = "live";
pub const VERSIONS_NODE: &str = "versions";
pub const SCHEMA_NODE: &str = "schema";
pub const ROLLBACK_NODE: &str = "rollback";
/// Version nodes are `v-` and the number in [`VERSION_DIGITS`] digits (sorting = numbering).
pub const VERSION_PREFIX: &str = "v-";
pub const VERSION_DIGITS: usize = 10;

/// What a path under the root is to this recipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `<root>/<app>`: the config as written.
    App(&'a str),
    Schema(&'a str),
    Rollback(&'a str),
    /// `live` and everything under `versions`: the recipe's own nodes.
    Published(&'a str),
    Other,
}

/// Classifies `path` relative to `root`.
pub fn classify<'a>(root: &str, path: &'a str) -> Target<'a> {
    let Some(rest) = zkw_guest::relative(root, path) else {
        return Target::Other;
    };
    let mut parts = rest.split('/');
    let (Some(app), second, third) = (parts.next(), parts.next(), parts.next()) else {
        return Target::Other;
    };
    match (second, third) {
        (None, _) if !app.is_empty() => Target::App(app),
        (Some(SCHEMA_NODE), None) => Target::Schema(app),
        (Some(ROLLBACK_NODE), None) => Target::Rollback(app),
        (Some(LIVE_NODE), None) | (Some(VERSIONS_NODE), _) => Target::Published(app),
        _ => Target::Other,
    }
}

/// The name of version `number`.
pub fn version_name(number: u64) -> String {
    format!("{VERSION_PREFIX}{number:0width$}", width = VERSION_DIGITS)
}

/// The number of a version given as `7`, `v7`, `v-7` or `v-0000000007`.
pub fn parse_version(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .strip_prefix(VERSION_PREFIX)
        .or_else(|| text.strip_prefix('v'))
        .unwrap_or(text);
    digits.parse().ok()
}

fn app_path(ctx: &Ctx, app: &str) -> String {
    ctx.path(app)
}

fn child(ctx: &Ctx, app: &str, name: &str) -> String {
    format!("{}/{name}", app_path(ctx, app))
}

/// Checks a config for `app`: it parses, and fits the app's schema if it has one.
fn check_config(ctx: &mut Ctx, app: &str, data: &[u8]) -> Result<(), String> {
    let doc = parse_config(data)?;
    let schema_path = child(ctx, app, SCHEMA_NODE);
    let schema = match ctx.get_data(&schema_path) {
        Ok(Some(bytes)) => parse_schema(&bytes).map_err(|e| format!("the app's {e}"))?,
        Ok(None) => return Ok(()),
        Err(error) => return Err(format!("reading the schema: {error}")),
    };
    check(&doc, &schema).map_err(|reason| format!("schema: {reason}"))
}

/// The version numbers `app` keeps, oldest first.
fn versions(ctx: &mut Ctx, app: &str) -> Result<Vec<u64>, Error> {
    let names = match ctx.children(&child(ctx, app, VERSIONS_NODE)) {
        Ok(names) => names,
        Err(Error::NoNode) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut numbers: Vec<u64> = names.iter().filter_map(|n| parse_version(n)).collect();
    numbers.sort_unstable();
    Ok(numbers)
}

fn version_data(ctx: &mut Ctx, app: &str, number: u64) -> Result<Option<Vec<u8>>, Error> {
    let path = format!(
        "{}/{}",
        child(ctx, app, VERSIONS_NODE),
        version_name(number)
    );
    ctx.get_data(&path)
}

fn validate(ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    if write.kind == WriteKind::Delete {
        return Ok(());
    }
    let root = ctx.root().to_owned();
    let outcome = match classify(&root, &write.path) {
        Target::App(_) if write.data.iter().all(u8::is_ascii_whitespace) => {
            // An empty create registers the app without publishing; an empty set is a mistake.
            match write.kind {
                WriteKind::Create => Ok(()),
                _ => Err("empty config".to_owned()),
            }
        }
        Target::App(app) => check_config(ctx, app, &write.data),
        Target::Schema(_) => parse_schema(&write.data).map(drop),
        Target::Rollback(app) => check_rollback(ctx, app, &write.data),
        Target::Published(_) => Err("written by the config-push recipe only".to_owned()),
        Target::Other => Ok(()),
    };
    outcome.map_err(Reject::bad_arguments)
}

/// A rollback names a kept version whose bytes still fit the app's schema.
fn check_rollback(ctx: &mut Ctx, app: &str, data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let number = parse_version(&text).ok_or_else(|| format!("{text:?} is not a version"))?;
    let kept = versions(ctx, app).map_err(|e| format!("reading the versions: {e}"))?;
    let bytes = match version_data(ctx, app, number) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            let range = match (kept.first(), kept.last()) {
                (Some(first), Some(last)) => format!("kept: {first}..={last}"),
                _ => "none kept".to_owned(),
            };
            return Err(format!("no version {number} ({range})"));
        }
        Err(error) => return Err(format!("reading version {number}: {error}")),
    };
    check_config(ctx, app, &bytes)
}

fn on_event(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    if !matches!(event.kind, EventKind::Created | EventKind::DataChanged) {
        return Ok(());
    }
    let root = ctx.root().to_owned();
    match classify(&root, &event.path) {
        Target::App(app) => publish(ctx, app),
        Target::Rollback(app) => rollback(ctx, app),
        _ => Ok(()),
    }
}

/// Publishes the app node's data, unless it is empty or already live. It does not parse it
/// again: every write that gets here passed the validator (a client's, in this txn) or was
/// checked as a rollback, and a second parse could run out of fuel where the first did not,
/// leaving an accepted config unpublished.
fn publish(ctx: &mut Ctx, app: &str) -> Result<(), Error> {
    let Some(node) = ctx.get(&app_path(ctx, app))? else {
        return Ok(());
    };
    if node.data.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let live_path = child(ctx, app, LIVE_NODE);
    let live = ctx.get(&live_path)?;
    if live.as_ref().is_some_and(|live| live.data == node.data) {
        return Ok(());
    }
    let number = record_version(ctx, app, &node)?;
    match live {
        Some(live) => ctx
            .set(&live_path, &node.data, live.stat.version)
            .map(drop)?,
        None => ctx
            .create(&live_path, &node.data, CreateMode::Persistent)
            .map(drop)?,
    }
    ctx.info(format_args!("{app}: published version {number}"));
    Ok(())
}

/// Keeps `node`'s data as the next version and drops the oldest beyond the limit.
fn record_version(ctx: &mut Ctx, app: &str, node: &Node) -> Result<u64, Error> {
    let dir = child(ctx, app, VERSIONS_NODE);
    if ctx.exists(&dir)?.is_none() {
        ctx.create(&dir, b"", CreateMode::Persistent)?;
    }
    let mut kept = versions(ctx, app)?;
    let number = kept.last().map_or(1, |last| last + 1);
    ctx.create(
        &format!("{dir}/{}", version_name(number)),
        &node.data,
        CreateMode::Persistent,
    )?;
    kept.push(number);
    let excess = kept.len().saturating_sub(VERSIONS_KEPT_MAX);
    for old in &kept[..excess] {
        ctx.delete(&format!("{dir}/{}", version_name(*old)), ANY_VERSION)?;
    }
    Ok(number)
}

/// Writes the named version back as the app's config and publishes it (as a new version:
/// history only grows). The validator checked the version when the rollback was written.
fn rollback(ctx: &mut Ctx, app: &str) -> Result<(), Error> {
    let Some(data) = ctx.get_data(&child(ctx, app, ROLLBACK_NODE))? else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&data).into_owned();
    let Some(number) = parse_version(&text) else {
        ctx.warn(format_args!("{app}: rollback to {text:?}: not a version"));
        return Ok(());
    };
    let Some(bytes) = version_data(ctx, app, number)? else {
        ctx.warn(format_args!("{app}: rollback to {number}: no such version"));
        return Ok(());
    };
    let app_node = app_path(ctx, app);
    ctx.set(&app_node, &bytes, ANY_VERSION)?;
    ctx.info(format_args!("{app}: rollback to version {number}"));
    publish(ctx, app)
}

zkw_guest::recipe! { on_event: on_event, validate: validate }

#[cfg(test)]
mod tests;
