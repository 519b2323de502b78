//! A registry with known values, and the decoding of protobuf scrapes, for the tests of
//! the endpoint.

use tower_prometheus::metrics::{Buckets, Counter, Family, Histogram};
use tower_prometheus::MetricsRegistry;

/// A registry with a counter `jobs` at 3 and a histogram `latency_seconds` (buckets 0.1
/// and 1) of three observations, 0.05, 0.5 and 5, labelled `route="/a"`.
pub fn jobs_and_latency() -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    registry
        .provider("jobs", "Jobs done.", || {
            let counter = Counter::default();
            counter.inc_by(3);
            counter
        })
        .unwrap();
    registry
        .provider("latency_seconds", "Latency.", || {
            let family =
                Family::<[(&'static str, &'static str); 1], Histogram>::new_with_constructor(
                    || Histogram::new(Buckets::new([0.1, 1.0]).unwrap()),
                );
            for value in [0.05, 0.5, 5.0] {
                family.get_or_create(&[("route", "/a")]).observe(value);
            }
            family
        })
        .unwrap();
    registry
}

/// Every family in a protobuf scrape, decoded.
#[cfg(feature = "protobuf")]
pub fn protobuf_families(
    mut bytes: &[u8],
) -> Vec<prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily> {
    use prost::Message as _;

    let mut families = Vec::new();
    while !bytes.is_empty() {
        families.push(
            prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::MetricFamily::decode_length_delimited(&mut bytes)
                .expect("delimited MetricFamily"),
        );
    }
    families
}

// Each test binary uses some of these, or none.
#[cfg(feature = "protobuf")]
#[allow(unused_imports)]
pub use protobuf::*;

/// Decoding the histograms of protobuf scrapes.
#[cfg(feature = "protobuf")]
mod protobuf {
    use prometheus_client::encoding::prometheus_protobuf::prometheus_data_model as proto;

    /// The content type Prometheus asks for when it scrapes native histograms.
    pub const PROTOBUF: &str =
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

    /// The histograms of family `name` in a protobuf scrape of `addr`.
    pub async fn protobuf_histograms(
        addr: std::net::SocketAddr,
        name: &str,
    ) -> Vec<proto::Histogram> {
        let reply = crate::common::scrape_reply(addr, &[("accept", PROTOBUF)]).await;
        super::protobuf_families(&reply.raw)
            .into_iter()
            .find(|family| family.name == name)
            .unwrap_or_else(|| panic!("no family {name}"))
            .metric
            .into_iter()
            .map(|metric| metric.histogram.expect("a histogram"))
            .collect()
    }

    /// The native buckets of one side, `(key, count)` ascending, from spans and deltas.
    pub fn native_side(spans: &[proto::BucketSpan], deltas: &[i64]) -> Vec<(i32, u64)> {
        let mut buckets = Vec::new();
        let mut key = 0;
        let mut count = 0i64;
        let mut deltas = deltas.iter();
        for span in spans {
            key += span.offset;
            for _ in 0..span.length {
                count += deltas.next().expect("a delta per bucket");
                buckets.push((key, u64::try_from(count).expect("a count >= 0")));
                key += 1;
            }
        }
        assert!(deltas.next().is_none(), "more deltas than buckets");
        buckets
    }

    /// The positive native buckets of `histogram`, `(key, count)` ascending.
    pub fn positive_buckets(histogram: &proto::Histogram) -> Vec<(i32, u64)> {
        native_side(&histogram.positive_span, &histogram.positive_delta)
    }

    /// The classic buckets of `histogram`, `(upper bound, cumulative count)`.
    pub fn classic_buckets(histogram: &proto::Histogram) -> Vec<(f64, u64)> {
        histogram
            .bucket
            .iter()
            .map(|b| (b.upper_bound, b.cumulative_count))
            .collect()
    }
}
