//! By-hand measurement of the znode tree at scale (issue #3 targets): resident bytes per znode
//! for N znodes of 100 bytes under /bench/n0000001.., built through `txn::apply`, and the
//! write + read time of a snapshot of that tree, then the apply rate of further creates into
//! the loaded tree (the log replay after a restart). Run in release mode:
//! `cargo run --release --example tree_bench -- 1000000 /tmp/zkw-bench.snap`; add `load` to
//! skip the build and only load that (earlier written) snapshot and replay onto it.

use std::time::Instant;

use zkw::proto::{op, Acl, CreateRequest};
use zkw::tree::Tree;
use zkw::txn::codec::{decode_entry, encode_entry};
use zkw::txn::{apply, TxnEntry, TxnOp};

/// Default number of znodes under /bench.
const NODE_COUNT_DEFAULT: u32 = 1_000_000;
/// Data bytes of every znode.
const DATA_BYTES: usize = 100;
/// Creates applied to the loaded tree to time replay (ZooKeeper's default snapCount).
const REPLAY_COUNT: u32 = 100_000;

/// Resident set size from /proc/self/status, in bytes (0 if unreadable).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn create_entry(zxid: i64, path: String, data: Vec<u8>) -> TxnEntry {
    TxnEntry {
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        session_id: 0,
        auth: Vec::new(),
        op: TxnOp::Create {
            op: op::CREATE,
            request: CreateRequest {
                path,
                data: Some(data),
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl_ms: None,
            },
        },
    }
}

fn create(tree: &mut Tree, zxid: i64, path: String, data: Vec<u8>) {
    let applied = apply(tree, &create_entry(zxid, path, data));
    assert!(applied.reply.is_ok(), "{:?}", applied.reply);
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count = args
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(NODE_COUNT_DEFAULT);
    let snapshot_path = args.next();
    if args.next().as_deref() == Some("load") {
        // Only load an existing snapshot (written by an earlier run) and replay onto it.
        return load_only(count, snapshot_path.as_deref().unwrap_or_default());
    }
    let before = rss_bytes();
    let started = Instant::now();
    let mut tree = Tree::new();
    create(&mut tree, 1, "/bench".into(), Vec::new());
    for index in 1..=count {
        let data = vec![b'x'; DATA_BYTES];
        create(
            &mut tree,
            i64::from(index) + 1,
            format!("/bench/n{index:07}"),
            data,
        );
    }
    let built = started.elapsed();
    let after = rss_bytes();
    let grown = after.saturating_sub(before);
    println!(
        "built {count} znodes in {built:?}; rss {before} -> {after} bytes, {} B per znode, {} MB",
        grown / u64::from(count.max(1)),
        grown / 1_000_000
    );
    if let Some(path) = snapshot_path {
        let mut loaded = snapshot_round_trip(&tree, &path)?;
        drop(tree);
        replay(&mut loaded, count);
    }
    Ok(())
}

/// Loads the snapshot at `path` (holding `count` bench znodes) and replays onto it.
fn load_only(count: u32, path: &str) -> std::io::Result<()> {
    let before = rss_bytes();
    let started = Instant::now();
    let mut input = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut tree = Tree::read_snapshot(&mut input).map_err(std::io::Error::other)?;
    let read = started.elapsed();
    let grown = rss_bytes().saturating_sub(before);
    println!(
        "loaded {} znodes in {read:?}; {} B per znode",
        tree.node_count(),
        grown / tree.node_count().max(1) as u64
    );
    replay(&mut tree, count);
    Ok(())
}

/// Applies `REPLAY_COUNT` creates after the `count` already in the tree, as a log replay does.
fn replay(tree: &mut Tree, count: u32) {
    let first_zxid = tree.last_zxid() + 1;
    // Encoded as the log holds them, to time the decode apart from the apply.
    let encoded: Vec<Vec<u8>> = (0..REPLAY_COUNT)
        .map(|step| {
            let index = count + 1 + step;
            let path = format!("/bench/n{index:07}");
            let entry = create_entry(first_zxid + i64::from(step), path, vec![b'x'; DATA_BYTES]);
            let mut bytes = Vec::new();
            encode_entry(&entry, &mut bytes);
            bytes
        })
        .collect();
    let started = Instant::now();
    let entries: Vec<TxnEntry> = encoded
        .iter()
        .map(|bytes| decode_entry(bytes).expect("decodes"))
        .collect();
    let decoded = started.elapsed();
    let started = Instant::now();
    for entry in &entries {
        let applied = apply(tree, entry);
        assert!(applied.reply.is_ok(), "{:?}", applied.reply);
    }
    let applied = started.elapsed();
    let per = |elapsed: std::time::Duration| elapsed.as_secs_f64() * 1e6 / f64::from(REPLAY_COUNT);
    println!(
        "replayed {REPLAY_COUNT} creates: decode {decoded:?} ({:.2} us each), apply {applied:?} \
         ({:.2} us each)",
        per(decoded),
        per(applied)
    );
}

fn snapshot_round_trip(tree: &Tree, path: &str) -> std::io::Result<Tree> {
    let started = Instant::now();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let summary = tree.write_snapshot(&mut file)?;
    std::io::Write::flush(&mut file)?;
    file.get_ref().sync_all()?;
    let written = started.elapsed();
    let started = Instant::now();
    let mut input = std::io::BufReader::new(std::fs::File::open(path)?);
    let loaded = Tree::read_snapshot(&mut input).map_err(std::io::Error::other)?;
    let read = started.elapsed();
    println!(
        "snapshot {summary:?}: write+fsync {written:?}, read {read:?}, digest equal: {}",
        loaded.digest() == tree.digest()
    );
    Ok(loaded)
}
