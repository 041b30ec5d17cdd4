//! Four-letter words on the client port (ruok, srvr, stat, mntr, ...): plain-text answers in
//! ZooKeeper's formats, filtered by `4lw.commands.whitelist`. `srvr` is always allowed, as in
//! ZooKeeper, because `zkServer.sh status` (and `zkw server status`) depend on it. The facts
//! come from `facts` (shared with the admin HTTP commands); this file only renders text.

use std::fmt::Write as _;

use super::facts::{self, ConnectionsFacts, ServerStatsFacts, StatFacts};
use super::{Context, Shared};
use crate::proto::FourLetterWord;

/// Answers one four-letter word; the connection closes afterwards.
pub fn answer(context: &Context, word: FourLetterWord) -> String {
    let shared = &context.shared;
    if !allowed(shared, word) {
        tracing::debug!(
            command = word.name(),
            "four-letter word not in the whitelist"
        );
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    // As ZooKeeper 3.8: without a quorum (no known leader) only the words that need no
    // server answer (`isro` says "null": there is no server to be read-only or not).
    if !context.consensus.is_serving()
        && !matches!(word, FourLetterWord::Ruok | FourLetterWord::Envi)
    {
        return if word == FourLetterWord::Isro {
            "null".to_owned()
        } else {
            format!("{}\n", facts::NOT_SERVING)
        };
    }
    let mode = context.consensus.mode();
    match word {
        FourLetterWord::Ruok => "imok".to_owned(),
        FourLetterWord::Srvr => server_stats(&facts::server_stats(shared, mode)),
        FourLetterWord::Stat => stat(&facts::stat(shared, mode)),
        FourLetterWord::Conf => conf(shared),
        FourLetterWord::Cons => connections(&facts::connections(shared)),
        FourLetterWord::Crst => {
            reset_connection_stats(shared);
            "Connection stats reset.\n".to_owned()
        }
        FourLetterWord::Srst => {
            shared.stats.reset();
            "Server stats reset.\n".to_owned()
        }
        FourLetterWord::Envi => environment(shared),
        FourLetterWord::Mntr => monitor(context, mode),
        FourLetterWord::Wchs => watch_summary(shared),
        FourLetterWord::Wchc => watches_by_session(shared),
        FourLetterWord::Wchp => watches_by_path(shared),
        FourLetterWord::Dump => dump(shared),
        FourLetterWord::Isro => "rw".to_owned(),
        FourLetterWord::Dirs => {
            let dirs = facts::dirs(shared);
            format!(
                "datadir_size: {}\nlogdir_size: {}\n",
                dirs.datadir_size, dirs.logdir_size
            )
        }
        FourLetterWord::Hash => {
            let digest = facts::digest(shared);
            format!("0x{:x}: {}\n", digest.zxid, digest.hash)
        }
        FourLetterWord::Gtmk => "0".to_owned(),
        // ZooKeeper's stmk sets a trace mask zkw has no use for (its tracing is `ZKW_LOG`).
        FourLetterWord::Stmk => format!("{word} is not supported by zkw.\n"),
    }
}

/// `crst`: zeroes every connection's counters.
pub fn reset_connection_stats(shared: &Shared) {
    for entry in shared.lock_connections().iter() {
        entry.stats.reset();
    }
}

fn allowed(shared: &Shared, word: FourLetterWord) -> bool {
    word == FourLetterWord::Srvr || shared.config.four_letter_whitelist.allows(word)
}

fn version_line() -> String {
    format!("Zookeeper version: {}\n", facts::version())
}

/// The body shared by srvr and stat (ZooKeeper's ServerStats.toString plus the node count).
fn stats_body(facts: &ServerStatsFacts) -> String {
    let stats = &facts.server_stats;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Latency min/avg/max: {}/{:.4}/{}",
        stats.min_latency, stats.avg_latency, stats.max_latency
    );
    let _ = writeln!(text, "Received: {}", stats.packets_received);
    let _ = writeln!(text, "Sent: {}", stats.packets_sent);
    let _ = writeln!(text, "Connections: {}", stats.num_alive_client_connections);
    let _ = writeln!(text, "Outstanding: {}", stats.outstanding_requests);
    let _ = writeln!(text, "Zxid: 0x{:x}", stats.last_processed_zxid);
    let _ = writeln!(text, "Mode: {}", stats.server_state);
    let _ = writeln!(text, "Node count: {}", facts.node_count);
    text
}

fn server_stats(facts: &ServerStatsFacts) -> String {
    version_line() + &stats_body(facts)
}

fn stat(facts: &StatFacts) -> String {
    let mut text = version_line();
    text.push_str("Clients:\n");
    for connection in facts.connections.iter().chain(&facts.secure_connections) {
        let _ = writeln!(
            text,
            " /{}[1](queued={},recved={},sent={})",
            connection.remote_socket_address,
            connection.outstanding_requests,
            connection.packets_received,
            connection.packets_sent
        );
    }
    text.push('\n');
    text + &stats_body(&facts.server)
}

fn conf(shared: &Shared) -> String {
    let conf = facts::conf(shared);
    let mut text = String::new();
    let _ = writeln!(text, "clientPort={}", conf.client_port);
    let _ = writeln!(text, "secureClientPort={}", conf.secure_client_port);
    let _ = writeln!(text, "dataDir={}", conf.data_dir);
    let _ = writeln!(text, "dataDirSize={}", conf.data_dir_size);
    let _ = writeln!(text, "dataLogDir={}", conf.data_log_dir);
    let _ = writeln!(text, "dataLogSize={}", conf.data_log_size);
    let _ = writeln!(text, "tickTime={}", conf.tick_time);
    let _ = writeln!(text, "maxClientCnxns={}", conf.max_client_cnxns);
    let _ = writeln!(text, "minSessionTimeout={}", conf.min_session_timeout);
    let _ = writeln!(text, "maxSessionTimeout={}", conf.max_session_timeout);
    let _ = writeln!(
        text,
        "clientPortListenBacklog={}",
        conf.client_port_listen_backlog
    );
    let _ = writeln!(text, "serverId={}", conf.server_id);
    if let Some(quorum) = &conf.quorum {
        let _ = writeln!(text, "initLimit={}", quorum.init_limit);
        let _ = writeln!(text, "syncLimit={}", quorum.sync_limit);
        let _ = writeln!(text, "electionAlg={}", quorum.election_alg);
        if let (Some(election), Some(quorum_port), Some(peer_type)) =
            (quorum.election_port, quorum.quorum_port, quorum.peer_type)
        {
            let _ = writeln!(text, "electionPort={election}");
            let _ = writeln!(text, "quorumPort={quorum_port}");
            let _ = writeln!(text, "peerType={peer_type}");
        }
        for line in &quorum.membership {
            let _ = writeln!(text, "{line}");
        }
    }
    text
}

fn connections(facts: &ConnectionsFacts) -> String {
    let mut text = String::new();
    // As ZooKeeper's cons: the plain port's connections, then the secure port's.
    for connection in facts.connections.iter().chain(&facts.secure_connections) {
        let brief = &connection.brief;
        let _ = writeln!(
            text,
            " /{}[1](queued={},recved={},sent={},sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},\
             lzxid=0x{:x},lresp={},llat={},minlat={},avglat={:.4},maxlat={})",
            brief.remote_socket_address,
            brief.outstanding_requests,
            brief.packets_received,
            brief.packets_sent,
            connection.session_id,
            connection.last_operation,
            connection.established,
            connection.session_timeout,
            connection.last_cxid,
            connection.last_zxid,
            connection.last_response_time,
            connection.last_latency,
            connection.min_latency,
            connection.avg_latency,
            connection.max_latency
        );
    }
    text.push('\n');
    text
}

fn environment(shared: &Shared) -> String {
    let mut text = String::from("Environment:\n");
    for (key, value) in facts::environment(shared).0 {
        let _ = writeln!(text, "{key}={value}");
    }
    text
}

fn monitor(context: &Context, mode: &str) -> String {
    facts::monitor(context, mode)
        .flattened()
        .into_iter()
        .map(|(key, value)| format!("zk_{key}\t{value}\n"))
        .collect()
}

fn watch_summary(shared: &Shared) -> String {
    let summary = facts::watch_summary(shared);
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        summary.num_connections, summary.num_paths, summary.num_total_watches
    )
}

fn watches_by_session(shared: &Shared) -> String {
    let mut text = String::new();
    for (session_id, paths) in facts::watches(shared).session_id_to_watched_paths {
        let _ = writeln!(text, "0x{session_id:x}");
        for path in paths {
            let _ = writeln!(text, "\t{path}");
        }
    }
    text
}

fn watches_by_path(shared: &Shared) -> String {
    let mut text = String::new();
    for (path, sessions) in facts::watches_by_path(shared).path_to_session_ids {
        let _ = writeln!(text, "{path}");
        for session_id in sessions {
            let _ = writeln!(text, "\t0x{session_id:x}");
        }
    }
    text
}

fn dump(shared: &Shared) -> String {
    let dump = facts::dump(shared);
    let mut text = String::from("SessionTracker dump:\n");
    let _ = writeln!(
        text,
        "Global Sessions({}):",
        dump.session_id_to_timeout.len()
    );
    for (session_id, timeout_ms) in &dump.session_id_to_timeout {
        let _ = writeln!(text, "0x{session_id:x}\t{timeout_ms}ms");
    }
    text.push_str("ephemeral nodes dump:\n");
    let owners = &dump.session_id_to_ephemeral_paths;
    let _ = writeln!(text, "Sessions with Ephemerals ({}):", owners.len());
    for (session_id, paths) in owners {
        let _ = writeln!(text, "0x{session_id:x}:");
        for path in paths {
            let _ = writeln!(text, "\t{path}");
        }
    }
    text
}
