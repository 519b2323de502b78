//! A cap on scrapes in flight, so a flood of scrapes cannot pile up encodes. A scrape is
//! in flight until its body has been sent or dropped (the body's buffer holds the
//! permit), so clients that never read cannot pile up bodies either.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts scrapes in flight against a maximum.
#[derive(Debug)]
pub(crate) struct ScrapeSlots {
    max: usize,
    in_flight: AtomicUsize,
}

impl ScrapeSlots {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// A slot for one scrape, or `None` when the maximum is reached.
    pub(crate) fn acquire(self: &Arc<Self>) -> Option<ScrapePermit> {
        let taken = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = ScrapePermit(Arc::clone(self));
        // Past the maximum the permit drops, giving the slot back.
        (taken < self.max).then_some(permit)
    }
}

/// One scrape in flight; gives its slot back when dropped, however the scrape ends.
#[derive(Debug)]
pub(crate) struct ScrapePermit(Arc<ScrapeSlots>);

impl Drop for ScrapePermit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_when_permits_drop() {
        let slots = Arc::new(ScrapeSlots::new(2));
        let first = slots.acquire();
        let second = slots.acquire();
        assert!(first.is_some() && second.is_some());
        assert!(slots.acquire().is_none());
        drop(first);
        assert!(slots.acquire().is_some());
        let unlimited = Arc::new(ScrapeSlots::new(usize::MAX));
        let held: Vec<_> = (0..100).map(|_| unlimited.acquire()).collect();
        assert!(held.iter().all(Option::is_some));
    }
}
