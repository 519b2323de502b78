//! A service ported from Python's module-level registries, tested as its team tests it:
//! each module keeps a `static` registry, the application includes them, handlers
//! record through the module's static, and every test builds the application anew.
//! The module metrics are shared by every application of the process (as a Python
//! module-level counter is one object), so the tests assert deltas of series no other
//! test touches; the layer's own families belong to each application.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;

use axum::routing::{get, post};
use axum::Router;
use common::{scrape, Exposition, TempDir};
use http::Method;
use tokio::net::TcpListener;
use tower_prometheus::metrics::{Counter, Gauge};
use tower_prometheus::{MetricsLayer, MetricsRegistry, RegistryError};

/// A module of the service: jobs run on named queues.
mod jobs {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::LazyLock;

    use axum::extract::Path;
    use tower_prometheus::metrics::{Counter, CounterFamily, Gauge};
    use tower_prometheus::MetricsRegistry;

    pub static METRICS: LazyLock<MetricsRegistry> = LazyLock::new(|| {
        let metrics = MetricsRegistry::named(module_path!());
        metrics
            .provider("jobs_run", "Jobs run, by queue.", <CounterFamily>::default)
            .expect("a valid declaration");
        metrics
            .provider("jobs_started", "Jobs started.", Counter::default)
            .expect("a valid declaration");
        metrics
            .collected_provider("jobs_waiting", "Jobs waiting.", Gauge::default)
            .expect("a valid declaration");
        metrics
            .collector("job_queue", |registry| {
                registry
                    .get::<Gauge>("jobs_waiting")?
                    .set(WAITING.load(Ordering::Relaxed));
                Ok(())
            })
            .expect("a valid declaration");
        metrics
    });

    /// The queue's length, which the collector reads on every scrape.
    pub static WAITING: AtomicI64 = AtomicI64::new(0);

    pub async fn run(Path(queue): Path<String>) -> &'static str {
        METRICS
            .get::<Counter>("jobs_started")
            .expect("the application was built")
            .inc();
        METRICS
            .get::<CounterFamily>("jobs_run")
            .expect("the application was built")
            .get_or_create(&vec![("queue".to_string(), queue)])
            .inc();
        "ran"
    }
}

/// Another module: reports rendered per format, with an async collector.
mod reports {
    use std::sync::LazyLock;

    use axum::extract::Path;
    use tower_prometheus::metrics::{CounterFamily, Gauge};
    use tower_prometheus::MetricsRegistry;

    pub static METRICS: LazyLock<MetricsRegistry> = LazyLock::new(|| {
        let metrics = MetricsRegistry::named(module_path!());
        metrics
            .provider(
                "reports_rendered",
                "Reports rendered, by format.",
                <CounterFamily>::default,
            )
            .expect("a valid declaration");
        metrics
            .collected_provider("report_templates", "Templates loaded.", Gauge::default)
            .expect("a valid declaration");
        metrics
            .async_collector("templates", |registry| async move {
                registry.get::<Gauge>("report_templates")?.set(12);
                Ok(())
            })
            .expect("a valid declaration");
        metrics
    });

    pub async fn render(Path(format): Path<String>) -> &'static str {
        METRICS
            .get::<CounterFamily>("reports_rendered")
            .expect("the application was built")
            .get_or_create(&vec![("format".to_string(), format)])
            .inc();
        "rendered"
    }
}

/// The application, as `main` builds it and as every test builds it again.
fn app() -> Router {
    let registry = MetricsRegistry::new();
    registry
        .include_registry(&jobs::METRICS)
        .expect("jobs included");
    registry
        .include_registry(&reports::METRICS)
        .expect("reports included");
    Router::new()
        .route("/jobs/{queue}", post(jobs::run))
        .route("/reports/{format}", get(reports::render))
        .layer(MetricsLayer::new(&registry).expect("layer built"))
}

/// Serves `app` as `main` does, on a port the system picks.
async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn jobs_run(metrics: &Exposition, queue: &str) -> f64 {
    metrics
        .value("jobs_run_total", &[("queue", queue)])
        .unwrap_or(0.0)
}

/// Runs `n` jobs on `queue` and checks the delta of its series, and the layer's count
/// of this application's requests.
async fn runs_jobs_on(queue: &str, n: usize) {
    let addr = serve(app()).await;
    let before = scrape(addr).await;
    for _ in 0..n {
        let reply = common::send(addr, Method::POST, &format!("/jobs/{queue}")).await;
        assert_eq!(reply.body, "ran");
    }
    let after = scrape(addr).await;
    assert_eq!(jobs_run(&after, queue) - jobs_run(&before, queue), n as f64);
    assert!(after.value("jobs_started_total", &[]).unwrap() >= n as f64);
    // The layer's families are this application's own: they count its requests only.
    assert_eq!(
        after.value(
            "http_server_requests_total",
            &[
                ("http_request_method", "POST"),
                ("http_route", "/jobs/{queue}"),
                ("http_response_status_code", "200"),
            ],
        ),
        Some(n as f64)
    );
}

#[tokio::test]
async fn a_handler_records_through_its_module_registry() {
    runs_jobs_on("emails", 3).await;
}

#[tokio::test]
async fn a_second_app_records_through_the_same_module_registry() {
    runs_jobs_on("invoices", 2).await;
}

#[tokio::test]
async fn many_apps_built_at_once_all_record() {
    let tasks: Vec<_> = (0..8)
        .map(|i| tokio::spawn(async move { runs_jobs_on(&format!("parallel-{i}"), i + 1).await }))
        .collect();
    for task in tasks {
        task.await.expect("a test app recorded");
    }
}

#[tokio::test]
async fn a_value_recorded_through_one_app_shows_in_another() {
    let first = serve(app()).await;
    let second = serve(app()).await;
    let before = scrape(second).await;
    common::send(first, Method::POST, "/jobs/shared").await;
    common::send(first, Method::POST, "/jobs/shared").await;
    let after = scrape(second).await;
    assert_eq!(
        jobs_run(&after, "shared") - jobs_run(&before, "shared"),
        2.0
    );
}

#[tokio::test]
async fn a_second_module_records_too() {
    let addr = serve(app()).await;
    let series = |metrics: &Exposition| {
        metrics
            .value("reports_rendered_total", &[("format", "pdf")])
            .unwrap_or(0.0)
    };
    let before = scrape(addr).await;
    for _ in 0..4 {
        assert_eq!(common::get(addr, "/reports/pdf").await.body, "rendered");
    }
    assert_eq!(series(&scrape(addr).await) - series(&before), 4.0);
}

#[tokio::test]
async fn the_modules_collectors_run_on_every_apps_scrape() {
    let first = serve(app()).await;
    let second = serve(app()).await;
    // No other test changes the queue length.
    jobs::WAITING.store(5, Ordering::Relaxed);
    for addr in [first, second] {
        let metrics = scrape(addr).await;
        assert_eq!(metrics.value("report_templates", &[]), Some(12.0));
        assert_eq!(metrics.value("jobs_waiting", &[]), Some(5.0));
        assert_eq!(
            metrics.value(
                "tower_prometheus_collector_errors_total",
                &[("collector", "job_queue"), ("reason", "error")]
            ),
            None
        );
    }
}

#[tokio::test]
async fn the_app_registry_gets_the_modules_metrics_too() {
    let registry = MetricsRegistry::new();
    registry.include_registry(&jobs::METRICS).unwrap();
    let _layer = MetricsLayer::new(&registry).unwrap();
    let through_app = registry.get::<Counter>("jobs_started").unwrap();
    let through_module = jobs::METRICS.get::<Counter>("jobs_started").unwrap();
    let before = through_module.get();
    through_app.inc();
    assert!(through_module.get() > before);
}

#[tokio::test]
async fn every_test_app_serves_the_module_families_once() {
    let addr = serve(app()).await;
    let reply = common::get(addr, "/metrics").await;
    for family in [
        "# TYPE jobs_started_total counter",
        "# TYPE jobs_waiting gauge",
        "# TYPE report_templates gauge",
    ] {
        assert_eq!(reply.body.matches(family).count(), 1, "{family}");
    }
}

#[test]
fn a_module_registry_cannot_be_included_twice_into_one_app() {
    let registry = MetricsRegistry::new();
    registry.include_registry(&jobs::METRICS).unwrap();
    let error = registry.include_registry(&jobs::METRICS).unwrap_err();
    assert!(
        matches!(error, RegistryError::CannotInclude { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("already included"), "{error}");
}

/// What `cargo nextest` does: every test in a process of its own, where the first app
/// the test builds initialises the module registries. Each test of this file but this
/// one runs again in a new process of this test binary, started with `--exact NAME`.
#[test]
fn every_test_passes_in_a_process_of_its_own() {
    const THIS_TEST: &str = "every_test_passes_in_a_process_of_its_own";
    let binary = std::env::current_exe().expect("the test binary");
    let listed = Command::new(&binary)
        .args(["--list", "--format", "terse"])
        .output()
        .expect("the test binary lists its tests");
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|line| line.strip_suffix(": test"))
        .filter(|name| *name != THIS_TEST)
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    for name in &names {
        let run = Command::new(&binary)
            .args(["--exact", name, "--nocapture"])
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains("1 passed"),
            "{name} in a process of its own: {stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
}

#[test]
fn a_module_registry_included_in_another_mode_says_what_to_do() {
    let module = MetricsRegistry::named("worker::metrics");
    module
        .provider("tasks", "Tasks.", Counter::default)
        .unwrap();
    let single = MetricsRegistry::new();
    single.single_process().unwrap();
    single.include_registry(&module).unwrap();
    let _layer = MetricsLayer::new(&single).unwrap();

    let dir = TempDir::new("module-mode");
    let multi = MetricsRegistry::new();
    multi.multiprocess_dir(dir.path()).unwrap();
    multi.include_registry(&module).unwrap();
    let error = MetricsLayer::new(&multi).unwrap_err().to_string();
    assert!(error.contains("`tasks`"), "{error}");
    assert!(error.contains("same multi-process setting"), "{error}");
}

/// In multi-process mode, the metrics of the module and the layer's families go into
/// this process's files, and a collected gauge stays out of them.
#[tokio::test]
async fn in_multi_process_mode_module_metrics_land_in_the_files() {
    let dir = TempDir::new("module-files");
    let module = MetricsRegistry::named("billing");
    module
        .provider("invoices", "Invoices sent.", Counter::default)
        .unwrap();
    module
        .collected_provider("invoices_pending", "Invoices pending.", Gauge::default)
        .unwrap();
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry.include_registry(&module).unwrap();
    let handler_module = module.clone();
    let app = Router::new()
        .route(
            "/invoice",
            post(move || {
                let module = handler_module.clone();
                async move {
                    module.get::<Counter>("invoices").unwrap().inc();
                    module.get::<Gauge>("invoices_pending").unwrap().set(2);
                    "sent"
                }
            }),
        )
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(app).await;
    for _ in 0..3 {
        assert_eq!(
            common::send(addr, Method::POST, "/invoice").await.body,
            "sent"
        );
    }
    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("invoices_total", &[]), Some(3.0));
    assert_eq!(metrics.value("invoices_pending", &[]), Some(2.0));

    let mut files = String::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(
        files.contains("\"invoices_total\""),
        "module counter in the files"
    );
    assert!(
        files.contains("\"http_server_requests_total\""),
        "layer family in the files"
    );
    assert!(
        !files.contains("invoices_pending"),
        "collected gauge kept out"
    );
}

#[test]
fn names_that_collide_on_the_wire_are_refused_at_include_naming_both_registries() {
    let billing = MetricsRegistry::named("app::billing");
    billing.provider("jobs", "Jobs.", Counter::default).unwrap();
    let reports = MetricsRegistry::named("app::reports");
    reports
        .provider("jobs_total", "Jobs, again.", Counter::default)
        .unwrap();
    let app = MetricsRegistry::new();
    app.include_registry(&billing).unwrap();
    let error = app.include_registry(&reports).unwrap_err();
    assert_eq!(
        error,
        RegistryError::NameCollision {
            name: "jobs".into(),
            registry: "registry `app::billing`".into(),
            other: "jobs_total".into(),
            other_registry: "registry `app::reports`".into(),
            exposed: "jobs_total".into(),
        }
    );
    let message = error.to_string();
    assert!(message.contains("`app::billing`") && message.contains("`app::reports`"));
    assert!(message.contains("rename one"), "{message}");
    // Nothing was included, so the app still builds.
    assert_eq!(app.provider_names(), ["jobs"]);

    let latency = MetricsRegistry::new();
    latency
        .provider("latency_count", "A gauge.", Gauge::default)
        .unwrap();
    let histograms = MetricsRegistry::new();
    histograms
        .provider("latency", "A histogram, maybe.", Gauge::default)
        .unwrap();
    assert!(matches!(
        histograms.include_registry(&latency),
        Err(RegistryError::NameCollision { .. })
    ));
    let with_created = MetricsRegistry::new();
    with_created
        .provider("jobs_created", "A gauge.", Gauge::default)
        .unwrap();
    assert!(matches!(
        app.include_registry(&with_created),
        Err(RegistryError::NameCollision { .. })
    ));
}
