//! [`MetricsRegistry`]: named metric providers and collectors, initialised once.
//!
//! A registry is declared first and initialised later:
//!
//! - A **provider** is a closure that builds a metric (any prometheus-client metric, or
//!   one of this crate's [`metrics`](crate::metrics) types). Declaring it runs nothing;
//!   every provider runs exactly once, in declaration order, when the registry is
//!   initialised, which happens when a [`MetricsLayer`](crate::MetricsLayer) or a
//!   [`MetricsEndpoint`](crate::MetricsEndpoint) is built from it. So a module can declare
//!   its metrics in a registry of its own without registering anything until the
//!   application includes that registry and builds its layer.
//! - A **collector** is a closure run on every scrape, before encoding: sync collectors
//!   first, then async ones, each in declaration order. A collector that returns an
//!   error, panics or times out does not fail the scrape; it is counted in
//!   `tower_prometheus_collector_errors_total{collector, reason}` and logged as a
//!   `tracing` warning with its message.
//! - A layer may be built on a registry already initialised (by an endpoint or another
//!   layer): it adds the families it lacks then.
//! - [`MetricsRegistry::get`] returns a provider's metric after initialisation: the very
//!   handle the layer records into, since metrics are cheap `Clone` handles.
//!
//! Providers and collectors share one namespace. Declaring a name again in the same
//! registry replaces the earlier entry; [`MetricsRegistry::include_registry`] instead
//! rejects a name both registries declare.
//!
//! ```
//! use tower_prometheus::metrics::{Counter, Gauge};
//! use tower_prometheus::{MetricsEndpoint, MetricsRegistry, RegistryError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = MetricsRegistry::new();
//! registry.provider("orders_placed", "Orders placed.", Counter::default)?;
//! // Set by a collector: `collected_provider` keeps it out of the multi-process files.
//! registry.collected_provider("queue_depth", "Jobs waiting.", Gauge::default)?;
//! registry.collector("queue", |registry| {
//!     registry.get::<Gauge>("queue_depth")?.set(3);
//!     Ok(())
//! })?;
//!
//! assert!(matches!(
//!     registry.get::<Counter>("orders_placed"),
//!     Err(RegistryError::NotInitialized { .. })
//! ));
//! let _endpoint = MetricsEndpoint::new(&registry)?; // runs the providers
//! registry.get::<Counter>("orders_placed")?.inc();
//! # Ok(())
//! # }
//! ```

mod collector;
mod error;
mod include;
mod provider;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use prometheus_client::registry::{Registry, Unit};

use crate::build_info::{BuildInfoCollector, ServiceBuild};
use crate::multiprocess::{self, Aggregator, Folding, MultiprocessSetting};
use crate::names::is_metric_name;
use crate::process::ProcessCollector;
use crate::storage::files::ProcessStore;
pub(crate) use collector::Collectors;
use collector::{running_collector, Collector, CollectorErrors, COLLECTOR_ERRORS};
pub use collector::{CollectorError, CollectorResult};
pub use error::RegistryError;
use include::Declared;
use provider::BuiltMetric;
pub(crate) use provider::Provider;

/// The `tracing` target of the registry's events (see the README's logging section).
pub(crate) const LOG_TARGET: &str = "tower_prometheus::registry";

/// Named metric providers and collectors; see the [module docs](self).
///
/// A cheap [`Clone`] handle: clones share one registry, so the handle a module keeps
/// sees the metrics once the application has built its layer.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    shared: Arc<Mutex<State>>,
    settings: Arc<Mutex<Settings>>,
    /// What errors call this registry (see [`named`](Self::named)).
    name: Option<Arc<str>>,
}

/// Choices made before initialisation, that take effect at it.
#[derive(Clone, Debug)]
struct Settings {
    multiprocess: MultiprocessSetting,
    folding: Folding,
    process_metrics: bool,
    service: ServiceBuild,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            multiprocess: MultiprocessSetting::default(),
            folding: Folding::default(),
            process_metrics: true,
            service: ServiceBuild::default(),
        }
    }
}

enum State {
    Declaring(Vec<Entry>),
    Initialized(Arc<Initialized>),
    Failed(RegistryError),
}

impl Default for State {
    fn default() -> Self {
        State::Declaring(Vec::new())
    }
}

/// One entry of a registry being declared, in declaration order.
enum Entry {
    Declared(Declaration),
    /// A registry included at this point by [`MetricsRegistry::include_registry`].
    Included(MetricsRegistry),
}

struct Declaration {
    name: String,
    kind: DeclarationKind,
}

enum DeclarationKind {
    Provider(Provider),
    Collector(Collector),
}

/// A registry after its providers have run.
pub(crate) struct Initialized {
    registered: RwLock<Registered>,
    /// Where the values of metrics added later go, in multi-process mode.
    store: Option<Arc<ProcessStore>>,
    collector_names: Vec<String>,
    collectors: Collectors,
    /// What every registry that includes this one takes, in declaration order: the
    /// declared metrics (the same handles, so their values are shared) and collectors,
    /// with those of the registries this one includes.
    shared: Vec<(String, Shared)>,
}

/// A declared metric or collector of an initialised registry.
#[derive(Clone)]
enum Shared {
    Metric(Arc<BuiltMetric>),
    Collector(Collector),
}

/// The metrics of an initialised registry; providers of a layer built later add theirs.
struct Registered {
    registry: Registry,
    metrics: HashMap<String, Arc<BuiltMetric>>,
    /// Family names as exposed, which must not clash.
    exposed: HashSet<String>,
}

impl Registered {
    /// Runs `provider` and registers its metric under `name`.
    fn add(
        &mut self,
        name: String,
        provider: Provider,
        store: Option<&Arc<ProcessStore>>,
    ) -> Result<Arc<BuiltMetric>, RegistryError> {
        let built = Arc::new(provider.build(&name, store)?);
        self.insert(name, Arc::clone(&built))?;
        Ok(built)
    }

    /// Registers `metric`, built here or by an included registry, under `name`.
    fn insert(&mut self, name: String, metric: Arc<BuiltMetric>) -> Result<(), RegistryError> {
        let exposition_name = metric.exposition_name();
        if self.exposed.contains(&exposition_name) {
            return Err(RegistryError::Duplicate {
                name: exposition_name,
            });
        }
        if self.metrics.contains_key(&name) {
            return Err(RegistryError::Duplicate { name });
        }
        metric.register(&mut self.registry);
        self.exposed.insert(exposition_name);
        self.metrics.insert(name, metric);
        Ok(())
    }
}

impl Initialized {
    /// Runs `f` on the prometheus-client registry every metric is registered in.
    pub(crate) fn with_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&self.read().registry)
    }

    /// Whether an encode reads the multi-process files (and so blocks on I/O).
    pub(crate) fn reads_files(&self) -> bool {
        self.store.is_some()
    }

    /// The collectors, to run before each encode.
    pub(crate) fn collectors(&self) -> &Collectors {
        &self.collectors
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Registered> {
        // Only `Registered::add` writes, and it changes nothing before it succeeds.
        self.registered
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the metric of `provider` under `name` unless a metric or collector
    /// already has that name.
    fn add_if_absent(&self, name: &str, provider: Provider) -> Result<(), RegistryError> {
        if self.collector_names.iter().any(|c| c == name) {
            return Ok(());
        }
        let mut registered = self
            .registered
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if registered.metrics.contains_key(name) {
            return Ok(());
        }
        registered
            .add(name.to_string(), provider, self.store.as_ref())
            .map(drop)
    }

    /// Checks that a registry including this one, whose values go to `store`, can share
    /// this one's metrics: their values stay where they were first put.
    fn check_store(&self, store: Option<&Arc<ProcessStore>>) -> Result<(), RegistryError> {
        let same = match (&self.store, store) {
            (None, None) => true,
            (Some(ours), Some(theirs)) => Arc::ptr_eq(ours, theirs),
            _ => false,
        };
        if same {
            return Ok(());
        }
        let names: Vec<_> = self.shared.iter().map(|(name, _)| name.as_str()).collect();
        Err(RegistryError::CannotInclude {
            names: list_names(names),
            reason: "its metrics were made for a registry that keeps values elsewhere (in this \
                     process only, or in another multi-process directory), and values cannot \
                     move: build every registry that includes it with the same multi-process \
                     setting, or run the other setting's tests in a process of their own",
        })
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry that errors call `name`, such as the module declaring it
    /// (`MetricsRegistry::named(module_path!())`), so that a name two included
    /// registries both claim is reported with the registry of each.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into().into()),
            ..Self::default()
        }
    }

    /// Declares a metric under `name`, built by `provide` when the registry is
    /// initialised. A counter's `_total` suffix is optional: the encoders add it.
    ///
    /// Fails on an invalid name or after initialisation.
    pub fn provider<M, F>(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        provide: F,
    ) -> Result<(), RegistryError>
    where
        M: prometheus_client::registry::Metric + Clone,
        F: FnOnce() -> M + Send + 'static,
    {
        self.declare_provider(name.into(), Provider::new(help.into(), None, provide))
    }

    /// Like [`provider`](Self::provider), with a unit. The exposed name ends with the
    /// unit (before `_total` for counters); `name` may end with it or not.
    pub fn provider_with_unit<M, F>(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        unit: Unit,
        provide: F,
    ) -> Result<(), RegistryError>
    where
        M: prometheus_client::registry::Metric + Clone,
        F: FnOnce() -> M + Send + 'static,
    {
        self.declare_provider(name.into(), Provider::new(help.into(), Some(unit), provide))
    }

    /// Like [`provider`](Self::provider), for a metric that [collectors](Self::collector)
    /// set: in multi-process mode its values stay in this process, served by the scrape
    /// that ran the collectors, instead of going into the shared files.
    ///
    /// ```
    /// use tower_prometheus::metrics::Gauge;
    /// use tower_prometheus::MetricsRegistry;
    ///
    /// # fn main() -> Result<(), tower_prometheus::RegistryError> {
    /// let registry = MetricsRegistry::new();
    /// registry.collected_provider("pool_idle", "Idle connections.", Gauge::default)?;
    /// registry.collector("pool", |registry| {
    ///     registry.get::<Gauge>("pool_idle")?.set(3); // read the real pool here
    ///     Ok(())
    /// })?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn collected_provider<M, F>(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        provide: F,
    ) -> Result<(), RegistryError>
    where
        M: prometheus_client::registry::Metric + Clone,
        F: FnOnce() -> M + Send + 'static,
    {
        let provider = Provider::new(help.into(), None, provide).in_process();
        self.declare_provider(name.into(), provider)
    }

    /// Declares a provider, replacing an earlier declaration of the name.
    fn declare_provider(&self, name: String, provider: Provider) -> Result<(), RegistryError> {
        self.declare(name, |_| DeclarationKind::Provider(provider))
    }

    /// Declares a collector run on every scrape, before encoding, after the
    /// registry's metrics exist. It receives the registry, to [`get`](Self::get) the
    /// metrics it updates.
    pub fn collector<F>(&self, name: impl Into<String>, collect: F) -> Result<(), RegistryError>
    where
        F: Fn(&MetricsRegistry) -> CollectorResult + Send + Sync + 'static,
    {
        self.declare(name.into(), |_| {
            DeclarationKind::Collector(Collector::Sync(Arc::new(collect)))
        })
    }

    /// Declares an async collector, run on every scrape after the sync ones.
    pub fn async_collector<F, Fut>(
        &self,
        name: impl Into<String>,
        collect: F,
    ) -> Result<(), RegistryError>
    where
        F: Fn(MetricsRegistry) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CollectorResult> + Send + 'static,
    {
        self.declare(name.into(), |_| {
            DeclarationKind::Collector(Collector::Async(Arc::new(move |registry| {
                Box::pin(collect(registry))
            })))
        })
    }

    /// Includes `other`, a registry declared elsewhere (a module's), at this point of
    /// this registry's declarations. When this registry is initialised, it initialises
    /// `other` (once: later includers share it) and takes its metrics and collectors:
    /// the same handles, so every registry that includes `other` records into and
    /// serves the same values, and [`get`](Self::get) on `other` returns them.
    ///
    /// `other` may be included into any number of registries, already initialised or
    /// not, which is how a `static` module registry serves every application a test
    /// suite builds (see the README's *Module registries*). Its metrics keep their
    /// values where the first registry that initialised it put them, so every registry
    /// that includes it must use the same multi-process setting. What is declared on
    /// `other` before it is initialised counts; its own settings do not (the including
    /// registry's apply).
    ///
    /// Refused, with nothing changed: a name both declare ([`RegistryError::Duplicate`]),
    /// two names that could expose the same name on the wire, such as `jobs` and
    /// `jobs_total` ([`RegistryError::NameCollision`]), including a registry into
    /// itself or into one it includes, including it twice, and including into a
    /// registry already initialised.
    pub fn include_registry(&self, other: &MetricsRegistry) -> Result<(), RegistryError> {
        // Includes change the graph of registries one at a time, so the check for a
        // cycle sees a graph that no other include is changing.
        static INCLUDING: Mutex<()> = Mutex::new(());
        let _including = INCLUDING.lock().unwrap_or_else(PoisonError::into_inner);
        let refuse = |reason| RegistryError::CannotInclude {
            names: other.describe_names(),
            reason,
        };
        if other.includes(self) {
            return Err(refuse("it is this registry or includes it"));
        }
        if self.includes(other) {
            return Err(refuse("it is already included in this registry"));
        }
        let incoming = other.declared();
        let mut state = lock(&self.shared);
        let entries = match &mut *state {
            State::Declaring(entries) => entries,
            State::Initialized(_) => {
                return Err(refuse("the including registry is already initialized"))
            }
            State::Failed(error) => return Err(RegistryError::InitFailed(Box::new(error.clone()))),
        };
        let existing = self.declared_in(entries);
        include::check(&existing, &incoming)?;
        entries.push(Entry::Included(other.clone()));
        Ok(())
    }

    /// Whether `other` is this registry or one it includes, directly or not. An
    /// initialised registry's includes are initialised too, so only registries still
    /// being declared can lead back to one being declared.
    fn includes(&self, other: &MetricsRegistry) -> bool {
        if Arc::ptr_eq(&self.shared, &other.shared) {
            return true;
        }
        let included: Vec<MetricsRegistry> = match &*lock(&self.shared) {
            State::Declaring(entries) => entries
                .iter()
                .filter_map(|entry| match entry {
                    Entry::Included(registry) => Some(registry.clone()),
                    Entry::Declared(_) => None,
                })
                .collect(),
            State::Initialized(_) | State::Failed(_) => Vec::new(),
        };
        included.iter().any(|registry| registry.includes(other))
    }

    /// The names this registry and those it includes declare, each with its registry.
    fn declared(&self) -> Vec<Declared> {
        match &*lock(&self.shared) {
            State::Declaring(entries) => self.declared_in(entries),
            State::Initialized(initialized) => initialized
                .shared
                .iter()
                .map(|(name, _)| Declared::new(name, self))
                .collect(),
            State::Failed(_) => Vec::new(),
        }
    }

    fn declared_in(&self, entries: &[Entry]) -> Vec<Declared> {
        let mut declared = Vec::new();
        for entry in entries {
            match entry {
                Entry::Declared(declaration) => {
                    declared.push(Declared::new(&declaration.name, self))
                }
                Entry::Included(registry) => declared.extend(registry.declared()),
            }
        }
        declared
    }

    /// The metric `name` as type `M`: the same handle the layer records into.
    ///
    /// ```
    /// use tower_prometheus::metrics::Counter;
    /// use tower_prometheus::{MetricsRegistry, RegistryError};
    ///
    /// let registry = MetricsRegistry::new();
    /// assert!(matches!(registry.get::<Counter>("nope"), Err(RegistryError::Unknown { .. })));
    /// ```
    pub fn get<M: Clone + 'static>(&self, name: &str) -> Result<M, RegistryError> {
        Self::get_from(&lock(&self.shared), name)
    }

    fn get_from<M: Clone + 'static>(state: &State, name: &str) -> Result<M, RegistryError> {
        let initialized = match state {
            State::Initialized(initialized) => initialized,
            State::Declaring(entries) => {
                return Err(if Self::names_in(entries, None).iter().any(|n| n == name) {
                    RegistryError::NotInitialized { name: name.into() }
                } else {
                    RegistryError::Unknown { name: name.into() }
                })
            }
            State::Failed(error) => return Err(RegistryError::InitFailed(Box::new(error.clone()))),
        };
        match initialized.read().metrics.get(name) {
            Some(stored) => {
                if let Some(collector) = running_collector() {
                    stored.check_collected(name, &collector);
                }
                stored
                    .downcast::<M>()
                    .ok_or_else(|| RegistryError::WrongType {
                        name: name.into(),
                        requested: public_type_name(std::any::type_name::<M>()),
                        actual: public_type_name(stored.type_name()),
                    })
            }
            None if initialized.collector_names.iter().any(|c| c == name) => {
                Err(RegistryError::WrongType {
                    name: name.into(),
                    requested: public_type_name(std::any::type_name::<M>()),
                    actual: "collector".into(),
                })
            }
            None => Err(RegistryError::Unknown { name: name.into() }),
        }
    }

    /// Names of the declared providers, in order (after initialisation: the metrics).
    pub fn provider_names(&self) -> Vec<String> {
        self.names(true)
    }

    /// Names of the declared collectors, in order.
    pub fn collector_names(&self) -> Vec<String> {
        self.names(false)
    }

    /// Turns on multi-process mode with the files in `dir`, whatever
    /// `PROMETHEUS_MULTIPROC_DIR` says; see [`crate::multiprocess`].
    /// The directory is checked when the registry is initialised.
    pub fn multiprocess_dir(&self, dir: impl Into<PathBuf>) -> Result<(), RegistryError> {
        let dir = dir.into();
        self.configure("multi-process mode", |settings| {
            settings.multiprocess = MultiprocessSetting::Dir(dir)
        })
    }

    /// Whether, in multi-process mode, the files of exited processes are folded into
    /// one archive per kind of file (default [`Folding::Auto`]: where every file is
    /// this crate's); see [`crate::multiprocess`].
    ///
    /// ```
    /// use tower_prometheus::multiprocess::Folding;
    /// use tower_prometheus::MetricsRegistry;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = MetricsRegistry::new();
    /// // A Python process scrapes this directory too, which no fold can see.
    /// registry.multiprocess_folding(Folding::Off)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn multiprocess_folding(&self, folding: Folding) -> Result<(), RegistryError> {
        self.configure("multi-process folding", |settings| {
            settings.folding = folding
        })
    }

    /// Keeps every value in this process, even when `PROMETHEUS_MULTIPROC_DIR` is set.
    pub fn single_process(&self) -> Result<(), RegistryError> {
        self.configure("multi-process mode", |settings| {
            settings.multiprocess = MultiprocessSetting::Off
        })
    }

    /// Leaves out the standard process metrics, which are on by default on Linux (as in
    /// Go's and Python's default registries), read from `/proc` on every scrape, with
    /// the names and meaning of Go's and Python's clients:
    ///
    /// | name | meaning |
    /// |---|---|
    /// | `process_cpu_seconds_total` | user and system CPU time |
    /// | `process_resident_memory_bytes` | resident set size |
    /// | `process_virtual_memory_bytes` | virtual memory size |
    /// | `process_open_fds` | open file descriptors |
    /// | `process_max_fds` | the soft limit on open file descriptors |
    /// | `process_start_time_seconds` | start time, in seconds since the Unix epoch |
    ///
    /// Elsewhere, and for any value `/proc` does not give, the metric is left out. They
    /// describe the process that answers the scrape, also in multi-process mode.
    pub fn without_process_metrics(&self) -> Result<(), RegistryError> {
        self.configure("process metrics", |settings| {
            settings.process_metrics = false
        })
    }

    /// Labels `tower_prometheus_build_info` with the service's own version and commit
    /// (either may be empty to leave it out), so dashboards can mark its deploys.
    ///
    /// ```
    /// use tower_prometheus::MetricsRegistry;
    ///
    /// let registry = MetricsRegistry::new();
    /// registry
    ///     .service_build(env!("CARGO_PKG_VERSION"), option_env!("GIT_COMMIT").unwrap_or(""))
    ///     .unwrap();
    /// ```
    pub fn service_build(&self, version: &str, commit: &str) -> Result<(), RegistryError> {
        let non_empty = |value: &str| (!value.is_empty()).then(|| value.to_string());
        let service = ServiceBuild {
            version: non_empty(version),
            commit: non_empty(commit),
        };
        self.configure("the service build", |settings| settings.service = service)
    }

    /// Changes a setting, which only initialisation reads.
    fn configure(
        &self,
        setting: &'static str,
        change: impl FnOnce(&mut Settings),
    ) -> Result<(), RegistryError> {
        if self.is_initialized() {
            return Err(RegistryError::SettingAfterInit { setting });
        }
        change(&mut self.settings.lock().unwrap_or_else(PoisonError::into_inner));
        Ok(())
    }

    /// Whether the providers have run.
    pub fn is_initialized(&self) -> bool {
        matches!(&*lock(&self.shared), State::Initialized(_))
    }

    /// Declares a provider unless `name` is already declared; used for the layer's
    /// default families, which a user may replace by declaring the name first. On an
    /// initialised registry the provider runs at once, so a layer built after the
    /// endpoint (or after another layer) finds its families.
    pub(crate) fn provider_if_absent<M, F>(
        &self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        provide: F,
    ) -> Result<(), RegistryError>
    where
        M: prometheus_client::registry::Metric + Clone,
        F: FnOnce() -> M + Send + 'static,
    {
        self.add_provider_if_absent(name, Provider::new(help.to_string(), unit, provide))
    }

    /// Registers `provider` under `name` unless the name is declared, as
    /// [`provider_if_absent`](Self::provider_if_absent) does, for a provider built by
    /// the caller (one handed its binding, [`Provider::bound`]).
    pub(crate) fn add_provider_if_absent(
        &self,
        name: &str,
        provider: Provider,
    ) -> Result<(), RegistryError> {
        let mut state = lock(&self.shared);
        match &mut *state {
            State::Initialized(initialized) => initialized.add_if_absent(name, provider),
            state => Self::declare_in(state, name.to_string(), |existing| {
                existing.unwrap_or(DeclarationKind::Provider(provider))
            }),
        }
    }

    /// Runs the providers, once: later calls return the same result.
    pub(crate) fn init(&self) -> Result<Arc<Initialized>, RegistryError> {
        self.initialize_once(Storage::Own)
    }

    /// Runs the providers of this registry and of those it includes, once, with the
    /// values going where `storage` says; later calls return the same result.
    fn initialize_once(&self, storage: Storage<'_>) -> Result<Arc<Initialized>, RegistryError> {
        let mut state = lock(&self.shared);
        let entries = match &mut *state {
            State::Initialized(initialized) => {
                if let Storage::Including(store) = storage {
                    initialized.check_store(store)?;
                }
                return Ok(Arc::clone(initialized));
            }
            State::Failed(error) => return Err(RegistryError::InitFailed(Box::new(error.clone()))),
            State::Declaring(entries) => std::mem::take(entries),
        };
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match initialize(entries, settings, storage) {
            Ok(initialized) => {
                let initialized = Arc::new(initialized);
                *state = State::Initialized(Arc::clone(&initialized));
                Ok(initialized)
            }
            Err(error) => {
                *state = State::Failed(error.clone());
                Err(error)
            }
        }
    }

    fn declare(
        &self,
        name: String,
        make: impl FnOnce(Option<DeclarationKind>) -> DeclarationKind,
    ) -> Result<(), RegistryError> {
        if !is_metric_name(&name) {
            return Err(RegistryError::InvalidName { name });
        }
        Self::declare_in(&mut lock(&self.shared), name, make)
    }

    fn declare_in(
        state: &mut State,
        name: String,
        make: impl FnOnce(Option<DeclarationKind>) -> DeclarationKind,
    ) -> Result<(), RegistryError> {
        let entries = match state {
            State::Declaring(entries) => entries,
            State::Initialized(_) => return Err(RegistryError::AlreadyInitialized { name }),
            State::Failed(error) => return Err(RegistryError::InitFailed(Box::new(error.clone()))),
        };
        let position = entries
            .iter()
            .position(|entry| matches!(entry, Entry::Declared(d) if d.name == name));
        match position.map(|index| (index, entries.remove(index))) {
            Some((index, Entry::Declared(previous))) => {
                let kind = make(Some(previous.kind));
                entries.insert(index, Entry::Declared(Declaration { name, kind }));
            }
            _ => entries.push(Entry::Declared(Declaration {
                kind: make(None),
                name,
            })),
        }
        Ok(())
    }

    fn names(&self, providers: bool) -> Vec<String> {
        match &*lock(&self.shared) {
            State::Declaring(entries) => Self::names_in(entries, Some(providers)),
            State::Initialized(initialized) if providers => {
                let mut names: Vec<_> = initialized.read().metrics.keys().cloned().collect();
                names.sort();
                names
            }
            State::Initialized(initialized) => initialized.collector_names.clone(),
            State::Failed(_) => Vec::new(),
        }
    }

    /// The names declared in `entries` and in the registries they include, in order:
    /// those of providers, of collectors, or (`None`) of both.
    fn names_in(entries: &[Entry], providers: Option<bool>) -> Vec<String> {
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Entry::Declared(d) => {
                    let is_provider = matches!(d.kind, DeclarationKind::Provider(_));
                    if providers.is_none_or(|providers| providers == is_provider) {
                        names.push(d.name.clone());
                    }
                }
                Entry::Included(registry) => names.extend(match providers {
                    Some(providers) => registry.names(providers),
                    None => registry.declared().into_iter().map(|d| d.name).collect(),
                }),
            }
        }
        names
    }

    fn describe_names(&self) -> String {
        list_names(
            self.declared()
                .iter()
                .map(|declared| declared.name.as_str()),
        )
    }
}

/// Names for an error message: each quoted, or `nothing`.
fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<_> = names.into_iter().map(|name| format!("`{name}`")).collect();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

impl fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsRegistry")
            .field("providers", &self.provider_names())
            .field("collectors", &self.collector_names())
            .field("initialized", &self.is_initialized())
            .finish()
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state is only replaced whole, so a panic elsewhere cannot leave it torn.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where an initialisation puts the values of the metrics its providers build.
enum Storage<'a> {
    /// As the registry's own settings say.
    Own,
    /// Where the registry that includes it puts its own (`None`: in this process).
    Including(Option<&'a Arc<ProcessStore>>),
}

fn initialize(
    entries: Vec<Entry>,
    settings: Settings,
    storage: Storage<'_>,
) -> Result<Initialized, RegistryError> {
    let mut registry = Registry::default();
    if settings.process_metrics && cfg!(target_os = "linux") {
        registry.register_collector(Box::new(ProcessCollector));
    }
    registry.register_collector(Box::new(BuildInfoCollector::new(settings.service)));
    let store = match storage {
        Storage::Including(store) => store.cloned(),
        Storage::Own => match settings.multiprocess.dir() {
            Some(dir) => Some(multiprocess::start(&dir)?),
            None => None,
        },
    };
    if let Some(store) = &store {
        registry.register_collector(Box::new(Aggregator::new(
            Arc::clone(store),
            settings.folding,
        )));
    }
    let collector_errors = CollectorErrors::default();
    let mut initialized = Initialized {
        registered: RwLock::new(Registered {
            registry,
            metrics: HashMap::new(),
            exposed: HashSet::new(),
        }),
        store,
        collector_names: Vec::new(),
        collectors: Collectors::new(collector_errors.clone()),
        shared: Vec::new(),
    };
    let registered = initialized
        .registered
        .get_mut()
        .unwrap_or_else(PoisonError::into_inner);

    // Collectors run in the scraped process, so their failures are counted there; each
    // registry counts those of the collectors it runs, so this is not shared.
    let internal = Provider::new(
        "Collector runs that failed, by collector and reason (error, panic or timeout).".into(),
        None,
        move || collector_errors,
    )
    .in_process();
    registered.add(
        COLLECTOR_ERRORS.into(),
        internal,
        initialized.store.as_ref(),
    )?;

    for entry in entries {
        let items = match entry {
            Entry::Declared(Declaration { name, kind }) => {
                let item = match kind {
                    DeclarationKind::Provider(provider) => Shared::Metric(registered.add(
                        name.clone(),
                        provider,
                        initialized.store.as_ref(),
                    )?),
                    DeclarationKind::Collector(collector) => Shared::Collector(collector),
                };
                vec![(name, item)]
            }
            Entry::Included(included) => {
                let storage = Storage::Including(initialized.store.as_ref());
                let included = included.initialize_once(storage)?;
                for (name, item) in &included.shared {
                    if let Shared::Metric(metric) = item {
                        registered.insert(name.clone(), Arc::clone(metric))?;
                    }
                }
                included.shared.clone()
            }
        };
        for (name, item) in items {
            if let Shared::Collector(collector) = &item {
                initialized.collectors.push(&name, collector.clone());
                initialized.collector_names.push(name.clone());
            }
            initialized.shared.push((name, item));
        }
    }
    Ok(initialized)
}

/// `type_name` with every path as users write it: this crate's private modules left
/// out (`tower_prometheus::metrics::Counter`, not `tower_prometheus::metrics::counter::Counter`),
/// and `std` for what `core` and `alloc` define.
pub(crate) fn public_type_name(type_name: &str) -> String {
    let mut public = String::with_capacity(type_name.len());
    let mut rest = type_name;
    while !rest.is_empty() {
        let is_path = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
        let path_len = rest.find(|c: char| !is_path(c)).unwrap_or(rest.len());
        public_path(&rest[..path_len], &mut public);
        let other_len = rest[path_len..]
            .find(is_path)
            .unwrap_or(rest.len() - path_len);
        public.push_str(&rest[path_len..path_len + other_len]);
        rest = &rest[path_len + other_len..];
    }
    public
}

/// Writes `path` as users write it (see [`public_type_name`]).
fn public_path(path: &str, out: &mut String) {
    let segments: Vec<&str> = path.split("::").collect();
    let kept = match segments.as_slice() {
        // Public types sit at the crate root or one public module below it.
        ["tower_prometheus", module, .., item] if PUBLIC_MODULES.contains(module) => {
            vec!["tower_prometheus", module, item]
        }
        ["tower_prometheus", .., item] => vec!["tower_prometheus", item],
        ["core" | "alloc", rest @ ..] => {
            std::iter::once("std").chain(rest.iter().copied()).collect()
        }
        _ => segments,
    };
    out.push_str(&kept.join("::"));
}

/// The crate's public modules, whose types are re-exported at their top.
const PUBLIC_MODULES: [&str; 8] = [
    "client",
    "endpoint",
    "grpc",
    "layer",
    "metrics",
    "multiprocess",
    "process",
    "registry",
];

#[cfg(test)]
mod tests {
    use super::public_type_name;

    #[test]
    fn type_names_are_written_with_public_paths() {
        assert_eq!(
            public_type_name(
                "tower_prometheus::metrics::family::Family<tower_prometheus::layer::labels::HttpLabels, \
                 tower_prometheus::metrics::counter::Counter>"
            ),
            "tower_prometheus::metrics::Family<tower_prometheus::layer::HttpLabels, \
             tower_prometheus::metrics::Counter>"
        );
        assert_eq!(
            public_type_name("tower_prometheus::error::BuildError"),
            "tower_prometheus::BuildError"
        );
        assert_eq!(
            public_type_name("core::option::Option<alloc::vec::Vec<(alloc::string::String, u8)>>"),
            "std::option::Option<std::vec::Vec<(std::string::String, u8)>>"
        );
        assert_eq!(
            public_type_name("[(&str, alloc::string::String); 1]"),
            "[(&str, std::string::String); 1]"
        );
    }
}
