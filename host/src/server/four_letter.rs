//! Four-letter words on the client port (ruok, srvr, stat, mntr, ...): plain-text answers in
//! ZooKeeper's formats, filtered by `4lw.commands.whitelist`. `srvr` is always allowed, as in
//! ZooKeeper, because `zkServer.sh status` (and `zkw server status`) depend on it.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::{Context, Shared};
use crate::config::{FourLetterWhitelist, PeerRole};

/// Answers one four-letter word; the connection closes afterwards.
pub fn answer(context: &Context, word: [u8; 4]) -> String {
    let shared = &context.shared;
    let command = String::from_utf8_lossy(&word).into_owned();
    if !allowed(shared, &command) {
        tracing::debug!(command, "four-letter word not in the whitelist");
        return format!("{command} is not executed because it is not in the whitelist.\n");
    }
    // As ZooKeeper: without a quorum (no known leader) only the liveness words answer.
    if !context.consensus.is_serving()
        && !matches!(command.as_str(), "ruok" | "isro" | "envi" | "conf")
    {
        return "This ZooKeeper instance is not currently serving requests\n".to_owned();
    }
    let mode = context.consensus.mode();
    match command.as_str() {
        "ruok" => "imok".to_owned(),
        "srvr" => server_stats(shared, mode),
        "stat" => stat(shared, mode),
        "conf" => conf(shared),
        "cons" => connections(shared),
        "crst" => {
            for entry in shared.lock_connections().iter() {
                entry.stats.reset();
            }
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            shared.stats.reset();
            "Server stats reset.\n".to_owned()
        }
        "envi" => environment(shared),
        "mntr" => monitor(context, mode),
        "wchs" => watch_summary(shared),
        "wchc" => watches_by_session(shared),
        "wchp" => watches_by_path(shared),
        "dump" => dump(shared),
        "isro" => "rw".to_owned(),
        "dirs" => {
            let config = &shared.config;
            format!(
                "datadir_size: {}\nlogdir_size: {}\n",
                directory_bytes(&config.data_dir),
                directory_bytes(config.log_dir())
            )
        }
        "hash" => {
            let store = shared.lock_store();
            format!("0x{:x}: {}\n", store.tree.last_zxid(), store.tree.digest())
        }
        "gtmk" => "0".to_owned(),
        _ => format!("{command} is not supported by zkw.\n"),
    }
}

fn allowed(shared: &Shared, command: &str) -> bool {
    command == "srvr"
        || match &shared.config.four_letter_whitelist {
            FourLetterWhitelist::All => true,
            FourLetterWhitelist::Only(commands) => commands.contains(command),
        }
}

fn version_line() -> String {
    format!(
        "Zookeeper version: {}, built on 1970-01-01 00:00 UTC\n",
        super::VERSION_STRING
    )
}

/// The body shared by srvr and stat (ZooKeeper's ServerStats.toString plus the node count).
fn stats_body(shared: &Shared, mode: &str) -> String {
    let stats = &shared.stats;
    let (zxid, node_count) = {
        let store = shared.lock_store();
        (store.tree.last_zxid(), store.tree.node_count())
    };
    let connections = shared.lock_connections().len();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Latency min/avg/max: {}/{:.4}/{}",
        stats.latency.min_ms(),
        stats.latency.avg_ms(),
        stats.latency.max_ms()
    );
    let _ = writeln!(
        text,
        "Received: {}",
        stats.packets_received.load(Ordering::Relaxed)
    );
    let _ = writeln!(text, "Sent: {}", stats.packets_sent.load(Ordering::Relaxed));
    let _ = writeln!(text, "Connections: {connections}");
    let _ = writeln!(
        text,
        "Outstanding: {}",
        stats.outstanding_requests.load(Ordering::Relaxed)
    );
    let _ = writeln!(text, "Zxid: 0x{zxid:x}");
    let _ = writeln!(text, "Mode: {mode}");
    let _ = writeln!(text, "Node count: {node_count}");
    text
}

fn server_stats(shared: &Shared, mode: &str) -> String {
    version_line() + &stats_body(shared, mode)
}

fn stat(shared: &Shared, mode: &str) -> String {
    let mut text = version_line();
    text.push_str("Clients:\n");
    for entry in shared.lock_connections().iter() {
        let _ = writeln!(
            text,
            " /{}[1](queued=0,recved={},sent={})",
            entry.peer,
            entry.stats.packets_received.load(Ordering::Relaxed),
            entry.stats.packets_sent.load(Ordering::Relaxed)
        );
    }
    text.push('\n');
    text + &stats_body(shared, mode)
}

fn conf(shared: &Shared) -> String {
    let config = &shared.config;
    let mut text = String::new();
    let _ = writeln!(text, "clientPort={}", shared.local_address.port());
    let _ = writeln!(text, "secureClientPort=-1");
    let _ = writeln!(text, "dataDir={}", config.data_dir.display());
    let _ = writeln!(text, "dataDirSize={}", directory_bytes(&config.data_dir));
    let _ = writeln!(text, "dataLogDir={}", config.log_dir().display());
    let _ = writeln!(text, "dataLogSize={}", directory_bytes(config.log_dir()));
    let _ = writeln!(text, "tickTime={}", config.tick_time_ms);
    let _ = writeln!(text, "maxClientCnxns={}", config.max_client_connections);
    let _ = writeln!(text, "minSessionTimeout={}", config.min_session_timeout_ms);
    let _ = writeln!(text, "maxSessionTimeout={}", config.max_session_timeout_ms);
    let _ = writeln!(text, "clientPortListenBacklog=-1");
    let _ = writeln!(text, "serverId={}", config.my_id.unwrap_or(0));
    if config.is_distributed() {
        let me = config
            .servers
            .iter()
            .find(|server| Some(server.id) == config.my_id);
        let _ = writeln!(text, "initLimit={}", config.init_limit_ticks);
        let _ = writeln!(text, "syncLimit={}", config.sync_limit_ticks);
        let _ = writeln!(text, "electionAlg=3");
        if let Some(me) = me {
            let _ = writeln!(text, "electionPort={}", me.election_port);
            let _ = writeln!(text, "quorumPort={}", me.quorum_port);
            let peer_type = match me.role {
                PeerRole::Participant => 0,
                PeerRole::Observer => 1,
            };
            let _ = writeln!(text, "peerType={peer_type}");
        }
        for server in &config.servers {
            let role = match server.role {
                PeerRole::Participant => "participant",
                PeerRole::Observer => "observer",
            };
            let _ = writeln!(
                text,
                "server.{}={}:{}:{}:{role}",
                server.id, server.host, server.quorum_port, server.election_port
            );
        }
    }
    text
}

fn connections(shared: &Shared) -> String {
    let mut text = String::new();
    for entry in shared.lock_connections().iter() {
        let stats = &entry.stats;
        let last = stats
            .last
            .lock()
            .map(|last| last.clone())
            .unwrap_or_default();
        let _ = writeln!(
            text,
            " /{}[1](queued=0,recved={},sent={},sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},\
             lzxid=0x{:x},lresp={},llat={},minlat={},avglat={:.4},maxlat={})",
            entry.peer,
            stats.packets_received.load(Ordering::Relaxed),
            stats.packets_sent.load(Ordering::Relaxed),
            entry.session_id.unwrap_or(0),
            if last.op.is_empty() { "NA" } else { last.op },
            entry.established_wall_ms,
            entry.timeout_ms,
            last.cxid,
            last.zxid,
            last.response_wall_ms,
            last.latency_ms,
            stats.latency.min_ms(),
            stats.latency.avg_ms(),
            stats.latency.max_ms()
        );
    }
    text.push('\n');
    text
}

fn environment(shared: &Shared) -> String {
    let mut text = String::from("Environment:\n");
    let _ = writeln!(text, "zookeeper.version={}", super::VERSION_STRING);
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
    let _ = writeln!(text, "host.name={host}");
    let _ = writeln!(text, "zkw.version={}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(text, "os.name={}", std::env::consts::OS);
    let _ = writeln!(text, "os.arch={}", std::env::consts::ARCH);
    let cwd = std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(text, "user.dir={cwd}");
    let _ = writeln!(
        text,
        "zookeeper.dataDir={}",
        shared.config.data_dir.display()
    );
    text
}

fn monitor(context: &Context, mode: &str) -> String {
    let shared = &context.shared;
    let stats = &shared.stats;
    let (zxid, node_count, data_bytes, ephemerals, watch_count, sessions) = {
        let store = shared.lock_store();
        (
            store.tree.last_zxid(),
            store.tree.node_count(),
            store.tree.data_size_bytes(),
            store.tree.ephemeral_count(),
            store.watches.count(),
            store.tree.sessions().len(),
        )
    };
    let uptime_ms = shared
        .clock
        .monotonic_ms()
        .saturating_sub(shared.started_monotonic_ms);
    let rows: Vec<(&str, String)> = vec![
        (
            "version",
            format!("{}, built on 1970-01-01 00:00 UTC", super::VERSION_STRING),
        ),
        ("avg_latency", format!("{:.4}", stats.latency.avg_ms())),
        ("max_latency", stats.latency.max_ms().to_string()),
        ("min_latency", stats.latency.min_ms().to_string()),
        (
            "packets_received",
            stats.packets_received.load(Ordering::Relaxed).to_string(),
        ),
        (
            "packets_sent",
            stats.packets_sent.load(Ordering::Relaxed).to_string(),
        ),
        (
            "num_alive_connections",
            shared.lock_connections().len().to_string(),
        ),
        (
            "outstanding_requests",
            stats
                .outstanding_requests
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        ("server_state", mode.to_owned()),
        ("znode_count", node_count.to_string()),
        ("watch_count", watch_count.to_string()),
        ("ephemerals_count", ephemerals.to_string()),
        ("approximate_data_size", data_bytes.to_string()),
        ("global_sessions", sessions.to_string()),
        ("local_sessions", "0".to_owned()),
        (
            "open_file_descriptor_count",
            open_file_descriptors().to_string(),
        ),
        ("max_file_descriptor_count", "0".to_owned()),
        ("uptime", uptime_ms.to_string()),
        ("last_processed_zxid", zxid.to_string()),
        (
            "auth_failed_count",
            stats.auth_failed_count.load(Ordering::Relaxed).to_string(),
        ),
        (
            "connection_rejected",
            stats
                .connections_rejected
                .load(Ordering::Relaxed)
                .to_string(),
        ),
        ("digest", shared.lock_store().tree.digest().to_string()),
    ];
    let mut rows = rows;
    if mode == "leader" {
        let (followers, synced) = context.consensus.follower_counts();
        rows.push(("learners", followers.to_string()));
        rows.push(("followers", followers.to_string()));
        rows.push(("synced_followers", synced.to_string()));
        rows.push(("pending_syncs", "0".to_owned()));
    }
    let mut text: String = rows
        .into_iter()
        .map(|(key, value)| format!("zk_{key}\t{value}\n"))
        .collect();
    // Per recipe, this server's counters (every replica runs the same runs).
    for recipe in shared.lock_store().recipes.list() {
        let name = &recipe.name;
        let stats = recipe.stats;
        for (key, value) in [
            ("runs", stats.runs),
            ("failures", stats.failures),
            ("fuel_used", stats.fuel_used),
            ("time_us", stats.time_us),
        ] {
            text.push_str(&format!("zk_recipe_{key}{{name=\"{name}\"}}\t{value}\n"));
        }
    }
    text
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

fn watch_summary(shared: &Shared) -> String {
    let store = shared.lock_store();
    let sessions = store.watches.by_session().len();
    let paths = store.watches.by_path().len();
    format!(
        "{sessions} connections watching {paths} paths\nTotal watches:{}\n",
        store.watches.count()
    )
}

fn watches_by_session(shared: &Shared) -> String {
    let mut text = String::new();
    for (session_id, paths) in shared.lock_store().watches.by_session() {
        let _ = writeln!(text, "0x{session_id:x}");
        for path in paths {
            let _ = writeln!(text, "\t{path}");
        }
    }
    text
}

fn watches_by_path(shared: &Shared) -> String {
    let mut text = String::new();
    for (path, sessions) in shared.lock_store().watches.by_path() {
        let _ = writeln!(text, "{path}");
        for session_id in sessions {
            let _ = writeln!(text, "\t0x{session_id:x}");
        }
    }
    text
}

fn dump(shared: &Shared) -> String {
    let store = shared.lock_store();
    let sessions = store.tree.sessions();
    let mut text = String::from("SessionTracker dump:\n");
    let _ = writeln!(text, "Global Sessions({}):", sessions.len());
    for (session_id, record) in &sessions {
        let _ = writeln!(text, "0x{session_id:x}\t{}ms", record.timeout_ms);
    }
    text.push_str("ephemeral nodes dump:\n");
    let owners: Vec<(i64, Vec<String>)> = sessions
        .iter()
        .map(|(session_id, _)| (*session_id, store.tree.ephemerals(*session_id, "/")))
        .filter(|(_, paths)| !paths.is_empty())
        .collect();
    let _ = writeln!(text, "Sessions with Ephemerals ({}):", owners.len());
    for (session_id, paths) in owners {
        let _ = writeln!(text, "0x{session_id:x}:");
        for path in paths {
            let _ = writeln!(text, "\t{path}");
        }
    }
    text
}
