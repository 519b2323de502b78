//! The drop guard that records a request exactly once, however it ends.

use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use http::{HeaderMap, StatusCode};
use http_body::Frame;

use super::families::RouteSeries;
use crate::grpc::{is_grpc_response, GrpcCall};

/// Status recorded for a request whose inner service returned an error or panicked
/// before producing a response.
pub const STATUS_SERVER_ERROR: u16 = 500;
/// Status recorded for a request dropped before its response headers existed, which
/// happens when the client goes away: nginx's "client closed request".
pub const STATUS_CLIENT_CLOSED: u16 = 499;

/// Counts a request in flight from its creation, and records it when dropped: the
/// duration since creation, the status it was given (or, without one, 500 after a
/// panic and 499 otherwise), and the in-flight gauge back down. Every path out of a
/// request drops it, so nothing leaks and nothing is counted twice.
pub(crate) struct RequestGuard {
    series: Arc<RouteSeries>,
    start: Instant,
    status: Option<u16>,
    panicked: bool,
}

impl RequestGuard {
    pub(crate) fn start(series: Arc<RouteSeries>) -> Self {
        Self::started_at(series, Instant::now())
    }

    /// A request that started at `start`, counted in flight from now.
    fn started_at(series: Arc<RouteSeries>, start: Instant) -> Self {
        series.start();
        Self {
            series,
            start,
            status: None,
            panicked: false,
        }
    }

    /// The status the response carries.
    pub(crate) fn set_status(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// The inner future panicked; only matters while no status is set.
    fn mark_panicked(&mut self) {
        self.panicked = true;
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let status = self.status.unwrap_or_else(|| {
            if ended_by_panic(self.panicked) {
                STATUS_SERVER_ERROR
            } else {
                STATUS_CLIENT_CLOSED
            }
        });
        self.series.finish(status, self.start.elapsed());
    }
}

/// Whether a request dropped without a status ended in a panic: one seen while
/// polling the inner future, or one unwinding now.
pub(crate) fn ended_by_panic(panicked: bool) -> bool {
    panicked || std::thread::panicking()
}

/// What a request records into, when dropped: the HTTP families, or for a gRPC call
/// the gRPC ones; for a request that claims to be gRPC, whichever its answer shows.
pub(crate) enum Recorder {
    Http(RequestGuard),
    Grpc(GrpcCall),
    Claimed(ClaimedCall),
}

impl Recorder {
    /// The response headers arrived.
    pub(crate) fn on_response(&mut self, status: StatusCode, headers: &HeaderMap) {
        match self {
            Recorder::Http(guard) => guard.set_status(status.as_u16()),
            Recorder::Grpc(call) => call.on_response(headers),
            Recorder::Claimed(claimed) => {
                if let Some(settled) = claimed.settle(is_grpc_response(headers)) {
                    *self = settled;
                    self.on_response(status, headers);
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
            Recorder::Http(guard) => guard.set_status(STATUS_SERVER_ERROR),
            Recorder::Grpc(call) => call.end(true),
            Recorder::Claimed(_) => {}
        }
    }

    /// A frame of the response body.
    pub(crate) fn on_frame<D: Buf>(&mut self, frame: &Frame<D>) {
        if let Recorder::Grpc(call) = self {
            if let Some(data) = frame.data_ref() {
                call.on_data(data);
            } else if let Some(trailers) = frame.trailers_ref() {
                call.on_trailers(trailers);
            }
        }
    }

    /// The response body ended (`failed`: with an error); records the request.
    pub(crate) fn on_end(mut self, failed: bool) {
        if let Recorder::Grpc(call) = &mut self {
            call.end(failed);
        }
    }

    fn mark_panicked(&mut self) {
        match self {
            Recorder::Http(guard) => guard.mark_panicked(),
            Recorder::Grpc(call) => call.mark_panicked(),
            Recorder::Claimed(claimed) => claimed.panicked = true,
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
    panicked: bool,
}

impl ClaimedCall {
    pub(crate) fn new(call: GrpcCall, route: Arc<RouteSeries>) -> Self {
        Self {
            unsettled: Some((call, route)),
            panicked: false,
        }
    }

    /// The recorder this request turns out to need (`grpc`: the answer is gRPC);
    /// `None` once settled.
    fn settle(&mut self, grpc: bool) -> Option<Recorder> {
        let (call, route) = self.unsettled.take()?;
        if grpc {
            return Some(Recorder::Grpc(call));
        }
        let start = call.start_time();
        call.discard();
        let mut guard = RequestGuard::started_at(route, start);
        guard.panicked = self.panicked;
        Some(Recorder::Http(guard))
    }
}

impl Drop for ClaimedCall {
    fn drop(&mut self) {
        // Unanswered: recorded as an HTTP request (499, or 500 after a panic).
        drop(self.settle(false));
    }
}

/// Marks the recorder when dropped during a panic: a panic that unwinds through the
/// poll of the inner future drops this watch on its way out, while the future (and
/// the recorder) may only be dropped later, outside the unwinding.
pub(crate) struct PanicWatch<'a>(pub(crate) Option<&'a mut Recorder>);

impl Drop for PanicWatch<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(recorder) = self.0.as_deref_mut() {
                recorder.mark_panicked();
            }
        }
    }
}
