//! The endpoint's negotiation, compression, guard and limits, through a real server
//! on 127.0.0.1.

mod common;

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use common::fixtures::jobs_and_latency as registry;
#[cfg(feature = "protobuf")]
use common::fixtures::protobuf_families;
use common::{scrape_reply, serve, Exposition};
use http::{header, Method, StatusCode};
use tower_prometheus::metrics::{Counter, Family, Gauge};
use tower_prometheus::{BuildError, MetricsEndpoint, MetricsRegistry};

const PROMETHEUS_DEFAULT_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const PROMETHEUS_NATIVE_ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3";

#[tokio::test]
async fn formats_follow_the_accept_header() {
    let addr = serve(MetricsEndpoint::new(&registry()).unwrap()).await;

    let plain = scrape_reply(addr, &[]).await;
    assert_eq!(
        plain.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(plain.headers[header::VARY], "Accept, Accept-Encoding");
    assert_eq!(
        Exposition::parse(&plain.body).value("jobs_total", &[]),
        Some(3.0)
    );

    let open = scrape_reply(addr, &[("accept", PROMETHEUS_DEFAULT_ACCEPT)]).await;
    assert_eq!(
        open.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
    // OpenMetrics names the counter family without `_total` in its metadata.
    assert!(open.body.contains("# TYPE jobs counter"), "{}", open.body);
    assert!(open.body.contains("jobs_total 3"), "{}", open.body);

    let lower = scrape_reply(
        addr,
        &[(
            "accept",
            "application/openmetrics-text;q=0.2, text/plain;q=0.9",
        )],
    )
    .await;
    assert_eq!(
        lower.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

/// Prometheus asking for native histograms gets delimited protobuf.
#[cfg(feature = "protobuf")]
#[tokio::test]
async fn protobuf_when_prometheus_asks_for_native_histograms() {
    let addr = serve(MetricsEndpoint::new(&registry()).unwrap()).await;
    let proto = scrape_reply(addr, &[("accept", PROMETHEUS_NATIVE_ACCEPT)]).await;
    assert_eq!(
        proto.headers[header::CONTENT_TYPE],
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    );
    let families = protobuf_families(&proto.raw);
    let jobs = families
        .iter()
        .find(|f| f.name == "jobs_total")
        .expect("jobs family");
    assert_eq!(jobs.metric[0].counter.as_ref().map(|c| c.value), Some(3.0));
    let latency = families
        .iter()
        .find(|f| f.name == "latency_seconds")
        .expect("histogram family");
    let histogram = latency.metric[0].histogram.as_ref().expect("histogram");
    assert_eq!(histogram.sample_count, 3);
    assert_eq!(histogram.sample_sum, 5.55);
}

/// Without the `protobuf` feature, the same request falls back to the text format.
#[cfg(not(feature = "protobuf"))]
#[tokio::test]
async fn text_when_protobuf_is_not_built_in() {
    let addr = serve(MetricsEndpoint::new(&registry()).unwrap()).await;
    let reply = scrape_reply(addr, &[("accept", PROMETHEUS_NATIVE_ACCEPT)]).await;
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        Exposition::parse(&reply.body).value("jobs_total", &[]),
        Some(3.0)
    );
}

#[tokio::test]
async fn gzip_only_when_the_client_accepts_it() {
    let addr = serve(MetricsEndpoint::new(&registry()).unwrap()).await;
    let zipped = scrape_reply(addr, &[("accept-encoding", "gzip, deflate")]).await;
    assert_eq!(zipped.headers[header::CONTENT_ENCODING], "gzip");
    let mut text = String::new();
    flate2::read::GzDecoder::new(zipped.raw.as_slice())
        .read_to_string(&mut text)
        .expect("valid gzip");
    assert_eq!(Exposition::parse(&text).value("jobs_total", &[]), Some(3.0));

    for refused in ["gzip;q=0", "identity", "br"] {
        let plain = scrape_reply(addr, &[("accept-encoding", refused)]).await;
        assert_plain_jobs(&plain, refused);
    }
}

/// `reply` is not compressed and carries the test registry's counter.
fn assert_plain_jobs(reply: &common::Reply, case: &str) {
    assert!(
        reply.headers.get(header::CONTENT_ENCODING).is_none(),
        "{case}"
    );
    assert_eq!(
        Exposition::parse(&reply.body).value("jobs_total", &[]),
        Some(3.0),
        "{case}"
    );
}

#[tokio::test]
async fn a_bearer_token_guards_the_endpoint() {
    let registry = registry();
    let endpoint = MetricsEndpoint::builder(&registry)
        .bearer_token("s3cret")
        .build()
        .unwrap();
    let addr = serve(endpoint).await;
    for credentials in [None, Some("Bearer wrong"), Some("s3cret")] {
        let headers: Vec<(&str, &str)> = credentials
            .map(|c| ("authorization", c))
            .into_iter()
            .collect();
        let refused = scrape_reply(addr, &headers).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{credentials:?}");
        assert_eq!(
            refused.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"metrics\""
        );
    }
    // The scheme is case-insensitive (RFC 9110 section 11.1); the token is not.
    for credentials in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
        let allowed = scrape_reply(addr, &[("authorization", credentials)]).await;
        assert_eq!(allowed.status, StatusCode::OK, "{credentials}");
        assert_eq!(
            Exposition::parse(&allowed.body).value("jobs_total", &[]),
            Some(3.0)
        );
    }
    for credentials in ["Bearer S3CRET", "Bearer s3cre", "Bearer s3cret0", "Bearer"] {
        let refused = scrape_reply(addr, &[("authorization", credentials)]).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{credentials}");
    }
}

#[test]
fn a_bearer_token_no_request_could_carry_fails_the_build() {
    for token in ["", "with space", "line\nbreak"] {
        let built = MetricsEndpoint::builder(&MetricsRegistry::new())
            .bearer_token(token)
            .build();
        let error = built.expect_err(token);
        assert!(
            matches!(error, BuildError::InvalidBearerToken(_)),
            "{error:?}"
        );
        // The message says what is wrong, and keeps the token out of the logs.
        let message = error.to_string();
        assert!(message.contains("bearer token"), "{message}");
        assert!(token.is_empty() || !message.contains(token), "{message}");
        // The same through the layer's endpoint options.
        let layer = tower_prometheus::MetricsLayer::builder(&MetricsRegistry::new())
            .endpoint_options(move |endpoint| endpoint.bearer_token(token))
            .build();
        assert!(
            matches!(layer, Err(BuildError::InvalidBearerToken(_))),
            "{layer:?}"
        );
    }
}

#[tokio::test]
async fn malformed_qvalues_count_as_zero() {
    let addr = serve(MetricsEndpoint::new(&registry()).unwrap()).await;
    for weight in ["NaN", "inf", "-1", "1.5", "0.0001", "1e0"] {
        let accept = format!("application/openmetrics-text;q={weight}, text/plain;q=0.5");
        let encoding = format!("gzip;q={weight}");
        let reply =
            scrape_reply(addr, &[("accept", &accept), ("accept-encoding", &encoding)]).await;
        assert_eq!(
            reply.headers[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8",
            "{accept}"
        );
        assert_plain_jobs(&reply, &encoding);
    }
    // Three decimals are a weight: the lowest one still beats `text/plain;q=0`.
    let reply = scrape_reply(
        addr,
        &[(
            "accept",
            "application/openmetrics-text;q=0.001, text/plain;q=0",
        )],
    )
    .await;
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

/// A `HEAD` and a `GET` of the endpoint over one protocol, with the same headers.
async fn head_and_get(
    addr: std::net::SocketAddr,
    http2: bool,
    headers: &[(&str, &str)],
) -> [(http::HeaderMap, Vec<u8>); 2] {
    use http_body_util::BodyExt as _;

    let mut client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    client.http2_only(http2);
    let client = client.build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut replies = Vec::new();
    for method in [Method::HEAD, Method::GET] {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}/metrics"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = client
            .request(request.body(http_body_util::Empty::new()).unwrap())
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        replies.push((parts.headers, body.to_vec()));
    }
    let get = replies.pop().unwrap();
    let head = replies.pop().unwrap();
    [head, get]
}

#[tokio::test]
async fn head_carries_the_headers_of_get_without_the_body() {
    let registry = registry();
    // Process metrics change between two scrapes; the rest of the body does not.
    registry.without_process_metrics().unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    for http2 in [false, true] {
        for headers in [
            &[][..],
            &[("accept-encoding", "gzip")],
            &[
                ("accept", PROMETHEUS_DEFAULT_ACCEPT),
                ("accept-encoding", "gzip"),
            ],
        ] {
            let [(head, head_body), (get, get_body)] = head_and_get(addr, http2, headers).await;
            let case = format!("http2={http2} {headers:?}");
            assert!(head_body.is_empty(), "{case}");
            assert_eq!(
                get[header::CONTENT_LENGTH],
                get_body.len().to_string().as_str(),
                "{case}"
            );
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::CONTENT_ENCODING,
                header::VARY,
            ] {
                assert_eq!(head.get(&name), get.get(&name), "{case}: {name}");
            }
            let gzipped = headers.iter().any(|(name, _)| *name == "accept-encoding");
            assert_eq!(
                head.contains_key(header::CONTENT_ENCODING),
                gzipped,
                "{case}"
            );
        }
    }
}

/// The family names of a scrape, in every format the endpoint serves: from the `TYPE`
/// lines of both texts, and the messages of protobuf.
async fn declared_families(addr: std::net::SocketAddr) -> Vec<Vec<String>> {
    let type_lines = |body: &str| -> Vec<String> {
        body.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split(' ').next())
            .map(str::to_string)
            .collect()
    };
    let text = scrape_reply(addr, &[]).await;
    let open = scrape_reply(addr, &[("accept", PROMETHEUS_DEFAULT_ACCEPT)]).await;
    assert!(open.body.ends_with("# EOF\n"));
    #[allow(unused_mut)]
    let mut declared = vec![type_lines(&text.body), type_lines(&open.body)];
    #[cfg(feature = "protobuf")]
    {
        let proto = scrape_reply(addr, &[("accept", PROMETHEUS_NATIVE_ACCEPT)]).await;
        declared.push(
            protobuf_families(&proto.raw)
                .into_iter()
                .map(|family| family.name)
                .collect(),
        );
    }
    declared
}

#[tokio::test]
async fn families_without_series_write_nothing() {
    let registry = MetricsRegistry::new();
    registry
        .provider("orders_by_tenant", "Orders by tenant.", || {
            Family::<[(&'static str, &'static str); 1], Counter>::default()
        })
        .unwrap();
    let layer = tower_prometheus::MetricsLayer::new(&registry).unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .layer(layer);
    let addr = serve(app).await;

    // Nothing recorded yet: neither the HTTP nor the gRPC families nor the user's own
    // family write a line, in any format.
    for (format, names) in declared_families(addr).await.iter().enumerate() {
        assert!(
            !names.iter().any(|name| name.starts_with("http_server_")
                || name.starts_with("grpc_")
                || name.starts_with("orders_by_tenant")),
            "format {format}: {names:?}"
        );
        assert!(names
            .iter()
            .any(|name| name.starts_with("tower_prometheus_build")));
    }

    // Once HTTP requests and the user's family have series, those are written, and an
    // HTTP-only server still has no gRPC lines.
    assert_eq!(common::get(addr, "/").await.status, StatusCode::OK);
    registry
        .get::<Family<[(&'static str, &'static str); 1], Counter>>("orders_by_tenant")
        .unwrap()
        .get_or_create(&[("tenant", "a")])
        .inc();
    for (format, names) in declared_families(addr).await.iter().enumerate() {
        for family in [
            "http_server_request_duration_seconds",
            "http_server_active_requests",
        ] {
            assert!(
                names.iter().any(|name| name == family),
                "format {format}: {family} in {names:?}"
            );
        }
        assert!(
            names
                .iter()
                .any(|name| name.starts_with("http_server_requests")),
            "format {format}: {names:?}"
        );
        assert!(
            names
                .iter()
                .any(|name| name.starts_with("orders_by_tenant")),
            "format {format}: {names:?}"
        );
        assert!(
            !names.iter().any(|name| name.starts_with("grpc_")),
            "format {format}: {names:?}"
        );
    }
    let text = common::scrape(addr).await;
    assert_eq!(
        text.value("orders_by_tenant_total", &[("tenant", "a")]),
        Some(1.0)
    );
    assert!(text.declares("orders_by_tenant_total", "counter"));
    assert!(text
        .text
        .contains("# HELP orders_by_tenant_total Orders by tenant."));
}

#[tokio::test]
async fn the_layer_passes_endpoint_options_on() {
    let registry = registry();
    let layer = tower_prometheus::MetricsLayer::builder(&registry)
        .endpoint_options(|endpoint| {
            endpoint.guard(|request| request.headers().contains_key("x-internal"))
        })
        .build()
        .unwrap();
    let router = axum::Router::new().layer(layer);
    let addr = serve(router).await;
    let refused = scrape_reply(addr, &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let allowed = scrape_reply(addr, &[("x-internal", "1")]).await;
    assert_eq!(allowed.status, StatusCode::OK);
}

#[tokio::test]
async fn scrapes_past_the_limit_get_503_with_retry_after() {
    let registry = registry();
    let started = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    {
        let (started, release) = (Arc::clone(&started), Arc::clone(&release));
        registry
            .async_collector("slow", move |_| {
                let (started, release) = (Arc::clone(&started), Arc::clone(&release));
                async move {
                    started.notify_one();
                    release.acquire().await?.forget();
                    Ok(())
                }
            })
            .unwrap();
    }
    let endpoint = MetricsEndpoint::builder(&registry)
        .max_concurrent_scrapes(1)
        .build()
        .unwrap();
    let addr = serve(endpoint).await;

    let first = tokio::spawn(async move { scrape_reply(addr, &[]).await });
    tokio::time::timeout(Duration::from_secs(10), started.notified())
        .await
        .expect("the first scrape reached its collector");
    let refused = scrape_reply(addr, &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers[header::RETRY_AFTER], "1");

    release.add_permits(2);
    let first = first.await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    // The slot came back with the first scrape.
    let again = scrape_reply(addr, &[]).await;
    assert_eq!(again.status, StatusCode::OK);
}

#[tokio::test]
async fn a_slow_collector_is_left_behind_and_counted() {
    let registry = registry();
    registry
        .async_collector("stuck", |_| std::future::pending())
        .unwrap();
    let endpoint = MetricsEndpoint::builder(&registry)
        .collector_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let addr = serve(endpoint).await;
    let reply = tokio::time::timeout(Duration::from_secs(10), scrape_reply(addr, &[]))
        .await
        .expect("the scrape does not wait for the stuck collector");
    assert_eq!(reply.status, StatusCode::OK);
    let metrics = Exposition::parse(&reply.body);
    assert_eq!(metrics.value("jobs_total", &[]), Some(3.0));
    assert_eq!(
        metrics.value(
            "tower_prometheus_collector_errors_total",
            &[("collector", "stuck"), ("reason", "timeout")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn collector_failures_can_fail_the_scrape() {
    let registry = registry();
    registry
        .collector("broken", |_| Err("backend down".into()))
        .unwrap();
    registry
        .collector("typo", |registry| {
            registry.get::<Gauge>("gg")?.set(1);
            Ok(())
        })
        .unwrap();
    registry
        .collector("bug", |_| panic!("index out of range in the pool"))
        .unwrap();
    let endpoint = MetricsEndpoint::builder(&registry)
        .on_collector_error(tower_prometheus::endpoint::OnCollectorError::Fail)
        .build()
        .unwrap();
    let addr = serve(endpoint).await;
    let reply = scrape_reply(addr, &[]).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    // Each failure keeps its message: the error's, the panic's.
    for expected in [
        "collector `broken`: error: backend down",
        "collector `typo`: error: unknown metric `gg`",
        "collector `bug`: panic: index out of range in the pool",
    ] {
        assert!(reply.body.contains(expected), "{expected}: {}", reply.body);
    }
    assert!(
        reply.body.contains("collector `broken`: error"),
        "{}",
        reply.body
    );
}
