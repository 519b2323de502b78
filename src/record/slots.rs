//! [`OutcomeSlots`]: the series of a few outcomes, kept at hand beside a series.

use std::sync::OnceLock;

/// Outcomes a series keeps at hand; rarer ones are looked up in their family.
const SLOTS: usize = 8;

/// The series of the first few outcomes (statuses, and what else keys them) a series
/// ended with, so ending a call scans a handful of slots instead of probing a map.
pub(crate) struct OutcomeSlots<O, S>([OnceLock<(O, S)>; SLOTS]);

impl<O, S> Default for OutcomeSlots<O, S> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| OnceLock::new()))
    }
}

impl<O: PartialEq + Copy, S> OutcomeSlots<O, S> {
    /// The series of `outcome` kept in a slot, claiming a free slot for it with the
    /// series `make` returns; `None` when other outcomes hold every slot.
    #[inline]
    pub(crate) fn get(&self, outcome: O, make: impl Fn(O) -> S) -> Option<&S> {
        for slot in &self.0 {
            let (held, series) = slot.get_or_init(|| (outcome, make(outcome)));
            // A slot claimed (perhaps concurrently) by another outcome: try the next.
            if *held == outcome {
                return Some(series);
            }
        }
        None
    }
}
