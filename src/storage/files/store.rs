//! The files of this process in the multiprocess directory, the values placed in
//! them, and which processes live.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::archive;
use super::error::{FileError, MultiprocessError};
use super::map::{self, Slot, SlotRef};
use super::naming::{lock_file_name, FileKind, GaugeMode};
use super::open::{is_at, open_or_create, open_regular};
use super::reason::{Reason, Tally};
use super::writer::WritableFile;
use crate::storage::shard::add_f64;

/// Why a write found no place in the files; the `reason` label of the write errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The filesystem (or a quota) has no room.
    NoSpace,
    /// The file would outgrow the format (2 GiB).
    FileFull,
    /// Any other failure: permissions, a corrupt file of this pid, a link in its place.
    Io,
}

impl Reason for WriteError {
    const ALL: &'static [Self] = &[WriteError::NoSpace, WriteError::FileFull, WriteError::Io];

    fn as_str(self) -> &'static str {
        match self {
            WriteError::NoSpace => "no_space",
            WriteError::FileFull => "file_full",
            WriteError::Io => "io",
        }
    }
}

impl WriteError {
    fn of(error: &FileError) -> Self {
        match error {
            FileError::Full { .. } => WriteError::FileFull,
            _ => match error.io_error().and_then(io::Error::raw_os_error) {
                Some(libc::ENOSPC | libc::EDQUOT) => WriteError::NoSpace,
                _ => WriteError::Io,
            },
        }
    }
}

/// Stores open in this process, by canonical directory.
static OPEN_STORES: Mutex<BTreeMap<PathBuf, Weak<ProcessStore>>> = Mutex::new(BTreeMap::new());

/// How long a starting process waits for its pid's lock, which a fold may hold.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How long a value that found no place waits before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// This process's files in the directory.
pub(crate) struct ProcessStore {
    dir: PathBuf,
    /// Mode of new files: the directory's read and write bits, so a private
    /// directory keeps its files private (the umask applies as well).
    file_mode: u32,
    state: Mutex<StoreState>,
    /// Writes that found no place in the files.
    write_errors: Tally<WriteError>,
    /// This process's files found removed or replaced at the last look.
    displaced: AtomicU64,
}

/// The files of the process this is (it changes after a fork).
struct StoreState {
    pid: u32,
    generation: u64,
    files: HashMap<FileKind, Arc<WritableFile>>,
    /// Locked until the process exits; a reader that finds it unlocked knows the
    /// process is gone, however it died and whatever pid came later. `None` in a
    /// forked child that could not take its own.
    lock: Option<File>,
}

impl ProcessStore {
    /// Checks the directory and takes this process's lock.
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
        let file_mode = metadata.permissions().mode() & 0o666;
        map::watch_forks();
        let generation = map::fork_generation();
        let (pid, lock) = take_lock(dir, file_mode)?;
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            file_mode,
            state: Mutex::new(StoreState {
                pid,
                generation,
                files: HashMap::new(),
                lock: Some(lock),
            }),
            write_errors: Default::default(),
            displaced: AtomicU64::new(0),
        }))
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mode new files of the directory get.
    pub(crate) fn file_mode(&self) -> u32 {
        self.file_mode
    }

    /// The cell for `key` in the file of `kind`. When the file cannot take it, the
    /// value is kept in memory, its writes are counted, and it tries again later.
    pub(crate) fn value(self: &Arc<Self>, kind: FileKind, key: &str) -> MappedValue {
        let cell = Cell {
            slot: SlotRef::unplaced(),
            local: Default::default(),
            store: Arc::clone(self),
            kind,
            key: key.into(),
            pending: Mutex::new(Pending {
                generation: map::fork_generation(),
                retry_at: None,
                reason: WriteError::Io,
            }),
        };
        if let Err(reason) = cell.try_place(map::fork_generation()) {
            let mut pending = cell.pending.lock().unwrap_or_else(PoisonError::into_inner);
            pending.reason = reason;
            pending.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        MappedValue {
            cell: Arc::new(cell),
        }
    }

    /// Creates this process's file of `kind` now, so a directory that cannot hold it
    /// fails when the layer is built rather than at the first request.
    pub(crate) fn ensure(&self, kind: FileKind) -> Result<(), MultiprocessError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.file(&mut state, kind)
            .map(drop)
            .map_err(MultiprocessError::from)
    }

    /// Writes that found no place in the files, by reason.
    pub(crate) fn write_errors(&self) -> &Tally<WriteError> {
        &self.write_errors
    }

    /// The pid this process has now.
    pub(crate) fn pid(&self) -> u32 {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A child that has not written yet takes its own lock at its first scrape.
        let _ = self.follow_fork(&mut state);
        state.pid
    }

    /// How many of this process's files, its lock file included, are no longer at
    /// their place in the directory: removed, or replaced by another file (the
    /// directory itself removed and made again, say). Their values go on in the files
    /// this process has open, where no other process's scrape sees them, and other
    /// processes take it for exited; a warning says so when it starts.
    pub(crate) fn displaced_files(&self) -> u64 {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let lock_path = self.dir.join(lock_file_name(state.pid));
        let lock_displaced = state
            .lock
            .as_ref()
            .is_some_and(|lock| !is_at(lock, &lock_path));
        let displaced = state
            .files
            .values()
            .filter(|file| !file.is_in_place())
            .count() as u64
            + u64::from(lock_displaced);
        let before = self.displaced.swap(displaced, Ordering::Relaxed);
        if displaced > 0 && before == 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                files = displaced,
                "this process's multiprocess files were removed or replaced: its counts are no longer in other processes' scrapes; restart the process"
            );
        }
        displaced
    }

    fn count_write_error(&self, reason: WriteError) {
        if self.write_errors.count(reason) == 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                reason = reason.as_str(),
                "multiprocess values found no place in their files: kept in memory, counted, and placed when there is room"
            );
        }
    }

    fn slot(&self, kind: FileKind, key: &str) -> Result<Slot, FileError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.follow_fork(&mut state)?;
        self.file(&mut state, kind)?.slot(key)
    }

    /// After a fork, the child drops its parent's files and takes a lock of its own:
    /// its values go to files of its own pid, as Python's clients do.
    fn follow_fork(&self, state: &mut StoreState) -> Result<(), FileError> {
        let generation = map::fork_generation();
        if state.generation == generation {
            return Ok(());
        }
        state.files.clear();
        // The parent's lock is the parent's: record locks do not pass to a child.
        state.lock = None;
        let (pid, lock) = take_lock(&self.dir, self.file_mode).map_err(|source| FileError::Io {
            path: self.dir.join(lock_file_name(std::process::id())),
            source,
        })?;
        state.pid = pid;
        state.lock = Some(lock);
        state.generation = generation;
        Ok(())
    }

    fn file(&self, state: &mut StoreState, kind: FileKind) -> Result<Arc<WritableFile>, FileError> {
        if let Some(file) = state.files.get(&kind) {
            return Ok(Arc::clone(file));
        }
        let path = self.dir.join(kind.file_name(state.pid));
        let file = Arc::new(WritableFile::open(&path, self.file_mode)?);
        state.files.insert(kind, Arc::clone(&file));
        Ok(file)
    }
}

/// Takes the lock of this process's pid in `dir`. It is a record lock (the kind a
/// reader can query without taking), which a process loses when it closes any
/// descriptor of the file: nothing else in this crate opens its own lock file.
/// Live-mode gauge files of this pid were written by a process that is gone (this
/// pid is ours now): they go.
///
/// A fold holds the lock of an exited pid while it folds that pid's files, and then
/// removes the lock file: this waits a moment for a fold, and takes the lock again
/// if the file it locked was removed meanwhile.
fn take_lock(dir: &Path, mode: u32) -> io::Result<(u32, File)> {
    let pid = std::process::id();
    let lock_path = dir.join(lock_file_name(pid));
    let deadline = Instant::now() + LOCK_WAIT;
    let lock = loop {
        let lock = open_or_create(&lock_path, mode)?;
        if map::try_lock(&lock)? {
            if is_at(&lock, &lock_path) {
                break lock;
            }
            continue;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("another live process holds {}", lock_path.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    archive::release_pid(dir, pid, mode)?;
    for mode in GaugeMode::ALL.into_iter().filter(|m| m.is_live()) {
        let stale = dir.join(FileKind::Gauge(mode).file_name(pid));
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok((pid, lock))
}

/// A value in this process's files, shared by clones; after a fork it moves to the
/// child's files at its first write there.
#[derive(Clone)]
pub(crate) struct MappedValue {
    cell: Arc<Cell>,
}

struct Cell {
    slot: SlotRef,
    /// Value and timestamp bits while the cell has no place in a file.
    local: [AtomicU64; 2],
    store: Arc<ProcessStore>,
    kind: FileKind,
    key: Box<str>,
    pending: Mutex<Pending>,
}

struct Pending {
    /// The fork generation `local` belongs to.
    generation: u64,
    /// When to try placing the value again; `None`: now.
    retry_at: Option<Instant>,
    /// Why the last try failed.
    reason: WriteError,
}

impl Cell {
    fn try_place(&self, generation: u64) -> Result<(), WriteError> {
        let slot = self
            .store
            .slot(self.kind, &self.key)
            .map_err(|error| WriteError::of(&error))?;
        self.slot.place(slot, generation);
        Ok(())
    }

    /// A write that missed the fast path: the value moves to a file of this process
    /// (with what was kept in memory meanwhile), or stays in memory and is counted.
    #[cold]
    fn write_slow<R>(&self, op: impl FnOnce(&AtomicU64, &AtomicU64) -> R) -> R {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = map::fork_generation();
        if let Some((value, timestamp)) = self.slot.get(generation) {
            return op(value, timestamp);
        }
        if pending.generation != generation {
            // Forked: what the parent kept in memory is the parent's to write.
            pending.generation = generation;
            pending.retry_at = None;
            for local in &self.local {
                local.store(0, Ordering::Relaxed);
            }
        }
        if pending.retry_at.is_none_or(|at| Instant::now() >= at) {
            match self.try_place(generation) {
                Ok(()) => {
                    if let Some((value, timestamp)) = self.slot.get(generation) {
                        add_f64(
                            value,
                            f64::from_bits(self.local[0].swap(0, Ordering::Relaxed)),
                        );
                        let kept = self.local[1].swap(0, Ordering::Relaxed);
                        if kept != 0 {
                            timestamp.store(kept, Ordering::Relaxed);
                        }
                        return op(value, timestamp);
                    }
                }
                Err(reason) => {
                    pending.reason = reason;
                    pending.retry_at = Some(Instant::now() + RETRY_AFTER);
                }
            }
        }
        self.store.count_write_error(pending.reason);
        op(&self.local[0], &self.local[1])
    }
}

impl MappedValue {
    #[inline]
    fn write<R>(&self, op: impl FnOnce(&AtomicU64, &AtomicU64) -> R) -> R {
        match self.cell.slot.get(map::fork_generation()) {
            Some((value, timestamp)) => op(value, timestamp),
            None => self.cell.write_slow(op),
        }
    }

    pub(crate) fn add(&self, delta: f64) {
        self.write(|value, _| add_f64(value, delta));
    }

    pub(crate) fn set(&self, value: f64) {
        self.write(|cell, _| cell.store(value.to_bits(), Ordering::Relaxed));
    }

    pub(crate) fn set_timestamp(&self, seconds: f64) {
        self.write(|_, timestamp| timestamp.store(seconds.to_bits(), Ordering::Relaxed));
    }

    /// The value this process has (0 in a forked child that has not written it yet).
    pub(crate) fn get(&self) -> f64 {
        let bits = match self.cell.slot.get(map::fork_generation()) {
            Some((value, _)) => value.load(Ordering::Relaxed),
            None => {
                let pending = self
                    .cell
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if pending.generation == map::fork_generation() {
                    self.cell.local[0].load(Ordering::Relaxed)
                } else {
                    0
                }
            }
        };
        f64::from_bits(bits)
    }
}

/// Whether the process `pid`, which wrote the file at `path` in `dir`, still runs.
/// A process of this crate holds its lock file; for others (Python workers) the pid
/// must exist and have started before the file was last written, or it is a later
/// process that reuses the pid.
pub(crate) fn is_alive(dir: &Path, pid: u32, path: &Path, own_pid: u32) -> bool {
    if pid == own_pid {
        return true;
    }
    match open_regular(&dir.join(lock_file_name(pid)), false) {
        Ok(lock) => match map::is_locked(&lock) {
            Ok(locked) => locked,
            // Locking unsupported here: fall back to the pid.
            Err(_) => started_before(pid, path),
        },
        Err(_) => started_before(pid, path),
    }
}

/// The lock file of `pid` in `dir`, held, if no process holds it: that process of
/// this crate has exited, and no process of its pid can take the lock (and so start
/// writing its files) while it is held. `None` also where such locks do not exist
/// (systems other than Linux).
pub(crate) fn hold_if_exited(dir: &Path, pid: u32) -> io::Result<Option<map::HeldLock>> {
    #[cfg(target_os = "linux")]
    {
        let lock = match open_regular(&dir.join(lock_file_name(pid)), true) {
            Ok(lock) => map::HeldLock::new(lock),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        Ok(map::try_hold(lock.file())?.then_some(lock))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (dir, pid);
        Ok(None)
    }
}

/// Whether `pid` runs and started before the file at `path` was last changed.
fn started_before(pid: u32, path: &Path) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Some(started) = start_time(pid) else {
        return false;
    };
    let changed = std::fs::symlink_metadata(path)
        .ok()
        .and_then(|metadata| metadata.modified().ok())
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok());
    // The start time is known to a clock tick: allow for two.
    changed.is_none_or(|changed| started <= changed + Duration::from_millis(20))
}

/// When `pid` started, as time since the epoch, from `/proc` (whose start time counts
/// clock ticks since boot).
fn start_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let booted = now.checked_sub(Duration::try_from_secs_f64(uptime).ok()?)?;
    let ticks_per_second = map::clock_ticks();
    Some(
        booted
            + Duration::from_secs(ticks / ticks_per_second)
            + Duration::from_nanos((ticks % ticks_per_second) * 1_000_000_000 / ticks_per_second),
    )
}
