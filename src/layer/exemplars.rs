//! Where the layer's exemplars come from: the W3C `traceparent` header, or a function
//! over the request's head.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use http::header::HeaderName;
use http::request::Parts;
use http::Request;

use super::head::with_parts;
use crate::metrics::{ExemplarLabels, RequestExemplar, TraceContext};

/// The W3C trace context header, named once rather than parsed per request.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Reads the labels of a request's exemplar from its head; `None` records none.
pub type ExemplarFn = dyn Fn(&Parts) -> Option<ExemplarLabels> + Send + Sync;

/// The labels each request's exemplar gets, for
/// [`MetricsLayerBuilder::exemplars`](super::MetricsLayerBuilder::exemplars).
///
/// ```
/// use tower_prometheus::layer::Exemplars;
/// use tower_prometheus::metrics::ExemplarLabels;
///
/// // `trace_id` and `span_id` of a sampled W3C trace context.
/// let from_header = Exemplars::traceparent();
/// // Anything else the application knows, such as a span context it put in the
/// // request's extensions; here a header of its own.
/// let from_request = Exemplars::from_request(|parts| {
///     let id = parts.headers.get("x-request-id")?.to_str().ok()?;
///     ExemplarLabels::new([("request_id", id)])
/// });
/// # let _ = (from_header, from_request);
/// ```
#[derive(Clone)]
pub struct Exemplars(Source);

#[derive(Clone)]
enum Source {
    TraceParent,
    Request(Arc<ExemplarFn>),
}

impl Exemplars {
    /// `trace_id` and `span_id` from the request's `traceparent` header (W3C Trace
    /// Context), when it is valid, sampled and sent once; no exemplar otherwise.
    pub fn traceparent() -> Self {
        Self(Source::TraceParent)
    }

    /// The labels `read` finds in the request's head. A label set that is not a valid
    /// exemplar one is never made ([`ExemplarLabels::new`] checks it); a function that
    /// panics records no exemplar rather than failing the request.
    pub fn from_request<F>(read: F) -> Self
    where
        F: Fn(&Parts) -> Option<ExemplarLabels> + Send + Sync + 'static,
    {
        Self(Source::Request(Arc::new(read)))
    }

    /// The exemplar of `request`, if it has one.
    pub(crate) fn read<B>(&self, request: &mut Request<B>) -> Option<RequestExemplar> {
        match &self.0 {
            Source::TraceParent => {
                let mut values = request.headers().get_all(&TRACEPARENT).iter();
                let (value, None) = (values.next()?, values.next()) else {
                    return None;
                };
                TraceContext::parse(value.as_bytes()).map(RequestExemplar::trace)
            }
            Source::Request(read) => with_parts(request, |parts| {
                catch_unwind(AssertUnwindSafe(|| read(parts))).unwrap_or(None)
            })
            .map(RequestExemplar::labels),
        }
    }
}

impl fmt::Debug for Exemplars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Source::TraceParent => "Exemplars::traceparent",
            Source::Request(_) => "Exemplars::from_request",
        })
    }
}
