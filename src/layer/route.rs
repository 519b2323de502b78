//! Which route a request is recorded under.

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use http::request::Parts;
use http::Request;

/// A function naming the route of a request, for routers other than axum. It must
/// return a template (`/users/{id}`), never the raw path, or `None` to use the fallback.
pub type RouteFn = dyn Fn(&Parts) -> Option<Cow<'static, str>> + Send + Sync;

/// The `http_route` value of requests no router or route function names.
pub const DEFAULT_FALLBACK_ROUTE: &str = "_OTHER";

/// Longest route label kept; longer ones are cut at a character boundary, so a route
/// function echoing client input cannot make huge labels.
pub const MAX_ROUTE_LEN: usize = 256;

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
    pub(crate) fn matched<'a, B>(&'a self, request: &'a Request<B>) -> Option<&'a str> {
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
            return Some(matched.as_str());
        }
        #[cfg(not(feature = "axum"))]
        let _ = request;
        self.route_fn.is_none().then_some(&*self.fallback)
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
