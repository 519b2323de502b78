//! [`ClientMetricsLayer`]: records the requests a tower client sends.
//!
//! A service is judged by its dependencies as much as by its own handlers. Put the
//! layer around any `tower::Service<http::Request<B>>` client (hyper-util's legacy
//! `Client`, a tonic `Channel`, through `tower::ServiceBuilder`): each HTTP request is
//! recorded into OpenTelemetry's HTTP client families, in their Prometheus form, and
//! each gRPC call (a `POST` with an `application/grpc*` content type) into
//! go-grpc-prometheus's client families. The layer answers nothing itself.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `http_client_request_duration_seconds` | histogram | `http_request_method`, `server_address`, `server_port`, `http_response_status_code` or `error_type` |
//! | `http_client_requests_total` | counter | the same |
//! | `http_client_active_requests` | gauge | `http_request_method`, `server_address`, `server_port` |
//! | `grpc_client_started_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_client_handled_total` | counter | `grpc_type`, `grpc_service`, `grpc_method`, `grpc_code` |
//! | `grpc_client_handling_seconds` | histogram (Go's default buckets) | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_client_msg_sent_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_client_msg_received_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//!
//! - `server_address` and `server_port` come from the request URI's authority (a
//!   hyper client's requests are absolute), else its `Host` header; the port is the
//!   scheme's when not written. A request naming no server, or a name longer than 256
//!   bytes, is `_OTHER`, without port.
//! - An HTTP request's duration runs until its response body ends, fails or is
//!   dropped, as on the server side; a response body dropped unread keeps its status.
//! - `error_type` ([`ErrorType`]) is set when no response came, read from the
//!   error's chain of sources: connection refused is `connection_refused`; a
//!   `tower::timeout::Timeout` that gave up (or an I/O time-out) is `timeout`; a
//!   connection reset is `connection_reset`; a future dropped before its response
//!   (the caller gave up) is `cancelled`; anything else `_OTHER`. A response body
//!   that fails keeps its status code and gets the `error_type` of its error.
//! - `grpc_code` is what the client sees: `grpc-status` from the trailers, or from
//!   the headers of a trailers-only answer; an HTTP error status without one is read
//!   with gRPC's HTTP-to-gRPC mapping, as tonic reads such an answer without messages
//!   (`404` is `Unimplemented`, `503` is `Unavailable`, ...). A call
//!   the caller drops before it ended (a stream it stops reading) is `Canceled`; a
//!   transport error (no connection, a broken response) is `Unavailable`, as tonic
//!   reports it; a response that ends without a status is `Unknown`.
//! - Messages are counted from their length prefixes: sent as the inner client reads
//!   the request body, received as the caller reads the response body.
//! - `grpc_type` is what [`grpc_method_type`](ClientMetricsLayerBuilder::grpc_method_type)
//!   declares, else `unary`.
//!
//! Each family holds at most [`max_series`](ClientMetricsLayerBuilder::max_series)
//! label sets (the gRPC ones that many methods, plus `_OTHER` and the overflow
//! series); past that, new servers or methods fold into the overflow series,
//! labelled `otel_metric_overflow="true"`. A registry may hold a server layer and
//! client layers, built in either order.
//!
//! The inner client receives `Request<ClientRequestBody<B>>`; a tonic `Channel`
//! takes `tonic::body::Body`, so map the request back into one:
//!
//! ```no_run
//! use tonic_health::pb::health_client::HealthClient;
//! use tower_prometheus::{ClientMetricsLayer, MetricsRegistry};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = MetricsRegistry::new();
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051")
//!     .connect()
//!     .await?;
//! let channel = tower::ServiceBuilder::new()
//!     .layer(ClientMetricsLayer::new(&registry)?)
//!     .map_request(|request: http::Request<_>| request.map(tonic::body::Body::new))
//!     .service(channel);
//! let client = HealthClient::new(channel);
//! # Ok(())
//! # }
//! ```

mod body;
mod error_type;
mod families;
mod future;
mod grpc_families;
mod guard;
mod labels;
mod layer;
mod request_body;
mod service;

pub use crate::record::HttpMethod;
pub use body::ClientResponseBody;
pub use error_type::{BoxError, ErrorType};
pub use families::{
    ClientActiveRequests, ClientRequestCount, ClientRequestDuration, CLIENT_ACTIVE_REQUESTS,
    CLIENT_REQUESTS_TOTAL, CLIENT_REQUEST_DURATION,
};
pub use future::ClientResponseFuture;
pub use grpc_families::{
    GRPC_CLIENT_HANDLED, GRPC_CLIENT_HANDLING, GRPC_CLIENT_MSG_RECEIVED, GRPC_CLIENT_MSG_SENT,
    GRPC_CLIENT_STARTED,
};
pub use labels::{ClientOutcome, HttpClientLabels, ServerLabels};
pub use layer::{ClientMetricsLayer, ClientMetricsLayerBuilder};
pub use request_body::ClientRequestBody;
pub use service::ClientMetricsService;
