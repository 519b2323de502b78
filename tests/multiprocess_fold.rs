//! Folding exited workers' files into the archive: the totals a scrape serves are the
//! same before and after a fold, in every format, to the last bucket; while folds run
//! (two at once, from other processes) every scrape serves the exact totals; a fold
//! killed at any step leaves a directory whose next scrape and next fold are exact; and
//! Python's collector stays correct beside it.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::multiprocess::{
    assert_same_samples, file_of_entries, python_aggregate, run_python_worker,
};
use common::{Exposition, TempDir};
use tower_prometheus::endpoint::Format;
use tower_prometheus::metrics::{Buckets, Counter, Family, Gauge, Histogram};
use tower_prometheus::multiprocess::{Folding, GaugeMode, FOLDS};
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

type Series = [(&'static str, String); 1];

/// The families every recording worker writes, one per way files combine.
const FAMILIES: &[&str] = &[
    "fold_jobs",
    "fold_seconds",
    "fold_peak",
    "fold_low",
    "fold_busy",
    "fold_latest",
];
/// The `all` gauge, whose series carry each worker's `pid`.
const PER_PROCESS: &str = "fold_each";

/// A registry in multi-process mode (the directory from the environment, or `dir`)
/// with the families of [`FAMILIES`], [`PER_PROCESS`] and a `livesum` gauge.
fn recording_registry(dir: Option<&Path>, folding: Folding) -> MetricsRegistry {
    let registry = MetricsRegistry::new();
    if let Some(dir) = dir {
        registry.multiprocess_dir(dir).unwrap();
    }
    registry.multiprocess_folding(folding).unwrap();
    registry.without_process_metrics().unwrap();
    registry
        .provider("fold_jobs", "Jobs.", Family::<Series, Counter>::default)
        .unwrap();
    registry
        .provider("fold_seconds", "Time.", || {
            Family::<Series, Histogram>::new_with_constructor(|| {
                Histogram::new(Buckets::new([0.1, 1.0]).unwrap())
            })
        })
        .unwrap();
    for (name, mode) in [
        ("fold_peak", GaugeMode::Max),
        ("fold_low", GaugeMode::Min),
        ("fold_busy", GaugeMode::Sum),
        ("fold_latest", GaugeMode::MostRecent),
        (PER_PROCESS, GaugeMode::All),
        ("fold_live", GaugeMode::LiveSum),
    ] {
        registry
            .provider(name, "A gauge.", move || Gauge::with_mode(mode))
            .unwrap();
    }
    registry
}

/// What worker `index` records.
fn record(registry: &MetricsRegistry, index: i64) {
    let jobs: Family<Series, Counter> = registry.get("fold_jobs").unwrap();
    let seconds: Family<Series, Histogram> = registry.get("fold_seconds").unwrap();
    for n in 0..5 {
        let labels = [("n", n.to_string())];
        jobs.get_or_create(&labels).inc_by((index + 1) as u64);
        seconds
            .get_or_create(&labels)
            .observe(0.05 * (index % 4) as f64 * (n + 1) as f64);
    }
    for (name, value) in [
        ("fold_peak", index),
        ("fold_low", 100 - index),
        ("fold_busy", 1),
        ("fold_latest", index),
        (PER_PROCESS, index),
        ("fold_live", 1),
    ] {
        registry.get::<Gauge>(name).unwrap().set(value);
    }
}

/// Not a test: the body of the worker processes, by `TOWER_PROMETHEUS_FOLD_WORKER`.
fn fold_worker() {
    let Ok(role) = std::env::var("TOWER_PROMETHEUS_FOLD_WORKER") else {
        return;
    };
    match role.as_str() {
        "record" => {
            let index = std::env::var("TOWER_PROMETHEUS_FOLD_INDEX")
                .unwrap()
                .parse()
                .unwrap();
            let registry = recording_registry(None, Folding::Off);
            let _endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
            record(&registry, index);
        }
        "fold" => fold_once(),
        other => panic!("unknown worker role {other}"),
    }
}

/// Scrapes until the fold the first scrape started has ended, then prints how it ended.
fn fold_once() {
    let folding = match std::env::var("TOWER_PROMETHEUS_FOLDING").as_deref() {
        Ok("always") => Folding::Always,
        _ => Folding::Auto,
    };
    let registry = MetricsRegistry::new();
    registry.multiprocess_folding(folding).unwrap();
    registry.without_process_metrics().unwrap();
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = runtime
            .block_on(endpoint.render(Format::PrometheusText))
            .expect("the scrape renders");
        let metrics = Exposition::parse(&String::from_utf8(body).unwrap());
        if let Some(ended) = metrics
            .matching(&format!("{FOLDS}_total"), &[])
            .into_iter()
            .find(|sample| sample.value > 0.0)
        {
            println!("fold {}", ended.labels["outcome"]);
            return;
        }
        assert!(Instant::now() < deadline, "the fold did not end");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A worker process of `role` in `dir`, with `env` besides.
fn worker(role: &str, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["fold_worker", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads=1"])
        .env("TOWER_PROMETHEUS_FOLD_WORKER", role)
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    command
}

/// Runs `workers` recording workers one after the other, to their end.
fn record_exited_workers(dir: &Path, first: i64, workers: i64) {
    for index in first..first + workers {
        let status = worker(
            "record",
            dir,
            &[("TOWER_PROMETHEUS_FOLD_INDEX", &index.to_string())],
        )
        .status()
        .unwrap();
        assert!(status.success());
    }
}

/// The outcome a fold worker printed, or `None` when it died before it printed one.
fn fold_outcome(mut child: Child) -> (Option<String>, std::process::ExitStatus) {
    let stdout = child.stdout.take().unwrap();
    // Every line is read, so the worker never writes into a closed pipe.
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    let outcome = lines
        .iter()
        .find_map(|line| Some(line[line.find("fold ")? + 5..].to_string()));
    (outcome, child.wait().unwrap())
}

fn run_fold(dir: &Path, env: &[(&str, &str)]) -> (Option<String>, std::process::ExitStatus) {
    fold_outcome(worker("fold", dir, env).spawn().unwrap())
}

/// The metric files and lock files in `dir` of pids other than `except`.
fn files_of_workers(dir: &Path, except: &[u32]) -> Vec<String> {
    let except: Vec<String> = except.iter().map(u32::to_string).collect();
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".db") || name.ends_with(".lock"))
        .filter(|name| !name.contains("archive") && name != "tower_prometheus_fold.lock")
        .filter(|name| !except.iter().any(|pid| name.contains(&format!("_{pid}."))))
        .collect();
    names.sort();
    names
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";
const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The bodies of the fold families in the three formats, and the `all` gauge parsed.
async fn served(addr: SocketAddr) -> Served {
    let query: String = FAMILIES
        .iter()
        .map(|name| format!("name[]={name}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut bodies = Vec::new();
    for accept in ["text/plain", OPENMETRICS, PROTOBUF] {
        let reply = common::send_with_headers(
            addr,
            http::Method::GET,
            &format!("/metrics?{query}"),
            &[("accept", accept)],
        )
        .await;
        assert_eq!(reply.status, http::StatusCode::OK);
        bodies.push(reply.raw);
    }
    let per_process = common::get(addr, &format!("/metrics?name[]={PER_PROCESS}"))
        .await
        .body;
    let mut samples = Exposition::parse(&per_process).samples;
    samples.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    (bodies, samples)
}

/// What [`served`] gives.
type Served = (Vec<Vec<u8>>, Vec<common::Sample>);

/// Asserts that a scrape served the same before and after `what`.
fn assert_same(before: &Served, after: &Served, what: &str) {
    for (format, (before, after)) in before.0.iter().zip(&after.0).enumerate() {
        assert!(
            before == after,
            "format {format} changed in {what}:\n{}\n--- after ---\n{}",
            String::from_utf8_lossy(before),
            String::from_utf8_lossy(after)
        );
    }
    assert_eq!(before.1, after.1, "the `all` gauge changed in {what}");
}

/// A reader of `dir` that never folds, served.
async fn reader(dir: &Path) -> SocketAddr {
    let registry = recording_registry(Some(dir), Folding::Off);
    common::serve(MetricsEndpoint::new(&registry).unwrap()).await
}

async fn a_fold_serves_the_same_totals_in_every_format_and_leaves_no_exited_worker_s_file() {
    let dir = TempDir::new("fold-same");
    record_exited_workers(dir.path(), 0, 12);
    let addr = reader(dir.path()).await;
    let before = served(addr).await;
    assert_eq!(
        common::scrape(addr).await.sum("fold_jobs_total", &[]),
        (1..=12).sum::<i64>() as f64 * 5.0
    );
    // One per worker, and the reader's own.
    assert_eq!(before.1.len(), 13, "one `all` series per process");

    let (outcome, status) = run_fold(dir.path(), &[]);
    assert!(status.success());
    assert_eq!(outcome.as_deref(), Some("folded"));
    let after = served(addr).await;
    assert_same(&before, &after, "the fold");
    // Only the reader's own files are left, besides the archive and the fold worker's,
    // which exited after the fold and is folded by the next one.
    let left = files_of_workers(dir.path(), &[std::process::id()]);
    assert!(left.len() <= 4, "left after the fold: {left:?}");

    // A second fold takes the fold worker's own files; still the same totals.
    let (outcome, status) = run_fold(dir.path(), &[]);
    assert!(status.success());
    assert_eq!(outcome.as_deref(), Some("folded"));
    assert_same(&after, &served(addr).await, "the second fold");
}

async fn a_fold_killed_at_any_step_leaves_exact_totals_and_the_next_fold_finishes_it() {
    for step in ["written", "archived", "removed", "relisted"] {
        let dir = TempDir::new(&format!("fold-killed-{step}"));
        record_exited_workers(dir.path(), 0, 4);
        let addr = reader(dir.path()).await;
        // A first fold, so that the killed one replaces an archive.
        assert_eq!(run_fold(dir.path(), &[]).0.as_deref(), Some("folded"));
        record_exited_workers(dir.path(), 4, 4);
        let before = served(addr).await;

        let (outcome, status) = run_fold(dir.path(), &[("TOWER_PROMETHEUS_FOLD_CRASH_AT", step)]);
        assert!(!status.success() && outcome.is_none(), "{step}: {status:?}");
        assert_same(
            &before,
            &served(addr).await,
            &format!("a fold killed at {step}"),
        );

        let (outcome, status) = run_fold(dir.path(), &[]);
        assert!(status.success(), "{step}");
        assert_eq!(outcome.as_deref(), Some("folded"), "{step}");
        assert_same(
            &before,
            &served(addr).await,
            &format!("the fold after {step}"),
        );
        let left = files_of_workers(dir.path(), &[std::process::id()]);
        assert!(left.len() <= 4, "{step}: left {left:?}");
    }
}

async fn a_worker_that_gets_the_pid_of_one_a_killed_fold_archived_counts_from_afresh(
) -> common::Checked {
    common::require_root("give a new worker the pid of a folded one")?;
    let dir = TempDir::new("fold-killed-reused");
    record_exited_workers(dir.path(), 0, 3);
    let addr = reader(dir.path()).await;
    let pids: Vec<u32> = files_of_workers(dir.path(), &[std::process::id()])
        .iter()
        .filter_map(|name| {
            name.strip_prefix("counter_")?
                .strip_suffix(".db")?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    // Killed once its archive lists the workers' files, which are still there.
    let (_, status) = run_fold(
        dir.path(),
        &[("TOWER_PROMETHEUS_FOLD_CRASH_AT", "archived")],
    );
    assert!(!status.success());
    let before = common::scrape(addr).await.sum("fold_jobs_total", &[]);
    assert_eq!(before, (1 + 2 + 3) as f64 * 5.0);

    // A new worker with the first one's pid: it takes its old files off the list
    // before it writes, so what it counts is served, and nothing twice.
    let mut new_worker = worker(
        "record",
        dir.path(),
        &[("TOWER_PROMETHEUS_FOLD_INDEX", "10")],
    );
    let Some(mut child) = common::spawn_as_pid(&mut new_worker, pids[0]) else {
        panic!("pid {} could not be had within 20 s", pids[0]);
    };
    assert!(child.wait().unwrap().success());
    let metrics = common::scrape(addr).await;
    let after = metrics.sum("fold_jobs_total", &[]);
    assert_eq!(after, before + 11.0 * 5.0);
    // Its `all` gauge is one series under that pid, with its own value, as it would be
    // had it reused the old worker's file.
    let pid = pids[0].to_string();
    let each = metrics.matching(PER_PROCESS, &[("pid", &pid)]);
    assert_eq!(each.len(), 1, "{}", metrics.text);
    assert_eq!(each[0].value, 10.0);
    assert_eq!(run_fold(dir.path(), &[]).0.as_deref(), Some("folded"));
    assert_eq!(
        common::scrape(addr).await.sum("fold_jobs_total", &[]),
        after
    );
    Ok(())
}

/// Leaves the files of `workers` exited workers from pid `first` on, each 10 series of
/// `fold_jobs` at 1, with their released locks.
fn copied_exited_workers(dir: &Path, first: usize, workers: usize) {
    let entries: Vec<(String, f64)> = (0..10)
        .map(|n| {
            (
                format!(r#"["fold_jobs", "fold_jobs_total", {{"n": "{n}"}}, "Jobs."]"#),
                1.0,
            )
        })
        .collect();
    let file = file_of_entries(&entries);
    for pid in first..first + workers {
        std::fs::write(dir.join(format!("counter_{pid}.db")), &file).unwrap();
        std::fs::write(dir.join(format!("tower_prometheus_{pid}.lock")), b"").unwrap();
    }
}

async fn scrapes_racing_two_folds_serve_the_exact_total_every_time() {
    let dir = TempDir::new("fold-race");
    let addr = reader(dir.path()).await;
    let mut workers = 0;
    let mut scrapes = 0;
    let mut folded = 0;
    for round in 0..3 {
        // Pids above the kernel's largest, so none is live.
        copied_exited_workers(dir.path(), 5_000_000 + round * 150, 150);
        workers += 150;
        let expected = (workers * 10) as f64;
        let folds: Vec<Child> = (0..2)
            .map(|_| worker("fold", dir.path(), &[]).spawn().unwrap())
            .collect();
        let folds: Vec<_> = folds
            .into_iter()
            .map(|child| std::thread::spawn(move || fold_outcome(child)))
            .collect();
        while !folds.iter().all(std::thread::JoinHandle::is_finished) {
            let total = common::scrape(addr).await.sum("fold_jobs_total", &[]);
            assert_eq!(total, expected, "round {round}, scrape {scrapes}");
            scrapes += 1;
        }
        for fold in folds {
            let (outcome, status) = fold.join().unwrap();
            assert!(status.success());
            folded += usize::from(outcome.as_deref() == Some("folded"));
        }
        assert_eq!(
            common::scrape(addr).await.sum("fold_jobs_total", &[]),
            expected
        );
    }
    eprintln!("{scrapes} scrapes while folds ran, {folded} folds folded");
    assert!(folded >= 3, "each round folded");
    let left = files_of_workers(dir.path(), &[std::process::id()]);
    assert!(left.len() <= 8, "left: {left:?}");
}

/// Families Python's collector serves otherwise by design: `all` gauges (Python keeps
/// exited workers'), and `live*` ones (Python counts exited workers' until
/// `mark_process_dead` is called).
const PYTHON_DIFFERS: &[&str] = &["fold_each", "py_each", "fold_live", "py_live"];

async fn python_workers_keep_auto_from_folding_and_always_folds_what_python_reads_alike(
) -> common::Checked {
    let python = common::require_python_client("write and read files with Python's client")?;
    let dir = TempDir::new("fold-python");
    record_exited_workers(dir.path(), 0, 3);
    run_python_worker(&python, dir.path(), "3");
    run_python_worker(&python, dir.path(), "4");
    let files = files_of_workers(dir.path(), &[]);

    // Python writes here: the default leaves every file where it is.
    let (outcome, status) = run_fold(dir.path(), &[]);
    assert!(status.success());
    assert_eq!(outcome.as_deref(), Some("python"));
    let fold_worker_files = |dir: &Path| {
        files_of_workers(dir, &[])
            .into_iter()
            .filter(|name| files.contains(name))
            .count()
    };
    assert_eq!(fold_worker_files(dir.path()), files.len());
    let addr = reader(dir.path()).await;
    let ours = common::scrape(addr).await;
    assert_same_samples(
        &ours,
        &python_aggregate(&python, dir.path()),
        PYTHON_DIFFERS,
    );

    // Asked to, it folds Python's exited workers too, and Python's collector reads the
    // archive as any other file: the same totals on both sides.
    let (outcome, status) = run_fold(dir.path(), &[("TOWER_PROMETHEUS_FOLDING", "always")]);
    assert!(status.success());
    assert_eq!(outcome.as_deref(), Some("folded"));
    assert!(fold_worker_files(dir.path()) < files.len());
    let after = common::scrape(addr).await;
    for name in [
        "fold_jobs_total",
        "py_jobs_total",
        "py_latency_seconds_count",
        "fold_peak",
    ] {
        assert_eq!(after.sum(name, &[]), ours.sum(name, &[]), "{name}");
    }
    assert_same_samples(
        &after,
        &python_aggregate(&python, dir.path()),
        PYTHON_DIFFERS,
    );
    Ok(())
}

test_main! {
    sync_ignored fold_worker,
    tokio_2 a_fold_serves_the_same_totals_in_every_format_and_leaves_no_exited_worker_s_file,
    tokio_2 a_fold_killed_at_any_step_leaves_exact_totals_and_the_next_fold_finishes_it,
    tokio_2 scrapes_racing_two_folds_serve_the_exact_total_every_time,
    tokio_2 a_worker_that_gets_the_pid_of_one_a_killed_fold_archived_counts_from_afresh,
    tokio_2 python_workers_keep_auto_from_folding_and_always_folds_what_python_reads_alike,
}
