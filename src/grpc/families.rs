//! The gRPC families, and the per-method series the layer records into.
//!
//! A call resolves its path once, at its start, to a [`MethodSeries`] (a lock-free
//! probe of a table with one entry per method seen) that holds the method's counters,
//! its histogram, and one lazily created `grpc_server_handled_total` series per code,
//! indexed by the code: ending a call touches no map.

use std::sync::{Arc, OnceLock};

use prometheus_client::registry::Unit;

use super::code::GrpcCode;
use super::labels::{GrpcHandledLabels, GrpcLabels, GrpcType};
use super::method::{service_and_method, MethodTypes};
use crate::layer::slo::{method_target, Objectives, SloMethodLabels, GRPC_SLO_LATENCY_GOOD};
use crate::layer::DEFAULT_FALLBACK_ROUTE;
use crate::metrics::shard::PerShard;
use crate::metrics::{Buckets, Counter, Family, Histogram, Table};
use crate::{MetricsRegistry, RegistryError};

/// Name of the family counting calls started.
pub const GRPC_STARTED: &str = "grpc_server_started_total";
/// Name of the family counting calls ended, by status code.
pub const GRPC_HANDLED: &str = "grpc_server_handled_total";
/// Name of the histogram of call durations, until the call ends.
pub const GRPC_HANDLING: &str = "grpc_server_handling_seconds";
/// Name of the family counting messages received from clients.
pub const GRPC_MSG_RECEIVED: &str = "grpc_server_msg_received_total";
/// Name of the family counting messages sent to clients.
pub const GRPC_MSG_SENT: &str = "grpc_server_msg_sent_total";

/// Type of [`GRPC_STARTED`], [`GRPC_MSG_RECEIVED`] and [`GRPC_MSG_SENT`].
pub type GrpcCount = Family<GrpcLabels, Counter>;
/// Type of [`GRPC_HANDLED`].
pub type GrpcHandledCount = Family<GrpcHandledLabels, Counter>;
/// Type of [`GRPC_HANDLING`].
pub type GrpcHandling = Family<GrpcLabels, Histogram>;

/// The gRPC families and the method table in front of them.
pub(crate) struct GrpcFamilies {
    started: GrpcCount,
    handled: GrpcHandledCount,
    handling: Option<GrpcHandling>,
    received: GrpcCount,
    sent: GrpcCount,
    types: MethodTypes,
    methods: Table<Arc<str>, MethodShards>,
    /// Calls to paths that do not name a method.
    other: OnceLock<MethodShards>,
    /// Methods past the cardinality cap.
    overflow: OnceLock<MethodShards>,
    objectives: Objectives,
    latency_good: Option<Family<SloMethodLabels, Counter>>,
}

/// One [`MethodSeries`] per shard (see [`PerShard`]): the reference counts calls take
/// on different threads sit on different cache lines.
type MethodShards = Arc<PerShard<MethodSeries>>;

/// Copies of `series` for every shard, each resolving its own per-code series.
fn per_shard(series: MethodSeries) -> MethodShards {
    Arc::new(PerShard::new(|_| MethodSeries {
        started: series.started.clone(),
        received: series.received.clone(),
        sent: series.sent.clone(),
        handling: series.handling.clone(),
        handled: series.handled.clone(),
        labels: series.labels.clone(),
        codes: Default::default(),
        latency: series.latency.clone(),
    }))
}

impl GrpcFamilies {
    /// Declares the gRPC families in `registry` (unless the user declared those names
    /// first, to replace them), capped at `max_series` series each; the histogram only
    /// if `handling` is set.
    pub(crate) fn declare(
        registry: &MetricsRegistry,
        max_series: usize,
        handling: bool,
    ) -> Result<(), RegistryError> {
        let counts = [
            (GRPC_STARTED, "Total number of RPCs started on the server."),
            (
                GRPC_MSG_RECEIVED,
                "Total number of RPC stream messages received on the server.",
            ),
            (
                GRPC_MSG_SENT,
                "Total number of gRPC stream messages sent by the server.",
            ),
        ];
        for (name, help) in counts {
            registry.provider_if_absent(name, help, None, move || {
                GrpcCount::default().max_series(max_series)
            })?;
        }
        registry.provider_if_absent(
            GRPC_HANDLED,
            "Total number of RPCs completed on the server, regardless of success or failure.",
            None,
            move || GrpcHandledCount::default().max_series(max_series),
        )?;
        if handling {
            registry.provider_if_absent(
                GRPC_HANDLING,
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                Some(Unit::Seconds),
                move || {
                    GrpcHandling::new_with_constructor(|| {
                        Histogram::new(Buckets::prometheus_default())
                    })
                    .max_series(max_series)
                },
            )?;
        }
        Ok(())
    }

    /// The families of an initialised registry.
    pub(crate) fn from_registry(
        registry: &MetricsRegistry,
        handling: bool,
        types: MethodTypes,
        objectives: Objectives,
    ) -> Result<Self, RegistryError> {
        let latency_good = match objectives.is_empty() {
            true => None,
            false => Some(registry.get(GRPC_SLO_LATENCY_GOOD)?),
        };
        Ok(Self {
            objectives,
            latency_good,
            started: registry.get(GRPC_STARTED)?,
            handled: registry.get(GRPC_HANDLED)?,
            handling: handling.then(|| registry.get(GRPC_HANDLING)).transpose()?,
            received: registry.get(GRPC_MSG_RECEIVED)?,
            sent: registry.get(GRPC_MSG_SENT)?,
            types,
            methods: Table::new(),
            other: OnceLock::new(),
            overflow: OnceLock::new(),
        })
    }

    /// This thread's series of the method at `path`: found without a lock once it
    /// exists.
    pub(crate) fn method(&self, path: &str) -> &Arc<MethodSeries> {
        self.method_shards(path).current()
    }

    fn method_shards(&self, path: &str) -> &MethodShards {
        let Some((service, method)) = service_and_method(path) else {
            return self.other.get_or_init(|| {
                let labels = GrpcLabels::new(
                    GrpcType::Unary,
                    DEFAULT_FALLBACK_ROUTE,
                    DEFAULT_FALLBACK_ROUTE,
                );
                self.series_or_overflow(labels)
            });
        };
        let hash = self.methods.hash(path);
        let matches = |key: &Arc<str>| **key == *path;
        if let Some(series) = self.methods.find(hash, matches) {
            return series;
        }
        let limit = self.started.series_limit();
        let created = self.methods.find_or_insert(hash, matches, |len| {
            if len >= limit {
                return None;
            }
            let labels = GrpcLabels::new(self.types.get(path), service, method);
            Some((path.into(), self.series_or_overflow(labels)))
        });
        created.unwrap_or_else(|| self.overflow())
    }

    /// The series of `labels`, or the overflow series when the started family is
    /// past its cap.
    fn series_or_overflow(&self, labels: GrpcLabels) -> MethodShards {
        let started = self.started.lookup(&labels);
        if started.overflowed {
            return Arc::clone(self.overflow());
        }
        let latency = self.latency_objective(&labels);
        per_shard(MethodSeries {
            latency,
            started: started.metric,
            received: self.received.get_or_create(&labels),
            sent: self.sent.get_or_create(&labels),
            handling: self.handling.as_ref().map(|h| h.get_or_create(&labels)),
            handled: self.handled.clone(),
            labels: Some(labels),
            codes: Default::default(),
        })
    }

    fn overflow(&self) -> &MethodShards {
        self.overflow.get_or_init(|| {
            per_shard(MethodSeries {
                started: self.started.overflow_series(),
                received: self.received.overflow_series(),
                sent: self.sent.overflow_series(),
                handling: self.handling.as_ref().map(Family::overflow_series),
                handled: self.handled.clone(),
                labels: None,
                codes: Default::default(),
                latency: None,
            })
        })
    }

    /// The latency objective of a method: its threshold in seconds and its counter of
    /// calls within it.
    fn latency_objective(&self, labels: &GrpcLabels) -> Option<(f64, Counter)> {
        let threshold = self
            .objectives
            .latency_threshold(&method_target(labels.service(), labels.method()))?;
        let good = self.latency_good.as_ref()?.get_or_create(&[
            ("grpc_service", labels.service().to_string()),
            ("grpc_method", labels.method().to_string()),
        ]);
        Some((threshold.as_secs_f64(), good))
    }
}

/// What the calls of one method record into. Aligned to a cache line, so the
/// reference count each call takes shares no line with the handles calls read.
#[repr(align(64))]
pub(crate) struct MethodSeries {
    started: Counter,
    pub(crate) received: Counter,
    pub(crate) sent: Counter,
    handling: Option<Histogram>,
    handled: GrpcHandledCount,
    /// `None` for the overflow series.
    labels: Option<GrpcLabels>,
    codes: [OnceLock<Counter>; GrpcCode::COUNT],
    /// The method's latency objective: threshold in seconds, and the counter of calls
    /// within it.
    latency: Option<(f64, Counter)>,
}

impl MethodSeries {
    /// A call of this method started.
    pub(crate) fn start(&self) {
        self.started.inc();
    }

    /// A call of this method ended with `code` after `seconds`.
    pub(crate) fn finish(&self, code: GrpcCode, seconds: f64) {
        if let Some(handling) = &self.handling {
            handling.observe(seconds);
        }
        self.handled(code).inc();
        if let Some((threshold, good)) = &self.latency {
            if seconds <= *threshold {
                good.inc();
            }
        }
    }

    fn handled(&self, code: GrpcCode) -> &Counter {
        self.codes[code as usize].get_or_init(|| match &self.labels {
            Some(labels) => self
                .handled
                .get_or_create(&GrpcHandledLabels::new(labels.clone(), code)),
            None => self.handled.overflow_series(),
        })
    }
}
