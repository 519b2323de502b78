//! The `metrics` facade recorder end to end: an axum app whose handlers record through
//! `counter!`, `gauge!` and `histogram!`, served with `MetricsLayer` on 127.0.0.1 and
//! scraped with a hyper client, value by value; an app migrated from axum-prometheus;
//! facade values shared through the multi-process files, read back by Python's
//! `MultiProcessCollector`; native buckets by name, scraped in protobuf and in text.

mod common;

use std::process::Command;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use common::fixtures::{classic_buckets, native_side, positive_buckets, protobuf_histograms};
use common::multiprocess::{assert_same_samples, python_aggregate};
use common::{scrape, serve, Exposition, TempDir};
use http::{Method, StatusCode};
use metrics::{counter, describe_counter, describe_histogram, gauge, histogram, Unit};
use tower_prometheus::facade::{FacadeRecorder, Matcher, FACADE_ERRORS};
use tower_prometheus::layer::REQUEST_DURATION;
use tower_prometheus::metrics::{Buckets, NativeBuckets, OVERFLOW_LABEL};
use tower_prometheus::{BuildError, MetricsEndpoint, MetricsLayer, MetricsRegistry};

const ERRORS: &str = "tower_prometheus_facade_errors_total";

/// The bucket counts of `family` with `labels`, by bound, in exposition order.
fn buckets(scraped: &Exposition, family: &str, labels: &[(&str, &str)]) -> Vec<(String, f64)> {
    scraped
        .matching(&format!("{family}_bucket"), labels)
        .iter()
        .map(|s| (s.labels["le"].clone(), s.value))
        .collect()
}

fn bounds(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(le, n)| (le.to_string(), *n)).collect()
}

async fn order(Path(kind): Path<String>) -> &'static str {
    counter!("orders", "kind" => kind.clone(), "region" => "eu").increment(1);
    histogram!("checkout_seconds", "kind" => kind).record(0.05);
    gauge!("cart.items").increment(2.0);
    "ordered"
}

/// The facade's families next to the layer's in one scrape: names sanitized, counters
/// with `_total`, help texts and units from `describe_*!`, bucket rules, the label-set
/// cap with its overflow series, and every record that could not be kept counted; the
/// whole scrape passes `promtool check metrics`.
async fn facade_families_are_served_beside_the_layers() -> common::Checked {
    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::builder(&registry)
        .buckets_for(Matcher::Full("checkout_seconds".into()), &[0.1, 1.0])
        .buckets_for(Matcher::Prefix("db.".into()), &[0.5])
        .max_series(3)
        .build()
        .unwrap();
    // The server runs on this thread (a current-thread runtime): the handlers record
    // into this recorder, and its warnings come here.
    let _scoped = metrics::set_default_local_recorder(&recorder);
    let events = common::events::Events::default();
    let _logged = tracing::subscriber::set_default(events.clone());
    describe_counter!("orders", "Orders placed.");
    describe_histogram!("payload", Unit::Bytes, "Request payloads.");
    let app = Router::new()
        .route("/orders/{kind}", post(order))
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(app).await;
    for kind in ["book", "book", "pen"] {
        let reply = common::send(addr, Method::POST, &format!("/orders/{kind}")).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    gauge!("cart.items").decrement(0.5);
    gauge!("queue_depth", "queue" => "mail").set(7.0);
    histogram!("db.query", "table" => "users").record(0.2);
    histogram!("db.query", "table" => "users").record(0.7);
    histogram!("payload").record(300.0);
    histogram!("payload").record(f64::NAN);
    histogram!("sizes", "le" => "big").record(1.0);
    counter!("http.hits-total", "client-id" => "a", "client-id" => "b").increment(4);
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        counter!("logins", "user" => user).increment(1);
    }
    // Kept out, each counted once: another kind, a name the layer has, a second and a
    // late description.
    gauge!("orders").set(1.0);
    counter!("http_server_requests").increment(1);
    describe_counter!("orders", "Something else.");
    describe_counter!("logins", "Logins.");

    let scraped = scrape(addr).await;
    let text = &scraped.text;
    let eu = |kind| [("kind", kind), ("region", "eu")];
    assert_eq!(
        scraped.value("orders_total", &eu("book")),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        scraped.value("orders_total", &eu("pen")),
        Some(1.0),
        "{text}"
    );
    assert!(scraped.declares("orders_total", "counter"), "{text}");
    assert!(
        text.contains("# HELP orders_total Orders placed.\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP cart_items Recorded through the `metrics` facade, undescribed.\n"),
        "{text}"
    );
    assert!(!scraped.declares("orders", "gauge"), "{text}");
    // The layer's own families, for the same requests.
    let route = [
        ("http_request_method", "POST"),
        ("http_response_status_code", "200"),
        ("http_route", "/orders/{kind}"),
    ];
    assert_eq!(
        scraped.value("http_server_requests_total", &route),
        Some(3.0)
    );

    // A full-name rule: this histogram's own bounds, a count per kind.
    let book = [("kind", "book")];
    assert!(scraped.declares("checkout_seconds", "histogram"), "{text}");
    assert_eq!(
        buckets(&scraped, "checkout_seconds", &book),
        bounds(&[("0.1", 2.0), ("1", 2.0), ("+Inf", 2.0)])
    );
    assert_eq!(scraped.value("checkout_seconds_count", &book), Some(2.0));
    assert_eq!(scraped.value("checkout_seconds_sum", &book), Some(0.1));
    assert_eq!(
        scraped.value("checkout_seconds_count", &[("kind", "pen")]),
        Some(1.0)
    );
    // A prefix rule, matched on the sanitized name.
    let users = [("table", "users")];
    assert_eq!(
        buckets(&scraped, "db_query", &users),
        bounds(&[("0.5", 1.0), ("+Inf", 2.0)])
    );
    assert_eq!(
        scraped.value("db_query_sum", &users),
        Some(0.8999999999999999)
    );
    // No rule: the layer's duration buckets. The unit joins the name; NaN is left out.
    let payload = buckets(&scraped, "payload_bytes", &[]);
    assert_eq!(payload.len(), 15, "{text}");
    assert_eq!(payload.last(), Some(&("+Inf".to_string(), 1.0)));
    assert_eq!(payload[13], ("10".to_string(), 0.0));
    assert_eq!(scraped.value("payload_bytes_sum", &[]), Some(300.0));
    assert_eq!(scraped.value("payload_bytes_count", &[]), Some(1.0));
    assert!(
        text.contains("# HELP payload_bytes Request payloads.\n"),
        "{text}"
    );

    // Gauges: whole and fractional steps, sets.
    assert_eq!(scraped.value("cart_items", &[]), Some(5.5), "{text}");
    assert_eq!(
        scraped.value("queue_depth", &[("queue", "mail")]),
        Some(7.0)
    );
    // Sanitized names; of a label given twice the first value stays.
    assert_eq!(
        scraped.value("http_hits_total", &[("client_id", "a")]),
        Some(4.0),
        "{text}"
    );
    // Three label sets, then the overflow series.
    for user in ["u1", "u2", "u3"] {
        assert_eq!(scraped.value("logins_total", &[("user", user)]), Some(1.0));
    }
    assert_eq!(
        scraped.value("logins_total", &[OVERFLOW_LABEL]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(scraped.matching("logins_total", &[]).len(), 4);

    for reason in [
        "kind_conflict",
        "name_taken",
        "description_conflict",
        "late_description",
        "not_a_number",
    ] {
        assert_eq!(
            scraped.value(ERRORS, &[("reason", reason)]),
            Some(1.0),
            "{reason}\n{text}"
        );
    }
    assert_eq!(scraped.matching(ERRORS, &[]).len(), 5);
    assert!(ERRORS.starts_with(FACADE_ERRORS));
    // One warning each, naming the metric.
    let warned: Vec<(String, String)> = events
        .warnings()
        .into_iter()
        .filter(|event| event.target == "tower_prometheus::facade")
        .map(|event| {
            (
                event.fields["metric"].clone(),
                event.fields["reason"].clone(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("payload", "not_a_number"),
        ("orders", "kind_conflict"),
        ("http_server_requests", "name_taken"),
        ("orders", "description_conflict"),
        ("logins", "late_description"),
    ]
    .iter()
    .map(|(metric, reason)| (format!("{metric:?}"), format!("{reason:?}")))
    .collect();
    assert_eq!(warned, expected);

    common::promtool_accepts(text)
}

/// An app written as axum-prometheus's README writes it, its business metrics through
/// the facade, with `PrometheusMetricLayer::pair()` replaced by the recorder and
/// `MetricsLayer`: every value of the scrape checked.
async fn an_app_migrated_from_axum_prometheus() {
    async fn checkout() -> &'static str {
        counter!("checkouts", "payment" => "card").increment(1);
        histogram!("basket_value", "currency" => "eur").record(42.5);
        "paid"
    }
    let registry = MetricsRegistry::new();
    registry.without_process_metrics().unwrap();
    // Was: `let (prometheus_layer, metric_handle) = PrometheusMetricLayer::pair();`
    FacadeRecorder::builder(&registry)
        .buckets_for(Matcher::Full("basket_value".into()), &[10.0, 100.0])
        .build()
        .unwrap()
        .install()
        .unwrap();
    let app = Router::new()
        .route("/fast", get(|| async {}))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }),
        )
        .route("/checkout", post(checkout))
        // Was: `.route("/metrics", get(|| async move { metric_handle.render() }))`
        // and `.layer(prometheus_layer)`: the layer answers `/metrics` itself.
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(app).await;
    for _ in 0..3 {
        common::get(addr, "/fast").await;
    }
    common::get(addr, "/slow").await;
    common::send(addr, Method::POST, "/checkout").await;
    common::send(addr, Method::POST, "/checkout").await;
    common::get(addr, "/missing").await;

    // A second install finds the first: a typed error that hands the recorder back.
    let second = FacadeRecorder::new(&MetricsRegistry::new()).unwrap();
    let error = second.install().unwrap_err();
    assert_eq!(
        error.to_string(),
        "a global `metrics` recorder is already installed"
    );
    let _usable_scoped = error.into_recorder();

    let scraped = scrape(addr).await;
    let text = &scraped.text;
    let requests = |method, status, route| {
        [
            ("http_request_method", method),
            ("http_response_status_code", status),
            ("http_route", route),
        ]
    };
    let expected_requests = [
        (requests("GET", "200", "/fast"), 3.0),
        (requests("GET", "200", "/slow"), 1.0),
        (requests("POST", "200", "/checkout"), 2.0),
        (requests("GET", "404", "_OTHER"), 1.0),
    ];
    let mut seen = 0;
    for (labels, count) in &expected_requests {
        assert_eq!(
            scraped.value("http_server_requests_total", labels),
            Some(*count),
            "{labels:?}\n{text}"
        );
        assert_eq!(
            scraped.value("http_server_request_duration_seconds_count", labels),
            Some(*count)
        );
        seen += 1;
    }
    assert_eq!(
        scraped.matching("http_server_requests_total", &[]).len(),
        seen,
        "{text}"
    );
    let slow = requests("GET", "200", "/slow");
    let slow_sum = scraped
        .value("http_server_request_duration_seconds_sum", &slow)
        .unwrap();
    assert!((0.03..5.0).contains(&slow_sum), "{slow_sum}");
    assert_eq!(
        scraped.value(
            "http_server_request_duration_seconds_bucket",
            &[slow.as_slice(), &[("le", "0.025")]].concat()
        ),
        Some(0.0)
    );
    for sample in scraped.matching("http_server_active_requests", &[]) {
        assert_eq!(sample.value, 0.0, "{sample:?}");
    }
    // The business metrics, through the facade.
    let card = [("payment", "card")];
    assert_eq!(scraped.value("checkouts_total", &card), Some(2.0), "{text}");
    assert_eq!(scraped.matching("checkouts_total", &[]).len(), 1);
    let eur = [("currency", "eur")];
    assert_eq!(
        buckets(&scraped, "basket_value", &eur),
        bounds(&[("10", 0.0), ("100", 2.0), ("+Inf", 2.0)])
    );
    assert_eq!(scraped.value("basket_value_sum", &eur), Some(85.0));
    assert_eq!(scraped.value("basket_value_count", &eur), Some(2.0));
    assert!(scraped.matching(ERRORS, &[]).is_empty(), "{text}");
}

/// Bucket bounds that do not strictly increase fail the build, naming the setting.
fn invalid_buckets_fail_the_build() {
    let error = FacadeRecorder::builder(&MetricsRegistry::new())
        .buckets_for(Matcher::Prefix("db_".into()), &[1.0, 0.5])
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, BuildError::Setting { setting: "buckets_for", message }
            if message.contains("Prefix(\"db_\")") && message.contains("0.5 follows 1")),
        "{error}"
    );
}

/// Not a test: the body of a process that records through the facade into the
/// multi-process directory it is given, then exits.
fn facade_worker() {
    let Ok(jobs) = std::env::var("TOWER_PROMETHEUS_FACADE_JOBS") else {
        return;
    };
    let jobs: u64 = jobs.parse().expect("a count");
    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::new(&registry).expect("recorder in the shared directory");
    metrics::with_local_recorder(&recorder, || {
        describe_counter!("jobs", "Jobs done.");
        counter!("jobs", "queue" => "mail").increment(jobs);
        histogram!("job_seconds").record(0.2);
        gauge!("busy_workers").set(1.0);
    });
    println!("facade worker done");
}

fn run_facade_worker(dir: &std::path::Path, jobs: u64) {
    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "facade_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOWER_PROMETHEUS_FACADE_JOBS", jobs.to_string())
        .env("PROMETHEUS_MULTIPROC_DIR", dir)
        .output()
        .expect("worker runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("facade worker done"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Facade values of three processes in the shared files: counters and histograms
/// summed over all of them (exited ones too), gauges over the live ones
/// (`livesum`), and Python's `MultiProcessCollector` reads the same values.
async fn facade_values_are_aggregated_across_processes() -> common::Checked {
    let python = common::require_python_client(
        "read the facade's multi-process files with Python's MultiProcessCollector",
    )?;
    let dir = TempDir::new("facade");
    run_facade_worker(dir.path(), 3);
    run_facade_worker(dir.path(), 4);
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let recorder = FacadeRecorder::new(&registry).unwrap();
    metrics::with_local_recorder(&recorder, || {
        describe_counter!("jobs", "Jobs done.");
        counter!("jobs", "queue" => "mail").increment(5);
        counter!("jobs", "queue" => "sms").increment(1);
        histogram!("job_seconds").record(0.02);
        gauge!("busy_workers").set(2.5);
    });
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;

    let ours = scrape(addr).await;
    let text = &ours.text;
    assert_eq!(
        ours.value("jobs_total", &[("queue", "mail")]),
        Some(12.0),
        "{text}"
    );
    assert_eq!(ours.value("jobs_total", &[("queue", "sms")]), Some(1.0));
    assert!(text.contains("# HELP jobs_total Jobs done.\n"), "{text}");
    assert_eq!(ours.value("job_seconds_count", &[]), Some(3.0));
    let sum = ours.value("job_seconds_sum", &[]).unwrap_or(f64::NAN);
    assert!((sum - 0.42).abs() < 1e-9, "{sum}");
    assert_eq!(
        ours.value("job_seconds_bucket", &[("le", "0.025")]),
        Some(1.0)
    );
    assert_eq!(
        ours.value("job_seconds_bucket", &[("le", "0.25")]),
        Some(3.0)
    );
    // The workers have exited: only this process's gauge is live.
    assert_eq!(ours.value("busy_workers", &[]), Some(2.5), "{text}");

    let theirs = python_aggregate(&python, dir.path());
    assert_eq!(
        theirs.value("jobs_total", &[("queue", "mail")]),
        Some(12.0),
        "{}",
        theirs.text
    );
    assert_eq!(theirs.value("job_seconds_count", &[]), Some(3.0));
    // Python's collector keeps exited processes' `livesum` files until
    // `mark_process_dead` removes them, so only the gauge differs.
    assert_same_samples(&ours, &theirs, &["busy_workers"]);
    Ok(())
}

/// Schema 0 (bucket `k` is `(2^(k-1), 2^k]`), zero threshold 0.5: buckets to count by
/// hand.
fn schema_zero() -> NativeBuckets {
    NativeBuckets::new(0)
        .and_then(|c| c.with_zero_threshold(0.5))
        .expect("a valid configuration")
}

async fn record_jobs() -> &'static str {
    for value in [1.0, 1.0, 3.0, 0.25, -2.0] {
        histogram!("job_seconds", "queue" => "mail").record(value);
    }
    for value in [0.75, 2.0, 8.0] {
        histogram!("db.query_seconds").record(value);
    }
    histogram!("payload_bytes").record(100.0);
    "recorded"
}

/// Facade histograms recorded by a handler, named by a native rule: native buckets in
/// the protobuf scrape, counted bucket by bucket; classic buckets beside them only for
/// the name a classic rule fits too; the `+Inf` bucket, count and sum alone in text,
/// which promtool accepts. Names no native rule fits, and the layer's own families,
/// stay classic.
async fn native_rules_give_facade_histograms_native_buckets() -> common::Checked {
    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::builder(&registry)
        .native_histograms_for(Matcher::Suffix("_seconds".into()), schema_zero())
        .buckets_for(Matcher::Full("db.query_seconds".into()), &[1.0, 4.0])
        .build()
        .unwrap();
    // The server runs on this thread (a current-thread runtime): the handler records
    // into this recorder.
    let _scoped = metrics::set_default_local_recorder(&recorder);
    let app = Router::new()
        .route("/jobs", post(record_jobs))
        .layer(MetricsLayer::new(&registry).unwrap());
    let addr = serve(app).await;
    let reply = common::send(addr, Method::POST, "/jobs").await;
    assert_eq!(reply.status, StatusCode::OK);

    let jobs = protobuf_histograms(addr, "job_seconds").await;
    let [job] = jobs.as_slice() else {
        panic!("one job_seconds series: {jobs:?}");
    };
    assert_eq!(
        (job.schema, job.zero_threshold, job.zero_count),
        (0, 0.5, 1)
    );
    // 1 closes bucket 0, 3 lies in (2, 4]: bucket 2; -2 closes negative bucket 1.
    assert_eq!(positive_buckets(job), [(0, 2), (2, 1)]);
    assert_eq!(
        native_side(&job.negative_span, &job.negative_delta),
        [(1, 1)]
    );
    assert_eq!((job.sample_count, job.sample_sum), (5, 3.25));
    assert_eq!(classic_buckets(job), [(f64::INFINITY, 5)]);

    let query = &protobuf_histograms(addr, "db_query_seconds").await[0];
    // 0.75 in (0.5, 1]: bucket 0; 2 closes bucket 1; 8 closes bucket 3.
    assert_eq!(positive_buckets(query), [(0, 1), (1, 1), (3, 1)]);
    assert_eq!(
        classic_buckets(query),
        [(1.0, 1), (4.0, 2), (f64::INFINITY, 3)]
    );
    assert_eq!((query.sample_count, query.sample_sum), (3, 10.75));

    let payload = &protobuf_histograms(addr, "payload_bytes").await[0];
    assert!(payload.positive_span.is_empty() && payload.zero_threshold == 0.0);
    assert_eq!(
        classic_buckets(payload).len(),
        Buckets::http_duration().bounds().len() + 1
    );
    for duration in protobuf_histograms(addr, REQUEST_DURATION).await {
        assert!(duration.positive_span.is_empty(), "{duration:?}");
    }

    let text = common::get(addr, "/metrics").await.body;
    let scraped = Exposition::parse(&text);
    let mail = [("queue", "mail")];
    assert!(scraped.declares("job_seconds", "histogram"), "{text}");
    assert_eq!(
        buckets(&scraped, "job_seconds", &mail),
        bounds(&[("+Inf", 5.0)]),
        "{text}"
    );
    assert_eq!(scraped.value("job_seconds_count", &mail), Some(5.0));
    assert_eq!(scraped.value("job_seconds_sum", &mail), Some(3.25));
    assert_eq!(
        buckets(&scraped, "db_query_seconds", &[]),
        bounds(&[("1", 1.0), ("4", 2.0), ("+Inf", 3.0)]),
        "{text}"
    );
    common::promtool_accepts(&text)
}

/// `native_histograms` gives native buckets to every facade histogram no native rule
/// names, and a rule still wins for the names it fits.
async fn the_native_default_covers_names_no_rule_names() {
    let registry = MetricsRegistry::new();
    let recorder = FacadeRecorder::builder(&registry)
        .native_histograms(NativeBuckets::new(1).unwrap())
        .native_histograms_for(Matcher::Prefix("db_".into()), schema_zero())
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        histogram!("payload_bytes").record(4.0);
        histogram!("db_rows").record(3.0);
    });
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let payload = &protobuf_histograms(addr, "payload_bytes").await[0];
    // Schema 1: 4 = 2^2 closes bucket 4.
    assert_eq!(payload.schema, 1);
    assert_eq!(positive_buckets(payload), [(4, 1)]);
    assert_eq!(classic_buckets(payload), [(f64::INFINITY, 1)]);
    let rows = &protobuf_histograms(addr, "db_rows").await[0];
    assert_eq!(rows.schema, 0);
    assert_eq!(positive_buckets(rows), [(2, 1)]);
}

/// Python's files have no native buckets: in multi-process mode facade histograms
/// keep the classic buckets they have without native rules (a `buckets_for` rule's,
/// else the layer's duration buckets), never the `+Inf` bucket alone, a protobuf
/// scrape carries no native bucket, and Python's `MultiProcessCollector` reads the
/// same buckets.
async fn multiprocess_facade_histograms_keep_classic_buckets() -> common::Checked {
    let dir = TempDir::new("facade-native");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    let recorder = FacadeRecorder::builder(&registry)
        .native_histograms_for(Matcher::Suffix("_seconds".into()), schema_zero())
        .buckets_for(Matcher::Full("db_query_seconds".into()), &[1.0, 4.0])
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        histogram!("job_seconds").record(0.02);
        histogram!("job_seconds").record(3.0);
        histogram!("db_query_seconds").record(2.0);
    });
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    for name in ["job_seconds", "db_query_seconds"] {
        let histogram = &protobuf_histograms(addr, name).await[0];
        assert!(
            histogram.positive_span.is_empty() && histogram.zero_count == 0,
            "{histogram:?}"
        );
    }
    let scraped = scrape(addr).await;
    let text = &scraped.text;
    // The layer's duration buckets, cumulative: 0.02 from 0.025 up, 3 from 5 up.
    let job: Vec<(f64, f64)> = buckets(&scraped, "job_seconds", &[])
        .into_iter()
        .map(|(le, count)| (le.parse().unwrap_or(f64::NAN), count))
        .collect();
    let expected: Vec<(f64, f64)> = Buckets::http_duration()
        .bounds()
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .map(|bound| {
            (
                bound,
                [0.02, 3.0].iter().filter(|v| **v <= bound).count() as f64,
            )
        })
        .collect();
    assert_eq!(job, expected, "{text}");
    assert_eq!(scraped.value("job_seconds_count", &[]), Some(2.0));
    assert_eq!(
        buckets(&scraped, "db_query_seconds", &[]),
        bounds(&[("1", 0.0), ("4", 1.0), ("+Inf", 1.0)]),
        "{text}"
    );

    let python = common::require_python_client(
        "read the facade's histogram files with Python's MultiProcessCollector",
    )?;
    let theirs = python_aggregate(&python, dir.path());
    assert_eq!(
        theirs.value("job_seconds_count", &[]),
        Some(2.0),
        "{}",
        theirs.text
    );
    assert_same_samples(&scraped, &theirs, &[]);
    Ok(())
}

test_main! {
    tokio facade_families_are_served_beside_the_layers,
    tokio_2 an_app_migrated_from_axum_prometheus,
    sync invalid_buckets_fail_the_build,
    sync_ignored facade_worker,
    tokio facade_values_are_aggregated_across_processes,
    tokio native_rules_give_facade_histograms_native_buckets,
    tokio the_native_default_covers_names_no_rule_names,
    tokio multiprocess_facade_histograms_keep_classic_buckets,
}
