//! One memory-mapped file in Python prometheus_client's multiprocess format.
//!
//! Layout: an 8-byte header whose first 4 bytes are `used` (i32, little endian: how
//! many bytes hold entries), then entries of: key length (i32), the UTF-8 key, spaces
//! up to 8-byte alignment, the value (f64) and a timestamp (f64).
//!
//! The writer maps a large range once and grows the file under it, so the address of
//! a value never changes: metric handles keep a pointer to their value and an add is
//! one atomic operation on the shared page. A process killed at any moment leaves
//! every completed add in the page cache, and readers load each 8-byte aligned value
//! atomically, so they never see a torn value.

// The mapping is shared memory that other processes write: that needs raw pointers.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use memmap2::{Mmap, MmapOptions, MmapRaw};

/// Size of a new file, as Python makes it.
const INITIAL_SIZE: u64 = 1 << 16;
/// Address space reserved for one file: it may grow to this size without remapping.
const RESERVED: usize = 1 << 30;
const HEADER: usize = 8;

/// Bytes of padding after a key of `len` bytes: Python pads to 8-byte alignment of
/// length field plus key, and pads a full 8 when already aligned.
fn padded_len(len: usize) -> usize {
    len + (8 - (len + 4) % 8)
}

fn entry_len(key_len: usize) -> usize {
    4 + padded_len(key_len) + 16
}

/// Why a file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: usize,
        reason: &'static str,
    },
    #[error("{path}: full (more than {RESERVED} bytes of entries)")]
    Full { path: PathBuf },
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

/// A file this process writes.
pub(crate) struct WritableFile {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    state: Mutex<WriterState>,
}

struct WriterState {
    used: usize,
    capacity: usize,
    positions: HashMap<String, usize>,
}

// SAFETY: the mapping lives as long as the struct; all mutation of the mapped bytes
// goes through atomics or happens under `state`'s mutex on bytes past `used`, which
// no handle points into yet.
unsafe impl Send for WritableFile {}
// SAFETY: as above.
unsafe impl Sync for WritableFile {}

impl WritableFile {
    /// Opens (or creates) the file and indexes the entries already in it, so a process
    /// that reuses the file of an earlier one with the same pid continues its values.
    pub(crate) fn open(path: &Path) -> Result<Self, FileError> {
        let io_error = |source| FileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error)?;
        let mut capacity = file.metadata().map_err(io_error)?.len();
        if capacity < HEADER as u64 {
            file.set_len(INITIAL_SIZE).map_err(io_error)?;
            capacity = INITIAL_SIZE;
        }
        let capacity = usize::try_from(capacity)
            .ok()
            .filter(|c| *c <= RESERVED)
            .ok_or_else(|| FileError::Full {
                path: path.to_path_buf(),
            })?;
        let map = MmapOptions::new()
            .len(RESERVED)
            .map_raw(&file)
            .map_err(io_error)?;
        let this = Self {
            path: path.to_path_buf(),
            file,
            map,
            state: Mutex::new(WriterState {
                used: HEADER,
                capacity,
                positions: HashMap::new(),
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
            // SAFETY: `capacity` bytes of the file are mapped and initialised.
            let data = unsafe { std::slice::from_raw_parts(this.map.as_ptr(), capacity) };
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
        unsafe { &*self.map.as_ptr().cast::<AtomicI32>() }
    }

    /// The value cell of `key`, appending an entry for it if it is new.
    pub(crate) fn value(self: &Arc<Self>, key: &str) -> Result<MappedValue, FileError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let offset = match state.positions.get(key) {
            Some(offset) => *offset,
            None => self.append(&mut state, key)?,
        };
        let pointer = self
            .map
            .as_mut_ptr()
            .wrapping_add(offset)
            .cast::<AtomicU64>();
        Ok(MappedValue {
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
        if end > RESERVED || key.len() > i32::MAX as usize {
            return Err(FileError::Full {
                path: self.path.clone(),
            });
        }
        while end > state.capacity {
            state.capacity *= 2;
            self.file
                .set_len(state.capacity as u64)
                .map_err(|source| FileError::Io {
                    path: self.path.clone(),
                    source,
                })?;
        }
        let mut entry = Vec::with_capacity(length);
        entry.extend_from_slice(&(key.len() as i32).to_le_bytes());
        entry.extend_from_slice(key.as_bytes());
        entry.resize(4 + padded_len(key.len()), b' ');
        entry.resize(length, 0);
        // SAFETY: `start..end` lies inside the file (grown above) and the reserved
        // mapping; it is past `used`, so no reader or handle looks at it yet, and the
        // mutex keeps other writers of this process out.
        unsafe {
            std::ptr::copy_nonoverlapping(entry.as_ptr(), self.map.as_mut_ptr().add(start), length);
        }
        // Publishing `used` last makes the entry visible only once it is complete.
        self.header().store(end as i32, Ordering::Release);
        state.used = end;
        let offset = end - 16;
        state.positions.insert(key.to_string(), offset);
        Ok(offset)
    }
}

/// A value (and the timestamp after it) in a mapped file, shared by clones.
#[derive(Clone)]
pub(crate) struct MappedValue {
    value: NonNull<AtomicU64>,
    _file: Arc<WritableFile>,
}

// SAFETY: the pointee is an `AtomicU64` inside a mapping that `_file` keeps alive.
unsafe impl Send for MappedValue {}
// SAFETY: as above; all access is atomic.
unsafe impl Sync for MappedValue {}

impl MappedValue {
    fn value(&self) -> &AtomicU64 {
        // SAFETY: 8-byte aligned (entries end on 8-byte boundaries), inside the file,
        // and alive as long as `_file`.
        unsafe { self.value.as_ref() }
    }

    fn timestamp(&self) -> &AtomicU64 {
        // SAFETY: the timestamp is the next 8 bytes of the same entry.
        unsafe { &*self.value.as_ptr().add(1) }
    }

    pub(crate) fn add(&self, delta: f64) {
        crate::metrics::shard::add_f64(self.value(), delta);
    }

    pub(crate) fn set(&self, value: f64) {
        self.value().store(value.to_bits(), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> f64 {
        f64::from_bits(self.value().load(Ordering::Relaxed))
    }

    pub(crate) fn set_timestamp(&self, seconds: f64) {
        self.timestamp().store(seconds.to_bits(), Ordering::Relaxed);
    }
}

/// A file of any process, mapped read-only for scrapes.
pub(crate) struct ReadableFile {
    map: Mmap,
}

impl ReadableFile {
    pub(crate) fn open(path: &Path) -> Result<Self, FileError> {
        let io_error = |source| FileError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_error)?;
        let len = file.metadata().map_err(io_error)?.len();
        if len < HEADER as u64 {
            return Err(FileError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: "shorter than the header",
            });
        }
        // SAFETY: the mapping is read-only; other processes change values in place,
        // which `load` reads atomically. Nobody shrinks these files.
        let map = unsafe { Mmap::map(&file) }.map_err(io_error)?;
        Ok(Self { map })
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.map
    }

    /// `used` as the header says now.
    pub(crate) fn used(&self) -> usize {
        // SAFETY: the map is page-aligned and at least the header long.
        read_used(unsafe { &*self.map.as_ptr().cast::<AtomicI32>() })
    }

    /// The value at `offset`, which `parse_entries` returned for this file.
    pub(crate) fn load(&self, offset: usize) -> (f64, f64) {
        if !offset.is_multiple_of(8) || offset + 16 > self.map.len() {
            return (0.0, 0.0);
        }
        // SAFETY: in bounds and 8-byte aligned (checked above); an atomic load of
        // read-only memory is a plain load on targets with native 64-bit atomics.
        let value = unsafe { &*self.map.as_ptr().add(offset).cast::<AtomicU64>() };
        // SAFETY: as above, for the timestamp after it.
        let timestamp = unsafe { &*self.map.as_ptr().add(offset + 8).cast::<AtomicU64>() };
        (
            f64::from_bits(value.load(Ordering::Relaxed)),
            f64::from_bits(timestamp.load(Ordering::Relaxed)),
        )
    }
}
