//! The crate's own metric types: cheap [`Clone`] handles over shared atomics.
//!
//! They implement prometheus-client's [`EncodeMetric`](prometheus_client::encoding::EncodeMetric),
//! so they register and encode like any prometheus-client metric, but recording into them
//! takes no lock: a [`Counter`] or [`Gauge`] is one atomic add, a [`Histogram`] two (three
//! with [`NativeBuckets`]), and
//! finding an existing series of a [`Family`] is a lock-free probe. The layer records
//! into these types; plain prometheus-client metrics can sit beside them in the same
//! registry.

mod counter;
mod exemplar;
mod family;
mod gauge;
mod histogram;
mod label_names;
mod labels;
mod native;
mod series;
mod table;

pub use counter::{Counter, InvalidIncrement};
pub use exemplar::{ExemplarLabels, MAX_EXEMPLAR_LABELS, MAX_EXEMPLAR_LENGTH};
pub(crate) use exemplar::{ExemplarRef, RequestExemplar, TraceContext};
pub use family::{Family, DEFAULT_MAX_SERIES, OVERFLOW_LABEL};
pub use gauge::Gauge;
pub use histogram::{Buckets, Histogram, InvalidBuckets};
pub use label_names::LabelError;
pub(crate) use labels::ConstantLabels;
pub use labels::Labels;
pub use native::{InvalidNativeBuckets, NativeBuckets, MAX_SCHEMA, MIN_SCHEMA};
pub use series::SeriesMetric;

/// Label pairs known only at run time, the label set the family aliases default to.
pub type LabelPairs = Vec<(String, String)>;

/// A family of counters, by default labelled with any [`LabelPairs`]; name the type
/// with it in [`MetricsRegistry::get`](crate::MetricsRegistry::get).
///
/// ```
/// use tower_prometheus::metrics::CounterFamily;
/// use tower_prometheus::{MetricsEndpoint, MetricsRegistry};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let registry = MetricsRegistry::new();
/// // `<CounterFamily>` (a type) takes the default labels, where `CounterFamily::` would not.
/// registry.provider("jobs_done", "Jobs done, by queue.", <CounterFamily>::default)?;
/// let _endpoint = MetricsEndpoint::new(&registry)?;
/// let jobs = registry.get::<CounterFamily>("jobs_done")?;
/// jobs.get_or_create(&vec![("queue".into(), "mail".into())]).inc();
///
/// // Fixed label names need no allocation of their own:
/// let by_tenant: CounterFamily<[(&'static str, String); 1]> = CounterFamily::default();
/// by_tenant.get_or_create(&[("tenant", "acme".to_string())]).inc();
///
/// // Label names declared once, as Python's `labelnames`, and values by position:
/// let orders = <CounterFamily>::default().label_names(["method", "status"]);
/// orders.labels(&["GET", "200"])?.inc();
/// # Ok(())
/// # }
/// ```
pub type CounterFamily<L = LabelPairs> = Family<L, Counter>;

/// A family of gauges, by default labelled with any [`LabelPairs`] (see
/// [`CounterFamily`]).
pub type GaugeFamily<L = LabelPairs> = Family<L, Gauge>;

/// A family of histograms, by default labelled with any [`LabelPairs`] (see
/// [`CounterFamily`]).
pub type HistogramFamily<L = LabelPairs> = Family<L, Histogram>;
pub(crate) use crate::storage::shard;
pub(crate) use table::Table;
