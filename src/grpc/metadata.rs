//! Labels read from each gRPC call: from a key of its request metadata, or by a
//! function of the request's head.

use std::sync::Arc;

use http::header::HeaderName;

use crate::record::{LabelValues, ReadLabels, RequestLabelFn};
use crate::BuildError;

/// Why a label past the limit is refused.
const PAST_LIMIT: &str = "a layer reads at most 4 labels from gRPC calls";

/// The labels a layer's builder was given for gRPC calls, checked when it builds.
#[derive(Default)]
pub(crate) struct GrpcLabelsBuilder(Vec<Pending>);

/// One label, as given.
struct Pending {
    name: String,
    values: LabelValues,
    source: Source,
}

/// Where a label's value comes from.
enum Source {
    /// A metadata key, as given: checked when the layer builds.
    Metadata(String),
    Read(Arc<RequestLabelFn>),
}

impl GrpcLabelsBuilder {
    /// Adds a label read from the metadata key `key`.
    pub(crate) fn metadata(&mut self, name: String, values: LabelValues, key: String) {
        self.0.push(Pending {
            name,
            values,
            source: Source::Metadata(key),
        });
    }

    /// Adds a label read by `read`.
    pub(crate) fn read(&mut self, name: String, values: LabelValues, read: Arc<RequestLabelFn>) {
        self.0.push(Pending {
            name,
            values,
            source: Source::Read(read),
        });
    }

    /// The labels, unless one cannot be added to families with labels `taken` or
    /// names a key no label can be read from.
    pub(crate) fn build(self, taken: &[&str]) -> Result<ReadLabels<RequestLabelFn>, BuildError> {
        let mut labels = ReadLabels::default();
        for Pending {
            name,
            values,
            source,
        } in self.0
        {
            let read = match source {
                Source::Read(read) => read,
                Source::Metadata(key) => match metadata_key(&key) {
                    Ok(parsed) => read_metadata(parsed),
                    Err(reason) => {
                        return Err(BuildError::InvalidMetadataKey {
                            label: name,
                            key,
                            reason,
                        })
                    }
                },
            };
            labels.add(name, values, read);
        }
        match labels.refusal(taken, &[], PAST_LIMIT) {
            Some((label, reason)) => Err(BuildError::InvalidLabel { label, reason }),
            None => Ok(labels),
        }
    }
}

/// A function reading the first value of the metadata key `key`, if it is text.
fn read_metadata(key: HeaderName) -> Arc<RequestLabelFn> {
    Arc::new(move |head| head.headers.get(&key)?.to_str().ok())
}

/// The header `key` is sent as, if a label can be read from it: a gRPC ASCII
/// metadata key (`[0-9a-z_.-]`, in any case: header names are case-insensitive).
fn metadata_key(key: &str) -> Result<HeaderName, &'static str> {
    let lower = key.to_ascii_lowercase();
    if lower.is_empty() {
        return Err("an empty key");
    }
    if lower.ends_with("-bin") {
        return Err("a binary (`-bin`) key: its values are base64 of any bytes, not label values");
    }
    if !lower
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err("not a metadata key (`[0-9a-z_.-]`)");
    }
    HeaderName::from_bytes(lower.as_bytes()).map_err(|_| "not a metadata key (`[0-9a-z_.-]`)")
}

impl std::fmt::Debug for GrpcLabelsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|label| &label.name))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_keys_are_read_in_any_case_and_binary_ones_refused() {
        assert_eq!(
            metadata_key("X-Tenant").map(|k| k.to_string()),
            Ok("x-tenant".into())
        );
        assert!(metadata_key("tenant.id_2").is_ok());
        for refused in [
            "",
            "x-trace-bin",
            "X-Trace-BIN",
            "x tenant",
            ":authority",
            "é",
        ] {
            assert!(metadata_key(refused).is_err(), "{refused}");
        }
    }
}
