//! Collectors: closures run on every scrape, before encoding, to bring gauges that
//! mirror outside state up to date.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

use super::MetricsRegistry;
use crate::metrics::{Counter, Family};

/// The error a collector may return; any error type converts into it with `?`.
pub type CollectorError = Box<dyn std::error::Error + Send + Sync>;

/// What a collector returns.
pub type CollectorResult = Result<(), CollectorError>;

/// A boxed future returned by an async collector.
pub(crate) type CollectorFuture = Pin<Box<dyn Future<Output = CollectorResult> + Send>>;

pub(crate) type SyncCollector = Arc<dyn Fn(&MetricsRegistry) -> CollectorResult + Send + Sync>;
pub(crate) type AsyncCollector = Arc<dyn Fn(MetricsRegistry) -> CollectorFuture + Send + Sync>;

/// A collector as declared.
#[derive(Clone)]
pub(crate) enum Collector {
    Sync(SyncCollector),
    Async(AsyncCollector),
}

/// Name of the counter of failed collector runs.
pub(crate) const COLLECTOR_ERRORS: &str = "tower_prometheus_collector_errors";

/// Labels of [`COLLECTOR_ERRORS`]: which collector failed, and how.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct CollectorErrorLabels {
    collector: Arc<str>,
    reason: Failure,
}

/// How a collector run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Failure {
    /// It returned an error.
    Error,
    /// It panicked.
    Panic,
    /// It took longer than the endpoint's collector timeout.
    Timeout,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Error => "error",
            Failure::Panic => "panic",
            Failure::Timeout => "timeout",
        }
    }
}

impl EncodeLabelSet for CollectorErrorLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        [
            ("collector", &*self.collector),
            ("reason", self.reason.as_str()),
        ]
        .encode(encoder)
    }
}

pub(crate) type CollectorErrors = Family<CollectorErrorLabels, Counter>;

/// The collectors of an initialised registry, in run order.
pub(crate) struct Collectors {
    sync: Vec<(Arc<str>, SyncCollector)>,
    asynchronous: Vec<(Arc<str>, AsyncCollector)>,
    errors: CollectorErrors,
}

impl Collectors {
    pub(crate) fn new(errors: CollectorErrors) -> Self {
        Self {
            sync: Vec::new(),
            asynchronous: Vec::new(),
            errors,
        }
    }

    pub(crate) fn push(&mut self, name: &str, collector: Collector) {
        match collector {
            Collector::Sync(run) => self.sync.push((name.into(), run)),
            Collector::Async(run) => self.asynchronous.push((name.into(), run)),
        }
    }

    /// Runs every sync collector, then every async one, each async one for at most
    /// `timeout`. A collector that fails, panics or times out is counted in
    /// [`COLLECTOR_ERRORS`], the others still run, and the failures are returned.
    pub(crate) async fn run(
        &self,
        registry: &MetricsRegistry,
        timeout: Option<Duration>,
    ) -> Vec<CollectorFailure> {
        let mut failures = Vec::new();
        for (name, collect) in &self.sync {
            let outcome = catch_unwind(AssertUnwindSafe(|| collect(registry)));
            self.record(name, outcome.map_err(|_| Failure::Panic), &mut failures);
        }
        for (name, collect) in &self.asynchronous {
            let future = catch_unwind(AssertUnwindSafe(|| collect(registry.clone())));
            let outcome = match future {
                Ok(future) => with_timeout(CatchUnwind { inner: future }, timeout).await,
                Err(_) => Err(Failure::Panic),
            };
            self.record(name, outcome, &mut failures);
        }
        failures
    }

    fn record(
        &self,
        name: &Arc<str>,
        outcome: Result<CollectorResult, Failure>,
        failures: &mut Vec<CollectorFailure>,
    ) {
        let reason = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(_)) => Failure::Error,
            Err(failure) => failure,
        };
        self.errors
            .get_or_create(&CollectorErrorLabels {
                collector: Arc::clone(name),
                reason,
            })
            .inc();
        failures.push(CollectorFailure {
            collector: Arc::clone(name),
            reason,
        });
    }
}

/// A collector that failed during a scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CollectorFailure {
    pub(crate) collector: Arc<str>,
    pub(crate) reason: Failure,
}

impl std::fmt::Display for CollectorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collector `{}`: {}",
            self.collector,
            self.reason.as_str()
        )
    }
}

/// Runs `collect`, giving up after `timeout` when a Tokio runtime with timers is
/// running (the usual case under hyper, axum and tonic); without one, it runs to the end.
async fn with_timeout<F>(collect: F, timeout: Option<Duration>) -> Result<CollectorResult, Failure>
where
    F: Future<Output = Result<CollectorResult, Failure>>,
{
    let Some(timeout) = timeout.filter(|_| tokio::runtime::Handle::try_current().is_ok()) else {
        return collect.await;
    };
    // A runtime built without `enable_time` panics when the timer is made.
    let sleep = catch_unwind(|| tokio::time::sleep(timeout));
    let Ok(sleep) = sleep else {
        return collect.await;
    };
    Deadline {
        inner: collect,
        sleep,
    }
    .await
}

pin_project! {
    /// A collector's future raced against its timeout.
    struct Deadline<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl<F: Future<Output = Result<CollectorResult, Failure>>> Future for Deadline<F> {
    type Output = Result<CollectorResult, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.inner.poll(cx) {
            return Poll::Ready(outcome);
        }
        this.sleep.poll(cx).map(|()| Err(Failure::Timeout))
    }
}

pin_project! {
    /// Polls a collector's future, turning a panic into [`Failure::Panic`].
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = CollectorResult>> Future for CatchUnwind<F> {
    type Output = Result<CollectorResult, Failure>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(Failure::Panic)),
        }
    }
}
