//! Per-request cost of `MetricsLayer` against the alternatives, measured in one run
//! through the same axum `Router` (two routes, `Router::layer`, the body read to the
//! end):
//!
//! - `bare`: the router alone;
//! - `noop_layer`: a layer that does nothing (axum's own cost of layering);
//! - `minimal_metrics`: the least a metrics layer can do (written here): two clock
//!   reads, in-flight up and down, a count, a sum and one bucket as relaxed atomic adds
//!   on a series already found, no label lookup;
//! - `minimal_metrics_body_end`: the same, recorded when the response body ends rather
//!   than at the headers, as a layer timing streamed bodies must;
//! - `metrics_layer`: this crate, in-process and in multi-process mode;
//! - `option_*`: this crate with one option on: `skip_routes` and `skip_if`
//!   configured (the request is not skipped), the time-to-headers histogram, constant
//!   labels and a prefix, both body size histograms, native duration buckets
//!   (schema 3) in place of the classic ones, a label read from the request (a hash
//!   probe of its first-seen values) and one from the response (an allow-list);
//!   exemplars from the W3C trace context, against `traced_requests` (the plain
//!   layer, each request given the same `traceparent` header by a layer in front);
//! - `axum_prometheus`: axum-prometheus 0.10;
//! - `naive_prometheus_client`: a middleware looking up prometheus-client families per
//!   request.
//!
//! `cargo bench --bench layer` prints each overhead over `bare` in ns, this crate's as a
//! ratio to the minimal layer's and to axum-prometheus's, each option's as a ratio to
//! the plain layer's, and the same with requests from 2 threads onto one series.
//!
//! `grpc/`: a gRPC call (one message each way) through a `grpc_only` `MetricsLayer`
//! around a service that answers at once (`bare`: that service alone), without
//! labels read from calls (`metrics_layer`) and with one read from a metadata key
//! (`metadata_label`).
//!
//! `client/`: an outgoing request through `ClientMetricsLayer` around an inner client
//! that answers at once (`bare`: that client alone), an HTTP request (`http`) and a
//! gRPC call of one message each way (`grpc`), the response body read to the end.

use std::future::Future;
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, Criterion};
use http_body::Body as _;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_prometheus::layer::{Exemplars, LabelValues, MetricsLayerBuilder};
use tower_prometheus::metrics::NativeBuckets;
use tower_prometheus::{BuildError, MetricsLayer, MetricsRegistry};

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/users/{id}", get(|| async { "user" }))
}

/// One request through `router`, to the end of its body. Every future here is ready
/// at once, so a no-op waker drives it.
fn request(router: &mut Router) {
    request_to(router, "/users/7");
}

fn request_to(router: &mut Router, uri: &str) {
    let mut cx = Context::from_waker(Waker::noop());
    let request = Request::builder()
        .uri(uri)
        .body(Body::empty())
        .expect("valid request");
    let _ = <Router as Service<Request>>::poll_ready(router, &mut cx);
    let mut future = pin!(router.call(request));
    let response = loop {
        if let Poll::Ready(response) = future.as_mut().poll(&mut cx) {
            break response.expect("infallible");
        }
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        black_box(frame.is_ok());
    }
}

/// The least a metrics layer does, on one series found once.
#[derive(Clone, Default)]
struct MinimalLayer {
    series: Arc<MinimalSeries>,
}

#[derive(Default)]
struct MinimalSeries {
    in_flight: AtomicI64,
    count: AtomicU64,
    sum_nanos: AtomicU64,
    buckets: [AtomicU64; 15],
}

#[derive(Clone)]
struct MinimalService<S> {
    inner: S,
    series: Arc<MinimalSeries>,
}

impl<S> Layer<S> for MinimalLayer {
    type Service = MinimalService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MinimalService {
            inner,
            series: Arc::clone(&self.series),
        }
    }
}

impl<S: Service<Request>> Service<Request> for MinimalService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = MinimalFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.series.in_flight.fetch_add(1, Ordering::Relaxed);
        MinimalFuture {
            inner: self.inner.call(request),
            series: Arc::clone(&self.series),
            start: Instant::now(),
        }
    }
}

pin_project! {
    struct MinimalFuture<F> {
        #[pin]
        inner: F,
        series: Arc<MinimalSeries>,
        start: Instant,
    }
}

impl MinimalSeries {
    /// A request that started at `start` ended.
    fn record(&self, start: Instant) {
        let nanos = start.elapsed().as_nanos() as u64;
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.buckets[(nanos.min(14_000) / 1000) as usize].fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<F: Future> Future for MinimalFuture<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        this.series.record(*this.start);
        Poll::Ready(output)
    }
}

/// The minimal layer, but recording when the response body ends (or is dropped), as
/// any layer must that times streamed bodies: the response body is wrapped, so axum
/// boxes it once more.
#[derive(Clone, Default)]
struct BodyEndLayer {
    series: Arc<MinimalSeries>,
}

#[derive(Clone)]
struct BodyEndService<S> {
    inner: S,
    series: Arc<MinimalSeries>,
}

/// Records its request when dropped.
struct BodyEndGuard {
    series: Arc<MinimalSeries>,
    start: Instant,
}

impl Drop for BodyEndGuard {
    fn drop(&mut self) {
        self.series.record(self.start);
    }
}

impl<S> Layer<S> for BodyEndLayer {
    type Service = BodyEndService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BodyEndService {
            inner,
            series: Arc::clone(&self.series),
        }
    }
}

impl<S: Service<Request, Response = Response>> Service<Request> for BodyEndService<S> {
    type Response = http::Response<BodyEndBody>;
    type Error = S::Error;
    type Future = BodyEndFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        self.series.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = BodyEndGuard {
            series: Arc::clone(&self.series),
            start: Instant::now(),
        };
        BodyEndFuture {
            inner: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project! {
    struct BodyEndFuture<F> {
        #[pin]
        inner: F,
        guard: Option<BodyEndGuard>,
    }
}

impl<F: Future<Output = Result<Response, E>>, E> Future for BodyEndFuture<F> {
    type Output = Result<http::Response<BodyEndBody>, E>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        let guard = this.guard.take();
        Poll::Ready(output.map(|response| response.map(|inner| BodyEndBody { inner, guard })))
    }
}

pin_project! {
    struct BodyEndBody {
        #[pin]
        inner: Body,
        guard: Option<BodyEndGuard>,
    }
}

impl http_body::Body for BodyEndBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, axum::Error>>> {
        let mut this = self.project();
        let frame = this.inner.as_mut().poll_frame(cx);
        let ended = match &frame {
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            Poll::Ready(_) => true,
            Poll::Pending => false,
        };
        if ended {
            this.guard.take();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

type NaiveLabels = Vec<(String, String)>;
type NaiveHistogram = prometheus_client::metrics::histogram::Histogram;

/// The obvious middleware over prometheus-client's own families.
#[derive(Clone)]
struct NaiveMetrics {
    requests: prometheus_client::metrics::family::Family<
        NaiveLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    duration: prometheus_client::metrics::family::Family<
        NaiveLabels,
        NaiveHistogram,
        fn() -> NaiveHistogram,
    >,
}

async fn naive_middleware(
    axum::extract::State(metrics): axum::extract::State<NaiveMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    let labels = vec![
        ("method".to_string(), method),
        ("status".to_string(), response.status().as_str().to_string()),
        ("route".to_string(), route),
    ];
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .duration
        .get_or_create(&labels)
        .observe(start.elapsed().as_secs_f64());
    response
}

fn naive_router() -> Router {
    fn histogram() -> NaiveHistogram {
        NaiveHistogram::new([
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        ])
    }
    let metrics = NaiveMetrics {
        requests: Default::default(),
        duration: prometheus_client::metrics::family::Family::new_with_constructor(histogram),
    };
    router().layer(axum::middleware::from_fn_with_state(
        metrics,
        naive_middleware,
    ))
}

fn metrics_router(dir: Option<&std::path::Path>) -> Router {
    let registry = MetricsRegistry::new();
    match dir {
        Some(dir) => registry.multiprocess_dir(dir),
        None => registry.single_process(),
    }
    .expect("not initialised");
    scraped(router().layer(MetricsLayer::new(&registry).expect("layer builds")))
}

/// The router behind a layer with an option on: `layered` adds the layer `builder`
/// configures for an in-process registry.
fn option_router(layered: impl FnOnce(MetricsLayerBuilder) -> Router) -> Router {
    let registry = MetricsRegistry::new();
    registry.single_process().expect("not initialised");
    scraped(layered(MetricsLayer::builder(&registry)))
}

fn built<M>(layer: Result<MetricsLayer<M>, BuildError>) -> MetricsLayer<M> {
    layer.expect("layer builds")
}

fn scraped(mut router: Router) -> Router {
    // Measured as a scraped service runs: until its first scrape the layer reads a
    // clock per request, to warn if scrapes cannot reach it (`Router::route_layer`).
    request_to(&mut router, "/metrics");
    router
}

/// A fresh multi-process directory, removed on drop.
struct MultiprocessDir(std::path::PathBuf);

impl MultiprocessDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-prometheus-layer-bench-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench directory");
        Self(dir)
    }
}

impl Drop for MultiprocessDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every variant, built once: axum-prometheus installs a process-wide recorder.
fn variants(dir: &MultiprocessDir) -> Vec<(&'static str, Router)> {
    let (axum_prometheus, _handle) = axum_prometheus::PrometheusMetricLayer::pair();
    vec![
        ("bare", router()),
        (
            "noop_layer",
            router().layer(tower::util::MapRequestLayer::new(|request: Request| {
                request
            })),
        ),
        ("minimal_metrics", router().layer(MinimalLayer::default())),
        (
            "minimal_metrics_body_end",
            router().layer(BodyEndLayer::default()),
        ),
        ("metrics_layer", metrics_router(None)),
        ("metrics_layer_multiprocess", metrics_router(Some(&dir.0))),
        (
            "option_skip_configured",
            option_router(|builder| {
                router().layer(built(
                    builder
                        .skip_routes(["/health"])
                        .skip_if(|parts| parts.uri.path() == "/ready")
                        .build(),
                ))
            }),
        ),
        (
            "option_time_to_headers",
            option_router(|builder| {
                router().layer(built(builder.time_to_headers_histogram(true).build()))
            }),
        ),
        (
            "option_constant_labels",
            option_router(|builder| {
                router().layer(built(
                    builder
                        .name_prefix("shop")
                        .constant_labels([("service", "checkout"), ("region", "eu")])
                        .build(),
                ))
            }),
        ),
        (
            "option_body_sizes",
            option_router(|builder| {
                router().layer(built(
                    builder
                        .request_body_size_histogram()
                        .response_body_size_histogram(true)
                        .build(),
                ))
            }),
        ),
        (
            "option_native_histograms",
            option_router(|builder| {
                router().layer(built(
                    builder.native_histograms(NativeBuckets::default()).build(),
                ))
            }),
        ),
        (
            "option_request_labels",
            option_router(|builder| {
                router().layer(built(
                    builder
                        .request_label("section", LabelValues::first(50), |head| {
                            head.uri.path().split('/').nth(1)
                        })
                        .response_label(
                            "content",
                            LabelValues::allow(["text/plain; charset=utf-8"]),
                            |head| head.headers.get(http::header::CONTENT_TYPE)?.to_str().ok(),
                        )
                        .build(),
                ))
            }),
        ),
        (
            "traced_requests",
            traced(router().layer(built(
                MetricsLayer::builder(&MetricsRegistry::new()).build(),
            ))),
        ),
        (
            "option_exemplars",
            traced(
                router().layer(built(
                    MetricsLayer::builder(&MetricsRegistry::new())
                        .exemplars(Exemplars::traceparent())
                        .build(),
                )),
            ),
        ),
        ("axum_prometheus", router().layer(axum_prometheus)),
        ("naive_prometheus_client", naive_router()),
    ]
}

/// `router` with a sampled W3C trace context added to each request before it.
fn traced(router: Router) -> Router {
    router.layer(tower::util::MapRequestLayer::new(|mut request: Request| {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        request
            .headers_mut()
            .insert("traceparent", http::HeaderValue::from_static(traceparent));
        request
    }))
}

/// Runs per variant, and requests per run, in the summary.
const TURNS: usize = 15;
const ROUNDS: u32 = 50_000;

/// Time per request of each variant with `threads` threads sending requests at once,
/// each on its own clone of the router (so onto the same series). The threads live
/// through the whole measurement; the variants take turns, many short runs each, and
/// each keeps its median run: a slow spell of the machine then shifts every variant
/// alike instead of one.
fn per_request(variants: &[(&str, Router)], threads: usize) -> Vec<f64> {
    let barrier = std::sync::Barrier::new(threads);
    // Per thread, per variant, the nanoseconds per request of each run.
    let runs: Vec<Vec<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let mut routers: Vec<Router> =
                        variants.iter().map(|(_, router)| router.clone()).collect();
                    for router in &mut routers {
                        for _ in 0..ROUNDS {
                            request(router);
                        }
                    }
                    let mut runs = vec![Vec::with_capacity(TURNS); routers.len()];
                    for _ in 0..TURNS {
                        for (router, runs) in routers.iter_mut().zip(&mut runs) {
                            barrier.wait();
                            let start = Instant::now();
                            for _ in 0..ROUNDS {
                                request(router);
                            }
                            runs.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(ROUNDS));
                        }
                    }
                    runs
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .collect()
    });
    (0..variants.len())
        .map(|variant| {
            let mut turns: Vec<f64> = (0..TURNS)
                .map(|turn| {
                    runs.iter().map(|thread| thread[variant][turn]).sum::<f64>() / threads as f64
                })
                .collect();
            median(&mut turns)
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    // axum-prometheus spawns an upkeep task when its layer is made.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _entered = runtime.enter();
    let dir = MultiprocessDir::new();
    let variants = variants(&dir);
    let mut group = c.benchmark_group("request");
    for (name, router) in &variants {
        let mut router = router.clone();
        group.bench_function(*name, |b| b.iter(|| request(&mut router)));
    }
    group.finish();

    for threads in [1, 2] {
        let times: Vec<(&str, f64)> = variants
            .iter()
            .map(|(name, _)| *name)
            .zip(per_request(&variants, threads))
            .collect();
        let bare = times[0].1;
        let overhead = |wanted: &str| {
            times
                .iter()
                .find(|(n, _)| *n == wanted)
                .map_or(0.0, |(_, t)| t - bare)
        };
        println!(
            "\n{threads} thread(s): bare router {bare:.0} ns per request; overhead over bare:"
        );
        for (name, time) in &times[1..] {
            println!("  {name:<28} {:>7.0} ns", time - bare);
        }
        let ours = overhead("metrics_layer");
        println!(
            "  metrics_layer / minimal_metrics = {:.2}, metrics_layer / axum_prometheus = {:.2}, \
             metrics_layer - minimal_metrics = {:.0} ns, \
             metrics_layer - minimal_metrics_body_end = {:.0} ns",
            ours / overhead("minimal_metrics"),
            ours / overhead("axum_prometheus"),
            ours - overhead("minimal_metrics"),
            ours - overhead("minimal_metrics_body_end"),
        );
        // The floor for any layer timing streamed bodies, against the same peer.
        println!(
            "  minimal_metrics_body_end / axum_prometheus = {:.2}",
            overhead("minimal_metrics_body_end") / overhead("axum_prometheus"),
        );
        // Exemplars need traced requests: compared with the plain layer on the same ones.
        println!(
            "  option_exemplars / traced_requests = {:.2} ({:+.0} ns)",
            overhead("option_exemplars") / overhead("traced_requests"),
            overhead("option_exemplars") - overhead("traced_requests"),
        );
        for (name, _) in times
            .iter()
            .filter(|(name, _)| name.starts_with("option_") && *name != "option_exemplars")
        {
            println!(
                "  {name} / metrics_layer = {:.2} ({:+.0} ns)",
                overhead(name) / ours,
                overhead(name) - ours,
            );
        }
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// An inner client that answers at once: one gRPC message, status `OK` in the headers
/// (an HTTP request ignores them).
fn answer_at_once<B>(
    _request: http::Request<B>,
) -> std::future::Ready<
    Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible>,
> {
    let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        GRPC_MESSAGE,
    )));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", http::HeaderValue::from_static("0"));
    std::future::ready(Ok(response))
}

/// One gRPC message of 3 bytes, framed.
const GRPC_MESSAGE: &[u8] = &[0, 0, 0, 0, 3, 1, 2, 3];

/// An outgoing request: a `GET` to a server, or a gRPC call with one message.
fn outgoing(grpc: bool) -> http::Request<http_body_util::Full<bytes::Bytes>> {
    let builder = if grpc {
        http::Request::post("http://127.0.0.1:50051/shop.Cart/Get")
            .header(http::header::CONTENT_TYPE, "application/grpc")
    } else {
        http::Request::get("http://127.0.0.1:8080/users/7")
    };
    let body = if grpc { GRPC_MESSAGE } else { &[] };
    builder
        .body(http_body_util::Full::new(bytes::Bytes::from_static(body)))
        .expect("valid request")
}

/// Sends `request` through `client` and reads the response body to the end.
fn send<S, B, R>(client: &mut S, request: http::Request<B>)
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: std::fmt::Debug,
    R: http_body::Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = client.poll_ready(&mut cx);
    let mut future = pin!(client.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the inner service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        black_box(frame.is_ok());
    }
}

fn client_benches(c: &mut Criterion) {
    use tower_prometheus::client::{ClientMetricsLayer, ClientRequestBody};
    type Sent = ClientRequestBody<http_body_util::Full<bytes::Bytes>>;

    let mut group = c.benchmark_group("client");
    let mut bare = tower::service_fn(answer_at_once::<http_body_util::Full<bytes::Bytes>>);
    group.bench_function("bare", |b| b.iter(|| send(&mut bare, outgoing(false))));
    let layer = ClientMetricsLayer::new(&MetricsRegistry::new()).expect("client layer builds");
    let mut client = layer.layer(tower::service_fn(answer_at_once::<Sent>));
    for (name, grpc) in [("http", false), ("grpc", true)] {
        group.bench_function(name, |b| b.iter(|| send(&mut client, outgoing(grpc))));
    }
    group.finish();
}

/// A gRPC call to a server, with `x-tenant` in its metadata.
fn incoming_call() -> http::Request<http_body_util::Full<bytes::Bytes>> {
    http::Request::post("/shop.Cart/Get")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("x-tenant", "acme")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            GRPC_MESSAGE,
        )))
        .expect("valid request")
}

fn grpc_benches(c: &mut Criterion) {
    use tower_prometheus::layer::RequestBody;
    type Received = RequestBody<http_body_util::Full<bytes::Bytes>>;

    let mut group = c.benchmark_group("grpc");
    let mut bare = tower::service_fn(answer_at_once::<http_body_util::Full<bytes::Bytes>>);
    group.bench_function("bare", |b| b.iter(|| send(&mut bare, incoming_call())));
    let layers = [
        (
            "metrics_layer",
            MetricsLayer::builder(&MetricsRegistry::new()),
        ),
        (
            "metadata_label",
            MetricsLayer::builder(&MetricsRegistry::new()).grpc_metadata_label(
                "tenant",
                LabelValues::first(50),
                "x-tenant",
            ),
        ),
    ];
    for (name, builder) in layers {
        let layer = built(builder.grpc_only().build());
        let mut server = layer.layer(tower::service_fn(answer_at_once::<Received>));
        group.bench_function(name, |b| b.iter(|| send(&mut server, incoming_call())));
    }
    group.finish();
}

criterion_group!(layer_benches, benches);
criterion_group!(grpc_layer_benches, grpc_benches);
criterion_group!(client_layer_benches, client_benches);

fn main() {
    layer_benches();
    grpc_layer_benches();
    client_layer_benches();
    Criterion::default().configure_from_args().final_summary();
}
