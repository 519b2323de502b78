//! A file this process writes, mapped.
//!
//! The writer maps the file, and maps it again each time it grows (keeping the older
//! mappings, which see the same pages), so the address of a value never changes:
//! metric handles keep a pointer to their value and an add is one atomic operation on
//! the shared page. A process killed at any moment leaves every completed add in the
//! page cache. The file is sparse, as Python's are: blocks are reserved page by page
//! as entries are appended, before an entry is written, so a file takes the disk its
//! entries need and a full disk is an error at the append, never a fault at the first
//! write into a page.

use std::collections::HashMap;
use std::fs::File;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::format::{
    encode_entry, entries_end, entry_len, padded_len, parse_entries, read_used, FileError, HEADER,
    INITIAL_SIZE, MAX_SIZE,
};
use super::key;
use super::map::{extend, reserve, Mapping, Slot};
use super::open::{is_at, open_or_create};
use crate::hash::FastHashBuilder;

/// The unit in which blocks are reserved.
const PAGE: usize = 4096;

/// A file this process writes.
pub(crate) struct WritableFile {
    path: PathBuf,
    file: File,
    /// The first mapping, which holds the header.
    first: Mapping,
    state: Mutex<WriterState>,
}

struct WriterState {
    used: usize,
    capacity: usize,
    /// Bytes from the start that have blocks: whole pages covering `used`.
    reserved: usize,
    /// Where each key's value is: by the key's hash, the start of its entry (whose key
    /// is read back from the file to confirm it), and by the key itself for the rare
    /// key whose hash another key has. A copy of every key would double the memory a
    /// process with many series takes.
    positions: Positions,
    /// Mappings made as the file grew, the newest last; handles point into all of them.
    grown: Vec<Mapping>,
}

impl WriterState {
    fn newest<'a>(&'a self, first: &'a Mapping) -> &'a Mapping {
        self.grown.last().unwrap_or(first)
    }
}

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
        extend(&file, capacity as u64).map_err(io_error)?;
        // The header's page, so a disk without room for it fails now.
        reserve(&file, 0, PAGE as u64).map_err(io_error)?;
        let first = Mapping::new(&file, capacity).map_err(io_error)?;
        let this = Self {
            path: path.to_path_buf(),
            file,
            first,
            state: Mutex::new(WriterState {
                used: HEADER,
                capacity,
                reserved: PAGE,
                positions: Positions::default(),
                grown: Vec::new(),
            }),
        };
        let stored = read_used(this.header());
        // Past a `used` inside the header, entries would be written over it, and
        // scrapes skip the file.
        let used = entries_end(stored).ok_or_else(|| FileError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: "`used` ends inside the header",
        })?;
        if stored == 0 {
            this.header().store(HEADER as i32, Ordering::Release);
        }
        let positions = {
            let data = this.first.bytes();
            let mut positions = Positions::default();
            for entry in parse_entries(path, data, HEADER, used)? {
                let corrupt = |reason| FileError::Corrupt {
                    path: path.to_path_buf(),
                    offset: entry.value_offset,
                    reason,
                };
                let key =
                    std::str::from_utf8(entry.key).map_err(|_| corrupt("key is not UTF-8"))?;
                // A key scrapes cannot read would hide the whole file, and every later
                // count of this process with it: refused here, as a broken layout is.
                key::decode(key).map_err(|_| corrupt("key is not a series' JSON key"))?;
                let start = entry_start(entry.value_offset, key.len());
                positions.insert(key, start, |at, len| data.get(at..at + len));
            }
            positions
        };
        {
            let mut state = this.state.lock().unwrap_or_else(PoisonError::into_inner);
            // Entries a process of this pid left before (Python's are sparse) get
            // their blocks too, since values are added to them in place.
            this.reserve_to(&mut state, used)?;
            state.used = used;
            state.positions = positions;
        }
        Ok(this)
    }

    /// Whether the file is still at its path in the directory.
    pub(crate) fn is_in_place(&self) -> bool {
        is_at(&self.file, &self.path)
    }

    fn header(&self) -> &AtomicI32 {
        self.first.header()
    }

    /// The place of `key`'s value, appending an entry for it if it is new.
    pub(crate) fn slot(self: &Arc<Self>, key: &str) -> Result<Slot, FileError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let found = {
            let mapping = state.newest(&self.first);
            state.positions.get(key, |at, len| mapping.settled(at, len))
        };
        let offset = match found {
            Some(offset) => offset,
            None => self.append(&mut state, key)?,
        };
        let value =
            state
                .newest(&self.first)
                .value_at(offset)
                .ok_or_else(|| FileError::Corrupt {
                    path: self.path.clone(),
                    offset,
                    reason: "value outside the mapping",
                })?;
        Ok(Slot::new(value, Arc::clone(self) as Arc<dyn Send + Sync>))
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
        self.reserve_to(state, end)?;
        let mut entry = Vec::with_capacity(length);
        encode_entry(key, 0.0, 0.0, &mut entry);
        // The newest mapping covers `end` (grown above) and has blocks behind it.
        if !state.newest(&self.first).write_unused(start, &entry) {
            return Err(FileError::Full {
                path: self.path.clone(),
            });
        }
        // Publishing `used` last makes the entry visible only once it is complete.
        self.header().store(end as i32, Ordering::Release);
        state.used = end;
        // The newest mapping, borrowed apart from the positions it lets be checked.
        let mapping = state.grown.last().unwrap_or(&self.first);
        state
            .positions
            .insert(key, start, |at, len| mapping.settled(at, len));
        Ok(end - 16)
    }

    /// Gives the pages up to byte `end` their blocks, if they have none yet.
    fn reserve_to(&self, state: &mut WriterState, end: usize) -> Result<(), FileError> {
        if end <= state.reserved {
            return Ok(());
        }
        let to = end.div_ceil(PAGE).saturating_mul(PAGE).min(state.capacity);
        reserve(&self.file, state.reserved as u64, to as u64).map_err(|source| FileError::Io {
            path: self.path.clone(),
            source,
        })?;
        state.reserved = to;
        Ok(())
    }

    /// Grows the file (sparse) to hold at least `needed` bytes, doubling it where the
    /// format allows, and maps the grown file.
    fn grow(&self, state: &mut WriterState, needed: usize) -> Result<(), FileError> {
        let io_error = |source| FileError::Io {
            path: self.path.clone(),
            source,
        };
        let capacity = state.capacity.saturating_mul(2).clamp(needed, MAX_SIZE);
        extend(&self.file, capacity as u64).map_err(io_error)?;
        let map = Mapping::new(&self.file, capacity).map_err(io_error)?;
        state.grown.push(map);
        state.capacity = capacity;
        Ok(())
    }
}

/// Where the entry whose value is at `value_offset` starts, its key `key_len` bytes.
fn entry_start(value_offset: usize, key_len: usize) -> usize {
    value_offset - 4 - padded_len(key_len)
}

/// Where each key's value is in a file, by the key's hash; see [`WriterState`].
#[derive(Default)]
struct Positions {
    /// A key's hash to the start of its entry.
    by_hash: HashMap<u64, usize>,
    /// Keys whose hash another key has, to the start of their entries.
    collided: HashMap<String, usize>,
    hasher: FastHashBuilder,
}

impl Positions {
    /// The value offset of `key`'s entry; `bytes_at(offset, len)` reads the file.
    fn get<'a>(
        &self,
        key: &str,
        bytes_at: impl Fn(usize, usize) -> Option<&'a [u8]>,
    ) -> Option<usize> {
        let start = match self.by_hash.get(&self.hasher.hash_one(key)) {
            Some(&start) if holds(&bytes_at, start, key) => start,
            _ => *self.collided.get(key)?,
        };
        Some(start + 4 + padded_len(key.len()))
    }

    /// Records that `key`'s entry starts at `start`.
    fn insert<'a>(
        &mut self,
        key: &str,
        start: usize,
        bytes_at: impl Fn(usize, usize) -> Option<&'a [u8]>,
    ) {
        let hash = self.hasher.hash_one(key);
        match self.by_hash.get(&hash) {
            Some(&other) if !holds(&bytes_at, other, key) => {
                self.collided.insert(key.to_string(), start);
            }
            _ => {
                self.by_hash.insert(hash, start);
            }
        }
    }
}

/// Whether the entry at `start` is `key`'s: its length and its key bytes.
fn holds<'a>(
    bytes_at: &impl Fn(usize, usize) -> Option<&'a [u8]>,
    start: usize,
    key: &str,
) -> bool {
    let Ok(len) = i32::try_from(key.len()) else {
        return false;
    };
    bytes_at(start, 4 + key.len())
        .is_some_and(|bytes| bytes[..4] == len.to_le_bytes() && &bytes[4..] == key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of two entries, `a` at 8 and `bb` at 32, as bytes.
    fn file() -> Vec<u8> {
        let mut bytes = vec![0; HEADER];
        encode_entry("a", 0.0, 0.0, &mut bytes);
        encode_entry("bb", 0.0, 0.0, &mut bytes);
        bytes
    }

    #[test]
    fn a_key_is_found_by_its_hash_and_confirmed_in_the_file() {
        let bytes = file();
        let at = |at: usize, len: usize| bytes.get(at..at + len);
        let mut positions = Positions::default();
        positions.insert("a", 8, at);
        positions.insert("bb", 32, at);
        assert_eq!(positions.get("a", at), Some(8 + 4 + padded_len(1)));
        assert_eq!(positions.get("bb", at), Some(32 + 4 + padded_len(2)));
        assert_eq!(positions.get("c", at), None);
    }

    #[test]
    fn a_key_whose_hash_another_key_has_is_kept_by_itself() {
        let bytes = file();
        let at = |at: usize, len: usize| bytes.get(at..at + len);
        let mut positions = Positions::default();
        positions.insert("a", 8, at);
        // As if `bb` hashed as `a` does.
        let taken = positions.hasher.hash_one("bb");
        positions.by_hash.insert(taken, 8);
        positions.insert("bb", 32, at);
        assert_eq!(positions.collided.len(), 1);
        assert_eq!(positions.get("bb", at), Some(32 + 4 + padded_len(2)));
        assert_eq!(positions.get("a", at), Some(8 + 4 + padded_len(1)));
    }
}
