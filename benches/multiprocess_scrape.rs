//! Scrape cost in multi-process mode, beside Python's `MultiProcessCollector` and the
//! in-process encode of the same series, measured in one run.
//!
//! `cargo bench --bench multiprocess_scrape` writes a directory with the real Python
//! package (`TOWER_PROMETHEUS_PYTHON`, or `python3` with PyPI's `prometheus-client`):
//! 16 workers, each with 1,000 label sets of one counter and one 14-bucket histogram.
//! It prints each scrape's time and the ratios.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Buckets, Counter, Family, Histogram};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

const WORKERS: usize = 16;
const LABEL_SETS: usize = 1000;
const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

const WRITE_AND_TIME: &str = r#"
import os, sys, time
dir_, workers, label_sets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.environ["PROMETHEUS_MULTIPROC_DIR"] = dir_
children = []
for w in range(workers):
    pid = os.fork()
    if pid == 0:
        from prometheus_client import Counter, Histogram
        c = Counter("bench_requests", "Requests.", ["route"])
        h = Histogram("bench_latency_seconds", "Latency.", ["route"],
                      buckets=[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0])
        for i in range(label_sets):
            route = "/route/%d" % i
            c.labels(route).inc(w + 1)
            h.labels(route).observe((i % 100) / 50.0)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
rounds = 5
start = time.perf_counter()
for _ in range(rounds):
    body = generate_latest(registry)
print((time.perf_counter() - start) / rounds)
"#;

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("TOWER_PROMETHEUS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    Command::new(&candidate)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success())
        .then_some(candidate)
}

/// Writes the directory with Python and returns Python's mean scrape time.
fn python_scrape(python: &Path, dir: &Path) -> Duration {
    let output = Command::new(python)
        .args(["-c", WRITE_AND_TIME])
        .arg(dir)
        .arg(WORKERS.to_string())
        .arg(LABEL_SETS.to_string())
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("python prints its time");
    Duration::from_secs_f64(seconds)
}

fn render(runtime: &tokio::runtime::Runtime, endpoint: &MetricsEndpoint) -> usize {
    runtime
        .block_on(endpoint.render(Format::PrometheusText))
        .expect("scrape encodes")
        .len()
}

/// The same series as the aggregate, held in one process.
fn in_process_endpoint() -> MetricsEndpoint {
    type Route = [(&'static str, String); 1];
    let registry = MetricsRegistry::new();
    registry.single_process().expect("not initialised");
    registry
        .provider(
            "bench_requests",
            "Requests.",
            Family::<Route, Counter>::default,
        )
        .expect("declared");
    registry
        .provider("bench_latency_seconds", "Latency.", || {
            Family::<Route, Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new(BOUNDS).expect("valid"))
            })
        })
        .expect("declared");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint");
    let requests: Family<Route, Counter> = registry.get("bench_requests").expect("family");
    let latency: Family<Route, Histogram> = registry.get("bench_latency_seconds").expect("family");
    for i in 0..LABEL_SETS {
        let route = [("route", format!("/route/{i}"))];
        requests
            .get_or_create(&route)
            .inc_by((WORKERS * (WORKERS + 1) / 2) as u64);
        for _ in 0..WORKERS {
            latency
                .get_or_create(&route)
                .observe((i % 100) as f64 / 50.0);
        }
    }
    endpoint
}

fn mean(rounds: u32, mut run: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        run();
    }
    start.elapsed() / rounds
}

fn benches(c: &mut Criterion) {
    let Some(python) = python() else {
        println!("SKIPPED: no Python with PyPI's prometheus-client; set TOWER_PROMETHEUS_PYTHON");
        return;
    };
    let dir = std::env::temp_dir().join(format!("tower-prometheus-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory");
    let python_time = python_scrape(&python, &dir);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(&dir).expect("not initialised");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint");
    let cold_start = Instant::now();
    let bytes = render(&runtime, &endpoint);
    let cold = cold_start.elapsed();
    let warm = mean(20, || {
        black_box(render(&runtime, &endpoint));
    });
    let local = in_process_endpoint();
    let in_process = mean(20, || {
        black_box(render(&runtime, &local));
    });

    let mut group = c.benchmark_group("scrape");
    group.sample_size(20);
    group.bench_function("multiprocess_16_workers", |b| {
        b.iter(|| render(&runtime, &endpoint))
    });
    group.bench_function("in_process_same_series", |b| {
        b.iter(|| render(&runtime, &local))
    });
    group.finish();

    println!(
        "{WORKERS} workers x {LABEL_SETS} label sets ({bytes} bytes): python {:.1} ms, \
         this crate {:.1} ms warm ({:.1} ms first scrape), in-process encode {:.1} ms",
        python_time.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3,
        in_process.as_secs_f64() * 1e3,
    );
    println!(
        "python / this crate: {:.1}x warm, {:.1}x first scrape; this crate / in-process: {:.2}x",
        python_time.as_secs_f64() / warm.as_secs_f64(),
        python_time.as_secs_f64() / cold.as_secs_f64(),
        warm.as_secs_f64() / in_process.as_secs_f64(),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(scrape_benches, benches);

fn main() {
    scrape_benches();
    Criterion::default().configure_from_args().final_summary();
}
