//! [`ClientResponseFuture`]: the inner client's future, watched until the headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::ClientResponseBody;
use super::error_type::BoxError;
use super::guard::ClientRecorder;
use crate::record::PanicWatch;

pin_project! {
    /// Response future of [`ClientMetricsService`](super::ClientMetricsService). Its
    /// error is the inner client's, boxed.
    pub struct ClientResponseFuture<F> {
        #[pin]
        future: F,
        recorder: Option<ClientRecorder>,
    }
}

impl<F> ClientResponseFuture<F> {
    pub(crate) fn new(future: F, recorder: ClientRecorder) -> Self {
        Self {
            future,
            recorder: Some(recorder),
        }
    }
}

impl<F> std::fmt::Debug for ClientResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientResponseFuture")
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ClientResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: Into<BoxError>,
{
    type Output = Result<Response<ClientResponseBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The recorder is taken when the future completes: a poll after that is a bug
        // of the caller, said as loudly as std's futures do.
        assert!(
            this.recorder.is_some(),
            "`ClientResponseFuture` polled after completion"
        );
        let polled = {
            // A panic of the inner client is `_OTHER` (an `Unknown` gRPC call), not a
            // cancellation.
            let _watch = PanicWatch(this.recorder.as_mut());
            this.future.poll(cx)
        };
        let output = ready!(polled);
        let mut recorder = this.recorder.take().expect("checked before the poll");
        match output {
            Ok(response) => {
                recorder.on_response(response.status(), response.headers());
                // An ended body (a trailers-only gRPC answer, say) may never be polled.
                let recorder = if response.body().is_end_stream() {
                    recorder.on_end(None);
                    None
                } else {
                    Some(recorder)
                };
                Poll::Ready(Ok(
                    response.map(|body| ClientResponseBody::new(body, recorder))
                ))
            }
            Err(error) => {
                let error: BoxError = error.into();
                recorder.on_error(&*error);
                Poll::Ready(Err(error))
            }
        }
    }
}
