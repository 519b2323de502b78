//! How a histogram keeps its buckets: classic, native, or both; the layout of the
//! adapters' duration histograms and of each facade histogram.

use crate::metrics::{Buckets, Histogram, NativeBuckets};

/// The bucket layout of a histogram family: the default duration histograms (HTTP
/// request duration, time to the headers, gRPC handling time), or a facade histogram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct HistogramLayout {
    /// Whether the family's classic buckets are kept.
    classic: bool,
    native: Option<NativeBuckets>,
}

impl Default for HistogramLayout {
    /// Classic buckets only.
    fn default() -> Self {
        Self {
            classic: true,
            native: None,
        }
    }
}

impl HistogramLayout {
    /// Native buckets of `native`, with classic buckets beside them if `classic` says
    /// so (by default, not); without native buckets, classic ones, which `classic`
    /// cannot turn off: `None` then.
    pub(crate) fn new(classic: Option<bool>, native: Option<NativeBuckets>) -> Option<Self> {
        match (classic, native) {
            (Some(false), None) => None,
            (classic, Some(native)) => Some(Self::native(native, classic.unwrap_or(false))),
            (_, None) => Some(Self::default()),
        }
    }

    /// Native buckets of `native`, with classic buckets beside them if `classic`.
    pub(crate) fn native(native: NativeBuckets, classic: bool) -> Self {
        Self {
            classic,
            native: Some(native),
        }
    }

    /// A histogram of this layout, with `classic` as its classic buckets if it keeps
    /// them.
    pub(crate) fn histogram(&self, classic: &Buckets) -> Histogram {
        match (self.classic, self.native) {
            (true, Some(native)) => Histogram::classic_and_native(classic.clone(), native),
            (false, Some(native)) => Histogram::native(native),
            (_, None) => Histogram::new(classic.clone()),
        }
    }

    /// Whether `histogram` has this layout, with `classic` as the classic buckets.
    pub(crate) fn made(&self, histogram: &Histogram, classic: &Buckets) -> bool {
        let bounds: &[f64] = if self.classic { classic.bounds() } else { &[] };
        histogram.buckets().bounds() == bounds && histogram.native_buckets() == self.native.as_ref()
    }
}
