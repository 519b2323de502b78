//! Why the files could not be used.

use std::io;
use std::path::PathBuf;

/// Why a metric file cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The system refused an operation on the file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file holds something that is not the multiprocess format.
    #[error("{path}: corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the bad bytes start.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// The file cannot grow: its format counts its bytes in an `i32`.
    #[error("{path}: full (more than {} bytes of entries)", i32::MAX)]
    Full {
        /// The file.
        path: PathBuf,
    },
}

impl FileError {
    /// The system's error, if this is one.
    pub(crate) fn io_error(&self) -> Option<&io::Error> {
        match self {
            FileError::Io { source, .. } => Some(source),
            _ => None,
        }
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
