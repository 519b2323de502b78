//! Exemplars on the default families: a traced request leaves its trace id on the
//! bucket of its duration and on its counter, served in OpenMetrics and protobuf and
//! never in the Prometheus text format; off by default; none in multi-process mode.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use common::{Exposition, Sample, TempDir};
use http::Method;
use tower_prometheus::layer::Exemplars;
use tower_prometheus::metrics::ExemplarLabels;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

const DURATION: &str = "http_server_request_duration_seconds_bucket";
const REQUESTS: &str = "http_server_requests_total";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// A W3C trace context: trace `i`, span `i`, sampled or not.
fn traceparent(i: u32, sampled: bool) -> String {
    format!("00-{}-{}-0{}", trace_id(i), span_id(i), u8::from(sampled))
}

fn trace_id(i: u32) -> String {
    format!("4bf92f3577b34da6{:016x}", 0xa000 + i)
}

fn span_id(i: u32) -> String {
    format!("{:016x}", 0xb000 + i)
}

/// A sample line that carries an exemplar, split.
#[derive(Debug)]
struct WithExemplar {
    sample: Sample,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Every sample of an OpenMetrics body that carries an exemplar.
fn exemplars(body: &str) -> Vec<WithExemplar> {
    body.lines()
        .filter_map(|line| line.split_once(" # "))
        .map(|(sample, exemplar)| {
            let (labels, rest) = exemplar.split_once("} ").expect("exemplar labels");
            let value = rest.split(' ').next().expect("a value");
            let labels = Exposition::parse(&format!("x{labels}}} 0")).samples[0]
                .labels
                .clone();
            WithExemplar {
                sample: Exposition::parse(sample).samples.remove(0),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

fn trace_of(exemplar: &WithExemplar) -> (&str, &str) {
    let label = |name| exemplar.labels.get(name).map_or("", String::as_str);
    (label("trace_id"), label("span_id"))
}

/// An OpenMetrics scrape, the body and its samples (without the exemplars).
async fn openmetrics(addr: SocketAddr) -> (String, Exposition) {
    let body = common::scrape_reply(addr, &[("accept", OPENMETRICS)])
        .await
        .body;
    let samples = body
        .lines()
        .map(|line| line.split(" # ").next().unwrap_or(line))
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    (body, Exposition::parse(&samples))
}

fn app(layer: MetricsLayer) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/other", get(|| async { "other" }))
        .layer(layer)
}

async fn traced_app(registry: &MetricsRegistry) -> SocketAddr {
    let layer = MetricsLayer::builder(registry)
        .exemplars(Exemplars::traceparent())
        .build()
        .unwrap();
    common::serve(app(layer)).await
}

async fn get_traced(addr: SocketAddr, path: &str, traceparent: &str) {
    common::send_with_headers(addr, Method::GET, path, &[("traceparent", traceparent)]).await;
}

/// Five sampled requests, then one unsampled, one malformed and one with two trace
/// contexts: the counter's exemplar is the last sampled trace, each bucket's is a trace
/// sent in it, the last sampled one among them, and no other request left one.
async fn traced_requests_leave_their_trace_ids() -> common::Checked {
    let registry = MetricsRegistry::new();
    let addr = traced_app(&registry).await;
    for i in 1..=5 {
        get_traced(addr, "/", &traceparent(i, true)).await;
    }
    get_traced(addr, "/", &traceparent(6, false)).await;
    get_traced(addr, "/", "00-not-a-trace-01").await;
    let two = [
        ("traceparent", traceparent(7, true)),
        ("traceparent", traceparent(8, true)),
    ];
    let two: Vec<(&str, &str)> = two.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::send_with_headers(addr, Method::GET, "/", &two).await;
    // Untraced requests elsewhere have no exemplar.
    common::get(addr, "/other").await;

    let (body, samples) = openmetrics(addr).await;
    let route = [("http_route", "/")];
    assert_eq!(samples.sum(REQUESTS, &route), 8.0, "{body}");
    let found = exemplars(&body);
    let counter: Vec<_> = found.iter().filter(|e| e.sample.name == REQUESTS).collect();
    assert_eq!(counter.len(), 1, "{body}");
    assert_eq!(counter[0].sample.labels["http_route"], "/");
    assert_eq!(trace_of(counter[0]), (&*trace_id(5), &*span_id(5)));
    assert_eq!(counter[0].value, 1.0);

    let buckets: Vec<_> = found.iter().filter(|e| e.sample.name == DURATION).collect();
    assert!(!buckets.is_empty(), "{body}");
    let sent: Vec<String> = (1..=5).map(trace_id).collect();
    let bounds: Vec<f64> = samples
        .matching(DURATION, &route)
        .iter()
        .map(|s| s.labels["le"].parse().expect("a bound"))
        .collect();
    for bucket in &buckets {
        assert_eq!(bucket.sample.labels["http_route"], "/", "{body}");
        let (trace, span) = trace_of(bucket);
        let i = sent.iter().position(|t| t == trace).expect("a trace sent") as u32 + 1;
        assert_eq!(span, span_id(i));
        // The exemplar's value is a duration of its bucket.
        let le: f64 = bucket.sample.labels["le"].parse().expect("a bound");
        let below = bounds
            .iter()
            .copied()
            .filter(|b| *b < le)
            .fold(0.0, f64::max);
        assert!(bucket.value <= le && bucket.value > below, "{bucket:?}");
    }
    let last = buckets
        .iter()
        .filter(|e| trace_of(e).0 == trace_id(5))
        .count();
    assert_eq!(last, 1, "the last trace is its bucket's exemplar: {body}");
    assert_eq!(found.len(), buckets.len() + 1, "{body}");

    // The Prometheus text format has no exemplars, and stays valid.
    let text = common::get(addr, "/metrics").await.body;
    assert!(!text.contains("trace_id"), "{text}");
    common::promtool_accepts(&text)
}

/// A protobuf scrape carries the same exemplars, on the classic buckets and the
/// counter.
async fn protobuf_scrapes_carry_the_exemplars() {
    let registry = MetricsRegistry::new();
    let addr = traced_app(&registry).await;
    get_traced(addr, "/", &traceparent(1, true)).await;
    get_traced(addr, "/", &traceparent(2, true)).await;
    let reply = common::scrape_reply(addr, &[("accept", common::fixtures::PROTOBUF)]).await;
    let families = common::fixtures::protobuf_families(&reply.raw);
    let family = |name: &str| {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let labels_of = |exemplar: &prometheus_client::encoding::prometheus_protobuf::prometheus_data_model::Exemplar| {
        exemplar
            .label
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect::<Vec<_>>()
    };
    let expected = |i| {
        vec![
            ("trace_id".to_string(), trace_id(i)),
            ("span_id".to_string(), span_id(i)),
        ]
    };
    let counter = family(REQUESTS).metric[0]
        .counter
        .as_ref()
        .expect("a counter");
    assert_eq!(counter.value, 2.0);
    let exemplar = counter.exemplar.as_ref().expect("the counter's exemplar");
    assert_eq!(labels_of(exemplar), expected(2));
    assert_eq!(exemplar.value, 1.0);
    let histogram = family("http_server_request_duration_seconds").metric[0]
        .histogram
        .as_ref()
        .expect("a histogram");
    let kept: Vec<_> = histogram
        .bucket
        .iter()
        .filter_map(|b| {
            b.exemplar
                .as_ref()
                .map(|e| (b.upper_bound, labels_of(e), e.value))
        })
        .collect();
    assert!(
        kept.iter().any(|(_, labels, _)| *labels == expected(2)),
        "{kept:?}"
    );
    for (bound, labels, value) in &kept {
        assert!(*labels == expected(1) || *labels == expected(2), "{kept:?}");
        assert!(value <= bound, "{kept:?}");
    }
}

/// Without the option, a traced request leaves no exemplar anywhere.
async fn exemplars_are_off_by_default() {
    let registry = MetricsRegistry::new();
    let addr = common::serve(app(MetricsLayer::new(&registry).unwrap())).await;
    get_traced(addr, "/", &traceparent(1, true)).await;
    let (body, samples) = openmetrics(addr).await;
    assert_eq!(samples.sum(REQUESTS, &[("http_route", "/")]), 1.0);
    assert!(exemplars(&body).is_empty(), "{body}");
}

/// A function over the request names the exemplar; one that panics, or finds labels
/// too long for an exemplar, leaves none and the request is still counted.
async fn a_request_function_names_the_exemplar() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .exemplars(Exemplars::from_request(|parts| {
            let id = parts.headers.get("x-request-id")?.to_str().ok()?;
            assert!(id != "panic", "a function that fails");
            ExemplarLabels::new([("request_id", id)])
        }))
        .build()
        .unwrap();
    let addr = common::serve(app(layer)).await;
    let send = |path: &'static str, id: String| async move {
        common::send_with_headers(addr, Method::GET, path, &[("x-request-id", &id)]).await
    };
    send("/", "req-1".into()).await;
    send("/other", "panic".into()).await;
    send("/other", "x".repeat(200)).await;
    let (body, samples) = openmetrics(addr).await;
    assert_eq!(samples.sum(REQUESTS, &[("http_route", "/other")]), 2.0);
    let found = exemplars(&body);
    assert!(
        found.iter().all(|e| e.sample.labels["http_route"] == "/"),
        "{body}"
    );
    let counter = found
        .iter()
        .find(|e| e.sample.name == REQUESTS)
        .expect("one");
    let expected = BTreeMap::from([("request_id".to_string(), "req-1".to_string())]);
    assert_eq!(counter.labels, expected);
}

/// A gRPC call's trace context (request metadata) is the exemplar of its code's
/// counter and of its duration's bucket.
async fn grpc_calls_carry_their_trace_ids() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        .exemplars(Exemplars::traceparent())
        .build()
        .unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = common::serve_tonic(layer, health).await;
    let mut client = common::health_client(addr).await;
    for i in 1..=2 {
        let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        });
        let value = traceparent(i, true).parse().expect("ASCII");
        request.metadata_mut().insert("traceparent", value);
        client.check(request).await.expect("serving");
    }
    let (body, samples) = openmetrics(addr).await;
    let method = [("grpc_method", "Check"), ("grpc_code", "OK")];
    assert_eq!(
        samples.sum("grpc_server_handled_total", &method),
        2.0,
        "{body}"
    );
    let found = exemplars(&body);
    let handled = found
        .iter()
        .find(|e| e.sample.name == "grpc_server_handled_total")
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(handled.sample.labels["grpc_code"], "OK");
    assert_eq!(trace_of(handled), (&*trace_id(2), &*span_id(2)));
    let handling: Vec<_> = found
        .iter()
        .filter(|e| e.sample.name == "grpc_server_handling_seconds_bucket")
        .collect();
    assert!(
        handling.iter().any(|e| trace_of(e).0 == trace_id(2)),
        "{body}"
    );
    assert!(
        handling
            .iter()
            .all(|e| [trace_id(1), trace_id(2)].contains(&trace_of(e).0.to_string())),
        "{body}"
    );
}

/// Python's client keeps no exemplars in its files, and neither does this crate in
/// multi-process mode: the traced requests are counted, and no scrape has an exemplar.
async fn multiprocess_mode_keeps_no_exemplars() {
    let dir = TempDir::new("exemplars-multiprocess");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let addr = traced_app(&registry).await;
    for i in 1..=3 {
        get_traced(addr, "/", &traceparent(i, true)).await;
    }
    let (body, samples) = openmetrics(addr).await;
    assert_eq!(samples.sum(REQUESTS, &[("http_route", "/")]), 3.0, "{body}");
    assert!(exemplars(&body).is_empty(), "{body}");
    {
        let reply = common::scrape_reply(addr, &[("accept", common::fixtures::PROTOBUF)]).await;
        for family in common::fixtures::protobuf_families(&reply.raw) {
            for metric in &family.metric {
                let counter = metric.counter.as_ref().and_then(|c| c.exemplar.as_ref());
                let buckets = metric.histogram.iter().flat_map(|h| &h.bucket);
                assert!(counter.is_none(), "{}", family.name);
                assert!(
                    buckets.into_iter().all(|b| b.exemplar.is_none()),
                    "{}",
                    family.name
                );
            }
        }
    }
}

/// Python's OpenMetrics parser reads the exposition and finds the same exemplars.
async fn pythons_openmetrics_parser_reads_the_exemplars() -> common::Checked {
    let python = common::require_python_client("read exemplars with Python's parser")?;
    let registry = MetricsRegistry::new();
    let addr = traced_app(&registry).await;
    get_traced(addr, "/", &traceparent(3, true)).await;
    let (body, _) = openmetrics(addr).await;
    let script = "for family in parse(sys.stdin.read()):\n\
                  \x20   for s in family.samples:\n\
                  \x20       if s.exemplar:\n\
                  \x20           print(s.name, s.exemplar.labels['trace_id'], s.exemplar.labels['span_id'], s.exemplar.value)\n";
    let printed = common::python_parser_output(&python, script, "om", &body);
    let lines: Vec<&str> = printed.lines().collect();
    let counter = format!("{REQUESTS} {} {} 1.0", trace_id(3), span_id(3));
    assert!(lines.contains(&counter.as_str()), "{printed}");
    let bucket = lines
        .iter()
        .filter(|line| line.starts_with(DURATION))
        .collect::<Vec<_>>();
    assert_eq!(bucket.len(), 1, "{printed}");
    assert!(bucket[0].contains(&trace_id(3)), "{printed}");
    assert_eq!(exemplars(&body).len(), lines.len());
    Ok(())
}

test_main! {
    tokio traced_requests_leave_their_trace_ids,
    tokio protobuf_scrapes_carry_the_exemplars,
    tokio exemplars_are_off_by_default,
    tokio a_request_function_names_the_exemplar,
    tokio grpc_calls_carry_their_trace_ids,
    tokio multiprocess_mode_keeps_no_exemplars,
    tokio pythons_openmetrics_parser_reads_the_exemplars,
}
