//! Whether scrapes can reach the layer at all.
//!
//! axum's `Router::route_layer` wraps only the routes, not the fallback that answers
//! paths no route matches, so a layer added that way never sees `/metrics` and axum
//! answers it with `404`. Nothing fails: the layer records the routes and nobody
//! scrapes them. The layer cannot tell `route_layer` from `layer` when it is added
//! (both hand it the same routes), so it watches the traffic instead: with
//! `Router::layer` it sees requests no route matched (scrapes of its path among them);
//! with `route_layer` it never does. After [`GRACE`] of routed requests, no other and
//! no scrape (the standalone endpoint taken from the layer counts too), it warns once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::MatchedPath;
use http::Request;
use tokio::time::Instant;

use crate::warning::unheard;

/// How long the layer waits for a request without a route before it warns: the
/// lookback of a Prometheus query (5 minutes), longer than any scrape interval that
/// keeps a target's series continuous.
pub(crate) const GRACE: Duration = Duration::from_secs(5 * 60);

/// Watches the requests a layer sees for one that did not come through an axum route.
#[derive(Debug, Default)]
pub(crate) struct ReachCheck {
    /// Set once a request without a route or a scrape arrived, or the warning went out:
    /// from then on the check costs one load.
    settled: AtomicBool,
    first_routed: OnceLock<Instant>,
}

impl ReachCheck {
    /// Looks at a request the layer passes on to the application: once settled, one
    /// load.
    #[inline]
    pub(crate) fn observe<B>(&self, request: &Request<B>, path: &str) {
        if !self.settled.load(Ordering::Relaxed) {
            self.watch(request.extensions().get::<MatchedPath>().is_some(), path);
        }
    }

    /// A request passed on before the check settled; `routed`: it came through an
    /// axum route.
    fn watch(&self, routed: bool, path: &str) {
        if !routed {
            self.settle();
            return;
        }
        let now = Instant::now();
        let first = *self.first_routed.get_or_init(|| now);
        if now.duration_since(first) >= GRACE && !self.settled.swap(true, Ordering::Relaxed) {
            let message = "the metrics layer has seen only requests that matched an axum \
                 route, and no scrape of its endpoint: a layer added with \
                 `Router::route_layer` runs for matched routes only, so axum answers the \
                 endpoint path with 404. Add it with `Router::layer`, or serve \
                 `MetricsLayer::endpoint()` on a route of its own";
            tracing::warn!(
                target: "tower_prometheus::endpoint",
                path,
                waited_secs = GRACE.as_secs(),
                "{message}"
            );
            unheard(message);
        }
    }

    /// A scrape reached the endpoint, through the layer or on a route of its own.
    pub(crate) fn settle(&self) {
        if !self.settled.load(Ordering::Relaxed) {
            self.settled.store(true, Ordering::Relaxed);
        }
    }
}
