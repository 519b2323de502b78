//! axum's `Router::route_layer` wraps the routes but not the fallback, so a metrics
//! layer added that way never sees `/metrics`. It says so with a `tracing` warning
//! once it has seen five minutes of routed requests and no other; the clock is
//! Tokio's, paused and moved forward by the tests.
#![cfg(feature = "axum")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::events::Events;
use http::StatusCode;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

/// Longer than the five minutes the layer waits.
const PAST_THE_GRACE: Duration = Duration::from_secs(5 * 60 + 1);

fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/users/{id}", get(|| async { "user" }))
}

/// Serves `app` with the paused clock and the warnings captured for this test's thread
/// (a current-thread runtime runs the server's tasks there too).
async fn serve_watched(app: Router) -> (SocketAddr, Events, impl Drop) {
    let warnings = Events::default();
    let guard = tracing::subscriber::set_default(warnings.clone());
    let addr = common::serve(app).await;
    (addr, warnings, guard)
}

#[tokio::test(start_paused = true)]
async fn a_layer_added_with_route_layer_warns_that_scrapes_cannot_reach_it() {
    let layer = MetricsLayer::new(&MetricsRegistry::new()).unwrap();
    let (addr, warnings, _guard) = serve_watched(routes().route_layer(layer)).await;

    assert_eq!(common::get(addr, "/").await.status, StatusCode::OK);
    // The misuse itself: axum's fallback answers the endpoint path.
    assert_eq!(
        common::get(addr, "/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(common::get(addr, "/users/7").await.status, StatusCode::OK);
    assert!(warnings.warnings().is_empty(), "{:?}", warnings.warnings());

    tokio::time::advance(PAST_THE_GRACE).await;
    assert_eq!(common::get(addr, "/").await.status, StatusCode::OK);
    let taken = warnings.warnings();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].target, "tower_prometheus::endpoint");
    let written = taken[0].written();
    for needed in ["Router::route_layer", "Router::layer", "path=\"/metrics\""] {
        assert!(written.contains(needed), "{needed} in {written}");
    }

    // Once is enough.
    tokio::time::advance(PAST_THE_GRACE).await;
    assert_eq!(common::get(addr, "/users/8").await.status, StatusCode::OK);
    assert_eq!(warnings.warnings().len(), 1);
}

/// Serves `app`, sends the `first` requests (each a path and the status it gets), lets
/// the five minutes pass, sends one more routed request, and checks that nothing was
/// logged.
async fn quiet_past_the_grace(app: Router, first: &[(&str, StatusCode)]) -> SocketAddr {
    let (addr, warnings, _guard) = serve_watched(app).await;
    for (path, status) in first {
        assert_eq!(common::get(addr, path).await.status, *status, "{path}");
    }
    tokio::time::advance(PAST_THE_GRACE).await;
    assert_eq!(common::get(addr, "/").await.status, StatusCode::OK);
    assert!(warnings.warnings().is_empty(), "{:?}", warnings.warnings());
    addr
}

#[tokio::test(start_paused = true)]
async fn a_layer_that_answers_scrapes_does_not_warn() {
    let layer = MetricsLayer::new(&MetricsRegistry::new()).unwrap();
    let first = [("/", StatusCode::OK), ("/metrics", StatusCode::OK)];
    quiet_past_the_grace(routes().layer(layer), &first).await;
}

#[tokio::test(start_paused = true)]
async fn a_layer_on_the_fallback_does_not_warn_before_the_first_scrape() {
    // Requests no route matched show the layer wraps the fallback, so `/metrics`
    // would reach it: no warning even before Prometheus first scrapes.
    let layer = MetricsLayer::new(&MetricsRegistry::new()).unwrap();
    let first = [
        ("/", StatusCode::OK),
        ("/no-such-page", StatusCode::NOT_FOUND),
    ];
    quiet_past_the_grace(routes().layer(layer), &first).await;
}

#[tokio::test(start_paused = true)]
async fn the_endpoint_on_a_route_of_its_own_does_not_warn() {
    // With `route_layer`, the endpoint taken from the layer serves scrapes on its own
    // route; those scrapes count as reaching it.
    let layer = MetricsLayer::new(&MetricsRegistry::new()).unwrap();
    let endpoint = layer.endpoint();
    let app = routes()
        .route_layer(layer)
        .route_service("/metrics", endpoint);
    let first = [("/", StatusCode::OK), ("/metrics", StatusCode::OK)];
    let addr = quiet_past_the_grace(app, &first).await;
    let metrics = common::scrape(addr).await;
    assert_eq!(
        metrics.sum("http_server_requests_total", &[("http_route", "/")]),
        2.0
    );
}
