//! The meaning of each zoo.cfg key: entries in, a validated [`Config`] plus warnings out.
//!
//! Both syntaxes arrive here as [`Entry`] lists. Keys and values are trimmed (ZooKeeper trims
//! both); the last occurrence of a key wins, as with `java.util.Properties`. Keys that ZooKeeper
//! reads as JVM system properties are also accepted with their `zookeeper.` prefix. After every
//! key is applied, [`Builder::finish`] fills the defaults that depend on others (session
//! timeouts from tickTime, the 4lw whitelist) and checks the rules that span keys.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use super::servers;
use super::tls::{self, RawTls};
use super::*;

/// ZooKeeper keys zkw accepts and ignores (SASL, tuning knobs of the JVM server, the TLS keys
/// zkw has no use for, such as `ssl.sslProvider`; the ones it reads are in `config::tls`).
const IGNORED_KEY_PREFIXES: [&str; 13] = [
    "ssl.",
    "portUnification",
    "serverCnxnFactory",
    "authProvider.",
    "quorum.auth.",
    "clientPortListenBacklog",
    "maxCnxns",
    "connectToLearnerMasterLimit",
    "multiAddress.",
    "globalOutstandingLimit",
    "preAllocSize",
    "forceSync",
    "digest.enabled",
];

/// Keys that are JVM system properties in ZooKeeper and may carry the `zookeeper.` prefix.
const SYSTEM_PROPERTY_KEYS: [&str; 8] = [
    "4lw.commands.whitelist",
    "extendedTypesEnabled",
    "snapCount",
    "commitLogCount",
    "znode.container.checkIntervalMs",
    "DigestAuthenticationProvider.superDigest",
    "admin.enableServer",
    "admin.serverPort",
];

/// Accumulates a [`Config`] from entries, remembering the line each key came from.
pub(crate) struct Builder<'file> {
    file: &'file str,
    config: Config,
    warnings: Vec<ConfigWarning>,
    /// Canonical key -> line it was set on, for errors that involve two keys.
    lines: BTreeMap<String, u32>,
    min_session_timeout_ms: Option<u32>,
    max_session_timeout_ms: Option<u32>,
    whitelist: Option<FourLetterWhitelist>,
    client_port_set: bool,
    server_entries: Vec<Entry>,
    raw_tls: RawTls,
}

/// Applies `entries` (in file order) and validates the result.
pub(crate) fn build(
    file: &str,
    entries: Vec<Entry>,
) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
    let mut builder = Builder {
        file,
        config: Config::default(),
        warnings: Vec::new(),
        lines: BTreeMap::new(),
        min_session_timeout_ms: None,
        max_session_timeout_ms: None,
        whitelist: None,
        client_port_set: false,
        server_entries: Vec::new(),
        raw_tls: RawTls::default(),
    };
    for entry in last_occurrences(file, entries, &mut builder.warnings) {
        builder.apply(&entry)?;
    }
    builder.finish()
}

/// Keeps the last entry of every key (trimmed), warning about the overridden ones.
fn last_occurrences(
    file: &str,
    entries: Vec<Entry>,
    warnings: &mut Vec<ConfigWarning>,
) -> Vec<Entry> {
    let mut latest: BTreeMap<String, Entry> = BTreeMap::new();
    for entry in entries {
        let entry = Entry {
            key: entry.key.trim().to_owned(),
            value: entry.value.trim().to_owned(),
            line: entry.line,
        };
        if let Some(earlier) = latest.insert(entry.key.clone(), entry.clone()) {
            warnings.push(ConfigWarning {
                file: file.to_owned(),
                line: earlier.line,
                key: earlier.key,
                message: format!("set again on line {}; the later value wins", entry.line),
            });
        }
    }
    let mut kept: Vec<Entry> = latest.into_values().collect();
    kept.sort_by_key(|entry| entry.line);
    kept
}

/// The key without a `zookeeper.` prefix, when it names a system-property key.
fn canonical(key: &str) -> &str {
    if let Some(tls_key) = tls::canonical(key) {
        return tls_key;
    }
    match key.strip_prefix("zookeeper.") {
        Some(rest) if SYSTEM_PROPERTY_KEYS.contains(&rest) => rest,
        _ => key,
    }
}

impl Builder<'_> {
    fn apply(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let key = canonical(&entry.key).to_owned();
        self.lines.insert(key.clone(), entry.line);
        let handled = self.apply_core(&key, entry)?
            || self.apply_session(&key, entry)?
            || self.apply_services(&key, entry)?
            || self.apply_quorum(&key, entry)?
            || self.apply_recipes(&key, entry)?
            || self.apply_tls(&key, entry)?;
        if !handled {
            self.warn_unhandled(&key, entry)?;
        }
        Ok(())
    }

    /// Time, directories, client ports.
    fn apply_core(&mut self, key: &str, entry: &Entry) -> Result<bool, ConfigError> {
        let value = entry.value.as_str();
        match key {
            "tickTime" => {
                self.config.tick_time_ms =
                    self.check(entry, whole(value, TICK_TIME_MS_MIN, TICK_TIME_MS_MAX))?;
            }
            "initLimit" => {
                self.config.init_limit_ticks =
                    self.check(entry, whole(value, 1, LIMIT_TICKS_MAX))?;
            }
            "syncLimit" => {
                self.config.sync_limit_ticks =
                    self.check(entry, whole(value, 1, LIMIT_TICKS_MAX))?;
            }
            "dataDir" => self.config.data_dir = self.checked_path(entry)?,
            "dataLogDir" => self.config.data_log_dir = Some(self.checked_path(entry)?),
            "clientPort" => {
                self.config.client_port = self.check(entry, port(value))?;
                self.client_port_set = true;
            }
            "clientPortAddress" => {
                self.config.client_port_address = Some(self.check(entry, address(value))?);
            }
            "secureClientPort" => {
                self.config.secure_client_port = Some(self.check(entry, port(value))?)
            }
            "secureClientPortAddress" => {
                self.config.secure_client_port_address = Some(self.check(entry, address(value))?);
            }
            "maxClientCnxns" => {
                self.config.max_client_connections =
                    self.check(entry, whole(value, 0, CLIENT_CONNECTIONS_PER_IP_MAX))?;
            }
            "jute.maxbuffer" => {
                self.config.jute_max_buffer_bytes = self.check(entry, jute_max_buffer(value))?;
            }
            "snapCount" => {
                self.config.snap_count =
                    self.check(entry, whole(value, SNAP_COUNT_MIN, SNAP_COUNT_MAX))?;
            }
            "commitLogCount" => {
                self.config.commit_log_count =
                    self.check(entry, whole(value, 0, COMMIT_LOG_COUNT_MAX))?;
            }
            "autopurge.snapRetainCount" => self.apply_snap_retain_count(entry)?,
            "autopurge.purgeInterval" => {
                self.config.autopurge_purge_interval_hours =
                    self.check(entry, whole(value, 0, AUTOPURGE_PURGE_INTERVAL_HOURS_MAX))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Session timeouts and session features.
    fn apply_session(&mut self, key: &str, entry: &Entry) -> Result<bool, ConfigError> {
        let value = entry.value.as_str();
        let timeout = || whole(value, SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX);
        match key {
            "minSessionTimeout" => {
                self.min_session_timeout_ms = Some(self.check(entry, timeout())?)
            }
            "maxSessionTimeout" => {
                self.max_session_timeout_ms = Some(self.check(entry, timeout())?)
            }
            "localSessionsEnabled" => {
                self.config.local_sessions_enabled = self.check(entry, boolean(value))?;
            }
            "localSessionsUpgradingEnabled" => {
                self.config.local_sessions_upgrading_enabled = self.check(entry, boolean(value))?;
            }
            "readonlymode.enabled" => {
                self.config.read_only_mode_enabled = self.check(entry, boolean(value))?;
            }
            "extendedTypesEnabled" => {
                self.config.extended_types_enabled = self.check(entry, boolean(value))?;
            }
            "znode.container.checkIntervalMs" => {
                self.config.container_check_interval_ms = self.check(
                    entry,
                    whole(
                        value,
                        CONTAINER_CHECK_INTERVAL_MS_MIN,
                        CONTAINER_CHECK_INTERVAL_MS_MAX,
                    ),
                )?;
            }
            "zkw.maxWatchesPerSession" => {
                self.config.max_watches_per_session =
                    self.check(entry, whole(value, 1, WATCHES_PER_SESSION_MAX))?;
            }
            "DigestAuthenticationProvider.superDigest" => {
                self.config.super_digest = Some(self.check(entry, super_digest(value))?);
            }
            "4lw.commands.whitelist" => self.whitelist = Some(self.parse_whitelist(entry)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The admin HTTP server and the metrics endpoint.
    fn apply_services(&mut self, key: &str, entry: &Entry) -> Result<bool, ConfigError> {
        let value = entry.value.as_str();
        let admin = &mut self.config.admin;
        match key {
            "admin.enableServer" => admin.enable_server = check(self.file, entry, boolean(value))?,
            "admin.serverAddress" => admin.server_address = check(self.file, entry, host(value))?,
            "admin.serverPort" => admin.server_port = check(self.file, entry, port(value))?,
            "admin.commandURL" => admin.command_url = check(self.file, entry, command_url(value))?,
            "admin.idleTimeout" => {
                admin.idle_timeout_ms =
                    check(self.file, entry, whole(value, 1, ADMIN_IDLE_TIMEOUT_MS_MAX))?;
            }
            "admin.authRequired" => admin.auth_required = check(self.file, entry, boolean(value))?,
            "metricsProvider.className" => {
                self.config.metrics.provider_class_name =
                    Some(value.to_owned()).filter(|name| !name.is_empty());
            }
            "metricsProvider.httpHost" => {
                self.config.metrics.http_host = self.check(entry, host(value))?;
            }
            "metricsProvider.httpPort" => {
                self.config.metrics.http_port = self.check(entry, port(value))?
            }
            "metricsProvider.exportJvmInfo" => {
                self.config.metrics.export_jvm_info = self.check(entry, boolean(value))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Recipe keys (zkw's own: ZooKeeper has no recipes).
    fn apply_recipes(&mut self, key: &str, entry: &Entry) -> Result<bool, ConfigError> {
        let value = entry.value.as_str();
        match key {
            "zkw.recipe.adminIdentity" => {
                self.config.recipe_admin_digest = Some(self.check(entry, admin_identity(value))?);
            }
            "zkw.recipe.txnFuelMax" => {
                self.config.recipe_txn_fuel_max =
                    self.check(entry, whole(value, RECIPE_TXN_FUEL_MIN, u64::MAX))?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Ensemble keys. `server.N` lines are collected and parsed in `finish`.
    fn apply_quorum(&mut self, key: &str, entry: &Entry) -> Result<bool, ConfigError> {
        let value = entry.value.as_str();
        match key {
            "standaloneEnabled" => {
                self.config.standalone_enabled = self.check(entry, boolean(value))?
            }
            "reconfigEnabled" => {
                self.config.reconfig_enabled = self.check(entry, boolean(value))?
            }
            "syncEnabled" => self.config.sync_enabled = self.check(entry, boolean(value))?,
            "quorumListenOnAllIPs" => {
                self.config.quorum_listen_on_all_ips = self.check(entry, boolean(value))?;
            }
            "peerType" => self.config.peer_type = self.check(entry, servers::role(value))?,
            "electionAlg" => {
                let algorithm = self.check(entry, whole(value, 0, u32::MAX))?;
                if algorithm != ELECTION_ALGORITHM_SUPPORTED {
                    return Err(self.error(
                        entry,
                        format!(
                            "{algorithm} is not supported; only {ELECTION_ALGORITHM_SUPPORTED} is"
                        ),
                    ));
                }
                self.config.election_algorithm = algorithm;
            }
            "quorum.auth.enableSasl" => {
                self.config.quorum_auth.enable_sasl = self.check(entry, boolean(value))?;
            }
            "quorum.auth.learnerRequireSasl" => {
                self.config.quorum_auth.learner_require_sasl = self.check(entry, boolean(value))?;
            }
            "quorum.auth.serverRequireSasl" => {
                self.config.quorum_auth.server_require_sasl = self.check(entry, boolean(value))?;
            }
            "snapshotChunkBytes" => {
                let max = SNAPSHOT_CHUNK_BYTES;
                self.config.snapshot_chunk_bytes = self.check(entry, whole(value, 1, max))?;
            }
            "quorum.auth.secretFile" => {
                self.config.quorum_auth.secret_file = Some(self.check(entry, path(value))?);
            }
            "dynamicConfigFile" => {
                self.config.dynamic_config_file = Some(self.check(entry, path(value))?)
            }
            _ if key.starts_with("server.") => self.server_entries.push(entry.clone()),
            _ if key.starts_with("group.") || key.starts_with("weight.") => {
                return Err(self.error(
                    entry,
                    "hierarchical quorums (group.N / weight.N) are not supported".into(),
                ));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn warn_unhandled(&mut self, key: &str, entry: &Entry) -> Result<(), ConfigError> {
        let message = if IGNORED_KEY_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
        {
            "a ZooKeeper key zkw does not use; ignored"
        } else {
            "unknown key; ignored"
        };
        self.warn(entry, message.to_owned());
        Ok(())
    }

    /// A directory path. Like ZooKeeper's `VerifyingFileFactory`, a relative path is accepted
    /// (resolved against the current directory) but warned about unless it starts with `./`.
    fn checked_path(&mut self, entry: &Entry) -> Result<PathBuf, ConfigError> {
        let directory = self.check(entry, path(&entry.value))?;
        if directory.is_relative() && !entry.value.starts_with("./") {
            let message = "is relative to the current directory; prepend ./ to show you mean it";
            self.warn(entry, message.to_owned());
        }
        Ok(directory)
    }

    fn apply_snap_retain_count(&mut self, entry: &Entry) -> Result<(), ConfigError> {
        let count: u32 = self.check(entry, whole(&entry.value, 0, u32::MAX))?;
        if count < AUTOPURGE_SNAP_RETAIN_COUNT_MIN {
            // ZooKeeper raises it rather than refusing to start; so do we, loudly.
            self.warn(entry, format!("{count} is below {AUTOPURGE_SNAP_RETAIN_COUNT_MIN}; using {AUTOPURGE_SNAP_RETAIN_COUNT_MIN}"));
        }
        self.config.autopurge_snap_retain_count = count.max(AUTOPURGE_SNAP_RETAIN_COUNT_MIN);
        Ok(())
    }

    fn parse_whitelist(&mut self, entry: &Entry) -> FourLetterWhitelist {
        let mut commands = BTreeSet::new();
        for word in entry
            .value
            .split(',')
            .map(str::trim)
            .filter(|word| !word.is_empty())
        {
            if word == "*" {
                return FourLetterWhitelist::All;
            }
            match FourLetterWord::from_name(word) {
                Some(known) => {
                    commands.insert(known);
                }
                // As ZooKeeper: an unknown word only earns a warning (no client can send it).
                None => self.warn(
                    entry,
                    format!("\"{word}\" is not a four-letter word ZooKeeper knows"),
                ),
            }
        }
        FourLetterWhitelist::Only(commands)
    }

    /// Fills dependent defaults, checks cross-key rules, reads the ensemble and `myid`.
    fn finish(mut self) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        // As ZooKeeper: a config file must say where the data lives (only running with no
        // file at all uses the embedded `./data`).
        self.require("dataDir")?;
        self.finish_sessions()?;
        let read_only = self.config.read_only_mode_enabled;
        self.config.four_letter_whitelist = match self.whitelist.take() {
            None => default_whitelist(read_only),
            Some(FourLetterWhitelist::All) => FourLetterWhitelist::All,
            Some(FourLetterWhitelist::Only(mut commands)) => {
                // `zkw server status` (like zkServer.sh) needs srvr, so it is always allowed.
                commands.insert(FourLetterWord::Srvr);
                if read_only {
                    commands.insert(FourLetterWord::Isro);
                }
                FourLetterWhitelist::Only(commands)
            }
        };
        servers::finish(&mut self)?;
        // As ZooKeeper: an ensemble of more than one voter must set its limits.
        let voters = self
            .config
            .servers
            .iter()
            .filter(|server| server.role == PeerRole::Participant)
            .count();
        if voters > 1 {
            self.require("initLimit")?;
            self.require("syncLimit")?;
        }
        self.finish_tls()?;
        self.finish_quorum_auth()?;
        Ok((self.config, self.warnings))
    }

    /// `key` must be set: ZooKeeper's "<key> is not set", naming the file.
    fn require(&self, key: &str) -> Result<(), ConfigError> {
        if self.lines.contains_key(key) {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            file: self.file.to_owned(),
            reason: format!("{key} is not set"),
        })
    }

    /// As ZooKeeper: requiring a proof needs `enableSasl`; zkw's secret comes from a file.
    fn finish_quorum_auth(&self) -> Result<(), ConfigError> {
        let auth = &self.config.quorum_auth;
        for (key, set) in [
            ("quorum.auth.learnerRequireSasl", auth.learner_require_sasl),
            ("quorum.auth.serverRequireSasl", auth.server_require_sasl),
        ] {
            if set && !auth.enable_sasl {
                let reason = "needs quorum.auth.enableSasl=true".to_owned();
                return Err(self.error_at(key, reason));
            }
        }
        if auth.enable_sasl && auth.secret_file.is_none() {
            let reason = "needs quorum.auth.secretFile (the shared secret)".to_owned();
            return Err(self.error_at("quorum.auth.enableSasl", reason));
        }
        Ok(())
    }

    fn finish_sessions(&mut self) -> Result<(), ConfigError> {
        let tick_time_ms = self.config.tick_time_ms;
        let min = self
            .min_session_timeout_ms
            .unwrap_or(tick_time_ms.saturating_mul(SESSION_TIMEOUT_TICKS_MIN_DEFAULT));
        let max = self
            .max_session_timeout_ms
            .unwrap_or(tick_time_ms.saturating_mul(SESSION_TIMEOUT_TICKS_MAX_DEFAULT));
        if min > max {
            let key = if self.min_session_timeout_ms.is_some() {
                "minSessionTimeout"
            } else {
                "maxSessionTimeout"
            };
            return Err(self.error_at(
                key,
                format!("minSessionTimeout ({min} ms) is larger than maxSessionTimeout ({max} ms)"),
            ));
        }
        self.config.min_session_timeout_ms = min;
        self.config.max_session_timeout_ms = max;
        Ok(())
    }

    // --- helpers shared with `servers` ---

    pub(super) fn file(&self) -> &str {
        self.file
    }

    pub(super) fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    pub(super) fn server_entries(&self) -> &[Entry] {
        &self.server_entries
    }

    pub(super) fn client_port_set(&self) -> bool {
        self.client_port_set
    }

    pub(super) fn line_of(&self, key: &str) -> u32 {
        self.lines.get(key).copied().unwrap_or(0)
    }

    fn check<T>(&self, entry: &Entry, result: Result<T, String>) -> Result<T, ConfigError> {
        check(self.file, entry, result)
    }

    pub(super) fn check_value<T>(
        &self,
        entry: &Entry,
        result: Result<T, String>,
    ) -> Result<T, ConfigError> {
        check(self.file, entry, result)
    }

    pub(super) fn raw_tls_mut(&mut self) -> &mut RawTls {
        &mut self.raw_tls
    }

    pub(super) fn error(&self, entry: &Entry, reason: String) -> ConfigError {
        ConfigError::Value {
            file: self.file.to_owned(),
            line: entry.line,
            key: entry.key.clone(),
            reason,
        }
    }

    /// An error about `key`, at the line it was set on (0 when it was not set).
    pub(super) fn error_at(&self, key: &str, reason: String) -> ConfigError {
        ConfigError::Value {
            file: self.file.to_owned(),
            line: self.line_of(key),
            key: key.to_owned(),
            reason,
        }
    }

    pub(super) fn warn(&mut self, entry: &Entry, message: String) {
        self.warnings.push(ConfigWarning {
            file: self.file.to_owned(),
            line: entry.line,
            key: entry.key.clone(),
            message,
        });
    }
}

fn check<T>(file: &str, entry: &Entry, result: Result<T, String>) -> Result<T, ConfigError> {
    result.map_err(|reason| ConfigError::Value {
        file: file.to_owned(),
        line: entry.line,
        key: entry.key.clone(),
        reason,
    })
}

// --- value parsers: each returns the reason text of a `ConfigError::Value` ---

/// A decimal whole number in `[min, max]` (Java's `Integer.parseInt` accepts a leading `+`).
pub(super) fn whole<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let out_of_range = || format!("{value} is not between {min} and {max}");
    let negative = value.starts_with('-');
    let body = value.strip_prefix(['+', '-']).unwrap_or(value);
    if body.is_empty() || !body.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("\"{value}\" is not a whole number"));
    }
    if negative && body.bytes().any(|byte| byte != b'0') {
        return Err(out_of_range());
    }
    // All digits, so a parse failure can only be overflow.
    let number: T = body.parse().map_err(|_| out_of_range())?;
    if number < min || number > max {
        return Err(out_of_range());
    }
    Ok(number)
}

/// `true` or `false`, any case (ZooKeeper's `parseBoolean` for zoo.cfg keys).
pub(super) fn boolean(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("\"{value}\" is not true or false")),
    }
}

/// A listening port, 1..=65535.
pub(super) fn port(value: &str) -> Result<u16, String> {
    whole(value, PORT_MIN, u16::MAX)
}

fn path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("is empty; a directory or file path is required".to_owned());
    }
    Ok(PathBuf::from(value))
}

/// An IP address to bind; `localhost` is accepted and means loopback.
pub(super) fn address(value: &str) -> Result<IpAddr, String> {
    if value.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    let bare = value
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(value);
    bare.parse()
        .map_err(|_| format!("\"{value}\" is not an IP address"))
}

/// A host name or address: non-empty, no whitespace.
fn host(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(format!("\"{value}\" is not a host name or address"));
    }
    Ok(value.to_owned())
}

fn command_url(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err(format!("\"{value}\" must start with /"));
    }
    Ok(value.to_owned())
}

/// `jute.maxbuffer` is read by Java's `Integer.decode`: decimal, `0x`/`#` hex, or 0-led octal.
fn jute_max_buffer(value: &str) -> Result<usize, String> {
    let not_number = || format!("\"{value}\" is not a whole number (decimal or 0x hex)");
    let number = if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .or_else(|| value.strip_prefix('#'))
    {
        usize::from_str_radix(hex, 16).map_err(|_| not_number())?
    } else if value.len() > 1 && value.starts_with('0') {
        usize::from_str_radix(&value[1..], 8).map_err(|_| not_number())?
    } else {
        whole(value, 0, usize::MAX).map_err(|_| not_number())?
    };
    if !(JUTE_MAX_BUFFER_BYTES_MIN..=JUTE_MAX_BUFFER_BYTES_MAX).contains(&number) {
        return Err(format!(
            "{value} is not between {JUTE_MAX_BUFFER_BYTES_MIN} and {JUTE_MAX_BUFFER_BYTES_MAX} bytes"
        ));
    }
    Ok(number)
}

/// `digest:user:base64(sha1(user:password))`, kept without its `digest:` scheme.
fn admin_identity(value: &str) -> Result<String, String> {
    value
        .strip_prefix("digest:")
        .and_then(|digest| super_digest(digest).ok())
        .ok_or_else(|| format!("\"{value}\" is not digest:user:base64-digest"))
}

/// `user:base64(sha1(user:password))`, as printed by `DigestAuthenticationProvider.generateDigest`.
fn super_digest(value: &str) -> Result<String, String> {
    match value.split_once(':') {
        Some((user, digest)) if !user.is_empty() && !digest.is_empty() => Ok(value.to_owned()),
        // The value is a secret: the error does not repeat it.
        _ => Err("is not user:base64-digest".to_owned()),
    }
}
