//! The crate's `tracing` events, caught by a subscriber installed for the whole test
//! binary while a real server answers scrapes.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::events::{Captured, Events};
use common::{eventually, scrape, serve, TempDir};
use tower_prometheus::metrics::Gauge;
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};
use tracing::Level;

/// Every event of every thread (the server's included).
static EVENTS: OnceLock<Events> = OnceLock::new();

/// The events, with the subscriber installed for the whole test binary.
fn recorded() -> &'static Events {
    EVENTS.get_or_init(|| {
        let events = Events::default();
        tracing::subscriber::set_global_default(events.clone()).expect("the only subscriber");
        events
    })
}

/// The events whose field `key` is `value`, waiting up to a few seconds for one.
async fn events_with(key: &str, value: &str) -> Vec<Captured> {
    eventually(Duration::from_secs(5), "the event", || async {
        let events: Vec<Captured> = recorded()
            .taken()
            .into_iter()
            .filter(|e| e.fields.get(key) == Some(&format!("{value:?}")))
            .collect();
        (!events.is_empty()).then_some(events)
    })
    .await
}

/// Checks that no event so far has the field `metric` set to `metric`.
fn assert_not_warned_about(metric: &str) {
    let all = recorded().taken();
    let quoted = format!("{metric:?}");
    assert!(
        !all.iter().any(|e| e.fields.get("metric") == Some(&quoted)),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_failing_collector_is_a_warning_naming_it_with_its_message() {
    recorded();
    let registry = MetricsRegistry::new();
    registry
        .provider("queued", "Queued.", Gauge::default)
        .unwrap();
    registry
        .collector("orders_db", |_| Err("database is down".into()))
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    let metrics = scrape(addr).await;
    assert_eq!(
        metrics.value(
            "tower_prometheus_collector_errors_total",
            &[("collector", "orders_db"), ("reason", "error")]
        ),
        Some(1.0)
    );
    let events = events_with("collector", "orders_db").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.level, Level::WARN);
    assert_eq!(event.target, "tower_prometheus::registry");
    assert_eq!(event.fields["reason"], "\"error\"");
    assert_eq!(event.fields["error"], "\"database is down\"");
}

#[tokio::test]
async fn a_metric_outside_the_files_is_a_warning_at_init() {
    recorded();
    let dir = TempDir::new("logging");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("plain_hits", "Hits.", || {
            tower_prometheus::prometheus_client::metrics::counter::Counter::<u64>::default()
        })
        .unwrap();
    registry
        .collected_provider("collected_depth", "Depth.", Gauge::default)
        .unwrap();
    let _endpoint = MetricsEndpoint::new(&registry).unwrap();
    let events = events_with("metric", "plain_hits").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::WARN);
    assert_eq!(events[0].target, "tower_prometheus::registry");
    // A metric declared to stay in the process is not warned about.
    assert_not_warned_about("collected_depth");
}

#[tokio::test]
async fn a_collector_setting_a_gauge_of_the_files_is_a_warning_naming_collected_provider() {
    recorded();
    let dir = TempDir::new("logging-collected");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("filed_depth", "Depth, in the files.", Gauge::default)
        .unwrap();
    registry
        .collected_provider("kept_depth", "Depth, in this process.", Gauge::default)
        .unwrap();
    registry
        .provider("handler_depth", "Depth set by handlers.", Gauge::default)
        .unwrap();
    registry
        .collector("depth_sync", |registry| {
            registry.get::<Gauge>("kept_depth")?.set(4);
            registry.get::<Gauge>("filed_depth")?.set(3);
            Ok(())
        })
        .unwrap();
    registry
        .async_collector("depth_async", |registry| async move {
            registry.get::<Gauge>("kept_depth")?.set(4);
            registry.get::<Gauge>("filed_depth")?.set(3);
            Ok(())
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    for _ in 0..3 {
        let metrics = scrape(addr).await;
        assert_eq!(metrics.value("kept_depth", &[]), Some(4.0));
    }
    let events = events_with("metric", "filed_depth").await;
    // Once, from the first collector that asked for it.
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].level, Level::WARN);
    assert_eq!(events[0].target, "tower_prometheus::registry");
    assert_eq!(events[0].fields["collector"], "\"depth_sync\"");
    assert!(
        events[0].written().contains("`collected_provider`"),
        "{}",
        events[0].written()
    );
    assert_not_warned_about("kept_depth");
    // A gauge of the files set outside collectors is not warned about.
    registry.get::<Gauge>("handler_depth").unwrap().set(1);
    scrape(addr).await;
    assert_not_warned_about("handler_depth");
}

#[tokio::test]
async fn an_async_collector_setting_a_gauge_of_the_files_is_a_warning_too() {
    recorded();
    let dir = TempDir::new("logging-collected-async");
    let registry = MetricsRegistry::new();
    registry.multiprocess_dir(dir.path()).unwrap();
    registry
        .provider("filed_pool", "Pool, in the files.", Gauge::default)
        .unwrap();
    registry
        .async_collector("pool_async", |registry| async move {
            tokio::task::yield_now().await;
            registry.get::<Gauge>("filed_pool")?.set(3);
            Ok(())
        })
        .unwrap();
    let addr = serve(MetricsEndpoint::new(&registry).unwrap()).await;
    scrape(addr).await;
    let events = events_with("metric", "filed_pool").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].fields["collector"], "\"pool_async\"");
}
