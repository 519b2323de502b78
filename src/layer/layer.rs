//! [`MetricsLayer`] and its builder.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use http::request::Parts;
use tower::Layer;

use super::bodies::{CountMessages, Untouched};
use super::exemplars::Exemplars;
use super::extra::ExtraLabels;
use super::families::SloRouteLabels;
use super::families::{
    route_target, ActiveRequests, HttpFamilies, OptionalFamilies, RequestCount, RequestDuration,
    ACTIVE_REQUESTS, HTTP_OBJECTIVES, REQUESTS_TOTAL, REQUEST_BODY_SIZE, REQUEST_DURATION,
    RESPONSE_BODY_SIZE, TIME_TO_HEADERS,
};
use super::labels::HTTP_LABEL_NAMES;
use super::route::{RouteFn, RouteResolver};
use super::service::{LayerShared, MetricsService};
use super::skip::Skip;
use crate::endpoint::{MetricsEndpoint, MetricsEndpointBuilder, DEFAULT_PATH};
use crate::grpc::{
    method_target, methods_within, series_cap, service_and_method, GrpcCount, GrpcFamilies,
    GrpcHandledCount, GrpcHandling, GrpcLabelsBuilder, GrpcType, MethodTypes, SloMethodLabels,
    GRPC_HANDLED, GRPC_HANDLING, GRPC_LABEL_NAMES, GRPC_MSG_RECEIVED, GRPC_MSG_SENT,
    GRPC_OBJECTIVES, GRPC_STARTED,
};
use crate::metrics::{Buckets, ConstantLabels, NativeBuckets, DEFAULT_MAX_SERIES, OVERFLOW_LABEL};
use crate::record::{
    FamilyNames, HistogramLayout, LabelValues, Objective, Objectives, DEFAULT_FALLBACK_ROUTE,
    SLO_LABEL_NAMES,
};
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
            optional: OptionalFamilies::default(),
            prefix: None,
            constant_labels: Vec::new(),
            extra: ExtraLabels::default(),
            grpc_labels: GrpcLabelsBuilder::default(),
            native: None,
            classic_buckets: None,
            exemplars: None,
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
    optional: OptionalFamilies,
    prefix: Option<String>,
    constant_labels: Vec<(String, String)>,
    extra: ExtraLabels,
    /// Labels read from gRPC calls.
    grpc_labels: GrpcLabelsBuilder,
    /// Native buckets of the duration histograms.
    native: Option<NativeBuckets>,
    /// `None` until set: then classic buckets are kept unless native ones replace them.
    classic_buckets: Option<bool>,
    /// Where exemplars come from; `None` records none.
    exemplars: Option<Exemplars>,
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

    /// Adds the label `name` to the HTTP families, its value read from each request's
    /// head (method, URI, headers, extensions) by `read`: a tenant from a header, say.
    /// `values` bounds what it can be, so a client cannot create series: a value
    /// outside it is `_OTHER`; `read` returning `None` (or panicking) leaves the label
    /// empty. The label is on `http_server_request_duration_seconds`,
    /// `http_server_requests_total` and `http_server_active_requests` (and the time to
    /// the headers); gRPC calls are recorded without it (see
    /// [`grpc_metadata_label`](Self::grpc_metadata_label) for theirs). The families'
    /// cap still holds.
    ///
    /// Recording stays allocation-free once a series exists: the value is compared
    /// with the known ones (a scan of an allow-list, a hash probe of the first-seen
    /// values), and the route cache is not used. At most [`MAX_EXTRA_LABELS`] labels
    /// from requests; a name the families already use, a repeated one or an invalid
    /// one fails the build.
    ///
    /// [`MAX_EXTRA_LABELS`]: super::MAX_EXTRA_LABELS
    ///
    /// ```
    /// use tower_prometheus::layer::LabelValues;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .request_label("tenant", LabelValues::first(50), |head| {
    ///         head.headers.get("x-tenant")?.to_str().ok()
    ///     })
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn request_label<F>(mut self, name: impl Into<String>, values: LabelValues, read: F) -> Self
    where
        F: for<'a> Fn(&'a Parts) -> Option<&'a str> + Send + Sync + 'static,
    {
        self.extra.add_request(name.into(), values, Arc::new(read));
        self
    }

    /// Adds the label `name` to `http_server_request_duration_seconds` and
    /// `http_server_requests_total` (and the time to the headers), its value read from
    /// each response's head by `read`: a cache result from a header the handler sets,
    /// say. Bounded by `values` as [`request_label`](Self::request_label) is. A
    /// request that ends without a response (499, or 500 after a panic) has it empty.
    ///
    /// ```
    /// use tower_prometheus::layer::LabelValues;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .response_label("cache", LabelValues::allow(["hit", "miss"]), |head| {
    ///         head.headers.get("x-cache")?.to_str().ok()
    ///     })
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn response_label<F>(
        mut self,
        name: impl Into<String>,
        values: LabelValues,
        read: F,
    ) -> Self
    where
        F: for<'a> Fn(&'a http::response::Parts) -> Option<&'a str> + Send + Sync + 'static,
    {
        self.extra.add_response(name.into(), values, Arc::new(read));
        self
    }

    /// Adds the label `name` to the gRPC families, its value the first value of the
    /// ASCII metadata key `key` each call's request carries (`x-tenant`, in any case:
    /// gRPC metadata travels as HTTP/2 headers). `values` bounds what it can be, as
    /// [`request_label`](Self::request_label)'s do: a value outside it is `_OTHER`, a
    /// call without the key has the label empty. The label is on every gRPC family:
    /// `grpc_server_started_total`, `grpc_server_handled_total`,
    /// `grpc_server_handling_seconds`, `grpc_server_msg_received_total` and
    /// `grpc_server_msg_sent_total`, so started minus handled still counts the calls
    /// in flight per value. HTTP requests are recorded without it.
    ///
    /// A method's series are then found by its path and the label values: the cap
    /// ([`max_series`](Self::max_series)) counts each combination of a method and
    /// values; a call's first combination is counted started when the server
    /// answers, as a method's first call is. Calls that name no served method
    /// (`_OTHER`) and the series of [declared](Self::grpc_method_type) methods made at
    /// zero have the label empty. Recording stays allocation-free once a series
    /// exists.
    ///
    /// Binary keys (`-bin`) carry arbitrary bytes, not label values: such a key, or
    /// one that is not a metadata key (`[0-9a-z_.-]`), fails the build with
    /// [`BuildError::InvalidMetadataKey`]. At most [`MAX_EXTRA_LABELS`] labels from
    /// gRPC calls; a name the families already use (`grpc_service`, `grpc_code`,
    /// `le`, a constant label, ...), a repeated or an invalid one fails it with
    /// [`BuildError::InvalidLabel`].
    ///
    /// [`MAX_EXTRA_LABELS`]: super::MAX_EXTRA_LABELS
    ///
    /// ```
    /// use tower_prometheus::layer::LabelValues;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .grpc_only()
    ///     .grpc_metadata_label("tenant", LabelValues::first(50), "x-tenant")
    ///     .grpc_metadata_label("tier", LabelValues::allow(["free", "pro"]), "x-tier")
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn grpc_metadata_label(
        mut self,
        name: impl Into<String>,
        values: LabelValues,
        key: impl Into<String>,
    ) -> Self {
        self.grpc_labels.metadata(name.into(), values, key.into());
        self
    }

    /// Adds the label `name` to the gRPC families, as
    /// [`grpc_metadata_label`](Self::grpc_metadata_label) does, its value read from
    /// each call's request head (metadata, the `:authority` in the URI, extensions an
    /// outer layer set) by `read`: a tenant an authentication layer put in the
    /// extensions, say. `read` returning `None` (or panicking) leaves it empty.
    ///
    /// ```
    /// use tower_prometheus::layer::LabelValues;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// #[derive(Clone)]
    /// struct Tenant(String);
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .grpc_only()
    ///     .grpc_request_label("tenant", LabelValues::first(50), |head| {
    ///         head.extensions.get::<Tenant>().map(|tenant| tenant.0.as_str())
    ///     })
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn grpc_request_label<F>(
        mut self,
        name: impl Into<String>,
        values: LabelValues,
        read: F,
    ) -> Self
    where
        F: for<'a> Fn(&'a Parts) -> Option<&'a str> + Send + Sync + 'static,
    {
        self.grpc_labels.read(name.into(), values, Arc::new(read));
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
            optional: self.optional,
            prefix: self.prefix,
            constant_labels: self.constant_labels,
            extra: self.extra,
            grpc_labels: self.grpc_labels,
            native: self.native,
            classic_buckets: self.classic_buckets,
            exemplars: self.exemplars,
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
        self.optional.time_to_headers = enabled;
        self
    }

    /// Records an exemplar with each request that has one, by the labels `source`
    /// reads from it (off by default): on `http_server_request_duration_seconds` (in
    /// the bucket of the request's duration) and `http_server_requests_total`, and for
    /// gRPC calls on `grpc_server_handling_seconds` and `grpc_server_handled_total`.
    /// Each bucket and each counter keeps its latest exemplar.
    ///
    /// OpenMetrics and protobuf scrapes carry them (a Prometheus started with
    /// `--enable-feature=exemplar-storage` stores them); the Prometheus text format
    /// has no place for them, so `curl` and `promtool` see no change. In multi-process
    /// mode no exemplar is kept, as Python's client keeps none in its files.
    ///
    /// Off, a request pays a test of an empty `Option`; on, see the README's
    /// performance table.
    ///
    /// ```
    /// use tower_prometheus::layer::Exemplars;
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .exemplars(Exemplars::traceparent())
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn exemplars(mut self, source: Exemplars) -> Self {
        self.exemplars = Some(source);
        self
    }

    /// Whether to record `http_server_response_body_size_bytes` (default `false`): the
    /// bytes of the data frames of each response body that really went out, counted
    /// as they pass (not the body's `size_hint`), so a streamed body records its true
    /// size and a body the client left midway what was sent by then. Labelled like the
    /// duration, in [`Buckets::body_size`](crate::metrics::Buckets::body_size). Off,
    /// a request pays a test of a flag or an empty `Option` where it is recorded.
    ///
    /// ```
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .response_body_size_histogram(true)
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn response_body_size_histogram(mut self, enabled: bool) -> Self {
        self.optional.response_body_size = enabled;
        self
    }

    /// Records `http_server_request_body_size_bytes`: the bytes of the data frames of
    /// each request body that the inner service read, by the time the request is
    /// recorded (a body left unread counts what was read). Labelled like the duration,
    /// in [`Buckets::body_size`](crate::metrics::Buckets::body_size).
    ///
    /// Counting needs the body wrapped: like
    /// [`count_grpc_messages`](Self::count_grpc_messages), this builds a
    /// `MetricsLayer<CountMessages>`, whose inner service receives
    /// `Request<RequestBody<B>>`. gRPC calls are recorded in the gRPC families, not in
    /// this one; a request claiming a gRPC content type that the server answers as
    /// plain HTTP is recorded in the HTTP families, but not in this one (its body was
    /// read as gRPC messages).
    ///
    /// ```
    /// use tower_prometheus::layer::{CountMessages, MetricsLayer};
    /// use tower_prometheus::MetricsRegistry;
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer: MetricsLayer<CountMessages> = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .request_body_size_histogram()
    ///     .response_body_size_histogram(true)
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn request_body_size_histogram(self) -> MetricsLayerBuilder<CountMessages> {
        let mut builder = self.count_grpc_messages();
        builder.optional.request_body_size = true;
        builder
    }

    /// Puts `prefix` and an underscore before the name of every family the layer
    /// writes: `shop` gives `shop_http_server_requests_total`,
    /// `shop_grpc_server_handled_total`, `shop_http_server_slo_objective`. Not the
    /// families you declare yourself, nor the process, build-info and multi-process
    /// ones. `prefix` must match `[a-zA-Z_][a-zA-Z0-9_]*`
    /// ([`BuildError::InvalidPrefix`]).
    ///
    /// The shipped rules and dashboard query the unprefixed names: with a prefix, use
    /// them after relabelling it away (see the README), or prefer
    /// [`constant_labels`](Self::constant_labels) to tell services apart.
    ///
    /// ```
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = MetricsRegistry::new();
    /// let _layer = MetricsLayer::builder(&registry).name_prefix("shop").build()?;
    /// assert!(registry.provider_names().contains(&"shop_http_server_requests_total".to_string()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Adds labels every series of every family the layer writes carries, with the
    /// same value (`service`, `region`): the HTTP and gRPC families, the objective
    /// families, their overflow series, in the scrape and in the multi-process files.
    /// Not the families you declare yourself, nor the process, build-info and
    /// multi-process ones: Prometheus's target labels give those theirs. Calls add to
    /// the labels given before.
    ///
    /// A name must be a label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`),
    /// given once, and none the families set themselves (`http_route`, `grpc_code`,
    /// `le`, ...): otherwise [`BuildError::ConstantLabel`]. The families are shared by
    /// every layer of a registry: a layer whose constant labels differ from those of
    /// the families it finds there (made by another layer, or declared by you under
    /// one of the layer's names, which carries none) fails with
    /// [`BuildError::Setting`].
    ///
    /// ```
    /// use tower_prometheus::{MetricsLayer, MetricsRegistry};
    ///
    /// # fn main() -> Result<(), tower_prometheus::BuildError> {
    /// let layer = MetricsLayer::builder(&MetricsRegistry::new())
    ///     .constant_labels([("service", "checkout"), ("region", "eu-west-1")])
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn constant_labels<I, K, V>(mut self, labels: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.constant_labels.extend(
            labels
                .into_iter()
                .map(|(name, value)| (name.into(), value.into())),
        );
        self
    }

    /// Records the duration histograms (`http_server_request_duration_seconds`, the
    /// opt-in `http_server_time_to_headers_seconds` and `grpc_server_handling_seconds`)
    /// into native buckets of `config`, which a Prometheus scraping protobuf with
    /// `--enable-feature=native-histograms` reads as native histograms: any quantile
    /// within the schema's relative error, no bucket layout to choose. Only protobuf
    /// scrapes carry native buckets, so build the crate with feature `protobuf` (not a
    /// default) for Prometheus to see them.
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
        let reserved: Vec<&str> = HTTP_LABEL_NAMES
            .into_iter()
            .chain(GRPC_LABEL_NAMES)
            .chain(SLO_LABEL_NAMES)
            .chain(["le", OVERFLOW_LABEL.0])
            .collect();
        let taken: Vec<&str> = reserved
            .iter()
            .copied()
            .chain(self.constant_labels.iter().map(|(name, _)| name.as_str()))
            .collect();
        if let Some((label, reason)) = self.extra.refusal(&taken) {
            return Err(BuildError::InvalidLabel { label, reason });
        }
        let grpc_labels = self.grpc_labels.build(&taken)?;
        let names = FamilyNames::new(self.prefix, self.constant_labels, &reserved)?;
        let layout =
            HistogramLayout::new(self.classic_buckets, self.native).ok_or(BuildError::Setting {
                setting: "classic_buckets",
                message: "`classic_buckets(false)` leaves the duration histograms no \
                          buckets: set `native_histograms` too"
                    .to_string(),
            })?;
        let max_series = self.max_series.unwrap_or(DEFAULT_MAX_SERIES);
        HttpFamilies::declare(&self.registry, &names, max_series, self.optional, layout)?;
        self.objectives.declare(&self.registry, &names)?;
        self.grpc_objectives.declare(&self.registry, &names)?;
        GrpcFamilies::declare(
            &self.registry,
            &names,
            max_series,
            self.grpc_handling,
            layout,
        )?;
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
                &names,
                max_series,
                self.grpc_handling,
                self.optional,
            )?;
        }
        if self.native.is_some() || self.classic_buckets.is_some() {
            check_layouts(
                &self.registry,
                &names,
                layout,
                self.grpc_handling,
                self.optional.time_to_headers,
            )?;
        }
        self.objectives.publish(&self.registry, &names)?;
        self.grpc_objectives.publish(&self.registry, &names)?;
        let families = HttpFamilies::from_registry(
            &self.registry,
            &names,
            &self.objectives,
            self.optional,
            self.extra,
        )?;
        // The method cap follows the shared families' cap, which an earlier layer may
        // have set.
        let max_methods = methods_within(
            self.registry
                .get::<GrpcCount>(&names.of(GRPC_STARTED))?
                .series_limit(),
        );
        let grpc = GrpcFamilies::from_registry(
            &self.registry,
            &names,
            self.grpc_handling,
            self.grpc_types,
            &self.grpc_objectives,
            max_methods,
            grpc_labels,
        )?;
        check_constant_labels(
            families
                .constant_labels()
                .into_iter()
                .chain(grpc.constant_labels()),
            &names,
        )?;
        Ok(MetricsLayer {
            shared: Arc::new(LayerShared {
                families,
                grpc: Arc::new(grpc),
                grpc_only: self.grpc_only,
                request_bytes: self.optional.request_body_size,
                routes: RouteResolver::new(self.route_fn, self.fallback_route),
                skip: self.skip.into_option(),
                exemplars: self.exemplars,
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
    names: &FamilyNames,
    max_series: usize,
    grpc_handling: bool,
    optional: OptionalFamilies,
) -> Result<(), BuildError> {
    let limit_of = |family: &str| -> Result<usize, BuildError> {
        let name = names.of(family);
        Ok(match family {
            REQUESTS_TOTAL => registry.get::<RequestCount>(&name)?.series_limit(),
            ACTIVE_REQUESTS => registry.get::<ActiveRequests>(&name)?.series_limit(),
            GRPC_HANDLED => registry.get::<GrpcHandledCount>(&name)?.series_limit(),
            GRPC_STARTED | GRPC_MSG_RECEIVED | GRPC_MSG_SENT => {
                registry.get::<GrpcCount>(&name)?.series_limit()
            }
            GRPC_HANDLING => registry.get::<GrpcHandling>(&name)?.series_limit(),
            // The duration, the time to the headers and the body sizes: histograms by
            // method, status and route.
            _ => registry.get::<RequestDuration>(&name)?.series_limit(),
        })
    };
    let http = [
        (REQUEST_DURATION, true),
        (REQUESTS_TOTAL, true),
        (ACTIVE_REQUESTS, true),
        (TIME_TO_HEADERS, optional.time_to_headers),
        (REQUEST_BODY_SIZE, optional.request_body_size),
        (RESPONSE_BODY_SIZE, optional.response_body_size),
    ];
    let grpc = [
        (GRPC_HANDLED, true),
        (GRPC_STARTED, true),
        (GRPC_MSG_RECEIVED, true),
        (GRPC_MSG_SENT, true),
        (GRPC_HANDLING, grpc_handling),
    ];
    let expected = http
        .into_iter()
        .map(|(family, wanted)| (family, wanted, max_series))
        .chain(
            grpc.into_iter()
                .map(|(family, wanted)| (family, wanted, series_cap(family, max_series))),
        );
    for (family, wanted, expected) in expected {
        if !wanted {
            continue;
        }
        let limit = limit_of(family)?;
        if limit != expected {
            return Err(BuildError::Setting {
                setting: "max_series",
                message: format!(
                    "`{}` already exists in the registry with a cap of {limit} series, not the \
                     {expected} that `max_series({max_series})` gives it: set the cap on the layer \
                     built first, or on the provider that replaces the family",
                    names.of(family)
                ),
            });
        }
    }
    Ok(())
}

/// Fails unless every family the layer records into carries the layer's constant
/// labels: a family that existed before (made by another layer, or declared by the
/// user) keeps the labels it was made with.
fn check_constant_labels<'a>(
    families: impl IntoIterator<Item = (&'static str, &'a ConstantLabels)>,
    names: &FamilyNames,
) -> Result<(), BuildError> {
    match families
        .into_iter()
        .find(|(_, constant)| *constant != names.constant())
    {
        Some((family, constant)) => Err(BuildError::Setting {
            setting: "constant_labels",
            message: format!(
                "`{}` already exists in the registry with the constant labels {:?}, not {:?}: \
                 give every layer of a registry the same constant labels, or a prefix of its own",
                names.of(family),
                constant.pairs(),
                names.constant().pairs()
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
    names: &FamilyNames,
    layout: HistogramLayout,
    grpc_handling: bool,
    time_to_headers: bool,
) -> Result<(), BuildError> {
    let http = |name| -> Result<_, BuildError> {
        let family = registry.get::<RequestDuration>(&names.of(name))?;
        Ok((name, family.unregistered(), Buckets::http_duration()))
    };
    let mut made = vec![http(REQUEST_DURATION)?];
    if time_to_headers {
        made.push(http(TIME_TO_HEADERS)?);
    }
    if grpc_handling {
        let family = registry.get::<GrpcHandling>(&names.of(GRPC_HANDLING))?;
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
            .field("optional", &self.optional)
            .field("prefix", &self.prefix)
            .field("constant_labels", &self.constant_labels)
            .field("extra", &self.extra)
            .field("grpc_labels", &self.grpc_labels)
            .field("native", &self.native)
            .field("classic_buckets", &self.classic_buckets)
            .finish()
    }
}
