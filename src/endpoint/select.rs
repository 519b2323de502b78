//! `name[]` query parameters: the families a scrape asks for.
//!
//! Read as Go's promhttp and Python's client read them: every `name[]` parameter of the
//! query (the key percent-encoded or not), `+` and percent-escapes decoded. A name that
//! is no family's selects nothing; an empty value is such a name, so `?name[]=` answers
//! an empty exposition, as promhttp does.

use std::collections::HashMap;

use super::families::Kind;

/// The most `name[]` parameters a scrape may carry: far more than any scrape
/// configuration lists, and it bounds the set built for each filtered scrape.
pub(crate) const MAX_NAMES: usize = 1000;

/// The parameter's key, decoded.
const KEY: &[u8] = b"name[]";

/// Why a scrape's query names no families the endpoint can look for: the scrape is
/// answered `400 Bad Request` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    /// More than [`MAX_NAMES`] `name[]` parameters.
    #[error("more than {MAX_NAMES} name[] parameters")]
    TooManyNames,
    /// A `%` not followed by two hex digits.
    #[error("a name[] parameter has a `%` without two hex digits after it")]
    BadEscape,
    /// Percent-decoded bytes that are not UTF-8, which no metric name is.
    #[error("a name[] parameter is not UTF-8 once percent-decoded")]
    NotUtf8,
}

/// The families a scrape asked for.
///
/// A family is kept when a requested name is its name as the Prometheus text format and
/// protobuf write it (`http_server_requests_total`, Go's rule), or one of its sample
/// names (`x_bucket`, `x_count`, `x_sum`, `x_created`, Python's rule): the family is
/// then served whole, never a part of a histogram.
#[derive(Debug)]
pub(crate) struct NameSelection {
    /// Family name to the kinds of family a requested name selects under it.
    families: HashMap<String, KindSet>,
}

/// A set of [`Kind`]s, as bits.
#[derive(Clone, Copy, Debug)]
struct KindSet(u8);

impl KindSet {
    const ANY: KindSet = KindSet(u8::MAX);

    fn of(kinds: &[Kind]) -> Self {
        KindSet(kinds.iter().fold(0, |bits, kind| bits | kind.bit()))
    }

    fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }
}

/// Sample-name suffixes, the family name left when they are taken off, and the kinds
/// of family that write them.
const SAMPLE_SUFFIXES: [(&str, &str, &[Kind]); 5] = [
    ("_bucket", "", &[Kind::Histogram]),
    ("_count", "", &[Kind::Histogram, Kind::Summary]),
    ("_sum", "", &[Kind::Histogram, Kind::Summary]),
    ("_created", "", &[Kind::Histogram, Kind::Summary]),
    ("_created", "_total", &[Kind::Counter]),
];

impl NameSelection {
    /// The selection a request's query asks for: `None` when it has no `name[]`
    /// parameter, so the whole registry is served.
    pub(crate) fn from_query(query: Option<&str>) -> Result<Option<Self>, QueryError> {
        let Some(query) = query else {
            return Ok(None);
        };
        let mut names = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            // A key that does not decode is not `name[]`, and not ours to judge.
            if decode(key).ok().as_deref() != Some(KEY) {
                continue;
            }
            if names.len() == MAX_NAMES {
                return Err(QueryError::TooManyNames);
            }
            let name = String::from_utf8(decode(value)?).map_err(|_| QueryError::NotUtf8)?;
            names.push(name);
        }
        if names.is_empty() {
            return Ok(None);
        }
        let mut families = HashMap::with_capacity(names.len());
        for name in names {
            for (suffix, family_suffix, kinds) in SAMPLE_SUFFIXES {
                if let Some(stem) = name.strip_suffix(suffix) {
                    let family = format!("{stem}{family_suffix}");
                    let entry = families.entry(family).or_insert(KindSet(0));
                    *entry = KindSet(entry.0 | KindSet::of(kinds).0);
                }
            }
            families.insert(name, KindSet::ANY);
        }
        Ok(Some(Self { families }))
    }

    /// Whether the family named `name` (as the Prometheus text format names it) of
    /// kind `kind` was asked for.
    pub(crate) fn keeps(&self, name: &str, kind: Kind) -> bool {
        self.families
            .get(name)
            .is_some_and(|kinds| kinds.contains(kind))
    }
}

/// `text` with `+` as a space and percent-escapes decoded, as a form's query encodes it.
fn decode(text: &str) -> Result<Vec<u8>, QueryError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = |at: usize| {
                    bytes
                        .get(at)
                        .and_then(|&digit| char::from(digit).to_digit(16))
                };
                let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                    return Err(QueryError::BadEscape);
                };
                // Two hex digits make at most 0xff.
                decoded.push((high * 16 + low) as u8);
                i += 2;
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(query: &str) -> NameSelection {
        NameSelection::from_query(Some(query))
            .expect("valid query")
            .expect("names given")
    }

    #[test]
    fn keys_are_decoded_and_other_parameters_ignored() {
        let names = selection("a=1&name%5B%5D=x&name[]=y+z&name=w&name%5b%5d=%41");
        assert!(names.keeps("x", Kind::Gauge));
        assert!(names.keeps("y z", Kind::Gauge));
        assert!(names.keeps("A", Kind::Gauge));
        assert!(!names.keeps("w", Kind::Gauge));
        assert!(NameSelection::from_query(Some("name=x&%zz=1"))
            .expect("valid")
            .is_none());
        assert!(NameSelection::from_query(None).expect("valid").is_none());
    }

    #[test]
    fn sample_names_select_their_family_of_the_kind_that_writes_them() {
        let names = selection("name[]=h_bucket&name[]=c_created&name[]=s_count");
        assert!(names.keeps("h", Kind::Histogram));
        assert!(!names.keeps("h", Kind::Gauge));
        assert!(names.keeps("c_total", Kind::Counter));
        assert!(names.keeps("c", Kind::Histogram));
        assert!(names.keeps("s", Kind::Summary));
        assert!(!names.keeps("s", Kind::Counter));
        assert!(names.keeps("s_count", Kind::Gauge));
    }

    #[test]
    fn malformed_values_and_too_many_names_are_errors() {
        let many = |n: usize| vec!["name[]=a"; n].join("&");
        assert!(NameSelection::from_query(Some(&many(MAX_NAMES))).is_ok());
        assert_eq!(
            NameSelection::from_query(Some(&many(MAX_NAMES + 1))).unwrap_err(),
            QueryError::TooManyNames
        );
        for (query, error) in [
            ("name[]=%zz", QueryError::BadEscape),
            ("name[]=a%4", QueryError::BadEscape),
            ("name[]=%ff", QueryError::NotUtf8),
            ("name[]=%E2%82", QueryError::NotUtf8),
        ] {
            assert_eq!(NameSelection::from_query(Some(query)).unwrap_err(), error);
        }
    }
}
