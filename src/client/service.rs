//! [`ClientMetricsService`]: records each request the inner client sends.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::body::ClientResponseBody;
use super::error_type::BoxError;
use super::families::HttpClientFamilies;
use super::future::ClientResponseFuture;
use super::grpc_families::GrpcClientFamilies;
use super::guard::{ClientRecorder, SentMessages};
use super::labels::server_of;
use super::request_body::ClientRequestBody;
use crate::grpc::claims_grpc;
use crate::record::HttpMethod;

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

/// What every service of a layer shares.
pub(crate) struct ClientShared {
    http: HttpClientFamilies,
    grpc: GrpcClientFamilies,
}

impl ClientShared {
    pub(crate) fn new(http: HttpClientFamilies, grpc: GrpcClientFamilies) -> Self {
        Self { http, grpc }
    }

    /// The recorder of a request starting now, and for a gRPC call the counter of the
    /// messages its body sends.
    pub(crate) fn start<B>(&self, request: &Request<B>) -> (ClientRecorder, Option<SentMessages>) {
        if claims_grpc(request) {
            let series = self.grpc.method(request.uri().path());
            let sent = SentMessages::new(Arc::clone(series));
            (ClientRecorder::grpc(Arc::clone(series)), Some(sent))
        } else {
            let (address, port) = server_of(request);
            let series = self
                .http
                .server(HttpMethod::from(request.method()), address, port);
            (ClientRecorder::http(Arc::clone(series)), None)
        }
    }
}

impl fmt::Debug for ClientShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientShared")
            .field("max_series", &self.http.series_limit())
            .finish_non_exhaustive()
    }
}
