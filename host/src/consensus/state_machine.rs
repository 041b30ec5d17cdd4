//! openraft's state machine, as a thin adapter: committed commands are decoded into
//! [`TxnEntry`]s (zxid = log index) and handed in batches to the server's [`StateMachine`];
//! snapshots are the machine's own bytes, written to `snapshot.<index>` files in dataDir
//! together with the last applied log id and membership, so a restart loads the newest one and
//! replays the log after it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::EntryPayload;
use tokio::sync::watch;

use super::failpoint::Failpoints;
use super::types::{Command, LogId, SnapshotMeta, StoredMembership, ZkwRaft};
use super::{Committed, StateMachine};
use crate::clock::Clock;
use crate::fatal::{Fatal, FatalSignal, Step};
use crate::timing::StorageTimings;

/// Snapshot files kept besides the newest (autopurge.snapRetainCount counts the newest too).
pub const SNAPSHOT_FILE_PREFIX: &str = "snapshot.";
const SNAPSHOT_MAGIC: &[u8; 8] = b"ZKWSNAP2";
/// Read buffer for loading a snapshot.
const SNAPSHOT_READ_BUFFER_BYTES: usize = 1024 * 1024;

/// Proposals made on this server and not yet applied here: their reply routes and the
/// commands themselves (re-sent, in order, after a leader change or a failed forward; the
/// state machine drops the copies it has already applied).
pub struct Pending<R> {
    inner: Mutex<PendingInner<R>>,
}

struct PendingInner<R> {
    routes: HashMap<u64, R>,
    unacked: BTreeMap<u64, Command>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Pending {
            inner: Mutex::new(PendingInner {
                routes: HashMap::new(),
                unacked: BTreeMap::new(),
            }),
        }
    }
}

impl<R> Pending<R> {
    pub fn insert(&self, command: &Command, route: Option<R>) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(route) = route {
                inner.routes.insert(command.seq, route);
            }
            inner.unacked.insert(command.seq, command.clone());
        }
    }

    /// The command was applied here: forget it and hand back its route.
    pub fn take(&self, seq: u64) -> Option<R> {
        let mut inner = self.inner.lock().ok()?;
        inner.unacked.remove(&seq);
        inner.routes.remove(&seq)
    }

    /// Every command not yet applied here, oldest first.
    pub fn unacked(&self) -> Vec<Command> {
        self.inner
            .lock()
            .map(|inner| inner.unacked.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every command not yet applied here whose requester is still there (`gone` says it is
    /// not), oldest first; the others are forgotten and their routes handed back.
    pub fn resendable(&self, gone: impl Fn(&R) -> bool) -> (Vec<Command>, Vec<R>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), Vec::new());
        };
        let dropped: Vec<u64> = inner
            .routes
            .iter()
            .filter(|(_, route)| gone(route))
            .map(|(seq, _)| *seq)
            .collect();
        let mut routes = Vec::with_capacity(dropped.len());
        for seq in dropped {
            inner.unacked.remove(&seq);
            routes.extend(inner.routes.remove(&seq));
        }
        (inner.unacked.values().cloned().collect(), routes)
    }

    /// Forgets every command at or below `seq` (a snapshot from the leader covered them);
    /// returns their routes.
    pub fn take_through(&self, seq: u64) -> Vec<R> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        let later = inner.unacked.split_off(&seq.saturating_add(1));
        let covered = std::mem::replace(&mut inner.unacked, later);
        covered
            .into_keys()
            .filter_map(|seq| inner.routes.remove(&seq))
            .collect()
    }

    /// Gives up on everything still waiting; returns the routes to abandon.
    pub fn drain(&self) -> Vec<R> {
        self.inner
            .lock()
            .map(|mut inner| {
                inner.unacked.clear();
                inner.routes.drain().map(|(_, route)| route).collect()
            })
            .unwrap_or_default()
    }
}

/// For each origin server: its boot and the highest sequence number applied from it. A command
/// at or below it is a re-sent copy and is skipped; part of the replicated state (snapshots
/// carry it), so every replica skips the same entries.
pub type AppliedSeqs = BTreeMap<u64, (u64, u64)>;

/// Bytes of one [`AppliedSeqs`] record in a snapshot: origin, boot, seq (u64 LE each).
const APPLIED_SEQ_RECORD_BYTES: usize = 24;
/// Most origins a snapshot may list (server ids are at most 255).
const APPLIED_SEQ_ORIGINS_MAX: u32 = 4096;

/// Whether a command is new (and records it), or a re-sent copy of one already applied.
fn admit(seqs: &mut AppliedSeqs, command: &Command) -> bool {
    match seqs.get(&command.origin) {
        Some((boot, seq)) if *boot == command.boot && command.seq <= *seq => false,
        _ => {
            seqs.insert(command.origin, (command.boot, command.seq));
            true
        }
    }
}

fn write_applied_seqs(seqs: &AppliedSeqs, out: &mut Vec<u8>) {
    out.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    for (origin, (boot, seq)) in seqs {
        out.extend_from_slice(&origin.to_le_bytes());
        out.extend_from_slice(&boot.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
    }
}

fn read_applied_seqs(input: &mut dyn Read) -> io::Result<AppliedSeqs> {
    let mut count = [0u8; 4];
    input.read_exact(&mut count)?;
    let count = u32::from_le_bytes(count);
    if count > APPLIED_SEQ_ORIGINS_MAX {
        return Err(invalid(format!("snapshot lists {count} origins")));
    }
    let mut seqs = AppliedSeqs::new();
    let mut record = [0u8; APPLIED_SEQ_RECORD_BYTES];
    for _ in 0..count {
        input.read_exact(&mut record)?;
        let field = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&record[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        seqs.insert(field(0), (field(8), field(16)));
    }
    Ok(seqs)
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
    pub applied_seqs: AppliedSeqs,
    /// This process's boot id: commands it proposed carry it.
    pub my_boot: u64,
    /// Armed at the snapshot writer's steps (write, fsync, rename).
    pub failpoints: Failpoints,
    /// A failed snapshot write is raised here (the server fails stop).
    pub fatal: FatalSignal,
    /// Snapshot writes are timed here.
    pub storage_timings: Arc<StorageTimings>,
    /// The server's clock (a snapshot's time in `last_snapshot`).
    pub clock: Arc<dyn Clock>,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A failed step of writing a snapshot file.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {step} on {}: {source}", path.display())]
pub struct SnapshotWriteError {
    step: Step,
    path: PathBuf,
    #[source]
    source: io::Error,
}

impl SnapshotWriteError {
    /// Raises this failure on `fatal` and hands it on as the io::Error openraft expects.
    fn raise(self, fatal: &FatalSignal) -> io::Error {
        fatal.raise(Fatal::storage(self.step, &self.path, &self.source));
        io::Error::new(self.source.kind(), self)
    }
}

fn failed_at(step: Step, path: &Path) -> impl FnOnce(io::Error) -> SnapshotWriteError + '_ {
    move |source| SnapshotWriteError {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a snapshot file atomically (temp file, fsync, rename, fsync the directory), each
/// step behind its failpoint.
fn write_snapshot_file(
    dir: &Path,
    meta: &SnapshotMeta,
    data: &[u8],
    failpoints: &Failpoints,
) -> Result<PathBuf, SnapshotWriteError> {
    let index = meta.last_log_id.map_or(0, |id| id.index);
    let path = dir.join(format!("{SNAPSHOT_FILE_PREFIX}{index:016x}"));
    let temporary = dir.join(format!(".{SNAPSHOT_FILE_PREFIX}{index:016x}.tmp"));
    let write = Step::SnapshotWrite;
    let meta_bytes = postcard::to_stdvec(meta).map_err(|e| invalid(e.to_string()));
    let meta_bytes = meta_bytes.map_err(failed_at(write, &temporary))?;
    let meta_len = u32::try_from(meta_bytes.len()).map_err(|_| invalid("meta".into()));
    let meta_len = meta_len.map_err(failed_at(write, &temporary))?;
    failpoints
        .check(write)
        .map_err(failed_at(write, &temporary))?;
    let mut file = std::fs::File::create(&temporary).map_err(failed_at(write, &temporary))?;
    let written = file
        .write_all(SNAPSHOT_MAGIC)
        .and_then(|()| file.write_all(&meta_len.to_le_bytes()))
        .and_then(|()| file.write_all(&meta_bytes))
        .and_then(|()| file.write_all(data));
    written.map_err(failed_at(write, &temporary))?;
    let fsync = Step::SnapshotFsync;
    failpoints
        .check(fsync)
        .map_err(failed_at(fsync, &temporary))?;
    file.sync_data().map_err(failed_at(fsync, &temporary))?;
    let rename = Step::SnapshotRename;
    failpoints.check(rename).map_err(failed_at(rename, &path))?;
    std::fs::rename(&temporary, &path).map_err(failed_at(rename, &path))?;
    let synced = std::fs::File::open(dir).and_then(|directory| directory.sync_all());
    synced.map_err(failed_at(rename, dir))?;
    Ok(path)
}

/// Largest snapshot meta record accepted (membership and a log id: small).
const SNAPSHOT_META_BYTES_MAX: u32 = 1024 * 1024;

/// Opens a snapshot file: its meta, and a reader positioned at the machine's bytes.
pub fn open_snapshot_file(path: &Path) -> io::Result<(SnapshotMeta, BufReader<File>)> {
    let truncated = || invalid(format!("{} is truncated", path.display()));
    let mut reader = BufReader::with_capacity(SNAPSHOT_READ_BUFFER_BYTES, File::open(path)?);
    let mut header = [0u8; 12];
    reader.read_exact(&mut header).map_err(|_| truncated())?;
    if &header[..8] != SNAPSHOT_MAGIC {
        return Err(invalid(format!("{} is not a zkw snapshot", path.display())));
    }
    let meta_bytes = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if meta_bytes > SNAPSHOT_META_BYTES_MAX {
        return Err(invalid(format!(
            "{}: meta of {meta_bytes} bytes",
            path.display()
        )));
    }
    let mut meta = vec![0u8; meta_bytes as usize];
    reader.read_exact(&mut meta).map_err(|_| truncated())?;
    let meta = postcard::from_bytes(&meta).map_err(|e| invalid(e.to_string()))?;
    Ok((meta, reader))
}

/// Reads a snapshot file whole (to send it to a follower).
pub fn read_snapshot_file(path: &Path) -> io::Result<(SnapshotMeta, Vec<u8>)> {
    let (meta, mut reader) = open_snapshot_file(path)?;
    let mut data = Vec::new();
    reader.read_to_end(&mut data)?;
    Ok((meta, data))
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
        let (meta, mut data) = open_snapshot_file(&newest)?;
        self.applied_seqs = read_applied_seqs(&mut data)?;
        self.machine.restore(&mut data)?;
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

    /// A committed command as the state machine gets it, with its route when it was proposed
    /// here; `None` for a re-sent copy of a command already applied (or a leader-only decision
    /// of an earlier term).
    fn committed(
        &mut self,
        log_id: LogId,
        command: Command,
    ) -> io::Result<Option<(Committed, Option<M::Route>)>> {
        let mine = command.origin == self.my_id && command.boot == self.my_boot;
        if !admit(&mut self.applied_seqs, &command) {
            // A copy. If it is this server's and still pending, its original never applied
            // here: a newer command of this server reached the log first (a batch that did not
            // commit under a leader, re-sent after a later one did). It cannot apply any more;
            // its client is told as when no leader takes a write (the connection closes, the
            // session stays), rather than waiting for ever.
            if mine {
                if let Some(route) = self.pending.take(command.seq) {
                    tracing::warn!(
                        index = log_id.index,
                        seq = command.seq,
                        "a write of this server was overtaken by a later one; dropping it"
                    );
                    self.machine
                        .abandon(route, "write overtaken by a later one of this server");
                }
            }
            return Ok(None);
        }
        if command
            .term
            .is_some_and(|term| term != log_id.leader_id.term)
        {
            tracing::info!(
                index = log_id.index,
                "skipping a leader-only decision of an earlier term"
            );
            if mine {
                self.pending.take(command.seq);
            }
            return Ok(None);
        }
        let route = if mine {
            self.pending.take(command.seq)
        } else {
            None
        };
        let committed = Committed {
            zxid: i64::try_from(log_id.index).map_err(|_| invalid("zxid overflow".into()))?,
            time_ms: command.time_ms,
            body: command.body,
        };
        Ok(Some((committed, route)))
    }
}

impl<M: StateMachine> Adapter<M> {
    /// Applies a batch; a panic in it (caught only where unwinding is on: in-process tests,
    /// since the binary's panic hook aborts first) is raised as fatal before it goes on
    /// unwinding, because openraft does not notice its state machine task dying and the server
    /// would otherwise stay half-alive with a poisoned tree.
    fn apply_guarded(&self, batch: M::Batch) -> io::Result<()> {
        let machine = &self.machine;
        let failpoints = &self.failpoints;
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            failpoints.panic_if_armed(super::failpoint::APPLY_PANIC);
            machine.apply_batch(batch)
        }));
        applied.unwrap_or_else(|payload| {
            self.fatal.raise(Fatal::Panicked {
                task: "state machine apply".to_owned(),
                message: crate::fatal::panic_message(&*payload).to_owned(),
            });
            std::panic::resume_unwind(payload)
        })
    }
}

/// Keeps the newest `retained` snapshot files (autopurge.snapRetainCount), removes older ones.
pub(super) fn prune_snapshots(dir: &Path, retained: usize) {
    let Ok(files) = snapshot_files(dir) else {
        return;
    };
    let excess = files.len().saturating_sub(retained.max(1));
    for old in files.into_iter().take(excess) {
        if let Err(error) = std::fs::remove_file(&old) {
            tracing::warn!(file = %old.display(), %error, "cannot remove an old snapshot");
        }
    }
}

/// A snapshot taken under the state machine (so consistent with `applied`), written later.
pub struct Builder {
    meta: SnapshotMeta,
    data: Vec<u8>,
    dir: PathBuf,
    retained: usize,
    failpoints: Failpoints,
    fatal: FatalSignal,
    storage_timings: Arc<StorageTimings>,
    clock: Arc<dyn Clock>,
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
        let retained = self.retained;
        let (failpoints, fatal) = (self.failpoints.clone(), self.fatal.clone());
        let (timings, clock) = (Arc::clone(&self.storage_timings), Arc::clone(&self.clock));
        let written = tokio::task::spawn_blocking(move || {
            let started = crate::clock::Stopwatch::start();
            let written = write_snapshot_file(&dir, &meta, &data, &failpoints)
                .map(|path| (path, data))
                .map_err(|error| error.raise(&fatal));
            let index = meta.last_log_id.map_or(0, |id| id.index);
            timings.snapshot_written(index, &started, &*clock);
            prune_snapshots(&dir, retained);
            written
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(
            zxid = self.meta.last_log_id.map_or(0, |id| id.index),
            snapshot = %written.0.display(),
            "snapshot written"
        );
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
            let log_id = entry.log_id;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => batch.extend(self.committed(log_id, command)?),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(log_id), membership);
                }
            }
            self.applied = Some(log_id);
            responders.extend(responder);
        }
        if !batch.is_empty() {
            let (batch, work) = self.machine.prepare(batch);
            if let Some(work) = work {
                if let Err(error) = tokio::task::spawn_blocking(work).await {
                    // Preparing is an optimisation: apply does the same work if it must.
                    tracing::warn!(%error, "preparing a batch failed; applying it anyway");
                }
            }
            // An error (a replica that must stop) stops openraft here: nothing after it is
            // applied or snapshotted.
            self.apply_guarded(batch)?;
        }
        self.applied_index.send_replace(self.index());
        for responder in responders {
            responder.send(());
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Builder {
        let mut data = Vec::new();
        write_applied_seqs(&self.applied_seqs, &mut data);
        if let Err(error) = self.machine.snapshot(&mut data) {
            // A snapshot that cannot be serialised is a bug in the tree: stop, never diverge.
            panic!("cannot serialise the tree for a snapshot: {error}");
        }
        let meta = SnapshotMeta {
            last_log_id: self.applied,
            last_membership: self.membership.clone(),
        };
        Builder {
            meta,
            data,
            dir: self.snapshot_dir.clone(),
            retained: self.snapshots_retained,
            failpoints: self.failpoints.clone(),
            fatal: self.fatal.clone(),
            storage_timings: Arc::clone(&self.storage_timings),
            clock: Arc::clone(&self.clock),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let mut input = snapshot.as_slice();
        self.applied_seqs = read_applied_seqs(&mut input)?;
        self.machine.restore(&mut input)?;
        let dir = self.snapshot_dir.clone();
        let owned_meta = meta.clone();
        let (failpoints, fatal) = (self.failpoints.clone(), self.fatal.clone());
        tokio::task::spawn_blocking(move || {
            write_snapshot_file(&dir, &owned_meta, &snapshot, &failpoints)
                .map_err(|error| error.raise(&fatal))
        })
        .await
        .map_err(io::Error::other)??;
        self.install(meta);
        // This server's commands the snapshot covers were applied (or overtaken) without
        // passing through apply here: their clients are told as when no leader takes a write.
        if let Some((boot, seq)) = self.applied_seqs.get(&self.my_id).copied() {
            if boot == self.my_boot {
                for route in self.pending.take_through(seq) {
                    self.machine
                        .abandon(route, "write settled by a snapshot from the leader");
                }
            }
        }
        prune_snapshots(&self.snapshot_dir, self.snapshots_retained);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::Preparation;

    fn command(origin: u64, boot: u64, seq: u64) -> Command {
        Command {
            origin,
            boot,
            seq,
            term: None,
            time_ms: 0,
            body: Vec::new(),
        }
    }

    #[test]
    fn resent_copies_are_skipped_and_new_boots_start_afresh() {
        let mut seqs = AppliedSeqs::new();
        assert!(admit(&mut seqs, &command(1, 10, 1)));
        assert!(admit(&mut seqs, &command(1, 10, 2)));
        assert!(
            !admit(&mut seqs, &command(1, 10, 1)),
            "a copy re-sent after a leader change"
        );
        assert!(!admit(&mut seqs, &command(1, 10, 2)));
        assert!(
            admit(&mut seqs, &command(2, 10, 1)),
            "another origin has its own numbering"
        );
        assert!(
            admit(&mut seqs, &command(1, 11, 1)),
            "a restarted origin numbers from 1 again"
        );
        assert!(
            admit(&mut seqs, &command(1, 10, 3)),
            "an older boot's later command still counts"
        );
    }

    #[test]
    fn applied_seqs_round_trip_and_refuse_garbage() {
        let seqs: AppliedSeqs = [(1, (10, 5)), (7, (3, u64::MAX))].into();
        let mut bytes = Vec::new();
        write_applied_seqs(&seqs, &mut bytes);
        assert_eq!(read_applied_seqs(&mut bytes.as_slice()).unwrap(), seqs);
        for cut in 0..bytes.len() {
            assert!(
                read_applied_seqs(&mut &bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let huge = u32::MAX.to_le_bytes();
        assert!(read_applied_seqs(&mut huge.as_slice()).is_err());
    }

    #[test]
    fn pending_keeps_commands_in_order_until_applied() {
        let pending: Pending<&str> = Pending::default();
        pending.insert(&command(1, 1, 2), Some("b"));
        pending.insert(&command(1, 1, 1), Some("a"));
        pending.insert(&command(1, 1, 3), None);
        let seqs: Vec<u64> = pending.unacked().iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(pending.take(1), Some("a"));
        assert_eq!(pending.take(3), None);
        assert_eq!(pending.unacked().len(), 1);
        assert_eq!(pending.drain(), ["b"]);
        assert!(pending.unacked().is_empty());
    }

    #[test]
    fn commands_of_requesters_gone_are_not_resent() {
        let pending: Pending<&str> = Pending::default();
        for (seq, route) in [
            (1, Some("gone")),
            (2, None),
            (3, Some("here")),
            (4, Some("gone")),
        ] {
            pending.insert(&command(1, 1, seq), route);
        }
        let (resend, dropped) = pending.resendable(|route| *route == "gone");
        let seqs: Vec<u64> = resend.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            [2, 3],
            "internal commands and live requesters' go again, in order"
        );
        assert_eq!(dropped, ["gone", "gone"]);
        assert_eq!(pending.unacked().len(), 2);
    }

    #[test]
    fn a_snapshot_settles_the_pending_commands_it_covers() {
        let pending: Pending<&str> = Pending::default();
        for (seq, route) in [(1, Some("a")), (2, None), (3, Some("c")), (4, Some("d"))] {
            pending.insert(&command(1, 1, seq), route);
        }
        assert_eq!(pending.take_through(3), ["a", "c"]);
        let seqs: Vec<u64> = pending.unacked().iter().map(|c| c.seq).collect();
        assert_eq!(seqs, [4]);
        assert!(pending.take_through(3).is_empty());
        assert_eq!(pending.take(4), Some("d"));
    }

    /// Records what it is asked to apply, and the routes it refuses; a batch holding the body
    /// `slow` asks for preparation, and `steps` says when that ran.
    #[derive(Default)]
    struct Recorder {
        applied: Mutex<Vec<(Committed, Option<&'static str>)>>,
        refused: Mutex<Vec<&'static str>>,
        steps: Arc<Mutex<Vec<&'static str>>>,
    }

    impl StateMachine for Recorder {
        type Route = &'static str;
        type Batch = Vec<(Committed, Option<&'static str>)>;
        fn apply_batch(&self, batch: Self::Batch) -> io::Result<()> {
            self.steps.lock().unwrap().push("applied");
            self.applied.lock().unwrap().extend(batch);
            Ok(())
        }
        fn prepare(&self, batch: Self::Batch) -> (Self::Batch, Option<Preparation>) {
            if !batch.iter().any(|(committed, _)| committed.body == b"slow") {
                return (batch, None);
            }
            let steps = Arc::clone(&self.steps);
            let work: Preparation = Box::new(move || steps.lock().unwrap().push("prepared"));
            (batch, Some(work))
        }
        fn abandon(&self, route: &'static str, _reason: &'static str) {
            self.refused.lock().unwrap().push(route);
        }
        fn is_gone(&self, _route: &&'static str) -> bool {
            false
        }
        fn snapshot(&self, _out: &mut Vec<u8>) -> io::Result<()> {
            Ok(())
        }
        fn restore(&self, _snapshot: &mut dyn io::Read) -> io::Result<()> {
            Ok(())
        }
        fn relayed(&self, _body: &[u8]) {}
        fn leadership_changed(&self, _is_leader: bool) {}
        type Refusal = std::io::Error;
        fn admit_forwarded(&self, _body: &[u8]) -> Result<(), std::io::Error> {
            Ok(())
        }
    }

    fn normal(index: u64, command: Command) -> EntryResponder<ZkwRaft> {
        let log_id = LogId::new(
            openraft::vote::leader_id_std::CommittedLeaderId::new(1),
            index,
        );
        let entry = openraft::Entry {
            log_id,
            payload: EntryPayload::Normal(command),
        };
        (entry, None)
    }

    fn adapter(machine: &Arc<Recorder>, directory: &tempfile::TempDir) -> Adapter<Recorder> {
        Adapter {
            machine: Arc::clone(machine),
            pending: Arc::new(Pending::default()),
            my_id: 1,
            applied: None,
            membership: StoredMembership::default(),
            snapshot_dir: directory.path().to_path_buf(),
            snapshots_retained: 1,
            applied_index: Arc::new(watch::channel(0).0),
            applied_seqs: AppliedSeqs::new(),
            my_boot: 7,
            failpoints: Failpoints::default(),
            fatal: FatalSignal::default(),
            storage_timings: Arc::default(),
            clock: Arc::new(crate::clock::SystemClock::new()),
        }
    }

    #[tokio::test]
    async fn a_batch_is_prepared_off_the_runtime_before_it_applies() {
        let directory = tempfile::tempdir().unwrap();
        let machine = Arc::new(Recorder::default());
        let mut adapter = adapter(&machine, &directory);
        let mut plain = command(1, 1, 1);
        plain.body = b"plain".to_vec();
        let entries = futures_util::stream::iter([Ok(normal(1, plain))]);
        adapter.apply(entries).await.unwrap();
        let mut slow = command(1, 2, 1);
        slow.body = b"slow".to_vec();
        let entries = futures_util::stream::iter([Ok(normal(2, slow))]);
        adapter.apply(entries).await.unwrap();
        assert_eq!(
            *machine.steps.lock().unwrap(),
            ["applied", "prepared", "applied"]
        );
    }

    #[tokio::test]
    async fn committed_bodies_reach_the_machine_unread_with_their_zxids_and_routes() {
        let directory = tempfile::tempdir().unwrap();
        let machine = Arc::new(Recorder::default());
        let mut adapter = adapter(&machine, &directory);
        // The adapter does not read a body: bytes no txn decodes pass as any other.
        let mut garbage = command(1, 7, 1);
        garbage.body = vec![0xff; 13];
        garbage.time_ms = 1_700_000_000_000;
        adapter.pending.insert(&garbage, Some("garbage"));
        let mut next = command(2, 3, 1);
        next.body = b"opaque".to_vec();
        let entries = futures_util::stream::iter([Ok(normal(1, garbage)), Ok(normal(2, next))]);
        adapter
            .apply(entries)
            .await
            .expect("no error stops the replica");

        let applied = machine.applied.lock().unwrap().clone();
        let expected = [
            (
                Committed {
                    zxid: 1,
                    time_ms: 1_700_000_000_000,
                    body: vec![0xff; 13],
                },
                Some("garbage"),
            ),
            (
                Committed {
                    zxid: 2,
                    time_ms: 0,
                    body: b"opaque".to_vec(),
                },
                None,
            ),
        ];
        assert_eq!(applied, expected);
        assert!(machine.refused.lock().unwrap().is_empty());
        assert!(adapter.pending.unacked().is_empty());
        assert_eq!(*adapter.applied_index.borrow(), 2);
    }

    #[tokio::test]
    async fn a_write_of_this_server_overtaken_by_a_later_one_is_abandoned_not_left_waiting() {
        let directory = tempfile::tempdir().unwrap();
        let machine = Arc::new(Recorder::default());
        let mut adapter = adapter(&machine, &directory);
        // Batch 1 (seq 1) did not commit under its leader; seq 2 reached the log first, and
        // seq 1 came after it when re-sent; then a copy of seq 2 as well.
        let (first, second) = (command(1, 7, 1), command(1, 7, 2));
        adapter.pending.insert(&first, Some("first"));
        adapter.pending.insert(&second, Some("second"));
        let entries = futures_util::stream::iter([
            Ok(normal(1, second.clone())),
            Ok(normal(2, first)),
            Ok(normal(3, second)),
        ]);
        adapter.apply(entries).await.unwrap();
        let applied: Vec<_> = machine
            .applied
            .lock()
            .unwrap()
            .iter()
            .map(|(committed, route)| (committed.zxid, *route))
            .collect();
        assert_eq!(applied, [(1, Some("second"))]);
        assert_eq!(*machine.refused.lock().unwrap(), ["first"]);
        assert!(adapter.pending.unacked().is_empty());
    }
}
