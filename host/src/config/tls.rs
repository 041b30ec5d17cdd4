//! The TLS keys of zoo.cfg: `ssl.*` for the secure client port, `ssl.quorum.*` and `sslQuorum`
//! for the peer transport (both also with the `zookeeper.` prefix ZooKeeper's system
//! properties carry). Owns [`TlsConfig`] and the checks made at load time: key and trust
//! stores must be readable PEM files (JKS and PKCS12 are refused with a hint to convert),
//! an encrypted private key is refused, protocols and cipher suites must be ones zkw's TLS
//! library implements. Building the actual TLS contexts is `server::tls`'s job.

use std::path::PathBuf;

use super::keys::{boolean, Builder};
use super::{ConfigError, Entry};

/// Largest key store or trust store file read, in bytes (a PEM bundle is a few KiB).
pub const TLS_PEM_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// ZooKeeper's default `ssl.handshakeDetectionTimeoutMillis`, in milliseconds.
pub const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Largest `ssl.handshakeDetectionTimeoutMillis` accepted, in milliseconds.
pub const TLS_HANDSHAKE_TIMEOUT_MS_MAX: u64 = 600_000;

/// The cipher suites zkw can offer, by their Java (IANA) names, as `ssl.ciphersuites` lists
/// them. Only AEAD suites: the CBC ones in ZooKeeper's default list are not implemented.
pub const TLS_CIPHER_SUITES_SUPPORTED: [&str; 9] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
];

/// Whether the server asks for a client certificate (`ssl.clientAuth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; verified when given; a client without one is still let in.
    Want,
    /// Required and verified.
    Need,
}

/// A TLS protocol version (`ssl.protocol`, `ssl.enabledProtocols`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// A PEM file named by a key, remembered with that key and line so later errors can name them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemFile {
    pub path: PathBuf,
    pub key: String,
    pub line: u32,
}

/// One side's TLS settings (the client port, or the quorum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `keyStore.location`: private key and certificate chain, PEM.
    pub key_store: Option<PemFile>,
    /// `trustStore.location`: the CA certificates peers are verified against, PEM.
    pub trust_store: Option<PemFile>,
    pub client_auth: ClientAuth,
    /// Enabled versions, sorted; never empty.
    pub protocols: Vec<TlsVersion>,
    /// Java names from [`TLS_CIPHER_SUITES_SUPPORTED`]; empty = the library's defaults.
    pub cipher_suites: Vec<String>,
    /// Whether a peer's certificate must name the host we dialled (quorum client side).
    pub hostname_verification: bool,
    /// `ssl.handshakeDetectionTimeoutMillis`: how long a TLS handshake may take.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::None,
            protocols: vec![TlsVersion::Tls12, TlsVersion::Tls13],
            cipher_suites: Vec::new(),
            hostname_verification: true,
            handshake_timeout_ms: TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// TLS for the secure client port and (with `sslQuorum=true`) between servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub client: TlsSettings,
    pub quorum: TlsSettings,
    /// `sslQuorum`: the peer transport runs over mutual TLS.
    pub quorum_enabled: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            client: TlsSettings::default(),
            // Quorum TLS is always mutual, as ZooKeeper's quorum SSL is by default.
            quorum: TlsSettings {
                client_auth: ClientAuth::Need,
                ..TlsSettings::default()
            },
            quorum_enabled: false,
        }
    }
}

/// Raw values of one side, kept until `finish` resolves the defaults that depend on others.
#[derive(Debug, Default)]
pub(super) struct RawSide {
    key_store: Option<Entry>,
    key_store_type: Option<Entry>,
    trust_store: Option<Entry>,
    trust_store_type: Option<Entry>,
    client_auth: Option<Entry>,
    protocol: Option<Entry>,
    enabled_protocols: Option<Entry>,
    cipher_suites: Option<Entry>,
    hostname_verification: Option<Entry>,
    handshake_timeout: Option<Entry>,
}

/// Raw TLS entries of both sides.
#[derive(Debug, Default)]
pub(super) struct RawTls {
    client: RawSide,
    quorum: RawSide,
}

/// The key without `zookeeper.` when it is a TLS key (ZooKeeper reads them as system
/// properties, so both spellings are seen in the wild).
pub(super) fn canonical(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("zookeeper.").unwrap_or(key);
    (rest.starts_with("ssl.") || rest == "sslQuorum").then_some(rest)
}

impl Builder<'_> {
    /// Records one TLS key; false when `key` is not one zkw reads (the caller warns).
    pub(super) fn apply_tls(&mut self, key: &str, entry: &Entry) -> Result<bool, ConfigError> {
        if key == "sslQuorum" {
            let enabled = self.check_value(entry, boolean(&entry.value))?;
            self.config_mut().tls.quorum_enabled = enabled;
            return Ok(true);
        }
        let (raw, field) = match key.strip_prefix("ssl.quorum.") {
            Some(field) => (&mut self.raw_tls_mut().quorum, field),
            None => match key.strip_prefix("ssl.") {
                Some(field) => (&mut self.raw_tls_mut().client, field),
                None => return Ok(false),
            },
        };
        let slot = match field {
            "keyStore.location" => &mut raw.key_store,
            "keyStore.type" => &mut raw.key_store_type,
            "trustStore.location" => &mut raw.trust_store,
            "trustStore.type" => &mut raw.trust_store_type,
            "clientAuth" => &mut raw.client_auth,
            "protocol" => &mut raw.protocol,
            "enabledProtocols" => &mut raw.enabled_protocols,
            "ciphersuites" => &mut raw.cipher_suites,
            "hostnameVerification" => &mut raw.hostname_verification,
            "handshakeDetectionTimeoutMillis" => &mut raw.handshake_timeout,
            // Passwords protect JKS/PKCS12 stores; a PEM key must be unencrypted (checked when
            // the key store is read), so the value itself is not needed.
            "keyStore.password"
            | "keyStore.passwordPath"
            | "trustStore.password"
            | "trustStore.passwordPath" => return Ok(true),
            _ => return Ok(false),
        };
        *slot = Some(entry.clone());
        Ok(true)
    }

    /// Resolves both sides and checks the rules that span keys.
    pub(super) fn finish_tls(&mut self) -> Result<(), ConfigError> {
        let raw = std::mem::take(self.raw_tls_mut());
        let client = self.resolve_side(&raw.client)?;
        let quorum = self.resolve_side(&raw.quorum)?;
        if self.config_mut().secure_client_port.is_some() && client.key_store.is_none() {
            return Err(self.error_at(
                "secureClientPort",
                "needs ssl.keyStore.location (a PEM file with the key and certificate chain)"
                    .into(),
            ));
        }
        if client.client_auth != ClientAuth::None && client.trust_store.is_none() {
            let reason = "needs ssl.trustStore.location to verify client certificates \
                          (zkw has no JVM default trust store)";
            return Err(self.error_at("ssl.clientAuth", reason.into()));
        }
        let quorum_enabled = self.config_mut().tls.quorum_enabled;
        if quorum_enabled && (quorum.key_store.is_none() || quorum.trust_store.is_none()) {
            let reason = "true needs ssl.quorum.keyStore.location and \
                          ssl.quorum.trustStore.location (servers authenticate each other)";
            return Err(self.error_at("sslQuorum", reason.into()));
        }
        let tls = &mut self.config_mut().tls;
        tls.client = client;
        tls.quorum = TlsSettings {
            // Quorum TLS is always mutual, as ZooKeeper's quorum SSL is by default.
            client_auth: ClientAuth::Need,
            ..quorum
        };
        Ok(())
    }

    fn resolve_side(&self, raw: &RawSide) -> Result<TlsSettings, ConfigError> {
        let mut settings = TlsSettings::default();
        if let Some(entry) = &raw.key_store {
            settings.key_store = Some(self.pem_file(entry, raw.key_store_type.as_ref(), true)?);
        }
        if let Some(entry) = &raw.trust_store {
            let kind = raw.trust_store_type.as_ref();
            settings.trust_store = Some(self.pem_file(entry, kind, false)?);
        }
        // ZooKeeper's ClientAuth.fromPropertyValue: unset means NEED.
        settings.client_auth = match &raw.client_auth {
            Some(entry) => self.check_value(entry, client_auth(&entry.value))?,
            None if settings.trust_store.is_some() => ClientAuth::Need,
            None => ClientAuth::None,
        };
        // As X509Util: enabledProtocols, else just ssl.protocol, else both versions.
        if let Some(entry) = raw.enabled_protocols.as_ref().or(raw.protocol.as_ref()) {
            settings.protocols = self.check_value(entry, protocols(&entry.value))?;
        }
        if let Some(entry) = &raw.cipher_suites {
            settings.cipher_suites = self.check_value(entry, cipher_suites(&entry.value))?;
        }
        if let Some(entry) = &raw.hostname_verification {
            settings.hostname_verification = self.check_value(entry, boolean(&entry.value))?;
        }
        if let Some(entry) = &raw.handshake_timeout {
            let range = super::keys::whole(&entry.value, 1, TLS_HANDSHAKE_TIMEOUT_MS_MAX);
            settings.handshake_timeout_ms = self.check_value(entry, range)?;
        }
        Ok(settings)
    }

    /// Checks a store's type and reads its file enough to refuse what cannot work.
    fn pem_file(
        &self,
        entry: &Entry,
        kind: Option<&Entry>,
        is_key_store: bool,
    ) -> Result<PemFile, ConfigError> {
        if entry.value.is_empty() {
            return Err(self.error(entry, "is empty; a PEM file path is required".into()));
        }
        let convert = "zkw reads PEM only: convert it, e.g. `openssl pkcs12 -in store.p12 \
                       -nodes -out store.pem` (or keytool -importkeystore to PKCS12 first)";
        match kind {
            Some(kind) if !kind.value.eq_ignore_ascii_case("PEM") => {
                let reason = format!("type \"{}\" is not supported; {convert}", kind.value);
                return Err(self.error(kind, reason));
            }
            // As ZooKeeper, an unset type is taken from the file name.
            None if [".jks", ".p12", ".pfx", ".bcfks"]
                .iter()
                .any(|suffix| entry.value.to_ascii_lowercase().ends_with(suffix)) =>
            {
                return Err(self.error(entry, format!("looks like a Java key store; {convert}")));
            }
            _ => {}
        }
        let text = self.check_value(entry, read_pem(&entry.value))?;
        self.check_value(entry, check_pem(&text, is_key_store))?;
        Ok(PemFile {
            path: PathBuf::from(&entry.value),
            key: entry.key.clone(),
            line: entry.line,
        })
    }
}

fn read_pem(path: &str) -> Result<String, String> {
    let cannot = |error: std::io::Error| format!("cannot read {path}: {error}");
    let length = std::fs::metadata(path).map_err(cannot)?.len();
    if length > TLS_PEM_FILE_BYTES_MAX {
        return Err(format!(
            "{path} is {length} bytes, over the {TLS_PEM_FILE_BYTES_MAX}-byte limit for a PEM file"
        ));
    }
    let bytes = std::fs::read(path).map_err(cannot)?;
    String::from_utf8(bytes).map_err(|_| format!("{path} is not PEM text (binary: convert to PEM)"))
}

/// A key store needs an unencrypted private key and a certificate; a trust store certificates.
fn check_pem(text: &str, is_key_store: bool) -> Result<(), String> {
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("has no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    if !is_key_store {
        return Ok(());
    }
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(
            "holds an encrypted private key, which zkw cannot use; decrypt it with \
                    `openssl pkey -in key.pem -out plain.pem` and protect the file instead"
                .into(),
        );
    }
    if !text.contains("PRIVATE KEY-----") {
        return Err(
            "has no PEM private key; a key store holds the key and its certificate chain".into(),
        );
    }
    Ok(())
}

fn client_auth(value: &str) -> Result<ClientAuth, String> {
    match value.to_ascii_lowercase().as_str() {
        "none" => Ok(ClientAuth::None),
        "want" => Ok(ClientAuth::Want),
        "need" => Ok(ClientAuth::Need),
        _ => Err(format!("\"{value}\" is not none, want or need")),
    }
}

fn protocols(value: &str) -> Result<Vec<TlsVersion>, String> {
    let mut versions = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match name {
            "TLSv1.2" => versions.push(TlsVersion::Tls12),
            "TLSv1.3" => versions.push(TlsVersion::Tls13),
            "TLS" => versions.extend([TlsVersion::Tls12, TlsVersion::Tls13]),
            _ => {
                return Err(format!(
                    "\"{name}\" is not supported; zkw speaks TLSv1.2 and TLSv1.3"
                ))
            }
        }
    }
    versions.sort();
    versions.dedup();
    if versions.is_empty() {
        return Err("names no protocol".into());
    }
    Ok(versions)
}

fn cipher_suites(value: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = names
        .iter()
        .find(|name| !TLS_CIPHER_SUITES_SUPPORTED.contains(&name.as_str()))
    {
        return Err(format!(
            "\"{unknown}\" is not supported; zkw offers {}",
            TLS_CIPHER_SUITES_SUPPORTED.join(", ")
        ));
    }
    if names.is_empty() {
        return Err("names no cipher suite".into());
    }
    Ok(names)
}
