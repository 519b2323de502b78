//! Combining the values of every process at a scrape: counters, histograms and
//! summaries summed (exited processes' too, so counters never go backwards), gauges
//! by their [`GaugeMode`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::read::{Cache, Refresh, SeriesId, Skip};
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
    gauge_index: HashMap<(SeriesId, Option<String>), usize>,
    pub(super) skipped_files: Tally<Skip>,
    /// Metric files the directory listed (or, when it could not be listed, that
    /// earlier scrapes knew).
    pub(super) files: u64,
}

impl Totals {
    /// Whether a file holds `series`.
    pub(super) fn seen(&self, series: SeriesId) -> bool {
        self.seen.get(series).copied().unwrap_or(false)
    }
}

/// A gauge's combined value; one per process (with its pid) in the per-process modes.
pub(super) struct GaugeValue {
    pub(super) series: SeriesId,
    pub(super) pid: Option<String>,
    pub(super) value: f64,
    timestamp: f64,
}

/// Reads every file of `dir` and combines their values; `own_pid` is this process.
///
/// A directory that cannot be listed (the process is out of descriptors, say) is
/// counted `unreadable` and its files known from earlier scrapes are read again, or
/// served as they were last read: no total drops below one served before.
pub(super) fn collect(cache: &mut Cache, dir: &Path, own_pid: u32) -> Totals {
    let mut totals = Totals::default();
    cache.begin_scrape();
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
    totals.files = files.len() as u64;
    for (path, listed) in &files {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        let Some((kind, pid)) = FileKind::parse(name) else {
            totals.skipped_files.count(Skip::UnknownName);
            continue;
        };
        if let FileKind::Gauge(mode) = kind {
            if mode.is_live()
                && !pid
                    .parse()
                    .is_ok_and(|pid| is_alive(dir, pid, path, own_pid))
            {
                continue;
            }
        }
        match cache.refresh(path, *listed, kind) {
            Refresh::Read => {}
            Refresh::Kept => {
                totals.skipped_files.count(Skip::Unreadable);
            }
            Refresh::Skipped(reason) => {
                totals.skipped_files.count(reason);
                continue;
            }
            Refresh::Gone => continue,
        }
        totals.sums.resize(cache.series.len(), 0.0);
        totals.seen.resize(cache.series.len(), false);
        for entry in cache.entries(path) {
            totals.seen[entry.series] = true;
            match kind {
                FileKind::Gauge(mode) => {
                    add_gauge(
                        &mut totals,
                        entry.series,
                        pid,
                        mode,
                        entry.value,
                        entry.timestamp,
                    );
                }
                FileKind::Counter | FileKind::Histogram | FileKind::Summary => {
                    totals.sums[entry.series] += entry.value
                }
            }
        }
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

fn add_gauge(
    totals: &mut Totals,
    series: SeriesId,
    pid: &str,
    mode: GaugeMode,
    value: f64,
    timestamp: f64,
) {
    let per_process = matches!(mode, GaugeMode::All | GaugeMode::LiveAll);
    let pid = per_process.then(|| pid.to_string());
    let slot = (series, pid);
    match totals.gauge_index.get(&slot) {
        None => {
            totals.gauge_index.insert(slot.clone(), totals.gauges.len());
            totals.gauges.push(GaugeValue {
                series,
                pid: slot.1,
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
                GaugeMode::All | GaugeMode::LiveAll => current.value = value,
            }
        }
    }
}
