//! gRPC calls: the go-grpc-prometheus families, status codes and message framing.
//!
//! [`MetricsLayer`](crate::MetricsLayer) records a gRPC call into the families
//! go-grpc-prometheus exports, with its label names and values, so dashboards and
//! alerts built for Go services work unchanged:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `grpc_server_started_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_handled_total` | counter | `grpc_type`, `grpc_service`, `grpc_method`, `grpc_code` |
//! | `grpc_server_handling_seconds` | histogram (Go's default buckets) | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_msg_received_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//! | `grpc_server_msg_sent_total` | counter | `grpc_type`, `grpc_service`, `grpc_method` |
//!
//! - A request is a gRPC call when it is served as one: always, behind a layer built
//!   with [`grpc_only`](crate::layer::MetricsLayerBuilder::grpc_only) (tonic serves
//!   every request as gRPC, whatever its content type); otherwise when it is a `POST`
//!   with an `application/grpc*` content type (any case, any suffix, not gRPC-Web) and
//!   the response has a gRPC content type. Any other request stays in the HTTP
//!   families under its route, so a client's content type cannot move it.
//! - `grpc_service` and `grpc_method` come from the `/package.Service/Method` path,
//!   once the server has served that method: answered it with a code other than
//!   `Unimplemented`, or failed it. Calls answered `Unimplemented`, calls ended by the
//!   client before any answer, and paths of another shape fold into service and method
//!   `_OTHER`, unless the method was declared with
//!   [`grpc_method_type`](crate::layer::MetricsLayerBuilder::grpc_method_type): a
//!   declared method has all its series, every code included, at zero from the start.
//!   So a client cannot spend the cap, nor push a served method out of its series.
//! - `grpc_code` is Go's name of the code ([`GrpcCode`]): read from `grpc-status` in
//!   the trailers, or in the response headers of a trailers-only response. A call the
//!   client ended (cancelled, reset its stream with any reason, closed the
//!   connection, or broke its request body off) records `Canceled`,
//!   whatever the server answered to the broken request, unless `OK`; a
//!   call dropped unanswered after its `grpc-timeout`, `DeadlineExceeded`;
//!   a response that ended without a status,
//!   `Unknown`; an error or panic of the inner service or the
//!   response body, `Internal`. Each call is counted in
//!   `grpc_server_handled_total` exactly once.
//! - `grpc_server_started_total` counts a call once it is known to be one: on arrival
//!   for a served method behind a `grpc_only` layer, else at the response headers (or
//!   at its end, if it ends unanswered). Started minus handled is the number of calls
//!   in flight among those.
//! - `grpc_server_handling_seconds` runs until the call ends: the trailers are sent,
//!   the response fails, or it is dropped. It is **on by default**, unlike in
//!   go-grpc-prometheus, which makes it opt-in because its histograms take a lock;
//!   here an observation is two atomic adds, and latency is what most gRPC dashboards
//!   chart. Turn it off with
//!   [`grpc_handling_histogram(false)`](crate::layer::MetricsLayerBuilder::grpc_handling_histogram).
//! - Messages are counted from the 5-byte length prefix of each message, in both
//!   directions, as each message ends, however the body is split into chunks; the
//!   message bytes are skipped, never copied. A received message counts when the
//!   service reads it: tonic answers an unknown service without reading the request,
//!   so that call received none. Only a layer built with
//!   [`grpc_only`](crate::layer::MetricsLayerBuilder::grpc_only) or
//!   [`count_grpc_messages`](crate::layer::MetricsLayerBuilder::count_grpc_messages)
//!   sees them (its inner service reads a [`RequestBody`](crate::layer::RequestBody));
//!   a plain layer leaves request bodies untouched, records no message received, and
//!   does not see a client break its request off.
//! - Labels of your own, read from each call's request metadata with
//!   [`grpc_metadata_label`](crate::layer::MetricsLayerBuilder::grpc_metadata_label)
//!   (or its head, with
//!   [`grpc_request_label`](crate::layer::MetricsLayerBuilder::grpc_request_label)),
//!   follow these on every family, before `grpc_code`; each bounded to its allowed or
//!   first-seen values, others `_OTHER`, a call without one empty. Calls that name no
//!   served method have them empty.
//! - `grpc_type` is what you declare per method with `grpc_method_type`, and `unary`
//!   for the others. The layer cannot infer it: the type is a label of
//!   `grpc_server_started_total`, recorded when the call starts, before any message
//!   shows whether either side streams, and the wire format is the same for all four.
//!
//! gRPC calls are recorded only in these families, not in the HTTP ones: every call is
//! an HTTP `POST` answered `200`, whatever its outcome, so HTTP series would say
//! nothing the gRPC families do not. gRPC-Web (`application/grpc-web`) carries its
//! trailers inside the body, and is recorded as HTTP.
//!
//! Each family holds the series of at most
//! [`max_series`](crate::layer::MetricsLayerBuilder::max_series) served methods, plus
//! `_OTHER` and the overflow series (`grpc_server_handled_total`: each of those once
//! per code). Methods past the cap fold into the overflow series, which keeps every
//! label of its family, with service and method `_OTHER` and
//! `otel_metric_overflow="true"`. The families are ordinary registry providers:
//! declare one of the names first to replace it (other buckets, another cap).

mod call;
mod code;
mod families;
mod framing;
mod labels;
mod metadata;
mod method;

pub use code::GrpcCode;
pub use families::{
    GrpcCount, GrpcHandledCount, GrpcHandling, SloMethodLabels, GRPC_HANDLED, GRPC_HANDLING,
    GRPC_MSG_RECEIVED, GRPC_MSG_SENT, GRPC_SLO_LATENCY_GOOD, GRPC_SLO_OBJECTIVE, GRPC_STARTED,
};
pub(crate) use labels::GRPC_LABEL_NAMES;
pub use labels::{GrpcHandledLabels, GrpcLabels, GrpcType};

pub(crate) use call::{GrpcCall, ReceivedMessages};
pub(crate) use families::{
    method_target, methods_within, series_cap, GrpcFamilies, GRPC_OBJECTIVES,
};
pub(crate) use framing::FrameDecoder;
pub(crate) use metadata::GrpcLabelsBuilder;
pub(crate) use method::{
    claims_grpc, grpc_timeout, is_grpc_response, service_and_method, MethodTypes,
};
