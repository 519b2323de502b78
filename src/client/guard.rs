//! What an outgoing request records into: the HTTP client families, or for a gRPC
//! call the gRPC client ones.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use bytes::Buf;
use http::{HeaderMap, StatusCode};
use http_body::Frame;

use super::error_type::ErrorType;
use super::families::ServerSeries;
use super::grpc_families::ClientMethodSeries;
use super::labels::ClientOutcome;
use crate::grpc::{FrameDecoder, GrpcCode};
use crate::record::{Guard, MarkPanicked, Record, Unanswered};

/// Code of a call the caller dropped before it ended: the client cancelled it.
pub(crate) const GRPC_CODE_DROPPED: GrpcCode = GrpcCode::Canceled;
/// Code of a call whose transport failed (no connection, a broken stream), as tonic
/// reports such an error.
pub(crate) const GRPC_CODE_TRANSPORT: GrpcCode = GrpcCode::Unavailable;
/// Code of a call whose response ended without a `grpc-status`, as tonic reads it.
pub(crate) const GRPC_CODE_NO_STATUS: GrpcCode = GrpcCode::Unknown;

/// Records an outgoing request when dropped: into the HTTP client families, or the
/// gRPC client ones.
pub(crate) enum ClientRecorder {
    Http(Guard<HttpRequest>),
    Grpc(Guard<GrpcRequest>),
}

/// An HTTP request in flight to one server.
pub(crate) struct HttpRequest(Arc<ServerSeries>);

/// A gRPC call in flight, counting the messages it receives.
pub(crate) struct GrpcRequest {
    series: Arc<ClientMethodSeries>,
    received: FrameDecoder,
}

impl ClientRecorder {
    /// An HTTP request to `series`, counted in flight from now.
    pub(crate) fn http(series: Arc<ServerSeries>) -> Self {
        series.start();
        ClientRecorder::Http(Guard::start(HttpRequest(series)))
    }

    /// A gRPC call of `series`, counted started from now.
    pub(crate) fn grpc(series: Arc<ClientMethodSeries>) -> Self {
        series.start();
        ClientRecorder::Grpc(Guard::start(GrpcRequest {
            series,
            received: FrameDecoder::default(),
        }))
    }

    /// The response headers arrived.
    pub(crate) fn on_response(&mut self, status: StatusCode, headers: &HeaderMap) {
        match self {
            ClientRecorder::Http(guard) => {
                guard.set_outcome(ClientOutcome::status(status.as_u16()))
            }
            ClientRecorder::Grpc(guard) => {
                // A trailers-only response carries its status here; an HTTP error
                // without one is read as tonic reads it.
                if let Some(code) = GrpcCode::from_headers(headers).or_else(|| code_of_http(status))
                {
                    guard.set_outcome(code);
                }
            }
        }
    }

    /// The inner service failed with `error` instead of responding.
    pub(crate) fn on_error(mut self, error: &(dyn Error + 'static)) {
        match &mut self {
            ClientRecorder::Http(guard) => {
                guard.set_outcome(ClientOutcome::failed(ErrorType::of(error)));
            }
            ClientRecorder::Grpc(guard) => guard.set_outcome(GRPC_CODE_TRANSPORT),
        }
    }

    /// A frame of the response body.
    pub(crate) fn on_frame<D: Buf>(&mut self, frame: &Frame<D>) {
        if let ClientRecorder::Grpc(guard) = self {
            if let Some(data) = frame.data_ref() {
                let call = guard.record_mut();
                let messages = call.received.feed_buf(data);
                if messages > 0 {
                    call.series.received(messages);
                }
            } else if let Some(code) = frame.trailers_ref().and_then(GrpcCode::from_headers) {
                guard.set_outcome(code);
            }
        }
    }

    /// The response body ended, with `error` if it failed.
    pub(crate) fn on_end(mut self, error: Option<&(dyn Error + 'static)>) {
        match (&mut self, error) {
            (ClientRecorder::Http(guard), Some(error)) => {
                let status = guard.outcome().and_then(|outcome| outcome.status);
                guard.set_outcome(ClientOutcome {
                    status,
                    error: Some(ErrorType::of(error)),
                });
            }
            (ClientRecorder::Http(_), None) => {}
            (ClientRecorder::Grpc(guard), Some(_)) => guard.outcome_or(GRPC_CODE_TRANSPORT),
            (ClientRecorder::Grpc(guard), None) => guard.outcome_or(GRPC_CODE_NO_STATUS),
        }
    }
}

impl MarkPanicked for ClientRecorder {
    fn mark_panicked(&mut self) {
        match self {
            ClientRecorder::Http(guard) => guard.mark_panicked(),
            ClientRecorder::Grpc(guard) => guard.mark_panicked(),
        }
    }
}

/// The code tonic gives a response with HTTP status `status` and no `grpc-status`:
/// gRPC's HTTP-to-gRPC mapping; `None` for 200, whose trailers still carry the code.
fn code_of_http(status: StatusCode) -> Option<GrpcCode> {
    Some(match status {
        StatusCode::OK => return None,
        StatusCode::BAD_REQUEST => GrpcCode::Internal,
        StatusCode::UNAUTHORIZED => GrpcCode::Unauthenticated,
        StatusCode::FORBIDDEN => GrpcCode::PermissionDenied,
        StatusCode::NOT_FOUND => GrpcCode::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => GrpcCode::Unavailable,
        _ => GrpcCode::Unknown,
    })
}

impl Record for HttpRequest {
    type Outcome = ClientOutcome;

    fn record(&mut self, ended: Result<ClientOutcome, Unanswered>, elapsed: Duration) {
        let outcome = ended.unwrap_or_else(|unanswered| {
            ClientOutcome::failed(match unanswered {
                Unanswered::Dropped => ErrorType::Cancelled,
                Unanswered::Panicked => ErrorType::Other,
            })
        });
        self.0.finish(outcome, elapsed);
    }
}

impl Record for GrpcRequest {
    type Outcome = GrpcCode;

    fn record(&mut self, ended: Result<GrpcCode, Unanswered>, elapsed: Duration) {
        let code = ended.unwrap_or_else(|unanswered| match unanswered {
            Unanswered::Dropped => GRPC_CODE_DROPPED,
            Unanswered::Panicked => GRPC_CODE_NO_STATUS,
        });
        self.series.finish(code, elapsed);
    }
}

/// Counts the messages a gRPC call sends, as the inner client reads the request body.
pub(crate) struct SentMessages {
    series: Arc<ClientMethodSeries>,
    decoder: FrameDecoder,
}

impl SentMessages {
    pub(crate) fn new(series: Arc<ClientMethodSeries>) -> Self {
        Self {
            series,
            decoder: FrameDecoder::default(),
        }
    }

    /// A data frame of the request.
    pub(crate) fn on_data(&mut self, data: &impl Buf) {
        let messages = self.decoder.feed_buf(data);
        if messages > 0 {
            self.series.sent(messages);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_errors_without_a_status_are_read_as_tonic_reads_them() {
        assert_eq!(code_of_http(StatusCode::OK), None);
        assert_eq!(
            code_of_http(StatusCode::BAD_REQUEST),
            Some(GrpcCode::Internal)
        );
        assert_eq!(
            code_of_http(StatusCode::UNAUTHORIZED),
            Some(GrpcCode::Unauthenticated)
        );
        assert_eq!(
            code_of_http(StatusCode::FORBIDDEN),
            Some(GrpcCode::PermissionDenied)
        );
        assert_eq!(
            code_of_http(StatusCode::NOT_FOUND),
            Some(GrpcCode::Unimplemented)
        );
        for unavailable in [429, 502, 503, 504] {
            let status = StatusCode::from_u16(unavailable).expect("a status");
            assert_eq!(
                code_of_http(status),
                Some(GrpcCode::Unavailable),
                "{status}"
            );
        }
        assert_eq!(
            code_of_http(StatusCode::IM_A_TEAPOT),
            Some(GrpcCode::Unknown)
        );
    }
}
