//! Values in the multi-process files: this process's files in the directory, the
//! cells of values in them, and what every reader and writer of the directory shares
//! (the file format, the names of files and the keys of entries).
//!
//! Readers do not map other processes' files (a mapping faults when its file is
//! truncated): they copy the file with `pread` and check what they copied.

pub(crate) mod format;
pub(crate) mod key;
mod map;
pub(crate) mod naming;
pub(crate) mod open;
pub(crate) mod reason;
mod store;
mod writer;

use std::io;
use std::path::PathBuf;

pub use format::FileError;
pub(crate) use naming::FileKind;
pub use naming::GaugeMode;
pub(crate) use store::{is_alive, MappedValue, ProcessStore};

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
