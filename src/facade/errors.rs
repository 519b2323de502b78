//! The records and descriptions the facade cannot keep as given: counted by reason,
//! and logged.

use crate::metrics::{Counter, Family};
use crate::{MetricsRegistry, RegistryError};

/// The `tracing` target of the facade's warnings.
pub(crate) const LOG_TARGET: &str = "tower_prometheus::facade";

/// Name of the counter of facade records that were not kept as given.
pub const FACADE_ERRORS: &str = "tower_prometheus_facade_errors";

/// Why a record or description through the facade was not kept as given; the `reason`
/// label of [`FACADE_ERRORS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The name is already used by a metric of another kind (counter, gauge, histogram):
    /// the first kind keeps it, these records go nowhere.
    KindConflict,
    /// The name is taken by a metric of the registry the facade did not make (of
    /// another type, or exposed under the same name): these records go nowhere.
    NameTaken,
    /// A second, different description of a name: the first one stays.
    DescriptionConflict,
    /// A description after the name's first record: the family already has its help
    /// text and unit, so this one is not shown.
    LateDescription,
    /// A histogram observation of NaN, which would make its sum NaN for good: left out.
    NotANumber,
    /// A new metric name past the cap on names (`max_metric_names`): recorded nowhere,
    /// and a description of it not kept, so a flood of names cannot grow memory.
    TooManyNames,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::KindConflict => "kind_conflict",
            Reason::NameTaken => "name_taken",
            Reason::DescriptionConflict => "description_conflict",
            Reason::LateDescription => "late_description",
            Reason::NotANumber => "not_a_number",
            Reason::TooManyNames => "too_many_names",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Reason::KindConflict => {
                "a metric name is used with two kinds: the first kind keeps it, records of the other go nowhere"
            }
            Reason::NameTaken => {
                "a metric name is taken by another metric of the registry: its facade records go nowhere"
            }
            Reason::DescriptionConflict => {
                "a metric is described twice, differently: the first description stays"
            }
            Reason::LateDescription => {
                "a metric is described after its first record: its help text and unit are not shown"
            }
            Reason::NotANumber => "a histogram observation is NaN: left out",
            Reason::TooManyNames => {
                "a new metric name past the facade's cap on names: its records go nowhere"
            }
        }
    }
}

/// Labels of [`FACADE_ERRORS`].
type ErrorLabels = [(&'static str, &'static str); 1];

/// The count of facade errors by reason, kept in the registry like any family.
#[derive(Clone, Debug)]
pub(crate) struct Errors(Family<ErrorLabels, Counter>);

impl Errors {
    /// The registry's facade error family, declared if it has none yet (a second
    /// recorder on the same registry shares it).
    pub(crate) fn of(registry: &MetricsRegistry) -> Result<Self, RegistryError> {
        registry.provider_if_absent(
            FACADE_ERRORS,
            "Records and descriptions through the `metrics` facade that were not kept as given, by reason.",
            None,
            Family::<ErrorLabels, Counter>::default,
        )?;
        registry.get(FACADE_ERRORS).map(Self)
    }

    /// Counts one error of `metric`, with a warning when `warn` is set.
    pub(crate) fn count(&self, reason: Reason, metric: &str, warn: bool) {
        self.0.get_or_create(&[("reason", reason.as_str())]).inc();
        if warn {
            tracing::warn!(
                target: LOG_TARGET,
                metric,
                reason = reason.as_str(),
                "{}",
                reason.message()
            );
        }
    }
}
