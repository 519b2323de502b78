//! A recorder for the [`metrics`] facade (feature `metrics`): the
//! `counter!`, `gauge!` and `histogram!` calls of an application and its libraries
//! record into families of a [`MetricsRegistry`](crate::MetricsRegistry), beside the
//! layer's, served by the same `/metrics` endpoint.
//!
//! - **Names** are sanitized as metrics-exporter-prometheus does (each character
//!   Prometheus does not allow becomes `_`); a counter is exposed with `_total` (given or
//!   not), and a unit given by `describe_*!` is appended as its recommended naming does
//!   (none for `Count`, `ratio` for `Percent`). Label names are sanitized alike, and a
//!   label set is the same series whatever order its labels come in. A histogram's
//!   label named `le` (the bucket bound's) becomes `exported_le`.
//! - **Histograms** are histograms: each gets the buckets of the first
//!   [`buckets_for`](FacadeRecorderBuilder::buckets_for) rule whose [`Matcher`] fits
//!   its name (full names, then prefixes, then suffixes), else the layer's
//!   duration buckets. Native buckets are opt-in, chosen alike:
//!   [`native_histograms_for`](FacadeRecorderBuilder::native_histograms_for) rules,
//!   else the [`native_histograms`](FacadeRecorderBuilder::native_histograms) default;
//!   beside them a histogram keeps classic buckets only if a `buckets_for` rule fits it.
//! - **Label sets** are capped per metric ([`max_series`](FacadeRecorderBuilder::max_series),
//!   2000 by default): past the cap, new label sets fold into one series labelled
//!   `otel_metric_overflow="true"`, as the crate's own families do.
//! - **Descriptions** (`describe_*!`: help text and unit) are taken when a family is
//!   made, at its first record, so describe a metric before recording it (the help
//!   of one never described says so).
//! - **What is not kept as given** is counted in
//!   `tower_prometheus_facade_errors_total{reason}` and logged as a `tracing` warning
//!   naming the metric: a name used with a second kind (`kind_conflict`: the first kind
//!   keeps it), a name another metric of the registry has (`name_taken`), a second,
//!   different description (`description_conflict`: the first stays), a description
//!   after the first record (`late_description`), a NaN histogram observation
//!   (`not_a_number`: left out).
//! - **Multi-process mode**: facade families live in the shared files like the
//!   layer's, so every process's records are in the aggregate; gauges combine by
//!   [`GaugeMode::LiveSum`](crate::multiprocess::GaugeMode::LiveSum) unless
//!   [`gauge_mode`](FacadeRecorderBuilder::gauge_mode) says otherwise. The files have
//!   no native buckets: there histograms keep the classic buckets they have without
//!   native rules.
//!
//! Once `metrics` has resolved a key to its series (the `counter!` call), recording is
//! the series' atomic add: no lock, no allocation. The first record of a key finds or
//! makes its series, which takes a lock, and may wait for a scrape in progress to end;
//! so does each record of a label set past the cap, whose key is not kept.
//!
//! Building the recorder initialises the registry, as building a layer does.
//!
//! ```
//! use tower_prometheus::facade::{FacadeRecorder, Matcher};
//! use tower_prometheus::MetricsRegistry;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = MetricsRegistry::new();
//! let recorder = FacadeRecorder::builder(&registry)
//!     .buckets_for(Matcher::Suffix("_seconds".into()), &[0.01, 0.1, 1.0])
//!     .build()?;
//!
//! // `recorder.install()?` sets it for the whole process; in a test, scope it:
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("orders", "Orders placed.");
//!     metrics::counter!("orders", "kind" => "book").increment(2);
//!     metrics::gauge!("queue.depth").set(3.5);
//!     metrics::histogram!("checkout_seconds").record(0.05);
//! });
//!
//! let orders = registry.get::<tower_prometheus::metrics::CounterFamily>("orders")?;
//! let book = vec![("kind".to_string(), "book".to_string())];
//! assert_eq!(orders.get(&book).map(|c| c.get()), Some(2));
//! # Ok(())
//! # }
//! ```

mod buckets;
mod errors;
mod handles;
mod names;
mod recorder;

pub use buckets::Matcher;
pub use errors::FACADE_ERRORS;
pub use recorder::{FacadeRecorder, FacadeRecorderBuilder, InstallError};
