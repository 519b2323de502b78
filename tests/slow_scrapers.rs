//! Clients that ask for a large `/metrics` body and never read it. A scrape keeps its
//! slot until the server has sent or dropped its body, so past `max_concurrent_scrapes`
//! they get `503` and the bodies in memory stay bounded. The resident set size is read
//! from `/proc/self/status`, so the test has a binary (a process) of its own.
#![cfg(target_os = "linux")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tower_prometheus::metrics::{Counter, Family};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

const CLIENTS: usize = 40;
const MAX_SCRAPES: usize = 2;
/// About 100 bytes a line: a body of some 6 MB, far more than the socket buffers of a
/// client that reads nothing can take in.
const SERIES: usize = 60_000;

/// The resident set size of this process, from `/proc/self/status`.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("a VmRSS line");
    kib * 1024
}

/// Sends a scrape and reads only the response head, then keeps the connection open
/// without reading: its receive buffer is a few KiB, so the server cannot finish the
/// body.
async fn scrape_and_stall(addr: SocketAddr) -> (StatusCode, usize, TcpStream) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .expect("request sent");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = stream.read(&mut byte).await.expect("response head");
        assert_eq!(read, 1, "connection closed inside the head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).expect("a text head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .expect("a status line");
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .expect("a content length");
    (status, length, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_hold_their_slot_and_the_rest_get_503() {
    let registry = MetricsRegistry::new();
    // Process metrics change between scrapes; without them every body is the same.
    registry.without_process_metrics().unwrap();
    registry
        .provider("payload", "A large exposition.", || {
            let family =
                Family::<[(&'static str, String); 1], Counter>::default().max_series(SERIES);
            for i in 0..SERIES {
                family
                    .get_or_create(&[("key", format!("{i:06}-{}", "x".repeat(60)))])
                    .inc();
            }
            family
        })
        .unwrap();
    let endpoint = MetricsEndpoint::builder(&registry)
        .max_concurrent_scrapes(MAX_SCRAPES)
        .build()
        .unwrap();
    let addr = common::serve(endpoint).await;

    let before = resident_bytes();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(scrape_and_stall(addr)))
        .collect();
    let mut stalled = Vec::new();
    let mut refused = 0;
    let mut body_len = 0;
    for client in clients {
        let (status, length, stream) = client.await.unwrap();
        match status {
            StatusCode::OK => {
                body_len = length;
                stalled.push(stream);
            }
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    let growth = resident_bytes().saturating_sub(before);
    eprintln!(
        "{CLIENTS} clients that never read, at most {MAX_SCRAPES} scrapes: {} answered, {refused} refused; \
         RSS grew by {:.1} MB for a body of {:.1} MB",
        stalled.len(),
        growth as f64 / 1e6,
        body_len as f64 / 1e6,
    );
    assert_eq!(stalled.len(), MAX_SCRAPES);
    assert_eq!(refused, CLIENTS - MAX_SCRAPES);
    assert!(body_len > 5_000_000, "the body is {body_len} bytes");
    // The stalled bodies, and the buffers their encoding grew through; all 40 bodies
    // would be 40 times the body.
    let bound = 4 * MAX_SCRAPES * body_len;
    assert!(
        growth < bound as u64,
        "RSS grew by {growth} bytes, more than {bound}"
    );

    // While those clients stall, the slots stay taken...
    let busy = common::scrape_reply(addr, &[]).await;
    assert_eq!(busy.status, StatusCode::SERVICE_UNAVAILABLE);
    // ...and when they go away, the server drops their bodies and the slots come back.
    drop(stalled);
    common::eventually(Duration::from_secs(10), "a free slot", || async {
        let reply = common::scrape_reply(addr, &[]).await;
        (reply.status == StatusCode::OK).then_some(())
    })
    .await;
    // Scrapes read to the end give their slot back: more of them than the limit, one
    // after the other, all succeed.
    for _ in 0..MAX_SCRAPES + 2 {
        let reply = common::scrape_reply(addr, &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.raw.len(), body_len);
    }
}
