//! The scrape side: every process's files, summed as Python's `MultiProcessCollector`
//! does, and encoded through prometheus-client.
//!
//! Files are copied with `pread` into one reused buffer, never mapped: a file that
//! another process truncates or rewrites is then a short or inconsistent copy, skipped
//! for that scrape and counted, instead of a fault. Keys never change once written, so
//! each file is parsed once: later scrapes parse only entries appended since, and read
//! values at known offsets of the copy.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;

use super::file::{open_regular, parse_entries, used_of, value_at};
use super::key;
use super::store::{is_alive, ProcessStore};
use super::GaugeMode;
use crate::hash::FastHashBuilder;

/// Name of the gauge of files skipped at the last scrape, by `reason`: `not_regular`
/// (a link, FIFO, socket, device or directory), `unreadable`, `truncated` (shorter
/// than its header says, or rewritten shorter), `corrupt`, `unknown_name`.
pub const SKIPPED_FILES: &str = "tower_prometheus_multiprocess_skipped_files";
/// Name of the counter of writes this process could not place in its files, by
/// `reason`: `no_space`, `file_full`, `io`. Such values are kept in memory and placed
/// (with what they gathered meanwhile) once there is room.
pub const WRITE_ERRORS: &str = "tower_prometheus_multiprocess_write_errors";

/// Why a file was skipped at a scrape; the `reason` label of [`SKIPPED_FILES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Skip {
    NotRegular,
    Unreadable,
    Truncated,
    Corrupt,
    UnknownName,
}

impl Skip {
    const ALL: [Skip; 5] = [
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
enum FileType {
    Counter,
    Gauge(GaugeMode),
    Histogram,
    Summary,
}

impl FileType {
    fn family_type(self) -> FamilyType {
        match self {
            FileType::Counter => FamilyType::Counter,
            FileType::Gauge(_) => FamilyType::Gauge,
            FileType::Histogram => FamilyType::Histogram,
            FileType::Summary => FamilyType::Summary,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    /// One sample of a Python summary (`_count` or `_sum`), summed over processes and
    /// served as a gauge family of that name: prometheus-client cannot encode a
    /// summary, and these are the samples a summary without quantiles has.
    Summary,
}

/// What a file's name says: its type and the pid of the process that wrote it.
fn parse_file_name(name: &str) -> Option<(FileType, &str)> {
    let stem = name.strip_suffix(".db")?;
    let mut parts = stem.split('_');
    let file_type = match parts.next()? {
        "counter" => FileType::Counter,
        "histogram" => FileType::Histogram,
        "summary" => FileType::Summary,
        "gauge" => FileType::Gauge(GaugeMode::from_name(parts.next()?)?),
        _ => return None,
    };
    let pid = parts.next()?;
    parts.next().is_none().then_some((file_type, pid))
}

/// A series as its key names it; the same in every file.
type SeriesId = usize;

struct SeriesInfo {
    family: usize,
    role: Role,
}

enum Role {
    /// A counter's `_total` or a gauge's value, with its labels.
    Value(Vec<(String, String)>),
    /// A histogram bucket, listed in its group.
    Bucket,
    /// A histogram's `_sum`, named by its group.
    Sum,
    /// A sample this crate does not aggregate (for example `_created`).
    Ignored,
}

struct FamilyInfo {
    name: String,
    help: String,
    family_type: FamilyType,
    series: Vec<SeriesId>,
    groups: Vec<usize>,
}

/// The series of one histogram that share labels (all but `le`).
struct HistogramGroup {
    labels: Vec<(String, String)>,
    /// Bucket series, kept sorted by bound as they are interned.
    buckets: Vec<(f64, SeriesId)>,
    sum: Option<SeriesId>,
}

struct CachedFile {
    file: File,
    identity: (u64, u64),
    parsed_until: usize,
    entries: Vec<(SeriesId, usize)>,
}

#[derive(Default)]
struct Cache {
    series_ids: HashMap<(FamilyType, String), SeriesId>,
    series: Vec<SeriesInfo>,
    family_ids: HashMap<(FamilyType, String), usize>,
    families: Vec<FamilyInfo>,
    group_ids: HashMap<(usize, Vec<(String, String)>), usize>,
    groups: Vec<HistogramGroup>,
    /// Key text to series, so the same key in many files is parsed once.
    keys: HashMap<Box<[u8]>, SeriesId, FastHashBuilder>,
    files: HashMap<PathBuf, CachedFile>,
    /// The copy of the file being read, reused across files and scrapes.
    buffer: Vec<u8>,
}

/// Per-scrape totals.
struct Totals {
    sums: Vec<f64>,
    seen: Vec<bool>,
    gauges: Vec<GaugeValue>,
    gauge_index: HashMap<(SeriesId, Option<String>), usize>,
    skipped_files: [u64; Skip::ALL.len()],
}

impl Totals {
    fn skip(&mut self, reason: Skip) {
        if let Some(index) = Skip::ALL.iter().position(|r| *r == reason) {
            self.skipped_files[index] += 1;
        }
    }
}

struct GaugeValue {
    series: SeriesId,
    pid: Option<String>,
    value: f64,
    timestamp: f64,
}

/// Reads every process's files on each scrape.
pub(crate) struct Aggregator {
    store: Arc<ProcessStore>,
    cache: Mutex<Cache>,
}

impl fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("dir", &self.store.dir())
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    pub(crate) fn new(store: Arc<ProcessStore>) -> Self {
        Self {
            store,
            cache: Mutex::new(Cache::default()),
        }
    }
}

impl Cache {
    /// The series of a key, parsing (and checking) the key only the first time.
    fn intern(&mut self, key_bytes: &[u8], file_type: FileType) -> Option<SeriesId> {
        if let Some(id) = self.keys.get(key_bytes) {
            return Some(*id);
        }
        let parsed = key::decode(std::str::from_utf8(key_bytes).ok()?).ok()?;
        let family_type = file_type.family_type();
        let identity = key::encode("", &parsed.sample, &parsed.labels, "");
        let id = match self.series_ids.get(&(family_type, identity.clone())) {
            Some(id) => *id,
            None => {
                // A summary's samples are families of their own (see `FamilyType`).
                let name = match family_type {
                    FamilyType::Summary => &parsed.sample,
                    _ => &parsed.metric,
                };
                let family = self.family(family_type, name, &parsed.help);
                let id = self.series.len();
                let role = self.role(family, family_type, &parsed, id);
                self.series.push(SeriesInfo { family, role });
                self.families[family].series.push(id);
                self.series_ids.insert((family_type, identity), id);
                id
            }
        };
        self.keys.insert(key_bytes.into(), id);
        Some(id)
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

    /// Copies `path` into the buffer and brings its cached entries up to date with
    /// what its writer appended. `kind` is what the directory listing says it is.
    fn refresh(
        &mut self,
        path: &Path,
        kind: std::fs::FileType,
        file_type: FileType,
    ) -> Result<(), Skip> {
        // Listing and `lstat` say what the name is without opening it; the open below
        // refuses links and does not block, and checks again what it opened.
        if !kind.is_file() {
            return Err(Skip::NotRegular);
        }
        let metadata = std::fs::symlink_metadata(path).map_err(|_| Skip::Unreadable)?;
        if !metadata.is_file() {
            return Err(Skip::NotRegular);
        }
        let identity = file_identity(&metadata);
        let mut cached = match self.files.remove(path) {
            // The same file: what was parsed stays valid unless it shrank (checked below).
            Some(cached) if cached.identity == identity => cached,
            _ => CachedFile {
                file: open_regular(path, false).map_err(|error| Skip::of_open(&error))?,
                identity,
                parsed_until: 8,
                entries: Vec::new(),
            },
        };
        let mut header = [0; 8];
        cached
            .file
            .read_exact_at(&mut header, 0)
            .map_err(|error| Skip::of_read(&error))?;
        // A writer sets `used` right after it creates the file: 0 is a file of no
        // entries yet.
        let used = match used_of(header) {
            0 => 8,
            1..8 => return Err(Skip::Corrupt),
            used => used,
        };
        if used < cached.parsed_until {
            // Rewritten shorter: the next scrape reads it afresh.
            return Err(Skip::Truncated);
        }
        self.buffer.resize(used, 0);
        cached
            .file
            .read_exact_at(&mut self.buffer, 0)
            .map_err(|error| Skip::of_read(&error))?;
        if used > cached.parsed_until {
            // Out of `self` while its keys are interned into `self`.
            let buffer = std::mem::take(&mut self.buffer);
            let parsed = self.intern_entries(path, &buffer, cached.parsed_until, file_type);
            self.buffer = buffer;
            cached.entries.extend(parsed?);
            cached.parsed_until = used;
        }
        self.files.insert(path.to_path_buf(), cached);
        Ok(())
    }

    /// The series and value offset of each entry of `data` from `start` on.
    fn intern_entries(
        &mut self,
        path: &Path,
        data: &[u8],
        start: usize,
        file_type: FileType,
    ) -> Result<Vec<(SeriesId, usize)>, Skip> {
        parse_entries(path, data, start, data.len())
            .map_err(|_| Skip::Corrupt)?
            .into_iter()
            .map(|entry| {
                let series = self.intern(entry.key, file_type).ok_or(Skip::Corrupt)?;
                Ok((series, entry.value_offset))
            })
            .collect()
    }

    fn collect(&mut self, dir: &Path, own_pid: u32) -> Totals {
        let mut totals = Totals {
            sums: Vec::new(),
            seen: Vec::new(),
            gauges: Vec::new(),
            gauge_index: HashMap::new(),
            skipped_files: [0; Skip::ALL.len()],
        };
        let mut names: Vec<(String, std::fs::FileType)> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let kind = entry.file_type().ok()?;
                    Some((entry.file_name().into_string().ok()?, kind))
                })
                .filter(|(name, _)| name.ends_with(".db"))
                .collect(),
            Err(_) => {
                totals.skip(Skip::Unreadable);
                return totals;
            }
        };
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let present: Vec<PathBuf> = names.iter().map(|(name, _)| dir.join(name)).collect();
        self.files.retain(|path, _| present.contains(path));
        for (name, kind) in &names {
            let Some((file_type, pid)) = parse_file_name(name) else {
                totals.skip(Skip::UnknownName);
                continue;
            };
            let path = dir.join(name);
            if let FileType::Gauge(mode) = file_type {
                if mode.is_live()
                    && !pid
                        .parse()
                        .is_ok_and(|pid| is_alive(dir, pid, &path, own_pid))
                {
                    continue;
                }
            }
            if let Err(reason) = self.refresh(&path, *kind, file_type) {
                self.files.remove(&path);
                totals.skip(reason);
                continue;
            }
            totals.sums.resize(self.series.len(), 0.0);
            totals.seen.resize(self.series.len(), false);
            let Some(cached) = self.files.get(&path) else {
                continue;
            };
            for &(series, offset) in &cached.entries {
                let (value, timestamp) = value_at(&self.buffer, offset);
                totals.seen[series] = true;
                match file_type {
                    FileType::Gauge(mode) => {
                        add_gauge(&mut totals, series, pid, mode, value, timestamp);
                    }
                    FileType::Counter | FileType::Histogram | FileType::Summary => {
                        totals.sums[series] += value
                    }
                }
            }
        }
        totals
    }
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

#[cfg(unix)]
fn file_identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.ino(), metadata.dev())
}

#[cfg(not(unix))]
fn file_identity(_metadata: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

impl Collector for Aggregator {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        let totals = cache.collect(self.store.dir(), self.store.pid());
        let cache = &*cache;
        let mut gauges_by_family: HashMap<usize, Vec<&GaugeValue>> = HashMap::new();
        for gauge in &totals.gauges {
            gauges_by_family
                .entry(cache.series[gauge.series].family)
                .or_default()
                .push(gauge);
        }
        for (family_id, family) in cache.families.iter().enumerate() {
            match family.family_type {
                FamilyType::Counter | FamilyType::Summary => {
                    let present: Vec<_> = family
                        .series
                        .iter()
                        .filter(|id| totals.seen.get(**id).copied().unwrap_or(false))
                        .filter_map(|id| match &cache.series[*id].role {
                            Role::Value(labels) => Some((labels, totals.sums[*id])),
                            _ => None,
                        })
                        .collect();
                    if present.is_empty() {
                        continue;
                    }
                    let is_counter = family.family_type == FamilyType::Counter;
                    let mut metric = encoder.encode_descriptor(
                        &family.name,
                        &family.help,
                        None,
                        if is_counter {
                            MetricType::Counter
                        } else {
                            MetricType::Gauge
                        },
                    )?;
                    for (labels, value) in present {
                        let mut sample = metric.encode_family(labels)?;
                        if is_counter {
                            sample.encode_counter::<NoLabelSet, f64, f64>(
                                &value,
                                None::<&Exemplar<NoLabelSet, f64>>,
                            )?;
                        } else {
                            sample.encode_gauge(&value)?;
                        }
                    }
                }
                FamilyType::Gauge => {
                    let Some(values) = gauges_by_family.get(&family_id) else {
                        continue;
                    };
                    let mut metric = encoder.encode_descriptor(
                        &family.name,
                        &family.help,
                        None,
                        MetricType::Gauge,
                    )?;
                    for gauge in values {
                        let Role::Value(labels) = &cache.series[gauge.series].role else {
                            continue;
                        };
                        let mut labels = labels.clone();
                        if let Some(pid) = &gauge.pid {
                            labels.push(("pid".to_string(), pid.clone()));
                        }
                        metric.encode_family(&labels)?.encode_gauge(&gauge.value)?;
                    }
                }
                FamilyType::Histogram => {
                    let seen = |id: &SeriesId| totals.seen.get(*id).copied().unwrap_or(false);
                    let present =
                        |group: &&HistogramGroup| group.buckets.iter().any(|(_, id)| seen(id));
                    let mut groups = family
                        .groups
                        .iter()
                        .map(|g| &cache.groups[*g])
                        .filter(present)
                        .peekable();
                    if groups.peek().is_none() {
                        continue;
                    }
                    let mut metric = encoder.encode_descriptor(
                        &family.name,
                        &family.help,
                        None,
                        MetricType::Histogram,
                    )?;
                    let mut buckets = Vec::new();
                    for group in groups {
                        buckets.clear();
                        buckets.extend(
                            group
                                .buckets
                                .iter()
                                .filter(|(_, id)| seen(id))
                                .map(|(bound, id)| {
                                    (*bound, totals.sums[*id].max(0.0).round() as u64)
                                }),
                        );
                        let count = buckets.iter().map(|(_, c)| c).sum();
                        let sum = group.sum.filter(seen).map_or(0.0, |id| totals.sums[id]);
                        metric
                            .encode_family(&group.labels)?
                            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                    }
                }
            }
        }
        encode_own_errors(&mut encoder, &totals.skipped_files, &self.store)
    }
}

fn encode_own_errors(
    encoder: &mut DescriptorEncoder<'_>,
    skipped: &[u64; Skip::ALL.len()],
    store: &ProcessStore,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(
        SKIPPED_FILES,
        "Multiprocess files skipped at this scrape, by reason.",
        None,
        MetricType::Gauge,
    )?;
    for (reason, count) in Skip::ALL.iter().zip(skipped) {
        metric
            .encode_family(&[("reason", reason.as_str())])?
            .encode_gauge(&(*count as i64))?;
    }
    let mut metric = encoder.encode_descriptor(
        WRITE_ERRORS,
        "Writes this process could not place in its multiprocess files, by reason; the values are kept in memory until there is room.",
        None,
        MetricType::Counter,
    )?;
    for (reason, count) in store.write_errors() {
        metric
            .encode_family(&[("reason", reason.as_str())])?
            .encode_counter::<NoLabelSet, u64, u64>(&count, None::<&Exemplar<NoLabelSet, u64>>)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_as_python_writes_them() {
        assert_eq!(
            parse_file_name("counter_12.db"),
            Some((FileType::Counter, "12"))
        );
        assert_eq!(
            parse_file_name("gauge_livesum_7.db"),
            Some((FileType::Gauge(GaugeMode::LiveSum), "7"))
        );
        assert_eq!(
            parse_file_name("histogram_3.db"),
            Some((FileType::Histogram, "3"))
        );
        assert_eq!(parse_file_name("gauge_bogus_3.db"), None);
        assert_eq!(parse_file_name("tower_prometheus_3.lock"), None);
        assert_eq!(
            parse_file_name("summary_3.db"),
            Some((FileType::Summary, "3"))
        );
    }
}
