//! Which buckets a facade histogram gets: the first rule whose matcher fits its name,
//! full names before prefixes before suffixes, as metrics-exporter-prometheus's
//! `set_buckets_for_metric` chooses.

use crate::metrics::Buckets;

/// Which metric names a bucket rule applies to, matched against the name after
/// sanitizing (the name the scrape shows).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Matcher {
    /// The whole name.
    Full(String),
    /// The beginning of the name.
    Prefix(String),
    /// The end of the name.
    Suffix(String),
}

impl Matcher {
    /// Whether `name` fits.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Full(full) => name == full,
            Matcher::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Matcher::Suffix(suffix) => name.ends_with(suffix.as_str()),
        }
    }

    /// Full matches are tried first, then prefixes, then suffixes.
    fn precedence(&self) -> u8 {
        match self {
            Matcher::Full(_) => 0,
            Matcher::Prefix(_) => 1,
            Matcher::Suffix(_) => 2,
        }
    }
}

/// The bucket rules of a recorder, and the buckets of names no rule fits.
#[derive(Clone, Debug)]
pub(crate) struct BucketRules {
    rules: Vec<(Matcher, Buckets)>,
    default: Buckets,
}

impl BucketRules {
    pub(crate) fn new(default: Buckets) -> Self {
        Self {
            rules: Vec::new(),
            default,
        }
    }

    /// Adds a rule; of two rules of the same precedence, the one added first wins.
    pub(crate) fn push(&mut self, matcher: Matcher, buckets: Buckets) {
        let at = self
            .rules
            .partition_point(|(m, _)| m.precedence() <= matcher.precedence());
        self.rules.insert(at, (matcher, buckets));
    }

    /// The buckets of the histogram `name` (sanitized).
    pub(crate) fn buckets_of(&self, name: &str) -> &Buckets {
        self.rules
            .iter()
            .find(|(matcher, _)| matcher.matches(name))
            .map_or(&self.default, |(_, buckets)| buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(bounds: &[f64]) -> Buckets {
        Buckets::new(bounds.iter().copied()).expect("valid buckets")
    }

    #[test]
    fn full_names_win_over_prefixes_and_prefixes_over_suffixes() {
        let mut rules = BucketRules::new(buckets(&[1.0]));
        rules.push(Matcher::Suffix("_seconds".into()), buckets(&[2.0]));
        rules.push(Matcher::Prefix("db_".into()), buckets(&[3.0]));
        rules.push(Matcher::Full("db_query_seconds".into()), buckets(&[4.0]));
        rules.push(Matcher::Prefix("db_q".into()), buckets(&[5.0]));
        assert_eq!(rules.buckets_of("db_query_seconds").bounds(), &[4.0]);
        assert_eq!(rules.buckets_of("db_write_seconds").bounds(), &[3.0]);
        assert_eq!(rules.buckets_of("db_query_rows").bounds(), &[3.0]);
        assert_eq!(rules.buckets_of("http_seconds").bounds(), &[2.0]);
        assert_eq!(rules.buckets_of("payload_bytes").bounds(), &[1.0]);
    }
}
