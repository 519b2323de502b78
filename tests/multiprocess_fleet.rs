//! Multi-process mode in a fleet that recycles its workers: the directory holds the
//! files of hundreds or thousands of exited processes. A scrape holds none of their
//! descriptors once it returns, serves no total below an earlier one when the process
//! runs out of descriptors, and never keeps requests waiting while it reads.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::multiprocess::file_of_entries;
use common::{Exposition, TempDir};
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use tower_prometheus::multiprocess::{Folding, GaugeMode, DISPLACED_FILES, FILES, SKIPPED_FILES};
use tower_prometheus::{MetricsEndpoint, MetricsLayer, MetricsRegistry};

/// Pids above the kernel's largest (2^22), so no live process has one.
const FIRST_EXITED_PID: usize = 5_000_000;

/// Leaves in `dir` the files of `workers` exited workers of this crate, each with a
/// counter file of `series` series of `fleet_jobs` (1 each) and its released lock.
fn exited_workers(dir: &Path, workers: usize, series: usize) {
    let entries: Vec<(String, f64)> = (0..series)
        .map(|n| {
            (
                format!(r#"["fleet_jobs", "fleet_jobs_total", {{"n": "{n}"}}, "Jobs."]"#),
                1.0,
            )
        })
        .collect();
    let file = file_of_entries(&entries);
    for worker in 0..workers {
        let pid = FIRST_EXITED_PID + worker;
        std::fs::write(dir.join(format!("counter_{pid}.db")), &file).unwrap();
        std::fs::write(dir.join(format!("tower_prometheus_{pid}.lock")), b"").unwrap();
    }
}

/// A registry in multi-process mode over `dir` that only reads the files of exited
/// workers, as a directory with folding off keeps them: what a scrape costs.
fn reading_registry(dir: &Path) -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir).unwrap();
    registry.multiprocess_folding(Folding::Off).unwrap();
    registry
}

/// The descriptors this process holds open on files in `dir`.
fn descriptors_in(dir: &Path) -> Vec<String> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.starts_with(&dir))
        .map(|target| target.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

async fn a_scrape_holds_no_descriptor_of_another_process_s_file() {
    let dir = TempDir::new("fleet-descriptors");
    exited_workers(dir.path(), 300, 10);
    let registry = reading_registry(dir.path());
    let addr = common::serve(MetricsEndpoint::new(&registry).unwrap()).await;
    for _ in 0..3 {
        let metrics = common::scrape(addr).await;
        assert_eq!(metrics.sum("fleet_jobs_total", &[]), 3000.0);
        assert_eq!(metrics.sum(SKIPPED_FILES, &[]), 0.0);
    }
    let own = std::process::id().to_string();
    let held = descriptors_in(dir.path());
    let others: Vec<_> = held.iter().filter(|name| !name.contains(&own)).collect();
    assert!(others.is_empty(), "descriptors still open: {others:?}");
}

async fn the_file_count_and_a_removed_directory_are_shown_as_metrics() {
    let dir = TempDir::new("fleet-removed");
    exited_workers(dir.path(), 5, 10);
    let registry = reading_registry(dir.path());
    registry
        .provider("own_jobs", "This process's jobs.", Counter::default)
        .unwrap();
    let addr = common::serve(MetricsEndpoint::new(&registry).unwrap()).await;
    registry.get::<Counter>("own_jobs").unwrap().inc_by(4);
    let metrics = common::scrape(addr).await;
    // The exited workers' counter files, and this process's counter and histogram files.
    assert_eq!(metrics.value(FILES, &[]), Some(7.0));
    assert_eq!(metrics.value(DISPLACED_FILES, &[]), Some(0.0));
    assert_eq!(metrics.sum("own_jobs_total", &[]), 4.0);

    // Removed and made again under the running process, as `rm -rf dir; mkdir dir` does.
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::create_dir(dir.path()).unwrap();
    let metrics = common::scrape(addr).await;
    assert_eq!(metrics.value(FILES, &[]), Some(0.0));
    // Its counter and histogram files and its lock file.
    assert_eq!(metrics.value(DISPLACED_FILES, &[]), Some(3.0));
    assert_eq!(metrics.value("own_jobs_total", &[]), None);
}

/// Python's worker for [`new_files_take_no_more_disk_than_python_s_for_the_same_series`].
const PYTHON_TEN_SERIES: &str = "from prometheus_client import Counter, Gauge, Histogram\n\
    c = Counter('fleet_jobs', 'Jobs.', ['n'])\n\
    g = Gauge('fleet_peak', 'Peak.', ['n'], multiprocess_mode='max')\n\
    h = Histogram('fleet_seconds', 'Time.', ['n'])\n\
    for n in range(10):\n\
    \x20   c.labels(str(n)).inc()\n\
    \x20   g.labels(str(n)).set(n)\n\
    \x20   h.labels(str(n)).observe(0.2)\n";

/// Disk taken by the metric files in `dir`, in bytes of allocated blocks.
fn disk_used(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".db"))
        .map(|entry| entry.metadata().unwrap().blocks() * 512)
        .sum()
}

fn new_files_take_no_more_disk_than_python_s_for_the_same_series() -> common::Checked {
    let python = common::require_python_client("measure the files Python writes")?;
    let python_dir = TempDir::new("fleet-python-disk");
    let status = Command::new(python)
        .env("PROMETHEUS_MULTIPROC_DIR", python_dir.path())
        .args(["-c", PYTHON_TEN_SERIES])
        .status()
        .unwrap();
    assert!(status.success());

    let dir = TempDir::new("fleet-disk");
    let registry = reading_registry(dir.path());
    registry
        .provider(
            "fleet_jobs",
            "Jobs.",
            Family::<[(&str, String); 1], Counter>::default,
        )
        .unwrap();
    registry
        .provider("fleet_peak", "Peak.", || {
            Family::<[(&str, String); 1], Gauge>::new_with_constructor(|| {
                Gauge::with_mode(GaugeMode::Max)
            })
        })
        .unwrap();
    registry
        .provider("fleet_seconds", "Time.", || {
            Family::<[(&str, String); 1], Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::http_duration())
            })
        })
        .unwrap();
    let _endpoint = MetricsEndpoint::new(&registry).unwrap();
    let jobs: Family<[(&str, String); 1], Counter> = registry.get("fleet_jobs").unwrap();
    let peak: Family<[(&str, String); 1], Gauge> = registry.get("fleet_peak").unwrap();
    let seconds: Family<[(&str, String); 1], Histogram> = registry.get("fleet_seconds").unwrap();
    for n in 0..10 {
        let labels = [("n", n.to_string())];
        jobs.get_or_create(&labels).inc();
        peak.get_or_create(&labels).set(n);
        seconds.get_or_create(&labels).observe(0.2);
    }
    let (ours, theirs) = (disk_used(dir.path()), disk_used(python_dir.path()));
    eprintln!(
        "10 series of a counter, a gauge and a histogram: {ours} bytes on disk, Python {theirs}"
    );
    assert!(ours <= theirs, "{ours} bytes on disk, Python's {theirs}");
    Ok(())
}

/// Workers (of this test binary) that scrape under a descriptor limit; each prints
/// what its scrapes served as `scrape <n> <fleet total> <own total> <unreadable>`.
fn fleet_worker() {
    let Ok(role) = std::env::var("TOWER_PROMETHEUS_FLEET_WORKER") else {
        return;
    };
    assert_eq!(role, "descriptors", "unknown worker role {role}");
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct passed by pointer, which outlives the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let registry = MetricsRegistry::new();
    registry.multiprocess_folding(Folding::Off).unwrap();
    registry
        .provider("own_jobs", "This worker's jobs.", Counter::default)
        .unwrap();
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    registry.get::<Counter>("own_jobs").unwrap().inc_by(7);
    let report = |round: &str| {
        let body = runtime
            .block_on(endpoint.render(Format::PrometheusText))
            .expect("the scrape renders");
        let metrics = Exposition::parse(&String::from_utf8(body).unwrap());
        println!(
            "scrape {round} {} {} {}",
            metrics.sum("fleet_jobs_total", &[]),
            metrics.sum("own_jobs_total", &[]),
            metrics.sum(SKIPPED_FILES, &[("reason", "unreadable")]),
        );
    };
    report("limited");
    // Every descriptor left taken: files can be neither listed nor opened.
    let mut taken = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        taken.push(file);
    }
    report("exhausted");
    report("exhausted_again");
    drop(taken);
    report("recovered");
}

fn more_exited_workers_than_descriptors_never_serve_less_or_go_blank() {
    let dir = TempDir::new("fleet-exhausted");
    // 200 files of exited workers against a limit of 64 descriptors.
    exited_workers(dir.path(), 200, 100);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["fleet_worker", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads=1"])
        .env("TOWER_PROMETHEUS_FLEET_WORKER", "descriptors")
        .env("PROMETHEUS_MULTIPROC_DIR", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<Vec<String>> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let at = line.find("scrape ")?;
            Some(line[at..].split(' ').skip(1).map(str::to_string).collect())
        })
        .collect();
    assert!(child.wait().unwrap().success());
    let rounds: Vec<&str> = lines.iter().map(|line| line[0].as_str()).collect();
    assert_eq!(
        rounds,
        ["limited", "exhausted", "exhausted_again", "recovered"]
    );
    for line in &lines {
        let (fleet, own, unreadable) = (&line[1], &line[2], &line[3]);
        eprintln!(
            "{}: fleet {fleet}, own {own}, unreadable {unreadable}",
            line[0]
        );
        // Every exited worker's count, and this worker's own, at every scrape.
        assert_eq!(fleet, "20000", "{line:?}");
        assert_eq!(own, "7", "{line:?}");
    }
    let unreadable: Vec<f64> = lines.iter().map(|line| line[3].parse().unwrap()).collect();
    assert_eq!(unreadable[0], 0.0, "within the limit every file is read");
    assert!(unreadable[1] > 0.0, "out of descriptors is counted");
    assert!(unreadable[2] > 0.0);
    assert_eq!(
        unreadable[3], 0.0,
        "descriptors back, every file read again"
    );
}

/// `GET /` answered within this while scrapes read the directory.
const REQUEST_BUDGET: Duration = Duration::from_millis(50);

async fn requests_wait_for_no_scrape_of_two_thousand_exited_workers() {
    let dir = TempDir::new("fleet-latency");
    exited_workers(dir.path(), 2000, 100);
    let registry = reading_registry(dir.path());
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = common::serve(app).await;

    // Two scrapers at once, as an HA pair of Prometheus servers scrapes.
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicUsize::new(0));
    let scrapers: Vec<_> = (0..2)
        .map(|_| {
            let (stop, scrapes) = (Arc::clone(&stop), Arc::clone(&scrapes));
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let metrics = common::scrape(addr).await;
                    slowest = slowest.max(started.elapsed());
                    assert_eq!(metrics.sum("fleet_jobs_total", &[]), 200_000.0);
                    scrapes.fetch_add(1, Ordering::Relaxed);
                }
                slowest
            })
        })
        .collect();
    let latencies = measure_requests_while_scraped(addr, &scrapes).await;
    stop.store(true, Ordering::Relaxed);
    let mut slowest_scrape = Duration::ZERO;
    for scraper in scrapers {
        slowest_scrape = slowest_scrape.max(scraper.await.unwrap());
    }
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{} requests during {} scrapes (slowest scrape {slowest_scrape:?}): slowest request {slowest:?}",
        latencies.len(),
        scrapes.load(Ordering::Relaxed),
    );
    assert!(
        slowest < REQUEST_BUDGET,
        "a request waited {slowest:?} behind scrapes: {latencies:?}"
    );
}

/// Sends `GET /` one after another from the first scrape begun until scrapes have
/// run four times more, and returns how long each took.
async fn measure_requests_while_scraped(addr: SocketAddr, scrapes: &AtomicUsize) -> Vec<Duration> {
    let until = scrapes.load(Ordering::Relaxed) + 4;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut latencies = Vec::new();
    while scrapes.load(Ordering::Relaxed) < until && Instant::now() < deadline {
        let started = Instant::now();
        let reply = common::get(addr, "/").await;
        latencies.push(started.elapsed());
        assert_eq!(reply.status, http::StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        scrapes.load(Ordering::Relaxed) >= until,
        "scrapes did not run"
    );
    latencies
}

test_main! {
    tokio_2 a_scrape_holds_no_descriptor_of_another_process_s_file,
    sync more_exited_workers_than_descriptors_never_serve_less_or_go_blank,
    tokio_2 the_file_count_and_a_removed_directory_are_shown_as_metrics,
    sync new_files_take_no_more_disk_than_python_s_for_the_same_series,
    tokio_2 requests_wait_for_no_scrape_of_two_thousand_exited_workers,
    sync_ignored fleet_worker,
}
