//! The registry's seed cases, checked through a real endpoint on 127.0.0.1.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use common::{scrape, serve};
use http::{header, StatusCode};
use prometheus_client::registry::Unit;
use tower_prometheus::layer::REQUESTS_TOTAL;
use tower_prometheus::metrics::{Counter, Gauge};
use tower_prometheus::{BuildError, MetricsEndpoint, MetricsLayer, MetricsRegistry, RegistryError};

#[test]
fn providers_and_collectors_are_stored_under_their_names_and_kept_apart() {
    let registry = MetricsRegistry::new();
    registry
        .provider("orders", "Orders.", Counter::default)
        .unwrap();
    registry.collector("queue", |_| Ok(())).unwrap();
    registry
        .async_collector("pool", |_| async { Ok(()) })
        .unwrap();
    registry
        .provider("depth", "Depth.", Gauge::default)
        .unwrap();
    assert_eq!(registry.provider_names(), ["orders", "depth"]);
    assert_eq!(registry.collector_names(), ["queue", "pool"]);
}

#[tokio::test]
async fn declaring_a_name_again_replaces_the_earlier_entry() {
    let registry = MetricsRegistry::new();
    registry
        .provider("answer", "First.", || {
            let gauge = Gauge::default();
            gauge.set(1);
            gauge
        })
        .unwrap();
    registry
        .provider("answer", "Second.", || {
            let gauge = Gauge::default();
            gauge.set(2);
            gauge
        })
        .unwrap();
    // A provider replaced by a collector leaves no metric behind.
    registry
        .provider("gone", "Replaced.", Counter::default)
        .unwrap();
    registry.collector("gone", |_| Ok(())).unwrap();
    assert_eq!(registry.provider_names(), ["answer"]);

    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("answer", &[]), Some(2.0));
    assert!(metrics.text.contains("# HELP answer Second."));
    assert!(!metrics.text.contains("First."));
    assert!(!metrics.text.contains("gone"));
}

// Counts by route, which axum's `MatchedPath` names.
#[cfg(feature = "axum")]
#[tokio::test]
async fn get_returns_the_handle_the_layer_records_into() {
    use tower_prometheus::layer::{HttpLabels, HttpMethod, RequestCount};

    let registry = MetricsRegistry::new();
    assert!(matches!(
        registry.get::<Counter>("never_declared"),
        Err(RegistryError::Unknown { .. })
    ));
    registry
        .provider("visits", "Visits.", Counter::default)
        .unwrap();
    let before = registry.get::<Counter>("visits").unwrap_err();
    assert!(matches!(before, RegistryError::NotInitialized { .. }));
    assert!(before.to_string().contains("not initialized"), "{before}");
    let unknown = registry.get::<Counter>("never_declared").unwrap_err();
    assert!(unknown.to_string().contains("unknown"), "{unknown}");

    let router = Router::new()
        .route("/", get(|| async { "hi" }))
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(router).await;
    common::get(addr, "/").await;
    common::get(addr, "/").await;

    let requests: RequestCount = registry.get(REQUESTS_TOTAL).unwrap();
    let series = requests
        .get(&HttpLabels::new(HttpMethod::Get, 200, "/"))
        .expect("series recorded by the layer");
    assert_eq!(series.get(), 2);
    // Recording through the handle shows in the scrape: it is the same metric.
    series.inc();
    registry.get::<Counter>("visits").unwrap().inc_by(5);
    let metrics = scrape(addr).await;
    assert_eq!(
        metrics.value(
            "http_server_requests_total",
            &[
                ("http_request_method", "GET"),
                ("http_response_status_code", "200"),
                ("http_route", "/")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(metrics.value("visits_total", &[]), Some(5.0));

    let wrong = registry.get::<Gauge>("visits").unwrap_err();
    assert!(matches!(wrong, RegistryError::WrongType { .. }), "{wrong}");
    assert!(matches!(
        registry.get::<Counter>("never_declared"),
        Err(RegistryError::Unknown { .. })
    ));
}

#[tokio::test]
async fn included_registries_merge_in_order_and_their_handles_work_after_init() {
    let app = MetricsRegistry::new();
    app.provider("app_first", "First.", Gauge::default).unwrap();
    let module = MetricsRegistry::new();
    module
        .provider("module_second", "Second.", Gauge::default)
        .unwrap();
    module
        .provider("module_third", "Third.", Gauge::default)
        .unwrap();
    app.include_registry(&module).unwrap();
    app.provider("app_fourth", "Fourth.", Gauge::default)
        .unwrap();
    assert_eq!(
        app.provider_names(),
        ["app_first", "module_second", "module_third", "app_fourth"]
    );

    let addr = serve(MetricsEndpoint::new(&app).unwrap()).await;
    // The module keeps using its own handle.
    module.get::<Gauge>("module_third").unwrap().set(3);
    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("module_third", &[]), Some(3.0));
    let order: Vec<usize> = ["app_first", "module_second", "module_third", "app_fourth"]
        .iter()
        .map(|name| {
            metrics
                .text
                .find(&format!("# TYPE {name} gauge"))
                .expect("declared")
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", metrics.text);
}

#[test]
fn including_a_duplicate_name_is_an_error_that_names_it() {
    let app = MetricsRegistry::new();
    app.provider("shared_name", "App.", Gauge::default).unwrap();
    let module = MetricsRegistry::new();
    module
        .provider("shared_name", "Module.", Counter::default)
        .unwrap();
    module
        .provider("other", "Other.", Counter::default)
        .unwrap();
    let error = app.include_registry(&module).unwrap_err();
    assert_eq!(
        error,
        RegistryError::Duplicate {
            name: "shared_name".into()
        }
    );
    assert!(error.to_string().contains("shared_name"));
    // Nothing was moved.
    assert_eq!(app.provider_names(), ["shared_name"]);
    assert_eq!(module.provider_names(), ["shared_name", "other"]);
    assert!(app.include_registry(&app).is_err());
}

#[tokio::test]
async fn endpoint_answers_at_the_default_and_a_custom_path_with_a_text_content_type() {
    for (path, builder) in [
        ("/metrics", None),
        ("/custom/scrape", Some("/custom/scrape")),
    ] {
        let registry = MetricsRegistry::new();
        let layer = match builder {
            Some(path) => MetricsLayer::builder(&registry).endpoint_path(path).build(),
            None => MetricsLayer::new(&registry),
        }
        .unwrap();
        let router = Router::new()
            .route("/app", get(|| async { "inner service" }))
            .layer(layer);
        let addr = serve(router).await;
        let reply = common::get(addr, path).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(common::get(addr, "/app").await.body, "inner service");
    }
    let invalid = MetricsLayer::builder(&MetricsRegistry::new())
        .endpoint_path("metrics")
        .build()
        .unwrap_err();
    assert_eq!(invalid, BuildError::InvalidPath("metrics".into()));
}

#[tokio::test]
async fn providers_run_once_at_init_and_collectors_once_per_scrape_sync_first() {
    let registry = MetricsRegistry::new();
    let provided = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(Mutex::new(Vec::new()));
    {
        let provided = Arc::clone(&provided);
        registry
            .provider("depth", "Depth.", move || {
                provided.fetch_add(1, Ordering::SeqCst);
                Gauge::default()
            })
            .unwrap();
    }
    {
        let runs = Arc::clone(&runs);
        registry
            .async_collector("async_one", move |_| {
                let runs = Arc::clone(&runs);
                async move {
                    runs.lock().unwrap().push("async");
                    Ok(())
                }
            })
            .unwrap();
    }
    {
        let runs = Arc::clone(&runs);
        registry
            .collector("sync_one", move |registry| {
                runs.lock().unwrap().push("sync");
                registry.get::<Gauge>("depth")?.inc();
                Ok(())
            })
            .unwrap();
    }
    assert_eq!(provided.load(Ordering::SeqCst), 0, "declaring runs nothing");

    let layer = MetricsLayer::new(&registry).unwrap();
    assert_eq!(provided.load(Ordering::SeqCst), 1);
    let _second_layer = MetricsLayer::new(&registry).unwrap();
    let _endpoint = MetricsEndpoint::new(&registry).unwrap();
    assert_eq!(provided.load(Ordering::SeqCst), 1, "providers run once");

    let addr = serve(Router::new().layer(layer)).await;
    for scrape_number in 1..=3 {
        let metrics = scrape(addr).await;
        assert_eq!(metrics.value("depth", &[]), Some(f64::from(scrape_number)));
    }
    assert_eq!(
        *runs.lock().unwrap(),
        ["sync", "async", "sync", "async", "sync", "async"]
    );
    assert_eq!(provided.load(Ordering::SeqCst), 1);
    assert!(matches!(
        registry.provider("late", "Too late.", Counter::default),
        Err(RegistryError::AlreadyInitialized { .. })
    ));
}

#[tokio::test]
async fn a_failing_collector_does_not_fail_the_scrape() {
    let registry = MetricsRegistry::new();
    registry
        .provider("healthy", "Still served.", Gauge::default)
        .unwrap();
    registry
        .collector("explodes", |_| panic!("collector bug"))
        .unwrap();
    registry
        .async_collector("explodes_later", |_| async {
            panic!("async collector bug")
        })
        .unwrap();
    registry
        .collector("errs", |_| Err("backend down".into()))
        .unwrap();
    registry
        .collector("fine", |registry| {
            registry.get::<Gauge>("healthy")?.set(42);
            Ok(())
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    scrape(addr).await;
    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("healthy", &[]), Some(42.0));
    let errors = "tower_prometheus_collector_errors_total";
    assert_eq!(
        metrics.value(errors, &[("collector", "explodes"), ("reason", "panic")]),
        Some(2.0)
    );
    assert_eq!(
        metrics.value(
            errors,
            &[("collector", "explodes_later"), ("reason", "panic")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metrics.value(errors, &[("collector", "errs"), ("reason", "error")]),
        Some(2.0)
    );
    assert!(metrics
        .matching(errors, &[("collector", "fine")])
        .is_empty());
}

#[tokio::test]
async fn counter_names_with_total_and_units_never_panic_or_double_suffixes() {
    let registry = MetricsRegistry::new();
    registry
        .provider("jobs_total", "Jobs.", Counter::default)
        .unwrap();
    registry
        .provider("retries_total_total", "Retries.", Counter::default)
        .unwrap();
    registry
        .provider_with_unit("payload_bytes", "Payload.", Unit::Bytes, Gauge::default)
        .unwrap();
    registry
        .provider_with_unit("sent", "Sent.", Unit::Bytes, Counter::default)
        .unwrap();
    registry.get::<Counter>("jobs_total").unwrap_err();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    registry.get::<Counter>("jobs_total").unwrap().inc();
    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("jobs_total", &[]), Some(1.0));
    assert_eq!(metrics.value("retries_total", &[]), Some(0.0));
    assert_eq!(metrics.value("payload_bytes", &[]), Some(0.0));
    assert_eq!(metrics.value("sent_bytes_total", &[]), Some(0.0));
    assert!(!metrics.text.contains("_total_total"));
}

#[test]
fn invalid_names_and_clashing_exposition_names_are_errors() {
    let registry = MetricsRegistry::new();
    assert!(matches!(
        registry.provider("bad name", "Spaces.", Counter::default),
        Err(RegistryError::InvalidName { .. })
    ));
    assert!(matches!(
        registry.provider("", "Empty.", Counter::default),
        Err(RegistryError::InvalidName { .. })
    ));
    registry
        .provider("clash", "A counter.", Counter::default)
        .unwrap();
    registry
        .provider("clash_total", "Another.", Counter::default)
        .unwrap();
    let error = MetricsEndpoint::new(&registry).unwrap_err();
    assert_eq!(
        error,
        BuildError::Registry(RegistryError::Duplicate {
            name: "clash_total".into()
        })
    );
    // The failure sticks: the registry does not come up half built.
    assert!(matches!(
        registry.get::<Counter>("clash"),
        Err(RegistryError::InitFailed(_))
    ));
}

#[test]
fn a_panicking_provider_is_an_error_not_a_panic() {
    let registry = MetricsRegistry::new();
    registry
        .provider("broken", "Broken.", || -> Counter {
            panic!("provider bug")
        })
        .unwrap();
    let error = MetricsLayer::new(&registry).unwrap_err();
    assert_eq!(
        error,
        BuildError::Registry(RegistryError::ProviderPanicked {
            name: "broken".into(),
            message: "provider bug".into(),
        })
    );
    assert!(error.to_string().contains("provider bug"), "{error}");
}

#[test]
fn replacing_a_default_family_with_another_type_is_a_clear_error() {
    use tower_prometheus::layer::{Objective, SLO_OBJECTIVE};

    // The objective family is read only by a layer with objectives.
    let cases = [
        (REQUESTS_TOTAL, None),
        (SLO_OBJECTIVE, Some(Objective::availability(0.99))),
    ];
    for (replaced, objective) in cases {
        let registry = MetricsRegistry::new();
        registry
            .provider(replaced, "Not a family.", Counter::default)
            .unwrap();
        let mut builder = MetricsLayer::builder(&registry);
        if let Some(objective) = objective {
            builder = builder.objective("/", objective);
        }
        let error = builder.build().unwrap_err();
        // The registry's own error, not reworded as an error of another kind.
        assert!(
            matches!(
                &error,
                BuildError::Registry(RegistryError::WrongType { name, .. }) if name == replaced
            ),
            "{error}"
        );
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn process_metrics_are_served_unless_turned_off() {
    let registry = MetricsRegistry::new();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let metrics = scrape(addr).await;
    let value = |name: &str| {
        metrics
            .value(name, &[])
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started}"
    );

    let quiet = MetricsRegistry::new();
    quiet.without_process_metrics().unwrap();
    let addr = serve(MetricsEndpoint::new(&quiet).unwrap()).await;
    let metrics = scrape(addr).await;
    assert!(
        !metrics.text.contains("# TYPE process_"),
        "{}",
        metrics.text
    );
    assert!(
        quiet.without_process_metrics().is_err(),
        "too late once initialized"
    );
}

#[tokio::test]
async fn build_info_names_the_crate_and_the_service() {
    let registry = MetricsRegistry::new();
    registry.service_build("2.4.1", "9f3c2e1").unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let metrics = scrape(addr).await;
    assert_eq!(
        metrics.value(
            tower_prometheus::BUILD_INFO,
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("service_version", "2.4.1"),
                ("service_commit", "9f3c2e1")
            ]
        ),
        Some(1.0)
    );

    let plain = MetricsRegistry::new();
    let addr = serve(MetricsEndpoint::new(&plain).unwrap()).await;
    let metrics = scrape(addr).await;
    assert_eq!(
        metrics.value(
            tower_prometheus::BUILD_INFO,
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
}

/// The request counter of one axum route, as a scrape shows it.
#[cfg(feature = "axum")]
fn route_requests(metrics: &common::Exposition, route: &str) -> Option<f64> {
    metrics.value(
        REQUESTS_TOTAL,
        &[
            ("http_request_method", "GET"),
            ("http_response_status_code", "200"),
            ("http_route", route),
        ],
    )
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn a_layer_built_after_the_endpoint_records_into_what_the_endpoint_serves() {
    use tower_prometheus::layer::Objective;

    let registry = MetricsRegistry::new();
    let internal = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let router = Router::new().route("/", get(|| async { "hi" })).layer(
        MetricsLayer::builder(&registry)
            .without_endpoint()
            .objective("/", Objective::availability(0.999))
            .build()
            .unwrap(),
    );
    let app = serve(router).await;
    for _ in 0..3 {
        assert_eq!(common::get(app, "/").await.status, StatusCode::OK);
    }
    let metrics = scrape(internal).await;
    assert_eq!(route_requests(&metrics, "/"), Some(3.0));
    assert!(metrics.declares("http_server_request_duration_seconds", "histogram"));
    assert_eq!(
        metrics.value(
            "http_server_slo_objective",
            &[("http_route", "/"), ("slo", "availability")]
        ),
        Some(0.999)
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn two_layers_export_both_objectives_and_a_cap_that_cannot_apply_is_an_error() {
    use std::time::Duration;
    use tower_prometheus::layer::Objective;

    let registry = MetricsRegistry::new();
    let public = MetricsLayer::builder(&registry)
        .max_series(50)
        .objective(
            "/a",
            Objective::availability(0.99).with_latency(Duration::from_secs(10), 0.9),
        )
        .build()
        .unwrap();
    // A second layer on the same families: another cap cannot take effect.
    let error = MetricsLayer::builder(&registry)
        .max_series(10)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            error,
            BuildError::Setting {
                setting: "max_series",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("50"), "{error}");
    // Another objective for a route an earlier layer declared is an error too.
    let error = MetricsLayer::builder(&registry)
        .objective("/a", Objective::availability(0.5))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::InvalidObjective(_)), "{error}");
    assert!(error.to_string().contains("/a"), "{error}");
    // The same cap, or none, and objectives of other routes take effect.
    let internal = MetricsLayer::builder(&registry)
        .max_series(50)
        .objective("/b", Objective::latency(Duration::from_secs(10), 0.95))
        .build()
        .unwrap();
    let a = serve(
        Router::new()
            .route("/a", get(|| async { "a" }))
            .layer(public),
    )
    .await;
    let b = serve(
        Router::new()
            .route("/b", get(|| async { "b" }))
            .layer(internal),
    )
    .await;
    common::get(a, "/a").await;
    common::get(b, "/b").await;
    common::get(b, "/b").await;

    let metrics = scrape(a).await;
    let objective = "http_server_slo_objective";
    assert_eq!(
        metrics.value(objective, &[("http_route", "/a"), ("slo", "availability")]),
        Some(0.99)
    );
    assert_eq!(
        metrics.value(
            objective,
            &[
                ("http_route", "/b"),
                ("slo", "latency"),
                ("threshold_seconds", "10")
            ]
        ),
        Some(0.95)
    );
    let good = "http_server_slo_latency_good_total";
    assert_eq!(metrics.value(good, &[("http_route", "/a")]), Some(1.0));
    assert_eq!(metrics.value(good, &[("http_route", "/b")]), Some(2.0));
    assert_eq!(route_requests(&metrics, "/b"), Some(2.0));
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn a_layer_builds_and_records_after_a_failed_build() {
    use tower_prometheus::layer::Objective;

    let registry = MetricsRegistry::new();
    let error = MetricsLayer::builder(&registry)
        .objective("/", Objective::availability(2.0))
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::InvalidObjective(_)), "{error}");
    let endpoint = MetricsEndpoint::new(&registry).unwrap();
    // The first layer creates the families, so its cap takes effect.
    MetricsLayer::builder(&registry)
        .max_series(7)
        .build()
        .unwrap();
    let capped: tower_prometheus::layer::RequestCount = registry.get(REQUESTS_TOTAL).unwrap();
    assert_eq!(capped.series_limit(), 7);
    let error = MetricsLayer::builder(&registry)
        .max_series(8)
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::Setting { .. }), "{error}");

    let layer = MetricsLayer::new(&registry).unwrap();
    let app = serve(
        Router::new()
            .route("/", get(|| async { "hi" }))
            .layer(layer),
    )
    .await;
    common::get(app, "/").await;
    let metrics = scrape(serve(endpoint).await).await;
    assert_eq!(route_requests(&metrics, "/"), Some(1.0));
}

#[tokio::test]
async fn a_blocking_sync_collector_times_out_and_is_not_started_twice() {
    use std::sync::mpsc;
    use std::time::Duration;

    let registry = MetricsRegistry::new();
    registry
        .provider("fresh", "Fresh.", Gauge::default)
        .unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let counted = Arc::clone(&runs);
    registry
        .collector("blocked", move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
            // Blocks until the test releases it (or gives up after a minute).
            let released = released.lock().map_err(|_| "poisoned")?;
            released.recv_timeout(Duration::from_secs(60))?;
            Ok(())
        })
        .unwrap();
    registry
        .collector("after", |registry| {
            registry.get::<Gauge>("fresh")?.inc();
            Ok(())
        })
        .unwrap();
    let endpoint = MetricsEndpoint::builder(&registry)
        .collector_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let addr = serve(endpoint).await;
    let errors = "tower_prometheus_collector_errors_total";
    let timeouts = [("collector", "blocked"), ("reason", "timeout")];
    for scrape_number in 1..=2 {
        let metrics = tokio::time::timeout(Duration::from_secs(10), scrape(addr))
            .await
            .expect("the scrape does not wait for the blocked collector");
        assert_eq!(metrics.value(errors, &timeouts), Some(scrape_number as f64));
        assert_eq!(metrics.value("fresh", &[]), Some(scrape_number as f64));
    }
    // The second scrape found the first run still blocked and did not start another.
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    release.send(()).unwrap();
    release.send(()).unwrap();
    common::eventually(
        Duration::from_secs(10),
        "the collector runs again",
        || async {
            scrape(addr).await;
            (runs.load(Ordering::SeqCst) == 2).then_some(())
        },
    )
    .await;
}

#[test]
fn wrong_type_errors_name_the_public_types() {
    use tower_prometheus::layer::RequestCount;
    use tower_prometheus::metrics::Histogram;

    let registry = MetricsRegistry::new();
    let _layer = MetricsLayer::new(&registry).unwrap();
    let error = registry.get::<Histogram>(REQUESTS_TOTAL).unwrap_err();
    let RegistryError::WrongType {
        requested, actual, ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(requested, "tower_prometheus::metrics::Histogram");
    // The very path the message prints names the type in code.
    let _: tower_prometheus::metrics::Family<
        tower_prometheus::layer::HttpLabels,
        tower_prometheus::metrics::Counter,
    > = registry.get(REQUESTS_TOTAL).unwrap();
    assert_eq!(
        actual,
        "tower_prometheus::metrics::Family<tower_prometheus::layer::HttpLabels, \
         tower_prometheus::metrics::Counter>"
    );
    // The aliases name the same type.
    registry.get::<RequestCount>(REQUESTS_TOTAL).unwrap();
    let error = registry
        .get::<tower_prometheus::prometheus_client::metrics::gauge::Gauge>(REQUESTS_TOTAL)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("not a prometheus_client::metrics::gauge::Gauge"),
        "{error}"
    );
}

#[tokio::test]
async fn counters_and_gauges_take_fractional_values() {
    use tower_prometheus::metrics::{CounterFamily, InvalidIncrement};

    let registry = MetricsRegistry::new();
    registry
        .provider_with_unit(
            "energy",
            "Energy used.",
            Unit::Other("joules".into()),
            Counter::default,
        )
        .unwrap();
    registry.provider("load", "Load.", Gauge::default).unwrap();
    registry
        .provider("disk_seconds", "Disk time.", <CounterFamily>::default)
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let energy = registry.get::<Counter>("energy").unwrap();
    let load = registry.get::<Gauge>("load").unwrap();
    let disks = registry.get::<CounterFamily>("disk_seconds").unwrap();

    energy.inc_by_f64(1.5).unwrap();
    energy.inc();
    assert_eq!(energy.inc_by_f64(-1.0), Err(InvalidIncrement(-1.0)));
    assert!(energy.inc_by_f64(f64::NAN).is_err());
    assert!(energy.inc_by_f64(f64::INFINITY).is_err());
    // Threads adding fractions at once lose none of them.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..1000 {
                    energy.inc_by_f64(0.25).unwrap();
                }
            });
        }
    });
    load.add(2);
    load.set_f64(0.75);
    load.add(2);
    disks
        .get_or_create(&vec![("disk".into(), "sda".into())])
        .inc_by_f64(0.125)
        .unwrap();

    let metrics = scrape(addr).await;
    assert_eq!(metrics.value("energy_joules_total", &[]), Some(1002.5));
    assert_eq!(metrics.value("load", &[]), Some(2.75));
    assert_eq!(
        metrics.value("disk_seconds_total", &[("disk", "sda")]),
        Some(0.125)
    );
    assert_eq!((energy.get(), load.get()), (1002, 2));

    // A whole value set again is exposed as an integer, as before any fraction.
    load.set(-4);
    let reply = common::scrape_reply(addr, &[]).await;
    assert!(
        reply.body.lines().any(|line| line == "load -4"),
        "{}",
        reply.body
    );
}

#[test]
fn a_setting_changed_after_init_is_an_error_naming_the_setting() {
    let registry = MetricsRegistry::new();
    registry.single_process().unwrap();
    let _layer = MetricsLayer::new(&registry).unwrap();
    // A setting is not a metric name: the error says which setting, as a setting.
    let late_setting = registry.single_process().unwrap_err();
    assert_eq!(
        late_setting,
        RegistryError::SettingAfterInit {
            setting: "multi-process mode"
        }
    );
    assert_eq!(
        late_setting.to_string(),
        "cannot change multi-process mode: the registry is already initialized"
    );
    assert!(matches!(
        registry.without_process_metrics(),
        Err(RegistryError::SettingAfterInit {
            setting: "process metrics"
        })
    ));
}
