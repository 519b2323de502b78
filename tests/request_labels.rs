//! Labels read from requests and responses, and from gRPC calls' metadata: each
//! bounded to its allowed or first-seen values (others are `_OTHER`), on the HTTP
//! and the gRPC families, with the family caps holding; a flood of distinct values
//! leaves the series and the memory as they were.
#![cfg(feature = "axum")]

mod common;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::{eventually, health_client, scrape, send_with_headers, serve, serve_tonic};
use http::{HeaderValue, Method, Request};
use tonic::metadata::{BinaryMetadataValue, MetadataValue};
use tonic_health::pb::HealthCheckRequest;
use tower::{service_fn, Layer};
use tower_prometheus::layer::{LabelValues, REQUESTS_TOTAL};
use tower_prometheus::metrics::DEFAULT_MAX_SERIES;
use tower_prometheus::{BuildError, MetricsLayer, MetricsRegistry};

const REQUESTS: &str = "http_server_requests_total";
const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
const ACTIVE: &str = "http_server_active_requests";

/// A layer labelling requests with their `x-tenant` (the first two seen) and
/// responses with the `x-cache` the handler sets (`hit` or `miss`).
fn labelled_layer(registry: &MetricsRegistry) -> MetricsLayer {
    MetricsLayer::builder(registry)
        .request_label("tenant", LabelValues::first(2), |head| {
            head.headers.get("x-tenant")?.to_str().ok()
        })
        .response_label("cache", LabelValues::allow(["hit", "miss"]), |head| {
            head.headers.get("x-cache")?.to_str().ok()
        })
        .build()
        .expect("layer builds")
}

/// `/items/{id}` answers with the `x-cache` the request asks for in `x-want-cache`.
fn app(registry: &MetricsRegistry) -> Router {
    Router::new()
        .route(
            "/items/{id}",
            get(|headers: HeaderMap| async move {
                let mut reply = HeaderMap::new();
                if let Some(wanted) = headers.get("x-want-cache") {
                    reply.insert("x-cache", wanted.clone());
                }
                (reply, "item").into_response()
            }),
        )
        .layer(labelled_layer(registry))
}

/// What the label tests send: `x-tenant` (the first two are kept), `x-want-cache`
/// (`hit` and `miss` are allowed), and how many times.
const SENT: [(Option<&str>, Option<&str>, usize); 7] = [
    (Some("acme"), Some("hit"), 3),
    (Some("acme"), Some("miss"), 1),
    (Some("globex"), Some("hit"), 2),
    // Past the first two tenants, and a cache value outside the allow-list.
    (Some("initech"), Some("hit"), 1),
    (Some("umbrella"), Some("stale"), 2),
    (None, Some("miss"), 1),
    (Some("acme"), None, 1),
];

/// The series [`SENT`] gives: `tenant`, `cache`, and the calls in each.
const EXPECTED: [(&str, &str, f64); 7] = [
    ("acme", "hit", 3.0),
    ("acme", "miss", 1.0),
    ("globex", "hit", 2.0),
    ("_OTHER", "hit", 1.0),
    ("_OTHER", "_OTHER", 2.0),
    ("", "miss", 1.0),
    ("acme", "", 1.0),
];

#[tokio::test]
async fn labels_come_from_the_request_and_the_response_bounded_to_their_values() {
    let registry = MetricsRegistry::new();
    let addr = serve(app(&registry)).await;
    for (tenant, cache, times) in SENT {
        let mut headers = Vec::new();
        if let Some(tenant) = tenant {
            headers.push(("x-tenant", tenant));
        }
        if let Some(cache) = cache {
            headers.push(("x-want-cache", cache));
        }
        for _ in 0..times {
            let reply = send_with_headers(addr, Method::GET, "/items/7", &headers).await;
            assert_eq!(reply.status, 200);
        }
    }

    let metrics = scrape(addr).await;
    let route = ("http_route", "/items/{id}");
    let count = |family: &str, tenant: &str, cache: &str| {
        metrics.value(
            family,
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", "200"),
                route,
                ("tenant", tenant),
                ("cache", cache),
            ],
        )
    };
    for family in [REQUESTS, DURATION_COUNT] {
        for (tenant, cache, requests) in EXPECTED {
            assert_eq!(
                count(family, tenant, cache),
                Some(requests),
                "{family} tenant={tenant:?} cache={cache:?}"
            );
        }
        let series = metrics.matching(family, &[route]);
        assert_eq!(series.len(), 7, "{family}: exactly the combinations sent");
        let total: f64 = series.iter().map(|sample| sample.value).sum();
        assert_eq!(total, 11.0, "{family}: every request once");
    }
    // In flight, requests are labelled by the request's labels only; all ended.
    let active = metrics.matching(ACTIVE, &[route]);
    let mut tenants: Vec<&str> = active
        .iter()
        .map(|sample| sample.labels["tenant"].as_str())
        .collect();
    tenants.sort_unstable();
    assert_eq!(tenants, ["", "_OTHER", "acme", "globex"]);
    assert!(active.iter().all(|sample| sample.value == 0.0));
    assert!(active
        .iter()
        .all(|sample| !sample.labels.contains_key("cache")));
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[test]
fn a_flood_of_distinct_values_leaves_the_allowed_ones_and_other() {
    const FLOOD: usize = 1_000_000;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|_| Some(Cow::Borrowed("/items")))
        .request_label("tenant", LabelValues::first(3), |head| {
            head.headers.get("x-tenant")?.to_str().ok()
        })
        .build()
        .expect("layer builds");
    let mut service = layer.layer(service_fn(common::answer_with_requested_status::<()>));
    let mut request_of = |tenant: &str| {
        let mut request = Request::new(());
        request.headers_mut().insert(
            "x-tenant",
            HeaderValue::from_str(tenant).expect("a header value"),
        );
        common::drive(&mut service, request);
    };
    let mut warmed = 0;
    for round in 0..FLOOD {
        request_of(&format!("tenant-{round}"));
        if round == FLOOD / 10 {
            warmed = resident_bytes();
        }
    }
    let grown = resident_bytes().saturating_sub(warmed);
    println!(
        "resident memory grew {} KiB over the last {} distinct tenants",
        grown / 1024,
        FLOOD - FLOOD / 10
    );
    assert!(grown < 4 << 20, "memory grew {grown} bytes");

    let requests: tower_prometheus::layer::RequestCount =
        registry.get(REQUESTS_TOTAL).expect("the family");
    assert_eq!(requests.len(), 4, "the first three tenants and `_OTHER`");
    let count = |tenant: &str| {
        let labels = tower_prometheus::layer::HttpLabels::new(
            tower_prometheus::layer::HttpMethod::Get,
            200,
            "/items",
        )
        .with_label("tenant", tenant);
        requests.get(&labels).map(|counter| counter.get())
    };
    for tenant in ["tenant-0", "tenant-1", "tenant-2"] {
        assert_eq!(count(tenant), Some(1), "{tenant}");
    }
    assert_eq!(count("_OTHER"), Some(FLOOD as u64 - 3));
}

#[test]
fn labels_that_cannot_be_added_fail_the_build_with_their_name() {
    let refused = |builder: tower_prometheus::layer::MetricsLayerBuilder| match builder.build() {
        Err(BuildError::InvalidLabel { label, reason }) => (label, reason),
        other => panic!("expected an invalid label, got {other:?}"),
    };
    let registry = MetricsRegistry::new();
    fn none(_: &http::request::Parts) -> Option<&str> {
        None
    }
    let cases: Vec<(tower_prometheus::layer::MetricsLayerBuilder, &str)> = vec![
        (
            MetricsLayer::builder(&registry).request_label(
                "http_route",
                LabelValues::first(1),
                none,
            ),
            "http_route",
        ),
        (
            MetricsLayer::builder(&registry).request_label("le", LabelValues::first(1), none),
            "le",
        ),
        (
            MetricsLayer::builder(&registry).request_label("1tenant", LabelValues::first(1), none),
            "1tenant",
        ),
        (
            MetricsLayer::builder(&registry).request_label("__tenant", LabelValues::first(1), none),
            "__tenant",
        ),
        (
            MetricsLayer::builder(&registry)
                .request_label("tenant", LabelValues::first(1), none)
                .response_label("tenant", LabelValues::first(1), |_| None),
            "tenant",
        ),
        (
            MetricsLayer::builder(&registry).request_label(
                "tier",
                LabelValues::allow(Vec::<String>::new()),
                none,
            ),
            "tier",
        ),
        (
            MetricsLayer::builder(&registry).request_label(
                "tier",
                LabelValues::allow(["gold", "_OTHER"]),
                none,
            ),
            "tier",
        ),
        (
            MetricsLayer::builder(&registry).request_label("tier", LabelValues::first(0), none),
            "tier",
        ),
        (
            (0..5).fold(MetricsLayer::builder(&registry), |builder, i| {
                builder.request_label(format!("l{i}"), LabelValues::first(1), none)
            }),
            "l4",
        ),
    ];
    for (builder, expected) in cases {
        let (label, reason) = refused(builder);
        assert_eq!(label, expected, "{reason}");
        assert!(!reason.is_empty());
    }
    assert!(
        !registry.is_initialized(),
        "a refused layer initialises nothing"
    );
}

const GRPC_STARTED: &str = "grpc_server_started_total";
const GRPC_HANDLED: &str = "grpc_server_handled_total";
const GRPC_HANDLING_COUNT: &str = "grpc_server_handling_seconds_count";
const GRPC_RECEIVED: &str = "grpc_server_msg_received_total";
const GRPC_SENT: &str = "grpc_server_msg_sent_total";
/// Every gRPC family, the histogram by its count.
const GRPC_FAMILIES: [&str; 5] = [
    GRPC_STARTED,
    GRPC_HANDLED,
    GRPC_HANDLING_COUNT,
    GRPC_RECEIVED,
    GRPC_SENT,
];
const HEALTH: &str = "grpc.health.v1.Health";
const WAIT: Duration = Duration::from_secs(20);

/// One `Health/Check` from `client`, with `tenant` in `x-tenant` and `cache` in
/// `x-want-cache` when given, and a binary key no label reads.
async fn check_with_metadata(client: &mut HealthClient, tenant: Option<&str>, cache: Option<&str>) {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    let metadata = request.metadata_mut();
    for (key, value) in [("x-tenant", tenant), ("x-want-cache", cache)] {
        if let Some(value) = value {
            let value: MetadataValue<_> = value.parse().expect("an ASCII metadata value");
            metadata.insert(key, value);
        }
    }
    metadata.insert_bin(
        "x-trace-bin",
        BinaryMetadataValue::from_bytes(&[0, 159, 255]),
    );
    client.check(request).await.expect("check answers");
}

/// Scrapes until `family` has counted `calls` calls of `Health/Check` in all.
async fn scraped_once_handled(addr: SocketAddr, calls: f64) -> common::Exposition {
    let method = [("grpc_service", HEALTH), ("grpc_method", "Check")];
    eventually(WAIT, &format!("{calls} calls handled"), || async {
        let scraped = scrape(addr).await;
        (scraped.sum(GRPC_HANDLED, &method) == calls).then_some(scraped)
    })
    .await
}

#[tokio::test]
async fn grpc_labels_come_from_request_metadata_bounded_to_their_values() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        // HTTP and gRPC families are apart: the same name may label both.
        .request_label("tenant", LabelValues::first(5), |head| {
            head.headers.get("x-tenant")?.to_str().ok()
        })
        .grpc_metadata_label("tenant", LabelValues::first(2), "x-tenant")
        // Metadata keys are header names: any case reads the same key.
        .grpc_metadata_label("cache", LabelValues::allow(["hit", "miss"]), "X-Want-Cache")
        .build()
        .expect("layer builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = serve_tonic(layer, health).await;
    let mut client = health_client(addr).await;
    for (tenant, cache, times) in SENT {
        for _ in 0..times {
            check_with_metadata(&mut client, tenant, cache).await;
        }
    }

    let metrics = scraped_once_handled(addr, 11.0).await;
    let labels = |tenant: &'static str, cache: &'static str| {
        vec![
            ("grpc_type", "unary"),
            ("grpc_service", HEALTH),
            ("grpc_method", "Check"),
            ("tenant", tenant),
            ("cache", cache),
        ]
    };
    for family in [GRPC_STARTED, GRPC_HANDLING_COUNT, GRPC_RECEIVED, GRPC_SENT] {
        for (tenant, cache, calls) in EXPECTED {
            assert_eq!(
                metrics.value(family, &labels(tenant, cache)),
                Some(calls),
                "{family} tenant={tenant:?} cache={cache:?}"
            );
        }
        let series = metrics.matching(family, &[("grpc_method", "Check")]);
        assert_eq!(series.len(), 7, "{family}: exactly the combinations sent");
        let total: f64 = series.iter().map(|sample| sample.value).sum();
        assert_eq!(total, 11.0, "{family}: every call once");
    }
    for (tenant, cache, calls) in EXPECTED {
        let mut handled = labels(tenant, cache);
        handled.push(("grpc_code", "OK"));
        assert_eq!(
            metrics.value(GRPC_HANDLED, &handled),
            Some(calls),
            "{handled:?}"
        );
    }
    assert_eq!(
        metrics.matching(GRPC_HANDLED, &[]).len(),
        7,
        "one code only"
    );
    // The binary key is read by no label, and labels no series.
    assert!(metrics
        .matching(GRPC_STARTED, &[])
        .iter()
        .all(|sample| sample.labels.len() == 5));
}

type HealthClient = tonic_health::pb::health_client::HealthClient<tonic::transport::Channel>;

/// A tonic server with the health service behind a gRPC-only layer labelling calls
/// with their `x-tenant`, bounded by `tenants`, its families capped at `max_series`;
/// a client of it; and the health reporter, which keeps the service serving.
async fn tenant_server(
    tenants: LabelValues,
    max_series: usize,
) -> (
    SocketAddr,
    HealthClient,
    tonic_health::server::HealthReporter,
) {
    let layer = MetricsLayer::builder(&MetricsRegistry::new())
        .grpc_only()
        .max_series(max_series)
        .grpc_metadata_label("tenant", tenants, "x-tenant")
        .build()
        .expect("layer builds");
    let (reporter, health) = tonic_health::server::health_reporter();
    let addr = serve_tonic(layer, health).await;
    (addr, health_client(addr).await, reporter)
}

/// One call with `x-tenant: tenant-{n}` for each `n`, in turn.
async fn send_tenants(client: &mut HealthClient, tenants: impl Iterator<Item = usize>) {
    for tenant in tenants {
        check_with_metadata(client, Some(&format!("tenant-{tenant}")), None).await;
    }
}

#[tokio::test]
async fn a_flood_of_distinct_metadata_values_leaves_the_first_ones_and_other() {
    const CALLS: usize = 20_000;
    const CLIENTS: usize = 8;
    const FIRST: usize = 3;
    let (addr, mut client, _reporter) =
        tenant_server(LabelValues::first(FIRST), DEFAULT_MAX_SERIES).await;
    // The first tenants are sent before the flood, so which ones they are is known.
    send_tenants(&mut client, 0..FIRST).await;
    let mut clients = tokio::task::JoinSet::new();
    for first in 0..CLIENTS {
        let mut client = client.clone();
        clients.spawn(async move {
            send_tenants(&mut client, (FIRST + first..CALLS).step_by(CLIENTS)).await;
        });
    }
    while let Some(finished) = clients.join_next().await {
        finished.expect("a client's calls");
    }

    let metrics = scraped_once_handled(addr, CALLS as f64).await;
    for family in GRPC_FAMILIES {
        let series = metrics.matching(family, &[("grpc_method", "Check")]);
        let mut tenants: Vec<&str> = series
            .iter()
            .map(|sample| sample.labels["tenant"].as_str())
            .collect();
        tenants.sort_unstable();
        assert_eq!(
            tenants,
            ["_OTHER", "tenant-0", "tenant-1", "tenant-2"],
            "{family}: the first {FIRST} tenants and `_OTHER`"
        );
        let other = metrics.matching(family, &[("grpc_method", "Check"), ("tenant", "_OTHER")]);
        assert_eq!(other[0].value, (CALLS - FIRST) as f64, "{family}");
    }
}

#[tokio::test]
async fn grpc_label_values_past_the_series_cap_fold_into_the_overflow_series() {
    const TENANTS: usize = 5;
    let (addr, mut client, _reporter) = tenant_server(LabelValues::first(10), 2).await;
    send_tenants(&mut client, 0..TENANTS).await;

    let overflow = [("otel_metric_overflow", "true")];
    let metrics = eventually(WAIT, "every call handled", || async {
        let scraped = scrape(addr).await;
        (scraped.sum(GRPC_HANDLED, &[]) == TENANTS as f64).then_some(scraped)
    })
    .await;
    for family in GRPC_FAMILIES {
        let series = metrics.matching(family, &[]);
        // Two series of their own, then the overflow series: within the cap of 4.
        assert_eq!(series.len(), 3, "{family}: {series:?}");
        for tenant in ["tenant-0", "tenant-1"] {
            let own = metrics.matching(family, &[("grpc_method", "Check"), ("tenant", tenant)]);
            assert_eq!(own.len(), 1, "{family} {tenant}");
            assert_eq!(own[0].value, 1.0, "{family} {tenant}");
        }
        assert_eq!(
            metrics.sum(family, &overflow),
            (TENANTS - 2) as f64,
            "{family}: the calls past the cap"
        );
    }
}

#[test]
fn grpc_labels_that_cannot_be_added_fail_the_build_with_their_name() {
    type Builder =
        tower_prometheus::layer::MetricsLayerBuilder<tower_prometheus::layer::CountMessages>;
    let registry = MetricsRegistry::new();
    let builder = || MetricsLayer::builder(&registry).grpc_only();
    let label = |builder: Builder, name: &str| {
        builder.grpc_metadata_label(name, LabelValues::first(1), "x-tenant")
    };
    let labels: Vec<(Builder, &str)> = vec![
        (label(builder(), "grpc_service"), "grpc_service"),
        (label(builder(), "grpc_code"), "grpc_code"),
        (label(builder(), "grpc_type"), "grpc_type"),
        (label(builder(), "le"), "le"),
        (
            label(builder(), "otel_metric_overflow"),
            "otel_metric_overflow",
        ),
        (label(builder(), "tenant-id"), "tenant-id"),
        (label(label(builder(), "tenant"), "tenant"), "tenant"),
        (
            label(builder().constant_labels([("region", "eu")]), "region"),
            "region",
        ),
        (
            builder().grpc_request_label("tier", LabelValues::allow(["gold", "_OTHER"]), |_| None),
            "tier",
        ),
        (
            (0..5).fold(builder(), |builder, i| label(builder, &format!("l{i}"))),
            "l4",
        ),
    ];
    for (builder, expected) in labels {
        match builder.build() {
            Err(BuildError::InvalidLabel { label, reason }) => {
                assert_eq!(label, expected, "{reason}");
            }
            other => panic!("expected `{expected}` refused, got {other:?}"),
        }
    }
    for key in ["x-trace-bin", "X-Trace-Bin", "x tenant", "", ":authority"] {
        let built = builder()
            .grpc_metadata_label("trace", LabelValues::first(1), key)
            .build();
        match built {
            Err(BuildError::InvalidMetadataKey {
                label,
                key: refused,
                reason,
            }) => {
                assert_eq!(
                    (label.as_str(), refused.as_str()),
                    ("trace", key),
                    "{reason}"
                );
            }
            other => panic!("expected the key `{key}` refused, got {other:?}"),
        }
    }
    assert!(
        !registry.is_initialized(),
        "a refused layer initialises nothing"
    );
}
