//! By-hand measurement of the znode tree at scale (issue #3 targets): resident bytes per znode
//! for N znodes of 100 bytes under /bench/n0000001.., built through `txn::apply`, and the
//! write + read time of a snapshot of that tree. Run in release mode:
//! `cargo run --release --example tree_bench -- 1000000 /tmp/zkw-bench.snap`.

use std::time::Instant;

use zkw::proto::{op, Acl, CreateRequest};
use zkw::tree::Tree;
use zkw::txn::{apply, TxnEntry, TxnOp};

/// Default number of znodes under /bench.
const NODE_COUNT_DEFAULT: u32 = 1_000_000;
/// Data bytes of every znode.
const DATA_BYTES: usize = 100;

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

fn create(tree: &mut Tree, zxid: i64, path: String, data: Vec<u8>) {
    let entry = TxnEntry {
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        session_id: 0,
        auth: Vec::new(),
        op: TxnOp::Create {
            op: op::CREATE,
            request: CreateRequest {
                path,
                data,
                acl: Acl::open_unsafe(),
                flags: 0,
                ttl_ms: None,
            },
        },
    };
    let applied = apply(tree, &entry);
    assert!(applied.reply.is_ok(), "{:?}", applied.reply);
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let count = args
        .next()
        .and_then(|text| text.parse().ok())
        .unwrap_or(NODE_COUNT_DEFAULT);
    let snapshot_path = args.next();
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
        snapshot_round_trip(&tree, &path)?;
    }
    Ok(())
}

fn snapshot_round_trip(tree: &Tree, path: &str) -> std::io::Result<()> {
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
    Ok(())
}
