//! Recording an HTTP request allocates nothing once its series exist, with every
//! option on too (native duration buckets: once their chunk exists; through axum: its
//! request body is not boxed again), and a gRPC call one small block (the state its
//! request body and its response share). On the client side, recording an outgoing
//! request or gRPC call allocates nothing once its series exist. Labels read from
//! requests, responses or gRPC metadata allocate nothing more. Through the `metrics`
//! facade, a record allocates nothing once its series (and its native chunk) exist, and
//! so does a family of your own given the values of its declared label names. A
//! counting global allocator needs a test binary of its own.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;

use std::convert::Infallible;
use std::future::Ready;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Full;
use tower::{service_fn, Layer};
use tower_prometheus::client::{
    ClientMetricsLayer, ClientOutcome, ClientRequestBody, ClientRequestCount, HttpClientLabels,
    ServerLabels, CLIENT_REQUESTS_TOTAL, GRPC_CLIENT_HANDLED, GRPC_CLIENT_MSG_RECEIVED,
    GRPC_CLIENT_MSG_SENT, GRPC_CLIENT_STARTED,
};
use tower_prometheus::grpc::{
    GrpcCode, GrpcCount, GrpcHandledCount, GrpcHandledLabels, GrpcLabels, GrpcType, GRPC_HANDLED,
    GRPC_MSG_RECEIVED, GRPC_MSG_SENT, GRPC_STARTED,
};
use tower_prometheus::layer::{
    BodySize, Exemplars, HttpLabels, HttpMethod, LabelValues, MetricsLayerBuilder, RequestBody,
    RequestCount, RequestDuration, TimeToHeaders, REQUESTS_TOTAL, REQUEST_BODY_SIZE,
    REQUEST_DURATION, RESPONSE_BODY_SIZE, TIME_TO_HEADERS,
};
use tower_prometheus::metrics::{Histogram, NativeBuckets};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Per thread, so tests running in parallel do not count each other.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting only
// reads and bumps thread-local cells.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
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
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f`, counting the allocations it makes on this thread.
fn counted<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let output = f();
    COUNTING.with(|c| c.set(false));
    (output, ALLOCATIONS.with(Cell::get) - before)
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
    untouched_requests_allocate_nothing(MetricsLayer::builder(&registry));
    assert_every_request_counted(&registry, "");
}

#[test]
fn recording_the_time_to_headers_allocates_nothing_once_its_series_exist() {
    let registry = MetricsRegistry::new();
    untouched_requests_allocate_nothing(
        MetricsLayer::builder(&registry).time_to_headers_histogram(true),
    );
    assert_every_request_counted(&registry, "");
    let headers: TimeToHeaders = registry.get(TIME_TO_HEADERS).expect("family");
    for labels in recorded_labels() {
        let series = headers.get(&labels).expect("time-to-headers series");
        assert_eq!(series.count(), ROUNDS as u64 + 1);
    }
}

/// A request of [`request`] with a sampled W3C trace context.
fn traced_request(method: Method, status: u16) -> Request<()> {
    let mut request = request(method, status);
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    request
        .headers_mut()
        .insert("traceparent", http::HeaderValue::from_static(traceparent));
    request
}

#[test]
fn a_traced_request_allocates_its_exemplar_alone_once_series_exist() {
    let registry = MetricsRegistry::new();
    let layer = with_routes(MetricsLayer::builder(&registry))
        .exemplars(Exemplars::traceparent())
        .build()
        .expect("layer builds");
    let service = layer.layer(service_fn(common::answer_with_requested_status::<()>));
    // The trace context, boxed so a request without one carries an empty pointer.
    requests_made_by_allocate(service, traced_request, 1);
    assert_every_request_counted(&registry, "");
    // Requests without a trace context allocate nothing.
    untouched_requests_allocate_nothing(
        MetricsLayer::builder(&MetricsRegistry::new()).exemplars(Exemplars::traceparent()),
    );
}

#[test]
fn recording_body_sizes_allocates_nothing_once_their_series_exist() {
    let registry = MetricsRegistry::new();
    let layer = with_routes(MetricsLayer::builder(&registry))
        .request_body_size_histogram()
        .response_body_size_histogram(true);
    // The counter of request body bytes is shared by the body and the recorder, and
    // reused once both are done with it.
    let service = layer.build().expect("layer builds").layer(service_fn(
        common::answer_with_requested_status::<RequestBody<()>>,
    ));
    requests_allocate_nothing_once_their_series_exist(service);
    assert_every_request_counted(&registry, "");
    let requests: BodySize = registry.get(REQUEST_BODY_SIZE).expect("family");
    let responses: BodySize = registry.get(RESPONSE_BODY_SIZE).expect("family");
    for labels in recorded_labels() {
        let request = requests.get(&labels).expect("request size series");
        assert_eq!((request.count(), request.sum()), (ROUNDS as u64 + 1, 0.0));
        let response = responses.get(&labels).expect("response size series");
        // Each answer is `body`, 4 bytes.
        assert_eq!(response.count(), ROUNDS as u64 + 1);
        assert_eq!(response.sum(), 4.0 * (ROUNDS as f64 + 1.0));
    }
}

#[test]
fn recording_with_constant_labels_and_a_prefix_allocates_nothing_once_series_exist() {
    let registry = MetricsRegistry::new();
    untouched_requests_allocate_nothing(
        MetricsLayer::builder(&registry)
            .name_prefix("shop")
            .constant_labels([("service", "checkout")]),
    );
    assert_every_request_counted(&registry, "shop_");
}

#[test]
fn recording_native_durations_allocates_nothing_once_their_chunks_exist() {
    let registry = MetricsRegistry::new();
    let service =
        with_routes(MetricsLayer::builder(&registry).native_histograms(NativeBuckets::default()))
            .build()
            .expect("layer builds")
            .layer(service_fn(common::answer_with_requested_status::<()>));
    // The layer records into the family's series of each label set: made here first,
    // with every chunk a request's duration can fall in.
    let durations: RequestDuration = registry.get(REQUEST_DURATION).expect("family");
    let touched: Vec<u64> = recorded_labels()
        .iter()
        .map(|labels| {
            let duration = durations.get_or_create(labels);
            touch_native_chunks(&duration);
            duration.count()
        })
        .collect();
    requests_allocate_nothing_once_their_series_exist(service);
    assert_every_request_counted(&registry, "");
    for (labels, touched) in recorded_labels().iter().zip(touched) {
        let duration = durations.get(labels).expect("duration series");
        assert_eq!(duration.count(), touched + ROUNDS as u64 + 1);
    }
}

/// A native bucket's first observation allocates its chunk of 64 buckets (and, first
/// in its page, the page); the chunk's other buckets allocate nothing.
#[test]
fn a_native_chunk_is_allocated_once_on_first_use() {
    let histogram = Histogram::native(NativeBuckets::default());
    let ((), first) = counted(|| histogram.observe(0.01));
    assert!((1..=2).contains(&first), "{first} allocations");
    // At schema 3, 0.01 and 0.011 are a bucket apart, in the same chunk.
    let ((), again) = counted(|| {
        for _ in 0..1000 {
            histogram.observe(0.01);
            histogram.observe(0.011);
        }
    });
    assert_eq!(again, 0);
    assert_eq!(histogram.count(), 2001);
}

/// Observes every native bucket from 1 ns to 16 s once, so each chunk requests can
/// fall in exists.
fn touch_native_chunks(histogram: &Histogram) {
    for step in (-30 * 8)..=(4 * 8) {
        histogram.observe((f64::from(step) / 8.0).exp2());
    }
}

/// Builds the layer `builder` configures, with [`with_routes`], around a service of
/// plain request bodies, and counts its allocations.
fn untouched_requests_allocate_nothing(builder: MetricsLayerBuilder) {
    let service = with_routes(builder)
        .build()
        .expect("layer builds")
        .layer(service_fn(common::answer_with_requested_status::<()>));
    requests_allocate_nothing_once_their_series_exist(service);
}

/// Routes requests by method: `POST` to `/orders`, the others to `/items/{id}`.
fn with_routes<M>(builder: MetricsLayerBuilder<M>) -> MetricsLayerBuilder<M> {
    builder.route_fn(|parts| {
        Some(Cow::Borrowed(if parts.method == Method::POST {
            "/orders"
        } else {
            "/items/{id}"
        }))
    })
}

const ROUNDS: usize = 1_000;

/// The methods and statuses the requests are sent with.
const CASES: [(Method, u16); 4] = [
    (Method::GET, 200),
    (Method::GET, 404),
    (Method::POST, 201),
    (Method::POST, 500),
];

/// The labels of the requests of [`CASES`].
fn recorded_labels() -> Vec<HttpLabels> {
    [
        ("/items/{id}", HttpMethod::Get, 200),
        ("/items/{id}", HttpMethod::Get, 404),
        ("/orders", HttpMethod::Post, 201),
        ("/orders", HttpMethod::Post, 500),
    ]
    .into_iter()
    .map(|(route, method, status)| HttpLabels::new(method, status, route))
    .collect()
}

/// Drives the requests of [`CASES`] through `service`, counting allocations after
/// the first ones.
fn requests_allocate_nothing_once_their_series_exist<S, B>(service: S)
where
    S: tower::Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body,
    B::Error: std::fmt::Debug,
{
    requests_made_by_allocate(service, request, 0);
}

/// Drives the requests of [`CASES`], made by `make`, through `service`: after the
/// first ones, each allocates `per_request` blocks.
fn requests_made_by_allocate<S, B>(
    mut service: S,
    make: fn(Method, u16) -> Request<()>,
    per_request: usize,
) where
    S: tower::Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body,
    B::Error: std::fmt::Debug,
{
    // First requests create the series.
    for (method, status) in &CASES {
        common::drive(&mut service, make(method.clone(), *status));
    }
    let mut allocations = 0;
    for _ in 0..ROUNDS {
        for (method, status) in &CASES {
            let request = make(method.clone(), *status);
            let (answered, allocated) = counted(|| common::drive(&mut service, request));
            allocations += allocated;
            assert_eq!(answered.as_u16(), *status);
        }
    }
    assert_eq!(
        allocations,
        per_request * ROUNDS * CASES.len(),
        "allocations over {} requests",
        ROUNDS * CASES.len()
    );
}

/// Every request of [`CASES`] was recorded, in the family of the layer named with
/// `prefix`.
fn assert_every_request_counted(registry: &MetricsRegistry, prefix: &str) {
    let requests: RequestCount = registry
        .get(&format!("{prefix}{REQUESTS_TOTAL}"))
        .expect("family");
    for labels in recorded_labels() {
        let series = requests.get(&labels).expect("series");
        assert_eq!(series.get(), ROUNDS as u64 + 1);
    }
}

/// Answers with the `x-cache` header the request asks for in `x-want-cache`.
fn answer_with_cache_header(
    request: Request<()>,
) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"body")));
    if let Some(wanted) = request.headers().get("x-want-cache") {
        response.headers_mut().insert("x-cache", wanted.clone());
    }
    std::future::ready(Ok(response))
}

#[test]
fn labels_from_requests_and_responses_allocate_nothing_once_their_series_exist() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|_| Some(Cow::Borrowed("/items")))
        .request_label("tenant", LabelValues::first(2), |head| {
            head.headers.get("x-tenant")?.to_str().ok()
        })
        .response_label("cache", LabelValues::allow(["hit", "miss"]), |head| {
            head.headers.get("x-cache")?.to_str().ok()
        })
        .build()
        .expect("layer builds");
    let mut service = layer.layer(service_fn(answer_with_cache_header));
    let labelled = |tenant: &str, cache: &str| {
        let mut request = Request::new(());
        let headers = request.headers_mut();
        headers.insert("x-tenant", HeaderValue::from_str(tenant).expect("a value"));
        headers.insert(
            "x-want-cache",
            HeaderValue::from_str(cache).expect("a value"),
        );
        request
    };
    let cases = [("a", "hit"), ("a", "miss"), ("b", "hit"), ("b", "stale")];
    for (tenant, cache) in cases {
        common::drive(&mut service, labelled(tenant, cache));
    }
    // The third tenant and later ones are `_OTHER`: their first request already is.
    common::drive(&mut service, labelled("c", "hit"));

    // The inner service allocates too (it sets a response header): the layer adds
    // nothing to what it does alone.
    let mut bare = service_fn(answer_with_cache_header);
    const ROUNDS: usize = 1_000;
    let (mut layered_allocations, mut bare_allocations) = (0, 0);
    for round in 0..ROUNDS {
        // A new tenant each round, past the first two: `_OTHER`, without a lock.
        let new_tenant = format!("tenant-{round}");
        for (tenant, cache) in cases.into_iter().chain([(&*new_tenant, "hit")]) {
            let request = labelled(tenant, cache);
            layered_allocations += counted(|| common::drive(&mut service, request)).1;
            let request = labelled(tenant, cache);
            bare_allocations += counted(|| common::drive(&mut bare, request)).1;
        }
    }
    assert_eq!(
        layered_allocations,
        bare_allocations,
        "allocations over {} requests",
        ROUNDS * 5
    );

    let requests: RequestCount = registry.get(REQUESTS_TOTAL).expect("family");
    let count = |tenant: &str, cache: &str| {
        let labels = HttpLabels::new(HttpMethod::Get, 200, "/items")
            .with_label("tenant", tenant)
            .with_label("cache", cache);
        requests.get(&labels).map(|counter| counter.get())
    };
    let rounds = ROUNDS as u64;
    assert_eq!(count("a", "hit"), Some(rounds + 1));
    assert_eq!(count("a", "miss"), Some(rounds + 1));
    assert_eq!(count("b", "hit"), Some(rounds + 1));
    assert_eq!(
        count("b", "_OTHER"),
        Some(rounds + 1),
        "`stale` is not allowed"
    );
    assert_eq!(
        count("_OTHER", "hit"),
        Some(rounds + 1),
        "`c` and every new tenant"
    );
}

/// Allocations of `ROUNDS` requests through `router` (after a first one), checking
/// each is answered.
fn axum_allocations(mut router: axum::Router) -> usize {
    let request = || {
        Request::get("/users/7")
            .body(axum::body::Body::empty())
            .expect("valid request")
    };
    // The first request creates the series.
    common::drive(&mut router, request());
    (0..AXUM_ROUNDS)
        .map(|_| {
            let (status, allocated) = counted(|| common::drive(&mut router, request()));
            assert_eq!(status, StatusCode::OK);
            allocated
        })
        .sum()
}

const AXUM_ROUNDS: usize = 1_000;

#[test]
fn through_axum_the_request_body_is_not_boxed_again() {
    let routes =
        || axum::Router::new().route("/users/{id}", axum::routing::get(|| async { "user" }));
    let registry = MetricsRegistry::new();
    let untouched =
        axum_allocations(routes().layer(MetricsLayer::new(&registry).expect("layer builds")));
    let counting = axum_allocations(
        routes().layer(
            MetricsLayer::builder(&MetricsRegistry::new())
                .count_grpc_messages()
                .build()
                .expect("layer builds"),
        ),
    );
    // A request body left as it came reaches the route as axum's own body; a wrapped
    // one is boxed by the route, once per request.
    assert_eq!(counting, untouched + AXUM_ROUNDS);

    let requests: RequestCount = registry.get(REQUESTS_TOTAL).expect("family");
    let served = requests
        .get(&HttpLabels::new(HttpMethod::Get, 200, "/users/{id}"))
        .expect("series");
    assert_eq!(served.get(), AXUM_ROUNDS as u64 + 1);
}

/// One gRPC message of 3 bytes, framed.
const GRPC_MESSAGE: &[u8] = &[0, 0, 0, 0, 3, 1, 2, 3];

/// A gRPC call, with `tenant` in its metadata when given.
fn grpc_request(tenant: Option<&'static str>) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(GRPC_MESSAGE)));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = http::Uri::from_static("/t.Service/Method");
    request.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    if let Some(tenant) = tenant {
        request
            .headers_mut()
            .insert("x-tenant", HeaderValue::from_static(tenant));
    }
    request
}

/// A gRPC service: reads the request message, answers one message and status OK.
fn grpc_reply<B: Body>(request: Request<B>) -> Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut body = pin!(request.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        assert!(frame.is_ok());
    }
    let mut response = Response::new(Full::new(Bytes::from_static(GRPC_MESSAGE)));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from_static("0"));
    std::future::ready(Ok(response))
}

const GRPC_ROUNDS: usize = 1_000;

/// Allocations of `GRPC_ROUNDS` calls (after a first one, which creates the series)
/// straight to the service and through `layered`, the same service behind a layer.
fn grpc_allocations<S, B>(layered: S) -> (usize, usize)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    grpc_allocations_of(layered, &[None])
}

/// The same, the calls carrying each of `tenants` in turn (after a first call with
/// each).
fn grpc_allocations_of<S, B>(mut layered: S, tenants: &[Option<&'static str>]) -> (usize, usize)
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut bare = service_fn(grpc_reply::<Full<Bytes>>);
    for tenant in tenants {
        common::drive(&mut layered, grpc_request(*tenant));
    }
    let (mut bare_allocations, mut layered_allocations) = (0, 0);
    for round in 0..GRPC_ROUNDS {
        let tenant = tenants[round % tenants.len()];
        let request = grpc_request(tenant);
        bare_allocations += counted(|| common::drive(&mut bare, request)).1;
        let request = grpc_request(tenant);
        layered_allocations += counted(|| common::drive(&mut layered, request)).1;
    }
    (bare_allocations, layered_allocations)
}

#[test]
fn recording_a_grpc_call_allocates_one_block_beyond_the_service() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .count_grpc_messages()
        .build()
        .expect("layer builds");
    let layered = layer.layer(service_fn(grpc_reply::<RequestBody<Full<Bytes>>>));
    let (bare_allocations, layered_allocations) = grpc_allocations(layered);
    // The service's own header map allocates; the layer adds one block per call: which
    // series the call has, and whether the client broke its request off, are shared
    // by the request body the service reads and the response the layer watches.
    assert_eq!(layered_allocations, bare_allocations + GRPC_ROUNDS);

    let labels = GrpcLabels::new(GrpcType::Unary, "t.Service", "Method");
    let calls = GRPC_ROUNDS as u64 + 1;
    for name in [GRPC_STARTED, GRPC_MSG_RECEIVED, GRPC_MSG_SENT] {
        let family: GrpcCount = registry.get(name).expect("family");
        let series = family.get(&labels).expect("series");
        assert_eq!(series.get(), calls, "{name}");
    }
    let handled: GrpcHandledCount = registry.get(GRPC_HANDLED).expect("family");
    let ok = handled
        .get(&GrpcHandledLabels::new(labels, GrpcCode::Ok))
        .expect("series");
    assert_eq!(ok.get(), calls);
}

#[test]
fn recording_a_grpc_call_with_metadata_labels_allocates_one_block_beyond_the_service() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        .grpc_metadata_label("tenant", LabelValues::first(2), "x-tenant")
        .build()
        .expect("layer builds");
    let layered = layer.layer(service_fn(grpc_reply::<RequestBody<Full<Bytes>>>));
    // Two first-seen tenants, one past them, and none.
    let tenants = [Some("acme"), Some("globex"), Some("initech"), None];
    let (bare_allocations, layered_allocations) = grpc_allocations_of(layered, &tenants);
    // The same one block per call as without labels: the values are found in place.
    assert_eq!(layered_allocations, bare_allocations + GRPC_ROUNDS);

    let per_tenant = (GRPC_ROUNDS / tenants.len()) as u64 + 1;
    let started: GrpcCount = registry.get(GRPC_STARTED).expect("family");
    assert_eq!(started.len(), 4, "acme, globex, `_OTHER` and empty");
    for tenant in ["acme", "globex", "_OTHER", ""] {
        let labels =
            GrpcLabels::new(GrpcType::Unary, "t.Service", "Method").with_label("tenant", tenant);
        let series = started.get(&labels).expect("series");
        assert_eq!(series.get(), per_tenant, "{tenant:?}");
    }
}

/// A request to `uri` the inner service answers with `status`.
fn outgoing(uri: &'static str, status: u16) -> Request<()> {
    let mut request = request(Method::GET, status);
    *request.uri_mut() = http::Uri::from_static(uri);
    request
}

#[test]
fn recording_an_outgoing_request_allocates_nothing_once_its_series_exist() {
    let registry = MetricsRegistry::new();
    let layer = ClientMetricsLayer::new(&registry).expect("client layer builds");
    let mut client = layer.layer(service_fn(
        common::answer_with_requested_status::<ClientRequestBody<()>>,
    ));
    let cases = [
        ("http://a.example/x", 200),
        ("http://a.example/y", 503),
        ("http://127.0.0.1:8080/", 200),
    ];
    // The first requests create the series.
    for (uri, status) in cases {
        common::drive(&mut client, outgoing(uri, status));
    }

    const ROUNDS: usize = 1_000;
    let mut allocations = 0;
    for _ in 0..ROUNDS {
        for (uri, status) in cases {
            let request = outgoing(uri, status);
            let (answered, allocated) = counted(|| common::drive(&mut client, request));
            allocations += allocated;
            assert_eq!(answered.as_u16(), status);
        }
    }
    assert_eq!(
        allocations,
        0,
        "allocations over {} requests",
        ROUNDS * cases.len()
    );

    let requests: ClientRequestCount = registry.get(CLIENT_REQUESTS_TOTAL).expect("family");
    let count = |address: &str, port, status| {
        let server = ServerLabels::new(HttpMethod::Get, address, Some(port));
        requests
            .get(&HttpClientLabels::new(
                server,
                ClientOutcome::status(status),
            ))
            .map(|counter| counter.get())
    };
    let calls = Some(ROUNDS as u64 + 1);
    assert_eq!(count("a.example", 80, 200), calls);
    assert_eq!(count("a.example", 80, 503), calls);
    assert_eq!(count("127.0.0.1", 8080, 200), calls);
}

#[test]
fn recording_an_outgoing_grpc_call_allocates_nothing_beyond_the_service() {
    let registry = MetricsRegistry::new();
    let layer = ClientMetricsLayer::new(&registry).expect("client layer builds");
    let layered = layer.layer(service_fn(grpc_reply::<ClientRequestBody<Full<Bytes>>>));
    let (bare_allocations, layered_allocations) = grpc_allocations(layered);
    assert_eq!(layered_allocations, bare_allocations);

    let labels = GrpcLabels::new(GrpcType::Unary, "t.Service", "Method");
    let calls = GRPC_ROUNDS as u64 + 1;
    for name in [
        GRPC_CLIENT_STARTED,
        GRPC_CLIENT_MSG_SENT,
        GRPC_CLIENT_MSG_RECEIVED,
    ] {
        let family: GrpcCount = registry.get(name).expect("family");
        let series = family.get(&labels).expect("series");
        assert_eq!(series.get(), calls, "{name}");
    }
    let handled: GrpcHandledCount = registry.get(GRPC_CLIENT_HANDLED).expect("family");
    let ok = handled
        .get(&GrpcHandledLabels::new(labels, GrpcCode::Ok))
        .expect("series");
    assert_eq!(ok.get(), calls);
}

/// Through the `metrics` facade, once a key's series exists, the macro call and its
/// record allocate nothing: the key of literal labels is static, and the recorder's
/// lookup and the series' add allocate nothing of their own.
#[cfg(feature = "metrics")]
#[test]
fn recording_through_the_facade_allocates_nothing_once_its_series_exist() {
    use tower_prometheus::facade::FacadeRecorder;

    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::new(&registry).unwrap();
    let record = || {
        metrics::counter!("orders", "kind" => "book", "region" => "eu").increment(1);
        metrics::gauge!("queue_depth", "queue" => "mail").increment(1.5);
        metrics::gauge!("queue_depth", "queue" => "mail").set(2.0);
        metrics::histogram!("checkout_seconds", "kind" => "book").record(0.05);
    };
    metrics::with_local_recorder(&recorder, || {
        record();
        let ((), allocations) = counted(record);
        assert_eq!(allocations, 0);
        let resolved = metrics::counter!("orders", "kind" => "book", "region" => "eu");
        let ((), allocations) = counted(|| resolved.increment(3));
        assert_eq!(allocations, 0);
    });
    let orders = registry
        .get::<tower_prometheus::metrics::CounterFamily>("orders")
        .unwrap();
    let book = vec![
        ("kind".to_string(), "book".to_string()),
        ("region".to_string(), "eu".to_string()),
    ];
    assert_eq!(orders.get(&book).map(|c| c.get()), Some(5));
}

/// A facade histogram with native buckets: once its series and the chunk of its values
/// exist, the macro call and its record allocate nothing.
#[cfg(feature = "metrics")]
#[test]
fn recording_a_native_facade_histogram_allocates_nothing_once_its_chunk_exists() {
    use tower_prometheus::facade::{FacadeRecorder, Matcher};
    use tower_prometheus::metrics::HistogramFamily;

    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::builder(&registry)
        .native_histograms_for(Matcher::Suffix("_seconds".into()), NativeBuckets::default())
        .build()
        .unwrap();
    // At schema 3, 0.01 and 0.011 are a bucket apart, in the same chunk.
    let record = || {
        for _ in 0..1000 {
            metrics::histogram!("checkout_seconds", "kind" => "book").record(0.01);
            metrics::histogram!("checkout_seconds", "kind" => "book").record(0.011);
        }
    };
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("checkout_seconds", "kind" => "book").record(0.01);
        let ((), allocations) = counted(record);
        assert_eq!(allocations, 0);
    });
    let checkout = registry.get::<HistogramFamily>("checkout_seconds").unwrap();
    let book = vec![("kind".to_string(), "book".to_string())];
    let histogram = checkout.get(&book).expect("series");
    assert_eq!(histogram.count(), 2001);
    assert!(histogram.native_allocated_bytes() > 0, "{histogram:?}");
}

/// A family of your own with declared label names: once a series exists, giving its
/// values by position or by name (in any order), and its label pairs in the other
/// order once that order has been seen, allocates nothing.
#[test]
fn declared_labels_by_position_or_by_name_allocate_nothing_once_the_series_exists() {
    use tower_prometheus::metrics::CounterFamily;

    let registry = MetricsRegistry::new();
    registry
        .provider("orders", "Orders.", || {
            <CounterFamily>::default().label_names(["method", "status"])
        })
        .unwrap();
    let _layer = MetricsLayer::new(&registry).unwrap();
    let orders = registry.get::<CounterFamily>("orders").unwrap();
    let reversed = vec![
        ("status".to_string(), "200".to_string()),
        ("method".to_string(), "GET".to_string()),
    ];
    let record = || {
        orders.labels(&["GET", "200"]).unwrap().inc();
        orders
            .labels_by_name(&[("status", "200"), ("method", "GET")])
            .unwrap()
            .inc();
        orders.get_or_create(&reversed).inc();
    };
    record();
    let ((), allocations) = counted(record);
    assert_eq!(allocations, 0);
    assert_eq!(
        (
            orders.len(),
            orders.labels(&["GET", "200"]).map(|c| c.get())
        ),
        (1, Ok(6))
    );
}
