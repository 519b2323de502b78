//! The crate's own metric types: cheap [`Clone`] handles over shared atomics.
//!
//! They implement prometheus-client's [`EncodeMetric`](prometheus_client::encoding::EncodeMetric),
//! so they register and encode like any prometheus-client metric, but recording into them
//! takes no lock: a [`Counter`] or [`Gauge`] is one atomic add, a [`Histogram`] two, and
//! finding an existing series of a [`Family`] is a lock-free probe. The layer records
//! into these types; plain prometheus-client metrics can sit beside them in the same
//! registry.

mod counter;
mod family;
mod gauge;
mod histogram;
mod series;
pub(crate) mod shard;
mod table;

pub use counter::Counter;
pub use family::{Family, Labels, DEFAULT_MAX_SERIES, OVERFLOW_LABEL};
pub use gauge::Gauge;
pub use histogram::{Buckets, Histogram, InvalidBuckets};
pub use series::SeriesMetric;
pub(crate) use table::Table;
