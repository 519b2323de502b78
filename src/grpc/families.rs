//! The gRPC families, and the per-method series the layer records into.
//!
//! A call resolves its path once to a [`MethodSeries`] (a lock-free probe of a table
//! with one entry per method served) that holds the method's counters, its histogram,
//! and one lazily created `grpc_server_handled_total` series per code, indexed by the
//! code: ending a call touches no map. A path the server has not served yet is
//! resolved when the server answers, so an invented method gets no series.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::registry::Unit;

use super::code::GrpcCode;
use super::labels::{GrpcHandledLabels, GrpcLabels, GrpcType};
use super::method::{service_and_method, MethodTypes};
use crate::metrics::{Buckets, ConstantLabels, Counter, ExemplarRef, Family, Histogram};
use crate::record::{
    shards, FamilyNames, HistogramLayout, Latencies, Latency, ObjectiveFamilies, Objectives,
    ReadLabels, RequestLabelFn, SeriesCache, Shards, ValueIndices, DEFAULT_FALLBACK_ROUTE,
};
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

/// Name of the family of objective targets of gRPC methods.
pub const GRPC_SLO_OBJECTIVE: &str = "grpc_server_slo_objective";
/// Name of the counter of calls within their method's latency threshold.
pub const GRPC_SLO_LATENCY_GOOD: &str = "grpc_server_slo_latency_good";
/// Labels of [`GRPC_SLO_LATENCY_GOOD`]: `grpc_service` and `grpc_method`.
pub type SloMethodLabels = [(&'static str, String); 2];

/// The families gRPC methods' objectives are exported in.
pub(crate) static GRPC_OBJECTIVES: ObjectiveFamilies = ObjectiveFamilies {
    targets: GRPC_SLO_OBJECTIVE,
    latency_good: GRPC_SLO_LATENCY_GOOD,
    latency_good_help: "Calls that finished within their method's latency objective.",
};

/// The labels that name a gRPC method's objective.
pub(crate) fn method_target(service: &str, method: &str) -> SloMethodLabels {
    [
        ("grpc_service", service.to_string()),
        ("grpc_method", method.to_string()),
    ]
}

/// The gRPC families and the method table in front of them.
pub(crate) struct GrpcFamilies {
    started: GrpcCount,
    handled: GrpcHandledCount,
    handling: Option<GrpcHandling>,
    received: GrpcCount,
    sent: GrpcCount,
    types: MethodTypes,
    /// Methods the server has served (or that were declared), by path and the values
    /// of the labels read from calls: only these have series; past the cap, the
    /// overflow series.
    methods: SeriesCache<MethodKey, MethodSeries>,
    /// Calls to paths that name no served method: answered `Unimplemented`, ended by
    /// the client before any answer, or of another shape. Their labels read from
    /// calls are empty, so such calls cannot spend series either.
    other: OnceLock<MethodShards>,
    latencies: Latencies<SloMethodLabels>,
    /// The labels read from each call's metadata.
    labels: ReadLabels<RequestLabelFn>,
}

/// What a call's series are found by: its path, and the values of its labels.
#[derive(Clone)]
struct MethodKey {
    path: Arc<str>,
    values: ValueIndices,
}

/// A method's series, one per shard.
type MethodShards = Shards<MethodSeries>;

/// Series a family holds beside its methods' own: `_OTHER` and the overflow series.
const SHARED_SERIES: usize = 2;

/// The series cap of the gRPC family `family` sized for `max_methods` methods: each
/// method, `_OTHER` and the overflow series, times each code in
/// `grpc_server_handled_total`.
pub(crate) fn series_cap(family: &str, max_methods: usize) -> usize {
    let per_code = max_methods.saturating_add(SHARED_SERIES);
    match family {
        GRPC_HANDLED => per_code.saturating_mul(GrpcCode::COUNT),
        _ => per_code,
    }
}

/// How many methods a gRPC family other than `grpc_server_handled_total` with the
/// series cap `cap` was sized for.
pub(crate) fn methods_within(cap: usize) -> usize {
    cap.saturating_sub(SHARED_SERIES)
}

impl GrpcFamilies {
    /// Declares the gRPC families in `registry` (unless the user declared those names
    /// first, to replace them), named and labelled by `names`, sized for
    /// `max_methods` methods (each code of each in `grpc_server_handled_total`); the
    /// histogram only if `handling` is set, laid out as `layout` says.
    pub(crate) fn declare(
        registry: &MetricsRegistry,
        names: &FamilyNames,
        max_methods: usize,
        handling: bool,
        layout: HistogramLayout,
    ) -> Result<(), RegistryError> {
        let max_series = series_cap(GRPC_STARTED, max_methods);
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
            let constant = names.constant().clone();
            registry.provider_if_absent(&names.of(name), help, None, move || {
                GrpcCount::default()
                    .max_series(max_series)
                    .fixed_order()
                    .constant_labels(constant)
            })?;
        }
        let constant = names.constant().clone();
        registry.provider_if_absent(
            &names.of(GRPC_HANDLED),
            "Total number of RPCs completed on the server, regardless of success or failure.",
            None,
            move || {
                GrpcHandledCount::default()
                    .max_series(series_cap(GRPC_HANDLED, max_methods))
                    .fixed_order()
                    .constant_labels(constant)
            },
        )?;
        if handling {
            let constant = names.constant().clone();
            registry.provider_if_absent(
                &names.of(GRPC_HANDLING),
                "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                Some(Unit::Seconds),
                move || {
                    let classic = Buckets::prometheus_default();
                    GrpcHandling::new_with_constructor(move || layout.histogram(&classic))
                        .max_series(max_series).fixed_order()
                        .constant_labels(constant)
                },
            )?;
        }
        Ok(())
    }

    /// The families of an initialised registry, with the series of every declared
    /// method created at zero, as go-grpc-prometheus's `InitializeMetrics` does, so
    /// `rate()` sees a method's first error.
    pub(crate) fn from_registry(
        registry: &MetricsRegistry,
        names: &FamilyNames,
        handling: bool,
        types: MethodTypes,
        objectives: &Objectives<SloMethodLabels>,
        max_methods: usize,
        labels: ReadLabels<RequestLabelFn>,
    ) -> Result<Self, RegistryError> {
        let families = Self {
            latencies: objectives.latencies(registry, names)?,
            started: registry.get(&names.of(GRPC_STARTED))?,
            handled: registry.get(&names.of(GRPC_HANDLED))?,
            handling: handling
                .then(|| registry.get(&names.of(GRPC_HANDLING)))
                .transpose()?,
            received: registry.get(&names.of(GRPC_MSG_RECEIVED))?,
            sent: registry.get(&names.of(GRPC_MSG_SENT))?,
            types,
            methods: SeriesCache::new(max_methods),
            other: OnceLock::new(),
            labels,
        };
        for (path, grpc_type) in families.types.iter() {
            let Some((service, method)) = service_and_method(path) else {
                continue;
            };
            // Declared methods' series are made with the labels read from calls empty.
            let values = ValueIndices::default();
            let labels = families.labelled(GrpcLabels::new(grpc_type, service, method), values);
            let declared = families.methods.declare(
                families.key_hash(path, values),
                |key| key.matches(path, values),
                || (MethodKey::new(path, values), families.method_series(labels)),
            );
            if let Some(series) = declared {
                for code in GrpcCode::ALL {
                    series.current().handled(code);
                }
            }
        }
        Ok(families)
    }

    /// The constant labels of each family the layer records into, by name.
    pub(crate) fn constant_labels(&self) -> Vec<(&'static str, &ConstantLabels)> {
        let counts = [
            (GRPC_STARTED, &self.started),
            (GRPC_MSG_RECEIVED, &self.received),
            (GRPC_MSG_SENT, &self.sent),
        ];
        counts
            .into_iter()
            .map(|(name, family)| (name, family.constant()))
            .chain([(GRPC_HANDLED, self.handled.constant())])
            .chain(
                self.handling
                    .as_ref()
                    .map(|handling| (GRPC_HANDLING, handling.constant())),
            )
            .collect()
    }

    /// The labels read from each call's metadata.
    pub(crate) fn request_labels(&self) -> &ReadLabels<RequestLabelFn> {
        &self.labels
    }

    /// This thread's series of the method at `path` with the label values `values`,
    /// if the server has served it so (or it was declared): found without a lock.
    pub(crate) fn served(&self, path: &str, values: ValueIndices) -> Option<&Arc<MethodSeries>> {
        self.methods
            .find(self.key_hash(path, values), |key| key.matches(path, values))
            .map(|series| series.current())
    }

    fn key_hash(&self, path: &str, values: ValueIndices) -> u64 {
        self.methods.hash(&(path, values))
    }

    /// `labels` with the labels read from calls, of `values`.
    fn labelled(&self, labels: GrpcLabels, values: ValueIndices) -> GrpcLabels {
        if self.labels.is_empty() {
            return labels;
        }
        labels.with_labels(self.labels.pairs(values))
    }

    /// This thread's series of a call to `path`, once its outcome is known: `served`
    /// when the server answered it with another code than `Unimplemented`, or failed
    /// it. Only a served call gives a new method series, so a client cannot spend the
    /// cap on methods the server does not have.
    pub(crate) fn resolve(
        &self,
        path: &str,
        values: ValueIndices,
        served: bool,
    ) -> &Arc<MethodSeries> {
        if let Some(series) = self.served(path, values) {
            return series;
        }
        let shards = match service_and_method(path) {
            Some((service, method)) if served => self.insert(path, values, service, method),
            _ => self.other.get_or_init(|| {
                let labels = GrpcLabels::new(
                    GrpcType::Unary,
                    DEFAULT_FALLBACK_ROUTE,
                    DEFAULT_FALLBACK_ROUTE,
                );
                self.method_series(self.labelled(labels, ValueIndices::default()))
            }),
        };
        shards.current()
    }

    fn insert(
        &self,
        path: &str,
        values: ValueIndices,
        service: &str,
        method: &str,
    ) -> &MethodShards {
        self.methods.find_or_create(
            self.key_hash(path, values),
            |key| key.matches(path, values),
            || {
                let labels = GrpcLabels::new(self.types.get(path), service, method);
                let labels = self.labelled(labels, values);
                (MethodKey::new(path, values), self.method_series(labels))
            },
            || self.method_series(GrpcLabels::overflow()),
        )
    }

    /// The series of `labels` in every family, each shard's copy resolving its own
    /// per-code series.
    fn method_series(&self, labels: GrpcLabels) -> MethodShards {
        let latency = self.latency_objective(&labels);
        let started = self.started.get_or_create(&labels);
        let received = self.received.get_or_create(&labels);
        let sent = self.sent.get_or_create(&labels);
        let handling = self.handling.as_ref().map(|h| h.get_or_create(&labels));
        shards(|shard| MethodSeries {
            started: started.clone(),
            received: received.clone(),
            sent: sent.clone(),
            handling: handling.clone(),
            handled: self.handled.clone(),
            labels: labels.clone(),
            codes: Default::default(),
            shard,
            latency: latency.clone(),
        })
    }

    /// The latency objective of a method.
    fn latency_objective(&self, labels: &GrpcLabels) -> Option<Latency> {
        if labels.is_overflow() {
            return None;
        }
        self.latencies
            .of(&method_target(labels.service(), labels.method()))
    }
}

impl MethodKey {
    fn new(path: &str, values: ValueIndices) -> Self {
        Self {
            path: path.into(),
            values,
        }
    }

    fn matches(&self, path: &str, values: ValueIndices) -> bool {
        self.values == values && *self.path == *path
    }
}

/// What the calls of one method record into. Aligned to a cache line, so the
/// reference count each call takes shares no line with the handles calls read.
#[repr(align(64))]
pub(crate) struct MethodSeries {
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: Option<Histogram>,
    handled: GrpcHandledCount,
    labels: GrpcLabels,
    codes: [OnceLock<Counter>; GrpcCode::COUNT],
    /// The shard this copy records into.
    shard: usize,
    /// The method's latency objective.
    latency: Option<Latency>,
}

impl MethodSeries {
    /// A call of this method started.
    pub(crate) fn start(&self) {
        self.started.inc_by_in(self.shard, 1);
    }

    /// The call received `messages` messages.
    pub(crate) fn received(&self, messages: u64) {
        self.received.inc_by_in(self.shard, messages);
    }

    /// The call sent `messages` messages.
    pub(crate) fn sent(&self, messages: u64) {
        self.sent.inc_by_in(self.shard, messages);
    }

    /// A call of this method ended with `code` after `elapsed`.
    pub(crate) fn finish(
        &self,
        code: GrpcCode,
        elapsed: Duration,
        exemplar: Option<ExemplarRef<'_>>,
    ) {
        let seconds = elapsed.as_secs_f64();
        if let Some(handling) = &self.handling {
            handling.observe_with_exemplar_in(self.shard, seconds, exemplar);
        }
        self.handled(code)
            .inc_by_with_exemplar_in(self.shard, 1, exemplar);
        if let Some(latency) = &self.latency {
            latency.observe(self.shard, seconds);
        }
    }

    fn handled(&self, code: GrpcCode) -> &Counter {
        self.codes[code as usize].get_or_init(|| {
            self.handled
                .get_or_create(&GrpcHandledLabels::new(self.labels.clone(), code))
        })
    }
}
