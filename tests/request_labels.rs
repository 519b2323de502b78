//! Labels read from requests and responses: each bounded to its allowed or first-seen
//! values (others are `_OTHER`), on the HTTP families, with the family caps holding;
//! a flood of distinct values leaves the series and the memory as they were.
#![cfg(feature = "axum")]

mod common;

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::{scrape, send_with_headers, serve};
use http::{HeaderValue, Method, Request};
use tower::{service_fn, Layer};
use tower_prometheus::layer::{LabelValues, REQUESTS_TOTAL};
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

#[tokio::test]
async fn labels_come_from_the_request_and_the_response_bounded_to_their_values() {
    let registry = MetricsRegistry::new();
    let addr = serve(app(&registry)).await;
    // (tenant header, wanted cache header, times)
    let sent: [(Option<&str>, Option<&str>, usize); 7] = [
        (Some("acme"), Some("hit"), 3),
        (Some("acme"), Some("miss"), 1),
        (Some("globex"), Some("hit"), 2),
        // Past the first two tenants, and a cache value outside the allow-list.
        (Some("initech"), Some("hit"), 1),
        (Some("umbrella"), Some("stale"), 2),
        (None, Some("miss"), 1),
        (Some("acme"), None, 1),
    ];
    for (tenant, cache, times) in sent {
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
        assert_eq!(count(family, "acme", "hit"), Some(3.0), "{family}");
        assert_eq!(count(family, "acme", "miss"), Some(1.0), "{family}");
        assert_eq!(count(family, "globex", "hit"), Some(2.0), "{family}");
        assert_eq!(
            count(family, "_OTHER", "hit"),
            Some(1.0),
            "{family}: initech"
        );
        assert_eq!(
            count(family, "_OTHER", "_OTHER"),
            Some(2.0),
            "{family}: umbrella, stale"
        );
        assert_eq!(count(family, "", "miss"), Some(1.0), "{family}: no tenant");
        assert_eq!(
            count(family, "acme", ""),
            Some(1.0),
            "{family}: no cache header"
        );
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
