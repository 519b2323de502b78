//! The gRPC client families, as go-grpc-prometheus names them, and the per-method
//! series the client layer records into.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::registry::Unit;

use crate::grpc::{
    series_cap, service_and_method, GrpcCode, GrpcCount, GrpcHandledCount, GrpcHandledLabels,
    GrpcHandling, GrpcLabels, GrpcType, MethodTypes, GRPC_HANDLED,
};
use crate::metrics::{Buckets, Counter, Histogram};
use crate::record::{shards, SeriesCache, Shards, DEFAULT_FALLBACK_ROUTE};
use crate::{MetricsRegistry, RegistryError};

/// Name of the family counting calls started by the client.
pub const GRPC_CLIENT_STARTED: &str = "grpc_client_started_total";
/// Name of the family counting calls the client saw end, by status code.
pub const GRPC_CLIENT_HANDLED: &str = "grpc_client_handled_total";
/// Name of the histogram of call durations, until the client saw the call end.
pub const GRPC_CLIENT_HANDLING: &str = "grpc_client_handling_seconds";
/// Name of the family counting messages the client sent.
pub const GRPC_CLIENT_MSG_SENT: &str = "grpc_client_msg_sent_total";
/// Name of the family counting messages the client received.
pub const GRPC_CLIENT_MSG_RECEIVED: &str = "grpc_client_msg_received_total";

/// The gRPC client families and the method table in front of them.
pub(crate) struct GrpcClientFamilies {
    started: GrpcCount,
    handled: GrpcHandledCount,
    handling: GrpcHandling,
    sent: GrpcCount,
    received: GrpcCount,
    types: MethodTypes,
    methods: SeriesCache<Arc<str>, ClientMethodSeries>,
    /// Calls to paths of another shape than `/package.Service/Method`.
    other: OnceLock<Shards<ClientMethodSeries>>,
}

impl GrpcClientFamilies {
    /// Declares the families in `registry` (unless declared first, to replace them),
    /// sized for `max_methods` methods, as the server's are.
    pub(crate) fn declare(
        registry: &MetricsRegistry,
        max_methods: usize,
    ) -> Result<(), RegistryError> {
        let max_series = series_cap(GRPC_CLIENT_STARTED, max_methods);
        let counts = [
            (
                GRPC_CLIENT_STARTED,
                "Total number of RPCs started on the client.",
            ),
            (
                GRPC_CLIENT_MSG_SENT,
                "Total number of gRPC stream messages sent by the client.",
            ),
            (
                GRPC_CLIENT_MSG_RECEIVED,
                "Total number of RPC stream messages received by the client.",
            ),
        ];
        for (name, help) in counts {
            registry.provider_if_absent(name, help, None, move || {
                GrpcCount::default().max_series(max_series).fixed_order()
            })?;
        }
        registry.provider_if_absent(
            GRPC_CLIENT_HANDLED,
            "Total number of RPCs completed by the client, regardless of success or failure.",
            None,
            move || {
                GrpcHandledCount::default()
                    .max_series(series_cap(GRPC_HANDLED, max_methods))
                    .fixed_order()
            },
        )?;
        registry.provider_if_absent(
            GRPC_CLIENT_HANDLING,
            "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
            Some(Unit::Seconds),
            move || {
                GrpcHandling::new_with_constructor(|| Histogram::new(Buckets::prometheus_default()))
                    .max_series(max_series).fixed_order()
            },
        )
    }

    /// The families of an initialised registry, holding at most `max_methods` methods.
    pub(crate) fn from_registry(
        registry: &MetricsRegistry,
        types: MethodTypes,
        max_methods: usize,
    ) -> Result<Self, RegistryError> {
        Ok(Self {
            started: registry.get(GRPC_CLIENT_STARTED)?,
            handled: registry.get(GRPC_CLIENT_HANDLED)?,
            handling: registry.get(GRPC_CLIENT_HANDLING)?,
            sent: registry.get(GRPC_CLIENT_MSG_SENT)?,
            received: registry.get(GRPC_CLIENT_MSG_RECEIVED)?,
            types,
            methods: SeriesCache::new(max_methods),
            other: OnceLock::new(),
        })
    }

    /// This thread's series of the method at `path`; a path of another shape is
    /// service and method `_OTHER`, a method past the cap the overflow series.
    pub(crate) fn method(&self, path: &str) -> &Arc<ClientMethodSeries> {
        let Some((service, method)) = service_and_method(path) else {
            return self
                .other
                .get_or_init(|| {
                    self.series(GrpcLabels::new(
                        GrpcType::Unary,
                        DEFAULT_FALLBACK_ROUTE,
                        DEFAULT_FALLBACK_ROUTE,
                    ))
                })
                .current();
        };
        let hash = self.methods.hash(path);
        let matches = |key: &Arc<str>| **key == *path;
        if let Some(series) = self.methods.find(hash, matches) {
            return series.current();
        }
        self.methods
            .find_or_create(
                hash,
                matches,
                || {
                    let labels = GrpcLabels::new(self.types.get(path), service, method);
                    (path.into(), self.series(labels))
                },
                || self.series(GrpcLabels::overflow()),
            )
            .current()
    }

    fn series(&self, labels: GrpcLabels) -> Shards<ClientMethodSeries> {
        let started = self.started.get_or_create(&labels);
        let sent = self.sent.get_or_create(&labels);
        let received = self.received.get_or_create(&labels);
        let handling = self.handling.get_or_create(&labels);
        shards(|shard| ClientMethodSeries {
            started: started.clone(),
            sent: sent.clone(),
            received: received.clone(),
            handling: handling.clone(),
            handled: self.handled.clone(),
            labels: labels.clone(),
            codes: Default::default(),
            shard,
        })
    }
}

/// What the calls of one method record into. Aligned to a cache line, so the
/// reference count each call takes shares no line with the handles calls read.
#[repr(align(64))]
pub(crate) struct ClientMethodSeries {
    started: Counter,
    sent: Counter,
    received: Counter,
    handling: Histogram,
    handled: GrpcHandledCount,
    labels: GrpcLabels,
    codes: [OnceLock<Counter>; GrpcCode::COUNT],
    /// The shard this copy records into.
    shard: usize,
}

impl ClientMethodSeries {
    /// A call of this method started.
    pub(crate) fn start(&self) {
        self.started.inc_by_in(self.shard, 1);
    }

    /// The call sent `messages` messages.
    pub(crate) fn sent(&self, messages: u64) {
        self.sent.inc_by_in(self.shard, messages);
    }

    /// The call received `messages` messages.
    pub(crate) fn received(&self, messages: u64) {
        self.received.inc_by_in(self.shard, messages);
    }

    /// A call of this method ended with `code` after `elapsed`.
    pub(crate) fn finish(&self, code: GrpcCode, elapsed: Duration) {
        self.handling.observe_in(self.shard, elapsed.as_secs_f64());
        self.codes[code as usize]
            .get_or_init(|| {
                self.handled
                    .get_or_create(&GrpcHandledLabels::new(self.labels.clone(), code))
            })
            .inc_by_in(self.shard, 1);
    }
}
