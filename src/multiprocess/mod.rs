//! Multi-process mode: several processes (pre-fork workers, `SO_REUSEPORT` workers,
//! Rust and Python side by side) share one directory of metric files, and a scrape of
//! any of them answers the aggregate of all.
//!
//! It is on when `PROMETHEUS_MULTIPROC_DIR` names a directory at the moment the
//! registry is initialised (when the layer or endpoint is built), or when
//! [`MetricsRegistry::multiprocess_dir`](crate::MetricsRegistry::multiprocess_dir) says
//! so; no other change is needed. Then:
//!
//! - Every metric of this crate's types ([`Counter`](crate::metrics::Counter),
//!   [`Gauge`](crate::metrics::Gauge), [`Histogram`](crate::metrics::Histogram), and
//!   [`Family`](crate::metrics::Family) of them, which includes the default HTTP
//!   families) that a provider builds keeps its values in this process's files:
//!   `counter_<pid>.db`, `histogram_<pid>.db` and `gauge_<mode>_<pid>.db`, in the format
//!   of Python prometheus_client's multiprocess mode, byte for byte.
//! - A scrape reads every process's files and sums counters and histograms (those of
//!   exited processes too, so counters never go backwards), and combines gauges by
//!   their [`GaugeMode`].
//! - Metrics of other types (plain prometheus-client metrics), and metrics declared
//!   with [`collected_provider`](crate::MetricsRegistry::collected_provider) for
//!   collectors to set, are served as this process has them, beside the aggregate; a
//!   provider that returns a plain metric is a `tracing` warning when the registry is
//!   initialised. Within a provider,
//!   the first of this crate's metrics built is the one placed in the files, so a
//!   provider should build just the metric it returns.
//! - A value is one atomic operation on shared memory: a process killed with SIGKILL
//!   loses nothing it had recorded. Blocks are reserved before they are mapped, so a
//!   full disk fails the build or is counted in [`WRITE_ERRORS`] (the value waits in
//!   memory until there is room), never a signal.
//! - A scrape copies each file with `pread` (never mapping another process's file),
//!   opens only regular files, never through a link and without blocking, and skips
//!   anything else, or a truncated or corrupt file, counting it in [`SKIPPED_FILES`].
//! - After `fork()`, a child writes its own files from its first write on.
//!
//! - After a scrape, the files of exited processes are folded into one archive per
//!   kind of file (`counter_archive.db`, ...), in the same format: a directory holds
//!   files for its live processes and disk for its series, not for every process ever
//!   started. Scrapes serve the same totals before and after, a fold killed at any
//!   step leaves exact totals, and by default ([`Folding::Auto`]) no fold runs where a
//!   Python process writes; see [`Folding`] and the README's protocol.
//!
//! Each process holds a record lock on `tower_prometheus_<pid>.lock` while it runs,
//! which is how a scrape tells live processes from exited ones (pid reuse included)
//! without anything like Python's `mark_process_dead`. Python workers, which hold no
//! lock, are live while their pid runs a process that started before their file last
//! changed. Empty the directory between deployments (before the new processes start),
//! as with Python.
//!
//! A scrape here reads every process's files (copying each, interning its keys),
//! combines their values, and encodes the aggregate, one module each; the files
//! themselves (their format, their names, and the cells this process writes) belong
//! to the storage of the metric types; this module starts this process's store when
//! the mode turns on (its lock and files), and otherwise only reads.
//!
//! As in Python's client, the lowercase `prometheus_multiproc_dir` is honoured while
//! `PROMETHEUS_MULTIPROC_DIR` is unset (with a `tracing` warning to rename it), and
//! ignored when both are set.

mod combine;
mod encode;
mod fold;
mod read;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::storage::files::{FileError, GaugeMode, MultiprocessError};
use crate::storage::files::{FileKind, ProcessStore};
use crate::warning::unheard;
pub(crate) use encode::Aggregator;
pub use encode::{DISPLACED_FILES, FILES, FOLDS, SKIPPED_FILES, WRITE_ERRORS};
pub use fold::Folding;

/// The environment variable that turns multi-process mode on.
pub const ENV_VAR: &str = "PROMETHEUS_MULTIPROC_DIR";
/// Its lowercase name, which Python's client still honours (with a deprecation
/// warning) when [`ENV_VAR`] is not set; so does this crate, with a `tracing` warning.
const LOWERCASE_ENV_VAR: &str = "prometheus_multiproc_dir";
/// An older name of it, which is not honoured.
const OLD_ENV_VAR: &str = "PROMETHEUS_MULTIPROCESS_DIR";

/// Whether a registry runs in multi-process mode, decided when it is initialised.
#[derive(Clone, Debug, Default)]
pub(crate) enum MultiprocessSetting {
    /// As `PROMETHEUS_MULTIPROC_DIR` says.
    #[default]
    FromEnv,
    Dir(PathBuf),
    Off,
}

impl MultiprocessSetting {
    pub(crate) fn dir(&self) -> Option<PathBuf> {
        match self {
            MultiprocessSetting::FromEnv => dir_from_env(),
            MultiprocessSetting::Dir(dir) => Some(dir.clone()),
            MultiprocessSetting::Off => None,
        }
    }
}

/// The directory from the environment, as Python's client reads it: [`ENV_VAR`] when
/// it is set (even to nothing, which leaves the mode off), otherwise
/// [`LOWERCASE_ENV_VAR`], with a warning to rename it. The old name only gets a warning.
fn dir_from_env() -> Option<PathBuf> {
    let lowercase = std::env::var_os(LOWERCASE_ENV_VAR).filter(|dir| !dir.is_empty());
    match (std::env::var_os(ENV_VAR), lowercase) {
        (Some(dir), lowercase) => {
            if lowercase.is_some_and(|other| other != dir) {
                let message = format!(
                    "{LOWERCASE_ENV_VAR} is ignored because {ENV_VAR} is set, as in Python's client"
                );
                tracing::warn!("{message}");
                unheard(&message);
            }
            (!dir.is_empty()).then(|| PathBuf::from(dir))
        }
        (None, Some(dir)) => {
            let message = format!(
                "{LOWERCASE_ENV_VAR} is deprecated (as in Python's client); set {ENV_VAR} instead"
            );
            tracing::warn!(dir = %Path::new(&dir).display(), "{message}");
            unheard(&message);
            Some(PathBuf::from(dir))
        }
        (None, None) => {
            if std::env::var_os(OLD_ENV_VAR).is_some() {
                let message = format!(
                    "{OLD_ENV_VAR} is set but ignored, so every value stays in this process; \
                     set {ENV_VAR} to turn on multi-process mode"
                );
                tracing::warn!("{message}");
                unheard(&message);
            }
            None
        }
    }
}

/// Starts multi-process mode in `dir`: takes this process's lock and creates its
/// files, so a directory that cannot hold them fails now.
pub(crate) fn start(dir: &Path) -> Result<Arc<ProcessStore>, MultiprocessError> {
    let store = ProcessStore::open(dir)?;
    store.ensure(FileKind::Counter)?;
    store.ensure(FileKind::Histogram)?;
    Ok(store)
}
