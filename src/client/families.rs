//! The HTTP client families, and the per-server series the client layer records into.
//!
//! A request resolves its `(method, server_address, server_port)` once, at its start,
//! to a [`ServerSeries`] (a lock-free probe once the server has been called); the
//! series keeps its in-flight gauge and a few `(outcome, counter, histogram)` slots,
//! so ending the request touches no map.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Unit;

use super::labels::{ClientOutcome, HttpClientLabels, ServerLabels};
use crate::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use crate::multiprocess::GaugeMode;
use crate::record::{shards, HttpMethod, OutcomeSlots, SeriesCache, Shards};
use crate::{MetricsRegistry, RegistryError};

/// Name of the outgoing request duration histogram family.
pub const CLIENT_REQUEST_DURATION: &str = "http_client_request_duration_seconds";
/// Name of the outgoing request counter family.
pub const CLIENT_REQUESTS_TOTAL: &str = "http_client_requests_total";
/// Name of the outgoing requests in flight gauge family.
pub const CLIENT_ACTIVE_REQUESTS: &str = "http_client_active_requests";

/// Type of [`CLIENT_REQUEST_DURATION`]: one histogram per server, method and outcome.
pub type ClientRequestDuration = Family<HttpClientLabels, Histogram>;
/// Type of [`CLIENT_REQUESTS_TOTAL`]: one counter per server, method and outcome.
pub type ClientRequestCount = Family<HttpClientLabels, Counter>;
/// Type of [`CLIENT_ACTIVE_REQUESTS`]: one gauge per server and method.
pub type ClientActiveRequests = Family<ServerLabels, Gauge>;

/// The HTTP client families and the server table in front of them.
pub(crate) struct HttpClientFamilies {
    duration: ClientRequestDuration,
    requests: ClientRequestCount,
    active: ClientActiveRequests,
    servers: SeriesCache<ServerLabels, ServerSeries>,
}

impl HttpClientFamilies {
    /// Declares the families in `registry` (unless declared first, to replace them),
    /// capped at `max_series` series each.
    pub(crate) fn declare(
        registry: &MetricsRegistry,
        max_series: usize,
    ) -> Result<(), RegistryError> {
        registry.provider_if_absent(
            CLIENT_REQUEST_DURATION,
            "Duration of HTTP client requests, until the response body ends.",
            Some(Unit::Seconds),
            move || {
                ClientRequestDuration::new_with_constructor(|| {
                    Histogram::new(Buckets::http_duration())
                })
                .max_series(max_series)
                .fixed_order()
            },
        )?;
        registry.provider_if_absent(
            CLIENT_REQUESTS_TOTAL,
            "Number of HTTP client requests, counted when the response ends.",
            None,
            move || {
                ClientRequestCount::default()
                    .max_series(max_series)
                    .fixed_order()
            },
        )?;
        registry.provider_if_absent(
            CLIENT_ACTIVE_REQUESTS,
            "Number of HTTP client requests in flight.",
            None,
            move || {
                ClientActiveRequests::new_with_constructor(|| Gauge::with_mode(GaugeMode::LiveSum))
                    .max_series(max_series)
                    .fixed_order()
            },
        )
    }

    /// The families of an initialised registry.
    pub(crate) fn from_registry(registry: &MetricsRegistry) -> Result<Self, RegistryError> {
        let active: ClientActiveRequests = registry.get(CLIENT_ACTIVE_REQUESTS)?;
        Ok(Self {
            duration: registry.get(CLIENT_REQUEST_DURATION)?,
            requests: registry.get(CLIENT_REQUESTS_TOTAL)?,
            servers: SeriesCache::new(active.series_limit()),
            active,
        })
    }

    /// The series cap of the families.
    pub(crate) fn series_limit(&self) -> usize {
        self.active.series_limit()
    }

    /// This thread's series of `method` sent to `address:port`: found without a lock
    /// once it exists.
    pub(crate) fn server(
        &self,
        method: HttpMethod,
        address: &str,
        port: Option<u16>,
    ) -> &Arc<ServerSeries> {
        let hash = self.servers.hash(&(method, address, port));
        let matches = |key: &ServerLabels| {
            key.method() == method && key.address() == address && key.port() == port
        };
        if let Some(series) = self.servers.find(hash, matches) {
            return series.current();
        }
        let create = || {
            let labels = ServerLabels::new(method, address, port);
            let active = self.active.lookup(&labels);
            let target = if active.overflowed {
                None
            } else {
                Some(labels.clone())
            };
            (labels, self.series(target, active.metric))
        };
        self.servers
            .find_or_create(hash, matches, create, || {
                self.series(None, self.active.overflow_series())
            })
            .current()
    }

    /// The series of `server` (`None`: the overflow series).
    fn series(&self, server: Option<ServerLabels>, active: Gauge) -> Shards<ServerSeries> {
        shards(|shard| ServerSeries {
            server: server.clone(),
            duration: self.duration.clone(),
            requests: self.requests.clone(),
            active: active.clone(),
            outcomes: Default::default(),
            shard,
        })
    }
}

/// What one `(method, server_address, server_port)` records into. Aligned to a cache
/// line, so its reference count shares no line with a neighbouring allocation.
#[repr(align(64))]
pub(crate) struct ServerSeries {
    /// `None` past the cap: everything goes to the families' overflow series.
    server: Option<ServerLabels>,
    duration: ClientRequestDuration,
    requests: ClientRequestCount,
    active: Gauge,
    outcomes: OutcomeSlots<ClientOutcome, OutcomeSeries>,
    /// The shard this copy records into.
    shard: usize,
}

struct OutcomeSeries {
    duration: Histogram,
    requests: Counter,
}

impl ServerSeries {
    /// A request to this server started.
    pub(crate) fn start(&self) {
        self.active.add_in(self.shard, 1);
    }

    /// A request to this server ended with `outcome` after `elapsed`.
    pub(crate) fn finish(&self, outcome: ClientOutcome, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let record = |series: &OutcomeSeries| {
            series.duration.observe_in(self.shard, seconds);
            series.requests.inc_by_in(self.shard, 1);
        };
        match self.outcomes.get(outcome, |outcome| self.lookup(outcome)) {
            Some(series) => record(series),
            None => record(&self.lookup(outcome)),
        }
        self.active.add_in(self.shard, -1);
    }

    fn lookup(&self, outcome: ClientOutcome) -> OutcomeSeries {
        match &self.server {
            Some(server) => {
                let labels = HttpClientLabels::new(server.clone(), outcome);
                OutcomeSeries {
                    duration: self.duration.get_or_create(&labels),
                    requests: self.requests.get_or_create(&labels),
                }
            }
            None => OutcomeSeries {
                duration: self.duration.overflow_series(),
                requests: self.requests.overflow_series(),
            },
        }
    }
}
