//! An insert-only hash table whose lookups take no lock and write no shared memory.
//!
//! Series are created rarely (once per label set) and looked up on every request, so
//! the table is built for that ratio: readers probe an open-addressed array of
//! `OnceLock` slots with plain atomic loads; writers serialise on a mutex, and when
//! the array passes half full they publish a larger copy. Older arrays stay alive
//! until the table is dropped, so a reader that still holds one probes valid memory
//! and at worst misses an entry, which sends it to the (locked) insert path where the
//! entry is found. Entries are never removed: the families that use the table cap
//! their size, which bounds the memory.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::hash::FastHashBuilder;

/// Slots in the first array; each further array doubles it.
const FIRST_LEVEL_SLOTS: usize = 8;
/// Enough doublings for any table that fits in memory.
const MAX_LEVELS: usize = 40;

struct Entry<K, V> {
    hash: u64,
    key: K,
    value: V,
}

type Level<K, V> = Box<[OnceLock<Entry<K, V>>]>;

pub(crate) struct Table<K, V> {
    hasher: FastHashBuilder,
    levels: [OnceLock<Level<K, V>>; MAX_LEVELS],
    current: AtomicUsize,
    /// Number of entries; held while inserting or growing.
    writer: Mutex<usize>,
}

impl<K: Clone, V: Clone> Table<K, V> {
    pub(crate) fn new() -> Self {
        let levels: [OnceLock<Level<K, V>>; MAX_LEVELS] = std::array::from_fn(|_| OnceLock::new());
        let _ = levels[0].set(empty_level(FIRST_LEVEL_SLOTS));
        Self {
            hasher: FastHashBuilder::default(),
            levels,
            current: AtomicUsize::new(0),
            writer: Mutex::new(0),
        }
    }

    /// The hash of `key` under this table's (randomly seeded) hasher.
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Finds the entry with this hash for which `matches` holds.
    pub(crate) fn find(&self, hash: u64, matches: impl Fn(&K) -> bool) -> Option<&V> {
        probe(self.current_level(), hash, &matches)
    }

    /// Finds the entry, or inserts the one `make` returns. `make` receives the number
    /// of entries and may decline (return `None`), for example past a cardinality cap.
    pub(crate) fn find_or_insert(
        &self,
        hash: u64,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce(usize) -> Option<(K, V)>,
    ) -> Option<&V> {
        if let Some(found) = self.find(hash, &matches) {
            return Some(found);
        }
        let mut len = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut index = self.current.load(Ordering::Acquire);
        let mut level = self.level(index);
        if let Some(found) = probe(level, hash, &matches) {
            return Some(found);
        }
        let (key, value) = make(*len)?;
        if (*len + 1) * 2 > level.len() && index + 1 < MAX_LEVELS {
            let grown = empty_level(level.len() * 2);
            for entry in level.iter().filter_map(OnceLock::get) {
                place(
                    &grown,
                    Entry {
                        hash: entry.hash,
                        key: entry.key.clone(),
                        value: entry.value.clone(),
                    },
                );
            }
            index += 1;
            let _ = self.levels[index].set(grown);
            self.current.store(index, Ordering::Release);
            level = self.level(index);
        }
        *len += 1;
        Some(place(level, Entry { hash, key, value }))
    }

    /// Every entry, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.current_level()
            .iter()
            .filter_map(OnceLock::get)
            .map(|entry| (&entry.key, &entry.value))
    }

    fn current_level(&self) -> &[OnceLock<Entry<K, V>>] {
        self.level(self.current.load(Ordering::Acquire))
    }

    fn level(&self, index: usize) -> &[OnceLock<Entry<K, V>>] {
        // `current` is stored only after its level is set, so the level is present.
        self.levels[index].get().map_or(&[], |level| &level[..])
    }
}

fn empty_level<K, V>(slots: usize) -> Level<K, V> {
    (0..slots).map(|_| OnceLock::new()).collect()
}

/// Linear probing from the hash's home slot until a match or an empty slot. The table
/// is never more than half full, so an empty slot ends every probe of a missing key.
fn probe<'a, K, V>(
    level: &'a [OnceLock<Entry<K, V>>],
    hash: u64,
    matches: &impl Fn(&K) -> bool,
) -> Option<&'a V> {
    let mask = level.len().checked_sub(1)?;
    let mut slot = hash as usize & mask;
    for _ in 0..level.len() {
        let entry = level[slot].get()?;
        if entry.hash == hash && matches(&entry.key) {
            return Some(&entry.value);
        }
        slot = (slot + 1) & mask;
    }
    None
}

/// Stores `entry` in the first empty slot of its probe sequence. Only the writer
/// calls it, and the level always has an empty slot.
fn place<K, V>(level: &[OnceLock<Entry<K, V>>], entry: Entry<K, V>) -> &V {
    let mask = level.len() - 1;
    let mut slot = entry.hash as usize & mask;
    loop {
        if level[slot].get().is_none() {
            return &level[slot].get_or_init(|| entry).value;
        }
        slot = (slot + 1) & mask;
    }
}
