//! End to end through a real tonic server on 127.0.0.1 with real clients (tonic's, raw
//! HTTP/2 ones, Python's grpcio): the go-grpc-prometheus families, scraped over
//! HTTP/1.1 from the same port, and what a hostile client can do to them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{eventually, health_client as client, scrape, Exposition};
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::Layer;
use tower_prometheus::grpc::{GrpcCode, GrpcType};
use tower_prometheus::layer::RequestBody;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

const SERVICE: &str = "grpc.health.v1.Health";
const STARTED: &str = "grpc_server_started_total";
const HANDLED: &str = "grpc_server_handled_total";
const HANDLING_COUNT: &str = "grpc_server_handling_seconds_count";
const RECEIVED: &str = "grpc_server_msg_received_total";
const SENT: &str = "grpc_server_msg_sent_total";
const WAIT: Duration = Duration::from_secs(10);

/// A tonic server with the health service behind the layer, answering gRPC over
/// HTTP/2 and `/metrics` over HTTP/1.1 on one port.
async fn start() -> (SocketAddr, HealthReporter) {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        .grpc_method_type(format!("/{SERVICE}/Watch"), GrpcType::ServerStream)
        .build()
        .expect("layer builds");
    let (reporter, health) = tonic_health::server::health_reporter();
    (common::serve_tonic(layer, health).await, reporter)
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_string(),
    }
}

/// One unary `Health/Check` of `service` from a new client.
async fn check_call(addr: SocketAddr, service: &str) -> Result<WireStatus, tonic::Status> {
    let reply = client(addr).await.check(check(service)).await?;
    Ok(reply.into_inner().status())
}

/// The labels of a method's series, without the code.
fn method<'a>(grpc_type: &'a str, service: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grpc_type", grpc_type),
        ("grpc_service", service),
        ("grpc_method", name),
    ]
}

fn with_code<'a>(labels: &[(&'a str, &'a str)], code: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut labels = labels.to_vec();
    labels.push(("grpc_code", code));
    labels
}

/// Scrapes until the call with `labels` is handled with `code`.
async fn handled(addr: SocketAddr, labels: &[(&str, &str)], code: &str) -> Exposition {
    let labels = with_code(labels, code);
    eventually(WAIT, &format!("{HANDLED} {labels:?}"), || async {
        let scraped = scrape(addr).await;
        (scraped.value(HANDLED, &labels) == Some(1.0)).then_some(scraped)
    })
    .await
}

async fn unary_ok_is_counted_once_with_its_messages() {
    let (addr, _reporter) = start().await;
    let status = check_call(addr, "").await.expect("check answers");
    assert_eq!(status, WireStatus::Serving);

    let labels = method("unary", SERVICE, "Check");
    let scraped = handled(addr, &labels, "OK").await;
    assert_eq!(scraped.value(STARTED, &labels), Some(1.0));
    assert_eq!(scraped.value(HANDLING_COUNT, &labels), Some(1.0));
    assert_eq!(scraped.value(RECEIVED, &labels), Some(1.0));
    assert_eq!(scraped.value(SENT, &labels), Some(1.0));
    assert_eq!(scraped.matching(HANDLED, &labels).len(), 1, "one code only");
    // The call is not also an HTTP request to a meaningless route.
    assert!(scraped
        .matching("http_server_requests_total", &[])
        .is_empty());
    assert!(scraped
        .matching("http_server_active_requests", &[])
        .is_empty());
    assert!(scraped.declares("grpc_server_handling_seconds", "histogram"));
}

async fn unknown_service_answers_not_found_and_is_counted_as_such() {
    let (addr, _reporter) = start().await;
    let status = check_call(addr, "no.such.Service")
        .await
        .expect_err("unknown service is an error");
    assert_eq!(status.code(), Code::NotFound);

    let labels = method("unary", SERVICE, "Check");
    let scraped = handled(addr, &labels, "NotFound").await;
    assert_eq!(scraped.value(HANDLED, &with_code(&labels, "OK")), None);
    assert_eq!(scraped.value(RECEIVED, &labels), Some(1.0));
    assert_eq!(scraped.value(SENT, &labels), Some(0.0));
}

async fn cancelled_server_stream_is_canceled_with_messages_per_direction() {
    let (addr, reporter) = start().await;
    let mut stream = client(addr)
        .await
        .watch(check(""))
        .await
        .expect("watch answers")
        .into_inner();
    let labels = method("server_stream", SERVICE, "Watch");
    let mut seen = Vec::new();
    for next in [ServingStatus::NotServing, ServingStatus::Serving] {
        let message = stream.message().await.expect("stream open");
        seen.push(message.expect("a status").status());
        reporter.set_service_status("", next).await;
    }
    let message = stream.message().await.expect("stream open");
    seen.push(message.expect("a status").status());
    assert_eq!(
        seen,
        [
            WireStatus::Serving,
            WireStatus::NotServing,
            WireStatus::Serving
        ]
    );

    // Headers and messages were sent, but the call has not ended. The declared
    // method has every code's series, at zero.
    let open = scrape(addr).await;
    assert_eq!(open.value(STARTED, &labels), Some(1.0));
    assert_eq!(open.matching(HANDLED, &labels).len(), 17);
    assert_eq!(open.sum(HANDLED, &labels), 0.0);
    assert_eq!(open.value(HANDLING_COUNT, &labels), Some(0.0));

    drop(stream);
    let scraped = handled(addr, &labels, "Canceled").await;
    assert_eq!(scraped.sum(HANDLED, &labels), 1.0, "recorded once");
    assert_eq!(scraped.value(HANDLING_COUNT, &labels), Some(1.0));
    assert_eq!(scraped.value(RECEIVED, &labels), Some(1.0));
    assert_eq!(scraped.value(SENT, &labels), Some(3.0));
}

/// One length-prefixed gRPC message.
fn framed(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).expect("small message"));
    framed.put_slice(message);
    framed.freeze()
}

/// A raw HTTP/2 gRPC call with one empty message, to see where the status travels.
async fn raw_call(addr: SocketAddr, path: &str) -> http::Response<hyper::body::Incoming> {
    try_raw_call(addr, path).await.expect("answered")
}

async fn try_raw_call(
    addr: SocketAddr,
    path: &str,
) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
    let headers = [(header::CONTENT_TYPE.as_str(), "application/grpc")];
    raw_call_with(&raw_client(), addr, path, &headers).await
}

type RawClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// An HTTP/2 client that sends whatever headers a test gives it.
fn raw_client() -> RawClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>()
}

/// A POST of one empty gRPC message with exactly these headers (and `te`).
async fn raw_call_with(
    client: &RawClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(framed(b""))).expect("valid request");
    client.request(request).await
}

fn grpc_status(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(value.to_string())
}

async fn trailers_only_error_is_recorded_with_its_code() {
    let (addr, _reporter) = start().await;
    let response = raw_call(addr, "/no.such.Service/Method").await;
    assert_eq!(response.status(), StatusCode::OK);
    let code = Code::Unimplemented as i32;
    assert_eq!(grpc_status(response.headers()), Some(code.to_string()));
    let body = response.into_body().collect().await.expect("body read");
    assert!(
        body.trailers().is_none(),
        "trailers-only: status in headers"
    );
    assert!(body.to_bytes().is_empty());

    // A method the server does not have gets no series of its own.
    let labels = method("unary", "_OTHER", "_OTHER");
    let scraped = handled(addr, &labels, "Unimplemented").await;
    assert_eq!(scraped.value(STARTED, &labels), Some(1.0));
    assert!(scraped
        .matching(STARTED, &[("grpc_service", "no.such.Service")])
        .is_empty());
    // tonic's router answers without reading the request, so no message was received.
    assert_eq!(scraped.value(RECEIVED, &labels), Some(0.0));
    assert_eq!(scraped.value(SENT, &labels), Some(0.0));
}

/// A gRPC service (no tonic) that reads the request, then answers any path with one
/// message and OK, as gRPC: with its content type.
async fn answer_everything<B: http_body::Body>(
    request: Request<B>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    // A client that breaks its request off gets the same answer.
    let _ = request.into_body().collect().await;
    let mut response = http::Response::new(Full::new(framed(b"reply")));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/grpc".parse().expect("valid"),
    );
    headers.insert("grpc-status", "0".parse().expect("valid"));
    Ok(response)
}

/// [`answer_everything`] behind `layer`, which hands it the client's body untouched.
async fn serve_answering_everything(layer: MetricsLayer) -> SocketAddr {
    let service = layer.layer(tower::service_fn(
        answer_everything::<hyper::body::Incoming>,
    ));
    common::serve(service).await
}

async fn a_plain_layer_records_calls_and_a_counting_one_their_received_messages() {
    let plain = MetricsLayer::new(&MetricsRegistry::new()).expect("layer builds");
    let plain = serve_answering_everything(plain).await;
    let counting = MetricsLayer::builder(&MetricsRegistry::new())
        .count_grpc_messages()
        .build()
        .expect("layer builds");
    let counting = common::serve(counting.layer(tower::service_fn(
        answer_everything::<RequestBody<hyper::body::Incoming>>,
    )))
    .await;
    let labels = method("unary", "t.S", "M");
    for (addr, received) in [(plain, 0.0), (counting, 1.0)] {
        let response = raw_call(addr, "/t.S/M").await;
        assert_eq!(grpc_status(response.headers()), Some("0".to_string()));
        let scraped = handled(addr, &labels, "OK").await;
        assert_eq!(scraped.value(STARTED, &labels), Some(1.0));
        assert_eq!(scraped.value(SENT, &labels), Some(1.0));
        assert_eq!(scraped.value(RECEIVED, &labels), Some(received), "{addr}");
    }
}

async fn served_methods_past_the_cap_fold_into_overflow_with_every_label() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .max_series(3)
        .build()
        .expect("layer builds");
    let addr = serve_answering_everything(layer).await;
    for i in 0..10 {
        let response = raw_call(addr, &format!("/scanner{i}.Service/Method")).await;
        assert_eq!(grpc_status(response.headers()), Some("0".to_string()));
    }
    let overflow = [
        ("grpc_type", "unary"),
        ("grpc_service", "_OTHER"),
        ("grpc_method", "_OTHER"),
        ("otel_metric_overflow", "true"),
    ];
    let scraped = eventually(WAIT, "ten calls handled", || async {
        let scraped = scrape(addr).await;
        (scraped.sum(HANDLED, &[]) == 10.0).then_some(scraped)
    })
    .await;
    assert_eq!(
        scraped
            .matching(STARTED, &[("grpc_method", "Method")])
            .len(),
        3
    );
    assert_eq!(scraped.value(STARTED, &overflow), Some(7.0));
    assert_eq!(scraped.value(SENT, &overflow), Some(7.0));
    assert_eq!(scraped.sum(STARTED, &[]), 10.0);
    assert_eq!(
        scraped.value(HANDLED, &with_code(&overflow, "OK")),
        Some(7.0)
    );
    assert_eq!(scraped.value(HANDLING_COUNT, &overflow), Some(7.0));
}

/// A gRPC server (no tonic) whose methods fail, panic, never answer, or answer
/// without a status.
async fn serve_misbehaving() -> SocketAddr {
    let registry = MetricsRegistry::new();
    // Not tonic, but only gRPC; the method that never answers is declared, so its
    // unanswered calls keep its name.
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        .grpc_method_type("/t.S/Hangs", GrpcType::Unary)
        .build()
        .expect("layer builds");
    let service = layer.layer(tower::service_fn(
        |request: Request<RequestBody<hyper::body::Incoming>>| async move {
            match request.uri().path() {
                "/t.S/Fails" => Err(std::io::Error::other("backend unavailable")),
                "/t.S/Panics" => panic!("handler bug"),
                "/t.S/Hangs" => std::future::pending().await,
                // One message, then the body ends with no trailers.
                _ => Ok(http::Response::new(Full::new(framed(b"reply")))),
            }
        },
    ));
    common::serve(service).await
}

async fn calls_ending_without_a_status_record_documented_codes() {
    let addr = serve_misbehaving().await;
    let no_status = raw_call(addr, "/t.S/NoStatus").await;
    assert_eq!(grpc_status(no_status.headers()), None);
    let body = no_status.into_body().collect().await.expect("body read");
    assert!(body.trailers().is_none());
    assert!(try_raw_call(addr, "/t.S/Fails").await.is_err());
    assert!(try_raw_call(addr, "/t.S/Panics").await.is_err());

    for (name, code) in [
        ("NoStatus", GrpcCode::Unknown),
        ("Fails", GrpcCode::Internal),
        ("Panics", GrpcCode::Internal),
    ] {
        let labels = method("unary", "t.S", name);
        let scraped = handled(addr, &labels, code.as_str()).await;
        assert_eq!(scraped.matching(HANDLED, &labels).len(), 1, "{name}");
        assert_eq!(scraped.value(STARTED, &labels), Some(1.0), "{name}");
    }
    let scraped = scrape(addr).await;
    assert_eq!(
        scraped.value(SENT, &method("unary", "t.S", "NoStatus")),
        Some(1.0)
    );
    assert_eq!(GrpcCode::Unknown.as_str(), "Unknown");
    assert_eq!(GrpcCode::Internal.as_str(), "Internal");
}

async fn a_call_cancelled_before_its_headers_is_canceled() {
    let addr = serve_misbehaving().await;
    let call = tokio::spawn(async move { try_raw_call(addr, "/t.S/Hangs").await.is_ok() });
    let labels = method("unary", "t.S", "Hangs");
    eventually(WAIT, "the call to start", || async {
        (scrape(addr).await.value(STARTED, &labels) == Some(1.0)).then_some(())
    })
    .await;
    assert_eq!(scrape(addr).await.sum(HANDLED, &labels), 0.0);

    // The client gives up: its HTTP/2 stream is reset.
    call.abort();
    let scraped = handled(addr, &labels, GrpcCode::Canceled.as_str()).await;
    assert_eq!(scraped.sum(HANDLED, &labels), 1.0, "recorded once");
    assert_eq!(GrpcCode::Canceled.as_str(), "Canceled");
}

async fn method_objectives_export_targets_and_count_calls_within_the_latency() {
    use tower_prometheus::layer::Objective;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_objective(
            format!("{SERVICE}/Check"),
            Objective::availability(0.999).with_latency(Duration::from_secs(5), 0.99),
        )
        .count_grpc_messages()
        .build()
        .expect("layer builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = common::serve_tonic(layer, health).await;
    for _ in 0..3 {
        check_call(addr, "").await.expect("check answers");
    }
    let labels = method("unary", SERVICE, "Check");
    let target = [("grpc_service", SERVICE), ("grpc_method", "Check")];
    let good = eventually(WAIT, "three calls within the objective", || async {
        let scraped = scrape(addr).await;
        (scraped.value("grpc_server_slo_latency_good_total", &target) == Some(3.0))
            .then_some(scraped)
    })
    .await;
    let mut availability = target.to_vec();
    availability.push(("slo", "availability"));
    assert_eq!(
        good.value("grpc_server_slo_objective", &availability),
        Some(0.999)
    );
    assert_eq!(good.value(STARTED, &labels), Some(3.0));

    let invalid = MetricsLayer::builder(&MetricsRegistry::new())
        .grpc_objective("not-a-method", Objective::availability(0.9))
        .build();
    assert!(matches!(
        invalid,
        Err(tower_prometheus::BuildError::InvalidObjective(_))
    ));
}

// ---- What a client can and cannot do to the families ----

/// The labels of `http_server_requests_total` for a `POST` to `route` answered `status`.
fn http_post<'a>(status: &'a str, route: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("http_request_method", "POST"),
        ("http_response_status_code", status),
        ("http_route", route),
    ]
}

/// Every sample of the gRPC families in a scrape.
fn grpc_samples(scraped: &Exposition) -> Vec<&common::Sample> {
    scraped
        .samples
        .iter()
        .filter(|sample| sample.name.starts_with("grpc_server_"))
        .collect()
}

async fn grpc_looking_requests_to_plain_routes_stay_http_under_their_route() {
    use axum::routing::post;
    let registry = MetricsRegistry::new();
    let app = axum::Router::new()
        .route("/users/{id}", post(|| async { "user" }))
        .route(
            "/fail",
            post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(MetricsLayer::new(&registry).expect("layer builds"));
    let addr = common::serve(app).await;
    let claims = [
        "application/grpc",
        "Application/GRPC+proto",
        "application/grpc; charset=utf-8",
    ];
    for (id, content_type) in claims.iter().enumerate() {
        let headers = [("content-type", *content_type)];
        let path = format!("/users/{id}");
        let reply = common::send_with_headers(addr, Method::POST, &path, &headers).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let grpc = [("content-type", "application/grpc")];
    let reply = common::send_with_headers(addr, Method::POST, "/fail", &grpc).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    for i in 0..50 {
        let path = format!("/scanner.S{i}/Method");
        let reply = common::send_with_headers(addr, Method::POST, &path, &grpc).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }

    let total = "http_server_requests_total";
    let request = http_post;
    let scraped = eventually(WAIT, "54 HTTP requests", || async {
        let scraped = scrape(addr).await;
        (scraped.sum(total, &[]) == 54.0).then_some(scraped)
    })
    .await;
    assert_eq!(
        scraped.value(total, &request("200", "/users/{id}")),
        Some(3.0)
    );
    // A 5xx stays where the HTTP alerts look for it.
    assert_eq!(scraped.value(total, &request("500", "/fail")), Some(1.0));
    assert_eq!(scraped.value(total, &request("404", "_OTHER")), Some(50.0));
    assert_eq!(grpc_samples(&scraped), Vec::<&common::Sample>::new());
}

async fn an_unanswered_grpc_claim_to_a_plain_route_is_an_http_request() {
    use axum::routing::post;
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let signal = std::sync::Arc::clone(&arrived);
    let registry = MetricsRegistry::new();
    let app = axum::Router::new()
        .route(
            "/slow",
            post(move || async move {
                signal.notify_one();
                std::future::pending::<()>().await
            }),
        )
        .layer(MetricsLayer::new(&registry).expect("layer builds"));
    let addr = common::serve(app).await;
    let client = tokio::spawn(async move {
        let grpc = [("content-type", "application/grpc")];
        common::send_with_headers(addr, Method::POST, "/slow", &grpc).await
    });
    arrived.notified().await;
    client.abort();

    let client_closed = http_post("499", "/slow");
    let scraped = eventually(WAIT, "the request recorded as HTTP 499", || async {
        let scraped = scrape(addr).await;
        (scraped.value("http_server_requests_total", &client_closed) == Some(1.0))
            .then_some(scraped)
    })
    .await;
    assert_eq!(grpc_samples(&scraped), Vec::<&common::Sample>::new());
    let active = [("http_request_method", "POST"), ("http_route", "/slow")];
    assert_eq!(
        scraped.value("http_server_active_requests", &active),
        Some(0.0)
    );
}

async fn tonic_calls_are_grpc_whatever_content_type_tonic_accepts() {
    let (addr, _reporter) = start().await;
    let client = raw_client();
    let path = format!("/{SERVICE}/Check");
    let kinds: [&[(&str, &str)]; 4] = [
        &[],
        &[("content-type", "Application/GRPC")],
        &[("content-type", "application/grpcfoo")],
        &[("content-type", "application/grpc+proto")],
    ];
    for headers in kinds {
        let response = raw_call_with(&client, addr, &path, headers)
            .await
            .expect("answered");
        // tonic serves each of them as a gRPC call.
        let body = response.into_body().collect().await.expect("body read");
        let trailers = body.trailers().expect("a status in the trailers");
        assert_eq!(grpc_status(trailers), Some("0".to_string()), "{headers:?}");
    }
    let labels = method("unary", SERVICE, "Check");
    let scraped = eventually(WAIT, "four calls handled", || async {
        let scraped = scrape(addr).await;
        (scraped.value(HANDLED, &with_code(&labels, "OK")) == Some(4.0)).then_some(scraped)
    })
    .await;
    assert_eq!(scraped.value(STARTED, &labels), Some(4.0));
    assert_eq!(scraped.value(RECEIVED, &labels), Some(4.0));
    assert!(scraped
        .matching("http_server_requests_total", &[])
        .is_empty());
}

async fn without_grpc_only_the_answer_decides() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .count_grpc_messages()
        .build()
        .expect("layer builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = common::serve_tonic(layer, health).await;
    let client = raw_client();
    let path = format!("/{SERVICE}/Check");
    let claimed = [("content-type", "Application/GRPC+proto")];
    for headers in [&claimed[..], &[]] {
        let response = raw_call_with(&client, addr, &path, headers)
            .await
            .expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
        response.into_body().collect().await.expect("body read");
    }
    let labels = method("unary", SERVICE, "Check");
    let http = http_post("200", "_OTHER");
    let scraped = eventually(WAIT, "both calls recorded", || async {
        let scraped = scrape(addr).await;
        let http = scraped.value("http_server_requests_total", &http);
        let grpc = scraped.value(HANDLED, &with_code(&labels, "OK"));
        (http == Some(1.0) && grpc == Some(1.0)).then_some(scraped)
    })
    .await;
    // The claim with a gRPC answer is a call; the request that claims nothing is
    // known only by a content-type check of the layer: an HTTP request.
    assert_eq!(scraped.value(STARTED, &labels), Some(1.0));
    assert_eq!(scraped.sum("http_server_requests_total", &[]), 1.0);
}

async fn invented_methods_cannot_push_a_served_method_out_of_its_series() {
    const INVENTED: usize = 5_000;
    let (addr, _reporter) = start().await;
    let client = raw_client();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..INVENTED {
        // Half invent a service, half a method of the real one.
        let path = match i % 2 {
            0 => format!("/scanner{i}.Service/Method"),
            _ => format!("/{SERVICE}/Invented{i}"),
        };
        let client = client.clone();
        let headers = [("content-type", "application/grpc")];
        calls.spawn(async move {
            let response = raw_call_with(&client, addr, &path, &headers)
                .await
                .expect("answered");
            grpc_status(response.headers())
        });
        if calls.len() >= 64 {
            let status = calls.join_next().await.expect("a call").expect("no panic");
            assert_eq!(status, Some((Code::Unimplemented as i32).to_string()));
        }
    }
    while let Some(status) = calls.join_next().await {
        let status = status.expect("no panic");
        assert_eq!(status, Some((Code::Unimplemented as i32).to_string()));
    }
    // A path of another shape folds into the same series.
    let response = raw_call(addr, "/not-a-method").await;
    let unimplemented = (Code::Unimplemented as i32).to_string();
    assert_eq!(grpc_status(response.headers()), Some(unimplemented));
    check_call(addr, "").await.expect("check answers");

    let other = method("unary", "_OTHER", "_OTHER");
    let check = method("unary", SERVICE, "Check");
    let scraped = handled(addr, &check, "OK").await;
    let calls = (INVENTED + 1) as f64;
    assert_eq!(
        scraped.value(HANDLED, &with_code(&other, "Unimplemented")),
        Some(calls)
    );
    assert_eq!(scraped.value(STARTED, &other), Some(calls));
    assert_eq!(scraped.value(STARTED, &check), Some(1.0));
    // Memory stays flat: the invented paths made one series in each family, and
    // the declared Watch has its own. Nothing folded into the overflow series.
    let started: Vec<_> = scraped.matching(STARTED, &[]);
    assert_eq!(started.len(), 3, "{started:?}");
    assert!(scraped
        .matching(STARTED, &[("otel_metric_overflow", "true")])
        .is_empty());
}

async fn declared_methods_have_every_series_at_zero_before_their_first_call() {
    let addr = start_declared().await;
    let labels = method("unary", SERVICE, "Check");

    let before = scrape(addr).await;
    for family in [STARTED, RECEIVED, SENT, HANDLING_COUNT] {
        assert_eq!(before.value(family, &labels), Some(0.0), "{family}");
    }
    let codes = before.matching(HANDLED, &labels);
    assert_eq!(codes.len(), 17);
    assert!(codes.iter().all(|sample| sample.value == 0.0));
    let unavailable = with_code(&labels, "Unavailable");
    assert_eq!(before.value(HANDLED, &unavailable), Some(0.0));

    check_call(addr, "").await.expect("check answers");
    let after = handled(addr, &labels, "OK").await;
    assert_eq!(after.sum(HANDLED, &labels), 1.0);

    let invalid = MetricsLayer::builder(&MetricsRegistry::new())
        .grpc_method_type("not-a-method", GrpcType::Unary)
        .build();
    assert!(matches!(
        invalid,
        Err(tower_prometheus::BuildError::InvalidGrpcMethod(path)) if path == "/not-a-method"
    ));
}

/// An HTTP/2 connection of the `h2` crate, which can reset a stream with any
/// reason, and the task driving it: aborting the task closes the connection.
async fn h2_connect(
    addr: SocketAddr,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (send, driver)
}

/// Starts a call to `path` and sends the first 10 bytes of a 100-byte message.
async fn start_upload(
    send: h2::client::SendRequest<Bytes>,
    path: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
    let mut send = send.ready().await.expect("connection ready");
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://127.0.0.1{path}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("valid request");
    let (response, mut stream) = send.send_request(request, false).expect("stream opened");
    let mut partial = BytesMut::new();
    partial.put_u8(0);
    partial.put_u32(100);
    partial.put_slice(&[0x0a; 10]);
    stream
        .send_data(partial.freeze(), false)
        .expect("data sent");
    (response, stream)
}

/// A tonic server (only gRPC) with `Health/Check` declared, so its calls are counted
/// started as they arrive.
async fn start_declared() -> SocketAddr {
    let layer = MetricsLayer::builder(&MetricsRegistry::new())
        .grpc_only()
        .grpc_method_type(format!("{SERVICE}/Check"), GrpcType::Unary)
        .build()
        .expect("layer builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    common::serve_tonic(layer, health).await
}

/// Waits until `count` calls with `labels` have started.
async fn started(addr: SocketAddr, labels: &[(&str, &str)], count: f64) {
    eventually(WAIT, &format!("{count} calls started"), || async {
        (scrape(addr).await.value(STARTED, labels) == Some(count)).then_some(())
    })
    .await;
}

async fn a_client_reset_mid_upload_is_canceled_whatever_its_reason() {
    let addr = start_declared().await;
    let (send, _driver) = h2_connect(addr).await;
    let labels = method("unary", SERVICE, "Check");
    let reasons = [
        h2::Reason::CANCEL,
        h2::Reason::NO_ERROR,
        h2::Reason::INTERNAL_ERROR,
        h2::Reason::PROTOCOL_ERROR,
        h2::Reason::ENHANCE_YOUR_CALM,
    ];
    for (i, reason) in reasons.into_iter().enumerate() {
        let count = (i + 1) as f64;
        let (_response, mut stream) =
            start_upload(send.clone(), &format!("/{SERVICE}/Check")).await;
        started(addr, &labels, count).await;
        stream.send_reset(reason);
        eventually(WAIT, &format!("reset {reason:?} recorded"), || async {
            let scraped = scrape(addr).await;
            (scraped.sum(HANDLED, &labels) == count).then_some(())
        })
        .await;
    }
    let scraped = scrape(addr).await;
    let canceled = with_code(&labels, "Canceled");
    assert_eq!(
        scraped.value(HANDLED, &canceled),
        Some(reasons.len() as f64)
    );
    for code in ["Unknown", "Internal", "OK"] {
        assert_eq!(scraped.value(HANDLED, &with_code(&labels, code)), Some(0.0));
    }
}

async fn a_client_that_closes_its_connection_mid_upload_is_canceled() {
    let addr = start_declared().await;
    let (send, driver) = h2_connect(addr).await;
    let labels = method("unary", SERVICE, "Check");
    let (response, stream) = start_upload(send.clone(), &format!("/{SERVICE}/Check")).await;
    started(addr, &labels, 1.0).await;
    // The client process dies: its connection goes away mid-message.
    driver.abort();
    drop((response, stream, send));
    let scraped = handled(addr, &labels, "Canceled").await;
    assert_eq!(scraped.sum(HANDLED, &labels), 1.0);
}

/// A tonic service whose one method never answers.
#[derive(Clone)]
struct NeverAnswers;

impl tonic::server::NamedService for NeverAnswers {
    const NAME: &'static str = "t.Slow";
}

impl tower::Service<Request<tonic::body::Body>> for NeverAnswers {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Pending<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<tonic::body::Body>) -> Self::Future {
        std::future::pending()
    }
}

async fn an_expired_grpc_timeout_is_deadline_exceeded() {
    let layer = MetricsLayer::builder(&MetricsRegistry::new())
        .grpc_only()
        .grpc_method_type("/t.Slow/Wait", GrpcType::Unary)
        .build()
        .expect("layer builds");
    let addr = common::serve_tonic(layer, NeverAnswers).await;
    let headers = [
        ("content-type", "application/grpc"),
        ("grpc-timeout", "200m"),
    ];
    for path in ["/t.Slow/Wait", "/t.Slow/Undeclared"] {
        let response = raw_call_with(&raw_client(), addr, path, &headers)
            .await
            .expect("answered");
        // tonic gives up on the deadline itself, and tells the client so (it says
        // `Cancelled`; go-grpc says `DeadlineExceeded`).
        let status = grpc_status(response.headers()).expect("trailers-only status");
        assert_eq!(status, (Code::Cancelled as i32).to_string());
    }

    let declared = method("unary", "t.Slow", "Wait");
    let scraped = handled(addr, &declared, "DeadlineExceeded").await;
    assert_eq!(scraped.sum(HANDLED, &declared), 1.0);
    assert_eq!(GrpcCode::DeadlineExceeded.as_str(), "DeadlineExceeded");
    // A method never served gets no series from calls that were never answered.
    let other = method("unary", "_OTHER", "_OTHER");
    let scraped = handled(addr, &other, "DeadlineExceeded").await;
    assert!(scraped
        .matching(STARTED, &[("grpc_method", "Undeclared")])
        .is_empty());
}

/// A gRPC server (no tonic) that reads the request, sends messages, then a non-OK
/// status in the trailers: one message then `FailedPrecondition` for `Unary`,
/// three then `Aborted` for `Stream`.
async fn serve_failing_after_messages() -> SocketAddr {
    let layer = MetricsLayer::builder(&MetricsRegistry::new())
        .grpc_method_type("/t.S/Stream", GrpcType::ServerStream)
        .count_grpc_messages()
        .build()
        .expect("layer builds");
    let service = layer.layer(tower::service_fn(
        |request: Request<RequestBody<hyper::body::Incoming>>| async move {
            let (messages, code) = match request.uri().path() {
                "/t.S/Stream" => (3, Code::Aborted),
                _ => (1, Code::FailedPrecondition),
            };
            request.into_body().collect().await?;
            let body: Vec<u8> = (0..messages)
                .flat_map(|_| framed(b"part").to_vec())
                .collect();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", (code as i32).into());
            trailers.insert("grpc-message", "refused".parse().expect("valid"));
            let body =
                Full::new(Bytes::from(body)).with_trailers(async move { Some(Ok(trailers)) });
            let mut response = http::Response::new(body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                "application/grpc".parse().expect("valid"),
            );
            Ok::<_, hyper::Error>(response)
        },
    ));
    common::serve(service).await
}

/// Calls `Unary` and `Stream` with Python's grpcio, raw bytes both ways, and prints
/// what the client saw.
const GRPCIO_CLIENT: &str = r#"
import sys, grpc
channel = grpc.insecure_channel(sys.argv[1])
unary = channel.unary_unary("/t.S/Unary", request_serializer=None, response_deserializer=None)
try:
    unary(b"ask", timeout=10)
    print("unary OK")
except grpc.RpcError as error:
    print("unary", error.code().name)
stream = channel.unary_stream("/t.S/Stream", request_serializer=None, response_deserializer=None)
received = 0
try:
    for _ in stream(b"ask", timeout=10):
        received += 1
    print("stream OK", received)
except grpc.RpcError as error:
    print("stream", error.code().name, received)
"#;

async fn grpcio_sees_and_the_layer_records_a_status_after_messages() -> common::Checked {
    let python = common::require_python_module(
        "grpc",
        "grpcio",
        "call a gRPC server with a client that is not tonic's",
    )?;
    let addr = serve_failing_after_messages().await;
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", GRPCIO_CLIENT, &addr.to_string()])
            .output()
    })
    .await
    .expect("no panic")
    .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "unary FAILED_PRECONDITION\nstream ABORTED 3\n");

    let unary = method("unary", "t.S", "Unary");
    let stream = method("server_stream", "t.S", "Stream");
    let scraped = handled(addr, &unary, "FailedPrecondition").await;
    let scraped = match scraped.value(HANDLED, &with_code(&stream, "Aborted")) {
        Some(_) => scraped,
        None => handled(addr, &stream, "Aborted").await,
    };
    for (labels, sent) in [(&unary, 1.0), (&stream, 3.0)] {
        assert_eq!(scraped.sum(HANDLED, labels), 1.0, "{labels:?}");
        assert_eq!(scraped.value(STARTED, labels), Some(1.0), "{labels:?}");
        assert_eq!(scraped.value(RECEIVED, labels), Some(1.0), "{labels:?}");
        assert_eq!(scraped.value(SENT, labels), Some(sent), "{labels:?}");
    }
    Ok(())
}

test_main! {
    tokio unary_ok_is_counted_once_with_its_messages,
    tokio unknown_service_answers_not_found_and_is_counted_as_such,
    tokio cancelled_server_stream_is_canceled_with_messages_per_direction,
    tokio trailers_only_error_is_recorded_with_its_code,
    tokio served_methods_past_the_cap_fold_into_overflow_with_every_label,
    tokio a_plain_layer_records_calls_and_a_counting_one_their_received_messages,
    tokio calls_ending_without_a_status_record_documented_codes,
    tokio a_call_cancelled_before_its_headers_is_canceled,
    tokio method_objectives_export_targets_and_count_calls_within_the_latency,
    tokio grpc_looking_requests_to_plain_routes_stay_http_under_their_route,
    tokio an_unanswered_grpc_claim_to_a_plain_route_is_an_http_request,
    tokio tonic_calls_are_grpc_whatever_content_type_tonic_accepts,
    tokio without_grpc_only_the_answer_decides,
    tokio invented_methods_cannot_push_a_served_method_out_of_its_series,
    tokio declared_methods_have_every_series_at_zero_before_their_first_call,
    tokio a_client_reset_mid_upload_is_canceled_whatever_its_reason,
    tokio a_client_that_closes_its_connection_mid_upload_is_canceled,
    tokio an_expired_grpc_timeout_is_deadline_exceeded,
    tokio grpcio_sees_and_the_layer_records_a_status_after_messages,
}
