//! Multi-process mode end to end: files shared with Python's prometheus_client in both
//! directions, worker processes killed with SIGKILL, corrupt files.
// Several tests count requests by route, which axum's `MatchedPath` names.

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::multiprocess::{
    assert_same_samples, file_of_one_entry, python_aggregate, run_python_worker, PYTHON_WORKER,
};
use common::{eventually, scrape, serve, TempDir};
use prometheus_client::registry::Unit;
use tower_prometheus::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use tower_prometheus::multiprocess::{FileError, GaugeMode, MultiprocessError, SKIPPED_FILES};
use tower_prometheus::{MetricsEndpoint, MetricsLayer, MetricsRegistry, RegistryError};

const REQUESTS: &str = "http_server_requests_total";

async fn python_reads_the_files_this_crate_writes() -> common::Checked {
    let python = common::require_python_client(
        "read this crate's files with Python's MultiProcessCollector",
    )?;
    let dir = TempDir::new("rust-writes");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("jobs_total", "Jobs done.", Counter::default)
        .unwrap();
    registry
        .provider("temperature", "Last temperature.", || {
            Gauge::with_mode(GaugeMode::Max)
        })
        .unwrap();
    registry
        .provider_with_unit("payload", "Payload sizes.", Unit::Bytes, || {
            Family::<[(&'static str, String); 1], Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new([10.0, 1000.0, 1e6]).unwrap())
            })
        })
        .unwrap();
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/items/{id}", get(|| async { "item" }))
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(router).await;
    for i in 0..5 {
        common::get(addr, "/").await;
        common::get(addr, &format!("/items/{i}")).await;
    }
    common::get(addr, "/missing").await;
    registry.get::<Counter>("jobs_total").unwrap().inc_by(7);
    registry.get::<Gauge>("temperature").unwrap().set(21);
    let payload: Family<[(&'static str, String); 1], Histogram> = registry.get("payload").unwrap();
    for size in [5.0, 50.0, 5e5, 5e7] {
        payload
            .get_or_create(&[("kind", "upload\"\n\\".to_string())])
            .observe(size);
    }

    let ours = scrape(addr).await;
    assert_eq!(
        ours.value(
            REQUESTS,
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", "200"),
                ("http_route", "/items/{id}")
            ]
        ),
        Some(5.0)
    );
    let python = python_aggregate(&python, dir.path());
    assert_eq!(python.value("jobs_total", &[]), Some(7.0));
    assert_eq!(python.sum("payload_bytes_count", &[]), 4.0);
    assert_same_samples(&ours, &python, &[]);
    Ok(())
}

async fn this_crate_aggregates_files_python_processes_wrote() -> common::Checked {
    let python = common::require_python_client("write files with Python's prometheus_client")?;
    let dir = TempDir::new("python-writes");
    // Two workers that exit, and one that stays alive until its stdin closes.
    for n in ["3", "10"] {
        run_python_worker(&python, dir.path(), n);
    }
    let mut live = Command::new(&python)
        .env("PROMETHEUS_MULTIPROC_DIR", dir.path())
        .args(["-c", PYTHON_WORKER, "4", "stay"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    let mut ready = String::new();
    BufReader::new(live.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("python says it is ready");
    assert_eq!(ready.trim(), "ready");

    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let ours = scrape(addr).await;
    let python_view = python_aggregate(&python, dir.path());
    drop(live.stdin.take());
    let _ = live.wait();

    assert_eq!(ours.value("py_jobs_total", &[("kind", "a\"b")]), Some(17.0));
    assert_eq!(ours.value("py_latency_seconds_count", &[]), Some(3.0));
    assert_eq!(
        ours.value("py_latency_seconds_bucket", &[("le", "0.1")]),
        Some(0.0)
    );
    assert_eq!(
        ours.value("py_latency_seconds_bucket", &[("le", "1")]),
        Some(3.0)
    );
    assert_eq!(ours.value("py_peak", &[]), Some(10.0));
    assert_eq!(ours.matching("py_each", &[]).len(), 3);
    // Python's reader keeps live gauges of exited workers until `mark_process_dead`;
    // here they go as soon as the process is gone, so only the live worker counts.
    assert_eq!(ours.value("py_live", &[]), Some(4.0));
    assert_eq!(python_view.value("py_live", &[]), Some(17.0));
    assert_same_samples(&ours, &python_view, &["py_live"]);
    Ok(())
}

async fn corrupt_and_truncated_files_are_skipped_and_counted() {
    let dir = TempDir::new("corrupt");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("kept", "Still served.", Counter::default)
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    registry.get::<Counter>("kept").unwrap().inc_by(3);

    // `used` claims more than the file holds.
    let mut bogus = vec![0u8; 64];
    bogus[..4].copy_from_slice(&4096i32.to_le_bytes());
    std::fs::write(dir.path().join("counter_4000001.db"), bogus).unwrap();
    // Shorter than its header.
    std::fs::write(dir.path().join("histogram_4000002.db"), [1u8, 2]).unwrap();
    // An entry whose key is not JSON.
    let mut bad_key = vec![0u8; 64];
    bad_key[..4].copy_from_slice(&40i32.to_le_bytes());
    bad_key[8..12].copy_from_slice(&3i32.to_le_bytes());
    bad_key[12..15].copy_from_slice(b"{{{");
    std::fs::write(dir.path().join("counter_4000003.db"), bad_key).unwrap();

    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("kept_total", &[]), Some(3.0));
    assert_eq!(
        metrics.value(SKIPPED_FILES, &[("reason", "truncated")]),
        Some(2.0)
    );
    assert_eq!(
        metrics.value(SKIPPED_FILES, &[("reason", "corrupt")]),
        Some(1.0)
    );
    assert_eq!(metrics.sum(SKIPPED_FILES, &[]), 3.0);
}

fn a_directory_that_cannot_hold_the_files_fails_when_the_layer_is_built() {
    let registry = MetricsRegistry::new();
    registry
        .multiprocess_dir(std::env::temp_dir().join("tower-prometheus-does-not-exist-4711"))
        .unwrap();
    let error = MetricsLayer::new(&registry).unwrap_err();
    let tower_prometheus::BuildError::Registry(RegistryError::Multiprocess { source }) = &error
    else {
        panic!("not a multi-process error: {error}");
    };
    // The system's error is reachable as the source, and the message still says it.
    let MultiprocessError::Directory { path, source: io } = source.as_ref() else {
        panic!("not a directory error: {source}");
    };
    assert!(
        path.ends_with("tower-prometheus-does-not-exist-4711"),
        "{path:?}"
    );
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    let chain = std::iter::successors(Some(&error as &dyn std::error::Error), |e| e.source());
    assert!(
        chain
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|e| e.kind() == std::io::ErrorKind::NotFound),
        "no io::Error in the source chain of {error}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("multi-process mode cannot start: multiprocess directory ")
            && message.contains("tower-prometheus-does-not-exist-4711"),
        "{message}"
    );
}

/// This process's own file, left by an earlier process of the same pid: laid out
/// well but with a key no scrape can read (not JSON, or naming a metric no parser
/// takes), or with `used` inside the header. Building
/// fails and names the file, as for a file whose layout is broken, rather than every
/// later count of this process being hidden with it.
fn an_own_file_that_scrapes_would_skip_fails_when_the_layer_is_built() {
    let mut used_in_header = vec![0u8; 64];
    used_in_header[..4].copy_from_slice(&3i32.to_le_bytes());
    for (file, at, says) in [
        (file_of_one_entry("{{{"), 16, "key"),
        (
            file_of_one_entry(r#"["a b", "a b_total", {}, "h"]"#),
            48,
            "key",
        ),
        (used_in_header, 0, "header"),
    ] {
        let dir = TempDir::new("own-corrupt");
        let own = dir
            .path()
            .join(format!("counter_{}.db", std::process::id()));
        std::fs::write(&own, file).unwrap();
        let registry = MetricsRegistry::new();
        registry.multiprocess_dir(dir.path()).unwrap();
        let error = MetricsLayer::new(&registry).unwrap_err();
        let tower_prometheus::BuildError::Registry(RegistryError::Multiprocess { source }) = &error
        else {
            panic!("not a multi-process error: {error}");
        };
        let MultiprocessError::File(FileError::Corrupt { path, offset, .. }) = source.as_ref()
        else {
            panic!("not a corrupt file: {source}");
        };
        assert_eq!((path, *offset), (&own, at), "{error}");
        assert!(error.to_string().contains(says), "{error}");
    }
}

/// Kills its child process when dropped, so a failing test leaves no worker behind.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_worker(port: u16, dir: &std::path::Path) -> Worker {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOWER_PROMETHEUS_WORKER_PORT", port.to_string())
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.ends_with("worker ready") => break,
            Some(Ok(_)) => continue,
            _ => panic!("worker exited before it was ready"),
        }
    }
    Worker(child)
}

/// Not a test: the body of a worker process that the multi-process tests start. It
/// serves `/` and `/metrics` on a port shared with other workers (`SO_REUSEPORT`).
fn worker_process() {
    let Ok(port) = std::env::var("TOWER_PROMETHEUS_WORKER_PORT") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let registry = MetricsRegistry::new();
        let router = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(MetricsLayer::new(&registry).expect("layer builds in the shared directory"));
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket
            .bind(SocketAddr::from((
                [127, 0, 0, 1],
                port.parse::<u16>().expect("port"),
            )))
            .expect("bind");
        let listener = socket.listen(128).expect("listen");
        println!("worker ready");
        std::io::stdout().flush().expect("flush");
        axum::serve(listener, router).await.expect("serve");
    });
}

async fn a_worker_killed_with_sigkill_loses_no_counted_request() {
    let dir = TempDir::new("sigkill");
    // Hold the port (bound, not listening) so no other program takes it meanwhile.
    let holder = tokio::net::TcpSocket::new_v4().unwrap();
    holder.set_reuseport(true).unwrap();
    holder.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = holder.local_addr().unwrap().port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut workers: Vec<Worker> = (0..3).map(|_| spawn_worker(port, dir.path())).collect();
    const CLIENTS: usize = 6;
    const PER_CLIENT: usize = 100;
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let answered = std::sync::Arc::clone(&answered);
        clients.push(tokio::spawn(async move {
            for _ in 0..PER_CLIENT {
                // A new connection each time spreads requests over the workers.
                if let Ok(Ok(reply)) =
                    tokio::time::timeout(Duration::from_secs(5), try_get(addr)).await
                {
                    if reply == 200 {
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    eventually(Duration::from_secs(30), "a third of the requests", || {
        let answered = std::sync::Arc::clone(&answered);
        async move {
            (answered.load(std::sync::atomic::Ordering::SeqCst) >= CLIENTS * PER_CLIENT / 3)
                .then_some(())
        }
    })
    .await;
    let victim = workers.remove(0);
    let victim_pid = victim.0.id();
    drop(victim); // SIGKILL, then reaped
    for client in clients {
        client.await.unwrap();
    }
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        answered > CLIENTS * PER_CLIENT / 2,
        "only {answered} requests answered"
    );

    let metrics = scrape(addr).await;
    let counted = metrics.sum(REQUESTS, &[("http_route", "/")]);
    assert_eq!(counted, answered as f64, "{}", metrics.text);
    assert_eq!(
        metrics.sum(
            "http_server_request_duration_seconds_count",
            &[("http_route", "/")]
        ),
        answered as f64
    );
    // Live processes only: nothing is in flight, and the dead worker's gauge is gone.
    assert_eq!(metrics.sum("http_server_active_requests", &[]), 0.0);
    // The dead worker's counts stay: in its file, or folded into the archive by a scrape.
    assert!(
        dir.path().join(format!("counter_{victim_pid}.db")).exists()
            || dir.path().join("counter_archive.db").exists()
    );
    drop(holder);
}

/// One GET of `/` over a new connection; the status, or an error if the worker died.
async fn try_get(addr: SocketAddr) -> Result<u16, Box<dyn std::error::Error + Send + Sync>> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri("/")
        .header(http::header::HOST, "test")
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

async fn live_gauges_follow_process_liveness_even_when_a_pid_is_reused() {
    let dir = TempDir::new("liveness");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("workers_busy", "Busy workers.", || {
            Gauge::with_mode(GaugeMode::LiveSum)
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    registry.get::<Gauge>("workers_busy").unwrap().set(1);
    let own_file = dir
        .path()
        .join(format!("gauge_livesum_{}.db", std::process::id()));

    // A running process that is not ours stands in for two others: one of this crate
    // that died and whose pid was reused (its lock file is there, unlocked), and a
    // Python worker (no lock file) that is alive.
    let mut other = Command::new("sleep").arg("30").spawn().expect("sleep runs");
    let other_pid = other.id();
    std::fs::copy(
        &own_file,
        dir.path().join(format!("gauge_livesum_{other_pid}.db")),
    )
    .unwrap();

    let python_like = scrape(addr).await;
    assert_eq!(
        python_like.value("workers_busy", &[]),
        Some(2.0),
        "{}",
        python_like.text
    );

    std::fs::write(
        dir.path()
            .join(format!("tower_prometheus_{other_pid}.lock")),
        b"",
    )
    .unwrap();
    let reused = scrape(addr).await;
    assert_eq!(
        reused.value("workers_busy", &[]),
        Some(1.0),
        "{}",
        reused.text
    );

    let _ = other.kill();
    let _ = other.wait();
}

async fn files_that_grow_between_scrapes_are_read_incrementally() {
    let dir = TempDir::new("growth");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("items", "Items.", || {
            Family::<[(&'static str, String); 1], Counter>::default().max_series(20_000)
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let items: Family<[(&'static str, String); 1], Counter> = registry.get("items").unwrap();
    // Each round appends enough entries to grow the file past its size at the last scrape.
    for round in 1..=3usize {
        for i in 0..3000 * round {
            items.get_or_create(&[("item", i.to_string())]).inc();
        }
        let metrics = scrape(addr).await;
        let expected: usize = (1..=round).map(|r| 3000 * r).sum();
        assert_eq!(metrics.sum("items_total", &[]), expected as f64);
        assert_eq!(metrics.matching("items_total", &[]).len(), 3000 * round);
        assert_eq!(metrics.sum(SKIPPED_FILES, &[]), 0.0);
    }
}

async fn fractional_values_are_shared_through_the_files() -> common::Checked {
    let python = common::require_python_client(
        "read fractional values with Python's MultiProcessCollector",
    )?;
    let dir = TempDir::new("fractions");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("energy", "Energy used.", Counter::default)
        .unwrap();
    registry
        .provider("load", "Load.", || Gauge::with_mode(GaugeMode::Max))
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let energy = registry.get::<Counter>("energy").unwrap();
    energy.inc_by_f64(1.5).unwrap();
    energy.inc();
    assert!(energy.inc_by_f64(-0.5).is_err());
    let load = registry.get::<Gauge>("load").unwrap();
    load.set_f64(0.75);
    load.add_f64(-0.5);

    let ours = scrape(addr).await;
    let theirs = python_aggregate(&python, dir.path());
    for metrics in [&ours, &theirs] {
        assert_eq!(
            metrics.value("energy_total", &[]),
            Some(2.5),
            "{}",
            metrics.text
        );
        assert_eq!(metrics.value("load", &[]), Some(0.25), "{}", metrics.text);
    }
    Ok(())
}

async fn collector_output_stays_in_the_scraped_process_when_declared_as_collected(
) -> common::Checked {
    let python =
        common::require_python_client("check which collector output reaches the shared files")?;
    let dir = TempDir::new("collected");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .collected_provider("pool_idle", "Idle connections.", Gauge::default)
        .unwrap();
    registry
        .provider("queue_depth", "Jobs waiting.", || {
            Gauge::with_mode(GaugeMode::LiveMostRecent)
        })
        .unwrap();
    registry
        .collector("state", |registry| {
            registry.get::<Gauge>("pool_idle")?.set(3);
            registry.get::<Gauge>("queue_depth")?.set(7);
            Ok(())
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let ours = scrape(addr).await;
    // The collected gauge: this process's value, no `pid` label, nothing in the files.
    assert_eq!(ours.value("pool_idle", &[]), Some(3.0), "{}", ours.text);
    // A gauge in the files: what the scraped process's collector wrote, in its mode.
    assert_eq!(ours.value("queue_depth", &[]), Some(7.0), "{}", ours.text);
    let theirs = python_aggregate(&python, dir.path());
    assert!(
        theirs.matching("pool_idle", &[]).is_empty(),
        "{}",
        theirs.text
    );
    assert_eq!(
        theirs.value("queue_depth", &[]),
        Some(7.0),
        "{}",
        theirs.text
    );
    Ok(())
}

/// The layer's constant labels and prefix go into the files: this crate's aggregate and
/// Python's read the same labelled, prefixed series.
async fn constant_labels_and_the_prefix_reach_the_files() -> common::Checked {
    let python = common::require_python_client(
        "read the labelled series with Python's MultiProcessCollector",
    )?;
    let dir = TempDir::new("constant-labels");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let layer = MetricsLayer::builder(&registry)
        .name_prefix("shop")
        .constant_labels([("service", "checkout"), ("region", "eu")])
        .response_body_size_histogram(true)
        .objective(
            "/items/{id}",
            tower_prometheus::layer::Objective::availability(0.995)
                .with_latency(Duration::from_secs(30), 0.9),
        )
        .build()
        .unwrap();
    let router = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .layer(layer);
    let addr = serve(router).await;
    for i in 0..3 {
        common::get(addr, &format!("/items/{i}")).await;
    }
    let labels = [
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
        ("http_route", "/items/{id}"),
        ("service", "checkout"),
        ("region", "eu"),
    ];
    let ours = eventually(Duration::from_secs(10), "the requests recorded", || async {
        let scrape = scrape(addr).await;
        (scrape.value("shop_http_server_requests_total", &labels) == Some(3.0)).then_some(scrape)
    })
    .await;
    let python = python_aggregate(&python, dir.path());
    let route = [
        ("http_route", "/items/{id}"),
        ("service", "checkout"),
        ("region", "eu"),
    ];
    let objective = [
        ("http_route", "/items/{id}"),
        ("slo", "availability"),
        ("service", "checkout"),
        ("region", "eu"),
    ];
    let expected = [
        ("shop_http_server_requests_total", &labels[..], 3.0),
        (
            "shop_http_server_request_duration_seconds_count",
            &labels,
            3.0,
        ),
        // Three bodies of `item`.
        (
            "shop_http_server_response_body_size_bytes_sum",
            &labels,
            12.0,
        ),
        ("shop_http_server_slo_latency_good_total", &route, 3.0),
        ("shop_http_server_slo_objective", &objective, 0.995),
    ];
    for view in [&ours, &python] {
        for (name, labels, value) in expected {
            assert_eq!(
                view.value(name, labels),
                Some(value),
                "{name}\n{}",
                view.text
            );
        }
        assert!(view.matching("http_server_requests_total", &[]).is_empty());
    }
    assert_same_samples(&ours, &python, &[]);
    Ok(())
}

test_main! {
    tokio constant_labels_and_the_prefix_reach_the_files,
    tokio python_reads_the_files_this_crate_writes,
    tokio this_crate_aggregates_files_python_processes_wrote,
    tokio corrupt_and_truncated_files_are_skipped_and_counted,
    sync a_directory_that_cannot_hold_the_files_fails_when_the_layer_is_built,
    sync an_own_file_that_scrapes_would_skip_fails_when_the_layer_is_built,
    sync_ignored worker_process,
    tokio_2 a_worker_killed_with_sigkill_loses_no_counted_request,
    tokio live_gauges_follow_process_liveness_even_when_a_pid_is_reused,
    tokio files_that_grow_between_scrapes_are_read_incrementally,
    tokio fractional_values_are_shared_through_the_files,
    tokio collector_output_stays_in_the_scraped_process_when_declared_as_collected,
}
