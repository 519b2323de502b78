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
    let all = recorded().taken();
    assert!(
        !all.iter()
            .any(|e| e.fields.get("metric").map(String::as_str) == Some("\"collected_depth\"")),
        "{all:?}"
    );
}
