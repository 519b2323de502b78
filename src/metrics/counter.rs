//! A monotonically increasing count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A counter: a cheap [`Clone`] handle to one shared atomic count.
///
/// Register it under a name without the `_total` suffix, or with it: the registry
/// strips the suffix because the encoders add it.
///
/// ```
/// use tower_prometheus::metrics::Counter;
///
/// let counter = Counter::default();
/// counter.inc();
/// counter.clone().inc_by(2);
/// assert_eq!(counter.get(), 3);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Counter {
    value: Arc<AtomicU64>,
}

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `amount`.
    pub fn inc_by(&self, amount: u64) {
        self.value.fetch_add(amount, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder
            .encode_counter::<NoLabelSet, _, u64>(&self.get(), None::<&Exemplar<NoLabelSet, u64>>)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
