//! Opening the files of the directory, which the crate does not control: never
//! through a link, never blocking, regular files only.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens an existing file for reading, or for reading and writing, never through a
/// symbolic link and without blocking on a FIFO or device; anything but a regular
/// file is refused with [`io::ErrorKind::InvalidInput`].
pub(crate) fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    checked(
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?,
    )
}

/// Creates a new file, failing if the name exists (whatever it names), with `mode`
/// (before the umask).
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    checked(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?,
    )
}

/// Opens the file at `path` if it exists and is a regular file, else creates it.
pub(crate) fn open_or_create(path: &Path, mode: u32) -> io::Result<File> {
    match open_regular(path, true) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => match create_new(path, mode) {
            // Created by someone else in between: open theirs.
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => open_regular(path, true),
            other => other,
        },
        other => other,
    }
}

/// Which file `metadata` describes: its device and inode, the same through every
/// name and descriptor of the file.
pub(crate) fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// The identity of what `path` names (a link itself, not its target), if anything.
pub(crate) fn identity_at(path: &Path) -> Option<(u64, u64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|metadata| identity(&metadata))
}

/// Whether `path` still names the file `file` has open: neither removed nor replaced.
pub(crate) fn is_at(file: &File, path: &Path) -> bool {
    file.metadata()
        .is_ok_and(|open| identity_at(path) == Some(identity(&open)))
}

fn checked(file: File) -> io::Result<File> {
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}
