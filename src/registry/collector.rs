//! Collectors: closures run on every scrape, before encoding, to bring gauges that
//! mirror outside state up to date.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};

use super::provider::panic_message;
use super::{MetricsRegistry, LOG_TARGET};
use crate::metrics::{Counter, Family};

thread_local! {
    /// The collector running on this thread, so that `get` can warn when it asks for
    /// a gauge of the multi-process files.
    static RUNNING: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Runs `run` as the collector `name` on this thread.
fn as_collector<R>(name: &Arc<str>, run: impl FnOnce() -> R) -> R {
    /// Puts back the outer value when `run` returns or panics.
    struct Restore(Option<Arc<str>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            RUNNING.with(|running| *running.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(RUNNING.with(|running| running.replace(Some(Arc::clone(name)))));
    run()
}

/// The collector running on this thread, if any.
pub(crate) fn running_collector() -> Option<Arc<str>> {
    RUNNING.with(|running| running.borrow().clone())
}

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

impl CollectorErrorLabels {
    fn pairs(&self) -> [(&'static str, &str); 2] {
        [
            ("collector", &*self.collector),
            ("reason", self.reason.as_str()),
        ]
    }
}

impl EncodeLabelSet for CollectorErrorLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.pairs().encode(encoder)
    }
}

pub(crate) type CollectorErrors = Family<CollectorErrorLabels, Counter>;

/// The collectors of an initialised registry, in run order.
pub(crate) struct Collectors {
    sync: Vec<SyncEntry>,
    asynchronous: Vec<(Arc<str>, AsyncCollector)>,
    errors: CollectorErrors,
}

/// A sync collector, and whether a run of it is still going on a blocking thread
/// (one that outlived its timeout: it cannot be stopped, so it is not started again).
struct SyncEntry {
    name: Arc<str>,
    collect: SyncCollector,
    running: Arc<AtomicBool>,
}

/// How one collector run ended: a failure comes with its message.
type Outcome = Result<(), (Failure, String)>;

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
            Collector::Sync(collect) => self.sync.push(SyncEntry {
                name: name.into(),
                collect,
                running: Arc::default(),
            }),
            Collector::Async(run) => self.asynchronous.push((name.into(), run)),
        }
    }

    /// Runs every sync collector, then every async one, each for at most `timeout`
    /// (sync ones then run on a blocking thread). A collector that fails, panics or
    /// times out is counted in [`COLLECTOR_ERRORS`] and logged, the others still run,
    /// and the failures are returned.
    pub(crate) async fn run(
        &self,
        registry: &MetricsRegistry,
        timeout: Option<Duration>,
    ) -> Vec<CollectorFailure> {
        let mut failures = Vec::new();
        let timeout = enforceable(timeout);
        for entry in &self.sync {
            let outcome = match timeout {
                Some(timeout) => entry.run_blocking(registry, timeout).await,
                None => finished(catch_unwind(AssertUnwindSafe(|| {
                    as_collector(&entry.name, || (entry.collect)(registry))
                }))),
            };
            self.record(&entry.name, outcome, &mut failures);
        }
        for (name, collect) in &self.asynchronous {
            let future = catch_unwind(AssertUnwindSafe(|| {
                as_collector(name, || collect(registry.clone()))
            }));
            let outcome = match future {
                Ok(future) => {
                    let name = Arc::clone(name);
                    with_timeout(
                        CatchUnwind {
                            inner: future,
                            name,
                        },
                        timeout,
                    )
                    .await
                }
                Err(panic) => finished(Err(panic)),
            };
            self.record(name, outcome, &mut failures);
        }
        failures
    }

    fn record(&self, name: &Arc<str>, outcome: Outcome, failures: &mut Vec<CollectorFailure>) {
        let Err((reason, message)) = outcome else {
            return;
        };
        tracing::warn!(
            target: LOG_TARGET,
            collector = &**name,
            reason = reason.as_str(),
            error = message.as_str(),
            "metrics collector failed"
        );
        self.errors
            .get_or_create(&CollectorErrorLabels {
                collector: Arc::clone(name),
                reason,
            })
            .inc();
        failures.push(CollectorFailure {
            collector: Arc::clone(name),
            reason,
            message,
        });
    }
}

impl SyncEntry {
    /// Runs the collector on a blocking thread for at most `timeout`; a run still
    /// going from an earlier scrape counts as a timeout of this one.
    async fn run_blocking(&self, registry: &MetricsRegistry, timeout: Duration) -> Outcome {
        if self.running.swap(true, Ordering::AcqRel) {
            return Err((
                Failure::Timeout,
                "still running since an earlier scrape".to_string(),
            ));
        }
        let collect = Arc::clone(&self.collect);
        let registry = registry.clone();
        let running = Arc::clone(&self.running);
        let name = Arc::clone(&self.name);
        let handle = tokio::task::spawn_blocking(move || {
            let result = catch_unwind(AssertUnwindSafe(|| {
                as_collector(&name, || collect(&registry))
            }));
            running.store(false, Ordering::Release);
            result
        });
        let joined = async move {
            match handle.await {
                Ok(result) => finished(result),
                Err(error) => Err((Failure::Panic, error.to_string())),
            }
        };
        with_timeout(joined, Some(timeout)).await
    }
}

/// The outcome of a collector that ran to its end (or panicked).
fn finished(result: Result<CollectorResult, Box<dyn Any + Send>>) -> Outcome {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err((Failure::Error, error.to_string())),
        Err(panic) => Err((Failure::Panic, panic_message(panic.as_ref()))),
    }
}

/// A collector that failed during a scrape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CollectorFailure {
    pub(crate) collector: Arc<str>,
    pub(crate) reason: Failure,
    /// The error's message, the panic's, or how long it ran.
    pub(crate) message: String,
}

impl std::fmt::Display for CollectorFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "collector `{}`: {}: {}",
            self.collector,
            self.reason.as_str(),
            self.message
        )
    }
}

/// `timeout`, where this thread runs inside a Tokio runtime that can time it out (and,
/// for sync collectors, run them on a blocking thread); `None` elsewhere.
fn enforceable(timeout: Option<Duration>) -> Option<Duration> {
    timeout.filter(|_| tokio::runtime::Handle::try_current().is_ok())
}

/// Runs `collect`, giving up after `timeout` when a Tokio runtime with timers is
/// running (the usual case under hyper, axum and tonic); without one, it runs to the end.
async fn with_timeout<F>(collect: F, timeout: Option<Duration>) -> Outcome
where
    F: Future<Output = Outcome>,
{
    let Some(timeout) = enforceable(timeout) else {
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
        timeout,
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
        timeout: Duration,
    }
}

impl<F: Future<Output = Outcome>> Future for Deadline<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(outcome) = this.inner.poll(cx) {
            return Poll::Ready(outcome);
        }
        let timeout = *this.timeout;
        this.sleep
            .poll(cx)
            .map(|()| Err((Failure::Timeout, format!("no result within {timeout:?}"))))
    }
}

pin_project! {
    /// Polls a collector's future, turning a panic into [`Failure::Panic`].
    struct CatchUnwind<F> {
        #[pin]
        inner: F,
        name: Arc<str>,
    }
}

impl<F: Future<Output = CollectorResult>> Future for CatchUnwind<F> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (inner, name) = (this.inner, this.name);
        match catch_unwind(AssertUnwindSafe(|| as_collector(name, || inner.poll(cx)))) {
            Ok(Poll::Ready(result)) => Poll::Ready(finished(Ok(result))),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(finished(Err(panic))),
        }
    }
}
