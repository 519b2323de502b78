//! [`MetricsService`]: the service the layer wraps around the application.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::guard::{Recorder, RequestGuard};
use super::labels::HttpMethod;
use super::layer::LayerShared;
use super::request_body::RequestBody;
use crate::grpc::{is_grpc, GrpcCall, MessageCounter};

/// Records every request to the inner service, and answers the metrics endpoint's path
/// itself. Built by [`MetricsLayer`](super::MetricsLayer).
///
/// The inner service receives the request body wrapped in a [`RequestBody`], which
/// counts the messages of gRPC calls.
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    shared: Arc<LayerShared>,
}

impl<S> MetricsService<S> {
    pub(crate) fn new(inner: S, shared: Arc<LayerShared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        if let Some(endpoint) = shared.intercepted_endpoint() {
            if endpoint.matches(&request) {
                return ResponseFuture::endpoint(endpoint.respond(&request));
            }
        }
        let (parts, body) = request.into_parts();
        // Created before the inner call, so a panic inside `call` is recorded too.
        let (recorder, body) = if is_grpc(&parts) {
            let series = shared.grpc.method(parts.uri.path());
            let received = MessageCounter::new(series.received.clone());
            let call = GrpcCall::start(Arc::clone(series));
            (Recorder::Grpc(call), RequestBody::grpc(body, received))
        } else {
            let method = HttpMethod::from(&parts.method);
            let series = shared
                .families
                .route(method, &shared.routes.resolve(&parts));
            let guard = RequestGuard::start(Arc::clone(series));
            (Recorder::Http(guard), RequestBody::plain(body))
        };
        let future = self.inner.call(Request::from_parts(parts, body));
        ResponseFuture::inner(future, recorder)
    }
}
