//! What a family's label sets must be.

use std::hash::Hash;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};

use super::LabelPairs;

/// What a family's label sets must be: hashable, encodable as labels, and able to
/// list their label pairs, which name a series' entry in the multi-process files.
///
/// Arrays and vectors of `(name, value)` pairs of strings have it; a label set of
/// your own lists the pairs its [`EncodeLabelSet`] writes, in any order:
///
/// ```
/// use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
/// use tower_prometheus::metrics::{Counter, Family, LabelPairs, Labels};
///
/// #[derive(Clone, PartialEq, Eq, Hash)]
/// struct Tenant(String);
///
/// impl EncodeLabelSet for Tenant {
///     fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
///         [("tenant", self.0.as_str())].encode(encoder)
///     }
/// }
///
/// impl Labels for Tenant {
///     fn label_pairs(&self) -> LabelPairs {
///         vec![("tenant".to_string(), self.0.clone())]
///     }
/// }
///
/// let by_tenant: Family<Tenant, Counter> = Family::default();
/// by_tenant.get_or_create(&Tenant("acme".into())).inc();
/// ```
pub trait Labels: EncodeLabelSet + Clone + Eq + Hash + Send + Sync + 'static {
    /// The label pairs, as the label set encodes them (unescaped).
    fn label_pairs(&self) -> LabelPairs;
}

impl<K, V, const N: usize> Labels for [(K, V); N]
where
    K: AsRef<str>,
    V: AsRef<str>,
    [(K, V); N]: EncodeLabelSet + Clone + Eq + Hash + Send + Sync + 'static,
{
    fn label_pairs(&self) -> LabelPairs {
        pairs_of(self.iter().map(|(name, value)| (name, value)))
    }
}

impl<K, V> Labels for Vec<(K, V)>
where
    K: AsRef<str>,
    V: AsRef<str>,
    Vec<(K, V)>: EncodeLabelSet + Clone + Eq + Hash + Send + Sync + 'static,
{
    fn label_pairs(&self) -> LabelPairs {
        pairs_of(self.iter().map(|(name, value)| (name, value)))
    }
}

/// Label pairs every series of a family carries beside its own (a service, a region):
/// the family writes them after each series' labels, in the scrape and in the
/// multi-process files. Set once, when the family is made; cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ConstantLabels(Option<Arc<[(String, String)]>>);

impl ConstantLabels {
    /// No labels.
    pub(crate) const fn none() -> Self {
        Self(None)
    }

    pub(crate) fn new(pairs: Vec<(String, String)>) -> Self {
        Self((!pairs.is_empty()).then(|| pairs.into()))
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        self.0.as_deref().unwrap_or_default()
    }
}

/// A series' own labels followed by its family's constant labels.
pub(crate) struct WithConstant<'a, L> {
    pub(crate) labels: &'a L,
    pub(crate) constant: &'a ConstantLabels,
}

impl<L: EncodeLabelSet> EncodeLabelSet for WithConstant<'_, L> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.labels.encode(encoder)?;
        self.constant.pairs().iter().try_for_each(|(name, value)| {
            (name.as_str(), value.as_str()).encode(encoder.encode_label())
        })
    }
}

/// Owned copies of `(name, value)` pairs.
pub(crate) fn pairs_of<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> LabelPairs {
    pairs
        .into_iter()
        .map(|(name, value)| (name.as_ref().to_string(), value.as_ref().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_pairs_keep_every_character() {
        let labels = [
            ("route", "/a\"b\\c\nd\u{e9}\u{1f600}".to_string()),
            ("method", "GET".to_string()),
        ];
        assert_eq!(
            labels.label_pairs(),
            vec![
                (
                    "route".to_string(),
                    "/a\"b\\c\nd\u{e9}\u{1f600}".to_string()
                ),
                ("method".to_string(), "GET".to_string())
            ]
        );
    }
}
