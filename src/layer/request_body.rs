//! [`RequestBody`]: the request body, as the inner service sees it.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use bytes::Buf;

use super::body_bytes::RequestBytes;
use crate::grpc::ReceivedMessages;

pin_project! {
    /// Request body handed to the inner service by a layer built with
    /// [`count_grpc_messages`](super::MetricsLayerBuilder::count_grpc_messages),
    /// [`grpc_only`](super::MetricsLayerBuilder::grpc_only) or
    /// [`request_body_size_histogram`](super::MetricsLayerBuilder::request_body_size_histogram):
    /// the client's body, unchanged. For a gRPC call it counts the messages received
    /// as they pass, and notices a client that breaks its request off (an error, or
    /// an end inside a message); for an HTTP request whose body size is recorded, it
    /// counts the bytes of the data frames read.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        received: Option<ReceivedMessages>,
        bytes: Option<RequestBytes>,
    }
}

impl<B> RequestBody<B> {
    /// A body passed through as is.
    pub(crate) fn plain(inner: B) -> Self {
        Self {
            inner,
            received: None,
            bytes: None,
        }
    }

    /// A body that counts what `counts` says as it passes.
    pub(crate) fn counting(inner: B, counts: BodyCounts) -> Self {
        Self {
            inner,
            received: counts.received,
            bytes: counts.bytes,
        }
    }

    /// The client's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the client's body; messages read from it later are not counted.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

/// What a wrapped request body counts: a gRPC call's messages, or an HTTP request's
/// bytes.
pub(crate) struct BodyCounts {
    received: Option<ReceivedMessages>,
    bytes: Option<RequestBytes>,
}

impl BodyCounts {
    /// The messages of a gRPC call, counted into `received`.
    pub(crate) fn messages(received: ReceivedMessages) -> Self {
        Self {
            received: Some(received),
            bytes: None,
        }
    }

    /// The bytes of an HTTP request body, counted into `bytes`.
    pub(crate) fn bytes(bytes: RequestBytes) -> Self {
        Self {
            received: None,
            bytes: Some(bytes),
        }
    }
}

impl<B> std::fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestBody")
            .field("grpc", &self.received.is_some())
            .field("counts_bytes", &self.bytes.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let (Some(bytes), Poll::Ready(Some(Ok(frame)))) = (this.bytes, &frame) {
            if let Some(data) = frame.data_ref() {
                bytes.add(data.remaining());
            }
        }
        if let (Some(received), Poll::Ready(polled)) = (this.received, &frame) {
            match polled {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        received.on_data(data);
                    }
                }
                Some(Err(_)) => received.on_client_error(),
                None => received.on_end(),
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
