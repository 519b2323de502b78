//! [`PushError`]: why a pusher could not be built, or a push did not succeed.

use std::time::Duration;

use http::{Method, StatusCode};

use crate::endpoint::ScrapeError;
use crate::RegistryError;

/// The longest part of a rejection's body kept in [`PushError::Rejected`], in bytes.
pub const MAX_REJECTION_BODY: usize = 4096;

/// Why a [`Pusher`](super::Pusher) could not be built, or a push or delete did not
/// succeed.
///
/// The first four variants come from [`PusherBuilder::build`](super::PusherBuilder::build),
/// the others from a request. None of them loses anything the registry counted: a
/// failed push can be sent again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The Pushgateway's address is not an `http://` URL with a host, or has a query.
    #[error("invalid Pushgateway URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
        /// The parse error, when the URL did not parse at all.
        #[source]
        source: Option<http::uri::InvalidUri>,
    },
    /// The job name is empty, which the Pushgateway refuses.
    #[error("invalid job name: it is empty")]
    EmptyJob,
    /// A grouping label's name is not a Prometheus label name, is reserved (`job`, or
    /// starts with `__`), or is given twice.
    #[error("invalid grouping label `{name}`: {reason}")]
    InvalidLabel {
        /// The label name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The credentials cannot be sent in an `Authorization` header (they themselves
    /// are kept out of the message).
    #[error("invalid credentials: {0}")]
    InvalidCredentials(&'static str),
    /// Initialising the registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A metric failed to encode itself.
    #[error("encoding the registry for the push failed")]
    Encode(#[source] ScrapeError),
    /// No connection could be made to the Pushgateway.
    #[error("the Pushgateway at {gateway} is unreachable")]
    Unreachable {
        /// The Pushgateway's address, as it was connected to.
        gateway: String,
        /// The connect error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection was made, but the exchange failed before a response came (the
    /// connection was closed, or the response was not HTTP).
    #[error("the {method} to the Pushgateway at {gateway} failed before an answer")]
    Exchange {
        /// The request's method.
        method: Method,
        /// The Pushgateway's address.
        gateway: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No answer (its body included, for a rejection) within the pusher's timeout.
    #[error("the {method} to the Pushgateway got no answer within {timeout:?}")]
    Timeout {
        /// The request's method.
        method: Method,
        /// The pusher's timeout.
        timeout: Duration,
    },
    /// The Pushgateway answered with a status other than `2xx`: `400` for metrics
    /// inconsistent with those of other groups or its own, `401` for missing or wrong
    /// credentials, for example.
    #[error("the Pushgateway rejected the {method} with {status}: {body}")]
    Rejected {
        /// The request's method.
        method: Method,
        /// The status of the answer.
        status: StatusCode,
        /// The start of the answer's body (at most [`MAX_REJECTION_BODY`] bytes,
        /// invalid UTF-8 replaced), which says why.
        body: String,
    },
}
