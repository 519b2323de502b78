//! The `/metrics` endpoint: matching, formats, and the standalone service.
//!
//! A scrape runs the registry's collectors, then encodes the registry in the format the
//! `Accept` header asks for (q-values as RFC 9110 defines them; a malformed one counts
//! as 0): OpenMetrics 1.0.0 text, delimited protobuf (feature `protobuf`, off by default;
//! what a Prometheus server with native histograms asks for), or else the Prometheus
//! text format 0.0.4, each with its `Content-Type` and `Content-Length`. The body is
//! gzip-compressed when `Accept-Encoding` allows it, and every scrape response says
//! `Vary: Accept, Accept-Encoding`. `HEAD` gets the same headers and no body.
//!
//! `name[]` query parameters, as Go's promhttp and Python's client read them, keep only
//! the families named (by family name or by one of their sample names), in every format.
//! Collectors are opaque until they run, so all of them run on every scrape and the
//! registry is encoded whole; the families not named are then dropped from the body.
//! More than 1000 names, or a value that does not decode to UTF-8, get `400 Bad Request`.
//!
//! Options ([`MetricsEndpointBuilder`]): a bearer token or any guard on the request
//! (`401` with `WWW-Authenticate` otherwise), and a maximum of scrapes in flight (`503`
//! with `Retry-After` past it), each in flight until its body has been sent or dropped.
//!
//! With the `axum` feature, a layer that sees five minutes of requests that all matched
//! an axum route, and no scrape, logs a `tracing` warning: it was most likely added with
//! `Router::route_layer`, which leaves the endpoint path to axum's fallback (`404`).

mod body;
mod compress;
mod families;
mod format;
mod guard;
mod limit;
mod negotiate;
#[cfg(feature = "axum")]
mod reach;
mod select;
mod service;

pub use body::MetricsBody;
pub use format::Format;
#[cfg(feature = "push")]
pub(crate) use guard::token_problem;
pub use guard::ScrapeRequest;
#[cfg(feature = "push")]
pub(crate) use service::render_registry;
pub use service::{
    EndpointFuture, MetricsEndpoint, MetricsEndpointBuilder, OnCollectorError, ScrapeError,
    DEFAULT_PATH,
};
