//! What a request records into: the HTTP families' guard, or a gRPC call, or a
//! request that claims to be one until its answer settles it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use http::Response;
use http_body::Frame;

use super::body_bytes::{BodyBytes, RequestBytes};
use super::families::{HttpOutcome, RouteSeries};
use crate::grpc::{is_grpc_response, GrpcCall};
use crate::metrics::RequestExemplar;
use crate::record::{Guard, MarkPanicked, Record, Unanswered};

/// Status recorded for a request whose inner service returned an error or panicked
/// before producing a response.
pub(crate) const STATUS_SERVER_ERROR: u16 = 500;
/// Status recorded for a request dropped before its response headers existed, which
/// happens when the client goes away: nginx's "client closed request".
pub(crate) const STATUS_CLIENT_CLOSED: u16 = 499;

/// Counts an HTTP request in flight from its start, and records it when dropped: the
/// status it was given, or without one 500 after a panic and 499 otherwise.
pub(crate) type RequestGuard = Guard<HttpRequest>;

/// What an HTTP request records into: its route's series, and the bytes of its bodies
/// when the layer records their sizes.
pub(crate) struct HttpRequest {
    series: Arc<RouteSeries>,
    bytes: Option<BodyBytes>,
    exemplar: Option<RequestExemplar>,
}

impl Record for HttpRequest {
    type Outcome = HttpOutcome;

    #[inline]
    fn record(&mut self, ended: Result<HttpOutcome, Unanswered>, elapsed: Duration) {
        let outcome = ended.unwrap_or_else(|unanswered| {
            HttpOutcome::status(match unanswered {
                Unanswered::Panicked => STATUS_SERVER_ERROR,
                Unanswered::Dropped => STATUS_CLIENT_CLOSED,
            })
        });
        let exemplar = self.exemplar.as_ref().map(RequestExemplar::recorded_now);
        self.series
            .finish(outcome, elapsed, self.bytes.as_ref(), exemplar);
    }
}

/// A request on `series` that started at `start`, counted in flight from now.
#[inline]
fn request_guard(
    series: Arc<RouteSeries>,
    start: Instant,
    panicked: bool,
    exemplar: Option<RequestExemplar>,
) -> RequestGuard {
    series.start();
    let bytes = series.records_sizes().then(BodyBytes::default);
    let request = HttpRequest {
        series,
        bytes,
        exemplar,
    };
    Guard::started_at(request, start, panicked)
}

/// A request on `series` starting now; `request_bytes` counts the bytes of its body,
/// when the layer records request body sizes; `exemplar` is its exemplar's labels.
#[inline]
pub(crate) fn start_request(
    series: Arc<RouteSeries>,
    request_bytes: Option<RequestBytes>,
    exemplar: Option<RequestExemplar>,
) -> RequestGuard {
    let mut guard = request_guard(series, Instant::now(), false, exemplar);
    if let Some(bytes) = &mut guard.record_mut().bytes {
        bytes.request = request_bytes;
    }
    guard
}

/// What a request records into, when dropped: the HTTP families, or for a gRPC call
/// the gRPC ones; for a request that claims to be gRPC, whichever its answer shows.
pub(crate) enum Recorder {
    Http(RequestGuard),
    Grpc(GrpcCall),
    Claimed(ClaimedCall),
}

impl Recorder {
    /// The response headers arrived (mutably: a label function borrows the head).
    pub(crate) fn on_response<B>(&mut self, response: &mut Response<B>) {
        match self {
            Recorder::Http(guard) => {
                let start = guard.start_time();
                let outcome = guard.record_mut().series.outcome(response);
                guard.set_outcome(outcome);
                guard.record_mut().series.headers(outcome, start);
            }
            Recorder::Grpc(call) => call.on_response(response.headers()),
            Recorder::Claimed(claimed) => {
                if let Some(settled) = claimed.settle(is_grpc_response(response.headers())) {
                    *self = settled;
                    self.on_response(response);
                }
            }
        }
    }

    /// The inner service failed instead of responding; records the request.
    pub(crate) fn on_error(mut self) {
        if let Recorder::Claimed(claimed) = &mut self {
            if let Some(settled) = claimed.settle(false) {
                self = settled;
            }
        }
        match &mut self {
            Recorder::Http(guard) => guard.set_outcome(HttpOutcome::status(STATUS_SERVER_ERROR)),
            Recorder::Grpc(call) => call.end(true),
            Recorder::Claimed(_) => {}
        }
    }

    /// A frame of the response body.
    pub(crate) fn on_frame<D: Buf>(&mut self, frame: &Frame<D>) {
        match self {
            Recorder::Http(guard) => {
                if let (Some(bytes), Some(data)) = (&mut guard.record_mut().bytes, frame.data_ref())
                {
                    bytes.response += data.remaining() as u64;
                }
            }
            Recorder::Grpc(call) => {
                if let Some(data) = frame.data_ref() {
                    call.on_data(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    call.on_trailers(trailers);
                }
            }
            Recorder::Claimed(_) => {}
        }
    }

    /// The response body ended (`failed`: with an error); records the request.
    pub(crate) fn on_end(mut self, failed: bool) {
        if let Recorder::Grpc(call) = &mut self {
            call.end(failed);
        }
    }
}

impl MarkPanicked for Recorder {
    fn mark_panicked(&mut self) {
        match self {
            Recorder::Http(guard) => guard.mark_panicked(),
            Recorder::Grpc(call) => call.mark_panicked(),
            Recorder::Claimed(claimed) => {
                if let Some((call, _)) = &mut claimed.unsettled {
                    call.mark_panicked();
                }
            }
        }
    }
}

/// A request that claims to be gRPC, to a server not declared to serve only gRPC:
/// a gRPC call if the server answers it as one, otherwise an HTTP request of its
/// route, so a client's content type cannot move a request out of the HTTP families.
/// Dropped unanswered, it is an HTTP request.
pub(crate) struct ClaimedCall {
    /// Both ways the request may be recorded, until it is settled.
    unsettled: Option<(GrpcCall, Arc<RouteSeries>)>,
}

impl ClaimedCall {
    pub(crate) fn new(call: GrpcCall, route: Arc<RouteSeries>) -> Self {
        Self {
            unsettled: Some((call, route)),
        }
    }

    /// The recorder this request turns out to need (`grpc`: the answer is gRPC);
    /// `None` once settled.
    fn settle(&mut self, grpc: bool) -> Option<Recorder> {
        let (call, route) = self.unsettled.take()?;
        if grpc {
            return Some(Recorder::Grpc(call));
        }
        let (start, panicked) = (call.start_time(), call.panicked());
        let exemplar = call.exemplar();
        call.discard();
        Some(Recorder::Http(request_guard(
            route, start, panicked, exemplar,
        )))
    }
}

impl Drop for ClaimedCall {
    fn drop(&mut self) {
        // Unanswered: recorded as an HTTP request (499, or 500 after a panic).
        drop(self.settle(false));
    }
}
