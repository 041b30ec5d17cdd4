//! `discovery`: service instances register (usually ephemeral) nodes
//! `<root>/<service>/instances/<id>` holding a JSON object (`address`, `port`, optional
//! `metadata`); the recipe keeps `<root>/<service>/endpoints`, a JSON array of every instance
//! (its object plus `"id"`), sorted by id, rewritten in the same txn as each join, change,
//! leave or session expiry, so consumers read and watch one node instead of N. A validator
//! refuses malformed instance payloads and client writes to `endpoints`. README.md has the
//! whole protocol.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use zkw_guest::{CreateMode, Ctx, Error, Event, EventKind, Reject, Validate, WriteKind};

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
    let root = root.trim_end_matches('/');
    let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) else {
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

/// Checks an instance payload: a JSON object with a string `address`, an integer `port` in
/// 0..=[`PORT_MAX`] and, if present, an object `metadata`. Other fields are kept as they are.
pub fn parse_instance(data: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value =
        serde_json::from_slice(data).map_err(|error| format!("not JSON: {error}"))?;
    let Value::Object(object) = value else {
        return Err("must be a JSON object".into());
    };
    if !object.get("address").is_some_and(Value::is_string) {
        return Err("needs a string \"address\"".into());
    }
    match object.get("port").and_then(Value::as_u64) {
        Some(port) if port <= PORT_MAX => {}
        _ => return Err(format!("needs an integer \"port\" in 0..={PORT_MAX}")),
    }
    if object.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err("\"metadata\" must be an object".into());
    }
    Ok(object)
}

/// The endpoints document for `instances` (id, payload), in the given order; payloads that
/// are not valid instances are left out.
pub fn endpoints(instances: &[(String, Vec<u8>)]) -> Vec<u8> {
    let list: Vec<Value> = instances
        .iter()
        .filter_map(|(id, data)| {
            let mut object = parse_instance(data).ok()?;
            object.insert("id".into(), Value::String(id.clone()));
            Some(Value::Object(object))
        })
        .collect();
    // Serializing a Value cannot fail (its keys are strings).
    serde_json::to_vec(&Value::Array(list)).unwrap_or_else(|_| b"[]".to_vec())
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
    let mut services = BTreeSet::new();
    if event.kind == EventKind::SessionClosed {
        for path in &event.ephemerals {
            if let Target::Instance(service, _) = classify(&root, path) {
                services.insert(service.to_owned());
            }
        }
    } else {
        match classify(&root, &event.path) {
            Target::Instances(service) | Target::Instance(service, _) => {
                services.insert(service.to_owned());
            }
            Target::Endpoints(_) | Target::Other => {}
        }
    }
    for service in services {
        refresh(ctx, &service)?;
    }
    Ok(())
}

/// Rewrites `service`'s endpoints node from its instances, if it changed. Without an
/// instances node the service is being taken down: the endpoints node goes too.
fn refresh(ctx: &mut Ctx, service: &str) -> Result<(), Error> {
    let base = ctx.path(service);
    let dir = format!("{base}/{INSTANCES_NODE}");
    let endpoints_path = format!("{base}/{ENDPOINTS_NODE}");
    let current = ctx.get(&endpoints_path)?;
    let ids = match ctx.children(&dir) {
        Ok(ids) => ids,
        Err(Error::NoNode) => {
            if let Some(node) = current {
                ctx.delete(&endpoints_path, node.stat.version)?;
            }
            return Ok(());
        }
        Err(error) => return Err(error),
    };
    let mut instances = Vec::with_capacity(ids.len());
    for id in ids {
        // A run sees one consistent tree, so every listed child is there; skip one anyway.
        if let Some(data) = ctx.get_data(&format!("{dir}/{id}"))? {
            instances.push((id, data));
        }
    }
    let doc = endpoints(&instances);
    match current {
        Some(node) if node.data == doc => return Ok(()),
        Some(node) => {
            ctx.set(&endpoints_path, &doc, node.stat.version)?;
        }
        None => {
            ctx.create(&endpoints_path, &doc, CreateMode::Persistent)?;
        }
    }
    Ok(())
}

zkw_guest::recipe! { on_event: on_event, validate: validate }

#[cfg(test)]
mod tests;
