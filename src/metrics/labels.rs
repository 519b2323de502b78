//! What a family's label sets must be.

use std::hash::Hash;

use prometheus_client::encoding::EncodeLabelSet;

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
