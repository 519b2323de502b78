//! The archive: per kind of file, one file holding the folded values of exited
//! processes, in the same format and named as if its owner were a process called
//! `archive` (`counter_archive.db`, `gauge_max_archive.db`), so Python's collector
//! reads it as it reads any other file.
//!
//! Past `used`, where no reader of the format looks, an archive lists the files whose
//! values it holds (name, device and inode): a fold makes a new archive visible with
//! one rename, before it removes the files it folded, and until they are gone readers
//! skip them by this list. Once they are gone the fold writes the archive again with
//! an empty list, so that no later file that happens to get the same name and inode is
//! ever mistaken for one of them.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::format::{encode_entry, entries_end, parse_entries, used_of, value_at, HEADER};
use super::map::{try_lock_exclusive, HeldLock};
use super::naming::FileKind;
use super::open::{create_new, identity_at, open_or_create, open_regular};

/// The owner part of an archive's file name.
pub(crate) const ARCHIVE: &str = "archive";
/// Marks the list of folded files past `used`.
const FOLDED_MAGIC: &[u8; 8] = b"TPFOLD01";
/// Name of the file whose `flock` a fold holds, so that one fold runs at a time.
const FOLD_LOCK: &str = "tower_prometheus_fold.lock";
/// Prefix of the files a fold writes before it renames them into place.
const TEMP_PREFIX: &str = "tower_prometheus_fold_";
/// How long a process that finds its pid in an archive's list waits for a fold.
const FOLD_WAIT: Duration = Duration::from_secs(5);

/// A file whose values an archive holds, as it was when it was folded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FoldedFile {
    pub(crate) name: String,
    /// Device and inode.
    pub(crate) identity: (u64, u64),
}

impl FoldedFile {
    /// Whether `name` in `dir` is still this file.
    pub(crate) fn is_present(&self, dir: &Path) -> bool {
        identity_at(&dir.join(&self.name)) == Some(self.identity)
    }
}

/// One series of an archive: its key, value and timestamp.
pub(crate) type ArchivedEntry = (String, f64, f64);

/// An archive as read.
#[derive(Debug, Default)]
pub(crate) struct Archive {
    pub(crate) entries: Vec<ArchivedEntry>,
    pub(crate) folded: Vec<FoldedFile>,
}

/// The path of the archive of `kind` in `dir`.
pub(crate) fn archive_path(dir: &Path, kind: FileKind) -> PathBuf {
    dir.join(kind.file_name_of(ARCHIVE))
}

/// Whether `name` is a file a fold left half-written.
pub(crate) fn is_temporary(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX) && name.ends_with(".tmp")
}

/// The bytes of an archive holding `entries`, which lists `folded`.
pub(crate) fn encode(entries: &[ArchivedEntry], folded: &[FoldedFile]) -> Vec<u8> {
    let mut bytes = vec![0; HEADER];
    for (key, value, timestamp) in entries {
        encode_entry(key, *value, *timestamp, &mut bytes);
    }
    let used = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    bytes[..4].copy_from_slice(&used.to_le_bytes());
    bytes.extend_from_slice(FOLDED_MAGIC);
    bytes.extend_from_slice(&u32::try_from(folded.len()).unwrap_or(0).to_le_bytes());
    for file in folded {
        bytes.extend_from_slice(&u32::try_from(file.name.len()).unwrap_or(0).to_le_bytes());
        bytes.extend_from_slice(file.name.as_bytes());
        bytes.extend_from_slice(&file.identity.0.to_le_bytes());
        bytes.extend_from_slice(&file.identity.1.to_le_bytes());
    }
    bytes
}

/// The files listed past `used` (`after_used`: the rest of the file); `None` when
/// the list is damaged. Nothing there lists nothing.
pub(crate) fn decode_folded(after_used: &[u8]) -> Option<Vec<FoldedFile>> {
    if after_used.is_empty() {
        return Some(Vec::new());
    }
    let mut rest = after_used.strip_prefix(FOLDED_MAGIC.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (taken, left) = rest.split_at_checked(n)?;
        rest = left;
        Some(taken)
    };
    let u32_at = |bytes: &[u8]| Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize);
    let u64_at = |bytes: &[u8]| Some(u64::from_le_bytes(bytes.try_into().ok()?));
    let count = u32_at(take(4)?)?;
    let mut folded = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let len = u32_at(take(4)?)?;
        let name = std::str::from_utf8(take(len)?).ok()?.to_string();
        let dev = u64_at(take(8)?)?;
        let ino = u64_at(take(8)?)?;
        folded.push(FoldedFile {
            name,
            identity: (dev, ino),
        });
    }
    Some(folded)
}

/// Reads a file of the format from an open `file`: its entries with their values, and,
/// when `with_rest`, what lies past `used` (an archive's list of folded files).
pub(crate) fn read_entries(
    path: &Path,
    file: &File,
    with_rest: bool,
) -> io::Result<(Vec<ArchivedEntry>, Vec<u8>)> {
    let corrupt = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let len = usize::try_from(file.metadata()?.len()).map_err(|_| corrupt("too large"))?;
    let mut header = [0; HEADER];
    file.read_exact_at(&mut header, 0)?;
    let used = entries_end(used_of(header)).ok_or_else(|| corrupt("`used` in the header"))?;
    if used > len {
        return Err(corrupt("`used` past the end of the file"));
    }
    // Only what holds entries: a file is mostly room for more, sparse.
    let mut data = vec![0; if with_rest { len } else { used }];
    file.read_exact_at(&mut data, 0)?;
    let entries = parse_entries(path, &data, HEADER, used)
        .map_err(|error| corrupt(&error.to_string()))?
        .into_iter()
        .map(|entry| {
            let key = std::str::from_utf8(entry.key).map_err(|_| corrupt("a key is not UTF-8"))?;
            let (value, timestamp) = value_at(&data, entry.value_offset);
            Ok((key.to_string(), value, timestamp))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let rest = data.get(used..).unwrap_or_default().to_vec();
    Ok((entries, rest))
}

/// Reads the archive of `kind` in `dir`, if there is one.
pub(crate) fn read(dir: &Path, kind: FileKind) -> io::Result<Option<Archive>> {
    let path = archive_path(dir, kind);
    let file = match open_regular(&path, false) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let (entries, after_used) = read_entries(&path, &file, true)?;
    let folded = decode_folded(&after_used).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "damaged list of folded files")
    })?;
    Ok(Some(Archive { entries, folded }))
}

/// Makes `bytes` the archive of `kind` in one step: written beside it, then renamed
/// over it, so a reader opens the old archive or the new one, never a part of either.
pub(crate) fn replace(dir: &Path, kind: FileKind, bytes: &[u8], mode: u32) -> io::Result<()> {
    let temporary = dir.join(format!("{TEMP_PREFIX}{}.tmp", kind.file_name_of(ARCHIVE)));
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    let mut file = create_new(&temporary, mode)?;
    file.write_all(bytes)?;
    drop(file);
    std::fs::rename(&temporary, archive_path(dir, kind))
}

/// The lock that lets one fold run at a time in `dir`, once taken; `None` while
/// another holds it.
pub(crate) fn try_fold_lock(dir: &Path, mode: u32) -> io::Result<Option<HeldLock>> {
    let lock = HeldLock::new(open_or_create(&dir.join(FOLD_LOCK), mode)?);
    Ok(try_lock_exclusive(lock.file())?.then_some(lock))
}

/// Called by a process that has just taken the lock of `pid`: a fold that was killed
/// after it archived files of an earlier process of this pid, before it removed them,
/// left them listed in an archive. Those files go now (their values are in the
/// archive), and the archive lists them no more, before this process writes a file
/// that could get one of their names and inodes.
pub(crate) fn release_pid(dir: &Path, pid: u32, mode: u32) -> io::Result<()> {
    let owner = pid.to_string();
    let names_pid = |file: &FoldedFile| {
        FileKind::parse(&file.name).is_some_and(|(_, file_owner)| file_owner == owner)
    };
    let listed = |dir: &Path| -> io::Result<bool> {
        for kind in FileKind::all() {
            if read(dir, kind)?.is_some_and(|archive| archive.folded.iter().any(names_pid)) {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if !listed(dir)? {
        return Ok(());
    }
    let deadline = Instant::now() + FOLD_WAIT;
    let _fold = loop {
        if let Some(lock) = try_fold_lock(dir, mode)? {
            break lock;
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "a fold holds {} for more than {FOLD_WAIT:?}",
                    dir.join(FOLD_LOCK).display()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for kind in FileKind::all() {
        let Some(archive) = read(dir, kind)? else {
            continue;
        };
        let (ours, others): (Vec<_>, Vec<_>) = archive.folded.into_iter().partition(names_pid);
        if ours.is_empty() {
            continue;
        }
        for file in ours.iter().filter(|file| file.is_present(dir)) {
            remove_if_present(&dir.join(&file.name))?;
        }
        replace(dir, kind, &encode(&archive.entries, &others), mode)?;
    }
    Ok(())
}

/// Removes `path`; one already gone is no error.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folded_list_comes_back_as_written() {
        let folded = vec![
            FoldedFile {
                name: "counter_12.db".into(),
                identity: (3, 99),
            },
            FoldedFile {
                name: "gauge_max_7.db".into(),
                identity: (u64::MAX, 0),
            },
        ];
        let bytes = encode(&[("k".into(), 2.5, 1.0)], &folded);
        let used = used_of(bytes[..8].try_into().unwrap());
        assert_eq!(decode_folded(&bytes[used..]), Some(folded));
        assert_eq!(decode_folded(&[]), Some(Vec::new()));
        assert_eq!(decode_folded(&bytes[used..bytes.len() - 1]), None);
        assert_eq!(decode_folded(b"anything"), None);
    }
}
