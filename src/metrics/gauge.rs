//! A value that goes up and down.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::series::Bind;
use super::shard::{self, ShardedCells};
use crate::multiprocess::{Binding, FileKind, GaugeMode, MappedValue};

/// A gauge: a cheap [`Clone`] handle to one shared integer, kept per thread so that
/// threads moving it at once do not contend. [`Gauge::set`] adds the difference to the
/// current value: an add by another thread at the same moment is kept, and of two
/// sets at the same moment the result may combine both.
///
/// Its [`GaugeMode`] says how the values of several processes combine in
/// multi-process mode (by default one series per process, as in Python).
///
/// ```
/// use tower_prometheus::metrics::Gauge;
///
/// let in_queue = Gauge::default();
/// in_queue.inc();
/// in_queue.set(7);
/// in_queue.dec();
/// assert_eq!(in_queue.get(), 6);
/// ```
#[derive(Clone)]
pub struct Gauge {
    value: GaugeValue,
    mode: GaugeMode,
}

#[derive(Clone)]
enum GaugeValue {
    Local(Arc<ShardedCells>),
    Mapped(MappedValue),
}

impl Default for Gauge {
    fn default() -> Self {
        Self::with_mode(GaugeMode::default())
    }
}

impl Gauge {
    /// A gauge at zero whose processes combine by `mode` in multi-process mode.
    pub fn with_mode(mode: GaugeMode) -> Self {
        match Binding::claim() {
            Some(binding) => Self::bind_mode(&binding, &[], mode),
            None => Self::local(mode),
        }
    }

    fn local(mode: GaugeMode) -> Self {
        Self {
            value: GaugeValue::Local(Arc::new(ShardedCells::new(1))),
            mode,
        }
    }

    fn bind_mode(binding: &Binding, labels: &[(String, String)], mode: GaugeMode) -> Self {
        Self {
            value: GaugeValue::Mapped(binding.value(FileKind::Gauge(mode), "", labels)),
            mode,
        }
    }

    /// How the processes' values combine in multi-process mode.
    pub fn mode(&self) -> GaugeMode {
        self.mode
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `delta`, which may be negative.
    pub fn add(&self, delta: i64) {
        self.add_in(shard::current(), delta);
    }

    /// Adds `delta` in shard `shard` (the caller's, looked up once per request).
    pub(crate) fn add_in(&self, shard: usize, delta: i64) {
        match &self.value {
            GaugeValue::Local(value) => value.add(shard, 0, delta as u64),
            GaugeValue::Mapped(value) => {
                value.add(delta as f64);
                self.touch(value);
            }
        }
    }

    /// Replaces the value (see the type's docs for sets racing other changes).
    pub fn set(&self, new: i64) {
        match &self.value {
            // Adds the difference, so adds of other threads meanwhile are kept.
            GaugeValue::Local(value) => value.add(
                shard::current(),
                0,
                new.wrapping_sub(value.sum(0) as i64) as u64,
            ),
            GaugeValue::Mapped(value) => {
                value.set(new as f64);
                self.touch(value);
            }
        }
    }

    /// The current value (of this process, in multi-process mode).
    pub fn get(&self) -> i64 {
        match &self.value {
            GaugeValue::Local(value) => value.sum(0) as i64,
            GaugeValue::Mapped(value) => value.get() as i64,
        }
    }

    /// Records when the value changed, for the most-recent modes.
    fn touch(&self, value: &MappedValue) {
        if self.mode.is_most_recent() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |elapsed| elapsed.as_secs_f64());
            value.set_timestamp(now);
        }
    }
}

impl Bind for Gauge {
    fn bind_like(&self, binding: &Binding, labels: &[(String, String)]) -> Self {
        Self::bind_mode(binding, labels, self.mode)
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge")
            .field("value", &self.get())
            .field("mode", &self.mode)
            .finish()
    }
}

impl TypedMetric for Gauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for Gauge {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
