//! End to end through a real server on 127.0.0.1: the layer's families, the endpoint,
//! and every way a request can end. Routes are named by axum's `MatchedPath`, so these
//! tests need the `axum` feature.

mod common;

use std::borrow::Cow;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::{eventually, scrape, send, serve, Exposition};
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{service_fn, Layer};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

const REQUESTS: &str = "http_server_requests_total";
const ACTIVE: &str = "http_server_active_requests";
const DURATION_SUM: &str = "http_server_request_duration_seconds_sum";
const DURATION_COUNT: &str = "http_server_request_duration_seconds_count";
const DURATION_BUCKET: &str = "http_server_request_duration_seconds_bucket";
const WAIT: Duration = Duration::from_secs(10);

fn labels<'a>(method: &'a str, status: &'a str, route: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("http_request_method", method),
        ("http_response_status_code", status),
        ("http_route", route),
    ]
}

/// A body that sends `chunks` chunks, one every `interval`, then ends; or never ends
/// when `chunks` is `None`.
struct SlowBody {
    remaining: Option<u32>,
    interval: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl SlowBody {
    fn new(chunks: Option<u32>, interval: Duration) -> Self {
        Self {
            remaining: chunks,
            interval,
            sleep: Box::pin(tokio::time::sleep(interval)),
        }
    }
}

impl Body for SlowBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == Some(0) {
            return Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        let next = tokio::time::Instant::now() + self.interval;
        self.sleep.as_mut().reset(next);
        if let Some(remaining) = &mut self.remaining {
            *remaining -= 1;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"tick\n")))))
    }
}

use std::future::Future as _;

fn app(registry: &MetricsRegistry) -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route(
            "/users/{id}",
            get(|| async { "user" }).post(|| async { "created" }),
        )
        .route(
            "/stream",
            get(|| async {
                axum::body::Body::new(SlowBody::new(Some(4), Duration::from_millis(500)))
            }),
        )
        .route(
            "/endless",
            get(|| async { axum::body::Body::new(SlowBody::new(None, Duration::from_millis(50))) }),
        )
        .route("/hang", get(std::future::pending::<&'static str>))
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler panicked on purpose");
                }
                "unreachable"
            }),
        )
        .layer(MetricsLayer::new(registry).expect("layer builds"))
}

async fn start() -> (MetricsRegistry, std::net::SocketAddr) {
    let registry = MetricsRegistry::new();
    let addr = serve(app(&registry)).await;
    (registry, addr)
}

async fn counts_requests_by_matched_route_method_and_status() {
    let (_registry, addr) = start().await;
    for id in 0..3 {
        assert_eq!(
            common::get(addr, &format!("/users/{id}")).await.status,
            StatusCode::OK
        );
    }
    send(addr, Method::POST, "/users/9").await;
    common::get(addr, "/").await;

    let metrics = scrape(addr).await;
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "200", "/users/{id}")),
        Some(3.0)
    );
    assert_eq!(
        metrics.value(REQUESTS, &labels("POST", "200", "/users/{id}")),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "200", "/")),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(DURATION_COUNT, &labels("GET", "200", "/users/{id}")),
        Some(3.0)
    );
    assert_eq!(
        metrics.value(
            ACTIVE,
            &[
                ("http_request_method", "GET"),
                ("http_route", "/users/{id}")
            ]
        ),
        Some(0.0)
    );
    // No series ever carries a raw path.
    assert!(metrics
        .matching(REQUESTS, &[("http_route", "/users/0")])
        .is_empty());
    assert!(metrics.declares("http_server_request_duration_seconds", "histogram"));
    assert!(metrics.declares("http_server_requests_total", "counter"));
    assert!(metrics.declares("http_server_active_requests", "gauge"));
}

async fn unmatched_paths_share_one_route_series() {
    let (_registry, addr) = start().await;
    for i in 0..300 {
        let reply = common::get(addr, &format!("/scanner/{i}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    let metrics = scrape(addr).await;
    let not_found = metrics.matching(REQUESTS, &[("http_response_status_code", "404")]);
    assert_eq!(not_found.len(), 1, "{not_found:?}");
    assert_eq!(not_found[0].labels["http_route"], "_OTHER");
    assert_eq!(not_found[0].value, 300.0);
}

/// Routes of two routers built apart (so axum names each route with its own string)
/// and more routes than the layer caches: every request lands in its route's one series.
async fn routes_of_separately_built_routers_share_their_series() {
    const ROUTES: usize = 150;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::new(&registry).expect("layer builds");
    let router = || {
        (0..ROUTES)
            .fold(Router::new(), |router, i| {
                router.route(
                    &format!("/r{i}/{{id}}"),
                    get(|| async { "got" }).post(|| async { "posted" }),
                )
            })
            .layer(layer.clone())
    };
    let first = serve(router()).await;
    let second = serve(router()).await;
    for round in 0..2 {
        for i in 0..ROUTES {
            for addr in [first, second] {
                let reply = common::get(addr, &format!("/r{i}/{round}")).await;
                assert_eq!(reply.status, StatusCode::OK);
            }
            if i % 3 == 0 {
                send(first, Method::POST, &format!("/r{i}/{round}")).await;
            }
        }
    }
    let metrics = scrape(first).await;
    for i in 0..ROUTES {
        let route = format!("/r{i}/{{id}}");
        assert_eq!(
            metrics.value(REQUESTS, &labels("GET", "200", &route)),
            Some(4.0),
            "{route}"
        );
        let posted = (i % 3 == 0).then_some(2.0);
        assert_eq!(
            metrics.value(REQUESTS, &labels("POST", "200", &route)),
            posted,
            "{route}"
        );
    }
    assert_eq!(
        metrics.sum(REQUESTS, &[]),
        (ROUTES * 4 + ROUTES.div_ceil(3) * 2) as f64
    );
}

async fn scrapes_are_not_counted() {
    let (_registry, addr) = start().await;
    for _ in 0..3 {
        scrape(addr).await;
    }
    let metrics = scrape(addr).await;
    assert_eq!(metrics.sum(REQUESTS, &[]), 0.0, "{}", metrics.text);
}

async fn cardinality_cap_folds_new_label_sets_into_the_overflow_series() {
    let registry = MetricsRegistry::new();
    // A route function that (wrongly) echoes the path: the cap must still hold.
    let layer = MetricsLayer::builder(&registry)
        .max_series(5)
        .route_fn(|parts| Some(Cow::Owned(parts.uri.path().to_string())))
        .build()
        .expect("layer builds");
    let service = layer.layer(service_fn(
        |_request: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        },
    ));
    let addr = serve(service).await;
    for i in 0..20 {
        common::get(addr, &format!("/item/{i}")).await;
    }
    let metrics = scrape(addr).await;
    let overflow = [("otel_metric_overflow", "true")];
    let regular: Vec<_> = metrics
        .matching(REQUESTS, &[])
        .into_iter()
        .filter(|s| !s.labels.contains_key("otel_metric_overflow"))
        .collect();
    assert_eq!(regular.len(), 5, "{}", metrics.text);
    assert!(regular.iter().all(|s| s.value == 1.0));
    assert_eq!(metrics.value(REQUESTS, &overflow), Some(15.0));
    assert_eq!(metrics.value(DURATION_COUNT, &overflow), Some(15.0));
    assert_eq!(metrics.value(ACTIVE, &overflow), Some(0.0));
    assert_eq!(metrics.sum(REQUESTS, &[]), 20.0);
}

async fn duration_covers_a_streamed_body() {
    let (_registry, addr) = start().await;
    let reply = common::get(addr, "/stream").await;
    assert_eq!(reply.body.lines().count(), 4);
    let metrics = scrape(addr).await;
    let route = labels("GET", "200", "/stream");
    let seconds = metrics
        .value(DURATION_SUM, &route)
        .expect("stream recorded");
    assert!(
        (2.0..3.0).contains(&seconds),
        "a 2 s stream recorded as {seconds} s"
    );
    let bucket = |le: &str| {
        let mut with_le = route.to_vec();
        with_le.push(("le", le));
        metrics.value(DURATION_BUCKET, &with_le)
    };
    assert_eq!(bucket("1.0").or(bucket("1")), Some(0.0));
    assert_eq!(bucket("2.5"), Some(1.0));
}

async fn client_dropping_mid_body_is_recorded_and_leaves_no_request_in_flight() {
    let (_registry, addr) = start().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /endless HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("request written");
    // Read until the headers and a first chunk arrived, then go away.
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    while !String::from_utf8_lossy(&received).contains("tick") {
        let read = stream.read(&mut buffer).await.expect("read");
        assert!(read > 0, "server closed early");
        received.extend_from_slice(&buffer[..read]);
    }
    let in_flight = [("http_request_method", "GET"), ("http_route", "/endless")];
    assert_eq!(scrape(addr).await.value(ACTIVE, &in_flight), Some(1.0));
    drop(stream);

    let metrics = eventually(WAIT, "the dropped stream to be recorded", || async {
        let metrics = scrape(addr).await;
        (metrics.value(REQUESTS, &labels("GET", "200", "/endless")) == Some(1.0)).then_some(metrics)
    })
    .await;
    assert_eq!(metrics.value(ACTIVE, &in_flight), Some(0.0));
    assert_eq!(
        metrics.value(DURATION_COUNT, &labels("GET", "200", "/endless")),
        Some(1.0)
    );
}

async fn client_dropping_before_the_headers_records_499() {
    let (_registry, addr) = start().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /hang HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("request written");
    let in_flight = [("http_request_method", "GET"), ("http_route", "/hang")];
    eventually(WAIT, "the request to be in flight", || async {
        (scrape(addr).await.value(ACTIVE, &in_flight) == Some(1.0)).then_some(())
    })
    .await;
    drop(stream);
    let metrics = eventually(WAIT, "the cancelled request to be recorded", || async {
        let metrics = scrape(addr).await;
        (metrics.value(REQUESTS, &labels("GET", "499", "/hang")) == Some(1.0)).then_some(metrics)
    })
    .await;
    assert_eq!(metrics.value(ACTIVE, &in_flight), Some(0.0));
    assert_eq!(
        metrics.value(DURATION_COUNT, &labels("GET", "499", "/hang")),
        Some(1.0)
    );
}

async fn a_panicking_handler_records_500_and_leaves_no_request_in_flight() {
    let (_registry, addr) = start().await;
    // The connection dies with the handler; the client sees an error, not a response.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /panic HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("request written");
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink).await;

    let metrics = eventually(WAIT, "the panicked request to be recorded", || async {
        let metrics = scrape(addr).await;
        (metrics.value(REQUESTS, &labels("GET", "500", "/panic")) == Some(1.0)).then_some(metrics)
    })
    .await;
    assert_eq!(
        metrics.value(
            ACTIVE,
            &[("http_request_method", "GET"), ("http_route", "/panic")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metrics.value(DURATION_COUNT, &labels("GET", "500", "/panic")),
        Some(1.0)
    );
}

async fn an_inner_error_records_500_and_leaves_no_request_in_flight() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|_| Some(Cow::Borrowed("/fails")))
        .build()
        .expect("layer builds");
    let service = layer.layer(service_fn(
        |_request: Request<hyper::body::Incoming>| async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::other("backend unavailable"))
        },
    ));
    let addr = serve(service).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /anything HTTP/1.1\r\nhost: test\r\n\r\n")
        .await
        .expect("request written");
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink).await;

    let metrics = eventually(WAIT, "the failed request to be recorded", || async {
        let metrics = scrape(addr).await;
        (metrics.value(REQUESTS, &labels("GET", "500", "/fails")) == Some(1.0)).then_some(metrics)
    })
    .await;
    assert_eq!(
        metrics.value(
            ACTIVE,
            &[("http_request_method", "GET"), ("http_route", "/fails")]
        ),
        Some(0.0)
    );
}

async fn unknown_methods_are_labelled_other() {
    let (_registry, addr) = start().await;
    let method = Method::from_bytes(b"BREW").expect("valid token");
    send(addr, method, "/").await;
    let metrics = scrape(addr).await;
    assert_eq!(
        metrics.sum(REQUESTS, &[("http_request_method", "_OTHER")]),
        1.0
    );
    assert!(metrics
        .matching(REQUESTS, &[("http_request_method", "BREW")])
        .is_empty());
}

async fn endpoint_answers_get_and_head_and_refuses_other_methods() {
    let (_registry, addr) = start().await;
    assert_eq!(common::get(addr, "/").await.status, StatusCode::OK);
    let reply = common::get(addr, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(reply
        .body
        .contains("# TYPE http_server_requests_total counter"));

    let head = send(addr, Method::HEAD, "/metrics").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(
        head.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // The length GET would send (process metrics make the two differ by a few bytes).
    let length: usize = head.headers[header::CONTENT_LENGTH]
        .to_str()
        .ok()
        .and_then(|length| length.parse().ok())
        .expect("a content length");
    assert!(
        length.abs_diff(reply.raw.len()) < 64,
        "{length} against {}",
        reply.raw.len()
    );
    assert!(head.body.is_empty());

    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let refused = send(addr, method.clone(), "/metrics").await;
        assert_eq!(refused.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(refused.headers[header::ALLOW], "GET, HEAD");
    }
    // None of these were recorded: only the request to `/` was.
    assert_eq!(scrape(addr).await.sum(REQUESTS, &[]), 1.0);
}

async fn endpoint_at_a_custom_path_leaves_the_default_path_to_the_app() {
    let registry = MetricsRegistry::new();
    let router = Router::new()
        .route("/metrics", get(|| async { "the app's own page" }))
        .layer(
            MetricsLayer::builder(&registry)
                .endpoint_path("/internal/metrics")
                .build()
                .expect("layer builds"),
        );
    let addr = serve(router).await;
    assert_eq!(
        common::get(addr, "/metrics").await.body,
        "the app's own page"
    );
    let metrics = common::scrape_path(addr, "/internal/metrics").await;
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "200", "/metrics")),
        Some(1.0)
    );
}

async fn endpoint_can_be_turned_off_and_served_on_its_own_listener() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .without_endpoint()
        .build()
        .expect("layer builds");
    let endpoint = layer.endpoint();
    let app_addr = serve(
        Router::new()
            .route("/", get(|| async { "app" }))
            .layer(layer),
    )
    .await;
    let metrics_addr = serve(endpoint).await;

    assert_eq!(
        common::get(app_addr, "/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    common::get(app_addr, "/").await;
    let metrics = scrape(metrics_addr).await;
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "200", "/")),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "404", "_OTHER")),
        Some(1.0)
    );
    assert_eq!(
        common::get(metrics_addr, "/other").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(metrics_addr, Method::POST, "/metrics").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

async fn promtool_accepts_the_scrape() -> common::Checked {
    let promtool = common::require_tool(
        "promtool",
        "check the exposition with `promtool check metrics`",
    )?;
    let registry = MetricsRegistry::new();
    registry
        .provider(
            "jobs_done_total",
            "Jobs done.",
            tower_prometheus::metrics::Counter::default,
        )
        .expect("declared");
    let addr = serve(app(&registry)).await;
    common::get(addr, "/users/1").await;
    common::get(addr, "/nowhere").await;
    let body = common::get(addr, "/metrics").await.body;
    common::assert_promtool_accepts(&promtool, &body);
    // The body parses and holds what was recorded.
    let metrics = Exposition::parse(&body);
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "200", "/users/{id}")),
        Some(1.0)
    );
    assert_eq!(metrics.value("jobs_done_total", &[]), Some(0.0));
    Ok(())
}

async fn objectives_export_their_targets_and_count_requests_within_the_latency() {
    use tower_prometheus::layer::Objective;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .objective(
            "/users/{id}",
            Objective::availability(0.999).with_latency(Duration::from_millis(250), 0.99),
        )
        .objective("/slow", Objective::latency(Duration::from_millis(50), 0.9))
        .build()
        .expect("layer builds");
    let router = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(120)).await;
                "slow"
            }),
        )
        .route("/", get(|| async { "no objective" }))
        .layer(layer);
    let addr = serve(router).await;
    for id in 0..4 {
        common::get(addr, &format!("/users/{id}")).await;
    }
    common::get(addr, "/slow").await;
    common::get(addr, "/").await;

    let metrics = scrape(addr).await;
    let objective = "http_server_slo_objective";
    assert_eq!(
        metrics.value(
            objective,
            &[("http_route", "/users/{id}"), ("slo", "availability")]
        ),
        Some(0.999)
    );
    assert_eq!(
        metrics.value(
            objective,
            &[
                ("http_route", "/users/{id}"),
                ("slo", "latency"),
                ("threshold_seconds", "0.25")
            ]
        ),
        Some(0.99)
    );
    let good = "http_server_slo_latency_good_total";
    assert_eq!(
        metrics.value(good, &[("http_route", "/users/{id}")]),
        Some(4.0)
    );
    // The slow route had its request counted, but not as good.
    assert_eq!(
        metrics.value(REQUESTS, &labels("GET", "200", "/slow")),
        Some(1.0)
    );
    assert_eq!(metrics.value(good, &[("http_route", "/slow")]), Some(0.0));
    assert!(metrics.matching(good, &[("http_route", "/")]).is_empty());

    let invalid = MetricsLayer::builder(&MetricsRegistry::new())
        .objective("/", Objective::availability(1.5))
        .build();
    assert!(matches!(
        invalid,
        Err(tower_prometheus::BuildError::InvalidObjective(_))
    ));
}

test_main! {
    tokio counts_requests_by_matched_route_method_and_status,
    tokio unmatched_paths_share_one_route_series,
    tokio routes_of_separately_built_routers_share_their_series,
    tokio scrapes_are_not_counted,
    tokio cardinality_cap_folds_new_label_sets_into_the_overflow_series,
    tokio duration_covers_a_streamed_body,
    tokio client_dropping_mid_body_is_recorded_and_leaves_no_request_in_flight,
    tokio client_dropping_before_the_headers_records_499,
    tokio a_panicking_handler_records_500_and_leaves_no_request_in_flight,
    tokio an_inner_error_records_500_and_leaves_no_request_in_flight,
    tokio unknown_methods_are_labelled_other,
    tokio endpoint_answers_get_and_head_and_refuses_other_methods,
    tokio endpoint_at_a_custom_path_leaves_the_default_path_to_the_app,
    tokio endpoint_can_be_turned_off_and_served_on_its_own_listener,
    tokio promtool_accepts_the_scrape,
    tokio objectives_export_their_targets_and_count_requests_within_the_latency,
}
