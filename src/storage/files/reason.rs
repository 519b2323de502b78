//! Reasons something failed, each a value of a `reason` label, counted per reason.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

/// A failure with a fixed set of reasons, exposed as the values of a `reason` label.
pub(crate) trait Reason: Copy + Eq + 'static {
    /// The name of the label.
    const LABEL: &'static str = "reason";

    /// Every reason, in the order they are exposed.
    const ALL: &'static [Self];

    /// The value of the `reason` label.
    fn as_str(self) -> &'static str;
}

/// A count per reason.
pub(crate) struct Tally<R> {
    /// By the reason's place in [`Reason::ALL`].
    counts: Box<[AtomicU64]>,
    _reason: PhantomData<R>,
}

impl<R: Reason> Default for Tally<R> {
    fn default() -> Self {
        Self {
            counts: R::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            _reason: PhantomData,
        }
    }
}

impl<R: Reason> Tally<R> {
    /// Counts one `reason`; returns the count before.
    pub(crate) fn count(&self, reason: R) -> u64 {
        R::ALL
            .iter()
            .position(|r| *r == reason)
            .and_then(|index| self.counts.get(index))
            .map_or(0, |count| count.fetch_add(1, Ordering::Relaxed))
    }

    /// The count of `reason`.
    pub(crate) fn get(&self, reason: R) -> u64 {
        self.iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, count)| count)
    }

    /// Every reason with its count, zeros included.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (R, u64)> + '_ {
        R::ALL
            .iter()
            .zip(&*self.counts)
            .map(|(reason, count)| (*reason, count.load(Ordering::Relaxed)))
    }
}
