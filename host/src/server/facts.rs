//! The facts behind the four-letter words and the admin HTTP commands, gathered once per
//! request into plain structs: `four_letter` renders them as ZooKeeper's text, `admin`
//! serializes them as ZooKeeper's JSON (field names are ZooKeeper's JSON keys) and the
//! Prometheus endpoint reads the numeric ones. Gathering lives only here.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Context, Shared, VERSION_STRING};
use crate::config::PeerRole;
use crate::timing::{TimingSnapshot, MONITOR_PERCENTILES};

/// What a server out of its quorum answers to every command that needs it (ZooKeeper's
/// `ZK_NOT_SERVING`; the four-letter words add a newline).
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// ZooKeeper's build line after the version; zkw has no build stamp.
const BUILT_ON: &str = "built on 1970-01-01 00:00 UTC";

pub fn version() -> String {
    format!("{VERSION_STRING}, {BUILT_ON}")
}

/// Response buffer sizes; zkw does not track them, so ZooKeeper's "no sample" value (-1).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ClientResponse {
    pub last_buffer_size: i64,
    pub min_buffer_size: i64,
    pub max_buffer_size: i64,
}

impl Default for ClientResponse {
    fn default() -> Self {
        ClientResponse {
            last_buffer_size: -1,
            min_buffer_size: -1,
            max_buffer_size: -1,
        }
    }
}

/// ZooKeeper's ServerStats.
#[derive(Debug, serde::Serialize)]
pub struct ServerStatsBody {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub fsync_threshold_exceed_count: u64,
    pub client_response_stats: ClientResponse,
    pub data_dir_size: u64,
    pub log_dir_size: u64,
    pub provider_null: bool,
    pub server_state: String,
    pub last_processed_zxid: i64,
    pub outstanding_requests: i64,
    pub avg_latency: f64,
    pub max_latency: u64,
    pub min_latency: u64,
    pub num_alive_client_connections: usize,
    pub uptime: u64,
    pub auth_failed_count: u64,
    pub non_mtlsremote_conn_count: u64,
    pub non_mtlslocal_conn_count: u64,
}

/// `srvr` / `server_stats`.
#[derive(Debug, serde::Serialize)]
pub struct ServerStatsFacts {
    pub version: String,
    pub read_only: bool,
    pub server_stats: ServerStatsBody,
    pub client_response: ClientResponse,
    pub node_count: usize,
}

/// A connection as `stat` lists it.
#[derive(Debug, serde::Serialize)]
pub struct ConnectionBrief {
    pub remote_socket_address: String,
    pub interest_ops: i32,
    pub outstanding_requests: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
}

/// `stat` / `stats`: the server stats plus the connections.
#[derive(Debug, serde::Serialize)]
pub struct StatFacts {
    #[serde(flatten)]
    pub server: ServerStatsFacts,
    pub connections: Vec<ConnectionBrief>,
    pub secure_connections: Vec<ConnectionBrief>,
}

/// A connection as `cons` lists it.
#[derive(Debug, serde::Serialize)]
pub struct ConnectionFacts {
    #[serde(flatten)]
    pub brief: ConnectionBrief,
    pub session_id: i64,
    pub last_operation: String,
    pub established: i64,
    pub session_timeout: i32,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_time: i64,
    pub last_latency: u64,
    pub min_latency: u64,
    pub avg_latency: f64,
    pub max_latency: u64,
}

/// `cons` / `connections`.
#[derive(Debug, serde::Serialize)]
pub struct ConnectionsFacts {
    pub connections: Vec<ConnectionFacts>,
    pub secure_connections: Vec<ConnectionFacts>,
}

/// The ensemble part of `conf`.
#[derive(Debug, serde::Serialize)]
pub struct QuorumConf {
    pub init_limit: u32,
    pub sync_limit: u32,
    pub election_alg: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_type: Option<u8>,
    /// `server.N=host:quorum:election:role` lines.
    pub membership: Vec<String>,
}

/// `conf` / `configuration`.
#[derive(Debug, serde::Serialize)]
pub struct ConfFacts {
    pub client_port: u16,
    /// `secureClientPort`, -1 when none (ZooKeeper prints it in `conf`, not in the JSON).
    #[serde(skip)]
    pub secure_client_port: i32,
    pub data_dir: String,
    #[serde(skip)]
    pub data_dir_size: u64,
    pub data_log_dir: String,
    #[serde(skip)]
    pub data_log_size: u64,
    pub tick_time: u32,
    pub max_client_cnxns: u32,
    pub min_session_timeout: u32,
    pub max_session_timeout: u32,
    pub server_id: u64,
    pub client_port_listen_backlog: i32,
    #[serde(flatten)]
    pub quorum: Option<QuorumConf>,
}

/// Ordered key/value pairs, serialized as a JSON object (`envi`).
#[derive(Debug, Default)]
pub struct Pairs(pub Vec<(String, String)>);

impl Serialize for Pairs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

/// A value in `mntr`: text prints floats with four decimals, as ZooKeeper does.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Uint(u64),
    Float(f64),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(value) => write!(f, "{value}"),
            Value::Uint(value) => write!(f, "{value}"),
            Value::Float(value) => write!(f, "{value:.4}"),
            Value::Text(value) => f.write_str(value),
        }
    }
}

fn int<T: TryInto<i64>>(value: T) -> Value {
    Value::Int(value.try_into().unwrap_or(i64::MAX))
}

/// One installed recipe: binding, limits and this server's counters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RecipeFacts {
    pub name: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    pub fuel: u64,
    pub memory_bytes: u64,
    pub timer_ms: u64,
    pub runs: u64,
    pub failures: u64,
    pub fuel_used: u64,
    pub time_us: u64,
}

/// `mntr` / `monitor`: flat gauges, latency summaries and per-recipe counters.
#[derive(Debug)]
pub struct MonitorFacts {
    pub rows: Vec<(&'static str, Value)>,
    /// ZooKeeper's summary names (`readlatency`, `fsynctime`, ...) with their readings.
    pub timings: Vec<(&'static str, TimingSnapshot)>,
    pub recipes: Vec<RecipeFacts>,
}

impl MonitorFacts {
    /// Every key and value in `mntr` order, without the `zk_` prefix.
    pub fn flattened(&self) -> Vec<(String, Value)> {
        let mut flat: Vec<(String, Value)> = self
            .rows
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        for (name, reading) in &self.timings {
            flat.push((format!("avg_{name}"), Value::Float(reading.avg_ms)));
            flat.push((format!("min_{name}"), int(reading.min_ms)));
            flat.push((format!("max_{name}"), int(reading.max_ms)));
            flat.push((format!("cnt_{name}"), int(reading.count)));
            flat.push((format!("sum_{name}"), int(reading.sum_ms)));
            if name.ends_with("latency") {
                for (prefix, quantile) in MONITOR_PERCENTILES {
                    flat.push((
                        format!("{prefix}_{name}"),
                        int(reading.quantile_ms(quantile)),
                    ));
                }
            }
        }
        for recipe in &self.recipes {
            for (key, value) in [
                ("runs", recipe.runs),
                ("failures", recipe.failures),
                ("fuel_used", recipe.fuel_used),
                ("time_us", recipe.time_us),
            ] {
                let name = &recipe.name;
                flat.push((format!("recipe_{key}{{name=\"{name}\"}}"), int(value)));
            }
        }
        flat
    }
}

impl Serialize for MonitorFacts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let flat = self.flattened();
        let mut map = serializer.serialize_map(Some(flat.len()))?;
        for (key, value) in &flat {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `wchs` / `watch_summary`.
#[derive(Debug, serde::Serialize)]
pub struct WatchSummaryFacts {
    pub num_connections: usize,
    pub num_paths: usize,
    pub num_total_watches: usize,
}

/// `wchc` / `watches`.
#[derive(Debug, serde::Serialize)]
pub struct WatchesFacts {
    pub session_id_to_watched_paths: BTreeMap<i64, Vec<String>>,
}

/// `wchp` / `watches_by_path`.
#[derive(Debug, serde::Serialize)]
pub struct WatchesByPathFacts {
    pub path_to_session_ids: BTreeMap<String, Vec<i64>>,
}

/// `dump`. zkw's session tracker keeps no expiry buckets to list, so sessions are listed
/// with their timeouts instead of ZooKeeper's `expiry_time_to_session_ids`.
#[derive(Debug, serde::Serialize)]
pub struct DumpFacts {
    pub session_id_to_timeout: BTreeMap<i64, i32>,
    pub session_id_to_ephemeral_paths: BTreeMap<i64, Vec<String>>,
}

/// `dirs`.
#[derive(Debug, serde::Serialize)]
pub struct DirsFacts {
    pub datadir_size: u64,
    pub logdir_size: u64,
}

/// `hash` and zkw's `digest`: the last applied zxid and the tree digest there.
#[derive(Debug, serde::Serialize)]
pub struct DigestFacts {
    pub zxid: i64,
    pub hash: u64,
}

pub fn server_stats(shared: &Shared, mode: &str) -> ServerStatsFacts {
    let stats = &shared.stats;
    let (zxid, node_count) = {
        let store = shared.lock_store();
        (store.tree.last_zxid(), store.tree.node_count())
    };
    let config = &shared.config;
    ServerStatsFacts {
        version: version(),
        read_only: false,
        server_stats: ServerStatsBody {
            packets_sent: stats.packets_sent.load(Ordering::Relaxed),
            packets_received: stats.packets_received.load(Ordering::Relaxed),
            fsync_threshold_exceed_count: 0,
            client_response_stats: ClientResponse::default(),
            data_dir_size: directory_bytes(&config.data_dir),
            log_dir_size: directory_bytes(config.log_dir()),
            provider_null: false,
            server_state: mode.to_owned(),
            last_processed_zxid: zxid,
            outstanding_requests: stats.outstanding_requests.load(Ordering::Relaxed),
            avg_latency: stats.latency.avg_ms(),
            max_latency: stats.latency.max_ms(),
            min_latency: stats.latency.min_ms(),
            num_alive_client_connections: shared.lock_connections().len(),
            uptime: uptime_ms(shared),
            auth_failed_count: stats.auth_failed_count.load(Ordering::Relaxed),
            non_mtlsremote_conn_count: 0,
            non_mtlslocal_conn_count: 0,
        },
        client_response: ClientResponse::default(),
        node_count,
    }
}

pub fn stat(shared: &Shared, mode: &str) -> StatFacts {
    let (secure, plain): (Vec<_>, Vec<_>) = shared
        .lock_connections()
        .iter()
        .map(|entry| (entry.secure, brief(entry)))
        .partition(|(secure, _)| *secure);
    StatFacts {
        server: server_stats(shared, mode),
        connections: plain.into_iter().map(|(_, brief)| brief).collect(),
        secure_connections: secure.into_iter().map(|(_, brief)| brief).collect(),
    }
}

fn brief(entry: &super::ConnectionEntry) -> ConnectionBrief {
    ConnectionBrief {
        remote_socket_address: entry.peer.to_string(),
        interest_ops: 1,
        outstanding_requests: 0,
        packets_received: entry.stats.packets_received.load(Ordering::Relaxed),
        packets_sent: entry.stats.packets_sent.load(Ordering::Relaxed),
    }
}

pub fn connections(shared: &Shared) -> ConnectionsFacts {
    let (secure, plain): (Vec<_>, Vec<_>) = shared
        .lock_connections()
        .iter()
        .map(|entry| {
            let stats = &entry.stats;
            let last = stats
                .last
                .lock()
                .map(|last| last.clone())
                .unwrap_or_default();
            let facts = ConnectionFacts {
                brief: brief(entry),
                session_id: entry.session_id.unwrap_or(0),
                last_operation: if last.op.is_empty() { "NA" } else { last.op }.to_owned(),
                established: entry.established_wall_ms,
                session_timeout: entry.timeout_ms,
                last_cxid: last.cxid,
                last_zxid: last.zxid,
                last_response_time: last.response_wall_ms,
                last_latency: last.latency_ms,
                min_latency: stats.latency.min_ms(),
                avg_latency: stats.latency.avg_ms(),
                max_latency: stats.latency.max_ms(),
            };
            (entry.secure, facts)
        })
        .partition(|(secure, _)| *secure);
    ConnectionsFacts {
        connections: plain.into_iter().map(|(_, facts)| facts).collect(),
        secure_connections: secure.into_iter().map(|(_, facts)| facts).collect(),
    }
}

pub fn conf(shared: &Shared) -> ConfFacts {
    let config = &shared.config;
    let quorum = config.is_distributed().then(|| {
        let me = config
            .servers
            .iter()
            .find(|server| Some(server.id) == config.my_id);
        let membership = config
            .servers
            .iter()
            .map(|server| {
                let role = match server.role {
                    PeerRole::Participant => "participant",
                    PeerRole::Observer => "observer",
                };
                format!(
                    "server.{}={}:{}:{}:{role}",
                    server.id, server.host, server.quorum_port, server.election_port
                )
            })
            .collect();
        QuorumConf {
            init_limit: config.init_limit_ticks,
            sync_limit: config.sync_limit_ticks,
            election_alg: 3,
            election_port: me.map(|me| me.election_port),
            quorum_port: me.map(|me| me.quorum_port),
            peer_type: me.map(|me| u8::from(me.role == PeerRole::Observer)),
            membership,
        }
    });
    ConfFacts {
        client_port: shared.local_address.port(),
        secure_client_port: config.secure_client_port.map_or(-1, i32::from),
        data_dir: config.data_dir.display().to_string(),
        data_dir_size: directory_bytes(&config.data_dir),
        data_log_dir: config.log_dir().display().to_string(),
        data_log_size: directory_bytes(config.log_dir()),
        tick_time: config.tick_time_ms,
        max_client_cnxns: config.max_client_connections,
        min_session_timeout: config.min_session_timeout_ms,
        max_session_timeout: config.max_session_timeout_ms,
        server_id: config.my_id.unwrap_or(0),
        client_port_listen_backlog: -1,
        quorum,
    }
}

pub fn environment(shared: &Shared) -> Pairs {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    let cwd = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let pairs = [
        ("zookeeper.version", VERSION_STRING.to_owned()),
        ("host.name", host),
        ("zkw.version", env!("CARGO_PKG_VERSION").to_owned()),
        ("os.name", std::env::consts::OS.to_owned()),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        ("user.dir", cwd),
        (
            "zookeeper.dataDir",
            shared.config.data_dir.display().to_string(),
        ),
    ];
    Pairs(
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

pub fn monitor(context: &Context, mode: &str) -> MonitorFacts {
    let shared = &context.shared;
    let stats = &shared.stats;
    let (zxid, node_count, data_bytes, ephemerals, watch_count, sessions, digest, recipes) = {
        let store = shared.lock_store();
        (
            store.tree.last_zxid(),
            store.tree.node_count(),
            store.tree.data_size_bytes(),
            store.tree.ephemeral_count(),
            store.watches.count(),
            store.tree.sessions().len(),
            store.tree.digest(),
            recipes_of(&store.recipes),
        )
    };
    let load = |counter: &std::sync::atomic::AtomicU64| int(counter.load(Ordering::Relaxed));
    let mut rows: Vec<(&'static str, Value)> = vec![
        ("version", Value::Text(version())),
        ("avg_latency", Value::Float(stats.latency.avg_ms())),
        ("max_latency", int(stats.latency.max_ms())),
        ("min_latency", int(stats.latency.min_ms())),
        ("packets_received", load(&stats.packets_received)),
        ("packets_sent", load(&stats.packets_sent)),
        (
            "num_alive_connections",
            int(shared.lock_connections().len()),
        ),
        (
            "outstanding_requests",
            int(stats.outstanding_requests.load(Ordering::Relaxed)),
        ),
        ("server_state", Value::Text(mode.to_owned())),
        ("znode_count", int(node_count)),
        ("watch_count", int(watch_count)),
        ("ephemerals_count", int(ephemerals)),
        ("approximate_data_size", int(data_bytes)),
        ("global_sessions", int(sessions)),
        ("local_sessions", int(0)),
        ("open_file_descriptor_count", int(open_file_descriptors())),
        ("max_file_descriptor_count", int(max_file_descriptors())),
        ("uptime", int(uptime_ms(shared))),
        ("last_processed_zxid", int(zxid)),
        ("auth_failed_count", load(&stats.auth_failed_count)),
        ("connection_rejected", load(&stats.connections_rejected)),
        ("digest", Value::Uint(digest)),
    ];
    let config = &shared.config;
    if config.is_distributed() {
        let voters = config
            .servers
            .iter()
            .filter(|server| server.role == PeerRole::Participant)
            .count();
        rows.push(("quorum_size", int(voters)));
    }
    if mode == "leader" {
        let (followers, synced) = context.consensus.follower_counts();
        rows.push(("learners", int(followers)));
        rows.push(("followers", int(followers)));
        rows.push(("synced_followers", int(synced)));
        rows.push(("pending_syncs", int(0)));
    }
    MonitorFacts {
        rows,
        timings: vec![
            ("readlatency", stats.read_latency.snapshot()),
            ("updatelatency", stats.update_latency.snapshot()),
            ("fsynctime", shared.storage_timings.fsync_ms.snapshot()),
            (
                "snapshottime",
                shared.storage_timings.snapshot_ms.snapshot(),
            ),
        ],
        recipes,
    }
}

pub fn recipes(shared: &Shared) -> Vec<RecipeFacts> {
    recipes_of(&shared.lock_store().recipes)
}

fn recipes_of(runtime: &crate::wasm::Runtime) -> Vec<RecipeFacts> {
    runtime
        .list()
        .into_iter()
        .map(|recipe| RecipeFacts {
            path: recipe.manifest.path,
            sha256: recipe.manifest.sha256,
            size: recipe.manifest.size,
            fuel: recipe.manifest.fuel,
            memory_bytes: recipe.manifest.memory_bytes,
            timer_ms: recipe.manifest.timer_ms,
            runs: recipe.stats.runs,
            failures: recipe.stats.failures,
            fuel_used: recipe.stats.fuel_used,
            time_us: recipe.stats.time_us,
            name: recipe.name,
        })
        .collect()
}

pub fn watch_summary(shared: &Shared) -> WatchSummaryFacts {
    let store = shared.lock_store();
    WatchSummaryFacts {
        num_connections: store.watches.by_session().len(),
        num_paths: store.watches.by_path().len(),
        num_total_watches: store.watches.count(),
    }
}

pub fn watches(shared: &Shared) -> WatchesFacts {
    WatchesFacts {
        session_id_to_watched_paths: shared
            .lock_store()
            .watches
            .by_session()
            .into_iter()
            .collect(),
    }
}

pub fn watches_by_path(shared: &Shared) -> WatchesByPathFacts {
    WatchesByPathFacts {
        path_to_session_ids: shared.lock_store().watches.by_path().into_iter().collect(),
    }
}

pub fn dump(shared: &Shared) -> DumpFacts {
    let store = shared.lock_store();
    let sessions = store.tree.sessions();
    let session_id_to_ephemeral_paths = sessions
        .iter()
        .map(|(session_id, _)| (*session_id, store.tree.ephemerals(*session_id, "/")))
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    DumpFacts {
        session_id_to_timeout: sessions
            .iter()
            .map(|(session_id, record)| (*session_id, record.timeout_ms))
            .collect(),
        session_id_to_ephemeral_paths,
    }
}

pub fn dirs(shared: &Shared) -> DirsFacts {
    let config = &shared.config;
    DirsFacts {
        datadir_size: directory_bytes(&config.data_dir),
        logdir_size: directory_bytes(config.log_dir()),
    }
}

pub fn digest(shared: &Shared) -> DigestFacts {
    let store = shared.lock_store();
    DigestFacts {
        zxid: store.tree.last_zxid(),
        hash: store.tree.digest(),
    }
}

fn uptime_ms(shared: &Shared) -> u64 {
    shared
        .clock
        .monotonic_ms()
        .saturating_sub(shared.started_monotonic_ms)
}

/// Bytes of the regular files under `dir` (snapshots, log segments, meta), as ZooKeeper's
/// `dirs` counts its snapshot and log directories. Unreadable entries count as zero.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map_or(0, |meta| meta.len()),
            _ => 0,
        })
        .sum()
}

fn open_file_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// The soft limit on open files (`Max open files` in /proc/self/limits); 0 when unknown.
fn max_file_descriptors() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|line| line.starts_with("Max open files"))
                .and_then(|line| line.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(0)
}
