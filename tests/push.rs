//! Pushing to a real Pushgateway (Debian package `prometheus-pushgateway`): what it
//! serves on its own `/metrics` after `PUT`, `POST` and `DELETE`, with base64-encoded
//! grouping labels, behind basic authentication, and its rejections; and the requests
//! on the wire, a closed port and a gateway that never answers.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{eventually, Exposition, Skipped, TempDir};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Counter, Gauge};
use tower_prometheus::push::{PushError, Pusher, MAX_REJECTION_BODY};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

/// The user and password of the gateway started with basic authentication.
const USER: &str = "pusher";
const PASSWORD: &str = "push-secret";
/// A bcrypt hash (cost 4) of `PASSWORD`, made once with Python's `crypt` module.
const PASSWORD_BCRYPT: &str = "$2b$04$DdWoBWErStVYp.ZRBZenhOIFbLN3zrVSKSlTzKB0rDbDepaJZC/aq";
/// `Authorization` for `USER:PASSWORD`, as the test's own scrapes send it.
const BASIC_CREDENTIALS: &str = "Basic cHVzaGVyOnB1c2gtc2VjcmV0";

/// A Pushgateway on 127.0.0.1, keeping metrics in memory only; stopped when dropped,
/// also when the test fails.
struct Pushgateway {
    child: Child,
    addr: SocketAddr,
    /// `Authorization` its scrapes need.
    authorization: Option<&'static str>,
    _dir: TempDir,
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pushgateway {
    /// Starts one and waits until it answers `/-/ready`; with `basic_auth`, it asks
    /// for `USER` and `PASSWORD` on every path.
    async fn start(basic_auth: bool) -> Result<Self, Skipped> {
        let binary = common::require_tool(
            "prometheus-pushgateway",
            "push to a real Pushgateway and read back what it serves",
        )?;
        let dir = TempDir::new("pushgateway");
        let addr = common::free_address();
        let mut command = Command::new(binary);
        command
            .arg(format!("--web.listen-address={addr}"))
            // Empty: nothing persisted, nothing read from an earlier run.
            .arg("--persistence.file=")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let authorization = basic_auth.then(|| {
            let config = dir.path().join("web.yml");
            let yaml = format!("basic_auth_users:\n  {USER}: '{PASSWORD_BCRYPT}'\n");
            std::fs::write(&config, yaml).expect("web config written");
            command.arg(format!("--web.config.file={}", config.display()));
            BASIC_CREDENTIALS
        });
        let gateway = Self {
            child: command.spawn().expect("prometheus-pushgateway starts"),
            addr,
            authorization,
            _dir: dir,
        };
        eventually(
            Duration::from_secs(30),
            "the Pushgateway to be ready",
            || async {
                let reply = gateway.get("/-/ready").await?;
                (reply.status == StatusCode::OK).then_some(())
            },
        )
        .await;
        Ok(gateway)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A GET with the gateway's credentials; `None` while nothing listens.
    async fn get(&self, path: &str) -> Option<common::Reply> {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let mut request = Request::get(format!("http://{}{path}", self.addr));
        if let Some(authorization) = self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization);
        }
        let request = request.body(Full::default()).expect("valid request");
        let response = client.request(request).await.ok()?;
        let (parts, body) = response.into_parts();
        let raw = body.collect().await.ok()?.to_bytes().to_vec();
        Some(common::Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&raw).into_owned(),
            raw,
        })
    }

    /// The gateway's own `/metrics`, parsed: the pushed metrics with their groups'
    /// labels, beside its own.
    async fn scrape(&self) -> Exposition {
        let reply = self.get("/metrics").await.expect("the gateway answers");
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        Exposition::parse(&reply.body)
    }

    /// The gateway's `/metrics` once the group `key` is gone from it: it queues a
    /// delete and answers at once.
    async fn without_group(&self, key: &[(&str, &str)]) -> Exposition {
        eventually(Duration::from_secs(10), "the group deleted", || async {
            let served = self.scrape().await;
            served
                .value("push_time_seconds", key)
                .is_none()
                .then_some(served)
        })
        .await
    }
}

/// The labels of a group's samples: the grouping key, and `instance=""` as the
/// Pushgateway adds it when the key has no instance.
fn group<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut labels = pairs.to_vec();
    if !labels.iter().any(|(name, _)| *name == "instance") {
        labels.push(("instance", ""));
    }
    labels
}

/// `labels` and `more`.
fn with<'a>(
    mut labels: Vec<(&'a str, &'a str)>,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    labels.extend_from_slice(more);
    labels
}

/// The body of the rejection `outcome` must be, of a request with `method`, answered
/// with `status`.
fn rejection(outcome: Result<(), PushError>, method: Method, status: StatusCode) -> String {
    match outcome {
        Err(PushError::Rejected {
            method: rejected,
            status: answered,
            body,
        }) => {
            assert_eq!((rejected, answered), (method, status), "{body}");
            body
        }
        other => panic!("expected a {status} rejection of a {method}, got {other:?}"),
    }
}

/// A registry of gauges set to the given values.
fn gauges(values: &[(&'static str, i64)]) -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    for &(name, value) in values {
        registry
            .provider(name, "A value to push.", move || {
                let gauge = Gauge::default();
                gauge.set(value);
                gauge
            })
            .unwrap();
    }
    registry
}

/// `PUT`: every value of the registry (a counter, a histogram's buckets, sum and count,
/// a gauge a collector sets) is served by the gateway with the job and the grouping
/// labels, those in base64 (a `/`, an empty value, unicode, a job with `/`) decoded.
async fn put_serves_every_value_with_the_grouping_labels() -> common::Checked {
    let gateway = Pushgateway::start(false).await?;
    let registry = common::fixtures::jobs_and_latency();
    registry
        .collected_provider("queue_depth", "Jobs waiting.", Gauge::default)
        .unwrap();
    registry
        .collector("queue", |registry| {
            registry.get::<Gauge>("queue_depth")?.set(7);
            Ok(())
        })
        .unwrap();
    // A handle the job keeps, and the provider hands the registry a clone of.
    let copied = Counter::default();
    registry
        .provider("rows_copied", "Rows copied.", {
            let copied = copied.clone();
            move || copied
        })
        .unwrap();
    copied.inc_by(1_000);
    let pusher = Pusher::builder(gateway.url(), "nightly/backup")
        .grouping("instance", "db-1")
        .grouping("path", "/var/tmp")
        .grouping("empty", "")
        .grouping("name", "Προμηθεύς")
        .build()
        .unwrap();
    assert_eq!(
        pusher.url().path(),
        "/metrics/job@base64/bmlnaHRseS9iYWNrdXA/instance/db-1/path@base64/L3Zhci90bXA/empty@base64/=/name@base64/zqDPgc6_zrzOt864zrXPjc-C"
    );
    pusher.push(&registry).await.unwrap();

    let served = gateway.scrape().await;
    let key = group(&[
        ("job", "nightly/backup"),
        ("instance", "db-1"),
        ("path", "/var/tmp"),
        ("empty", ""),
        ("name", "Προμηθεύς"),
    ]);
    assert_eq!(
        served.value("jobs_total", &key),
        Some(3.0),
        "{}",
        served.text
    );
    assert_eq!(served.value("queue_depth", &key), Some(7.0));
    assert_eq!(served.value("rows_copied_total", &key), Some(1000.0));
    let route = with(key.clone(), &[("route", "/a")]);
    for (le, count) in [("0.1", 1.0), ("1", 2.0), ("+Inf", 3.0)] {
        let bucket = with(route.clone(), &[("le", le)]);
        assert_eq!(
            served.value("latency_seconds_bucket", &bucket),
            Some(count),
            "le={le}\n{}",
            served.text
        );
    }
    assert_eq!(served.value("latency_seconds_count", &route), Some(3.0));
    let sum = served.value("latency_seconds_sum", &route).unwrap_or(0.0);
    assert!((sum - 5.55).abs() < 1e-9, "sum {sum}");
    assert!(served.declares("latency_seconds", "histogram"));
    let pushed_at = served.value("push_time_seconds", &key).unwrap_or(0.0);
    assert!(pushed_at > 1.0e9, "push_time_seconds {pushed_at}");

    // The same values again, after they changed: a scrape-time view each time.
    registry.get::<Counter>("jobs").unwrap().inc_by(2);
    pusher.push(&registry).await.unwrap();
    assert_eq!(gateway.scrape().await.value("jobs_total", &key), Some(5.0));
    Ok(())
}

/// `POST` replaces only the families it sends; a `PUT` then replaces the whole group.
async fn post_replaces_only_the_families_it_sends() -> common::Checked {
    let gateway = Pushgateway::start(false).await?;
    let pusher = Pusher::builder(gateway.url(), "etl")
        .grouping("instance", "a")
        .build()
        .unwrap();
    let key = group(&[("job", "etl"), ("instance", "a")]);
    pusher
        .push(&gauges(&[("alpha", 1), ("beta", 2)]))
        .await
        .unwrap();
    let second = gauges(&[("beta", 20), ("gamma", 30)]);
    pusher.push_add(&second).await.unwrap();
    let served = gateway.scrape().await;
    assert_eq!(served.value("alpha", &key), Some(1.0), "{}", served.text);
    assert_eq!(served.value("beta", &key), Some(20.0));
    assert_eq!(served.value("gamma", &key), Some(30.0));

    pusher.push(&second).await.unwrap();
    let served = gateway.scrape().await;
    assert_eq!(served.value("alpha", &key), None, "{}", served.text);
    assert_eq!(served.value("beta", &key), Some(20.0));
    assert_eq!(served.value("gamma", &key), Some(30.0));
    Ok(())
}

/// `DELETE` removes its group, and only it: a group of the same job with another
/// instance stays.
async fn delete_removes_the_group_and_only_it() -> common::Checked {
    let gateway = Pushgateway::start(false).await?;
    let registry = gauges(&[("rows", 12)]);
    let first = Pusher::builder(gateway.url(), "etl")
        .grouping("instance", "a")
        .build()
        .unwrap();
    let second = Pusher::builder(gateway.url(), "etl")
        .grouping("instance", "b")
        .build()
        .unwrap();
    first.push(&registry).await.unwrap();
    second.push(&registry).await.unwrap();
    let (a, b) = (
        group(&[("job", "etl"), ("instance", "a")]),
        group(&[("job", "etl"), ("instance", "b")]),
    );
    assert_eq!(gateway.scrape().await.value("rows", &a), Some(12.0));

    first.delete().await.unwrap();
    let served = gateway.without_group(&a).await;
    assert_eq!(served.value("rows", &a), None, "{}", served.text);
    assert_eq!(served.value("rows", &b), Some(12.0));
    // Deleting a group that holds nothing succeeds too, and a push sent after a
    // delete lands after it.
    first.delete().await.unwrap();
    first.delete().await.unwrap();
    first.push(&gauges(&[("rows", 13)])).await.unwrap();
    assert_eq!(gateway.scrape().await.value("rows", &a), Some(13.0));
    Ok(())
}

/// Behind basic authentication: the right credentials push; none, or a wrong
/// password, get `Rejected` with `401` and the gateway's reason, and push nothing.
async fn basic_auth_is_sent_and_refusals_are_rejections() -> common::Checked {
    let gateway = Pushgateway::start(true).await?;
    let registry = gauges(&[("secured", 5)]);
    let key = group(&[("job", "secure")]);

    for pusher in [
        Pusher::new(gateway.url(), "secure").unwrap(),
        Pusher::builder(gateway.url(), "secure")
            .basic_auth(USER, "wrong")
            .build()
            .unwrap(),
    ] {
        let body = rejection(
            pusher.push(&registry).await,
            Method::PUT,
            StatusCode::UNAUTHORIZED,
        );
        assert!(body.contains("Unauthorized"), "{body}");
    }
    assert_eq!(gateway.scrape().await.value("secured", &key), None);

    let pusher = Pusher::builder(gateway.url(), "secure")
        .basic_auth(USER, PASSWORD)
        .build()
        .unwrap();
    pusher.push(&registry).await.unwrap();
    assert_eq!(gateway.scrape().await.value("secured", &key), Some(5.0));
    pusher.delete().await.unwrap();
    let served = gateway.without_group(&key).await;
    assert_eq!(served.value("secured", &key), None, "{}", served.text);
    Ok(())
}

/// A push the gateway finds inconsistent with its own metrics (a gauge named like its
/// Go runtime's summary) is `Rejected` with `400` and the gateway's explanation; the
/// registry keeps its value, and the group gets nothing.
async fn an_inconsistent_push_is_rejected_with_the_gateways_reason() -> common::Checked {
    let gateway = Pushgateway::start(false).await?;
    let registry = gauges(&[("go_gc_duration_seconds", 4)]);
    let pusher = Pusher::new(gateway.url(), "clash").unwrap();
    let body = rejection(
        pusher.push(&registry).await,
        Method::PUT,
        StatusCode::BAD_REQUEST,
    );
    assert!(body.contains("go_gc_duration_seconds"), "{body}");
    let gauge = registry.get::<Gauge>("go_gc_duration_seconds").unwrap();
    assert_eq!(gauge.get(), 4);
    let served = gateway.scrape().await;
    assert!(
        served
            .matching("go_gc_duration_seconds", &[("job", "clash")])
            .is_empty(),
        "{}",
        served.text
    );
    Ok(())
}

/// The gateway misreads the OpenMetrics text of a registry with a counter: the
/// counter arrives untyped (its `# TYPE` line names the family without `_total`). The
/// text format 0.0.4 the pusher sends of the same registry arrives as a counter.
async fn openmetrics_text_loses_a_counters_type_and_the_pushers_text_keeps_it() -> common::Checked {
    let gateway = Pushgateway::start(false).await?;
    let registry = MetricsRegistry::new();
    registry.without_process_metrics().unwrap();
    registry
        .provider("files_written", "Files written.", || {
            prometheus_client::metrics::counter::Counter::<u64>::default()
        })
        .unwrap();
    let endpoint = MetricsEndpoint::new(&registry).unwrap();
    let openmetrics = endpoint.render(Format::OpenMetricsText).await.unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = Request::put(format!("http://{}/metrics/job/openmetrics", gateway.addr))
        .header("content-type", Format::OpenMetricsText.content_type())
        .body(Full::new(Bytes::from(openmetrics)))
        .unwrap();
    let taken = client.request(request).await.unwrap();
    assert_eq!(taken.status(), StatusCode::OK);
    let key = group(&[("job", "openmetrics")]);
    let files_written_as = |served: Exposition, kind: &str| {
        assert_eq!(
            served.value("files_written_total", &key),
            Some(0.0),
            "{}",
            served.text
        );
        assert!(
            served.declares("files_written_total", kind),
            "{}",
            served.text
        );
    };
    files_written_as(gateway.scrape().await, "untyped");

    // The same group, replaced by the pusher's push.
    let pusher = Pusher::new(gateway.url(), "openmetrics").unwrap();
    pusher.push(&registry).await.unwrap();
    files_written_as(gateway.scrape().await, "counter");
    Ok(())
}

/// In multi-process mode a push carries the totals over every process's files, as a
/// scrape would: here two Python workers' (2 and 3 jobs).
async fn a_multiprocess_push_carries_the_totals_of_all_processes() -> common::Checked {
    let python = common::require_python_client("write multi-process files to aggregate")?;
    let gateway = Pushgateway::start(false).await?;
    let dir = TempDir::new("push-multiprocess");
    for n in ["2", "3"] {
        common::multiprocess::run_python_worker(&python, dir.path(), n);
    }
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let pusher = Pusher::new(gateway.url(), "workers").unwrap();
    pusher.push(&registry).await.unwrap();

    let served = gateway.scrape().await;
    let key = group(&[("job", "workers")]);
    assert_eq!(
        served.value("py_jobs_total", &with(key.clone(), &[("kind", "a\"b")])),
        Some(5.0),
        "{}",
        served.text
    );
    assert_eq!(served.value("py_latency_seconds_count", &key), Some(2.0));
    assert_eq!(served.value("py_peak", &key), Some(3.0));
    Ok(())
}

/// A connection closed before any answer: `Exchange`, with the error as its source.
async fn a_connection_closed_unanswered_is_an_exchange_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let pusher = Pusher::new(format!("http://{addr}"), "job").unwrap();
    match pusher.push(&MetricsRegistry::new()).await {
        Err(error @ PushError::Exchange { .. }) => {
            assert!(std::error::Error::source(&error).is_some(), "{error}");
        }
        other => panic!("expected Exchange, got {other:?}"),
    }
    closer.abort();
}

/// Nothing listens on the port: `Unreachable`, naming the gateway, with the connect
/// error as its source.
async fn a_closed_port_is_unreachable() {
    let addr = common::free_address();
    let pusher = Pusher::new(format!("http://{addr}"), "job").unwrap();
    match pusher.push(&MetricsRegistry::new()).await {
        Err(error @ PushError::Unreachable { .. }) => {
            assert!(error.to_string().contains(&addr.to_string()), "{error}");
            assert!(std::error::Error::source(&error).is_some());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(matches!(
        pusher.delete().await,
        Err(PushError::Unreachable { .. })
    ));
}

/// A listener that accepts and never answers: `Timeout` once the pusher's timeout has
/// passed, not a hang.
async fn a_gateway_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.push(stream);
        }
    });
    let timeout = Duration::from_millis(300);
    let pusher = Pusher::builder(format!("http://{addr}"), "job")
        .timeout(timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        pusher.push(&MetricsRegistry::new()),
    )
    .await
    .expect("the push gives up on its own");
    let waited = started.elapsed();
    match outcome {
        Err(PushError::Timeout {
            method,
            timeout: reported,
        }) => {
            assert_eq!(method, Method::PUT);
            assert_eq!(reported, timeout);
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(waited >= timeout, "gave up after {waited:?}");
    held.abort();
}

/// One request as a recording gateway saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

/// A gateway of the test's own that records each request and answers `status` with
/// `body`.
async fn recording_gateway(
    status: StatusCode,
    body: Vec<u8>,
) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let service = tower::service_fn({
        let seen = Arc::clone(&seen);
        move |request: Request<hyper::body::Incoming>| {
            let seen = Arc::clone(&seen);
            let answer = body.clone();
            async move {
                let (parts, received) = request.into_parts();
                let received = received.collect().await.map(|b| b.to_bytes().to_vec());
                seen.lock().unwrap().push(Seen {
                    method: parts.method,
                    path: parts.uri.path().to_string(),
                    headers: parts.headers,
                    body: received.unwrap_or_default(),
                });
                let mut response = Response::new(Full::new(Bytes::from(answer)));
                *response.status_mut() = status;
                Ok::<_, common::Never>(response)
            }
        }
    });
    (common::serve(service).await, seen)
}

/// On the wire: each method to the group's path, a bearer token, the text format's
/// content type on pushes with the body a scrape would get, no body on `DELETE`.
async fn requests_carry_the_method_path_token_and_text_format() {
    let (addr, seen) = recording_gateway(StatusCode::OK, Vec::new()).await;
    let registry = gauges(&[("wired", 9)]);
    let pusher = Pusher::builder(format!("http://{addr}/gateway/"), "wire")
        .grouping("stage", "a b")
        .bearer_token("t0ken")
        .build()
        .unwrap();
    pusher.push(&registry).await.unwrap();
    pusher.push_add(&registry).await.unwrap();
    pusher.delete().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(methods, [&Method::PUT, &Method::POST, &Method::DELETE]);
    for request in &seen {
        assert_eq!(request.path, "/gateway/metrics/job/wire/stage@base64/YSBi");
        assert_eq!(request.headers["authorization"], "Bearer t0ken");
    }
    for request in &seen[..2] {
        assert_eq!(
            request.headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = String::from_utf8(request.body.clone()).unwrap();
        assert_eq!(
            Exposition::parse(&text).value("wired", &[]),
            Some(9.0),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
    }
    assert!(seen[2].body.is_empty());
    assert!(seen[2].headers.get("content-type").is_none());
}

/// The body of a push is what the endpoint serves in the text format 0.0.4, byte for
/// byte.
async fn a_push_sends_what_a_scrape_serves() {
    let (addr, seen) = recording_gateway(StatusCode::OK, Vec::new()).await;
    let registry = common::fixtures::jobs_and_latency();
    registry.without_process_metrics().unwrap();
    let endpoint = MetricsEndpoint::new(&registry).unwrap();
    Pusher::new(format!("http://{addr}"), "same")
        .unwrap()
        .push(&registry)
        .await
        .unwrap();
    let scraped = endpoint.render(Format::PrometheusText).await.unwrap();
    let pushed = seen.lock().unwrap()[0].body.clone();
    assert_eq!(
        String::from_utf8_lossy(&pushed),
        String::from_utf8_lossy(&scraped)
    );
}

/// A rejection's body is kept up to `MAX_REJECTION_BODY` bytes, whatever its size.
async fn a_long_rejection_body_is_cut() {
    let long = "x".repeat(10 * MAX_REJECTION_BODY);
    let (addr, _) = recording_gateway(StatusCode::SERVICE_UNAVAILABLE, long.into_bytes()).await;
    let pusher = Pusher::new(format!("http://{addr}"), "job").unwrap();
    let body = rejection(
        pusher.delete().await,
        Method::DELETE,
        StatusCode::SERVICE_UNAVAILABLE,
    );
    assert_eq!(body.len(), MAX_REJECTION_BODY);
}

/// What cannot work is refused when the pusher is built, with a reason.
async fn bad_settings_fail_the_build() {
    let cases = [
        Pusher::new("https://gateway:9091", "job").map(drop),
        Pusher::new("http://gateway:9091", "").map(drop),
        Pusher::builder("http://gateway:9091", "job")
            .grouping("job", "x")
            .build()
            .map(drop),
        Pusher::builder("http://gateway:9091", "job")
            .basic_auth("a:b", "c")
            .build()
            .map(drop),
        Pusher::builder("http://gateway:9091", "job")
            .bearer_token("two words")
            .build()
            .map(drop),
    ];
    let errors: Vec<String> = cases
        .into_iter()
        .map(|case| case.expect_err("refused").to_string())
        .collect();
    assert!(errors[0].contains("TLS"), "{}", errors[0]);
    assert!(errors[1].contains("empty"), "{}", errors[1]);
    assert!(errors[2].contains("`job`"), "{}", errors[2]);
    assert!(errors[3].contains("`:`"), "{}", errors[3]);
    assert!(errors[4].contains("visible ASCII"), "{}", errors[4]);
    // The credentials stay out of debug output.
    let pusher = Pusher::builder("http://gateway:9091", "job")
        .basic_auth("user", "hunter2")
        .build()
        .unwrap();
    let shown = format!("{pusher:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    // The default timeout, 10 s, applies.
    assert!(shown.contains("timeout: 10s"), "{shown}");
}

/// A pusher, its futures and its errors can move to other tasks: `tokio::spawn` and
/// `Box<dyn Error + Send + Sync>` take them.
async fn a_pusher_its_futures_and_errors_are_send() {
    fn send<T: Send + Sync>(_: &T) {}
    fn send_future<F: std::future::Future + Send>(_: &F) {}
    let pusher = Pusher::new("http://127.0.0.1:9", "job").unwrap();
    let registry = MetricsRegistry::new();
    send(&pusher);
    send_future(&pusher.push(&registry));
    send_future(&pusher.push_add(&registry));
    send_future(&pusher.delete());
    let error: Box<dyn std::error::Error + Send + Sync> = PushError::EmptyJob.into();
    assert_eq!(error.to_string(), "invalid job name: it is empty");
}

test_main!(
    tokio put_serves_every_value_with_the_grouping_labels,
    tokio post_replaces_only_the_families_it_sends,
    tokio delete_removes_the_group_and_only_it,
    tokio basic_auth_is_sent_and_refusals_are_rejections,
    tokio an_inconsistent_push_is_rejected_with_the_gateways_reason,
    tokio openmetrics_text_loses_a_counters_type_and_the_pushers_text_keeps_it,
    tokio a_multiprocess_push_carries_the_totals_of_all_processes,
    tokio a_connection_closed_unanswered_is_an_exchange_error,
    tokio a_closed_port_is_unreachable,
    tokio a_gateway_that_never_answers_times_out,
    tokio requests_carry_the_method_path_token_and_text_format,
    tokio a_push_sends_what_a_scrape_serves,
    tokio a_long_rejection_body_is_cut,
    tokio bad_settings_fail_the_build,
    tokio a_pusher_its_futures_and_errors_are_send,
);
