//! Which route a request is recorded under.

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

#[cfg(feature = "axum")]
use axum::extract::MatchedPath;
use http::request::Parts;
use http::Request;

use crate::record::HttpMethod;
use crate::record::MAX_ROUTE_LEN;

/// A function naming the route of a request, for routers other than axum. It must
/// return a template (`/users/{id}`), never the raw path, or `None` to use the fallback.
pub type RouteFn = dyn Fn(&Parts) -> Option<Cow<'static, str>> + Send + Sync;

/// Resolves the route: axum's `MatchedPath`, else the route function, else the fallback.
#[derive(Clone)]
pub(crate) struct RouteResolver {
    route_fn: Option<Arc<RouteFn>>,
    fallback: Arc<str>,
}

impl RouteResolver {
    pub(crate) fn new(route_fn: Option<Arc<RouteFn>>, fallback: Arc<str>) -> Self {
        Self { route_fn, fallback }
    }

    /// The route a router put on the request (axum's `MatchedPath`), or, when there
    /// is no route function to ask, the fallback: found without taking the request apart.
    pub(crate) fn known<'a, B>(&'a self, request: &'a Request<B>) -> Option<KnownRoute<'a>> {
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<MatchedPath>() {
            return Some(KnownRoute::Matched(matched));
        }
        #[cfg(not(feature = "axum"))]
        let _ = request;
        self.route_fn
            .is_none()
            .then_some(KnownRoute::Fallback(&self.fallback))
    }

    /// The route from the route function, else the fallback.
    pub(crate) fn resolve<'a>(&'a self, parts: &'a Parts) -> Cow<'a, str> {
        if let Some(route_fn) = &self.route_fn {
            // A panicking route function falls back rather than failing the request.
            if let Ok(Some(route)) = catch_unwind(AssertUnwindSafe(|| route_fn(parts))) {
                return bounded(route);
            }
        }
        Cow::Borrowed(&self.fallback)
    }
}

/// A route known from the request alone, by where its name came from.
#[derive(Clone, Copy)]
pub(crate) enum KnownRoute<'a> {
    /// The template axum's router matched.
    #[cfg(feature = "axum")]
    Matched(&'a MatchedPath),
    /// The layer's fallback route.
    Fallback(&'a str),
}

impl<'a> KnownRoute<'a> {
    pub(crate) fn as_str(self) -> &'a str {
        match self {
            #[cfg(feature = "axum")]
            KnownRoute::Matched(matched) => matched.as_str(),
            KnownRoute::Fallback(route) => route,
        }
    }

    /// The route cache slot of this route with `method`, out of `slots` (a power of two).
    pub(crate) fn slot(self, method: HttpMethod, slots: usize) -> usize {
        let address = self.as_str().as_ptr() as usize;
        // Fibonacci hashing: the high bits of the product mix every bit of the address.
        let mixed = ((address ^ method as usize) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 32) as usize & (slots - 1)
    }

    /// A handle that keeps this route's name alive, to recognise it later.
    pub(crate) fn identity(self) -> RouteIdentity {
        match self {
            #[cfg(feature = "axum")]
            KnownRoute::Matched(matched) => RouteIdentity::Matched(matched.clone()),
            KnownRoute::Fallback(_) => RouteIdentity::Fallback,
        }
    }

    /// Whether this is the route `identity` was made from. axum hands every request
    /// of a route a clone of the same shared string, so an equal address means the
    /// same route; the identity holds a clone, so the address cannot be reused by
    /// another string meanwhile. A route axum builds per request (nested routers)
    /// only ever misses.
    pub(crate) fn is(self, identity: &RouteIdentity) -> bool {
        match (self, identity) {
            #[cfg(feature = "axum")]
            (KnownRoute::Matched(matched), RouteIdentity::Matched(known)) => {
                std::ptr::eq(matched.as_str(), known.as_str())
            }
            // One layer has one fallback.
            (KnownRoute::Fallback(_), RouteIdentity::Fallback) => true,
            #[cfg(feature = "axum")]
            _ => false,
        }
    }
}

/// An owned [`KnownRoute`], kept to recognise that route again without comparing names.
pub(crate) enum RouteIdentity {
    #[cfg(feature = "axum")]
    Matched(MatchedPath),
    Fallback,
}

fn bounded(route: Cow<'static, str>) -> Cow<'static, str> {
    if route.len() <= MAX_ROUTE_LEN {
        return route;
    }
    let mut end = MAX_ROUTE_LEN;
    while !route.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(route[..end].to_string())
}

impl fmt::Debug for RouteResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteResolver")
            .field("route_fn", &self.route_fn.is_some())
            .field("fallback", &self.fallback)
            .finish()
    }
}
