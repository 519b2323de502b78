//! Labels the layer reads from each HTTP request and response, each bounded to a set
//! of values (see [`ReadLabels`]) so that clients cannot create series.

use std::fmt;
use std::sync::Arc;

use http::{response, Request, Response};

use super::head::{with_parts, with_response_parts};
use crate::record::{LabelPair, LabelValues, ReadLabels, Refusal, RequestLabelFn, ValueIndices};

/// Reads a label's value from a response's head; `None` leaves the label empty.
pub type ResponseLabelFn = dyn for<'a> Fn(&'a response::Parts) -> Option<&'a str> + Send + Sync;

/// Why a label past the limit is refused.
const PAST_LIMIT: &str = "a layer reads at most 4 labels from requests and 4 from responses";

/// The labels a layer reads from requests and responses.
#[derive(Default)]
pub(crate) struct ExtraLabels {
    request: ReadLabels<RequestLabelFn>,
    response: ReadLabels<ResponseLabelFn>,
}

impl ExtraLabels {
    /// Adds a label read from requests.
    pub(crate) fn add_request(
        &mut self,
        name: String,
        values: LabelValues,
        read: Arc<RequestLabelFn>,
    ) {
        self.request.add(name, values, read);
    }

    /// Adds a label read from responses.
    pub(crate) fn add_response(
        &mut self,
        name: String,
        values: LabelValues,
        read: Arc<ResponseLabelFn>,
    ) {
        self.response.add(name, values, read);
    }

    /// Whether requests carry labels of their own.
    pub(crate) fn reads_requests(&self) -> bool {
        !self.request.is_empty()
    }

    /// Whether responses carry labels of their own.
    pub(crate) fn reads_responses(&self) -> bool {
        !self.response.is_empty()
    }

    /// The first label that cannot be added to families with labels `taken`, and why.
    pub(crate) fn refusal(&self, taken: &[&str]) -> Option<Refusal> {
        let requests: Vec<&str> = self.request.names().collect();
        self.request
            .refusal(taken, &[], PAST_LIMIT)
            .or_else(|| self.response.refusal(taken, &requests, PAST_LIMIT))
    }

    /// The value indices of `request`'s labels.
    pub(crate) fn request_values<B>(&self, request: &mut Request<B>) -> ValueIndices {
        request_values(&self.request, request)
    }

    /// The value indices of `response`'s labels.
    pub(crate) fn response_values<B>(&self, response: &mut Response<B>) -> ValueIndices {
        with_response_parts(response, |parts| self.response.indices(|read| read(parts)))
    }

    /// The name and value of each request label, for the series of `values`.
    pub(crate) fn request_pairs(&self, values: ValueIndices) -> Vec<LabelPair> {
        self.request.pairs(values)
    }

    /// The name and value of each response label, for the series of `values`.
    pub(crate) fn response_pairs(&self, values: ValueIndices) -> Vec<LabelPair> {
        self.response.pairs(values)
    }
}

/// The value indices of `labels` in `request`: all empty, without lending the head,
/// when there are none.
pub(crate) fn request_values<B>(
    labels: &ReadLabels<RequestLabelFn>,
    request: &mut Request<B>,
) -> ValueIndices {
    if labels.is_empty() {
        return ValueIndices::default();
    }
    with_parts(request, |parts| labels.indices(|read| read(parts)))
}

impl fmt::Debug for ExtraLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtraLabels")
            .field("request", &self.request)
            .field("response", &self.response)
            .finish()
    }
}
