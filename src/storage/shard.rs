//! Per-thread shards of atomic values, so threads that record into the same series do
//! not write the same cache line.
//!
//! Each thread is given a shard index once; a value is the sum of its shards. Reads
//! (scrapes) add the shards up; writes touch only the writer's shard.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Values per cache line.
const LINE: usize = 8;
/// Most shards a value has, whatever the machine.
const MAX_SHARDS: usize = 16;

/// One cache line of values.
#[repr(align(64))]
#[derive(Default)]
pub(crate) struct Line(pub(crate) [AtomicU64; LINE]);

/// Number of shards: the machine's parallelism as a power of two, at most 16.
pub(crate) fn count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .next_power_of_two()
            .min(MAX_SHARDS)
    })
}

/// The shard of the current thread.
#[inline]
pub(crate) fn current() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        if index.get() == usize::MAX {
            index.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        index.get() & (count() - 1)
    })
}

/// One copy of a value per shard, each in its own allocation, for state that every
/// request clones a handle to: each thread then writes only its own copy's reference
/// count.
///
/// The handles are held inline and aligned to a cache line, because every request
/// reads them: no neighbouring allocation (another thread's, say) may share their
/// line. Every slot is filled; past the machine's shard count, slots repeat copies.
#[repr(align(64))]
pub(crate) struct PerShard<T>([Arc<T>; MAX_SHARDS]);

impl<T> PerShard<T> {
    /// Copies made by `make` from their shard's index.
    pub(crate) fn new(make: impl Fn(usize) -> T) -> Self {
        let copies: Vec<_> = (0..count()).map(|shard| Arc::new(make(shard))).collect();
        Self(std::array::from_fn(|slot| {
            Arc::clone(&copies[slot % copies.len()])
        }))
    }

    /// The current thread's copy.
    #[inline]
    pub(crate) fn current(&self) -> &Arc<T> {
        &self.0[current() % MAX_SHARDS]
    }
}

impl<T> Clone for PerShard<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// Adds `amount` to the `f64` whose bits `cell` holds: one compare-and-swap when no
/// other writer interferes.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, amount: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + amount).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// The cell of a counter's or gauge's value counted in whole steps (one atomic add).
pub(crate) const WHOLE: usize = 0;
/// The cell of the same value's fractional steps, as `f64` bits (a compare-and-swap).
pub(crate) const FRACTIONS: usize = 1;

/// `width` values, each kept as one cell per shard; a shard's cells share lines only
/// with each other.
///
/// Aligned to a cache line: every write reads these fields, and a neighbouring
/// allocation written by another thread (a reference count, say) must not share
/// their line.
#[repr(align(64))]
pub(crate) struct ShardedCells {
    width: usize,
    lines_per_shard: usize,
    /// `count() - 1`, kept here so a write reads no global.
    shard_mask: usize,
    lines: Box<[Line]>,
}

impl ShardedCells {
    pub(crate) fn new(width: usize) -> Self {
        let lines_per_shard = width.div_ceil(LINE).max(1);
        Self {
            width,
            lines_per_shard,
            shard_mask: count() - 1,
            lines: (0..lines_per_shard * count())
                .map(|_| Line::default())
                .collect(),
        }
    }

    #[inline]
    fn cell(&self, shard: usize, index: usize) -> &AtomicU64 {
        &self.lines[shard * self.lines_per_shard + index / LINE].0[index % LINE]
    }

    /// Shard `shard`'s cell of value `index`.
    #[inline]
    fn shard_cell(&self, shard: usize, index: usize) -> &AtomicU64 {
        self.cell(
            shard & self.shard_mask,
            index.min(self.width.saturating_sub(1)),
        )
    }

    /// Adds to value `index` (an integer) in shard `shard`.
    #[inline]
    pub(crate) fn add(&self, shard: usize, index: usize, amount: u64) {
        self.shard_cell(shard, index)
            .fetch_add(amount, Ordering::Relaxed);
    }

    /// Adds to value `index`, kept as the bits of an `f64`, in shard `shard`.
    #[inline]
    pub(crate) fn add_f64(&self, shard: usize, index: usize, amount: f64) {
        add_f64(self.shard_cell(shard, index), amount);
    }

    /// Replaces every value: shard `shard` takes `values` (the bits of each, by
    /// index; zero past its end), every other shard zero. An add to another shard after it cleared that
    /// shard is kept; one before is replaced, as if it came first.
    pub(crate) fn replace(&self, shard: usize, values: &[u64]) {
        let mine = shard & self.shard_mask;
        for other in (0..count()).filter(|other| *other != mine) {
            for index in 0..self.width {
                self.cell(other, index).store(0, Ordering::Relaxed);
            }
        }
        for index in 0..self.width {
            let value = values.get(index).copied().unwrap_or(0);
            self.cell(mine, index).store(value, Ordering::Relaxed);
        }
    }

    /// Value `index` (an integer, wrapping): the sum of its shards.
    pub(crate) fn sum(&self, index: usize) -> u64 {
        (0..count())
            .map(|shard| self.cell(shard, index).load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// Value `index`, kept as `f64` bits: the sum of its shards.
    pub(crate) fn sum_f64(&self, index: usize) -> f64 {
        (0..count())
            .map(|shard| f64::from_bits(self.cell(shard, index).load(Ordering::Relaxed)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_the_sum_of_every_threads_adds() {
        let cells = ShardedCells::new(3);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        cells.add(current(), 0, 1);
                        cells.add(current(), 2, 2);
                        cells.add_f64(current(), 1, 0.5);
                    }
                });
            }
        });
        assert_eq!(cells.sum(0), 8000);
        assert_eq!(cells.sum(2), 16000);
        assert_eq!(cells.sum_f64(1), 4000.0);
        cells.replace(current(), &[5, 0.25f64.to_bits()]);
        assert_eq!(cells.sum(0), 5);
        assert_eq!(cells.sum_f64(1), 0.25);
        assert_eq!(cells.sum(2), 0);
    }
}
