//! Encoding the aggregate through prometheus-client: each family of the files with
//! the values of one scrape, then the aggregator's own error metrics.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::MetricType;

use super::combine::{collect, GaugeValue, Totals};
use super::fold::{Folder, Folding};
use super::read::{Cache, FamilyInfo, FamilyType, Role};
use crate::storage::files::reason::{Reason, Tally};
use crate::storage::files::ProcessStore;

/// Name of the gauge of files skipped at the last scrape, by `reason`: `not_regular`
/// (a link, FIFO, socket, device or directory), `unreadable`, `truncated` (shorter
/// than its header says, or rewritten shorter), `corrupt`, `unknown_name`.
pub const SKIPPED_FILES: &str = "tower_prometheus_multiprocess_skipped_files";
/// Name of the gauge of metric files (`*.db`) the last scrape found in the directory:
/// it grows with every process started and never exited ones' files removed.
pub const FILES: &str = "tower_prometheus_multiprocess_files";
/// Name of the gauge of this process's files (its lock file included) that are no
/// longer at their place in the directory: removed, or replaced (the directory removed
/// and made again, say). Other processes' scrapes no longer see this process's counts,
/// and take it for exited; restart it.
pub const DISPLACED_FILES: &str = "tower_prometheus_multiprocess_displaced_files";
/// Name of the counter of folds this process ran, by `outcome`: `folded` (files of
/// exited processes went into the archive), `nothing` (no exited process had files),
/// `python` (not folded: a Python process writes the directory), `busy` (another
/// process was folding), `error`.
pub const FOLDS: &str = "tower_prometheus_multiprocess_folds";
/// Name of the counter of writes this process could not place in its files, by
/// `reason`: `no_space`, `file_full`, `io`. Such values are kept in memory and placed
/// (with what they gathered meanwhile) once there is room.
pub const WRITE_ERRORS: &str = "tower_prometheus_multiprocess_write_errors";

/// Reads every process's files on each scrape and encodes their aggregate.
///
/// Scrapes that arrive while the files are being read share that read: an HA pair
/// of Prometheus servers scraping at once costs one read of the directory, not two
/// in a row.
pub(crate) struct Aggregator {
    store: Arc<ProcessStore>,
    folder: Folder,
    state: Mutex<AggregatorState>,
    /// Reads of the directory begun and finished; both change only under `state`.
    reads_begun: AtomicU64,
    reads_finished: AtomicU64,
}

struct AggregatorState {
    cache: Cache,
    /// The totals of the latest read, with its number in `reads_begun`'s order.
    latest: Option<(u64, Totals)>,
}

impl fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("dir", &self.store.dir())
            .finish_non_exhaustive()
    }
}

impl Aggregator {
    pub(crate) fn new(store: Arc<ProcessStore>, folding: Folding) -> Self {
        Self {
            folder: Folder::new(store.dir(), store.file_mode(), folding),
            store,
            state: Mutex::new(AggregatorState {
                cache: Cache::default(),
                latest: None,
            }),
            reads_begun: AtomicU64::new(0),
            reads_finished: AtomicU64::new(0),
        }
    }

    /// The first read whose totals this scrape may serve: one under way as it
    /// arrives, or else the next one to begin.
    fn first_fresh_read(&self) -> u64 {
        // Finished first: a read counted as begun but not finished was under way
        // when this scrape arrived, or began after it.
        let finished = self.reads_finished.load(Ordering::SeqCst);
        let begun = self.reads_begun.load(Ordering::SeqCst);
        if begun > finished {
            begun
        } else {
            begun + 1
        }
    }
}

/// A series' label pairs, as the cache holds them.
type SeriesLabels<'a> = &'a [(String, String)];

/// One series of a family as it is encoded.
enum Sample {
    Counter(f64),
    Gauge(f64),
    Histogram { sum: f64, buckets: Vec<(f64, u64)> },
}

impl FamilyType {
    /// The type a family of the files is served as (a summary's samples as gauges).
    fn metric_type(self) -> MetricType {
        match self {
            FamilyType::Counter => MetricType::Counter,
            FamilyType::Gauge | FamilyType::Summary => MetricType::Gauge,
            FamilyType::Histogram => MetricType::Histogram,
        }
    }
}

/// The series of `family` that some file holds, each with its labels and value;
/// `gauges` are the family's combined gauge values.
fn samples<'a>(
    cache: &'a Cache,
    family: &'a FamilyInfo,
    gauges: &[&GaugeValue],
    totals: &Totals,
) -> Vec<(SeriesLabels<'a>, Sample)> {
    let value_of = |id: &usize| match &cache.series[*id].role {
        Role::Value(labels) => Some(labels.as_slice()),
        _ => None,
    };
    match family.family_type {
        FamilyType::Counter | FamilyType::Summary => family
            .series
            .iter()
            .filter(|id| totals.seen(**id))
            .filter_map(|id| {
                let value = totals.sums[*id];
                let sample = match family.family_type {
                    FamilyType::Counter => Sample::Counter(value),
                    _ => Sample::Gauge(value),
                };
                Some((value_of(id)?, sample))
            })
            .collect(),
        FamilyType::Gauge => gauges
            .iter()
            .filter_map(|gauge| Some((value_of(&gauge.series)?, Sample::Gauge(gauge.value))))
            .collect(),
        FamilyType::Histogram => family
            .groups
            .iter()
            .map(|group| &cache.groups[*group])
            .filter(|group| group.buckets.iter().any(|(_, id)| totals.seen(*id)))
            .map(|group| {
                // Another process's file may hold any bucket value (an infinite one
                // is `u64::MAX` here): each bucket takes at most what is left, so the
                // running totals the encoders add up cannot overflow.
                let mut room = u64::MAX;
                let buckets = group
                    .buckets
                    .iter()
                    .filter(|(_, id)| totals.seen(*id))
                    .map(|(bound, id)| {
                        let count = (totals.sums[*id].max(0.0).round() as u64).min(room);
                        room -= count;
                        (*bound, count)
                    })
                    .collect();
                let sum = group
                    .sum
                    .filter(|id| totals.seen(*id))
                    .map_or(0.0, |id| totals.sums[id]);
                (group.labels.as_slice(), Sample::Histogram { sum, buckets })
            })
            .collect(),
    }
}

impl Sample {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        match self {
            // Whole values are written as whole numbers, as a process's own metrics
            // write them, so the two modes serve the same text.
            Sample::Counter(value) => match whole(*value).and_then(|v| u64::try_from(v).ok()) {
                Some(whole) => encoder.encode_counter::<NoLabelSet, u64, u64>(
                    &whole,
                    None::<&Exemplar<NoLabelSet, u64>>,
                ),
                None => encoder.encode_counter::<NoLabelSet, f64, f64>(
                    value,
                    None::<&Exemplar<NoLabelSet, f64>>,
                ),
            },
            Sample::Gauge(value) => match whole(*value) {
                Some(whole) => encoder.encode_gauge(&whole),
                None => encoder.encode_gauge(value),
            },
            Sample::Histogram { sum, buckets } => {
                // No overflow: the buckets were bounded when they were summed.
                let count = buckets.iter().map(|(_, bucket)| bucket).sum();
                encoder.encode_histogram::<NoLabelSet>(*sum, count, buckets, None)
            }
        }
    }
}

impl Collector for Aggregator {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let fresh = self.first_fresh_read();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        let stale = state.latest.as_ref().is_none_or(|(read, _)| *read < fresh);
        if stale {
            let read = self.reads_begun.fetch_add(1, Ordering::SeqCst) + 1;
            let own_pid = self.store.pid();
            match collect(&mut state.cache, self.store.dir(), own_pid) {
                Some(totals) => {
                    self.folder.after_scrape(totals.other_files, own_pid);
                    state.latest = Some((read, totals));
                }
                // Folds kept replacing archives under every read: the last exact
                // totals are served again.
                None => tracing::warn!(
                    dir = %self.store.dir().display(),
                    "folds replaced the archive during every read of this scrape: serving the last scrape's totals"
                ),
            }
            self.reads_finished.store(read, Ordering::SeqCst);
        }
        let cache = &state.cache;
        let Some((_, totals)) = &state.latest else {
            return Ok(());
        };
        let mut gauges_by_family: HashMap<usize, Vec<&GaugeValue>> = HashMap::new();
        for gauge in &totals.gauges {
            gauges_by_family
                .entry(cache.series[gauge.series].family)
                .or_default()
                .push(gauge);
        }
        for (family_id, family) in cache.families.iter().enumerate() {
            let gauges = gauges_by_family
                .get(&family_id)
                .map_or(&[][..], Vec::as_slice);
            let samples = samples(cache, family, gauges, totals);
            if samples.is_empty() {
                continue;
            }
            // prometheus-client ends the help of a process's own metrics with a full
            // stop (one, whether or not the text had one): so does the aggregate.
            let help = family.help.strip_suffix('.').unwrap_or(&family.help);
            let mut metric = encoder.encode_descriptor(
                &family.name,
                &format!("{help}."),
                None,
                family.family_type.metric_type(),
            )?;
            for (labels, sample) in &samples {
                sample.encode(metric.encode_family(labels)?)?;
            }
        }
        encode_tally(
            &mut encoder,
            SKIPPED_FILES,
            "Multiprocess files skipped at this scrape, by reason.",
            MetricType::Gauge,
            &totals.skipped_files,
        )?;
        encode_count(
            &mut encoder,
            FILES,
            "Metric files found in the multiprocess directory at the last scrape.",
            totals.files,
        )?;
        encode_count(
            &mut encoder,
            DISPLACED_FILES,
            "Files of this process no longer at their place in the multiprocess directory (removed or replaced): its counts are missing from other processes' scrapes.",
            self.store.displaced_files(),
        )?;
        encode_tally(
            &mut encoder,
            FOLDS,
            "Folds of exited processes' files into the archive this process ran, by outcome.",
            MetricType::Counter,
            self.folder.outcomes(),
        )?;
        encode_tally(
            &mut encoder,
            WRITE_ERRORS,
            "Writes this process could not place in its multiprocess files, by reason; the values are kept in memory until there is room.",
            MetricType::Counter,
            self.store.write_errors(),
        )
    }
}

/// A gauge family of one series without labels.
fn encode_count(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    count: u64,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    metric.encode_gauge(&(i64::try_from(count).unwrap_or(i64::MAX)))
}

/// `value` as a whole number, when it is one an `i64` holds.
fn whole(value: f64) -> Option<i64> {
    // The bounds are powers of two, so exact as `f64`: every value between converts.
    let in_range = (-(2f64.powi(63))..2f64.powi(63)).contains(&value);
    (value.fract() == 0.0 && in_range).then_some(value as i64)
}

/// A family of one series per reason of `tally`.
fn encode_tally<R: Reason>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    tally: &Tally<R>,
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (reason, count) in tally.iter() {
        let labels = [(R::LABEL, reason.as_str())];
        let mut series = metric.encode_family(&labels)?;
        match metric_type {
            MetricType::Counter => series.encode_counter::<NoLabelSet, u64, u64>(
                &count,
                None::<&Exemplar<NoLabelSet, u64>>,
            )?,
            _ => series.encode_gauge(&(count as i64))?,
        }
    }
    Ok(())
}
