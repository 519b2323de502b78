//! Values in the multi-process files: this process's files in the directory, the
//! cells of values in them, and what every reader and writer of the directory shares
//! (the file format, the names of files and the keys of entries).
//!
//! Readers do not map other processes' files (a mapping faults when its file is
//! truncated): they copy the file with `pread` and check what they copied.

pub(crate) mod archive;
mod error;
pub(crate) mod format;
pub(crate) mod key;
mod map;
pub(crate) mod naming;
pub(crate) mod open;
pub(crate) mod reason;
mod store;
mod writer;

pub use error::{FileError, MultiprocessError};
pub(crate) use map::HeldLock;
pub(crate) use naming::FileKind;
pub use naming::GaugeMode;
pub(crate) use store::{hold_if_exited, is_alive, MappedValue, ProcessStore};
