//! A histogram with fixed bucket bounds.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

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

    /// The upper bounds, without `+Inf`.
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }
}

/// A histogram: a cheap [`Clone`] handle to shared atomic bucket counts and sum.
///
/// Recording is two atomic operations on memory no other series shares.
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
    /// One count per bound plus `+Inf`, not cumulative.
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl Histogram {
    /// A histogram with these buckets.
    pub fn new(buckets: Buckets) -> Self {
        let counts = (0..=buckets.bounds.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            state: Arc::new(HistogramState {
                buckets,
                counts,
                sum_bits: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        let state = &*self.state;
        let bucket = if value.is_nan() {
            state.buckets.bounds.len()
        } else {
            state.buckets.bounds.partition_point(|bound| *bound < value)
        };
        if let Some(count) = state.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let mut current = state.sum_bits.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + value).to_bits();
            match state.sum_bits.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.state
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.state.sum_bits.load(Ordering::Relaxed))
    }

    /// The bucket bounds.
    pub fn buckets(&self) -> &Buckets {
        &self.state.buckets
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.state.buckets.bounds())
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
        let state = &*self.state;
        // Counts are read once, so the buckets and `_count` agree with each other.
        let buckets: Vec<(f64, u64)> = state
            .buckets
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(state.counts.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
