//! Prometheus metrics for any tower-based HTTP server (axum, tonic, hyper).
//!
//! - [`MetricsRegistry`] holds named metric providers and collectors. Providers run
//!   once, when the layer or endpoint is built; collectors run on every scrape.
//! - [`MetricsLayer`] times every request into histograms, counters and an in-flight
//!   gauge, until the response body ends, and answers `GET /metrics` itself.
//! - [`grpc`]: gRPC calls (tonic) are recorded into go-grpc-prometheus's families.
//! - [`MetricsEndpoint`] is the same endpoint as a standalone service, for a separate
//!   listener.
//! - [`metrics`] holds the crate's own metric types: lock-free on the recording path,
//!   kept per thread, encoded through prometheus-client.
//! - [`multiprocess`]: with `PROMETHEUS_MULTIPROC_DIR` set, the values live in files
//!   shared by all processes (the format of Python's prometheus_client), and a scrape of
//!   any process answers the aggregate.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_prometheus::metrics::Counter;
//! use tower_prometheus::{MetricsLayer, MetricsRegistry};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = MetricsRegistry::new();
//! registry.provider("signups", "Users who signed up.", Counter::default)?;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(MetricsLayer::new(&registry)?);
//!
//! registry.get::<Counter>("signups")?.inc();
//! # Ok(())
//! # }
//! ```
#![warn(
    missing_docs,
    rust_2018_idioms,
    clippy::all,
    missing_debug_implementations
)]
#![deny(unreachable_pub)]
#![deny(unsafe_code)]

mod build_info;
pub mod endpoint;
mod error;
pub mod grpc;
mod hash;
pub mod layer;
pub mod metrics;
pub mod multiprocess;
mod process;
pub mod registry;
mod storage;

/// The prometheus-client crate this one builds on, for its metric types and
/// `registry::Unit` without a dependency of your own to keep in step.
pub use prometheus_client;

pub use build_info::BUILD_INFO;
pub use endpoint::MetricsEndpoint;
pub use error::BuildError;
pub use layer::MetricsLayer;
pub use registry::{MetricsRegistry, RegistryError};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
