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
use crate::grpc::{is_grpc, GrpcCall, ReceivedMessages};

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

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        if let Some(endpoint) = shared.intercepted_endpoint() {
            if endpoint.intercepts(&request) {
                return ResponseFuture::endpoint(endpoint.respond(&request));
            }
        }
        // Recorders are created before the inner call, so a panic inside `call` is
        // recorded too. The request is moved as little as possible: it is large.
        if is_grpc(&request) {
            let series = shared.grpc.method(request.uri().path());
            let received = ReceivedMessages::new(Arc::clone(series));
            let call = Recorder::Grpc(GrpcCall::start(Arc::clone(series)));
            let request = request.map(|body| RequestBody::grpc(body, received));
            return ResponseFuture::inner(self.inner.call(request), call);
        }
        let method = HttpMethod::from(request.method());
        let series = match shared.routes.known(&request) {
            Some(route) => Arc::clone(shared.families.known_route(method, route)),
            // Only a route function needs the request taken apart.
            None => {
                let (parts, body) = request.into_parts();
                let series = Arc::clone(
                    shared
                        .families
                        .route(method, &shared.routes.resolve(&parts)),
                );
                request = Request::from_parts(parts, body);
                series
            }
        };
        let guard = Recorder::Http(RequestGuard::start(series));
        ResponseFuture::inner(self.inner.call(request.map(RequestBody::plain)), guard)
    }
}
