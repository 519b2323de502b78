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
