//! Errors of building the layer and the endpoint.

use crate::RegistryError;

/// Why a [`MetricsLayer`](crate::MetricsLayer) or
/// [`MetricsEndpoint`](crate::MetricsEndpoint) could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Initialising the registry failed, or a default family was replaced by a metric
    /// of another type.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A service-level objective's target is not between 0 and 1.
    #[error("invalid objective: {0}")]
    InvalidObjective(String),
    /// A declared gRPC method path is not `/package.Service/Method`.
    #[error("`{0}` is not a gRPC method path (`/package.Service/Method`)")]
    InvalidGrpcMethod(String),
    /// A layer setting cannot take effect on the registry it is built on, for example
    /// another `max_series` than the families it shares with an earlier layer.
    #[error("layer setting `{setting}` cannot take effect: {message}")]
    Setting {
        /// The builder method of the setting.
        setting: &'static str,
        /// Why, and what to do instead.
        message: String,
    },
    /// A constant label of the layer cannot be used: see [`LabelProblem`].
    #[error("constant label `{name}`: {problem}")]
    ConstantLabel {
        /// The label name.
        name: String,
        /// What is wrong with it.
        problem: LabelProblem,
    },
    /// The prefix of the layer's family names does not match `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid family name prefix `{0}`: it must match `[a-zA-Z_][a-zA-Z0-9_]*`")]
    InvalidPrefix(String),
    /// A label read from requests, responses or gRPC calls cannot be added.
    #[error("label `{label}` cannot be added: {reason}")]
    InvalidLabel {
        /// The label's name.
        label: String,
        /// Why.
        reason: &'static str,
    },
    /// A label read from gRPC metadata names a key it cannot be read from: a binary
    /// (`-bin`) key, or not a metadata key at all.
    #[error("label `{label}` cannot be read from metadata key `{key}`: {reason}")]
    InvalidMetadataKey {
        /// The label's name.
        label: String,
        /// The key, as given.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// The endpoint path is not an absolute path.
    #[error("invalid metrics endpoint path `{0}`: it must start with `/`")]
    InvalidPath(String),
    /// The endpoint's bearer token could never match a request (the token itself is
    /// kept out of the message).
    #[error("invalid bearer token for the metrics endpoint: {0}")]
    InvalidBearerToken(&'static str),
}

/// Why a constant label of the layer cannot be used, in [`BuildError::ConstantLabel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelProblem {
    /// Not a label name: it must match `[a-zA-Z_][a-zA-Z0-9_]*`, and names starting
    /// with `__` are reserved by Prometheus.
    #[error("not a label name (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`)")]
    InvalidName,
    /// A label the layer's families give their series themselves (`http_route`,
    /// `grpc_code`, `le`, ...).
    #[error("a label the layer's families set themselves")]
    FamilyLabel,
    /// Given twice.
    #[error("given twice")]
    Duplicate,
}
