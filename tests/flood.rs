//! A flood of distinct paths, methods and statuses cannot grow the series or the
//! memory past the cap, nor can a flood of metric names through the `metrics` facade.
//! Live heap bytes are counted by a global allocator, which needs a test binary of its
//! own, and its tests run one at a time.

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

/// The tests of this file one at a time: each measures the live bytes of the process.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _alone = ONE_AT_A_TIME.lock();
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

/// Distinct metric names the facade keeps in the test below.
#[cfg(feature = "metrics")]
const NAME_CAP: usize = 100;

#[cfg(feature = "metrics")]
#[test]
fn a_flood_of_distinct_facade_names_stays_within_the_cap_and_bounded_memory() {
    let _alone = ONE_AT_A_TIME.lock();
    use tower_prometheus::endpoint::Format;
    use tower_prometheus::facade::{FacadeRecorder, FACADE_ERRORS};
    use tower_prometheus::MetricsEndpoint;

    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::builder(&registry)
        .max_metric_names(NAME_CAP)
        .build()
        .expect("recorder builds");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    // Code that makes names from data: a counter and a description per user.
    let flood = |users: std::ops::Range<usize>| {
        metrics::with_local_recorder(&recorder, || {
            for user in users {
                metrics::describe_counter!(format!("user_{user}_hits"), "Hits of one user.");
                metrics::counter!(format!("user_{user}_hits")).increment(1);
            }
        });
    };
    flood(0..10 * NAME_CAP);
    let after_fill = LIVE.load(Ordering::Relaxed);
    flood(10 * NAME_CAP..20_000);
    let growth = LIVE.load(Ordering::Relaxed) - after_fill;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let body = runtime
        .block_on(endpoint.render(Format::PrometheusText))
        .expect("scrape renders");
    let metrics = common::Exposition::parse(&String::from_utf8(body).expect("text"));
    let kept = metrics
        .samples
        .iter()
        .filter(|s| s.name.starts_with("user_"))
        .count();
    assert_eq!(kept, NAME_CAP);
    // Each name past the cap: its description and its record, counted.
    assert_eq!(
        metrics.value(
            &format!("{FACADE_ERRORS}_total"),
            &[("reason", "too_many_names")]
        ),
        Some((2 * (20_000 - NAME_CAP)) as f64)
    );
    assert!(
        growth < 64 * 1024,
        "live heap grew by {growth} bytes while 19,000 new names were recorded"
    );
}
