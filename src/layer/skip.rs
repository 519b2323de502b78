//! Which requests the layer leaves unrecorded.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use http::request::Parts;
use http::Request;

use super::head::with_parts;

/// A predicate on a request's head: `true` leaves the request unrecorded.
pub type SkipFn = dyn Fn(&Parts) -> bool + Send + Sync;

/// The routes and the predicate of the requests a layer does not record. A layer
/// without either holds none, so it pays one branch per request.
#[derive(Clone, Default)]
pub(crate) struct Skip {
    routes: Vec<Box<str>>,
    predicate: Option<Arc<SkipFn>>,
}

impl Skip {
    pub(crate) fn add_routes(&mut self, routes: impl IntoIterator<Item = Box<str>>) {
        self.routes.extend(routes);
    }

    pub(crate) fn set_predicate(&mut self, predicate: Arc<SkipFn>) {
        self.predicate = Some(predicate);
    }

    /// Itself, unless it skips nothing.
    pub(crate) fn into_option(self) -> Option<Self> {
        (!self.routes.is_empty() || self.predicate.is_some()).then_some(self)
    }

    /// Whether the predicate skips `request`.
    pub(crate) fn request<B>(&self, request: &mut Request<B>) -> bool {
        let Some(predicate) = &self.predicate else {
            return false;
        };
        // A panicking predicate records the request rather than failing it.
        with_parts(request, |parts| {
            catch_unwind(AssertUnwindSafe(|| predicate(parts))).unwrap_or(false)
        })
    }

    /// Whether `route`, as the layer resolved it, is one of the skipped routes.
    pub(crate) fn route(&self, route: &str) -> bool {
        self.routes.iter().any(|skipped| **skipped == *route)
    }
}

impl fmt::Debug for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Skip")
            .field("routes", &self.routes)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}
