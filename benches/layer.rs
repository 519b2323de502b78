//! Per-request cost of the layer against the bare service, measured in one run.
//!
//! `cargo bench --bench layer` reports each variant through criterion and prints the
//! layer's overhead over the bare service in nanoseconds and as a ratio.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower::{service_fn, Layer, Service};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

/// One request through `service`, to the end of its body.
fn request<S, B>(service: &mut S)
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body,
{
    let mut cx = Context::from_waker(Waker::noop());
    let _ = service.poll_ready(&mut cx);
    let mut future = pin!(service.call(Request::new(())));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        unreachable!("the inner service answers at once");
    };
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        black_box(frame.is_ok());
    }
}

fn bare() -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(|_request: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"ok"),
        ))))
    })
}

/// The bare service behind `MetricsLayer`; in multi-process mode when `dir` is given.
fn layered(
    dir: Option<&std::path::Path>,
) -> impl Service<
    Request<()>,
    Response = Response<tower_prometheus::layer::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
> + Clone {
    let registry = MetricsRegistry::new();
    match dir {
        Some(dir) => registry.multiprocess_dir(dir),
        None => registry.single_process(),
    }
    .expect("not initialised");
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|_| Some(Cow::Borrowed("/items/{id}")))
        .build()
        .expect("layer builds");
    layer.layer(bare())
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    let mut service = bare();
    group.bench_function("bare", |b| b.iter(|| request(&mut service)));
    let mut service = layered(None);
    group.bench_function("metrics_layer", |b| b.iter(|| request(&mut service)));
    let dir = MultiprocessDir::new();
    let mut service = layered(Some(&dir.0));
    group.bench_function("metrics_layer_multiprocess", |b| {
        b.iter(|| request(&mut service))
    });
    group.finish();
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

/// Mean time per request over `rounds`, after a warm-up.
fn mean<S, B>(mut service: S, rounds: u32) -> Duration
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
    B: Body,
{
    for _ in 0..rounds / 10 {
        request(&mut service);
    }
    let start = Instant::now();
    for _ in 0..rounds {
        request(&mut service);
    }
    start.elapsed() / rounds
}

fn summary() {
    const ROUNDS: u32 = 2_000_000;
    let dir = MultiprocessDir::new();
    let bare = mean(bare(), ROUNDS).as_nanos() as f64;
    let in_process = mean(layered(None), ROUNDS).as_nanos() as f64;
    let multiprocess = mean(layered(Some(&dir.0)), ROUNDS).as_nanos() as f64;
    println!(
        "per request: bare {bare:.0} ns, MetricsLayer {in_process:.0} ns (overhead {:.0} ns), \
         in multi-process mode {multiprocess:.0} ns (overhead {:.0} ns, {:.2}x the in-process overhead)",
        in_process - bare,
        multiprocess - bare,
        (multiprocess - bare) / (in_process - bare).max(1.0),
    );
}

criterion_group!(layer_benches, benches);

fn main() {
    layer_benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
