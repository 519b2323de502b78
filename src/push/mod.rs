//! Pushing a registry to a Prometheus Pushgateway (feature `push`, off by default).
//!
//! A batch job that ends before Prometheus could scrape it pushes its metrics to a
//! [Pushgateway](https://github.com/prometheus/pushgateway), which keeps them for the
//! scrapes. A [`Pusher`] names one group there, a job and grouping labels, and speaks the
//! Pushgateway's three methods: [`push`](Pusher::push) (`PUT`, replace the group),
//! [`push_add`](Pusher::push_add) (`POST`, replace the families sent) and
//! [`delete`](Pusher::delete) (`DELETE`, remove the group).
//!
//! - `group.rs`: the group's URL, with the Pushgateway's `@base64` encoding.
//! - `client.rs`: the [`Pusher`], its builder and the requests (hyper 1 over HTTP/1.1,
//!   plain `http://`: no TLS).
//! - `error.rs`: [`PushError`], from building a pusher to a rejected push.
//! - `base64.rs`: the two base64 alphabets the requests need.
//!
//! ```no_run
//! use tower_prometheus::metrics::Counter;
//! use tower_prometheus::push::{PushError, Pusher};
//! use tower_prometheus::MetricsRegistry;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The job keeps a handle; the provider gives the registry a clone of it.
//! let rows = Counter::default();
//! let registry = MetricsRegistry::new();
//! registry.provider("rows_copied", "Rows copied by the backup.", {
//!     let rows = rows.clone();
//!     move || rows
//! })?;
//! let pusher = Pusher::builder("http://127.0.0.1:9091", "nightly_backup")
//!     .grouping("instance", "db-1")
//!     .basic_auth("pusher", "secret")
//!     .build()?;
//!
//! rows.inc_by(1_000);
//! match pusher.push(&registry).await {
//!     Ok(()) => {}
//!     Err(PushError::Rejected { status, body, .. }) => eprintln!("refused ({status}): {body}"),
//!     Err(other) => return Err(other.into()),
//! }
//! # Ok(())
//! # }
//! ```

mod base64;
mod client;
mod error;
mod group;

pub use client::{Pusher, PusherBuilder, DEFAULT_TIMEOUT};
pub use error::{PushError, MAX_REJECTION_BODY};
