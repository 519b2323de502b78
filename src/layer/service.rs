//! [`MetricsService`]: the service the layer wraps around the application.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::bodies::{RequestBodies, Untouched};
use super::body::ResponseBody;
use super::body_bytes::RequestBytes;
use super::exemplars::Exemplars;
use super::extra::request_values;
use super::families::{HttpFamilies, RouteSeries};
use super::future::ResponseFuture;
use super::guard::{start_request, ClaimedCall, Recorder};
use super::head::with_parts;
use super::request_body::{BodyCounts, RequestBody};
use super::route::RouteResolver;
use super::skip::Skip;
use crate::endpoint::MetricsEndpoint;
use crate::grpc::{claims_grpc, grpc_timeout, GrpcCall, GrpcFamilies};
use crate::metrics::RequestExemplar;
use crate::record::HttpMethod;

/// What every service of one layer shares. Aligned to a cache line: axum clones a
/// route's service for every request, so the `Arc`'s counts are written by every
/// thread, and the fields each request reads must not share their line.
#[repr(align(64))]
pub(crate) struct LayerShared {
    pub(crate) families: HttpFamilies,
    pub(crate) grpc: Arc<GrpcFamilies>,
    /// The inner service serves only gRPC: every request is a gRPC call.
    pub(crate) grpc_only: bool,
    pub(crate) routes: RouteResolver,
    /// Whether HTTP request bodies count their bytes (only in a layer whose inner
    /// service receives [`RequestBody`]).
    pub(crate) request_bytes: bool,
    /// The requests left unrecorded; `None` when the layer skips nothing.
    pub(crate) skip: Option<Skip>,
    /// Where exemplars come from; `None` records none.
    pub(crate) exemplars: Option<Exemplars>,
    pub(crate) endpoint: MetricsEndpoint,
    /// Whether the layer answers the endpoint's path itself.
    pub(crate) intercept: bool,
}

impl LayerShared {
    /// The exemplar of a recorded request, if the layer records exemplars and it has
    /// one.
    fn exemplar<B>(&self, request: &mut Request<B>) -> Option<RequestExemplar> {
        self.exemplars.as_ref()?.read(request)
    }

    /// The endpoint, if the layer answers it.
    pub(crate) fn intercepted_endpoint(&self) -> Option<&MetricsEndpoint> {
        self.intercept.then_some(&self.endpoint)
    }
}

impl fmt::Debug for LayerShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LayerShared")
            .field("routes", &self.routes)
            .field("skip", &self.skip)
            .field("grpc_only", &self.grpc_only)
            .field(
                "endpoint",
                &self.intercepted_endpoint().map(MetricsEndpoint::path),
            )
            .finish_non_exhaustive()
    }
}

/// Records every request to the inner service, and answers the metrics endpoint's path
/// itself. Built by [`MetricsLayer`](super::MetricsLayer).
///
/// `M` says what the inner service receives: with [`Untouched`](super::Untouched)
/// (the default) the client's request as it came, `Request<B>`; with
/// [`CountMessages`](super::CountMessages) `Request<RequestBody<B>>`, whose body counts
/// the messages of gRPC calls.
#[derive(Clone, Debug)]
pub struct MetricsService<S, M = Untouched> {
    inner: S,
    shared: Arc<LayerShared>,
    bodies: PhantomData<fn() -> M>,
}

impl<S, M> MetricsService<S, M> {
    pub(crate) fn new(inner: S, shared: Arc<LayerShared>) -> Self {
        Self {
            inner,
            shared,
            bodies: PhantomData,
        }
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

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S, M>
where
    M: RequestBodies,
    S: Service<Request<M::Body<ReqBody>>, Response = Response<ResBody>>,
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
        let (recorder, counts) = recorder(shared, &mut request);
        let request = match counts {
            None => M::http(request),
            Some(counts) => M::wrapped(request.map(|body| RequestBody::counting(body, counts))),
        };
        // One call site: the inner future, large, is moved into the response future
        // once, whichever way the request is recorded.
        ResponseFuture::inner(self.inner.call(request), recorder)
    }
}

/// What `request` records into (`None`: it is skipped), and what its body counts if
/// the inner service gets it wrapped. Recorders are created before the inner call, so
/// a panic inside `call` is recorded too. The request is borrowed, not moved: it is
/// large.
#[inline]
fn recorder<B>(
    shared: &LayerShared,
    request: &mut Request<B>,
) -> (Option<Recorder>, Option<BodyCounts>) {
    if let Some(skip) = &shared.skip {
        if skip.request(request) {
            return (None, None);
        }
    }
    let grpc_only = shared.grpc_only;
    if grpc_only || claims_grpc(request) {
        let timeout = grpc_timeout(request.headers());
        // A gRPC-only layer resolves no route: its calls are named by their path.
        let route = if grpc_only {
            None
        } else {
            let Some(route) = route_series(shared, request) else {
                return (None, None);
            };
            Some(route)
        };
        let values = request_values(shared.grpc.request_labels(), request);
        let exemplar = shared.exemplar(request);
        let (mut call, received) = GrpcCall::new(
            &shared.grpc,
            request.uri().path(),
            values,
            timeout,
            exemplar,
        );
        let recorder = match route {
            None => {
                call.start_if_served();
                Recorder::Grpc(call)
            }
            Some(route) => Recorder::Claimed(ClaimedCall::new(call, route)),
        };
        return (Some(recorder), Some(BodyCounts::messages(received)));
    }
    let Some(series) = route_series(shared, request) else {
        return (None, None);
    };
    let exemplar = shared.exemplar(request);
    if shared.request_bytes {
        let (counted, recorded) = RequestBytes::pair();
        let guard = Recorder::Http(start_request(series, Some(recorded), exemplar));
        return (Some(guard), Some(BodyCounts::bytes(counted)));
    }
    (
        Some(Recorder::Http(start_request(series, None, exemplar))),
        None,
    )
}

/// The HTTP series of the request's method and route (and the values of the labels
/// read from it), or `None` when the route is skipped.
fn route_series<B>(shared: &LayerShared, request: &mut Request<B>) -> Option<Arc<RouteSeries>> {
    let skips = |route: &str| shared.skip.as_ref().is_some_and(|skip| skip.route(route));
    let method = HttpMethod::from(request.method());
    let families = &shared.families;
    let extra = families.extra_labels();
    if !extra.reads_requests() {
        if let Some(route) = shared.routes.known(request) {
            if skips(route.as_str()) {
                return None;
            }
            return Some(Arc::clone(families.known_route(method, route)));
        }
    }
    let values = extra.request_values(request);
    if let Some(route) = shared.routes.known(request) {
        let route = route.as_str();
        return (!skips(route)).then(|| Arc::clone(families.route(method, route, values)));
    }
    // Only a route function needs the request's head.
    with_parts(request, |parts| {
        let route = shared.routes.resolve(parts);
        (!skips(&route)).then(|| Arc::clone(families.route(method, &route, values)))
    })
}
