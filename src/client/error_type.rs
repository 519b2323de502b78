//! [`ErrorType`]: the `error_type` label of a request that failed, read from its error.

use std::error::Error;
use std::io;

/// The error of the client service and its response body: the inner client's, boxed.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// The `error_type` label of an outgoing request that failed, a short identifier as
/// OpenTelemetry's semantic conventions ask for, from a closed set so errors cannot
/// make series. The error's chain of [`source`](Error::source)s is searched for the
/// first cause the layer knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    /// `timeout`: a [`tower::timeout::error::Elapsed`] (a `Timeout` layer gave up), or
    /// an I/O error of kind `TimedOut`.
    Timeout,
    /// `connection_refused`: nothing listened at the server's address.
    ConnectionRefused,
    /// `connection_reset`: the server reset or aborted the connection.
    ConnectionReset,
    /// `cancelled`: the caller dropped the request's future before a response came.
    Cancelled,
    /// `_OTHER`: any other error.
    Other,
}

impl ErrorType {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Timeout => "timeout",
            ErrorType::ConnectionRefused => "connection_refused",
            ErrorType::ConnectionReset => "connection_reset",
            ErrorType::Cancelled => "cancelled",
            ErrorType::Other => "_OTHER",
        }
    }

    /// The type of `error`: the first cause in its chain the layer knows, else
    /// [`Other`](Self::Other).
    pub fn of(error: &(dyn Error + 'static)) -> Self {
        let mut cause = Some(error);
        while let Some(error) = cause {
            if error.is::<tower::timeout::error::Elapsed>() {
                return ErrorType::Timeout;
            }
            if let Some(known) = error.downcast_ref::<io::Error>().and_then(of_io) {
                return known;
            }
            cause = error.source();
        }
        ErrorType::Other
    }
}

fn of_io(error: &io::Error) -> Option<ErrorType> {
    match error.kind() {
        io::ErrorKind::TimedOut => Some(ErrorType::Timeout),
        io::ErrorKind::ConnectionRefused => Some(ErrorType::ConnectionRefused),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            Some(ErrorType::ConnectionReset)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapped(#[source] io::Error);

    #[test]
    fn causes_are_found_anywhere_in_the_chain() {
        let refused = Wrapped(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(ErrorType::of(&refused), ErrorType::ConnectionRefused);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(ErrorType::of(&reset), ErrorType::ConnectionReset);
        let elapsed: Box<dyn Error + Send + Sync> = tower::timeout::error::Elapsed::new().into();
        assert_eq!(ErrorType::of(&*elapsed), ErrorType::Timeout);
        let other = Wrapped(io::Error::other("disk"));
        assert_eq!(ErrorType::of(&other), ErrorType::Other);
        assert_eq!(ErrorType::Other.as_str(), "_OTHER");
    }
}
