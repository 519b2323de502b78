//! A batch job that pushes its metrics once to a Pushgateway and prints the outcome.
//!
//! ```sh
//! prometheus-pushgateway --persistence.file= &   # listens on 127.0.0.1:9091
//! cargo run --example push --features push       # PUSHGATEWAY=127.0.0.1:9091
//! curl -s http://127.0.0.1:9091/metrics | grep batch_
//! ```

use std::error::Error;
use std::time::Instant;

use tower_prometheus::metrics::{Counter, Gauge};
use tower_prometheus::push::Pusher;
use tower_prometheus::MetricsRegistry;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    // The job keeps a handle of each metric; the providers hand clones of them to the
    // registry when the first push initialises it.
    let rows = Counter::default();
    let duration = Gauge::default();
    let registry = MetricsRegistry::new();
    registry.provider("batch_rows_processed", "Rows the job processed.", {
        let rows = rows.clone();
        move || rows
    })?;
    registry.provider("batch_duration_seconds", "How long the job ran.", {
        let duration = duration.clone();
        move || duration
    })?;

    let gateway = std::env::var("PUSHGATEWAY").unwrap_or_else(|_| "127.0.0.1:9091".into());
    let pusher = Pusher::builder(format!("http://{gateway}"), "example_batch")
        .grouping("instance", "example")
        .build()?;

    rows.inc_by(1_000); // the job's work
    duration.set_f64(started.elapsed().as_secs_f64());

    match pusher.push(&registry).await {
        Ok(()) => println!("pushed to {}", pusher.url()),
        Err(error) => {
            eprintln!("push to {} failed: {error}", pusher.url());
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            std::process::exit(1);
        }
    }
    Ok(())
}
