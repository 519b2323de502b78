//! A flood of distinct paths, methods and statuses cannot grow the series or the
//! memory past the cap. Live heap bytes are counted by a global allocator, which needs
//! a test binary of its own.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::sync::atomic::{AtomicIsize, Ordering};

use http::{Method, Request, StatusCode};
use tower::{service_fn, Layer};
use tower_prometheus::layer::{RequestCount, REQUESTS_TOTAL};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

struct LiveBytes;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counting is
// one atomic add.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

const CAP: usize = 500;
const FLOOD: usize = 1_000_000;

/// The request number `i` of the flood: its own path, method and answer status.
fn hostile_request(i: usize) -> Request<()> {
    let mut request = Request::new(());
    *request.uri_mut() = format!("/scan/{i}?q={i}").parse().expect("valid uri");
    *request.method_mut() = match i % 4 {
        0 => Method::GET,
        1 => Method::POST,
        _ => Method::from_bytes(format!("X{i}").as_bytes()).expect("valid token"),
    };
    request
        .extensions_mut()
        .insert(StatusCode::from_u16(100 + (i % 500) as u16).expect("valid status"));
    request
}

#[test]
fn a_million_distinct_label_values_stay_within_the_cap_and_bounded_memory() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .max_series(CAP)
        // The worst route function: it echoes the raw path.
        .route_fn(|parts| Some(Cow::Owned(parts.uri.path().to_string())))
        .build()
        .expect("layer builds");
    let mut service = layer.layer(service_fn(common::answer_with_requested_status::<()>));
    let mut run = |i: usize| {
        common::drive(&mut service, hostile_request(i));
    };

    // Fill the families to their cap, then measure what the rest of the flood adds.
    for i in 0..10 * CAP {
        run(i);
    }
    let after_fill = LIVE.load(Ordering::Relaxed);
    for i in 10 * CAP..FLOOD {
        run(i);
    }
    let growth = LIVE.load(Ordering::Relaxed) - after_fill;

    let requests: RequestCount = registry.get(REQUESTS_TOTAL).expect("family");
    assert_eq!(requests.len(), CAP);
    let counted: u64 = requests.overflow().map_or(0, |c| c.get());
    assert!(
        counted > (FLOOD - 10 * CAP) as u64,
        "overflow counted {counted}"
    );
    // Past the cap nothing is retained per request: allow 64 KiB of slack for
    // allocator-internal noise, against the hundreds of MiB a million series would take.
    assert!(
        growth < 64 * 1024,
        "live heap grew by {growth} bytes during the flood"
    );
}
