//! [`MetricsLayer`]: times every request into the HTTP families.
//!
//! For each request the layer raises the in-flight gauge, starts a clock and calls the
//! inner service. When the response body ends (or fails, or is dropped by a client that
//! went away), or the inner future fails, panics or is dropped before the headers, it
//! records the duration and the count with the status and lowers the gauge. A drop
//! guard does the recording, so every path out of a request records it exactly once.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_request_method`, `http_response_status_code`, `http_route` |
//! | `http_server_requests_total` | counter | `http_request_method`, `http_response_status_code`, `http_route` |
//! | `http_server_active_requests` | gauge | `http_request_method`, `http_route` |
//! | `http_server_time_to_headers_seconds` (opt-in) | histogram | `http_request_method`, `http_response_status_code`, `http_route` |
//! | `http_server_request_body_size_bytes` (opt-in) | histogram | `http_request_method`, `http_response_status_code`, `http_route` |
//! | `http_server_response_body_size_bytes` (opt-in) | histogram | `http_request_method`, `http_response_status_code`, `http_route` |
//!
//! - `http_server_time_to_headers_seconds`, with
//!   [`time_to_headers_histogram`](MetricsLayerBuilder::time_to_headers_histogram):
//!   the time until the inner future yields the response, recorded then, while the
//!   duration ends with the body. A request that fails, panics or is dropped before
//!   its headers records nothing in it (its 500 or 499 is in the other two).
//! - The body sizes, with
//!   [`request_body_size_histogram`](MetricsLayerBuilder::request_body_size_histogram)
//!   and [`response_body_size_histogram`](MetricsLayerBuilder::response_body_size_histogram):
//!   the bytes of the data frames that passed, by the time the request is recorded.
//! - Every family may carry [constant labels](MetricsLayerBuilder::constant_labels)
//!   after these, and its name a [prefix](MetricsLayerBuilder::name_prefix).
//! - `http_request_method` is the standard method, or `_OTHER`.
//! - `http_response_status_code` is the status sent; a request whose inner service
//!   failed or panicked before a response records 500, and one
//!   dropped before its headers existed (the client left) records
//!   499 (nginx's "client closed request").
//! - `http_route` comes from axum's `MatchedPath` (with the `axum` feature, when the
//!   layer is added with `Router::layer`), else from the
//!   [route function](MetricsLayerBuilder::route_fn), else the
//!   [fallback](MetricsLayerBuilder::fallback_route) `_OTHER`: never the raw path. A route is kept to its first 256 bytes (cut at a
//!   character boundary), so client input cannot make huge labels.
//!
//! Each family holds at most [`max_series`](MetricsLayerBuilder::max_series) label sets
//! (2000 by default); past that, new ones fold into one series labelled
//! `otel_metric_overflow="true"`. The families are ordinary registry providers: get them
//! with [`MetricsRegistry::get`](crate::MetricsRegistry::get), or declare one of the names
//! yourself before building the layer to replace it (other buckets, another cap).
//!
//! Requests to the endpoint path (`/metrics` unless changed) are answered by the layer
//! and are not recorded. gRPC calls are recorded in the [gRPC families](crate::grpc)
//! instead of these. Requests to the routes given to
//! [`skip_routes`](MetricsLayerBuilder::skip_routes), or for which the predicate of
//! [`skip_if`](MetricsLayerBuilder::skip_if) holds, go straight to the inner service
//! and are recorded in no family.
//!
//! The inner service receives every request as it came, `Request<B>` ([`Untouched`]):
//! a hyper handler takes `Request<Incoming>`, and axum boxes no wrapper around the
//! body. A layer built with [`count_grpc_messages`](MetricsLayerBuilder::count_grpc_messages)
//! or [`grpc_only`](MetricsLayerBuilder::grpc_only) ([`CountMessages`]) hands it
//! `Request<RequestBody<B>>` instead, to count the messages gRPC calls receive; a plain
//! layer records gRPC calls all the same, with no message received.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_prometheus::{MetricsLayer, MetricsRegistry};
//!
//! # fn main() -> Result<(), tower_prometheus::BuildError> {
//! let registry = MetricsRegistry::new();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .layer(MetricsLayer::new(&registry)?);
//! # Ok(())
//! # }
//! ```

mod bodies;
mod body;
mod body_bytes;
mod exemplars;
mod extra;
mod families;
mod future;
mod guard;
mod head;
mod labels;
#[allow(clippy::module_inception)]
mod layer;
mod request_body;
mod route;
mod service;
mod skip;

pub use crate::record::HttpMethod;
pub use crate::record::Objective;
pub use crate::record::{LabelValues, RequestLabelFn, MAX_EXTRA_LABELS};
pub use bodies::{CountMessages, RequestBodies, Untouched};
pub use body::ResponseBody;
pub use exemplars::{ExemplarFn, Exemplars};
pub use extra::ResponseLabelFn;
pub use families::{
    ActiveRequests, BodySize, RequestCount, RequestDuration, SloRouteLabels, TimeToHeaders,
    ACTIVE_REQUESTS, REQUESTS_TOTAL, REQUEST_BODY_SIZE, REQUEST_DURATION, RESPONSE_BODY_SIZE,
    SLO_LATENCY_GOOD, SLO_OBJECTIVE, TIME_TO_HEADERS,
};
pub use future::ResponseFuture;
pub use labels::{ActiveRequestLabels, HttpLabels};
pub use layer::{MetricsLayer, MetricsLayerBuilder};
pub use request_body::RequestBody;
pub use route::RouteFn;
pub use service::MetricsService;
pub use skip::SkipFn;
