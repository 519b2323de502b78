//! Metrics of your own, declared as a team porting Python's prometheus_client declares
//! them: label names once, values by position or by name in any order, and a misspelled
//! label an error at the call. The same label set in any order is one series with the
//! full count: in the text, OpenMetrics and protobuf scrapes, in a real Prometheus, and
//! in the multi-process files that Python reads. A struct deriving prometheus-client's
//! `EncodeLabelSet` is a label set as it is.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::fixtures::protobuf_families;
use common::multiprocess::{file_entries, python_aggregate};
use common::prometheus::{query, start_prometheus};
use common::{eventually, scrape, scrape_reply, serve, Exposition, TempDir};
use prometheus_client::encoding::EncodeLabelSet;
use tower_prometheus::metrics::{
    Buckets, Counter, CounterFamily, Family, Histogram, HistogramFamily, LabelError,
};
use tower_prometheus::{BuildError, MetricsLayer, MetricsRegistry, RegistryError};

/// A label set of its own, deriving prometheus-client's encoding and nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Upload {
    tenant: String,
    kind: String,
}

/// The module's metrics, as Python's `Counter("orders", "...", ["method", "status"])`.
fn declare(registry: &MetricsRegistry) {
    registry
        .provider("orders", "Orders, by method and status.", || {
            <CounterFamily>::default().label_names(["method", "status"])
        })
        .unwrap();
    // Label pairs without declared names, as code written before them does.
    registry
        .provider(
            "pair_orders",
            "Orders counted with label pairs.",
            <CounterFamily>::default,
        )
        .unwrap();
    registry
        .provider(
            "uploads",
            "Uploads, by tenant and kind.",
            Family::<Upload, Counter>::default,
        )
        .unwrap();
}

type Reply = Result<&'static str, (StatusCode, String)>;

fn orders(registry: &MetricsRegistry, name: &str) -> Result<CounterFamily, (StatusCode, String)> {
    registry
        .get::<CounterFamily>(name)
        .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
}

/// A wrong label is the client's 400 here, with the error's own words.
fn counted(result: Result<Counter, LabelError>) -> Reply {
    let counter = result.map_err(|error| (StatusCode::BAD_REQUEST, error.to_string()))?;
    counter.inc();
    Ok("counted")
}

async fn by_position(State(registry): State<MetricsRegistry>) -> Reply {
    counted(orders(&registry, "orders")?.labels(&["GET", "200"]))
}

async fn by_name(State(registry): State<MetricsRegistry>) -> Reply {
    counted(orders(&registry, "orders")?.labels_by_name(&[("status", "200"), ("method", "GET")]))
}

async fn by_name_in_declared_order(State(registry): State<MetricsRegistry>) -> Reply {
    counted(orders(&registry, "orders")?.labels_by_name(&[("method", "GET"), ("status", "200")]))
}

/// `labels_by_name` with the labels `/wrong/{case}` names.
async fn wrong(State(registry): State<MetricsRegistry>, Path(case): Path<String>) -> Reply {
    let orders = orders(&registry, "orders")?;
    counted(match case.as_str() {
        "misspelled" => orders.labels_by_name(&[("methd", "GET"), ("status", "200")]),
        "missing" => orders.labels_by_name(&[("method", "GET")]),
        "extra" => orders.labels_by_name(&[("method", "GET"), ("status", "200"), ("path", "/")]),
        _ => orders.labels(&["GET"]),
    })
}

/// The family without declared names, fed the pairs in the order `/pairs/{order}` says.
async fn pairs(State(registry): State<MetricsRegistry>, Path(order): Path<String>) -> Reply {
    let mut pairs: Vec<(String, String)> = vec![
        ("method".into(), "GET".into()),
        ("status".into(), "200".into()),
    ];
    if order == "reversed" {
        pairs.reverse();
    }
    orders(&registry, "pair_orders")?
        .get_or_create(&pairs)
        .inc();
    Ok("counted")
}

async fn upload(State(registry): State<MetricsRegistry>) -> Reply {
    let uploads = registry
        .get::<Family<Upload, Counter>>("uploads")
        .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    uploads
        .get_or_create(&Upload {
            tenant: "acme".into(),
            kind: "image".into(),
        })
        .inc();
    Ok("counted")
}

/// The app on 127.0.0.1, its handlers recording into `registry`'s own metrics.
async fn serve_app(registry: &MetricsRegistry) -> SocketAddr {
    let router = Router::new()
        .route("/by-position", get(by_position))
        .route("/by-name", get(by_name))
        .route("/by-name-in-declared-order", get(by_name_in_declared_order))
        .route("/wrong/{case}", get(wrong))
        .route("/pairs/{order}", get(pairs))
        .route("/upload", get(upload))
        .with_state(registry.clone())
        .layer(MetricsLayer::new(registry).unwrap());
    serve(router).await
}

/// The requests of every test: `orders{method="GET",status="200"}` six times (three by
/// position, two by name reversed, one by name in order), `pair_orders` five times
/// (twice in one order, three times in the other), `uploads` twice.
async fn record_in_every_order(addr: SocketAddr) {
    let paths = [
        "/by-position",
        "/by-name",
        "/pairs/declared",
        "/by-position",
        "/pairs/reversed",
        "/by-name-in-declared-order",
        "/pairs/reversed",
        "/by-name",
        "/upload",
        "/pairs/declared",
        "/by-position",
        "/pairs/reversed",
        "/upload",
    ];
    for path in paths {
        let reply = common::get(addr, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
}

const GET_200: &[(&str, &str)] = &[("method", "GET"), ("status", "200")];

/// One series each, with the full count, in a text exposition.
fn assert_one_series_each(exposition: &Exposition) {
    for (family, count) in [("orders_total", 6.0), ("pair_orders_total", 5.0)] {
        let series = exposition.matching(family, &[]);
        assert_eq!(series.len(), 1, "{family}:\n{}", exposition.text);
        assert_eq!(exposition.value(family, GET_200), Some(count), "{family}");
    }
    let uploads = [("tenant", "acme"), ("kind", "image")];
    assert_eq!(exposition.matching("uploads_total", &[]).len(), 1);
    assert_eq!(exposition.value("uploads_total", &uploads), Some(2.0));
}

async fn labels_in_any_order_by_position_or_by_name_count_into_one_series_in_every_format() {
    let registry = MetricsRegistry::new();
    declare(&registry);
    let addr = serve_app(&registry).await;
    record_in_every_order(addr).await;

    assert_one_series_each(&scrape(addr).await);
    let openmetrics = scrape_reply(addr, &[("accept", "application/openmetrics-text")]).await;
    assert!(
        openmetrics.body.ends_with("# EOF\n"),
        "{}",
        openmetrics.body
    );
    assert_one_series_each(&Exposition::parse(&openmetrics.body));

    let protobuf = scrape_reply(
        addr,
        &[("accept", "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")],
    )
    .await;
    let families = protobuf_families(&protobuf.raw);
    for (family, count) in [("orders_total", 6.0), ("pair_orders_total", 5.0)] {
        let metrics = &families
            .iter()
            .find(|f| f.name == family)
            .unwrap_or_else(|| panic!("no family {family}"))
            .metric;
        assert_eq!(metrics.len(), 1, "{family}: {metrics:?}");
        let mut labels: Vec<(&str, &str)> = metrics[0]
            .label
            .iter()
            .map(|pair| (pair.name.as_str(), pair.value.as_str()))
            .collect();
        labels.sort_unstable();
        assert_eq!(labels, GET_200, "{family}");
        assert_eq!(metrics[0].counter.as_ref().map(|c| c.value), Some(count));
    }
}

async fn a_misspelled_missing_or_extra_label_is_an_error_at_the_call_and_counts_nothing() {
    let registry = MetricsRegistry::new();
    declare(&registry);
    let addr = serve_app(&registry).await;
    common::get(addr, "/by-position").await;
    for (case, message) in [
        (
            "misspelled",
            "label `methd` is not one of this family's label names (method, status): check its spelling, or declare it with `Family::label_names`",
        ),
        (
            "missing",
            "label `status` is missing: give a value for each of this family's label names (method, status)",
        ),
        (
            "extra",
            "label `path` is not one of this family's label names (method, status): check its spelling, or declare it with `Family::label_names`",
        ),
        (
            "count",
            "1 label values for 2 label names (method, status): give one value per name, in that order",
        ),
    ] {
        let reply = common::get(addr, &format!("/wrong/{case}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{case}");
        assert_eq!(reply.body, message, "{case}");
    }
    let exposition = scrape(addr).await;
    assert_eq!(exposition.matching("orders_total", &[]).len(), 1);
    assert_eq!(exposition.value("orders_total", GET_200), Some(1.0));
}

fn label_names_that_cannot_be_declared_fail_the_build_naming_the_metric() {
    for (names, message) in [
        (
            ["tenant", "le"],
            "label name `le` is reserved for the buckets of a histogram",
        ),
        (["tenant", "tenant"], "label `tenant` is given twice"),
        (["tenant", "kind-of"], "`kind-of` is not a label name"),
    ] {
        let registry = MetricsRegistry::new();
        registry
            .provider("upload_seconds", "Upload time.", move || {
                <HistogramFamily>::new_with_constructor(|| Histogram::new(Buckets::http_duration()))
                    .label_names(names)
            })
            .unwrap();
        match MetricsLayer::new(&registry) {
            Err(BuildError::Registry(RegistryError::ProviderPanicked { name, message: got })) => {
                assert_eq!(name, "upload_seconds");
                assert!(got.starts_with(message), "{got}");
            }
            other => panic!("{names:?}: {other:?}"),
        }
    }
}

async fn prometheus_stores_the_full_count_of_a_family_fed_in_both_orders() -> common::Checked {
    let binary = common::require_tool(
        "prometheus",
        "read a family fed in both label orders back from a real Prometheus",
    )?;
    let registry = MetricsRegistry::new();
    declare(&registry);
    let addr = serve_app(&registry).await;
    let prometheus = start_prometheus(&binary, addr, &[], None, None);
    record_in_every_order(addr).await;
    for (family, count) in [("orders_total", 6.0), ("pair_orders_total", 5.0)] {
        let stored = format!("sum({family}{{method=\"GET\",status=\"200\"}})");
        eventually(
            Duration::from_secs(60),
            &format!("Prometheus to store {count} in {family}"),
            || async { (query(prometheus.addr, &stored).await == Some(count)).then_some(()) },
        )
        .await;
        let series = format!("count({family})");
        assert_eq!(query(prometheus.addr, &series).await, Some(1.0), "{family}");
    }
    Ok(())
}

/// This process's counter file in `dir`: its entries of `family` (with `_total`).
fn entries_of(dir: &std::path::Path, family: &str) -> Vec<(String, f64)> {
    let file = dir.join(format!("counter_{}.db", std::process::id()));
    let prefix = format!("[\"{}\", \"{family}\", ", family.trim_end_matches("_total"));
    file_entries(&file)
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .collect()
}

/// An app in multi-process mode over `dir`, every order recorded.
async fn recorded_in_files(dir: &std::path::Path) -> SocketAddr {
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir).unwrap();
    declare(&registry);
    let addr = serve_app(&registry).await;
    record_in_every_order(addr).await;
    addr
}

async fn both_orders_land_in_one_entry_of_the_multiprocess_files() {
    let dir = TempDir::new("label-orders");
    let addr = recorded_in_files(dir.path()).await;
    for (family, help, count) in [
        ("orders_total", "Orders, by method and status.", 6.0),
        ("pair_orders_total", "Orders counted with label pairs.", 5.0),
    ] {
        let base = family.trim_end_matches("_total");
        let key = format!(
            "[\"{base}\", \"{family}\", {{\"method\": \"GET\", \"status\": \"200\"}}, \"{help}\"]"
        );
        assert_eq!(entries_of(dir.path(), family), vec![(key, count)]);
    }
    assert_one_series_each(&scrape(addr).await);
}

async fn python_reads_one_series_with_the_full_count_from_the_files() -> common::Checked {
    let python = common::require_python_client(
        "read a family fed in both label orders with Python's MultiProcessCollector",
    )?;
    let dir = TempDir::new("label-orders-python");
    recorded_in_files(dir.path()).await;
    assert_one_series_each(&python_aggregate(&python, dir.path()));
    Ok(())
}

test_main! {
    tokio labels_in_any_order_by_position_or_by_name_count_into_one_series_in_every_format,
    tokio a_misspelled_missing_or_extra_label_is_an_error_at_the_call_and_counts_nothing,
    sync label_names_that_cannot_be_declared_fail_the_build_naming_the_metric,
    tokio prometheus_stores_the_full_count_of_a_family_fed_in_both_orders,
    tokio both_orders_land_in_one_entry_of_the_multiprocess_files,
    tokio python_reads_one_series_with_the_full_count_from_the_files,
}
