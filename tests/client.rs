//! End to end through the client layer: a real hyper client and a real tonic client
//! around it, real servers on 127.0.0.1 (that answer, fail, stall, or are not there),
//! and the registry scraped from its own endpoint, value by value.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, scrape, Exposition};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Streaming};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::util::MapRequest;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_prometheus::client::{
    ClientMetricsLayer, ClientMetricsService, ClientRequestBody, ClientResponseBody,
};
use tower_prometheus::grpc::GrpcType;
use tower_prometheus::{MetricsEndpoint, MetricsLayer, MetricsRegistry};

const REQUESTS: &str = "http_client_requests_total";
const DURATION_COUNT: &str = "http_client_request_duration_seconds_count";
const ACTIVE: &str = "http_client_active_requests";
const WAIT: Duration = Duration::from_secs(10);

type HyperClient = Client<HttpConnector, ClientRequestBody<Full<Bytes>>>;

/// A hyper client behind a client layer on `registry`.
fn http_client(registry: &MetricsRegistry) -> ClientMetricsService<HyperClient> {
    let client = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new()
        .layer(ClientMetricsLayer::new(registry).expect("client layer builds"))
        .service(client)
}

/// The endpoint of a new registry, and a hyper client recording into it.
async fn metered_http() -> (SocketAddr, ClientMetricsService<HyperClient>) {
    let registry = MetricsRegistry::new();
    let metrics = serve_metrics(&registry).await;
    (metrics, http_client(&registry))
}

/// Serves the registry's endpoint, to scrape what the client recorded.
async fn serve_metrics(registry: &MetricsRegistry) -> SocketAddr {
    common::serve(MetricsEndpoint::new(registry).expect("endpoint builds")).await
}

/// A server answering `/{status}` with that status and a short body, and `/stall`
/// never.
async fn serve_answering() -> SocketAddr {
    common::serve(tower::service_fn(
        |request: Request<hyper::body::Incoming>| async move {
            let path = request.uri().path().trim_start_matches('/');
            if path == "stall" {
                std::future::pending::<()>().await;
            }
            let status = path
                .parse()
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::OK);
            let mut response = Response::new(Full::new(Bytes::from_static(b"answer")));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        },
    ))
    .await
}

fn get(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Full::new(Bytes::new()))
        .expect("valid request")
}

/// Sends `request` through `client` and reads the whole response body.
async fn send<S, B>(client: &mut S, request: Request<Full<Bytes>>) -> Result<StatusCode, String>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Display,
    B: http_body::Body,
    B::Error: std::fmt::Display,
{
    let response = client
        .ready()
        .await
        .map_err(|error| error.to_string())?
        .call(request)
        .await
        .map_err(|error| error.to_string())?;
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?;
    Ok(status)
}

/// The response to `request` through `client`, its body unread.
async fn respond(
    client: &mut ClientMetricsService<HyperClient>,
    request: Request<Full<Bytes>>,
) -> Response<ClientResponseBody<hyper::body::Incoming>> {
    let ready = client.ready().await.expect("ready");
    ready.call(request).await.expect("answered")
}

/// The labels of `GET` requests to 127.0.0.1 on `port`, and `more`.
fn to<'a>(port: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![
        ("http_request_method", "GET"),
        ("server_address", "127.0.0.1"),
        ("server_port", port),
    ];
    labels.extend_from_slice(more);
    labels
}

/// Scrapes `metrics` until `name{labels}` is `value`.
async fn until(metrics: SocketAddr, name: &str, labels: &[(&str, &str)], value: f64) -> Exposition {
    eventually(WAIT, &format!("{name} {labels:?} = {value}"), || async {
        let scraped = scrape(metrics).await;
        (scraped.value(name, labels) == Some(value)).then_some(scraped)
    })
    .await
}

#[tokio::test]
async fn requests_are_counted_per_server_with_their_status_once_the_body_ends() {
    let (metrics, mut client) = metered_http().await;
    let server = serve_answering().await;
    let port = server.port().to_string();

    for path in ["/200", "/200", "/503"] {
        send(&mut client, get(server, path))
            .await
            .expect("answered");
    }
    let scraped = scrape(metrics).await;
    let ok = to(&port, &[("http_response_status_code", "200")]);
    let unavailable = to(&port, &[("http_response_status_code", "503")]);
    assert_eq!(scraped.value(REQUESTS, &ok), Some(2.0));
    assert_eq!(scraped.value(DURATION_COUNT, &ok), Some(2.0));
    assert_eq!(scraped.value(REQUESTS, &unavailable), Some(1.0));
    assert_eq!(scraped.sum(REQUESTS, &[]), 3.0, "each request once");
    assert_eq!(scraped.value(ACTIVE, &to(&port, &[])), Some(0.0));
    assert!(
        scraped
            .matching(REQUESTS, &to(&port, &[]))
            .iter()
            .all(|sample| !sample.labels.contains_key("error_type")),
        "an answered request has no error_type"
    );

    // Headers in hand, the body unread: still in flight, not counted yet.
    let response = respond(&mut client, get(server, "/201")).await;
    let created = to(&port, &[("http_response_status_code", "201")]);
    let open = scrape(metrics).await;
    assert_eq!(open.value(ACTIVE, &to(&port, &[])), Some(1.0));
    assert_eq!(open.value(REQUESTS, &created), None);
    response.into_body().collect().await.expect("body read");
    let read = scrape(metrics).await;
    assert_eq!(read.value(REQUESTS, &created), Some(1.0));
    assert_eq!(read.value(ACTIVE, &to(&port, &[])), Some(0.0));

    // A body dropped unread ends the request with its status.
    let response = respond(&mut client, get(server, "/202")).await;
    drop(response);
    let accepted = to(&port, &[("http_response_status_code", "202")]);
    until(metrics, REQUESTS, &accepted, 1.0).await;
}

#[tokio::test]
async fn a_refused_connection_is_connection_refused_without_a_status() {
    let (metrics, mut client) = metered_http().await;
    let nobody = common::free_address();

    let error = send(&mut client, get(nobody, "/"))
        .await
        .expect_err("refused");
    assert!(error.contains("client error (Connect)"), "{error}");
    let port = nobody.port().to_string();
    let scraped = scrape(metrics).await;
    let refused = to(&port, &[("error_type", "connection_refused")]);
    assert_eq!(scraped.value(REQUESTS, &refused), Some(1.0));
    assert_eq!(scraped.value(DURATION_COUNT, &refused), Some(1.0));
    let samples = scraped.matching(REQUESTS, &to(&port, &[]));
    assert_eq!(samples.len(), 1, "{samples:?}");
    assert!(!samples[0].labels.contains_key("http_response_status_code"));
    assert_eq!(scraped.value(ACTIVE, &to(&port, &[])), Some(0.0));
}

/// A client whose future panics: the request is `_OTHER`, not a cancellation, and is
/// no longer in flight; also when the caller catches the panic and drops the future
/// only afterwards, outside the unwinding (tokio drops it during the unwinding).
#[tokio::test]
async fn a_client_that_panics_records_other_not_cancelled() {
    let registry = MetricsRegistry::new();
    let metrics = serve_metrics(&registry).await;
    let panicking = tower::service_fn(|_: Request<ClientRequestBody<Full<Bytes>>>| {
        std::future::poll_fn(
            |_| -> std::task::Poll<Result<Response<Full<Bytes>>, Infallible>> {
                panic!("the client failed")
            },
        )
    });
    let client = ServiceBuilder::new()
        .layer(ClientMetricsLayer::new(&registry).expect("client layer builds"))
        .service(panicking);
    let server = common::free_address();
    let mut call = Box::pin(client.clone().oneshot(get(server, "/")));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        std::future::Future::poll(call.as_mut(), &mut cx)
    }));
    assert!(polled.is_err(), "the client panicked");
    drop(call);
    let joined = tokio::spawn(client.oneshot(get(server, "/"))).await;
    assert!(joined.is_err_and(|error| error.is_panic()));
    let port = server.port().to_string();
    let scraped = scrape(metrics).await;
    let other = to(&port, &[("error_type", "_OTHER")]);
    assert_eq!(
        scraped.value(REQUESTS, &other),
        Some(2.0),
        "{}",
        scraped.text
    );
    assert_eq!(scraped.matching(REQUESTS, &to(&port, &[])).len(), 1);
    assert_eq!(scraped.value(ACTIVE, &to(&port, &[])), Some(0.0));
}

#[tokio::test]
async fn a_stalling_server_is_a_timeout_inside_the_layer_and_cancelled_outside() {
    let registry = MetricsRegistry::new();
    let metrics = serve_metrics(&registry).await;
    let server = serve_answering().await;
    let port = server.port().to_string();
    let layer = ClientMetricsLayer::new(&registry).expect("client layer builds");
    let client: HyperClient = Client::builder(TokioExecutor::new()).build_http();

    // A tower Timeout inside the layer fails the request with its `Elapsed`.
    let mut timed = ServiceBuilder::new()
        .layer(layer.clone())
        .timeout(Duration::from_millis(100))
        .service(client.clone());
    let error = send(&mut timed, get(server, "/stall"))
        .await
        .expect_err("gave up");
    assert_eq!(error, "request timed out");
    let timeout = to(&port, &[("error_type", "timeout")]);
    until(metrics, REQUESTS, &timeout, 1.0).await;

    // The caller dropping the future (here a Timeout outside the layer) cancels it.
    let mut dropped = ServiceBuilder::new()
        .timeout(Duration::from_millis(100))
        .layer(layer)
        .service(client);
    let error = send(&mut dropped, get(server, "/stall"))
        .await
        .expect_err("gave up");
    assert_eq!(error, "request timed out");
    let cancelled = to(&port, &[("error_type", "cancelled")]);
    let scraped = until(metrics, REQUESTS, &cancelled, 1.0).await;
    assert_eq!(scraped.value(REQUESTS, &timeout), Some(1.0));
    assert_eq!(scraped.sum(REQUESTS, &to(&port, &[])), 2.0);
    assert_eq!(scraped.value(ACTIVE, &to(&port, &[])), Some(0.0));
}

/// A server on 127.0.0.1 that reads a request, writes `reply` as it is, then closes
/// the connection, or resets it if `reset`.
async fn serve_raw(reply: &'static [u8], reset: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let server = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let _ = stream.write_all(reply).await;
            if reset {
                let _ = stream.set_zero_linger();
            }
        }
    });
    server
}

#[tokio::test]
async fn a_body_that_breaks_off_keeps_its_status_and_gets_an_error_type() {
    let (metrics, mut client) = metered_http().await;
    // Promises 100 bytes, sends 3, and closes the connection.
    let server = serve_raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc", false).await;

    let error = send(&mut client, get(server, "/"))
        .await
        .expect_err("cut short");
    assert_eq!(error, "error reading a body from connection");
    let port = server.port().to_string();
    let broken = to(
        &port,
        &[
            ("http_response_status_code", "200"),
            ("error_type", "_OTHER"),
        ],
    );
    let scraped = until(metrics, REQUESTS, &broken, 1.0).await;
    assert_eq!(scraped.sum(REQUESTS, &to(&port, &[])), 1.0);
}

#[tokio::test]
async fn servers_past_the_cap_fold_into_the_overflow_series() {
    let registry = MetricsRegistry::new();
    let layer = ClientMetricsLayer::builder(&registry)
        .max_series(2)
        .build()
        .expect("client layer builds");
    let mut client = ServiceBuilder::new()
        .layer(layer)
        .service(Client::builder(TokioExecutor::new()).build_http());
    let metrics = serve_metrics(&registry).await;
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(serve_answering().await);
    }
    for server in &servers {
        send(&mut client, get(*server, "/200"))
            .await
            .expect("answered");
    }

    let scraped = scrape(metrics).await;
    let overflow = [("otel_metric_overflow", "true")];
    for server in &servers[..2] {
        let port = server.port().to_string();
        let ok = to(&port, &[("http_response_status_code", "200")]);
        assert_eq!(scraped.value(REQUESTS, &ok), Some(1.0), "{port}");
    }
    assert_eq!(scraped.value(REQUESTS, &overflow), Some(2.0));
    assert_eq!(scraped.value(ACTIVE, &overflow), Some(0.0));
    assert_eq!(scraped.matching(REQUESTS, &[]).len(), 3);

    // Another client layer on the registry must agree with the cap.
    let other = ClientMetricsLayer::builder(&registry).max_series(3).build();
    assert!(other.is_err(), "{other:?}");
    assert!(ClientMetricsLayer::builder(&registry)
        .max_series(2)
        .build()
        .is_ok());
}

/// A hyper server behind a server layer on `registry`: answers `/{status}`.
async fn serve_recorded(registry: &MetricsRegistry) -> SocketAddr {
    let layer = MetricsLayer::builder(registry)
        .route_fn(|_| Some("/{status}".into()))
        .build()
        .expect("server layer builds");
    common::serve(
        ServiceBuilder::new()
            .layer(layer)
            .service(tower::service_fn(common::answer_with_requested_status)),
    )
    .await
}

#[tokio::test]
async fn client_and_server_layers_share_a_registry_built_in_either_order() {
    for client_first in [false, true] {
        let registry = MetricsRegistry::new();
        let (mut client, server) = if client_first {
            let client = http_client(&registry);
            (client, serve_recorded(&registry).await)
        } else {
            let server = serve_recorded(&registry).await;
            (http_client(&registry), server)
        };
        send(&mut client, get(server, "/")).await.expect("answered");

        // The server's own endpoint serves both sides.
        let port = server.port().to_string();
        let scraped = until(
            server,
            REQUESTS,
            &to(&port, &[("http_response_status_code", "200")]),
            1.0,
        )
        .await;
        let served = [
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
            ("http_route", "/{status}"),
        ];
        assert_eq!(
            scraped.value("http_server_requests_total", &served),
            Some(1.0),
            "client first: {client_first}"
        );
        assert_eq!(scraped.value(ACTIVE, &to(&port, &[])), Some(0.0));
        let route = [("http_request_method", "GET"), ("http_route", "/{status}")];
        assert_eq!(
            scraped.value("http_server_active_requests", &route),
            Some(0.0)
        );
    }
}

const STARTED: &str = "grpc_client_started_total";
const HANDLED: &str = "grpc_client_handled_total";
const HANDLING_COUNT: &str = "grpc_client_handling_seconds_count";
const SENT: &str = "grpc_client_msg_sent_total";
const RECEIVED: &str = "grpc_client_msg_received_total";
const HEALTH: &str = "grpc.health.v1.Health";

/// A tonic `Channel` behind the client layer: the layer hands on its own body, which
/// the channel takes as a `tonic::body::Body`.
type MeteredChannel =
    ClientMetricsService<MapRequest<Channel, fn(TonicRequest) -> TonicRequest<tonic::body::Body>>>;
type TonicRequest<B = ClientRequestBody<tonic::body::Body>> = Request<B>;

fn to_tonic_body(request: TonicRequest) -> TonicRequest<tonic::body::Body> {
    request.map(tonic::body::Body::new)
}

/// A health client on `channel` behind a client layer on `registry`, with `Watch`
/// declared a server stream.
fn health_client(registry: &MetricsRegistry, channel: Channel) -> HealthClient<MeteredChannel> {
    let layer = ClientMetricsLayer::builder(registry)
        .grpc_method_type(format!("/{HEALTH}/Watch"), GrpcType::ServerStream)
        .build()
        .expect("client layer builds");
    let to_tonic: fn(TonicRequest) -> TonicRequest<tonic::body::Body> = to_tonic_body;
    HealthClient::new(
        ServiceBuilder::new()
            .layer(layer)
            .map_request(to_tonic)
            .service(channel),
    )
}

/// The endpoint of a new registry, and a health client to `server` recording into it.
async fn metered_health(server: SocketAddr) -> (SocketAddr, HealthClient<MeteredChannel>) {
    let registry = MetricsRegistry::new();
    let metrics = serve_metrics(&registry).await;
    (metrics, health_client(&registry, connect(server).await))
}

async fn connect(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid address")
        .connect()
        .await
        .expect("client connects")
}

/// A tonic server with the health service on 127.0.0.1, and its reporter.
async fn serve_health() -> (SocketAddr, tonic_health::server::HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    let incoming =
        tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
    let addr = incoming.local_addr().expect("local address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    (addr, reporter)
}

/// A `Watch` of the server's overall status.
async fn watch(client: &mut HealthClient<MeteredChannel>) -> Streaming<HealthCheckResponse> {
    let answer = client.watch(check("")).await.expect("watch answers");
    answer.into_inner()
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_string(),
    }
}

fn method<'a>(grpc_type: &'a str, name: &'a str, code: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![
        ("grpc_type", grpc_type),
        ("grpc_service", HEALTH),
        ("grpc_method", name),
    ];
    labels.extend(code.map(|code| ("grpc_code", code)));
    labels
}

/// Scrapes until the one call of a method is handled with `code`; checks it was
/// handled once.
async fn handled_once(metrics: SocketAddr, grpc_type: &str, name: &str, code: &str) -> Exposition {
    let scraped = until(metrics, HANDLED, &method(grpc_type, name, Some(code)), 1.0).await;
    let calls = method(grpc_type, name, None);
    assert_eq!(scraped.sum(HANDLED, &calls), 1.0, "handled once");
    scraped
}

#[tokio::test]
async fn tonic_calls_are_counted_with_the_code_the_client_sees() {
    let (server, _reporter) = serve_health().await;
    let (metrics, mut client) = metered_health(server).await;

    let served = client
        .check(check(""))
        .await
        .expect("the server is serving");
    assert_eq!(served.into_inner().status, 1);
    let unknown = client
        .check(check("nope"))
        .await
        .expect_err("no such service");
    assert_eq!(unknown.code(), Code::NotFound);

    let check = method("unary", "Check", None);
    let scraped = until(
        metrics,
        HANDLED,
        &method("unary", "Check", Some("NotFound")),
        1.0,
    )
    .await;
    assert_eq!(
        scraped.value(HANDLED, &method("unary", "Check", Some("OK"))),
        Some(1.0)
    );
    assert_eq!(scraped.sum(HANDLED, &check), 2.0, "each call once");
    assert_eq!(scraped.value(STARTED, &check), Some(2.0));
    assert_eq!(scraped.value(HANDLING_COUNT, &check), Some(2.0));
    assert_eq!(scraped.value(SENT, &check), Some(2.0));
    // The NotFound answer is trailers-only: no message.
    assert_eq!(scraped.value(RECEIVED, &check), Some(1.0));
    assert!(scraped.matching(REQUESTS, &[]).is_empty(), "no HTTP series");
}

#[tokio::test]
async fn a_stream_the_caller_drops_is_canceled_with_what_it_received() {
    let (server, reporter) = serve_health().await;
    let (metrics, mut client) = metered_health(server).await;

    let mut stream = watch(&mut client).await;
    let first = stream
        .message()
        .await
        .expect("stream open")
        .expect("a status");
    assert_eq!(first.status, 1);
    reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let second = stream
        .message()
        .await
        .expect("stream open")
        .expect("a status");
    assert_eq!(second.status, 2);

    let watch = method("server_stream", "Watch", None);
    let open = scrape(metrics).await;
    assert_eq!(open.value(STARTED, &watch), Some(1.0));
    assert_eq!(open.sum(HANDLED, &watch), 0.0, "in flight");
    assert_eq!(open.value(RECEIVED, &watch), Some(2.0));

    drop(stream);
    let scraped = handled_once(metrics, "server_stream", "Watch", "Canceled").await;
    assert_eq!(scraped.value(SENT, &watch), Some(1.0));
    assert_eq!(scraped.value(RECEIVED, &watch), Some(2.0));
    assert_eq!(scraped.value(HANDLING_COUNT, &watch), Some(1.0));
}

/// One length-prefixed gRPC message.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).expect("short").to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

/// A gRPC server (no tonic) that reads the request, then answers `Watch` with three
/// `Serving` statuses and `Aborted` in the trailers, and `Check` with one `Serving`
/// and no status at all.
async fn serve_aborting_after_messages() -> SocketAddr {
    common::serve(tower::service_fn(
        |request: Request<hyper::body::Incoming>| async move {
            let watch = request.uri().path().ends_with("/Watch");
            request.into_body().collect().await?;
            let serving = prost::Message::encode_to_vec(&HealthCheckResponse { status: 1 });
            let messages = if watch { 3 } else { 1 };
            let body: Vec<u8> = (0..messages).flat_map(|_| framed(&serving)).collect();
            let mut trailers = HeaderMap::new();
            if watch {
                trailers.insert("grpc-status", (Code::Aborted as i32).into());
            }
            let body =
                Full::new(Bytes::from(body)).with_trailers(async move { Some(Ok(trailers)) });
            let mut response = Response::new(body);
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc"),
            );
            Ok::<_, hyper::Error>(response)
        },
    ))
    .await
}

#[tokio::test]
async fn a_status_in_the_trailers_after_messages_is_the_code_and_none_is_unknown() {
    let server = serve_aborting_after_messages().await;
    let (metrics, mut client) = metered_health(server).await;

    let mut stream = watch(&mut client).await;
    let mut received = 0;
    let status = loop {
        match stream.message().await {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the stream ended OK"),
            Err(status) => break status,
        }
    };
    assert_eq!((received, status.code()), (3, Code::Aborted));

    let watch = method("server_stream", "Watch", None);
    let scraped = handled_once(metrics, "server_stream", "Watch", "Aborted").await;
    assert_eq!(scraped.value(RECEIVED, &watch), Some(3.0));
    assert_eq!(scraped.value(SENT, &watch), Some(1.0));

    // A response that ends without a status is `Unknown`, as tonic reads it.
    let unanswered = client.check(check("")).await.expect_err("no status");
    assert_eq!(unanswered.code(), Code::Unknown);
    let check = method("unary", "Check", None);
    let scraped = handled_once(metrics, "unary", "Check", "Unknown").await;
    assert_eq!(scraped.value(RECEIVED, &check), Some(1.0));
}

#[tokio::test]
async fn a_transport_error_is_unavailable() {
    let registry = MetricsRegistry::new();
    let metrics = serve_metrics(&registry).await;
    let nobody = common::free_address();
    let channel = Endpoint::from_shared(format!("http://{nobody}"))
        .expect("valid address")
        .connect_lazy();
    let mut client = health_client(&registry, channel);

    let refused = client.check(check("")).await.expect_err("nobody listens");
    assert_eq!(refused.code(), Code::Unavailable);
    let check = method("unary", "Check", None);
    let scraped = handled_once(metrics, "unary", "Check", "Unavailable").await;
    assert_eq!(scraped.value(STARTED, &check), Some(1.0));
    assert_eq!(scraped.value(RECEIVED, &check), Some(0.0));
}

#[tokio::test]
async fn an_http_error_without_a_grpc_status_is_read_as_tonic_reads_it() {
    // A proxy in front of the server answers 503 with no gRPC status and no body.
    let proxy = common::serve(tower::service_fn(
        |_request: Request<hyper::body::Incoming>| async {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            Ok::<_, Infallible>(response)
        },
    ))
    .await;
    let (metrics, mut client) = metered_health(proxy).await;

    let unavailable = client.check(check("")).await.expect_err("no upstream");
    assert_eq!(unavailable.code(), Code::Unavailable);
    handled_once(metrics, "unary", "Check", "Unavailable").await;
}

#[test]
fn the_layer_service_future_and_bodies_can_cross_threads() {
    fn sendable<T: Send + 'static>() {}
    fn shared<T: Send + Sync + 'static>() {}
    shared::<ClientMetricsLayer>();
    shared::<ClientMetricsService<HyperClient>>();
    sendable::<<ClientMetricsService<HyperClient> as Service<Request<Full<Bytes>>>>::Future>();
    sendable::<ClientResponseBody<hyper::body::Incoming>>();
    sendable::<ClientRequestBody<Full<Bytes>>>();
    sendable::<<MeteredChannel as Service<Request<tonic::body::Body>>>::Future>();
}

#[tokio::test]
async fn a_reset_connection_is_connection_reset() {
    let (metrics, mut client) = metered_http().await;
    // Resets the connection instead of answering.
    let server = serve_raw(b"", true).await;

    send(&mut client, get(server, "/"))
        .await
        .expect_err("reset");
    let port = server.port().to_string();
    let reset = to(&port, &[("error_type", "connection_reset")]);
    let scraped = until(metrics, REQUESTS, &reset, 1.0).await;
    assert_eq!(scraped.sum(REQUESTS, &to(&port, &[])), 1.0);
}
