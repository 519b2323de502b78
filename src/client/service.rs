//! [`ClientMetricsService`]: records each request the inner client sends.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ClientResponseBody;
use super::future::ClientResponseFuture;
use super::layer::ClientShared;
use super::request_body::ClientRequestBody;
use super::BoxError;

/// The [`ClientMetricsLayer`](super::ClientMetricsLayer)'s service around a client.
///
/// It hands the inner client `Request<ClientRequestBody<B>>` (the caller's body,
/// which counts a gRPC call's messages as they are sent), and boxes the inner
/// client's errors.
pub struct ClientMetricsService<S> {
    inner: S,
    shared: Arc<ClientShared>,
}

impl<S> ClientMetricsService<S> {
    pub(crate) fn new(inner: S, shared: Arc<ClientShared>) -> Self {
        Self { inner, shared }
    }

    /// The inner client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone> Clone for ClientMetricsService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for ClientMetricsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientMetricsService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientMetricsService<S>
where
    S: Service<Request<ClientRequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body,
{
    type Response = Response<ClientResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ClientResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (recorder, sent) = self.shared.start(&request);
        // A panic of the inner call drops the recorder while unwinding, which records it.
        let future = self
            .inner
            .call(request.map(|body| ClientRequestBody::new(body, sent)));
        ClientResponseFuture::new(future, recorder)
    }
}
