//! A monotonically increasing count.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::series::Bind;
use super::shard::{self, ShardedCells};
use crate::multiprocess::{Binding, FileKind, MappedValue};

/// A counter: a cheap [`Clone`] handle to one shared count, kept per thread so that
/// threads counting at once do not contend.
///
/// Register it under a name without the `_total` suffix, or with it: the registry
/// strips the suffix because the encoders add it. In multi-process mode the count
/// lives in this process's `counter_<pid>.db`.
///
/// ```
/// use tower_prometheus::metrics::Counter;
///
/// let counter = Counter::default();
/// counter.inc();
/// counter.clone().inc_by(2);
/// assert_eq!(counter.get(), 3);
/// ```
#[derive(Clone)]
pub struct Counter {
    value: CounterValue,
}

#[derive(Clone)]
enum CounterValue {
    Local(Arc<ShardedCells>),
    Mapped(MappedValue),
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        match Binding::claim() {
            Some(binding) => Self::bind(&binding, &[]),
            None => Self::local(),
        }
    }

    fn bind(binding: &Binding, labels: &[(String, String)]) -> Self {
        Self {
            value: CounterValue::Mapped(binding.value(FileKind::Counter, "_total", labels)),
        }
    }

    fn local() -> Self {
        Self {
            value: CounterValue::Local(Arc::new(ShardedCells::new(1))),
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `amount`.
    pub fn inc_by(&self, amount: u64) {
        self.inc_by_in(shard::current(), amount);
    }

    /// Adds `amount` in shard `shard` (the caller's, looked up once per request).
    pub(crate) fn inc_by_in(&self, shard: usize, amount: u64) {
        match &self.value {
            CounterValue::Local(value) => value.add(shard, 0, amount),
            CounterValue::Mapped(value) => value.add(amount as f64),
        }
    }

    /// The current count (of this process, in multi-process mode).
    pub fn get(&self) -> u64 {
        match &self.value {
            CounterValue::Local(value) => value.sum(0),
            CounterValue::Mapped(value) => value.get() as u64,
        }
    }
}

impl Bind for Counter {
    fn bind_like(&self, binding: &Binding, labels: &[(String, String)]) -> Self {
        Self::bind(binding, labels)
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("value", &self.get())
            .finish()
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
