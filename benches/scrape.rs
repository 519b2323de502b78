//! Cost of a scrape through the endpoint against a bare prometheus-client encode of
//! the same metrics, at 1k, 10k and 100k series, measured in one run; and of a scrape
//! through the endpoint's service with and without `name[]`.
//!
//! `cargo bench --bench scrape` prints each time and the ratio.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, BenchmarkId, Criterion};
use http_body_util::BodyExt as _;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tower::ServiceExt as _;
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Counter, Family};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

type Labels = [(&'static str, String); 2];

/// A family with `series` label sets, each counted once.
fn family(series: usize) -> Family<Labels, Counter> {
    let family = Family::<Labels, Counter>::default().max_series(series);
    for i in 0..series {
        family
            .get_or_create(&[
                ("route", format!("/route/{}", i / 10)),
                ("status", format!("{}", 200 + i % 10)),
            ])
            .inc_by(i as u64);
    }
    family
}

/// The endpoint over a registry holding `family`, and a bare prometheus-client
/// registry holding the same family.
fn setups(series: usize) -> (MetricsEndpoint, Registry) {
    let shared = family(series);
    let registry = MetricsRegistry::new();
    registry.single_process().expect("not initialised");
    let provided = shared.clone();
    registry
        .provider("requests", "Requests.", move || provided)
        .expect("declared");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint");
    let mut bare = Registry::default();
    bare.register("requests", "Requests", shared);
    (endpoint, bare)
}

fn endpoint_scrape(runtime: &tokio::runtime::Runtime, endpoint: &MetricsEndpoint) -> usize {
    runtime
        .block_on(endpoint.render(Format::PrometheusText))
        .expect("encodes")
        .len()
}

/// A `GET` of `path` through the endpoint's service, to the end of the body.
fn served(runtime: &tokio::runtime::Runtime, endpoint: &MetricsEndpoint, path: &str) -> usize {
    runtime.block_on(async {
        let request = http::Request::get(path).body(()).expect("request");
        let response = endpoint.clone().oneshot(request).await.expect("answered");
        let body = response.into_body().collect().await.expect("body");
        body.to_bytes().len()
    })
}

fn bare_encode(registry: &Registry) -> usize {
    let mut text = String::new();
    prometheus_text::encode(&mut text, registry).expect("encodes");
    text.len()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("scrape");
    group.sample_size(10);
    let mut summary = Vec::new();
    for series in [1_000, 10_000, 100_000] {
        let (endpoint, bare) = setups(series);
        group.bench_with_input(BenchmarkId::new("endpoint", series), &series, |b, _| {
            b.iter(|| endpoint_scrape(&runtime, &endpoint))
        });
        group.bench_with_input(
            BenchmarkId::new("bare_prometheus_client", series),
            &series,
            |b, _| b.iter(|| bare_encode(&bare)),
        );
        let rounds = (1_000_000 / series).max(5) as u32;
        let time = |run: &dyn Fn() -> usize| {
            run();
            let start = Instant::now();
            for _ in 0..rounds {
                black_box(run());
            }
            start.elapsed().as_secs_f64() / f64::from(rounds) * 1e3
        };
        let ours = time(&|| endpoint_scrape(&runtime, &endpoint));
        let theirs = time(&|| bare_encode(&bare));
        let full = time(&|| served(&runtime, &endpoint, "/metrics"));
        let named = time(&|| served(&runtime, &endpoint, "/metrics?name[]=requests_total"));
        summary.push(format!(
            "{series:>7} series: endpoint {ours:.2} ms, bare prometheus-client encode {theirs:.2} ms, ratio {:.3}; \
             served {full:.2} ms, with name[] of its one family {named:.2} ms, ratio {:.3}",
            ours / theirs,
            named / full
        ));
    }
    group.finish();
    for line in summary {
        println!("{line}");
    }
}

criterion_group!(scrape_benches, benches);

fn main() {
    scrape_benches();
    Criterion::default().configure_from_args().final_summary();
}
