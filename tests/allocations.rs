//! Recording a request allocates nothing once its series exist. A counting global
//! allocator needs a test binary of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use tower::{service_fn, Layer, Service};
use tower_prometheus::layer::{HttpLabels, HttpMethod, RequestBody, RequestCount, REQUESTS_TOTAL};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting only
// reads a thread-local flag and bumps an atomic.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs one request through `service` to the end of its body, polling with a no-op
/// waker (every future here is ready at once).
fn run_request<S, B>(service: &mut S, request: Request<()>) -> StatusCode
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the inner service answers at once");
    };
    let status = response.status();
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        assert!(frame.is_ok());
    }
    status
}

fn request(method: Method, status: u16) -> Request<()> {
    let mut request = Request::new(());
    *request.method_mut() = method;
    // The inner service reads the status to answer from an extension.
    request
        .extensions_mut()
        .insert(StatusCode::from_u16(status).expect("valid status"));
    request
}

#[test]
fn recording_a_request_allocates_nothing_once_its_series_exist() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|parts| {
            Some(Cow::Borrowed(if parts.method == Method::POST {
                "/orders"
            } else {
                "/items/{id}"
            }))
        })
        .build()
        .expect("layer builds");
    let mut service = layer.layer(service_fn(|request: Request<RequestBody<()>>| {
        let status = request
            .extensions()
            .get::<StatusCode>()
            .copied()
            .unwrap_or(StatusCode::OK);
        let mut response = Response::new(Full::new(Bytes::from_static(b"body")));
        *response.status_mut() = status;
        std::future::ready(Ok::<_, Infallible>(response))
    }));
    let cases = [
        (Method::GET, 200),
        (Method::GET, 404),
        (Method::POST, 201),
        (Method::POST, 500),
    ];

    // First requests create the series.
    for (method, status) in &cases {
        run_request(&mut service, request(method.clone(), *status));
    }

    const ROUNDS: usize = 1_000;
    let mut allocations = 0;
    for _ in 0..ROUNDS {
        for (method, status) in &cases {
            let request = request(method.clone(), *status);
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            COUNTING.with(|c| c.set(true));
            let answered = run_request(&mut service, request);
            COUNTING.with(|c| c.set(false));
            allocations += ALLOCATIONS.load(Ordering::Relaxed) - before;
            assert_eq!(answered.as_u16(), *status);
        }
    }
    assert_eq!(
        allocations,
        0,
        "allocations over {} requests",
        ROUNDS * cases.len()
    );

    // And every request was recorded.
    let requests: RequestCount = registry.get(REQUESTS_TOTAL).expect("family");
    for (route, method, status) in [
        ("/items/{id}", HttpMethod::Get, 200),
        ("/items/{id}", HttpMethod::Get, 404),
        ("/orders", HttpMethod::Post, 201),
        ("/orders", HttpMethod::Post, 500),
    ] {
        let series = requests
            .get(&HttpLabels::new(method, status, route))
            .expect("series");
        assert_eq!(series.get(), ROUNDS as u64 + 1);
    }
}
