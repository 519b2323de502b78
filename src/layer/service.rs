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
        // Created before the inner call, so a panic inside `call` is recorded too.
        let (recorder, request) = if is_grpc(request.headers()) {
            let series = shared.grpc.method(request.uri().path());
            let received = MessageCounter::new(series.received.clone());
            let call = GrpcCall::start(Arc::clone(series));
            let request = request.map(|body| RequestBody::grpc(body, received));
            (Recorder::Grpc(call), request)
        } else {
            let method = HttpMethod::from(request.method());
            let (series, request) = match shared.routes.matched(&request) {
                Some(route) => (shared.families.route(method, route).clone(), request),
                // Only a route function needs the request taken apart.
                None => {
                    let (parts, body) = request.into_parts();
                    let route = shared.routes.resolve(&parts);
                    let series = shared.families.route(method, &route).clone();
                    drop(route);
                    (series, Request::from_parts(parts, body))
                }
            };
            let guard = RequestGuard::start(series);
            (Recorder::Http(guard), request.map(RequestBody::plain))
        };
        let future = self.inner.call(request);
        ResponseFuture::inner(future, recorder)
    }
}
