//! The application on one listener, `/metrics` on another (an internal port that only
//! Prometheus reaches).
//!
//! ```sh
//! cargo run --example standalone_endpoint   # BIND=127.0.0.1:3000, METRICS_BIND=127.0.0.1:9090
//! curl http://127.0.0.1:3000/
//! curl http://127.0.0.1:9090/metrics
//! ```

use std::error::Error;

use axum::routing::get;
use axum::Router;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let registry = MetricsRegistry::new();
    // The layer records, but leaves `/metrics` on the public port to the application.
    let layer = MetricsLayer::builder(&registry)
        .without_endpoint()
        .build()?;
    let endpoint = layer.endpoint();

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .layer(layer);

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let metrics_bind = std::env::var("METRICS_BIND").unwrap_or_else(|_| "127.0.0.1:9090".into());
    let app_listener = tokio::net::TcpListener::bind(&bind).await?;
    let metrics_listener = tokio::net::TcpListener::bind(&metrics_bind).await?;
    println!(
        "app on http://{}, metrics on http://{}/metrics",
        app_listener.local_addr()?,
        metrics_listener.local_addr()?
    );
    // The endpoint is a plain tower service; it answers 404 off its path by itself.
    let metrics = Router::new().fallback_service(endpoint);
    tokio::try_join!(async { axum::serve(app_listener, app).await }, async {
        axum::serve(metrics_listener, metrics).await
    },)?;
    Ok(())
}
