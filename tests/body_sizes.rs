//! The opt-in body size histograms, counted from the data frames that really passed:
//! a chunked upload and a streamed response of known sizes, empty bodies, and
//! clients leaving midway (what passed until then is recorded). Off by default, with
//! no family at all and the request body left as it came.

mod common;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::Exposition;
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;
use tower::{service_fn, Layer};
use tower_prometheus::layer::{CountMessages, MetricsLayer, RequestBody};
use tower_prometheus::MetricsRegistry;

const REQUEST_SIZE: &str = "http_server_request_body_size_bytes";
const RESPONSE_SIZE: &str = "http_server_response_body_size_bytes";
const CHUNK: usize = 1000;
/// Chunks of the streamed response of `/stream`.
const STREAMED_CHUNKS: usize = 10;
const WAIT: Duration = Duration::from_secs(10);

/// A body of the chunks sent on a channel, ending when the sender is dropped; an
/// `Err` breaks the body off.
struct Chunks(mpsc::UnboundedReceiver<Result<Bytes, &'static str>>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

fn chunks() -> (mpsc::UnboundedSender<Result<Bytes, &'static str>>, Chunks) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (sender, Chunks(receiver))
}

fn chunk(byte: u8) -> Bytes {
    Bytes::from(vec![byte; CHUNK])
}

type Answer = Response<http_body_util::combinators::UnsyncBoxBody<Bytes, &'static str>>;

/// The server's routes, each named by its path:
/// - `/upload` reads the request body to its end (or its failure), telling the test
///   the bytes read after each frame, and answers how many;
/// - `/stream` answers [`STREAMED_CHUNKS`] chunks, streamed;
/// - `/empty` answers an empty body;
/// - `/leave` answers a body whose chunks the test sends.
struct Handler {
    read: mpsc::UnboundedSender<usize>,
    bodies: mpsc::UnboundedSender<mpsc::UnboundedSender<Result<Bytes, &'static str>>>,
}

impl Handler {
    async fn answer(&self, request: Request<RequestBody<Incoming>>) -> Answer {
        let ok = |body: http_body_util::combinators::UnsyncBoxBody<Bytes, &'static str>| {
            Response::new(body)
        };
        match request.uri().path() {
            "/upload" => {
                let mut body = request.into_body();
                let mut read = 0;
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else {
                        break;
                    };
                    read += frame.data_ref().map_or(0, Bytes::len);
                    let _ = self.read.send(read);
                }
                ok(Full::new(Bytes::from(read.to_string()))
                    .map_err(|never| match never {})
                    .boxed_unsync())
            }
            "/stream" => {
                let (sender, body) = chunks();
                for i in 0..STREAMED_CHUNKS {
                    let _ = sender.send(Ok(chunk(i as u8)));
                }
                ok(body.boxed_unsync())
            }
            "/leave" => {
                let (sender, body) = chunks();
                let _ = self.bodies.send(sender);
                ok(body.boxed_unsync())
            }
            _ => ok(Empty::new().map_err(|never| match never {}).boxed_unsync()),
        }
    }
}

struct Served {
    addr: SocketAddr,
    registry: MetricsRegistry,
    read: mpsc::UnboundedReceiver<usize>,
    bodies: mpsc::UnboundedReceiver<mpsc::UnboundedSender<Result<Bytes, &'static str>>>,
}

/// Serves [`Handler`] behind a layer recording both body sizes, each route named by
/// its path.
async fn serve() -> Served {
    let registry = MetricsRegistry::new();
    let layer: MetricsLayer<CountMessages> = MetricsLayer::builder(&registry)
        .request_body_size_histogram()
        .response_body_size_histogram(true)
        .route_fn(|parts| Some(Cow::Owned(parts.uri.path().to_string())))
        .build()
        .expect("layer builds");
    let (read_tx, read) = mpsc::unbounded_channel();
    let (bodies_tx, bodies) = mpsc::unbounded_channel();
    let handler = std::sync::Arc::new(Handler {
        read: read_tx,
        bodies: bodies_tx,
    });
    let service = layer.layer(service_fn(move |request| {
        let handler = std::sync::Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.answer(request).await) }
    }));
    let addr = common::serve(service).await;
    Served {
        addr,
        registry,
        read,
        bodies,
    }
}

/// The labels of a request to `route` answered 200.
fn answered<'a>(method: &'a str, route: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("http_request_method", method),
        ("http_response_status_code", "200"),
        ("http_route", route),
    ]
}

/// The bounds of the buckets of `family` for `route`, in order, as numbers.
fn bounds(scrape: &Exposition, family: &str, route: &str) -> Vec<f64> {
    scrape
        .matching(&format!("{family}_bucket"), &[("http_route", route)])
        .iter()
        .filter_map(|sample| sample.labels.get("le")?.parse().ok())
        .collect()
}

/// The histogram of `family` for `route`, any method and status: its count, sum and
/// the buckets whose bound is in `les`.
fn histogram(scrape: &Exposition, family: &str, route: &str, les: &[f64]) -> (f64, f64, Vec<f64>) {
    let labels = [("http_route", route)];
    let buckets = les
        .iter()
        .map(|le| {
            scrape
                .matching(&format!("{family}_bucket"), &labels)
                .iter()
                .filter(|sample| {
                    sample.labels.get("le").and_then(|b| b.parse::<f64>().ok()) == Some(*le)
                })
                .map(|sample| sample.value)
                .sum()
        })
        .collect();
    (
        scrape.sum(&format!("{family}_count"), &labels),
        scrape.sum(&format!("{family}_sum"), &labels),
        buckets,
    )
}

/// Scrapes until `family` counts `count` requests to `route`.
async fn scrape_when_counted(
    addr: SocketAddr,
    family: &str,
    route: &str,
    count: f64,
) -> Exposition {
    common::eventually(WAIT, "the requests recorded", || async {
        let scrape = common::scrape(addr).await;
        (scrape.sum(&format!("{family}_count"), &[("http_route", route)]) == count)
            .then_some(scrape)
    })
    .await
}

fn client<B>() -> Client<hyper_util::client::legacy::connect::HttpConnector, B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_and_a_streamed_response_record_their_true_sizes() {
    let served = serve().await;
    const UPLOADED: usize = 5;
    let (sender, body) = chunks();
    let request = Request::post(format!("http://{}/upload", served.addr))
        .body(body)
        .expect("valid request");
    // No length: the upload goes chunked, so its size is known only from its frames.
    assert_eq!(request.body().size_hint().exact(), None);
    for i in 0..UPLOADED {
        sender.send(Ok(chunk(i as u8))).expect("the body is read");
    }
    drop(sender);
    let response = client().request(request).await.expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let answer = response
        .into_body()
        .collect()
        .await
        .expect("read")
        .to_bytes();
    assert_eq!(answer, (UPLOADED * CHUNK).to_string());

    let response = client::<Empty<Bytes>>()
        .get(
            format!("http://{}/stream", served.addr)
                .parse()
                .expect("uri"),
        )
        .await
        .expect("answered");
    assert_eq!(response.headers().get(http::header::CONTENT_LENGTH), None);
    let streamed = response
        .into_body()
        .collect()
        .await
        .expect("read")
        .to_bytes();
    assert_eq!(streamed.len(), STREAMED_CHUNKS * CHUNK);

    let scrape = scrape_when_counted(served.addr, RESPONSE_SIZE, "/stream", 1.0).await;
    // 5000 bytes: above the 4096 bucket, within 16384.
    let labels = answered("POST", "/upload");
    assert_eq!(
        scrape.value(&format!("{REQUEST_SIZE}_sum"), &labels),
        Some((UPLOADED * CHUNK) as f64),
        "{}",
        scrape.text
    );
    assert_eq!(
        histogram(
            &scrape,
            REQUEST_SIZE,
            "/upload",
            &[4096.0, 16384.0, f64::INFINITY]
        ),
        (1.0, 5000.0, vec![0.0, 1.0, 1.0])
    );
    // The upload's answer: its four digits.
    assert_eq!(
        histogram(&scrape, RESPONSE_SIZE, "/upload", &[64.0]),
        (1.0, 4.0, vec![1.0])
    );
    assert_eq!(
        histogram(&scrape, RESPONSE_SIZE, "/stream", &[4096.0, 16384.0]),
        (1.0, 10_000.0, vec![0.0, 1.0])
    );
    // A GET without a body read nothing of it.
    assert_eq!(
        histogram(&scrape, REQUEST_SIZE, "/stream", &[64.0]),
        (1.0, 0.0, vec![1.0])
    );
    // The layout: powers of 4 from 64 B to 64 MiB.
    let expected: Vec<f64> = (0..11)
        .map(|i| f64::from(64u32 << (2 * i)))
        .chain([f64::INFINITY])
        .collect();
    assert_eq!(bounds(&scrape, REQUEST_SIZE, "/upload"), expected);
    assert_eq!(bounds(&scrape, RESPONSE_SIZE, "/stream"), expected);
    assert!(scrape.declares(REQUEST_SIZE, "histogram"));
    assert!(scrape.declares(RESPONSE_SIZE, "histogram"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_bodies_record_zero_bytes() {
    let served = serve().await;
    let response = client::<Empty<Bytes>>()
        .request(
            Request::builder()
                .method(Method::PUT)
                .uri(format!("http://{}/empty", served.addr))
                .body(Empty::new())
                .expect("valid request"),
        )
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response
        .into_body()
        .collect()
        .await
        .expect("read")
        .to_bytes()
        .is_empty());

    let scrape = scrape_when_counted(served.addr, RESPONSE_SIZE, "/empty", 1.0).await;
    for family in [REQUEST_SIZE, RESPONSE_SIZE] {
        let labels = answered("PUT", "/empty");
        assert_eq!(scrape.value(&format!("{family}_count"), &labels), Some(1.0));
        assert_eq!(scrape.value(&format!("{family}_sum"), &labels), Some(0.0));
        assert_eq!(
            histogram(&scrape, family, "/empty", &[64.0]),
            (1.0, 0.0, vec![1.0])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_midway_records_what_passed() {
    let mut served = serve().await;

    // Leaving during the upload: two chunks read by the service, then the client's
    // body breaks off.
    let (sender, body) = chunks();
    let request = Request::post(format!("http://{}/upload", served.addr))
        .body(body)
        .expect("valid request");
    let upload = tokio::spawn(async move { client().request(request).await });
    for (i, expected) in [CHUNK, 2 * CHUNK].into_iter().enumerate() {
        sender.send(Ok(chunk(i as u8))).expect("the body is read");
        // Frames may be cut differently on the way: wait until all of this one is read.
        loop {
            let read = served.read.recv().await.expect("the handler reads");
            if read == expected {
                break;
            }
        }
    }
    sender
        .send(Err("the client leaves"))
        .expect("the body is read");
    // However the client's request ends, the server read two chunks.
    let _ = upload.await;
    let scrape = scrape_when_counted(served.addr, REQUEST_SIZE, "/upload", 1.0).await;
    assert_eq!(
        scrape.sum(&format!("{REQUEST_SIZE}_sum"), &[("http_route", "/upload")]),
        (2 * CHUNK) as f64,
        "{}",
        scrape.text
    );

    // Leaving during the response: two chunks read by the client, then it goes.
    let response = client::<Empty<Bytes>>()
        .get(
            format!("http://{}/leave", served.addr)
                .parse()
                .expect("uri"),
        )
        .await
        .expect("headers answered");
    let body_sender = served.bodies.recv().await.expect("the handler's body");
    let mut body = response.into_body();
    for i in 0..2 {
        body_sender.send(Ok(chunk(i))).expect("the body is polled");
        let mut got = 0;
        while got < CHUNK {
            let frame = body.frame().await.expect("a frame").expect("data");
            got += frame.data_ref().map_or(0, Bytes::len);
        }
        assert_eq!(got, CHUNK);
    }
    drop(body);
    // The server's body now waits for a chunk that never comes; the connection closed.
    let scrape = scrape_when_counted(served.addr, RESPONSE_SIZE, "/leave", 1.0).await;
    let labels = answered("GET", "/leave");
    assert_eq!(
        scrape.value(&format!("{RESPONSE_SIZE}_sum"), &labels),
        Some((2 * CHUNK) as f64),
        "{}",
        scrape.text
    );
    drop(body_sender);
    assert!(served
        .registry
        .get::<tower_prometheus::layer::BodySize>(RESPONSE_SIZE)
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_no_family_and_the_body_as_it_came() {
    let registry = MetricsRegistry::new();
    // The plain layer hands the inner service hyper's own body type.
    let layer = MetricsLayer::new(&registry).expect("layer builds");
    let service = layer.layer(service_fn(|request: Request<Incoming>| async move {
        let read = request
            .into_body()
            .collect()
            .await
            .map_or(0, |body| body.to_bytes().len());
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(read.to_string()))))
    }));
    let addr = common::serve(service).await;
    let reply = common::send(addr, Method::POST, "/upload").await;
    assert_eq!(reply.status, StatusCode::OK);
    let scrape = common::eventually(WAIT, "the request recorded", || async {
        let scrape = common::scrape(addr).await;
        (scrape.sum("http_server_requests_total", &[]) == 1.0).then_some(scrape)
    })
    .await;
    assert!(!scrape.text.contains(REQUEST_SIZE), "{}", scrape.text);
    assert!(!scrape.text.contains(RESPONSE_SIZE), "{}", scrape.text);
    assert!(registry
        .get::<tower_prometheus::layer::BodySize>(REQUEST_SIZE)
        .is_err());
}
