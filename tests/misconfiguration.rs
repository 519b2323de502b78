//! A setting that changes what is recorded is never silent, even in an application
//! that installed no `tracing` subscriber (as the quick start installs none): the
//! warning is then written to standard error, once. Each case runs this test binary as
//! a child process with nothing installed, and reads what it wrote.

mod common;

use std::process::Command;

use common::TempDir;
use tower_prometheus::{MetricsLayer, MetricsRegistry};

/// Not a test: the body of the child processes, by `TOWER_PROMETHEUS_MISCONFIGURED`.
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn misconfigured_app() {
    let Ok(case) = std::env::var("TOWER_PROMETHEUS_MISCONFIGURED") else {
        return;
    };
    let registry = MetricsRegistry::new();
    if case == "plain_metric" {
        registry
            .provider(
                "plain_jobs",
                "Jobs.",
                prometheus_client::metrics::counter::Counter::<u64>::default,
            )
            .unwrap();
    }
    // Built twice, as a test suite builds an app many times: one warning all the same.
    for _ in 0..2 {
        let _layer = MetricsLayer::new(&registry).expect("the layer builds");
    }
}

/// What a child process with `env` wrote to standard error.
fn stderr_of(case: &str, env: &[(&str, &str)]) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["misconfigured_app", "--exact", "--ignored", "--nocapture"])
        .env("TOWER_PROMETHEUS_MISCONFIGURED", case)
        .env_remove("PROMETHEUS_MULTIPROC_DIR")
        .env_remove("prometheus_multiproc_dir")
        .env_remove("PROMETHEUS_MULTIPROCESS_DIR")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The crate's warnings in `stderr` whose text starts with `start`.
fn warnings<'a>(stderr: &'a str, start: &str) -> Vec<&'a str> {
    let prefix = format!("tower-prometheus: warning: {start}");
    stderr
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

#[test]
fn the_old_name_of_the_directory_variable_is_written_to_stderr_once() {
    let dir = TempDir::new("misconfigured-env");
    let stderr = stderr_of(
        "old_name",
        &[("PROMETHEUS_MULTIPROCESS_DIR", dir.path().to_str().unwrap())],
    );
    let warnings = warnings(&stderr, "");
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("PROMETHEUS_MULTIPROCESS_DIR is set but ignored")
            && warnings[0].contains("set PROMETHEUS_MULTIPROC_DIR"),
        "{stderr}"
    );
    // Nothing was written there: the mode stayed off.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_plain_metric_in_multi_process_mode_is_written_to_stderr_by_name() {
    let dir = TempDir::new("misconfigured-plain");
    let stderr = stderr_of(
        "plain_metric",
        &[("PROMETHEUS_MULTIPROC_DIR", dir.path().to_str().unwrap())],
    );
    let warnings = warnings(&stderr, "plain_jobs: ");
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("serves only its own values"),
        "{stderr}"
    );
}

#[test]
fn a_well_configured_app_writes_nothing_to_stderr() {
    let dir = TempDir::new("configured");
    let stderr = stderr_of(
        "well",
        &[("PROMETHEUS_MULTIPROC_DIR", dir.path().to_str().unwrap())],
    );
    assert!(!stderr.contains("tower-prometheus"), "{stderr}");
}
