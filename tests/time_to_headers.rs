//! The opt-in time to the response headers: recorded when the handler yields the
//! response, so a route that streams its body slowly shows a small time to the headers
//! beside a long duration; off by default, with no family at all.
#![cfg(feature = "axum")]

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body as AxumBody;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use common::Exposition;
use http::{Request, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot, Mutex};
use tower_prometheus::{MetricsLayer, MetricsRegistry};

const TIME_TO_HEADERS: &str = "http_server_time_to_headers_seconds";
const DURATION: &str = "http_server_request_duration_seconds";
/// How long the test holds each streamed body back after its headers arrived.
const BODY_DELAY: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(10);

/// A body whose one chunk is whatever the test sends, when it sends it.
/// `None` once the chunk came.
struct ChunkLater(Option<oneshot::Receiver<Bytes>>);

impl Body for ChunkLater {
    type Data = Bytes;
    type Error = oneshot::error::RecvError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let Some(later) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let chunk = std::task::ready!(Pin::new(later).poll(cx));
        self.0 = None;
        Poll::Ready(Some(chunk.map(Frame::data)))
    }
}

/// The routes: `/stream` answers its headers at once and hands the test the sender of
/// its body; `/hang` tells the test it started and never answers; `/quick` answers.
fn app(
    layer: MetricsLayer,
    bodies: mpsc::UnboundedSender<oneshot::Sender<Bytes>>,
    hung: mpsc::UnboundedSender<()>,
) -> Router {
    Router::new()
        .route(
            "/stream",
            get(move || {
                let bodies = bodies.clone();
                async move {
                    let (chunk, later) = oneshot::channel();
                    bodies.send(chunk).expect("the test holds the receiver");
                    AxumBody::new(ChunkLater(Some(later)))
                }
            }),
        )
        .route(
            "/hang",
            get(move || {
                let hung = hung.clone();
                async move {
                    hung.send(()).expect("the test holds the receiver");
                    std::future::pending::<()>().await;
                }
            }),
        )
        .route("/quick", get(|| async { "quick" }))
        .layer(layer)
}

struct Served {
    addr: SocketAddr,
    registry: MetricsRegistry,
    bodies: Mutex<mpsc::UnboundedReceiver<oneshot::Sender<Bytes>>>,
    hung: Mutex<mpsc::UnboundedReceiver<()>>,
}

/// Serves [`app`] behind a layer recording the time to the headers if `time_to_headers`.
async fn serve(time_to_headers: bool) -> Arc<Served> {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .time_to_headers_histogram(time_to_headers)
        .build()
        .expect("layer builds");
    let (bodies_tx, bodies) = mpsc::unbounded_channel();
    let (hung_tx, hung) = mpsc::unbounded_channel();
    let addr = common::serve(app(layer, bodies_tx, hung_tx)).await;
    Arc::new(Served {
        addr,
        registry,
        bodies: Mutex::new(bodies),
        hung: Mutex::new(hung),
    })
}

/// GETs `/stream`: once the client has the headers, waits [`BODY_DELAY`] before the
/// handler's body sends its chunk, then reads the body to its end.
async fn stream_slowly(served: &Served) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::get(format!("http://{}/stream", served.addr))
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let response = client.request(request).await.expect("headers answered");
    assert_eq!(response.status(), StatusCode::OK);
    let chunk = served
        .bodies
        .lock()
        .await
        .recv()
        .await
        .expect("the handler sent its body's sender");
    // The delay is what is measured, not a synchronisation: the headers are out.
    tokio::time::sleep(BODY_DELAY).await;
    chunk
        .send(Bytes::from_static(b"late chunk"))
        .expect("the body waits for its chunk");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body read")
        .to_bytes();
    assert_eq!(&body[..], b"late chunk");
}

fn labels(route: &str, status: &str) -> [(&'static str, String); 3] {
    [
        ("http_request_method", "GET".to_string()),
        ("http_response_status_code", status.to_string()),
        ("http_route", route.to_string()),
    ]
}

fn value(scrape: &Exposition, sample: &str, labels: &[(&'static str, String)]) -> Option<f64> {
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    scrape.value(sample, &labels)
}

/// Scrapes until the duration histogram counts `count` requests with `labels`.
async fn scrape_when_counted(
    served: &Served,
    labels: &[(&'static str, String)],
    count: f64,
) -> Exposition {
    common::eventually(WAIT, "the requests recorded", || async {
        let scrape = common::scrape(served.addr).await;
        (value(&scrape, &format!("{DURATION}_count"), labels) == Some(count)).then_some(scrape)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_leaves_the_time_to_headers_small_and_the_duration_long() {
    let served = serve(true).await;
    const STREAMS: u32 = 3;
    for _ in 0..STREAMS {
        stream_slowly(&served).await;
    }
    assert_eq!(
        common::get(served.addr, "/quick").await.status,
        StatusCode::OK
    );

    let stream = labels("/stream", "200");
    let scrape = scrape_when_counted(&served, &stream, f64::from(STREAMS)).await;
    assert!(
        scrape.declares(TIME_TO_HEADERS, "histogram"),
        "{}",
        scrape.text
    );
    let count = |family: &str, labels| value(&scrape, &format!("{family}_count"), labels);
    let sum = |family: &str, labels| {
        value(&scrape, &format!("{family}_sum"), labels).expect("a sum for each count")
    };
    assert_eq!(count(TIME_TO_HEADERS, &stream), Some(f64::from(STREAMS)));
    // Each body ended at least the delay after its headers were recorded, which was
    // before the client had them.
    let held_back = BODY_DELAY.as_secs_f64() * f64::from(STREAMS);
    let (headers, duration) = (sum(TIME_TO_HEADERS, &stream), sum(DURATION, &stream));
    assert!(duration >= held_back, "duration {duration}s");
    assert!(headers < held_back / 2.0, "time to headers {headers}s");
    assert!(duration - headers >= held_back, "{duration}s - {headers}s");
    // The headers histogram's buckets count the same requests, in the same buckets.
    let bucket = |family: &str, le: &str| {
        let mut labels = stream.to_vec();
        labels.push(("le", le.to_string()));
        value(&scrape, &format!("{family}_bucket"), &labels)
    };
    assert_eq!(bucket(TIME_TO_HEADERS, "+Inf"), Some(f64::from(STREAMS)));
    assert_eq!(
        bucket(DURATION, "0.25"),
        Some(0.0),
        "the bodies took longer"
    );

    // A route with a short body: both families count it.
    let quick = labels("/quick", "200");
    assert_eq!(count(TIME_TO_HEADERS, &quick), Some(1.0));
    assert_eq!(count(DURATION, &quick), Some(1.0));
    assert!(sum(TIME_TO_HEADERS, &quick) <= sum(DURATION, &quick));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_no_family_is_registered() {
    let served = serve(false).await;
    stream_slowly(&served).await;
    let scrape = scrape_when_counted(&served, &labels("/stream", "200"), 1.0).await;
    assert!(!scrape.declares(TIME_TO_HEADERS, "histogram"));
    assert!(
        !scrape.text.contains(TIME_TO_HEADERS),
        "no series of {TIME_TO_HEADERS}: {}",
        scrape.text
    );
    assert!(served
        .registry
        .get::<tower_prometheus::layer::TimeToHeaders>(TIME_TO_HEADERS)
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_before_its_headers_records_no_time_to_headers() {
    let served = serve(true).await;
    let addr = served.addr;
    let client = tokio::spawn(async move { common::get(addr, "/hang").await });
    served
        .hung
        .lock()
        .await
        .recv()
        .await
        .expect("the handler started");
    // The client leaves before any headers: the server drops the request.
    client.abort();
    assert!(client.await.is_err_and(|error| error.is_cancelled()));

    let dropped = labels("/hang", "499");
    let scrape = scrape_when_counted(&served, &dropped, 1.0).await;
    let count = format!("{TIME_TO_HEADERS}_count");
    assert_eq!(value(&scrape, &count, &dropped), None, "{}", scrape.text);
    assert!(scrape
        .matching(&count, &[("http_route", "/hang")])
        .is_empty());
    // The family is there, and records the requests that did get headers.
    assert_eq!(common::get(addr, "/quick").await.status, StatusCode::OK);
    let scrape = scrape_when_counted(&served, &labels("/quick", "200"), 1.0).await;
    assert_eq!(value(&scrape, &count, &labels("/quick", "200")), Some(1.0));
}
