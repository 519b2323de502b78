//! Scrape cost in multi-process mode, beside Python's `MultiProcessCollector` and the
//! in-process encode of the same series, measured in one run.
//!
//! `cargo bench --bench multiprocess_scrape` writes a directory with the real Python
//! package (`TOWER_PROMETHEUS_PYTHON`, or `python3` with PyPI's `prometheus-client`):
//! 16 workers, each with 1,000 label sets of one counter and one 14-bucket histogram.
//! It prints each scrape's time and the ratios.
//!
//! Then a fleet that recycled its workers: 10,000 exited workers of this crate, each
//! with 100 series (files this crate wrote, copied under their pids with released
//! locks), and 8 live ones (processes holding their locks). It folds the directory and
//! prints scrape time, the memory a scrape keeps and disk, once folded, beside a
//! directory holding only the 8 live workers' files, and Python's collector on both.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Buckets, Counter, Family, Histogram};
use tower_prometheus::multiprocess::{Folding, FOLDS};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

/// The system allocator, counting the bytes held: what a scrape keeps is read from it.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counter only
// adds and subtracts the sizes it was asked for.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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

const FLEET_EXITED: usize = 10_000;
const FLEET_LIVE: usize = 8;
const FLEET_SERIES: usize = 100;

/// A process that holds this crate's lock for its pid in `dir` until killed: a live
/// worker, as other processes see it.
const HOLD_LOCK: &str = r#"
import fcntl, os, sys, time
f = open(os.path.join(sys.argv[1], "tower_prometheus_%d.lock" % os.getpid()), "a")
fcntl.lockf(f, fcntl.LOCK_EX)
print(os.getpid(), flush=True)
time.sleep(3600)
"#;

const PYTHON_SCRAPE_TIME: &str = r#"
import os, sys, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
start = time.perf_counter()
generate_latest(registry)
print(time.perf_counter() - start)
"#;

/// The files of one worker of this crate with [`FLEET_SERIES`] series of a counter and
/// a 14-bucket histogram, by kind (`counter`, `histogram`).
fn one_worker_files() -> Vec<(&'static str, Vec<u8>)> {
    type Route = [(&'static str, String); 1];
    let template =
        std::env::temp_dir().join(format!("tower-prometheus-template-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&template);
    std::fs::create_dir_all(&template).expect("template directory");
    let registry = MetricsRegistry::new();
    registry
        .multiprocess_dir(&template)
        .expect("not initialised");
    registry
        .provider(
            "fleet_requests",
            "Requests.",
            Family::<Route, Counter>::default,
        )
        .expect("declared");
    registry
        .provider("fleet_latency_seconds", "Latency.", || {
            Family::<Route, Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new(BOUNDS).expect("valid"))
            })
        })
        .expect("declared");
    let _endpoint = MetricsEndpoint::new(&registry).expect("endpoint");
    let requests: Family<Route, Counter> = registry.get("fleet_requests").expect("family");
    let latency: Family<Route, Histogram> = registry.get("fleet_latency_seconds").expect("family");
    for i in 0..FLEET_SERIES {
        let route = [("route", format!("/route/{i}"))];
        requests.get_or_create(&route).inc();
        latency
            .get_or_create(&route)
            .observe((i % 10) as f64 / 10.0);
    }
    let files = ["counter", "histogram"]
        .into_iter()
        .map(|kind| {
            let path = template.join(format!("{kind}_{}.db", std::process::id()));
            (kind, std::fs::read(path).expect("the worker's file"))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&template);
    files
}

/// Writes `files` as those of process `pid` in `dir`, with its released lock file when
/// it has `exited` (as an exited worker of this crate leaves it).
fn place(dir: &Path, pid: u32, files: &[(&str, Vec<u8>)], exited: bool) {
    for (kind, bytes) in files {
        std::fs::write(dir.join(format!("{kind}_{pid}.db")), bytes).expect("file written");
    }
    if exited {
        std::fs::write(dir.join(format!("tower_prometheus_{pid}.lock")), b"").expect("lock");
    }
}

/// Starts the live workers, each holding its lock in `dir`, with their files.
fn live_workers(python: &Path, dir: &Path, files: &[(&str, Vec<u8>)]) -> Vec<Child> {
    (0..FLEET_LIVE)
        .map(|_| {
            let mut child = Command::new(python)
                .args(["-c", HOLD_LOCK])
                .arg(dir)
                .stdout(Stdio::piped())
                .spawn()
                .expect("python runs");
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
                &mut line,
            )
            .expect("the pid");
            place(dir, line.trim().parse().expect("a pid"), files, false);
            child
        })
        .collect()
}

/// Bytes of disk the metric files of `dir` take, and how many there are.
fn disk(dir: &Path) -> (u64, usize) {
    let files: Vec<u64> = std::fs::read_dir(dir)
        .expect("directory")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".db"))
        .map(|entry| entry.metadata().expect("metadata").blocks() * 512)
        .collect();
    (files.iter().sum(), files.len())
}

/// What scraping `dir` costs a new registry: the first scrape, a warm one, and the
/// bytes the registry keeps after them.
struct ScrapeCost {
    first: Duration,
    warm: Duration,
    kept: usize,
}

fn scrape_cost(runtime: &tokio::runtime::Runtime, dir: &Path) -> ScrapeCost {
    let before = HELD.load(Ordering::Relaxed);
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir).expect("not initialised");
    registry
        .multiprocess_folding(Folding::Off)
        .expect("not initialised");
    registry.without_process_metrics().expect("not initialised");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint");
    let start = Instant::now();
    black_box(render(runtime, &endpoint));
    let first = start.elapsed();
    let warm = mean(5, || {
        black_box(render(runtime, &endpoint));
    });
    let kept = HELD.load(Ordering::Relaxed).saturating_sub(before);
    drop(endpoint);
    ScrapeCost { first, warm, kept }
}

fn python_time(python: &Path, dir: &Path) -> Duration {
    let output = Command::new(python)
        .args(["-c", PYTHON_SCRAPE_TIME])
        .arg(dir)
        .output()
        .expect("python runs");
    let seconds: f64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    Duration::from_secs_f64(seconds.max(0.0))
}

/// Folds `dir` through a registry that folds, and returns how long it took.
fn fold(runtime: &tokio::runtime::Runtime, dir: &Path) -> Duration {
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir).expect("not initialised");
    registry.without_process_metrics().expect("not initialised");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint");
    let start = Instant::now();
    loop {
        let body = runtime
            .block_on(endpoint.render(Format::PrometheusText))
            .expect("scrape encodes");
        let text = String::from_utf8(body).expect("text");
        let ended = text.lines().any(|line| {
            line.starts_with(FOLDS) && !line.ends_with(" 0") && line.contains("outcome")
        });
        if ended {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(600), "the fold ended");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn fleet(python: &Path) {
    let base = std::env::temp_dir().join(format!("tower-prometheus-fleet-{}", std::process::id()));
    let (live_dir, fleet_dir) = (base.join("live"), base.join("fleet"));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&live_dir).expect("directory");
    std::fs::create_dir_all(&fleet_dir).expect("directory");
    let files = one_worker_files();
    let mut live = live_workers(python, &live_dir, &files);
    live.extend(live_workers(python, &fleet_dir, &files));
    for worker in 0..FLEET_EXITED {
        // Pids above the kernel's largest, so none is live.
        place(&fleet_dir, 5_000_000 + worker as u32, &files, true);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    let only_live = scrape_cost(&runtime, &live_dir);
    let unfolded = scrape_cost(&runtime, &fleet_dir);
    let unfolded_disk = disk(&fleet_dir);
    let fold_time = fold(&runtime, &fleet_dir);
    let folded = scrape_cost(&runtime, &fleet_dir);
    let (folded_disk, live_disk) = (disk(&fleet_dir), disk(&live_dir));
    let (python_live, python_folded) = (
        python_time(python, &live_dir),
        python_time(python, &fleet_dir),
    );
    for mut worker in live {
        let _ = worker.kill();
        let _ = worker.wait();
    }
    let _ = std::fs::remove_dir_all(&base);

    println!(
        "fleet: {FLEET_EXITED} exited workers x {FLEET_SERIES} series and {FLEET_LIVE} live ones"
    );
    for (what, cost, (bytes, count)) in [
        ("only the live workers", &only_live, live_disk),
        ("the fleet, unfolded", &unfolded, unfolded_disk),
        ("the fleet, folded", &folded, folded_disk),
    ] {
        println!(
            "  {what}: first scrape {:.1} ms, warm {:.2} ms, {:.2} MB kept by the scraper; {count} files, {:.2} MB on disk",
            ms(cost.first),
            ms(cost.warm),
            cost.kept as f64 / 1e6,
            bytes as f64 / 1e6
        );
    }
    println!("  the fold took {:.0} ms", ms(fold_time));
    println!(
        "  folded / only live: warm scrape {:.2}x, first scrape {:.2}x, memory kept {:.2}x, disk {:.2}x",
        folded.warm.as_secs_f64() / only_live.warm.as_secs_f64(),
        folded.first.as_secs_f64() / only_live.first.as_secs_f64(),
        folded.kept as f64 / only_live.kept.max(1) as f64,
        folded_disk.0 as f64 / live_disk.0.max(1) as f64,
    );
    println!(
        "  python's collector: {:.1} ms on only the live workers, {:.1} ms on the folded fleet",
        ms(python_live),
        ms(python_folded)
    );
}

criterion_group!(scrape_benches, benches);

fn main() {
    scrape_benches();
    match python() {
        Some(python) => fleet(&python),
        None => println!("SKIPPED: the fleet needs Python for its live workers"),
    }
    Criterion::default().configure_from_args().final_summary();
}
