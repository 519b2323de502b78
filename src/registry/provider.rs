//! Providers: closures that build a metric when the registry is initialised.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry, Unit};

use super::{RegistryError, LOG_TARGET};
use crate::storage::files::ProcessStore;
use crate::storage::Binding;
use crate::warning::unheard;

/// A declared provider, not yet run.
pub(crate) struct Provider {
    help: String,
    unit: Option<Unit>,
    make: Make,
    /// Keeps the values in this process in multi-process mode.
    in_process: bool,
}

/// How a provider learns where its metric's values go.
enum Make {
    /// A user's closure: the binding is offered while it runs, and the first of this
    /// crate's metrics it builds takes it.
    Offered(Box<dyn FnOnce() -> Box<dyn Registrable> + Send>),
    /// A closure of this crate that is handed the binding (`None` in one process).
    #[cfg(feature = "metrics")]
    Bound(Box<dyn FnOnce(Option<Binding>) -> Box<dyn Registrable> + Send>),
}

impl Provider {
    pub(crate) fn new<M, F>(help: String, unit: Option<Unit>, provide: F) -> Self
    where
        M: Metric + Clone,
        F: FnOnce() -> M + Send + 'static,
    {
        let make = Make::Offered(Box::new(move || {
            Box::new(provide()) as Box<dyn Registrable>
        }));
        Self {
            help,
            unit,
            make,
            in_process: false,
        }
    }

    /// A provider whose metric is given its binding explicitly and keeps its values
    /// there, such as a family made after initialisation.
    #[cfg(feature = "metrics")]
    pub(crate) fn bound<M, F>(help: String, unit: Option<Unit>, provide: F) -> Self
    where
        M: Metric + Clone,
        F: FnOnce(Option<Binding>) -> M + Send + 'static,
    {
        let make = Make::Bound(Box::new(move |binding| {
            Box::new(provide(binding)) as Box<dyn Registrable>
        }));
        Self {
            help,
            unit,
            make,
            in_process: false,
        }
    }

    /// Keeps the metric's values in this process, out of the multi-process files.
    pub(crate) fn in_process(mut self) -> Self {
        self.in_process = true;
        self
    }

    /// Runs the provider; a panic becomes [`RegistryError::ProviderPanicked`]. With a
    /// multi-process store, the metric is offered a place in the files.
    pub(crate) fn build(
        self,
        name: &str,
        store: Option<&Arc<ProcessStore>>,
    ) -> Result<BuiltMetric, RegistryError> {
        let store = store.filter(|_| !self.in_process);
        let binding = store.map(|store| {
            let names = [MetricType::Counter, MetricType::Gauge]
                .map(|metric_type| family_name(name, metric_type, self.unit.as_ref()));
            Binding::new(Arc::clone(store), names, &self.help)
        });
        let run = || match (self.make, binding) {
            (Make::Offered(make), Some(binding)) => binding.offer(make),
            (Make::Offered(make), None) => (make(), false),
            #[cfg(feature = "metrics")]
            (Make::Bound(make), binding) => {
                let in_files = binding.is_some();
                (make(binding), in_files)
            }
        };
        let (metric, in_files) = catch_unwind(AssertUnwindSafe(run)).map_err(|panic| {
            RegistryError::ProviderPanicked {
                name: name.to_string(),
                message: panic_message(panic.as_ref()),
            }
        })?;
        if store.is_some() && !in_files {
            let message = "metric is not one of this crate's metric types, so in multi-process \
                 mode each process serves only its own values of it";
            tracing::warn!(target: LOG_TARGET, metric = name, "{message}");
            unheard(&format!("{name}: {message}"));
        }
        let base = base_name(name, metric.metric_type(), self.unit.as_ref());
        if base.is_empty() {
            return Err(RegistryError::InvalidName { name: name.into() });
        }
        Ok(BuiltMetric {
            base,
            help: self.help,
            unit: self.unit,
            metric,
            in_files,
            warned: AtomicBool::new(false),
        })
    }
}

/// The message of a caught panic: its `&str` or `String` payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    match (
        payload.downcast_ref::<&str>(),
        payload.downcast_ref::<String>(),
    ) {
        (Some(message), _) => (*message).to_string(),
        (None, Some(message)) => message.clone(),
        (None, None) => "(a panic payload that is not a string)".to_string(),
    }
}

/// The family name as the multi-process files write it: with the unit, without the
/// type's suffix.
fn family_name(name: &str, metric_type: MetricType, unit: Option<&Unit>) -> String {
    let mut family = base_name(name, metric_type, unit);
    if let Some(unit) = unit {
        family.push('_');
        family.push_str(unit.as_str());
    }
    family
}

/// The name without the suffixes the encoders append (the unit, and `_total` for
/// counters or `_info` for infos), so that a name given with them is not doubled:
/// prometheus-client would otherwise write `x_total_total`, and in debug builds it
/// panics on a counter registered as `*_total`.
fn base_name(name: &str, metric_type: MetricType, unit: Option<&Unit>) -> String {
    let mut base = name;
    if let Some(suffix) = type_suffix(metric_type) {
        while let Some(stripped) = base.strip_suffix(suffix) {
            base = stripped;
        }
    }
    if let Some(unit) = unit {
        let unit_suffix = format!("_{}", unit.as_str());
        base = base.strip_suffix(unit_suffix.as_str()).unwrap_or(base);
    }
    base.to_string()
}

/// A metric a provider built: registered in its registry and in every registry that
/// includes that one, which all share its values.
pub(crate) struct BuiltMetric {
    /// The name prometheus-client registers; it appends the suffixes.
    base: String,
    help: String,
    unit: Option<Unit>,
    metric: Box<dyn Registrable>,
    /// Whether the values live in the multi-process files, which the aggregator
    /// encodes, rather than in this process alone.
    in_files: bool,
    /// Whether a collector's use of it was warned about already.
    warned: AtomicBool,
}

impl BuiltMetric {
    /// Warns, once, when `collector` asks for this metric while it is a gauge of the
    /// multi-process files: set on every scrape of one process, it leaves a series per
    /// process in the files (kept after the process exits).
    pub(crate) fn check_collected(&self, name: &str, collector: &str) {
        let files_gauge = self.in_files && self.metric.metric_type() == MetricType::Gauge;
        if files_gauge && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: LOG_TARGET,
                metric = name,
                collector,
                "a collector sets a gauge of the multi-process files, which keeps one series \
                 per process, also after it exits: declare it with `collected_provider` to \
                 keep it in the process whose scrape runs the collector"
            );
        }
    }

    /// The family name as it appears in the exposition.
    pub(crate) fn exposition_name(&self) -> String {
        let mut exposed = self.base.clone();
        if let Some(unit) = &self.unit {
            exposed.push('_');
            exposed.push_str(unit.as_str());
        }
        if let Some(suffix) = type_suffix(self.metric.metric_type()) {
            exposed.push_str(suffix);
        }
        exposed
    }

    /// Registers a handle of the metric in `registry`, unless the files hold it.
    pub(crate) fn register(&self, registry: &mut Registry) {
        if !self.in_files {
            // prometheus-client ends every help text with a full stop of its own.
            let help = self.help.strip_suffix('.').unwrap_or(&self.help);
            self.metric.register(
                registry,
                self.base.clone(),
                help.to_string(),
                self.unit.clone(),
            );
        }
    }

    /// A handle of the metric, for `get`.
    pub(crate) fn downcast<M: Clone + 'static>(&self) -> Option<M> {
        self.metric.as_any().downcast_ref::<M>().cloned()
    }

    pub(crate) fn type_name(&self) -> &'static str {
        self.metric.type_name()
    }
}

fn type_suffix(metric_type: MetricType) -> Option<&'static str> {
    match metric_type {
        MetricType::Counter => Some("_total"),
        MetricType::Info => Some("_info"),
        _ => None,
    }
}

/// A metric of a type known only inside its provider.
trait Registrable: Send + Sync {
    fn metric_type(&self) -> MetricType;
    fn as_any(&self) -> &dyn Any;
    fn type_name(&self) -> &'static str;
    /// Registers a handle (a clone) of the metric.
    fn register(&self, registry: &mut Registry, name: String, help: String, unit: Option<Unit>);
}

impl<M: Metric + Clone> Registrable for M {
    fn metric_type(&self) -> MetricType {
        prometheus_client::encoding::EncodeMetric::metric_type(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn type_name(&self) -> &'static str {
        std::any::type_name::<M>()
    }

    fn register(&self, registry: &mut Registry, name: String, help: String, unit: Option<Unit>) {
        let handle = self.clone();
        match unit {
            Some(unit) => registry.register_with_unit(name, help, unit, handle),
            None => registry.register(name, help, handle),
        }
    }
}
