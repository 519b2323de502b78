//! The crate's `tracing` events, caught by a subscriber of the test's own while a real
//! server answers scrapes.

mod common;

use std::collections::BTreeMap;
use std::sync::{Mutex, Once};
use std::time::Duration;

use common::{eventually, scrape, serve, TempDir};
use tower_prometheus::metrics::Gauge;
use tower_prometheus::{MetricsEndpoint, MetricsRegistry};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// One event: its target, level and fields.
#[derive(Clone, Debug)]
struct Captured {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());

/// Keeps every event of every thread (the server's included).
struct Recorder;

impl Visit for Captured {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), value.into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields
            .insert(field.name().into(), format!("{value:?}"));
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut captured = Captured {
            target: event.metadata().target().into(),
            level: *event.metadata().level(),
            fields: BTreeMap::new(),
        };
        event.record(&mut captured);
        EVENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(captured);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(Recorder).expect("the only subscriber");
    });
}

/// The events whose field `key` is `value`, waiting up to a few seconds for one.
async fn events_with(key: &str, value: &str) -> Vec<Captured> {
    eventually(Duration::from_secs(5), "the event", || async {
        let events: Vec<Captured> = EVENTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|e| e.fields.get(key).map(String::as_str) == Some(value))
            .cloned()
            .collect();
        (!events.is_empty()).then_some(events)
    })
    .await
}

#[tokio::test]
async fn a_failing_collector_is_a_warning_naming_it_with_its_message() {
    install();
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
    assert_eq!(event.fields["reason"], "error");
    assert_eq!(event.fields["error"], "database is down");
}

#[tokio::test]
async fn a_metric_outside_the_files_is_a_warning_at_init() {
    install();
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
    let all = EVENTS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        !all.iter()
            .any(|e| e.fields.get("metric").map(String::as_str) == Some("collected_depth")),
        "{all:?}"
    );
}
