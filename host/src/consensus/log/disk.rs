//! `LogDisk`: every byte the Raft log reads or writes goes through this small trait, so tests
//! can swap the real directory for [`super::TestDisk`] (failed writes, torn writes, power cuts).
//! [`FsDisk`] is the real implementation on `std::fs`: one directory holds the segment files.
//!
//! Durability contract (what the log relies on, and what `TestDisk` models):
//! - `LogFile::write_at` and `set_len` are durable only after that file's `sync_data`;
//! - creating or removing a file is durable only after `LogDisk::sync_dir`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::test_disk::{TestDisk, TestFile};
use crate::consensus::failpoint::Failpoints;
use crate::fatal::Step;

/// One open file of the log.
pub trait LogFile: Send + Sync + 'static {
    /// The current length in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `bytes` at `offset`.
    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()>;
    /// Cuts (or zero-extends) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data and length durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
}

/// The directory that holds the log's files.
pub trait LogDisk: Send + Sync + 'static {
    type File: LogFile;
    /// Names of the files in the directory, in any order.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Creates a new empty file; an error if it exists.
    fn create(&self, name: &str) -> io::Result<Self::File>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Self::File>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations and removals in the directory durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// Called before each durability step: an armed failpoint fails it (see
    /// `consensus::failpoint`). No failpoints by default.
    fn failpoint(&self, _step: Step) -> io::Result<()> {
        Ok(())
    }
}

/// The real disk: a directory on the local file system.
#[derive(Debug, Clone)]
pub struct FsDisk {
    dir: PathBuf,
    failpoints: Failpoints,
}

impl FsDisk {
    /// Uses `dir`, creating it (and its parents) if missing.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<FsDisk> {
        fs::create_dir_all(dir.as_ref())?;
        Ok(FsDisk {
            dir: dir.as_ref().to_path_buf(),
            failpoints: Failpoints::default(),
        })
    }

    /// The same directory with `failpoints` armed at the log's durability steps.
    pub fn with_failpoints(self, failpoints: Failpoints) -> FsDisk {
        FsDisk { failpoints, ..self }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl LogFile for File {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(self, bytes, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

impl LogDisk for FsDisk {
    type File = File;

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for dir_entry in fs::read_dir(&self.dir)? {
            let dir_entry = dir_entry?;
            if dir_entry.file_type()?.is_file() {
                if let Ok(name) = dir_entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn create(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.dir.join(name))
    }

    fn open(&self, name: &str) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(name))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.dir.join(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn failpoint(&self, step: Step) -> io::Result<()> {
        self.failpoints.check(step)
    }
}

/// Where a server keeps its Raft log: the data directory, or an in-memory [`TestDisk`] a
/// simulation hands in through `server::Seams` and power-cuts between runs.
#[derive(Debug, Clone, Default)]
pub enum LogMedium {
    #[default]
    Directory,
    Memory(TestDisk),
}

/// The disk a server's log opens on [`LogMedium`]: one of the two, chosen at start.
#[derive(Debug, Clone)]
pub enum ServerDisk {
    Fs(FsDisk),
    Memory(TestDisk),
}

/// A file of a [`ServerDisk`].
#[derive(Debug)]
pub enum ServerFile {
    Fs(File),
    Memory(TestFile),
}

impl ServerDisk {
    /// The disk `medium` names: for [`LogMedium::Directory`], `dir` with `failpoints` armed.
    pub fn open(medium: &LogMedium, dir: &Path, failpoints: Failpoints) -> io::Result<ServerDisk> {
        Ok(match medium {
            LogMedium::Directory => ServerDisk::Fs(FsDisk::new(dir)?.with_failpoints(failpoints)),
            LogMedium::Memory(disk) => ServerDisk::Memory(disk.clone()),
        })
    }
}

impl LogFile for ServerFile {
    fn size_bytes(&self) -> io::Result<u64> {
        match self {
            ServerFile::Fs(file) => LogFile::size_bytes(file),
            ServerFile::Memory(file) => file.size_bytes(),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match self {
            ServerFile::Fs(file) => LogFile::read_at(file, offset, buf),
            ServerFile::Memory(file) => file.read_at(offset, buf),
        }
    }

    fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        match self {
            ServerFile::Fs(file) => LogFile::write_at(file, offset, bytes),
            ServerFile::Memory(file) => file.write_at(offset, bytes),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            ServerFile::Fs(file) => LogFile::set_len(file, len),
            ServerFile::Memory(file) => file.set_len(len),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        match self {
            ServerFile::Fs(file) => LogFile::sync_data(file),
            ServerFile::Memory(file) => file.sync_data(),
        }
    }
}

impl LogDisk for ServerDisk {
    type File = ServerFile;

    fn list(&self) -> io::Result<Vec<String>> {
        match self {
            ServerDisk::Fs(disk) => disk.list(),
            ServerDisk::Memory(disk) => disk.list(),
        }
    }

    fn create(&self, name: &str) -> io::Result<ServerFile> {
        Ok(match self {
            ServerDisk::Fs(disk) => ServerFile::Fs(disk.create(name)?),
            ServerDisk::Memory(disk) => ServerFile::Memory(disk.create(name)?),
        })
    }

    fn open(&self, name: &str) -> io::Result<ServerFile> {
        Ok(match self {
            ServerDisk::Fs(disk) => ServerFile::Fs(disk.open(name)?),
            ServerDisk::Memory(disk) => ServerFile::Memory(disk.open(name)?),
        })
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match self {
            ServerDisk::Fs(disk) => disk.remove(name),
            ServerDisk::Memory(disk) => disk.remove(name),
        }
    }

    fn sync_dir(&self) -> io::Result<()> {
        match self {
            ServerDisk::Fs(disk) => disk.sync_dir(),
            ServerDisk::Memory(disk) => disk.sync_dir(),
        }
    }

    fn failpoint(&self, step: Step) -> io::Result<()> {
        match self {
            ServerDisk::Fs(disk) => disk.failpoint(step),
            ServerDisk::Memory(disk) => disk.failpoint(step),
        }
    }
}
