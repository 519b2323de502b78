//! A tonic server with the gRPC health service, measured by the layer, with
//! `/metrics` served over HTTP/1.1 on the same port.
//!
//! ```sh
//! cargo run --example tonic           # BIND=127.0.0.1:50051 by default
//! grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check
//! curl http://127.0.0.1:50051/metrics
//! ```

use std::error::Error;
use std::net::SocketAddr;

use tonic::transport::Server;
use tower_prometheus::grpc::GrpcType;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        // tonic answers every request as gRPC, whatever its content type.
        .grpc_only()
        // Declared methods have their series from the start; undeclared ones are `unary`.
        .grpc_method_type("/grpc.health.v1.Health/Check", GrpcType::Unary)
        .grpc_method_type("/grpc.health.v1.Health/Watch", GrpcType::ServerStream)
        .build()?;

    let (_reporter, health) = tonic_health::server::health_reporter();

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:50051".into());
    let addr: SocketAddr = bind.parse()?;
    println!("listening on {addr} (gRPC), metrics at http://{addr}/metrics");
    Server::builder()
        // `/metrics` is plain HTTP/1.1; the layer answers it before tonic's router.
        .accept_http1(true)
        .layer(layer)
        .add_service(health)
        .serve(addr)
        .await?;
    Ok(())
}
