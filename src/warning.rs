//! Warnings about a setting that changes what is recorded. Each is a `tracing` event;
//! where the application installed no `tracing` subscriber, it is also written to
//! standard error, once per process and warning, so that no such misconfiguration
//! passes silently in an application that logs nothing yet.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// Warnings already written to standard error.
static WRITTEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Writes `message` to standard error when no global `tracing` subscriber is set (the
/// caller has logged it with `tracing` already), once per process.
pub(crate) fn unheard(message: &str) {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let mut written = WRITTEN.lock().unwrap_or_else(PoisonError::into_inner);
    if written
        .get_or_insert_with(HashSet::new)
        .insert(message.to_string())
    {
        eprintln!("tower-prometheus: warning: {message}");
    }
}
