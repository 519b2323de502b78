//! End to end through a real tonic server on 127.0.0.1 with a real tonic client: the
//! go-grpc-prometheus families, scraped over HTTP/1.1 from the same port.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{eventually, scrape, Exposition};
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tower::Layer;
use tower_prometheus::grpc::{
    GrpcType, GRPC_CODE_DROPPED, GRPC_CODE_NO_STATUS, GRPC_CODE_SERVER_ERROR,
};
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
    (serve(layer, health).await, reporter)
}

/// Serves `health` behind `layer` on an OS-chosen port of 127.0.0.1.
async fn serve<S>(layer: MetricsLayer, health: S) -> SocketAddr
where
    S: tower::Service<
            Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
    let addr = incoming.local_addr().expect("local address");
    tokio::spawn(
        Server::builder()
            .accept_http1(true)
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    addr
}

async fn client(addr: SocketAddr) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid address")
        .connect()
        .await
        .expect("client connects");
    HealthClient::new(channel)
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

#[tokio::test]
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

#[tokio::test]
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

#[tokio::test]
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
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Full::new(framed(b"")))
        .expect("valid request");
    client.request(request).await
}

fn grpc_status(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(value.to_string())
}

#[tokio::test]
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

/// A gRPC server (no tonic) that answers every path with one message and OK, as
/// gRPC: with its content type.
async fn serve_answering_everything(layer: MetricsLayer) -> SocketAddr {
    let service = layer.layer(tower::service_fn(
        |_: Request<RequestBody<hyper::body::Incoming>>| async move {
            let mut response = http::Response::new(Full::new(framed(b"reply")));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                "application/grpc".parse().expect("valid"),
            );
            headers.insert("grpc-status", "0".parse().expect("valid"));
            Ok::<_, std::convert::Infallible>(response)
        },
    ));
    common::serve(service).await
}

#[tokio::test]
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

#[tokio::test]
async fn calls_ending_without_a_status_record_documented_codes() {
    let addr = serve_misbehaving().await;
    let no_status = raw_call(addr, "/t.S/NoStatus").await;
    assert_eq!(grpc_status(no_status.headers()), None);
    let body = no_status.into_body().collect().await.expect("body read");
    assert!(body.trailers().is_none());
    assert!(try_raw_call(addr, "/t.S/Fails").await.is_err());
    assert!(try_raw_call(addr, "/t.S/Panics").await.is_err());

    for (name, code) in [
        ("NoStatus", GRPC_CODE_NO_STATUS),
        ("Fails", GRPC_CODE_SERVER_ERROR),
        ("Panics", GRPC_CODE_SERVER_ERROR),
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
    assert_eq!(GRPC_CODE_NO_STATUS.as_str(), "Unknown");
    assert_eq!(GRPC_CODE_SERVER_ERROR.as_str(), "Internal");
}

#[tokio::test]
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
    let scraped = handled(addr, &labels, GRPC_CODE_DROPPED.as_str()).await;
    assert_eq!(scraped.sum(HANDLED, &labels), 1.0, "recorded once");
    assert_eq!(GRPC_CODE_DROPPED.as_str(), "Canceled");
}

#[tokio::test]
async fn method_objectives_export_targets_and_count_calls_within_the_latency() {
    use tower_prometheus::layer::Objective;
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_objective(
            format!("{SERVICE}/Check"),
            Objective::availability(0.999).with_latency(Duration::from_secs(5), 0.99),
        )
        .build()
        .expect("layer builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = serve(layer, health).await;
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
