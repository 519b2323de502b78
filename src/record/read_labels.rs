//! Labels an adapter reads from each call (a header, request metadata), each bounded
//! to a set of values so that clients cannot create series.
//!
//! A label's value is resolved to a small index as the call arrives (or its answer
//! does): `0` for a label the function found nothing for, `1` for `_OTHER`, then the
//! allowed or first-seen values. Series are keyed by those indices, so recording
//! compares a few integers and allocates nothing once a series exists; the strings
//! are looked up only when a series is made.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use http::request;
use prometheus_client::encoding::{EncodeLabel, LabelSetEncoder};

use super::{DEFAULT_FALLBACK_ROUTE, MAX_ROUTE_LEN};
use crate::metrics::Table;
use crate::names::is_label_name;

/// Labels a layer reads at most from each source: HTTP requests, HTTP responses,
/// gRPC calls.
pub const MAX_EXTRA_LABELS: usize = 4;

/// Reads a label's value from a request's head; `None` leaves the label empty.
pub type RequestLabelFn = dyn for<'a> Fn(&'a request::Parts) -> Option<&'a str> + Send + Sync;

/// Which values a label read from requests, responses or gRPC metadata may take; any
/// other value is recorded as `_OTHER`.
///
/// ```
/// use tower_prometheus::layer::LabelValues;
///
/// // Only these three tiers get series of their own.
/// let tiers = LabelValues::allow(["free", "pro", "enterprise"]);
/// // The first 20 tenants seen get series of their own.
/// let tenants = LabelValues::first(20);
/// # let _ = (tiers, tenants);
/// ```
#[derive(Clone, Debug)]
pub struct LabelValues(Bound);

#[derive(Clone, Debug)]
enum Bound {
    Allow(Vec<String>),
    First(usize),
}

impl LabelValues {
    /// Only these values; the empty string is the label's value when the function
    /// finds none.
    pub fn allow<I, V>(values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        Self(Bound::Allow(values.into_iter().map(Into::into).collect()))
    }

    /// The first `count` distinct values the layer sees, in any request; later ones
    /// are `_OTHER`. Values longer than 256 bytes are `_OTHER` too.
    pub fn first(count: usize) -> Self {
        Self(Bound::First(count))
    }
}

/// Value index of a label the function found nothing for: the empty string.
const ABSENT: u16 = 0;
/// Value index of a value outside the allowed or first-seen ones.
const OTHER: u16 = 1;
/// Index of the first allowed or first-seen value.
const FIRST_VALUE: u16 = 2;

/// Bits of one label's value index.
const INDEX_BITS: u32 = 13;
/// Values a label may have beside the empty one and `_OTHER`.
const MAX_VALUES: usize = (1 << INDEX_BITS) - FIRST_VALUE as usize;

/// The value indices of one source's labels, in the order they were added, packed
/// [`INDEX_BITS`] bits each into one word: an outcome or a series key is then a word
/// to copy and compare. The default is every label empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ValueIndices(u64);

impl ValueIndices {
    /// Bits the indices take.
    pub(crate) const BITS: u32 = INDEX_BITS * MAX_EXTRA_LABELS as u32;

    /// The packed indices.
    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    /// Indices packed by [`bits`](Self::bits).
    pub(crate) fn from_bits(bits: u64) -> Self {
        Self(bits & ((1 << Self::BITS) - 1))
    }

    fn set(&mut self, position: usize, index: u16) {
        self.0 |= u64::from(index) << (position as u32 * INDEX_BITS);
    }

    fn get(self, position: usize) -> u16 {
        ((self.0 >> (position as u32 * INDEX_BITS)) & ((1 << INDEX_BITS) - 1)) as u16
    }
}

/// A label's name and value.
pub(crate) type LabelPair = (Arc<str>, Arc<str>);

/// Why a label read from calls was refused: its name, and the reason.
pub(crate) type Refusal = (String, &'static str);

/// The labels read from one source, in the order they were added, each with the
/// function `F` that reads it.
pub(crate) struct ReadLabels<F: ?Sized>(Vec<ReadLabel<F>>);

/// One label: its name, how its values are bounded, and where it is read from.
struct ReadLabel<F: ?Sized> {
    name: Arc<str>,
    values: Values,
    read: Arc<F>,
}

/// The values of one label, found by index.
enum Values {
    Allow(Box<[Arc<str>]>),
    First(Box<FirstSeen>),
}

/// The first values a label took, up to its limit.
struct FirstSeen {
    /// Value -> index, for the values seen so far.
    seen: Table<Arc<str>, u16>,
    /// Index - `FIRST_VALUE` -> value.
    by_index: Box<[OnceLock<Arc<str>>]>,
    /// Set once every index is taken: a new value then takes no lock.
    full: AtomicBool,
}

impl<F: ?Sized> Default for ReadLabels<F> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<F: ?Sized> ReadLabels<F> {
    /// Adds a label, read by `read`.
    pub(crate) fn add(&mut self, name: String, values: LabelValues, read: Arc<F>) {
        self.0.push(ReadLabel::new(name, values, read));
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels' names, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|label| &*label.name)
    }

    /// The first label that cannot be added to families with the labels `taken`, and
    /// why: `earlier` are the names added before on the same families, `past_limit`
    /// says why a label past [`MAX_EXTRA_LABELS`] is refused.
    pub(crate) fn refusal(
        &self,
        taken: &[&str],
        earlier: &[&str],
        past_limit: &'static str,
    ) -> Option<Refusal> {
        if let Some(label) = self.0.get(MAX_EXTRA_LABELS) {
            return Some((label.name.to_string(), past_limit));
        }
        let names: Vec<&str> = self.names().collect();
        for (position, name) in names.iter().enumerate() {
            let refusal = if !is_label_name(name) {
                Some("not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`)")
            } else if taken.contains(name) {
                Some("the layer's families already have a label of that name")
            } else if earlier.contains(name) || names[..position].contains(name) {
                Some("added twice")
            } else {
                None
            };
            if let Some(reason) = refusal {
                return Some(((*name).to_string(), reason));
            }
        }
        self.0.iter().find_map(|label| {
            label
                .values
                .refusal()
                .map(|reason| (label.name.to_string(), reason))
        })
    }

    /// The value index of each label, from what `read` finds with its function. A
    /// function that panics leaves its label empty rather than failing the call.
    pub(crate) fn indices(&self, read: impl Fn(&F) -> Option<&str>) -> ValueIndices {
        let mut indices = ValueIndices::default();
        for (position, label) in self.0.iter().enumerate() {
            let value = catch_unwind(AssertUnwindSafe(|| read(&label.read))).unwrap_or(None);
            indices.set(
                position,
                value.map_or(ABSENT, |value| label.values.index_of(value)),
            );
        }
        indices
    }

    /// The name and value of each label, for the series of `values`.
    pub(crate) fn pairs(&self, values: ValueIndices) -> Vec<LabelPair> {
        self.0
            .iter()
            .enumerate()
            .map(|(position, label)| {
                let value = label.values.value_of(values.get(position));
                (Arc::clone(&label.name), value)
            })
            .collect()
    }
}

impl<F: ?Sized> fmt::Debug for ReadLabels<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl<F: ?Sized> ReadLabel<F> {
    fn new(name: String, values: LabelValues, read: Arc<F>) -> Self {
        let values = match values.0 {
            Bound::Allow(allowed) => Values::Allow(allowed.into_iter().map(Into::into).collect()),
            Bound::First(count) => Values::First(Box::new(FirstSeen {
                seen: Table::new(),
                by_index: (0..count).map(|_| OnceLock::new()).collect(),
                full: AtomicBool::new(count == 0),
            })),
        };
        Self {
            name: name.into(),
            values,
            read,
        }
    }
}

impl Values {
    fn refusal(&self) -> Option<&'static str> {
        match self {
            Values::Allow(allowed) if allowed.is_empty() => Some("an empty allow-list"),
            Values::Allow(allowed) if allowed.len() > MAX_VALUES => {
                Some("an allow-list of more than 8190 values")
            }
            Values::Allow(allowed) if allowed.iter().any(|value| value.len() > MAX_ROUTE_LEN) => {
                Some("an allowed value longer than 256 bytes")
            }
            Values::Allow(allowed) if allowed.iter().any(|v| &**v == DEFAULT_FALLBACK_ROUTE) => {
                Some("`_OTHER` in the allow-list: it is the value of every other value")
            }
            Values::First(first) if first.by_index.is_empty() => {
                Some("`LabelValues::first(0)`: every value would be `_OTHER`")
            }
            Values::First(first) if first.by_index.len() > MAX_VALUES => {
                Some("`LabelValues::first` of more than 8190 values")
            }
            _ => None,
        }
    }

    /// The index of `value`: its own, or `OTHER`.
    fn index_of(&self, value: &str) -> u16 {
        match self {
            Values::Allow(allowed) => allowed
                .iter()
                .position(|allowed| **allowed == *value)
                .map_or(OTHER, |position| FIRST_VALUE + position as u16),
            Values::First(first) => {
                let FirstSeen {
                    seen,
                    by_index,
                    full,
                } = &**first;
                if value.len() > MAX_ROUTE_LEN {
                    return OTHER;
                }
                let hash = seen.hash(value);
                let matches = |known: &Arc<str>| **known == *value;
                if let Some(index) = seen.find(hash, matches) {
                    return *index;
                }
                if full.load(Ordering::Relaxed) {
                    return OTHER;
                }
                let taken = seen.find_or_insert(hash, matches, |len| {
                    let slot = by_index.get(len)?;
                    let value: Arc<str> = value.into();
                    let _ = slot.set(Arc::clone(&value));
                    Some((value, FIRST_VALUE + len as u16))
                });
                match taken {
                    Some(index) => *index,
                    None => {
                        full.store(true, Ordering::Relaxed);
                        OTHER
                    }
                }
            }
        }
    }

    /// The value of `index`.
    fn value_of(&self, index: u16) -> Arc<str> {
        let value = match index {
            ABSENT => return "".into(),
            OTHER => None,
            _ => {
                let position = usize::from(index - FIRST_VALUE);
                match self {
                    Values::Allow(allowed) => allowed.get(position).cloned(),
                    Values::First(first) => first
                        .by_index
                        .get(position)
                        .and_then(|slot| slot.get().cloned()),
                }
            }
        };
        value.unwrap_or_else(|| DEFAULT_FALLBACK_ROUTE.into())
    }
}

/// The names and values of the labels read from a call, after a label set's own:
/// none for a layer that reads no labels, and then nothing is allocated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ExtraPairs(Option<Arc<[LabelPair]>>);

impl ExtraPairs {
    /// These labels, in order.
    pub(crate) fn of(pairs: Vec<LabelPair>) -> Self {
        Self((!pairs.is_empty()).then(|| pairs.into()))
    }

    /// The same labels and `name` with `value` after them.
    pub(crate) fn with(self, name: Arc<str>, value: Arc<str>) -> Self {
        let mut pairs: Vec<_> = self.iter().cloned().collect();
        pairs.push((name, value));
        Self(Some(pairs.into()))
    }

    fn iter(&self) -> impl Iterator<Item = &LabelPair> {
        self.0.iter().flat_map(|pairs| pairs.iter())
    }

    /// The value of the label `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(known, _)| **known == *name)
            .map(|(_, value)| &**value)
    }

    /// Encodes the labels after those `encoder` has.
    pub(crate) fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
        for (name, value) in self.iter() {
            (&**name, &**value).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// The methods of a label set with [`ExtraPairs`] in its field `extra`: `with_label`
/// and `label` for users looking series up, `with_labels` for the adapter making
/// them. `$source` says where the labels are read from, for the docs.
macro_rules! read_label_methods {
    ($source:literal) => {
        #[doc = concat!("The same label set with a label read from ", $source, ", in the")]
        /// order the layer's builder added them: to look up a series of a layer with
        /// such labels.
        pub fn with_label(
            self,
            name: impl Into<std::sync::Arc<str>>,
            value: impl Into<std::sync::Arc<str>>,
        ) -> Self {
            Self {
                extra: self.extra.with(name.into(), value.into()),
                ..self
            }
        }

        #[doc = concat!("The value of a label read from ", $source, ".")]
        pub fn label(&self, name: &str) -> Option<&str> {
            self.extra.get(name)
        }

        #[doc = concat!("The label set with these labels read from ", $source, ".")]
        pub(crate) fn with_labels(self, pairs: Vec<$crate::record::LabelPair>) -> Self {
            Self {
                extra: $crate::record::ExtraPairs::of(pairs),
                ..self
            }
        }
    };
}
pub(crate) use read_label_methods;

#[cfg(test)]
mod tests {
    use super::*;

    fn values_of(values: LabelValues) -> Values {
        ReadLabel::new("label".into(), values, Arc::new(())).values
    }

    #[test]
    fn allowed_values_keep_their_own_index_and_others_are_other() {
        let values = values_of(LabelValues::allow(["free", "pro"]));
        assert_eq!(&*values.value_of(values.index_of("pro")), "pro");
        assert_eq!(&*values.value_of(values.index_of("free")), "free");
        assert_eq!(&*values.value_of(values.index_of("gold")), "_OTHER");
        assert_eq!(&*values.value_of(ABSENT), "");
    }

    #[test]
    fn the_first_values_seen_keep_their_index_and_later_ones_are_other() {
        let values = values_of(LabelValues::first(2));
        let a = values.index_of("a");
        let b = values.index_of("b");
        assert_eq!(values.index_of("c"), OTHER);
        assert_eq!(values.index_of("a"), a);
        assert_eq!(values.index_of("b"), b);
        assert_eq!(&*values.value_of(a), "a");
        assert_eq!(&*values.value_of(b), "b");
        assert_eq!(values.index_of(&"x".repeat(MAX_ROUTE_LEN + 1)), OTHER);
    }

    #[test]
    fn indices_pack_each_label_and_a_panicking_reader_leaves_its_label_empty() {
        let mut labels: ReadLabels<dyn Fn() -> Option<&'static str>> = ReadLabels::default();
        labels.add(
            "a".into(),
            LabelValues::allow(["x"]),
            Arc::new(|| Some("x")),
        );
        labels.add(
            "b".into(),
            LabelValues::first(1),
            Arc::new(|| panic!("read")),
        );
        labels.add("c".into(), LabelValues::first(1), Arc::new(|| Some("y")));
        let pairs = labels.pairs(labels.indices(|read| read()));
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(name, value)| (&**name, &**value))
            .collect();
        assert_eq!(pairs, [("a", "x"), ("b", ""), ("c", "y")]);
        let empty = labels.pairs(ValueIndices::default());
        assert!(empty.iter().all(|(_, value)| value.is_empty()));
    }

    #[test]
    fn label_names_follow_prometheus() {
        for good in ["tenant", "_x", "a1_b"] {
            assert!(is_label_name(good), "{good}");
        }
        for bad in ["", "1a", "a-b", "__x", "é"] {
            assert!(!is_label_name(bad), "{bad}");
        }
    }
}
