//! [`SeriesCache`]: label key -> the handles of that key's series, capped.

use std::hash::Hash;
use std::sync::{Arc, OnceLock};

use crate::metrics::shard::PerShard;
use crate::metrics::Table;

/// One copy of a series per shard (see [`PerShard`]): the reference count a call
/// takes and the handles it reads sit on cache lines no other thread writes.
pub(crate) type Shards<S> = Arc<PerShard<S>>;

/// A series' copies, made by `make` from each shard's index.
pub(crate) fn shards<S>(make: impl Fn(usize) -> S) -> Shards<S> {
    Arc::new(PerShard::new(make))
}

/// The series of each key a call resolved to, found with a lock-free probe once it
/// exists. At most `limit` keys get series of their own; past that, one overflow
/// series takes them all, so clients cannot grow memory without bound.
pub(crate) struct SeriesCache<K, S> {
    table: Table<K, Shards<S>>,
    limit: usize,
    overflow: OnceLock<Shards<S>>,
}

impl<K: Clone, S> SeriesCache<K, S> {
    /// An empty cache that gives series of their own to `limit` keys.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            table: Table::new(),
            limit,
            overflow: OnceLock::new(),
        }
    }

    /// The hash of `key`, to find it with.
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.table.hash(key)
    }

    /// The series of the key with this hash for which `matches` holds, if it has one.
    pub(crate) fn find(&self, hash: u64, matches: impl Fn(&K) -> bool) -> Option<&Shards<S>> {
        self.table.find(hash, matches)
    }

    /// The series of the key: found, else made by `create` while the cache is under
    /// its limit, else the overflow series (made by `overflow` the first time).
    pub(crate) fn find_or_create(
        &self,
        hash: u64,
        matches: impl Fn(&K) -> bool,
        create: impl FnOnce() -> (K, Shards<S>),
        overflow: impl FnOnce() -> Shards<S>,
    ) -> &Shards<S> {
        let created = self
            .table
            .find_or_insert(hash, matches, |len| (len < self.limit).then(create));
        created.unwrap_or_else(|| self.overflow(overflow))
    }

    /// The series of a key declared up front, made by `create` whatever the limit.
    pub(crate) fn declare(
        &self,
        hash: u64,
        matches: impl Fn(&K) -> bool,
        create: impl FnOnce() -> (K, Shards<S>),
    ) -> Option<&Shards<S>> {
        self.table.find_or_insert(hash, matches, |_| Some(create()))
    }

    /// The overflow series, made by `make` the first time.
    pub(crate) fn overflow(&self, make: impl FnOnce() -> Shards<S>) -> &Shards<S> {
        self.overflow.get_or_init(make)
    }
}
