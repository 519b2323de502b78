//! Native (sparse exponential) buckets: their configuration, the bucket of a value, the
//! lock-free counts, and the encoding Prometheus reads from a protobuf scrape.
//!
//! For schema `s`, positive bucket `i` covers `(2^((i-1)/2^s), 2^(i/2^s)]` (negative
//! buckets mirror them), and values within the zero threshold go to the zero bucket.
//!
//! **Storage.** A side (positive or negative) is an index space covering every key a
//! finite value above the zero threshold can have at the configured schema (and `±Inf`),
//! cut into pages of [`PAGE`] chunks of [`CHUNK`] atomic counters. Pages and chunks are
//! allocated on the first observation that needs them, each through a `OnceLock`; from
//! then on recording into that chunk is one relaxed atomic add, with no lock and no
//! allocation. A thread that races another's first touch of the same chunk waits for
//! that one allocation, once per chunk in the histogram's life. The counts are shared
//! by every thread (not kept per shard): shards would multiply the memory by the shard
//! count, and the cost of sharing is measured in `benches/layer.rs`.
//!
//! **Bucket limit.** Recording always uses the configured schema, so the counts only
//! ever grow. At encode time, while more buckets are populated than the limit allows
//! (both sides together) and the schema is above -4, pairs of neighbouring buckets are
//! merged (schema `s` to `s - 1`). The served schema therefore only goes down as more
//! buckets are populated, and goes back up never (counts are never reset). Unlike Go's
//! client, which resets the histogram or widens the zero bucket before it lowers the
//! schema, and then records at the lower schema, nothing here is reset and the zero
//! bucket keeps its threshold.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use prometheus_client::encoding::{NativeHistogram, NativeHistogramBuckets};

/// Lowest schema Prometheus accepts: buckets grow by a factor of 65536.
pub const MIN_SCHEMA: i8 = -4;
/// Highest schema Prometheus accepts: buckets grow by a factor of `2^(1/256)`.
pub const MAX_SCHEMA: i8 = 8;

/// Counters per chunk, the unit of allocation.
const CHUNK: usize = 64;
/// Chunks per page.
const PAGE: usize = 64;

/// The configuration of a histogram's native buckets: the schema (resolution), the
/// zero threshold and the most buckets a scrape carries.
///
/// For schema `s`, bucket bounds grow by a factor of `2^(2^-s)`: schema 3 (the default)
/// by about 9%, so any quantile is known within about 4.4% (half a bucket, relative to
/// the bucket's geometric middle), whatever the range of the values.
///
/// ```
/// use tower_prometheus::metrics::NativeBuckets;
///
/// # fn main() -> Result<(), tower_prometheus::metrics::InvalidNativeBuckets> {
/// let config = NativeBuckets::new(4)?
///     .with_zero_threshold(1e-9)?
///     .with_max_buckets(100)?;
/// assert_eq!(config.schema(), 4);
/// assert!(NativeBuckets::new(9).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeBuckets {
    schema: i8,
    zero_threshold: f64,
    max_buckets: usize,
}

/// Why a native bucket configuration was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidNativeBuckets {
    /// The schema is outside `-4..=8`, the range Prometheus accepts.
    #[error("native histogram schema {0} is outside {MIN_SCHEMA}..={MAX_SCHEMA}")]
    Schema(i8),
    /// The zero threshold is negative, NaN or infinite.
    #[error("native histogram zero threshold {0} is not a finite number >= 0")]
    ZeroThreshold(f64),
    /// A bucket limit of zero leaves no bucket to serve.
    #[error("a native histogram needs a bucket limit of at least 1")]
    NoBuckets,
}

impl NativeBuckets {
    /// The default zero threshold, `2^-128`, Go's client's: a bucket boundary at every
    /// schema.
    pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938735877055719e-39;
    /// The default bucket limit, the one Go's client documents as a sensible choice.
    pub const DEFAULT_MAX_BUCKETS: usize = 160;
    /// The default schema, 3: bounds 9% apart.
    pub const DEFAULT_SCHEMA: i8 = 3;

    /// Native buckets of `schema` (`-4..=8`), with the default zero threshold and
    /// bucket limit.
    pub fn new(schema: i8) -> Result<Self, InvalidNativeBuckets> {
        if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&schema) {
            return Err(InvalidNativeBuckets::Schema(schema));
        }
        Ok(Self {
            schema,
            zero_threshold: Self::DEFAULT_ZERO_THRESHOLD,
            max_buckets: Self::DEFAULT_MAX_BUCKETS,
        })
    }

    /// Values whose magnitude is at most `threshold` count in the zero bucket.
    pub fn with_zero_threshold(self, threshold: f64) -> Result<Self, InvalidNativeBuckets> {
        if !threshold.is_finite() || threshold < 0.0 {
            return Err(InvalidNativeBuckets::ZeroThreshold(threshold));
        }
        Ok(Self {
            zero_threshold: threshold,
            ..self
        })
    }

    /// Most buckets (positive and negative together, the zero bucket aside) a scrape
    /// carries: past it, the served schema is lowered until they fit (or it is -4).
    pub fn with_max_buckets(self, max_buckets: usize) -> Result<Self, InvalidNativeBuckets> {
        if max_buckets == 0 {
            return Err(InvalidNativeBuckets::NoBuckets);
        }
        Ok(Self {
            max_buckets,
            ..self
        })
    }

    /// The schema observations are recorded at.
    pub fn schema(&self) -> i8 {
        self.schema
    }

    /// The zero bucket's threshold.
    pub fn zero_threshold(&self) -> f64 {
        self.zero_threshold
    }

    /// The most buckets a scrape carries.
    pub fn max_buckets(&self) -> usize {
        self.max_buckets
    }
}

impl Default for NativeBuckets {
    /// Schema 3, zero threshold `2^-128`, at most 160 buckets.
    fn default() -> Self {
        Self {
            schema: Self::DEFAULT_SCHEMA,
            zero_threshold: Self::DEFAULT_ZERO_THRESHOLD,
            max_buckets: Self::DEFAULT_MAX_BUCKETS,
        }
    }
}

/// `value` (finite, non-zero) as `frac * 2^exp` with `frac` in `[0.5, 1)`, as C's and
/// Go's `frexp` split it: exact, read from the bits.
fn frexp(value: f64) -> (f64, i32) {
    const MANTISSA_BITS: u32 = 52;
    const EXPONENT_MASK: u64 = 0x7ff << MANTISSA_BITS;
    let (value, shift) = if value.abs() < f64::MIN_POSITIVE {
        // Subnormal: scale into the normal range first, exactly.
        (value * 2f64.powi(64), -64)
    } else {
        (value, 0)
    };
    let bits = value.to_bits();
    let biased = ((bits & EXPONENT_MASK) >> MANTISSA_BITS) as i32;
    // 1022 is the biased exponent of [0.5, 1).
    let frac = f64::from_bits((bits & !EXPONENT_MASK) | (1022 << MANTISSA_BITS));
    (frac, biased - 1022 + shift)
}

/// For each schema above 0, the lower bounds of its buckets within one power of two, as
/// fractions in `[0.5, 1)`: entry `j` of schema `s` is `2^(j/2^s - 1)`, searched as Go's
/// client searches its table. Each is computed directly with `exp2` (the powers of two
/// among them exactly); Go's table was built by repeated products, and some of its
/// entries are a few units in the last place off these, so only a value within a few
/// ulps of an irrational bucket boundary can fall in the neighbouring bucket of Go's.
fn fraction_bounds(schema: i8) -> &'static [f64] {
    static TABLES: OnceLock<Vec<Vec<f64>>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        (0..=MAX_SCHEMA)
            .map(|s| {
                let n = 1u32 << s;
                (0..n)
                    .map(|j| (f64::from(j) / f64::from(n) - 1.0).exp2())
                    .collect()
            })
            .collect()
    });
    &tables[schema.max(0) as usize]
}

/// The key (bucket index) of `magnitude` (positive, not NaN) at `schema`, as Go's
/// client computes it: `±Inf` is one past the key of `f64::MAX`.
fn key(schema: i8, bounds: &[f64], magnitude: f64) -> i32 {
    let infinite = magnitude.is_infinite();
    let (frac, exp) = frexp(if infinite { f64::MAX } else { magnitude });
    let key = if schema > 0 {
        bounds.partition_point(|bound| *bound < frac) as i32 + (exp - 1) * bounds.len() as i32
    } else {
        // An exact power of two is the upper bound of the bucket below.
        let exp = if frac == 0.5 { exp - 1 } else { exp };
        let offset = (1 << -schema) - 1;
        (exp + offset) >> -schema
    };
    key + i32::from(infinite)
}

/// One side's counters: pages of chunks, each allocated when first touched.
struct Side {
    pages: Box<[OnceLock<Box<Page>>]>,
}

/// [`PAGE`] chunks, each allocated when first touched.
type Page = [OnceLock<Box<Chunk>>; PAGE];

struct Chunk([AtomicU64; CHUNK]);

impl Side {
    fn new(keys: usize) -> Self {
        Self {
            pages: (0..keys.div_ceil(CHUNK * PAGE))
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    #[inline]
    fn add(&self, index: usize) {
        let Some(page) = self.pages.get(index / (CHUNK * PAGE)) else {
            return;
        };
        let page = page.get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())));
        let chunk = page[index / CHUNK % PAGE]
            .get_or_init(|| Box::new(Chunk(std::array::from_fn(|_| AtomicU64::new(0)))));
        chunk.0[index % CHUNK].fetch_add(1, Ordering::Relaxed);
    }

    /// The populated counters, `(index, count)` in ascending order.
    fn populated(&self) -> Vec<(usize, u64)> {
        let mut populated = Vec::new();
        for (p, page) in self.pages.iter().enumerate() {
            let Some(page) = page.get() else { continue };
            for (c, chunk) in page.iter().enumerate() {
                let Some(chunk) = chunk.get() else { continue };
                for (i, counter) in chunk.0.iter().enumerate() {
                    let count = counter.load(Ordering::Relaxed);
                    if count > 0 {
                        populated.push(((p * PAGE + c) * CHUNK + i, count));
                    }
                }
            }
        }
        populated
    }

    /// Bytes allocated so far.
    fn allocated(&self) -> usize {
        let pages = self.pages.iter().filter_map(OnceLock::get);
        self.pages.len() * size_of::<OnceLock<Box<Page>>>()
            + pages
                .map(|page| {
                    size_of::<Page>()
                        + page.iter().filter(|c| c.get().is_some()).count() * size_of::<Chunk>()
                })
                .sum::<usize>()
    }
}

/// A histogram's native bucket counts, shared by every thread that records into it.
pub(crate) struct NativeCounts {
    config: NativeBuckets,
    bounds: &'static [f64],
    /// The key of counter 0 of each side: the lowest key a value above the zero
    /// threshold can have.
    first_key: i32,
    zero: AtomicU64,
    positive: Side,
    negative: Side,
}

/// The buckets of one scrape: schema, zero count and `(key, count)` per side, ascending.
pub(crate) struct NativeSnapshot {
    schema: i8,
    zero_threshold: f64,
    zero: u64,
    positive: Vec<(i32, u64)>,
    negative: Vec<(i32, u64)>,
}

impl NativeCounts {
    pub(crate) fn new(config: NativeBuckets) -> Self {
        let bounds = fraction_bounds(config.schema);
        let smallest = config.zero_threshold.max(f64::from_bits(1));
        let first_key = key(config.schema, bounds, smallest);
        let last_key = key(config.schema, bounds, f64::INFINITY);
        let keys = (last_key - first_key + 1) as usize;
        Self {
            config,
            bounds,
            first_key,
            zero: AtomicU64::new(0),
            positive: Side::new(keys),
            negative: Side::new(keys),
        }
    }

    pub(crate) fn config(&self) -> &NativeBuckets {
        &self.config
    }

    /// Counts `value` in its bucket; NaN is in no bucket (only in the count and sum,
    /// as in Go's client).
    #[inline]
    pub(crate) fn observe(&self, value: f64) {
        let threshold = self.config.zero_threshold;
        let side = if value > threshold {
            &self.positive
        } else if value < -threshold {
            &self.negative
        } else {
            if !value.is_nan() {
                self.zero.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let key = key(self.config.schema, self.bounds, value.abs());
        // At or above `first_key` for any value above the threshold.
        side.add(key.saturating_sub(self.first_key).max(0) as usize);
    }

    /// Bytes this histogram's native buckets have allocated.
    pub(crate) fn allocated(&self) -> usize {
        size_of::<Self>() + self.positive.allocated() + self.negative.allocated()
    }

    /// The counts now, at the configured schema, lowered until they fit the limit.
    pub(crate) fn snapshot(&self) -> NativeSnapshot {
        let keyed = |side: &Side| -> Vec<(i32, u64)> {
            side.populated()
                .into_iter()
                .map(|(index, count)| (self.first_key + index as i32, count))
                .collect()
        };
        let mut snapshot = NativeSnapshot {
            schema: self.config.schema,
            zero_threshold: self.config.zero_threshold,
            zero: self.zero.load(Ordering::Relaxed),
            positive: keyed(&self.positive),
            negative: keyed(&self.negative),
        };
        while snapshot.positive.len() + snapshot.negative.len() > self.config.max_buckets
            && snapshot.schema > MIN_SCHEMA
        {
            snapshot.lower_schema();
        }
        snapshot
    }
}

impl fmt::Debug for NativeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeCounts")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Merges neighbouring buckets: key `k` at schema `s` lies in key `ceil(k / 2)` at
/// `s - 1`.
fn halve(buckets: &mut Vec<(i32, u64)>) {
    let mut merged: Vec<(i32, u64)> = Vec::with_capacity(buckets.len());
    for (key, count) in buckets.drain(..) {
        let key = (key + 1) >> 1;
        match merged.last_mut() {
            Some((last, total)) if *last == key => *total += count,
            _ => merged.push((key, count)),
        }
    }
    *buckets = merged;
}

/// Spans and deltas of one side, as the protobuf exposition carries them.
pub(crate) struct EncodedSide {
    spans: Vec<(i32, u32)>,
    deltas: Vec<i64>,
}

impl EncodedSide {
    fn new(buckets: &[(i32, u64)]) -> Self {
        let mut spans: Vec<(i32, u32)> = Vec::new();
        let mut deltas = Vec::with_capacity(buckets.len());
        let mut previous: Option<(i32, u64)> = None;
        for &(key, count) in buckets {
            match previous {
                Some((last, _)) if key == last + 1 => {
                    if let Some(span) = spans.last_mut() {
                        span.1 += 1;
                    }
                }
                // A span's offset is the gap since the previous span's end (the first
                // one's, the key itself).
                Some((last, _)) => spans.push((key - last - 1, 1)),
                None => spans.push((key, 1)),
            }
            let before = previous.map_or(0, |(_, count)| count as i64);
            deltas.push(count as i64 - before);
            previous = Some((key, count));
        }
        Self { spans, deltas }
    }

    fn buckets(&self) -> NativeHistogramBuckets<'_> {
        NativeHistogramBuckets {
            spans: &self.spans,
            deltas: &self.deltas,
        }
    }
}

impl NativeSnapshot {
    fn lower_schema(&mut self) {
        halve(&mut self.positive);
        halve(&mut self.negative);
        self.schema -= 1;
    }

    /// Observations in some bucket (the zero bucket included).
    pub(crate) fn count(&self) -> u64 {
        let side = |buckets: &[(i32, u64)]| buckets.iter().map(|(_, c)| c).sum::<u64>();
        self.zero + side(&self.positive) + side(&self.negative)
    }

    /// Both sides' spans and deltas, to lend to [`Self::encoded`].
    pub(crate) fn sides(&self) -> [EncodedSide; 2] {
        let mut positive = EncodedSide::new(&self.positive);
        if self.positive.is_empty() && self.negative.is_empty() {
            // As Go's client does: a span of no bucket marks a histogram without
            // observations as native, whatever its zero threshold.
            positive.spans.push((0, 0));
        }
        [EncodedSide::new(&self.negative), positive]
    }

    /// The fields prometheus-client's encoders take, borrowing `sides`.
    pub(crate) fn encoded<'a>(&self, sides: &'a [EncodedSide; 2]) -> NativeHistogram<'a> {
        NativeHistogram {
            schema: i32::from(self.schema),
            zero_threshold: self.zero_threshold,
            zero_count: self.zero,
            negative: sides[0].buckets(),
            positive: sides[1].buckets(),
            created: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's table for schema 3, and a few entries of schema 8's: each within a few units
    /// in the last place (Go's products drift towards the end of its table).
    #[test]
    fn fraction_bounds_are_go_clients_table_within_one_ulp() {
        let go_schema_3 = [
            0.5,
            0.5452538663326288,
            0.5946035575013605,
            0.6484197773255048,
            0.7071067811865475,
            0.7711054127039704,
            0.8408964152537144,
            0.9170040432046711,
        ];
        let go_schema_8 = [
            (0, 0.5),
            (1, 0.5013556375251013),
            (3, 0.5040779490592088),
            (127, 0.7051948041086352),
            (128, 0.7071067811865475),
            (255, 0.9972960560854698),
        ];
        let within_ulp = |ours: f64, go: f64| ours.to_bits().abs_diff(go.to_bits()) <= 4;
        let schema_3 = fraction_bounds(3);
        assert_eq!(schema_3.len(), 8);
        for (ours, go) in schema_3.iter().zip(go_schema_3) {
            assert!(within_ulp(*ours, go), "{ours} against Go's {go}");
        }
        let schema_8 = fraction_bounds(8);
        assert_eq!(schema_8.len(), 256);
        for (index, go) in go_schema_8 {
            assert!(within_ulp(schema_8[index], go), "schema 8, entry {index}");
        }
        // Coarser schemas' bounds are finer schemas' bounds.
        for (j, bound) in schema_3.iter().enumerate() {
            assert_eq!(*bound, schema_8[j * 32]);
        }
        assert_eq!(fraction_bounds(0), &[0.5]);
    }

    #[test]
    fn frexp_splits_exactly() {
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(0.5), (0.5, 0));
        assert_eq!(frexp(3.0), (0.75, 2));
        assert_eq!(frexp(f64::MAX).1, 1024);
        assert_eq!(frexp(f64::MIN_POSITIVE), (0.5, -1021));
        assert_eq!(frexp(f64::from_bits(1)), (0.5, -1073));
        assert_eq!(frexp(f64::from_bits(3)), (0.75, -1072));
    }

    /// The bucket of each value, against the definition: bucket `i` covers
    /// `(2^((i-1)/2^s), 2^(i/2^s)]`.
    #[test]
    fn powers_of_two_close_their_bucket_at_every_schema() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            let bounds = fraction_bounds(schema);
            for exp in [-1073, -1022, -100, -1, 0, 1, 2, 7, 100, 1023] {
                // Exactly 2^exp, subnormal or normal.
                let value = if exp >= -1022 {
                    f64::from_bits(((exp + 1023) as u64) << 52)
                } else {
                    f64::from_bits(1 << (exp + 1074))
                };
                // 2^exp is the upper bound of bucket exp * 2^s (for negative schemas,
                // of the bucket it falls in, which is closed at its top).
                let expected = if schema >= 0 {
                    exp << schema
                } else {
                    (exp + (1 << -schema) - 1) >> -schema
                };
                assert_eq!(key(schema, bounds, value), expected, "2^{exp} at {schema}");
                if exp < -1022 {
                    // The next subnormal is a whole bucket or more away.
                    continue;
                }
                let above = f64::from_bits(value.to_bits() + 1);
                let above_expected = if schema >= 0 || exp % (1 << -schema) == 0 {
                    expected + 1
                } else {
                    expected
                };
                assert_eq!(
                    key(schema, bounds, above),
                    above_expected,
                    "just above 2^{exp} at {schema}"
                );
            }
        }
    }

    #[test]
    fn values_between_bounds_fall_in_the_bucket_they_lie_in() {
        for schema in 1..=MAX_SCHEMA {
            let bounds = fraction_bounds(schema);
            let n = 1i32 << schema;
            for value in [1e-9, 0.001, 0.0123, 0.3, 1.7, 42.0, 1e6] {
                let k = key(schema, bounds, value);
                let lower = (f64::from(k - 1) / f64::from(n)).exp2();
                let upper = (f64::from(k) / f64::from(n)).exp2();
                // The table's bounds and exp2's may differ in the last bit: allow that.
                let tolerance = 1.0 + 4.0 * f64::EPSILON;
                assert!(
                    lower < value * tolerance && value <= upper * tolerance,
                    "{value} in bucket {k} ({lower}, {upper}] at schema {schema}"
                );
            }
        }
        // A table entry itself is the top of its bucket: 2^(1/8) at schema 3.
        let bounds = fraction_bounds(3);
        assert_eq!(key(3, bounds, 2.0 * bounds[1]), 1);
        assert_eq!(
            key(3, bounds, f64::from_bits((2.0 * bounds[1]).to_bits() + 1)),
            2
        );
    }

    #[test]
    fn infinity_is_one_past_the_largest_finite_key() {
        for schema in MIN_SCHEMA..=MAX_SCHEMA {
            let bounds = fraction_bounds(schema);
            assert_eq!(
                key(schema, bounds, f64::INFINITY),
                key(schema, bounds, f64::MAX) + 1
            );
        }
    }

    #[test]
    fn observations_go_to_their_side_or_the_zero_bucket() {
        let config = NativeBuckets::new(0)
            .unwrap()
            .with_zero_threshold(0.5)
            .unwrap();
        let counts = NativeCounts::new(config);
        for value in [
            0.0,
            0.25,
            -0.5,
            1.0,
            1.0,
            3.0,
            -3.0,
            f64::NAN,
            f64::INFINITY,
            -f64::MAX,
        ] {
            counts.observe(value);
        }
        let snapshot = counts.snapshot();
        assert_eq!(snapshot.zero, 3);
        // 1 is the top of bucket 0, 3 lies in (2, 4]: bucket 2; +Inf one past 2^1024's.
        assert_eq!(snapshot.positive, vec![(0, 2), (2, 1), (1025, 1)]);
        assert_eq!(snapshot.negative, vec![(2, 1), (1024, 1)]);
        assert_eq!(snapshot.count(), 9, "NaN is in no bucket");
    }

    #[test]
    fn the_bucket_limit_lowers_the_served_schema() {
        let config = NativeBuckets::new(2).unwrap().with_max_buckets(2).unwrap();
        let counts = NativeCounts::new(config);
        // Buckets 1..=4 at schema 2: 2^(1/4)..=2.
        for value in [1.1, 1.3, 1.6, 1.9, 2.0] {
            counts.observe(value);
        }
        let snapshot = counts.snapshot();
        // At schema 1: keys 1 and 2; four buckets did not fit two.
        assert_eq!(snapshot.schema, 1);
        assert_eq!(snapshot.positive, vec![(1, 2), (2, 3)]);
        let unlimited = NativeCounts::new(NativeBuckets::new(2).unwrap());
        for value in [1.1, 1.3, 1.6, 1.9, 2.0] {
            unlimited.observe(value);
        }
        assert_eq!(
            unlimited.snapshot().positive,
            vec![(1, 1), (2, 1), (3, 1), (4, 2)]
        );
        // Never below -4, even over the limit.
        let one = NativeCounts::new(NativeBuckets::new(-4).unwrap().with_max_buckets(1).unwrap());
        one.observe(1.0);
        one.observe(1e300);
        assert_eq!(one.snapshot().schema, -4);
        assert_eq!(one.snapshot().positive.len(), 2);
    }

    #[test]
    fn halving_merges_negative_keys_upwards() {
        let mut buckets = vec![(-3, 1), (-2, 1), (-1, 1), (0, 1), (1, 1), (2, 1)];
        halve(&mut buckets);
        assert_eq!(buckets, vec![(-1, 2), (0, 2), (1, 2)]);
    }

    #[test]
    fn spans_and_deltas_follow_the_exposition() {
        let side = EncodedSide::new(&[(-2, 3), (-1, 1), (3, 4), (4, 4), (10, 1)]);
        assert_eq!(side.spans, vec![(-2, 2), (3, 2), (5, 1)]);
        assert_eq!(side.deltas, vec![3, -2, 3, 0, -3]);
        let empty = EncodedSide::new(&[]);
        assert!(empty.spans.is_empty() && empty.deltas.is_empty());
    }

    #[test]
    fn a_histogram_without_observations_carries_one_empty_span() {
        let counts = NativeCounts::new(NativeBuckets::default());
        let [negative, positive] = counts.snapshot().sides();
        assert_eq!(positive.spans, vec![(0, 0)]);
        assert!(negative.spans.is_empty() && positive.deltas.is_empty());
        counts.observe(-1.0);
        let [negative, positive] = counts.snapshot().sides();
        assert!(positive.spans.is_empty());
        assert_eq!(negative.spans, vec![(0, 1)]);
    }

    #[test]
    fn invalid_configurations_are_typed_errors() {
        assert_eq!(
            NativeBuckets::new(-5),
            Err(InvalidNativeBuckets::Schema(-5))
        );
        assert_eq!(NativeBuckets::new(9), Err(InvalidNativeBuckets::Schema(9)));
        let config = NativeBuckets::default();
        assert!(matches!(
            config.with_zero_threshold(-1.0),
            Err(InvalidNativeBuckets::ZeroThreshold(_))
        ));
        assert!(config.with_zero_threshold(f64::NAN).is_err());
        assert_eq!(
            config.with_max_buckets(0),
            Err(InvalidNativeBuckets::NoBuckets)
        );
    }

    #[test]
    fn memory_grows_by_chunks_of_touched_buckets() {
        let counts = NativeCounts::new(NativeBuckets::default());
        let empty = counts.allocated();
        counts.observe(0.01);
        let one = counts.allocated();
        assert!(one > empty);
        // A neighbour in the same chunk allocates nothing more.
        counts.observe(0.0101);
        assert_eq!(counts.allocated(), one);
        assert!(empty <= 200, "{empty} bytes before any observation");
        // Durations from 1 ms to 16 s, every bucket touched: two or three chunks and
        // a page.
        for step in 0..=(14 * 8) {
            counts.observe(0.001 * (f64::from(step) / 8.0).exp2());
        }
        let spread = counts.allocated();
        assert!(spread < 3 * 1024, "{spread} bytes for 1 ms to 16 s");
        // At schema 8, the page table is larger before any observation.
        let fine = NativeCounts::new(NativeBuckets::new(8).unwrap()).allocated();
        assert!(fine <= 2 * 1200 + 200, "{fine} bytes at schema 8");
    }
}
