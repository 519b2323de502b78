//! Folding the files of exited processes into the archive, so that a directory holds
//! files in proportion to its live processes and its series, not to every process
//! ever started.
//!
//! A fold runs on a thread of its own after a scrape (at most one per process at a
//! time, and one per directory: it holds `flock` on `tower_prometheus_fold.lock`). It
//! takes the lock of every exited process of this crate it folds (an open file
//! description lock, which a restarting process of that pid waits for), then, per
//! kind of file:
//!
//! 1. writes the new archive beside the old one: the old archive's values combined
//!    with the exited processes' files (counters, histograms and summaries summed;
//!    gauges by their mode; `all` gauges keep each process's `pid` label in the key),
//!    listing the files it holds;
//! 2. renames it over the old one;
//!
//! then removes the folded files (and exited processes' `live*` gauge files, which no
//! scrape serves), writes each archive again with an empty list, and removes the
//! exited processes' lock files.
//!
//! What a reader takes as the truth: the archive it opened, plus every other file
//! that archive does not list. A reader opens the archives before it lists the
//! directory and checks after reading that each archive's path still names the file
//! it opened; if not, a fold renamed one meanwhile and it reads again (see
//! `combine`). A fold killed at any step leaves a directory readers read exactly: a
//! half-written archive is a `.tmp` file no reader reads (the next fold removes it);
//! an archive renamed in lists the files it holds, which readers skip until the next
//! fold (or a new process of their pid) removes them.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::storage::files::archive::{self, Archive, ArchivedEntry, FoldedFile, ARCHIVE};
use crate::storage::files::key;
use crate::storage::files::naming::{lock_file_name, lock_file_owner};
use crate::storage::files::open::{identity, open_regular};
use crate::storage::files::reason::{Reason, Tally};
use crate::storage::files::{hold_if_exited, is_alive, FileKind, GaugeMode, HeldLock};

/// Whether the files of exited processes are folded into the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Folding {
    /// Folded where every metric file belongs to a process of this crate (each holds
    /// a lock file): never where a Python process writes the directory. A Python
    /// process that only reads it (a scraper with files of its own in no other
    /// directory) cannot be seen: choose [`Folding::Off`] there.
    #[default]
    Auto,
    /// Folded also where Python processes write: an exited Python worker is known by
    /// its pid and start time. Python's collector reads the archive like any file,
    /// but a Python scrape that runs while a fold removes files fails or counts them
    /// twice, as Python's own collector cannot tell.
    Always,
    /// Never folded: every process's files stay, as with Python's client.
    Off,
}

/// How often a process tries to fold at most.
const FOLD_INTERVAL: Duration = Duration::from_secs(30);
/// Exited processes folded at most by one pass of a fold, which holds a descriptor of
/// each one's lock file; a fold makes passes until none is left.
const PASS_PROCESSES: usize = 64;

/// How a fold ended; the `outcome` label of [`FOLDS`](super::FOLDS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FoldOutcome {
    /// Files of exited processes were folded.
    Folded,
    /// No exited process had files to fold.
    Nothing,
    /// Not folded: a Python process writes the directory ([`Folding::Auto`]).
    Python,
    /// Another process was folding.
    Busy,
    /// A file system error stopped it; what it had not renamed into place stays.
    Error,
}

impl Reason for FoldOutcome {
    const LABEL: &'static str = "outcome";

    const ALL: &'static [Self] = &[
        FoldOutcome::Folded,
        FoldOutcome::Nothing,
        FoldOutcome::Python,
        FoldOutcome::Busy,
        FoldOutcome::Error,
    ];

    fn as_str(self) -> &'static str {
        match self {
            FoldOutcome::Folded => "folded",
            FoldOutcome::Nothing => "nothing",
            FoldOutcome::Python => "python",
            FoldOutcome::Busy => "busy",
            FoldOutcome::Error => "error",
        }
    }
}

/// Folds now and then, after scrapes.
pub(crate) struct Folder {
    dir: PathBuf,
    file_mode: u32,
    folding: Folding,
    last: Mutex<Option<Instant>>,
    running: Arc<AtomicBool>,
    outcomes: Arc<Tally<FoldOutcome>>,
}

impl Folder {
    pub(crate) fn new(dir: &Path, file_mode: u32, folding: Folding) -> Self {
        Self {
            dir: dir.to_path_buf(),
            file_mode,
            folding,
            last: Mutex::new(None),
            running: Arc::new(AtomicBool::new(false)),
            outcomes: Arc::default(),
        }
    }

    /// How the folds this process started ended.
    pub(crate) fn outcomes(&self) -> &Tally<FoldOutcome> {
        &self.outcomes
    }

    /// After a scrape that found `other_files` files of processes other than this one
    /// (`own_pid`): starts a fold on a thread of its own, unless one runs or ran lately.
    pub(crate) fn after_scrape(&self, other_files: u64, own_pid: u32) {
        if self.folding == Folding::Off || other_files == 0 || !cfg!(target_os = "linux") {
            return;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < FOLD_INTERVAL) {
                return;
            }
            if self.running.swap(true, Ordering::AcqRel) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (dir, file_mode, folding) = (self.dir.clone(), self.file_mode, self.folding);
        let running = Arc::clone(&self.running);
        let outcomes = Arc::clone(&self.outcomes);
        let started = std::thread::Builder::new()
            .name("tower-prometheus-fold".into())
            .spawn(move || {
                let outcome = loop {
                    match fold(&dir, file_mode, folding, own_pid) {
                        Ok((FoldOutcome::Folded, true)) => continue,
                        Ok((outcome, _)) => break outcome,
                        Err(error) => {
                            tracing::warn!(
                                dir = %dir.display(),
                                %error,
                                "could not fold the files of exited processes; they stay, and are read as they are"
                            );
                            break FoldOutcome::Error;
                        }
                    }
                };
                outcomes.count(outcome);
                running.store(false, Ordering::Release);
            });
        if started.is_err() {
            self.running.store(false, Ordering::Release);
        }
    }
}

/// A file of the directory named as a metric file.
struct Named {
    name: String,
    kind: FileKind,
    owner: String,
}

/// Folds the files of up to [`PASS_PROCESSES`] exited processes in `dir`; says also
/// whether more may be left.
fn fold(
    dir: &Path,
    file_mode: u32,
    folding: Folding,
    own_pid: u32,
) -> io::Result<(FoldOutcome, bool)> {
    let Some(_fold_lock) = archive::try_fold_lock(dir, file_mode)? else {
        return Ok((FoldOutcome::Busy, false));
    };
    let mut named = Vec::new();
    let mut locked_pids = HashSet::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(name) = entry?.file_name().into_string() else {
            continue;
        };
        if archive::is_temporary(&name) {
            // Left by a fold that was killed before its rename.
            archive::remove_if_present(&dir.join(&name))?;
        } else if let Some(pid) = lock_file_owner(&name) {
            locked_pids.insert(pid);
        } else if let Some((kind, owner)) = FileKind::parse(&name) {
            let owner = owner.to_string();
            named.push(Named { name, kind, owner });
        }
    }
    // In the order scrapes read them, so that values are summed in the same order
    // before and after a fold.
    named.sort_by(|a, b| a.name.cmp(&b.name));
    // Which processes are gone, each held so that no process of its pid starts meanwhile.
    let mut exited: HashMap<String, Option<HeldLock>> = HashMap::new();
    for file in &named {
        if file.owner == ARCHIVE || exited.contains_key(&file.owner) {
            continue;
        }
        let Ok(pid) = file.owner.parse::<u32>() else {
            if folding == Folding::Auto {
                return Ok((FoldOutcome::Python, false));
            }
            continue;
        };
        if pid == own_pid {
            continue;
        }
        if locked_pids.contains(&pid) {
            if let Some(held) = hold_if_exited(dir, pid)? {
                exited.insert(file.owner.clone(), Some(held));
            }
        } else if folding == Folding::Auto {
            // A process without a lock file is not one of this crate's: Python's.
            return Ok((FoldOutcome::Python, false));
        } else if !is_alive(dir, pid, &dir.join(&file.name), own_pid) {
            exited.insert(file.owner.clone(), None);
        }
        if exited.len() >= PASS_PROCESSES {
            break;
        }
    }
    // Lock files of exited processes whose files an earlier fold took.
    for pid in &locked_pids {
        let owner = pid.to_string();
        if *pid != own_pid && !exited.contains_key(&owner) && exited.len() < PASS_PROCESSES {
            if let Some(held) = hold_if_exited(dir, *pid)? {
                exited.insert(owner, Some(held));
            }
        }
    }

    // Each archive as it is, read once. Files a killed fold archived and left behind
    // go first: their values are in the archive, which lists them until it is written
    // again below.
    let mut archives = HashMap::new();
    let mut removable = Vec::new();
    for kind in FileKind::all() {
        let old = archive::read(dir, kind)?.unwrap_or_default();
        for file in old.folded.iter().filter(|file| file.is_present(dir)) {
            let owner = FileKind::parse(&file.name).map(|(_, owner)| owner.to_string());
            if owner.is_some_and(|owner| exited.contains_key(&owner)) {
                archive::remove_if_present(&dir.join(&file.name))?;
                removable.push(file.name.clone());
            }
        }
        archives.insert(kind, old);
    }
    named.retain(|file| !removable.contains(&file.name));
    let mut rewritten = Vec::new();
    for kind in FileKind::all() {
        let inputs: Vec<&Named> = named
            .iter()
            .filter(|file| file.kind == kind && exited.contains_key(&file.owner))
            .collect();
        if matches!(kind, FileKind::Gauge(mode) if mode.is_live()) {
            // Exited processes' live gauges are served by no scrape: they only go.
            removable.extend(inputs.iter().map(|file| file.name.clone()));
            continue;
        }
        if kind == FileKind::Gauge(GaugeMode::All) && folding == Folding::Always {
            // Python's collector labels every `all` gauge with its file's pid, so an
            // archive's would carry two: where Python reads, they stay per process.
            continue;
        }
        let old = archives.remove(&kind).unwrap_or_default();
        if let Some((entries, names)) = fold_kind(dir, file_mode, kind, old, &inputs)? {
            if !names.is_empty() {
                rewritten.push((kind, entries));
                removable.extend(names);
            }
        }
    }
    crash_point("archived");
    for name in &removable {
        archive::remove_if_present(&dir.join(name))?;
    }
    crash_point("removed");
    for (kind, entries) in rewritten {
        archive::replace(dir, kind, &archive::encode(&entries, &[]), file_mode)?;
    }
    crash_point("relisted");
    // A process's lock file goes with the last of its files; one whose file could not
    // be folded (corrupt) keeps it, and the file stays for scrapes to skip and count.
    let removed: HashSet<&str> = removable.iter().map(String::as_str).collect();
    for (owner, held) in &exited {
        let all_gone = named
            .iter()
            .filter(|file| file.owner == *owner)
            .all(|file| removed.contains(file.name.as_str()));
        if let (Some(_), true, Ok(pid)) = (held, all_gone, owner.parse()) {
            archive::remove_if_present(&dir.join(lock_file_name(pid)))?;
        }
    }
    if removable.is_empty() && exited.is_empty() {
        Ok((FoldOutcome::Nothing, false))
    } else {
        Ok((FoldOutcome::Folded, exited.len() >= PASS_PROCESSES))
    }
}

/// Writes the archive of `kind`, `old` with the values of `inputs` folded in, and
/// renames it into place; returns its entries, to be written again without its list
/// once the files it lists are removed, and the names of those files (none: the
/// archive written lists nothing, as after an earlier, killed fold's files are gone).
fn fold_kind(
    dir: &Path,
    file_mode: u32,
    kind: FileKind,
    old: Archive,
    inputs: &[&Named],
) -> io::Result<Option<(Vec<ArchivedEntry>, Vec<String>)>> {
    if inputs.is_empty() && old.folded.is_empty() {
        return Ok(None);
    }
    let mut merged = Merged::new(kind, old.entries);
    let mut folded = Vec::new();
    for input in inputs {
        let path = dir.join(&input.name);
        let Ok(file) = open_regular(&path, false) else {
            continue;
        };
        let metadata = file.metadata()?;
        // A file that cannot be read as the format stays where it is, for scrapes to
        // skip and count.
        let Ok((entries, _)) = archive::read_entries(&path, &file, false) else {
            continue;
        };
        merged.add(&input.owner, entries);
        folded.push(FoldedFile {
            name: input.name.clone(),
            identity: identity(&metadata),
        });
    }
    let entries = merged.entries();
    let bytes = archive::encode(&entries, &folded);
    crash_point("written");
    archive::replace(dir, kind, &bytes, file_mode)?;
    let names = folded.into_iter().map(|file| file.name).collect();
    Ok(Some((entries, names)))
}

/// An archive's values being combined, in the order their keys were first met.
struct Merged {
    kind: FileKind,
    entries: Vec<ArchivedEntry>,
    /// Each key's place in `entries`, and whether its sample is a creation time.
    index: HashMap<String, (usize, bool)>,
}

impl Merged {
    fn new(kind: FileKind, entries: Vec<ArchivedEntry>) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(at, (key, _, _))| (key.clone(), (at, is_created(key))))
            .collect();
        Self {
            kind,
            entries,
            index,
        }
    }

    /// Folds in the entries of a file of `owner`.
    fn add(&mut self, owner: &str, entries: Vec<ArchivedEntry>) {
        for (key, value, timestamp) in entries {
            let key = match self.kind {
                // Each process's value stays its own, under its `pid` label.
                FileKind::Gauge(GaugeMode::All) => match with_pid(&key, owner) {
                    Some(key) => key,
                    None => continue,
                },
                _ => key,
            };
            match self.index.get(&key) {
                None => {
                    let created = is_created(&key);
                    self.index
                        .insert(key.clone(), (self.entries.len(), created));
                    self.entries.push((key, value, timestamp));
                }
                Some(&(at, created)) => {
                    combine(self.kind, created, &mut self.entries[at], value, timestamp);
                }
            }
        }
    }

    fn entries(self) -> Vec<ArchivedEntry> {
        self.entries
    }
}

/// Whether the sample of `key` is a creation time, which combines as the earliest.
fn is_created(key: &str) -> bool {
    key::decode(key).is_ok_and(|key| key.sample.ends_with("_created"))
}

/// Combines `value` (and its `timestamp`) into `entry` as files of `kind` combine.
fn combine(kind: FileKind, created: bool, entry: &mut ArchivedEntry, value: f64, timestamp: f64) {
    let (_, current, current_timestamp) = entry;
    if created {
        *current = current.min(value);
        return;
    }
    match kind {
        FileKind::Counter | FileKind::Histogram | FileKind::Summary => *current += value,
        FileKind::Gauge(mode) => match mode {
            GaugeMode::Sum | GaugeMode::LiveSum => *current += value,
            GaugeMode::Max | GaugeMode::LiveMax => *current = current.max(value),
            GaugeMode::Min | GaugeMode::LiveMin => *current = current.min(value),
            GaugeMode::MostRecent | GaugeMode::LiveMostRecent => {
                if timestamp > *current_timestamp {
                    *current = value;
                    *current_timestamp = timestamp;
                }
            }
            GaugeMode::All | GaugeMode::LiveAll => *current = value,
        },
    }
}

/// `key` with the label `pid="owner"` added, as a scrape serves an `all` gauge.
fn with_pid(key: &str, owner: &str) -> Option<String> {
    let parsed = key::decode(key).ok()?;
    let mut labels = parsed.labels;
    labels.retain(|(name, _)| name != "pid");
    labels.push(("pid".to_string(), owner.to_string()));
    Some(key::encode(
        &parsed.metric,
        &parsed.sample,
        &labels,
        &parsed.help,
    ))
}

/// Where the crash tests stop a fold: a process whose `TOWER_PROMETHEUS_FOLD_CRASH_AT`
/// names this step dies here at once, without unwinding, as under `kill -9`.
fn crash_point(step: &str) {
    if std::env::var_os("TOWER_PROMETHEUS_FOLD_CRASH_AT").is_some_and(|at| at == step) {
        std::process::abort();
    }
}
