//! The few system calls the files need that the standard library does not offer:
//! reserving blocks, record locks that readers can query without taking, and noticing
//! a `fork()`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Bumped in every child right after `fork()`, before `fork()` returns there.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static FORK_HANDLER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic add.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// Makes [`fork_generation`] change in every child forked from now on.
pub(crate) fn watch_forks() {
    FORK_HANDLER.call_once(|| {
        // SAFETY: the handler is a plain function that only does an atomic add, which
        // is allowed between fork() and exec(). Registration cannot fail except for
        // lack of memory, in which case forks are simply not noticed.
        let _ = unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// How many forks lie between the first process and this one: a value placed in a
/// file under another generation belongs to an ancestor's file.
#[inline]
pub(crate) fn fork_generation() -> u64 {
    FORK_GENERATION.load(Ordering::Relaxed)
}

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

/// Gives the file real blocks for its first `len` bytes (growing it if needed), so
/// that touching them through a mapping never faults for lack of space.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let offset_len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: a plain system call on an open descriptor; it touches no memory of ours.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, offset_len) } {
        0 => Ok(()),
        // Filesystems without fallocate: only extending the file is possible.
        libc::EOPNOTSUPP | libc::EINVAL => extend(file, len),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Systems without `posix_fallocate`: the file is extended (sparse), as Python does.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    extend(file, len)
}

fn extend(file: &File, len: u64) -> io::Result<()> {
    if file.metadata()?.len() < len {
        file.set_len(len)?;
    }
    Ok(())
}

fn whole_file_lock(lock_type: libc::c_int) -> libc::flock {
    // SAFETY: `flock` is a plain C struct for which all zero bytes is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = lock_type as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock
}

/// Takes a write lock on the whole file for as long as this process lives; `false`
/// when another process holds one.
pub(crate) fn try_lock(file: &File) -> io::Result<bool> {
    let lock = whole_file_lock(libc::F_WRLCK);
    // SAFETY: F_SETLK reads the `flock` struct passed by pointer, which outlives the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(error),
    }
}

/// Whether another process holds a lock on the file. Only asks: taking no lock
/// itself, it can never make that process's own `try_lock` fail.
pub(crate) fn is_locked(file: &File) -> io::Result<bool> {
    let mut lock = whole_file_lock(libc::F_WRLCK);
    // SAFETY: F_GETLK reads and writes the `flock` struct passed by pointer, which
    // outlives the call.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) } == 0 {
        Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Clock ticks per second, the unit of a process's start time in `/proc`.
pub(crate) fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}
