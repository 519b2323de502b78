//! A service moved between single-process and multi-process mode serves the same
//! text: the same HELP (one full stop), TYPE and values (whole numbers as whole
//! numbers, `600` in both, fractions as fractions), in the Prometheus text format and
//! in OpenMetrics, compared line by line, byte for byte.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::TempDir;
use tower_prometheus::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use tower_prometheus::multiprocess::{Folding, GaugeMode};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

type Route = [(&'static str, String); 1];

/// The families compared, as the text format names them (counters with `_total`),
/// each declared and fed alike in both modes.
const FAMILIES: &[&str] = &[
    "alike_jobs_total",
    "alike_bytes_total",
    "alike_depth",
    "alike_load",
    "alike_latency_seconds",
];

/// A registry (multi-process over `dir` when given) with the families, fed.
async fn served(dir: Option<&Path>) -> SocketAddr {
    let registry = MetricsRegistry::new();
    match dir {
        Some(dir) => {
            registry.multiprocess_dir(dir).unwrap();
            registry.multiprocess_folding(Folding::Off).unwrap();
        }
        None => registry.single_process().unwrap(),
    }
    registry.without_process_metrics().unwrap();
    // One help text with a full stop and one without.
    registry
        .provider(
            "alike_jobs",
            "Jobs done.",
            Family::<Route, Counter>::default,
        )
        .unwrap();
    registry
        .provider("alike_bytes", "Bytes moved", Counter::default)
        .unwrap();
    registry
        .provider("alike_depth", "Queue depth.", || {
            Gauge::with_mode(GaugeMode::LiveMax)
        })
        .unwrap();
    registry
        .provider("alike_load", "Load", || Gauge::with_mode(GaugeMode::Sum))
        .unwrap();
    registry
        .provider("alike_latency_seconds", "Latency.", || {
            Family::<Route, Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new([0.1, 0.5, 1.0]).unwrap())
            })
        })
        .unwrap();
    let addr = common::serve(MetricsEndpoint::new(&registry).unwrap()).await;

    let jobs: Family<Route, Counter> = registry.get("alike_jobs").unwrap();
    jobs.get_or_create(&[("route", "/a".into())]).inc_by(600);
    jobs.get_or_create(&[("route", "/b".into())]).inc();
    registry
        .get::<Counter>("alike_bytes")
        .unwrap()
        .inc_by_f64(2.5)
        .unwrap();
    registry.get::<Gauge>("alike_depth").unwrap().set(600);
    registry.get::<Gauge>("alike_load").unwrap().set_f64(0.25);
    let latency: Family<Route, Histogram> = registry.get("alike_latency_seconds").unwrap();
    for value in [0.05, 0.3, 0.3, 2.0] {
        latency
            .get_or_create(&[("route", "/a".into())])
            .observe(value);
    }
    addr
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

async fn body(addr: SocketAddr, family: &str, accept: &str) -> String {
    let reply = common::send_with_headers(
        addr,
        http::Method::GET,
        &format!("/metrics?name[]={family}"),
        &[("accept", accept)],
    )
    .await;
    assert_eq!(reply.status, http::StatusCode::OK);
    reply.body
}

/// The lines of a body, sorted.
fn lines(body: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = body.lines().collect();
    lines.sort_unstable();
    lines
}

#[tokio::test]
async fn both_modes_serve_the_same_bytes_for_the_same_metrics() {
    let dir = TempDir::new("modes-alike");
    let single = served(None).await;
    let multi = served(Some(dir.path())).await;
    for family in FAMILIES {
        for accept in ["text/plain", OPENMETRICS] {
            let (one, many) = (
                body(single, family, accept).await,
                body(multi, family, accept).await,
            );
            assert!(one.contains(family), "{family} served:\n{one}");
            // The same lines; series may come in another order, as a process's own
            // family keeps its series in a hash table.
            assert_eq!(lines(&one), lines(&many), "{family} as {accept}");
        }
    }
    // The forms compared: one full stop, whole numbers whole.
    let text = body(single, "alike_jobs_total", "text/plain").await;
    assert!(
        text.contains("# HELP alike_jobs_total Jobs done.\n"),
        "{text}"
    );
    assert!(
        text.contains("alike_jobs_total{route=\"/a\"} 600\n"),
        "{text}"
    );
    let text = body(multi, "alike_bytes_total", "text/plain").await;
    assert!(
        text.contains("# HELP alike_bytes_total Bytes moved.\n"),
        "{text}"
    );
    assert!(text.contains("alike_bytes_total 2.5\n"), "{text}");
}
