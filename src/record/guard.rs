//! [`Guard`]: records a call exactly once, however it ends.

use std::time::{Duration, Instant};

/// Why a call ended without an outcome of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unanswered {
    /// The service panicked: seen while polling it, or unwinding now.
    Panicked,
    /// It was dropped unanswered: the client went away, or a deadline passed.
    Dropped,
}

/// What an adapter records when one of its calls ends.
pub(crate) trait Record {
    /// What a call ends with: an HTTP status, a gRPC code.
    type Outcome: Copy;

    /// Records a call that ended `elapsed` after it started, with its outcome or
    /// without one.
    fn record(&mut self, ended: Result<Self::Outcome, Unanswered>, elapsed: Duration);
}

/// Holds a call from its start, and records it when dropped: the outcome it was
/// given, or why it has none. Every path out of a call drops it, so nothing leaks and
/// nothing is counted twice.
pub(crate) struct Guard<R: Record> {
    record: R,
    start: Instant,
    outcome: Option<R::Outcome>,
    panicked: bool,
    /// The call turned out to belong elsewhere: record nothing.
    disarmed: bool,
}

impl<R: Record> Guard<R> {
    /// A call starting now.
    pub(crate) fn start(record: R) -> Self {
        Self::started_at(record, Instant::now(), false)
    }

    /// A call that started at `start`, and already panicked if `panicked`.
    pub(crate) fn started_at(record: R, start: Instant, panicked: bool) -> Self {
        Self {
            record,
            start,
            outcome: None,
            panicked,
            disarmed: false,
        }
    }

    /// What the call is recorded into.
    pub(crate) fn record(&self) -> &R {
        &self.record
    }

    /// What the call is recorded into, mutably.
    pub(crate) fn record_mut(&mut self) -> &mut R {
        &mut self.record
    }

    /// When the call started.
    pub(crate) fn start_time(&self) -> Instant {
        self.start
    }

    /// The outcome so far.
    pub(crate) fn outcome(&self) -> Option<R::Outcome> {
        self.outcome
    }

    /// Sets the outcome the call ends with.
    pub(crate) fn set_outcome(&mut self, outcome: R::Outcome) {
        self.outcome = Some(outcome);
    }

    /// Sets the outcome, unless one is set.
    pub(crate) fn outcome_or(&mut self, outcome: R::Outcome) {
        self.outcome.get_or_insert(outcome);
    }

    /// The service panicked; only matters while no outcome is set.
    pub(crate) fn mark_panicked(&mut self) {
        self.panicked = true;
    }

    /// Whether the service panicked.
    pub(crate) fn panicked(&self) -> bool {
        self.panicked
    }

    /// The call is recorded elsewhere: drops it without recording.
    pub(crate) fn disarm(mut self) {
        self.disarmed = true;
    }
}

impl<R: Record> Drop for Guard<R> {
    fn drop(&mut self) {
        if self.disarmed {
            return;
        }
        let ended = match self.outcome {
            Some(outcome) => Ok(outcome),
            None if ended_by_panic(self.panicked) => Err(Unanswered::Panicked),
            None => Err(Unanswered::Dropped),
        };
        self.record.record(ended, self.start.elapsed());
    }
}

/// Whether a call dropped without an outcome ended in a panic: one seen while polling
/// the service, or one unwinding now.
pub(crate) fn ended_by_panic(panicked: bool) -> bool {
    panicked || std::thread::panicking()
}

/// A recorder that can be told its call panicked.
pub(crate) trait MarkPanicked {
    /// The inner future panicked while polled.
    fn mark_panicked(&mut self);
}

/// Marks the recorder when dropped during a panic: a panic that unwinds through the
/// poll of the inner future drops this watch on its way out, while the future (and
/// the recorder) may only be dropped later, outside the unwinding.
pub(crate) struct PanicWatch<'a, R: MarkPanicked>(pub(crate) Option<&'a mut R>);

impl<R: MarkPanicked> Drop for PanicWatch<'_, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(recorder) = self.0.as_deref_mut() {
                recorder.mark_panicked();
            }
        }
    }
}
