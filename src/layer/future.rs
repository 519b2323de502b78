//! [`ResponseFuture`]: the inner service's future, watched until the headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::Response;
use http_body::Body;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::guard::Recorder;
use crate::endpoint::EndpointFuture;
use crate::record::PanicWatch;

pin_project! {
    /// Response future of [`MetricsService`](super::MetricsService).
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
            guard: Option<Recorder>,
            // A skipped request: the inner future as it is, recording nothing.
            skipped: bool,
        },
        Endpoint {
            future: EndpointFuture,
        },
    }
}

impl<F> ResponseFuture<F> {
    /// The inner service's future, recorded into `guard`; `None`: a skipped request.
    #[inline]
    pub(crate) fn inner(future: F, guard: Option<Recorder>) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                skipped: guard.is_none(),
                guard,
            },
        }
    }

    pub(crate) fn endpoint(future: EndpointFuture) -> Self {
        Self {
            kind: Kind::Endpoint { future },
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Data: From<Bytes>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner {
                future,
                guard,
                skipped,
            } => {
                // The guard is taken when the future completes: a poll after that is a
                // bug of the caller, said as loudly as std's and tower-http's futures do.
                let Some(recorder) = guard.as_mut() else {
                    if *skipped {
                        return future.poll(cx).map_ok(|response| {
                            response.map(|body| ResponseBody::inner(body, None))
                        });
                    }
                    panic!("`ResponseFuture` polled after completion");
                };
                let output = {
                    let _watch = PanicWatch(Some(recorder));
                    ready!(future.poll(cx))
                };
                let mut guard = guard.take().expect("the guard is there until completion");
                match output {
                    Ok(mut response) => {
                        guard.on_response(&mut response);
                        // hyper stops polling a body that says it has ended, so an
                        // ended body (a trailers-only gRPC error, say) is recorded now.
                        let guard = if response.body().is_end_stream() {
                            guard.on_end(false);
                            None
                        } else {
                            Some(guard)
                        };
                        // Mapped in place: the response head is large, and moved once.
                        Poll::Ready(Ok(response.map(|body| ResponseBody::inner(body, guard))))
                    }
                    Err(error) => {
                        guard.on_error();
                        Poll::Ready(Err(error))
                    }
                }
            }
            KindProj::Endpoint { future } => {
                let Ok(response) = ready!(Pin::new(future).poll(cx));
                Poll::Ready(Ok(response.map(ResponseBody::metrics)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Empty;
    use tower::{service_fn, Layer, Service};

    use crate::{MetricsLayer, MetricsRegistry};

    #[test]
    #[should_panic(expected = "`ResponseFuture` polled after completion")]
    fn a_poll_after_completion_panics() {
        let registry = MetricsRegistry::new();
        let layer = MetricsLayer::new(&registry).expect("the default layer builds");
        let mut service = layer.layer(service_fn(|_request| async {
            Ok::<_, Infallible>(Response::new(Empty::<Bytes>::new()))
        }));
        let request = Request::get("/")
            .body(Empty::<Bytes>::new())
            .expect("a request");
        let mut future = pin!(service.call(request));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(future.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        let _ = future.as_mut().poll(&mut cx);
    }
}
