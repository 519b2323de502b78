//! The default cap on scrapes in flight: without any setting, the streams of one
//! HTTP/2 connection that leave their bodies unread hold at most 10 bodies, and the
//! rest are refused with `503`; scrapes read to the end all succeed.

mod common;

use std::time::Duration;

use http::{Request, StatusCode};
use tokio::net::TcpStream;
use tower_prometheus::metrics::{Counter, Family};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

/// The cap an endpoint has when nothing sets one.
const DEFAULT_MAX_SCRAPES: usize = 10;
const STREAMS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_of_one_http2_connection_count_against_the_default_cap() {
    let registry = MetricsRegistry::new();
    // A body of some 300 kB: far more than the client's flow-control window lets the
    // server send.
    registry
        .provider("payload", "A large exposition.", || {
            let family = Family::<[(&'static str, String); 1], Counter>::default();
            for i in 0..1500 {
                family
                    .get_or_create(&[("key", format!("{i:04}-{}", "x".repeat(150)))])
                    .inc();
            }
            family
        })
        .unwrap();
    let addr = common::serve(MetricsEndpoint::new(&registry).unwrap()).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(1024)
        .initial_connection_window_size(65_535)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut client = client;
    let mut responses = Vec::new();
    for _ in 0..STREAMS {
        client = client.ready().await.unwrap();
        let request = Request::get(format!("http://{addr}/metrics"))
            .body(())
            .unwrap();
        let (response, _) = client.send_request(request, true).unwrap();
        responses.push(response);
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for response in responses {
        let response = tokio::time::timeout(Duration::from_secs(10), response)
            .await
            .expect("every stream is answered")
            .unwrap();
        match response.status() {
            // Its body stays unread, so the server cannot finish sending it.
            StatusCode::OK => held.push(response.into_body()),
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(held.len(), DEFAULT_MAX_SCRAPES);
    assert_eq!(refused, STREAMS - DEFAULT_MAX_SCRAPES);

    // Bodies dropped unread give their slots back, and scrapes read to the end succeed.
    drop(held);
    drop(client);
    common::eventually(Duration::from_secs(10), "a free slot", || async {
        let reply = common::scrape_reply(addr, &[]).await;
        (reply.status == StatusCode::OK).then_some(())
    })
    .await;
    for _ in 0..DEFAULT_MAX_SCRAPES + 2 {
        assert_eq!(common::scrape_reply(addr, &[]).await.status, StatusCode::OK);
    }
}
