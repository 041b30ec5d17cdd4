//! `TestDisk`: an in-memory [`LogDisk`] that models what a power cut leaves behind, for crash
//! tests. Every file (inode) keeps its current bytes and the bytes as of its last `sync_data`;
//! the directory keeps its current names and the names as of the last `sync_dir`. A power-cut
//! image keeps only what was synced ([`Image::Synced`]) or everything written
//! ([`Image::Written`]); the truth after a real crash lies between the two, and with a torn
//! write ([`Fault::Crash`] with `torn_bytes`) only a prefix of the last write lands.
//!
//! Faults count mutating operations (`create`, `write_at`, `set_len`, `sync_data`, `remove`,
//! `sync_dir`) from 0, so a test can run a workload once, read [`TestDisk::mutations`], and
//! then crash at every one of those points.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::{LogDisk, LogFile};

/// A fault armed on the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The `nth` mutation (counted from 0 over the disk's life) fails and has no effect; the
    /// disk works afterwards.
    Fail { nth: u64 },
    /// Power is cut at the `nth` mutation: it fails (a write lands only its first
    /// `torn_bytes` bytes, if given), and so does every later mutation.
    Crash { nth: u64, torn_bytes: Option<usize> },
}

/// Which bytes survive in a power-cut image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// Only synced data and synced directory entries (the OS wrote back nothing else).
    Synced,
    /// Everything written so far (the OS wrote back everything before power went).
    Written,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    written: Vec<u8>,
    synced: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    names_synced: BTreeMap<String, usize>,
    mutations: u64,
    fault: Option<Fault>,
    crashed: bool,
}

/// What a mutation may do, decided by the armed fault.
enum Verdict {
    Proceed,
    Fail,
    /// Crash now, letting this many bytes of a write land.
    Tear(Option<usize>),
}

impl State {
    fn verdict(&mut self) -> Verdict {
        if self.crashed {
            return Verdict::Fail;
        }
        let nth = self.mutations;
        self.mutations += 1;
        match self.fault {
            Some(Fault::Fail { nth: at }) if at == nth => Verdict::Fail,
            Some(Fault::Crash {
                nth: at,
                torn_bytes,
            }) if at == nth => {
                self.crashed = true;
                Verdict::Tear(torn_bytes)
            }
            _ => Verdict::Proceed,
        }
    }
}

fn injected() -> io::Error {
    io::Error::other("injected disk fault")
}

/// The in-memory disk. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct TestDisk {
    state: Arc<Mutex<State>>,
}

/// A file of a [`TestDisk`].
#[derive(Debug)]
pub struct TestFile {
    state: Arc<Mutex<State>>,
    inode: usize,
}

impl TestDisk {
    pub fn new() -> TestDisk {
        TestDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's result.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Arms `fault` (replacing any earlier one).
    pub fn arm(&self, fault: Fault) {
        self.lock().fault = Some(fault);
    }

    /// Removes the armed fault (a crash that struck stays) and says whether it had struck.
    pub fn disarm(&self) -> bool {
        let mut state = self.lock();
        match state.fault.take() {
            Some(Fault::Fail { nth } | Fault::Crash { nth, .. }) => state.mutations > nth,
            None => false,
        }
    }

    /// How many mutations the disk has seen.
    pub fn mutations(&self) -> u64 {
        self.lock().mutations
    }

    /// A fresh disk holding what a power cut at this moment leaves behind.
    pub fn power_cut_image(&self, image: Image) -> TestDisk {
        let state = self.lock();
        let names = match image {
            Image::Synced => &state.names_synced,
            Image::Written => &state.names,
        };
        let mut fresh = State::default();
        for (name, &inode) in names {
            let bytes = match image {
                Image::Synced => state.inodes[inode].synced.clone(),
                Image::Written => state.inodes[inode].written.clone(),
            };
            fresh.inodes.push(Inode {
                written: bytes.clone(),
                synced: bytes,
            });
            fresh.names.insert(name.clone(), fresh.inodes.len() - 1);
        }
        fresh.names_synced = fresh.names.clone();
        TestDisk {
            state: Arc::new(Mutex::new(fresh)),
        }
    }

    /// The current bytes of `name`, if it exists.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.lock();
        let inode = *state.names.get(name)?;
        Some(state.inodes[inode].written.clone())
    }

    /// Replaces the bytes of `name` as if they had always been on disk (bit rot, an editor).
    pub fn overwrite_file(&self, name: &str, bytes: Vec<u8>) {
        let mut state = self.lock();
        let inode = *state.names.get(name).expect("overwrite_file: no such file");
        state.inodes[inode] = Inode {
            written: bytes.clone(),
            synced: bytes,
        };
    }
}

impl TestFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl LogFile for TestFile {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.lock().inodes[self.inode].written.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let state = self.lock();
        let bytes = &state.inodes[self.inode].written;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let source = bytes.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(source);
        Ok(())
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        let landing = match state.verdict() {
            Verdict::Proceed => bytes,
            Verdict::Fail => return Err(injected()),
            Verdict::Tear(None) => return Err(injected()),
            Verdict::Tear(Some(torn_bytes)) => &bytes[..torn_bytes.min(bytes.len())],
        };
        let file = &mut state.inodes[self.inode].written;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        if file.len() < start + landing.len() {
            file.resize(start + landing.len(), 0);
        }
        file[start..start + landing.len()].copy_from_slice(landing);
        if landing.len() < bytes.len() {
            return Err(injected());
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        match state.verdict() {
            Verdict::Proceed => {}
            _ => return Err(injected()),
        }
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        state.inodes[self.inode].written.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.lock();
        match state.verdict() {
            Verdict::Proceed => {}
            _ => return Err(injected()),
        }
        let inode = &mut state.inodes[self.inode];
        inode.synced = inode.written.clone();
        Ok(())
    }
}

impl LogDisk for TestDisk {
    type File = TestFile;

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().names.keys().cloned().collect())
    }

    fn create(&self, name: &str) -> io::Result<TestFile> {
        let mut state = self.lock();
        if state.names.contains_key(name) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        match state.verdict() {
            Verdict::Proceed => {}
            _ => return Err(injected()),
        }
        state.inodes.push(Inode::default());
        let inode = state.inodes.len() - 1;
        state.names.insert(name.to_string(), inode);
        Ok(TestFile {
            state: self.state.clone(),
            inode,
        })
    }

    fn open(&self, name: &str) -> io::Result<TestFile> {
        let state = self.lock();
        let inode = *state.names.get(name).ok_or(io::ErrorKind::NotFound)?;
        Ok(TestFile {
            state: self.state.clone(),
            inode,
        })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.lock();
        if !state.names.contains_key(name) {
            return Err(io::ErrorKind::NotFound.into());
        }
        match state.verdict() {
            Verdict::Proceed => {}
            _ => return Err(injected()),
        }
        state.names.remove(name);
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.lock();
        match state.verdict() {
            Verdict::Proceed => {}
            _ => return Err(injected()),
        }
        state.names_synced = state.names.clone();
        Ok(())
    }
}
