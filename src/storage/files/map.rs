//! Every access to the files that needs `unsafe`: the shared mapping of a file this
//! process writes, the handles that point into it, and the few system calls the
//! standard library does not offer (reserving blocks, record locks that readers can
//! query without taking, noticing a `fork()`).
//!
//! Keeping them here keeps the rest of the crate free of `unsafe`: each block below
//! says why it holds.

// The mapping is shared memory that other processes write: that needs raw pointers.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError};

use memmap2::{MmapOptions, MmapRaw};

/// Bumped in every child right after `fork()`, before `fork()` returns there.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static FORK_HANDLER: Once = Once::new();

extern "C" fn after_fork_in_child() {
    // Async-signal-safe: one atomic add, and `close` of the descriptors in `HELD`.
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
    for slot in &HELD {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: `fd` is this child's copy of a descriptor the parent registered
            // in `HELD` and had not let go of when it forked; nothing in the child
            // owns it (the thread that did was not copied), so closing it here is the
            // only use it gets.
            unsafe { libc::close(fd) };
        }
    }
}

/// Slots for the descriptors of [`HeldLock`]s: more than a fold holds at once.
const HELD_SLOTS: usize = 96;
/// Descriptors of open [`HeldLock`]s, `-1` in free slots.
static HELD: [AtomicI32; HELD_SLOTS] = [const { AtomicI32::new(-1) }; HELD_SLOTS];

/// An open file whose lock (`flock`, or an open file description lock) belongs to this
/// process alone. Such a lock lasts while any descriptor of the open file does, and a
/// forked child gets copies of every descriptor: a child forked while a fold holds
/// locks would hold them for as long as it lives. So a child closes its copies at once
/// (see `after_fork_in_child`), and the lock goes when this process lets go.
#[derive(Debug)]
pub(crate) struct HeldLock {
    file: File,
    slot: Option<usize>,
}

impl HeldLock {
    pub(crate) fn new(file: File) -> Self {
        watch_forks();
        let fd = file.as_raw_fd();
        let slot = HELD.iter().position(|slot| {
            slot.compare_exchange(-1, fd, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        });
        Self { file, slot }
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        // The slot is freed before the file closes, so a child never closes a number
        // this process has meanwhile given to another file.
        if let Some(slot) = self.slot {
            HELD[slot].store(-1, Ordering::Relaxed);
        }
    }
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

/// Gives the file real blocks from byte `from` to byte `to` (growing it if needed), so
/// that touching them through a mapping never faults for lack of space; the rest of
/// the file stays sparse, as Python leaves its files.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn reserve(file: &File, from: u64, to: u64) -> io::Result<()> {
    let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "file too large");
    let offset = libc::off_t::try_from(from).map_err(|_| too_large())?;
    let len = libc::off_t::try_from(to.saturating_sub(from)).map_err(|_| too_large())?;
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a plain system call on an open descriptor; it touches no memory of ours.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) } {
        0 => Ok(()),
        // Filesystems without fallocate: only extending the file is possible.
        libc::EOPNOTSUPP | libc::EINVAL => extend(file, to),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// Systems without `posix_fallocate`: the file is extended (sparse), as Python does.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn reserve(file: &File, _from: u64, to: u64) -> io::Result<()> {
    extend(file, to)
}

/// Makes the file at least `len` bytes long, the new bytes sparse (no blocks yet).
pub(crate) fn extend(file: &File, len: u64) -> io::Result<()> {
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
    set_whole_file_lock(file, libc::F_SETLK)
}

/// Takes a write lock on the whole file that belongs to this open file (an "open file
/// description" lock): unlike [`try_lock`]'s, closing another descriptor of the file in
/// this process does not release it, and it conflicts with every other lock on the file,
/// [`try_lock`]'s included. `false` when another holds one. Linux only.
#[cfg(target_os = "linux")]
pub(crate) fn try_hold(file: &File) -> io::Result<bool> {
    set_whole_file_lock(file, libc::F_OFD_SETLK)
}

/// Takes a write lock on the whole file with `command` (`F_SETLK` or `F_OFD_SETLK`),
/// without waiting; `false` when another holds one.
fn set_whole_file_lock(file: &File, command: libc::c_int) -> io::Result<bool> {
    let lock = whole_file_lock(libc::F_WRLCK);
    // SAFETY: both commands read the `flock` struct passed by pointer, which outlives
    // the call; its `l_pid` is 0, as open file description locks require.
    if unsafe { libc::fcntl(file.as_raw_fd(), command, &lock) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(error),
    }
}

/// Takes `flock`'s exclusive lock on the file without waiting: `false` when another
/// open file holds it (in this process or another).
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: a plain system call on an open descriptor; it touches no memory of ours.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
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

/// A shared, writable mapping of the first bytes of a file; the mapped bytes stay
/// valid as long as the mapping lives.
pub(crate) struct Mapping(MmapRaw);

impl Mapping {
    /// Maps the first `len` bytes of `file`, which has blocks for them.
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Self> {
        MmapOptions::new().len(len).map_raw(file).map(Self)
    }

    /// The header's `used` field.
    pub(crate) fn header(&self) -> &AtomicI32 {
        // SAFETY: the map starts page-aligned (so aligned for an i32) and is at least
        // the header long; the bytes are only ever accessed atomically.
        unsafe { &*self.0.as_ptr().cast::<AtomicI32>() }
    }

    /// The mapped bytes. Only for a file nobody else writes yet (just opened by its
    /// own pid's process).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes are mapped and have blocks behind them, and live as long
        // as `self`; the only writer of this file is this process, which has not
        // handed out any pointer into it yet.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), self.0.len()) }
    }

    /// Copies `bytes` to `offset`, past the file's `used`: no reader and no handle
    /// looks there yet.
    /// `false` (and nothing written) when they do not fit in the mapping.
    pub(crate) fn write_unused(&self, offset: usize, bytes: &[u8]) -> bool {
        if offset.saturating_add(bytes.len()) > self.0.len() {
            return false;
        }
        // SAFETY: `offset..offset + len` lies inside the mapping (checked above) and
        // is past `used`, so no reference into it exists; the caller holds the
        // writer's lock, which keeps other writers of this process out.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.0.as_mut_ptr().add(offset),
                bytes.len(),
            );
        }
        true
    }

    /// The value at `offset` (an entry's value, 8-byte aligned, its timestamp after it).
    /// The bytes `offset..offset + len`, if mapped. Only for bytes nothing writes any
    /// more: an entry's length and key, which the writer wrote once, under its lock,
    /// before `used` covered them.
    pub(crate) fn settled(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len).filter(|end| *end <= self.0.len())?;
        // SAFETY: `offset..end` is mapped (checked above) and lives as long as `self`;
        // the caller names bytes no one writes any more, so no write races the read.
        Some(unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(offset), end - offset) })
    }

    pub(crate) fn value_at(&self, offset: usize) -> Option<NonNull<AtomicU64>> {
        (offset.is_multiple_of(8) && offset.saturating_add(16) <= self.0.len())
            .then(|| NonNull::new(self.0.as_mut_ptr().wrapping_add(offset).cast::<AtomicU64>()))
            .flatten()
    }
}

/// Where one value (and the timestamp after it) sits in a mapped file, which it keeps
/// mapped.
pub(crate) struct Slot {
    value: NonNull<AtomicU64>,
    _file: Arc<dyn Send + Sync>,
}

// SAFETY: the pointee is an `AtomicU64` inside a mapping that `_file` keeps alive;
// all access to it is atomic.
unsafe impl Send for Slot {}
// SAFETY: as above.
unsafe impl Sync for Slot {}

impl Slot {
    /// The value at `value`, in a mapping that `file` keeps alive.
    pub(crate) fn new(value: NonNull<AtomicU64>, file: Arc<dyn Send + Sync>) -> Self {
        Self { value, _file: file }
    }
}

/// The place of a value, which changes when a forked child moves it to its own file
/// or when a value that found no room gets some.
pub(crate) struct SlotRef {
    /// The fork generation `value` belongs to; `UNPLACED` before it has a place.
    generation: AtomicU64,
    value: AtomicPtr<AtomicU64>,
    /// Every slot it ever held: a pointer handed out stays valid as long as `self`.
    held: Mutex<Vec<Slot>>,
}

const UNPLACED: u64 = u64::MAX;

impl SlotRef {
    pub(crate) fn unplaced() -> Self {
        Self {
            generation: AtomicU64::new(UNPLACED),
            value: AtomicPtr::new(std::ptr::null_mut()),
            held: Mutex::new(Vec::new()),
        }
    }

    /// The value and its timestamp, if placed in a file of fork generation `generation`.
    #[inline]
    pub(crate) fn get(&self, generation: u64) -> Option<(&AtomicU64, &AtomicU64)> {
        if self.generation.load(Ordering::Acquire) != generation {
            return None;
        }
        let value = self.value.load(Ordering::Acquire);
        // SAFETY: `value` came from a `Slot` in `held` (stored before the generation
        // that the Acquire load above saw), so it points at an 8-byte aligned value
        // followed by its timestamp, in a mapping alive as long as `self`.
        unsafe { Some((&*value, &*value.add(1))) }
    }

    /// Moves the value to `slot`, of fork generation `generation`.
    pub(crate) fn place(&self, slot: Slot, generation: u64) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        self.value.store(slot.value.as_ptr(), Ordering::Release);
        held.push(slot);
        self.generation.store(generation, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_forked_while_a_lock_is_held_does_not_keep_it() {
        let path =
            std::env::temp_dir().join(format!("tower-prometheus-held-{}", std::process::id()));
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let held = HeldLock::new(open());
        assert!(try_lock_exclusive(held.file()).unwrap());
        // `wake` tells the child to exit; `ready` tells this process the child runs.
        let (mut wake, mut ready) = ([0; 2], [0; 2]);
        // SAFETY: each array has room for the two descriptors `pipe(2)` writes.
        assert_eq!(unsafe { libc::pipe(wake.as_mut_ptr()) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::pipe(ready.as_mut_ptr()) }, 0);
        // SAFETY: the child only calls `write`, `read` and `_exit`, async-signal-safe.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let mut byte = 0u8;
            // SAFETY: one byte from and into valid buffers; the child lives until the
            // parent wakes it, holding whatever descriptors it kept.
            unsafe {
                libc::write(ready[1], [1u8].as_ptr().cast(), 1);
                libc::read(wake[0], (&raw mut byte).cast(), 1);
                libc::_exit(0);
            }
        }
        assert!(child > 0);
        let mut byte = 0u8;
        // SAFETY: one byte into a valid buffer: the child is past `fork`.
        assert_eq!(
            unsafe { libc::read(ready[0], (&raw mut byte).cast(), 1) },
            1
        );
        // The child lives on; this process lets go of the lock.
        drop(held);
        let again = open();
        let free = try_lock_exclusive(&again).unwrap();
        // SAFETY: wakes the child (one byte from a valid buffer), reaps it, and closes
        // the pipes' descriptors, which nothing else uses.
        unsafe {
            libc::write(wake[1], [1u8].as_ptr().cast(), 1);
            libc::waitpid(child, std::ptr::null_mut(), 0);
            for fd in [wake[0], wake[1], ready[0], ready[1]] {
                libc::close(fd);
            }
        }
        let _ = std::fs::remove_file(&path);
        assert!(
            free,
            "the child kept the lock after this process let go of it"
        );
    }
}
