//! Service-level objectives, exposed as data the shipped rules use.
//!
//! Each objective becomes a series of the adapter's target family (such as
//! `http_server_slo_objective{http_route, slo}`) whose value is the target (`0.999`),
//! so a rule divides by `1 - target` with no per-service edit. A latency objective
//! also makes the adapter count, per series, the calls that finished within its
//! threshold (such as `http_server_slo_latency_good_total{http_route}`): an exact
//! count for any threshold, where a join on a histogram's `le` label would depend on
//! how the scrape format spells the bound.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

use super::FamilyNames;
use crate::metrics::{Counter, Family, Labels};
use crate::storage::files::{FileKind, GaugeMode};
use crate::storage::Binding;
use crate::{BuildError, MetricsRegistry, RegistryError};

/// Labels the objective families give their series beside what an objective is about.
pub(crate) const SLO_LABEL_NAMES: [&str; 2] = ["slo", "threshold_seconds"];

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

/// The families one kind of call exports its objectives in.
#[derive(Debug)]
pub(crate) struct ObjectiveFamilies {
    /// The family of targets.
    pub(crate) targets: &'static str,
    /// The counter of calls within their latency threshold.
    pub(crate) latency_good: &'static str,
    /// That counter's help.
    pub(crate) latency_good_help: &'static str,
}

/// What objectives are labelled with: the labels that name what they are about
/// (`http_route`, or `grpc_service` and `grpc_method`), which also label the counter
/// of calls within a latency threshold.
pub(crate) trait TargetLabels:
    Labels + fmt::Debug + AsRef<[(&'static str, String)]>
{
}

impl<L: Labels + fmt::Debug + AsRef<[(&'static str, String)]>> TargetLabels for L {}

/// The objectives of one kind of call (HTTP routes, gRPC methods), by the labels `L`
/// that name what each is about.
pub(crate) struct Objectives<L> {
    by_target: HashMap<L, Objective>,
    families: &'static ObjectiveFamilies,
    labels: PhantomData<fn() -> L>,
}

impl<L: TargetLabels> Objectives<L> {
    /// No objectives yet, to be exported in `families`.
    pub(crate) fn new(families: &'static ObjectiveFamilies) -> Self {
        Self {
            by_target: HashMap::new(),
            families,
            labels: PhantomData,
        }
    }

    pub(crate) fn insert(&mut self, target: L, objective: Objective) {
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
    pub(crate) fn declare(
        &self,
        registry: &MetricsRegistry,
        names: &FamilyNames,
    ) -> Result<(), RegistryError> {
        if self.is_empty() {
            return Ok(());
        }
        let help = "Service-level objective: the share of requests that must be good.";
        registry.provider_if_absent(
            &names.of(self.families.targets),
            help,
            None,
            ObjectiveTargets::new,
        )?;
        let constant = names.constant().clone();
        registry.provider_if_absent(
            &names.of(self.families.latency_good),
            self.families.latency_good_help,
            None,
            move || Family::<L, Counter>::default().constant_labels(constant),
        )
    }

    /// Adds the targets to the exported ones, beside those of other layers of the
    /// registry; an objective of the same route (or method) that differs from theirs
    /// is an error naming it.
    pub(crate) fn publish(
        &self,
        registry: &MetricsRegistry,
        names: &FamilyNames,
    ) -> Result<(), BuildError> {
        if self.is_empty() {
            return Ok(());
        }
        registry
            .get::<ObjectiveTargets>(&names.of(self.families.targets))?
            .add(self.target_series(names))
            .map_err(BuildError::InvalidObjective)
    }

    /// The latency thresholds, with the counter of calls within them.
    pub(crate) fn latencies(
        &self,
        registry: &MetricsRegistry,
        names: &FamilyNames,
    ) -> Result<Latencies<L>, RegistryError> {
        let thresholds: HashMap<_, _> = self
            .by_target
            .iter()
            .filter_map(|(target, objective)| {
                let (threshold, _) = objective.latency?;
                Some((target.clone(), threshold.as_secs_f64()))
            })
            .collect();
        let good = match self.is_empty() {
            true => None,
            false => Some(registry.get(&names.of(self.families.latency_good))?),
        };
        Ok(Latencies { thresholds, good })
    }

    /// The target series, with the layer's constant labels.
    fn target_series(&self, names: &FamilyNames) -> Vec<TargetSeries> {
        let mut series = Vec::new();
        for (target_labels, objective) in &self.by_target {
            let labels = |slo: &str, threshold: Option<Duration>| {
                let mut labels: Vec<_> = target_labels
                    .as_ref()
                    .iter()
                    .map(|(name, value)| (name.to_string(), value.clone()))
                    .collect();
                labels.push(("slo".to_string(), slo.to_string()));
                labels.extend(
                    threshold
                        .map(|t| ("threshold_seconds".to_string(), t.as_secs_f64().to_string())),
                );
                labels.extend_from_slice(names.constant().pairs());
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

impl<L: Clone> Clone for Objectives<L> {
    fn clone(&self) -> Self {
        Self {
            by_target: self.by_target.clone(),
            families: self.families,
            labels: PhantomData,
        }
    }
}

impl<L: fmt::Debug> fmt::Debug for Objectives<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Objectives")
            .field("by_target", &self.by_target)
            .field("families", &self.families.targets)
            .finish()
    }
}

/// The latency thresholds of one kind of call, in seconds, and its counter of calls
/// within them.
pub(crate) struct Latencies<L> {
    thresholds: HashMap<L, f64>,
    good: Option<Family<L, Counter>>,
}

impl<L: TargetLabels> Latencies<L> {
    /// The latency objective of what `target` names, if it has one.
    pub(crate) fn of(&self, target: &L) -> Option<Latency> {
        let threshold = *self.thresholds.get(target)?;
        let good = self.good.as_ref()?.get_or_create(target);
        Some(Latency { threshold, good })
    }
}

/// A series' latency objective: its threshold in seconds, and the counter of calls
/// that finished within it.
#[derive(Clone, Debug)]
pub(crate) struct Latency {
    threshold: f64,
    good: Counter,
}

impl Latency {
    /// Counts a call that took `seconds`, in shard `shard`, if it was within the
    /// threshold.
    #[inline]
    pub(crate) fn observe(&self, shard: usize, seconds: f64) {
        if seconds <= self.threshold {
            self.good.inc_by_in(shard, 1);
        }
    }
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
