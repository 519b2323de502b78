//! [`BodyBytes`]: the bytes of a request's bodies that passed, for the body size
//! histograms.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters a thread keeps for reuse, at most.
const FREE_COUNTERS: usize = 64;

thread_local! {
    /// Counters no body and no request holds any more.
    static FREE: RefCell<Vec<Arc<AtomicU64>>> = const { RefCell::new(Vec::new()) };
}

/// The bytes of a request body read so far: one handle in the body the inner service
/// reads, one in the request's recorder. A counter is reused by the thread that
/// drops its last handle, so once a thread has served a few requests, counting
/// allocates nothing.
pub(crate) struct RequestBytes(Option<Arc<AtomicU64>>);

impl RequestBytes {
    /// A counter at zero, and a second handle of it.
    pub(crate) fn pair() -> (Self, Self) {
        let counter = FREE
            .try_with(|free| free.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        (Self(Some(Arc::clone(&counter))), Self(Some(counter)))
    }

    /// Counts `len` more bytes.
    #[inline]
    pub(crate) fn add(&self, len: usize) {
        if let Some(counter) = &self.0 {
            counter.fetch_add(len as u64, Ordering::Relaxed);
        }
    }

    /// The bytes counted so far.
    pub(crate) fn get(&self) -> u64 {
        self.0
            .as_ref()
            .map_or(0, |counter| counter.load(Ordering::Relaxed))
    }
}

impl Drop for RequestBytes {
    fn drop(&mut self) {
        let Some(mut counter) = self.0.take() else {
            return;
        };
        // Only the last handle gets the counter back; the other side's drop then frees
        // nothing twice.
        let Some(value) = Arc::get_mut(&mut counter) else {
            return;
        };
        *value.get_mut() = 0;
        let _ = FREE.try_with(|free| {
            if let Ok(mut free) = free.try_borrow_mut() {
                if free.capacity() == 0 {
                    free.reserve_exact(FREE_COUNTERS);
                }
                if free.len() < FREE_COUNTERS {
                    free.push(counter);
                }
            }
        });
    }
}

/// What a request's bodies carried: the request body's bytes read by the inner
/// service, when they are counted, and the response body's bytes sent.
#[derive(Default)]
pub(crate) struct BodyBytes {
    pub(crate) request: Option<RequestBytes>,
    pub(crate) response: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_handles_count_into_one_counter_that_is_reused_at_zero() {
        let (body, recorder) = RequestBytes::pair();
        body.add(5);
        body.add(7);
        assert_eq!(recorder.get(), 12);
        let address = recorder.0.as_ref().map(Arc::as_ptr);
        drop(body);
        drop(recorder);
        let (again, other) = RequestBytes::pair();
        assert_eq!(again.0.as_ref().map(Arc::as_ptr), address, "reused");
        assert_eq!(other.get(), 0);
    }
}
