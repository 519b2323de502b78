//! Prometheus metrics for any tower-based HTTP server (axum, tonic, hyper).
//!
//! - [`MetricsRegistry`] holds named metric providers and collectors. Providers run
//!   once, when the layer or endpoint is built; collectors run on every scrape.
//! - [`MetricsLayer`] times every request into histograms, counters and an in-flight
//!   gauge, until the response body ends, and answers `GET /metrics` itself.
//! - [`grpc`]: gRPC calls (tonic) are recorded into go-grpc-prometheus's families.
//! - [`client`]: [`ClientMetricsLayer`] records the calls a tower client (hyper, tonic)
//!   sends, into OpenTelemetry's HTTP client families and go-grpc-prometheus's client
//!   ones.
//! - [`MetricsEndpoint`] is the same endpoint as a standalone service, for a separate
//!   listener.
//! - [`metrics`] holds the crate's own metric types: lock-free on the recording path,
//!   kept per thread, encoded through prometheus-client.
//! - `facade` (feature `metrics`): a recorder for the `metrics` facade, so
//!   `counter!`, `gauge!` and `histogram!` calls record into the registry.
//! - [`multiprocess`]: with `PROMETHEUS_MULTIPROC_DIR` set, the values live in files
//!   shared by all processes (the format of Python's prometheus_client), and a scrape of
//!   any process answers the aggregate.
//! - `push` (feature `push`): a batch job pushes its registry to a Prometheus
//!   Pushgateway.
//!
//! # The public API
//!
//! Everything a user names, by module; the rest is private.
//!
//! | module | what you use |
//! |---|---|
//! | crate root | [`MetricsRegistry`], [`MetricsLayer`], [`ClientMetricsLayer`], [`MetricsEndpoint`], [`BuildError`] (with [`LabelProblem`]), [`RegistryError`], [`BUILD_INFO`], the re-exported [`prometheus_client`] |
//! | [`registry`] | [`CollectorResult`](registry::CollectorResult) and [`CollectorError`](registry::CollectorError), what a collector returns |
//! | [`layer`] | [`MetricsLayerBuilder`](layer::MetricsLayerBuilder) and [`Objective`](layer::Objective); the service, future and body types it produces ([`MetricsService`](layer::MetricsService), [`ResponseFuture`](layer::ResponseFuture), [`ResponseBody`](layer::ResponseBody), [`RequestBody`](layer::RequestBody), and [`Untouched`](layer::Untouched) or [`CountMessages`](layer::CountMessages) for what the inner service receives); [`RouteFn`](layer::RouteFn); [`Exemplars`](layer::Exemplars) and [`ExemplarFn`](layer::ExemplarFn); the HTTP family names, their types and label sets, to [`get`](MetricsRegistry::get) or replace them |
//! | [`client`] | [`ClientMetricsLayerBuilder`](client::ClientMetricsLayerBuilder); the service, future and bodies it produces, [`BoxError`](client::BoxError); [`ErrorType`](client::ErrorType); the client family names, types and label sets |
//! | [`grpc`] | the gRPC family names, their types and label sets, [`GrpcCode`](grpc::GrpcCode) and [`GrpcType`](grpc::GrpcType) |
//! | [`endpoint`] | [`MetricsEndpointBuilder`](endpoint::MetricsEndpointBuilder), [`OnCollectorError`](endpoint::OnCollectorError), [`Format`](endpoint::Format), [`DEFAULT_PATH`](endpoint::DEFAULT_PATH); the future, body and error types of the service; [`ScrapeRequest`](endpoint::ScrapeRequest), the parts of a scrape a guard may look at |
//! | [`metrics`] | [`Counter`](metrics::Counter), [`Gauge`](metrics::Gauge), [`Histogram`](metrics::Histogram) with [`Buckets`](metrics::Buckets) and [`NativeBuckets`](metrics::NativeBuckets), [`ExemplarLabels`](metrics::ExemplarLabels), [`Family`](metrics::Family) with the [`Labels`](metrics::Labels) its label sets implement, the family aliases, and their errors |
//! | `facade` (feature `metrics`) | `FacadeRecorder` with its builder and `Matcher`, `InstallError`, `FACADE_ERRORS` |
//! | [`multiprocess`] | [`GaugeMode`](multiprocess::GaugeMode), [`Folding`](multiprocess::Folding) (whether exited processes' files are folded into the archive), the errors of the files ([`MultiprocessError`](multiprocess::MultiprocessError), [`FileError`](multiprocess::FileError)), [`ENV_VAR`](multiprocess::ENV_VAR) and the names of the mode's own families ([`SKIPPED_FILES`](multiprocess::SKIPPED_FILES), [`WRITE_ERRORS`](multiprocess::WRITE_ERRORS), [`FILES`](multiprocess::FILES), [`DISPLACED_FILES`](multiprocess::DISPLACED_FILES), [`FOLDS`](multiprocess::FOLDS)) |
//! | `push` (feature `push`) | `Pusher` with its `PusherBuilder` and `DEFAULT_TIMEOUT`, `PushError` with `MAX_REJECTION_BODY` |
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
pub mod client;
pub mod endpoint;
mod error;
#[cfg(feature = "metrics")]
pub mod facade;
pub mod grpc;
mod hash;
pub mod layer;
pub mod metrics;
pub mod multiprocess;
mod names;
mod process;
#[cfg(feature = "push")]
pub mod push;
mod record;
pub mod registry;
mod storage;
mod warning;

/// The prometheus-client crate this one builds on, for its metric types and
/// `registry::Unit` without a dependency of your own to keep in step.
pub use prometheus_client;

pub use build_info::BUILD_INFO;
pub use client::ClientMetricsLayer;
pub use endpoint::MetricsEndpoint;
pub use error::{BuildError, LabelProblem};
pub use layer::MetricsLayer;
pub use registry::{MetricsRegistry, RegistryError};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
