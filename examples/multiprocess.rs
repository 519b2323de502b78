//! Several worker processes behind one listening port, sharing one multiprocess
//! directory: a scrape of any worker answers the totals of all of them.
//!
//! ```sh
//! cargo run --example multiprocess          # 3 workers on BIND=127.0.0.1:3000
//! WORKERS=4 PROMETHEUS_MULTIPROC_DIR=/var/run/app-metrics cargo run --example multiprocess
//! curl http://127.0.0.1:3000/metrics        # any worker answers; the counts are the sum
//! ```
//!
//! Each worker binds the same address with `SO_REUSEPORT`, so the kernel spreads
//! connections over them. The supervisor empties the directory before it starts the
//! workers, as a deployment should.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use axum::routing::get;
use axum::Router;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

const WORKER_FLAG: &str = "TOWER_PROMETHEUS_EXAMPLE_WORKER";

fn main() -> Result<(), Box<dyn Error>> {
    let bind: SocketAddr = std::env::var("BIND")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    if std::env::var_os(WORKER_FLAG).is_some() {
        return worker(bind);
    }

    let dir = std::env::var_os("PROMETHEUS_MULTIPROC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tower-prometheus-multiprocess-example"));
    // Files of an earlier run would add their counts to this one's.
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let workers: usize = std::env::var("WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    println!(
        "starting {workers} workers on http://{bind}, metrics files in {}",
        dir.display()
    );
    let mut children = Vec::new();
    for _ in 0..workers {
        children.push(
            Command::new(std::env::current_exe()?)
                .env(WORKER_FLAG, "1")
                .env("PROMETHEUS_MULTIPROC_DIR", &dir)
                .env("BIND", bind.to_string())
                .spawn()?,
        );
    }
    for mut child in children {
        child.wait()?;
    }
    Ok(())
}

fn worker(bind: SocketAddr) -> Result<(), Box<dyn Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // PROMETHEUS_MULTIPROC_DIR is set: the layer keeps its values in the files.
        let registry = MetricsRegistry::new();
        let app = Router::new()
            .route(
                "/",
                get(|| async { format!("hello from worker {}\n", std::process::id()) }),
            )
            .layer(MetricsLayer::new(&registry)?);
        let socket = match bind {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseport(true)?;
        socket.bind(bind)?;
        let listener = socket.listen(1024)?;
        println!("worker {} listening", std::process::id());
        axum::serve(listener, app).await?;
        Ok(())
    })
}
