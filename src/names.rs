//! The forms of Prometheus metric and label names, which the exposition formats take
//! as they are: checked wherever a name comes from outside the crate's own code (a
//! user's setting, a request, another process's file).

/// Whether `name` matches `[a-zA-Z_][a-zA-Z0-9_]*`, the form of Prometheus metric and
/// label names (without `:`).
pub(crate) fn is_plain_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` matches `[a-zA-Z_:][a-zA-Z0-9_:]*`, the form of a Prometheus metric
/// name.
pub(crate) fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

/// Whether `name` is a label name a user may give: a plain name not `__`-prefixed
/// (reserved for Prometheus).
pub(crate) fn is_label_name(name: &str) -> bool {
    is_plain_name(name) && !name.starts_with("__")
}
