//! `name[]` on the endpoint: only the named families, in every format, through the
//! standalone endpoint, the layer's own `/metrics` and multi-process mode; hostile
//! queries get a bounded answer.

mod common;

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::fixtures::{protobuf_families, PROTOBUF};
use common::multiprocess::{assert_same_samples, python_aggregate, run_python_worker};
use common::{send_with_headers, serve, Exposition, Reply, TempDir};
use http::{header, Method, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tower_prometheus::metrics::Gauge;
use tower_prometheus::{MetricsEndpoint, MetricsLayer, MetricsRegistry};

const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0";

/// The test registry of the endpoint's tests, with a gauge that a collector sets to
/// its run count, and the process and build-info families every registry has.
fn registry(collector_runs: Arc<AtomicU64>) -> MetricsRegistry {
    let registry = common::fixtures::jobs_and_latency();
    registry
        .collected_provider("depth", "Queue depth.", Gauge::default)
        .unwrap();
    registry
        .collector("queue", move |registry| {
            let runs = collector_runs.fetch_add(1, Ordering::SeqCst) + 1;
            registry.get::<Gauge>("depth")?.set(runs as i64);
            Ok(())
        })
        .unwrap();
    registry
}

async fn scrape(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    send_with_headers(addr, Method::GET, path, headers).await
}

/// The families a text body declares, in order, from its `# TYPE` lines.
fn text_families(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(String::from)
        .collect()
}

fn gunzip(raw: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(raw)
        .read_to_string(&mut text)
        .expect("valid gzip");
    text
}

/// The samples of `full` whose names start with one of `families`: what a filtered
/// scrape must hold, value for value.
fn samples_of(full: &Exposition, families: &[&str]) -> Vec<common::Sample> {
    full.samples
        .iter()
        .filter(|s| families.iter().any(|f| s.name.starts_with(f)))
        .cloned()
        .collect()
}

async fn only_the_named_families_in_every_format() {
    let runs = Arc::new(AtomicU64::new(0));
    let addr = serve(MetricsEndpoint::new(&registry(runs.clone())).unwrap()).await;
    let full = Exposition::parse(&scrape(addr, "/metrics", &[]).await.body);
    assert!(text_families(&full.text).len() > 4, "{}", full.text);

    // The key as Prometheus sends it (percent-encoded) and as written by hand.
    let path = "/metrics?name%5B%5D=jobs_total&name[]=latency_seconds&other=1";
    let plain = scrape(addr, path, &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(
        plain.headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        text_families(&plain.body),
        ["jobs_total", "latency_seconds"]
    );
    let filtered = Exposition::parse(&plain.body);
    assert_eq!(
        filtered.samples,
        samples_of(&full, &["jobs_total", "latency_seconds"])
    );
    assert_eq!(filtered.value("jobs_total", &[]), Some(3.0));
    assert_eq!(
        filtered.value("latency_seconds_count", &[("route", "/a")]),
        Some(3.0)
    );
    assert_eq!(
        plain.headers[header::CONTENT_LENGTH],
        plain.raw.len().to_string()
    );

    let open = scrape(addr, path, &[("accept", OPENMETRICS)]).await;
    assert!(open.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    // OpenMetrics names a counter's family without `_total`.
    assert_eq!(text_families(&open.body), ["jobs", "latency_seconds"]);
    assert!(open.body.ends_with("# EOF\n"), "{}", open.body);
    let open_samples = Exposition::parse(&open.body);
    assert_eq!(open_samples.value("jobs_total", &[]), Some(3.0));
    assert_eq!(
        open_samples.value("latency_seconds_bucket", &[("route", "/a"), ("le", "1.0")]),
        Some(2.0)
    );

    let proto = scrape(addr, path, &[("accept", PROTOBUF)]).await;
    let families = protobuf_families(&proto.raw);
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["jobs_total", "latency_seconds"]);
    assert_eq!(
        families[0].metric[0].counter.as_ref().map(|c| c.value),
        Some(3.0)
    );
    let histogram = families[1].metric[0].histogram.as_ref().expect("histogram");
    assert_eq!(histogram.sample_count, 3);

    let zipped = scrape(addr, path, &[("accept-encoding", "gzip")]).await;
    assert_eq!(zipped.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gunzip(&zipped.raw), plain.body);

    let head = send_with_headers(addr, Method::HEAD, path, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.raw.is_empty());
    assert_eq!(
        head.headers[header::CONTENT_LENGTH],
        plain.raw.len().to_string()
    );
}

async fn sample_names_and_collector_families_are_selected_whole() {
    let runs = Arc::new(AtomicU64::new(0));
    let addr = serve(MetricsEndpoint::new(&registry(runs.clone())).unwrap()).await;

    // A sample name selects its whole family, as Python's client selects samples.
    let bucket = scrape(addr, "/metrics?name[]=latency_seconds_bucket", &[]).await;
    assert_eq!(text_families(&bucket.body), ["latency_seconds"]);
    let bucket = Exposition::parse(&bucket.body);
    assert_eq!(bucket.sum("latency_seconds_sum", &[]), 5.55);
    assert_eq!(bucket.matching("latency_seconds_bucket", &[]).len(), 3);

    // The process and build-info collectors' families are found by name too.
    let process = scrape(
        addr,
        "/metrics?name[]=process_open_fds&name[]=tower_prometheus_build_info",
        &[],
    )
    .await;
    let mut families = text_families(&process.body);
    families.sort();
    assert_eq!(
        families,
        ["process_open_fds", "tower_prometheus_build_info"]
    );
    let process = Exposition::parse(&process.body);
    assert!(process.value("process_open_fds", &[]).unwrap() > 0.0);

    // Collectors run on every scrape, filtered or not: one may set any family.
    let before = runs.load(Ordering::SeqCst);
    let depth = Exposition::parse(&scrape(addr, "/metrics?name[]=depth", &[]).await.body);
    assert_eq!(runs.load(Ordering::SeqCst), before + 1);
    assert_eq!(depth.value("depth", &[]), Some((before + 1) as f64));
    assert_eq!(depth.samples.len(), 1);
    let jobs = scrape(addr, "/metrics?name[]=jobs_total", &[]).await;
    assert_eq!(runs.load(Ordering::SeqCst), before + 2);
    assert_eq!(text_families(&jobs.body), ["jobs_total"]);
}

async fn unknown_and_empty_names_select_nothing() {
    let addr = serve(MetricsEndpoint::new(&registry(Arc::default())).unwrap()).await;
    for path in [
        "/metrics?name[]=nope",
        "/metrics?name[]=",
        "/metrics?name[]",
    ] {
        let plain = scrape(addr, path, &[]).await;
        assert_eq!(plain.status, StatusCode::OK, "{path}");
        assert_eq!(plain.body, "", "{path}");
        assert_eq!(plain.headers[header::CONTENT_LENGTH], "0", "{path}");
        let open = scrape(addr, path, &[("accept", OPENMETRICS)]).await;
        assert_eq!(open.body, "# EOF\n", "{path}");
        let proto = scrape(addr, path, &[("accept", PROTOBUF)]).await;
        assert_eq!(proto.status, StatusCode::OK, "{path}");
        assert!(proto.raw.is_empty(), "{path}");
    }
    let some = scrape(addr, "/metrics?name[]=nope&name[]=jobs_total", &[]).await;
    assert_eq!(text_families(&some.body), ["jobs_total"]);
    // `name` without brackets, or any other parameter, filters nothing.
    let all = scrape(addr, "/metrics?name=jobs_total&x=1", &[]).await;
    assert!(text_families(&all.body).len() > 4, "{}", all.body);
}

async fn the_layer_endpoint_filters_too() {
    let registry = MetricsRegistry::new();
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(router).await;
    for _ in 0..4 {
        assert_eq!(common::get(addr, "/").await.status, StatusCode::OK);
    }
    let reply = scrape(addr, "/metrics?name[]=http_server_requests_total", &[]).await;
    assert_eq!(text_families(&reply.body), ["http_server_requests_total"]);
    let scrape = Exposition::parse(&reply.body);
    assert_eq!(
        scrape.value(
            "http_server_requests_total",
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", "200"),
                ("http_route", "/"),
            ]
        ),
        Some(4.0)
    );
    // The filtered scrapes were not counted as requests.
    assert_eq!(scrape.sum("http_server_requests_total", &[]), 4.0);
}

/// Sends `request_line` and headers as raw bytes, for URIs too long for a `Uri`, and
/// returns the status code and the time the answer took.
async fn raw_request(addr: SocketAddr, target: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:.200}"));
    (status, started.elapsed())
}

async fn hostile_queries_get_bounded_clear_answers() {
    let addr = serve(MetricsEndpoint::new(&registry(Arc::default())).unwrap()).await;
    let names = |n: usize, name: &str| vec![format!("name[]={name}"); n].join("&");

    // 1000 names are served; one more is refused, with the reason.
    let most = scrape(
        addr,
        &format!("/metrics?{}", names(1000, "jobs_total")),
        &[],
    )
    .await;
    assert_eq!(most.status, StatusCode::OK);
    assert_eq!(text_families(&most.body), ["jobs_total"]);
    let over = scrape(addr, &format!("/metrics?{}", names(1001, "a")), &[]).await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!(over.body, "bad query: more than 1000 name[] parameters\n");

    for (query, reason) in [
        ("name[]=%zz", "has a `%` without two hex digits after it"),
        ("name[]=jobs%2", "has a `%` without two hex digits after it"),
        ("name[]=%ff%fe", "is not UTF-8 once percent-decoded"),
        (
            "name[]=jobs&name%5B%5D=%E2%82",
            "is not UTF-8 once percent-decoded",
        ),
    ] {
        let reply = scrape(addr, &format!("/metrics?{query}"), &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(
            reply.body,
            format!("bad query: a name[] parameter {reason}\n"),
            "{query}"
        );
    }

    // A name of 60,000 characters is no family's.
    let long = scrape(
        addr,
        &format!("/metrics?name[]={}", "a".repeat(60_000)),
        &[],
    )
    .await;
    assert_eq!(long.status, StatusCode::OK);
    assert_eq!(long.body, "");

    // 10,000 names make a target over the 65,534 bytes a `Uri` holds: hyper refuses it
    // before the endpoint sees it, at once, and the server goes on serving.
    let target = format!("/metrics?{}", names(10_000, "jobs_total"));
    assert!(target.len() > 65_534);
    let (status, took) = raw_request(addr, &target).await;
    assert_eq!(status, 414, "URI Too Long");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let after = scrape(addr, "/metrics?name[]=jobs_total", &[]).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(
        Exposition::parse(&after.body).value("jobs_total", &[]),
        Some(3.0)
    );
}

async fn the_multiprocess_aggregate_is_filtered_by_name() -> common::Checked {
    let python = common::require_python_client("write multiprocess files with Python")?;
    let dir = TempDir::new("name-filter");
    for n in ["3", "10"] {
        run_python_worker(&python, dir.path(), n);
    }
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let python_view = python_aggregate(&python, dir.path());

    let reply = scrape(addr, "/metrics?name[]=py_jobs_total&name[]=py_peak", &[]).await;
    let mut families = text_families(&reply.body);
    families.sort();
    assert_eq!(families, ["py_jobs_total", "py_peak"]);
    let ours = Exposition::parse(&reply.body);
    assert_eq!(ours.value("py_jobs_total", &[("kind", "a\"b")]), Some(13.0));
    assert_eq!(ours.value("py_peak", &[]), Some(10.0));
    // Every sample Python has of those families, and nothing of the others.
    assert_same_samples(&ours, &python_view, &["py_latency", "py_each", "py_live"]);
    assert!(ours.matching("py_latency_seconds_count", &[]).is_empty());

    let proto = scrape(
        addr,
        "/metrics?name[]=py_latency_seconds_count",
        &[("accept", PROTOBUF)],
    )
    .await;
    let families = protobuf_families(&proto.raw);
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].name, "py_latency_seconds");
    let histogram = families[0].metric[0].histogram.as_ref().expect("histogram");
    assert_eq!(
        Some(histogram.sample_count as f64),
        python_view.value("py_latency_seconds_count", &[])
    );
    Ok(())
}

test_main! {
    tokio only_the_named_families_in_every_format,
    tokio sample_names_and_collector_families_are_selected_whole,
    tokio unknown_and_empty_names_select_nothing,
    tokio the_layer_endpoint_filters_too,
    tokio hostile_queries_get_bounded_clear_answers,
    tokio the_multiprocess_aggregate_is_filtered_by_name,
}
