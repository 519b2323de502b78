//! Wire formats of the exposition.

use prometheus_client::registry::Registry;

/// An exposition format the endpoint can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4: what plain clients such as curl get, and what
    /// `promtool check metrics` reads.
    PrometheusText,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// Encodes `registry` in this format.
    pub(crate) fn encode(self, registry: &Registry) -> Result<Vec<u8>, std::fmt::Error> {
        match self {
            Format::PrometheusText => {
                let mut text = String::new();
                prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
                Ok(text.into_bytes())
            }
        }
    }
}
