//! Who may scrape: a bearer token, or any predicate on the request.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};

use crate::BuildError;

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

/// Why `token` could never travel as `Authorization: Bearer <token>` (empty, or with
/// characters other than visible ASCII), if it could not.
pub(crate) fn token_problem(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        Some("it is empty")
    } else if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
        Some("it has characters other than visible ASCII")
    } else {
        None
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

    /// Allows requests with `Authorization: Bearer <token>`, the scheme in any case
    /// (RFC 9110 section 11.1). A token that no request could carry (empty, or with
    /// characters other than visible ASCII) is refused here rather than never matching.
    pub(crate) fn bearer(token: &str) -> Result<Self, BuildError> {
        if let Some(problem) = token_problem(token) {
            return Err(BuildError::InvalidBearerToken(problem));
        }
        let key = RandomState::new();
        let expected = digest(&key, token.as_bytes());
        Ok(Self::new(move |request| {
            request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|value| bearer_credentials(value.as_bytes()))
                .is_some_and(|presented| digest(&key, presented) == expected)
        }))
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

/// The token of `Bearer <token>` credentials: the scheme in any case, then one or
/// more spaces (RFC 9110 section 11.4).
fn bearer_credentials(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&byte| byte == b' ')?;
    let (scheme, rest) = value.split_at(space);
    let token = rest.trim_ascii_start();
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// A digest of `token` under a key drawn when the guard is built. Comparing digests of
/// a fixed size, never the tokens, takes the same time whatever a guessed token shares
/// with the real one, its length included; a guesser who does not know the key cannot
/// aim at the digest either. Two domain-separated halves make it 128 bits.
fn digest(key: &RandomState, token: &[u8]) -> u128 {
    let half = |domain: u8| {
        let mut hasher = key.build_hasher();
        hasher.write_u8(domain);
        hasher.write(token);
        hasher.finish()
    };
    (u128::from(half(0)) << 64) | u128::from(half(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(guard: &ScrapeGuard, value: Option<&'static [u8]>) -> bool {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_bytes(value).expect("a valid header value"),
            );
        }
        guard.allows(&ScrapeRequest {
            method: &Method::GET,
            uri: &Uri::from_static("/metrics"),
            headers: &headers,
            extensions: &Extensions::new(),
        })
    }

    #[test]
    fn bearer_tokens_must_match_exactly_and_the_scheme_in_any_case() {
        let guard = ScrapeGuard::bearer("s3cret").expect("a valid token");
        for accepted in [
            &b"Bearer s3cret"[..],
            b"bearer s3cret",
            b"BEARER s3cret",
            b"bEaReR   s3cret",
        ] {
            assert!(allows(&guard, Some(accepted)), "{accepted:?}");
        }
        for refused in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Bearer S3CRET",
            b"Bearer",
            b"Bearers3cret",
            b"Bearer\ts3cret",
            b"Basic s3cret",
            b"s3cret",
            b"Bearer \xffs3cret",
        ] {
            assert!(!allows(&guard, Some(refused)), "{refused:?}");
        }
        assert!(!allows(&guard, None));
    }

    #[test]
    fn tokens_no_request_could_carry_are_build_errors() {
        for token in ["", "two words", "tab\t", "caf\u{e9}"] {
            assert!(
                matches!(
                    ScrapeGuard::bearer(token),
                    Err(BuildError::InvalidBearerToken(_))
                ),
                "{token:?}"
            );
        }
    }

    #[test]
    fn digests_are_fixed_size_and_keyed() {
        let (one, other) = (RandomState::new(), RandomState::new());
        assert_eq!(digest(&one, b"s3cret"), digest(&one, b"s3cret"));
        assert_ne!(digest(&one, b"s3cret"), digest(&one, b"s3cre"));
        assert_ne!(digest(&one, b"s3cret"), digest(&other, b"s3cret"));
        // The halves differ, so a digest is not one 64-bit hash written twice.
        let full = digest(&one, b"s3cret");
        assert_ne!(full >> 64, full & u128::from(u64::MAX));
    }
}
