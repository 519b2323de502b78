//! The drop guard that records a gRPC call exactly once, however it ends.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Buf;
use http::HeaderMap;

use super::code::GrpcCode;
use super::families::{GrpcFamilies, MethodSeries};
use super::framing::FrameDecoder;
use crate::metrics::RequestExemplar;
use crate::record::{Guard, Record, Unanswered, ValueIndices};

/// Code recorded for a call the client ended: it cancelled or reset the call, closed
/// the connection, or broke off its request body. Its own doing, never a server error.
pub(crate) const GRPC_CODE_DROPPED: GrpcCode = GrpcCode::Canceled;
/// Code recorded for a call whose response ended without a `grpc-status`, which gRPC
/// clients also read as `Unknown`.
pub(crate) const GRPC_CODE_NO_STATUS: GrpcCode = GrpcCode::Unknown;
/// Code recorded for a call whose inner service or response body failed, or panicked:
/// the server resets the stream, which clients read as `Internal`.
pub(crate) const GRPC_CODE_SERVER_ERROR: GrpcCode = GrpcCode::Internal;
/// Code recorded for a call dropped without an answer once the client's
/// `grpc-timeout` had passed: the server gave up on the deadline.
pub(crate) const GRPC_CODE_DEADLINE: GrpcCode = GrpcCode::DeadlineExceeded;

/// How much earlier than this layer a server may start timing a call's deadline:
/// tonic's timer starts before the request reaches the layers inside it.
const DEADLINE_SLACK: Duration = Duration::from_millis(1);

/// What the request body and the response of one call share, and what the call
/// knows from its start: kept behind one `Arc`, so the guard each response future
/// and body carries stays small.
struct CallState {
    /// The method's series, once the call is resolved.
    series: OnceLock<Arc<MethodSeries>>,
    /// The path, while it has no series: resolved by how the call ends.
    unresolved: Option<Unresolved>,
    /// The client's `grpc-timeout`.
    timeout: Option<Duration>,
    /// Messages received before then.
    pending: AtomicU64,
    /// The labels of the call's exemplar.
    exemplar: Option<RequestExemplar>,
    /// The client broke off its request: the body failed, or ended inside a message.
    client_aborted: AtomicBool,
}

impl CallState {
    /// Moves the messages counted before the series was known into it. Both sides
    /// call this after their own write (a count, or the series), behind a fence, so
    /// whichever comes second moves every message.
    fn flush(&self) {
        fence(Ordering::SeqCst);
        if let Some(series) = self.series.get() {
            let pending = self.pending.swap(0, Ordering::Relaxed);
            if pending > 0 {
                series.received(pending);
            }
        }
    }
}

/// A path without series yet: resolved by how the call ends.
struct Unresolved {
    families: Arc<GrpcFamilies>,
    path: Box<str>,
    /// The values of the labels read from the call.
    values: ValueIndices,
}

/// Counts a call from when it is resolved to a method, counts the messages it sends,
/// and when dropped records its code and its duration since creation. Every path out
/// of a call drops it, so nothing is counted twice.
pub(crate) struct GrpcCall(Guard<CallSeries>);

/// What a call records into, once resolved.
struct CallSeries {
    state: Arc<CallState>,
    started: bool,
    sent: FrameDecoder,
}

impl GrpcCall {
    /// A call to `path` with the client's `timeout`, the label values `values` read
    /// from it and its `exemplar`, not counted yet; and the counter of the messages
    /// its request body carries.
    pub(crate) fn new(
        families: &Arc<GrpcFamilies>,
        path: &str,
        values: ValueIndices,
        timeout: Option<Duration>,
        exemplar: Option<RequestExemplar>,
    ) -> (Self, ReceivedMessages) {
        let (series, unresolved) = match families.served(path, values) {
            Some(series) => (OnceLock::from(Arc::clone(series)), None),
            None => (
                OnceLock::new(),
                Some(Unresolved {
                    families: Arc::clone(families),
                    path: path.into(),
                    values,
                }),
            ),
        };
        let state = Arc::new(CallState {
            series,
            unresolved,
            timeout,
            pending: AtomicU64::new(0),
            exemplar,
            client_aborted: AtomicBool::new(false),
        });
        let received = ReceivedMessages {
            state: Arc::clone(&state),
            decoder: FrameDecoder::default(),
        };
        let call = Self(Guard::start(CallSeries {
            state,
            started: false,
            sent: FrameDecoder::default(),
        }));
        (call, received)
    }

    /// Counts the call started, once, if its method is known: at once for a server
    /// that serves only gRPC, else when the answer shows it is a gRPC call.
    pub(crate) fn start_if_served(&mut self) {
        self.0.record_mut().start_if_served();
    }

    /// When the call was created.
    pub(crate) fn start_time(&self) -> Instant {
        self.0.start_time()
    }

    /// Whether the inner future panicked.
    pub(crate) fn panicked(&self) -> bool {
        self.0.panicked()
    }

    /// The labels of the call's exemplar.
    pub(crate) fn exemplar(&self) -> Option<RequestExemplar> {
        self.0.record().state.exemplar.clone()
    }

    /// The response headers: the server answered the call. A trailers-only response
    /// carries its status here.
    pub(crate) fn on_response(&mut self, headers: &HeaderMap) {
        self.on_trailers(headers);
        let served = self.0.outcome() != Some(GrpcCode::Unimplemented);
        self.0.record_mut().resolve(served);
    }

    /// The trailers.
    pub(crate) fn on_trailers(&mut self, headers: &HeaderMap) {
        if let Some(code) = GrpcCode::from_headers(headers) {
            self.0.set_outcome(code);
        }
    }

    /// A data frame of the response.
    pub(crate) fn on_data(&mut self, data: &impl Buf) {
        let call = self.0.record_mut();
        if let Some(series) = call.state.series.get() {
            let messages = call.sent.feed_buf(data);
            if messages > 0 {
                series.sent(messages);
            }
        }
    }

    /// The response ended (`failed`: with an error) with whatever status it sent.
    pub(crate) fn end(&mut self, failed: bool) {
        self.0.outcome_or(if failed {
            GRPC_CODE_SERVER_ERROR
        } else {
            GRPC_CODE_NO_STATUS
        });
    }

    /// The inner future panicked; only matters while no code is set.
    pub(crate) fn mark_panicked(&mut self) {
        self.0.mark_panicked();
    }

    /// The request was not a gRPC call after all: nothing is recorded.
    pub(crate) fn discard(self) {
        self.0.disarm();
    }
}

impl CallSeries {
    fn start_if_served(&mut self) {
        if self.started {
            return;
        }
        if let Some(series) = self.state.series.get() {
            series.start();
            self.started = true;
        }
    }

    /// Settles the call's series (`served`: the server answered or failed the call,
    /// rather than the client leaving it unanswered) and counts the call started.
    fn resolve(&mut self, served: bool) {
        let state = &*self.state;
        if let Some(Unresolved {
            families,
            path,
            values,
        }) = &state.unresolved
        {
            // Only the first settling counts: the series, once set, stays.
            if state.series.get().is_none() {
                let _ = state
                    .series
                    .set(Arc::clone(families.resolve(path, *values, served)));
                state.flush();
            }
        }
        self.start_if_served();
    }
}

impl Record for CallSeries {
    type Outcome = GrpcCode;

    fn record(&mut self, ended: Result<GrpcCode, Unanswered>, elapsed: Duration) {
        let code = match ended {
            // Whatever the server made of a request the client broke off, the client
            // ended the call.
            Ok(code)
                if code != GrpcCode::Ok && self.state.client_aborted.load(Ordering::Relaxed) =>
            {
                GRPC_CODE_DROPPED
            }
            Ok(code) => code,
            Err(Unanswered::Panicked) => GRPC_CODE_SERVER_ERROR,
            Err(Unanswered::Dropped)
                if self
                    .state
                    .timeout
                    .is_some_and(|timeout| elapsed + DEADLINE_SLACK >= timeout) =>
            {
                GRPC_CODE_DEADLINE
            }
            Err(Unanswered::Dropped) => GRPC_CODE_DROPPED,
        };
        if !self.started {
            self.resolve(code == GRPC_CODE_SERVER_ERROR);
        }
        if let Some(series) = self.state.series.get() {
            let exemplar = self
                .state
                .exemplar
                .as_ref()
                .map(RequestExemplar::recorded_now);
            series.finish(code, elapsed, exemplar);
        }
    }
}

/// Counts the messages a call receives, as the inner service reads the request body,
/// and notices a client that breaks off its request.
pub(crate) struct ReceivedMessages {
    state: Arc<CallState>,
    decoder: FrameDecoder,
}

impl ReceivedMessages {
    /// A data frame of the request.
    pub(crate) fn on_data(&mut self, data: &impl Buf) {
        let messages = self.decoder.feed_buf(data);
        if messages == 0 {
            return;
        }
        match self.state.series.get() {
            Some(series) => series.received(messages),
            None => {
                self.state.pending.fetch_add(messages, Ordering::Relaxed);
                self.state.flush();
            }
        }
    }

    /// The request body ended; inside a message, the client cut it short.
    pub(crate) fn on_end(&mut self) {
        if !self.decoder.at_message_boundary() {
            self.on_client_error();
        }
    }

    /// The request body failed: the client reset the stream or closed the connection.
    pub(crate) fn on_client_error(&mut self) {
        self.state.client_aborted.store(true, Ordering::Relaxed);
    }
}
