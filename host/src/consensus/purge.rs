//! `autopurge.purgeInterval` (hours; 0 = off): a timer, ZooKeeper's DatadirCleanupManager,
//! that keeps the newest `autopurge.snapRetainCount` snapshots and drops the log up to the
//! oldest snapshot kept. Snapshots are also pruned whenever one is written (see
//! `state_machine.rs`); the timer covers servers that rarely take one, and runs once at start.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::state_machine::{prune_snapshots, snapshot_files, SNAPSHOT_FILE_PREFIX};
use super::{Consensus, StateMachine};

/// One autopurge.purgeInterval unit, in milliseconds.
pub const PURGE_INTERVAL_MS_PER_HOUR: u64 = 3_600_000;

/// The log index a snapshot file covers, from its name.
fn snapshot_index(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    u64::from_str_radix(name.strip_prefix(SNAPSHOT_FILE_PREFIX)?, 16).ok()
}

/// Keeps the newest `retained` snapshots in `dir`; returns the index of the oldest one kept
/// (the log up to it is no longer needed), None when there is no snapshot.
pub fn purge_snapshots(dir: &Path, retained: usize) -> io::Result<Option<u64>> {
    prune_snapshots(dir, retained);
    Ok(snapshot_files(dir)?
        .first()
        .and_then(|oldest| snapshot_index(oldest)))
}

impl<M: StateMachine> Consensus<M> {
    /// Every `interval`, until `stop`: old snapshots go, then the log they cover.
    pub(super) async fn purge_periodically(
        self: Arc<Self>,
        interval: Duration,
        retained: usize,
        snapshot_dir: std::path::PathBuf,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            let dir = snapshot_dir.clone();
            let oldest = tokio::task::spawn_blocking(move || purge_snapshots(&dir, retained)).await;
            match oldest {
                Ok(Ok(Some(index))) if index > 0 => {
                    tracing::info!(
                        upto = index,
                        "autopurge: dropping the log before the oldest kept snapshot"
                    );
                    if let Err(error) = self.raft.trigger().purge_log(index).await {
                        tracing::warn!(%error, "autopurge: raft refused to purge");
                        return;
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "autopurge: cannot list snapshots"),
                Err(error) => tracing::warn!(%error, "autopurge: task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_snapshots_and_names_the_oldest_kept() {
        let dir = std::env::temp_dir().join(format!("zkw-purge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(purge_snapshots(&dir, 3).unwrap(), None);
        for index in [0x10u64, 0x20, 0x30, 0x40, 0x50] {
            std::fs::write(dir.join(format!("{SNAPSHOT_FILE_PREFIX}{index:016x}")), b"").unwrap();
        }
        std::fs::write(dir.join("meta.redb"), b"").unwrap();
        assert_eq!(purge_snapshots(&dir, 3).unwrap(), Some(0x30));
        let left: Vec<u64> = snapshot_files(&dir)
            .unwrap()
            .iter()
            .filter_map(|path| snapshot_index(path))
            .collect();
        assert_eq!(left, vec![0x30, 0x40, 0x50]);
        assert!(dir.join("meta.redb").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
