//! Metric and label names as metrics-exporter-prometheus writes them: every character
//! Prometheus does not allow becomes `_`.

use crate::metrics::LabelPairs;

/// `name` with each character outside `[a-zA-Z_:][a-zA-Z0-9_:]*` replaced by `_` (an
/// empty name becomes `_`).
pub(crate) fn metric_name(name: &str) -> String {
    sanitize(name, |c, first| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
    })
}

/// `key` with each character outside `[a-zA-Z_][a-zA-Z0-9_]*` replaced by `_` (an
/// empty key becomes `_`).
pub(crate) fn label_name(key: &str) -> String {
    sanitize(key, |c, first| {
        c.is_ascii_alphabetic() || c == '_' || (!first && c.is_ascii_digit())
    })
}

fn sanitize(name: &str, allowed: impl Fn(char, bool) -> bool) -> String {
    if name.is_empty() {
        return "_".to_string();
    }
    name.chars()
        .enumerate()
        .map(|(i, c)| if allowed(c, i == 0) { c } else { '_' })
        .collect()
}

/// The registry name of a counter: the `_total` the encoders append is left off, so
/// `orders` and `orders_total` are one family, exposed as `orders_total`.
pub(crate) fn counter_name(sanitized: String) -> String {
    match sanitized.strip_suffix("_total") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => sanitized,
    }
}

/// The label set of a series: names sanitized, a name the metric type writes itself
/// (`reserved`: a histogram's `le`) prefixed with `exported_`, sorted by name (the
/// facade's keys do not depend on the order labels were given in), and of a name given
/// twice the first value kept, so the exposition never repeats a label.
pub(crate) fn label_set<'a>(
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    reserved: &[&str],
) -> LabelPairs {
    let mut pairs: LabelPairs = labels
        .map(|(key, value)| {
            let mut name = label_name(key);
            if reserved.contains(&name.as_str()) {
                name.insert_str(0, "exported_");
            }
            (name, value.to_string())
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_characters_become_underscores() {
        // The cases metrics-exporter-prometheus tests its own sanitizing with.
        for (name, expected) in [
            ("*", "_"),
            ("\"", "_"),
            ("foo_bar", "foo_bar"),
            ("foo1_bar", "foo1_bar"),
            ("1foobar", "_foobar"),
            ("foo1:bar2", "foo1:bar2"),
            ("123", "_23"),
            ("http.requests-total", "http_requests_total"),
            ("", "_"),
            ("caf\u{e9}", "caf_"),
        ] {
            assert_eq!(metric_name(name), expected, "{name:?}");
        }
        for (key, expected) in [
            ("foo:bar", "foo_bar"),
            ("1key", "_key"),
            ("k\u{e9}y", "k_y"),
            ("", "_"),
        ] {
            assert_eq!(label_name(key), expected, "{key:?}");
        }
    }

    #[test]
    fn counters_are_one_family_with_or_without_total() {
        assert_eq!(counter_name("orders_total".into()), "orders");
        assert_eq!(counter_name("orders".into()), "orders");
        assert_eq!(counter_name("_total".into()), "_total");
    }

    #[test]
    fn label_sets_are_sorted_and_keep_the_first_of_a_repeated_name() {
        let given = [("b", "2"), ("a-x", "1"), ("b", "3"), ("le", "4")];
        assert_eq!(
            label_set(given.into_iter(), &["le"]),
            vec![
                ("a_x".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
                ("exported_le".to_string(), "4".to_string())
            ]
        );
    }
}
