//! One memory-mapped file in Python prometheus_client's multiprocess format.
//!
//! Layout: an 8-byte header whose first 4 bytes are `used` (i32, little endian: how
//! many bytes hold entries), then entries of: key length (i32), the UTF-8 key, spaces
//! up to 8-byte alignment, the value (f64) and a timestamp (f64).
//!
//! The writer maps the file, and maps it again each time it grows (keeping the older
//! mappings, which see the same pages), so the address of a value never changes:
//! metric handles keep a pointer to their value and an add is one atomic operation on
//! the shared page. A process killed at any moment leaves every completed add in the
//! page cache. The blocks behind a mapping are reserved before it is made, so a full
//! disk is an error at growth, never a fault at the first write into a page.
//!
//! Readers do not map other processes' files (a mapping faults when its file is
//! truncated): they copy the file with `pread` and check what they copied.

// The mapping is shared memory that other processes write: that needs raw pointers.
#![allow(unsafe_code)]

mod sys;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use memmap2::{MmapOptions, MmapRaw};

pub(crate) use sys::{
    allocate, clock_ticks, fork_generation, is_locked, open_or_create, open_regular, try_lock,
    watch_forks,
};

/// Size of a new file, as Python makes it.
const INITIAL_SIZE: u64 = 1 << 16;
/// Largest file: `used` is an i32.
const MAX_SIZE: usize = i32::MAX as usize;
const HEADER: usize = 8;
/// Growth when doubling finds no room: the least that fits, in pages.
const PAGE: usize = 4096;

/// Bytes of padding after a key of `len` bytes: Python pads to 8-byte alignment of
/// length field plus key, and pads a full 8 when already aligned.
fn padded_len(len: usize) -> usize {
    len + (8 - (len + 4) % 8)
}

fn entry_len(key_len: usize) -> usize {
    4 + padded_len(key_len) + 16
}

/// Why a metric file cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The system refused an operation on the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file holds something that is not the multiprocess format.
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad bytes start.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// The file cannot grow: its format counts its bytes in an `i32`.
    #[error("{path}: full (more than {MAX_SIZE} bytes of entries)")]
    Full {
        /// The file.
        path: PathBuf,
    },
}

impl FileError {
    /// The system's error, if this is one.
    pub(crate) fn io_error(&self) -> Option<&io::Error> {
        match self {
            FileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One entry as read: its key (UTF-8, checked by whoever parses it) and where its
/// value sits.
pub(crate) struct RawEntry<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) value_offset: usize,
}

/// Parses the entries between `start` and `used`.
pub(crate) fn parse_entries<'a>(
    path: &Path,
    data: &'a [u8],
    start: usize,
    used: usize,
) -> Result<Vec<RawEntry<'a>>, FileError> {
    let corrupt = |offset, reason| FileError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if used > data.len() {
        return Err(corrupt(0, "`used` exceeds the file size"));
    }
    let mut entries = Vec::new();
    let mut position = start;
    while position < used {
        let length_bytes = data
            .get(position..position + 4)
            .ok_or_else(|| corrupt(position, "truncated key length"))?;
        let key_len = i32::from_le_bytes([
            length_bytes[0],
            length_bytes[1],
            length_bytes[2],
            length_bytes[3],
        ]);
        let key_len =
            usize::try_from(key_len).map_err(|_| corrupt(position, "negative key length"))?;
        let end = position
            .checked_add(entry_len(key_len))
            .filter(|end| *end <= used)
            .ok_or_else(|| corrupt(position, "entry runs past `used`"))?;
        let key = &data[position + 4..position + 4 + key_len];
        entries.push(RawEntry {
            key,
            value_offset: end - 16,
        });
        position = end;
    }
    Ok(entries)
}

/// Reads `used` from a file's header.
fn read_used(header: &AtomicI32) -> usize {
    usize::try_from(header.load(Ordering::Acquire)).unwrap_or(0)
}

/// `used` from the first 8 bytes of a file as copied.
pub(crate) fn used_of(header: [u8; 8]) -> usize {
    usize::try_from(i32::from_le_bytes([
        header[0], header[1], header[2], header[3],
    ]))
    .unwrap_or(0)
}

/// The value and timestamp at `offset` of a copied file (`parse_entries` checked it).
pub(crate) fn value_at(data: &[u8], offset: usize) -> (f64, f64) {
    let read = |at: usize| {
        data.get(at..at + 8)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map_or(0.0, f64::from_le_bytes)
    };
    (read(offset), read(offset + 8))
}

/// A file this process writes.
pub(crate) struct WritableFile {
    path: PathBuf,
    file: File,
    /// The first mapping, which holds the header.
    first: MmapRaw,
    state: Mutex<WriterState>,
}

struct WriterState {
    used: usize,
    capacity: usize,
    positions: HashMap<String, usize>,
    /// Mappings made as the file grew, the newest last; handles point into all of them.
    grown: Vec<MmapRaw>,
}

impl WriterState {
    fn newest<'a>(&'a self, first: &'a MmapRaw) -> &'a MmapRaw {
        self.grown.last().unwrap_or(first)
    }
}

// SAFETY: the mappings live as long as the struct; all mutation of the mapped bytes
// goes through atomics or happens under `state`'s mutex on bytes past `used`, which
// no handle points into yet.
unsafe impl Send for WritableFile {}
// SAFETY: as above.
unsafe impl Sync for WritableFile {}

impl WritableFile {
    /// Opens (or creates, with `mode`) the file and indexes the entries already in it,
    /// so a process that reuses the file of an earlier one with the same pid continues
    /// its values.
    pub(crate) fn open(path: &Path, mode: u32) -> Result<Self, FileError> {
        let io_error = |source| FileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = open_or_create(path, mode).map_err(io_error)?;
        let length = file.metadata().map_err(io_error)?.len();
        let capacity = usize::try_from(length.max(INITIAL_SIZE))
            .ok()
            .filter(|c| *c <= MAX_SIZE)
            .ok_or_else(|| FileError::Full {
                path: path.to_path_buf(),
            })?;
        // A file another process left (Python's are sparse) gets its blocks too.
        allocate(&file, capacity as u64).map_err(io_error)?;
        let first = MmapOptions::new()
            .len(capacity)
            .map_raw(&file)
            .map_err(io_error)?;
        let this = Self {
            path: path.to_path_buf(),
            file,
            first,
            state: Mutex::new(WriterState {
                used: HEADER,
                capacity,
                positions: HashMap::new(),
                grown: Vec::new(),
            }),
        };
        let used = match read_used(this.header()) {
            0 => {
                this.header().store(HEADER as i32, Ordering::Release);
                HEADER
            }
            used => used,
        };
        let positions = {
            // SAFETY: `capacity` bytes of the file are mapped and allocated.
            let data = unsafe { std::slice::from_raw_parts(this.first.as_ptr(), capacity) };
            let mut positions = HashMap::new();
            for entry in parse_entries(path, data, HEADER, used)? {
                let key = std::str::from_utf8(entry.key).map_err(|_| FileError::Corrupt {
                    path: path.to_path_buf(),
                    offset: entry.value_offset,
                    reason: "key is not UTF-8",
                })?;
                positions.insert(key.to_string(), entry.value_offset);
            }
            positions
        };
        {
            let mut state = this.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.used = used;
            state.positions = positions;
        }
        Ok(this)
    }

    fn header(&self) -> &AtomicI32 {
        // SAFETY: the map starts page-aligned and the file holds at least the header.
        unsafe { &*self.first.as_ptr().cast::<AtomicI32>() }
    }

    /// The place of `key`'s value, appending an entry for it if it is new.
    pub(crate) fn slot(self: &Arc<Self>, key: &str) -> Result<Slot, FileError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let offset = match state.positions.get(key) {
            Some(offset) => *offset,
            None => self.append(&mut state, key)?,
        };
        let pointer = state
            .newest(&self.first)
            .as_mut_ptr()
            .wrapping_add(offset)
            .cast::<AtomicU64>();
        Ok(Slot {
            // The map's base is never null, so neither is an offset into it.
            value: NonNull::new(pointer).ok_or_else(|| FileError::Full {
                path: self.path.clone(),
            })?,
            _file: Arc::clone(self),
        })
    }

    fn append(&self, state: &mut WriterState, key: &str) -> Result<usize, FileError> {
        let length = entry_len(key.len());
        let start = state.used;
        let end = start + length;
        if end > MAX_SIZE {
            return Err(FileError::Full {
                path: self.path.clone(),
            });
        }
        if end > state.capacity {
            self.grow(state, end)?;
        }
        let mut entry = Vec::with_capacity(length);
        entry.extend_from_slice(&(key.len() as i32).to_le_bytes());
        entry.extend_from_slice(key.as_bytes());
        entry.resize(4 + padded_len(key.len()), b' ');
        entry.resize(length, 0);
        // SAFETY: `start..end` lies inside the file's allocated blocks and the newest
        // mapping (grown above); it is past `used`, so no reader or handle looks at it
        // yet, and the mutex keeps other writers of this process out.
        unsafe {
            std::ptr::copy_nonoverlapping(
                entry.as_ptr(),
                state.newest(&self.first).as_mut_ptr().add(start),
                length,
            );
        }
        // Publishing `used` last makes the entry visible only once it is complete.
        self.header().store(end as i32, Ordering::Release);
        state.used = end;
        let offset = end - 16;
        state.positions.insert(key.to_string(), offset);
        Ok(offset)
    }

    /// Reserves blocks for at least `needed` bytes (double the size if there is room,
    /// else the pages that fit) and maps the grown file.
    fn grow(&self, state: &mut WriterState, needed: usize) -> Result<(), FileError> {
        let io_error = |source| FileError::Io {
            path: self.path.clone(),
            source,
        };
        let doubled = state.capacity.saturating_mul(2).clamp(needed, MAX_SIZE);
        let least = needed.div_ceil(PAGE).saturating_mul(PAGE).min(MAX_SIZE);
        let capacity = match allocate(&self.file, doubled as u64) {
            Ok(()) => doubled,
            Err(_) if least < doubled => {
                allocate(&self.file, least as u64).map_err(io_error)?;
                least
            }
            Err(error) => return Err(io_error(error)),
        };
        let map = MmapOptions::new()
            .len(capacity)
            .map_raw(&self.file)
            .map_err(io_error)?;
        state.grown.push(map);
        state.capacity = capacity;
        Ok(())
    }
}

/// Where one value (and the timestamp after it) sits in a mapped file.
pub(crate) struct Slot {
    value: NonNull<AtomicU64>,
    _file: Arc<WritableFile>,
}

/// The place of a value, which changes when a forked child moves it to its own file
/// or when a value that found no room gets some.
pub(crate) struct SlotRef {
    /// The fork generation `value` belongs to; `UNPLACED` before it has a place.
    generation: AtomicU64,
    value: AtomicPtr<AtomicU64>,
    /// Every slot it ever held: a pointer handed out stays valid as long as `self`.
    held: Mutex<Vec<Slot>>,
}

const UNPLACED: u64 = u64::MAX;

// SAFETY: the pointees are `AtomicU64`s inside mappings that `held` keeps alive.
unsafe impl Send for Slot {}
// SAFETY: as above; all access is atomic.
unsafe impl Sync for Slot {}

impl SlotRef {
    pub(crate) fn unplaced() -> Self {
        Self {
            generation: AtomicU64::new(UNPLACED),
            value: AtomicPtr::new(std::ptr::null_mut()),
            held: Mutex::new(Vec::new()),
        }
    }

    /// The value and its timestamp, if placed in a file of fork generation `generation`.
    #[inline]
    pub(crate) fn get(&self, generation: u64) -> Option<(&AtomicU64, &AtomicU64)> {
        if self.generation.load(Ordering::Acquire) != generation {
            return None;
        }
        let value = self.value.load(Ordering::Acquire);
        // SAFETY: `value` came from a `Slot` in `held` (stored before the generation
        // that the Acquire load above saw), so it points at an 8-byte aligned value
        // followed by its timestamp, in a mapping alive as long as `self`.
        unsafe { Some((&*value, &*value.add(1))) }
    }

    /// Moves the value to `slot`, of fork generation `generation`.
    pub(crate) fn place(&self, slot: Slot, generation: u64) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        self.value.store(slot.value.as_ptr(), Ordering::Release);
        held.push(slot);
        self.generation.store(generation, Ordering::Release);
    }
}
