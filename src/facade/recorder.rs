//! [`FacadeRecorder`]: a `metrics::Recorder` that keeps every series in families of a
//! [`MetricsRegistry`].

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ::metrics::{Key, KeyName, Metadata, Recorder, SetRecorderError, SharedString, Unit};
use prometheus_client::registry::Unit as PrometheusUnit;

use super::buckets::{BucketRules, Matcher};
use super::errors::{Errors, Reason, LOG_TARGET};
use super::handles::{CounterHandle, GaugeHandle, HistogramHandle};
use super::names;
use crate::metrics::{
    Buckets, Counter, Family, Gauge, Histogram, LabelPairs, NativeBuckets, SeriesMetric, Table,
    DEFAULT_MAX_SERIES,
};
use crate::multiprocess::GaugeMode;
use crate::record::HistogramLayout;
use crate::registry::Provider;
use crate::storage::Binding;
use crate::{BuildError, MetricsRegistry};

/// A `metrics` recorder whose counters, gauges and histograms are families of a
/// [`MetricsRegistry`]; see the [module docs](super).
///
/// A cheap [`Clone`] handle. Install it for the process with
/// [`install`](Self::install), or use it scoped with `metrics::with_local_recorder`.
#[derive(Clone)]
pub struct FacadeRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    registry: MetricsRegistry,
    buckets: BucketRules,
    max_series: usize,
    max_names: usize,
    gauge_mode: GaugeMode,
    /// Each kind's series by the `metrics` key that names them; `None` for a key whose
    /// records go nowhere (its name is taken).
    counters: Table<Key, Option<Arc<CounterHandle>>>,
    gauges: Table<Key, Option<Arc<GaugeHandle>>>,
    histograms: Table<Key, Option<Arc<HistogramHandle>>>,
    names: Mutex<Names>,
    errors: Errors,
}

/// The families made so far and the descriptions given, by registry name.
#[derive(Default)]
struct Names {
    /// A `Family<LabelPairs, M>` of the kind `M` the name was first recorded as.
    families: HashMap<String, Box<dyn Any + Send + Sync>>,
    descriptions: HashMap<String, Description>,
    /// Names with a family, a description or both.
    distinct: usize,
    /// Whether a name past the cap was met (and logged) yet.
    capped: bool,
}

impl Names {
    fn is_known(&self, name: &str) -> bool {
        self.families.contains_key(name) || self.descriptions.contains_key(name)
    }

    /// Whether `name` is known or, new, fits under `max`; a new one that does not is
    /// counted, and logged the first time.
    fn admits(&mut self, name: &str, max: usize, errors: &Errors) -> bool {
        if self.distinct < max || self.is_known(name) {
            return true;
        }
        errors.count(Reason::TooManyNames, name, !self.capped);
        self.capped = true;
        false
    }

    fn add_family(&mut self, name: &str, family: Box<dyn Any + Send + Sync>) {
        self.distinct += usize::from(!self.is_known(name));
        self.families.insert(name.to_string(), family);
    }

    fn add_description(&mut self, name: &str, description: Description) {
        self.distinct += usize::from(!self.is_known(name));
        self.descriptions.insert(name.to_string(), description);
    }
}

/// Why a name has no family of the kind recorded.
enum NoFamily {
    /// Another kind or another metric has the name: its keys are remembered as
    /// recording nowhere.
    Taken,
    /// Past the cap on names: nothing of it is kept.
    Capped,
}

/// Names the facade keeps at most, unless the builder says otherwise: far more than a
/// service names, and a flood of names past it costs nothing more.
const DEFAULT_MAX_METRIC_NAMES: usize = 10_000;

#[derive(Clone, PartialEq)]
struct Description {
    unit: Option<Unit>,
    help: String,
}

/// The help text of a family no `describe_*!` call described before its first record.
const UNDESCRIBED: &str = "Recorded through the `metrics` facade, undescribed.";

/// What the facade needs of each kind of metric.
trait FacadeMetric:
    SeriesMetric + prometheus_client::registry::Metric + prometheus_client::metrics::TypedMetric
{
    /// Label names the type writes itself, which a recorded label must not take.
    const RESERVED_LABELS: &'static [&'static str] = &[];

    /// The registry name of the sanitized `name`.
    fn registry_name(name: String) -> String {
        name
    }

    /// The provider of the family `name`.
    fn provider(inner: &Inner, name: &str) -> FamilyProvider<Self>;
}

/// Builds a family where the registry binds it: in multi-process mode its series get
/// entries of the files, as a family declared before initialisation does.
type FamilyProvider<M> = Box<dyn FnOnce(Option<Binding>) -> Family<LabelPairs, M> + Send>;

impl FacadeMetric for Counter {
    fn registry_name(name: String) -> String {
        names::counter_name(name)
    }

    fn provider(inner: &Inner, _: &str) -> FamilyProvider<Self> {
        let max_series = inner.max_series;
        Box::new(move |binding| {
            Family::bound(binding, Counter::default)
                .max_series(max_series)
                .fixed_order()
        })
    }
}

impl FacadeMetric for Gauge {
    fn provider(inner: &Inner, _: &str) -> FamilyProvider<Self> {
        let (max_series, mode) = (inner.max_series, inner.gauge_mode);
        Box::new(move |binding| {
            Family::bound(binding, move || Gauge::with_mode(mode))
                .max_series(max_series)
                .fixed_order()
        })
    }
}

impl FacadeMetric for Histogram {
    const RESERVED_LABELS: &'static [&'static str] = &["le"];

    fn provider(inner: &Inner, name: &str) -> FamilyProvider<Self> {
        let max_series = inner.max_series;
        let classic = inner.buckets.buckets_of(name).clone();
        let layout = inner.buckets.layout_of(name);
        Box::new(move |binding| {
            // The shared files hold classic buckets only: there a histogram keeps the
            // classic buckets it has without native rules, rather than `+Inf` alone.
            let layout = match binding {
                Some(_) => HistogramLayout::default(),
                None => layout,
            };
            Family::bound(binding, move || layout.histogram(&classic))
                .max_series(max_series)
                .fixed_order()
        })
    }
}

impl FacadeRecorder {
    /// A builder of a recorder into `registry`.
    pub fn builder(registry: &MetricsRegistry) -> FacadeRecorderBuilder {
        FacadeRecorderBuilder {
            registry: registry.clone(),
            buckets: BucketRules::new(Buckets::http_duration()),
            invalid: None,
            max_series: DEFAULT_MAX_SERIES,
            max_names: DEFAULT_MAX_METRIC_NAMES,
            gauge_mode: GaugeMode::LiveSum,
        }
    }

    /// A recorder into `registry` with the defaults; initialises the registry.
    pub fn new(registry: &MetricsRegistry) -> Result<Self, BuildError> {
        Self::builder(registry).build()
    }

    /// Sets this recorder as the process's global `metrics` recorder. The `metrics`
    /// crate takes one for good: a second install is an [`InstallError`] holding the
    /// recorder back, never a panic.
    pub fn install(self) -> Result<(), InstallError> {
        ::metrics::set_global_recorder(self).map_err(InstallError::new)
    }
}

/// [`FacadeRecorder::install`] found a global `metrics` recorder already set: the
/// `metrics` crate takes one per process, for good.
#[derive(Debug, thiserror::Error)]
#[error("a global `metrics` recorder is already installed")]
pub struct InstallError {
    #[source]
    source: SetRecorderError<FacadeRecorder>,
}

impl InstallError {
    fn new(source: SetRecorderError<FacadeRecorder>) -> Self {
        Self { source }
    }

    /// The recorder that was not installed, to use scoped instead
    /// (`metrics::with_local_recorder`).
    pub fn into_recorder(self) -> FacadeRecorder {
        self.source.into_inner()
    }
}

/// Builds a [`FacadeRecorder`]; from [`FacadeRecorder::builder`].
#[derive(Debug)]
#[must_use]
pub struct FacadeRecorderBuilder {
    registry: MetricsRegistry,
    buckets: BucketRules,
    /// The first rule whose bounds were rejected, reported by `build`.
    invalid: Option<(Matcher, crate::metrics::InvalidBuckets)>,
    max_series: usize,
    max_names: usize,
    gauge_mode: GaugeMode,
}

impl FacadeRecorderBuilder {
    /// Histograms whose (sanitized) name `matcher` fits get these bucket bounds; other
    /// histograms get the layer's duration buckets ([`Buckets::http_duration`]). Of
    /// the rules that fit a name, full names win over prefixes and prefixes over
    /// suffixes; of two of the same kind, the first given.
    ///
    /// Beside [native buckets](Self::native_histograms_for), these bounds are kept
    /// only for the names a `buckets_for` rule fits.
    pub fn buckets_for(mut self, matcher: Matcher, bounds: &[f64]) -> Self {
        let matcher = sanitized(matcher);
        match Buckets::new(bounds.iter().copied()) {
            Ok(buckets) => self.buckets.push(matcher, buckets),
            Err(error) => {
                self.invalid.get_or_insert((matcher, error));
            }
        }
        self
    }

    /// Histograms whose (sanitized) name `matcher` fits keep native buckets of
    /// `config`, served in protobuf scrapes; text and OpenMetrics scrapes show their
    /// classic buckets. They keep classic buckets beside the native ones if a
    /// [`buckets_for`](Self::buckets_for) rule fits the name too (its bounds), else
    /// none: just the count, the sum and the `+Inf` bucket. Rules are chosen as
    /// `buckets_for` chooses them (full names, then prefixes, then suffixes; the
    /// first given of one kind), and before the
    /// [`native_histograms`](Self::native_histograms) default.
    ///
    /// In multi-process mode the shared files have no native buckets: there every
    /// facade histogram keeps classic buckets only, those it has without native rules
    /// (its `buckets_for` rule's, else the layer's duration buckets).
    ///
    /// ```
    /// use tower_prometheus::facade::{FacadeRecorder, Matcher};
    /// use tower_prometheus::metrics::NativeBuckets;
    /// use tower_prometheus::MetricsRegistry;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = MetricsRegistry::new();
    /// let recorder = FacadeRecorder::builder(&registry)
    ///     .native_histograms_for(Matcher::Suffix("_seconds".into()), NativeBuckets::new(3)?)
    ///     .buckets_for(Matcher::Full("checkout_seconds".into()), &[0.1, 1.0])
    ///     .build()?;
    /// metrics::with_local_recorder(&recorder, || {
    ///     metrics::histogram!("checkout_seconds").record(0.05); // classic and native
    ///     metrics::histogram!("search_seconds").record(0.2); // native only
    /// });
    /// let search = registry.get::<tower_prometheus::metrics::HistogramFamily>("search_seconds")?;
    /// let histogram = search.get(&Vec::new()).expect("recorded");
    /// assert_eq!(histogram.native_buckets().map(|n| n.schema()), Some(3));
    /// assert!(histogram.buckets().bounds().is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub fn native_histograms_for(mut self, matcher: Matcher, config: NativeBuckets) -> Self {
        self.buckets.push_native(sanitized(matcher), config);
        self
    }

    /// Native buckets of `config` for every facade histogram no
    /// [`native_histograms_for`](Self::native_histograms_for) rule names, with classic
    /// buckets beside them only where a [`buckets_for`](Self::buckets_for) rule fits;
    /// by default none: classic buckets only.
    pub fn native_histograms(mut self, config: NativeBuckets) -> Self {
        self.buckets.set_default_native(config);
        self
    }

    /// Caps the label sets of each facade metric; past the cap they fold into one
    /// series labelled `otel_metric_overflow="true"`.
    pub fn max_series(mut self, max_series: usize) -> Self {
        self.max_series = max_series;
        self
    }

    /// Caps the distinct metric names the facade keeps (default 10,000), recorded or
    /// described: past it, a new name's
    /// records go nowhere and its description is dropped, each counted in
    /// [`FACADE_ERRORS`](super::FACADE_ERRORS) with `reason="too_many_names"`, so code
    /// that makes names from data cannot grow memory without bound.
    pub fn max_metric_names(mut self, max_names: usize) -> Self {
        self.max_names = max_names;
        self
    }

    /// How the values of facade gauges combine over processes in multi-process mode
    /// (by default [`GaugeMode::LiveSum`]: the label sets stay those recorded, and
    /// exited processes drop out).
    pub fn gauge_mode(mut self, mode: GaugeMode) -> Self {
        self.gauge_mode = mode;
        self
    }

    /// The recorder. Initialises the registry, as building a layer does: its
    /// providers run now, and facade families join it as they are first recorded.
    pub fn build(self) -> Result<FacadeRecorder, BuildError> {
        if let Some((matcher, error)) = self.invalid {
            return Err(BuildError::Setting {
                setting: "buckets_for",
                message: format!("the buckets for {matcher:?}: {error}"),
            });
        }
        self.registry.init()?;
        let errors = Errors::of(&self.registry)?;
        Ok(FacadeRecorder {
            inner: Arc::new(Inner {
                registry: self.registry,
                buckets: self.buckets,
                max_series: self.max_series,
                max_names: self.max_names,
                gauge_mode: self.gauge_mode,
                counters: Table::new(),
                gauges: Table::new(),
                histograms: Table::new(),
                names: Mutex::default(),
                errors,
            }),
        })
    }
}

impl Inner {
    /// The series of `key` in `table`, made on its first record.
    #[inline]
    fn series<M: FacadeMetric, H>(
        &self,
        table: &Table<Key, Option<Arc<H>>>,
        key: &Key,
        handle: impl FnOnce(M, &str) -> H,
    ) -> Option<Arc<H>> {
        let hash = table.hash(key);
        match table.find(hash, |known| known == key) {
            Some(found) => found.clone(),
            None => self.new_series(table, key, hash, handle),
        }
    }

    #[cold]
    fn new_series<M: FacadeMetric, H>(
        &self,
        table: &Table<Key, Option<Arc<H>>>,
        key: &Key,
        hash: u64,
        handle: impl FnOnce(M, &str) -> H,
    ) -> Option<Arc<H>> {
        let name = M::registry_name(names::metric_name(key.name()));
        let series = match self.family::<M>(&name) {
            Ok(family) => {
                let labels = key.labels().map(|l| (l.key(), l.value()));
                let labels = names::label_set(labels, M::RESERVED_LABELS);
                let found = family.lookup(&labels);
                (
                    Some(Arc::new(handle(found.metric, &name))),
                    found.overflowed,
                )
            }
            Err(NoFamily::Taken) => (None, false),
            Err(NoFamily::Capped) => (None, true),
        };
        if let (handle, true) = series {
            // Keys past a cap are not kept: they would grow the table without bound.
            return handle;
        }
        let series = series.0;
        table
            .find_or_insert(hash, |known| known == key, |_| Some((key.clone(), series)))
            .cloned()
            .flatten()
    }

    /// The family `name` of kind `M`, made and registered on its first use; none
    /// (counted) when the name belongs to another kind or another metric, or is new
    /// past the cap on names.
    fn family<M: FacadeMetric>(&self, name: &str) -> Result<Family<LabelPairs, M>, NoFamily> {
        let mut names = lock(&self.names);
        if let Some(family) = names.families.get(name) {
            let found = family.downcast_ref::<Family<LabelPairs, M>>().cloned();
            if found.is_none() {
                self.errors.count(Reason::KindConflict, name, true);
            }
            return found.ok_or(NoFamily::Taken);
        }
        if !names.admits(name, self.max_names, &self.errors) {
            return Err(NoFamily::Capped);
        }
        let description = names.descriptions.get(name).cloned();
        let (help, unit) = match description {
            Some(Description { unit, help }) => (help, unit.and_then(prometheus_unit)),
            None => (UNDESCRIBED.to_string(), None),
        };
        let registered = self
            .registry
            .add_provider_if_absent(name, Provider::bound(help, unit, M::provider(self, name)))
            .and_then(|()| self.registry.get::<Family<LabelPairs, M>>(name));
        match registered {
            Ok(family) => {
                names.add_family(name, Box::new(family.clone()));
                Ok(family)
            }
            Err(error) => {
                tracing::debug!(target: LOG_TARGET, %error, "facade family not registered");
                self.errors.count(Reason::NameTaken, name, true);
                Err(NoFamily::Taken)
            }
        }
    }

    fn describe(&self, name: String, unit: Option<Unit>, help: SharedString) {
        let description = Description {
            unit,
            help: help.to_string(),
        };
        let mut names = lock(&self.names);
        if !names.admits(&name, self.max_names, &self.errors) {
            return;
        }
        let reason = match names.descriptions.get(&name) {
            Some(existing) if *existing == description => return,
            Some(_) => Reason::DescriptionConflict,
            None => {
                let late = names.families.contains_key(&name);
                names.add_description(&name, description);
                if !late {
                    return;
                }
                Reason::LateDescription
            }
        };
        drop(names);
        self.errors.count(reason, &name, true);
    }
}

/// The unit as a name suffix, as metrics-exporter-prometheus's recommended naming
/// writes it: none for a count, `ratio` for a percentage.
fn prometheus_unit(unit: Unit) -> Option<PrometheusUnit> {
    match unit {
        Unit::Count => None,
        Unit::Seconds => Some(PrometheusUnit::Seconds),
        Unit::Bytes => Some(PrometheusUnit::Bytes),
        Unit::Percent => Some(PrometheusUnit::Other("ratio".into())),
        other => Some(PrometheusUnit::Other(other.as_str().into())),
    }
}

/// `matcher` with its text sanitized as metric names are, so it is matched against
/// the names the scrape shows.
fn sanitized(matcher: Matcher) -> Matcher {
    let sanitize = |text: String| match text.is_empty() {
        true => text,
        false => names::metric_name(&text),
    };
    match matcher {
        Matcher::Full(full) => Matcher::Full(sanitize(full)),
        Matcher::Prefix(prefix) => Matcher::Prefix(sanitize(prefix)),
        Matcher::Suffix(suffix) => Matcher::Suffix(sanitize(suffix)),
    }
}

fn lock(names: &Mutex<Names>) -> MutexGuard<'_, Names> {
    // Each change to the maps is one insert, so a panic elsewhere cannot leave them torn.
    names.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder for FacadeRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        let name = names::counter_name(names::metric_name(key.as_str()));
        self.inner.describe(name, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .describe(names::metric_name(key.as_str()), unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .describe(names::metric_name(key.as_str()), unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> ::metrics::Counter {
        let inner = &*self.inner;
        inner
            .series(&inner.counters, key, |counter, _| CounterHandle(counter))
            .map_or_else(::metrics::Counter::noop, ::metrics::Counter::from_arc)
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> ::metrics::Gauge {
        let inner = &*self.inner;
        inner
            .series(&inner.gauges, key, |gauge, _| GaugeHandle(gauge))
            .map_or_else(::metrics::Gauge::noop, ::metrics::Gauge::from_arc)
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> ::metrics::Histogram {
        let inner = &*self.inner;
        inner
            .series(&inner.histograms, key, |histogram, name| HistogramHandle {
                histogram,
                name: name.to_string(),
                errors: inner.errors.clone(),
                warned: AtomicBool::new(false),
            })
            .map_or_else(::metrics::Histogram::noop, ::metrics::Histogram::from_arc)
    }
}

impl fmt::Debug for FacadeRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = lock(&self.inner.names);
        f.debug_struct("FacadeRecorder")
            .field("families", &names.families.len())
            .field("max_series", &self.inner.max_series)
            .field("gauge_mode", &self.inner.gauge_mode)
            .finish()
    }
}
