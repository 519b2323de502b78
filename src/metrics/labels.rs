//! What a family's label sets must be, and the label pairs a label set encodes.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::LabelPairs;

/// What a family's label sets must be: hashable and encodable as labels.
///
/// Every type with these traits has it, so a struct deriving prometheus-client's
/// [`EncodeLabelSet`] is a label set as it is (the derive needs
/// `prometheus-client = "0.26"` among your own dependencies):
///
/// ```
/// use prometheus_client::encoding::EncodeLabelSet;
/// use tower_prometheus::metrics::{Counter, Family};
///
/// #[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
/// struct Upload {
///     tenant: String,
///     kind: String,
/// }
///
/// let uploads: Family<Upload, Counter> = Family::default();
/// let acme = Upload { tenant: "acme".into(), kind: "image".into() };
/// uploads.get_or_create(&acme).inc();
/// assert_eq!(uploads.get(&acme).map(|c| c.get()), Some(1));
/// ```
///
/// Arrays and vectors of `(name, value)` pairs of strings have it too; a family finds
/// the same pairs given in another order as the same series.
pub trait Labels: EncodeLabelSet + Clone + Eq + Hash + Send + Sync + 'static {}

impl<T: EncodeLabelSet + Clone + Eq + Hash + Send + Sync + 'static> Labels for T {}

/// The `(name, value)` pairs `labels` encodes, in the order it encodes them
/// (unescaped). They are read back from prometheus-client's text encoding, the one way
/// it offers to run an [`EncodeLabelSet`]: a few microseconds, paid when a series is
/// made, not when it is found.
pub(crate) fn encoded_pairs<L: Labels>(labels: &L) -> Result<LabelPairs, fmt::Error> {
    let mut registry = Registry::default();
    registry.register(PROBE_NAME, "", Probe(labels.clone()));
    let mut text = String::new();
    prometheus_client::encoding::text::encode_registry(&mut text, &registry)?;
    let sample = text
        .lines()
        .find(|line| line.starts_with(PROBE_NAME))
        .ok_or(fmt::Error)?;
    parse_label_list(&sample[PROBE_NAME.len()..]).ok_or(fmt::Error)
}

const PROBE_NAME: &str = "probe";

/// A gauge whose only purpose is to make the text encoder write its label set.
struct Probe<L>(L);

impl<L> fmt::Debug for Probe<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Probe")
    }
}

impl<L: EncodeLabelSet + Send + Sync> EncodeMetric for Probe<L> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        encoder.encode_family(&self.0)?.encode_gauge(&0i64)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// The pairs of `{name="value",...} 0` (or ` 0`, no labels), as the text encoder
/// writes them: values escape `\`, `"` and a newline.
fn parse_label_list(sample: &str) -> Option<LabelPairs> {
    let mut pairs = LabelPairs::new();
    let Some(mut rest) = sample.strip_prefix('{') else {
        return Some(pairs);
    };
    loop {
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (index, '"') => break index,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    escaped => value.push(escaped),
                },
                (_, c) => value.push(c),
            }
        };
        pairs.push((name.to_string(), value));
        rest = &after[end + 1..];
        match rest.as_bytes().first()? {
            b',' => rest = &rest[1..],
            b'}' => return Some(pairs),
            _ => return None,
        }
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

/// Owned copies of `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn owned(pairs: &[(&str, &str)]) -> LabelPairs {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_pairs_keep_every_character() {
        let labels = [
            ("route", "/a\"b\\c\nd\u{e9}\u{1f600},}=\"x".to_string()),
            ("method", "GET".to_string()),
        ];
        assert_eq!(
            encoded_pairs(&labels),
            Ok(owned(&[
                ("route", "/a\"b\\c\nd\u{e9}\u{1f600},}=\"x"),
                ("method", "GET")
            ]))
        );
    }

    #[test]
    fn encoded_pairs_of_no_labels_are_empty() {
        let labels: [(&str, &str); 0] = [];
        assert_eq!(encoded_pairs(&labels), Ok(LabelPairs::new()));
        assert_eq!(encoded_pairs(&owned(&[("a", "")])), Ok(owned(&[("a", "")])));
    }

    #[derive(Clone, PartialEq, Eq, Hash)]
    struct Failing;

    impl EncodeLabelSet for Failing {
        fn encode(&self, _: &mut LabelSetEncoder<'_>) -> Result<(), fmt::Error> {
            Err(fmt::Error)
        }
    }

    #[test]
    fn a_label_set_that_fails_to_encode_has_no_pairs() {
        assert_eq!(encoded_pairs(&Failing), Err(fmt::Error));
    }
}
