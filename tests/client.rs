//! End to end through the client layer: a real hyper client and a real tonic client
//! around it, real servers on 127.0.0.1 (that answer, fail, stall, or are not there),
//! and the registry scraped from its own endpoint, value by value.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, scrape, Exposition};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_prometheus::client::{ClientMetricsLayer, ClientMetricsService, ClientRequestBody};
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

/// The labels of requests of `method` to `addr`, and more.
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
    let registry = MetricsRegistry::new();
    let mut client = http_client(&registry);
    let metrics = serve_metrics(&registry).await;
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
    let response = client
        .ready()
        .await
        .expect("ready")
        .call(get(server, "/201"))
        .await
        .expect("answered");
    let created = to(&port, &[("http_response_status_code", "201")]);
    let open = scrape(metrics).await;
    assert_eq!(open.value(ACTIVE, &to(&port, &[])), Some(1.0));
    assert_eq!(open.value(REQUESTS, &created), None);
    response.into_body().collect().await.expect("body read");
    let read = scrape(metrics).await;
    assert_eq!(read.value(REQUESTS, &created), Some(1.0));
    assert_eq!(read.value(ACTIVE, &to(&port, &[])), Some(0.0));

    // A body dropped unread ends the request with its status.
    let response = client
        .ready()
        .await
        .expect("ready")
        .call(get(server, "/202"))
        .await
        .expect("answered");
    drop(response);
    let accepted = to(&port, &[("http_response_status_code", "202")]);
    until(metrics, REQUESTS, &accepted, 1.0).await;
}

#[tokio::test]
async fn a_refused_connection_is_connection_refused_without_a_status() {
    let registry = MetricsRegistry::new();
    let mut client = http_client(&registry);
    let metrics = serve_metrics(&registry).await;
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

#[tokio::test]
async fn a_body_that_breaks_off_keeps_its_status_and_gets_an_error_type() {
    let registry = MetricsRegistry::new();
    let mut client = http_client(&registry);
    let metrics = serve_metrics(&registry).await;
    // Promises 100 bytes, sends 3, and closes the connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let server = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
                .await;
        }
    });

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
        assert_eq!(scraped.value("http_server_active_requests", &route), Some(0.0));
    }
}
