//! A histogram with fixed bucket bounds, native (exponential) buckets, or both.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::exemplar::{ExemplarLabels, ExemplarRef, ExemplarSlots, KeptExemplar};
use super::native::{NativeBuckets, NativeCounts};
use super::series::Bind;
use crate::storage::files::key::go_float;
use crate::storage::files::{FileKind, MappedValue};
use crate::storage::shard::{self, ShardedCells};
use crate::storage::Binding;

/// Upper bounds of a histogram's buckets, ascending and finite; the `+Inf` bucket is
/// implicit. Cheap to clone: the histograms of a family share one list.
///
/// ```
/// use tower_prometheus::metrics::Buckets;
///
/// let buckets = Buckets::new([0.1, 0.5, 1.0]).unwrap();
/// assert_eq!(buckets.bounds(), &[0.1, 0.5, 1.0]);
/// assert!(Buckets::new([1.0, 0.5]).is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Buckets {
    bounds: Arc<[f64]>,
}

/// Why a list of bucket bounds was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidBuckets {
    /// A bound is NaN or infinite.
    #[error("bucket bound {0} is not a finite number")]
    NotFinite(f64),
    /// Bounds must strictly increase.
    #[error("bucket bounds must strictly increase, but {next} follows {previous}")]
    NotIncreasing {
        /// The earlier bound.
        previous: f64,
        /// The bound that does not exceed it.
        next: f64,
    },
    /// A generator was asked for something that makes no buckets.
    #[error("invalid bucket generator: {0}")]
    Generator(&'static str),
}

impl Buckets {
    /// Buckets with these upper bounds.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Result<Self, InvalidBuckets> {
        let bounds: Arc<[f64]> = bounds.into_iter().collect();
        for bound in bounds.iter() {
            if !bound.is_finite() {
                return Err(InvalidBuckets::NotFinite(*bound));
            }
        }
        for pair in bounds.windows(2) {
            if pair[1] <= pair[0] {
                return Err(InvalidBuckets::NotIncreasing {
                    previous: pair[0],
                    next: pair[1],
                });
            }
        }
        Ok(Self { bounds })
    }

    /// `count` bounds starting at `start`, each `factor` times the one before.
    pub fn exponential(start: f64, factor: f64, count: usize) -> Result<Self, InvalidBuckets> {
        if start <= 0.0 || factor <= 1.0 || count == 0 {
            return Err(InvalidBuckets::Generator(
                "exponential buckets need start > 0, factor > 1 and count > 0",
            ));
        }
        Self::new(std::iter::successors(Some(start), |b| Some(b * factor)).take(count))
    }

    /// `count` bounds starting at `start`, each `width` above the one before.
    pub fn linear(start: f64, width: f64, count: usize) -> Result<Self, InvalidBuckets> {
        if width <= 0.0 || count == 0 {
            return Err(InvalidBuckets::Generator(
                "linear buckets need width > 0 and count > 0",
            ));
        }
        Self::new((0..count).map(|i| start + width * i as f64))
    }

    /// The bounds OpenTelemetry recommends for `http.server.request.duration`, in
    /// seconds: 5 ms to 10 s in 14 buckets.
    pub fn http_duration() -> Self {
        Self {
            bounds: Arc::new([
                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            ]),
        }
    }

    /// The Prometheus client libraries' default bounds, in seconds: 5 ms to 10 s in
    /// 11 buckets (Go's `prometheus.DefBuckets`, which go-grpc-prometheus uses).
    pub fn prometheus_default() -> Self {
        Self {
            bounds: Arc::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        }
    }

    /// Bounds for body sizes, in bytes: powers of 4 from 64 B to 64 MiB, in 11
    /// buckets (OpenTelemetry names no default for `http.server.request.body.size`).
    /// The smallest sits above an empty body, the largest above most uploads.
    pub fn body_size() -> Self {
        Self {
            bounds: (0..11).map(|i| f64::from(64u32 << (2 * i))).collect(),
        }
    }

    /// No bounds: the `+Inf` bucket alone.
    fn none() -> Self {
        Self {
            bounds: Arc::new([]),
        }
    }

    /// The upper bounds, without `+Inf`.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Index of the bucket `value` falls in; `bounds().len()` is `+Inf`, which also
    /// takes NaN.
    #[inline]
    fn index_of(&self, value: f64) -> usize {
        let bounds = &*self.bounds;
        // As Go's client does: a scan for short lists, where most observations stop
        // at one of the first bounds with a predictable branch; a binary search for long ones.
        if bounds.len() <= LINEAR_SEARCH_MAX {
            bounds
                .iter()
                .position(|bound| value <= *bound)
                .unwrap_or(bounds.len())
        } else if value.is_nan() {
            bounds.len()
        } else {
            bounds.partition_point(|bound| *bound < value)
        }
    }
}

/// Longest bucket list searched linearly.
const LINEAR_SEARCH_MAX: usize = 32;

/// A histogram: a cheap [`Clone`] handle to shared atomic bucket counts and sum.
///
/// Recording is two atomic operations on memory no other series shares; with native
/// buckets ([`Histogram::native`], [`Histogram::classic_and_native`]) one more, on the
/// value's native bucket, which every thread recording into the series shares. No
/// lock, and no allocation once the value's chunk of 64 native buckets exists (see
/// [`NativeBuckets`]).
///
/// In multi-process mode the values live in Python prometheus_client's files, which
/// have no native buckets: there a histogram keeps its classic buckets only (a
/// native-only one, its count, its sum and the `+Inf` bucket), and serves no native
/// buckets.
///
/// ```
/// use tower_prometheus::metrics::{Buckets, Histogram};
///
/// let latency = Histogram::new(Buckets::new([0.1, 1.0]).unwrap());
/// latency.observe(0.05);
/// latency.observe(3.0);
/// assert_eq!(latency.count(), 2);
/// assert_eq!(latency.sum(), 3.05);
/// ```
#[derive(Clone)]
pub struct Histogram {
    state: Arc<HistogramState>,
}

struct HistogramState {
    buckets: Buckets,
    values: HistogramValues,
    /// Native buckets, kept in this process only.
    native: Option<NativeCounts>,
    /// The latest exemplar of each classic bucket, kept in this process only.
    exemplars: Option<ExemplarSlots>,
}

enum HistogramValues {
    /// One count per bound plus `+Inf` (not cumulative), then the sum's `f64` bits.
    Local(ShardedCells),
    /// The `_bucket` entries (one per bound plus `+Inf`, not cumulative, as Python
    /// stores them) and the `_sum` entry.
    Mapped {
        counts: Box<[MappedValue]>,
        sum: MappedValue,
    },
}

impl Histogram {
    /// A histogram with these buckets.
    pub fn new(buckets: Buckets) -> Self {
        Self::with_layout(buckets, None)
    }

    /// A histogram with native buckets only: the classic side is the `+Inf` bucket
    /// alone, so text and OpenMetrics scrapes still show its count and sum, and a
    /// protobuf scrape carries the native buckets.
    ///
    /// ```
    /// use tower_prometheus::metrics::{Histogram, NativeBuckets};
    ///
    /// let latency = Histogram::native(NativeBuckets::default());
    /// latency.observe(0.012);
    /// assert_eq!(latency.count(), 1);
    /// assert!(latency.buckets().bounds().is_empty());
    /// ```
    pub fn native(config: NativeBuckets) -> Self {
        Self::with_layout(Buckets::none(), Some(config))
    }

    /// A histogram with these classic buckets and native buckets beside them: text
    /// and OpenMetrics scrapes show the classic ones, a protobuf scrape both.
    ///
    /// ```
    /// use tower_prometheus::metrics::{Buckets, Histogram, NativeBuckets};
    ///
    /// let sizes = Histogram::classic_and_native(
    ///     Buckets::new([100.0, 1000.0]).unwrap(),
    ///     NativeBuckets::new(2).unwrap(),
    /// );
    /// sizes.observe(640.0);
    /// assert_eq!(sizes.buckets().bounds(), &[100.0, 1000.0]);
    /// assert_eq!(sizes.native_buckets().map(|n| n.schema()), Some(2));
    /// ```
    pub fn classic_and_native(buckets: Buckets, config: NativeBuckets) -> Self {
        Self::with_layout(buckets, Some(config))
    }

    fn with_layout(buckets: Buckets, native: Option<NativeBuckets>) -> Self {
        match Binding::claim() {
            Some(binding) => Self::bind(buckets, &binding, &[]),
            None => Self::local(buckets, native),
        }
    }

    fn local(buckets: Buckets, native: Option<NativeBuckets>) -> Self {
        let cells = ShardedCells::new(buckets.bounds.len() + 2);
        let exemplars = ExemplarSlots::new(buckets.bounds.len() + 1);
        Self::with_values(
            buckets,
            HistogramValues::Local(cells),
            native.map(NativeCounts::new),
            Some(exemplars),
        )
    }

    fn bind(buckets: Buckets, binding: &Binding, labels: &[(String, String)]) -> Self {
        let bucket = |bound: f64| {
            let mut with_le = labels.to_vec();
            with_le.push(("le".to_string(), go_float(bound)));
            binding.value(FileKind::Histogram, "_bucket", &with_le)
        };
        let counts: Box<[MappedValue]> = buckets
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .map(bucket)
            .collect();
        let sum = binding.value(FileKind::Histogram, "_sum", labels);
        Self::with_values(buckets, HistogramValues::Mapped { counts, sum }, None, None)
    }

    fn with_values(
        buckets: Buckets,
        values: HistogramValues,
        native: Option<NativeCounts>,
        exemplars: Option<ExemplarSlots>,
    ) -> Self {
        Self {
            state: Arc::new(HistogramState {
                buckets,
                values,
                native,
                exemplars,
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        self.observe_in(shard::current(), value);
    }

    /// Records one observation in shard `shard` (the caller's, looked up once per
    /// request).
    #[inline]
    pub(crate) fn observe_in(&self, shard: usize, value: f64) {
        self.observe_with_exemplar_in(shard, value, None);
    }

    /// Records one observation, and keeps `exemplar` as the latest exemplar of the
    /// bucket it falls in (served in OpenMetrics and protobuf scrapes). In
    /// multi-process mode the observation is recorded and the exemplar dropped: Python
    /// prometheus_client's files have no place for exemplars.
    ///
    /// ```
    /// use tower_prometheus::metrics::{Buckets, ExemplarLabels, Histogram};
    ///
    /// let latency = Histogram::new(Buckets::new([0.1, 1.0]).unwrap());
    /// let trace = ExemplarLabels::new([("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]);
    /// latency.observe_with_exemplar(0.05, &trace.unwrap());
    /// assert_eq!(latency.count(), 1);
    /// ```
    pub fn observe_with_exemplar(&self, value: f64, exemplar: &ExemplarLabels) {
        let exemplar = KeptExemplar::Labels(*exemplar);
        self.observe_with_exemplar_in(shard::current(), value, Some(ExemplarRef::now(&exemplar)));
    }

    /// Records one observation in shard `shard`, with its exemplar if it has one.
    #[inline]
    pub(crate) fn observe_with_exemplar_in(
        &self,
        shard: usize,
        value: f64,
        exemplar: Option<ExemplarRef<'_>>,
    ) {
        let state = &*self.state;
        // Found once: the bucket counted is the bucket whose exemplar is kept.
        let bucket = state.buckets.index_of(value);
        if let Some(native) = &state.native {
            native.observe(value);
        }
        match &state.values {
            HistogramValues::Local(cells) => {
                cells.add(shard, bucket, 1);
                cells.add_f64(shard, state.buckets.bounds.len() + 1, value);
            }
            HistogramValues::Mapped { counts, sum } => {
                if let Some(count) = counts.get(bucket) {
                    count.add(1.0);
                }
                sum.add(value);
            }
        }
        if let (Some(labels), Some(slots)) = (exemplar, &state.exemplars) {
            slots.offer(bucket, labels, value);
        }
    }

    /// Counts per bucket (not cumulative), the last one `+Inf`.
    fn bucket_counts(&self) -> Vec<u64> {
        match &self.state.values {
            HistogramValues::Local(cells) => (0..=self.state.buckets.bounds.len())
                .map(|i| cells.sum(i))
                .collect(),
            HistogramValues::Mapped { counts, .. } => {
                counts.iter().map(|c| c.get() as u64).collect()
            }
        }
    }

    /// Number of observations (of this process, in multi-process mode).
    pub fn count(&self) -> u64 {
        self.bucket_counts().iter().sum()
    }

    /// Sum of the observations (of this process, in multi-process mode).
    pub fn sum(&self) -> f64 {
        match &self.state.values {
            HistogramValues::Local(cells) => cells.sum_f64(self.state.buckets.bounds.len() + 1),
            HistogramValues::Mapped { sum, .. } => sum.get(),
        }
    }

    /// The classic bucket bounds (none for a [native-only](Self::native) histogram).
    pub fn buckets(&self) -> &Buckets {
        &self.state.buckets
    }

    /// The native bucket configuration, if the histogram keeps native buckets (never in
    /// multi-process mode).
    pub fn native_buckets(&self) -> Option<&NativeBuckets> {
        self.state.native.as_ref().map(NativeCounts::config)
    }

    /// Bytes the native buckets have allocated (0 without them): they grow by one
    /// chunk of 64 counters (512 bytes) per range of 64 neighbouring buckets touched.
    pub fn native_allocated_bytes(&self) -> usize {
        self.state
            .native
            .as_ref()
            .map_or(0, NativeCounts::allocated)
    }
}

impl Bind for Histogram {
    fn bind_like(&self, binding: &Binding, labels: &[(String, String)]) -> Self {
        Self::bind(self.state.buckets.clone(), binding, labels)
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.state.buckets.bounds())
            .field("native", &self.native_buckets())
            .field("count", &self.count())
            .field("sum", &self.sum())
            .finish()
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        // Counts are read once, so the buckets and `_count` agree with each other.
        let mut buckets: Vec<(f64, u64)> = self
            .state
            .buckets
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.bucket_counts())
            .collect();
        let count: u64 = buckets.iter().map(|(_, c)| c).sum();
        let exemplars = self
            .state
            .exemplars
            .as_ref()
            .map(ExemplarSlots::exemplars)
            .filter(|exemplars| !exemplars.is_empty());
        let Some(native) = &self.state.native else {
            return encoder.encode_histogram(self.sum(), count, &buckets, exemplars.as_ref());
        };
        let snapshot = native.snapshot();
        // The native buckets are read after the classic ones, and may hold
        // observations these missed: the count covers both, as Prometheus requires.
        let count = count.max(snapshot.count());
        let below: u64 = buckets.iter().rev().skip(1).map(|(_, c)| c).sum();
        if let Some((_, inf)) = buckets.last_mut() {
            *inf = count - below;
        }
        let sides = snapshot.sides();
        encoder.encode_histogram_with_native(
            self.sum(),
            count,
            &buckets,
            exemplars.as_ref(),
            snapshot.encoded(&sides),
        )
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    /// prometheus-client writes the exemplars the histogram keeps, each on its bucket,
    /// in OpenMetrics text and never in the Prometheus text format.
    #[test]
    fn exemplars_are_encoded_on_their_buckets() {
        use prometheus_client::encoding::{prometheus_text, text};
        let histogram = Histogram::new(Buckets::new([0.1, 1.0]).expect("valid"));
        let trace = ExemplarLabels::new([("trace_id", "abc"), ("span_id", "d\"e")]).expect("valid");
        let trace = KeptExemplar::Labels(trace);
        histogram.observe_with_exemplar_in(0, 0.5, Some(ExemplarRef::now(&trace)));
        histogram.observe_with_exemplar_in(0, 0.05, None);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("latency", "Latency.", histogram);
        let mut body = String::new();
        text::encode(&mut body, &registry).expect("encodes");
        let lines: Vec<&str> = body.lines().filter(|l| l.contains("_bucket")).collect();
        assert_eq!(lines[0], "latency_bucket{le=\"0.1\"} 1");
        let (sample, exemplar) = lines[1].split_once(" # ").expect("an exemplar");
        assert_eq!(sample, "latency_bucket{le=\"1.0\"} 2");
        let (labels, rest) = exemplar.split_once("} ").expect("labels");
        assert_eq!(labels, "{trace_id=\"abc\",span_id=\"d\\\"e\"");
        let (value, at) = rest.split_once(' ').expect("value and time");
        assert_eq!(value, "0.5");
        let at: f64 = at.parse().expect("a timestamp");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970");
        assert!((now.as_secs_f64() - at).abs() < 60.0, "{at}");
        assert_eq!(lines[2], "latency_bucket{le=\"+Inf\"} 2");
        let mut plain = String::new();
        prometheus_text::encode(&mut plain, &registry).expect("encodes");
        assert!(
            !plain.contains('#') || !plain.contains("trace_id"),
            "{plain}"
        );
    }

    /// The bucket of each value, found by a scan (short lists) or a binary search
    /// (long ones), against the definition: the first bound at or above the value.
    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_is_not_below_them() {
        for count in [1, 14, LINEAR_SEARCH_MAX, LINEAR_SEARCH_MAX + 1, 100] {
            let buckets = Buckets::linear(1.0, 1.0, count).expect("valid buckets");
            let values = (0..=2 * count + 2).map(|half| half as f64 / 2.0);
            for value in values.chain([-1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN]) {
                let expected = buckets
                    .bounds()
                    .iter()
                    .filter(|bound| **bound < value || value.is_nan())
                    .count();
                assert_eq!(
                    buckets.index_of(value),
                    expected,
                    "{value} in {count} buckets"
                );
            }
        }
    }
}
