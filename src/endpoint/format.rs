//! Wire formats of the exposition, each written by prometheus-client's own encoder.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// An exposition format the endpoint can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4: what plain clients such as curl get, and what
    /// `promtool check metrics` reads.
    PrometheusText,
    /// OpenMetrics 1.0.0 text, which a Prometheus server asks for by default.
    OpenMetricsText,
    /// Length-delimited `io.prometheus.client.MetricFamily` protobuf messages, which a
    /// Prometheus server asks for to scrape native histograms (feature `protobuf`).
    #[cfg(feature = "protobuf")]
    PrometheusProtobuf,
}

impl Format {
    /// The protobuf format, when the crate is built with it.
    pub(crate) fn protobuf() -> Option<Self> {
        #[cfg(feature = "protobuf")]
        return Some(Format::PrometheusProtobuf);
        #[cfg(not(feature = "protobuf"))]
        None
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
            Format::OpenMetricsText => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            #[cfg(feature = "protobuf")]
            Format::PrometheusProtobuf => {
                "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
            }
        }
    }

    /// Encodes `registry` in this format.
    pub(crate) fn encode(self, registry: &Registry) -> Result<Vec<u8>, std::fmt::Error> {
        match self {
            Format::PrometheusText => {
                let mut body = String::new();
                prometheus_text::encode(&mut body, registry)?;
                Ok(body.into_bytes())
            }
            Format::OpenMetricsText => {
                let mut body = String::new();
                text::encode(&mut body, registry)?;
                Ok(body.into_bytes())
            }
            #[cfg(feature = "protobuf")]
            Format::PrometheusProtobuf => {
                prometheus_client::encoding::prometheus_protobuf::encode_to_vec(registry)
                    .map_err(|_| std::fmt::Error)
            }
        }
    }
}
