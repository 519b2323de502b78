//! Errors of declaring, initialising and reading a registry.

use std::sync::Arc;

use crate::multiprocess::MultiprocessError;

/// What went wrong with a registry operation. Every variant names the metric or
/// collector it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// `get` before the registry was initialised (providers run when a
    /// [`MetricsLayer`](crate::MetricsLayer) or [`MetricsEndpoint`](crate::MetricsEndpoint)
    /// is built).
    #[error(
        "metric `{name}` is not initialized yet: providers run when a metrics layer or endpoint \
         is built on this registry or on one that includes it"
    )]
    NotInitialized {
        /// The name asked for.
        name: String,
    },
    /// No provider or collector has this name.
    #[error("unknown metric `{name}`: no provider or collector is registered under that name")]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// The name holds something of another type than the one asked for.
    #[error("metric `{name}` is a {actual}, not a {requested}")]
    WrongType {
        /// The name asked for.
        name: String,
        /// The type asked for, by its public path.
        requested: String,
        /// The type registered under the name, by its public path (or `collector`).
        actual: String,
    },
    /// Two registries being merged, or two metrics once their exposition names are
    /// derived, have the same name.
    #[error("duplicate metric name `{name}`")]
    Duplicate {
        /// The name declared twice.
        name: String,
    },
    /// Two registries being merged declare names that could put the same name on the
    /// wire, such as `jobs` (a counter exposes `jobs_total`) and `jobs_total`, or `x`
    /// and `x_count` (a histogram `x` exposes `x_count`).
    #[error(
        "`{name}` of {registry} and `{other}` of {other_registry} could both expose `{exposed}` \
         (a counter adds `_total` and `_created`, a histogram `_bucket`, `_count` and `_sum`, \
         an info `_info`): rename one of them"
    )]
    NameCollision {
        /// The name declared first, in the including registry (or one it includes).
        name: String,
        /// The registry declaring `name`: its [name](crate::MetricsRegistry::named),
        /// or `the including registry`.
        registry: String,
        /// The name declared in the included registry (or one it includes).
        other: String,
        /// The registry declaring `other`: its name, or `the included registry`.
        other_registry: String,
        /// The name both could expose.
        exposed: String,
    },
    /// The name does not match `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name `{name}`: a name is a letter, `_` or `:` followed by letters, digits, `_` or `:`")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// A declaration after the registry was initialised, which would never run.
    #[error("cannot register `{name}`: the registry is already initialized")]
    AlreadyInitialized {
        /// The name being declared.
        name: String,
    },
    /// A provider panicked while building its metric at initialisation.
    #[error("the provider of metric `{name}` panicked: {message}")]
    ProviderPanicked {
        /// The provider's name.
        name: String,
        /// The panic's message.
        message: String,
    },
    /// `include_registry` of a registry into itself or into one it includes, of one
    /// already included there, into a registry already initialised, or the build of a
    /// registry including one whose metrics keep their values elsewhere.
    #[error("cannot include the registry declaring {names}: {reason}")]
    CannotInclude {
        /// Names declared by the registry being included.
        names: String,
        /// Why it cannot be included.
        reason: &'static str,
    },
    /// Multi-process mode was asked for (`PROMETHEUS_MULTIPROC_DIR` or
    /// [`MetricsRegistry::multiprocess_dir`](crate::MetricsRegistry::multiprocess_dir)) but
    /// cannot start, for example because the directory is missing or not writable.
    #[error("multi-process mode cannot start: {source}")]
    Multiprocess {
        /// What went wrong, shared so that the error of a failed initialisation can be
        /// returned again.
        #[source]
        source: Arc<MultiprocessError>,
    },
    /// A setting changed after the registry was initialised, which reads settings
    /// only then.
    #[error("cannot change {setting}: the registry is already initialized")]
    SettingAfterInit {
        /// The setting, as its method's docs name it.
        setting: &'static str,
    },
    /// An earlier initialisation of this registry failed, so it holds no metrics.
    #[error("the registry failed to initialize: {0}")]
    InitFailed(Box<RegistryError>),
}

impl From<MultiprocessError> for RegistryError {
    fn from(error: MultiprocessError) -> Self {
        RegistryError::Multiprocess {
            source: Arc::new(error),
        }
    }
}
