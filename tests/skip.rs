//! Skipped requests (by route, by a predicate on the request's head) reach the inner
//! service as they came and leave no series in any family; the others are recorded
//! as before.
#![cfg(feature = "axum")]

mod common;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{eventually, scrape, send_with_headers, serve, Exposition};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{service_fn, Layer};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

const REQUESTS: &str = "http_server_requests_total";
const HTTP_FAMILIES: [&str; 4] = [
    REQUESTS,
    "http_server_active_requests",
    "http_server_request_duration_seconds_count",
    "http_server_request_duration_seconds_bucket",
];
const WAIT: Duration = Duration::from_secs(10);

/// `/health` answers `ok`, or hangs before its headers (`x-hang`), or echoes the
/// request body as it comes (`x-stream`); `entered` counts the calls that reached it.
fn app(entered: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/health",
            get(move |headers: HeaderMap, body: AxumBody| {
                entered.fetch_add(1, Ordering::SeqCst);
                async move {
                    if headers.contains_key("x-hang") {
                        std::future::pending::<()>().await;
                    }
                    if headers.contains_key("x-stream") {
                        return Response::new(body);
                    }
                    Response::new(AxumBody::from("ok"))
                }
            }),
        )
        .route("/users/{id}", get(|| async { "user" }))
}

/// The series of `family` that name `route`.
fn of_route<'a>(metrics: &'a Exposition, family: &str, route: &str) -> Vec<&'a common::Sample> {
    metrics.matching(family, &[("http_route", route)])
}

/// Opens a raw connection for `GET /health` with `header` and a chunked body that never
/// ends, reading the response until `until` appears (nothing when empty).
async fn raw_health(addr: SocketAddr, header: &str, until: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /health HTTP/1.1\r\nhost: test\r\n{header}: 1\r\n\
         transfer-encoding: chunked\r\n\r\n4\r\ntick\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !until.is_empty() && !String::from_utf8_lossy(&received).contains(until) {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "server closed early");
        received.extend_from_slice(&buffer[..read]);
    }
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skipped_route_under_load_leaves_no_series_and_others_count_exactly() {
    let registry = MetricsRegistry::new();
    let entered = Arc::new(AtomicUsize::new(0));
    let layer = MetricsLayer::builder(&registry)
        .skip_routes(["/health"])
        .build()
        .unwrap();
    let addr = serve(app(Arc::clone(&entered)).layer(layer)).await;

    const HEALTH: usize = 300;
    const USERS: usize = 120;
    const DROPPED: usize = 20;
    // Dropped midway: before the headers, and in the middle of the body.
    let mut hanging = Vec::new();
    for _ in 0..DROPPED {
        hanging.push(raw_health(addr, "x-hang", "").await);
        hanging.push(raw_health(addr, "x-stream", "tick").await);
    }
    let mut calls = Vec::new();
    for n in 0..HEALTH + USERS {
        calls.push(tokio::spawn(async move {
            let path = if n < HEALTH {
                "/health".to_string()
            } else {
                format!("/users/{n}")
            };
            let reply = common::get(addr, &path).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            let expected = if n < HEALTH { "ok" } else { "user" };
            assert_eq!(reply.body, expected, "{path}");
        }));
    }
    for call in calls {
        call.await.expect("request task");
    }
    // The skipped calls reached the handler, the hanging ones included.
    eventually(WAIT, "every /health call to reach its handler", || async {
        (entered.load(Ordering::SeqCst) == HEALTH + 2 * DROPPED).then_some(())
    })
    .await;
    drop(hanging);

    let metrics = scrape(addr).await;
    let users = [
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("http_route", "/users/{id}"),
    ];
    assert_eq!(metrics.value(REQUESTS, &users), Some(USERS as f64));
    assert_eq!(
        metrics.value("http_server_request_duration_seconds_count", &users),
        Some(USERS as f64)
    );
    // Nothing else was counted: no /health, no scrape.
    assert_eq!(metrics.sum(REQUESTS, &[]), USERS as f64);
    for family in HTTP_FAMILIES {
        for route in ["/health", "/metrics", "_OTHER"] {
            assert!(
                of_route(&metrics, family, route).is_empty(),
                "{family} has {route}: {:?}",
                of_route(&metrics, family, route)
            );
        }
    }
    // Once the dropped connections are gone, still nothing of /health.
    let metrics = eventually(WAIT, "in-flight /users requests to settle", || async {
        let metrics = scrape(addr).await;
        (metrics.sum("http_server_active_requests", &[]) == 0.0).then_some(metrics)
    })
    .await;
    for family in HTTP_FAMILIES {
        assert!(of_route(&metrics, family, "/health").is_empty(), "{family}");
    }
}

#[tokio::test]
async fn a_predicate_skips_exactly_the_requests_it_names() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .skip_if(|parts| {
            parts
                .headers
                .get("x-probe")
                .is_some_and(|value| value == "1")
        })
        .build()
        .unwrap();
    let addr = serve(app(Arc::default()).layer(layer)).await;

    for (header, times) in [(None, 5), (Some("0"), 3), (Some("1"), 7)] {
        for _ in 0..times {
            let headers: Vec<_> = header.map(|value| ("x-probe", value)).into_iter().collect();
            let reply = send_with_headers(addr, Method::GET, "/users/1", &headers).await;
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (StatusCode::OK, "user")
            );
        }
    }
    let metrics = scrape(addr).await;
    let users = [
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("http_route", "/users/{id}"),
    ];
    assert_eq!(metrics.value(REQUESTS, &users), Some(8.0));
    assert_eq!(metrics.sum(REQUESTS, &[]), 8.0);
}

#[tokio::test]
async fn a_route_named_by_the_route_function_is_skipped() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|parts| match parts.uri.path() {
            "/health" => Some(Cow::Borrowed("/health")),
            path if path.starts_with("/users/") => Some(Cow::Borrowed("/users/{id}")),
            _ => None,
        })
        .skip_routes(["/health"])
        .build()
        .unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&served);
    let service = layer.layer(service_fn(move |_request: Request<_>| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hi")))) }
    }));
    let addr = serve(service).await;

    for path in [
        "/health", "/users/1", "/health", "/users/2", "/health", "/x",
    ] {
        assert_eq!(common::get(addr, path).await.body, "hi", "{path}");
    }
    assert_eq!(served.load(Ordering::SeqCst), 6);
    let metrics = scrape(addr).await;
    let route = |route| {
        [
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
            ("http_route", route),
        ]
    };
    assert_eq!(metrics.value(REQUESTS, &route("/users/{id}")), Some(2.0));
    assert_eq!(metrics.value(REQUESTS, &route("_OTHER")), Some(1.0));
    assert_eq!(metrics.sum(REQUESTS, &[]), 3.0);
    for family in HTTP_FAMILIES {
        assert!(of_route(&metrics, family, "/health").is_empty(), "{family}");
    }
}

/// A gRPC answer with status OK and no message.
fn grpc_ok() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", http::HeaderValue::from_static("0"));
    response
}

/// Sends a POST with gRPC's content type to each path, expecting 200.
async fn grpc_calls(addr: SocketAddr, paths: &[&str]) {
    let grpc = [("content-type", "application/grpc")];
    for path in paths {
        let reply = send_with_headers(addr, Method::POST, path, &grpc).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
}

/// Only the `pkg.Jobs/Run` calls are in the gRPC families, `runs` of them.
fn assert_only_jobs_recorded(metrics: &Exposition, runs: f64) {
    let jobs = [("grpc_service", "pkg.Jobs"), ("grpc_method", "Run")];
    for family in ["grpc_server_started_total", "grpc_server_handled_total"] {
        assert_eq!(metrics.sum(family, &jobs), runs, "{family}");
        assert_eq!(metrics.sum(family, &[]), runs, "{family}");
    }
    assert_eq!(metrics.sum(REQUESTS, &[]), 0.0);
}

#[tokio::test]
async fn a_grpc_call_to_a_skipped_route_of_a_router_is_not_recorded() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .skip_routes(["/grpc.health.v1.Health/Check"])
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/grpc.health.v1.Health/Check",
            axum::routing::post(|| async { grpc_ok() }),
        )
        .route("/pkg.Jobs/Run", axum::routing::post(|| async { grpc_ok() }))
        .layer(layer);
    let addr = serve(app).await;
    grpc_calls(
        addr,
        &[
            "/grpc.health.v1.Health/Check",
            "/pkg.Jobs/Run",
            "/grpc.health.v1.Health/Check",
        ],
    )
    .await;
    assert_only_jobs_recorded(&scrape(addr).await, 1.0);
}

#[tokio::test]
async fn a_skipped_grpc_call_leaves_no_series_in_the_grpc_families() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        .skip_if(|parts| parts.uri.path().starts_with("/grpc.health.v1.Health/"))
        .build()
        .unwrap();
    let service = layer.layer(service_fn(|_request: Request<_>| async {
        Ok::<_, Infallible>(grpc_ok())
    }));
    let addr = serve(service).await;
    grpc_calls(
        addr,
        &[
            "/grpc.health.v1.Health/Check",
            "/pkg.Jobs/Run",
            "/grpc.health.v1.Health/Check",
            "/pkg.Jobs/Run",
            "/grpc.health.v1.Health/Check",
        ],
    )
    .await;
    assert_only_jobs_recorded(&scrape(addr).await, 2.0);
}
