//! Which buckets a facade histogram gets: of each kind (classic bounds, native
//! configurations), the first rule whose matcher fits its name, full names before
//! prefixes before suffixes, as metrics-exporter-prometheus's `set_buckets_for_metric`
//! chooses.

use crate::metrics::{Buckets, NativeBuckets};
use crate::record::HistogramLayout;

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

/// Rules of one kind (classic bounds, native configurations), in the order they are
/// tried: by precedence, then as added.
#[derive(Clone, Debug)]
struct Rules<T> {
    rules: Vec<(Matcher, T)>,
}

impl<T> Rules<T> {
    /// Adds a rule; of two rules of the same precedence, the one added first wins.
    fn push(&mut self, matcher: Matcher, value: T) {
        let at = self
            .rules
            .partition_point(|(m, _)| m.precedence() <= matcher.precedence());
        self.rules.insert(at, (matcher, value));
    }

    /// The value of the first rule that fits `name`.
    fn find(&self, name: &str) -> Option<&T> {
        self.rules
            .iter()
            .find(|(matcher, _)| matcher.matches(name))
            .map(|(_, value)| value)
    }
}

impl<T> Default for Rules<T> {
    fn default() -> Self {
        Self { rules: Vec::new() }
    }
}

/// The bucket rules of a recorder, classic and native, and what names no rule fits
/// get.
#[derive(Clone, Debug)]
pub(crate) struct BucketRules {
    classic: Rules<Buckets>,
    native: Rules<NativeBuckets>,
    default_classic: Buckets,
    default_native: Option<NativeBuckets>,
}

impl BucketRules {
    pub(crate) fn new(default_classic: Buckets) -> Self {
        Self {
            classic: Rules::default(),
            native: Rules::default(),
            default_classic,
            default_native: None,
        }
    }

    /// Adds a classic rule.
    pub(crate) fn push(&mut self, matcher: Matcher, buckets: Buckets) {
        self.classic.push(matcher, buckets);
    }

    /// Adds a native rule.
    pub(crate) fn push_native(&mut self, matcher: Matcher, native: NativeBuckets) {
        self.native.push(matcher, native);
    }

    /// Native buckets for the histograms no native rule fits.
    pub(crate) fn set_default_native(&mut self, native: NativeBuckets) {
        self.default_native = Some(native);
    }

    /// The classic buckets of the histogram `name` (sanitized): its rule's, else the
    /// default ones.
    pub(crate) fn buckets_of(&self, name: &str) -> &Buckets {
        self.classic.find(name).unwrap_or(&self.default_classic)
    }

    /// The layout of the histogram `name`: native if a native rule fits it (or a
    /// native default is set), with the classic buckets beside them only if a classic
    /// rule fits it too; classic only otherwise.
    pub(crate) fn layout_of(&self, name: &str) -> HistogramLayout {
        match self.native.find(name).or(self.default_native.as_ref()) {
            Some(native) => HistogramLayout::native(*native, self.classic.find(name).is_some()),
            None => HistogramLayout::default(),
        }
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

    #[test]
    fn native_rules_keep_classic_buckets_only_where_a_classic_rule_fits() {
        let native = |schema| NativeBuckets::new(schema).expect("valid schema");
        let mut rules = BucketRules::new(buckets(&[1.0]));
        rules.push(Matcher::Suffix("_seconds".into()), buckets(&[2.0]));
        rules.push_native(Matcher::Prefix("db_".into()), native(1));
        rules.push_native(Matcher::Full("db_query_seconds".into()), native(2));
        let layouts = |rules: &BucketRules, name| {
            let histogram = rules.layout_of(name).histogram(rules.buckets_of(name));
            let bounds = histogram.buckets().bounds().to_vec();
            (
                bounds,
                histogram.native_buckets().map(NativeBuckets::schema),
            )
        };
        assert_eq!(layouts(&rules, "db_query_seconds"), (vec![2.0], Some(2)));
        assert_eq!(layouts(&rules, "db_rows"), (vec![], Some(1)));
        assert_eq!(layouts(&rules, "http_seconds"), (vec![2.0], None));
        assert_eq!(layouts(&rules, "payload_bytes"), (vec![1.0], None));
        rules.set_default_native(native(3));
        assert_eq!(layouts(&rules, "db_rows"), (vec![], Some(1)));
        assert_eq!(layouts(&rules, "http_seconds"), (vec![2.0], Some(3)));
        assert_eq!(layouts(&rules, "payload_bytes"), (vec![], Some(3)));
    }
}
