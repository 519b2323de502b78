//! The lowercase `prometheus_multiproc_dir`, honoured as Python's client honours it: a
//! Rust worker and a Python worker share one directory through it. The variables are
//! process-wide, so each Rust worker is a child process of this test binary.

mod common;

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use common::events::Events;
use common::multiprocess::{assert_same_samples, python_aggregate_via};
use common::{scrape, serve, TempDir};
use tower_prometheus::metrics::Counter;
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};

const UPPERCASE: &str = "PROMETHEUS_MULTIPROC_DIR";
const LOWERCASE: &str = "prometheus_multiproc_dir";

/// Kills its child process when dropped, so a failing test leaves no worker behind.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a Rust worker said once it was serving: its port and the crate's warnings.
struct Started {
    port: u16,
    warnings: Vec<String>,
}

/// Starts `env_worker` in a child process with exactly these multi-process variables.
fn spawn_worker(vars: &[(&str, &Path)]) -> (Worker, Started) {
    let mut command = Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([
            "env_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_remove(UPPERCASE)
        .env_remove(LOWERCASE)
        .env("TOWER_PROMETHEUS_ENV_WORKER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (name, dir) in vars {
        command.env(name, dir);
    }
    let mut child = command.spawn().expect("worker starts");
    let stdout = child.stdout.take().expect("stdout");
    let started = read_start(stdout);
    (Worker(child), started)
}

fn read_start(stdout: ChildStdout) -> Started {
    let mut warnings = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("worker output");
        // libtest's own `test env_worker ... ` may start the line.
        if let Some((_, warning)) = line.split_once("warning: ") {
            warnings.push(warning.to_string());
        } else if let Some((_, port)) = line.split_once("serving on port ") {
            let port = port.parse().expect("port");
            return Started { port, warnings };
        }
    }
    panic!("worker exited before it was serving");
}

/// Not a test: the body of a Rust worker. It counts 5 jobs into `rust_jobs`, prints the
/// crate's warnings, and serves its endpoint until its stdin closes.
fn env_worker() {
    if std::env::var_os("TOWER_PROMETHEUS_ENV_WORKER").is_none() {
        return;
    }
    let events = Events::default();
    tracing::subscriber::set_global_default(events.clone()).expect("the only subscriber");
    let registry = MetricsRegistry::new();
    registry
        .provider("rust_jobs", "Jobs.", Counter::default)
        .expect("declared");
    let endpoint = MetricsEndpoint::new(&registry).expect("endpoint builds");
    registry
        .get::<Counter>("rust_jobs")
        .expect("initialised")
        .inc_by(5);
    for warning in events.warnings() {
        println!("warning: {}", warning.written());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let addr = serve(endpoint).await;
        println!("serving on port {}", addr.port());
        std::io::stdout().flush().expect("flush");
        tokio::task::spawn_blocking(|| std::io::stdin().lines().count())
            .await
            .expect("stdin read");
    });
}

async fn python_and_rust_workers_share_a_directory_through_the_lowercase_variable(
) -> common::Checked {
    let python = common::require_python_client("run a Python worker beside a Rust one")?;
    let dir = TempDir::new("lowercase-env");
    let (_rust, started) = spawn_worker(&[(LOWERCASE, dir.path())]);
    assert!(
        started
            .warnings
            .iter()
            .any(|w| w.contains("prometheus_multiproc_dir is deprecated")
                && w.contains("set PROMETHEUS_MULTIPROC_DIR instead")),
        "{:?}",
        started.warnings
    );

    let worker = Command::new(&python)
        .env_remove(UPPERCASE)
        .env(LOWERCASE, dir.path())
        .args([
            "-W",
            "always::DeprecationWarning",
            "-c",
            "from prometheus_client import Counter\n\
             Counter('py_jobs', 'Jobs.', ['kind']).labels('a').inc(7)\n",
        ])
        .output()
        .expect("python runs");
    let stderr = String::from_utf8_lossy(&worker.stderr);
    assert!(worker.status.success(), "{stderr}");
    assert!(
        stderr.contains("prometheus_multiproc_dir variable has been deprecated"),
        "{stderr}"
    );

    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], started.port));
    let ours = scrape(addr).await;
    assert_eq!(ours.value("py_jobs_total", &[("kind", "a")]), Some(7.0));
    assert_eq!(ours.value("rust_jobs_total", &[]), Some(5.0));

    let python_view = python_aggregate_via(&python, LOWERCASE, dir.path());
    assert_eq!(python_view.value("rust_jobs_total", &[]), Some(5.0));
    assert_eq!(
        python_view.value("py_jobs_total", &[("kind", "a")]),
        Some(7.0)
    );
    assert_same_samples(&ours, &python_view, &[]);
    Ok(())
}

/// The files of process `pid` in `dir`.
fn files_of(dir: &Path, pid: u32) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("directory")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(&format!("_{pid}.db")))
        .collect()
}

fn the_uppercase_variable_wins_when_both_are_set() {
    let upper = TempDir::new("env-upper");
    let lower = TempDir::new("env-lower");
    let (worker, started) = spawn_worker(&[(UPPERCASE, upper.path()), (LOWERCASE, lower.path())]);
    let pid = worker.0.id();
    assert!(
        files_of(upper.path(), pid).contains(&format!("counter_{pid}.db")),
        "{:?}",
        files_of(upper.path(), pid)
    );
    assert!(files_of(lower.path(), pid).is_empty());
    assert!(
        started.warnings.iter().any(|w| w.contains(
            "prometheus_multiproc_dir is ignored because PROMETHEUS_MULTIPROC_DIR is set"
        )),
        "{:?}",
        started.warnings
    );
}

fn an_empty_uppercase_variable_leaves_the_lowercase_one_unused() {
    let lower = TempDir::new("env-empty-upper");
    let (worker, started) = spawn_worker(&[(UPPERCASE, Path::new("")), (LOWERCASE, lower.path())]);
    // As in Python's client: the uppercase name is set, so the lowercase one is not read.
    assert!(files_of(lower.path(), worker.0.id()).is_empty());
    assert!(
        started.warnings.iter().any(|w| w.contains("is ignored")),
        "{:?}",
        started.warnings
    );
}

test_main! {
    tokio python_and_rust_workers_share_a_directory_through_the_lowercase_variable,
    sync the_uppercase_variable_wins_when_both_are_set,
    sync an_empty_uppercase_variable_leaves_the_lowercase_one_unused,
    sync_ignored env_worker,
}
