//! [`ClientRequestBody`]: the request body, as the inner client sends it.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::guard::SentMessages;

pin_project! {
    /// Request body handed to the inner client by
    /// [`ClientMetricsService`](super::ClientMetricsService): the caller's body,
    /// unchanged. For a gRPC call it counts the messages sent as the client reads
    /// them.
    pub struct ClientRequestBody<B> {
        #[pin]
        inner: B,
        sent: Option<SentMessages>,
    }
}

impl<B> ClientRequestBody<B> {
    pub(crate) fn new(inner: B, sent: Option<SentMessages>) -> Self {
        Self { inner, sent }
    }

    /// The caller's body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// Unwraps the caller's body; messages read from it later are not counted.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B> std::fmt::Debug for ClientRequestBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRequestBody")
            .field("grpc", &self.sent.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ClientRequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = this.inner.poll_frame(cx);
        if let (Some(sent), Poll::Ready(Some(Ok(frame)))) = (this.sent, &frame) {
            if let Some(data) = frame.data_ref() {
                sent.on_data(data);
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
