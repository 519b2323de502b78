//! A plain hyper 1 server (no framework) measured by the layer; a route function names
//! the routes, since there is no router to ask.
//!
//! ```sh
//! cargo run --example hyper           # BIND=127.0.0.1:3000 by default
//! curl http://127.0.0.1:3000/users/7
//! curl http://127.0.0.1:3000/metrics
//! ```

use std::borrow::Cow;
use std::convert::Infallible;
use std::error::Error;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::{service_fn, Layer};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

/// The layer hands the application the client's request as it came.
async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let (status, body) = if path == "/" {
        (StatusCode::OK, "hello\n".to_string())
    } else if let Some(id) = path.strip_prefix("/users/") {
        (StatusCode::OK, format!("user {id}\n"))
    } else {
        (StatusCode::NOT_FOUND, "not found\n".to_string())
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        // Route templates, never raw paths: a raw path would make one series per user.
        .route_fn(|parts| match parts.uri.path() {
            "/" => Some(Cow::Borrowed("/")),
            path if path.starts_with("/users/") => Some(Cow::Borrowed("/users/{id}")),
            _ => None,
        })
        .build()?;
    let service = layer.layer(service_fn(handle));

    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!(
        "listening on http://{}, metrics at /metrics",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
