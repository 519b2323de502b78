//! A metric with one series per label set, capped in size.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::labels::Labels;
use super::series::SeriesMetric;
use super::table::Table;
use crate::storage::Binding;

/// Default cap on the series of one family; the same default as OpenTelemetry's
/// cardinality limit.
pub const DEFAULT_MAX_SERIES: usize = 2000;

/// The label set of the series that collects everything past the cap, as
/// OpenTelemetry names it in its Prometheus form.
pub const OVERFLOW_LABEL: (&str, &str) = ("otel_metric_overflow", "true");

/// A metric with one series per label set `L`, each series a metric `M`.
///
/// Looking up an existing series takes no lock and writes no shared memory, so
/// recording into a family from many threads does not contend. The number of series is
/// capped ([`DEFAULT_MAX_SERIES`] unless [`Family::max_series`] says otherwise): past
/// the cap, new label sets all share one overflow series, exposed with the single label
/// `otel_metric_overflow="true"`, so a flood of distinct label values cannot grow memory
/// without bound. Series are never removed.
///
/// ```
/// use tower_prometheus::metrics::{Counter, Family};
///
/// let by_tenant: Family<[(&'static str, String); 1], Counter> = Family::default().max_series(2);
/// for tenant in ["a", "b", "c", "d"] {
///     by_tenant.get_or_create(&[("tenant", tenant.to_string())]).inc();
/// }
/// assert_eq!(by_tenant.len(), 2);
/// assert_eq!(by_tenant.overflow().map(|c| c.get()), Some(2));
/// ```
pub struct Family<L, M> {
    state: Arc<FamilyState<L, M>>,
}

struct FamilyState<L, M> {
    series: Table<L, M>,
    overflow: OnceLock<M>,
    max_series: AtomicUsize,
    new_series: Box<dyn Fn() -> M + Send + Sync>,
    /// In multi-process mode, where the series' values go.
    binding: Option<Binding>,
}

impl<L, M> Clone for Family<L, M> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<L: Labels, M: SeriesMetric + Default> Default for Family<L, M> {
    fn default() -> Self {
        Self::new_with_constructor(M::default)
    }
}

impl<L: Labels, M: SeriesMetric> Family<L, M> {
    /// A family whose series `new_series` creates, for metrics without a `Default`
    /// (for example histograms with their buckets).
    pub fn new_with_constructor(new_series: impl Fn() -> M + Send + Sync + 'static) -> Self {
        Self::bound(Binding::claim(), new_series)
    }

    /// A family whose series keep their values where `binding` says: entries of the
    /// multi-process files, or (`None`) this process.
    pub(crate) fn bound(
        binding: Option<Binding>,
        new_series: impl Fn() -> M + Send + Sync + 'static,
    ) -> Self {
        Self {
            state: Arc::new(FamilyState {
                series: Table::new(),
                overflow: OnceLock::new(),
                max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
                new_series: Box::new(new_series),
                binding,
            }),
        }
    }

    /// Caps the number of label sets; past it they fold into the overflow series.
    #[must_use]
    pub fn max_series(self, max_series: usize) -> Self {
        self.state.max_series.store(max_series, Ordering::Relaxed);
        self
    }

    /// The series for `labels`, created if it is new and the cap allows, otherwise the
    /// overflow series.
    pub fn get_or_create(&self, labels: &L) -> M {
        self.lookup(labels).metric
    }

    /// The series for `labels`, if it exists.
    pub fn get(&self, labels: &L) -> Option<M> {
        let series = &self.state.series;
        series.find(series.hash(labels), |l| l == labels).cloned()
    }

    /// The overflow series, if any label set has been folded into it.
    pub fn overflow(&self) -> Option<M> {
        self.state.overflow.get().cloned()
    }

    /// Number of series, not counting the overflow series.
    pub fn len(&self) -> usize {
        self.state.series.len()
    }

    /// Whether the family has no series (not counting the overflow series).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cap on the number of series.
    pub fn series_limit(&self) -> usize {
        self.state.max_series.load(Ordering::Relaxed)
    }

    /// The overflow series, created if need be.
    pub(crate) fn overflow_series(&self) -> M {
        let state = &*self.state;
        state
            .overflow
            .get_or_init(|| {
                self.new_series(|| vec![(OVERFLOW_LABEL.0.into(), OVERFLOW_LABEL.1.into())])
            })
            .clone()
    }

    /// A new series, bound to its entry in multi-process mode.
    fn new_series(&self, labels: impl FnOnce() -> Vec<(String, String)>) -> M {
        let state = &*self.state;
        let metric = (state.new_series)();
        match &state.binding {
            Some(binding) => metric.bind_like(binding, &labels()),
            None => metric,
        }
    }

    pub(crate) fn lookup(&self, labels: &L) -> Lookup<M> {
        let state = &*self.state;
        let hash = state.series.hash(labels);
        let limit = self.series_limit();
        let found = state.series.find_or_insert(
            hash,
            |l| l == labels,
            |len| (len < limit).then(|| (labels.clone(), self.new_series(|| labels.label_pairs()))),
        );
        match found {
            Some(metric) => Lookup {
                metric: metric.clone(),
                overflowed: false,
            },
            None => Lookup {
                metric: self.overflow_series(),
                overflowed: true,
            },
        }
    }
}

/// A series found in a family, and whether it is the overflow series.
pub(crate) struct Lookup<M> {
    pub(crate) metric: M,
    pub(crate) overflowed: bool,
}

impl<L, M> fmt::Debug for Family<L, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("series", &self.state.series.len())
            .field("max_series", &self.state.max_series.load(Ordering::Relaxed))
            .field("overflowed", &self.state.overflow.get().is_some())
            .finish()
    }
}

struct OverflowLabels;

impl EncodeLabelSet for OverflowLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [OVERFLOW_LABEL].encode(encoder)
    }
}

impl<L, M> TypedMetric for Family<L, M>
where
    M: TypedMetric,
{
    const TYPE: MetricType = M::TYPE;
}

impl<L, M> EncodeMetric for Family<L, M>
where
    L: Labels,
    M: SeriesMetric + EncodeMetric + TypedMetric,
{
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (labels, metric) in self.state.series.iter() {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        if let Some(metric) = self.state.overflow.get() {
            metric.encode(encoder.encode_family(&OverflowLabels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }

    /// A family without series writes no `HELP` and `TYPE` lines either: a family that
    /// never records (the gRPC families of an HTTP-only server) stays out of the scrape.
    fn is_empty(&self) -> bool {
        // Probing the slots takes no lock, unlike asking the table for its length.
        self.state.series.iter().next().is_none() && self.state.overflow.get().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Counter;

    type Labels = [(&'static str, String); 1];

    fn labels(value: impl Into<String>) -> Labels {
        [("key", value.into())]
    }

    #[test]
    fn same_labels_share_a_series() {
        let family: Family<Labels, Counter> = Family::default();
        family.get_or_create(&labels("a")).inc();
        family.get_or_create(&labels("a")).inc();
        assert_eq!(family.get(&labels("a")).map(|c| c.get()), Some(2));
        assert_eq!(family.len(), 1);
    }

    #[test]
    fn growth_keeps_every_series() {
        let family: Family<Labels, Counter> = Family::default().max_series(10_000);
        for i in 0..5_000 {
            family.get_or_create(&labels(i.to_string())).inc_by(i);
        }
        assert_eq!(family.len(), 5_000);
        for i in 0..5_000 {
            assert_eq!(family.get(&labels(i.to_string())).map(|c| c.get()), Some(i));
        }
        assert!(family.overflow().is_none());
    }

    #[test]
    fn past_the_cap_series_fold_into_overflow() {
        let family: Family<Labels, Counter> = Family::default().max_series(3);
        for i in 0..100 {
            family.get_or_create(&labels(i.to_string())).inc();
        }
        assert_eq!(family.len(), 3);
        assert_eq!(family.overflow().map(|c| c.get()), Some(97));
        // An existing series keeps counting into itself after the cap is reached.
        family.get_or_create(&labels("0")).inc();
        assert_eq!(family.get(&labels("0")).map(|c| c.get()), Some(2));
    }

    #[test]
    fn concurrent_creation_makes_one_series_per_label_set() {
        let family: Family<Labels, Counter> = Family::default();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for i in 0..500 {
                        family.get_or_create(&labels((i % 50).to_string())).inc();
                    }
                });
            }
        });
        assert_eq!(family.len(), 50);
        let total: u64 = (0..50)
            .filter_map(|i| family.get(&labels(i.to_string())))
            .map(|c| c.get())
            .sum();
        assert_eq!(total, 2_000);
    }
}
