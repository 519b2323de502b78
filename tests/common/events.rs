//! A `tracing` subscriber that keeps every event it sees, for the tests of the crate's
//! logging.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::Field;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event: its target, level, and fields as `Debug` writes them (a string quoted).
#[derive(Clone, Debug)]
pub struct Captured {
    pub target: String,
    pub level: Level,
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    /// The fields as `name=value` pairs, in the order of their names.
    pub fn written(&self) -> String {
        self.fields
            .iter()
            .map(|(name, value)| format!("{name}={value} "))
            .collect()
    }
}

/// The events seen so far; clones share them.
#[derive(Clone, Default)]
pub struct Events(Arc<Mutex<Vec<Captured>>>);

impl Events {
    /// Every event so far.
    pub fn taken(&self) -> Vec<Captured> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The crate's warnings so far.
    pub fn warnings(&self) -> Vec<Captured> {
        self.taken()
            .into_iter()
            .filter(|e| e.level == Level::WARN && e.target.starts_with("tower_prometheus"))
            .collect()
    }
}

impl Subscriber for Events {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut fields = BTreeMap::new();
        event.record(&mut |field: &Field, value: &dyn fmt::Debug| {
            fields.insert(field.name().to_string(), format!("{value:?}"));
        });
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Captured {
                target: metadata.target().into(),
                level: *metadata.level(),
                fields,
            });
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
