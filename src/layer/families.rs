//! The default HTTP families, and the per-route series the layer records into.
//!
//! A request resolves its `(method, route)` once, at its start, to a [`RouteSeries`]
//! (a lock-free probe of a table that holds one entry per route seen). The route series
//! keeps its in-flight gauge and a few `(status, counter, histogram)` slots, so ending
//! the request touches no map: it scans a handful of slots for its status.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prometheus_client::registry::Unit;

use super::labels::{ActiveRequestLabels, HttpLabels};
use super::route::{KnownRoute, RouteIdentity};
use crate::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use crate::multiprocess::GaugeMode;
use crate::record::HttpMethod;
use crate::record::{
    shards, Latencies, Latency, ObjectiveFamilies, Objectives, SeriesCache, Shards,
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
/// Name of the in-flight requests gauge family.
pub const ACTIVE_REQUESTS: &str = "http_server_active_requests";

/// Type of [`REQUEST_DURATION`]: one histogram per method, status and route.
pub type RequestDuration = Family<HttpLabels, Histogram>;
/// Type of [`TIME_TO_HEADERS`]: one histogram per method, status and route.
pub type TimeToHeaders = Family<HttpLabels, Histogram>;
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

/// Status codes a route keeps at hand; rarer ones are looked up in the family.
const STATUS_SLOTS: usize = 8;

/// The HTTP families and the route table in front of them.
pub(crate) struct HttpFamilies {
    duration: RequestDuration,
    requests: RequestCount,
    /// Present when the layer records the time to the response headers.
    headers: Option<TimeToHeaders>,
    active: ActiveRequests,
    routes: SeriesCache<RouteKey, RouteSeries>,
    /// Direct-mapped cache in front of `routes`, by the address of the route's name.
    cache: Box<[OnceLock<CachedRoute>]>,
    latencies: Latencies<SloRouteLabels>,
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
}

impl HttpFamilies {
    /// Declares the default families in `registry` (unless the user declared those
    /// names first, to replace them), capped at `max_series` series each; the time to
    /// the headers only if `time_to_headers`.
    pub(crate) fn declare(
        registry: &MetricsRegistry,
        max_series: usize,
        time_to_headers: bool,
    ) -> Result<(), RegistryError> {
        let histograms = move || {
            RequestDuration::new_with_constructor(|| Histogram::new(Buckets::http_duration()))
                .max_series(max_series)
        };
        registry.provider_if_absent(
            REQUEST_DURATION,
            "Duration of HTTP server requests, until the response body ends.",
            Some(Unit::Seconds),
            histograms,
        )?;
        if time_to_headers {
            registry.provider_if_absent(
                TIME_TO_HEADERS,
                "Time from the start of HTTP server requests to their response headers.",
                Some(Unit::Seconds),
                histograms,
            )?;
        }
        registry.provider_if_absent(
            REQUESTS_TOTAL,
            "Number of HTTP server requests, counted when the response ends.",
            None,
            move || RequestCount::default().max_series(max_series),
        )?;
        registry.provider_if_absent(
            ACTIVE_REQUESTS,
            "Number of HTTP server requests in flight.",
            None,
            // In multi-process mode: the requests in flight in live processes.
            move || {
                ActiveRequests::new_with_constructor(|| Gauge::with_mode(GaugeMode::LiveSum))
                    .max_series(max_series)
            },
        )
    }

    /// The families of an initialised registry.
    pub(crate) fn from_registry(
        registry: &MetricsRegistry,
        objectives: &Objectives<SloRouteLabels>,
        time_to_headers: bool,
    ) -> Result<Self, RegistryError> {
        let active: ActiveRequests = registry.get(ACTIVE_REQUESTS)?;
        Ok(Self {
            duration: registry.get(REQUEST_DURATION)?,
            requests: registry.get(REQUESTS_TOTAL)?,
            headers: time_to_headers
                .then(|| registry.get(TIME_TO_HEADERS))
                .transpose()?,
            routes: SeriesCache::new(active.series_limit()),
            active,
            cache: (0..CACHE_SLOTS).map(|_| OnceLock::new()).collect(),
            latencies: objectives.latencies(registry)?,
        })
    }

    /// The latency objective of `route`: its threshold and its good-request counter.
    fn latency_objective(&self, route: &str) -> Option<Latency> {
        self.latencies.of(&route_target(route))
    }

    /// The series of `(method, route)` for this thread: found without a lock once it
    /// exists.
    pub(crate) fn route(&self, method: HttpMethod, route: &str) -> &Arc<RouteSeries> {
        self.route_shards(method, route).current()
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
        let series = self.route_shards(method, route.as_str());
        // Fills the slot if it is free; one another route holds stays as it is.
        slot.get_or_init(|| CachedRoute {
            method,
            route: route.identity(),
            series: Arc::clone(series),
        });
        series.current()
    }

    fn route_shards(&self, method: HttpMethod, route: &str) -> &RouteShards {
        let hash = self.routes.hash(&(method, route));
        let matches = |key: &RouteKey| key.method == method && *key.route == *route;
        if let Some(series) = self.routes.find(hash, matches) {
            return series;
        }
        let create = || {
            let route: Arc<str> = route.into();
            let active = self
                .active
                .lookup(&ActiveRequestLabels::new(method, Arc::clone(&route)));
            // The gauge family may be capped lower than the routes a user replaced it with.
            let series = if active.overflowed {
                Arc::clone(self.overflow_route())
            } else {
                let latency = self.latency_objective(&route);
                shards(|shard| RouteSeries {
                    target: StatusTarget::Route {
                        method,
                        route: Arc::clone(&route),
                        duration: self.duration.clone(),
                        requests: self.requests.clone(),
                        headers: self.headers.clone(),
                    },
                    active: active.metric.clone(),
                    statuses: Default::default(),
                    shard,
                    latency: latency.clone(),
                    records_headers: self.headers.is_some(),
                })
            };
            (RouteKey { method, route }, series)
        };
        self.routes
            .find_or_create(hash, matches, create, || self.new_overflow_route())
    }

    fn overflow_route(&self) -> &RouteShards {
        self.routes.overflow(|| self.new_overflow_route())
    }

    fn new_overflow_route(&self) -> RouteShards {
        let active = self.active.overflow_series();
        shards(|shard| RouteSeries {
            target: StatusTarget::Overflow {
                duration: self.duration.clone(),
                requests: self.requests.clone(),
                headers: self.headers.clone(),
            },
            active: active.clone(),
            statuses: Default::default(),
            shard,
            latency: None,
            records_headers: self.headers.is_some(),
        })
    }
}

/// What one `(method, route)` records into. Aligned to a cache line, so its
/// reference count shares no line with a neighbouring allocation.
#[repr(align(64))]
pub(crate) struct RouteSeries {
    target: StatusTarget,
    active: Gauge,
    statuses: [OnceLock<(u16, StatusSeries)>; STATUS_SLOTS],
    /// The shard this copy records into.
    shard: usize,
    /// The route's latency objective.
    latency: Option<Latency>,
    /// Whether the time to the response headers is recorded.
    records_headers: bool,
}

/// Where a route's per-status series come from.
enum StatusTarget {
    Route {
        method: HttpMethod,
        route: Arc<str>,
        duration: RequestDuration,
        requests: RequestCount,
        headers: Option<TimeToHeaders>,
    },
    /// Past the cardinality cap: everything goes to the families' overflow series.
    Overflow {
        duration: RequestDuration,
        requests: RequestCount,
        headers: Option<TimeToHeaders>,
    },
}

struct StatusSeries {
    duration: Histogram,
    requests: Counter,
    /// Created with the first headers of this status, so a status only unanswered
    /// requests end with (499) has no series of the time to the headers.
    headers: OnceLock<Option<Histogram>>,
}

impl RouteSeries {
    /// A request on this route started.
    pub(crate) fn start(&self) {
        self.active.add_in(self.shard, 1);
    }

    /// A request on this route ended with `status` after `elapsed`.
    pub(crate) fn finish(&self, status: u16, elapsed: Duration) {
        self.with_status(status, |series| self.record(series, elapsed));
        self.active.add_in(self.shard, -1);
    }

    /// The response headers of a request that started at `start` came with
    /// `status`: recorded if the layer records the time to the headers, and only
    /// then is the clock read.
    pub(crate) fn headers(&self, status: u16, start: Instant) {
        if self.records_headers {
            self.with_status(status, |series| {
                let headers = series.headers.get_or_init(|| self.headers_series(status));
                if let Some(headers) = headers {
                    headers.observe_in(self.shard, start.elapsed().as_secs_f64());
                }
            });
        }
    }

    /// Runs `f` on the series of `status`.
    fn with_status(&self, status: u16, f: impl FnOnce(&StatusSeries)) {
        match self.status_slot(status) {
            Some(series) => f(series),
            None => f(&self.lookup(status)),
        }
    }

    fn record(&self, series: &StatusSeries, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        series.duration.observe_in(self.shard, seconds);
        series.requests.inc_by_in(self.shard, 1);
        if let Some(latency) = &self.latency {
            latency.observe(self.shard, seconds);
        }
    }

    /// The series of `status` kept in a slot, claiming a free slot for it; `None`
    /// when other statuses hold every slot.
    fn status_slot(&self, status: u16) -> Option<&StatusSeries> {
        for slot in &self.statuses {
            let (code, series) = match slot.get() {
                Some(entry) => entry,
                None => slot.get_or_init(|| (status, self.lookup(status))),
            };
            // A slot claimed (perhaps concurrently) by another status: try the next.
            if *code == status {
                return Some(series);
            }
        }
        None
    }

    fn lookup(&self, status: u16) -> StatusSeries {
        match &self.target {
            StatusTarget::Route {
                method,
                route,
                duration,
                requests,
                ..
            } => {
                let labels = HttpLabels::new(*method, status, Arc::clone(route));
                StatusSeries {
                    duration: duration.get_or_create(&labels),
                    requests: requests.get_or_create(&labels),
                    headers: OnceLock::new(),
                }
            }
            StatusTarget::Overflow {
                duration, requests, ..
            } => StatusSeries {
                duration: duration.overflow_series(),
                requests: requests.overflow_series(),
                headers: OnceLock::new(),
            },
        }
    }

    /// The time-to-headers series of `status`, if the layer records it.
    fn headers_series(&self, status: u16) -> Option<Histogram> {
        match &self.target {
            StatusTarget::Route {
                method,
                route,
                headers,
                ..
            } => headers.as_ref().map(|family| {
                family.get_or_create(&HttpLabels::new(*method, status, Arc::clone(route)))
            }),
            StatusTarget::Overflow { headers, .. } => headers.as_ref().map(Family::overflow_series),
        }
    }
}
