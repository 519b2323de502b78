//! The `/metrics` endpoint: matching, formats, and the standalone service.
//!
//! A scrape runs the registry's collectors, then encodes the registry in the format the
//! `Accept` header asks for (q-values respected): OpenMetrics 1.0.0 text, delimited
//! protobuf (feature `protobuf`, on by default; what a Prometheus server with native
//! histograms asks for), or else the Prometheus text format 0.0.4, each with its
//! `Content-Type`. The body is gzip-compressed when `Accept-Encoding` allows it, and
//! every scrape response says `Vary: Accept, Accept-Encoding`.
//!
//! Options ([`MetricsEndpointBuilder`]): a bearer token or any guard on the request
//! (`401` with `WWW-Authenticate` otherwise), and a maximum of scrapes in flight (`503`
//! with `Retry-After` past it).

mod body;
mod compress;
mod format;
mod guard;
mod limit;
mod negotiate;
mod service;

pub use body::MetricsBody;
pub use format::Format;
pub use guard::ScrapeRequest;
pub use service::{
    EndpointFuture, MetricsEndpoint, MetricsEndpointBuilder, OnCollectorError, ScrapeError,
    DEFAULT_PATH,
};
