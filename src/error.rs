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
    /// The endpoint path is not an absolute path.
    #[error("invalid metrics endpoint path `{0}`: it must start with `/`")]
    InvalidPath(String),
    /// The endpoint's bearer token could never match a request (the token itself is
    /// kept out of the message).
    #[error("invalid bearer token for the metrics endpoint: {0}")]
    InvalidBearerToken(&'static str),
}
