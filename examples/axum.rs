//! An axum server whose every request is measured, with `/metrics` on the same port.
//!
//! ```sh
//! cargo run --example axum            # BIND=127.0.0.1:3000 by default
//! curl http://127.0.0.1:3000/users/7
//! curl http://127.0.0.1:3000/metrics
//! ```

use std::error::Error;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use tower_prometheus::metrics::{Counter, Gauge};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let registry = MetricsRegistry::new();
    // A business counter: declared now, built when the layer is built.
    registry.provider("user_pages_served", "User pages served.", Counter::default)?;
    // A gauge that mirrors outside state, refreshed by a collector on every scrape;
    // `collected_provider` keeps it out of the multi-process files.
    registry.collected_provider("jobs_queued", "Jobs waiting in the queue.", Gauge::default)?;
    let queue = Arc::new(AtomicI64::new(0));
    let queue_for_collector = Arc::clone(&queue);
    registry.collector("job_queue", move |registry| {
        registry
            .get::<Gauge>("jobs_queued")?
            .set(queue_for_collector.load(Ordering::Relaxed));
        Ok(())
    })?;

    let layer = MetricsLayer::new(&registry)?;
    let pages = registry.get::<Counter>("user_pages_served")?;

    let app = Router::new()
        .route(
            "/",
            get(move || async move {
                queue.fetch_add(1, Ordering::Relaxed);
                "queued a job\n"
            }),
        )
        .route(
            "/users/{id}",
            get(move |Path(id): Path<u64>| async move {
                pages.inc();
                format!("user {id}\n")
            }),
        );
    // METRICS=off serves the same routes without the layer, to measure what it costs.
    let app = if std::env::var("METRICS").is_ok_and(|v| v == "off") {
        app
    } else {
        app.layer(layer)
    };

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!(
        "listening on http://{}, metrics at /metrics",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}
