//! `discovery`: service instances register (usually ephemeral) nodes
//! `<root>/<service>/instances/<id>` holding a JSON object (`address`, `port`, optional
//! `metadata`); the recipe keeps `<root>/<service>/endpoints`, a JSON array of every instance
//! (`"id"` then its payload), sorted by id, one per line, rewritten in the same txn as each
//! join, change, leave or session expiry, so consumers read and watch one node instead of N.
//! A run splices the one entry that changed (see [`doc`]); it rebuilds the whole document
//! from the instances only when the document is missing or its count disagrees with the
//! instances node's. A validator refuses malformed payloads and client writes to
//! `endpoints`. README.md has the whole protocol.

mod doc;

pub use doc::{encode, entry_line, parse_instance, Lines};

use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, Node, Reject, Validate, WriteKind};

/// The children of a service node with a meaning to this recipe.
pub const INSTANCES_NODE: &str = "instances";
pub const ENDPOINTS_NODE: &str = "endpoints";
/// The highest port number an instance may give.
pub const PORT_MAX: u64 = 65_535;

/// What a path under the root is to this recipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// `<root>/<service>/instances`.
    Instances(&'a str),
    /// `<root>/<service>/instances/<id>`: (service, id).
    Instance(&'a str, &'a str),
    Endpoints(&'a str),
    Other,
}

/// Classifies `path` relative to `root`.
pub fn classify<'a>(root: &str, path: &'a str) -> Target<'a> {
    let Some(rest) = zkw_guest::relative(root, path) else {
        return Target::Other;
    };
    let parts: Vec<&'a str> = rest.split('/').collect();
    match parts.as_slice() {
        [service, INSTANCES_NODE] => Target::Instances(service),
        [service, INSTANCES_NODE, id] => Target::Instance(service, id),
        [service, ENDPOINTS_NODE] => Target::Endpoints(service),
        _ => Target::Other,
    }
}

fn validate(ctx: &mut Ctx, write: &Validate) -> Result<(), Reject> {
    if write.kind == WriteKind::Delete {
        return Ok(());
    }
    let root = ctx.root().to_owned();
    let outcome = match classify(&root, &write.path) {
        Target::Instance(..) => parse_instance(&write.data).map(drop),
        Target::Endpoints(_) => Err("written by the discovery recipe only".to_owned()),
        Target::Instances(_) | Target::Other => Ok(()),
    };
    outcome.map_err(Reject::bad_arguments)
}

fn on_event(ctx: &mut Ctx, event: &Event) -> Result<(), Error> {
    let root = ctx.root().to_owned();
    if event.kind == EventKind::SessionClosed {
        // The deletions fired their own events too; this is idempotent and covers hosts
        // that report only the close.
        for path in &event.ephemerals {
            if let Target::Instance(service, id) = classify(&root, path) {
                splice(ctx, service, id, false)?;
            }
        }
        return Ok(());
    }
    match (event.kind, classify(&root, &event.path)) {
        (EventKind::Created | EventKind::DataChanged, Target::Instance(service, id)) => {
            splice(ctx, service, id, true)
        }
        (EventKind::Deleted, Target::Instance(service, id)) => splice(ctx, service, id, false),
        (EventKind::ChildrenChanged, Target::Instances(service)) => verify(ctx, service),
        (EventKind::Deleted, Target::Instances(service)) => {
            // The service is being taken down: its endpoints go too.
            let path = endpoints_path(ctx, service);
            if let Some(node) = ctx.get(&path)? {
                ctx.delete(&path, node.stat.version)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn endpoints_path(ctx: &Ctx, service: &str) -> String {
    format!("{}/{ENDPOINTS_NODE}", ctx.path(service))
}

fn instances_path(ctx: &Ctx, service: &str) -> String {
    format!("{}/{INSTANCES_NODE}", ctx.path(service))
}

/// Updates `id`'s entry from its node (`present`: it was created or changed; else it left).
fn splice(ctx: &mut Ctx, service: &str, id: &str, present: bool) -> Result<(), Error> {
    let current = ctx.get(&endpoints_path(ctx, service))?;
    let data = if present {
        ctx.get_data(&format!("{}/{id}", instances_path(ctx, service)))?
    } else {
        None
    };
    let line = data.and_then(|data| entry_line(id, &data));
    let spliced = match current.as_ref().and_then(|node| Lines::parse(&node.data)) {
        Some(lines) => lines.splice(id, line.as_deref()),
        None => return rebuild(ctx, service, current),
    };
    store(ctx, service, current, &spliced)
}

/// After a change of the instances' children: rebuilds when the document's entry count (its
/// lines) disagrees with the instances node's (a run that failed, instances from before the
/// install, or several changes in one txn whose own events have not run yet).
fn verify(ctx: &mut Ctx, service: &str) -> Result<(), Error> {
    let current = ctx.get(&endpoints_path(ctx, service))?;
    let Some(instances) = ctx.exists(&instances_path(ctx, service))? else {
        return Ok(());
    };
    let count = usize::try_from(instances.num_children).unwrap_or(usize::MAX);
    let entries = current.as_ref().map(|node| {
        let newlines = node.data.iter().filter(|byte| **byte == b'\n').count();
        newlines.saturating_sub(1)
    });
    if entries == Some(count) {
        return Ok(());
    }
    rebuild(ctx, service, current)
}

/// Writes the document from every instance (or deletes it without an instances node).
fn rebuild(ctx: &mut Ctx, service: &str, current: Option<Node>) -> Result<(), Error> {
    let dir = instances_path(ctx, service);
    let ids = match ctx.children(&dir) {
        Ok(ids) => ids,
        Err(Error::NoNode) => {
            if let Some(node) = current {
                ctx.delete(&endpoints_path(ctx, service), node.stat.version)?;
            }
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    // The children come sorted, so the lines are in id order.
    let mut lines = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(data) = ctx.get_data(&format!("{dir}/{id}"))? {
            lines.extend(entry_line(&id, &data));
        }
    }
    store(ctx, service, current, &encode(&lines))
}

/// Writes `data` as the endpoints node unless it already holds it.
fn store(ctx: &mut Ctx, service: &str, current: Option<Node>, data: &[u8]) -> Result<(), Error> {
    let path = endpoints_path(ctx, service);
    match current {
        Some(node) if node.data == data => {}
        Some(node) => {
            ctx.set(&path, data, node.stat.version)?;
        }
        None => {
            ctx.create(&path, data, CreateMode::Persistent)?;
        }
    }
    Ok(())
}

zkw_guest::recipe! { on_event: on_event, validate: validate }

#[cfg(test)]
mod tests;
