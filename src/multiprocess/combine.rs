//! Combining the values of every process at a scrape: counters, histograms and
//! summaries summed (exited processes' too, so counters never go backwards), gauges
//! by their [`GaugeMode`].

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use super::read::{Cache, Refresh, SeriesId, Skip};
use crate::storage::files::archive::{self, ARCHIVE};
use crate::storage::files::open::{identity, identity_at, open_regular};
use crate::storage::files::reason::Tally;
use crate::storage::files::{is_alive, FileKind, GaugeMode};

/// The values of one scrape, by series.
#[derive(Default)]
pub(super) struct Totals {
    /// Counter, histogram and summary values, summed over processes.
    pub(super) sums: Vec<f64>,
    /// Whether any file holds the series.
    pub(super) seen: Vec<bool>,
    /// Gauge values, combined by their mode.
    pub(super) gauges: Vec<GaugeValue>,
    gauge_index: HashMap<SeriesId, usize>,
    pub(super) skipped_files: Tally<Skip>,
    /// Metric files read: the archives, and the files the directory listed (or,
    /// when it could not be listed, that earlier scrapes knew) that they do not hold.
    pub(super) files: u64,
    /// Of those, the files of other processes, which a fold may take.
    pub(super) other_files: u64,
}

impl Totals {
    /// Whether a file holds `series`.
    pub(super) fn seen(&self, series: SeriesId) -> bool {
        self.seen.get(series).copied().unwrap_or(false)
    }
}

/// A gauge's combined value; in the per-process modes its series carries the `pid`.
pub(super) struct GaugeValue {
    pub(super) series: SeriesId,
    pub(super) value: f64,
    timestamp: f64,
}

/// How often a scrape reads the directory again when folds keep replacing archives
/// under it, before it serves the totals it read last time instead.
const READ_ATTEMPTS: usize = 8;

/// Reads every file of `dir` and combines their values; `own_pid` is this process.
/// `None` when folds replaced an archive during every attempt: the caller then serves
/// the totals of the scrape before, which were exact.
///
/// What is read is the archives as opened before the directory is listed, plus every
/// other file they do not list as folded; after reading, each archive's path must still
/// name the file opened, or a fold replaced it meanwhile (and may have removed files
/// it now holds) and the directory is read again.
///
/// A directory that cannot be listed (the process is out of descriptors, say) is
/// counted `unreadable` and its files known from earlier scrapes are read again, or
/// served as they were last read: no total drops below one served before.
pub(super) fn collect(cache: &mut Cache, dir: &Path, own_pid: u32) -> Option<Totals> {
    for _ in 0..READ_ATTEMPTS {
        let archives = OpenedArchives::open(dir);
        let totals = collect_once(cache, dir, own_pid, &archives);
        if archives.unchanged() {
            return Some(totals);
        }
    }
    None
}

/// The archives as opened at the start of a read.
struct OpenedArchives(Vec<OpenedArchive>);

/// One kind's archive as opened: its identity (device and inode, `None` where there is
/// none) and the open file, held so that its inode cannot be reused while it is read.
struct OpenedArchive {
    kind: FileKind,
    path: PathBuf,
    identity: Option<(u64, u64)>,
    file: Option<File>,
}

impl OpenedArchives {
    fn open(dir: &Path) -> Self {
        let archives = FileKind::all()
            .map(|kind| {
                let path = archive::archive_path(dir, kind);
                let file = open_regular(&path, false).ok();
                let identity = match &file {
                    Some(file) => file.metadata().ok().map(|metadata| identity(&metadata)),
                    // Not there, or no descriptor left: the name says what is there.
                    None => identity_at(&path),
                };
                OpenedArchive {
                    kind,
                    path,
                    identity,
                    file,
                }
            })
            .collect();
        Self(archives)
    }

    /// Whether each archive's path still names what it named when opened.
    fn unchanged(&self) -> bool {
        self.0
            .iter()
            .all(|archive| identity_at(&archive.path) == archive.identity)
    }
}

fn collect_once(cache: &mut Cache, dir: &Path, own_pid: u32, archives: &OpenedArchives) -> Totals {
    let mut totals = Totals::default();
    cache.begin_scrape();
    // The files each archive holds, by name, with the identity they had.
    let mut folded: HashMap<String, (u64, u64)> = HashMap::new();
    for OpenedArchive {
        kind,
        path,
        identity,
        file,
    } in &archives.0
    {
        let refresh = match file {
            Some(file) => cache.refresh_archive(path, file, *kind),
            None if identity.is_some() => cache.refresh(path, None, *kind),
            None => continue,
        };
        totals.files += 1;
        if add_file(&mut totals, cache, path, *kind, ARCHIVE, refresh) {
            for file in cache.folded(path) {
                folded.insert(file.name.clone(), file.identity);
            }
        }
    }
    let listing = list(dir);
    let files: Vec<(PathBuf, Option<std::fs::FileType>)> = match &listing {
        Ok(names) => names
            .iter()
            .map(|(name, listed)| (dir.join(name), Some(*listed)))
            .collect(),
        Err(error) => {
            totals.skipped_files.count(Skip::Unreadable);
            tracing::warn!(
                dir = %dir.display(),
                %error,
                "cannot list the multiprocess directory: serving the files of earlier scrapes"
            );
            let mut known = cache.known_paths();
            known.sort();
            known.into_iter().map(|path| (path, None)).collect()
        }
    };
    let own_owner = own_pid.to_string();
    for (path, listed) in &files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        let Some((kind, owner)) = FileKind::parse(name) else {
            totals.skipped_files.count(Skip::UnknownName);
            continue;
        };
        if owner == ARCHIVE {
            // Read above, as opened before the listing.
            continue;
        }
        if folded
            .get(name)
            .is_some_and(|identity| identity_at(path) == Some(*identity))
        {
            // Its values are in the archive; a fold removes it next.
            continue;
        }
        totals.files += 1;
        if owner != own_owner {
            totals.other_files += 1;
        }
        if let FileKind::Gauge(mode) = kind {
            if mode.is_live()
                && !owner
                    .parse()
                    .is_ok_and(|pid| is_alive(dir, pid, path, own_pid))
            {
                continue;
            }
        }
        let refresh = cache.refresh(path, *listed, kind);
        add_file(&mut totals, cache, path, kind, owner, refresh);
    }
    if listing.is_ok() {
        cache.forget_unlisted();
    }
    let unreadable = totals.skipped_files.get(Skip::Unreadable);
    if unreadable > 0 {
        tracing::warn!(
            dir = %dir.display(),
            files = unreadable,
            "multiprocess files could not be read at this scrape: served as last read"
        );
    }
    totals
}

/// Adds the values of the file at `path`, of `kind` and written by `owner`, as
/// `refresh` left them in the cache; whether it has values to add.
fn add_file(
    totals: &mut Totals,
    cache: &mut Cache,
    path: &Path,
    kind: FileKind,
    owner: &str,
    refresh: Refresh,
) -> bool {
    match refresh {
        Refresh::Read => {}
        Refresh::Kept => {
            totals.skipped_files.count(Skip::Unreadable);
        }
        Refresh::Skipped(reason) => {
            totals.skipped_files.count(reason);
            return false;
        }
        Refresh::Gone => return false,
    }
    if let (FileKind::Gauge(mode @ (GaugeMode::All | GaugeMode::LiveAll)), false) =
        (kind, owner == ARCHIVE)
    {
        // Served with the process's `pid`: the series with that label, which is also
        // where the archive keeps the value once the process's files are folded.
        let entries: Vec<(SeriesId, f64, f64)> = cache
            .entries(path)
            .iter()
            .map(|entry| (entry.series, entry.value, entry.timestamp))
            .collect();
        for (series, value, timestamp) in entries {
            let series = cache.with_pid(series, owner);
            add_gauge(totals, series, mode, value, timestamp);
        }
        return true;
    }
    totals.sums.resize(cache.series.len(), 0.0);
    totals.seen.resize(cache.series.len(), false);
    for entry in cache.entries(path) {
        totals.seen[entry.series] = true;
        match kind {
            FileKind::Gauge(mode) => {
                add_gauge(totals, entry.series, mode, entry.value, entry.timestamp);
            }
            FileKind::Counter | FileKind::Histogram | FileKind::Summary => {
                totals.sums[entry.series] += entry.value
            }
        }
    }
    true
}

/// The names of the files in `dir` that may hold metrics, sorted, with their types.
fn list(dir: &Path) -> std::io::Result<Vec<(String, std::fs::FileType)>> {
    let mut names: Vec<(String, std::fs::FileType)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let kind = entry.file_type().ok()?;
            Some((entry.file_name().into_string().ok()?, kind))
        })
        .filter(|(name, _)| name.ends_with(".db"))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

fn add_gauge(totals: &mut Totals, series: SeriesId, mode: GaugeMode, value: f64, timestamp: f64) {
    match totals.gauge_index.get(&series) {
        None => {
            totals.gauge_index.insert(series, totals.gauges.len());
            totals.gauges.push(GaugeValue {
                series,
                value,
                timestamp,
            });
        }
        Some(&index) => {
            let current = &mut totals.gauges[index];
            match mode {
                GaugeMode::Sum | GaugeMode::LiveSum => current.value += value,
                GaugeMode::Max | GaugeMode::LiveMax => current.value = current.value.max(value),
                GaugeMode::Min | GaugeMode::LiveMin => current.value = current.value.min(value),
                GaugeMode::MostRecent | GaugeMode::LiveMostRecent => {
                    if timestamp > current.timestamp {
                        current.value = value;
                        current.timestamp = timestamp;
                    }
                }
                // The value read last: a process's own file after the archive, so a
                // process that reuses the pid of a folded one is served.
                GaugeMode::All | GaugeMode::LiveAll => current.value = value,
            }
        }
    }
}
