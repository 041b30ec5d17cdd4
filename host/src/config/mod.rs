//! `config`: zoo.cfg / zkw.toml parsing and validation. (skeleton: to be implemented)
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourLetterWhitelist {
    All,
    Only(BTreeSet<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    Participant,
    Observer,
}

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminConfig {
    pub enable_server: bool,
    pub server_address: String,
    pub server_port: u16,
    pub command_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    pub provider_class_name: Option<String>,
    pub http_host: String,
    pub http_port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub source: Option<PathBuf>,
    pub tick_time_ms: u32,
    pub init_limit_ticks: u32,
    pub sync_limit_ticks: u32,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub client_port: u16,
    pub client_port_address: Option<IpAddr>,
    pub max_client_connections: u32,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    pub autopurge_snap_retain_count: u32,
    pub autopurge_purge_interval_hours: u32,
    pub four_letter_whitelist: FourLetterWhitelist,
    pub admin: AdminConfig,
    pub metrics: MetricsConfig,
    pub jute_max_buffer_bytes: usize,
    pub extended_types_enabled: bool,
    pub standalone_enabled: bool,
    pub reconfig_enabled: bool,
    pub snap_count: u64,
    pub container_check_interval_ms: u64,
    pub servers: Vec<ServerEntry>,
    pub my_id: Option<u64>,
    pub super_digest: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        todo!()
    }
}
