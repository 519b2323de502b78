//! The layout of a file in Python prometheus_client's multiprocess format, and its
//! parsing.
//!
//! An 8-byte header whose first 4 bytes are `used` (i32, little endian: how many bytes
//! hold entries), then entries of: key length (i32), the UTF-8 key, spaces up to 8-byte
//! alignment, the value (f64) and a timestamp (f64).

use std::path::Path;

pub(crate) use super::error::FileError;
use std::sync::atomic::{AtomicI32, Ordering};

/// Size of a new file, as Python makes it.
pub(crate) const INITIAL_SIZE: u64 = 1 << 16;
/// Largest file: `used` is an i32.
pub(crate) const MAX_SIZE: usize = i32::MAX as usize;
pub(crate) const HEADER: usize = 8;

/// Bytes of padding after a key of `len` bytes: Python pads to 8-byte alignment of
/// length field plus key, and pads a full 8 when already aligned.
pub(crate) fn padded_len(len: usize) -> usize {
    len + (8 - (len + 4) % 8)
}

pub(crate) fn entry_len(key_len: usize) -> usize {
    4 + padded_len(key_len) + 16
}

/// Appends the entry of `key` with `value` and `timestamp` to `out`, as Python lays
/// one out: the key's length, the key padded with spaces, the value and the timestamp.
pub(crate) fn encode_entry(key: &str, value: f64, timestamp: f64, out: &mut Vec<u8>) {
    let start = out.len();
    // Keys longer than i32::MAX bytes cannot be laid out; no writer makes one.
    out.extend_from_slice(&i32::try_from(key.len()).unwrap_or(i32::MAX).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.resize(start + 4 + padded_len(key.len()), b' ');
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
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
pub(crate) fn read_used(header: &AtomicI32) -> usize {
    usize::try_from(header.load(Ordering::Acquire)).unwrap_or(0)
}

/// `used` from the first 8 bytes of a file as copied.
pub(crate) fn used_of(header: [u8; 8]) -> usize {
    usize::try_from(i32::from_le_bytes([
        header[0], header[1], header[2], header[3],
    ]))
    .unwrap_or(0)
}

/// Where a file's entries end, from the `used` of its header: where the header does
/// for a file of no entries yet (a writer sets `used` right after it creates the
/// file, so 0 is such a file); `None` for one that ends inside the header, which no
/// writer leaves.
pub(crate) fn entries_end(used: usize) -> Option<usize> {
    match used {
        0 => Some(HEADER),
        1..HEADER => None,
        used => Some(used),
    }
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
