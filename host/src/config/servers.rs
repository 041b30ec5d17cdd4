//! The ensemble: `server.N` lines (from zoo.cfg or its dynamicConfigFile) and `<dataDir>/myid`.
//!
//! A line reads `host:quorumPort:electionPort[:participant|observer][;[clientAddress:]clientPort]`
//! with IPv6 hosts in brackets. ZooKeeper's rules kept here: with a dynamicConfigFile the static
//! file may not hold `server.N` lines; `myid` is required only when the server is distributed
//! (more than one voter, or standaloneEnabled=false), but when present it must be a valid id
//! listed in the ensemble; a client port in this server's own line fills clientPort, and must
//! agree with clientPort when both are set.

use std::path::{Path, PathBuf};

use super::keys::{port, Builder};
use super::*;

/// The file ZooKeeper keeps the server id in, inside dataDir.
pub const MY_ID_FILE_NAME: &str = "myid";
/// Largest myid file read, in bytes: it holds one short number.
const MY_ID_FILE_BYTES_MAX: u64 = 4_096;

/// `participant` or `observer`, any case.
pub(super) fn role(value: &str) -> Result<PeerRole, String> {
    match value.to_ascii_lowercase().as_str() {
        "participant" => Ok(PeerRole::Participant),
        "observer" => Ok(PeerRole::Observer),
        _ => Err(format!("\"{value}\" is not participant or observer")),
    }
}

/// Reads `<data_dir>/myid`: `Ok(None)` when the file does not exist.
pub fn read_my_id(data_dir: &Path) -> Result<Option<u64>, ConfigError> {
    let file = data_dir.join(MY_ID_FILE_NAME);
    let invalid = |reason: String| ConfigError::Invalid {
        file: file.display().to_string(),
        reason,
    };
    match std::fs::metadata(&file) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(invalid(format!("cannot read: {error}"))),
        Ok(metadata) if metadata.len() > MY_ID_FILE_BYTES_MAX => {
            return Err(invalid(format!(
                "{} bytes is too large for a server id",
                metadata.len()
            )));
        }
        Ok(_) => {}
    }
    let bytes = std::fs::read(&file).map_err(|error| invalid(format!("cannot read: {error}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    let id: u64 = text
        .parse()
        .map_err(|_| invalid(format!("\"{text}\" is not a server id")))?;
    if !(SERVER_ID_MIN..=SERVER_ID_MAX).contains(&id) {
        return Err(invalid(format!(
            "{id} is not between {SERVER_ID_MIN} and {SERVER_ID_MAX}"
        )));
    }
    Ok(Some(id))
}

/// Parses the ensemble, reads `myid` and reconciles the client port. Called once, last.
pub(super) fn finish(builder: &mut Builder<'_>) -> Result<(), ConfigError> {
    let mut entries: Vec<(String, Entry)> = builder
        .server_entries()
        .iter()
        .map(|entry| (builder.file().to_owned(), entry.clone()))
        .collect();
    if let Some(dynamic) = builder.config_mut().dynamic_config_file.clone() {
        if let Some((_, first)) = entries.first() {
            return Err(builder.error(first, "must be in the dynamicConfigFile, not here".into()));
        }
        entries = dynamic_entries(&dynamic)?;
    }
    let extended_types = builder.config_mut().extended_types_enabled;
    let mut servers = Vec::with_capacity(entries.len());
    for (file, entry) in &entries {
        let server = parse_server(&entry.key, &entry.value, extended_types)
            .map_err(|reason| value_error(file, entry, reason))?;
        servers.push(server);
    }
    servers.sort_by_key(|server| server.id);
    builder.config_mut().servers = servers;
    if builder.config_mut().servers.is_empty() {
        return Ok(());
    }
    resolve_my_id(builder)?;
    reconcile_client_port(builder, &entries)
}

fn value_error(file: &str, entry: &Entry, reason: String) -> ConfigError {
    ConfigError::Value {
        file: file.to_owned(),
        line: entry.line,
        key: entry.key.clone(),
        reason,
    }
}

/// The `server.N` lines of a dynamic config file (always properties syntax, as in ZooKeeper).
fn dynamic_entries(path: &Path) -> Result<Vec<(String, Entry)>, ConfigError> {
    let file = path.display().to_string();
    let text = read_text(path)?;
    let entries = properties::parse(&text).map_err(|error| ConfigError::Syntax {
        file: file.clone(),
        line: error.line,
        reason: error.reason,
    })?;
    let mut servers = Vec::new();
    for entry in entries {
        let entry = Entry {
            key: entry.key.trim().to_owned(),
            value: entry.value.trim().to_owned(),
            line: entry.line,
        };
        if entry.key.starts_with("server.") {
            servers.push((file.clone(), entry));
        } else if entry.key != "version" {
            let reason = "only server.N and version belong in a dynamic config file".to_owned();
            return Err(value_error(&file, &entry, reason));
        }
    }
    Ok(servers)
}

fn resolve_my_id(builder: &mut Builder<'_>) -> Result<(), ConfigError> {
    let data_dir: PathBuf = builder.config_mut().data_dir.clone();
    let my_id_file = data_dir.join(MY_ID_FILE_NAME).display().to_string();
    let distributed = builder.config_mut().is_distributed();
    let Some(id) = read_my_id(&data_dir)? else {
        if distributed {
            return Err(ConfigError::Invalid {
                file: my_id_file,
                reason: "file is missing; an ensemble member needs its server id there".into(),
            });
        }
        return Ok(());
    };
    let config = builder.config_mut();
    let Some(own) = config.servers.iter().find(|server| server.id == id) else {
        return Err(ConfigError::Invalid {
            file: my_id_file,
            reason: format!("server id {id} has no server.{id} line in the config"),
        });
    };
    let own_role = own.role;
    config.my_id = Some(id);
    if config.extended_types_enabled && id > SERVER_ID_EXTENDED_TYPES_MAX {
        return Err(ConfigError::Invalid {
            file: my_id_file,
            reason: format!(
                "server id {id} is above {SERVER_ID_EXTENDED_TYPES_MAX}, the most \
                             extendedTypesEnabled allows"
            ),
        });
    }
    let peer_type_line = builder.line_of("peerType");
    if peer_type_line != 0 && builder.config_mut().peer_type != own_role {
        // ZooKeeper trusts the server list over peerType, with a warning; so do we.
        let entry = Entry {
            key: "peerType".into(),
            value: String::new(),
            line: peer_type_line,
        };
        builder.warn(
            &entry,
            format!("differs from this server's server.{id} line; using the line"),
        );
    }
    builder.config_mut().peer_type = own_role;
    Ok(())
}

/// A `;[address:]port` in this server's own line becomes clientPort (and clientPortAddress).
fn reconcile_client_port(
    builder: &mut Builder<'_>,
    entries: &[(String, Entry)],
) -> Result<(), ConfigError> {
    let Some(id) = builder.config_mut().my_id else {
        return Ok(());
    };
    let Some(own) = builder
        .config_mut()
        .servers
        .iter()
        .find(|server| server.id == id)
        .cloned()
    else {
        return Ok(());
    };
    let Some(line_port) = own.client_port else {
        return Ok(());
    };
    let config_port = builder.config_mut().client_port;
    if builder.client_port_set() && config_port != line_port {
        let key = format!("server.{id}");
        let (file, entry) = entries
            .iter()
            .find(|(_, entry)| entry.key == key)
            .cloned()
            .unwrap_or_else(|| {
                (
                    builder.file().to_owned(),
                    Entry {
                        key,
                        value: String::new(),
                        line: 0,
                    },
                )
            });
        let reason = format!("client port {line_port} differs from clientPort={config_port}");
        return Err(value_error(&file, &entry, reason));
    }
    let config = builder.config_mut();
    config.client_port = line_port;
    if config.client_port_address.is_none() {
        config.client_port_address = own.client_address.as_deref().and_then(keys_address);
    }
    Ok(())
}

fn keys_address(value: &str) -> Option<std::net::IpAddr> {
    super::keys::address(value).ok()
}

/// Parses one `server.N` line; the key carries the id.
pub(super) fn parse_server(
    key: &str,
    value: &str,
    extended_types_enabled: bool,
) -> Result<ServerEntry, String> {
    let id_text = key.strip_prefix("server.").unwrap_or(key);
    let id: u64 = id_text
        .parse()
        .map_err(|_| format!("\"{id_text}\" is not a server id"))?;
    let id_max = if extended_types_enabled {
        SERVER_ID_EXTENDED_TYPES_MAX
    } else {
        SERVER_ID_MAX
    };
    if !(SERVER_ID_MIN..=id_max).contains(&id) {
        return Err(format!(
            "server id {id} is not between {SERVER_ID_MIN} and {id_max}"
        ));
    }
    if value.contains('|') {
        return Err("multiple addresses per server (multiAddress) are not supported".to_owned());
    }
    let shape = || {
        format!(
            "\"{value}\" is not host:quorumPort:electionPort[:participant|observer]\
                 [;[clientAddress:]clientPort]"
        )
    };
    let (server_part, client_part) = match value.split_once(';') {
        Some((_, client)) if client.contains(';') => return Err(shape()),
        Some((server, client)) => (server.trim(), Some(client.trim())),
        None => (value, None),
    };
    let (host, rest) = split_host(server_part).ok_or_else(shape)?;
    let fields: Vec<&str> = rest.split(':').collect();
    let (quorum, election, role_text) = match fields.as_slice() {
        [quorum, election] => (*quorum, *election, None),
        [quorum, election, role_text] => (*quorum, *election, Some(*role_text)),
        _ => return Err(shape()),
    };
    let quorum_port = port(quorum).map_err(|reason| format!("quorum port: {reason}"))?;
    let election_port = port(election).map_err(|reason| format!("election port: {reason}"))?;
    let role = role_text.map_or(Ok(PeerRole::Participant), role)?;
    let (client_address, client_port) = match client_part {
        None => (None, None),
        Some(client) => parse_client(client).ok_or_else(shape)??,
    };
    Ok(ServerEntry {
        id,
        host,
        quorum_port,
        election_port,
        role,
        client_address,
        client_port,
    })
}

/// Splits `host:rest` where host may be `[v6]`. Returns None when there is no host.
fn split_host(text: &str) -> Option<(String, &str)> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, rest) = bracketed.split_once(']')?;
        let rest = rest.strip_prefix(':')?;
        return (!host.is_empty()).then(|| (host.to_owned(), rest));
    }
    let (host, rest) = text.split_once(':')?;
    (!host.is_empty()).then(|| (host.to_owned(), rest))
}

/// `port`, `host:port` or `[v6]:port`; None when the shape is wrong.
#[allow(clippy::type_complexity)]
fn parse_client(text: &str) -> Option<Result<(Option<String>, Option<u16>), String>> {
    let (address, port_text) = if text.contains(':') {
        let (host, rest) = split_host(text)?;
        (Some(host), rest)
    } else {
        (None, text)
    };
    Some(
        port(port_text)
            .map(|number| (address, Some(number)))
            .map_err(|reason| format!("client port: {reason}")),
    )
}

/// Parses a `server.N=...` string as a `reconfig` request carries it (key and value around the
/// first `=`), with ZooKeeper's rule for joiners: the client port is required.
pub fn parse_server_line(line: &str) -> Result<ServerEntry, String> {
    let (key, value) = line
        .split_once('=')
        .ok_or_else(|| format!("\"{line}\" is not server.N=<server spec>"))?;
    let key = key.trim();
    if !key.starts_with("server.") {
        return Err(format!("\"{key}\" is not server.N"));
    }
    let server = parse_server(key, value.trim(), false)?;
    if server.client_port.is_none() {
        return Err(format!(
            "\"{line}\" has no client port (each server needs three ports)"
        ));
    }
    Ok(server)
}

impl ServerEntry {
    /// `host:quorumPort:electionPort[;clientAddress:clientPort]`: the line without its role,
    /// as consensus keeps it for each member.
    pub fn spec(&self) -> String {
        let mut text = format!(
            "{}:{}:{}",
            bracket(&self.host),
            self.quorum_port,
            self.election_port
        );
        if let Some(port) = self.client_port {
            let address = self.client_address.as_deref().unwrap_or("0.0.0.0");
            text.push_str(&format!(";{}:{port}", bracket(address)));
        }
        text
    }

    /// The value of this server's line in ZooKeeper's dynamic-config format, role included.
    pub fn line_value(&self, role: PeerRole) -> String {
        let role = match role {
            PeerRole::Participant => "participant",
            PeerRole::Observer => "observer",
        };
        let spec = self.spec();
        match spec.split_once(';') {
            Some((server, client)) => format!("{server}:{role};{client}"),
            None => format!("{spec}:{role}"),
        }
    }
}

/// IPv6 literals go in brackets, as ZooKeeper writes them.
fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}
