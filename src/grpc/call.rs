//! The drop guard that records a gRPC call exactly once, however it ends.

use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use http::HeaderMap;

use super::code::GrpcCode;
use super::families::MethodSeries;
use super::framing::MessageCounter;
use crate::layer::ended_by_panic;

/// Code recorded for a call dropped before its status was sent: the client cancelled
/// it (or went away), so the server's response stream was dropped.
pub const GRPC_CODE_DROPPED: GrpcCode = GrpcCode::Canceled;
/// Code recorded for a call whose response ended without a `grpc-status`, which gRPC
/// clients also read as `Unknown`.
pub const GRPC_CODE_NO_STATUS: GrpcCode = GrpcCode::Unknown;
/// Code recorded for a call whose inner service or response body failed, or panicked:
/// the server resets the stream, which clients read as `Internal`.
pub const GRPC_CODE_SERVER_ERROR: GrpcCode = GrpcCode::Internal;

/// Counts a call started from its creation, counts the messages it sends, and when
/// dropped records its code and its duration since creation. Every path out of a
/// call drops it, so nothing is counted twice.
pub(crate) struct GrpcCall {
    series: Arc<MethodSeries>,
    start: Instant,
    code: Option<GrpcCode>,
    sent: MessageCounter,
    panicked: bool,
}

impl GrpcCall {
    pub(crate) fn start(series: Arc<MethodSeries>) -> Self {
        series.start();
        Self {
            series,
            start: Instant::now(),
            code: None,
            sent: MessageCounter::default(),
            panicked: false,
        }
    }

    /// Response headers (a trailers-only response carries its status there) or the
    /// trailers.
    pub(crate) fn on_headers(&mut self, headers: &HeaderMap) {
        if let Some(code) = GrpcCode::from_headers(headers) {
            self.code = Some(code);
        }
    }

    /// A data frame of the response.
    pub(crate) fn on_data(&mut self, data: &impl Buf) {
        self.sent.feed(data, &self.series.sent);
    }

    /// The response ended (`failed`: with an error) with whatever status it sent.
    pub(crate) fn end(&mut self, failed: bool) {
        let fallback = if failed {
            GRPC_CODE_SERVER_ERROR
        } else {
            GRPC_CODE_NO_STATUS
        };
        self.code.get_or_insert(fallback);
    }

    /// The inner future panicked; only matters while no code is set.
    pub(crate) fn mark_panicked(&mut self) {
        self.panicked = true;
    }
}

/// Counts the messages a call receives, as the inner service reads the request body.
pub(crate) struct ReceivedMessages {
    series: Arc<MethodSeries>,
    messages: MessageCounter,
}

impl ReceivedMessages {
    pub(crate) fn new(series: Arc<MethodSeries>) -> Self {
        Self {
            series,
            messages: MessageCounter::default(),
        }
    }

    /// A data frame of the request.
    pub(crate) fn on_data(&mut self, data: &impl Buf) {
        self.messages.feed(data, &self.series.received);
    }
}

impl Drop for GrpcCall {
    fn drop(&mut self) {
        let code = self.code.unwrap_or_else(|| {
            if ended_by_panic(self.panicked) {
                GRPC_CODE_SERVER_ERROR
            } else {
                GRPC_CODE_DROPPED
            }
        });
        self.series.finish(code, self.start.elapsed().as_secs_f64());
    }
}
