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
//! Each process holds a record lock on `tower_prometheus_<pid>.lock` while it runs,
//! which is how a scrape tells live processes from exited ones (pid reuse included)
//! without anything like Python's `mark_process_dead`. Python workers, which hold no
//! lock, are live while their pid runs a process that started before their file last
//! changed. Empty the directory between deployments (before the new processes start),
//! as with Python.
//!
//! As in Python's client, the lowercase `prometheus_multiproc_dir` is honoured while
//! `PROMETHEUS_MULTIPROC_DIR` is unset (with a `tracing` warning to rename it), and
//! ignored when both are set.

mod aggregate;
mod binding;
mod file;
mod key;
mod store;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) use aggregate::Aggregator;
pub use aggregate::{SKIPPED_FILES, WRITE_ERRORS};
pub(crate) use binding::{label_pairs, Binding};
pub use file::FileError;
pub(crate) use key::go_float;
pub(crate) use store::{FileKind, MappedValue, ProcessStore};

/// The environment variable that turns multi-process mode on.
pub const ENV_VAR: &str = "PROMETHEUS_MULTIPROC_DIR";
/// Its lowercase name, which Python's client still honours (with a deprecation
/// warning) when [`ENV_VAR`] is not set; so does this crate, with a `tracing` warning.
const LOWERCASE_ENV_VAR: &str = "prometheus_multiproc_dir";
/// An older name of it, which is not honoured.
const OLD_ENV_VAR: &str = "PROMETHEUS_MULTIPROCESS_DIR";

/// How the gauges of several processes combine; the names are Python's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GaugeMode {
    /// One series per process, with a `pid` label (Python's default).
    #[default]
    All,
    /// Like `All`, for live processes only.
    LiveAll,
    /// The sum over processes.
    Sum,
    /// The sum over live processes (for example requests in flight).
    LiveSum,
    /// The largest value.
    Max,
    /// The largest value among live processes.
    LiveMax,
    /// The smallest value.
    Min,
    /// The smallest value among live processes.
    LiveMin,
    /// The value set last.
    MostRecent,
    /// The value set last among live processes.
    LiveMostRecent,
}

impl GaugeMode {
    pub(crate) const ALL: [GaugeMode; 10] = [
        GaugeMode::All,
        GaugeMode::LiveAll,
        GaugeMode::Sum,
        GaugeMode::LiveSum,
        GaugeMode::Max,
        GaugeMode::LiveMax,
        GaugeMode::Min,
        GaugeMode::LiveMin,
        GaugeMode::MostRecent,
        GaugeMode::LiveMostRecent,
    ];

    /// Python's name of the mode, as it appears in file names.
    pub fn as_str(self) -> &'static str {
        match self {
            GaugeMode::All => "all",
            GaugeMode::LiveAll => "liveall",
            GaugeMode::Sum => "sum",
            GaugeMode::LiveSum => "livesum",
            GaugeMode::Max => "max",
            GaugeMode::LiveMax => "livemax",
            GaugeMode::Min => "min",
            GaugeMode::LiveMin => "livemin",
            GaugeMode::MostRecent => "mostrecent",
            GaugeMode::LiveMostRecent => "livemostrecent",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }

    /// Whether exited processes drop out.
    pub fn is_live(self) -> bool {
        self.as_str().starts_with("live")
    }

    /// Whether the mode needs the time of each change.
    pub(crate) fn is_most_recent(self) -> bool {
        matches!(self, GaugeMode::MostRecent | GaugeMode::LiveMostRecent)
    }
}

/// Why multi-process mode could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MultiprocessError {
    /// The directory is missing, not a directory, or not writable.
    #[error("multiprocess directory {path}: {source}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A metric file could not be created or read.
    #[error("multiprocess file {0}")]
    File(#[from] FileError),
}

/// Two errors are equal when they say the same: `io::Error` has no equality of its own.
impl PartialEq for MultiprocessError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for MultiprocessError {}

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
                tracing::warn!(
                    "{LOWERCASE_ENV_VAR} is ignored because {ENV_VAR} is set, as in Python's client"
                );
            }
            (!dir.is_empty()).then(|| PathBuf::from(dir))
        }
        (None, Some(dir)) => {
            tracing::warn!(
                dir = %Path::new(&dir).display(),
                "{LOWERCASE_ENV_VAR} is deprecated (as in Python's client); set {ENV_VAR} instead"
            );
            Some(PathBuf::from(dir))
        }
        (None, None) => {
            if std::env::var_os(OLD_ENV_VAR).is_some() {
                tracing::warn!(
                    "{OLD_ENV_VAR} is set but ignored; set {ENV_VAR} to turn on multi-process mode"
                );
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
