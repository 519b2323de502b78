//! [`ClientResponseBody`]: the response body, watched until its end.

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::error_type::BoxError;
use super::guard::ClientRecorder;

pin_project! {
    /// Response body of [`ClientMetricsService`](super::ClientMetricsService): the
    /// inner client's body, recorded when it ends, fails or is dropped. Its errors are
    /// the inner body's, boxed.
    pub struct ClientResponseBody<B> {
        #[pin]
        inner: B,
        recorder: Option<ClientRecorder>,
    }
}

impl<B> ClientResponseBody<B> {
    pub(crate) fn new(inner: B, recorder: Option<ClientRecorder>) -> Self {
        Self { inner, recorder }
    }
}

impl<B> std::fmt::Debug for ClientResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientResponseBody")
            .field("recording", &self.recorder.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ClientResponseBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let recorder = this.recorder;
        match inner.as_mut().poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                if let Some(recorder) = recorder.take() {
                    recorder.on_end(None);
                }
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(watching) = recorder.as_mut() {
                    watching.on_frame(&frame);
                }
                if inner.is_end_stream() {
                    if let Some(recorder) = recorder.take() {
                        recorder.on_end(None);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                let error: BoxError = error.into();
                if let Some(recorder) = recorder.take() {
                    recorder.on_end(Some(&*error));
                }
                Poll::Ready(Some(Err(error)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
