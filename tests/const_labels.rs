//! Constant labels and the name prefix on every family the layer writes: HTTP (the
//! opt-in ones and the overflow series included), gRPC through a real tonic server,
//! the objective families; not on the user's own families nor the process metrics.
//! Invalid names, labels the families set themselves, duplicates and layers that
//! disagree are build errors.

mod common;

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{eventually, Exposition};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tonic_health::pb::HealthCheckRequest;
use tower::{service_fn, Layer};
use tower_prometheus::layer::Objective;
use tower_prometheus::metrics::Counter;
use tower_prometheus::{BuildError, LabelProblem, MetricsLayer, MetricsRegistry};

const WAIT: Duration = Duration::from_secs(10);
const CONSTANT: [(&str, &str); 2] = [("service", "checkout"), ("region", "eu-west-1")];

/// `labels` followed by the constant labels.
fn with_constant<'a>(labels: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    labels.iter().copied().chain(CONSTANT).collect()
}

fn http_labels<'a>(method: &'a str, status: &'a str, route: &'a str) -> Vec<(&'a str, &'a str)> {
    with_constant(&[
        ("http_request_method", method),
        ("http_response_status_code", status),
        ("http_route", route),
    ])
}

/// Scrapes until `name` with `labels` has `value`.
async fn scrape_when(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    value: f64,
) -> Exposition {
    eventually(WAIT, &format!("{name} {labels:?} = {value}"), || async {
        let scrape = common::scrape(addr).await;
        (scrape.value(name, labels) == Some(value)).then_some(scrape)
    })
    .await
}

/// Every sample of the layer's families (named with the prefix) carries the constant
/// labels, and no family of the layer appears without the prefix.
fn assert_every_layer_sample_labelled(scrape: &Exposition) {
    let layer_samples: Vec<_> = scrape
        .samples
        .iter()
        .filter(|sample| sample.name.starts_with("shop_"))
        .collect();
    assert!(!layer_samples.is_empty(), "{}", scrape.text);
    for sample in layer_samples {
        for (name, value) in CONSTANT {
            assert_eq!(
                sample.labels.get(name).map(String::as_str),
                Some(value),
                "{sample:?}"
            );
        }
    }
    for sample in &scrape.samples {
        assert!(
            !sample.name.starts_with("http_server_") && !sample.name.starts_with("grpc_server_"),
            "unprefixed: {sample:?}"
        );
    }
}

async fn http_families_carry_the_labels_and_the_prefix() -> common::Checked {
    let registry = MetricsRegistry::new();
    registry
        .provider("jobs_total", "Jobs done.", Counter::default)
        .expect("declared");
    let layer = MetricsLayer::builder(&registry)
        .name_prefix("shop")
        .constant_labels(CONSTANT)
        .time_to_headers_histogram(true)
        .response_body_size_histogram(true)
        .objective(
            "/orders",
            Objective::availability(0.999).with_latency(Duration::from_secs(30), 0.99),
        )
        // One route of series: the second route folds into the overflow series.
        .max_series(1)
        .route_fn(|parts| Some(Cow::Owned(parts.uri.path().to_string())))
        .build()
        .expect("layer builds");
    let service = layer.layer(service_fn(|_request: Request<_>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ordered"))))
    }));
    let addr = common::serve(service).await;
    for _ in 0..2 {
        assert_eq!(common::get(addr, "/orders").await.status, StatusCode::OK);
    }
    assert_eq!(common::get(addr, "/elsewhere").await.status, StatusCode::OK);
    registry
        .get::<Counter>("jobs_total")
        .expect("declared")
        .inc();

    let orders = http_labels("GET", "200", "/orders");
    let scrape = scrape_when(addr, "shop_http_server_requests_total", &orders, 2.0).await;
    let active = with_constant(&[("http_request_method", "GET"), ("http_route", "/orders")]);
    let overflow = with_constant(&[("otel_metric_overflow", "true")]);
    let objective = with_constant(&[("http_route", "/orders"), ("slo", "availability")]);
    let good = with_constant(&[("http_route", "/orders")]);
    let expected = [
        (
            "shop_http_server_request_duration_seconds_count",
            &orders,
            2.0,
        ),
        (
            "shop_http_server_time_to_headers_seconds_count",
            &orders,
            2.0,
        ),
        // Two bodies of `ordered`.
        (
            "shop_http_server_response_body_size_bytes_sum",
            &orders,
            14.0,
        ),
        ("shop_http_server_active_requests", &active, 0.0),
        ("shop_http_server_requests_total", &overflow, 1.0),
        ("shop_http_server_slo_objective", &objective, 0.999),
        ("shop_http_server_slo_latency_good_total", &good, 2.0),
    ];
    for (name, labels, value) in expected {
        assert_eq!(scrape.value(name, labels), Some(value), "{name} {labels:?}");
    }
    assert!(scrape.declares("shop_http_server_requests_total", "counter"));
    assert_every_layer_sample_labelled(&scrape);
    // The user's own family keeps its name and labels, and so do the process and
    // build-info metrics.
    assert_eq!(scrape.value("jobs_total", &[]), Some(1.0));
    let others: Vec<_> = scrape
        .samples
        .iter()
        .filter(|sample| !sample.name.starts_with("shop_"))
        .collect();
    assert!(
        others
            .iter()
            .any(|sample| sample.name == "tower_prometheus_build_info"),
        "{}",
        scrape.text
    );
    for sample in others {
        assert!(!sample.labels.contains_key("service"), "{sample:?}");
    }
    common::promtool_accepts(&scrape.text)
}

async fn grpc_families_carry_the_labels_and_the_prefix() {
    let registry = MetricsRegistry::new();
    let layer = MetricsLayer::builder(&registry)
        .grpc_only()
        .name_prefix("shop")
        .constant_labels(CONSTANT)
        .grpc_objective(
            "/grpc.health.v1.Health/Check",
            Objective::availability(0.99),
        )
        .build()
        .expect("layer builds");
    let (_reporter, health) = tonic_health::server::health_reporter();
    let addr = common::serve_tonic(layer, health).await;
    common::health_client(addr)
        .await
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("check answers");

    let method = with_constant(&[
        ("grpc_type", "unary"),
        ("grpc_service", "grpc.health.v1.Health"),
        ("grpc_method", "Check"),
    ]);
    let mut handled = method.clone();
    handled.insert(3, ("grpc_code", "OK"));
    let scrape = scrape_when(addr, "shop_grpc_server_handled_total", &handled, 1.0).await;
    for name in [
        "shop_grpc_server_started_total",
        "shop_grpc_server_msg_received_total",
        "shop_grpc_server_msg_sent_total",
        "shop_grpc_server_handling_seconds_count",
    ] {
        assert_eq!(scrape.value(name, &method), Some(1.0), "{name}");
    }
    let objective = with_constant(&[
        ("grpc_service", "grpc.health.v1.Health"),
        ("grpc_method", "Check"),
        ("slo", "availability"),
    ]);
    assert_eq!(
        scrape.value("shop_grpc_server_slo_objective", &objective),
        Some(0.99)
    );
    assert_every_layer_sample_labelled(&scrape);
}

fn build_error(constant: &[(&str, &str)], prefix: Option<&str>) -> Option<BuildError> {
    let mut builder =
        MetricsLayer::builder(&MetricsRegistry::new()).constant_labels(constant.iter().copied());
    if let Some(prefix) = prefix {
        builder = builder.name_prefix(prefix);
    }
    builder.build().err()
}

fn invalid_names_own_labels_and_duplicates_are_refused() {
    let label_error = |name: &str, problem| {
        Some(BuildError::ConstantLabel {
            name: name.to_string(),
            problem,
        })
    };
    for name in ["", "2fast", "service-name", "a:b", "__reserved"] {
        assert_eq!(
            build_error(&[(name, "x")], None),
            label_error(name, LabelProblem::InvalidName)
        );
    }
    for name in [
        "http_route",
        "http_response_status_code",
        "grpc_code",
        "grpc_service",
        "le",
        "slo",
        "otel_metric_overflow",
    ] {
        assert_eq!(
            build_error(&[(name, "x")], None),
            label_error(name, LabelProblem::FamilyLabel)
        );
    }
    assert_eq!(
        build_error(&[("service", "a"), ("region", "b"), ("service", "c")], None),
        label_error("service", LabelProblem::Duplicate)
    );
    for prefix in ["", "9shop", "shop-eu", "shop:"] {
        assert_eq!(
            build_error(&[], Some(prefix)),
            Some(BuildError::InvalidPrefix(prefix.to_string()))
        );
    }
    // Values are free: any text is escaped in the scrape.
    assert_eq!(
        build_error(&[("service", "a \"b\"\n")], Some("_shop2")),
        None
    );
    let error = build_error(&[("le", "x")], None).expect("refused");
    assert_eq!(
        error.to_string(),
        "constant label `le`: a label the layer's families set themselves"
    );
}

fn layers_of_one_registry_must_agree_on_the_labels() {
    let registry = MetricsRegistry::new();
    let first = || MetricsLayer::builder(&registry).constant_labels([("service", "a")]);
    first().build().expect("first layer builds");
    // The same labels share the families.
    first()
        .build()
        .expect("a second layer with the same labels builds");
    let error = MetricsLayer::builder(&registry)
        .constant_labels([("service", "b")])
        .build()
        .expect_err("other labels on the same families");
    assert!(
        matches!(&error, BuildError::Setting { setting: "constant_labels", message }
            if message.contains("http_server_request_duration_seconds")),
        "{error}"
    );
    // A family declared under one of the layer's names is the user's, without them.
    let replacing = || {
        let registry = MetricsRegistry::new();
        registry
            .provider(
                "http_server_requests_total",
                "Requests.",
                tower_prometheus::layer::RequestCount::default,
            )
            .expect("declared");
        registry
    };
    let error = MetricsLayer::builder(&replacing())
        .constant_labels([("service", "a")])
        .build()
        .expect_err("the replaced family has no constant labels");
    assert!(
        matches!(&error, BuildError::Setting { setting: "constant_labels", message }
            if message.contains("http_server_requests_total")),
        "{error}"
    );
    MetricsLayer::builder(&replacing())
        .build()
        .expect("without constant labels the replaced family serves");
    // A prefix of its own gives a layer families of its own.
    MetricsLayer::builder(&registry)
        .name_prefix("other")
        .constant_labels([("service", "b")])
        .build()
        .expect("own families");
}

test_main! {
    tokio_2 http_families_carry_the_labels_and_the_prefix,
    tokio_2 grpc_families_carry_the_labels_and_the_prefix,
    sync invalid_names_own_labels_and_duplicates_are_refused,
    sync layers_of_one_registry_must_agree_on_the_labels,
}
