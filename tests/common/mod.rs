//! Helpers for the end-to-end tests: a real server on 127.0.0.1, a real client, and a
//! parser of the text exposition.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

pub mod events;
pub mod fixtures;
pub mod harness;
pub mod multiprocess;
pub mod prometheus;

// Only the files with tests that can be skipped name `Checked`.
#[allow(unused_imports)]
pub use harness::Checked;
pub use harness::Skipped;

/// Serves `service` on 127.0.0.1 with an OS-chosen port, one task per connection.
pub async fn serve<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// An address on 127.0.0.1 that nothing listened on a moment ago, for a program
/// started with it.
pub fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port on 127.0.0.1")
}

/// A response read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub raw: Vec<u8>,
}

/// Sends one request and reads the whole response.
pub async fn send(addr: SocketAddr, method: Method, path: &str) -> Reply {
    send_with_headers(addr, method, path, &[]).await
}

/// Sends one request with extra headers and reads the whole response (the body as
/// bytes in `raw`, and as text in `body` when it is UTF-8).
pub async fn send_with_headers(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .expect("valid request");
    let response = client.request(request).await.expect("request answered");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body read").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap_or_default(),
        raw: body.to_vec(),
    }
}

/// A GET of `/metrics` with these headers, the reply unparsed: for checking formats,
/// compression and refusals.
pub async fn scrape_reply(addr: SocketAddr, headers: &[(&str, &str)]) -> Reply {
    send_with_headers(addr, Method::GET, "/metrics", headers).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, Method::GET, path).await
}

/// Scrapes `/metrics` and parses it.
pub async fn scrape(addr: SocketAddr) -> Exposition {
    scrape_path(addr, "/metrics").await
}

pub async fn scrape_path(addr: SocketAddr, path: &str) -> Exposition {
    let reply = get(addr, path).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "scrape failed: {}",
        reply.body
    );
    Exposition::parse(&reply.body)
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One sample line of a text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub text: String,
}

impl Exposition {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| parse_sample(line).unwrap_or_else(|| panic!("unparsable line: {line}")))
            .collect();
        Self {
            samples,
            text: text.to_string(),
        }
    }

    /// The value of the sample with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// Sum of the samples of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|s| s.value).sum()
    }

    /// Whether a `# TYPE` line declares `family`.
    pub fn declares(&self, family: &str, kind: &str) -> bool {
        self.text
            .lines()
            .any(|line| line == format!("# TYPE {family} {kind}"))
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let (start, c) = chars.next()?;
            if c == '}' {
                rest = &after[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = after[start..].find('=')? + start;
            let key = after[start..eq].to_string();
            while chars.peek()?.0 <= eq {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.trim().split(' ').next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Runs `program` with `args`, `input` on its stdin, to its end.
pub fn run_with_stdin(
    program: &std::path::Path,
    args: &[&str],
    input: &str,
) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("program starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("input written");
    child.wait_with_output().expect("program ran")
}

/// Checks `text` with `promtool check metrics`: fails the test if promtool rejects it,
/// skips it if promtool is missing.
pub fn promtool_accepts(text: &str) -> Checked {
    let promtool = require_tool(
        "promtool",
        "check the exposition with `promtool check metrics`",
    )?;
    let output = run_with_stdin(&promtool, &["check", "metrics"], text);
    assert!(
        output.status.success(),
        "promtool rejected the scrape:\n{}{}\n--- scrape ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Serves `service` behind `layer` in a tonic server on an OS-chosen port of
/// 127.0.0.1, answering gRPC over HTTP/2 and `/metrics` over HTTP/1.1.
pub async fn serve_tonic<S>(
    layer: tower_prometheus::layer::MetricsLayer<tower_prometheus::layer::CountMessages>,
    service: S,
) -> SocketAddr
where
    S: tower::Service<
            Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let incoming =
        tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
    let addr = incoming.local_addr().expect("local address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .accept_http1(true)
            .layer(layer)
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    addr
}

/// A client of the gRPC health service at `addr`.
pub async fn health_client(
    addr: SocketAddr,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid address")
        .connect()
        .await
        .expect("client connects");
    tonic_health::pb::health_client::HealthClient::new(channel)
}

/// The path of an external program a test needs, or why the test is skipped. With
/// `TOWER_PROMETHEUS_REQUIRE_TOOLS=1` a missing program fails the test instead.
pub fn require_tool(program: &str, why: &str) -> Result<PathBuf, Skipped> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .ok_or_else(|| skip(format!("`{program}` is not on PATH; it is needed to {why}")))
}

/// A Python interpreter with PyPI's `prometheus-client`: `TOWER_PROMETHEUS_PYTHON`, or
/// `python3` if it can import the package; otherwise why the test is skipped.
pub fn require_python_client(why: &str) -> Result<PathBuf, Skipped> {
    require_python_module("prometheus_client", "prometheus-client", why)
}

/// A Python interpreter that can import `module` (PyPI's `package`):
/// `TOWER_PROMETHEUS_PYTHON`, or `python3`; otherwise why the test is skipped.
pub fn require_python_module(module: &str, package: &str, why: &str) -> Result<PathBuf, Skipped> {
    let candidate = std::env::var_os("TOWER_PROMETHEUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let works = std::process::Command::new(&candidate)
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if works {
        return Ok(candidate);
    }
    Err(skip(format!(
        "no Python with the `{package}` package (set TOWER_PROMETHEUS_PYTHON to one); it is needed to {why}"
    )))
}

/// Ok when the test runs as root; otherwise why the test is skipped.
pub fn require_root(why: &str) -> Result<(), Skipped> {
    // The effective uid, from the kernel's own view of this process.
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    });
    if root {
        return Ok(());
    }
    Err(skip(format!(
        "not running as root; root is needed to {why}"
    )))
}

/// Why a test is skipped; under `TOWER_PROMETHEUS_REQUIRE_TOOLS=1` it fails instead.
fn skip(reason: String) -> Skipped {
    let required = std::env::var("TOWER_PROMETHEUS_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "required by TOWER_PROMETHEUS_REQUIRE_TOOLS=1: {reason}"
    );
    Skipped(reason)
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(purpose: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let unique = format!(
            "tower-prometheus-{purpose}-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).expect("temporary directory created");
        Self { path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A handler result that never fails, for `service_fn`.
pub type Never = Infallible;

/// An inner service for direct (no network) tests: answers at once, with the status
/// found in the request's extensions (200 without one).
pub fn answer_with_requested_status<B>(
    request: Request<B>,
) -> std::future::Ready<Result<Response<Full<Bytes>>, Infallible>> {
    let status = request
        .extensions()
        .get::<StatusCode>()
        .copied()
        .unwrap_or(StatusCode::OK);
    let mut response = Response::new(Full::new(Bytes::from_static(b"body")));
    *response.status_mut() = status;
    std::future::ready(Ok(response))
}

/// Runs one request through `service` to the end of its body, polling with a no-op
/// waker: every future of these services is ready at once. Returns the status.
pub fn drive<S, ReqBody, B>(service: &mut S, request: Request<ReqBody>) -> StatusCode
where
    S: tower::Service<Request<ReqBody>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    use std::task::{Context, Poll, Waker};
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = std::pin::pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the inner service answers at once");
    };
    let status = response.status();
    let mut body = std::pin::pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        assert!(frame.is_ok());
    }
    status
}

/// What `script` prints when run by `python` on `body` (a scrape on its standard
/// input), with `parse` bound to Python's OpenMetrics parser for `flavour` `"om"`, else
/// to its text parser, and `sys` and `json` imported; fails if the script fails.
pub fn python_parser_output(
    python: &std::path::Path,
    script: &str,
    flavour: &str,
    body: &str,
) -> String {
    let script = format!(
        "import sys, json\n\
         from prometheus_client.parser import text_string_to_metric_families as text\n\
         from prometheus_client.openmetrics.parser import text_string_to_metric_families as om\n\
         parse = om if sys.argv[1] == 'om' else text\n\
         {script}"
    );
    let output = run_with_stdin(python, &["-c", &script, flavour], body);
    assert!(
        output.status.success(),
        "python's {flavour} parser rejected the scrape: {}\n{body}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Spawns `command` as pid `pid` (by setting the kernel's last pid first), trying
/// again while other processes fork too; `None` if it could not be had within 20 s.
/// A pid held meanwhile (a thread of this process has it as its thread id, such as a
/// runtime's idle blocking thread, which exits within 10 s) is waited for. The tests
/// of one binary that do this take turns, or each would hand the pid it set to the
/// other's child.
pub fn spawn_as_pid(command: &mut std::process::Command, pid: u32) -> Option<std::process::Child> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            // Held by a process or a thread: poll until it lets go.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut child = command.spawn().expect("spawns");
        if child.id() == pid {
            return Some(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}
