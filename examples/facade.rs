//! An axum app moved from axum-prometheus: its business metrics stay `metrics` macro
//! calls, recorded into the registry by the facade recorder, next to the layer's HTTP
//! families on the same `/metrics`.
//!
//! ```sh
//! cargo run --example facade --features metrics   # BIND=127.0.0.1:3000 by default
//! curl -X POST http://127.0.0.1:3000/orders/book
//! curl http://127.0.0.1:3000/metrics
//! ```

use std::error::Error;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use tower_prometheus::facade::{FacadeRecorder, Matcher};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

async fn order(Path(kind): Path<String>) -> String {
    metrics::counter!("orders", "kind" => kind.clone()).increment(1);
    metrics::histogram!("basket_value_euros").record(42.5);
    format!("ordered a {kind}\n")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let registry = MetricsRegistry::new();
    // Was: `let (prometheus_layer, metric_handle) = PrometheusMetricLayer::pair();`
    FacadeRecorder::builder(&registry)
        .buckets_for(
            Matcher::Suffix("_euros".into()),
            &[1.0, 10.0, 100.0, 1000.0],
        )
        .build()?
        .install()?;
    metrics::describe_counter!("orders", "Orders placed, by kind.");
    metrics::describe_histogram!("basket_value_euros", "Basket values at checkout.");

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route("/orders/{kind}", post(order))
        // Was: `.route("/metrics", ..)` and `.layer(prometheus_layer)`.
        .layer(MetricsLayer::new(&registry)?);

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!(
        "POST http://{}/orders/book, then GET /metrics",
        listener.local_addr()?
    );
    Ok(axum::serve(listener, app).await?)
}
