//! The default HTTP families, and the per-route series the layer records into.
//!
//! A request resolves its `(method, route)` once, at its start, to a [`RouteSeries`]
//! (a lock-free probe of a table that holds one entry per route seen). The route series
//! keeps its in-flight gauge and a few `(status, counter, histogram)` slots, so ending
//! the request touches no map: it scans a handful of slots for its status.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::registry::Unit;

use super::body_bytes::BodyBytes;
use super::extra::ExtraLabels;
use super::labels::{ActiveRequestLabels, HttpLabels};
use super::route::{KnownRoute, RouteIdentity};
use crate::metrics::{
    Buckets, ConstantLabels, Counter, ExemplarRef, Family, Gauge, Histogram, SeriesMetric,
};
use crate::multiprocess::GaugeMode;
use crate::record::{
    shards, FamilyNames, HistogramLayout, HttpMethod, LabelPair, Latencies, Latency,
    ObjectiveFamilies, Objectives, OutcomeSlots, SeriesCache, Shards, ValueIndices,
};
use crate::{MetricsRegistry, RegistryError};

/// Name of the request duration histogram family.
pub const REQUEST_DURATION: &str = "http_server_request_duration_seconds";
/// Name of the request counter family.
pub const REQUESTS_TOTAL: &str = "http_server_requests_total";
/// Name of the opt-in histogram of the time to the response headers.
///
/// OpenTelemetry's `http.server.request.duration` ends with the body; this one ends
/// when the handler yields the response head, named the same way with what it
/// measures in place of `request_duration`, in seconds.
pub const TIME_TO_HEADERS: &str = "http_server_time_to_headers_seconds";
/// Name of the opt-in histogram of request body sizes: OpenTelemetry's
/// `http.server.request.body.size` in its Prometheus form.
pub const REQUEST_BODY_SIZE: &str = "http_server_request_body_size_bytes";
/// Name of the opt-in histogram of response body sizes: OpenTelemetry's
/// `http.server.response.body.size` in its Prometheus form.
pub const RESPONSE_BODY_SIZE: &str = "http_server_response_body_size_bytes";
/// Name of the in-flight requests gauge family.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// Type of [`REQUEST_DURATION`]: one histogram per method, status and route.
pub type RequestDuration = Family<HttpLabels, Histogram>;
/// Type of [`TIME_TO_HEADERS`]: one histogram per method, status and route.
pub type TimeToHeaders = Family<HttpLabels, Histogram>;
/// Type of [`REQUEST_BODY_SIZE`] and [`RESPONSE_BODY_SIZE`]: one histogram of bytes
/// per method, status and route.
pub type BodySize = Family<HttpLabels, Histogram>;
/// Type of [`REQUESTS_TOTAL`]: one counter per method, status and route.
///
/// ```
/// use tower_prometheus::layer::{HttpLabels, HttpMethod, RequestCount, REQUESTS_TOTAL};
/// use tower_prometheus::{MetricsLayer, MetricsRegistry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = MetricsRegistry::new();
/// let _layer = MetricsLayer::new(&registry)?;
/// let requests = registry.get::<RequestCount>(REQUESTS_TOTAL)?;
/// let served = requests.get(&HttpLabels::new(HttpMethod::Get, 200, "/"));
/// assert!(served.is_none(), "no request yet");
/// # Ok(())
/// # }
/// ```
pub type RequestCount = Family<HttpLabels, Counter>;
/// Type of [`ACTIVE_REQUESTS`]: one gauge per method and route.
pub type ActiveRequests = Family<ActiveRequestLabels, Gauge>;

/// Name of the family of objective targets of HTTP routes.
pub const SLO_OBJECTIVE: &str = "http_server_slo_objective";
/// Name of the counter of requests within their route's latency threshold.
pub const SLO_LATENCY_GOOD: &str = "http_server_slo_latency_good";
/// Labels of [`SLO_LATENCY_GOOD`].
pub type SloRouteLabels = [(&'static str, String); 1];

/// The families HTTP routes' objectives are exported in.
pub(crate) static HTTP_OBJECTIVES: ObjectiveFamilies = ObjectiveFamilies {
    targets: SLO_OBJECTIVE,
    latency_good: SLO_LATENCY_GOOD,
    latency_good_help: "Requests that finished within their route's latency objective.",
};

/// The labels that name an HTTP route's objective.
pub(crate) fn route_target(route: &str) -> SloRouteLabels {
    [("http_route", route.to_string())]
}

/// The opt-in HTTP families a layer records.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OptionalFamilies {
    pub(crate) time_to_headers: bool,
    pub(crate) request_body_size: bool,
    pub(crate) response_body_size: bool,
}

/// The families a route's per-status series are found in.
#[derive(Clone)]
struct StatusFamilies {
    duration: RequestDuration,
    requests: RequestCount,
    /// Present when the layer records the time to the response headers.
    headers: Option<TimeToHeaders>,
    /// Present when the layer records request body sizes.
    request_size: Option<BodySize>,
    /// Present when the layer records response body sizes.
    response_size: Option<BodySize>,
}

/// The HTTP families and the route table in front of them.
pub(crate) struct HttpFamilies {
    families: StatusFamilies,
    active: ActiveRequests,
    routes: SeriesCache<RouteKey, RouteSeries>,
    /// Direct-mapped cache in front of `routes`, by the address of the route's name.
    cache: Box<[OnceLock<CachedRoute>]>,
    latencies: Latencies<SloRouteLabels>,
    /// The labels read from requests and responses.
    extra: Arc<ExtraLabels>,
}

/// A route's series, one per shard: shared by the route table and the route cache.
type RouteShards = Shards<RouteSeries>;

/// Slots of the route cache: a route whose slot another route holds is found by name.
const CACHE_SLOTS: usize = 128;

/// A route the cache holds (see [`HttpFamilies::known_route`]).
struct CachedRoute {
    method: HttpMethod,
    route: RouteIdentity,
    series: RouteShards,
}

#[derive(Clone)]
struct RouteKey {
    method: HttpMethod,
    route: Arc<str>,
    request: ValueIndices,
}

/// What a request ends with: its status, and the values of the labels read from its
/// response, packed in one word (a status is below 1024).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HttpOutcome(u64);

/// Bits of an outcome's status.
const STATUS_BITS: u32 = 10;

impl HttpOutcome {
    /// An outcome with no labels read from a response.
    pub(crate) fn status(status: u16) -> Self {
        Self::new(status, ValueIndices::default())
    }

    fn new(status: u16, response: ValueIndices) -> Self {
        Self(u64::from(status) & ((1 << STATUS_BITS) - 1) | response.bits() << STATUS_BITS)
    }

    fn code(self) -> u16 {
        (self.0 & ((1 << STATUS_BITS) - 1)) as u16
    }

    fn response(self) -> ValueIndices {
        ValueIndices::from_bits(self.0 >> STATUS_BITS)
    }
}

impl HttpFamilies {
    /// Declares the default families in `registry` (unless the user declared those
    /// names first, to replace them), named and labelled by `names`, capped at
    /// `max_series` series each, the duration histograms laid out as `layout` says; of
    /// the opt-in ones, those in `optional`.
    pub(crate) fn declare(
        registry: &MetricsRegistry,
        names: &FamilyNames,
        max_series: usize,
        optional: OptionalFamilies,
        layout: HistogramLayout,
    ) -> Result<(), RegistryError> {
        let constant = names.constant();
        // Durations take the layer's layout; body sizes keep classic buckets.
        let histograms = |buckets: fn() -> Buckets, layout: HistogramLayout| {
            let constant = constant.clone();
            move || {
                RequestDuration::new_with_constructor(move || layout.histogram(&buckets()))
                    .max_series(max_series)
                    .fixed_order()
                    .constant_labels(constant)
            }
        };
        let declare_histogram =
            |family: &str, help: &str, unit: Unit, buckets: fn() -> Buckets, layout| {
                let histograms = histograms(buckets, layout);
                registry.provider_if_absent(&names.of(family), help, Some(unit), histograms)
            };
        declare_histogram(
            REQUEST_DURATION,
            "Duration of HTTP server requests, until the response body ends.",
            Unit::Seconds,
            Buckets::http_duration,
            layout,
        )?;
        if optional.time_to_headers {
            declare_histogram(
                TIME_TO_HEADERS,
                "Time from the start of HTTP server requests to their response headers.",
                Unit::Seconds,
                Buckets::http_duration,
                layout,
            )?;
        }
        if optional.request_body_size {
            declare_histogram(
                REQUEST_BODY_SIZE,
                "Size of HTTP server request bodies: the bytes the service read.",
                Unit::Bytes,
                Buckets::body_size,
                HistogramLayout::default(),
            )?;
        }
        if optional.response_body_size {
            declare_histogram(
                RESPONSE_BODY_SIZE,
                "Size of HTTP server response bodies: the bytes sent.",
                Unit::Bytes,
                Buckets::body_size,
                HistogramLayout::default(),
            )?;
        }
        let requests_constant = constant.clone();
        registry.provider_if_absent(
            &names.of(REQUESTS_TOTAL),
            "Number of HTTP server requests, counted when the response ends.",
            None,
            move || {
                RequestCount::default()
                    .max_series(max_series)
                    .fixed_order()
                    .constant_labels(requests_constant)
            },
        )?;
        let active_constant = constant.clone();
        registry.provider_if_absent(
            &names.of(ACTIVE_REQUESTS),
            "Number of HTTP server requests in flight.",
            None,
            // In multi-process mode: the requests in flight in live processes.
            move || {
                ActiveRequests::new_with_constructor(|| Gauge::with_mode(GaugeMode::LiveSum))
                    .max_series(max_series)
                    .fixed_order()
                    .constant_labels(active_constant)
            },
        )
    }

    /// The families of an initialised registry.
    pub(crate) fn from_registry(
        registry: &MetricsRegistry,
        names: &FamilyNames,
        objectives: &Objectives<SloRouteLabels>,
        optional: OptionalFamilies,
        extra: ExtraLabels,
    ) -> Result<Self, RegistryError> {
        let get_if = |wanted: bool, family| {
            wanted
                .then(|| registry.get::<Family<HttpLabels, Histogram>>(&names.of(family)))
                .transpose()
        };
        let active: ActiveRequests = registry.get(&names.of(ACTIVE_REQUESTS))?;
        Ok(Self {
            families: StatusFamilies {
                duration: registry.get(&names.of(REQUEST_DURATION))?,
                requests: registry.get(&names.of(REQUESTS_TOTAL))?,
                headers: get_if(optional.time_to_headers, TIME_TO_HEADERS)?,
                request_size: get_if(optional.request_body_size, REQUEST_BODY_SIZE)?,
                response_size: get_if(optional.response_body_size, RESPONSE_BODY_SIZE)?,
            },
            routes: SeriesCache::new(active.series_limit()),
            active,
            cache: (0..CACHE_SLOTS).map(|_| OnceLock::new()).collect(),
            latencies: objectives.latencies(registry, names)?,
            extra: Arc::new(extra),
        })
    }

    /// The labels read from requests and responses.
    pub(crate) fn extra_labels(&self) -> &ExtraLabels {
        &self.extra
    }

    /// The constant labels of each family the layer records into, by name.
    pub(crate) fn constant_labels(&self) -> Vec<(&'static str, &ConstantLabels)> {
        let StatusFamilies {
            duration,
            requests,
            headers,
            request_size,
            response_size,
        } = &self.families;
        let optional = [
            (TIME_TO_HEADERS, headers),
            (REQUEST_BODY_SIZE, request_size),
            (RESPONSE_BODY_SIZE, response_size),
        ];
        [
            (REQUEST_DURATION, duration.constant()),
            (REQUESTS_TOTAL, requests.constant()),
            (ACTIVE_REQUESTS, self.active.constant()),
        ]
        .into_iter()
        .chain(
            optional.into_iter().filter_map(|(name, family)| {
                family.as_ref().map(|family| (name, family.constant()))
            }),
        )
        .collect()
    }

    /// The latency objective of `route`: its threshold and its good-request counter.
    fn latency_objective(&self, route: &str) -> Option<Latency> {
        self.latencies.of(&route_target(route))
    }

    /// The series of `(method, route)` and the values of the request's labels, for
    /// this thread: found without a lock once it exists.
    pub(crate) fn route(
        &self,
        method: HttpMethod,
        route: &str,
        request: ValueIndices,
    ) -> &Arc<RouteSeries> {
        self.route_shards(method, route, request).current()
    }

    /// The series of `(method, route)` for this thread, found in the route cache when
    /// that route is there: without hashing or comparing its name.
    pub(crate) fn known_route(
        &self,
        method: HttpMethod,
        route: KnownRoute<'_>,
    ) -> &Arc<RouteSeries> {
        let slot = &self.cache[route.slot(method, self.cache.len())];
        if let Some(cached) = slot.get() {
            if cached.method == method && route.is(&cached.route) {
                return cached.series.current();
            }
        }
        let series = self.route_shards(method, route.as_str(), ValueIndices::default());
        // Fills the slot if it is free; one another route holds stays as it is.
        slot.get_or_init(|| CachedRoute {
            method,
            route: route.identity(),
            series: Arc::clone(series),
        });
        series.current()
    }

    fn route_shards(&self, method: HttpMethod, route: &str, request: ValueIndices) -> &RouteShards {
        let hash = self.routes.hash(&(method, route, request));
        let matches =
            |key: &RouteKey| key.method == method && key.request == request && *key.route == *route;
        if let Some(series) = self.routes.find(hash, matches) {
            return series;
        }
        let create = || {
            let route: Arc<str> = route.into();
            let request_labels = self.extra.request_pairs(request);
            let active = self.active.lookup(
                &ActiveRequestLabels::new(method, Arc::clone(&route))
                    .with_labels(request_labels.clone()),
            );
            // The gauge family may be capped lower than the routes a user replaced it with.
            let series = if active.overflowed {
                Arc::clone(self.overflow_route())
            } else {
                let latency = self.latency_objective(&route);
                shards(|shard| {
                    self.route_series(
                        StatusTarget::Route {
                            method,
                            route: Arc::clone(&route),
                            request_labels: request_labels.clone(),
                        },
                        active.metric.clone(),
                        shard,
                        latency.clone(),
                    )
                })
            };
            let key = RouteKey {
                method,
                route,
                request,
            };
            (key, series)
        };
        self.routes
            .find_or_create(hash, matches, create, || self.new_overflow_route())
    }

    fn overflow_route(&self) -> &RouteShards {
        self.routes.overflow(|| self.new_overflow_route())
    }

    fn new_overflow_route(&self) -> RouteShards {
        let active = self.active.overflow_series();
        shards(|shard| self.route_series(StatusTarget::Overflow, active.clone(), shard, None))
    }

    fn route_series(
        &self,
        target: StatusTarget,
        active: Gauge,
        shard: usize,
        latency: Option<Latency>,
    ) -> RouteSeries {
        let families = &self.families;
        RouteSeries {
            target,
            families: families.clone(),
            active,
            statuses: Default::default(),
            shard,
            latency,
            records_headers: families.headers.is_some(),
            records_sizes: families.request_size.is_some() || families.response_size.is_some(),
            extra: Arc::clone(&self.extra),
        }
    }
}

/// What one `(method, route)` records into. Aligned to a cache line, so its
/// reference count shares no line with a neighbouring allocation.
#[repr(align(64))]
pub(crate) struct RouteSeries {
    target: StatusTarget,
    families: StatusFamilies,
    active: Gauge,
    statuses: OutcomeSlots<HttpOutcome, StatusSeries>,
    /// The shard this copy records into.
    shard: usize,
    /// The route's latency objective.
    latency: Option<Latency>,
    /// Whether the time to the response headers is recorded.
    records_headers: bool,
    /// Whether a body size is recorded.
    records_sizes: bool,
    /// The labels read from responses, whose values key the per-status series.
    extra: Arc<ExtraLabels>,
}

/// Which series of the families a route's statuses record into.
enum StatusTarget {
    Route {
        method: HttpMethod,
        route: Arc<str>,
        /// The labels read from the request, names and values.
        request_labels: Vec<LabelPair>,
    },
    /// Past the cardinality cap: everything goes to the families' overflow series.
    Overflow,
}

struct StatusSeries {
    duration: Histogram,
    requests: Counter,
    request_size: Option<Histogram>,
    response_size: Option<Histogram>,
    /// Created with the first headers of this status, so a status only unanswered
    /// requests end with (499) has no series of the time to the headers.
    headers: OnceLock<Option<Histogram>>,
}

impl RouteSeries {
    /// A request on this route started.
    #[inline]
    pub(crate) fn start(&self) {
        self.active.add_in(self.shard, 1);
    }

    /// A request on this route ended with `outcome` after `elapsed`, its bodies having
    /// carried `bytes` when the layer records their sizes.
    pub(crate) fn finish(
        &self,
        outcome: HttpOutcome,
        elapsed: Duration,
        bytes: Option<&BodyBytes>,
        exemplar: Option<ExemplarRef<'_>>,
    ) {
        self.with_status(outcome, |series| {
            self.record(series, elapsed, exemplar);
            if let Some(bytes) = bytes {
                self.record_sizes(series, bytes);
            }
        });
        self.active.add_in(self.shard, -1);
    }

    /// The outcome of `response`: its status, and the values of the labels the
    /// layer reads from responses.
    #[inline]
    pub(crate) fn outcome<B>(&self, response: &mut http::Response<B>) -> HttpOutcome {
        let status = response.status().as_u16();
        if !self.extra.reads_responses() {
            return HttpOutcome::status(status);
        }
        HttpOutcome::new(status, self.extra.response_values(response))
    }

    /// Whether requests on this route count the bytes of their bodies.
    #[inline]
    pub(crate) fn records_sizes(&self) -> bool {
        self.records_sizes
    }

    fn record_sizes(&self, series: &StatusSeries, bytes: &BodyBytes) {
        if let (Some(histogram), Some(request)) = (&series.request_size, &bytes.request) {
            histogram.observe_in(self.shard, request.get() as f64);
        }
        if let Some(histogram) = &series.response_size {
            histogram.observe_in(self.shard, bytes.response as f64);
        }
    }

    /// The response headers of a request that started at `start` came with
    /// `outcome`: recorded if the layer records the time to the headers, and only
    /// then is the clock read.
    #[inline]
    pub(crate) fn headers(&self, outcome: HttpOutcome, start: Instant) {
        if self.records_headers {
            self.record_headers(outcome, start);
        }
    }

    fn record_headers(&self, outcome: HttpOutcome, start: Instant) {
        self.with_status(outcome, |series| {
            let headers = series.headers.get_or_init(|| self.headers_series(outcome));
            if let Some(headers) = headers {
                headers.observe_in(self.shard, start.elapsed().as_secs_f64());
            }
        });
    }

    /// Runs `f` on the series of `outcome`.
    fn with_status(&self, outcome: HttpOutcome, f: impl FnOnce(&StatusSeries)) {
        match self.statuses.get(outcome, |outcome| self.lookup(outcome)) {
            Some(series) => f(series),
            None => f(&self.lookup(outcome)),
        }
    }

    fn record(&self, series: &StatusSeries, elapsed: Duration, exemplar: Option<ExemplarRef<'_>>) {
        let seconds = elapsed.as_secs_f64();
        let shard = self.shard;
        series
            .duration
            .observe_with_exemplar_in(shard, seconds, exemplar);
        series.requests.inc_by_with_exemplar_in(shard, 1, exemplar);
        if let Some(latency) = &self.latency {
            latency.observe(self.shard, seconds);
        }
    }

    fn lookup(&self, outcome: HttpOutcome) -> StatusSeries {
        let families = &self.families;
        StatusSeries {
            duration: self.series_of(&families.duration, outcome),
            requests: self.series_of(&families.requests, outcome),
            request_size: self.optional_series(families.request_size.as_ref(), outcome),
            response_size: self.optional_series(families.response_size.as_ref(), outcome),
            headers: OnceLock::new(),
        }
    }

    /// The series of `outcome` in `family`.
    fn series_of<M: SeriesMetric>(
        &self,
        family: &Family<HttpLabels, M>,
        outcome: HttpOutcome,
    ) -> M {
        match &self.target {
            StatusTarget::Route {
                method,
                route,
                request_labels,
            } => {
                let labels = HttpLabels::new(*method, outcome.code(), Arc::clone(route));
                if request_labels.is_empty() && !self.extra.reads_responses() {
                    return family.get_or_create(&labels);
                }
                let mut pairs = request_labels.clone();
                pairs.extend(self.extra.response_pairs(outcome.response()));
                family.get_or_create(&labels.with_labels(pairs))
            }
            StatusTarget::Overflow => family.overflow_series(),
        }
    }

    fn optional_series(
        &self,
        family: Option<&BodySize>,
        outcome: HttpOutcome,
    ) -> Option<Histogram> {
        family.map(|family| self.series_of(family, outcome))
    }

    /// The time-to-headers series of `outcome`, if the layer records it.
    fn headers_series(&self, outcome: HttpOutcome) -> Option<Histogram> {
        self.optional_series(self.families.headers.as_ref(), outcome)
    }
}
