//! Writes the committed seed corpora (fuzz/corpus/<target>/) from real bytes: the frames the
//! ZooKeeper 3.8 Java client sent (host/src/proto/fixtures), and the dataDir of a short run of
//! the real server (fuzz/seeds/workload.py): its log segments, the txn entries and openraft
//! entries they hold, peer messages carrying those entries, and its snapshot. Run it through
//! `fuzz/seeds/make.sh`, which makes the dataDir first.
//!
//! Usage: `seeds <repository root> <dataDir of a real run>`

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

// The instrumented zkw-host needs libFuzzer's coverage callbacks, even in a binary that only
// writes files.
use libfuzzer_sys as _;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use zkw::consensus::log::{self, FsDisk, LogOptions, SegmentLog};
use zkw::consensus::network::{PeerRequest, PeerResponse};
use zkw::consensus::types::{Command, Entry, LogId, Vote};
use zkw::tree::SNAPSHOT_MAGIC;

/// The Java client fixture, relative to the repository root.
const CLIENT_FIXTURE: &str = "host/src/proto/fixtures/zk-3.8.0-java-client.frames";
/// Entries per AppendEntries seed, as a leader batches them.
const APPEND_BATCH_ENTRIES: usize = 4;

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, data_dir] = args.as_slice() else {
        eprintln!("usage: seeds <repository root> <dataDir of a real run>");
        std::process::exit(2);
    };
    let corpus = Path::new(root).join("fuzz/corpus");
    client_frames(
        &Path::new(root).join(CLIENT_FIXTURE),
        &corpus.join("client_frames"),
    )?;
    let files = files_under(Path::new(data_dir))?;
    let segments: Vec<&PathBuf> = files
        .iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    for segment in &segments {
        log_segment(segment, &corpus.join("log_segment"))?;
    }
    let oldest = segments
        .first()
        .ok_or_else(|| io::Error::other("no log segment in the dataDir"))?;
    let entries = log_entries(oldest)?;
    txn_entries(&entries, &corpus.join("txn_entry"))?;
    peer_messages(&entries, &corpus.join("peer_message"))?;
    for snapshot in files.iter().filter(|path| is_snapshot(path)) {
        tree_snapshot(snapshot, &corpus.join("tree_snapshot"))?;
    }
    Ok(())
}

fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn is_snapshot(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with("snapshot."))
}

fn write_seed(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), bytes)
}

/// Per connection of the fixture: the client's whole byte stream, and each request alone
/// after the connection's handshake.
fn client_frames(fixture: &Path, out: &Path) -> io::Result<()> {
    let text = fs::read_to_string(fixture)?;
    let mut streams: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [connection, "C>S", hex] = fields.as_slice() else {
            continue;
        };
        let frame = (0..hex.len())
            .step_by(2)
            .map(|at| u8::from_str_radix(&hex[at..at + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(io::Error::other)?;
        streams.entry(connection).or_default().push(frame);
    }
    for (connection, frames) in &streams {
        write_seed(out, &format!("java-{connection}-stream"), &frames.concat())?;
        let Some((handshake, requests)) = frames.split_first() else {
            continue;
        };
        for (number, request) in requests.iter().enumerate() {
            let seed = [handshake.as_slice(), request].concat();
            write_seed(
                out,
                &format!("java-{connection}-request-{number:02}"),
                &seed,
            )?;
        }
    }
    write_seed(out, "four-letter-ruok", b"ruok")
}

/// The first index a segment's file name carries.
fn first_index(segment: &Path) -> io::Result<u64> {
    segment
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(log::parse_segment_name)
        .ok_or_else(|| io::Error::other(format!("{} is not a segment", segment.display())))
}

/// The purge mark `meta` holds for a log whose oldest segment starts at `first_index` (the
/// run's snapshots may have purged what lay before it).
fn purge_mark(first_index: u64) -> Option<log::LogId> {
    let index = first_index.checked_sub(1)?;
    Some(log::LogId { term: 0, index })
}

/// Inputs of the log_segment target's damaged mode (first byte odd): segment size selector,
/// entry count, (term step, payload length) per entry, purge point, then damages (kind, file,
/// offset u16 LE, value).
const DAMAGED_LOG_SEEDS: [(&str, &[u8]); 3] = [
    (
        "damaged-none",
        &[1, 0, 6, 0, 10, 1, 20, 0, 30, 1, 40, 0, 50, 0, 60, 255],
    ),
    (
        "damaged-torn-tail",
        &[1, 2, 4, 0, 90, 0, 90, 1, 90, 0, 90, 255, 1, 9, 100, 0, 0],
    ),
    (
        "damaged-purged-flip",
        &[1, 0, 5, 0, 8, 0, 8, 1, 8, 0, 8, 0, 8, 1, 0, 1, 40, 0, 7],
    ),
];

/// A segment file as the log_segment target reads it: raw mode, the purge mark, then one file
/// named by its first index.
fn log_segment(segment: &Path, out: &Path) -> io::Result<()> {
    let bytes = fs::read(segment)?;
    let first_index = first_index(segment)?;
    let length = u32::try_from(bytes.len()).map_err(io::Error::other)?;
    for (name, seed) in DAMAGED_LOG_SEEDS {
        write_seed(out, name, seed)?;
    }
    let mut seed = vec![0u8];
    match purge_mark(first_index) {
        None => seed.push(0),
        Some(purged) => {
            seed.push(1);
            seed.extend_from_slice(&purged.term.to_le_bytes());
            seed.extend_from_slice(&purged.index.to_le_bytes());
        }
    }
    seed.extend_from_slice(&first_index.to_le_bytes());
    seed.extend_from_slice(&length.to_le_bytes());
    seed.extend_from_slice(&bytes);
    write_seed(out, &format!("real-segment-{first_index}"), &seed)
}

/// Every openraft entry of the log whose oldest segment is `oldest`.
fn log_entries(oldest: &Path) -> io::Result<Vec<Entry>> {
    let dir = oldest
        .parent()
        .ok_or_else(|| io::Error::other("a segment has a directory"))?;
    let purged = purge_mark(first_index(oldest)?);
    let log = SegmentLog::open(FsDisk::new(dir)?, LogOptions::default(), purged)
        .map_err(io::Error::other)?;
    let records = log.read(..).map_err(io::Error::other)?;
    records
        .iter()
        .map(|record| postcard::from_bytes(&record.payload).map_err(io::Error::other))
        .collect()
}

fn command(entry: &Entry) -> Option<&Command> {
    match &entry.payload {
        openraft::EntryPayload::Normal(command) => Some(command),
        openraft::EntryPayload::Blank | openraft::EntryPayload::Membership(_) => None,
    }
}

/// The body of every command in the log: one txn entry each, as the server encoded it.
fn txn_entries(entries: &[Entry], out: &Path) -> io::Result<()> {
    for entry in entries {
        if let Some(command) = command(entry) {
            let index = entry.log_id.index;
            write_seed(out, &format!("real-txn-{index:04}"), &command.body)?;
        }
    }
    Ok(())
}

/// Requests and responses of every kind, the log-carrying ones with the real entries.
fn peer_messages(entries: &[Entry], out: &Path) -> io::Result<()> {
    let term = entries
        .last()
        .map_or(1, |entry| entry.log_id.leader_id.term);
    let vote = Vote::new_committed(term, 1);
    let last: Option<LogId> = entries.last().map(|entry| entry.log_id);
    let mut requests = vec![
        ("vote", PeerRequest::Vote(VoteRequest::new(vote, last))),
        (
            "pre-vote",
            PeerRequest::PreVote(VoteRequest::new(vote, last)),
        ),
        (
            "relay",
            PeerRequest::Relay(zkw::session::encode_relay(&[0x100, 0x2_0000_0001])),
        ),
        ("read-index", PeerRequest::ReadIndex),
        ("membership", PeerRequest::Membership { asker: 2 }),
        ("hold-leader", PeerRequest::HoldLeader { term }),
    ];
    let forwarded: Vec<Command> = entries.iter().filter_map(command).cloned().collect();
    requests.push(("forward", PeerRequest::Forward(forwarded)));
    for (batch, chunk) in entries.chunks(APPEND_BATCH_ENTRIES).enumerate() {
        let prev_log_id = batch.checked_sub(1).map(|previous| {
            entries[previous * APPEND_BATCH_ENTRIES + APPEND_BATCH_ENTRIES - 1].log_id
        });
        let request = AppendEntriesRequest {
            vote,
            prev_log_id,
            entries: chunk.to_vec(),
            leader_commit: last,
        };
        let name = format!("append-entries-{batch:03}");
        let bytes =
            postcard::to_stdvec(&PeerRequest::AppendEntries(request)).map_err(io::Error::other)?;
        write_seed(out, &name, &bytes)?;
    }
    for (name, request) in &requests {
        let bytes = postcard::to_stdvec(request).map_err(io::Error::other)?;
        write_seed(out, &format!("request-{name}"), &bytes)?;
    }
    let responses = [
        (
            "append-entries",
            PeerResponse::AppendEntries(AppendEntriesResponse::Success),
        ),
        (
            "vote",
            PeerResponse::Vote(VoteResponse::new(vote, last, true)),
        ),
        ("forwarded", PeerResponse::Forwarded),
        (
            "read-index",
            PeerResponse::ReadIndex(last.map_or(0, |id| id.index)),
        ),
        ("not-leader", PeerResponse::NotLeader(Some(2))),
        ("failed", PeerResponse::Failed("not the leader".to_string())),
        ("reconfigured", PeerResponse::Reconfigured(Ok(3))),
        ("membership", PeerResponse::Membership(Some((true, 3)))),
    ];
    for (name, response) in &responses {
        let bytes = postcard::to_stdvec(response).map_err(io::Error::other)?;
        write_seed(out, &format!("response-{name}"), &bytes)?;
    }
    Ok(())
}

/// The tree part of a snapshot file (after its meta): what `Tree::read_snapshot` reads.
fn tree_snapshot(snapshot: &Path, out: &Path) -> io::Result<()> {
    let bytes = fs::read(snapshot)?;
    let start = bytes
        .windows(SNAPSHOT_MAGIC.len())
        .position(|window| window == SNAPSHOT_MAGIC)
        .ok_or_else(|| io::Error::other(format!("no tree in {}", snapshot.display())))?;
    let name = snapshot
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("snapshot");
    write_seed(out, &format!("real-{name}"), &bytes[start..])
}
