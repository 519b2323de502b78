//! The handles the `metrics` crate records through: one per series, each an `Arc`
//! around the series' own metric, so a record is the metric's atomic add.

use std::sync::atomic::{AtomicBool, Ordering};

use ::metrics::{CounterFn, GaugeFn, HistogramFn};

use super::errors::{Errors, Reason};
use crate::metrics::{Counter, Gauge, Histogram};

/// Largest magnitude below which every integer is an exact `f64`.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A whole step of a gauge, taken as one atomic add rather than a compare-and-swap.
fn whole(value: f64) -> Option<i64> {
    (value.fract() == 0.0 && value.abs() < EXACT_INTEGERS).then_some(value as i64)
}

/// A counter series.
#[derive(Debug)]
pub(crate) struct CounterHandle(pub(crate) Counter);

impl CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }

    /// Raises the count to `value` if it is below; a counter never goes down. Two
    /// threads raising it at once may both add their difference.
    fn absolute(&self, value: u64) {
        let current = self.0.get();
        if value > current {
            self.0.inc_by(value - current);
        }
    }
}

/// A gauge series.
#[derive(Debug)]
pub(crate) struct GaugeHandle(pub(crate) Gauge);

impl GaugeFn for GaugeHandle {
    fn increment(&self, value: f64) {
        match whole(value) {
            Some(step) => self.0.add(step),
            None => self.0.add_f64(value),
        }
    }

    fn decrement(&self, value: f64) {
        self.increment(-value);
    }

    fn set(&self, value: f64) {
        match whole(value) {
            Some(new) => self.0.set(new),
            None => self.0.set_f64(value),
        }
    }
}

/// A histogram series. A NaN observation would turn its sum into NaN for good, so it
/// is left out and counted in the recorder's errors.
#[derive(Debug)]
pub(crate) struct HistogramHandle {
    pub(crate) histogram: Histogram,
    pub(crate) name: String,
    pub(crate) errors: Errors,
    pub(crate) warned: AtomicBool,
}

impl HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        if value.is_nan() {
            let first = !self.warned.swap(true, Ordering::Relaxed);
            self.errors.count(Reason::NotANumber, &self.name, first);
            return;
        }
        self.histogram.observe(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_take_whole_and_fractional_steps() {
        let gauge = GaugeHandle(Gauge::default());
        gauge.increment(2.0);
        gauge.decrement(0.5);
        assert_eq!(gauge.0.get_f64(), 1.5);
        gauge.set(-4.0);
        assert_eq!(gauge.0.get_f64(), -4.0);
        gauge.set(0.25);
        assert_eq!(gauge.0.get_f64(), 0.25);
        gauge.increment(1e300);
        assert_eq!(gauge.0.get_f64(), 1e300);
    }

    #[test]
    fn an_absolute_counter_value_only_raises_the_count() {
        let counter = CounterHandle(Counter::default());
        counter.absolute(5);
        counter.absolute(3);
        assert_eq!(counter.0.get(), 5);
        counter.increment(2);
        assert_eq!(counter.0.get(), 7);
    }
}
