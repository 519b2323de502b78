//! Who may scrape: a bearer token, or any predicate on the request.

use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};

/// The parts of a scrape request a guard may look at.
#[derive(Debug)]
pub struct ScrapeRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
}

impl ScrapeRequest<'_> {
    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }

    /// The request extensions (for example axum's `ConnectInfo` with the peer address).
    pub fn extensions(&self) -> &Extensions {
        self.extensions
    }
}

/// Decides whether a scrape is allowed; an unauthorised one gets `401 Unauthorized`.
#[derive(Clone)]
pub(crate) struct ScrapeGuard {
    allows: Arc<dyn Fn(&ScrapeRequest<'_>) -> bool + Send + Sync>,
}

impl ScrapeGuard {
    pub(crate) fn new(allows: impl Fn(&ScrapeRequest<'_>) -> bool + Send + Sync + 'static) -> Self {
        Self {
            allows: Arc::new(allows),
        }
    }

    /// Allows requests with `Authorization: Bearer <token>`.
    pub(crate) fn bearer(token: &str) -> Self {
        let expected = format!("Bearer {token}").into_bytes();
        Self::new(move |request| {
            request
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|value| constant_time_eq(value.as_bytes(), &expected))
        })
    }

    pub(crate) fn allows(&self, request: &ScrapeRequest<'_>) -> bool {
        (self.allows)(request)
    }
}

impl fmt::Debug for ScrapeGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeGuard").finish_non_exhaustive()
    }
}

/// Compares without stopping at the first difference, so the time taken does not
/// tell how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_must_match_exactly() {
        let guard = ScrapeGuard::bearer("s3cret");
        let check = |value: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_static(value),
                );
            }
            guard.allows(&ScrapeRequest {
                method: &Method::GET,
                uri: &Uri::from_static("/metrics"),
                headers: &headers,
                extensions: &Extensions::new(),
            })
        };
        assert!(check(Some("Bearer s3cret")));
        assert!(!check(Some("Bearer s3cre")));
        assert!(!check(Some("Bearer s3cret2")));
        assert!(!check(Some("Basic s3cret")));
        assert!(!check(None));
    }
}
