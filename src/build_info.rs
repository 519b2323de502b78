//! `tower_prometheus_build_info`: one series whose labels say what is running, so
//! dashboards can mark deploys (a change of `service_version` or `service_commit`).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// Name of the build-info series.
pub const BUILD_INFO: &str = "tower_prometheus_build_info";

/// The service's own version and commit, as the user gives them.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceBuild {
    pub(crate) version: Option<String>,
    pub(crate) commit: Option<String>,
}

/// Encodes the build-info series (value 1) on each scrape.
#[derive(Debug)]
pub(crate) struct BuildInfoCollector {
    labels: Vec<(&'static str, String)>,
}

impl BuildInfoCollector {
    pub(crate) fn new(service: ServiceBuild) -> Self {
        let mut labels = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
        labels.extend(service.version.map(|version| ("service_version", version)));
        labels.extend(service.commit.map(|commit| ("service_commit", commit)));
        Self { labels }
    }
}

impl Collector for BuildInfoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            BUILD_INFO,
            "Versions of tower-prometheus and of the service it measures; always 1.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1).encode(metric.encode_family(&self.labels)?)
    }
}
