//! Outgoing calls measured: a hyper client and a tonic client behind
//! `ClientMetricsLayer`, each calling a server this example starts on 127.0.0.1, then
//! the client families as a scrape would show them.
//!
//! ```sh
//! cargo run --example client
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower::{ServiceBuilder, ServiceExt};
use tower_prometheus::client::{BoxError, ClientMetricsLayer};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let registry = MetricsRegistry::new();
    let layer = ClientMetricsLayer::new(&registry)?;

    // hyper: the layer around hyper-util's client; its requests carry absolute URIs,
    // which name the server.
    let web = serve_hello().await?;
    let hyper_client = ServiceBuilder::new()
        .layer(layer.clone())
        .service(Client::builder(TokioExecutor::new()).build_http());
    for path in ["/", "/", "/missing"] {
        let request = Request::get(format!("http://{web}{path}")).body(Full::<Bytes>::default())?;
        let response = hyper_client.clone().oneshot(request).await?;
        let status = response.status();
        // The request is recorded when its body ends.
        response.into_body().collect().await?;
        println!("GET {path}: {status}");
    }

    // tonic: the layer around a Channel, which takes tonic's own body type back.
    let grpc = serve_health().await?;
    let channel = Endpoint::from_shared(format!("http://{grpc}"))?
        .connect()
        .await?;
    let mut health = HealthClient::new(
        ServiceBuilder::new()
            .layer(layer)
            .map_request(|request: Request<_>| request.map(tonic::body::Body::new))
            .service(channel),
    );
    for service in ["", "unknown"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        match health.check(request).await {
            Ok(reply) => println!("Check({service:?}): {:?}", reply.into_inner().status()),
            Err(status) => println!("Check({service:?}): {:?}", status.code()),
        }
    }

    // What a scrape of this registry serves, the client families only.
    let scrape = MetricsEndpoint::new(&registry)?
        .oneshot(Request::get("/metrics").body(Empty::<Bytes>::new())?)
        .await?;
    let body = scrape.into_body().collect().await?.to_bytes();
    for line in String::from_utf8_lossy(&body).lines() {
        let client_line = line.starts_with("http_client_") || line.starts_with("grpc_client_");
        if client_line && !line.contains("_bucket") {
            println!("{line}");
        }
    }
    Ok(())
}

/// A hyper server on 127.0.0.1 answering `/` with 200 and anything else with 404.
async fn serve_hello() -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let hello = tower::service_fn(|request: Request<hyper::body::Incoming>| async move {
        let mut response = Response::new(Full::new(Bytes::from_static(b"hello\n")));
        if request.uri().path() != "/" {
            *response.status_mut() = http::StatusCode::NOT_FOUND;
        }
        Ok::<_, Infallible>(response)
    });
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(hello);
            tokio::spawn(
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    Ok(addr)
}

/// tonic's health service on 127.0.0.1.
async fn serve_health() -> Result<SocketAddr, BoxError> {
    let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = incoming.local_addr()?;
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    Ok(addr)
}
