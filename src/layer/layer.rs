//! [`MetricsLayer`] and its builder.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use http::request::Parts;
use tower::Layer;

use super::bodies::{CountMessages, Untouched};
use super::families::SloRouteLabels;
use super::families::{
    route_target, ActiveRequests, HttpFamilies, RequestCount, RequestDuration, TimeToHeaders,
    ACTIVE_REQUESTS, HTTP_OBJECTIVES, REQUESTS_TOTAL, REQUEST_DURATION, TIME_TO_HEADERS,
};
use super::route::{RouteFn, RouteResolver};
use super::service::{LayerShared, MetricsService};
use super::skip::Skip;
use crate::endpoint::{MetricsEndpoint, MetricsEndpointBuilder, DEFAULT_PATH};
use crate::grpc::{
    method_target, methods_within, series_cap, service_and_method, GrpcCount, GrpcFamilies,
    GrpcHandledCount, GrpcHandling, GrpcType, MethodTypes, SloMethodLabels, GRPC_HANDLED,
    GRPC_HANDLING, GRPC_MSG_RECEIVED, GRPC_MSG_SENT, GRPC_OBJECTIVES, GRPC_STARTED,
};
use crate::metrics::{Buckets, NativeBuckets, DEFAULT_MAX_SERIES};
use crate::record::{DurationHistograms, Objective, Objectives, DEFAULT_FALLBACK_ROUTE};
use crate::{BuildError, MetricsRegistry};

/// An option of the endpoint, applied when the layer builds it.
type EndpointOption = Box<dyn FnOnce(MetricsEndpointBuilder) -> MetricsEndpointBuilder + Send>;

/// A [`tower::Layer`] that records every request into the HTTP families and answers
/// the metrics endpoint; see the [module docs](super).
///
/// Building it initialises the registry. Clones share everything.
///
/// `M` says what the inner service receives as the request: by default
/// ([`Untouched`]) the client's `Request<B>` as it came; in a layer built with
/// [`count_grpc_messages`](MetricsLayerBuilder::count_grpc_messages) or
/// [`grpc_only`](MetricsLayerBuilder::grpc_only) ([`CountMessages`]),
/// `Request<RequestBody<B>>`, which counts the messages gRPC calls receive.
pub struct MetricsLayer<M = Untouched> {
    shared: Arc<LayerShared>,
    bodies: PhantomData<fn() -> M>,
}

impl MetricsLayer {
    /// A layer with the defaults: endpoint at `/metrics`, routes from axum's
    /// `MatchedPath`, [`DEFAULT_MAX_SERIES`] series per family.
    pub fn new(registry: &MetricsRegistry) -> Result<Self, BuildError> {
        Self::builder(registry).build()
    }

    /// A builder, to change the defaults.
    pub fn builder(registry: &MetricsRegistry) -> MetricsLayerBuilder {
        MetricsLayerBuilder {
            registry: registry.clone(),
            path: Some(DEFAULT_PATH.to_string()),
            endpoint_options: Vec::new(),
            route_fn: None,
            fallback_route: DEFAULT_FALLBACK_ROUTE.into(),
            skip: Skip::default(),
            max_series: None,
            objectives: Objectives::new(&HTTP_OBJECTIVES),
            grpc_objectives: Objectives::new(&GRPC_OBJECTIVES),
            invalid_objective: None,
            grpc_types: MethodTypes::default(),
            grpc_handling: true,
            grpc_only: false,
            time_to_headers: false,
            native: None,
            classic_buckets: None,
            bodies: PhantomData,
        }
    }
}

impl<M> MetricsLayer<M> {
    /// The metrics endpoint as a standalone service, for a separate listener. It
    /// answers on the layer's endpoint path, or `/metrics` when the layer has none.
    pub fn endpoint(&self) -> MetricsEndpoint {
        self.shared.endpoint.clone()
    }
}

impl<M> Clone for MetricsLayer<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            bodies: PhantomData,
        }
    }
}

impl<M> fmt::Debug for MetricsLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("shared", &self.shared)
            .finish()
    }
}

impl<S, M> Layer<S> for MetricsLayer<M> {
    type Service = MetricsService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService::new(inner, Arc::clone(&self.shared))
    }
}

/// Builds a [`MetricsLayer`]; `M` is the layer's [`RequestBodies`](super::RequestBodies).
#[must_use]
pub struct MetricsLayerBuilder<M = Untouched> {
    registry: MetricsRegistry,
    path: Option<String>,
    endpoint_options: Vec<EndpointOption>,
    route_fn: Option<Arc<RouteFn>>,
    fallback_route: Arc<str>,
    skip: Skip,
    /// `None` until set: then a layer built on families that exist takes their cap.
    max_series: Option<usize>,
    objectives: Objectives<SloRouteLabels>,
    grpc_objectives: Objectives<SloMethodLabels>,
    /// A gRPC objective declared for a path that names no method.
    invalid_objective: Option<String>,
    grpc_types: MethodTypes,
    grpc_handling: bool,
    grpc_only: bool,
    time_to_headers: bool,
    /// Native buckets of the duration histograms.
    native: Option<NativeBuckets>,
    /// `None` until set: then classic buckets are kept unless native ones replace them.
    classic_buckets: Option<bool>,
    bodies: PhantomData<fn() -> M>,
}

impl<M> MetricsLayerBuilder<M> {
    /// Serves the endpoint at `path` (default `/metrics`).
    pub fn endpoint_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Sets options of the endpoint (guard, bearer token, scrape limit), for the one
    /// the layer serves and the one [`MetricsLayer::endpoint`] returns.
    ///
    /// ```
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .endpoint_options(|endpoint| endpoint.bearer_token("s3cret").max_concurrent_scrapes(4))
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn endpoint_options(
        mut self,
        options: impl FnOnce(MetricsEndpointBuilder) -> MetricsEndpointBuilder + Send + 'static,
    ) -> Self {
        self.endpoint_options.push(Box::new(options));
        self
    }

    /// Leaves every path to the inner service; serve [`MetricsLayer::endpoint`] elsewhere.
    pub fn without_endpoint(mut self) -> Self {
        self.path = None;
        self
    }

    /// Names the route of requests without axum's `MatchedPath`: return a template
    /// such as `/users/{id}`, never the raw path, or `None` for the fallback.
    pub fn route_fn<F>(mut self, route_fn: F) -> Self
    where
        F: Fn(&Parts) -> Option<Cow<'static, str>> + Send + Sync + 'static,
    {
        self.route_fn = Some(Arc::new(route_fn));
        self
    }

    /// The route label of requests nothing names (default `_OTHER`).
    pub fn fallback_route(mut self, route: impl Into<Arc<str>>) -> Self {
        self.fallback_route = route.into();
        self
    }

    /// Leaves requests to these routes unrecorded, in every family: compared with the
    /// route the layer resolves (axum's `MatchedPath`, the
    /// [route function](Self::route_fn), or the [fallback](Self::fallback_route)),
    /// such as `/health`. A [gRPC-only](Self::grpc_only) layer resolves no route: use
    /// [`skip_if`](Self::skip_if) there.
    pub fn skip_routes<I>(mut self, routes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.skip.add_routes(
            routes
                .into_iter()
                .map(|route| route.into().into_boxed_str()),
        );
        self
    }

    /// Leaves requests unrecorded, in every family, when `skip` returns `true` for
    /// their head (method, URI, headers, extensions); asked before the route. A
    /// panicking `skip` records the request.
    pub fn skip_if<F>(mut self, skip: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        self.skip.set_predicate(Arc::new(skip));
        self
    }

    /// Declares the service-level objective of `route` (the route label, such as
    /// `/users/{id}`): its targets are exported in `http_server_slo_objective`, and a
    /// latency objective makes the layer count the requests within its threshold
    /// (`http_server_slo_latency_good_total`), for the shipped burn-rate alerts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_prometheus::layer::Objective;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .objective(
    ///         "/checkout",
    ///         Objective::availability(0.999).with_latency(Duration::from_millis(250), 0.99),
    ///     )
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn objective(mut self, route: impl Into<String>, objective: Objective) -> Self {
        self.objectives
            .insert(route_target(&route.into()), objective);
        self
    }

    /// Declares the service-level objective of the gRPC method at `path`
    /// (`/package.Service/Method`), as [`objective`](Self::objective) does for a route:
    /// targets in `grpc_server_slo_objective`, calls within a latency threshold in
    /// `grpc_server_slo_latency_good_total`.
    pub fn grpc_objective(mut self, path: impl Into<String>, objective: Objective) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        match service_and_method(&path) {
            Some((service, method)) => self
                .grpc_objectives
                .insert(method_target(service, method), objective),
            None => self.invalid_objective = Some(format!("`{path}` is not a gRPC method path")),
        }
        self
    }

    /// Caps each default family at `max_series` label sets (default
    /// [`DEFAULT_MAX_SERIES`]); past it, requests fold into the overflow series. The
    /// gRPC families hold that many methods, plus `_OTHER` and the overflow series.
    ///
    /// The families are shared by every layer of a registry: a layer built after
    /// another (or after a provider that replaced a family) fails to build with
    /// [`BuildError::Setting`] if its cap differs from theirs.
    pub fn max_series(mut self, max_series: usize) -> Self {
        self.max_series = Some(max_series);
        self
    }

    /// Declares the gRPC method at `path` (`/package.Service/Method`) and its
    /// `grpc_type`: its series are created at zero when the layer is built, every code
    /// of `grpc_server_handled_total` included, and it keeps them whatever clients
    /// send. Undeclared methods are `unary`, and get series when first served. See
    /// [`grpc`](crate::grpc) for why the type is declared rather than inferred.
    pub fn grpc_method_type(mut self, path: impl Into<String>, grpc_type: GrpcType) -> Self {
        self.grpc_types.insert(path.into(), grpc_type);
        self
    }

    /// Declares that the inner service serves only gRPC (a tonic `Server` does):
    /// every request is recorded as a gRPC call, whatever content type it carries,
    /// as tonic serves it. Otherwise a request is a gRPC call when its answer is.
    ///
    /// Such a layer counts the messages calls receive, as
    /// [`count_grpc_messages`](Self::count_grpc_messages) does.
    pub fn grpc_only(self) -> MetricsLayerBuilder<CountMessages> {
        let mut builder = self.count_grpc_messages();
        builder.grpc_only = true;
        builder
    }

    /// Hands the inner service `Request<RequestBody<B>>` instead of the client's
    /// `Request<B>`, so the messages gRPC calls receive are counted
    /// (`grpc_server_msg_received_total`), and a call whose client breaks its request
    /// off is `Canceled` whatever the server answers. Other requests' bodies pass
    /// through the wrapper as they are. Without it, gRPC calls are recorded all the
    /// same, with no message received.
    pub fn count_grpc_messages(self) -> MetricsLayerBuilder<CountMessages> {
        MetricsLayerBuilder {
            registry: self.registry,
            path: self.path,
            endpoint_options: self.endpoint_options,
            route_fn: self.route_fn,
            fallback_route: self.fallback_route,
            skip: self.skip,
            max_series: self.max_series,
            objectives: self.objectives,
            grpc_objectives: self.grpc_objectives,
            invalid_objective: self.invalid_objective,
            grpc_types: self.grpc_types,
            grpc_handling: self.grpc_handling,
            grpc_only: self.grpc_only,
            time_to_headers: self.time_to_headers,
            native: self.native,
            classic_buckets: self.classic_buckets,
            bodies: PhantomData,
        }
    }

    /// Whether to record `grpc_server_handling_seconds` (default `true`).
    pub fn grpc_handling_histogram(mut self, enabled: bool) -> Self {
        self.grpc_handling = enabled;
        self
    }

    /// Whether to record `http_server_time_to_headers_seconds` (default `false`): the
    /// time from a request's start until the inner service yields its response
    /// headers, beside the duration that ends with the body, so a streamed body does
    /// not hide the handler's latency. A request that fails or is dropped before its
    /// headers is not recorded in it. Off, it costs nothing per request.
    ///
    /// ```
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .time_to_headers_histogram(true)
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn time_to_headers_histogram(mut self, enabled: bool) -> Self {
        self.time_to_headers = enabled;
        self
    }

    /// Records the duration histograms (`http_server_request_duration_seconds`, the
    /// opt-in `http_server_time_to_headers_seconds` and `grpc_server_handling_seconds`)
    /// into native buckets of `config`, which a Prometheus scraping protobuf with
    /// `--enable-feature=native-histograms` reads as native histograms: any quantile
    /// within the schema's relative error, no bucket layout to choose.
    ///
    /// Their classic buckets are then left out (a text or OpenMetrics scrape shows
    /// each histogram's count, sum and `+Inf` bucket), unless
    /// [`classic_buckets(true)`](Self::classic_buckets) keeps them beside the native
    /// ones. Recording stays lock-free, and allocation-free once the value's chunk of
    /// 64 native buckets exists.
    ///
    /// In multi-process mode the files have no native buckets: the histograms keep
    /// their classic buckets only (with native-only ones, just the count, sum and
    /// `+Inf`), so keep `classic_buckets(true)` there.
    ///
    /// ```
    /// use tower_prometheus::metrics::NativeBuckets;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .native_histograms(NativeBuckets::new(3)?.with_max_buckets(100)?)
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn native_histograms(mut self, config: NativeBuckets) -> Self {
        self.native = Some(config);
        self
    }

    /// Whether the duration histograms keep their classic buckets: by default yes,
    /// unless [`native_histograms`](Self::native_histograms) is set; `true` keeps them
    /// beside the native ones. `false` without native buckets fails the build with
    /// [`BuildError::Setting`].
    pub fn classic_buckets(mut self, enabled: bool) -> Self {
        self.classic_buckets = Some(enabled);
        self
    }

    /// Declares the default families (unless the registry already holds those
    /// names), initialises the registry and builds the layer.
    ///
    /// The registry may already be initialised, by an endpoint or another layer: the
    /// families it lacks are added then, and its objectives join the exported ones. A
    /// setting that cannot take effect on what is already there (another cap, another
    /// objective for the same route) is an error naming it.
    pub fn build(self) -> Result<MetricsLayer<M>, BuildError> {
        if let Some(invalid) = self.invalid_objective {
            return Err(BuildError::InvalidObjective(invalid));
        }
        if let Some(invalid) = self.grpc_types.invalid() {
            return Err(BuildError::InvalidGrpcMethod(invalid.to_string()));
        }
        self.objectives
            .check()
            .map_err(BuildError::InvalidObjective)?;
        self.grpc_objectives
            .check()
            .map_err(BuildError::InvalidObjective)?;
        let layout = DurationHistograms::new(self.classic_buckets, self.native).ok_or(
            BuildError::Setting {
                setting: "classic_buckets",
                message: "`classic_buckets(false)` leaves the duration histograms no \
                          buckets: set `native_histograms` too"
                    .to_string(),
            },
        )?;
        let max_series = self.max_series.unwrap_or(DEFAULT_MAX_SERIES);
        HttpFamilies::declare(&self.registry, max_series, self.time_to_headers, layout)?;
        self.objectives.declare(&self.registry)?;
        self.grpc_objectives.declare(&self.registry)?;
        GrpcFamilies::declare(&self.registry, max_series, self.grpc_handling, layout)?;
        let intercept = self.path.is_some();
        let endpoint = self
            .endpoint_options
            .into_iter()
            .fold(
                MetricsEndpoint::builder(&self.registry)
                    .path(self.path.unwrap_or_else(|| DEFAULT_PATH.to_string())),
                |builder, options| options(builder),
            )
            .build()?;
        if let Some(max_series) = self.max_series {
            check_series_limits(
                &self.registry,
                max_series,
                self.grpc_handling,
                self.time_to_headers,
            )?;
        }
        if self.native.is_some() || self.classic_buckets.is_some() {
            check_layouts(
                &self.registry,
                layout,
                self.grpc_handling,
                self.time_to_headers,
            )?;
        }
        self.objectives.publish(&self.registry)?;
        self.grpc_objectives.publish(&self.registry)?;
        let families =
            HttpFamilies::from_registry(&self.registry, &self.objectives, self.time_to_headers)?;
        // The method cap follows the shared families' cap, which an earlier layer may
        // have set.
        let max_methods =
            methods_within(self.registry.get::<GrpcCount>(GRPC_STARTED)?.series_limit());
        let grpc = GrpcFamilies::from_registry(
            &self.registry,
            self.grpc_handling,
            self.grpc_types,
            &self.grpc_objectives,
            max_methods,
        )?;
        Ok(MetricsLayer {
            shared: Arc::new(LayerShared {
                families,
                grpc: Arc::new(grpc),
                grpc_only: self.grpc_only,
                routes: RouteResolver::new(self.route_fn, self.fallback_route),
                skip: self.skip.into_option(),
                endpoint,
                intercept,
            }),
            bodies: PhantomData,
        })
    }
}

/// Fails unless every family the layer records into is capped at `max_series`: the
/// families of a registry are shared, so a cap set when they already exist cannot
/// take effect.
fn check_series_limits(
    registry: &MetricsRegistry,
    max_series: usize,
    grpc_handling: bool,
    time_to_headers: bool,
) -> Result<(), BuildError> {
    let mut limits = vec![
        (
            REQUEST_DURATION,
            registry
                .get::<RequestDuration>(REQUEST_DURATION)?
                .series_limit(),
            max_series,
        ),
        (
            REQUESTS_TOTAL,
            registry.get::<RequestCount>(REQUESTS_TOTAL)?.series_limit(),
            max_series,
        ),
        (
            ACTIVE_REQUESTS,
            registry
                .get::<ActiveRequests>(ACTIVE_REQUESTS)?
                .series_limit(),
            max_series,
        ),
        (
            GRPC_HANDLED,
            registry
                .get::<GrpcHandledCount>(GRPC_HANDLED)?
                .series_limit(),
            series_cap(GRPC_HANDLED, max_series),
        ),
    ];
    for name in [GRPC_STARTED, GRPC_MSG_RECEIVED, GRPC_MSG_SENT] {
        limits.push((
            name,
            registry.get::<GrpcCount>(name)?.series_limit(),
            series_cap(name, max_series),
        ));
    }
    if time_to_headers {
        let headers = registry.get::<TimeToHeaders>(TIME_TO_HEADERS)?;
        limits.push((TIME_TO_HEADERS, headers.series_limit(), max_series));
    }
    if grpc_handling {
        let handling = registry.get::<GrpcHandling>(GRPC_HANDLING)?;
        limits.push((
            GRPC_HANDLING,
            handling.series_limit(),
            series_cap(GRPC_HANDLING, max_series),
        ));
    }
    match limits
        .into_iter()
        .find(|(_, limit, expected)| limit != expected)
    {
        Some((family, limit, expected)) => Err(BuildError::Setting {
            setting: "max_series",
            message: format!(
                "`{family}` already exists in the registry with a cap of {limit} series, not the \
                 {expected} that `max_series({max_series})` gives it: set the cap on the layer \
                 built first, or on the provider that replaces the family"
            ),
        }),
        None => Ok(()),
    }
}

/// Fails unless every duration histogram family the layer records into makes its
/// histograms as `layout` says: families declared earlier (by another layer, or a
/// provider that replaced them) keep the layout they were declared with.
fn check_layouts(
    registry: &MetricsRegistry,
    layout: DurationHistograms,
    grpc_handling: bool,
    time_to_headers: bool,
) -> Result<(), BuildError> {
    let http = |name| -> Result<_, BuildError> {
        let family = registry.get::<RequestDuration>(name)?;
        Ok((name, family.unregistered(), Buckets::http_duration()))
    };
    let mut made = vec![http(REQUEST_DURATION)?];
    if time_to_headers {
        made.push(http(TIME_TO_HEADERS)?);
    }
    if grpc_handling {
        let family = registry.get::<GrpcHandling>(GRPC_HANDLING)?;
        made.push((
            GRPC_HANDLING,
            family.unregistered(),
            Buckets::prometheus_default(),
        ));
    }
    match made
        .into_iter()
        .find(|(_, histogram, classic)| !layout.made(histogram, classic))
    {
        Some((name, _, _)) => Err(BuildError::Setting {
            setting: "native_histograms",
            message: format!(
                "`{name}` already exists in the registry with other buckets: set \
                 `native_histograms` and `classic_buckets` on the layer built first, or on \
                 the provider that replaces the family"
            ),
        }),
        None => Ok(()),
    }
}

impl<M> fmt::Debug for MetricsLayerBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayerBuilder")
            .field("registry", &self.registry)
            .field("path", &self.path)
            .field("endpoint_options", &self.endpoint_options.len())
            .field("route_fn", &self.route_fn.is_some())
            .field("fallback_route", &self.fallback_route)
            .field("skip", &self.skip)
            .field("max_series", &self.max_series)
            .field("grpc_types", &self.grpc_types)
            .field("grpc_handling", &self.grpc_handling)
            .field("grpc_only", &self.grpc_only)
            .field("time_to_headers", &self.time_to_headers)
            .field("native", &self.native)
            .field("classic_buckets", &self.classic_buckets)
            .finish()
    }
}
