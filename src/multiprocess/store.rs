//! The files of this process in the multiprocess directory, and which processes live.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::file::{FileError, MappedValue, WritableFile};
use super::{GaugeMode, MultiprocessError};

/// Which file of a process a value lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    Counter,
    Histogram,
    Gauge(GaugeMode),
}

impl FileKind {
    fn file_name(self, pid: u32) -> String {
        match self {
            FileKind::Counter => format!("counter_{pid}.db"),
            FileKind::Histogram => format!("histogram_{pid}.db"),
            FileKind::Gauge(mode) => format!("gauge_{}_{pid}.db", mode.as_str()),
        }
    }
}

/// Name of the lock file a process holds for its whole life. Python's reader only
/// reads `*.db` files, so it does not see these.
fn lock_file_name(pid: u32) -> String {
    format!("tower_prometheus_{pid}.lock")
}

/// Stores open in this process, by canonical directory.
static OPEN_STORES: Mutex<BTreeMap<PathBuf, Weak<ProcessStore>>> = Mutex::new(BTreeMap::new());

/// This process's files in the directory.
pub(crate) struct ProcessStore {
    dir: PathBuf,
    pid: u32,
    files: Mutex<HashMap<FileKind, Arc<WritableFile>>>,
    /// Values that could not get a cell (for example a full disk) and stay in memory.
    write_errors: AtomicU64,
    /// Held (exclusively locked) until the process exits; a reader that can lock it
    /// knows the process is gone, however it died and whatever pid came later.
    _lock: File,
}

impl ProcessStore {
    /// Checks the directory and takes this process's lock. A lock file left by a dead
    /// process with the same pid means its live-mode gauges are stale: they go.
    pub(crate) fn open(dir: &Path) -> Result<Arc<Self>, MultiprocessError> {
        let io_error = |source: io::Error| MultiprocessError::Directory {
            path: dir.to_path_buf(),
            source,
        };
        // The files are named by pid, so every registry of this process that uses the
        // directory must write through the same store, or two writers would append to
        // one file.
        let canonical = dir.canonicalize().map_err(io_error)?;
        let mut open_stores = OPEN_STORES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = open_stores.get(&canonical).and_then(Weak::upgrade) {
            return Ok(store);
        }
        let store = Self::create(&canonical).map_err(io_error)?;
        open_stores.retain(|_, store| store.strong_count() > 0);
        open_stores.insert(canonical, Arc::downgrade(&store));
        Ok(store)
    }

    fn create(dir: &Path) -> io::Result<Arc<Self>> {
        let metadata = std::fs::metadata(dir)?;
        if !metadata.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        let pid = std::process::id();
        let lock_path = dir.join(lock_file_name(pid));
        let reused = lock_path.exists();
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        lock.try_lock().map_err(|error| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "another live process holds {}: {error}",
                    lock_path.display()
                ),
            )
        })?;
        if reused {
            for mode in GaugeMode::ALL.into_iter().filter(|m| m.is_live()) {
                let stale = dir.join(FileKind::Gauge(mode).file_name(pid));
                match std::fs::remove_file(&stale) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            pid,
            files: Mutex::new(HashMap::new()),
            write_errors: AtomicU64::new(0),
            _lock: lock,
        }))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cell for `key` in the file of `kind`, or `None` (counted) when the file
    /// cannot take it.
    pub(crate) fn value(&self, kind: FileKind, key: &str) -> Option<MappedValue> {
        let result = self.file(kind).and_then(|file| file.value(key));
        match result {
            Ok(value) => Some(value),
            Err(_) => {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Creates this process's file of `kind` now, so a directory that cannot hold it
    /// fails when the layer is built rather than at the first request.
    pub(crate) fn ensure(&self, kind: FileKind) -> Result<(), MultiprocessError> {
        self.file(kind).map(drop).map_err(MultiprocessError::from)
    }

    pub(crate) fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    fn file(&self, kind: FileKind) -> Result<Arc<WritableFile>, FileError> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = files.get(&kind) {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(WritableFile::open(
            &self.dir.join(kind.file_name(self.pid)),
        )?);
        files.insert(kind, Arc::clone(&file));
        Ok(file)
    }
}

/// Whether the process `pid` that wrote files in `dir` still runs. A process of this
/// crate holds its lock file; for others (Python workers) the pid is looked up.
pub(crate) fn is_alive(dir: &Path, pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match File::open(dir.join(lock_file_name(pid))) {
        Ok(lock) => match lock.try_lock_shared() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            // Locking unsupported here: fall back to the pid.
            Err(std::fs::TryLockError::Error(_)) => pid_exists(pid),
        },
        Err(_) => pid_exists(pid),
    }
}

fn pid_exists(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}
