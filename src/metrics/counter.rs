//! A monotonically increasing count.

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::exemplar::{ExemplarLabels, ExemplarRef, ExemplarSlots, KeptExemplar};
use super::series::Bind;
use crate::storage::files::{FileKind, MappedValue};
use crate::storage::shard::{self, ShardedCells, FRACTIONS, WHOLE};
use crate::storage::Binding;

/// A counter: a cheap [`Clone`] handle to one shared count, kept per thread so that
/// threads counting at once do not contend.
///
/// It counts whole amounts ([`inc_by`](Self::inc_by): one atomic add) and fractional
/// ones ([`inc_by_f64`](Self::inc_by_f64), such as seconds or bytes per unit: a
/// compare-and-swap on the bits of an `f64`); the value is their sum, exposed as an
/// integer until a fraction has been added.
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
/// counter.inc_by_f64(1.5)?;
/// assert_eq!(counter.get_f64(), 4.5);
/// assert!(counter.inc_by_f64(-1.0).is_err());
/// # Ok::<(), tower_prometheus::metrics::InvalidIncrement>(())
/// ```
#[derive(Clone)]
pub struct Counter {
    value: CounterValue,
}

#[derive(Clone)]
enum CounterValue {
    Local(Arc<LocalCount>),
    Mapped(MappedValue),
}

/// A count kept in this process, and its latest exemplar.
struct LocalCount {
    cells: ShardedCells,
    exemplar: ExemplarSlots,
}

impl std::ops::Deref for LocalCount {
    type Target = ShardedCells;

    fn deref(&self) -> &ShardedCells {
        &self.cells
    }
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
            value: CounterValue::Local(Arc::new(LocalCount {
                cells: ShardedCells::new(2),
                exemplar: ExemplarSlots::new(1),
            })),
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
    #[inline]
    pub(crate) fn inc_by_in(&self, shard: usize, amount: u64) {
        match &self.value {
            CounterValue::Local(value) => value.add(shard, WHOLE, amount),
            CounterValue::Mapped(value) => value.add(amount as f64),
        }
    }

    /// Adds `amount`, and keeps `exemplar` as the counter's latest exemplar (served in
    /// OpenMetrics and protobuf scrapes, with `amount` as its value). In multi-process
    /// mode the amount is added and the exemplar dropped, as Python's client does.
    ///
    /// ```
    /// use tower_prometheus::metrics::{Counter, ExemplarLabels};
    ///
    /// let orders = Counter::default();
    /// let trace = ExemplarLabels::new([("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")]);
    /// orders.inc_by_with_exemplar(2, &trace.unwrap());
    /// assert_eq!(orders.get(), 2);
    /// ```
    pub fn inc_by_with_exemplar(&self, amount: u64, exemplar: &ExemplarLabels) {
        let exemplar = KeptExemplar::Labels(*exemplar);
        self.inc_by_with_exemplar_in(shard::current(), amount, Some(ExemplarRef::now(&exemplar)));
    }

    /// Adds `amount` in shard `shard`, with its exemplar if it has one.
    #[inline]
    pub(crate) fn inc_by_with_exemplar_in(
        &self,
        shard: usize,
        amount: u64,
        exemplar: Option<ExemplarRef<'_>>,
    ) {
        self.inc_by_in(shard, amount);
        if let (Some(labels), CounterValue::Local(value)) = (exemplar, &self.value) {
            value.exemplar.offer(0, labels, amount as f64);
        }
    }

    /// Adds `amount`, which may have a fraction; a negative, NaN or infinite amount is
    /// an error and changes nothing.
    pub fn inc_by_f64(&self, amount: f64) -> Result<(), InvalidIncrement> {
        if !(amount.is_finite() && amount >= 0.0) {
            return Err(InvalidIncrement(amount));
        }
        match &self.value {
            CounterValue::Local(value) => value.add_f64(shard::current(), FRACTIONS, amount),
            CounterValue::Mapped(value) => value.add(amount),
        }
        Ok(())
    }

    /// The current count, rounded down (of this process, in multi-process mode).
    pub fn get(&self) -> u64 {
        match &self.value {
            CounterValue::Local(value) => value
                .sum(WHOLE)
                .wrapping_add(value.sum_f64(FRACTIONS) as u64),
            CounterValue::Mapped(value) => value.get() as u64,
        }
    }

    /// The current count with its fraction (of this process, in multi-process mode).
    pub fn get_f64(&self) -> f64 {
        match &self.value {
            CounterValue::Local(value) => value.sum(WHOLE) as f64 + value.sum_f64(FRACTIONS),
            CounterValue::Mapped(value) => value.get(),
        }
    }

    /// Whether the value has a fraction, so it is exposed as a float.
    fn has_fraction(&self) -> bool {
        match &self.value {
            CounterValue::Local(value) => value.sum_f64(FRACTIONS) != 0.0,
            CounterValue::Mapped(value) => value.get().fract() != 0.0,
        }
    }
}

/// A counter increment that is negative, NaN or infinite: a counter only goes up.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("a counter cannot be increased by {0}: the amount must be finite and not negative")]
pub struct InvalidIncrement(pub f64);

impl Bind for Counter {
    fn bind_like(&self, binding: &Binding, labels: &[(String, String)]) -> Self {
        Self::bind(binding, labels)
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter")
            .field("value", &self.get_f64())
            .finish()
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let exemplar = match &self.value {
            CounterValue::Local(value) => value.exemplar.exemplar(0),
            CounterValue::Mapped(_) => None,
        };
        if self.has_fraction() {
            return encoder.encode_counter(&self.get_f64(), exemplar.as_ref());
        }
        encoder.encode_counter(&self.get(), exemplar.as_ref())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
