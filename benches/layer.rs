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

/// The application: generic over the request body, which the layer wraps.
fn bare<ReqBody>(
) -> impl Service<Request<ReqBody>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone {
    service_fn(|_request: Request<ReqBody>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"ok"),
        ))))
    })
}

fn layered() -> impl Service<
    Request<()>,
    Response = Response<tower_prometheus::layer::ResponseBody<Full<Bytes>>>,
    Error = Infallible,
> + Clone {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .route_fn(|_| Some(Cow::Borrowed("/items/{id}")))
        .build()
        .expect("layer builds");
    layer.layer(bare())
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("request");
    let mut service = bare::<()>();
    group.bench_function("bare", |b| b.iter(|| request(&mut service)));
    let mut service = layered();
    group.bench_function("metrics_layer", |b| b.iter(|| request(&mut service)));
    group.finish();
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
    let bare = mean(bare(), ROUNDS);
    let layered = mean(layered(), ROUNDS);
    let overhead = layered.as_nanos() as f64 - bare.as_nanos() as f64;
    println!(
        "bare {} ns, with MetricsLayer {} ns: overhead {overhead:.0} ns per request ({:.2}x the bare service)",
        bare.as_nanos(),
        layered.as_nanos(),
        layered.as_nanos() as f64 / bare.as_nanos().max(1) as f64,
    );
}

criterion_group!(layer_benches, benches);

fn main() {
    layer_benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
