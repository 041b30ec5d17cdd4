//! openraft's state machine, as a thin adapter: committed commands are decoded into
//! [`TxnEntry`]s (zxid = log index) and handed in batches to the server's [`StateMachine`];
//! snapshots are the machine's own bytes, written to `snapshot.<index>` files in dataDir
//! together with the last applied log id and membership, so a restart loads the newest one and
//! replays the log after it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use tokio::sync::watch;

use super::types::{LogId, SnapshotMeta, StoredMembership, ZkwRaft};
use super::StateMachine;
use crate::txn::codec::decode_entry;
use crate::txn::TxnEntry;

/// Snapshot files kept besides the newest (autopurge.snapRetainCount counts the newest too).
pub const SNAPSHOT_FILE_PREFIX: &str = "snapshot.";
const SNAPSHOT_MAGIC: &[u8; 8] = b"ZKWSNAP1";

/// Routes of proposals made on this server, by sequence number, until their entry is applied.
pub struct Pending<R> {
    routes: Mutex<HashMap<u64, R>>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Pending {
            routes: Mutex::new(HashMap::new()),
        }
    }
}

impl<R> Pending<R> {
    pub fn insert(&self, seq: u64, route: R) {
        if let Ok(mut routes) = self.routes.lock() {
            routes.insert(seq, route);
        }
    }

    pub fn take(&self, seq: u64) -> Option<R> {
        self.routes.lock().ok()?.remove(&seq)
    }

    /// Every route still waiting, in no particular order.
    pub fn drain(&self) -> Vec<R> {
        self.routes
            .lock()
            .map(|mut routes| routes.drain().map(|(_, r)| r).collect())
            .unwrap_or_default()
    }
}

/// The openraft state machine of one server.
pub struct Adapter<M: StateMachine> {
    pub machine: Arc<M>,
    pub pending: Arc<Pending<M::Route>>,
    pub my_id: u64,
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    pub snapshot_dir: PathBuf,
    pub snapshots_retained: usize,
    pub applied_index: Arc<watch::Sender<u64>>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Writes a snapshot file atomically (temp file, fsync, rename, fsync the directory).
fn write_snapshot_file(dir: &Path, meta: &SnapshotMeta, data: &[u8]) -> io::Result<PathBuf> {
    let index = meta.last_log_id.map_or(0, |id| id.index);
    let path = dir.join(format!("{SNAPSHOT_FILE_PREFIX}{index:016x}"));
    let temporary = dir.join(format!(".{SNAPSHOT_FILE_PREFIX}{index:016x}.tmp"));
    let meta_bytes = postcard::to_stdvec(meta).map_err(|e| invalid(e.to_string()))?;
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(SNAPSHOT_MAGIC)?;
    file.write_all(
        &u32::try_from(meta_bytes.len())
            .map_err(|_| invalid("meta".into()))?
            .to_le_bytes(),
    )?;
    file.write_all(&meta_bytes)?;
    file.write_all(data)?;
    file.sync_data()?;
    std::fs::rename(&temporary, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Reads a snapshot file back: its meta and the machine's bytes.
pub fn read_snapshot_file(path: &Path) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    let bytes = std::fs::read(path)?;
    let header = bytes
        .get(..12)
        .ok_or_else(|| invalid(format!("{} is truncated", path.display())))?;
    if &header[..8] != SNAPSHOT_MAGIC {
        return Err(invalid(format!("{} is not a zkw snapshot", path.display())));
    }
    let meta_bytes = u32::from_le_bytes([header[8], header[9], header[10], header[11]]) as usize;
    let meta_end = 12usize
        .checked_add(meta_bytes)
        .filter(|end| *end <= bytes.len());
    let meta_end = meta_end.ok_or_else(|| invalid(format!("{} is truncated", path.display())))?;
    let meta = postcard::from_bytes(&bytes[12..meta_end]).map_err(|e| invalid(e.to_string()))?;
    Ok((meta, bytes[meta_end..].to_vec()))
}

/// Snapshot files in `dir`, oldest first.
pub fn snapshot_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix(SNAPSHOT_FILE_PREFIX))
        else {
            continue;
        };
        if let Ok(index) = u64::from_str_radix(index, 16) {
            files.push((index, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

impl<M: StateMachine> Adapter<M> {
    /// Loads the newest snapshot into the machine, if there is one.
    pub fn recover(&mut self) -> io::Result<()> {
        std::fs::create_dir_all(&self.snapshot_dir)?;
        let Some(newest) = snapshot_files(&self.snapshot_dir)?.pop() else {
            return Ok(());
        };
        let (meta, data) = read_snapshot_file(&newest)?;
        self.machine.restore(&data)?;
        self.install(&meta);
        tracing::info!(snapshot = %newest.display(), index = self.index(), "loaded snapshot");
        Ok(())
    }

    fn index(&self) -> u64 {
        self.applied.map_or(0, |id| id.index)
    }

    fn install(&mut self, meta: &SnapshotMeta) {
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.applied_index.send_replace(self.index());
    }

    fn prune_snapshots(&self) {
        let Ok(files) = snapshot_files(&self.snapshot_dir) else {
            return;
        };
        let excess = files.len().saturating_sub(self.snapshots_retained.max(1));
        for old in files.into_iter().take(excess) {
            if let Err(error) = std::fs::remove_file(&old) {
                tracing::warn!(file = %old.display(), %error, "cannot remove an old snapshot");
            }
        }
    }

    fn decode(
        &self,
        log_id: LogId,
        command: &super::types::Command,
    ) -> io::Result<(TxnEntry, Option<M::Route>)> {
        let mut entry = decode_entry(&command.body)
            .map_err(|error| invalid(format!("log entry {}: {error}", log_id.index)))?;
        entry.zxid = i64::try_from(log_id.index).map_err(|_| invalid("zxid overflow".into()))?;
        entry.time_ms = command.time_ms;
        let route = (command.origin == self.my_id)
            .then(|| self.pending.take(command.seq))
            .flatten();
        Ok((entry, route))
    }
}

/// A snapshot taken under the state machine (so consistent with `applied`), written later.
pub struct Builder {
    meta: SnapshotMeta,
    data: Vec<u8>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<ZkwRaft> for Builder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<openraft::alias::SnapshotOf<ZkwRaft, Vec<u8>>, io::Error> {
        let (dir, meta, data) = (
            self.dir.clone(),
            self.meta.clone(),
            std::mem::take(&mut self.data),
        );
        let written = tokio::task::spawn_blocking(move || {
            write_snapshot_file(&dir, &meta, &data).map(|path| (path, data))
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(snapshot = %written.0.display(), "snapshot written");
        Ok(openraft::Snapshot {
            meta: self.meta.clone(),
            snapshot: written.1,
        })
    }
}

impl<M: StateMachine> RaftStateMachine<ZkwRaft> for Adapter<M> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Builder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<ZkwRaft>, io::Error>> + Unpin + Send,
    {
        let mut batch = Vec::new();
        let mut responders = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => batch.push(self.decode(entry.log_id, command)?),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
                }
            }
            self.applied = Some(entry.log_id);
            responders.extend(responder);
        }
        if !batch.is_empty() {
            self.machine.apply_batch(batch);
        }
        self.applied_index.send_replace(self.index());
        for responder in responders {
            responder.send(());
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        let data = self.machine.snapshot().unwrap_or_else(|error| {
            // A snapshot that cannot be serialised is a bug in the tree: stop, never diverge.
            panic!("cannot serialise the tree for a snapshot: {error}")
        });
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        self.prune_snapshots();
        Builder {
            meta,
            data,
            dir: self.snapshot_dir.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        self.machine.restore(&snapshot)?;
        let dir = self.snapshot_dir.clone();
        let owned_meta = meta.clone();
        tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &owned_meta, &snapshot))
            .await
            .map_err(io::Error::other)??;
        self.install(meta);
        self.prune_snapshots();
        tracing::info!(index = self.index(), "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<ZkwRaft, Vec<u8>>>, io::Error> {
        let dir = self.snapshot_dir.clone();
        let newest = tokio::task::spawn_blocking(move || -> io::Result<_> {
            match snapshot_files(&dir)?.pop() {
                Some(path) => read_snapshot_file(&path).map(Some),
                None => Ok(None),
            }
        })
        .await
        .map_err(io::Error::other)??;
        Ok(newest.map(|(meta, snapshot)| openraft::Snapshot { meta, snapshot }))
    }
}
