//! Where the values of this crate's metrics live, decided in this one place.
//!
//! A metric's values live either in in-process cells ([`shard::ShardedCells`]: atomics
//! kept per thread shard) or, in multi-process mode, in cells of this process's files
//! ([`files::MappedValue`]), which every process of the directory reads.
//!
//! The registry decides which when it runs a provider at init: with the multi-process
//! files open, it runs the provider through [`Binding::offer`], which offers the
//! provider's name and help on the running thread for the duration of that call. The
//! first of this crate's metric constructors built there takes the offer
//! ([`Binding::claim`]) and keeps its values in the files, so `Counter::default()` in
//! a provider needs no change for multi-process mode. Every other metric (one built
//! outside a provider, or after the first) gets in-process cells. A family keeps the
//! binding and gives each series it creates later an entry of its own.
//!
//! A provider of this crate's own can instead be handed the binding as a value (the
//! families of the `metrics` facade, made while requests run): the registry gives it
//! one in multi-process mode and `None` otherwise, and no thread-local is involved.

pub(crate) mod files;
pub(crate) mod shard;

use std::cell::RefCell;
use std::sync::Arc;

use files::{key, FileKind, MappedValue, ProcessStore};

/// Where the values of one registered metric go.
#[derive(Clone)]
pub(crate) struct Binding {
    store: Arc<ProcessStore>,
    /// The family name as Python's files name it (with the unit, without `_total`),
    /// for a counter and for the other types.
    names: Arc<[String; 2]>,
    help: Arc<str>,
}

thread_local! {
    static OFFERED: RefCell<Option<Binding>> = const { RefCell::new(None) };
}

impl Binding {
    pub(crate) fn new(store: Arc<ProcessStore>, names: [String; 2], help: &str) -> Self {
        Self {
            store,
            names: Arc::new(names),
            help: help.into(),
        }
    }

    /// The decision point: runs `provide` (a provider) with this binding offered on
    /// this thread; returns whether a metric took it.
    pub(crate) fn offer<R>(self, provide: impl FnOnce() -> R) -> (R, bool) {
        /// Withdraws the offer when the provider returns or panics, so no metric built
        /// later on this thread takes it.
        struct Withdraw;
        impl Drop for Withdraw {
            fn drop(&mut self) {
                OFFERED.with(|offered| offered.borrow_mut().take());
            }
        }
        OFFERED.with(|offered| *offered.borrow_mut() = Some(self));
        let withdraw = Withdraw;
        let result = provide();
        let claimed = OFFERED.with(|offered| offered.borrow().is_none());
        drop(withdraw);
        (result, claimed)
    }

    /// Takes the binding offered on this thread, if any: a metric constructor's
    /// question whether its values go to the files.
    pub(crate) fn claim() -> Option<Binding> {
        OFFERED.with(|offered| offered.borrow_mut().take())
    }

    /// The cell of one sample: `suffix` is appended to the family name.
    pub(crate) fn value(
        &self,
        kind: FileKind,
        suffix: &str,
        labels: &[(String, String)],
    ) -> MappedValue {
        let metric = match kind {
            FileKind::Counter => &self.names[0],
            FileKind::Gauge(_) | FileKind::Histogram | FileKind::Summary => &self.names[1],
        };
        let sample = format!("{metric}{suffix}");
        let key = key::encode(metric, &sample, labels, &self.help);
        self.store.value(kind, &key)
    }
}
