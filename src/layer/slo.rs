//! Service-level objectives per route, exposed as data the shipped rules use.
//!
//! Each objective becomes a series of `http_server_slo_objective{http_route, slo}` whose
//! value is the target (`0.999`), so a rule divides by `1 - target` with no
//! per-service edit. A latency objective also makes the layer count, per route, the
//! requests that finished within its threshold
//! (`http_server_slo_latency_good_total{http_route}`): an exact count for any
//! threshold, where a join on a histogram's `le` label would depend on how the
//! scrape format spells the bound.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::metrics::{Counter, Family};
use crate::storage::files::{FileKind, GaugeMode};
use crate::storage::Binding;
use crate::{BuildError, MetricsRegistry, RegistryError};

/// Name of the family of objective targets of HTTP routes.
pub const SLO_OBJECTIVE: &str = "http_server_slo_objective";
/// Name of the counter of requests within their route's latency threshold.
pub const SLO_LATENCY_GOOD: &str = "http_server_slo_latency_good";
/// Name of the family of objective targets of gRPC methods.
pub const GRPC_SLO_OBJECTIVE: &str = "grpc_server_slo_objective";
/// Name of the counter of calls within their method's latency threshold.
pub const GRPC_SLO_LATENCY_GOOD: &str = "grpc_server_slo_latency_good";

/// Labels of [`SLO_LATENCY_GOOD`].
pub type SloRouteLabels = [(&'static str, String); 1];
/// Labels of [`GRPC_SLO_LATENCY_GOOD`]: `grpc_service` and `grpc_method`.
pub type SloMethodLabels = [(&'static str, String); 2];

/// One target series: its labels and the target.
type TargetSeries = (Vec<(String, String)>, f64);

/// What a route promises: a success rate, a latency, or both.
///
/// ```
/// use std::time::Duration;
/// use tower_prometheus::layer::Objective;
///
/// // 99.9% of requests succeed, and 99% finish within 250 ms.
/// let objective = Objective::availability(0.999).with_latency(Duration::from_millis(250), 0.99);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Objective {
    availability: Option<f64>,
    latency: Option<(Duration, f64)>,
}

impl Objective {
    /// The share of requests that must not answer 5xx, in (0, 1).
    pub fn availability(target: f64) -> Self {
        Self {
            availability: Some(target),
            latency: None,
        }
    }

    /// The share of requests that must finish within `threshold`, in (0, 1).
    pub fn latency(threshold: Duration, target: f64) -> Self {
        Self::default().with_latency(threshold, target)
    }

    /// Adds a latency objective.
    #[must_use]
    pub fn with_latency(mut self, threshold: Duration, target: f64) -> Self {
        self.latency = Some((threshold, target));
        self
    }

    fn targets(&self) -> impl Iterator<Item = f64> + '_ {
        self.availability
            .into_iter()
            .chain(self.latency.map(|(_, target)| target))
    }
}

/// The objectives of a layer: of HTTP routes, or of gRPC methods.
#[derive(Clone, Debug, Default)]
pub(crate) struct Objectives {
    /// By the labels that name what they are about (`http_route`, or `grpc_service`
    /// and `grpc_method`).
    by_target: HashMap<Vec<(String, String)>, Objective>,
    grpc: bool,
}

impl Objectives {
    /// The objectives of gRPC methods.
    pub(crate) fn grpc() -> Self {
        Self {
            grpc: true,
            ..Self::default()
        }
    }

    pub(crate) fn insert(&mut self, target: Vec<(String, String)>, objective: Objective) {
        self.by_target.insert(target, objective);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// A target outside (0, 1) is an error that names what it is about.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (target_labels, objective) in &self.by_target {
            if let Some(target) = objective.targets().find(|t| !(*t > 0.0 && *t < 1.0)) {
                return Err(format!(
                    "{target_labels:?}: target {target} is not between 0 and 1"
                ));
            }
        }
        Ok(())
    }

    /// Declares the objective series and the good-request counter, when there are
    /// objectives (and the registry lacks them).
    pub(crate) fn declare(&self, registry: &MetricsRegistry) -> Result<(), RegistryError> {
        if self.is_empty() {
            return Ok(());
        }
        let help = "Service-level objective: the share of requests that must be good.";
        let (objective, good_help) = self.names();
        registry.provider_if_absent(objective, help, None, ObjectiveTargets::new)?;
        if self.grpc {
            registry.provider_if_absent(
                GRPC_SLO_LATENCY_GOOD,
                good_help,
                None,
                Family::<SloMethodLabels, Counter>::default,
            )
        } else {
            registry.provider_if_absent(
                SLO_LATENCY_GOOD,
                good_help,
                None,
                Family::<SloRouteLabels, Counter>::default,
            )
        }
    }

    /// Adds the targets to the exported ones, beside those of other layers of the
    /// registry; an objective of the same route (or method) that differs from theirs
    /// is an error naming it.
    pub(crate) fn publish(&self, registry: &MetricsRegistry) -> Result<(), BuildError> {
        if self.is_empty() {
            return Ok(());
        }
        let (objective, _) = self.names();
        registry
            .get::<ObjectiveTargets>(objective)?
            .add(self.target_series())
            .map_err(BuildError::InvalidObjective)
    }

    /// The name of the family of targets, and the help of the good-request counter.
    fn names(&self) -> (&'static str, &'static str) {
        match self.grpc {
            true => (
                GRPC_SLO_OBJECTIVE,
                "Calls that finished within their method's latency objective.",
            ),
            false => (
                SLO_OBJECTIVE,
                "Requests that finished within their route's latency objective.",
            ),
        }
    }

    /// The latency threshold of the target named by `labels`, if it has one.
    pub(crate) fn latency_threshold(&self, labels: &[(String, String)]) -> Option<Duration> {
        self.by_target
            .get(labels)?
            .latency
            .map(|(threshold, _)| threshold)
    }

    fn target_series(&self) -> Vec<TargetSeries> {
        let mut series = Vec::new();
        for (target_labels, objective) in &self.by_target {
            let labels = |slo: &str, threshold: Option<Duration>| {
                let mut labels = target_labels.clone();
                labels.push(("slo".to_string(), slo.to_string()));
                labels.extend(
                    threshold
                        .map(|t| ("threshold_seconds".to_string(), t.as_secs_f64().to_string())),
                );
                labels
            };
            if let Some(target) = objective.availability {
                series.push((labels("availability", None), target));
            }
            if let Some((threshold, target)) = objective.latency {
                series.push((labels("latency", Some(threshold)), target));
            }
        }
        series.sort_by(|a, b| a.0.cmp(&b.0));
        series
    }
}

/// The labels that name an HTTP route's objective.
pub(crate) fn route_target(route: &str) -> Vec<(String, String)> {
    vec![("http_route".to_string(), route.to_string())]
}

/// The labels that name a gRPC method's objective.
pub(crate) fn method_target(service: &str, method: &str) -> Vec<(String, String)> {
    vec![
        ("grpc_service".to_string(), service.to_string()),
        ("grpc_method".to_string(), method.to_string()),
    ]
}

/// Constant gauges holding the objectives' targets, of every layer of the registry. In
/// multi-process mode they are written to the files (mode `max`: every process holds
/// the same values).
#[derive(Clone)]
struct ObjectiveTargets {
    series: Arc<RwLock<Vec<TargetSeries>>>,
    binding: Option<Binding>,
}

impl ObjectiveTargets {
    fn new() -> Self {
        Self {
            series: Arc::default(),
            binding: Binding::claim(),
        }
    }

    /// Adds `series`; one whose labels other than the threshold match an existing
    /// series' must equal it.
    fn add(&self, series: Vec<TargetSeries>) -> Result<(), String> {
        let mut existing = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let without_threshold = |labels: &[(String, String)]| -> Vec<(String, String)> {
            labels
                .iter()
                .filter(|(name, _)| name != "threshold_seconds")
                .cloned()
                .collect()
        };
        for new in &series {
            let target = without_threshold(&new.0);
            if let Some(other) = existing
                .iter()
                .find(|other| without_threshold(&other.0) == target && *other != new)
            {
                return Err(format!(
                    "{target:?}: objective {:?} = {} differs from {:?} = {} of a layer built earlier \
                     on this registry",
                    new.0, new.1, other.0, other.1
                ));
            }
        }
        for new in series {
            if existing.contains(&new) {
                continue;
            }
            if let Some(binding) = &self.binding {
                binding
                    .value(FileKind::Gauge(GaugeMode::Max), "", &new.0)
                    .set(new.1);
            }
            existing.push(new);
        }
        existing.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(())
    }
}

impl fmt::Debug for ObjectiveTargets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectiveTargets")
            .field(
                "series",
                &self
                    .series
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .finish()
    }
}

impl TypedMetric for ObjectiveTargets {
    const TYPE: MetricType = MetricType::Gauge;
}

impl EncodeMetric for ObjectiveTargets {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), fmt::Error> {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        for (labels, target) in series.iter() {
            encoder.encode_family(labels)?.encode_gauge(target)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
