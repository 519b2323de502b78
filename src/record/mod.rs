//! The recording core: what every kind of call shares on its way into its families.
//!
//! - [`OutcomeSlots`]: the series of a handful of outcomes, beside a series, found
//!   by a scan.
//! - [`SeriesCache`]: label key -> the handles of that key's series, one copy per
//!   shard, found without a lock; capped, past the cap one overflow series.
//! - [`Guard`]: records a call exactly once, however it ends: with its outcome, after
//!   a panic, or dropped unanswered.
//! - [`Objectives`] and [`Latency`]: service-level objectives exported as data, and
//!   the count of calls within a latency threshold.
//! - [`FamilyNames`]: the prefix of a layer's family names and the constant labels
//!   of their series, checked.
//! - [`HistogramLayout`]: classic buckets, native ones, or both, for the duration
//!   histograms of every adapter and for the facade's histograms.
//! - [`LabelValues`] and [`ReadLabels`]: labels read from each call (a header, gRPC
//!   metadata), bounded to allowed or first-seen values, resolved to indices packed
//!   in one word ([`ValueIndices`]) that key series.
//! - [`HttpMethod`]: the `http_request_method` label of HTTP requests, served or sent.
//! - [`DEFAULT_FALLBACK_ROUTE`] and [`MAX_ROUTE_LEN`]: the label of what nothing
//!   names, and the longest name kept.
//!
//! An adapter (HTTP server, gRPC server, and so on for each kind of call) is written
//! in three parts:
//! 1. Its families and label sets: the names, help texts and labels of its kind of
//!    call, declared as registry providers.
//! 2. Its series type, holding one series' metric handles and its shard, made per
//!    shard by [`shards`] and kept in a [`SeriesCache`] by the key it resolves a call
//!    to (route and method; service and method), with its [`Latency`] when an
//!    objective names it. Recording calls the handles' `*_in(shard, ..)` methods.
//! 3. A type implementing [`Record`] for what a call ends with (a status, a code),
//!    held by a [`Guard`] from the call's start to its end.

mod cache;
mod guard;
mod histograms;
mod http_method;
mod naming;
mod read_labels;
mod slo;
mod slots;

pub(crate) use cache::{shards, SeriesCache, Shards};
pub(crate) use guard::{Guard, MarkPanicked, PanicWatch, Record, Unanswered};
pub(crate) use histograms::HistogramLayout;
pub use http_method::HttpMethod;
pub(crate) use naming::FamilyNames;
pub(crate) use read_labels::{
    read_label_methods, ExtraPairs, LabelPair, ReadLabels, Refusal, ValueIndices,
};
pub use read_labels::{LabelValues, RequestLabelFn, MAX_EXTRA_LABELS};
pub use slo::Objective;
pub(crate) use slo::{Latencies, Latency, ObjectiveFamilies, Objectives, SLO_LABEL_NAMES};
pub(crate) use slots::OutcomeSlots;

/// The `http_route` value of requests no router or route function names, and the
/// gRPC service and method of calls that name no served method.
pub(crate) const DEFAULT_FALLBACK_ROUTE: &str = "_OTHER";

/// Longest route label kept; longer ones are cut at a character boundary, and a
/// longer gRPC path names no method, so client input cannot make huge labels.
pub(crate) const MAX_ROUTE_LEN: usize = 256;
