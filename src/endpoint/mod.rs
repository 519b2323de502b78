//! The `/metrics` endpoint: matching, formats, and the standalone service.
//!
//! A scrape runs the registry's collectors, then encodes the registry. The endpoint
//! answers the Prometheus text format 0.0.4 with
//! `Content-Type: text/plain; version=0.0.4; charset=utf-8`.

mod body;
mod format;
mod service;

pub use body::MetricsBody;
pub use format::Format;
pub use service::{
    EndpointFuture, MetricsEndpoint, MetricsEndpointBuilder, ScrapeError, DEFAULT_PATH,
};
