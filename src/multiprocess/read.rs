//! Reading the directory's files, as Python's `MultiProcessCollector` reads them.
//!
//! Files are copied with `pread` into one reused buffer, never mapped: a file that
//! another process truncates or rewrites is then a short or inconsistent copy, skipped
//! for that scrape and counted, instead of a fault. Keys never change once written, so
//! each file is parsed once: later scrapes parse only entries appended since, and read
//! values at known offsets of the copy. Keys are interned: one met in many files is
//! parsed once.
//!
//! A file is open only while it is copied: a scrape holds no descriptor of another
//! process's file after it returns, however many processes have come and gone. Each
//! file's values at its last good read are kept, so a file that cannot be opened at a
//! scrape (the process is out of descriptors, say) is served as it was then and counted
//! `unreadable`: a total never drops below one served before.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::hash::FastHashBuilder;
use crate::storage::files::archive::{self, FoldedFile};
use crate::storage::files::format::{entries_end, parse_entries, used_of, value_at};
use crate::storage::files::key;
use crate::storage::files::open::{identity, open_regular};
use crate::storage::files::reason::Reason;
use crate::storage::files::FileKind;

/// Why a file was skipped at a scrape; the `reason` label of [`SKIPPED_FILES`](super::SKIPPED_FILES).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Skip {
    NotRegular,
    Unreadable,
    Truncated,
    Corrupt,
    UnknownName,
}

impl Reason for Skip {
    const ALL: &'static [Self] = &[
        Skip::NotRegular,
        Skip::Unreadable,
        Skip::Truncated,
        Skip::Corrupt,
        Skip::UnknownName,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Skip::NotRegular => "not_regular",
            Skip::Unreadable => "unreadable",
            Skip::Truncated => "truncated",
            Skip::Corrupt => "corrupt",
            Skip::UnknownName => "unknown_name",
        }
    }
}

impl Skip {
    fn of_open(error: &io::Error) -> Self {
        match (error.kind(), error.raw_os_error()) {
            (io::ErrorKind::InvalidInput, _) | (_, Some(libc::ELOOP)) => Skip::NotRegular,
            _ => Skip::Unreadable,
        }
    }

    fn of_read(error: &io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::UnexpectedEof => Skip::Truncated,
            _ => Skip::Unreadable,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    /// One sample of a Python summary (`_count` or `_sum`), summed over processes and
    /// served as a gauge family of that name: prometheus-client cannot encode a
    /// summary, and these are the samples a summary without quantiles has.
    Summary,
}

impl FamilyType {
    /// The type of the families that files of `kind` hold.
    fn of(kind: FileKind) -> Self {
        match kind {
            FileKind::Counter => FamilyType::Counter,
            FileKind::Gauge(_) => FamilyType::Gauge,
            FileKind::Histogram => FamilyType::Histogram,
            FileKind::Summary => FamilyType::Summary,
        }
    }
}

/// Where a file is read from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Its name, as the listing gave its type (`None`: not listed).
    Listed(Option<std::fs::FileType>),
    /// An archive, opened before the directory was listed.
    Archive(&'a File),
}

/// What became of a file at a scrape.
pub(super) enum Refresh {
    /// Read: [`Cache::entries`] holds its values now.
    Read,
    /// Unreadable now (the process is out of descriptors, say): [`Cache::entries`]
    /// holds its values as last read, so no total drops; counted `unreadable`.
    Kept,
    /// Skipped, and forgotten: truncated, corrupt, not a regular file, or unreadable
    /// before it was ever read.
    Skipped(Skip),
    /// Removed after it was listed.
    Gone,
}

/// A series as its key names it; the same in every file.
pub(super) type SeriesId = usize;

pub(super) struct SeriesInfo {
    pub(super) family: usize,
    pub(super) role: Role,
}

pub(super) enum Role {
    /// A counter's `_total` or a gauge's value, with its labels.
    Value(Vec<(String, String)>),
    /// A histogram bucket, listed in its group.
    Bucket,
    /// A histogram's `_sum`, named by its group.
    Sum,
    /// A sample this crate does not aggregate (for example `_created`).
    Ignored,
}

pub(super) struct FamilyInfo {
    pub(super) name: String,
    pub(super) help: String,
    pub(super) family_type: FamilyType,
    pub(super) series: Vec<SeriesId>,
    pub(super) groups: Vec<usize>,
}

/// The series of one histogram that share labels (all but `le`).
pub(super) struct HistogramGroup {
    pub(super) labels: Vec<(String, String)>,
    /// Bucket series, kept sorted by bound as they are interned.
    pub(super) buckets: Vec<(f64, SeriesId)>,
    pub(super) sum: Option<SeriesId>,
}

pub(super) struct CachedFile {
    identity: (u64, u64),
    parsed_until: usize,
    /// Each entry, with its value as last read.
    pub(super) entries: Vec<Entry>,
    /// For an archive, the files whose values it holds.
    folded: Vec<FoldedFile>,
    /// The last scrape whose listing held the file.
    listed_at: u64,
}

/// One entry of a file: its series, where its value sits, and the value and timestamp
/// the last good read found there.
pub(super) struct Entry {
    pub(super) series: SeriesId,
    offset: usize,
    pub(super) value: f64,
    pub(super) timestamp: f64,
}

/// What earlier scrapes learnt of the files, kept for the next.
#[derive(Default)]
pub(super) struct Cache {
    series_ids: HashMap<(FamilyType, String), SeriesId>,
    pub(super) series: Vec<SeriesInfo>,
    family_ids: HashMap<(FamilyType, String), usize>,
    pub(super) families: Vec<FamilyInfo>,
    group_ids: HashMap<(usize, Vec<(String, String)>), usize>,
    pub(super) groups: Vec<HistogramGroup>,
    /// Key text to series, so the same key in many files is parsed once.
    keys: HashMap<Box<[u8]>, SeriesId, FastHashBuilder>,
    /// A gauge series and a pid to the series with that `pid` label ([`Cache::with_pid`]).
    per_process: HashMap<(SeriesId, Box<str>), SeriesId>,
    pub(super) files: HashMap<PathBuf, CachedFile>,
    /// The copy of the file being read, reused across files and scrapes.
    buffer: Vec<u8>,
    /// Scrapes begun, which tells files listed at this one from those gone since.
    scrapes: u64,
}

impl Cache {
    /// The series of a key, parsing (and checking) the key only the first time.
    fn intern(&mut self, key_bytes: &[u8], kind: FileKind) -> Option<SeriesId> {
        if let Some(id) = self.keys.get(key_bytes) {
            return Some(*id);
        }
        let parsed = key::decode(std::str::from_utf8(key_bytes).ok()?).ok()?;
        let id = self.series_of(&parsed, FamilyType::of(kind));
        self.keys.insert(key_bytes.into(), id);
        Some(id)
    }

    /// The series `parsed` names, made if it is new.
    fn series_of(&mut self, parsed: &key::Key, family_type: FamilyType) -> SeriesId {
        let identity = key::encode("", &parsed.sample, &parsed.labels, "");
        if let Some(id) = self.series_ids.get(&(family_type, identity.clone())) {
            return *id;
        }
        // A summary's samples are families of their own (see `FamilyType`).
        let name = match family_type {
            FamilyType::Summary => &parsed.sample,
            _ => &parsed.metric,
        };
        let family = self.family(family_type, name, &parsed.help);
        let id = self.series.len();
        let role = self.role(family, family_type, parsed, id);
        self.series.push(SeriesInfo { family, role });
        self.families[family].series.push(id);
        self.series_ids.insert((family_type, identity), id);
        id
    }

    /// The series of gauge `series` with the label `pid="pid"` added, as a gauge of a
    /// per-process mode is served: one series whether its value comes from the file of
    /// process `pid` or, once folded, from the archive, whose keys carry the `pid`.
    pub(super) fn with_pid(&mut self, series: SeriesId, pid: &str) -> SeriesId {
        if let Some(id) = self.per_process.get(&(series, pid.into())) {
            return *id;
        }
        let family = &self.families[self.series[series].family];
        let Role::Value(labels) = &self.series[series].role else {
            return series;
        };
        let mut labels = labels.clone();
        labels.retain(|(name, _)| name != "pid");
        labels.push(("pid".to_string(), pid.to_string()));
        let parsed = key::Key {
            metric: family.name.clone(),
            sample: family.name.clone(),
            labels,
            help: family.help.clone(),
        };
        let id = self.series_of(&parsed, family.family_type);
        self.per_process.insert((series, pid.into()), id);
        id
    }

    fn family(&mut self, family_type: FamilyType, name: &str, help: &str) -> usize {
        let key = (family_type, name.to_string());
        if let Some(id) = self.family_ids.get(&key) {
            return *id;
        }
        let id = self.families.len();
        self.families.push(FamilyInfo {
            name: name.to_string(),
            help: help.to_string(),
            family_type,
            series: Vec::new(),
            groups: Vec::new(),
        });
        self.family_ids.insert(key, id);
        id
    }

    /// The role of the new series `series`; bucket and sum series join their group.
    fn role(
        &mut self,
        family: usize,
        family_type: FamilyType,
        parsed: &key::Key,
        series: SeriesId,
    ) -> Role {
        let name = &self.families[family].name;
        match family_type {
            FamilyType::Counter if parsed.sample == format!("{name}_total") => {
                Role::Value(parsed.labels.clone())
            }
            FamilyType::Gauge | FamilyType::Summary if parsed.sample == *name => {
                Role::Value(parsed.labels.clone())
            }
            FamilyType::Histogram if parsed.sample == format!("{name}_bucket") => {
                let Some(bound) = parsed
                    .labels
                    .iter()
                    .find(|(label, _)| label == "le")
                    .and_then(|(_, value)| parse_bound(value))
                else {
                    return Role::Ignored;
                };
                let labels: Vec<_> = parsed
                    .labels
                    .iter()
                    .filter(|(l, _)| l != "le")
                    .cloned()
                    .collect();
                let group = self.group(family, labels);
                let buckets = &mut self.groups[group].buckets;
                let at = buckets.partition_point(|(b, _)| *b < bound);
                buckets.insert(at, (bound, series));
                Role::Bucket
            }
            FamilyType::Histogram if parsed.sample == format!("{name}_sum") => {
                let group = self.group(family, parsed.labels.clone());
                self.groups[group].sum = Some(series);
                Role::Sum
            }
            _ => Role::Ignored,
        }
    }

    fn group(&mut self, family: usize, labels: Vec<(String, String)>) -> usize {
        let key = (family, labels);
        if let Some(id) = self.group_ids.get(&key) {
            return *id;
        }
        let id = self.groups.len();
        self.groups.push(HistogramGroup {
            labels: key.1.clone(),
            buckets: Vec::new(),
            sum: None,
        });
        self.families[family].groups.push(id);
        self.group_ids.insert(key, id);
        id
    }

    /// Starts a scrape's pass over the files: those `listed` in it from here on are
    /// kept by [`Cache::forget_unlisted`].
    pub(super) fn begin_scrape(&mut self) {
        self.scrapes += 1;
    }

    /// Drops the files the current scrape's listing did not hold: they are gone.
    pub(super) fn forget_unlisted(&mut self) {
        let scrape = self.scrapes;
        self.files.retain(|_, file| file.listed_at == scrape);
    }

    /// The paths of every file read before, for a scrape that cannot list the
    /// directory.
    pub(super) fn known_paths(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// Reads `path` afresh: its entries are brought up to date with what its writer
    /// appended, and their values with the file. `listed` is what the directory
    /// listing says the name is, when it was listed.
    pub(super) fn refresh(
        &mut self,
        path: &Path,
        listed: Option<std::fs::FileType>,
        kind: FileKind,
    ) -> Refresh {
        self.refresh_from(path, Source::Listed(listed), kind)
    }

    /// Reads the archive `file`, opened at `path`, as [`Cache::refresh`] reads a file,
    /// and the list of files it holds with it ([`Cache::folded`]).
    pub(super) fn refresh_archive(&mut self, path: &Path, file: &File, kind: FileKind) -> Refresh {
        self.refresh_from(path, Source::Archive(file), kind)
    }

    /// The files the archive at `path` holds the values of, as last read.
    pub(super) fn folded(&self, path: &Path) -> &[FoldedFile] {
        self.files.get(path).map_or(&[], |file| &file.folded)
    }

    fn refresh_from(&mut self, path: &Path, source: Source<'_>, kind: FileKind) -> Refresh {
        let cached = self.files.remove(path);
        match self.read(path, source, kind, cached) {
            Ok(file) => {
                self.files.insert(path.to_path_buf(), file);
                Refresh::Read
            }
            Err((_, _)) if is_gone(path) => Refresh::Gone,
            Err((Skip::Unreadable, Some(kept))) => {
                self.files.insert(path.to_path_buf(), kept);
                Refresh::Kept
            }
            Err((reason, _)) => Refresh::Skipped(reason),
        }
    }

    /// The entries of `path` as last read, if it is known.
    pub(super) fn entries(&self, path: &Path) -> &[Entry] {
        self.files.get(path).map_or(&[], |file| &file.entries)
    }

    /// Reads the file at `path` into the buffer and updates `cached` from it; on
    /// failure gives back why, with what was cached, untouched.
    fn read(
        &mut self,
        path: &Path,
        source: Source<'_>,
        kind: FileKind,
        cached: Option<CachedFile>,
    ) -> Result<CachedFile, (Skip, Option<CachedFile>)> {
        let opened;
        let (file, metadata) = match source {
            Source::Archive(file) => match file.metadata() {
                Ok(metadata) => (file, metadata),
                Err(error) => return Err((Skip::of_read(&error), cached)),
            },
            Source::Listed(listed) => {
                // Listing and `lstat` say what the name is without opening it; the
                // open below refuses links and does not block, and checks again what
                // it opened.
                if listed.is_some_and(|listed| !listed.is_file()) {
                    return Err((Skip::NotRegular, cached));
                }
                let metadata = match std::fs::symlink_metadata(path) {
                    Ok(metadata) => metadata,
                    Err(_) => return Err((Skip::Unreadable, cached)),
                };
                if !metadata.is_file() {
                    return Err((Skip::NotRegular, cached));
                }
                opened = match open_regular(path, false) {
                    Ok(file) => file,
                    Err(error) => return Err((Skip::of_open(&error), cached)),
                };
                (&opened, metadata)
            }
        };
        let identity = identity(&metadata);
        let scrape = self.scrapes;
        let archive = matches!(source, Source::Archive(_));
        let mut current = match cached {
            // The same file: what was parsed stays valid unless it shrank (checked below).
            // Not an archive: a new one is renamed in for each fold, and may get the
            // inode of the one it replaced, so each is parsed afresh.
            Some(cached) if cached.identity == identity && !archive => cached,
            _ => CachedFile {
                identity,
                parsed_until: 8,
                entries: Vec::new(),
                folded: Vec::new(),
                listed_at: scrape,
            },
        };
        current.listed_at = scrape;
        match self.copy(path, file, metadata.len(), &mut current, kind) {
            Ok(()) if archive => {
                match folded_after_used(file, current.parsed_until, metadata.len()) {
                    Some(folded) => {
                        current.folded = folded;
                        Ok(current)
                    }
                    None => Err((Skip::Corrupt, Some(current))),
                }
            }
            Ok(()) => Ok(current),
            Err(reason) => Err((reason, Some(current))),
        }
    }

    /// Copies the open `file` into the buffer, parses what was appended since
    /// `cached` was read, and takes every entry's value from the copy.
    fn copy(
        &mut self,
        path: &Path,
        file: &File,
        listed_len: u64,
        cached: &mut CachedFile,
        kind: FileKind,
    ) -> Result<(), Skip> {
        let mut header = [0; 8];
        file.read_exact_at(&mut header, 0)
            .map_err(|error| Skip::of_read(&error))?;
        let used = entries_end(used_of(header)).ok_or(Skip::Corrupt)?;
        if used < cached.parsed_until {
            // Rewritten shorter: the next scrape reads it afresh.
            return Err(Skip::Truncated);
        }
        // A header claiming more than the file holds (up to 2 GiB) is not given a
        // buffer of that size: a file planted or cut short costs no memory. A writer
        // grows its file before it moves `used` on, so a claim past the size listed
        // before the header was read is measured again, after it.
        let claimed = u64::try_from(used).unwrap_or(u64::MAX);
        if claimed > listed_len {
            let size = file
                .metadata()
                .map_err(|error| Skip::of_read(&error))?
                .len();
            if claimed > size {
                return Err(Skip::Truncated);
            }
        }
        self.buffer.resize(used, 0);
        file.read_exact_at(&mut self.buffer, 0)
            .map_err(|error| Skip::of_read(&error))?;
        if used > cached.parsed_until {
            // Out of `self` while its keys are interned into `self`.
            let buffer = std::mem::take(&mut self.buffer);
            let parsed = self.intern_entries(path, &buffer, cached.parsed_until, kind);
            self.buffer = buffer;
            cached.entries.extend(parsed?);
            cached.parsed_until = used;
        }
        for entry in &mut cached.entries {
            (entry.value, entry.timestamp) = value_at(&self.buffer, entry.offset);
        }
        Ok(())
    }

    /// The entries of `data` from `start` on, their values yet to be read.
    fn intern_entries(
        &mut self,
        path: &Path,
        data: &[u8],
        start: usize,
        kind: FileKind,
    ) -> Result<Vec<Entry>, Skip> {
        parse_entries(path, data, start, data.len())
            .map_err(|_| Skip::Corrupt)?
            .into_iter()
            .map(|entry| {
                let series = self.intern(entry.key, kind).ok_or(Skip::Corrupt)?;
                Ok(Entry {
                    series,
                    offset: entry.value_offset,
                    value: 0.0,
                    timestamp: 0.0,
                })
            })
            .collect()
    }
}

/// The list of folded files past `used` in an archive of `len` bytes; `None` when it
/// cannot be read or is damaged.
fn folded_after_used(file: &File, used: usize, len: u64) -> Option<Vec<FoldedFile>> {
    let rest = usize::try_from(len).ok()?.checked_sub(used)?;
    let mut after_used = vec![0; rest];
    file.read_exact_at(&mut after_used, u64::try_from(used).ok()?)
        .ok()?;
    archive::decode_folded(&after_used)
}

/// Whether nothing is at `path` any more: the file was removed after it was listed.
fn is_gone(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_err_and(|error| error.kind() == io::ErrorKind::NotFound)
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}
