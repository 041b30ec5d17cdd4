//! `config`: what a zkw server is told at startup, read from zoo.cfg or zkw.toml and validated.
//!
//! Owns the [`Config`] value, its defaults, and [`Config::load`], which picks the syntax by file
//! extension (`.toml` = zkw.toml, anything else = Java-properties zoo.cfg), applies ZooKeeper's
//! key names, checks every value against the hard ceilings below, reads `<dataDir>/myid` for an
//! ensemble, and returns warnings (unknown keys, adjusted values) for the caller to log. A bad
//! value is a [`ConfigError`] whose message names file, line and key, so the server refuses to
//! start instead of guessing. It must not know about sockets, the tree or consensus; it does no
//! I/O beyond reading the config file, an optional dynamic config file and `myid`.
//!
//! Defaults: with no file at all zkw runs standalone on port 2181 with dataDir `./data`.
//! tickTime defaults to 2000 ms, the value of ZooKeeper's shipped sample zoo.cfg (ZooKeeper's
//! code default is 3000 ms) so that "no config" and "the sample config" behave the same.
//! Relative paths (dataDir, dataLogDir, dynamicConfigFile) are kept relative, which resolves them
//! against the server's current directory exactly as ZooKeeper's `new File(value)` does.

mod keys;
mod properties;
mod servers;
mod tls;
mod toml_file;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::proto::FourLetterWord;
pub use servers::{parse_server_line, read_my_id};
pub use tls::{
    ClientAuth, PemFile, TlsConfig, TlsSettings, TlsVersion, TLS_CIPHER_SUITES_SUPPORTED,
    TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT, TLS_HANDSHAKE_TIMEOUT_MS_MAX, TLS_PEM_FILE_BYTES_MAX,
};

/// Smallest tickTime accepted, in milliseconds.
pub const TICK_TIME_MS_MIN: u32 = 1;
/// Largest tickTime accepted, in milliseconds (one minute; every timeout scales with it).
pub const TICK_TIME_MS_MAX: u32 = 60_000;
/// tickTime when none is configured, in milliseconds (ZooKeeper's sample zoo.cfg).
pub const TICK_TIME_MS_DEFAULT: u32 = 2_000;
/// Default minSessionTimeout, in ticks.
pub const SESSION_TIMEOUT_TICKS_MIN_DEFAULT: u32 = 2;
/// Default maxSessionTimeout, in ticks.
pub const SESSION_TIMEOUT_TICKS_MAX_DEFAULT: u32 = 20;
/// Smallest session timeout bound accepted, in milliseconds.
pub const SESSION_TIMEOUT_MS_MIN: u32 = 1;
/// Largest session timeout bound accepted, in milliseconds (one day).
pub const SESSION_TIMEOUT_MS_MAX: u32 = 86_400_000;
/// Largest initLimit / syncLimit accepted, in ticks.
pub const LIMIT_TICKS_MAX: u32 = 100_000;
/// Largest maxClientCnxns accepted (connections per client IP; 0 means unlimited).
pub const CLIENT_CONNECTIONS_PER_IP_MAX: u32 = 1_000_000;
/// Default `zkw.maxWatchesPerSession`: paths one session may watch on its server. ZooKeeper has
/// no such cap. Generous: a Curator cache of a whole tree needs one persistent-recursive watch.
pub const WATCHES_PER_SESSION_DEFAULT: u32 = 100_000;
/// Largest `zkw.maxWatchesPerSession` accepted.
pub const WATCHES_PER_SESSION_MAX: u32 = 1_000_000_000;
/// ZooKeeper's default jute.maxbuffer, in bytes (0xfffff).
pub const JUTE_MAX_BUFFER_BYTES_DEFAULT: usize = 0xfffff;
/// Smallest jute.maxbuffer accepted, in bytes: a connect request must still fit.
pub const JUTE_MAX_BUFFER_BYTES_MIN: usize = 1_024;
/// Largest jute.maxbuffer accepted, in bytes (256 MiB).
pub const JUTE_MAX_BUFFER_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Smallest snapCount accepted, in txns (ZooKeeper forces at least 2).
pub const SNAP_COUNT_MIN: u64 = 2;
/// Largest snapCount accepted, in txns.
pub const SNAP_COUNT_MAX: u64 = 1_000_000_000;
/// Default commitLogCount: committed entries a server keeps in its log behind its newest
/// snapshot, so a follower that far behind catches up by log entries instead of a whole
/// snapshot (ZooKeeper's `zookeeper.commitLogCount`, whose default is 500).
pub const COMMIT_LOG_COUNT_DEFAULT: u64 = 1_000;
/// Largest commitLogCount accepted, in txns.
pub const COMMIT_LOG_COUNT_MAX: u64 = 1_000_000_000;
/// Fewest snapshots autopurge keeps; smaller values are raised to it, as ZooKeeper does.
pub const AUTOPURGE_SNAP_RETAIN_COUNT_MIN: u32 = 3;
/// Largest autopurge.purgeInterval accepted, in hours (one year).
pub const AUTOPURGE_PURGE_INTERVAL_HOURS_MAX: u32 = 8_760;
/// Smallest znode.container.checkIntervalMs accepted, in milliseconds.
pub const CONTAINER_CHECK_INTERVAL_MS_MIN: u64 = 1;
/// Largest znode.container.checkIntervalMs accepted, in milliseconds (one day).
pub const CONTAINER_CHECK_INTERVAL_MS_MAX: u64 = 86_400_000;
/// Largest admin.idleTimeout accepted, in milliseconds (one day).
pub const ADMIN_IDLE_TIMEOUT_MS_MAX: u64 = 86_400_000;
/// Smallest server id (`server.N`, `myid`).
pub const SERVER_ID_MIN: u64 = 1;
/// Largest server id: the id fills the top byte of every session id.
pub const SERVER_ID_MAX: u64 = 255;
/// Largest server id with extendedTypesEnabled: 255 is reserved to mark TTL nodes.
pub const SERVER_ID_EXTENDED_TYPES_MAX: u64 = 254;
/// Smallest TCP port accepted for a listener.
pub const PORT_MIN: u16 = 1;
/// The only leader election algorithm ZooKeeper 3.8 still accepts.
pub const ELECTION_ALGORITHM_SUPPORTED: u32 = 3;
/// Largest config file read, in bytes: a config is text, never this large.
pub const CONFIG_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// `zkw.recipe.txnFuelMax` when none is configured: the fuel all recipe runs one txn causes
/// (validators, calls, events, timers) may use together; 100 runs at the default per-run fuel,
/// about a second of wasm. ZooKeeper has no recipes, so no equivalent.
pub const RECIPE_TXN_FUEL_DEFAULT: u64 = 1_000_000_000;
/// Smallest `zkw.recipe.txnFuelMax` accepted.
pub const RECIPE_TXN_FUEL_MIN: u64 = 1;
/// `snapshotChunkBytes`: bytes of snapshot per quorum-port message, the default and the most
/// (ZooKeeper streams its snapshot on the learner socket).
pub const SNAPSHOT_CHUNK_BYTES: usize = 64 * 1024 * 1024;

const _: () = assert!(TICK_TIME_MS_DEFAULT >= TICK_TIME_MS_MIN);
const _: () = assert!(TICK_TIME_MS_DEFAULT <= TICK_TIME_MS_MAX);
const _: () = assert!(
    TICK_TIME_MS_MAX as u64 * SESSION_TIMEOUT_TICKS_MAX_DEFAULT as u64
        <= SESSION_TIMEOUT_MS_MAX as u64
);
const _: () = assert!(JUTE_MAX_BUFFER_BYTES_MIN <= JUTE_MAX_BUFFER_BYTES_DEFAULT);
const _: () = assert!(JUTE_MAX_BUFFER_BYTES_DEFAULT <= JUTE_MAX_BUFFER_BYTES_MAX);
const _: () = assert!(SERVER_ID_EXTENDED_TYPES_MAX < SERVER_ID_MAX);

/// Which four-letter words the client port answers (`4lw.commands.whitelist`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    /// `*`: every command.
    All,
    /// Only these (always includes `srvr`, which `zkw server status` needs).
    Only(BTreeSet<FourLetterWord>),
}

impl FourLetterWhitelist {
    /// Whether `word` may run.
    pub fn allows(&self, word: FourLetterWord) -> bool {
        match self {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(words) => words.contains(&word),
        }
    }
}

/// A server's part in the ensemble (`:participant` / `:observer`, `peerType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// Votes (a Raft voter).
    Participant,
    /// Does not vote (a Raft learner).
    Observer,
}

/// One `server.N=host:quorumPort:electionPort[:role][;[clientAddress:]clientPort]` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEntry {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub role: PeerRole,
    pub client_address: Option<String>,
    pub client_port: Option<u16>,
}

/// The HTTP admin server (`admin.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    pub enable_server: bool,
    pub server_address: String,
    pub server_port: u16,
    pub command_url: String,
    /// `admin.idleTimeout`: how long an idle HTTP connection is kept, in milliseconds.
    pub idle_timeout_ms: u64,
    /// `admin.authRequired` (zkw's key): the commands that list sessions, connections and
    /// watched paths answer only a caller whose `Authorization` header proves ALL permissions
    /// on `/` (or super), as ZooKeeper 3.9 guards its snapshot/restore/shed commands.
    pub auth_required: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enable_server: true,
            server_address: "0.0.0.0".to_owned(),
            server_port: 8080,
            command_url: "/commands".to_owned(),
            idle_timeout_ms: 30_000,
            auth_required: false,
        }
    }
}

/// The Prometheus endpoint (`metricsProvider.*`); off unless a className is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub provider_class_name: Option<String>,
    pub http_host: String,
    pub http_port: u16,
    /// `metricsProvider.exportJvmInfo`: accepted for compatibility; zkw has no JVM to export.
    pub export_jvm_info: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            provider_class_name: None,
            http_host: "0.0.0.0".to_owned(),
            http_port: 7000,
            export_jvm_info: true,
        }
    }
}

/// `quorum.auth.*`: ZooKeeper's quorum authentication keys, with the shared secret in a file
/// (see docs/security.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumAuthConfig {
    /// `quorum.auth.enableSasl`: prove the secret to peers and check their proofs.
    pub enable_sasl: bool,
    /// `quorum.auth.learnerRequireSasl`: refuse a peer that accepts without a proof.
    pub learner_require_sasl: bool,
    /// `quorum.auth.serverRequireSasl`: refuse a peer that dials without a proof.
    pub server_require_sasl: bool,
    /// `quorum.auth.secretFile` (zkw's): the file holding the shared secret, read at start.
    pub secret_file: Option<PathBuf>,
}

/// Everything a server is configured with. Field names follow zoo.cfg keys, with units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file this was loaded from; `None` for the embedded default.
    pub source: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit_ticks: u32,
    pub sync_limit_ticks: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    /// `maxClientCnxns`: connections per client IP; 0 = unlimited.
    pub max_client_connections: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub autopurge_snap_retain_count: u32,
    /// 0 = autopurge disabled.
    pub autopurge_purge_interval_hours: u32,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    pub jute_max_buffer_bytes: usize,
    pub extended_types_enabled: bool,
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    pub snap_count: u64,
    /// commitLogCount: entries kept in the log behind the newest snapshot.
    pub commit_log_count: u64,
    pub container_check_interval_ms: u64,
    /// `zkw.maxWatchesPerSession`: paths one session may watch; past it a registration is
    /// answered QuotaExceeded (see docs/security.md).
    pub max_watches_per_session: u32,
    /// The ensemble (`server.N` lines, from this file or dynamicConfigFile), sorted by id.
    pub servers: Vec<ServerEntry>,
    /// From `<dataDir>/myid`; read whenever `server.N` lines exist and the file is there.
    pub my_id: Option<u64>,
    /// `DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`.
    pub super_digest: Option<String>,
    /// `zkw.recipe.adminIdentity=digest:user:<base64 sha1>`, kept as `user:<base64 sha1>`:
    /// this digest user may install, change and remove recipes (as super may).
    pub recipe_admin_digest: Option<String>,
    /// `zkw.recipe.txnFuelMax`: fuel all recipe runs of one txn may use together; a client
    /// txn past it is refused. Must be equal on every member (the leader's recipe runtime
    /// check compares it).
    pub recipe_txn_fuel_max: u64,
    pub secure_client_port: Option<u16>,
    pub secure_client_port_address: Option<IpAddr>,
    /// `ssl.*`, `ssl.quorum.*`, `sslQuorum` (see docs/tls.md).
    pub tls: TlsConfig,
    /// `quorum.auth.*`.
    pub quorum_auth: QuorumAuthConfig,
    /// `snapshotChunkBytes` (zkw's): bytes of snapshot per quorum-port message.
    pub snapshot_chunk_bytes: usize,
    /// `peerType`: this server's own role.
    pub peer_type: PeerRole,
    pub dynamic_config_file: Option<PathBuf>,
    pub election_algorithm: u32,
    pub sync_enabled: bool,
    pub quorum_listen_on_all_ips: bool,
    pub local_sessions_enabled: bool,
    pub local_sessions_upgrading_enabled: bool,
    /// `readonlymode.enabled` (a JVM property in ZooKeeper, a key here): adds `isro` to the
    /// default 4lw whitelist and lets a partitioned server serve read-only clients.
    pub read_only_mode_enabled: bool,
    /// Failpoints to arm (`STEP=file:PATH,...`; see `consensus::failpoint`), from the
    /// `ZKW_FAILPOINTS` environment variable, never from a config file: test builds only.
    pub failpoints: String,
    /// Where the server writes its process id once it takes clients (and `zkw server start`
    /// looks for it): set by `zkw server start-foreground`, never from a config file.
    pub pid_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        let tick_time_ms = TICK_TIME_MS_DEFAULT;
        Config {
            source: None,
            tick_time_ms,
            init_limit_ticks: 10,
            sync_limit_ticks: 5,
            data_dir: PathBuf::from("./data"),
            data_log_dir: None,
            client_port: 2181,
            client_port_address: None,
            max_client_connections: 60,
            min_session_timeout_ms: tick_time_ms * SESSION_TIMEOUT_TICKS_MIN_DEFAULT,
            max_session_timeout_ms: tick_time_ms * SESSION_TIMEOUT_TICKS_MAX_DEFAULT,
            autopurge_snap_retain_count: AUTOPURGE_SNAP_RETAIN_COUNT_MIN,
            autopurge_purge_interval_hours: 0,
            four_letter_whitelist: default_whitelist(false),
            admin: AdminConfig::default(),
            metrics: MetricsConfig::default(),
            jute_max_buffer_bytes: JUTE_MAX_BUFFER_BYTES_DEFAULT,
            extended_types_enabled: false,
            standalone_enabled: true,
            reconfig_enabled: false,
            snap_count: 100_000,
            commit_log_count: COMMIT_LOG_COUNT_DEFAULT,
            container_check_interval_ms: 60_000,
            max_watches_per_session: WATCHES_PER_SESSION_DEFAULT,
            servers: Vec::new(),
            my_id: None,
            super_digest: None,
            recipe_admin_digest: None,
            recipe_txn_fuel_max: RECIPE_TXN_FUEL_DEFAULT,
            secure_client_port: None,
            secure_client_port_address: None,
            tls: TlsConfig::default(),
            peer_type: PeerRole::Participant,
            dynamic_config_file: None,
            election_algorithm: ELECTION_ALGORITHM_SUPPORTED,
            sync_enabled: true,
            quorum_listen_on_all_ips: false,
            local_sessions_enabled: false,
            local_sessions_upgrading_enabled: false,
            read_only_mode_enabled: false,
            failpoints: String::new(),
            pid_file: None,
            quorum_auth: QuorumAuthConfig::default(),
            snapshot_chunk_bytes: SNAPSHOT_CHUNK_BYTES,
        }
    }
}

/// The whitelist when none is configured: `srvr`, plus `isro` in read-only mode.
pub fn default_whitelist(read_only_mode_enabled: bool) -> FourLetterWhitelist {
    let mut words = BTreeSet::from([FourLetterWord::Srvr]);
    if read_only_mode_enabled {
        words.insert(FourLetterWord::Isro);
    }
    FourLetterWhitelist::Only(words)
}

impl Config {
    /// Reads and validates a config file: `.toml` = zkw.toml, anything else = zoo.cfg syntax.
    /// Relative paths inside stay relative to the current directory, as in ZooKeeper.
    pub fn load(path: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let text = read_text(path)?;
        let file = path.display().to_string();
        let entries = parse_entries(path, &text)?;
        let (mut config, warnings) = keys::build(&file, entries)?;
        config.source = Some(path.to_path_buf());
        Ok((config, warnings))
    }

    /// Whether this server runs as part of an ensemble rather than standalone: more than one
    /// voter, or `standaloneEnabled=false` with any `server.N` line (ZooKeeper's rule).
    pub fn is_distributed(&self) -> bool {
        let voter_count = self
            .servers
            .iter()
            .filter(|server| server.role == PeerRole::Participant)
            .count();
        voter_count > 1 || (!self.standalone_enabled && !self.servers.is_empty())
    }

    /// Where the transaction log lives: dataLogDir, else dataDir.
    pub fn log_dir(&self) -> &Path {
        self.data_log_dir.as_deref().unwrap_or(&self.data_dir)
    }
}

/// The entries of `text`, read from `path`: `.toml` = zkw.toml, anything else = zoo.cfg syntax.
fn parse_entries(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let is_toml = path
        .extension()
        .is_some_and(|extension| extension == "toml");
    let parsed = if is_toml {
        toml_file::parse(text)
    } else {
        properties::parse(text)
    };
    parsed.map_err(|error| ConfigError::Syntax {
        file: path.display().to_string(),
        line: error.line,
        reason: error.reason,
    })
}

/// What a secret value is shown as.
pub const REDACTED: &str = "********";

/// Keys whose values are secrets (superDigest, the recipe admin identity's digest, every
/// password, any secret): never shown by
/// the AdminServer nor logged. ZooKeeper's `conf` shows none of them either.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "superdigest",
        "adminidentity",
    ]
    .iter()
    .any(|word| key.contains(word))
}

/// The config file at `path` as text, each secret's value replaced by [`REDACTED`] (the keys
/// found by the same syntax the server read it with; the continuation lines of a secret go).
pub fn redacted_text(path: &Path) -> Result<String, ConfigError> {
    let text = read_text(path)?;
    let secret_lines: BTreeSet<u32> = parse_entries(path, &text)?
        .into_iter()
        .filter(|entry| is_secret_key(&entry.key))
        .map(|entry| entry.line)
        .collect();
    Ok(redact_lines(&text, &secret_lines))
}

/// `text` with the value on each line of `secret_lines` (1-based) replaced.
fn redact_lines(text: &str, secret_lines: &BTreeSet<u32>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut continued = false;
    for (number, line) in (1u32..).zip(text.lines()) {
        if continued {
            continued = line.ends_with('\\');
            continue;
        }
        if secret_lines.contains(&number) {
            // The key ends at the first `=`, `:` or blank (either syntax).
            let indent = line.len() - line.trim_start().len();
            let key_end = line
                .get(indent..)
                .and_then(|key| key.find(['=', ':', ' ', '\t']))
                .map_or(line.len(), |at| indent + at);
            out.push_str(line.get(..key_end).unwrap_or_default());
            out.push('=');
            out.push_str(REDACTED);
            continued = line.ends_with('\\');
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Reads a UTF-8 file; bytes that are not UTF-8 are read as ISO-8859-1, the encoding Java's
/// `Properties.load(InputStream)` assumes, so an old zoo.cfg with Latin-1 comments still loads.
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let read_error = |source: std::io::Error| ConfigError::Read {
        file: path.display().to_string(),
        source,
    };
    let length = std::fs::metadata(path).map_err(read_error)?.len();
    if length > CONFIG_FILE_BYTES_MAX {
        return Err(ConfigError::Invalid {
            file: path.display().to_string(),
            reason: format!("{length} bytes is larger than {CONFIG_FILE_BYTES_MAX}"),
        });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => error
            .into_bytes()
            .iter()
            .map(|&byte| char::from(byte))
            .collect(),
    })
}

/// One config entry as read from either syntax: key, raw value, 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: String,
    pub line: u32,
}

/// Why a config refuses to load. Every message starts with the file (and line when one applies).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid zoo.cfg / TOML syntax.
    #[error("{file}:{line}: {reason}")]
    Syntax {
        file: String,
        line: u32,
        reason: String,
    },
    /// A key has a bad value, e.g. `zoo.cfg:7: tickTime: "abc" is not a whole number`.
    #[error("{file}:{line}: {key}: {reason}")]
    Value {
        file: String,
        line: u32,
        key: String,
        reason: String,
    },
    /// A problem that belongs to no single line, or to another file (`myid`).
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
}

/// Something odd but survivable in a config: the server starts and the cli logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: String,
    pub line: u32,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}:{}: {}: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap (house rule)
mod tests;
