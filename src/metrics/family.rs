//! A metric with one series per label set, capped in size.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::label_names::{DeclaredOrder, LabelError, LabelNames};
use super::labels::{encoded_pairs, ConstantLabels, Labels, WithConstant};
use super::series::SeriesMetric;
use super::table::Table;
use super::LabelPairs;
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
///
/// A series is its set of labels, not their order: the same pairs given in another
/// order are the same series, in the scrape and in the multi-process files. A label
/// set not seen before is put in a canonical order to tell (when a series is made,
/// and past the cap on each call with a label set of no series: under a microsecond
/// then); the orders seen are kept, so finding a series again is one probe. A family
/// can also declare its label names once, as Python's `labelnames` does
/// ([`label_names`](Self::label_names)): every call is then checked against them, and
/// a family of [`LabelPairs`] takes values by position ([`labels`](Self::labels)) or
/// by name in any order ([`labels_by_name`](Self::labels_by_name)).
///
/// ```
/// use tower_prometheus::metrics::{CounterFamily, LabelError};
///
/// let requests = <CounterFamily>::default().label_names(["method", "status"]);
/// requests.labels(&["GET", "200"])?.inc();
/// requests.labels_by_name(&[("status", "200"), ("method", "GET")])?.inc();
/// requests.get_or_create(&vec![("status".into(), "200".into()), ("method".into(), "GET".into())]).inc();
/// assert_eq!(requests.len(), 1);
/// assert_eq!(requests.labels(&["GET", "200"])?.get(), 3);
///
/// let typo = requests.labels_by_name(&[("methd", "GET"), ("status", "200")]);
/// assert!(matches!(typo, Err(LabelError::Unknown { .. })));
/// # Ok::<(), LabelError>(())
/// ```
pub struct Family<L, M> {
    state: Arc<FamilyState<L, M>>,
}

struct FamilyState<L, M> {
    /// Every label set a call gave, in the order it gave the labels: the first one of
    /// each series, and other orders of the same labels.
    series: Table<L, Entry<M>>,
    /// Taken to add a series or another order of one.
    added: Mutex<Added<M>>,
    overflow: OnceLock<M>,
    max_series: AtomicUsize,
    new_series: Box<dyn Fn() -> M + Send + Sync>,
    /// Labels every series carries beside its own; set at most once, before any series.
    constant: OnceLock<ConstantLabels>,
    /// The label names every label set must have; declared at most once, before any series.
    names: OnceLock<LabelNames>,
    /// The label type writes its labels in one order whatever their values, so a label
    /// set is found by that order alone and no sorted copy is kept.
    fixed_order: AtomicBool,
    /// In multi-process mode, where the series' values go.
    binding: Option<Binding>,
}

/// A series under one of the label sets that name it.
#[derive(Clone)]
struct Entry<M> {
    metric: M,
    /// Whether this is the label set the series was made with, which the scrape
    /// writes; the others are its labels in another order.
    first: bool,
}

/// What adding series keeps.
struct Added<M> {
    series: usize,
    other_orders: usize,
    /// Each series by its label pairs in the canonical order: the declared names' order,
    /// or sorted by name.
    by_pairs: HashMap<LabelPairs, M>,
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
                added: Mutex::new(Added {
                    series: 0,
                    other_orders: 0,
                    by_pairs: HashMap::new(),
                }),
                overflow: OnceLock::new(),
                max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
                new_series: Box::new(new_series),
                constant: OnceLock::new(),
                names: OnceLock::new(),
                fixed_order: AtomicBool::new(false),
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

    /// Declares the label names every label set of the family has, once, when the
    /// family is made (as Python's `labelnames`): each call is checked against them,
    /// and a family of [`LabelPairs`] takes values by position or by name. A label set
    /// is checked when it is first seen; finding its series again costs nothing more.
    ///
    /// ```
    /// use tower_prometheus::metrics::{Buckets, Histogram, HistogramFamily};
    /// use tower_prometheus::{MetricsEndpoint, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = MetricsRegistry::new();
    /// registry.provider("upload_seconds", "Upload time, by tenant.", || {
    ///     <HistogramFamily>::new_with_constructor(|| Histogram::new(Buckets::http_duration()))
    ///         .label_names(["tenant"])
    /// })?;
    /// let _endpoint = MetricsEndpoint::new(&registry)?;
    /// let uploads = registry.get::<HistogramFamily>("upload_seconds")?;
    /// uploads.labels(&["acme"])?.observe(0.25);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// On a name that is not a label name, a name given twice, `le` in a histogram
    /// family (its buckets' label), and when the family already has label names or
    /// series. In a provider the registry turns the panic into
    /// [`RegistryError::ProviderPanicked`](crate::RegistryError::ProviderPanicked)
    /// when the layer or endpoint is built.
    #[must_use]
    pub fn label_names<I>(self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
        M: TypedMetric,
    {
        let reserved: &[(&str, &'static str)] = match M::TYPE {
            MetricType::Histogram => &[("le", "the buckets of a histogram")],
            _ => &[],
        };
        let names = LabelNames::new(names, reserved).unwrap_or_else(|error| panic!("{error}"));
        assert!(
            self.lock_added().series == 0 && self.state.names.set(names).is_ok(),
            "label names are declared once, when the family is made, before its first series"
        );
        self
    }

    /// Gives every series `constant` beside its own labels, when the family is made:
    /// labels set once stay.
    #[must_use]
    pub(crate) fn constant_labels(self, constant: ConstantLabels) -> Self {
        let _ = self.state.constant.set(constant);
        self
    }

    /// Marks the label type as writing its labels in one order whatever their values
    /// (the crate's own label types): a label set is then found by that order alone.
    #[must_use]
    pub(crate) fn fixed_order(self) -> Self {
        self.state.fixed_order.store(true, Ordering::Relaxed);
        self
    }

    /// The labels every series carries beside its own.
    pub(crate) fn constant(&self) -> &ConstantLabels {
        constant_of(&self.state.constant)
    }

    /// The series for `labels`, created if it is new and the cap allows, otherwise the
    /// overflow series.
    ///
    /// # Panics
    ///
    /// When the family [declares label names](Self::label_names) and `labels` does not
    /// have exactly those; [`try_get_or_create`](Self::try_get_or_create) returns that
    /// error instead.
    pub fn get_or_create(&self, labels: &L) -> M {
        self.lookup(labels).metric
    }

    /// The series for `labels`, created if it is new and the cap allows, otherwise the
    /// overflow series; an error when the family [declares label
    /// names](Self::label_names) and `labels` does not have exactly those.
    ///
    /// ```
    /// use tower_prometheus::metrics::{Counter, Family, LabelError};
    ///
    /// let jobs: Family<[(&str, &str); 2], Counter> =
    ///     Family::default().label_names(["queue", "outcome"]);
    /// jobs.try_get_or_create(&[("outcome", "ok"), ("queue", "mail")])?.inc();
    /// let typo = jobs.try_get_or_create(&[("queue", "mail"), ("outcom", "ok")]);
    /// assert!(matches!(typo, Err(LabelError::Unknown { name, .. }) if name == "outcom"));
    /// # Ok::<(), LabelError>(())
    /// ```
    pub fn try_get_or_create(&self, labels: &L) -> Result<M, LabelError> {
        self.try_lookup(labels).map(|found| found.metric)
    }

    /// The series for `labels`, if it exists.
    pub fn get(&self, labels: &L) -> Option<M> {
        let state = &*self.state;
        let hash = state.series.hash(labels);
        if let Some(entry) = state.series.find(hash, |known| known == labels) {
            return Some(entry.metric.clone());
        }
        // Another order of an existing series that no call has given yet.
        let pairs = self.canonical_pairs(labels).ok()??;
        self.lock_added().by_pairs.get(&pairs).cloned()
    }

    /// The overflow series, if any label set has been folded into it.
    pub fn overflow(&self) -> Option<M> {
        self.state.overflow.get().cloned()
    }

    /// Number of series, not counting the overflow series.
    pub fn len(&self) -> usize {
        self.lock_added().series
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
            .get_or_init(|| self.new_series(&[(OVERFLOW_LABEL.0.into(), OVERFLOW_LABEL.1.into())]))
            .clone()
    }

    /// A metric as the family's constructor makes its series, in no series: to see how
    /// the family configures them.
    pub(crate) fn unregistered(&self) -> M {
        (self.state.new_series)()
    }

    /// A new series, bound to the entry of `labels` in multi-process mode.
    fn new_series(&self, labels: &[(String, String)]) -> M {
        let state = &*self.state;
        let metric = (state.new_series)();
        match &state.binding {
            Some(binding) => {
                let mut labels = labels.to_vec();
                labels.extend_from_slice(constant_of(&state.constant).pairs());
                metric.bind_like(binding, &labels)
            }
            None => metric,
        }
    }

    /// The series of `labels` (see [`get_or_create`](Self::get_or_create)).
    pub(crate) fn lookup(&self, labels: &L) -> Lookup<M> {
        self.try_lookup(labels)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    fn try_lookup(&self, labels: &L) -> Result<Lookup<M>, LabelError> {
        let series = &self.state.series;
        let hash = series.hash(labels);
        match series.find(hash, |known| known == labels) {
            Some(entry) => Ok(Lookup::found(entry.metric.clone())),
            None => self.add(labels, hash),
        }
    }

    /// Adds `labels` (with its `hash` in the series table): a new series, another
    /// order of an existing one, or the overflow series past the cap.
    #[cold]
    fn add(&self, labels: &L, hash: u64) -> Result<Lookup<M>, LabelError> {
        let state = &*self.state;
        let mut added = self.lock_added();
        // Another thread may have added it since the lock-free probe.
        if let Some(entry) = state.series.find(hash, |known| known == labels) {
            return Ok(Lookup::found(entry.metric.clone()));
        }
        let canonical = self.canonical_pairs(labels)?;
        let limit = self.series_limit();
        if let Some(metric) = canonical
            .as_ref()
            .and_then(|c| added.by_pairs.get(c))
            .cloned()
        {
            // Beyond this many, another order is found by its pairs on each call.
            if added.other_orders < limit {
                added.other_orders += 1;
                self.insert(hash, labels, &metric, false);
            }
            return Ok(Lookup::found(metric));
        }
        if added.series >= limit {
            return Ok(Lookup {
                metric: self.overflow_series(),
                overflowed: true,
            });
        }
        let metric = match (&canonical, &state.binding) {
            (Some(pairs), _) => self.new_series(pairs),
            (None, Some(_)) => self.new_series(&encoded_pairs(labels).unwrap_or_default()),
            (None, None) => self.new_series(&[]),
        };
        added.series += 1;
        self.insert(hash, labels, &metric, true);
        if let Some(pairs) = canonical {
            added.by_pairs.insert(pairs, metric.clone());
        }
        Ok(Lookup::found(metric))
    }

    /// The pairs of `labels` in the canonical order (the declared names' order, or
    /// sorted), checked against the declared names; `None` for a family of a fixed
    /// order without names, and for a label set that fails to encode.
    fn canonical_pairs(&self, labels: &L) -> Result<Option<LabelPairs>, LabelError> {
        let state = &*self.state;
        let names = state.names.get();
        if names.is_none() && state.fixed_order.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let Ok(mut pairs) = encoded_pairs(labels) else {
            tracing::warn!(
                "a label set failed to encode: its series is found by its own order alone, \
                 and scrapes of its family fail"
            );
            return Ok(None);
        };
        match names {
            Some(names) => names.in_order(pairs).map(Some),
            None => {
                pairs.sort();
                Ok(Some(pairs))
            }
        }
    }

    fn insert(&self, hash: u64, labels: &L, metric: &M, first: bool) {
        let entry = Entry {
            metric: metric.clone(),
            first,
        };
        let _ = self.state.series.find_or_insert(
            hash,
            |known| known == labels,
            |_| Some((labels.clone(), entry)),
        );
    }

    fn lock_added(&self) -> MutexGuard<'_, Added<M>> {
        lock(&self.state.added)
    }
}

impl<M: SeriesMetric> Family<LabelPairs, M> {
    /// The series of the values of the [declared label names](Self::label_names), by
    /// position, as Python's `labels("GET", "200")`: no allocation once the series
    /// exists. An error when the family declares no names or the count differs.
    ///
    /// ```
    /// use tower_prometheus::metrics::{CounterFamily, LabelError};
    ///
    /// let requests = <CounterFamily>::default().label_names(["method", "status"]);
    /// requests.labels(&["GET", "200"])?.inc();
    /// assert!(matches!(requests.labels(&["GET"]), Err(LabelError::WrongCount { .. })));
    /// # Ok::<(), LabelError>(())
    /// ```
    pub fn labels<V: AsRef<str>>(&self, values: &[V]) -> Result<M, LabelError> {
        let names = self.declared()?;
        names.check_count(values.len())?;
        self.in_declared_order(DeclaredOrder {
            names: names.names(),
            value: |index: usize| values[index].as_ref(),
        })
    }

    /// The series of `(name, value)` pairs of the [declared label
    /// names](Self::label_names), in any order, as Python's `labels(method="GET",
    /// status="200")`: no allocation once the series exists. An error names an unknown
    /// (misspelled), missing or repeated label, or a family without declared names.
    ///
    /// ```
    /// use tower_prometheus::metrics::{CounterFamily, LabelError};
    ///
    /// let requests = <CounterFamily>::default().label_names(["method", "status"]);
    /// requests.labels_by_name(&[("status", "200"), ("method", "GET")])?.inc();
    /// let missing = requests.labels_by_name(&[("method", "GET")]);
    /// assert!(matches!(missing, Err(LabelError::Missing { name, .. }) if name == "status"));
    /// # Ok::<(), LabelError>(())
    /// ```
    pub fn labels_by_name<N: AsRef<str>, V: AsRef<str>>(
        &self,
        pairs: &[(N, V)],
    ) -> Result<M, LabelError> {
        let names = self.declared()?;
        names.check_by_name(pairs)?;
        self.in_declared_order(DeclaredOrder {
            names: names.names(),
            value: |index: usize| {
                let name = &names.names()[index];
                pairs
                    .iter()
                    .find(|(given, _)| given.as_ref() == name)
                    .map_or("", |(_, value)| value.as_ref())
            },
        })
    }

    fn declared(&self) -> Result<&LabelNames, LabelError> {
        self.state.names.get().ok_or(LabelError::NoLabelNames)
    }

    fn in_declared_order<'a>(
        &self,
        labels: DeclaredOrder<'a, impl Fn(usize) -> &'a str>,
    ) -> Result<M, LabelError> {
        let series = &self.state.series;
        let hash = series.hash(&labels);
        match series.find(hash, |known| labels.is(known)) {
            Some(entry) => Ok(entry.metric.clone()),
            None => self.add(&labels.build(), hash).map(|found| found.metric),
        }
    }
}

fn lock<M>(added: &Mutex<Added<M>>) -> MutexGuard<'_, Added<M>> {
    // Counts and the map change together after every check passed: a panic cannot
    // leave them torn.
    added.lock().unwrap_or_else(PoisonError::into_inner)
}

fn constant_of(constant: &OnceLock<ConstantLabels>) -> &ConstantLabels {
    static NONE: ConstantLabels = ConstantLabels::none();
    constant.get().unwrap_or(&NONE)
}

/// A series found in a family, and whether it is the overflow series.
pub(crate) struct Lookup<M> {
    pub(crate) metric: M,
    pub(crate) overflowed: bool,
}

impl<M> Lookup<M> {
    fn found(metric: M) -> Self {
        Self {
            metric,
            overflowed: false,
        }
    }
}

impl<L, M> fmt::Debug for Family<L, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("series", &lock(&self.state.added).series)
            .field(
                "label_names",
                &self.state.names.get().map(LabelNames::names),
            )
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
        let constant = self.constant();
        let firsts = self.state.series.iter().filter(|(_, entry)| entry.first);
        for (labels, entry) in firsts {
            entry
                .metric
                .encode(encoder.encode_family(&WithConstant { labels, constant })?)?;
        }
        if let Some(metric) = self.state.overflow.get() {
            let labels = &OverflowLabels;
            metric.encode(encoder.encode_family(&WithConstant { labels, constant })?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }

    /// A family without series writes no `HELP` and `TYPE` lines either: a family that
    /// never records (the gRPC families of an HTTP-only server) stays out of the scrape.
    fn is_empty(&self) -> bool {
        // Probing the slots takes no lock, unlike asking for the count. Another order
        // is only added after its series, so any entry means a series.
        self.state.series.iter().next().is_none() && self.state.overflow.get().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::labels::owned as pairs;
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
    fn the_same_pairs_in_another_order_are_the_same_series() {
        let family: Family<LabelPairs, Counter> = Family::default();
        family
            .get_or_create(&pairs(&[("method", "GET"), ("status", "200")]))
            .inc();
        family
            .get_or_create(&pairs(&[("status", "200"), ("method", "GET")]))
            .inc();
        assert_eq!(family.len(), 1);
        let reversed = pairs(&[("status", "200"), ("method", "GET")]);
        assert_eq!(family.get(&reversed).map(|c| c.get()), Some(2));
        // An order no call gave yet is found too.
        let arrays: Family<[(&str, &str); 3], Counter> = Family::default();
        arrays
            .get_or_create(&[("a", "1"), ("b", "2"), ("c", "3")])
            .inc();
        let unseen = [("c", "3"), ("a", "1"), ("b", "2")];
        assert_eq!(arrays.get(&unseen).map(|c| c.get()), Some(1));
        arrays.get_or_create(&unseen).inc();
        assert_eq!(
            (arrays.len(), arrays.get(&unseen).map(|c| c.get())),
            (1, Some(2))
        );
    }

    #[test]
    fn other_orders_past_the_cap_still_find_their_series() {
        let family: Family<LabelPairs, Counter> = Family::default().max_series(1);
        family
            .get_or_create(&pairs(&[("a", "1"), ("b", "2")]))
            .inc();
        for _ in 0..3 {
            family
                .get_or_create(&pairs(&[("b", "2"), ("a", "1")]))
                .inc();
        }
        family
            .get_or_create(&pairs(&[("a", "x"), ("b", "2")]))
            .inc();
        assert_eq!(family.len(), 1);
        let first = pairs(&[("a", "1"), ("b", "2")]);
        assert_eq!(family.get(&first).map(|c| c.get()), Some(4));
        assert_eq!(family.overflow().map(|c| c.get()), Some(1));
    }

    #[test]
    fn declared_names_check_every_new_label_set() {
        let family: Family<LabelPairs, Counter> =
            Family::default().label_names(["method", "status"]);
        family.labels(&["GET", "200"]).expect("by position").inc();
        family
            .labels_by_name(&[("status", "200"), ("method", "GET")])
            .expect("by name")
            .inc();
        family
            .try_get_or_create(&pairs(&[("status", "200"), ("method", "GET")]))
            .expect("any order")
            .inc();
        assert_eq!(family.len(), 1);
        assert_eq!(family.labels(&["GET", "200"]).map(|c| c.get()), Ok(3));
        assert!(matches!(
            family.try_get_or_create(&pairs(&[("methd", "GET"), ("status", "200")])),
            Err(LabelError::Unknown { name, .. }) if name == "methd"
        ));
        assert!(matches!(
            family.labels(&["GET", "200", "x"]),
            Err(LabelError::WrongCount {
                given: 3,
                expected: 2,
                ..
            })
        ));
        assert_eq!(family.len(), 1);
    }

    #[test]
    fn values_by_position_need_declared_names() {
        let family: Family<LabelPairs, Counter> = Family::default();
        assert_eq!(
            family.labels(&["GET"]).err(),
            Some(LabelError::NoLabelNames)
        );
        assert_eq!(
            family.labels_by_name(&[("method", "GET")]).err(),
            Some(LabelError::NoLabelNames)
        );
    }

    #[test]
    #[should_panic(expected = "label `methd` is not one of this family's label names")]
    fn get_or_create_panics_on_a_label_the_family_does_not_declare() {
        let family: Family<LabelPairs, Counter> = Family::default().label_names(["method"]);
        family.get_or_create(&pairs(&[("methd", "GET")]));
    }

    #[test]
    #[should_panic(expected = "label name `le` is reserved")]
    fn a_histogram_family_cannot_declare_le() {
        let _ = Family::<LabelPairs, crate::metrics::Histogram>::new_with_constructor(|| {
            crate::metrics::Histogram::new(crate::metrics::Buckets::http_duration())
        })
        .label_names(["le"]);
    }

    #[test]
    #[should_panic(expected = "label names are declared once")]
    fn label_names_come_before_the_first_series() {
        let family: Family<LabelPairs, Counter> = Family::default();
        family.get_or_create(&pairs(&[("a", "1")]));
        let _ = family.label_names(["a"]);
    }

    #[test]
    fn a_fixed_order_keeps_no_sorted_copy() {
        let family: Family<Labels, Counter> = Family::default().fixed_order();
        family.get_or_create(&labels("a")).inc();
        assert_eq!(family.get(&labels("a")).map(|c| c.get()), Some(1));
        assert!(family.lock_added().by_pairs.is_empty());
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
