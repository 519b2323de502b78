//! What a metric needs to be a series of a [`Family`](super::Family).

use crate::storage::Binding;

/// Creates a twin of a metric whose values live in the multi-process files.
pub(crate) trait Bind {
    /// A metric configured like `self` (same buckets, same gauge mode), with its values
    /// in the entry of `labels`.
    fn bind_like(&self, binding: &Binding, labels: &[(String, String)]) -> Self;
}

/// A metric that can be a series of a [`Family`](super::Family): this crate's
/// [`Counter`](super::Counter), [`Gauge`](super::Gauge) and [`Histogram`](super::Histogram).
#[allow(private_bounds)]
pub trait SeriesMetric: Bind + Clone + Send + Sync + 'static {}

impl SeriesMetric for super::Counter {}
impl SeriesMetric for super::Gauge {}
impl SeriesMetric for super::Histogram {}
