//! A value that goes up and down.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::series::Bind;
use crate::storage::files::{FileKind, GaugeMode, MappedValue};
use crate::storage::shard::{self, ShardedCells, FRACTIONS, WHOLE};
use crate::storage::Binding;

/// A gauge: a cheap [`Clone`] handle to one shared value, kept per thread so that
/// threads moving it at once do not contend. Whole steps ([`add`](Self::add)) are one
/// atomic add; fractional ones ([`add_f64`](Self::add_f64),
/// [`set_f64`](Self::set_f64)) a compare-and-swap on the bits of an `f64`. The value is
/// exposed as an integer until it has a fraction.
///
/// [`Gauge::set`] clears the other threads' parts and then writes its own: an add by
/// another thread at the same moment is kept or replaced as if it came after or
/// before the set, and of two sets at the same moment the result may combine both.
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
/// in_queue.set_f64(0.75);
/// in_queue.add_f64(0.5);
/// assert_eq!(in_queue.get_f64(), 1.25);
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
            value: GaugeValue::Local(Arc::new(ShardedCells::new(2))),
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
    #[inline]
    pub(crate) fn add_in(&self, shard: usize, delta: i64) {
        match &self.value {
            GaugeValue::Local(value) => value.add(shard, WHOLE, delta as u64),
            GaugeValue::Mapped(value) => {
                value.add(delta as f64);
                self.touch(value);
            }
        }
    }

    /// Adds `delta`, which may be negative or have a fraction.
    pub fn add_f64(&self, delta: f64) {
        match &self.value {
            GaugeValue::Local(value) => value.add_f64(shard::current(), FRACTIONS, delta),
            GaugeValue::Mapped(value) => {
                value.add(delta);
                self.touch(value);
            }
        }
    }

    /// Replaces the value (see the type's docs for sets racing other changes).
    pub fn set(&self, new: i64) {
        match &self.value {
            GaugeValue::Local(value) => value.replace(shard::current(), &[new as u64, 0]),
            GaugeValue::Mapped(value) => {
                value.set(new as f64);
                self.touch(value);
            }
        }
    }

    /// Replaces the value with one that may have a fraction.
    pub fn set_f64(&self, new: f64) {
        match &self.value {
            GaugeValue::Local(value) => value.replace(shard::current(), &[0, new.to_bits()]),
            GaugeValue::Mapped(value) => {
                value.set(new);
                self.touch(value);
            }
        }
    }

    /// The current value, its fraction cut off (of this process, in multi-process
    /// mode).
    pub fn get(&self) -> i64 {
        match &self.value {
            GaugeValue::Local(value) => {
                (value.sum(WHOLE) as i64).wrapping_add(value.sum_f64(FRACTIONS) as i64)
            }
            GaugeValue::Mapped(value) => value.get() as i64,
        }
    }

    /// The current value with its fraction (of this process, in multi-process mode).
    pub fn get_f64(&self) -> f64 {
        match &self.value {
            GaugeValue::Local(value) => value.sum(WHOLE) as i64 as f64 + value.sum_f64(FRACTIONS),
            GaugeValue::Mapped(value) => value.get(),
        }
    }

    /// Whether the value has a fraction, so it is exposed as a float.
    fn has_fraction(&self) -> bool {
        match &self.value {
            GaugeValue::Local(value) => value.sum_f64(FRACTIONS) != 0.0,
            GaugeValue::Mapped(value) => value.get().fract() != 0.0,
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
            .field("value", &self.get_f64())
            .field("mode", &self.mode)
            .finish()
    }
}

impl TypedMetric for Gauge {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for Gauge {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.has_fraction() {
            true => encoder.encode_gauge(&self.get_f64()),
            false => encoder.encode_gauge(&self.get()),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
