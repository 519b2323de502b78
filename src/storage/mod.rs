//! Where the values of this crate's metrics live, decided in this one place.
//!
//! A metric's values live either in in-process cells ([`shard::ShardedCells`]: atomics
//! kept per thread shard) or, in multi-process mode, in cells of this process's files
//! ([`files::MappedValue`]), which every process of the directory reads.
//!
//! The registry decides which when it runs a provider at init: with the multi-process
//! files open, it runs the provider through [`Binding::offer`], which offers the
//! provider's name and help on the running thread for the duration of that call. The
//! first of this crate's metric constructors built there takes the offer
//! ([`Binding::claim`]) and keeps its values in the files, so `Counter::default()` in
//! a provider needs no change for multi-process mode. Every other metric (one built
//! outside a provider, or after the first) gets in-process cells. A family keeps the
//! binding and gives each series it creates later an entry of its own.

pub(crate) mod files;
pub(crate) mod shard;

use std::cell::RefCell;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use files::{key, FileKind, MappedValue, ProcessStore};

/// Where the values of one registered metric go.
#[derive(Clone)]
pub(crate) struct Binding {
    store: Arc<ProcessStore>,
    /// The family name as Python's files name it (with the unit, without `_total`),
    /// for a counter and for the other types.
    names: Arc<[String; 2]>,
    help: Arc<str>,
}

thread_local! {
    static OFFERED: RefCell<Option<Binding>> = const { RefCell::new(None) };
}

impl Binding {
    pub(crate) fn new(store: Arc<ProcessStore>, names: [String; 2], help: &str) -> Self {
        Self {
            store,
            names: Arc::new(names),
            help: help.into(),
        }
    }

    /// The decision point: runs `provide` (a provider) with this binding offered on
    /// this thread; returns whether a metric took it.
    pub(crate) fn offer<R>(self, provide: impl FnOnce() -> R) -> (R, bool) {
        OFFERED.with(|offered| *offered.borrow_mut() = Some(self));
        let result = provide();
        let unclaimed = OFFERED.with(|offered| offered.borrow_mut().take());
        (result, unclaimed.is_none())
    }

    /// Takes the binding offered on this thread, if any: a metric constructor's
    /// question whether its values go to the files.
    pub(crate) fn claim() -> Option<Binding> {
        OFFERED.with(|offered| offered.borrow_mut().take())
    }

    /// The cell of one sample: `suffix` is appended to the family name.
    pub(crate) fn value(
        &self,
        kind: FileKind,
        suffix: &str,
        labels: &[(String, String)],
    ) -> MappedValue {
        let metric = match kind {
            FileKind::Counter => &self.names[0],
            FileKind::Gauge(_) | FileKind::Histogram | FileKind::Summary => &self.names[1],
        };
        let sample = format!("{metric}{suffix}");
        let key = key::encode(metric, &sample, labels, &self.help);
        self.store.value(kind, &key)
    }
}

/// The label pairs of any label set, as the text encoder writes them; used once per
/// new series to build its key.
pub(crate) fn label_pairs<L>(labels: &L) -> Vec<(String, String)>
where
    L: EncodeLabelSet + Clone + Send + Sync + 'static,
{
    struct OneSeries<L>(L);
    impl<L> std::fmt::Debug for OneSeries<L> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("labels")
        }
    }
    impl<L: EncodeLabelSet> EncodeMetric for OneSeries<L> {
        fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
            encoder.encode_family(&self.0)?.encode_gauge(&0i64)
        }
        fn metric_type(&self) -> MetricType {
            MetricType::Gauge
        }
    }
    let mut registry = Registry::default();
    registry.register("x", "", OneSeries(labels.clone()));
    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        return Vec::new();
    }
    text.lines()
        .find_map(|line| line.strip_prefix("x{"))
        .map(parse_label_list)
        .unwrap_or_default()
}

/// Parses `a="1",b="2"} 0` (escapes `\\`, `\"`, `\n`).
fn parse_label_list(text: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = text.chars();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            return pairs;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => return pairs,
                },
                other => value.push(other),
            }
        }
        pairs.push((name, value));
        if chars.next() != Some(',') {
            return pairs;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_pairs_of_any_label_set() {
        let labels = [
            ("route", "/a\"b\\c\nd".to_string()),
            ("method", "GET".to_string()),
        ];
        assert_eq!(
            label_pairs(&labels),
            vec![
                ("route".to_string(), "/a\"b\\c\nd".to_string()),
                ("method".to_string(), "GET".to_string())
            ]
        );
    }
}
